//! ID Tokens: claims, a builder, and a validator implementing OpenID Connect Core 3.1.3.7
//! plus the Key Binding rules (header `typ`, `cnf.jwk` present and public, thumbprint match).
//!
//! The validator returns one precise [`Error`] per failed rule, named after the step it
//! implements, so an RP developer sees "expected aud to contain X" instead of "invalid token".
//! The same validator serves the RP (after its own `bound_key` request, with its `dpop_jkt`)
//! and the consuming component (which compares `cnf` with a presentation proof afterwards).

use keybound_jose::{Algorithm, Jkt, JwkSet, Jws, PrivateKey, PublicJwk};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cnf::Cnf;
use crate::keybinding::{oidc_token_hash, Profile, TYP_DPOP_ID_TOKEN, TYP_ID_TOKEN_CNF};
use crate::{Error, UnixTime};

/// `aud`: one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// a single audience
    One(String),
    /// several audiences
    Many(Vec<String>),
}

impl Audience {
    /// The audiences as a slice.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Audience::One(s) => std::slice::from_ref(s),
            Audience::Many(v) => v,
        }
    }

    /// Whether `aud` lists `value`.
    pub fn contains(&self, value: &str) -> bool {
        self.as_slice().iter().any(|a| a == value)
    }
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Audience::One(s.to_owned())
    }
}

/// The claims of an ID Token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// issuer
    pub iss: String,
    /// subject
    pub sub: String,
    /// audience(s)
    pub aud: Audience,
    /// expiry
    pub exp: UnixTime,
    /// issued at
    pub iat: UnixTime,
    /// time of the End-User's authentication
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    /// the request `nonce`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// authorized party
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// authentication context class
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// authentication methods
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// access token hash (left half of SHA-256)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// code hash (OIDC Core hybrid flow; not the Key Binding value)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
    /// confirmation (Key Binding `cnf.jwk`, Token Binding `cnf.tbh`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Cnf>,
    /// every other claim
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Fluent construction of an ID Token.
#[derive(Debug, Clone)]
pub struct IdTokenBuilder {
    claims: IdTokenClaims,
    typ: Option<&'static str>,
    /// the access token and code `at_hash` / `c_hash` are made of, once the signing `alg` is
    /// known (their hash is the alg's)
    at_hash_of: Option<String>,
    c_hash_of: Option<String>,
}

impl IdTokenBuilder {
    /// Required claims; `exp` = `iat` + `lifetime`.
    pub fn new(iss: &str, sub: &str, aud: Audience, iat: UnixTime, lifetime: u64) -> Self {
        IdTokenBuilder {
            claims: IdTokenClaims {
                iss: iss.to_owned(),
                sub: sub.to_owned(),
                aud,
                exp: iat.saturating_add(lifetime),
                iat,
                auth_time: None,
                nonce: None,
                azp: None,
                acr: None,
                amr: None,
                at_hash: None,
                c_hash: None,
                cnf: None,
                extra: Map::new(),
            },
            typ: Some("JWT"),
            at_hash_of: None,
            c_hash_of: None,
        }
    }

    /// `nonce`
    #[must_use]
    pub fn nonce(mut self, nonce: Option<&str>) -> Self {
        self.claims.nonce = nonce.map(str::to_owned);
        self
    }

    /// `auth_time`
    #[must_use]
    pub fn auth_time(mut self, t: UnixTime) -> Self {
        self.claims.auth_time = Some(t);
        self
    }

    /// `azp`
    #[must_use]
    pub fn azp(mut self, azp: &str) -> Self {
        self.claims.azp = Some(azp.to_owned());
        self
    }

    /// `acr`
    #[must_use]
    pub fn acr(mut self, acr: &str) -> Self {
        self.claims.acr = Some(acr.to_owned());
        self
    }

