//! DPoP proofs (RFC 9449): building, the §4.3 verification checklist, `htu` normalisation,
//! stateless nonces and replay keys.
//!
//! Verification is one function, [`verify`], that runs every check DP-V1…V12 in a fixed order
//! (signature first, so every later message is about a statement the key actually made) and
//! returns a [`VerifiedProof`]. It does not remember `jti`s: the caller stores the
//! [`ReplayEntry`] (store-backed at the OP, a bounded cache at a consuming component), which is
//! what keeps this crate free of I/O and lets several OP nodes share one replay store.
//!
//! [`check`] is the one step every verifier of proofs runs — the provider's token endpoint and
//! resources, and the consuming component: [`verify`], then the nonce answer (a fresh nonce to
//! retry with, never an empty one: a verifier without nonces refuses a nonce it cannot have
//! issued as a bad proof), then the `jti` recorded through the caller's replay store.
//! [`check_bound`] is the one bound-key check.
//!
//! Nonces are stateless ([`NonceSource`]): HKDF-SHA256 over a shared secret and a time step, as
//! node-oidc-provider does, so any node can check a nonce another node issued.

use std::fmt;

use aws_lc_rs::hkdf;
use keybound_jose::{b64, Algorithm, Error as JoseError, Jkt, Jws, PrivateKey, PublicJwk};
use serde_json::{Map, Value};

use crate::keybinding::{c_s256, Profile};
use crate::{Error, UnixTime};

/// The proof JWT `typ` (DP-V4).
pub const DPOP_TYP: &str = "dpop+jwt";
/// HTTP header carrying the proof.
pub const DPOP_HEADER: &str = "DPoP";
/// HTTP header carrying a server nonce.
pub const DPOP_NONCE_HEADER: &str = "DPoP-Nonce";

/// `ath` = base64url(SHA-256(ASCII(token))).
pub fn ath(token: &str) -> String {
    keybound_jose::sha256_b64(token.as_bytes())
}

/// What a verifier accepts, independent of any one request: [`DpopPolicy::default`] adjusted
/// with the `with_*` methods (the struct is `#[non_exhaustive]`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DpopPolicy {
    /// Allowed proof algorithms (DP-V5). Published as `dpop_signing_alg_values_supported`.
    pub allowed_algs: Vec<Algorithm>,
    /// How old `iat` may be, in seconds (default 60).
    pub max_age: u64,
    /// How far in the future `iat` may be, in seconds (default 5).
    pub max_future: u64,
    /// Longest accepted `jti` (default 256 characters), guarding replay-cache memory.
    pub max_jti_len: usize,
}

impl Default for DpopPolicy {
    fn default() -> Self {
        DpopPolicy {
            allowed_algs: Algorithm::ALL.to_vec(),
            max_age: 60,
            max_future: 5,
            max_jti_len: 256,
        }
    }
}

impl DpopPolicy {
    /// Accept only these proof algorithms.
    #[must_use]
    pub fn with_algs(mut self, algs: &[Algorithm]) -> Self {
        self.allowed_algs = algs.to_vec();
        self
    }

    /// Accept proofs whose `iat` is at most `seconds` old.
    #[must_use]
    pub fn with_max_age(mut self, seconds: u64) -> Self {
        self.max_age = seconds;
        self
    }

    /// Accept proofs whose `iat` is at most `seconds` ahead of the clock.
    #[must_use]
    pub fn with_max_future(mut self, seconds: u64) -> Self {
        self.max_future = seconds;
        self
    }

    /// Refuse `jti` values longer than `len` characters.
    #[must_use]
    pub fn with_max_jti_len(mut self, len: usize) -> Self {
        self.max_jti_len = len;
        self
    }
}

