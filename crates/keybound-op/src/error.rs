//! The one error type of keybound-op, and the one function that decides how each error goes on
//! the wire ([`OpError::wire`]).
//!
//! Every refusal carries its cause as data, not as a pre-chosen string: a protocol error from
//! `keybound-proto` (a DPoP check that failed), a store error, a binding mismatch, or a policy
//! refusal with its OAuth code. Call sites say *what* went wrong; [`OpError::wire`] alone says
//! which OAuth error code and HTTP status that becomes at each kind of endpoint, so two
//! endpoints cannot disagree about the same failure. Internal failures (store, signing,
//! configuration) keep their cause for the operator's log and show the client only a generic
//! message.

use keybound_jose::Jkt;
use keybound_proto::wire::ErrorCode;
use keybound_store::StoreError;

/// A refusal, or an internal failure, at any endpoint of the provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The request breaks a rule of OAuth, OpenID Connect or this provider's policy; the code
    /// says which (RFC 6749 §5.2, OIDC Core 3.1.2.6, RFC 8628 §3.5).
    #[error("{description}")]
    Refused {
        /// OAuth error code
        code: ErrorCode,
        /// what went wrong and what to do instead
        description: String,
    },
    /// A DPoP proof failed a check of RFC 9449 §4.3 or of Key Binding (`c_s256`).
    #[error("{0}")]
    Proof(keybound_proto::Error),
    /// The proof lacks a nonce this server demands, or carries one it did not issue or no
    /// longer accepts (DP-V10). `nonce` is the fresh one to retry with, when nonces are in use.
    #[error("{reason}")]
    Nonce {
        /// which nonce check failed
        reason: keybound_proto::Error,
        /// the fresh nonce for the `DPoP-Nonce` header
        nonce: Option<String>,
    },
    /// The proof was made by another key than the one the grant or token is bound to
    /// (RFC 9449 §10 and §7.1, KB-OP6, KB-RF2).
    #[error("the DPoP proof key {got} is not the key this {what} is bound to ({expected})")]
    KeyMismatch {
        /// the bound key
        expected: Jkt,
        /// the proof's key
        got: Jkt,
        /// what is bound: "authorization code", "refresh token", "access token", …
        what: &'static str,
    },
    /// The proof's `jti` was already used with this key, method and URI (RFC 9449 §11.1).
    #[error(
        "DPoP proof replayed: this jti was already used; make a fresh proof for every request"
    )]
    Replay,
    /// A protected resource was called without any credentials (RFC 6750 §3.1: the challenge
    /// carries no error code).
    #[error("no access token: send Authorization: DPoP <token> with a DPoP proof")]
    NoCredentials,
    /// Too many attempts; retry after the given number of seconds.
    #[error("{description}")]
    Throttled {
        /// what was limited
        description: String,
        /// seconds until a retry may succeed
        retry_after: u64,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Something inside the provider failed (signing, configuration).
    #[error("internal: {0}")]
    Internal(String),
}

/// The kind of endpoint an error is answered at. It decides the HTTP status and, for a bound
/// key that does not match, the error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// Token, device authorization, revocation, introspection: a JSON error (RFC 6749 §5.2).
    Token,
    /// A protected resource (userinfo): `401`/`403` with `WWW-Authenticate` (RFC 6750 §3,
    /// RFC 9449 §7.1).
    Resource,
    /// The authorization endpoint and the End-User's pages: a redirect with the error, or an
    /// HTML error page.
    Page,
}

/// An error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// HTTP status
    pub status: u16,
    /// OAuth error code; `None` only for a resource request without credentials
    pub code: Option<ErrorCode>,
    /// `error_description`: safe to show (never an internal cause)
    pub description: String,
    /// a fresh `DPoP-Nonce` to send
    pub dpop_nonce: Option<String>,
    /// seconds for `Retry-After`
    pub retry_after: Option<u64>,
}

/// What the client sees of an internal failure; the cause goes to the operator's log.
pub const INTERNAL_DESCRIPTION: &str = "the server could not complete the request";

