//! The records the OP keeps. Keys and thumbprints are typed (`Jkt`, `PublicJwk`, `JwkSet`,
//! `Profile`) and parsed when a record is read, so the provider never re-parses them per
//! request and a corrupt row is an error at the store, not a surprise later. Stored as the
//! same JSON as before (a thumbprint string, a JWK object, `{"keys": [...]}`). Secrets never
//! appear in `Debug`: password and secret hashes are redacted, signing keys show only their
//! `kid`.

use std::collections::BTreeSet;
use std::fmt;

use keybound_jose::{Algorithm, Jkt, JwkSet, PublicJwk};
use keybound_proto::keybinding::Profile;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// public client (PKCE required)
    None,
    /// HTTP Basic with the client secret
    ClientSecretBasic,
    /// client secret in the form body
    ClientSecretPost,
    /// RFC 7523 client assertion signed with a registered key
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The registered metadata name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::None => "none",
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parse the metadata name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(ClientAuthMethod::None),
            "client_secret_basic" => Some(ClientAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(ClientAuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(ClientAuthMethod::PrivateKeyJwt),
            _ => None,
        }
    }
}

mod profile_serde {
    use keybound_proto::keybinding::Profile;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde `with` passes a reference
    pub fn serialize<S: Serializer>(p: &Profile, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Profile, D::Error> {
        let s = String::deserialize(d)?;
        Profile::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The grants a client gets when none are named: the code flow with refresh tokens and the
/// device flow.
pub fn classic_grants() -> Vec<String> {
    [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A registered client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// client id
    pub client_id: String,
    /// display name for consent pages
    pub name: String,
    /// token endpoint authentication
    pub auth_method: ClientAuthMethod,
    /// argon2id PHC string of the client secret (never the secret)
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// exact-match redirect URIs
    pub redirect_uris: Vec<String>,
    /// Key Binding profile
    #[serde(with = "profile_serde", default)]
    pub key_binding_profile: Profile,
    /// require a DPoP nonce at the token endpoint
    #[serde(default)]
    pub require_dpop_nonce: bool,
    /// RFC 9449 §5.2: refuse token requests without DPoP
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// client keys for `private_key_jwt`, parsed when the record is read
    #[serde(default)]
    pub jwks: Option<JwkSet>,
    /// RFC 8693 token exchange into ID-JAGs (identity chaining); `None` refuses the grant
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangePolicy>,
    /// may redeem ID-JAGs from trusted issuers with the jwt-bearer grant (resource AS role)
    #[serde(default)]
    pub jwt_bearer: bool,
    /// the token-endpoint grants of the authorization server role it registered:
    /// `authorization_code`, `refresh_token`, `urn:ietf:params:oauth:grant-type:device_code`
    /// (jwt-bearer is [`Client::jwt_bearer`], token exchange [`Client::exchange`]). Records
    /// from before it was kept have the three, which every client could use then.
    #[serde(default = "classic_grants")]
    pub grant_types: Vec<String>,
    /// response types it may use, canonically spelled (`code`, `id_token token`, …)
    #[serde(default = "code_only")]
    pub response_types: Vec<String>,
    /// supports Token Bound ID Tokens (`rp_id_token_token_binding_supported`, or
    /// `id_token_token_binding_cnf: "tbh"`): its ID Tokens carry `cnf.tbh` when a referred
    /// Token Binding reached the authorization endpoint
    #[serde(default)]
    pub token_bound_id_tokens: bool,
    /// RFC 8707 resources (absolute URIs) its access tokens may be issued for, as their `aud`;
    /// none: only tokens for this provider itself (userinfo)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// scopes it may get for itself with the client credentials grant (RFC 6749 §4.4)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// must push its authorization requests (RFC 9126 §6
    /// `require_pushed_authorization_requests`)
    #[serde(default)]
    pub require_par: bool,
    /// held to the FAPI 2.0 Security Profile (`--profile fapi2`)
    #[serde(default)]
    pub fapi2: bool,
    /// RP-Initiated Logout 1.0 §3: where the End-User may be sent after logging out
    /// (exact match, like redirect URIs)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-Channel Logout 1.0 §2.2: where the OP POSTs a logout token when a session this
    /// client signed in through ends; such a client follows the OP session (its grants from a
    /// session end with it)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// a public client's web origins (`scheme://host[:port]`) allowed to call the OP from a
    /// page (CORS); none: the origins of its redirect URIs
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_origins: Vec<String>,
    /// Back-Channel Logout 1.0 §2.2 `backchannel_logout_session_required`: its logout tokens
    /// must carry `sid` (keybound's always do when the session has one)
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// OIDC Dynamic Client Registration §2 `default_acr_values`: the `acr` its authorization
    /// requests ask for when they name none (keybound enforces them, so a client can demand a
    /// passkey)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_acr_values: Vec<String>,
    /// its End-Users' OP sessions must be bound to their browser's key (DBSC) before it gets a
    /// code: a browser without DBSC cannot sign in to it
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_dbsc: bool,
    /// when registered
    pub created_at: u64,
}

/// What a client may obtain by token exchange (ID-JAG draft §4.2 IJ-3: policy per client ×
/// audience × resource × scope). Anything not listed is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangePolicy {
    /// resource AS issuer → this client's `client_id` at that AS (the ID-JAG `client_id`)
    pub audiences: std::collections::BTreeMap<String, String>,
    /// scopes that may be requested for the ID-JAG
    #[serde(default)]
    pub scopes: Vec<String>,
    /// RFC 8707 resources that may be requested
    #[serde(default)]
    pub resources: Vec<String>,
    /// exchange ID Tokens that are not key-bound (by default only key-bound ones)
    #[serde(default)]
    pub allow_unbound: bool,
    /// a public client may exchange (the draft wants confidential clients: off by default)
    #[serde(default)]
    pub allow_public: bool,
    /// RFC 9470 at the exchange: the subject ID Token's `acr` must be one of these (none: any)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
    /// RFC 9470 at the exchange: the End-User authenticated at most this long ago (seconds)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_auth_age: Option<u64>,
}

impl Client {
    /// Whether it registered the token-endpoint grant `grant` (RFC 7591 §2 `grant_types`):
    /// jwt-bearer by [`Client::jwt_bearer`], token exchange by an exchange policy, the others
    /// by [`Client::grant_types`].
    pub fn allows(&self, grant: &str) -> bool {
        match grant {
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => self.jwt_bearer,
            "urn:ietf:params:oauth:grant-type:token-exchange" => self.exchange.is_some(),
            g => self.grant_types.iter().any(|x| x == g),
        }
    }

    /// A client with defaults for everything but its id, authentication method and creation
    /// time: named after its id, no secret, no redirect URIs, the current Key Binding profile,
    /// no DPoP nonce or proof demanded, no JWKS. Set the rest with struct update syntax:
    /// `Client { redirect_uris, ..Client::new("app", ClientAuthMethod::None, now) }`.
    pub fn new(client_id: &str, auth_method: ClientAuthMethod, created_at: u64) -> Self {
        Client {
            client_id: client_id.to_owned(),
            name: client_id.to_owned(),
            auth_method,
            secret_hash: None,
            redirect_uris: Vec::new(),
            key_binding_profile: Profile::default(),
            require_dpop_nonce: false,
            dpop_bound_access_tokens: false,
            jwks: None,
            exchange: None,
            jwt_bearer: false,
            grant_types: classic_grants(),
            response_types: code_only(),
            token_bound_id_tokens: false,
            resources: Vec::new(),
            scopes: Vec::new(),
            require_par: false,
            fapi2: false,
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            web_origins: Vec::new(),
            backchannel_logout_session_required: false,
            default_acr_values: Vec::new(),
            require_dbsc: false,
            created_at,
        }
    }
}

fn code_only() -> Vec<String> {
    vec!["code".to_owned()]
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("auth_method", &self.auth_method)
            .field(
                "secret_hash",
                &self.secret_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_uris", &self.redirect_uris)
            .field("key_binding_profile", &self.key_binding_profile)
            .field("require_dpop_nonce", &self.require_dpop_nonce)
            .field("dpop_bound_access_tokens", &self.dpop_bound_access_tokens)
            .field("jwks", &self.jwks.is_some())
            .field("exchange", &self.exchange)
            .field("jwt_bearer", &self.jwt_bearer)
            .field("grant_types", &self.grant_types)
            .field("response_types", &self.response_types)
            .field("token_bound_id_tokens", &self.token_bound_id_tokens)
            .field("resources", &self.resources)
            .field("scopes", &self.scopes)
            .field("require_par", &self.require_par)
            .field("fapi2", &self.fapi2)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .field("backchannel_logout_uri", &self.backchannel_logout_uri)
            .field("web_origins", &self.web_origins)
            .field(
                "backchannel_logout_session_required",
                &self.backchannel_logout_session_required,
            )
            .field("default_acr_values", &self.default_acr_values)
            .field("require_dbsc", &self.require_dbsc)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// An End-User.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// subject identifier (stable, never reassigned)
    pub sub: String,
    /// login name (unique)
    pub username: String,
    /// argon2id PHC string
    pub password_hash: String,
    /// `name` claim
    #[serde(default)]
    pub name: Option<String>,
    /// `email` claim
    #[serde(default)]
    pub email: Option<String>,
    /// `email_verified` claim
    #[serde(default)]
    pub email_verified: bool,
    /// the trusted issuer whose ID-JAG provisioned this End-User (jwt-bearer, subject mode
    /// `provision`); `None` for a local account. A provisioned address was verified by that
    /// issuer, not here, so it never identifies an End-User for another issuer's `email` mode
    /// ([`crate::UserStore::user_by_verified_email`] finds local accounts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_by: Option<String>,
    /// a password alone does not sign this End-User in: a passkey must follow it (or sign them
    /// in alone); set by `keybound admin user add --require-passkey`
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_passkey: bool,
    /// when created
    pub created_at: u64,
}

impl User {
    /// A user with no profile claims: set `name`, `email` with struct update syntax.
    pub fn new(sub: &str, username: &str, password_hash: String, created_at: u64) -> Self {
        User {
            sub: sub.to_owned(),
            username: username.to_owned(),
            password_hash,
            name: None,
            email: None,
            email_verified: false,
            provisioned_by: None,
            require_passkey: false,
            created_at,
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("sub", &self.sub)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("provisioned_by", &self.provisioned_by)
            .finish_non_exhaustive()
    }
}

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// published in the JWKS, not yet signing (so caches learn it first)
    Next,
    /// signing
    Current,
    /// published for a while so tokens it signed still verify
    Retired,
}

impl KeyState {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
        }
    }

    /// Parse the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(KeyState::Next),
            "current" => Some(KeyState::Current),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A signing key with its private half (PKCS#8); sealed by the store at rest.
#[derive(Clone)]
pub struct SigningKeyRecord {
    /// key id
    pub kid: String,
    /// signing algorithm
    pub alg: Algorithm,
    /// life-cycle state
    pub state: KeyState,
    /// when created
    pub created_at: u64,
    /// when it became current
    pub activated_at: Option<u64>,
    /// when it was retired
    pub retired_at: Option<u64>,
    /// PKCS#8 DER of the private key
    pub pkcs8: Zeroizing<Vec<u8>>,
}

impl SigningKeyRecord {
    /// What a unique violation on inserting this key means (its kid exists, or there is
    /// already a current or next key).
    pub fn conflict_message(&self) -> String {
        format!(
            "kid '{}' exists, or there is already a {} key",
            self.kid,
            self.state.as_str()
        )
    }
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("retired_at", &self.retired_at)
            .field("pkcs8", &"<redacted>")
            .finish()
    }
}

/// What an authorization code stands for (stored under the code's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    /// the grant everything issued from this code belongs to
    pub grant_id: String,
    /// client
    pub client_id: String,
    /// redirect URI of the request (must be repeated at the token endpoint)
    pub redirect_uri: String,
    /// End-User
    pub sub: String,
    /// granted scope
    pub scope: String,
    /// request nonce
    pub nonce: Option<String>,
    /// PKCE S256 challenge
    pub code_challenge: Option<String>,
    /// when the End-User authenticated
    pub auth_time: u64,
    /// authentication context
    pub acr: Option<String>,
    /// authentication methods
    #[serde(default)]
    pub amr: Vec<String>,
    /// RFC 9449 §10 / Key Binding: thumbprint of the key the code is bound to
    pub dpop_jkt: Option<Jkt>,
    /// `bound_key` was granted: the ID Token must be key-bound
    pub bound_key: bool,
    /// OIDC Token Bound Authentication: `tbh` of the referred Token Binding ID the
    /// authorization request came with, for the token-endpoint ID Token
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbh: Option<String>,
    /// RFC 8707 resources the authorization request named: the token requests may narrow
    /// them, never add (none: any the client registered)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// the OP session (`sid`) the code was issued in, for its ID Tokens
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// when issued
    pub created_at: u64,
    /// when it stops being redeemable
    pub expires_at: u64,
}

/// The state of a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeLookup {
    /// valid (from `find_code`) or just consumed by this caller (from `redeem_code`)
    Active(AuthorizationCode),
    /// already redeemed once: a replay, whose grant should be revoked
    Redeemed(AuthorizationCode),
    /// past its expiry
    Expired,
    /// never issued
    NotFound,
    /// only from `redeem_code` given a proof: the proof was seen before, nothing was consumed
    Replayed,
}

impl CodeLookup {
    /// The state of a stored code: redeemed wins over expired (a replay after expiry is still a
    /// replay). Every backend classifies its row through this.
    pub fn classify(code: AuthorizationCode, redeemed: bool, expires_at: u64, now: u64) -> Self {
        if redeemed {
            CodeLookup::Redeemed(code)
        } else if now >= expires_at {
            CodeLookup::Expired
        } else {
            CodeLookup::Active(code)
        }
    }
}

/// What a refresh token stands for (stored under the token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    /// rotation family
    pub family_id: String,
    /// the grant (code redemption) it descends from
    pub grant_id: String,
    /// client
    pub client_id: String,
    /// End-User
    pub sub: String,
    /// granted scope
    pub scope: String,
    /// when the End-User authenticated
    pub auth_time: u64,
    /// authentication context
    pub acr: Option<String>,
    /// authentication methods
    #[serde(default)]
    pub amr: Vec<String>,
    /// thumbprint of the key every refresh must prove (bound refresh token)
    pub jkt: Option<Jkt>,
    /// the `cnf.jwk` of the ID Tokens (Key Binding: refreshed tokens carry the same `cnf`)
    pub cnf_jwk: Option<PublicJwk>,
    /// Key Binding profile of the client at issuance
    #[serde(with = "profile_serde", default)]
    pub profile: Profile,
    /// `cnf.tbh` of the grant's ID Tokens (Token Bound Authentication): a refreshed ID Token
    /// keeps the binding the first one had, so an RP that requires it sees no downgrade
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbh: Option<String>,
    /// RFC 8707 §2.2: the resources the grant names (from the authorization request); a
    /// refresh may ask for any of them, never another
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// the OP session (`sid`) the grant began in, for refreshed ID Tokens
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// when issued
    pub created_at: u64,
    /// when it stops being usable
    pub expires_at: u64,
}

