//! OAuth 2.0 / OpenID Connect wire types shared by the OP, the RP and the consuming component.
//!
//! Plain serde structs: field names are the registered parameter and metadata names, optional
//! members are omitted when absent, and unknown members are kept in `extra` where a document
//! may carry extensions (metadata), so keybound can round-trip what others publish.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keybinding::{RequestedBinding, BOUND_KEY_SCOPE};
use crate::Error;

/// Grant type URIs.
pub mod grant_type {
    /// RFC 6749 authorization code
    pub const AUTHORIZATION_CODE: &str = "authorization_code";
    /// RFC 6749 refresh token
    pub const REFRESH_TOKEN: &str = "refresh_token";
    /// RFC 6749 client credentials
    pub const CLIENT_CREDENTIALS: &str = "client_credentials";
    /// RFC 8628 device code
    pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
    /// RFC 8693 token exchange
    pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    /// RFC 7523 JWT bearer
    pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    /// draft-parecki-oauth-jwt-dpop-grant: a JWT grant redeemed with a DPoP proof
    pub const JWT_DPOP: &str = "urn:ietf:params:oauth:grant-type:jwt-dpop";
}

/// Token type URIs (RFC 8693 §3, ID-JAG).
pub mod token_type {
    /// access token
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    /// refresh token
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    /// ID Token
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
    /// any JWT
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    /// Identity Assertion JWT authorization grant
    pub const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
}

/// The registered OAuth / OIDC / DPoP / device / token-exchange error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749
    InvalidRequest,
    /// RFC 6749
    InvalidClient,
    /// RFC 6749
    InvalidGrant,
    /// RFC 6749
    UnauthorizedClient,
    /// RFC 6749
    UnsupportedGrantType,
    /// RFC 6749
    InvalidScope,
    /// RFC 6749
    AccessDenied,
    /// RFC 6749
    UnsupportedResponseType,
    /// RFC 6749
    ServerError,
    /// RFC 6749
    TemporarilyUnavailable,
    /// OIDC Core
    InteractionRequired,
    /// OIDC Core
    LoginRequired,
    /// OIDC Core
    AccountSelectionRequired,
    /// OIDC Core
    ConsentRequired,
    /// OIDC Core
    InvalidRequestUri,
    /// OIDC Core
    InvalidRequestObject,
    /// OIDC Core
    RequestNotSupported,
    /// OIDC Core
    RequestUriNotSupported,
    /// OIDC Core
    RegistrationNotSupported,
    /// RFC 7591
    InvalidRedirectUri,
    /// RFC 7591
    InvalidClientMetadata,
    /// RFC 9449
    InvalidDpopProof,
    /// RFC 9449
    UseDpopNonce,
    /// RFC 8628
    AuthorizationPending,
    /// RFC 8628
    SlowDown,
    /// RFC 8628
    ExpiredToken,
    /// RFC 8693
    InvalidTarget,
    /// RFC 6750
    InvalidToken,
    /// RFC 6750
    InsufficientScope,
    /// RFC 9470
    InsufficientUserAuthentication,
}

impl ErrorCode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::AccountSelectionRequired => "account_selection_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::InvalidRequestObject => "invalid_request_object",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::RegistrationNotSupported => "registration_not_supported",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InsufficientUserAuthentication => "insufficient_user_authentication",
        }
    }
}

/// An OAuth error response (RFC 6749 §5.2, §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// error code
    pub error: ErrorCode,
    /// human-readable explanation
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// documentation link
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
    /// echoed `state` (authorization responses)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// issuer (RFC 9207, authorization responses)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl ErrorResponse {
    /// An error with a description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        ErrorResponse {
            error,
            error_description: Some(description.into()),
            error_uri: None,
            state: None,
            iss: None,
        }
    }
}

/// OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414 and extensions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProviderMetadata {
    /// issuer identifier
    pub issuer: String,
    /// authorization endpoint
    pub authorization_endpoint: String,
    /// token endpoint
    pub token_endpoint: String,
    /// JWKS URI
    pub jwks_uri: String,
    /// userinfo endpoint
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// RFC 7009
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 7662
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// RFC 8628
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// dynamic registration
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// scopes, including `bound_key` (KB-D1)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// response types
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// response modes
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_modes_supported: Vec<String>,
    /// grant types
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// subject types
    #[serde(default)]
    pub subject_types_supported: Vec<String>,
    /// ID Token signing algorithms
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// client authentication methods
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// algorithms for `private_key_jwt`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// claims
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_supported: Vec<String>,
    /// PKCE methods
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9449 (KB-D2)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// RFC 9207
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorization_response_iss_parameter_supported: bool,
    /// OIDC Token Bound Authentication drafts 03–04
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_token_binding_cnf_values_supported: Option<Vec<String>>,
    /// OIDC Token Bound Authentication drafts 00–02
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_id_token_token_binding_supported: Option<bool>,
    /// Identity Chaining / ID-JAG
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_chaining_requested_token_types_supported: Option<Vec<String>>,
    /// anything else
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ProviderMetadata {
    /// Whether the OP announces Key Binding (`bound_key` in `scopes_supported`).
    pub fn supports_key_binding(&self) -> bool {
        self.scopes_supported.iter().any(|s| s == BOUND_KEY_SCOPE)
    }

    /// Whether the OP announces token-bound ID Tokens, in either metadata generation.
    pub fn supports_token_bound_id_tokens(&self) -> bool {
        self.id_token_token_binding_cnf_values_supported
            .as_ref()
            .is_some_and(|v| v.iter().any(|m| m == "tbh"))
            || self.op_id_token_token_binding_supported == Some(true)
    }
}

/// Client metadata (RFC 7591 / OIDC Registration and extensions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClientMetadata {
    /// client id
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// registered redirect URIs (exact match)
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// grant types
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    /// response types
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    /// display name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// `none`, `client_secret_basic`, `client_secret_post`, `private_key_jwt`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// client keys (for `private_key_jwt`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// client keys by reference
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// scopes the client may request
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// ID Token signing algorithm
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// RFC 9449 §5.2: reject token requests without DPoP
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// keybound: the Key Binding profile (`key-binding-1.0` or `draft-00`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_binding_profile: Option<String>,
    /// OIDC Token Bound Authentication drafts 03–04 (`"tbh"`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_token_binding_cnf: Option<String>,
    /// OIDC Token Bound Authentication drafts 00–02
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rp_id_token_token_binding_supported: Option<bool>,
    /// anything else
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Authorization (authentication) request parameters (OIDC Core 3.1.2.1, RFC 7636, RFC 9449
/// §10, Key Binding §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuthorizationRequest {
    /// `code`
    pub response_type: String,
    /// client id
    pub client_id: String,
    /// redirect URI (exact match)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// space-delimited scopes; `openid bound_key` for Key Binding
    #[serde(default)]
    pub scope: String,
    /// opaque client state
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// replay protection for the ID Token
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE challenge
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// PKCE method (`S256`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    /// `none`, `login`, `consent`, `select_account`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// maximum authentication age in seconds
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// login hint
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// requested ACRs
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
    /// OIDC Core 5.5: the `claims` request parameter (JSON; its `id_token.acr` is honoured)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
    /// response mode
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mode: Option<String>,
    /// RFC 9449 §10 / Key Binding: thumbprint of the key to bind
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// OIDC Core §6.1 request object (not supported: refused, never ignored)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// OIDC Core §6.2 request object by reference (not supported: refused, never ignored)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri: Option<String>,
    /// RFC 8707 `resource`, which may repeat (so not one of the form's single parameters:
    /// whoever reads the parameters collects them)
    #[serde(skip)]
    pub resources: Vec<String>,
}

impl AuthorizationRequest {
    /// The Key Binding decision for this request (see [`RequestedBinding`]).
    pub fn requested_binding(&self) -> Result<RequestedBinding, Error> {
        RequestedBinding::from_request(&self.scope, self.dpop_jkt.as_deref())
    }
}

