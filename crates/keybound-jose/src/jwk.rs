//! Public JWKs (RFC 7517/7518/8037) and RFC 7638 thumbprints.
//!
//! A [`PublicJwk`] that exists is a valid public key: parsing rejects private members (`d`,
//! `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`), unknown `kty`/`crv`, coordinates of the wrong
//! length, points not on the curve and RSA moduli outside 2048..=8192 bits. It keeps only the
//! RFC 7638 required members, so its JSON form *is* its canonical thumbprint input and
//! `cnf.jwk` values keybound writes never carry anything else (ARCHITECTURE.md §3.1).
//! EC and Ed25519 keys are parsed into aws-lc-rs form once, here, so signature verification
//! does not parse the point a second time.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::{b64, Algorithm, Error};

/// Curves keybound accepts in JWKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (ES256)
    P256,
    /// NIST P-384 (ES384)
    P384,
    /// NIST P-521 (ES512)
    P521,
    /// Ed25519 (EdDSA)
    Ed25519,
}

impl Curve {
    /// The JWK `crv` value.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Ed25519 => "Ed25519",
        }
    }

    /// Length in bytes of one coordinate (EC) or of the public key (Ed25519).
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Ed25519 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    fn ecdsa_verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
            Curve::P256 | Curve::Ed25519 => &signature::ECDSA_P256_SHA256_FIXED,
        }
    }
}

/// A base64url SHA-256 JWK thumbprint (RFC 7638): `dpop_jkt`, `cnf.jkt`, the Key Binding key id.
///
/// Always 43 characters encoding 32 bytes; compare as exact strings (TP-3).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jkt(String);

impl Jkt {
    /// Parse a thumbprint received on the wire (e.g. `dpop_jkt`).
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() != 43 {
            return Err(Error::BadThumbprint(truncate(s)));
        }
        match b64::decode(s) {
            Ok(v) if v.len() == 32 => Ok(Jkt(s.to_owned())),
            _ => Err(Error::BadThumbprint(truncate(s))),
        }
    }

    /// Build from a SHA-256 digest.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Jkt(b64::encode(digest))
    }

    /// The base64url string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

impl fmt::Debug for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jkt({})", self.0)
    }
}

impl fmt::Display for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Jkt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Jkt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Jkt::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated public JWK holding only its RFC 7638 required members.
#[derive(Clone)]
pub struct PublicJwk(Inner);

#[derive(Clone)]
enum Inner {
    Ec {
        crv: Curve,
        x: String,
        y: String,
        key: Arc<ParsedPublicKey>,
    },
    Okp {
        x: String,
        key: Arc<ParsedPublicKey>,
    },
    Rsa {
        n: String,
        e: String,
        n_bytes: Vec<u8>,
        e_bytes: Vec<u8>,
    },
}

/// Every member we look at; unknown members are ignored, duplicates are a JSON error.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

impl RawJwk {
    fn first_private_member(&self) -> Option<&'static str> {
        [
            ("d", self.d.is_some()),
            ("p", self.p.is_some()),
            ("q", self.q.is_some()),
            ("dp", self.dp.is_some()),
            ("dq", self.dq.is_some()),
            ("qi", self.qi.is_some()),
            ("oth", self.oth.is_some()),
            ("k", self.k.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
    }
}

impl PublicJwk {
    /// Parse a JWK from JSON text.
    pub fn from_json(s: &str) -> Result<Self, Error> {
        let raw: RawJwk = serde_json::from_str(s)?;
        Self::from_raw(raw)
    }