impl OpError {
    /// A policy or protocol refusal with `code`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OpError::Refused {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    /// `invalid_client`
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }

    /// `invalid_grant`
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }

    /// `invalid_dpop_proof` for a proof that is missing or unusable for this grant.
    pub fn invalid_dpop_proof(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidDpopProof, d)
    }

    /// `invalid_token` (protected resources)
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, d)
    }

    /// An internal failure with its cause (logged, never shown).
    pub fn internal(cause: impl Into<String>) -> Self {
        OpError::Internal(cause.into())
    }

    /// Whether this is the server's fault (logged with its cause; the client sees
    /// [`INTERNAL_DESCRIPTION`]).
    pub fn is_internal(&self) -> bool {
        matches!(self, OpError::Store(_) | OpError::Internal(_))
    }

    /// The one mapping from an error to the wire: OAuth code, HTTP status, description and
    /// headers, at endpoint kind `at`.
    #[allow(clippy::match_same_arms)] // one arm per cause reads as the rule it is
    pub fn wire(&self, at: Endpoint) -> WireError {
        let (code, dpop_nonce, retry_after) = match self {
            OpError::Refused { code, .. } => (Some(*code), None, None),
            OpError::Proof(_) | OpError::Replay => (Some(ErrorCode::InvalidDpopProof), None, None),
            // without a fresh nonce to offer, "use_dpop_nonce" would leave the client stuck
            OpError::Nonce { nonce: None, .. } => (Some(ErrorCode::InvalidDpopProof), None, None),
            OpError::Nonce { nonce, .. } => (Some(ErrorCode::UseDpopNonce), nonce.clone(), None),
            // the grant is bound elsewhere (key-binding.md §10.2); at a resource the token's
            // binding does not match (RFC 9449 §7.1 example: invalid_token)
            OpError::KeyMismatch { .. } => (
                Some(match at {
                    Endpoint::Resource => ErrorCode::InvalidToken,
                    _ => ErrorCode::InvalidGrant,
                }),
                None,
                None,
            ),
            OpError::NoCredentials => (None, None, None),
            OpError::Throttled { retry_after, .. } => (
                Some(ErrorCode::TemporarilyUnavailable),
                None,
                Some(*retry_after),
            ),
            // the database is away: nothing was decided, try again shortly (RFC 9110 §15.6.4)
            OpError::Store(e) if e.is_unavailable() => {
                (Some(ErrorCode::ServerError), None, Some(1))
            }
            OpError::Store(_) | OpError::Internal(_) => (Some(ErrorCode::ServerError), None, None),
        };
        let description = if self.is_internal() {
            INTERNAL_DESCRIPTION.to_owned()
        } else {
            self.to_string()
        };
        WireError {
            status: status(at, code, self),
            code,
            description,
            dpop_nonce,
            retry_after,
        }
    }

    /// The OAuth error code as the token endpoint answers it (`invalid_token` for a
    /// resource request without credentials).
    pub fn code(&self) -> ErrorCode {
        self.wire(Endpoint::Token)
            .code
            .unwrap_or(ErrorCode::InvalidToken)
    }

    /// The description the client sees.
    pub fn description(&self) -> String {
        self.wire(Endpoint::Token).description
    }

    /// The fresh nonce to send with `use_dpop_nonce`.
    pub fn dpop_nonce(&self) -> Option<&str> {
        match self {
            OpError::Nonce { nonce, .. } => nonce.as_deref(),
            _ => None,
        }
    }
}

/// HTTP status: RFC 6749 §5.2 at the token endpoint and registration (400, `invalid_client` and
/// `invalid_token` 401), RFC 6750 §3.1
/// at resources (401, `insufficient_scope` 403, `invalid_request` 400), plain HTTP meaning on
/// pages. Internal failures are 500 (503 while the database is unreachable) and throttling 429
/// everywhere.
#[allow(clippy::match_same_arms)] // one arm per rule reads as the table it is
fn status(at: Endpoint, code: Option<ErrorCode>, e: &OpError) -> u16 {
    if matches!(e, OpError::Store(s) if s.is_unavailable()) {
        return 503;
    }
    if e.is_internal() {
        return 500;
    }
    if matches!(e, OpError::Throttled { .. }) {
        return 429;
    }
    match (at, code) {
        (Endpoint::Token, Some(ErrorCode::InvalidClient)) => 401,
        // registration without a usable initial access token (RFC 7591 §3, RFC 6750 §3.1)
        (Endpoint::Token, Some(ErrorCode::InvalidToken)) => 401,
        (Endpoint::Token, _) => 400,
        (Endpoint::Resource, Some(ErrorCode::InsufficientScope)) => 403,
        (Endpoint::Resource, Some(ErrorCode::InvalidRequest)) => 400,
        (Endpoint::Resource, _) => 401,
        (Endpoint::Page, Some(ErrorCode::AccessDenied)) => 403,
        (Endpoint::Page, Some(ErrorCode::LoginRequired | ErrorCode::InvalidClient)) => 401,
        (Endpoint::Page, _) => 400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(e: StoreError) -> WireError {
        OpError::Store(e).wire(Endpoint::Token)
    }

    #[test]
    fn an_unreachable_database_is_503_with_retry_after_and_no_cause() {
        let w = store(StoreError::Unavailable("pool timed out".into()));
        assert_eq!(
            (w.status, w.code, w.retry_after),
            (503, Some(ErrorCode::ServerError), Some(1))
        );
        assert_eq!(w.description, INTERNAL_DESCRIPTION);
        let w = store(StoreError::Database("syntax error".into()));
        assert_eq!(
            (w.status, w.code, w.retry_after),
            (500, Some(ErrorCode::ServerError), None)
        );
    }
}
