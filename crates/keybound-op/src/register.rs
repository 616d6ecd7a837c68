//! Dynamic client registration (RFC 7591, OpenID Connect Registration 1.0): `POST /register`
//! with a JSON metadata document, authorised by an initial access token an operator made
//! (`keybound admin registration-token create`); open registration only when configured.
//!
//! Members keybound understands are checked and either registered or refused with
//! `invalid_client_metadata` (`invalid_redirect_uri` for redirect URIs): a value keybound cannot
//! honour is never silently weakened. Members it does not understand are ignored, as RFC 7591
//! §2 requires, and the response lists exactly what was registered, so the client sees what
//! was dropped. The secret of a confidential client is returned once and stored hashed.

use keybound_jose::JwkSet;
use keybound_proto::keybinding::Profile;
use keybound_proto::wire::{grant_type, ResponseType};
use keybound_store::{Client, ClientAuthMethod, RegistrationToken, TokenHash};
use serde_json::{json, Map, Value};

use crate::refusal::RegistrationRefusal as Why;
use crate::{OpError, Provider};

/// Grant types a client may register, by the name it registers them with.
const GRANTS: [&str; 6] = [
    grant_type::AUTHORIZATION_CODE,
    "implicit",
    grant_type::REFRESH_TOKEN,
    grant_type::CLIENT_CREDENTIALS,
    grant_type::DEVICE_CODE,
    grant_type::JWT_BEARER,
];

impl Provider {
    /// Make an initial access token for `uses` registrations (any number with `None`) valid for
    /// `ttl` seconds; the token, shown once (the store keeps its hash).
    pub async fn create_registration_token(
        &self,
        ttl: u64,
        uses: Option<u32>,
    ) -> Result<String, OpError> {
        let token = self.random_token();
        let now = self.now();
        self.store
            .put_registration_token(
                &TokenHash::of(&token),
                &RegistrationToken {
                    uses_left: uses,
                    expires_at: now.saturating_add(ttl),
                    created_at: now,
                },
            )
            .await?;
        Ok(token)
    }

    /// Register a client from `metadata` (the request body), authorised by `authorization`
    /// (`Bearer <initial access token>`); the registration response (RFC 7591 §3.2.1).
    pub async fn register(
        &self,
        authorization: Option<&str>,
        metadata: &[u8],
    ) -> Result<Value, OpError> {
        let token = if self.config.open_registration {
            None
        } else {
            let token = authorization
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(Why::TokenRequired)?;
            Some(token)
        };
        let (mut client, out) = self.registration(metadata)?;
        // argon2 on a hashing thread, like every verification (19 MiB and tens of ms of CPU:
        // inline, each confidential registration held an async thread and grew the heap), and
        // before the initial access token is spent: a busy refusal costs the client no use
        if let Some(secret) = out.get("client_secret").and_then(Value::as_str) {
            client.secret_hash = Some(self.hashes.hash(secret).await?);
        }
        // RFC 7591 §3: a single-use initial access token is spent only on a registration that
        // will be made, never on metadata refused above
        if let Some(token) = token {
            if !self
                .store
                .use_registration_token(&TokenHash::of(token), self.now())
                .await?
            {
                return Err(Why::TokenUnusable.into());
            }
        }
        self.store.put_client(&client).await?;
        Ok(out)
    }