/// What the verifier requires of the nonce (DP-V10).
///
/// A nonce in a proof is never ignored: if the proof carries one, it must be one this verifier
/// issued and still accepts, whether or not nonces are demanded. Otherwise a client holding a
/// stale or forged nonce would be told nothing, and a server could not tell its own nonces
/// from anybody's.
#[derive(Debug, Clone, Copy)]
pub enum NonceCheck<'a> {
    /// This verifier issues no nonces: a proof without one passes, a proof carrying one is
    /// refused ([`Error::DpopNonceInvalid`]), since it cannot be a nonce this server gave.
    NotRequired,
    /// Nonces from this source are in use but not demanded: a proof may omit the nonce, but a
    /// nonce it carries must be one the source issued recently.
    Optional(&'a NonceSource),
    /// The proof must carry exactly this nonce.
    Exact(&'a str),
    /// The proof must carry a nonce that this stateless source issued recently.
    Stateless(&'a NonceSource),
}

impl<'a> NonceCheck<'a> {
    /// The check for a verifier whose nonces come from `source` (if any), demanding one when
    /// `required`. `None` when a nonce is required but there is no source to issue it: a
    /// configuration error the caller must report rather than accept proofs without nonces.
    pub fn policy(source: Option<&'a NonceSource>, required: bool) -> Option<Self> {
        match (source, required) {
            (Some(s), true) => Some(NonceCheck::Stateless(s)),
            (Some(s), false) => Some(NonceCheck::Optional(s)),
            (None, false) => Some(NonceCheck::NotRequired),
            (None, true) => None,
        }
    }
}

/// Which code a Key Binding token-request proof must commit to, and in which claim.
#[derive(Debug, Clone, Copy)]
pub struct CodeBinding<'a> {
    /// The `code` or `device_code` exactly as received in the request body.
    pub code: &'a str,
    /// The profile, which fixes the claim name (`c_s256` or draft-00 `c_hash`).
    pub profile: Profile,
}

/// Facts about the request the proof came with.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The request method (DP-V8).
    pub htm: &'a str,
    /// The externally visible request URI (DP-V9); query and fragment are ignored.
    pub htu: &'a str,
    /// Verifier time.
    pub now: UnixTime,
    /// Nonce requirement (DP-V10).
    pub nonce: NonceCheck<'a>,
    /// The token presented with the proof; `ath` must be its hash (DP-V12).
    pub presented_token: Option<&'a str>,
    /// The key the token, code or refresh token is bound to (DP-V12, RFC 9449 §10).
    pub bound_jkt: Option<&'a Jkt>,
    /// Key Binding `c_s256` requirement.
    pub code_binding: Option<CodeBinding<'a>>,
}

impl<'a> RequestFacts<'a> {
    /// Facts for a plain proof: method, URI and time; no nonce, token, key or code.
    pub fn new(htm: &'a str, htu: &'a str, now: UnixTime) -> Self {
        RequestFacts {
            htm,
            htu,
            now,
            nonce: NonceCheck::NotRequired,
            presented_token: None,
            bound_jkt: None,
            code_binding: None,
        }
    }
}

/// A proof that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// The proof key.
    pub jwk: PublicJwk,
    /// Its RFC 7638 thumbprint.
    pub jkt: Jkt,
    /// The algorithm used.
    pub alg: Algorithm,
    /// `jti`.
    pub jti: String,
    /// `iat`.
    pub iat: UnixTime,
    /// `htm` as sent.
    pub htm: String,
    /// `htu` normalised.
    pub htu: String,
    /// All claims, for profiles that add their own.
    pub claims: Map<String, Value>,
}

/// What a replay cache must remember about a proof (RFC 9449 §11.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    /// `jti`
    pub jti: String,
    /// proof key thumbprint
    pub jkt: Jkt,
    /// `htm`
    pub htm: String,
    /// normalised `htu`
    pub htu: String,
}

impl ReplayKey {
    /// A fixed-size digest of the key, so stores hold 32 bytes however long the `jti` is.
    pub fn digest(&self) -> [u8; 32] {
        let mut buf = Vec::with_capacity(self.jti.len() + self.htu.len() + 64);
        for part in [self.jkt.as_str(), &self.htm, &self.htu, &self.jti] {
            buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
            buf.extend_from_slice(part.as_bytes());
        }
        keybound_jose::sha256(&buf)
    }
}

/// A replay-cache entry: the key and when it may be forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEntry {
    /// What identifies the proof.
    pub key: ReplayKey,
    /// After this time the proof is too old to be accepted anyway, so the entry can go.
    pub expires_at: UnixTime,
}

