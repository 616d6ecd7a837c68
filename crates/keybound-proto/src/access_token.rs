//! RFC 9068 JWT access tokens: the claims as a type, signed by the provider and validated by
//! every resource server with the same rules — the provider's own userinfo and
//! `keybound-verify`'s APIs — so the two cannot drift apart again.
//!
//! The rules, in order ([`decode`] then [`validate`]):
//! 1. header `typ` is `at+jwt` or `application/at+jwt`, compared case-insensitively (RFC 9068
//!    §4; media types are case-insensitive): an ID Token, a DPoP proof or any other JWT is not
//!    an access token, whatever key signed it;
//! 2. signed with an allowed algorithm by a key of the issuer's set
//!    ([`keybound_jose::JwkSet::verify`]);
//! 3. the claims RFC 9068 §2.2 requires are present with their types;
//! 4. `iss` is the expected issuer;
//! 5. `aud` names one of this resource's identifiers — always checked (RFC 9068 §4);
//! 6. times, with one leeway rule for all: valid while `now < exp + leeway`, `iat` and `nbf`
//!    no more than `leeway` in the future;
//! 7. `cnf`, when present, must carry a usable `jkt` (RFC 9449 §6.1): a confirmation this code
//!    cannot check is a refusal, never an unbound token.
//!
//! Then [`check_scheme`]: the `Authorization` scheme fits the binding. Whether the binding was
//! proven (a DPoP proof by `cnf.jkt` with `ath`, `keybound_proto::dpop::check`), whether the
//! token was revoked, and what its scope allows are the caller's next steps.

use keybound_jose::{Algorithm, Jkt, JwkSet, Jws, PrivateKey};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::cnf::Cnf;
use crate::idtoken::Audience;
use crate::{Error, UnixTime};

/// RFC 9068 §2.1: the header `typ` of an access token.
pub const TYP_AT_JWT: &str = "at+jwt";

/// Whether a header `typ` names an RFC 9068 access token (`at+jwt`, or its media-type
/// spelling `application/at+jwt`, case-insensitively).
pub fn is_access_token_typ(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case(TYP_AT_JWT)
            || t.eq_ignore_ascii_case(&format!("application/{TYP_AT_JWT}"))
    })
}

/// The claims of an RFC 9068 access token (§2.2), with the ones keybound adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// the authorization server
    pub iss: String,
    /// the End-User (or the client, for grants without one)
    pub sub: String,
    /// the resources the token is for
    pub aud: Audience,
    /// the client the token was issued to
    pub client_id: String,
    /// expiry
    pub exp: UnixTime,
    /// issued at
    pub iat: UnixTime,
    /// unique id
    pub jti: String,
    /// granted scopes, space-separated
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// when the End-User authenticated (RFC 9068 §2.2.1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    /// authentication context class (RFC 9068 §2.2.1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// authentication methods (RFC 9068 §2.2.1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// the key the token is bound to (RFC 9449 §6.1: `jkt`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Cnf>,
    /// not before
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    /// keybound's grant id, so revoking a grant revokes its access tokens (issuer-private)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

impl AccessTokenClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The key the token is bound to (`cnf.jkt`).
    pub fn jkt(&self) -> Option<&Jkt> {
        self.cnf.as_ref().and_then(|c| c.jkt.as_ref())
    }

    /// Sign as a compact JWS with header `typ: at+jwt` and `kid`.
    pub fn sign(&self, key: &PrivateKey, alg: Algorithm, kid: &str) -> Result<String, Error> {
        let mut header = Map::new();
        header.insert("typ".into(), TYP_AT_JWT.into());
        header.insert("kid".into(), kid.into());
        let payload = serde_json::to_vec(self)
            .map_err(|e| Error::AccessToken(format!("encoding the claims: {e}")))?;
        keybound_jose::jws::sign(alg, &header, &payload, key)
            .map_err(|e| Error::AccessToken(format!("signing: {e}")))
    }
}

/// What a resource server accepts.
#[derive(Debug, Clone, Copy)]
pub struct AccessTokenChecks<'a> {
    /// the issuer whose tokens these are (exact match with `iss`)
    pub issuer: &'a str,
    /// this resource's identifiers: `aud` must name one
    pub audiences: &'a [String],
    /// allowed signature algorithms
    pub allowed_algs: &'a [Algorithm],
    /// verifier time
    pub now: UnixTime,
    /// clock skew allowed on `exp`, `iat` and `nbf` (0 for the issuer's own tokens)
    pub leeway: u64,
}