    /// The client a registration request describes, checked, and the registration response
    /// (with the secret, shown once); nothing stored yet.
    fn registration(&self, metadata: &[u8]) -> Result<(Client, Value), OpError> {
        let m: Map<String, Value> =
            serde_json::from_slice(metadata).map_err(|e| Why::NotAnObject(e.to_string()))?;
        let typed = |member: &str, expected: &'static str| Why::MemberType {
            member: member.to_owned(),
            expected,
        };
        let strings = |name: &str| -> Result<Option<Vec<String>>, OpError> {
            match m.get(name) {
                None => Ok(None),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| typed(name, "an array of strings").into())
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(typed(name, "an array of strings").into()),
            }
        };
        let text = |name: &str| -> Result<Option<&str>, OpError> {
            match m.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(typed(name, "a string").into()),
            }
        };
        let method =
            auth_method(text("token_endpoint_auth_method")?.unwrap_or("client_secret_basic"))?;
        let grants = strings("grant_types")?
            .unwrap_or_else(|| vec![grant_type::AUTHORIZATION_CODE.to_owned()]);
        if let Some(g) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
            return Err(if g == grant_type::TOKEN_EXCHANGE {
                Why::TokenExchangeByPolicy
            } else {
                Why::GrantType(g.clone())
            }
            .into());
        }
        let code_grant = grants.iter().any(|g| g == grant_type::AUTHORIZATION_CODE);
        let implicit_grant = grants.iter().any(|g| g == "implicit");
        // RFC 7591 §2: response_types defaults to code (for a client of the code grant)
        let responses = match strings("response_types")? {
            Some(r) => r,
            None if code_grant => vec!["code".to_owned()],
            None => Vec::new(),
        };
        let parsed = response_types(&responses)?;
        // RFC 7591 §2.1: a response type containing code goes with the authorization_code
        // grant, one returning tokens from the authorization endpoint with implicit
        let wants_code = parsed.iter().any(|t| t.code);
        let wants_implicit = parsed.iter().any(|t| t.front_channel_tokens());
        if wants_code != code_grant || wants_implicit != implicit_grant {
            return Err(Why::GrantsAndResponsesDisagree.into());
        }
        let responses: Vec<String> = parsed.iter().map(|t| t.as_str().to_owned()).collect();
        let redirects = code_grant || implicit_grant;
        let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
        if redirects && redirect_uris.is_empty() {
            return Err(Why::RedirectUrisRequired.into());
        }
        if m.contains_key("jwks_uri") {
            return Err(Why::JwksUri.into());
        }
        let jwks = m.get("jwks").map(jwks).transpose()?;
        let dpop_bound = match m.get("dpop_bound_access_tokens") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(typed("dpop_bound_access_tokens", "true or false").into()),
        };
        // Token Bound Authentication, both generations (seed §5.1 and draft 04)
        let tb_old = match m.get("rp_id_token_token_binding_supported") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(typed("rp_id_token_token_binding_supported", "true or false").into())
            }
        };
        let tb_new = tbh_cnf(text("id_token_token_binding_cnf")?)?;
        let token_bound = tb_old || tb_new;
        let profile = profile(text("key_binding_profile")?)?;
        let now = self.now();
        let client_id = self.random_id();
        let secret = matches!(
            method,
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost
        )
        .then(|| self.random_token());
        let name = text("client_name")?.unwrap_or(&client_id).to_owned();
        let client = Client {
            name: name.clone(),
            // hashed by `register`, on a hashing thread
            secret_hash: None,
            redirect_uris: redirect_uris.clone(),
            key_binding_profile: profile,
            dpop_bound_access_tokens: dpop_bound,
            jwks: jwks.clone(),
            jwt_bearer: grants.iter().any(|g| g == grant_type::JWT_BEARER),
            grant_types: grants
                .iter()
                .filter(|g| g.as_str() != grant_type::JWT_BEARER && g.as_str() != "implicit")
                .cloned()
                .collect(),
            response_types: responses.clone(),
            token_bound_id_tokens: token_bound,
            // RFC 8707: the resources its access tokens may be for (keybound's member)
            resources: strings("resources")?.unwrap_or_default(),
            // RFC 9126 §6
            require_par: match m.get("require_pushed_authorization_requests") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(
                        typed("require_pushed_authorization_requests", "true or false").into(),
                    )
                }
            },
            // RP-Initiated Logout §3.1, Back-Channel Logout §2.2
            post_logout_redirect_uris: strings("post_logout_redirect_uris")?.unwrap_or_default(),
            backchannel_logout_uri: text("backchannel_logout_uri")?.map(str::to_owned),
            backchannel_logout_session_required: match m.get("backchannel_logout_session_required")
            {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(
                        typed("backchannel_logout_session_required", "true or false").into(),
                    )
                }
            },
            // OIDC Registration §2
            default_acr_values: strings("default_acr_values")?.unwrap_or_default(),
            // RFC 7591 §2 `scope`: what it may get for itself (client credentials)
            scopes: text("scope")?
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            ..Client::new(&client_id, method, now)
        };
        check_client(&client)?;
        let mut out = json!({
            "client_id": client_id,
            "client_id_issued_at": now,
            "client_name": name,
            "token_endpoint_auth_method": method.as_str(),
            "grant_types": grants,
            "response_types": responses,
            "redirect_uris": redirect_uris,
            "dpop_bound_access_tokens": dpop_bound,
            "key_binding_profile": profile.name(),
        });
        if token_bound {
            out["rp_id_token_token_binding_supported"] = true.into();
            out["id_token_token_binding_cnf"] = "tbh".into();
        }
        if !client.resources.is_empty() {
            out["resources"] = client.resources.clone().into();
        }
        if !client.scopes.is_empty() {
            out["scope"] = client.scopes.join(" ").into();
        }
        if client.require_par {
            out["require_pushed_authorization_requests"] = true.into();
        }
        if !client.post_logout_redirect_uris.is_empty() {
            out["post_logout_redirect_uris"] = client.post_logout_redirect_uris.clone().into();
        }
        if let Some(u) = &client.backchannel_logout_uri {
            out["backchannel_logout_uri"] = u.clone().into();
            out["backchannel_logout_session_required"] =
                client.backchannel_logout_session_required.into();
        }
        if !client.default_acr_values.is_empty() {
            out["default_acr_values"] = client.default_acr_values.clone().into();
        }
        if let Some(s) = secret {
            out["client_secret"] = s.into();
            out["client_secret_expires_at"] = 0.into();
        }
        if let Some(j) = jwks {
            out["jwks"] = serde_json::to_value(j).unwrap_or(Value::Null);
        }
        Ok((client, out))
    }
}

