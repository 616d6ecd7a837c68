//! The one error type of keybound-rp.

use keybound_proto::wire::ErrorResponse;

/// What can go wrong signing in, refreshing or presenting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpError {
    /// Discovery or JWKS retrieval failed.
    #[error("discovery: {0}")]
    Discovery(String),
    /// The OP lacks something this RP needs.
    #[error("the OP does not support this: {0}")]
    NotSupported(String),
    /// The redirect back is not acceptable.
    #[error("callback: {0}")]
    Callback(String),
    /// The OP answered with an OAuth error.
    #[error("the OP refused: {} ({})", .0.error.as_str(), .0.error_description.as_deref().unwrap_or(""))]
    Op(ErrorResponse),
    /// The token response is unusable.
    #[error("token: {0}")]
    Token(String),
    /// The ID Token failed validation.
    #[error("ID Token: {0}")]
    IdToken(keybound_proto::Error),
    /// A `bound_key` request came back without a binding to our key (silent downgrade).
    #[error("{0}")]
    NotBound(String),
    /// Building a proof failed.
    #[error("proof: {0}")]
    Proto(keybound_proto::Error),
    /// Key generation or parsing failed.
    #[error("key: {0}")]
    Key(String),
    /// The network failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// Reading or writing the session file failed.
    #[error("session file: {0}")]
    SessionFile(String),
}