impl VerifiedProof {
    /// The replay-cache entry for this proof under `policy`.
    pub fn replay_entry(&self, policy: &DpopPolicy) -> ReplayEntry {
        ReplayEntry {
            key: ReplayKey {
                jti: self.jti.clone(),
                jkt: self.jkt.clone(),
                htm: self.htm.clone(),
                htu: self.htu.clone(),
            },
            // accepted while now <= iat + max_age; keep one extra second for rounding
            expires_at: self.iat.saturating_add(policy.max_age).saturating_add(1),
        }
    }
}

/// Verify the `DPoP` header values of one request (all of them, so DP-V1 can be checked).
///
/// Replay is the caller's to check (the proof's [`VerifiedProof::replay_entry`] names what to
/// remember, and for how long), or use [`check`], which takes a replay store.
///
/// # Example
///
/// ```
/// use keybound_jose::key::KeyKind;
/// use keybound_jose::PrivateKey;
/// use keybound_proto::dpop::{self, DpopPolicy, ProofBuilder, RequestFacts};
///
/// let now = 1_700_000_000;
/// let key = PrivateKey::generate(KeyKind::Es256).unwrap();
/// let token = "an-access-token";
/// let proof = ProofBuilder::new("GET", "https://api.example/orders?page=2", now, "jti-1")
///     .ath_for(token)
///     .sign(&key)
///     .unwrap();
///
/// // the API: this request's method and URL, the token it came with, the key it is bound to
/// let jkt = key.public_jwk().thumbprint();
/// let facts = RequestFacts {
///     presented_token: Some(token),
///     bound_jkt: Some(&jkt),
///     ..RequestFacts::new("GET", "https://api.example/orders", now)
/// };
/// let ok = dpop::verify([proof.as_str()], &facts, &DpopPolicy::default()).unwrap();
/// assert_eq!(ok.jkt, jkt);
///
/// // the same proof for another URL, or a minute and a half later, is refused
/// let elsewhere = RequestFacts { htu: "https://api.example/admin", ..facts };
/// assert!(dpop::verify([proof.as_str()], &elsewhere, &DpopPolicy::default()).is_err());
/// let late = RequestFacts { now: now + 90, ..facts };
/// assert!(dpop::verify([proof.as_str()], &late, &DpopPolicy::default()).is_err());
/// ```
pub fn verify<'v>(
    header_values: impl IntoIterator<Item = &'v str>,
    facts: &RequestFacts<'_>,
    policy: &DpopPolicy,
) -> Result<VerifiedProof, Error> {
    // DP-V1
    let mut it = header_values.into_iter();
    let first = it.next().ok_or(Error::DpopMissing)?;
    let extra = it.count();
    if extra > 0 {
        return Err(Error::DpopMultipleHeaders(extra + 1));
    }
    verify_proof(first, facts, policy)
}