// The members' conversions, one each, for dynamic registration and the admin API's client
// documents alike (their defaults and the grants each may give differ; the values' meaning
// does not).

/// `token_endpoint_auth_method`.
pub(crate) fn auth_method(name: &str) -> Result<ClientAuthMethod, Why> {
    ClientAuthMethod::parse(name).ok_or_else(|| Why::AuthMethod(name.to_owned()))
}

/// `response_types`: each one offered here, repeats dropped, in order.
pub(crate) fn response_types(names: &[String]) -> Result<Vec<ResponseType>, Why> {
    let mut parsed = Vec::new();
    for r in names {
        let t = ResponseType::parse(r).ok_or_else(|| Why::ResponseType(r.clone()))?;
        if !parsed.contains(&t) {
            parsed.push(t);
        }
    }
    Ok(parsed)
}

/// `key_binding_profile` (the current draft when absent).
pub(crate) fn profile(name: Option<&str>) -> Result<Profile, Why> {
    name.map_or(Ok(Profile::default()), |p| {
        Profile::parse(p).map_err(Why::Profile)
    })
}

/// `id_token_token_binding_cnf`: `tbh` or absent.
pub(crate) fn tbh_cnf(value: Option<&str>) -> Result<bool, Why> {
    match value {
        None => Ok(false),
        Some("tbh") => Ok(true),
        Some(other) => Err(Why::TokenBindingCnf(other.to_owned())),
    }
}

/// `jwks`: a key set keybound can use.
pub(crate) fn jwks(value: &Value) -> Result<JwkSet, Why> {
    JwkSet::from_value(value).map_err(|e| Why::Jwks(e.to_string()))
}

