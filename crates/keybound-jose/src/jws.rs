//! JWS compact serialization (RFC 7515) with an explicit algorithm allow-list.
//!
//! Parsing is strict so that one token has one meaning: exactly three segments of strict
//! base64url, a JSON-object header with a string `alg` that is a supported asymmetric
//! algorithm (`none` and HMAC are rejected before any key is looked at), no `crit` extension
//! we do not implement, and no RFC 7797 unencoded payload. Verification then requires the
//! caller to name the algorithms it allows and the key to use.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{b64, Error, PrivateKey, PublicJwk};

/// The JWS algorithms keybound signs and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// ECDSA P-256 SHA-256
    ES256,
    /// ECDSA P-384 SHA-384
    ES384,
    /// ECDSA P-521 SHA-512
    ES512,
    /// Ed25519
    EdDSA,
    /// RSASSA-PKCS1-v1_5 SHA-256
    RS256,
    /// RSASSA-PSS SHA-256 MGF1-SHA-256
    PS256,
}

impl Algorithm {
    /// Every supported algorithm, strongest-default first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ];

    /// The hash function of the algorithm applied to `data` (JWA §3; for `EdDSA` on Ed25519,
    /// the only curve keybound signs with, SHA-512 — OpenID Connect Token Hash Algorithms 1.0):
    /// what OpenID Connect's `at_hash` and `c_hash` take the left half of.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let f = match self {
            Algorithm::ES256 | Algorithm::RS256 | Algorithm::PS256 => &digest::SHA256,
            Algorithm::ES384 => &digest::SHA384,
            Algorithm::ES512 | Algorithm::EdDSA => &digest::SHA512,
        };
        digest::digest(f, data).as_ref().to_vec()
    }

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
        }
    }

    /// Parse an `alg` value; `none` and MAC algorithms get their own errors.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "ES256" => Ok(Algorithm::ES256),
            "ES384" => Ok(Algorithm::ES384),
            "ES512" => Ok(Algorithm::ES512),
            "EdDSA" | "Ed25519" => Ok(Algorithm::EdDSA),
            "RS256" => Ok(Algorithm::RS256),
            "PS256" => Ok(Algorithm::PS256),
            "none" => Err(Error::AlgNone),
            _ if s.starts_with("HS") => Err(Error::SymmetricAlg(s.chars().take(16).collect())),
            _ => Err(Error::UnsupportedAlg(s.chars().take(32).collect())),
        }
    }

    /// Names of `algs`, comma-separated, for error messages.
    pub fn list(algs: &[Algorithm]) -> String {
        algs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Algorithm::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A parsed, checked JOSE header.
#[derive(Debug, Clone)]
pub struct Header {
    /// `alg`, already known to be supported and asymmetric.
    pub alg: Algorithm,
    /// `typ`, if any.
    pub typ: Option<String>,
    /// `kid`, if any.
    pub kid: Option<String>,
    /// `jwk`, if any, already validated as a public key.
    pub jwk: Option<PublicJwk>,
    raw: Map<String, Value>,
}

impl Header {
    fn from_map(raw: Map<String, Value>) -> Result<Self, Error> {
        let alg = match raw.get("alg") {
            Some(Value::String(s)) => Algorithm::parse(s)?,
            Some(_) => {
                return Err(Error::HeaderMember {
                    member: "alg",
                    expected: "a string",
                })
            }
            None => {
                return Err(Error::HeaderMember {
                    member: "alg",
                    expected: "to be present",
                })
            }
        };
        let b64_true = match raw.get("b64") {
            None | Some(Value::Bool(true)) => raw.contains_key("b64"),
            Some(Value::Bool(false)) => return Err(Error::UnencodedPayload),
            Some(_) => {
                return Err(Error::HeaderMember {
                    member: "b64",
                    expected: "a boolean",
                })
            }
        };
        if let Some(crit) = raw.get("crit") {
            let names = crit
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or(Error::HeaderMember {
                    member: "crit",
                    expected: "a non-empty array of strings",
                })?;
            let mut unknown = Vec::new();
            for n in names {
                let n = n.as_str().ok_or(Error::HeaderMember {
                    member: "crit",
                    expected: "a non-empty array of strings",
                })?;
                // The only extension we implement is b64, and only in its default (true) form.
                if !(n == "b64" && b64_true) {
                    unknown.push(n.chars().take(32).collect::<String>());
                }
            }
            if !unknown.is_empty() {
                return Err(Error::CritUnsupported(unknown.join(", ")));
            }
        }
        let typ = opt_string(&raw, "typ")?;
        let kid = opt_string(&raw, "kid")?;
        let jwk = raw.get("jwk").map(PublicJwk::from_value).transpose()?;
        Ok(Header {
            alg,
            typ,
            kid,
            jwk,
            raw,
        })
    }

    /// Any header member by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.raw.get(name)
    }

    /// All header members as received.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }
}