/// Verify one proof JWT against the request facts (DP-V2…V12 and Key Binding `c_s256`).
pub fn verify_proof(
    proof: &str,
    facts: &RequestFacts<'_>,
    policy: &DpopPolicy,
) -> Result<VerifiedProof, Error> {
    // DP-V2 (shape), DP-V5 (none / MAC / unknown alg), DP-V7 (private jwk)
    let jws = Jws::parse(proof).map_err(|e| match e {
        JoseError::AlgNone | JoseError::SymmetricAlg(_) | JoseError::UnsupportedAlg(_) => {
            Error::DpopAlg(e)
        }
        JoseError::PrivateMember(_)
        | JoseError::UnsupportedKty(_)
        | JoseError::UnsupportedCurve { .. }
        | JoseError::MissingMember(_)
        | JoseError::BadLength { .. }
        | JoseError::PointNotOnCurve(_)
        | JoseError::RsaKeySize(_)
        | JoseError::RsaEncoding(_) => Error::DpopJwk(e),
        other => Error::DpopMalformed(other),
    })?;
    let header = jws.header();
    // DP-V4
    if header.typ.as_deref() != Some(DPOP_TYP) {
        return Err(Error::DpopTyp(header.typ.clone()));
    }
    let jwk = header.jwk.as_ref().ok_or(Error::DpopMissingJwk)?;
    // DP-V5 (policy) and DP-V6
    jws.verify(jwk, &policy.allowed_algs).map_err(|e| match e {
        JoseError::BadSignature => Error::DpopSignature,
        other => Error::DpopAlg(other),
    })?;
    let claims: Map<String, Value> = match serde_json::from_slice(jws.payload()) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(Error::DpopMalformed(JoseError::Json(
                "payload: expected a JSON object".into(),
            )))
        }
        Err(e) => return Err(Error::DpopMalformed(e.into())),
    };
    // DP-V3
    let jti = str_claim(&claims, "jti")?;
    let htm = str_claim(&claims, "htm")?;
    let htu = str_claim(&claims, "htu")?;
    let iat = match claims.get("iat") {
        None => return Err(Error::DpopMissingClaim("iat")),
        Some(v) => v.as_u64().ok_or(Error::DpopClaimType {
            claim: "iat",
            expected: "a non-negative integer NumericDate",
        })?,
    };
    if jti.is_empty() || jti.len() > policy.max_jti_len {
        return Err(Error::DpopJti {
            len: jti.len(),
            max: policy.max_jti_len,
        });
    }
    // DP-V8
    if htm != facts.htm {
        return Err(Error::DpopHtm {
            expected: facts.htm.to_owned(),
            got: htm.to_owned(),
        });
    }
    // DP-V9
    let expected_htu = normalize_htu(facts.htu)?;
    let got_htu = normalize_htu(htu).map_err(|_| Error::DpopHtu {
        expected: expected_htu.clone(),
        got: htu.chars().take(256).collect(),
    })?;
    if got_htu != expected_htu {
        return Err(Error::DpopHtu {
            expected: expected_htu,
            got: got_htu,
        });
    }
    // DP-V11
    if iat.saturating_add(policy.max_age) < facts.now {
        return Err(Error::DpopIatTooOld {
            iat,
            now: facts.now,
            max_age: policy.max_age,
        });
    }
    if iat > facts.now.saturating_add(policy.max_future) {
        return Err(Error::DpopIatInFuture {
            iat,
            now: facts.now,
            leeway: policy.max_future,
        });
    }
    // DP-V10
    match facts.nonce {
        NonceCheck::NotRequired => {
            if claims.contains_key("nonce") {
                return Err(Error::DpopNonceInvalid);
            }
        }
        NonceCheck::Optional(source) => match claims.get("nonce") {
            None => {}
            Some(Value::String(n)) if source.verify(n, facts.now) => {}
            Some(_) => return Err(Error::DpopNonceInvalid),
        },
        NonceCheck::Exact(expected) => match claims.get("nonce") {
            None => return Err(Error::DpopNonceRequired),
            Some(Value::String(n)) if keybound_jose::ct_eq(n.as_bytes(), expected.as_bytes()) => {}
            Some(_) => return Err(Error::DpopNonceInvalid),
        },
        NonceCheck::Stateless(source) => match claims.get("nonce") {
            None => return Err(Error::DpopNonceRequired),
            Some(Value::String(n)) if source.verify(n, facts.now) => {}
            Some(_) => return Err(Error::DpopNonceInvalid),
        },
    }
    // DP-V12: ath
    if let Some(token) = facts.presented_token {
        let expected = ath(token);
        match claims.get("ath") {
            Some(Value::String(a)) if *a == expected => {}
            other => {
                return Err(Error::DpopAth {
                    expected,
                    got: other.map(|v| v.as_str().unwrap_or("<not a string>").to_owned()),
                })
            }
        }
    }
    let jkt = jwk.thumbprint();
    // DP-V12: key binding of token / code (RFC 9449 §10)
    check_bound(Some(&jkt), facts.bound_jkt)?;
    // Key Binding: c_s256 (KB-OP5) or draft-00 c_hash
    if let Some(cb) = facts.code_binding {
        check_code_binding(&claims, cb)?;
    }
    Ok(VerifiedProof {
        jwk: jwk.clone(),
        jkt,
        alg: header.alg,
        jti: jti.to_owned(),
        iat,
        htm: htm.to_owned(),
        htu: got_htu,
        claims,
    })
}

