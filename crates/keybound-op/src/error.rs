//! The one error type of keybound-op: an OAuth error code, a message a developer can act on,
//! and, for `use_dpop_nonce`, the nonce to send. The server maps it to HTTP in one place.

use keybound_proto::wire::ErrorCode;
use keybound_store::StoreError;

/// A refusal, or an internal failure, at the token, revocation or introspection endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {description}")]
pub struct OpError {
    /// OAuth error code
    pub code: ErrorCode,
    /// `error_description`
    pub description: String,
    /// a fresh nonce for `DPoP-Nonce` (with `use_dpop_nonce`)
    pub dpop_nonce: Option<String>,
}

impl OpError {
    /// An error with a description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OpError {
            code,
            description: description.into(),
            dpop_nonce: None,
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

    /// `invalid_dpop_proof`
    pub fn invalid_dpop_proof(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidDpopProof, d)
    }

    /// `server_error`; the detail goes to the log, not to the client.
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

impl From<StoreError> for OpError {
    fn from(_: StoreError) -> Self {
        OpError::server_error()
    }
}
