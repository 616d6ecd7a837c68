//! The one error type of keybound-verify, and its HTTP form (RFC 9449 §7.1 challenge).
//!
//! Failures of what the verifier depends on (fetching the issuer's keys, the replay cache's
//! storage) keep the underlying error as their [`source`](std::error::Error::source): the
//! message sent to the client says only what it can act on, the source tells the operator why.

use keybound_proto::wire::ErrorCode;

/// An underlying error kept as a source.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a presentation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `ID-Token` header.
    #[error("no ID Token: send it in the ID-Token header with a DPoP proof")]
    MissingIdToken,
    /// No proof of possession.
    #[error("no proof of possession: a key-bound ID Token is accepted only with a DPoP proof by its cnf key")]
    MissingProof,
    /// The ID Token's issuer is not trusted here.
    #[error("ID Token issuer '{0}' is not trusted by this service")]
    UntrustedIssuer(String),
    /// The ID Token failed validation.
    #[error("{0}")]
    IdToken(keybound_proto::Error),
    /// The issuer's keys do not include the `kid`.
    #[error("issuer keys: {0}")]
    Jwks(String),
    /// The issuer's keys could not be fetched or read; the fetch's error is the source.
    #[error("issuer keys: could not fetch {url}")]
    JwksUnavailable {
        /// the JWKS URL
        url: String,
        /// why the fetch failed
        #[source]
        source: Cause,
    },
    /// The proof failed a check.
    #[error("{0}")]
    Proof(keybound_proto::Error),
    /// This service requires a nonce; retry with this one.
    #[error("this service requires a DPoP nonce: retry with the DPoP-Nonce value")]
    NonceRequired(String),
    /// The proof was seen before.
    #[error("proof replayed: its jti was already used; make a fresh proof for every request")]
    Replay,
    /// The replay cache is full of live entries; refusing rather than forgetting.
    #[error("too many recent proofs to track; try again shortly")]
    ReplayCacheFull,
    /// The replay cache's storage failed; refusing rather than accepting a proof it could not
    /// record.
    #[error("the replay cache is unavailable; try again shortly")]
    ReplayCacheUnavailable(#[source] Cause),
    /// The verifier's configuration cannot be used.
    #[error("verifier configuration: {0}")]
    Config(String),
    /// No access token in the `Authorization` header.
    #[error("no access token: send Authorization: DPoP <token> with a DPoP proof")]
    MissingAccessToken,
    /// The access token failed a rule every resource server shares (RFC 9068 §4:
    /// `keybound_proto::access_token`).
    #[error("{0}")]
    AccessToken(keybound_proto::Error),
    /// This service accepts only DPoP-bound access tokens.
    #[error("this service accepts only DPoP-bound access tokens (cnf.jkt)")]
    BearerNotAccepted,
    /// RFC 9470 §3: the token is valid, the End-User's sign-in is weaker or older than this
    /// resource demands; the challenge names what would do.
    #[error("{why}")]
    InsufficientUserAuthentication {
        /// what the resource demands
        required: crate::StepUp,
        /// how the token falls short
        why: String,
    },
}

impl VerifyError {
    /// The RFC 6750 / RFC 9449 error code for the `WWW-Authenticate` challenge.
    pub fn code(&self) -> ErrorCode {
        match self {
            VerifyError::MissingIdToken
            | VerifyError::MissingAccessToken
            | VerifyError::AccessToken(_)
            | VerifyError::BearerNotAccepted
            | VerifyError::UntrustedIssuer(_)
            | VerifyError::IdToken(_)
            | VerifyError::Jwks(_)
            | VerifyError::JwksUnavailable { .. } => ErrorCode::InvalidToken,
            VerifyError::NonceRequired(_) => ErrorCode::UseDpopNonce,
            VerifyError::InsufficientUserAuthentication { .. } => {
                ErrorCode::InsufficientUserAuthentication
            }
            VerifyError::ReplayCacheFull | VerifyError::ReplayCacheUnavailable(_) => {
                ErrorCode::TemporarilyUnavailable
            }
            VerifyError::Config(_) => ErrorCode::ServerError,
            VerifyError::MissingProof | VerifyError::Proof(_) | VerifyError::Replay => {
                ErrorCode::InvalidDpopProof
            }
        }
    }
}
