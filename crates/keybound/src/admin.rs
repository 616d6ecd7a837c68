//! `keybound admin`: provision clients, users and signing keys in the server's store, entirely
//! from flags so scripts never meet a prompt.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use keybound_jose::Secret;
use keybound_op::password;
use keybound_proto::keybinding::Profile;
use keybound_store::{Client, ClientAuthMethod, User};

use crate::config::{Overrides, Settings};
use crate::serve::{open_store, provider};

/// Admin subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing would only add noise
pub enum Admin {
    /// Manage clients.
    Client {
        #[command(subcommand)]
        cmd: ClientCmd,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Manage identity providers whose ID-JAGs this server redeems (jwt-bearer).
    Issuer {
        #[command(subcommand)]
        cmd: IssuerCmd,
    },
    /// Initial access tokens for dynamic client registration (RFC 7591).
    RegistrationToken {
        #[command(subcommand)]
        cmd: RegistrationTokenCmd,
    },
    /// Apply the database migrations and exit (`serve` also applies them at start; run this
    /// once before rolling an upgrade over many nodes).
    Migrate,
}

/// Registration token commands.
#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCmd {
    /// Make a token (printed once; the store keeps its hash).
    Create {
        /// seconds it stays valid
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// registrations it allows (default: any number until it expires)
        #[arg(long)]
        uses: Option<u32>,
    },
}

/// Trusted issuer commands.
#[derive(Debug, Subcommand)]
pub enum IssuerCmd {
    /// Trust an issuer (or change its settings).
    Add {
        /// its issuer identifier
        #[arg(long)]
        issuer: String,
        /// its JWK Set URL (default: `jwks_uri` from its discovery document, fetched now)
        #[arg(long)]
        jwks_uri: Option<String>,
        /// how its subjects become local users: link (only `user link`ed ones), email (a local
        /// user with that verified address) or provision (create one)
        #[arg(long, default_value = "link")]
        subject: String,
        /// redeem every ID-JAG once, key-bound or not
        #[arg(long)]
        single_use: bool,
        /// accept ID-JAGs without `cnf` (Bearer access tokens)
        #[arg(long)]
        allow_unbound: bool,
    },
    /// List trusted issuers.
    List,
    /// Refuse an issuer's ID-JAGs, keeping its settings and links.
    Disable {
        /// its issuer identifier
        #[arg(long)]
        issuer: String,
    },
    /// Accept an issuer's ID-JAGs again.
    Enable {
        /// its issuer identifier
        #[arg(long)]
        issuer: String,
    },
    /// Forget an issuer and its links.
    Remove {
        /// its issuer identifier
        #[arg(long)]
        issuer: String,
    },
}