    /// Parse a JWK from a JSON value.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, Error> {
        let raw = RawJwk::deserialize(v)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawJwk) -> Result<Self, Error> {
        if let Some(member) = raw.first_private_member() {
            return Err(Error::PrivateMember(member));
        }
        let kty = raw.kty.ok_or(Error::MissingMember("kty"))?;
        match kty.as_str() {
            "EC" => {
                let crv = raw.crv.ok_or(Error::MissingMember("crv"))?;
                let crv = match crv.as_str() {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    "P-521" => Curve::P521,
                    _ => {
                        return Err(Error::UnsupportedCurve {
                            expected: "P-256, P-384 or P-521",
                            got: crv,
                        })
                    }
                };
                let x = raw.x.ok_or(Error::MissingMember("x"))?;
                let y = raw.y.ok_or(Error::MissingMember("y"))?;
                let xb = b64::decode(&x)?;
                let yb = b64::decode(&y)?;
                Self::ec_from_parts(crv, x, y, &xb, &yb)
            }
            "OKP" => {
                let crv = raw.crv.ok_or(Error::MissingMember("crv"))?;
                if crv != "Ed25519" {
                    return Err(Error::UnsupportedCurve {
                        expected: "Ed25519",
                        got: crv,
                    });
                }
                let x = raw.x.ok_or(Error::MissingMember("x"))?;
                let xb = b64::decode(&x)?;
                Self::ed25519_from_parts(x, &xb)
            }
            "RSA" => {
                let n = raw.n.ok_or(Error::MissingMember("n"))?;
                let e = raw.e.ok_or(Error::MissingMember("e"))?;
                let n_bytes = b64::decode(&n)?;
                let e_bytes = b64::decode(&e)?;
                Self::rsa_from_parts(n, e, n_bytes, e_bytes)
            }
            _ => Err(Error::UnsupportedKty(truncate(&kty))),
        }
    }

    fn ec_from_parts(
        crv: Curve,
        x: String,
        y: String,
        xb: &[u8],
        yb: &[u8],
    ) -> Result<Self, Error> {
        let len = crv.coordinate_len();
        for (member, v) in [("x", xb), ("y", yb)] {
            if v.len() != len {
                return Err(Error::BadLength {
                    member,
                    expected: len,
                    got: v.len(),
                });
            }
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(0x04);
        point.extend_from_slice(xb);
        point.extend_from_slice(yb);
        let key = ParsedPublicKey::new(crv.ecdsa_verification(), &point)
            .map_err(|_| Error::PointNotOnCurve(crv.name()))?;
        Ok(PublicJwk(Inner::Ec {
            crv,
            x,
            y,
            key: Arc::new(key),
        }))
    }

    fn ed25519_from_parts(x: String, xb: &[u8]) -> Result<Self, Error> {
        if xb.len() != 32 {
            return Err(Error::BadLength {
                member: "x",
                expected: 32,
                got: xb.len(),
            });
        }
        let key = ParsedPublicKey::new(&signature::ED25519, xb)
            .map_err(|_| Error::PointNotOnCurve("Ed25519"))?;
        Ok(PublicJwk(Inner::Okp {
            x,
            key: Arc::new(key),
        }))
    }

    fn rsa_from_parts(
        n: String,
        e: String,
        n_bytes: Vec<u8>,
        e_bytes: Vec<u8>,
    ) -> Result<Self, Error> {
        match n_bytes.first() {
            None | Some(0) => return Err(Error::RsaEncoding("n")),
            _ => {}
        }
        match e_bytes.first() {
            None | Some(0) => return Err(Error::RsaEncoding("e")),
            _ => {}
        }
        let bits = rsa_bits(&n_bytes);
        if !(2048..=8192).contains(&bits) {
            return Err(Error::RsaKeySize(bits));
        }
        RsaPublicKeyComponents {
            n: n_bytes.as_slice(),
            e: e_bytes.as_slice(),
        }
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| Error::RsaEncoding("e"))?;
        Ok(PublicJwk(Inner::Rsa {
            n,
            e,
            n_bytes,
            e_bytes,
        }))
    }

    /// An EC key from its uncompressed SEC1 point (`04 ‖ x ‖ y`).
    pub fn from_ec_point(crv: Curve, point: &[u8]) -> Result<Self, Error> {
        let len = crv.coordinate_len();
        if crv == Curve::Ed25519 || point.len() != 1 + 2 * len || point[0] != 0x04 {
            return Err(Error::BadLength {
                member: "point",
                expected: 1 + 2 * len,
                got: point.len(),
            });
        }
        let (xb, yb) = point[1..].split_at(len);
        Self::ec_from_parts(crv, b64::encode(xb), b64::encode(yb), xb, yb)
    }

    /// An Ed25519 key from its 32 public bytes.
    pub fn from_ed25519(public: &[u8]) -> Result<Self, Error> {
        Self::ed25519_from_parts(b64::encode(public), public)
    }