    /// `amr`
    #[must_use]
    pub fn amr(mut self, amr: &[&str]) -> Self {
        self.claims.amr = Some(amr.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// `at_hash` for the access token issued alongside, with the hash of the `alg` the token is
    /// signed with (computed by [`IdTokenBuilder::sign`]).
    #[must_use]
    pub fn at_hash_for(mut self, access_token: &str) -> Self {
        self.at_hash_of = Some(access_token.to_owned());
        self
    }

    /// `c_hash` (OIDC Core 3.3.2.11) for the code issued alongside from the authorization
    /// endpoint — the hybrid flow's half hash, not Key Binding draft-00's proof claim; with the
    /// hash of the signing `alg`.
    #[must_use]
    pub fn c_hash_for(mut self, code: &str) -> Self {
        self.c_hash_of = Some(code.to_owned());
        self
    }

    /// Bind to `jwk`: `cnf.jwk` (required members only) and the profile's header `typ`.
    #[must_use]
    pub fn bind(mut self, profile: Profile, jwk: &PublicJwk) -> Self {
        self.claims.cnf = Some(Cnf::with_jwk(jwk.clone()));
        self.typ = Some(profile.id_token_typ());
        self
    }

    /// Token Bound Authentication: `cnf.tbh`.
    #[must_use]
    pub fn token_binding_hash(mut self, tbh: &str) -> Self {
        // beside a Key Binding `cnf.jwk`, if there is one
        let mut cnf = self.claims.cnf.take().unwrap_or_default();
        cnf.tbh = Some(tbh.to_owned());
        self.claims.cnf = Some(cnf);
        self
    }

    /// Any other claim.
    #[must_use]
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.extra.insert(name.to_owned(), value);
        self
    }

    /// The claims so far.
    pub fn claims(&self) -> &IdTokenClaims {
        &self.claims
    }

    /// Sign with the OP key, naming it by `kid`.
    pub fn sign(
        &self,
        key: &PrivateKey,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<String, Error> {
        let mut header = Map::new();
        if let Some(t) = self.typ {
            header.insert("typ".into(), t.into());
        }
        if let Some(k) = kid {
            header.insert("kid".into(), k.into());
        }
        let mut claims = self.claims.clone();
        claims.at_hash = self.at_hash_of.as_deref().map(|t| oidc_token_hash(alg, t));
        claims.c_hash = self.c_hash_of.as_deref().map(|c| oidc_token_hash(alg, c));
        let payload =
            serde_json::to_vec(&claims).map_err(|e| Error::IdTokenMalformed(e.to_string()))?;
        keybound_jose::jws::sign(alg, &header, &payload, key)
            .map_err(|e| Error::IdTokenMalformed(e.to_string()))
    }
}

/// What the validator requires about key binding.
#[derive(Debug, Clone, Copy)]
pub enum BindingRequirement<'a> {
    /// A plain ID Token: header `typ` absent or `JWT`.
    Unbound,
    /// A key-bound ID Token: `typ: dpop+id_token` (or `id_token+cnf` when `accept_draft00`),
    /// `cnf.jwk` present and public, and, when `expected_jkt` is given, its thumbprint equal.
    Bound {
        /// The key the RP bound (its `dpop_jkt`); `None` for a consumer that compares later.
        expected_jkt: Option<&'a Jkt>,
        /// Accept the draft-00 `typ` value.
        accept_draft00: bool,
    },
}

/// Everything the validator checks against.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenChecks<'a> {
    /// The issuer identifier (step 2).
    pub issuer: &'a str,
    /// Client ids accepted as audience (step 3); one RP may register several.
    pub audiences: &'a [String],
    /// Other audiences the client trusts to appear next to its own (step 3).
    pub trusted_audiences: &'a [String],
    /// Acceptable signing algorithms (step 7).
    pub allowed_algs: &'a [Algorithm],
    /// Verifier time.
    pub now: UnixTime,
    /// Clock skew allowed on `exp`, `iat` and `auth_time`.
    pub leeway: u64,
    /// Reject tokens issued longer ago than this (step 10), if set.
    pub max_iat_age: Option<u64>,
    /// The `nonce` sent in the request (step 11).
    pub nonce: Option<&'a str>,
    /// The `max_age` sent in the request (step 13).
    pub max_age: Option<u64>,
    /// The `acr_values` requested (step 12).
    pub acr_values: Option<&'a [String]>,
    /// Key Binding requirements.
    pub binding: BindingRequirement<'a>,
}

impl<'a> IdTokenChecks<'a> {
    /// Defaults: ES256/ES384/EdDSA/RS256/PS256, 60 s leeway, no nonce, max_age or acr, unbound.
    pub fn new(issuer: &'a str, audiences: &'a [String], now: UnixTime) -> Self {
        IdTokenChecks {
            issuer,
            audiences,
            trusted_audiences: &[],
            allowed_algs: &Algorithm::ALL,
            now,
            leeway: 60,
            max_iat_age: None,
            nonce: None,
            max_age: None,
            acr_values: None,
            binding: BindingRequirement::Unbound,
        }
    }
}

/// An ID Token that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedIdToken {
    /// Its claims.
    pub claims: IdTokenClaims,
    /// Header `typ`.
    pub typ: Option<String>,
    /// Header `kid`.
    pub kid: Option<String>,
    /// Signing algorithm.
    pub alg: Algorithm,
    /// Thumbprint of `cnf.jwk`, for key-bound tokens.
    pub jkt: Option<Jkt>,
}