/// A successful authorization response (RFC 6749 §4.1.2 + RFC 9207 `iss`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationResponse {
    /// the authorization code
    pub code: String,
    /// echoed state
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// issuer identifier
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// A token request, by grant type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "grant_type")]
pub enum TokenRequest {
    /// RFC 6749 §4.1.3
    #[serde(rename = "authorization_code")]
    AuthorizationCode {
        /// the code
        code: String,
        /// the redirect URI of the authorization request
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redirect_uri: Option<String>,
        /// PKCE verifier
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code_verifier: Option<String>,
        /// public clients identify themselves
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// RFC 6749 §6
    #[serde(rename = "refresh_token")]
    RefreshToken {
        /// the refresh token
        refresh_token: String,
        /// narrower scope
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// public clients identify themselves
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// RFC 8628 §3.4
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode {
        /// the device code
        device_code: String,
        /// public clients identify themselves
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// RFC 8693
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange(TokenExchangeRequest),
    /// RFC 7523
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer {
        /// the JWT grant (e.g. an ID-JAG)
        assertion: String,
        /// requested scope
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// RFC 6749 §4.4
    #[serde(rename = "client_credentials")]
    ClientCredentials {
        /// requested scope
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
}

/// An OpenID Connect response type (OIDC Core 3; OAuth 2.0 Multiple Response Type Encoding
/// Practices §5): which of a code, an ID Token and an access token the authorization endpoint
/// returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseType {
    /// `code`
    pub code: bool,
    /// `id_token`
    pub id_token: bool,
    /// `token`
    pub token: bool,
}

impl ResponseType {
    /// The code flow.
    pub const CODE: ResponseType = ResponseType {
        code: true,
        id_token: false,
        token: false,
    };

    /// Parse a space-separated `response_type` (any order); `None` for values OpenID Connect
    /// does not define (`token` alone, `none`, repeats, anything else).
    pub fn parse(s: &str) -> Option<Self> {
        let mut r = ResponseType {
            code: false,
            id_token: false,
            token: false,
        };
        for part in s.split(' ').filter(|p| !p.is_empty()) {
            let slot = match part {
                "code" => &mut r.code,
                "id_token" => &mut r.id_token,
                "token" => &mut r.token,
                _ => return None,
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        // OIDC defines code, id_token, id_token token, and the hybrid combinations with code
        (r.code || r.id_token).then_some(r)
    }

    /// Whether anything but a code travels through the front channel (implicit or hybrid).
    pub fn front_channel_tokens(self) -> bool {
        self.id_token || self.token
    }

    /// The canonical spelling (`code`, `id_token token`, `code id_token token`, …).
    pub fn as_str(self) -> &'static str {
        match (self.code, self.id_token, self.token) {
            (true, false, false) => "code",
            (false, true, false) => "id_token",
            (false, true, true) => "id_token token",
            (true, true, false) => "code id_token",
            (true, false, true) => "code token",
            (true, true, true) => "code id_token token",
            // unreachable through parse: `token` alone is not an OpenID Connect response type
            (false, false, _) => "token",
        }
    }
}

/// RFC 8693 token exchange parameters (ID-JAG: `requested_token_type` = id-jag, `audience`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TokenExchangeRequest {
    /// the token being exchanged
    pub subject_token: String,
    /// its type URI
    pub subject_token_type: String,
    /// acting party token
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token: Option<String>,
    /// its type URI
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token_type: Option<String>,
    /// wanted token type
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_token_type: Option<String>,
    /// logical target (ID-JAG: the resource AS issuer)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// target URI
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// requested scope
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl TokenExchangeRequest {
    /// An ID-JAG request (ID-JAG §4.2): the ID Token `subject` for the resource AS `audience`.
    pub fn id_jag(subject: &str, audience: &str) -> Self {
        TokenExchangeRequest {
            subject_token: subject.to_owned(),
            subject_token_type: token_type::ID_TOKEN.to_owned(),
            requested_token_type: Some(token_type::ID_JAG.to_owned()),
            audience: Some(audience.to_owned()),
            ..TokenExchangeRequest::default()
        }
    }

    /// The token request's form parameters, `grant_type` first.
    pub fn form(&self) -> Vec<(&'static str, &str)> {
        let mut f = vec![
            ("grant_type", grant_type::TOKEN_EXCHANGE),
            ("subject_token", self.subject_token.as_str()),
            ("subject_token_type", self.subject_token_type.as_str()),
        ];
        let optional = [
            ("requested_token_type", &self.requested_token_type),
            ("audience", &self.audience),
            ("resource", &self.resource),
            ("scope", &self.scope),
            ("actor_token", &self.actor_token),
            ("actor_token_type", &self.actor_token_type),
        ];
        f.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.as_deref().map(|v| (k, v))),
        );
        f
    }

    /// TE-3: `actor_token` and `actor_token_type` come together or not at all.
    pub fn check_actor(&self) -> Result<(), Error> {
        if self.actor_token.is_some() != self.actor_token_type.is_some() {
            return Err(Error::Parameter {
                name: "actor_token_type",
                reason: "actor_token and actor_token_type must be sent together".into(),
            });
        }
        Ok(())
    }
}

/// A successful token response (RFC 6749 §5.1, OIDC Core 3.1.3.3, RFC 8693 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// the access token (or the issued token for token exchange)
    pub access_token: String,
    /// `Bearer`, `DPoP` or `N_A`
    pub token_type: String,
    /// lifetime in seconds
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// refresh token
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// ID Token
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// granted scope
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 8693
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// RFC 8628 §3.1 device authorization request with the Key Binding parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeviceAuthorizationRequest {
    /// public clients identify themselves
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// scopes; `openid bound_key` for Key Binding
    #[serde(default)]
    pub scope: String,
    /// thumbprint of the key to bind (KB-DV1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// ID Token nonce (echoed, spec digest §10.9)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl DeviceAuthorizationRequest {
    /// The Key Binding decision for this request.
    pub fn requested_binding(&self) -> Result<RequestedBinding, Error> {
        RequestedBinding::from_request(&self.scope, self.dpop_jkt.as_deref())
    }
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorizationResponse {
    /// the device verification code
    pub device_code: String,
    /// the code the user types
    pub user_code: String,
    /// where the user goes
    pub verification_uri: String,
    /// the same with the code filled in
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// lifetime in seconds
    pub expires_in: u64,
    /// polling interval in seconds (default 5)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

/// A `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9449 §7.1): `scheme`, then `error` and
/// `error_description` when a request with credentials failed (none when it had none,
/// RFC 6750 §3.1), then `algs` for `DPoP`. Quotes, backslashes and control characters are
/// dropped from the description so it always fits a quoted-string. The one builder for the
/// provider's resources and for consuming components.
pub fn challenge(scheme: &str, error: Option<(ErrorCode, &str)>, algs: Option<&str>) -> String {
    challenge_with(scheme, error, algs, None)
}

/// What a resource demands of the End-User's sign-in (RFC 9470 §3): an `acr` among
/// `acr_values` and an authentication no older than `max_age` seconds. Carried by the
/// `insufficient_user_authentication` challenge, and by the authorization request a client
/// makes to meet it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepUp {
    /// acceptable `acr` values, in order of preference (empty: any)
    pub acr_values: Vec<String>,
    /// the longest time since the End-User authenticated
    pub max_age: Option<u64>,
}

impl StepUp {
    /// The step-up a `WWW-Authenticate` value asks for: its `error` is
    /// `insufficient_user_authentication` (any scheme); `None` otherwise.
    pub fn from_challenge(www_authenticate: &str) -> Option<Self> {
        let params = challenge_params(www_authenticate);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if get("error") != Some(ErrorCode::InsufficientUserAuthentication.as_str()) {
            return None;
        }
        Some(StepUp {
            acr_values: get("acr_values")
                .map(|v| {
                    v.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            max_age: get("max_age").and_then(|v| v.parse().ok()),
        })
    }

    /// The authorization request parameters that ask for this sign-in (`acr_values`,
    /// `max_age`).
    pub fn authorization_params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !self.acr_values.is_empty() {
            p.push(("acr_values", self.acr_values.join(" ")));
        }
        if let Some(m) = self.max_age {
            p.push(("max_age", m.to_string()));
        }
        p
    }
}

/// The `name=value` parameters of a `WWW-Authenticate` value (quoted or token values; the
/// scheme and any second challenge's scheme are skipped).
fn challenge_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        // the name is the last word before '=' (skipping a scheme before it)
        let name = rest[..eq]
            .rsplit([' ', ','])
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        rest = rest[eq + 1..].trim_start();
        let v = if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            v.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            rest = &q[end.min(q.len())..];
            v
        } else {
            let end = rest.find([',', ' ']).unwrap_or(rest.len());
            let v = rest[..end].to_owned();
            rest = &rest[end..];
            v
        };
        out.push((name, v));
        rest = rest.trim_start_matches([',', ' ']);
    }
    out
}

/// [`challenge`] with RFC 9470 §3's `acr_values` and `max_age` when `step_up` is given.
pub fn challenge_with(
    scheme: &str,
    error: Option<(ErrorCode, &str)>,
    algs: Option<&str>,
    step_up: Option<&StepUp>,
) -> String {
    let mut params = Vec::new();
    if let Some((code, description)) = error {
        let d: String = description
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .collect();
        params.push(format!("error=\"{}\"", code.as_str()));
        params.push(format!("error_description=\"{d}\""));
    }
    if let Some(a) = algs {
        params.push(format!("algs=\"{a}\""));
    }
    if let Some(s) = step_up {
        let clean = |v: &str| -> String {
            v.chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                .collect()
        };
        if !s.acr_values.is_empty() {
            params.push(format!("acr_values=\"{}\"", clean(&s.acr_values.join(" "))));
        }
        if let Some(m) = s.max_age {
            params.push(format!("max_age={m}"));
        }
    }
    if params.is_empty() {
        scheme.to_owned()
    } else {
        format!("{scheme} {}", params.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc9470_3_the_step_up_challenge_round_trips() {
        let s = StepUp {
            acr_values: vec![
                "urn:keybound:acr:passkey".into(),
                "urn:keybound:acr:mfa".into(),
            ],
            max_age: Some(300),
        };
        let c = challenge_with(
            "DPoP",
            Some((
                ErrorCode::InsufficientUserAuthentication,
                "a passkey is needed, \"now\"",
            )),
            Some("ES256 EdDSA"),
            Some(&s),
        );
        assert_eq!(
            c,
            "DPoP error=\"insufficient_user_authentication\", error_description=\"a passkey is needed, now\", \
algs=\"ES256 EdDSA\", acr_values=\"urn:keybound:acr:passkey urn:keybound:acr:mfa\", max_age=300"
        );
        assert_eq!(StepUp::from_challenge(&c), Some(s.clone()));
        // RFC 9470 §3's own example, Bearer, and another error
        let example = r#"Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR""#;
        assert_eq!(
            StepUp::from_challenge(example).unwrap().acr_values,
            ["myACR"]
        );
        assert_eq!(
            StepUp::from_challenge(r#"Bearer error="insufficient_user_authentication", max_age=5"#)
                .unwrap()
                .max_age,
            Some(5)
        );
        assert_eq!(
            StepUp::from_challenge(r#"DPoP error="invalid_token""#),
            None
        );
        assert_eq!(StepUp::from_challenge("DPoP"), None);
        assert_eq!(
            s.authorization_params(),
            [
                (
                    "acr_values",
                    "urn:keybound:acr:passkey urn:keybound:acr:mfa".to_owned()
                ),
                ("max_age", "300".to_owned())
            ]
        );
    }

    #[test]
    fn error_codes_serialize_as_registered_strings() {
        for code in [
            ErrorCode::InvalidDpopProof,
            ErrorCode::UseDpopNonce,
            ErrorCode::SlowDown,
            ErrorCode::InsufficientUserAuthentication,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
        let e: ErrorResponse =
            serde_json::from_value(json!({"error":"authorization_pending"})).unwrap();
        assert_eq!(e.error, ErrorCode::AuthorizationPending);
    }

    #[test]
    fn token_request_by_grant_type() {
        let r: TokenRequest = serde_json::from_value(json!({
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS"
        }))
        .unwrap();
        assert!(matches!(r, TokenRequest::DeviceCode { .. }));
        let bad = serde_json::from_value::<TokenRequest>(json!({"grant_type":"password"}));
        assert!(bad.is_err());
    }

    #[test]
    fn discovery_reads_both_token_binding_generations() {
        let old: ProviderMetadata = serde_json::from_value(json!({
            "issuer":"https://op","authorization_endpoint":"a","token_endpoint":"t","jwks_uri":"j",
            "op_id_token_token_binding_supported": true
        }))
        .unwrap();
        assert!(old.supports_token_bound_id_tokens());
        let new: ProviderMetadata = serde_json::from_value(json!({
            "issuer":"https://op","authorization_endpoint":"a","token_endpoint":"t","jwks_uri":"j",
            "id_token_token_binding_cnf_values_supported": ["tbh"],
            "scopes_supported": ["openid","bound_key"],
            "x_custom": 1
        }))
        .unwrap();
        assert!(new.supports_token_bound_id_tokens());
        assert!(new.supports_key_binding());
        assert_eq!(new.extra.get("x_custom"), Some(&json!(1)));
    }

    #[test]
    fn response_types_of_openid_connect() {
        for (s, canonical) in [
            ("code", "code"),
            ("id_token", "id_token"),
            ("token id_token", "id_token token"),
            ("id_token code", "code id_token"),
            ("code token", "code token"),
            ("token code id_token", "code id_token token"),
        ] {
            assert_eq!(
                ResponseType::parse(s).map(ResponseType::as_str),
                Some(canonical),
                "{s}"
            );
        }
        for s in [
            "",
            "token",
            "none",
            "code code",
            "code idtoken",
            "code  id_token  id_token",
        ] {
            assert_eq!(ResponseType::parse(s), None, "{s}");
        }
        assert!(!ResponseType::CODE.front_channel_tokens());
    }

    #[test]
    fn id_jag_request_form() {
        let r = TokenExchangeRequest {
            scope: Some("orders.read".into()),
            ..TokenExchangeRequest::id_jag("idt", "https://as.b.example")
        };
        assert_eq!(
            r.form(),
            vec![
                ("grant_type", grant_type::TOKEN_EXCHANGE),
                ("subject_token", "idt"),
                ("subject_token_type", token_type::ID_TOKEN),
                ("requested_token_type", token_type::ID_JAG),
                ("audience", "https://as.b.example"),
                ("scope", "orders.read"),
            ]
        );
    }

    #[test]
    fn token_exchange_actor_rule() {
        let t = TokenExchangeRequest {
            actor_token: Some("x".into()),
            ..TokenExchangeRequest::default()
        };
        assert!(t.check_actor().is_err());
    }
}