    /// An RSA key from big-endian modulus and exponent (leading zeros are stripped).
    pub fn from_rsa(n: &[u8], e: &[u8]) -> Result<Self, Error> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        Self::rsa_from_parts(b64::encode(n), b64::encode(e), n.to_vec(), e.to_vec())
    }

    /// The key type and curve, e.g. `EC P-256`, `OKP Ed25519`, `RSA 2048`.
    pub fn describe(&self) -> String {
        match &self.0 {
            Inner::Ec { crv, .. } => format!("EC {}", crv.name()),
            Inner::Okp { .. } => "OKP Ed25519".to_owned(),
            Inner::Rsa { n_bytes, .. } => format!("RSA {}", rsa_bits(n_bytes)),
        }
    }

    /// `kty` value.
    pub fn kty(&self) -> &'static str {
        match self.0 {
            Inner::Ec { .. } => "EC",
            Inner::Okp { .. } => "OKP",
            Inner::Rsa { .. } => "RSA",
        }
    }

    /// The curve, for EC and OKP keys.
    pub fn curve(&self) -> Option<Curve> {
        match self.0 {
            Inner::Ec { crv, .. } => Some(crv),
            Inner::Okp { .. } => Some(Curve::Ed25519),
            Inner::Rsa { .. } => None,
        }
    }

    /// RFC 7638 canonical JSON: required members, sorted, no whitespace.
    ///
    /// Member values are base64url strings or fixed curve names, none of which need JSON
    /// escaping, so plain formatting is exact.
    pub fn canonical_json(&self) -> String {
        match &self.0 {
            Inner::Ec { crv, x, y, .. } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{x}","y":"{y}"}}"#,
                crv.name()
            ),
            Inner::Okp { x, .. } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            Inner::Rsa { n, e, .. } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        }
    }

    /// RFC 7638 SHA-256 thumbprint.
    pub fn thumbprint(&self) -> Jkt {
        Jkt::from_digest(crate::sha256(self.canonical_json().as_bytes()))
    }

    /// The JWK as a JSON value (required members only).
    pub fn to_value(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        match &self.0 {
            Inner::Ec { crv, x, y, .. } => {
                m.insert("crv".into(), crv.name().into());
                m.insert("kty".into(), "EC".into());
                m.insert("x".into(), x.clone().into());
                m.insert("y".into(), y.clone().into());
            }
            Inner::Okp { x, .. } => {
                m.insert("crv".into(), "Ed25519".into());
                m.insert("kty".into(), "OKP".into());
                m.insert("x".into(), x.clone().into());
            }
            Inner::Rsa { n, e, .. } => {
                m.insert("e".into(), e.clone().into());
                m.insert("kty".into(), "RSA".into());
                m.insert("n".into(), n.clone().into());
            }
        }
        serde_json::Value::Object(m)
    }

    /// Whether `alg` is usable with this key.
    pub fn supports(&self, alg: Algorithm) -> bool {
        match (&self.0, alg) {
            (Inner::Ec { crv, .. }, Algorithm::ES256) => *crv == Curve::P256,
            (Inner::Ec { crv, .. }, Algorithm::ES384) => *crv == Curve::P384,
            (Inner::Ec { crv, .. }, Algorithm::ES512) => *crv == Curve::P521,
            (Inner::Okp { .. }, Algorithm::EdDSA)
            | (Inner::Rsa { .. }, Algorithm::RS256 | Algorithm::PS256) => true,
            _ => false,
        }
    }

    /// Verify `signature` over `message` with `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> Result<(), Error> {
        if !self.supports(alg) {
            return Err(Error::AlgKeyMismatch {
                alg,
                key: self.describe(),
            });
        }
        let ok = match &self.0 {
            Inner::Ec { key, .. } | Inner::Okp { key, .. } => key.verify_sig(message, sig).is_ok(),
            Inner::Rsa {
                n_bytes, e_bytes, ..
            } => {
                let params = if alg == Algorithm::PS256 {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                RsaPublicKeyComponents {
                    n: n_bytes.as_slice(),
                    e: e_bytes.as_slice(),
                }
                .verify(params, message, sig)
                .is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::BadSignature)
        }
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn rsa_bits(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

impl PartialEq for PublicJwk {
    fn eq(&self, other: &Self) -> bool {
        self.canonical_json() == other.canonical_json()
    }
}
impl Eq for PublicJwk {}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicJwk({} {})", self.describe(), self.thumbprint())
    }
}