/// The state of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshLookup {
    /// usable (from `find_refresh`) or just rotated by this caller (from `rotate_refresh`)
    Active(RefreshToken),
    /// used before: reuse (from `rotate_refresh` the family is now revoked)
    Reused(RefreshToken),
    /// its family was revoked
    Revoked(RefreshToken),
    /// past its expiry
    Expired,
    /// never issued
    NotFound,
    /// only from `rotate_refresh` given a proof: the proof was seen before, nothing changed
    Replayed,
}

impl RefreshLookup {
    /// The state of a stored refresh token: a revoked family first, then reuse, then expiry.
    /// Every backend classifies its row through this.
    pub fn classify(
        token: RefreshToken,
        family_revoked: bool,
        used: bool,
        expires_at: u64,
        now: u64,
    ) -> Self {
        if family_revoked {
            RefreshLookup::Revoked(token)
        } else if used {
            RefreshLookup::Reused(token)
        } else if now >= expires_at {
            RefreshLookup::Expired
        } else {
            RefreshLookup::Active(token)
        }
    }
}

/// A device authorization (RFC 8628) as issued: the parts that never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    /// client
    pub client_id: String,
    /// requested scope
    pub scope: String,
    /// ID Token nonce sent with the request
    pub nonce: Option<String>,
    /// the key the device code is bound to (`dpop_jkt` or the proof's key)
    pub dpop_jkt: Option<Jkt>,
    /// `bound_key` was requested: the ID Token must be key-bound
    pub bound_key: bool,
    /// the user code, normalised (8 characters, no dash)
    pub user_code: String,
    /// the grant everything issued from this device code belongs to
    pub grant_id: String,
    /// when issued
    pub created_at: u64,
    /// when the device code and user code expire
    pub expires_at: u64,
}

