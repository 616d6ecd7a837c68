//! `keybound admin`: provision clients, users and signing keys in the server's store, entirely
//! from flags so scripts never meet a prompt.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use keybound_jose::Secret;
use keybound_op::admin::{
    ClientDoc, ExchangeDoc, IssuerDoc, LinkDoc, Precondition, RegistrationTokenRequest, Shown,
    UserDoc, ADMIN_SCOPE,
};
use keybound_proto::wire::grant_type;

use crate::admin_api::{Backend, Remote};
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
    Add(Box<ClientAdd>),
    /// List clients.
    List,
    /// Remove a client.
    Remove {
        /// client id
        #[arg(long)]
        client_id: String,
    },
}

/// `client add`'s flags.
#[derive(Debug, clap::Args)]
pub struct ClientAdd {
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
    /// an operator's client for the admin API: private_key_jwt by --key, client credentials
    /// with the scope keybound:admin, DPoP-bound tokens only
    #[arg(long, requires = "key")]
    admin: bool,
    /// with --admin: the client's private key, PEM (made, mode 0600, when it does not exist)
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
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

/// Where the commands act: the store (the default), or a running server's admin API.
#[derive(Debug, Default, clap::Args)]
pub struct Via {
    /// run through this server's admin API (its management listener, e.g.
    /// http://127.0.0.1:9090) instead of on the database
    #[arg(long, value_name = "URL", requires_all = ["key", "admin_client_id"])]
    server: Option<String>,
    /// the admin client's private key, PEM (made by `admin client add --admin --key FILE`)
    #[arg(long, value_name = "FILE", requires = "server")]
    key: Option<std::path::PathBuf>,
    /// the admin client's id
    #[arg(
        long = "client-id",
        id = "admin_client_id",
        value_name = "ID",
        requires = "server"
    )]
    client_id: Option<String>,
}

/// Run an admin command, on the store or through `via`'s server.
pub async fn run(o: &Overrides, via: Via, cmd: Admin) -> anyhow::Result<()> {
    let backend =
        if let (Some(server), Some(key), Some(id)) = (&via.server, &via.key, &via.client_id) {
            if matches!(cmd, Admin::Migrate) {
                // a running server applied its migrations when it started
                Remote::connect(server, key, id).await?;
                println!("migrations applied (by the server, when it started)");
                return Ok(());
            }
            Backend::Remote(Box::new(Remote::connect(server, key, id).await?))
        } else {
            let settings = Settings::for_admin(o)?;
            let store = open_store(&settings).await?;
            if matches!(cmd, Admin::Migrate) {
                println!("migrations applied");
                return Ok(());
            }
            let op = provider(&settings, store)?;
            // changes made on the database are recorded when events go to a file (standard
            // output is this command's own)
            let op = match &settings.events {
                keybound_server::EventOutput::File { .. } => {
                    op.with_events(std::sync::Arc::new(keybound_server::EventLog::new(
                        settings.events.clone(),
                        std::sync::Arc::new(keybound_verify::SystemClock),
                    )))
                }
                _ => op,
            };
            Backend::Local(Box::new(op))
        };
    let b = &backend;
    match cmd {
        Admin::Migrate => {}
        Admin::Client {
            cmd: ClientCmd::Add(add),
        } => client_add(b, *add).await?,
        Admin::Client {
            cmd: ClientCmd::List,
        } => {
            for c in b.clients().await? {
                println!("{}", client_line(&c));
            }
        }
        Admin::Client {
            cmd: ClientCmd::Remove { client_id },
        } => {
            b.delete_client(&client_id).await?;
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
            let put = b
                .put_user(
                    &username,
                    UserDoc {
                        password: pw.map(|p| Shown(p.expose().to_owned())),
                        name,
                        email,
                        require_passkey,
                        ..UserDoc::default()
                    },
                )
                .await?;
            println!("user '{username}' saved");
            if let Some(p) = put.doc.password {
                println!("password (shown once): {}", p.0);
            }
        }
        Admin::User { cmd: UserCmd::List } => {
            for u in b.users().await? {
                println!(
                    "{}\t{}\t{}",
                    u.username.unwrap_or_default(),
                    u.sub.unwrap_or_default(),
                    u.email.unwrap_or_default()
                );
            }
        }
        Admin::User {
            cmd: UserCmd::Passkey { cmd },
        } => passkey(b, cmd).await?,
        Admin::User {
            cmd: UserCmd::Remove { username },
        } => {
            b.delete_user(&username).await?;
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
            b.link_user(
                &username,
                &LinkDoc {
                    issuer: issuer.clone(),
                    subject: subject.clone(),
                },
            )
            .await?;
            println!("'{subject}' at {issuer} is now '{username}' here");
        }
        Admin::Issuer { cmd } => issuer(b, cmd).await?,
        Admin::RegistrationToken {
            cmd: RegistrationTokenCmd::Create { ttl, uses },
        } => {
            let t = b
                .registration_token(&RegistrationTokenRequest { ttl, uses })
                .await?;
            println!("{}", t.token.0);
            eprintln!(
                "initial access token for POST /register (Authorization: Bearer …), valid {ttl} s{}; shown once",
                uses.map_or(String::new(), |n| format!(", for {n} registration(s)"))
            );
        }
        Admin::Keys { cmd: KeysCmd::List } => {
            for k in b.keys().await? {
                println!("{}\t{}\t{}", k.kid, k.alg, k.state);
            }
        }
        Admin::Keys {
            cmd: KeysCmd::Rotate,
        } => {
            let keys = b.rotate_keys().await?;
            let kid = keys
                .iter()
                .find(|k| k.state == "current")
                .map_or("?", |k| k.kid.as_str());
            println!(
                "rotated; now signing with '{kid}' (running servers pick it up within a minute)"
            );
        }
    }
    Ok(())
}