/// Client commands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing would only add noise
pub enum ClientCmd {
    /// Register or replace a client.
    Add {
        /// client id
        #[arg(long)]
        client_id: String,
        /// exact redirect URI (repeatable; needed for the authorization_code grant)
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// none, client_secret_basic, client_secret_post or private_key_jwt
        #[arg(long, default_value = "none")]
        auth_method: String,
        /// client secret (generated and printed when the method needs one and none is given)
        #[arg(long)]
        secret: Option<Secret>,
        /// profiles (repeatable): the Key Binding profile, key-binding-1.0 (the default) or
        /// draft-00; and fapi2 to hold the client to the FAPI 2.0 Security Profile
        #[arg(long = "profile")]
        profiles: Vec<String>,
        /// demand a DPoP nonce from this client
        #[arg(long)]
        require_nonce: bool,
        /// refuse token requests without DPoP (RFC 9449 dpop_bound_access_tokens)
        #[arg(long)]
        dpop_bound_access_tokens: bool,
        /// display name
        #[arg(long)]
        name: Option<String>,
        /// JWK Set file for private_key_jwt
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
        /// RFC 8707 resource (absolute URI) its access tokens may be for, as their `aud`
        /// (repeatable); without any, access tokens are for this server (userinfo)
        #[arg(long = "resource", id = "resource", value_name = "URI")]
        resources: Vec<String>,
        /// a scope it may get for itself with client_credentials (repeatable)
        #[arg(long = "scope", id = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// token exchange into ID-JAGs
        #[command(flatten)]
        exchange: ExchangeArgs,
        /// the grants it may use, exactly (repeatable): authorization_code, refresh_token,
        /// device_code, client_credentials (with --scope), jwt-bearer (redeem ID-JAGs from
        /// trusted issuers), token-exchange (with --exchange-audience); without any:
        /// authorization_code, refresh_token and device_code
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// response types it may use: code (the default), id_token, "id_token token",
        /// "code id_token", "code token", "code id_token token" (repeatable)
        #[arg(long = "response-type")]
        response_types: Vec<String>,
        /// the client supports Token Bound ID Tokens (its ID Tokens carry cnf.tbh when a
        /// referred Token Binding reaches the authorization endpoint)
        #[arg(long)]
        token_bound_id_tokens: bool,
        /// the client must push its authorization requests (RFC 9126 PAR)
        #[arg(long)]
        require_par: bool,
        /// where the End-User may be sent after logging out (RP-Initiated Logout; exact,
        /// repeatable)
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// where the OP POSTs a logout token when a session this client signed in through
        /// ends (Back-Channel Logout); the client's grants from that session end with it
        #[arg(long, value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// a web origin (https://app.example) from which this public client's pages may call
        /// the OP (CORS; repeatable); without any, the origins of its redirect URIs
        #[arg(long = "web-origin", value_name = "ORIGIN")]
        web_origins: Vec<String>,
        /// the client needs `sid` in logout tokens (keybound always sends it)
        #[arg(long, requires = "backchannel_logout_uri")]
        backchannel_logout_session_required: bool,
        /// the `acr` its sign-ins need when a request names none (repeatable; e.g.
        /// urn:keybound:acr:passkey — the End-User then signs in with a passkey)
        #[arg(long = "default-acr", value_name = "ACR")]
        default_acr_values: Vec<String>,
        /// its End-Users' OP sessions must be bound to their browser's key (Device Bound
        /// Session Credentials) before it gets a code
        #[arg(long)]
        require_dbsc: bool,
    },
    /// List clients.
    List,
    /// Remove a client.
    Remove {
        /// client id
        #[arg(long)]
        client_id: String,
    },
}

/// What a client may obtain by token exchange (identity chaining); nothing unless
/// `--exchange-audience` is given.
#[derive(Debug, Default, clap::Args)]
pub struct ExchangeArgs {
    /// allow ID-JAGs for this resource AS issuer: `ISSUER=CLIENT_ID` names this client's id
    /// there (without `=CLIENT_ID`, the same id as here) (repeatable)
    #[arg(long = "exchange-audience")]
    audiences: Vec<String>,
    /// a scope the ID-JAG may carry (repeatable)
    #[arg(long = "exchange-scope")]
    scopes: Vec<String>,
    /// an RFC 8707 resource the ID-JAG may carry (repeatable)
    #[arg(long = "exchange-resource")]
    resources: Vec<String>,
    /// also exchange ID Tokens that are not key-bound
    #[arg(long)]
    exchange_unbound: bool,
    /// let a public client exchange (the ID-JAG draft wants confidential clients)
    #[arg(long)]
    exchange_public: bool,
    /// exchange only ID Tokens whose acr is this (repeatable; RFC 9470: others are refused
    /// with insufficient_user_authentication)
    #[arg(long = "exchange-acr", value_name = "ACR")]
    exchange_acr: Vec<String>,
    /// exchange only ID Tokens of sign-ins at most this many seconds old
    #[arg(long, value_name = "SECONDS")]
    exchange_max_auth_age: Option<u64>,
}

