//! The admin API's documents: what `/admin/v1/…` reads and writes, and what `keybound admin`
//! sends when it runs through the API. Clients use the RFC 7591 / OpenID Connect Registration
//! metadata names, so a document read from `GET /admin/v1/clients/{id}` can be sent back with
//! `PUT` unchanged, and a team that scripts Keycloak's or Hydra's client JSON recognises it.
//!
//! The JSON Schemas in the OpenAPI document are derived from these types (`schemars`), so the
//! document cannot describe fields the server does not read. Unknown members are refused (a
//! typo in an operator's script is a 400, not a silently dropped setting); secrets are
//! write-only and shown once ([`Shown`]).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A secret the server generated or an operator sent: in a request it is set, in a response
/// it appears once (when the server generated it) and never again. Never in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Shown(pub String);

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A registered client, in RFC 7591 metadata names (keybound's own settings beside them).
/// `PUT` takes the whole document: a member left out takes its default, except
/// `client_secret`, which an existing client keeps when none is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientDoc {
    /// the client id (read-only: the path names it; when sent, it must agree)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// display name on consent pages (default: the client id)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// `none` (the default), `client_secret_basic`, `client_secret_post` or `private_key_jwt`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// write-only: the secret of a `client_secret_*` client. Without one, a new client gets a
    /// generated secret (in the response, once) and an existing one keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Shown>,
    /// exact redirect URIs
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// grant types (default: `authorization_code`, `refresh_token` and the device flow);
    /// `urn:ietf:params:oauth:grant-type:token-exchange` needs `token_exchange`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// response types (default: `code`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    /// space-separated scopes it may get for itself (client credentials); `keybound:admin`
    /// lets it call this API
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 8707 resources its access tokens may be for
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// its public keys, for `private_key_jwt` (a JWK Set)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// RFC 9449 §5.2: refuse its token requests without DPoP
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// RFC 9126 §6: it must push its authorization requests
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// RP-Initiated Logout §3.1
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-Channel Logout §2.2
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Back-Channel Logout §2.2
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// OIDC Registration §2: the `acr` its sign-ins need when a request names none
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_acr_values: Vec<String>,
    /// `key-binding-1.0` (the default) or `draft-00`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_binding_profile: Option<String>,
    /// Token Bound Authentication: `tbh` when its ID Tokens carry `cnf.tbh`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_token_binding_cnf: Option<String>,
    /// demand a DPoP nonce from it at the token endpoint
    #[serde(default)]
    pub require_dpop_nonce: bool,
    /// held to the FAPI 2.0 Security Profile
    #[serde(default)]
    pub fapi2: bool,
    /// a public client's web origins for CORS (default: its redirect URIs' origins)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_origins: Vec<String>,
    /// its End-Users' OP sessions must be bound to their browser's key (DBSC)
    #[serde(default)]
    pub require_dbsc: bool,
    /// what it may obtain by token exchange (ID-JAGs); none: no token exchange
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<ExchangeDoc>,
    /// read-only: when it was registered (seconds since the epoch)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_issued_at: Option<u64>,
}

/// A client's token exchange policy (identity chaining into ID-JAGs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeDoc {
    /// resource AS issuer → this client's id there
    pub audiences: std::collections::BTreeMap<String, String>,
    /// scopes an ID-JAG may carry
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// RFC 8707 resources an ID-JAG may carry
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// also exchange ID Tokens that are not key-bound
    #[serde(default)]
    pub allow_unbound: bool,
    /// a public client may exchange
    #[serde(default)]
    pub allow_public: bool,
    /// RFC 9470: the subject ID Token's `acr` must be one of these
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
    /// RFC 9470: the sign-in was at most this many seconds ago
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_auth_age: Option<u64>,
}

/// An End-User account. The username is the path's; `sub` never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDoc {
    /// read-only: the login name (the path names it; when sent, it must agree)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// read-only: the subject identifier in tokens
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// write-only: a new password. Without one, a new user gets a generated password (in the
    /// response, once) and an existing user keeps theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Shown>,
    /// `name` claim
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `email` claim
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `email_verified` (default: true when `email` is given, as an operator vouches for it)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// a password alone does not sign them in: a passkey must follow
    #[serde(default)]
    pub require_passkey: bool,
    /// read-only: the trusted issuer that provisioned this account, if one did
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_by: Option<String>,
    /// read-only: when created
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
}

/// A passkey of an End-User (what an operator needs to recognise it; never its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PasskeyDoc {
    /// the credential id, base64url
    pub credential_id: String,
    /// the name the End-User gave it
    pub name: String,
    /// when registered
    pub created_at: u64,
    /// the last sign-in with it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
}

/// An identity provider whose ID-JAGs this server redeems (jwt-bearer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerDoc {
    /// read-only: its issuer identifier (the path names it, percent-encoded)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// its JWK Set URL
    pub jwks_uri: String,
    /// `link` (the default), `email` or `provision`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// redeem every ID-JAG once
    #[serde(default)]
    pub single_use: bool,
    /// accept ID-JAGs without `cnf`
    #[serde(default)]
    pub allow_unbound: bool,
    /// a disabled issuer's ID-JAGs are refused (default: enabled)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// read-only: when added
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
}

/// A link from a subject at a trusted issuer to a local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkDoc {
    /// the trusted issuer
    pub issuer: String,
    /// the user's `sub` at that issuer
    pub subject: String,
}

/// A signing key (public facts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyDoc {
    /// key id
    pub kid: String,
    /// JWS algorithm
    pub alg: String,
    /// `current`, `next` or `retired`
    pub state: String,
    /// when created
    pub created_at: u64,
}

/// A request for an initial access token (RFC 7591 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationTokenRequest {
    /// seconds it stays valid (default one day)
    #[serde(default = "one_day")]
    pub ttl: u64,
    /// registrations it allows (default: any number until it expires)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

fn one_day() -> u64 {
    86_400
}

/// An initial access token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegistrationTokenDoc {
    /// the token (the store keeps its hash)
    pub token: Shown,
    /// when it stops working
    pub expires_at: u64,
    /// registrations it allows
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// One page of a list; `next` is the `after` of the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    /// this page's items, in id order
    pub items: Vec<T>,
    /// pass as `after` for the next page; absent on the last
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A page request: at most `limit` items (1–1000, default 100) after the id `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// items per page (default 100, at most 1000)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// the last id of the previous page
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The result of `PUT`: the stored document, whether it was new, and what it replaced (for
/// the audit record, secrets never included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put<T> {
    /// the document as stored (with a generated secret, once)
    pub doc: T,
    /// created rather than replaced
    pub created: bool,
    /// the document it replaced
    pub before: Option<T>,
}