/// The one bound-key check (RFC 9449 §10, §7.1, DP-V12; KB-OP6, KB-RF2; ID-JAG `cnf`): what
/// is `bound` to a key needs a proof, `proof_jkt`, by that key. Nothing bound: anything goes.
///
/// Refusals: [`Error::DpopMissing`] (bound, no proof), [`Error::DpopKeyMismatch`].
pub fn check_bound(proof_jkt: Option<&Jkt>, bound: Option<&Jkt>) -> Result<(), Error> {
    match (bound, proof_jkt) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(Error::DpopMissing),
        (Some(b), Some(p)) if p == b => Ok(()),
        (Some(b), Some(p)) => Err(Error::DpopKeyMismatch {
            expected: b.clone(),
            got: p.clone(),
        }),
    }
}

/// Why [`check`] refused a proof, with what the verifier must answer.
#[derive(Debug)]
pub enum Refused<E> {
    /// A check of DP-V1…V12 (or Key Binding) failed: `invalid_dpop_proof`.
    Proof(Error),
    /// The nonce is missing or not one this verifier accepts (DP-V10): answer
    /// `use_dpop_nonce` with `nonce`, a fresh one (never empty).
    Nonce {
        /// which nonce check failed
        reason: Error,
        /// the nonce to retry with
        nonce: String,
    },
    /// The `jti` was already used with this key, method and URI (RFC 9449 §11.1).
    Replay,
    /// The caller's replay store failed (the proof is refused: it could not be recorded).
    Store(E),
}

/// The one DPoP step: [`verify`] the proof against `facts`; on a nonce failure, a fresh nonce
/// from the source `facts.nonce` names (a verifier without one refuses the nonce as a bad
/// proof, since `use_dpop_nonce` without a nonce would leave the client stuck); then record
/// the proof's replay digest with `remember(digest, expires_at)`, which answers `Ok(false)`
/// for a digest it already holds.
///
/// No I/O happens here: `remember` is the caller's store, awaited once.
pub async fn check<'v, E, F, Fut>(
    header_values: impl IntoIterator<Item = &'v str>,
    facts: &RequestFacts<'_>,
    policy: &DpopPolicy,
    remember: F,
) -> Result<VerifiedProof, Refused<E>>
where
    F: FnOnce([u8; 32], UnixTime) -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
{
    let proof = verify(header_values, facts, policy).map_err(|e| {
        let source = match facts.nonce {
            NonceCheck::Optional(s) | NonceCheck::Stateless(s) => Some(s),
            NonceCheck::NotRequired | NonceCheck::Exact(_) => None,
        };
        match source {
            Some(s) if e.is_nonce_error() => Refused::Nonce {
                reason: e,
                nonce: s.issue(facts.now),
            },
            _ => Refused::Proof(e),
        }
    })?;
    let entry = proof.replay_entry(policy);
    match remember(entry.key.digest(), entry.expires_at).await {
        Ok(true) => Ok(proof),
        Ok(false) => Err(Refused::Replay),
        Err(e) => Err(Refused::Store(e)),
    }
}

/// Key Binding KB-OP5: the proof's `c_s256` (or draft-00 `c_hash`) must be
/// base64url(SHA-256(code)). Exposed for callers that learn only after verifying the proof
/// whether the code they hold needs the commitment.
pub fn check_code_binding(claims: &Map<String, Value>, cb: CodeBinding<'_>) -> Result<(), Error> {
    let claim = cb.profile.code_claim();
    let expected = c_s256(cb.code);
    match claims.get(claim) {
        None => Err(Error::DpopCodeHashMissing(claim)),
        Some(Value::String(got)) if *got == expected => Ok(()),
        Some(got) => Err(Error::DpopCodeHash {
            claim,
            expected,
            got: got
                .as_str()
                .unwrap_or("<not a string>")
                .chars()
                .take(64)
                .collect(),
        }),
    }
}

fn str_claim<'c>(claims: &'c Map<String, Value>, name: &'static str) -> Result<&'c str, Error> {
    match claims.get(name) {
        None => Err(Error::DpopMissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::DpopClaimType {
            claim: name,
            expected: "a string",
        }),
    }
}