/// The rules every client registration meets, wherever it is made — dynamic registration
/// and `keybound admin client add` — so the two cannot drift:
/// - redirect URIs are absolute `http(s)` URIs without a fragment (RFC 6749 §3.1.2);
/// - a client of the implicit or hybrid flows (a response type returning tokens from the
///   authorization endpoint) uses only `https` redirect URIs whose host is not `localhost` or a
///   loopback address (OIDC Registration §2, Core 3.2.2.1);
/// - `private_key_jwt` comes with the client's keys, and keys only with it (RFC 7523);
/// - jwt-bearer (redeeming ID-JAGs) and client credentials are for confidential clients
///   (ID-JAG §5, RFC 6749 §4.4), and a client of the code grant has a redirect URI;
/// - the scopes a client may get for itself are scope tokens (RFC 6749 §3.3), none of them
///   about an End-User's sign-in;
/// - RFC 8707 resources are absolute URIs without a fragment;
/// - post-logout redirect URIs and the back-channel logout URI follow the rules of redirect
///   URIs (RP-Initiated Logout §3.1, Back-Channel Logout §2.2);
/// - `default_acr_values` are values this OP issues (OIDC Registration §2).
pub fn check_client(c: &Client) -> Result<(), Why> {
    check_sizes(c)?;
    if let Some(r) = c.resources.iter().find(|r| absolute_uri(r).is_none()) {
        return Err(Why::Resource(r.clone()));
    }
    let implicit = c
        .response_types
        .iter()
        .filter_map(|r| ResponseType::parse(r))
        .any(ResponseType::front_channel_tokens);
    for u in &c.redirect_uris {
        let parsed = web_uri(u).map_err(|rule| match rule {
            UriRule::Shape => Why::RedirectUri(u.clone()),
            UriRule::NotNormal(normal) => Why::RedirectUriNotNormal {
                uri: u.clone(),
                normal,
            },
            UriRule::HttpNotLoopback => Why::HttpNotLoopback(u.clone()),
        })?;
        if implicit && !token_safe_redirect(&parsed) {
            return Err(Why::ImplicitRedirectUri(u.clone()));
        }
    }
    let logout_uris = c
        .post_logout_redirect_uris
        .iter()
        .map(|u| ("post_logout_redirect_uris", u))
        .chain(
            c.backchannel_logout_uri
                .iter()
                .map(|u| ("backchannel_logout_uri", u)),
        );
    // web origins are for pages, and pages hold no client secret
    if !c.web_origins.is_empty() && c.auth_method != ClientAuthMethod::None {
        return Err(Why::WebOriginConfidential);
    }
    // a web origin is exactly an origin's serialisation (RFC 6454 §6.2): scheme, host, port
    if let Some(o) = c.web_origins.iter().find(|o| {
        url::Url::parse(o).map_or(true, |u| {
            !matches!(u.scheme(), "https" | "http") || u.origin().ascii_serialization() != **o
        })
    }) {
        return Err(Why::WebOrigin(o.clone()));
    }
    for (member, u) in logout_uris {
        web_uri(u).map_err(|rule| Why::LogoutUri {
            member,
            uri: u.clone(),
            rule: rule.to_string(),
        })?;
    }
    if let Some(a) = c
        .default_acr_values
        .iter()
        .find(|a| crate::passkey::Strength::from_acr(a).is_none())
    {
        return Err(Why::DefaultAcr(a.clone()));
    }
    match (c.auth_method, &c.jwks) {
        (ClientAuthMethod::PrivateKeyJwt, None) => return Err(Why::PrivateKeyJwtNeedsJwks),
        (ClientAuthMethod::PrivateKeyJwt, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(Why::JwksWithoutPrivateKeyJwt),
    }
    if c.jwt_bearer && c.auth_method == ClientAuthMethod::None {
        return Err(Why::PublicJwtBearer);
    }
    // FAPI 2.0 Security Profile §5.3.2.1-2, §5.3.2.2-1
    if c.fapi2 && c.auth_method != ClientAuthMethod::PrivateKeyJwt {
        return Err(Why::Fapi2(
            crate::refusal::Fapi2Refusal::PrivateKeyJwtOnly {
                client: c.client_id.clone(),
                method: c.auth_method.as_str(),
            },
        ));
    }
    if c.fapi2 && c.response_types.iter().any(|r| r != "code") {
        return Err(Why::Fapi2(crate::refusal::Fapi2Refusal::CodeOnly));
    }
    if c.allows(grant_type::CLIENT_CREDENTIALS) && c.auth_method == ClientAuthMethod::None {
        return Err(Why::PublicClientCredentials);
    }
    if c.allows(grant_type::AUTHORIZATION_CODE) && c.redirect_uris.is_empty() {
        return Err(Why::RedirectUrisRequired);
    }
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    let scope_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
    };
    if let Some(s) = c.scopes.iter().find(|s| {
        !scope_token(s) || matches!(s.as_str(), "openid" | "offline_access" | "bound_key")
    }) {
        return Err(Why::Scope(s.clone()));
    }
    Ok(())
}