/// The End-User's decision on a device authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceDecision {
    /// approved by this End-User
    Approved {
        /// End-User
        sub: String,
        /// when they authenticated
        auth_time: u64,
        /// how
        amr: Vec<String>,
    },
    /// denied
    Denied,
}

/// The answer to one poll of the token endpoint with a device code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// not decided yet; poll again after `interval` seconds
    Pending {
        /// current interval
        interval: u64,
    },
    /// polled faster than the interval: the interval is now 5 s longer, for good
    SlowDown {
        /// the new interval
        interval: u64,
    },
    /// approved, and this poll consumed the device code: issue the tokens
    Approved(DeviceAuthorization, DeviceDecision),
    /// the End-User denied
    Denied,
    /// expired
    Expired,
    /// tokens were already issued for this device code
    Redeemed(DeviceAuthorization),
    /// never issued
    NotFound,
}

/// Remembered consent of one End-User for one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// End-User
    pub sub: String,
    /// client
    pub client_id: String,
    /// scopes consented to
    pub scopes: BTreeSet<String>,
    /// key thumbprints already bound for this client and user (KB-OP2)
    pub bound_jkts: BTreeSet<Jkt>,
    /// when last changed
    pub updated_at: u64,
}

/// A signed-in browser at the OP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserSession {
    /// End-User
    pub sub: String,
    /// when they authenticated
    pub auth_time: u64,
    /// how
    #[serde(default)]
    pub amr: Vec<String>,
    /// when created
    pub created_at: u64,
    /// when it ends
    pub expires_at: u64,
    /// the authorization request (its fingerprint) whose login form created this session: only
    /// that request counts the login as fresh for `prompt=login` and `max_age` (OP state, never
    /// a form field); cleared once its code is issued
    #[serde(default)]
    pub fresh_for: Option<String>,
    /// OIDC Session Management / Front- and Back-Channel Logout `sid`: names this session in
    /// its ID Tokens and logout tokens (empty for sessions made before it existed)
    #[serde(default)]
    pub sid: String,
    /// Back-Channel Logout 1.0 §2.3: the clients this session signed in to (got a code or
    /// tokens from), to be told when it ends; at most [`BrowserSession::MAX_CLIENTS`], the
    /// most recent kept
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
    /// Device Bound Session Credentials: the browser's key for this session, once it
    /// registered one; from then on the session is used only with a fresh bound cookie, which
    /// only that key can refresh
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbsc: Option<DbscBinding>,
}

