//! Identity Assertion JWT Authorization Grant (ID-JAG) claims and the resource AS checks that
//! do not need a clock source or a store (typ, single audience, client binding, `cnf.jkt`).
//! The token-exchange and jwt-bearer endpoints that use them come in a later issue.

use keybound_jose::{Jkt, Jws};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cnf::Cnf;
use crate::idtoken::Audience;
use crate::{Error, UnixTime};

/// ID-JAG header `typ` (IJ-8).
pub const TYP_ID_JAG: &str = "oauth-id-jag+jwt";

/// The claims of an ID-JAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdJagClaims {
    /// IdP issuer
    pub iss: String,
    /// subject at the IdP
    pub sub: String,
    /// resource AS issuer
    pub aud: Audience,
    /// client id at the resource AS
    pub client_id: String,
    /// unique id
    pub jti: String,
    /// expiry
    pub exp: UnixTime,
    /// issued at
    pub iat: UnixTime,
    /// granted scope
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// granted resource(s)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    /// key binding carried forward (`cnf.jkt`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Cnf>,
    /// other claims
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Check the shape rules a resource AS applies to an ID-JAG whose signature the caller has
/// verified: IJ-8 `typ`, IJ-9 single `aud` equal to `issuer`, IJ-10 `client_id`, and the times
/// (JB-4 `exp`, JB-5 `nbf`, `iat` not in the future), each with `leeway` seconds of skew.
/// Returns the claims and the bound key thumbprint, if any.
pub fn check(
    jws: &Jws<'_>,
    issuer: &str,
    client_id: &str,
    now: UnixTime,
    leeway: u64,
) -> Result<(IdJagClaims, Option<Jkt>), Error> {
    if jws.header().typ.as_deref() != Some(TYP_ID_JAG) {
        return Err(Error::IdJag(format!(
            "expected header typ '{TYP_ID_JAG}', got {:?}",
            jws.header().typ
        )));
    }
    let claims: IdJagClaims = jws
        .payload_json()
        .map_err(|e| Error::IdJag(format!("claims: {e}")))?;
    if claims.aud.as_slice() != [issuer.to_owned()] {
        return Err(Error::IdJag(format!(
            "expected aud to be exactly '{issuer}', got {:?}",
            claims.aud.as_slice()
        )));
    }
    if claims.client_id != client_id {
        return Err(Error::IdJag(format!(
            "expected client_id '{client_id}', got '{}'",
            claims.client_id
        )));
    }
    if now >= claims.exp.saturating_add(leeway) {
        return Err(Error::IdJag(format!(
            "expired at {}, now {now}",
            claims.exp
        )));
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(Error::IdJag(format!(
            "issued in the future (iat {}, now {now})",
            claims.iat
        )));
    }
    if let Some(nbf) = claims.extra.get("nbf") {
        let nbf = nbf
            .as_u64()
            .ok_or_else(|| Error::IdJag("nbf: expected a number".into()))?;
        if nbf > now.saturating_add(leeway) {
            return Err(Error::IdJag(format!("not valid before {nbf}, now {now}")));
        }
    }
    // ID-JAG: a confirmation method this server does not support MUST be refused — a `cnf`
    // without a key it can check (`{}`, only `x5t#S256`, only `tbh`) is never "unbound"
    let jkt = match &claims.cnf {
        None => None,
        Some(c) => Some(c.key_thumbprint().ok_or_else(|| {
            Error::IdJag(
                "cnf names no key this server can check (expected jkt or jwk): refused, not taken as unbound".into(),
            )
        })?),
    };
    Ok((claims, jkt))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const AS: &str = "https://as.b.example";

    fn jag(change: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut c = serde_json::json!({
            "iss": "https://idp.a.example", "sub": "alice", "aud": AS, "client_id": "svc",
            "jti": "j-1", "iat": NOW, "exp": NOW + 300,
        });
        if let Some(m) = c.as_object_mut() {
            change(m);
        }
        let mut h = Map::new();
        h.insert("typ".into(), TYP_ID_JAG.into());
        let key = keybound_testkit::keys::es256_a();
        keybound_jose::jws::sign(
            keybound_jose::Algorithm::ES256,
            &h,
            c.to_string().as_bytes(),
            &key,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn checked(token: &str) -> Result<(IdJagClaims, Option<Jkt>), Error> {
        let jws = Jws::parse(token).unwrap_or_else(|e| panic!("{e}"));
        check(&jws, AS, "svc", NOW, 30)
    }

    /// IJ (required claims), JB-4, JB-5 and `iat` (issue 22 item 6): an ID-JAG lacking `sub` or
    /// `exp`, not yet valid (`nbf`) or issued in the future is refused, each beyond the leeway;
    /// within it, accepted.
    #[test]
    fn ij_required_claims_and_times() {
        assert!(checked(&jag(|_| {})).is_ok());
        for (what, token, says) in [
            ("no sub", jag(|m| drop(m.remove("sub"))), "sub"),
            ("no exp", jag(|m| drop(m.remove("exp"))), "exp"),
            (
                "nbf ahead",
                jag(|m| drop(m.insert("nbf".into(), (NOW + 31).into()))),
                "not valid before",
            ),
            (
                "iat ahead",
                jag(|m| drop(m.insert("iat".into(), (NOW + 31).into()))),
                "in the future",
            ),
            (
                "expired",
                jag(|m| drop(m.insert("exp".into(), (NOW - 30).into()))),
                "expired",
            ),
        ] {
            match checked(&token) {
                Err(Error::IdJag(m)) => assert!(m.contains(says), "{what}: {m}"),
                other => panic!("{what}: expected a refusal, got {other:?}"),
            }
        }
        // issue 26 item 2: a cnf without a key this server can check is refused, not unbound
        for cnf in [
            serde_json::json!({}),
            serde_json::json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
            serde_json::json!({ "tbh": "suMuxh_IlrP-Zrj33LuQOQ5rX039cmBe-wt2df3BrUQ" }),
        ] {
            match checked(&jag(|m| drop(m.insert("cnf".into(), cnf.clone())))) {
                Err(Error::IdJag(m)) => assert!(m.contains("cnf names no key"), "{cnf}: {m}"),
                other => panic!("{cnf}: expected a refusal, got {other:?}"),
            }
        }
        // within the leeway
        assert!(checked(&jag(|m| drop(m.insert("nbf".into(), (NOW + 30).into())))).is_ok());
        assert!(checked(&jag(|m| drop(m.insert("iat".into(), (NOW + 30).into())))).is_ok());
    }
}