fn opt_string(raw: &Map<String, Value>, member: &'static str) -> Result<Option<String>, Error> {
    match raw.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::HeaderMember {
            member,
            expected: "a string",
        }),
    }
}

/// A parsed (not yet verified) JWS in compact serialization.
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    header: Header,
    payload: Vec<u8>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Parse a compact JWS. Nothing is verified yet except the shape rules.
    pub fn parse(compact: &'a str) -> Result<Self, Error> {
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Segments(compact.split('.').count()));
        };
        let header_bytes = b64::decode(h)?;
        let raw: Value = serde_json::from_slice(&header_bytes)?;
        let Value::Object(raw) = raw else {
            return Err(Error::Json("header: expected a JSON object".into()));
        };
        let header = Header::from_map(raw)?;
        let payload = b64::decode(p)?;
        let signature = b64::decode(s)?;
        let signing_input = &compact[..h.len() + 1 + p.len()];
        Ok(Jws {
            header,
            payload,
            signing_input,
            signature,
        })
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The decoded payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload parsed as JSON into `T`.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.payload)?)
    }

    /// `base64url(header) '.' base64url(payload)`, the bytes that were signed.
    pub fn signing_input(&self) -> &str {
        self.signing_input
    }

    /// Verify the signature with `key`, accepting only algorithms in `allowed`.
    pub fn verify(&self, key: &PublicJwk, allowed: &[crate::Algorithm]) -> Result<(), Error> {
        let alg = self.header.alg;
        if !allowed.contains(&alg) {
            return Err(Error::AlgNotAllowed {
                got: alg,
                allowed: Algorithm::list(allowed),
            });
        }
        key.verify(alg, self.signing_input.as_bytes(), &self.signature)
    }
}