/// Validate `token` against the issuer's `keys` and `checks`.
pub fn validate(
    token: &str,
    keys: &JwkSet,
    checks: &IdTokenChecks<'_>,
) -> Result<ValidatedIdToken, Error> {
    validate_jws(&parse(token)?, keys, checks)
}

/// Parse an ID Token's JWS, mapping `none`/MAC/unknown `alg` to [`Error::IdTokenAlg`].
pub fn parse(token: &str) -> Result<Jws<'_>, Error> {
    Jws::parse(token).map_err(|e| match e {
        keybound_jose::Error::AlgNone
        | keybound_jose::Error::SymmetricAlg(_)
        | keybound_jose::Error::UnsupportedAlg(_) => Error::IdTokenAlg(e),
        other => Error::IdTokenMalformed(other.to_string()),
    })
}

/// The claims, decoded in one pass; only when that fails is the payload decoded again, piece by
/// piece, to name the precise problem (a bad `cnf` gets [`Error::Cnf`]).
fn decode_claims(payload: &[u8]) -> Result<IdTokenClaims, Error> {
    if let Ok(c) = serde_json::from_slice::<IdTokenClaims>(payload) {
        return Ok(c);
    }
    let mut v: Value =
        serde_json::from_slice(payload).map_err(|e| Error::IdTokenMalformed(e.to_string()))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::IdTokenMalformed("claims: expected a JSON object".into()))?;
    let cnf = obj.remove("cnf").map(|c| Cnf::from_value(&c)).transpose()?;
    let mut claims: IdTokenClaims =
        serde_json::from_value(v).map_err(|e| Error::IdTokenMalformed(e.to_string()))?;
    claims.cnf = cnf;
    Ok(claims)
}

/// An ID Token parsed and its claims decoded, *not yet verified*: a caller that must read
/// `iss` (and `kid`) to choose the issuer's keys does so here, then hands the whole to
/// [`validate_decoded`], so the claims are decoded once and can only be validated against the
/// very JWS they came from.
#[derive(Debug)]
pub struct Unverified<'a> {
    jws: Jws<'a>,
    claims: IdTokenClaims,
}

impl<'a> Unverified<'a> {
    /// The unverified `iss`.
    pub fn issuer(&self) -> &str {
        &self.claims.iss
    }

    /// The parsed JWS (its header names the key).
    pub fn jws(&self) -> &Jws<'a> {
        &self.jws
    }

    /// All the claims, *unverified*: for choosing what to check them against (an issuer's
    /// keys, the audience a hint was issued to), never for a decision.
    pub fn unverified_claims(&self) -> &IdTokenClaims {
        &self.claims
    }
}

/// Parse `token` and decode its claims without verifying anything ([`Unverified`]).
pub fn decode(token: &str) -> Result<Unverified<'_>, Error> {
    let jws = parse(token)?;
    let claims = decode_claims(jws.payload())?;
    Ok(Unverified { jws, claims })
}

/// [`validate`] for a caller that already parsed the JWS (e.g. to read `kid`).
pub fn validate_jws(
    jws: &Jws<'_>,
    keys: &JwkSet,
    checks: &IdTokenChecks<'_>,
) -> Result<ValidatedIdToken, Error> {
    validate_parts(jws, None, keys, checks)
}

/// [`validate`] for a token [`decode`]d first: the claims are trusted only once the signature
/// over the JWS they were decoded from is verified here.
pub fn validate_decoded(
    token: Unverified<'_>,
    keys: &JwkSet,
    checks: &IdTokenChecks<'_>,
) -> Result<ValidatedIdToken, Error> {
    validate_parts(&token.jws, Some(token.claims), keys, checks)
}

