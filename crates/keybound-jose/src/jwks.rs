//! JWK Sets (RFC 7517 §5): the OP's published signing keys.
//!
//! Entries whose key type or curve keybound does not verify with (encryption keys, X25519,
//! symmetric keys without private-looking members) are skipped, as RFC 7517 §5 allows; an
//! entry carrying private members makes the whole set an error, because an OP publishing
//! private keys is misconfigured and nothing it signs should be trusted.

use serde_json::Value;

use crate::{Algorithm, Error, Jws, PublicJwk};

/// One key of a set, with the metadata used to select it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkSetEntry {
    /// `kid`
    pub kid: Option<String>,
    /// `alg`, if the entry names one keybound knows
    pub alg: Option<Algorithm>,
    /// `use`
    pub use_: Option<String>,
    /// the key
    pub jwk: PublicJwk,
}

/// A parsed JWK Set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    /// The usable keys.
    pub keys: Vec<JwkSetEntry>,
}

impl JwkSet {
    /// A set with one signing key of `key`'s default algorithm, named `kid`.
    pub fn signing_key(key: &crate::PrivateKey, kid: &str) -> Self {
        JwkSet {
            keys: vec![JwkSetEntry {
                kid: Some(kid.to_owned()),
                alg: Some(key.default_alg()),
                use_: Some("sig".to_owned()),
                jwk: key.public_jwk().clone(),
            }],
        }
    }

    /// Parse `{"keys": [...]}`.
    pub fn from_json(s: &str) -> Result<Self, Error> {
        Self::from_value(&serde_json::from_str(s)?)
    }

    /// Parse from a JSON value.
    pub fn from_value(v: &Value) -> Result<Self, Error> {
        let arr = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Json("JWK Set: expected an object with a 'keys' array".into()))?;
        let mut keys = Vec::with_capacity(arr.len());
        for entry in arr {
            match PublicJwk::from_value(entry) {
                Ok(jwk) => {
                    let s = |m: &str| entry.get(m).and_then(Value::as_str).map(str::to_owned);
                    if s("use").is_some_and(|u| u != "sig") {
                        continue;
                    }
                    keys.push(JwkSetEntry {
                        kid: s("kid"),
                        alg: s("alg").and_then(|a| Algorithm::parse(&a).ok()),
                        use_: s("use"),
                        jwk,
                    });
                }
                Err(e @ Error::PrivateMember(_)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(JwkSet { keys })
    }

    /// The one "verify a JWS against a key set" step: `jws.alg` must be in `allowed`, and one of
    /// the keys that may have made it ([`JwkSet::candidates`]: its `kid`, else every key
    /// supporting its `alg`) must verify it. Returns that key.
    ///
    /// Refusals: [`Error::AlgNotAllowed`], [`Error::NoMatchingKey`] (an unknown `kid` is
    /// worth a refetch of the set), [`Error::BadSignature`].
    pub fn verify(&self, jws: &Jws<'_>, allowed: &[Algorithm]) -> Result<&PublicJwk, Error> {
        let header = jws.header();
        if !allowed.contains(&header.alg) {
            return Err(Error::AlgNotAllowed {
                got: header.alg,
                allowed: Algorithm::list(allowed),
            });
        }
        let candidates = self.candidates(header.kid.as_deref(), header.alg);
        if candidates.is_empty() {
            return Err(Error::NoMatchingKey {
                kid: header.kid.clone(),
                alg: header.alg,
            });
        }
        candidates
            .into_iter()
            .find(|k| jws.verify(k, allowed).is_ok())
            .ok_or(Error::BadSignature)
    }

    /// Keys that may have produced a signature with `alg` and `kid`: the entry with that `kid`
    /// when one is given, otherwise every key that supports `alg`.
    pub fn candidates<'a>(&'a self, kid: Option<&str>, alg: Algorithm) -> Vec<&'a PublicJwk> {
        self.keys
            .iter()
            .filter(|e| match kid {
                Some(k) => e.kid.as_deref() == Some(k),
                None => true,
            })
            .filter(|e| e.alg.is_none_or(|a| a == alg) && e.jwk.supports(alg))
            .map(|e| &e.jwk)
            .collect()
    }