impl<'a> AccessTokenChecks<'a> {
    /// Checks for `issuer`'s tokens at a resource known as `audiences`, any asymmetric
    /// algorithm, no leeway.
    pub fn new(issuer: &'a str, audiences: &'a [String], now: UnixTime) -> Self {
        AccessTokenChecks {
            issuer,
            audiences,
            allowed_algs: &Algorithm::ALL,
            now,
            leeway: 0,
        }
    }
}

/// An access token parsed and its claims decoded, nothing verified yet (the
/// [`crate::idtoken::Unverified`] pattern): the resource server reads `iss` and `kid` to choose
/// keys, then [`validate`] trusts the claims only once the signature over this JWS verifies.
/// Its header `typ` was checked first (rule 1): nothing in another kind of JWT is believed.
#[derive(Debug)]
pub struct Unverified<'a> {
    jws: Jws<'a>,
    claims: AccessTokenClaims,
}

impl<'a> Unverified<'a> {
    /// The unverified `iss`, to choose whose keys to verify with.
    pub fn issuer(&self) -> &str {
        &self.claims.iss
    }

    /// The parsed JWS (its header names the key).
    pub fn jws(&self) -> &Jws<'a> {
        &self.jws
    }

    /// The unverified `aud`: the issuer's own introspection and revocation accept a token
    /// for any resource it was issued for (its signature and `iss` make it theirs).
    pub fn audiences(&self) -> &[String] {
        self.claims.aud.as_slice()
    }
}

/// Parse `token`, check its header `typ` (rule 1) and decode its claims (rule 3), once.
pub fn decode(token: &str) -> Result<Unverified<'_>, Error> {
    let jws =
        Jws::parse(token).map_err(|e| Error::AccessToken(format!("not a usable JWT: {e}")))?;
    let typ = jws.header().typ.as_deref();
    if !is_access_token_typ(typ) {
        return Err(Error::AccessTokenTyp(typ.map(str::to_owned)));
    }
    let claims: AccessTokenClaims = serde_json::from_slice(jws.payload())
        .map_err(|e| Error::AccessToken(format!("claims (RFC 9068 §2.2): {e}")))?;
    Ok(Unverified { jws, claims })
}

/// Validate a [`decode`]d access token against `keys` (the issuer's set) and `checks`: the
/// rules of the module documentation, in that order.
pub fn validate(
    token: Unverified<'_>,
    keys: &JwkSet,
    checks: &AccessTokenChecks<'_>,
) -> Result<AccessTokenClaims, Error> {
    let Unverified { jws, claims } = token;
    keys.verify(&jws, checks.allowed_algs)
        .map_err(Error::AccessTokenSignature)?;
    if claims.iss != checks.issuer {
        return Err(Error::AccessTokenIssuer {
            expected: checks.issuer.to_owned(),
            got: claims.iss,
        });
    }
    if !checks.audiences.iter().any(|a| claims.aud.contains(a)) {
        return Err(Error::AccessTokenAudience {
            expected: checks.audiences.to_vec(),
            got: claims.aud.as_slice().to_vec(),
        });
    }
    let (now, leeway) = (checks.now, checks.leeway);
    if now >= claims.exp.saturating_add(leeway) {
        return Err(Error::AccessTokenExpired {
            exp: claims.exp,
            now,
            leeway,
        });
    }
    for (name, at) in [("iat", Some(claims.iat)), ("nbf", claims.nbf)] {
        if let Some(at) = at.filter(|at| *at > now.saturating_add(leeway)) {
            return Err(Error::AccessTokenNotYetValid {
                claim: name,
                at,
                now,
                leeway,
            });
        }
    }
    if let Some(cnf) = &claims.cnf {
        if cnf.jkt.is_none() {
            return Err(Error::AccessTokenCnf);
        }
    }
    Ok(claims)
}

/// RFC 9449 §7.1, §7.2: a DPoP-bound token is presented with the `DPoP` scheme (and then needs
/// a proof), an unbound one with `Bearer`; a resource that accepts no Bearer tokens refuses
/// unbound ones on its own.
pub fn check_scheme(dpop_scheme: bool, claims: &AccessTokenClaims) -> Result<(), Error> {
    let bound = claims.jkt().is_some();
    if bound == dpop_scheme {
        Ok(())
    } else {
        Err(Error::AccessTokenScheme { bound })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9068 §4: the `typ` rule, one spelling for every resource server.
    #[test]
    fn rfc9068_4_typ_at_jwt_either_spelling_any_case() {
        for ok in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            assert!(is_access_token_typ(Some(ok)), "{ok}");
        }
        for bad in [None, Some("JWT"), Some("dpop+id_token"), Some("at+jwt2")] {
            assert!(!is_access_token_typ(bad), "{bad:?}");
        }
    }
}