impl ExchangeArgs {
    /// The policy, or `None` without audiences (other exchange flags then are a mistake).
    fn policy(self, client_id: &str) -> anyhow::Result<Option<keybound_store::ExchangePolicy>> {
        if self.audiences.is_empty() {
            if !self.scopes.is_empty()
                || !self.resources.is_empty()
                || self.exchange_unbound
                || self.exchange_public
                || !self.exchange_acr.is_empty()
                || self.exchange_max_auth_age.is_some()
            {
                bail!("the --exchange-* options need at least one --exchange-audience");
            }
            return Ok(None);
        }
        let mut audiences = std::collections::BTreeMap::new();
        for a in &self.audiences {
            let (issuer, id) = a.split_once('=').unwrap_or((a.as_str(), client_id));
            if !url_ok(issuer) || id.is_empty() {
                bail!("--exchange-audience '{a}': expected ISSUER_URL[=CLIENT_ID]");
            }
            audiences.insert(issuer.to_owned(), id.to_owned());
        }
        for r in &self.resources {
            if !url_ok(r) {
                bail!("--exchange-resource '{r}' must be an absolute URI without a fragment");
            }
        }
        Ok(Some(keybound_store::ExchangePolicy {
            audiences,
            scopes: self.scopes,
            resources: self.resources,
            allow_unbound: self.exchange_unbound,
            allow_public: self.exchange_public,
            acr_values: self.exchange_acr,
            max_auth_age: self.exchange_max_auth_age,
        }))
    }
}

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create or replace a user.
    Add {
        /// login name
        #[arg(long)]
        username: String,
        /// password (generated and printed when not given)
        #[arg(long)]
        password: Option<Secret>,
        /// display name
        #[arg(long)]
        name: Option<String>,
        /// email address (taken as verified)
        #[arg(long)]
        email: Option<String>,
        /// a password alone does not sign this user in: a passkey must follow it (a password
        /// session may add the first passkey on the account page)
        #[arg(long)]
        require_passkey: bool,
    },
    /// List users.
    List,
    /// A user's passkeys.
    Passkey {
        #[command(subcommand)]
        cmd: PasskeyCmd,
    },
    /// Remove a user.
    Remove {
        /// login name
        #[arg(long)]
        username: String,
    },
    /// Link a subject at a trusted issuer to a local user (for ID-JAGs).
    Link {
        /// the local login name
        #[arg(long)]
        username: String,
        /// the trusted issuer
        #[arg(long)]
        issuer: String,
        /// the user's `sub` at that issuer
        #[arg(long)]
        subject: String,
    },
}

/// Passkey commands (a lost passkey: remove it; the user signs in with their password and
/// adds a new one, or with another of their passkeys).
#[derive(Debug, Subcommand)]
pub enum PasskeyCmd {
    /// List a user's passkeys: credential id, name, added, last used.
    List {
        /// login name
        #[arg(long)]
        username: String,
    },
    /// Remove one of a user's passkeys.
    Remove {
        /// login name
        #[arg(long)]
        username: String,
        /// the credential id (from `list`)
        #[arg(long)]
        credential_id: String,
    },
}

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// List signing keys.
    List,
    /// Rotate: current → retired, next → current, new next.
    Rotate,
}