/// A session bound to a key the browser holds (W3C DBSC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbscBinding {
    /// the DBSC session identifier the browser names at refresh
    pub session_id: String,
    /// the browser's public key (from its registration JWT)
    pub key: PublicJwk,
}

impl BrowserSession {
    /// How many clients a session remembers for logout.
    pub const MAX_CLIENTS: usize = 64;

    /// Its `sid`, if it has one (sessions made before `sid` existed have none).
    pub fn session_id(&self) -> Option<&str> {
        Some(self.sid.as_str()).filter(|s| !s.is_empty())
    }

    /// Remember that `client_id` signed in through this session; whether that changed it.
    pub fn signed_in_to(&mut self, client_id: &str) -> bool {
        if self.clients.iter().any(|c| c == client_id) {
            return false;
        }
        if self.clients.len() >= Self::MAX_CLIENTS {
            self.clients.remove(0);
        }
        self.clients.push(client_id.to_owned());
        true
    }
}

/// How a trusted issuer's subjects become local End-Users at the jwt-bearer grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectMode {
    /// only subjects an operator linked to a local user (`keybound admin user link`)
    #[default]
    Link,
    /// a linked subject, else the local user whose verified e-mail address equals the
    /// grant's `email` claim (then linked)
    Email,
    /// a linked subject, else a new local user created for it (just-in-time provisioning)
    Provision,
}