/// Bounds on what a registration may store (docs/operations.md): a registration is a few
/// hundred bytes, not a way to fill the store or the pages that show it.
pub const MAX_CLIENT_NAME: usize = 200;
/// At most this many redirect URIs (and as many resources), each at most [`MAX_URI`] long.
pub const MAX_URIS: usize = 20;
/// The longest redirect URI or resource.
pub const MAX_URI: usize = 2000;
/// At most this many keys in `jwks`.
pub const MAX_JWKS_KEYS: usize = 10;

fn check_sizes(c: &Client) -> Result<(), Why> {
    let too_big = |member: &'static str, limit: String| Err(Why::TooLarge { member, limit });
    if c.name.chars().count() > MAX_CLIENT_NAME {
        return too_big("client_name", format!("{MAX_CLIENT_NAME} characters"));
    }
    for (member, list) in [
        ("redirect_uris", &c.redirect_uris),
        ("post_logout_redirect_uris", &c.post_logout_redirect_uris),
        ("web_origins", &c.web_origins),
        ("resources", &c.resources),
        ("scope", &c.scopes),
    ] {
        if list.len() > MAX_URIS {
            return too_big(member, format!("{MAX_URIS} entries"));
        }
        if list.iter().any(|u| u.len() > MAX_URI) {
            return too_big(member, format!("{MAX_URI} characters each"));
        }
    }
    if c.backchannel_logout_uri
        .as_ref()
        .is_some_and(|u| u.len() > MAX_URI)
    {
        return too_big("backchannel_logout_uri", format!("{MAX_URI} characters"));
    }
    if c.jwks
        .as_ref()
        .is_some_and(|j| j.keys.len() > MAX_JWKS_KEYS)
    {
        return too_big("jwks", format!("{MAX_JWKS_KEYS} keys"));
    }
    Ok(())
}

/// Which rule of [`web_uri`] a URI breaks.
#[derive(Debug, thiserror::Error)]
enum UriRule {
    #[error("must be an absolute http(s) URI without a fragment")]
    Shape,
    #[error("not in its normal form; register '{0}'")]
    NotNormal(String),
    #[error("http is only for the loopback interface (localhost, 127.0.0.1, [::1]); use https")]
    HttpNotLoopback,
}

/// A URI the provider sends browsers or requests to (redirect URIs, post-logout redirect URIs,
/// back-channel logout URIs): absolute `http(s)` without a fragment (RFC 6749 §3.1.2), in its
/// normal form — parsed and normalised once, so what is stored and later sent in a header is
/// exactly what was parsed (no spaces, no stray characters) — and `http` only on the loopback
/// interface (RFC 9700 §2.1, RFC 8252 §7.3).
fn web_uri(u: &str) -> Result<url::Url, UriRule> {
    let parsed = absolute_uri(u)
        .filter(|p| matches!(p.scheme(), "https" | "http"))
        .ok_or(UriRule::Shape)?;
    if parsed.as_str() != u {
        return Err(UriRule::NotNormal(parsed.as_str().to_owned()));
    }
    if parsed.scheme() == "http" && !loopback(&parsed) {
        return Err(UriRule::HttpNotLoopback);
    }
    Ok(parsed)
}

/// `s` as an absolute URI without a fragment (RFC 6749 §3.1.2, RFC 8707 §2), if it is one: the
/// shape of every redirect URI and resource.
pub(crate) fn absolute_uri(s: &str) -> Option<url::Url> {
    url::Url::parse(s).ok().filter(|u| u.fragment().is_none())
}

/// Whether `uri` names the loopback interface (`localhost`, 127.0.0.0/8, `::1`).
fn loopback(uri: &url::Url) -> bool {
    match uri.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether tokens may travel to `uri` from the authorization endpoint (OIDC Registration §2,
/// Core 3.2.2.1): `https`, and not `localhost` or a loopback address.
pub(crate) fn token_safe_redirect(uri: &url::Url) -> bool {
    let local = match uri.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => true,
    };
    uri.scheme() == "https" && !local
}