/// Run an admin command.
pub async fn run(o: &Overrides, cmd: Admin) -> anyhow::Result<()> {
    let settings = Settings::for_admin(o)?;
    let store = open_store(&settings).await?;
    match cmd {
        Admin::Migrate => {
            println!("migrations applied");
        }
        Admin::Client {
            cmd:
                ClientCmd::Add {
                    client_id,
                    redirect_uris,
                    auth_method,
                    secret,
                    profiles,
                    require_nonce,
                    dpop_bound_access_tokens,
                    name,
                    jwks,
                    exchange,
                    grant_types,
                    response_types,
                    token_bound_id_tokens,
                    resources,
                    scopes,
                    require_par,
                    post_logout_redirect_uris,
                    backchannel_logout_uri,
                    backchannel_logout_session_required,
                    web_origins,
                    default_acr_values,
                    require_dbsc,
                },
        } => {
            let response_types = if response_types.is_empty() {
                vec!["code".to_owned()]
            } else {
                response_types
                    .iter()
                    .map(|r| {
                        keybound_proto::wire::ResponseType::parse(r)
                            .map(|t| t.as_str().to_owned())
                            .with_context(|| format!("--response-type '{r}': expected code, id_token, \"id_token token\", \"code id_token\", \"code token\" or \"code id_token token\""))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let exchange = exchange.policy(&client_id)?;
            let mut jwt_bearer = false;
            // without --grant-type: the code flow with refresh tokens and the device flow; with
            // it, exactly the grants named
            let mut grants = if grant_types.is_empty() {
                keybound_store::classic_grants()
            } else {
                Vec::new()
            };
            for g in &grant_types {
                match g.as_str() {
                    "jwt-bearer" | "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                        jwt_bearer = true;
                    }
                    "token-exchange" | "urn:ietf:params:oauth:grant-type:token-exchange" => {
                        if exchange.is_none() {
                            bail!("--grant-type token-exchange needs --exchange-audience (what the client may obtain)");
                        }
                    }
                    "authorization_code" | "refresh_token" | "client_credentials" => {
                        grants.push(g.clone());
                    }
                    "device_code" | "urn:ietf:params:oauth:grant-type:device_code" => grants
                        .push(keybound_proto::wire::grant_type::DEVICE_CODE.to_owned()),
                    other => bail!("--grant-type '{other}': expected authorization_code, refresh_token, device_code, client_credentials, jwt-bearer or token-exchange"),
                }
            }
            let method = ClientAuthMethod::parse(&auth_method).with_context(|| {
                format!("auth-method '{auth_method}': expected none, client_secret_basic, client_secret_post or private_key_jwt")
            })?;
            let fapi2 = profiles.iter().any(|p| p == "fapi2");
            let mut binding = profiles.iter().filter(|p| p.as_str() != "fapi2");
            let profile = Profile::parse(binding.next().map_or("key-binding-1.0", String::as_str))?;
            if let Some(more) = binding.next() {
                bail!("--profile '{more}': one Key Binding profile (key-binding-1.0 or draft-00), and fapi2");
            }
            let mut printed = None;
            let secret_hash = match method {
                ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
                    let s = secret.unwrap_or_else(|| {
                        let s = keybound_jose::random_b64(24);
                        printed = Some(s.clone());
                        Secret::new(s)
                    });
                    Some(password::hash(s.expose()))
                }
                _ => {
                    if secret.is_some() {
                        bail!(
                            "--secret only applies to client_secret_basic and client_secret_post"
                        );
                    }
                    None
                }
            };
            let jwks = match jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Some(keybound_jose::JwkSet::from_json(&text).context("--jwks")?)
                }
                None => None,
            };
            let client = Client {
                name: name.unwrap_or_else(|| client_id.clone()),
                client_id: client_id.clone(),
                auth_method: method,
                secret_hash,
                redirect_uris,
                key_binding_profile: profile,
                require_dpop_nonce: require_nonce,
                dpop_bound_access_tokens,
                jwks,
                exchange,
                jwt_bearer,
                grant_types: grants,
                response_types,
                token_bound_id_tokens,
                resources,
                scopes,
                require_par,
                fapi2,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                backchannel_logout_session_required,
                web_origins,
                default_acr_values,
                require_dbsc,
                ..Client::new(&client_id, method, crate::now())
            };
            // the rules dynamic registration applies too (one function for both)
            keybound_op::check_client(&client).map_err(|e| anyhow::anyhow!("{e}"))?;
            store.put_client(&client).await?;
            println!(
                "client '{client_id}' saved ({}, profile {})",
                method.as_str(),
                profile.name()
            );
            if let Some(s) = printed {
                println!("client secret (shown once): {s}");
            }
        }
        Admin::Client {
            cmd: ClientCmd::List,
        } => {
            for c in store.clients().await? {
                let exchange = c.exchange.as_ref().map_or(String::new(), |p| {
                    let to: Vec<String> = p
                        .audiences
                        .iter()
                        .map(|(iss, id)| format!("{iss}={id}"))
                        .collect();
                    format!("\texchange: {}", to.join(" "))
                });
                let exchange = if c.jwt_bearer {
                    format!("{exchange}\tjwt-bearer")
                } else {
                    exchange
                };
                let exchange = if c.resources.is_empty() {
                    exchange
                } else {
                    format!("{exchange}\tresources: {}", c.resources.join(" "))
                };
                let exchange = if c.scopes.is_empty() {
                    exchange
                } else {
                    format!("{exchange}\tscopes: {}", c.scopes.join(" "))
                };
                let exchange = match &c.backchannel_logout_uri {
                    None => exchange,
                    Some(u) => format!("{exchange}\tbackchannel-logout: {u}"),
                };
                println!(
                    "{}\t{}\t{}\t{}{exchange}",
                    c.client_id,
                    c.auth_method.as_str(),
                    c.key_binding_profile.name(),
                    c.redirect_uris.join(" ")
                );
            }
        }
        Admin::Client {
            cmd: ClientCmd::Remove { client_id },
        } => {
            if !store.delete_client(&client_id).await? {
                bail!("no client '{client_id}'");
            }
            println!("client '{client_id}' removed");
        }
        Admin::User {
            cmd:
                UserCmd::Add {
                    username,
                    password: pw,
                    name,
                    email,
                    require_passkey,
                },
        } => {
            let existing = store.user_by_username(&username).await?;
            let mut printed = None;
            let pw = pw.unwrap_or_else(|| {
                let p = keybound_jose::random_b64(12);
                printed = Some(p.clone());
                Secret::new(p)
            });
            store
                .put_user(&User {
                    sub: existing.map_or_else(|| keybound_jose::random_b64(12), |u| u.sub),
                    username: username.clone(),
                    password_hash: password::hash(pw.expose()),
                    name,
                    email_verified: email.is_some(),
                    email,
                    provisioned_by: None,
                    require_passkey,
                    created_at: crate::now(),
                })
                .await?;
            println!("user '{username}' saved");
            if let Some(p) = printed {
                println!("password (shown once): {p}");
            }
        }
        Admin::User { cmd: UserCmd::List } => {
            for u in store.users().await? {
                println!("{}\t{}\t{}", u.username, u.sub, u.email.unwrap_or_default());
            }
        }
        Admin::User {
            cmd: UserCmd::Passkey { cmd },
        } => passkey(store.as_ref(), cmd).await?,
        Admin::User {
            cmd: UserCmd::Remove { username },
        } => {
            let u = store
                .user_by_username(&username)
                .await?
                .with_context(|| format!("no user '{username}'"))?;
            store.delete_user(&u.sub).await?;
            println!("user '{username}' removed");
        }
        Admin::User {
            cmd:
                UserCmd::Link {
                    username,
                    issuer,
                    subject,
                },
        } => {
            let u = store
                .user_by_username(&username)
                .await?
                .with_context(|| format!("no user '{username}'"))?;
            if store.issuer(&issuer).await?.is_none() {
                bail!("'{issuer}' is not a trusted issuer (keybound admin issuer add)");
            }
            store.link_user(&issuer, &subject, &u.sub).await?;
            println!("'{subject}' at {issuer} is now '{username}' here");
        }
        Admin::Issuer { cmd } => issuer(store.as_ref(), cmd).await?,
        Admin::RegistrationToken {
            cmd: RegistrationTokenCmd::Create { ttl, uses },
        } => {
            let p = provider(&settings, store.clone())?;
            let token = p
                .create_registration_token(ttl, uses)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{token}");
            eprintln!(
                "initial access token for POST /register (Authorization: Bearer …), valid {ttl} s{}; shown once",
                uses.map_or(String::new(), |n| format!(", for {n} registration(s)"))
            );
        }
        Admin::Keys { cmd: KeysCmd::List } => {
            let p = provider(&settings, store.clone())?;
            p.ensure_signing_keys()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for k in store.signing_keys().await? {
                println!("{}\t{}\t{}", k.kid, k.alg, k.state.as_str());
            }
        }
        Admin::Keys {
            cmd: KeysCmd::Rotate,
        } => {
            let p = provider(&settings, store.clone())?;
            p.ensure_signing_keys()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let kid = p
                .rotate_signing_keys()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "rotated; now signing with '{kid}' (running servers pick it up within a minute)"
            );
        }
    }
    Ok(())
}