impl Serialize for PublicJwk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PublicJwk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawJwk::deserialize(d)?;
        PublicJwk::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC9449_KEY: &str = r#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#;

    #[test]
    fn thumbprint_uses_sorted_required_members() {
        let k = PublicJwk::from_json(RFC9449_KEY).unwrap();
        assert_eq!(
            k.thumbprint().as_str(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        // TP-2 negative: hashing the members in document order gives another value.
        let doc_order = r#"{"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}"#;
        assert_eq!(
            crate::sha256_b64(doc_order.as_bytes()),
            "Hhh7Otu0kzbYYbaW4FsMunn9CKzHpDN_vh8kd1R183s"
        );
        assert_ne!(
            k.thumbprint().as_str(),
            "Hhh7Otu0kzbYYbaW4FsMunn9CKzHpDN_vh8kd1R183s"
        );
    }

    #[test]
    fn optional_members_do_not_change_thumbprint() {
        let with_kid = RFC9449_KEY.replace(
            "\"crv\"",
            "\"kid\":\"k1\",\"alg\":\"ES256\",\"use\":\"sig\",\"crv\"",
        );
        let a = PublicJwk::from_json(RFC9449_KEY).unwrap();
        let b = PublicJwk::from_json(&with_kid).unwrap();
        assert_eq!(a.thumbprint(), b.thumbprint());
        assert!(!b.to_value().as_object().unwrap().contains_key("kid"));
    }

    #[test]
    fn jwk_with_private_member_is_rejected() {
        for m in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let j = RFC9449_KEY.replace("\"crv\"", &format!("\"{m}\":\"AAAA\",\"crv\""));
            assert_eq!(
                PublicJwk::from_json(&j),
                Err(Error::PrivateMember(m)),
                "{m}"
            );
        }
    }

    #[test]
    fn point_off_curve_is_rejected() {
        // flip the last y character: (x, y') is not on P-256
        let j = RFC9449_KEY.replace(
            "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
            "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDE",
        );
        assert_eq!(
            PublicJwk::from_json(&j),
            Err(Error::PointNotOnCurve("P-256"))
        );
    }

    #[test]
    fn wrong_coordinate_length_is_rejected() {
        let j = RFC9449_KEY.replace(
            "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBA",
        );
        assert_eq!(
            PublicJwk::from_json(&j),
            Err(Error::BadLength {
                member: "x",
                expected: 32,
                got: 31
            })
        );
    }

    #[test]
    fn unknown_kty_and_crv_are_rejected() {
        assert_eq!(
            PublicJwk::from_json(r#"{"kty":"oct2","k":"x"}"#),
            Err(Error::PrivateMember("k"))
        );
        assert_eq!(
            PublicJwk::from_json(r#"{"kty":"XYZ"}"#),
            Err(Error::UnsupportedKty("XYZ".into()))
        );
        let j = RFC9449_KEY.replace("P-256", "secp256k1");
        assert!(matches!(
            PublicJwk::from_json(&j),
            Err(Error::UnsupportedCurve { .. })
        ));
        assert!(matches!(
            PublicJwk::from_json(r#"{"kty":"OKP","crv":"X25519","x":"AAAA"}"#),
            Err(Error::UnsupportedCurve { .. })
        ));
    }

    #[test]
    fn rsa_below_2048_bits_is_rejected() {
        let n = b64::encode([0xC3u8; 128]); // 1024-bit modulus
        let j = format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#);
        assert_eq!(PublicJwk::from_json(&j), Err(Error::RsaKeySize(1024)));
    }

    #[test]
    fn rsa_with_leading_zero_is_rejected() {
        let mut n = vec![0u8];
        n.extend([0xC3u8; 256]);
        let j = format!(r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#, b64::encode(n));
        assert_eq!(PublicJwk::from_json(&j), Err(Error::RsaEncoding("n")));
    }

    #[test]
    fn jkt_parse() {
        assert!(Jkt::parse("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").is_ok());
        // too short, hex instead of base64url, a character outside base64url: each is the
        // thumbprint error, not some other parse failure
        for bad in [
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4",
            "1f2e6338febe335e2cbaa7c7154c3cbdcfd8650f95c5fe7206bb6360e37f4b5a",
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4+",
        ] {
            assert!(
                matches!(Jkt::parse(bad), Err(Error::BadThumbprint(_))),
                "{bad}: {:?}",
                Jkt::parse(bad)
            );
        }
    }
}