/// Normalise an `htu` or request URI for comparison (RFC 3986 §6.2.2 and §6.2.3): scheme and
/// host lower-cased, default port removed, dot-segments resolved, empty path as `/`,
/// percent-encodings upper-cased and unreserved ones decoded, query and fragment dropped.
pub fn normalize_htu(uri: &str) -> Result<String, Error> {
    let bad = || Error::BadUri(uri.chars().take(256).collect());
    let mut u = url::Url::parse(uri).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad());
    }
    u.set_query(None);
    u.set_fragment(None);
    let path = normalize_percent(u.path());
    if path != u.path() {
        u.set_path(&path);
    }
    Ok(u.into())
}

/// Upper-case percent-encoding hex digits and decode percent-encoded unreserved characters.
fn normalize_percent(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = &path[i + 1..i + 3];
            // Invariant: two ASCII hex digits always parse.
            let v = u8::from_str_radix(hex, 16).unwrap_or_default();
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        // copy one (possibly multi-byte) character
        let ch = path[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Builds and signs a DPoP proof.
///
/// ```
/// # use keybound_jose::{PrivateKey, key::KeyKind};
/// # use keybound_proto::dpop::ProofBuilder;
/// let key = PrivateKey::generate(KeyKind::Es256).unwrap();
/// let proof = ProofBuilder::new("POST", "https://op.example/token", 1_700_000_000, "jti-1")
///     .c_s256("the-code")
///     .sign(&key)
///     .unwrap();
/// assert_eq!(proof.split('.').count(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct ProofBuilder {
    alg: Option<Algorithm>,
    claims: Map<String, Value>,
    htu: String,
}

impl ProofBuilder {
    /// A proof for `htm` on `htu` (query and fragment are removed) made at `iat` with `jti`.
    pub fn new(htm: &str, htu: &str, iat: UnixTime, jti: &str) -> Self {
        let mut claims = Map::new();
        claims.insert("jti".into(), jti.into());
        claims.insert("htm".into(), htm.into());
        claims.insert("iat".into(), iat.into());
        ProofBuilder {
            alg: None,
            claims,
            htu: strip_query_fragment(htu),
        }
    }

    /// Use `alg` instead of the key's default algorithm.
    #[must_use]
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = Some(alg);
        self
    }

    /// Add the server-provided nonce.
    #[must_use]
    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce.into())
    }

    /// Add `ath` for the token presented with this request.
    #[must_use]
    pub fn ath_for(self, token: &str) -> Self {
        self.claim("ath", ath(token).into())
    }

    /// Add Key Binding `c_s256` for `code` (or `device_code`).
    #[must_use]
    pub fn c_s256(self, code: &str) -> Self {
        self.code_binding(Profile::KeyBinding, code)
    }

    /// Add the code commitment in the claim the profile uses (`c_s256` or draft-00 `c_hash`).
    #[must_use]
    pub fn code_binding(self, profile: Profile, code: &str) -> Self {
        self.claim(profile.code_claim(), c_s256(code).into())
    }

    /// Add any other claim.
    #[must_use]
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Sign with `key`; the header carries `typ: dpop+jwt` and the public `jwk`.
    pub fn sign(mut self, key: &PrivateKey) -> Result<String, Error> {
        self.claims.insert("htu".into(), self.htu.clone().into());
        let mut header = Map::new();
        header.insert("typ".into(), DPOP_TYP.into());
        header.insert("jwk".into(), key.public_jwk().to_value());
        let payload =
            serde_json::to_vec(&self.claims).map_err(|e| Error::DpopMalformed(e.into()))?;
        keybound_jose::jws::sign(
            self.alg.unwrap_or_else(|| key.default_alg()),
            &header,
            &payload,
            key,
        )
        .map_err(Error::DpopMalformed)
    }
}

fn strip_query_fragment(uri: &str) -> String {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    uri[..end].to_owned()
}

/// Stateless DPoP nonces: HKDF-SHA256 over a shared secret and a time step.
///
/// Every OP node configured with the same secret issues the same nonce during a step and
/// accepts nonces from the last `window` steps (and one step ahead, for clock skew between
/// nodes), so no nonce state is shared or stored.
pub struct NonceSource {
    prk: hkdf::Prk,
    step: u64,
    window: u64,
}