fn validate_parts(
    jws: &Jws<'_>,
    decoded: Option<IdTokenClaims>,
    keys: &JwkSet,
    checks: &IdTokenChecks<'_>,
) -> Result<ValidatedIdToken, Error> {
    let header = jws.header();
    // Key Binding: header typ
    let typ = header.typ.clone();
    match checks.binding {
        BindingRequirement::Unbound => {
            if !matches!(typ.as_deref(), None | Some("JWT")) {
                return Err(Error::IdTokenTyp {
                    expected: "absent or 'JWT'".into(),
                    got: typ,
                });
            }
        }
        BindingRequirement::Bound { accept_draft00, .. } => {
            let ok = typ.as_deref() == Some(TYP_DPOP_ID_TOKEN)
                || (accept_draft00 && typ.as_deref() == Some(TYP_ID_TOKEN_CNF));
            if !ok {
                return Err(Error::IdTokenTyp {
                    expected: if accept_draft00 {
                        format!("'{TYP_DPOP_ID_TOKEN}' or '{TYP_ID_TOKEN_CNF}'")
                    } else {
                        format!("'{TYP_DPOP_ID_TOKEN}'")
                    },
                    got: typ,
                });
            }
        }
    }
    // Steps 6-8: signature with an allowed asymmetric alg and a key of the issuer
    keys.verify(jws, checks.allowed_algs).map_err(|e| match e {
        keybound_jose::Error::NoMatchingKey { kid, .. } => Error::IdTokenUnknownKid(kid),
        keybound_jose::Error::BadSignature => Error::IdTokenSignature,
        other => Error::IdTokenAlg(other),
    })?;
    let claims = match decoded {
        Some(c) => c,
        None => decode_claims(jws.payload())?,
    };
    check_claims(&claims, checks)?;
    // Key Binding: cnf.jwk present and matching
    let jkt = claims
        .cnf
        .as_ref()
        .and_then(|c| c.jwk.as_ref())
        .map(PublicJwk::thumbprint);
    if let BindingRequirement::Bound { expected_jkt, .. } = checks.binding {
        let got = jkt.clone().ok_or(Error::IdTokenNotBound)?;
        if let Some(expected) = expected_jkt {
            if *expected != got {
                return Err(Error::IdTokenCnfMismatch {
                    expected: expected.clone(),
                    got,
                });
            }
        }
    }
    Ok(ValidatedIdToken {
        claims,
        typ,
        kid: header.kid.clone(),
        alg: header.alg,
        jkt,
    })
}

/// OIDC Core 3.1.3.7 steps 2–5 and 9–13 on already-parsed claims.
pub fn check_claims(claims: &IdTokenClaims, c: &IdTokenChecks<'_>) -> Result<(), Error> {
    // step 2
    if claims.iss != c.issuer {
        return Err(Error::IdTokenIssuer {
            expected: c.issuer.to_owned(),
            got: claims.iss.clone(),
        });
    }
    // step 3
    let aud = claims.aud.as_slice();
    if !aud.iter().any(|a| c.audiences.contains(a)) {
        return Err(Error::IdTokenAudience {
            expected: c.audiences.join(" or "),
            got: aud.to_vec(),
        });
    }
    if let Some(untrusted) = aud
        .iter()
        .find(|a| !c.audiences.contains(a) && !c.trusted_audiences.contains(a))
    {
        return Err(Error::IdTokenUntrustedAudience(untrusted.clone()));
    }
    // steps 4 and 5
    let ours = || c.audiences.join(" or ");
    match &claims.azp {
        Some(azp) if !c.audiences.contains(azp) => {
            return Err(Error::IdTokenAzp {
                expected: ours(),
                got: Some(azp.clone()),
            })
        }
        None if aud.len() > 1 => {
            return Err(Error::IdTokenAzp {
                expected: ours(),
                got: None,
            })
        }
        _ => {}
    }
    // step 9
    if c.now >= claims.exp.saturating_add(c.leeway) {
        return Err(Error::IdTokenExpired {
            exp: claims.exp,
            now: c.now,
            leeway: c.leeway,
        });
    }
    // step 10
    let too_new = claims.iat > c.now.saturating_add(c.leeway);
    let too_old = c
        .max_iat_age
        .is_some_and(|age| claims.iat.saturating_add(age).saturating_add(c.leeway) < c.now);
    if too_new || too_old {
        return Err(Error::IdTokenIat {
            iat: claims.iat,
            now: c.now,
        });
    }
    // step 11
    if let Some(expected) = c.nonce {
        if claims.nonce.as_deref() != Some(expected) {
            return Err(Error::IdTokenNonce {
                expected: expected.to_owned(),
                got: claims.nonce.clone(),
            });
        }
    }
    // step 12
    if let Some(acrs) = c.acr_values {
        if !claims.acr.as_ref().is_some_and(|a| acrs.contains(a)) {
            return Err(Error::IdTokenAcr {
                expected: acrs.to_vec(),
                got: claims.acr.clone(),
            });
        }
    }
    // step 13
    if let Some(max_age) = c.max_age {
        let ok = claims
            .auth_time
            .is_some_and(|t| t.saturating_add(max_age).saturating_add(c.leeway) >= c.now);
        if !ok {
            return Err(Error::IdTokenAuthTime {
                auth_time: claims.auth_time,
                max_age,
                now: c.now,
            });
        }
    }
    Ok(())
}