fn url_ok(u: &str) -> bool {
    u.contains("://") && !u.contains('#')
}

async fn issuer(store: &dyn keybound_store::Store, cmd: IssuerCmd) -> anyhow::Result<()> {
    let known = |issuer: String| async move {
        store
            .issuer(&issuer)
            .await?
            .with_context(|| format!("no trusted issuer '{issuer}'"))
    };
    match cmd {
        IssuerCmd::Add {
            issuer,
            jwks_uri,
            subject,
            single_use,
            allow_unbound,
        } => {
            if !url_ok(&issuer) {
                bail!("--issuer '{issuer}' must be an absolute URL");
            }
            let subject = keybound_store::SubjectMode::parse(&subject).with_context(|| {
                format!("--subject '{subject}': expected link, email or provision")
            })?;
            let jwks_uri = match jwks_uri {
                Some(u) => u,
                None => discover_jwks_uri(&issuer).await?,
            };
            if !url_ok(&jwks_uri) {
                bail!("--jwks-uri '{jwks_uri}' must be an absolute URL");
            }
            store
                .put_issuer(&keybound_store::TrustedIssuer {
                    issuer: issuer.clone(),
                    jwks_uri: jwks_uri.clone(),
                    subject,
                    single_use,
                    allow_unbound,
                    enabled: true,
                    created_at: crate::now(),
                })
                .await?;
            println!(
                "trusting {issuer} (keys at {jwks_uri}, subjects by {})",
                subject.as_str()
            );
        }
        IssuerCmd::List => {
            for i in store.issuers().await? {
                println!(
                    "{}\t{}\t{}\tsubject={}{}{}",
                    i.issuer,
                    if i.enabled { "enabled" } else { "disabled" },
                    i.jwks_uri,
                    i.subject.as_str(),
                    if i.single_use { "\tsingle-use" } else { "" },
                    if i.allow_unbound {
                        "\tallow-unbound"
                    } else {
                        ""
                    },
                );
            }
        }
        IssuerCmd::Disable { issuer } => {
            let mut i = known(issuer).await?;
            i.enabled = false;
            store.put_issuer(&i).await?;
            println!("{} disabled: its ID-JAGs are refused", i.issuer);
        }
        IssuerCmd::Enable { issuer } => {
            let mut i = known(issuer).await?;
            i.enabled = true;
            store.put_issuer(&i).await?;
            println!("{} enabled", i.issuer);
        }
        IssuerCmd::Remove { issuer } => {
            if !store.delete_issuer(&issuer).await? {
                bail!("no trusted issuer '{issuer}'");
            }
            println!("{issuer} removed, with its links");
        }
    }
    Ok(())
}