/// Sign `payload` as a compact JWS. `header` supplies every member except `alg`, which is set
/// from `alg` (and must fit `key`).
pub fn sign(
    alg: Algorithm,
    header: &Map<String, Value>,
    payload: &[u8],
    key: &PrivateKey,
) -> Result<String, Error> {
    let mut h = header.clone();
    h.insert("alg".into(), Value::String(alg.name().into()));
    let header_json = serde_json::to_vec(&h)?;
    let mut out = b64::encode(header_json);
    out.push('.');
    out.push_str(&b64::encode(payload));
    let sig = key.sign(alg, out.as_bytes())?;
    out.push('.');
    out.push_str(&b64::encode(sig));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyKind;
    use serde_json::json;

    fn obj(v: &Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn forge(header: &Value, payload: &[u8], sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64::encode(serde_json::to_vec(header).unwrap()),
            b64::encode(payload),
            b64::encode(sig)
        )
    }

    #[test]
    fn sign_verify_every_algorithm() {
        for (kind, alg) in [
            (KeyKind::Es256, Algorithm::ES256),
            (KeyKind::Es384, Algorithm::ES384),
            (KeyKind::Es512, Algorithm::ES512),
            (KeyKind::Ed25519, Algorithm::EdDSA),
            (KeyKind::Rsa2048, Algorithm::RS256),
            (KeyKind::Rsa2048, Algorithm::PS256),
        ] {
            let key = PrivateKey::generate(kind).unwrap();
            let t = sign(alg, &obj(&json!({"typ":"JWT"})), b"{\"a\":1}", &key).unwrap();
            let jws = Jws::parse(&t).unwrap();
            jws.verify(key.public_jwk(), &Algorithm::ALL).unwrap();
            assert_eq!(jws.payload(), b"{\"a\":1}");
            // tampered payload fails
            let mut parts: Vec<&str> = t.split('.').collect();
            let other = b64::encode(b"{\"a\":2}");
            parts[1] = &other;
            let t2 = parts.join(".");
            assert_eq!(
                Jws::parse(&t2)
                    .unwrap()
                    .verify(key.public_jwk(), &Algorithm::ALL),
                Err(Error::BadSignature)
            );
        }
    }

    #[test]
    fn alg_none_is_rejected() {
        let t = forge(&json!({"alg":"none"}), b"{}", b"");
        assert_eq!(Jws::parse(&t).unwrap_err(), Error::AlgNone);
    }

    #[test]
    fn hs256_keyed_with_public_key_is_rejected() {
        // The classic confusion: HMAC over the input with the public key's bytes as secret.
        let key = PrivateKey::generate(KeyKind::Es256).unwrap();
        let secret = key.public_jwk().canonical_json();
        let h = b64::encode(br#"{"alg":"HS256"}"#);
        let p = b64::encode(b"{}");
        let input = format!("{h}.{p}");
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&k, input.as_bytes());
        let t = format!("{input}.{}", b64::encode(tag.as_ref()));
        assert_eq!(
            Jws::parse(&t).unwrap_err(),
            Error::SymmetricAlg("HS256".into())
        );
    }

    #[test]
    fn unknown_crit_is_rejected() {
        let t = forge(&json!({"alg":"ES256","crit":["exp"],"exp":1}), b"{}", b"x");
        assert_eq!(
            Jws::parse(&t).unwrap_err(),
            Error::CritUnsupported("exp".into())
        );
        let t = forge(&json!({"alg":"ES256","crit":[]}), b"{}", b"x");
        assert!(matches!(
            Jws::parse(&t).unwrap_err(),
            Error::HeaderMember { member: "crit", .. }
        ));
    }

    #[test]
    fn b64_false_is_rejected() {
        let t = forge(
            &json!({"alg":"ES256","b64":false,"crit":["b64"]}),
            b"{}",
            b"x",
        );
        assert_eq!(Jws::parse(&t).unwrap_err(), Error::UnencodedPayload);
    }

    #[test]
    fn padding_in_any_segment_is_rejected() {
        let key = PrivateKey::generate(KeyKind::Es256).unwrap();
        let t = sign(Algorithm::ES256, &Map::new(), b"{}", &key).unwrap();
        let padded = format!("{t}==");
        assert_eq!(Jws::parse(&padded).unwrap_err(), Error::Base64Padding);
    }

    #[test]
    fn trailing_segment_and_missing_segment_are_rejected() {
        let key = PrivateKey::generate(KeyKind::Es256).unwrap();
        let t = sign(Algorithm::ES256, &Map::new(), b"{}", &key).unwrap();
        assert_eq!(
            Jws::parse(&format!("{t}.")).unwrap_err(),
            Error::Segments(4)
        );
        assert_eq!(
            Jws::parse(&format!("{t}.AAAA")).unwrap_err(),
            Error::Segments(4)
        );
        let two = t.rsplit_once('.').unwrap().0.to_owned();
        assert_eq!(Jws::parse(&two).unwrap_err(), Error::Segments(2));
        assert!(matches!(
            Jws::parse(&format!("{t}\n")).unwrap_err(),
            Error::Base64(_)
        ));
    }

    #[test]
    fn alg_must_be_allowed_and_fit_key() {
        let key = PrivateKey::generate(KeyKind::Es256).unwrap();
        let t = sign(Algorithm::ES256, &Map::new(), b"{}", &key).unwrap();
        let jws = Jws::parse(&t).unwrap();
        assert!(matches!(
            jws.verify(key.public_jwk(), &[Algorithm::RS256]),
            Err(Error::AlgNotAllowed {
                got: Algorithm::ES256,
                ..
            })
        ));
        let rsa = PrivateKey::generate(KeyKind::Rsa2048).unwrap();
        assert!(matches!(
            jws.verify(rsa.public_jwk(), &Algorithm::ALL),
            Err(Error::AlgKeyMismatch { .. })
        ));
    }

    #[test]
    fn header_jwk_with_private_member_is_rejected() {
        let key = PrivateKey::generate(KeyKind::Es256).unwrap();
        let mut jwk = key.public_jwk().to_value();
        jwk["d"] = json!("AAAA");
        let t = forge(&json!({"alg":"ES256","jwk":jwk}), b"{}", b"x");
        assert_eq!(Jws::parse(&t).unwrap_err(), Error::PrivateMember("d"));
    }
}