    /// Serialize as `{"keys": [...]}` with `kid`, `alg`, `use` next to the required members.
    pub fn to_value(&self) -> Value {
        let keys = self
            .keys
            .iter()
            .map(|e| {
                let mut v = e.jwk.to_value();
                if let Some(k) = &e.kid {
                    v["kid"] = k.clone().into();
                }
                if let Some(a) = e.alg {
                    v["alg"] = a.name().into();
                }
                if let Some(u) = &e.use_ {
                    v["use"] = u.clone().into();
                }
                v
            })
            .collect::<Vec<_>>();
        serde_json::json!({ "keys": keys })
    }
}

/// As `{"keys": [...]}` ([`JwkSet::to_value`]).
impl serde::Serialize for JwkSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

/// With [`JwkSet::from_value`]'s rules: unusable entries skipped, private members refused.
impl<'de> serde::Deserialize<'de> for JwkSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        JwkSet::from_value(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyKind;
    use crate::PrivateKey;

    #[test]
    fn skips_unusable_entries_and_refuses_private_ones() {
        let k = PrivateKey::generate(KeyKind::Es256).unwrap();
        let mut set = JwkSet::signing_key(&k, "a").to_value();
        let keys = set["keys"].as_array_mut().unwrap();
        keys.push(serde_json::json!({"kty":"OKP","crv":"X25519","x":"AAAA"}));
        let mut enc = k.public_jwk().to_value();
        enc["use"] = "enc".into();
        keys.push(enc);
        let parsed = JwkSet::from_value(&set).unwrap();
        assert_eq!(parsed.keys.len(), 1);
        assert_eq!(parsed.candidates(Some("a"), Algorithm::ES256).len(), 1);
        assert!(parsed.candidates(Some("b"), Algorithm::ES256).is_empty());
        assert!(parsed.candidates(None, Algorithm::RS256).is_empty());
        let mut private: Value = serde_json::from_str(&k.to_private_jwk().unwrap()).unwrap();
        private["kid"] = "p".into();
        set["keys"].as_array_mut().unwrap().push(private);
        assert_eq!(JwkSet::from_value(&set), Err(Error::PrivateMember("d")));
    }

    /// The one set verification: the right key verifies; an algorithm off the allow-list, a
    /// `kid` the set does not have, and a signature by another key each have their refusal.
    #[test]
    fn verify_against_a_set() {
        let k = PrivateKey::generate(KeyKind::Es256).unwrap();
        let other = PrivateKey::generate(KeyKind::Es256).unwrap();
        let set = JwkSet::signing_key(&k, "a");
        let signed = |key: &PrivateKey, kid: &str| {
            let mut h = serde_json::Map::new();
            h.insert("kid".into(), kid.into());
            crate::jws::sign(Algorithm::ES256, &h, b"{}", key).unwrap()
        };
        let good = signed(&k, "a");
        let jws = Jws::parse(&good).unwrap();
        assert_eq!(set.verify(&jws, &Algorithm::ALL), Ok(k.public_jwk()));
        assert!(matches!(
            set.verify(&jws, &[Algorithm::EdDSA]),
            Err(Error::AlgNotAllowed { .. })
        ));
        let unknown = signed(&k, "b");
        assert_eq!(
            set.verify(&Jws::parse(&unknown).unwrap(), &Algorithm::ALL),
            Err(Error::NoMatchingKey {
                kid: Some("b".into()),
                alg: Algorithm::ES256
            })
        );
        let forged = signed(&other, "a");
        assert_eq!(
            set.verify(&Jws::parse(&forged).unwrap(), &Algorithm::ALL),
            Err(Error::BadSignature)
        );
    }
}