/// `jwks_uri` from `issuer`'s discovery document (OpenID Connect Discovery, then RFC 8414).
async fn discover_jwks_uri(issuer: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let base = issuer.trim_end_matches('/');
    let mut last = None;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let url = format!("{base}{path}");
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                let m: serde_json::Value = r.json().await.with_context(|| url.clone())?;
                if m["issuer"] != issuer {
                    bail!("{url} names issuer {}, not {issuer}", m["issuer"]);
                }
                return m["jwks_uri"]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("{url} has no jwks_uri"));
            }
            Ok(r) => last = Some(format!("{url}: HTTP {}", r.status())),
            Err(e) => last = Some(format!("{url}: {e}")),
        }
    }
    bail!(
        "could not discover the keys of {issuer} ({}); give --jwks-uri",
        last.unwrap_or_default()
    )
}

async fn passkey(store: &dyn keybound_store::Store, cmd: PasskeyCmd) -> anyhow::Result<()> {
    let username = match &cmd {
        PasskeyCmd::List { username } | PasskeyCmd::Remove { username, .. } => username,
    };
    let u = store
        .user_by_username(username)
        .await?
        .with_context(|| format!("no user '{username}'"))?;
    match cmd {
        PasskeyCmd::List { .. } => {
            for p in store.passkeys_of(&u.sub).await? {
                let used = p.last_used_at.map_or("never".to_owned(), |t| t.to_string());
                println!("{}\t{}\t{}\t{used}", p.credential_id, p.name, p.created_at);
            }
        }
        PasskeyCmd::Remove {
            ref credential_id, ..
        } => {
            if !store.delete_passkey(&u.sub, credential_id).await? {
                bail!("user '{username}' has no passkey '{credential_id}'");
            }
            println!("passkey '{credential_id}' of '{username}' removed");
        }
    }
    Ok(())
}