impl SubjectMode {
    /// Its name in settings and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectMode::Link => "link",
            SubjectMode::Email => "email",
            SubjectMode::Provision => "provision",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "link" => Some(SubjectMode::Link),
            "email" => Some(SubjectMode::Email),
            "provision" => Some(SubjectMode::Provision),
            _ => None,
        }
    }
}

/// An identity provider whose ID-JAGs this server redeems with the jwt-bearer grant (the
/// resource AS role of identity chaining).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedIssuer {
    /// its issuer identifier (the ID-JAG `iss`)
    pub issuer: String,
    /// where its signing keys are
    pub jwks_uri: String,
    /// how its subjects map to local users
    #[serde(default)]
    pub subject: SubjectMode,
    /// every ID-JAG `jti` is redeemed once, bound or not (unbound ones always are)
    #[serde(default)]
    pub single_use: bool,
    /// ID-JAGs without `cnf` may be redeemed for Bearer access tokens
    #[serde(default)]
    pub allow_unbound: bool,
    /// a disabled issuer is refused (and kept, for its links)
    pub enabled: bool,
    /// when added
    pub created_at: u64,
}

/// An initial access token for dynamic client registration (RFC 7591 §3), stored by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationToken {
    /// registrations it may still authorise (`None`: any number until it expires)
    pub uses_left: Option<u32>,
    /// when it stops working
    pub expires_at: u64,
    /// when made
    pub created_at: u64,
}

