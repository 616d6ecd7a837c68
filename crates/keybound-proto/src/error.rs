//! The one error type of keybound-proto. Each variant is one failed rule, named after the
//! check it implements (DP-V*, OIDC Core 3.1.3.7 step, Key Binding rule), with a message a
//! developer can act on. The server maps these to OAuth error codes in one place.

use keybound_jose::{Error as JoseError, Jkt};

/// Every protocol rule keybound-proto can find broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- DPoP (RFC 9449 §4.3) ----
    /// DP-V1: no `DPoP` header at all.
    #[error("DPoP: expected a DPoP header with a proof, got none")]
    DpopMissing,
    /// DP-V1: more than one `DPoP` header.
    #[error("DPoP: expected exactly one DPoP header, got {0}")]
    DpopMultipleHeaders(usize),
    /// DP-V2: the value is not a well-formed JWS/JWT.
    #[error("DPoP: proof is not a well-formed JWT: {0}")]
    DpopMalformed(JoseError),
    /// DP-V3: a required claim is missing or has the wrong type.
    #[error("DPoP: expected claim '{0}' in the proof")]
    DpopMissingClaim(&'static str),
    /// DP-V3: a claim has the wrong JSON type.
    #[error("DPoP: claim '{claim}' expected {expected}")]
    DpopClaimType {
        /// claim name
        claim: &'static str,
        /// expected type
        expected: &'static str,
    },
    /// DP-V4: header `typ` is not `dpop+jwt`.
    #[error("DPoP: expected header typ 'dpop+jwt', got {0:?}")]
    DpopTyp(Option<String>),
    /// DP-V5: `alg` is `none`, a MAC, unknown, or not allowed by policy.
    #[error("DPoP: unacceptable alg: {0}")]
    DpopAlg(JoseError),
    /// DP-V2/V6: header has no `jwk`.
    #[error("DPoP: expected a 'jwk' member in the proof header")]
    DpopMissingJwk,
    /// DP-V6: the signature does not verify with the header `jwk`.
    #[error("DPoP: signature does not verify with the key in the proof header")]
    DpopSignature,
    /// DP-V7: the header `jwk` carries private key material, or is not a valid public key.
    #[error("DPoP: header jwk must be a valid public key: {0}")]
    DpopJwk(JoseError),
    /// DP-V8: `htm` differs from the request method.
    #[error("DPoP: expected htm '{expected}', got '{got}'")]
    DpopHtm {
        /// request method
        expected: String,
        /// proof `htm`
        got: String,
    },
    /// DP-V9: `htu` differs from the request URI (after normalisation).
    #[error("DPoP: expected htu '{expected}', got '{got}'")]
    DpopHtu {
        /// normalised request URI
        expected: String,
        /// proof `htu` (normalised if it parsed)
        got: String,
    },
    /// DP-V10: the server requires a nonce and the proof has none.
    #[error("DPoP: this server requires a nonce; retry with the DPoP-Nonce value")]
    DpopNonceRequired,
    /// DP-V10: the nonce is not one this server issued, or is stale.
    #[error("DPoP: the nonce is not valid or has expired; retry with the DPoP-Nonce value")]
    DpopNonceInvalid,
    /// DP-V11: `iat` is older than the acceptance window.
    #[error(
        "DPoP: proof iat {iat} is more than {max_age}s before now ({now}); make a fresh proof"
    )]
    DpopIatTooOld {
        /// proof iat
        iat: u64,
        /// verifier time
        now: u64,
        /// window
        max_age: u64,
    },
    /// DP-V11: `iat` is too far in the future.
    #[error(
        "DPoP: proof iat {iat} is more than {leeway}s after now ({now}); check the client clock"
    )]
    DpopIatInFuture {
        /// proof iat
        iat: u64,
        /// verifier time
        now: u64,
        /// allowed future skew
        leeway: u64,
    },
    /// DP-V12: `ath` does not match the presented token.
    #[error("DPoP: expected ath '{expected}' (SHA-256 of the presented token), got {got:?}")]
    DpopAth {
        /// hash of the presented token
        expected: String,
        /// proof `ath`
        got: Option<String>,
    },
    /// DP-V12 / RFC 9449 §10: the proof key is not the key the token or code is bound to.
    #[error("DPoP: proof key thumbprint {got} does not match the bound key {expected}")]
    DpopKeyMismatch {
        /// bound thumbprint
        expected: Jkt,
        /// proof key thumbprint
        got: Jkt,
    },
    /// Key Binding: the proof lacks `c_s256` (or `c_hash` on the draft-00 profile).
    #[error("DPoP: expected claim '{0}' binding the proof to the code")]
    DpopCodeHashMissing(&'static str),
    /// Key Binding: `c_s256` is not base64url(SHA-256(code)).
    #[error(
        "DPoP: claim '{claim}' expected '{expected}' (base64url SHA-256 of the code), got '{got}'"
    )]
    DpopCodeHash {
        /// claim name
        claim: &'static str,
        /// expected hash
        expected: String,
        /// proof value
        got: String,
    },
    /// `jti` is empty or longer than policy allows.
    #[error("DPoP: jti must be 1..={max} characters, got {len}")]
    DpopJti {
        /// length received
        len: usize,
        /// policy maximum
        max: usize,
    },
    /// A URI (`htu` or request URI) cannot be parsed as an absolute http(s) URI.
    #[error("expected an absolute http or https URI, got '{0}'")]
    BadUri(String),

    // ---- Key Binding request parameters ----
    /// `dpop_jkt` is not a SHA-256 JWK thumbprint.
    #[error("dpop_jkt: {0}")]
    BadDpopJkt(JoseError),
    /// `bound_key` requested without `dpop_jkt`.
    #[error("scope bound_key requires a dpop_jkt parameter (the JWK SHA-256 thumbprint of the key to bind)")]
    BoundKeyWithoutDpopJkt,
    /// A request parameter is invalid.
    #[error("parameter '{name}': {reason}")]
    Parameter {
        /// parameter name
        name: &'static str,
        /// what is wrong
        reason: String,
    },

    // ---- ID Token (OIDC Core 3.1.3.7 + Key Binding) ----
    /// The ID Token is not a well-formed JWS or its claims have the wrong shape.
    #[error("ID Token: malformed: {0}")]
    IdTokenMalformed(String),
    /// Step 6/7: `alg` not acceptable.
    #[error("ID Token: unacceptable alg: {0}")]
    IdTokenAlg(JoseError),
    /// Step 6: no key in the JWKS matches the `kid`.
    #[error("ID Token: no key in the issuer's JWKS matches kid {0:?}")]
    IdTokenUnknownKid(Option<String>),
    /// Step 6: signature does not verify.
    #[error("ID Token: signature does not verify with the issuer's keys")]
    IdTokenSignature,
    /// Step 2: `iss` differs.
    #[error("ID Token: expected iss '{expected}', got '{got}'")]
    IdTokenIssuer {
        /// configured issuer
        expected: String,
        /// token iss
        got: String,
    },
    /// Step 3: `aud` does not contain the client id.
    #[error("ID Token: expected aud to contain '{expected}', got {got:?}")]
    IdTokenAudience {
        /// accepted audiences
        expected: String,
        /// token aud
        got: Vec<String>,
    },
    /// Step 3: `aud` contains an audience that is not trusted.
    #[error("ID Token: aud contains untrusted audience '{0}'")]
    IdTokenUntrustedAudience(String),
    /// Step 4/5: `azp` missing with several audiences, or not the client id.
    #[error("ID Token: expected azp '{expected}', got {got:?}")]
    IdTokenAzp {
        /// client id
        expected: String,
        /// token azp
        got: Option<String>,
    },
    /// Step 9: expired.
    #[error("ID Token: expired at {exp}, now is {now} (leeway {leeway}s)")]
    IdTokenExpired {
        /// token exp
        exp: u64,
        /// verifier time
        now: u64,
        /// allowed skew
        leeway: u64,
    },
    /// Step 10: `iat` in the future or too old.
    #[error("ID Token: iat {iat} is outside the acceptable window at {now}")]
    IdTokenIat {
        /// token iat
        iat: u64,
        /// verifier time
        now: u64,
    },
    /// Step 11: `nonce` missing or different.
    #[error("ID Token: expected nonce '{expected}', got {got:?}")]
    IdTokenNonce {
        /// the nonce sent
        expected: String,
        /// token nonce
        got: Option<String>,
    },
    /// Step 12: `acr` not acceptable.
    #[error("ID Token: acr {got:?} is not one of the requested {expected:?}")]
    IdTokenAcr {
        /// requested values
        expected: Vec<String>,
        /// token acr
        got: Option<String>,
    },
    /// Step 13: `auth_time` missing or too old for `max_age`.
    #[error("ID Token: auth_time {auth_time:?} does not satisfy max_age {max_age}s at {now}")]
    IdTokenAuthTime {
        /// token auth_time
        auth_time: Option<u64>,
        /// requested max_age
        max_age: u64,
        /// verifier time
        now: u64,
    },
    /// Key Binding: header `typ` not the expected one.
    #[error("ID Token: expected header typ {expected}, got {got:?}")]
    IdTokenTyp {
        /// accepted values
        expected: String,
        /// header typ
        got: Option<String>,
    },
    /// Key Binding: the token has no `cnf.jwk` (it is not bound).
    #[error("ID Token: expected a key-bound token with cnf.jwk, got none (silent downgrade?)")]
    IdTokenNotBound,
    /// RFC 7800 / Key Binding: `cnf` is malformed or `cnf.jwk` is not a public key.
    #[error("ID Token: invalid cnf: {0}")]
    Cnf(String),
    /// Key Binding: `thumbprint(cnf.jwk)` differs from the expected key.
    #[error("ID Token: cnf.jwk thumbprint {got} does not match the expected key {expected}")]
    IdTokenCnfMismatch {
        /// expected jkt
        expected: Jkt,
        /// thumbprint of cnf.jwk
        got: Jkt,
    },

    // ---- RFC 9068 access tokens ----
    /// The access token is not a usable JWT, or its claims lack what RFC 9068 §2.2 requires.
    #[error("access token: {0}")]
    AccessToken(String),
    /// RFC 9068 §4: header `typ` is not `at+jwt` (or `application/at+jwt`).
    #[error("access token: header typ must be 'at+jwt' (RFC 9068), got {0:?}")]
    AccessTokenTyp(Option<String>),
    /// RFC 9068 §4: not signed by a key of the issuer with an allowed algorithm.
    #[error("access token: the signature does not verify with the issuer's keys ({0})")]
    AccessTokenSignature(JoseError),
    /// RFC 9068 §4: `iss` is not the expected issuer.
    #[error("access token: expected iss '{expected}', got '{got}'")]
    AccessTokenIssuer {
        /// the issuer
        expected: String,
        /// token iss
        got: String,
    },
    /// RFC 9068 §4: `aud` names none of this resource's identifiers.
    #[error("access token: aud {got:?} names none of this resource's identifiers {expected:?}")]
    AccessTokenAudience {
        /// this resource's identifiers
        expected: Vec<String>,
        /// token aud
        got: Vec<String>,
    },
    /// RFC 9068 §4: expired.
    #[error("access token: expired at {exp}, now is {now} (leeway {leeway}s)")]
    AccessTokenExpired {
        /// token exp
        exp: u64,
        /// verifier time
        now: u64,
        /// allowed skew
        leeway: u64,
    },
    /// `iat` or `nbf` in the future.
    #[error("access token: {claim} {at} is in the future at {now} (leeway {leeway}s)")]
    AccessTokenNotYetValid {
        /// `iat` or `nbf`
        claim: &'static str,
        /// its value
        at: u64,
        /// verifier time
        now: u64,
        /// allowed skew
        leeway: u64,
    },
    /// RFC 9449 §7.1, §7.2: a DPoP-bound token goes with the `DPoP` scheme (and a proof), an
    /// unbound one with `Bearer`.
    #[error("{}", if *bound {
        "this access token is DPoP-bound: send it with the DPoP scheme (Authorization: DPoP) and a DPoP proof"
    } else {
        "this access token is not DPoP-bound: send it with the Bearer scheme"
    })]
    AccessTokenScheme {
        /// whether the token is DPoP-bound
        bound: bool,
    },
    /// RFC 9449 §6.1: `cnf` without a `jkt` this verifier can check.
    #[error(
        "access token: cnf carries no jkt; a confirmation this server cannot check is refused"
    )]
    AccessTokenCnf,

    // ---- Token Binding (RFC 8471/8473) ----
    /// The TokenBindingMessage bytes do not decode.
    #[error("Token Binding: malformed message: {0}")]
    TokenBindingMalformed(String),
    /// The signature over the EKM does not verify.
    #[error("Token Binding: signature does not verify over the exported keying material")]
    TokenBindingSignature,
    /// The key parameters or key are not supported or not acceptable.
    #[error("Token Binding: {0}")]
    TokenBindingKey(String),
    /// TBH-2: the HTTP message does not have exactly one provided binding / at most one referred.
    #[error("Token Binding: {0}")]
    TokenBindingHttp(String),

    // ---- presentations to a consuming component (docs/presentation.md) ----
    /// The presentation JWS has the wrong `typ`.
    #[error("presentation: expected typ '{expected}', got {got:?}")]
    PresentationTyp {
        /// expected typ
        expected: &'static str,
        /// header typ
        got: Option<String>,
    },
    /// The presentation is not signed by the ID Token's `cnf` key.
    #[error("presentation: signature does not verify with the ID Token's cnf.jwk key")]
    PresentationSignature,
    /// The presentation names another audience.
    #[error("presentation: expected aud '{expected}', got {got:?}")]
    PresentationAudience {
        /// the verifier
        expected: String,
        /// presentation aud
        got: Option<String>,
    },
    /// The presentation answers another challenge.
    #[error("presentation: the challenge does not match the one this verifier issued")]
    PresentationChallenge,
    /// The presentation is for another ID Token (`ith`).
    #[error("presentation: ith does not match the SHA-256 of the presented ID Token")]
    PresentationIdTokenHash,
    /// The presentation is too old, too new, or lacks a claim.
    #[error("presentation: {0}")]
    PresentationClaims(String),

    // ---- ID-JAG ----
    /// An ID-JAG fails one of its rules.
    #[error("ID-JAG: {0}")]
    IdJag(String),

    // ---- DBSC ----
    /// A Device Bound Session Credentials JWT fails one of its rules.
    #[error("DBSC: {0}")]
    Dbsc(String),
}

impl Error {
    /// Whether the caller should answer `use_dpop_nonce` (with a fresh `DPoP-Nonce`).
    pub fn is_nonce_error(&self) -> bool {
        matches!(self, Error::DpopNonceRequired | Error::DpopNonceInvalid)
    }
}