impl fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceSource")
            .field("step", &self.step)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

const NONCE_LEN: usize = 32;

impl NonceSource {
    /// A source over `secret` (at least 32 bytes) with steps of `step_secs` and a window of
    /// `window_steps` past steps.
    pub fn new(secret: &[u8], step_secs: u64, window_steps: u64) -> Result<Self, Error> {
        if secret.len() < 32 {
            return Err(Error::Parameter {
                name: "dpop nonce secret",
                reason: format!("expected at least 32 bytes, got {}", secret.len()),
            });
        }
        if step_secs == 0 {
            return Err(Error::Parameter {
                name: "dpop nonce step",
                reason: "expected a step of at least 1 second".into(),
            });
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keybound dpop nonce v1").extract(secret);
        Ok(NonceSource {
            prk,
            step: step_secs,
            window: window_steps,
        })
    }

    fn nonce_for_step(&self, step: u64) -> [u8; NONCE_LEN] {
        struct Len;
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                NONCE_LEN
            }
        }
        let info = step.to_be_bytes();
        let info = [&info[..]];
        let mut out = [0u8; NONCE_LEN];
        // Invariant: HKDF-SHA256 can expand up to 255*32 bytes; 32 always succeeds.
        self.prk
            .expand(&info, Len)
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF expand of 32 bytes cannot fail");
        out
    }

    /// The nonce to hand out at `now`.
    pub fn issue(&self, now: UnixTime) -> String {
        b64::encode(self.nonce_for_step(now / self.step))
    }

    /// Whether `nonce` was issued within the window around `now`.
    pub fn verify(&self, nonce: &str, now: UnixTime) -> bool {
        let Ok(bytes) = b64::decode(nonce) else {
            return false;
        };
        let cur = now / self.step;
        let first = cur.saturating_sub(self.window);
        (first..=cur.saturating_add(1))
            .any(|s| keybound_jose::ct_eq(&bytes, &self.nonce_for_step(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_normalisation_rfc3986() {
        let n = |s| normalize_htu(s).unwrap();
        assert_eq!(
            n("HTTPS://Server.Example.COM:443/token"),
            "https://server.example.com/token"
        );
        assert_eq!(n("http://a.example:80"), "http://a.example/");
        assert_eq!(
            n("https://a.example/x/../token?q=1#f"),
            "https://a.example/token"
        );
        assert_eq!(
            n("https://a.example/%7euser/%2f"),
            "https://a.example/~user/%2F"
        );
        assert_eq!(n("https://a.example:8443/t"), "https://a.example:8443/t");
        // a trailing slash is significant
        assert_ne!(n("https://a.example/token/"), n("https://a.example/token"));
        assert!(normalize_htu("ftp://a.example/").is_err());
        assert!(normalize_htu("/token").is_err());
    }

    #[test]
    fn percent_normalisation_edges() {
        assert_eq!(normalize_percent("/a%"), "/a%");
        assert_eq!(normalize_percent("/a%4"), "/a%4");
        assert_eq!(normalize_percent("/a%41"), "/aA");
        assert_eq!(normalize_percent("/a%zz"), "/a%zz");
    }

    #[test]
    fn stateless_nonce_window() {
        let s = NonceSource::new(&[7u8; 32], 60, 2).unwrap();
        let other = NonceSource::new(&[8u8; 32], 60, 2).unwrap();
        let n = s.issue(6000);
        assert!(s.verify(&n, 6000));
        assert!(s.verify(&n, 6000 + 60 * 2 + 59)); // still within 2 past steps
        assert!(!s.verify(&n, 6000 + 60 * 3));
        assert!(s.verify(&n, 6000 - 60)); // one step ahead tolerated (node clock skew)
        assert!(!s.verify(&n, 6000 - 120));
        assert!(!other.verify(&n, 6000));
        assert!(!s.verify("not-base64!", 6000));
        assert!(NonceSource::new(&[0u8; 16], 60, 1).is_err());
        assert!(!format!("{s:?}").contains("7, 7"));
    }
}
