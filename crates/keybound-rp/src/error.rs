//! The one error type of keybound-rp.
//!
//! Failures below the protocol (the network, the session file, a key, an answer that does not
//! parse) keep the underlying error as their [`source`](std::error::Error::source), so a caller
//! can walk the chain (`anyhow`'s `{:#}` prints it) instead of reading a flattened string.
//! Protocol refusals carry the OP's own error ([`RpError::Op`]) or a sentence saying what was
//! wrong.

use std::path::PathBuf;

use keybound_proto::wire::ErrorResponse;

/// An underlying error kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong signing in, refreshing or presenting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpError {
    /// Discovery found an OP that is not the configured one, or no usable document.
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
    /// An answer (discovery, JWKS, token, device or userinfo response, ID-JAG) could not be
    /// read; the parse error is the source.
    #[error("could not read the {what}")]
    Decode {
        /// which answer
        what: String,
        /// why it did not parse
        #[source]
        source: BoxError,
    },
    /// The ID Token failed validation.
    #[error("ID Token: {0}")]
    IdToken(keybound_proto::Error),
    /// A `bound_key` request came back without a binding to our key (silent downgrade).
    #[error("{0}")]
    NotBound(String),
    /// Building a proof failed.
    #[error("proof: {0}")]
    Proto(keybound_proto::Error),
    /// Generating, parsing or using a key failed.
    #[error("key")]
    Key(#[source] keybound_jose::Error),
    /// The request did not get an HTTP answer (connection, TLS, timeout); the transport's
    /// error is the source.
    #[error("HTTP request to {url} failed")]
    Http {
        /// the request's URL
        url: String,
        /// the transport's error
        #[source]
        source: BoxError,
    },
    /// Reading or writing the session file failed.
    #[error("session file {}", .path.display())]
    SessionFile {
        /// the file
        path: PathBuf,
        /// the I/O or JSON error
        #[source]
        source: BoxError,
    },
}

impl RpError {
    /// A request to `url` that got no answer, because of `source` (for [`crate::Transport`]
    /// implementations).
    pub fn http(url: &str, source: impl Into<BoxError>) -> Self {
        RpError::Http {
            url: url.to_owned(),
            source: source.into(),
        }
    }

    /// An answer described by `what` that did not parse.
    pub(crate) fn decode(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        RpError::Decode {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The session file at `path` could not be read or written.
    pub(crate) fn session_file(path: &std::path::Path, source: impl Into<BoxError>) -> Self {
        RpError::SessionFile {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}