/// One line of `client list`.
fn client_line(c: &ClientDoc) -> String {
    let mut line = format!(
        "{}\t{}\t{}\t{}",
        c.client_id.as_deref().unwrap_or(""),
        c.token_endpoint_auth_method.as_deref().unwrap_or("none"),
        c.key_binding_profile.as_deref().unwrap_or(""),
        c.redirect_uris.join(" ")
    );
    if let Some(x) = &c.token_exchange {
        let to: Vec<String> = x
            .audiences
            .iter()
            .map(|(iss, id)| format!("{iss}={id}"))
            .collect();
        line.push_str(&format!("\texchange: {}", to.join(" ")));
    }
    let grants = c.grant_types.as_deref().unwrap_or(&[]);
    if grants.iter().any(|g| g == grant_type::JWT_BEARER) {
        line.push_str("\tjwt-bearer");
    }
    if !c.resources.is_empty() {
        line.push_str(&format!("\tresources: {}", c.resources.join(" ")));
    }
    if let Some(s) = &c.scope {
        line.push_str(&format!("\tscopes: {s}"));
    }
    if let Some(u) = &c.backchannel_logout_uri {
        line.push_str(&format!("\tbackchannel-logout: {u}"));
    }
    line
}

/// `client add`: the flags as a client document, saved by the backend (which applies the
/// rules of registration).
#[allow(clippy::too_many_lines)] // one flag after another
async fn client_add(b: &Backend, a: ClientAdd) -> anyhow::Result<()> {
    let ClientAdd {
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
        mut scopes,
        require_par,
        post_logout_redirect_uris,
        backchannel_logout_uri,
        backchannel_logout_session_required,
        web_origins,
        default_acr_values,
        require_dbsc,
        admin,
        key,
    } = a;
    let response_types = response_types
        .iter()
        .map(|r| {
            keybound_proto::wire::ResponseType::parse(r)
                .map(|t| t.as_str().to_owned())
                .with_context(|| format!("--response-type '{r}': expected code, id_token, \"id_token token\", \"code id_token\", \"code token\" or \"code id_token token\""))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let exchange = exchange.policy(&client_id)?;
    let mut grants = Vec::new();
    for g in &grant_types {
        let full = match g.as_str() {
            "jwt-bearer" | grant_type::JWT_BEARER => grant_type::JWT_BEARER,
            "token-exchange" | grant_type::TOKEN_EXCHANGE => {
                if exchange.is_none() {
                    bail!("--grant-type token-exchange needs --exchange-audience (what the client may obtain)");
                }
                grant_type::TOKEN_EXCHANGE
            }
            "authorization_code" => grant_type::AUTHORIZATION_CODE,
            "refresh_token" => grant_type::REFRESH_TOKEN,
            "client_credentials" => grant_type::CLIENT_CREDENTIALS,
            "device_code" | grant_type::DEVICE_CODE => grant_type::DEVICE_CODE,
            other => bail!("--grant-type '{other}': expected authorization_code, refresh_token, device_code, client_credentials, jwt-bearer or token-exchange"),
        };
        if !grants.iter().any(|x: &String| x == full) {
            grants.push(full.to_owned());
        }
    }
    let mut auth_method = auth_method;
    let mut dpop_bound = dpop_bound_access_tokens;
    let mut jwks = match jwks {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(serde_json::from_str::<serde_json::Value>(&text).context("--jwks")?)
        }
        None => None,
    };
    if admin {
        // an operator's client: its own tokens only, DPoP-bound, authenticated by a key
        let path = key.context("--admin needs --key FILE (made when it does not exist)")?;
        let k = admin_key(&path)?;
        jwks = Some(
            keybound_jose::JwkSet::signing_key(&k, k.public_jwk().thumbprint().as_str()).to_value(),
        );
        "private_key_jwt".clone_into(&mut auth_method);
        dpop_bound = true;
        if !grants.iter().any(|g| g == grant_type::CLIENT_CREDENTIALS) {
            grants.push(grant_type::CLIENT_CREDENTIALS.to_owned());
        }
        if !scopes.iter().any(|s| s == ADMIN_SCOPE) {
            scopes.push(ADMIN_SCOPE.to_owned());
        }
    } else if key.is_some() {
        bail!("--key is for --admin clients (use --jwks for a private_key_jwt client's keys)");
    }
    // an exchange policy grants token exchange (the grant named or not)
    if exchange.is_some()
        && !grants.is_empty()
        && !grants.iter().any(|g| g == grant_type::TOKEN_EXCHANGE)
    {
        grants.push(grant_type::TOKEN_EXCHANGE.to_owned());
    }
    let grants = if grants.is_empty() {
        // without --grant-type: the code flow with refresh tokens and the device flow
        let mut g = keybound_store::classic_grants();
        if exchange.is_some() {
            g.push(grant_type::TOKEN_EXCHANGE.to_owned());
        }
        g
    } else {
        grants
    };
    let fapi2 = profiles.iter().any(|p| p == "fapi2");
    let mut binding = profiles.iter().filter(|p| p.as_str() != "fapi2");
    let profile = binding.next().cloned();
    if let Some(more) = binding.next() {
        bail!(
            "--profile '{more}': one Key Binding profile (key-binding-1.0 or draft-00), and fapi2"
        );
    }
    if secret.is_some() && !auth_method.starts_with("client_secret_") {
        bail!("--secret only applies to client_secret_basic and client_secret_post");
    }
    let doc = ClientDoc {
        client_id: Some(client_id.clone()),
        client_name: name,
        token_endpoint_auth_method: Some(auth_method),
        client_secret: secret.map(|s| Shown(s.expose().to_owned())),
        redirect_uris,
        grant_types: Some(grants),
        response_types: (!response_types.is_empty()).then_some(response_types),
        scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
        resources,
        jwks,
        dpop_bound_access_tokens: dpop_bound,
        require_pushed_authorization_requests: require_par,
        post_logout_redirect_uris,
        backchannel_logout_uri,
        backchannel_logout_session_required,
        default_acr_values,
        key_binding_profile: profile,
        id_token_token_binding_cnf: token_bound_id_tokens.then(|| "tbh".to_owned()),
        require_dpop_nonce: require_nonce,
        fapi2,
        web_origins,
        require_dbsc,
        token_exchange: exchange.map(ExchangeDoc::from),
        client_id_issued_at: None,
    };
    let put = b.put_client(&client_id, doc).await?;
    println!(
        "client '{client_id}' saved ({}, profile {})",
        put.doc.token_endpoint_auth_method.as_deref().unwrap_or(""),
        put.doc.key_binding_profile.as_deref().unwrap_or("")
    );
    if let Some(s) = put.doc.client_secret {
        println!("client secret (shown once): {}", s.0);
    }
    Ok(())
}

/// The admin client's key at `path`: read, or made (ES256, mode 0600) when absent.
fn admin_key(path: &std::path::Path) -> anyhow::Result<keybound_jose::PrivateKey> {
    if path.exists() {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return keybound_jose::PrivateKey::from_pem(&pem)
            .with_context(|| format!("{}: a PEM private key", path.display()));
    }
    let k = keybound_jose::PrivateKey::generate(keybound_jose::key::KeyKind::Es256)?;
    keybound_rp::save_private(path, k.to_pem()?.as_bytes())?;
    eprintln!("made the admin client's key {} (mode 0600)", path.display());
    Ok(k)
}

fn url_ok(u: &str) -> bool {
    u.contains("://") && !u.contains('#')
}

async fn issuer(b: &Backend, cmd: IssuerCmd) -> anyhow::Result<()> {
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
            if keybound_store::SubjectMode::parse(&subject).is_none() {
                bail!("--subject '{subject}': expected link, email or provision");
            }
            let jwks_uri = match jwks_uri {
                Some(u) => u,
                None => discover_jwks_uri(&issuer).await?,
            };
            if !url_ok(&jwks_uri) {
                bail!("--jwks-uri '{jwks_uri}' must be an absolute URL");
            }
            b.put_issuer(
                &issuer,
                IssuerDoc {
                    jwks_uri: jwks_uri.clone(),
                    subject: Some(subject.clone()),
                    single_use,
                    allow_unbound,
                    ..IssuerDoc::default()
                },
                &Precondition::default(),
            )
            .await?;
            println!("trusting {issuer} (keys at {jwks_uri}, subjects by {subject})");
        }
        IssuerCmd::List => {
            for i in b.issuers().await? {
                println!(
                    "{}\t{}\t{}\tsubject={}{}{}",
                    i.issuer.as_deref().unwrap_or(""),
                    if i.enabled == Some(false) {
                        "disabled"
                    } else {
                        "enabled"
                    },
                    i.jwks_uri,
                    i.subject.as_deref().unwrap_or("link"),
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
            set_enabled(b, &issuer, false).await?;
            println!("{issuer} disabled: its ID-JAGs are refused");
        }
        IssuerCmd::Enable { issuer } => {
            set_enabled(b, &issuer, true).await?;
            println!("{issuer} enabled");
        }
        IssuerCmd::Remove { issuer } => {
            b.delete_issuer(&issuer).await?;
            println!("{issuer} removed, with its links");
        }
    }
    Ok(())
}

/// Enable or disable an issuer: read it, and write it back only if nobody changed it since
/// (If-Match).
async fn set_enabled(b: &Backend, issuer: &str, enabled: bool) -> anyhow::Result<()> {
    let (mut doc, tag) = b.issuer(issuer).await?;
    doc.enabled = Some(enabled);
    b.put_issuer(
        issuer,
        doc,
        &Precondition {
            if_match: Some(tag),
            if_none_match_any: false,
        },
    )
    .await?;
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

async fn passkey(b: &Backend, cmd: PasskeyCmd) -> anyhow::Result<()> {
    match cmd {
        PasskeyCmd::List { username } => {
            for p in b.passkeys(&username).await? {
                let used = p.last_used_at.map_or("never".to_owned(), |t| t.to_string());
                println!("{}\t{}\t{}\t{used}", p.credential_id, p.name, p.created_at);
            }
        }
        PasskeyCmd::Remove {
            username,
            credential_id,
        } => {
            b.delete_passkey(&username, &credential_id).await?;
            println!("passkey '{credential_id}' of '{username}' removed");
        }
    }
    Ok(())
}
