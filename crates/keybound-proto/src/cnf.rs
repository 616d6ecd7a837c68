//! The RFC 7800 `cnf` (confirmation) claim with the members keybound uses: `jwk` (Key Binding
//! ID Tokens), `jkt` (DPoP access tokens, ID-JAG) and `tbh` (Token Bound Authentication).
//!
//! Parsing enforces CNF-1 (at most one of `jwk`, `jwe`, `jku`) and that `cnf.jwk` is a public
//! key; `jwe`, `jku` and `kid` are recognised only to be refused (with a message naming them),
//! because keybound never resolves a key indirectly. Unknown members are ignored (CNF-7), which never makes a token
//! confirmed by itself.

use keybound_jose::{b64, Jkt, PublicJwk};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// A parsed `cnf` claim.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Cnf {
    /// The confirmation key itself (Key Binding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwk: Option<PublicJwk>,
    /// SHA-256 JWK thumbprint (RFC 9449).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jkt: Option<Jkt>,
    /// base64url SHA-256 of a Token Binding ID (OIDC Token Bound Authentication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tbh: Option<String>,
}

#[derive(Deserialize)]
struct RawCnf {
    jwk: Option<Value>,
    jwe: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    jkt: Option<String>,
    tbh: Option<String>,
    kid: Option<IgnoredAny>,
}

impl Cnf {
    /// `cnf` with a JWK (the Key Binding form). The JWK carries required members only.
    pub fn with_jwk(jwk: PublicJwk) -> Self {
        Cnf {
            jwk: Some(jwk),
            ..Cnf::default()
        }
    }

    /// `cnf` with a thumbprint (the DPoP access-token form).
    pub fn with_jkt(jkt: Jkt) -> Self {
        Cnf {
            jkt: Some(jkt),
            ..Cnf::default()
        }
    }

    /// Parse a `cnf` JSON value.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let raw = RawCnf::deserialize(v).map_err(|e| Error::Cnf(e.to_string()))?;
        let keys = [raw.jwk.is_some(), raw.jwe.is_some(), raw.jku.is_some()]
            .into_iter()
            .filter(|b| *b)
            .count();
        if keys > 1 {
            return Err(Error::Cnf(
                "expected at most one of jwk, jwe, jku (RFC 7800 §3.1)".into(),
            ));
        }
        // RFC 7800 §3.4: a key named by `kid` only means something to a recipient with its own
        // key registry; keybound has none and never resolves a key indirectly (cnf digest
        // ambiguity 3), so a `kid` is refused rather than silently ignored
        if raw.kid.is_some() {
            return Err(Error::Cnf(
                "kid confirmation keys are not supported (keybound resolves no key by name); expected jwk, jkt or tbh".into(),
            ));
        }
        if raw.jwe.is_some() || raw.jku.is_some() {
            return Err(Error::Cnf(
                "jwe and jku confirmation keys are not supported; expected jwk, jkt or tbh".into(),
            ));
        }
        let jwk = raw
            .jwk
            .as_ref()
            .map(PublicJwk::from_value)
            .transpose()
            .map_err(|e| Error::Cnf(format!("jwk: {e}")))?;
        let jkt = raw
            .jkt
            .as_deref()
            .map(Jkt::parse)
            .transpose()
            .map_err(|e| Error::Cnf(format!("jkt: {e}")))?;
        if let Some(t) = &raw.tbh {
            if t.len() != 43 || b64::decode(t).map(|v| v.len()) != Ok(32) {
                return Err(Error::Cnf(
                    "tbh: expected base64url SHA-256 (43 characters)".into(),
                ));
            }
        }
        // both forms of one key must name the same key: otherwise which one a check reads would
        // decide the outcome (fail closed)
        if let (Some(k), Some(t)) = (&jwk, &jkt) {
            if k.thumbprint() != *t {
                return Err(Error::Cnf(
                    "jwk and jkt name different keys (jkt is not the jwk's thumbprint)".into(),
                ));
            }
        }
        Ok(Cnf {
            jwk,
            jkt,
            tbh: raw.tbh,
        })
    }

    /// The thumbprint of the confirmation key: of `jwk` if present, else `jkt`.
    pub fn key_thumbprint(&self) -> Option<Jkt> {
        self.jwk
            .as_ref()
            .map(PublicJwk::thumbprint)
            .or_else(|| self.jkt.clone())
    }
}

impl<'de> Deserialize<'de> for Cnf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Cnf::from_value(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JWK: &str = r#"{"crv":"P-256","kty":"EC","x":"ukpv3fU6tqQKaUwcdBAQoK3IHvJIW__9yNd1oR7qvZc","y":"nBBxXrx0Nziwg_evfUMUUgnGKKUf2ATpWG9EojnUoU4"}"#;

    #[test]
    fn cnf_jwk_round_trip_and_thumbprint() {
        let v = json!({"jwk": serde_json::from_str::<Value>(JWK).unwrap()});
        let c = Cnf::from_value(&v).unwrap();
        assert_eq!(
            c.key_thumbprint().unwrap().as_str(),
            "dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw"
        );
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
    }

    #[test]
    fn cnf1_one_key_only() {
        let v = json!({"jwk": serde_json::from_str::<Value>(JWK).unwrap(), "jku": "https://x"});
        match Cnf::from_value(&v) {
            Err(Error::Cnf(m)) => assert!(m.contains("at most one of jwk, jwe, jku"), "{m}"),
            other => panic!("expected the CNF-1 refusal, got {other:?}"),
        }
    }

    /// cnf digest ambiguity 3: `cnf.kid` is refused (as the module doc says), alone or beside
    /// a `jwk`, never ignored.
    #[test]
    fn cnf_kid_is_refused() {
        for v in [
            json!({"kid": "key-1"}),
            json!({"jwk": serde_json::from_str::<Value>(JWK).unwrap(), "kid": "key-1"}),
        ] {
            match Cnf::from_value(&v) {
                Err(Error::Cnf(m)) => assert!(m.contains("kid confirmation keys"), "{m}"),
                other => panic!("expected cnf.kid to be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn cnf_jwk_private_is_rejected() {
        let mut jwk: Value = serde_json::from_str(JWK).unwrap();
        jwk["d"] = json!("AAAA");
        let e = Cnf::from_value(&json!({ "jwk": jwk })).unwrap_err();
        assert!(e.to_string().contains("private member 'd'"), "{e}");
    }

    #[test]
    fn tbh_shape() {
        assert!(
            Cnf::from_value(&json!({"tbh":"suMuxh_IlrP-Zrj33LuQOQ5rX039cmBe-wt2df3BrUQ"})).is_ok()
        );
        assert!(Cnf::from_value(&json!({"tbh":"abc"})).is_err());
    }

    /// A `cnf` carrying both `jwk` and `jkt` must name one key with both (a check reading
    /// either gives the same answer).
    #[test]
    fn jwk_and_jkt_must_agree() {
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": "mwMRfMqCkGTh6h5MbrYmKlYm4B_XRyvOd7mOvy_TFhY",
            "y": "tszO3J_ciDo4qLtsT10g26PlDbcyUAa9FAUtiT0Rrko"
        });
        let c = Cnf::from_value(&serde_json::json!({ "jwk": jwk })).unwrap();
        let jkt = c.key_thumbprint().unwrap();
        assert!(Cnf::from_value(&serde_json::json!({ "jwk": jwk, "jkt": jkt.as_str() })).is_ok());
        let e = Cnf::from_value(&serde_json::json!({
            "jwk": jwk, "jkt": "dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("different keys"), "{e}");
    }
}
