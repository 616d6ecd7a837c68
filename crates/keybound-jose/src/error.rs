//! One error type for the crate; messages say what was expected and what was found.

/// Everything that can go wrong parsing or checking JOSE objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// base64url input contained `=` padding.
    #[error("base64url: expected no padding, got '='")]
    Base64Padding,
    /// base64url input contained a byte outside `A-Z a-z 0-9 - _` or had a bad length/trailing bits.
    #[error("base64url: {0}")]
    Base64(String),
    /// JSON did not parse or had the wrong shape.
    #[error("JSON: {0}")]
    Json(String),
    /// A JWK meant to be public carried a private member.
    #[error("JWK: expected a public key, got private member '{0}'")]
    PrivateMember(&'static str),
    /// `kty` is not one keybound supports.
    #[error("JWK: expected kty EC, OKP or RSA, got '{0}'")]
    UnsupportedKty(String),
    /// `crv` is not one keybound supports for the `kty`.
    #[error("JWK: expected crv {expected}, got '{got}'")]
    UnsupportedCurve {
        /// accepted values
        expected: &'static str,
        /// what the JWK said
        got: String,
    },
    /// A required member for the `kty` is missing.
    #[error("JWK: missing required member '{0}'")]
    MissingMember(&'static str),
    /// A coordinate or key has the wrong length for its curve.
    #[error("JWK: member '{member}' expected {expected} bytes, got {got}")]
    BadLength {
        /// member name
        member: &'static str,
        /// expected byte length
        expected: usize,
        /// actual byte length
        got: usize,
    },
    /// The EC point is not on the curve (or is otherwise not a valid public key).
    #[error("JWK: the point (x, y) is not on curve {0}")]
    PointNotOnCurve(&'static str),
    /// RSA modulus too small or too large.
    #[error("JWK: RSA modulus expected 2048..=8192 bits, got {0} bits")]
    RsaKeySize(usize),
    /// RSA `n` or `e` has a leading zero octet or is otherwise malformed.
    #[error("JWK: RSA member '{0}' is not a minimal big-endian unsigned integer")]
    RsaEncoding(&'static str),
    /// The JWS compact serialization does not have exactly three segments.
    #[error("JWS: expected 3 dot-separated segments, got {0}")]
    Segments(usize),
    /// The JWS header `alg` is `none`.
    #[error("JWS: alg 'none' is never accepted")]
    AlgNone,
    /// The JWS header `alg` is an HMAC algorithm; keybound only verifies asymmetric signatures.
    #[error("JWS: alg '{0}' is a MAC; expected an asymmetric signature algorithm")]
    SymmetricAlg(String),
    /// The JWS header `alg` is unknown.
    #[error("JWS: alg '{0}' is not supported")]
    UnsupportedAlg(String),
    /// The algorithm is known but not in the caller's allow-list.
    #[error("JWS: alg {got} is not allowed here; expected one of {allowed}")]
    AlgNotAllowed {
        /// the JWS alg
        got: crate::Algorithm,
        /// the allow-list, comma-separated
        allowed: String,
    },
    /// The algorithm does not fit the key type or curve.
    #[error("JWS: alg {alg} cannot be used with a {key} key")]
    AlgKeyMismatch {
        /// the JWS alg
        alg: crate::Algorithm,
        /// description of the key
        key: String,
    },
    /// The header lists `crit` extensions keybound does not understand.
    #[error("JWS: crit lists extensions this verifier does not understand: {0}")]
    CritUnsupported(String),
    /// The header says `b64: false` (RFC 7797 unencoded payload).
    #[error("JWS: b64=false (unencoded payload) is not accepted")]
    UnencodedPayload,
    /// A header member has the wrong type.
    #[error("JWS: header member '{member}' expected {expected}")]
    HeaderMember {
        /// member name
        member: &'static str,
        /// what was expected
        expected: &'static str,
    },
    /// The signature does not verify.
    #[error("JWS: signature does not verify with the given key")]
    BadSignature,
    /// No key of a JWK Set can have made this signature: none has the JWS's `kid`, or none
    /// supports its `alg`.
    #[error("JWS: no key in the set matches kid {kid:?} and alg {alg}")]
    NoMatchingKey {
        /// the JWS `kid`
        kid: Option<String>,
        /// the JWS `alg`
        alg: crate::Algorithm,
    },
    /// Signing failed in the crypto library.
    #[error("crypto: signing failed")]
    SigningFailed,
    /// A private key could not be parsed or generated.
    #[error("private key: {0}")]
    PrivateKey(String),
    /// A thumbprint string is not 43 base64url characters encoding 32 bytes.
    #[error("thumbprint: expected 43 base64url characters (SHA-256), got '{0}'")]
    BadThumbprint(String),
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e.to_string())
    }
}