/// A pushed authorization request (RFC 9126), stored by the hash of its `request_uri` until
/// its one use at the authorization endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRequest {
    /// the client that pushed it (authenticated at the PAR endpoint)
    pub client_id: String,
    /// the authorization request's parameters as pushed, without client credentials, with
    /// `dpop_jkt` from the DPoP proof when one came
    pub params: Vec<(String, String)>,
    /// when its `request_uri` stops working
    pub expires_at: u64,
}

/// A passkey (a WebAuthn credential) an End-User registered. The WebAuthn library's own record
/// of it (public key, flags) stays opaque here (`credential`, its JSON); the store keeps beside
/// it what it looks up, shows and must change atomically (the signature counter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passkey {
    /// the credential id, base64url (unique across End-Users)
    pub credential_id: String,
    /// the End-User it signs in
    pub sub: String,
    /// the name the End-User gave it
    pub name: String,
    /// the WebAuthn library's record of the credential, JSON
    pub credential: String,
    /// the authenticator's signature counter as last accepted (0: it keeps none)
    pub sign_count: u32,
    /// when registered
    pub created_at: u64,
    /// the last sign-in with it
    #[serde(default)]
    pub last_used_at: Option<u64>,
}

impl Passkey {
    /// Whether a sign-in reporting `sign_count` may follow the accepted `self.sign_count`:
    /// the counter moved forward, or the authenticator keeps none (both 0). A counter that
    /// stays or goes back is the mark of a cloned authenticator (WebAuthn §6.1.1).
    pub fn counter_accepts(&self, sign_count: u32) -> bool {
        sign_count > self.sign_count || (sign_count == 0 && self.sign_count == 0)
    }

    /// A sign-in with this passkey at `now`: the library's updated record and the counter
    /// taken, if [`Passkey::counter_accepts`] it; `false` (nothing changed) if not. Every
    /// backend's `use_passkey` applies this under its own atomicity.
    pub fn record_use(&mut self, credential: &str, sign_count: u32, now: u64) -> bool {
        if !self.counter_accepts(sign_count) {
            return false;
        }
        credential.clone_into(&mut self.credential);
        self.sign_count = sign_count;
        self.last_used_at = Some(now);
        true
    }
}
