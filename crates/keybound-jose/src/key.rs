//! Private signing keys: generation, PKCS#8 (DER and PEM) and private-JWK import/export.
//!
//! A [`PrivateKey`] always knows its [`PublicJwk`], so callers never re-derive it. Its `Debug`
//! output names the key type and thumbprint, never key material, and every exported secret is
//! returned in a [`Zeroizing`] buffer.

use std::fmt;

use aws_lc_rs::encoding::{AsBigEndian, AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeyPairComponents, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::{b64, Algorithm, Curve, Error, PublicJwk};

/// Kinds of key [`PrivateKey::generate`] can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// EC P-256, for ES256 (keybound's default)
    Es256,
    /// EC P-384, for ES384
    Es384,
    /// EC P-521, for ES512
    Es512,
    /// Ed25519, for EdDSA
    Ed25519,
    /// RSA 2048-bit, for RS256/PS256
    Rsa2048,
    /// RSA 3072-bit
    Rsa3072,
}

enum Inner {
    Ec(Curve, EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key with its public JWK.
pub struct PrivateKey {
    inner: Inner,
    public: PublicJwk,
}

fn ec_signing(crv: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match crv {
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        Curve::P256 | Curve::Ed25519 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

fn pk_err(e: impl fmt::Display) -> Error {
    Error::PrivateKey(e.to_string())
}

impl PrivateKey {
    /// Generate a fresh key from the operating system's CSPRNG.
    pub fn generate(kind: KeyKind) -> Result<Self, Error> {
        match kind {
            KeyKind::Es256 => Self::generate_ec(Curve::P256),
            KeyKind::Es384 => Self::generate_ec(Curve::P384),
            KeyKind::Es512 => Self::generate_ec(Curve::P521),
            KeyKind::Ed25519 => Self::from_ed25519(Ed25519KeyPair::generate().map_err(pk_err)?),
            KeyKind::Rsa2048 => {
                Self::from_rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(pk_err)?)
            }
            KeyKind::Rsa3072 => {
                Self::from_rsa(RsaKeyPair::generate(KeySize::Rsa3072).map_err(pk_err)?)
            }
        }
    }

    fn generate_ec(crv: Curve) -> Result<Self, Error> {
        Self::from_ec(
            crv,
            EcdsaKeyPair::generate(ec_signing(crv)).map_err(pk_err)?,
        )
    }

    fn from_ec(crv: Curve, kp: EcdsaKeyPair) -> Result<Self, Error> {
        let public = PublicJwk::from_ec_point(crv, kp.public_key().as_ref())?;
        Ok(PrivateKey {
            inner: Inner::Ec(crv, kp),
            public,
        })
    }

    fn from_ed25519(kp: Ed25519KeyPair) -> Result<Self, Error> {
        let public = PublicJwk::from_ed25519(kp.public_key().as_ref())?;
        Ok(PrivateKey {
            inner: Inner::Ed25519(kp),
            public,
        })
    }

    fn from_rsa(kp: RsaKeyPair) -> Result<Self, Error> {
        let pk = kp.public_key();
        let public = PublicJwk::from_rsa(
            pk.modulus().big_endian_without_leading_zero(),
            pk.exponent().big_endian_without_leading_zero(),
        )?;
        Ok(PrivateKey {
            inner: Inner::Rsa(kp),
            public,
        })
    }

    /// Import an unencrypted PKCS#8 `PrivateKeyInfo` (EC P-256/384/521, Ed25519 or RSA).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        for crv in [Curve::P256, Curve::P384, Curve::P521] {
            if let Ok(kp) = EcdsaKeyPair::from_pkcs8(ec_signing(crv), der) {
                return Self::from_ec(crv, kp);
            }
        }
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Self::from_ed25519(kp);
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(kp) => Self::from_rsa(kp),
            Err(e) => Err(Error::PrivateKey(format!(
                "expected PKCS#8 EC (P-256/P-384/P-521), Ed25519 or RSA 2048..8192, got an unusable key ({e})"
            ))),
        }
    }

    /// Export as PKCS#8 v1 DER.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let der = match &self.inner {
            Inner::Ec(_, kp) => kp.to_pkcs8v1().map_err(pk_err)?.as_ref().to_vec(),
            Inner::Ed25519(kp) => kp.to_pkcs8v1().map_err(pk_err)?.as_ref().to_vec(),
            Inner::Rsa(kp) => {
                let d: Pkcs8V1Der<'static> = kp.as_der().map_err(pk_err)?;
                d.as_ref().to_vec()
            }
        };
        Ok(Zeroizing::new(der))
    }

    /// Import a PEM `PRIVATE KEY` (PKCS#8) block.
    pub fn from_pem(text: &str) -> Result<Self, Error> {
        let block = pem::parse(text).map_err(pk_err)?;
        if block.tag() != "PRIVATE KEY" {
            return Err(Error::PrivateKey(format!(
                "expected a PEM 'PRIVATE KEY' (PKCS#8) block, got '{}'",
                block.tag()
            )));
        }
        let der = Zeroizing::new(block.into_contents());
        Self::from_pkcs8_der(&der)
    }

    /// Export as a PEM `PRIVATE KEY` block.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, Error> {
        let der = self.to_pkcs8_der()?;
        Ok(Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            der.to_vec(),
        ))))
    }

    /// Import a private JWK (EC with `d`, OKP Ed25519 with `d`, RSA with `d p q dp dq qi`).
    pub fn from_jwk(json: &str) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Raw {
            kty: String,
            crv: Option<String>,
            x: Option<String>,
            y: Option<String>,
            n: Option<String>,
            e: Option<String>,
            d: Option<String>,
            p: Option<String>,
            q: Option<String>,
            dp: Option<String>,
            dq: Option<String>,
            qi: Option<String>,
            oth: Option<serde::de::IgnoredAny>,
        }
        let raw: Raw = serde_json::from_str(json)?;
        let need = |v: &Option<String>, m: &'static str| -> Result<Zeroizing<Vec<u8>>, Error> {
            let s = v.as_deref().ok_or(Error::MissingMember(m))?;
            Ok(Zeroizing::new(b64::decode(s)?))
        };
        match raw.kty.as_str() {
            "EC" => {
                let crv = match raw.crv.as_deref() {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    Some("P-521") => Curve::P521,
                    other => {
                        return Err(Error::UnsupportedCurve {
                            expected: "P-256, P-384 or P-521",
                            got: other.unwrap_or("").to_owned(),
                        })
                    }
                };
                let (x, y, d) = (need(&raw.x, "x")?, need(&raw.y, "y")?, need(&raw.d, "d")?);
                let len = crv.coordinate_len();
                if d.len() != len {
                    return Err(Error::BadLength {
                        member: "d",
                        expected: len,
                        got: d.len(),
                    });
                }
                let mut point = vec![0x04];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                // validates lengths and the point before aws-lc sees it
                PublicJwk::from_ec_point(crv, &point)?;
                let kp = EcdsaKeyPair::from_private_key_and_public_key(ec_signing(crv), &d, &point)
                    .map_err(|e| Error::PrivateKey(format!("EC d does not match (x, y): {e}")))?;
                Self::from_ec(crv, kp)
            }
            "OKP" => {
                if raw.crv.as_deref() != Some("Ed25519") {
                    return Err(Error::UnsupportedCurve {
                        expected: "Ed25519",
                        got: raw.crv.unwrap_or_default(),
                    });
                }
                let (x, d) = (need(&raw.x, "x")?, need(&raw.d, "d")?);
                let kp = Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                    .map_err(|e| Error::PrivateKey(format!("Ed25519 d does not match x: {e}")))?;
                Self::from_ed25519(kp)
            }
            "RSA" => {
                if raw.oth.is_some() {
                    return Err(Error::PrivateKey(
                        "multi-prime RSA keys ('oth') are not supported".into(),
                    ));
                }
                let n = need(&raw.n, "n")?;
                let e = need(&raw.e, "e")?;
                // validate the public half (size, encoding) first
                PublicJwk::from_rsa(&n, &e)?;
                let c = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: n.as_slice(),
                        e: e.as_slice(),
                    },
                    d: need(&raw.d, "d")?,
                    p: need(&raw.p, "p")?,
                    q: need(&raw.q, "q")?,
                    dP: need(&raw.dp, "dp")?,
                    dQ: need(&raw.dq, "dq")?,
                    qInv: need(&raw.qi, "qi")?,
                };
                let kp = RsaKeyPair::from_components(&c)
                    .map_err(|e| Error::PrivateKey(format!("inconsistent RSA components: {e}")))?;
                Self::from_rsa(kp)
            }
            other => Err(Error::UnsupportedKty(other.chars().take(16).collect())),
        }
    }

    /// Export as a private JWK. EC and Ed25519 keys only: aws-lc-rs does not expose RSA
    /// private components, so RSA keys are exported as PKCS#8 instead.
    pub fn to_private_jwk(&self) -> Result<Zeroizing<String>, Error> {
        let mut v = self.public.to_value();
        let d = match &self.inner {
            Inner::Ec(_, kp) => {
                let bin = kp.private_key().as_be_bytes().map_err(pk_err)?;
                b64::encode(bin.as_ref())
            }
            Inner::Ed25519(kp) => {
                let seed = kp.seed().map_err(pk_err)?;
                let bin = seed.as_be_bytes().map_err(pk_err)?;
                b64::encode(bin.as_ref())
            }
            Inner::Rsa(_) => {
                return Err(Error::PrivateKey(
                    "RSA private keys are exported as PKCS#8, not JWK".into(),
                ))
            }
        };
        v["d"] = serde_json::Value::String(d);
        Ok(Zeroizing::new(v.to_string()))
    }

    /// The public half.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// The algorithm keybound uses with this key by default.
    pub fn default_alg(&self) -> Algorithm {
        match &self.inner {
            Inner::Ec(Curve::P384, _) => Algorithm::ES384,
            Inner::Ec(Curve::P521, _) => Algorithm::ES512,
            Inner::Ec(_, _) => Algorithm::ES256,
            Inner::Ed25519(_) => Algorithm::EdDSA,
            Inner::Rsa(_) => Algorithm::PS256,
        }
    }

    /// Sign `message` with `alg` (which must fit the key).
    pub fn sign(&self, alg: Algorithm, message: &[u8]) -> Result<Vec<u8>, Error> {
        if !self.public.supports(alg) {
            return Err(Error::AlgKeyMismatch {
                alg,
                key: self.public.describe(),
            });
        }
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Ec(_, kp) => Ok(kp
                .sign(&rng, message)
                .map_err(|_| Error::SigningFailed)?
                .as_ref()
                .to_vec()),
            Inner::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Inner::Rsa(kp) => {
                let enc: &'static dyn signature::RsaEncoding = if alg == Algorithm::PS256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(enc, &rng, message, &mut sig)
                    .map_err(|_| Error::SigningFailed)?;
                Ok(sig)
            }
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({}, jkt={}, private material redacted)",
            self.public.describe(),
            self.public.thumbprint()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_and_pem_round_trip_all_kinds() {
        for kind in [
            KeyKind::Es256,
            KeyKind::Es384,
            KeyKind::Es512,
            KeyKind::Ed25519,
            KeyKind::Rsa2048,
        ] {
            let k = PrivateKey::generate(kind).unwrap();
            let k2 = PrivateKey::from_pkcs8_der(&k.to_pkcs8_der().unwrap()).unwrap();
            assert_eq!(k.public_jwk(), k2.public_jwk(), "{kind:?}");
            let k3 = PrivateKey::from_pem(&k.to_pem().unwrap()).unwrap();
            assert_eq!(k.public_jwk(), k3.public_jwk(), "{kind:?}");
        }
    }

    #[test]
    fn private_jwk_round_trip_ec_and_okp() {
        for kind in [KeyKind::Es256, KeyKind::Es384, KeyKind::Ed25519] {
            let k = PrivateKey::generate(kind).unwrap();
            let jwk = k.to_private_jwk().unwrap();
            let k2 = PrivateKey::from_jwk(&jwk).unwrap();
            assert_eq!(k.public_jwk(), k2.public_jwk());
            // and the private JWK is not accepted as a public one
            assert_eq!(PublicJwk::from_json(&jwk), Err(Error::PrivateMember("d")));
        }
    }

    #[test]
    fn ec_private_jwk_with_wrong_d_is_rejected() {
        let a = PrivateKey::generate(KeyKind::Es256).unwrap();
        let b = PrivateKey::generate(KeyKind::Es256).unwrap();
        let mut ja: serde_json::Value = serde_json::from_str(&a.to_private_jwk().unwrap()).unwrap();
        let jb: serde_json::Value = serde_json::from_str(&b.to_private_jwk().unwrap()).unwrap();
        ja["d"] = jb["d"].clone();
        assert!(matches!(
            PrivateKey::from_jwk(&ja.to_string()),
            Err(Error::PrivateKey(_))
        ));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = PrivateKey::generate(KeyKind::Es256).unwrap();
        let dbg = format!("{k:?}");
        let jwk: serde_json::Value = serde_json::from_str(&k.to_private_jwk().unwrap()).unwrap();
        assert!(!dbg.contains(jwk["d"].as_str().unwrap()));
        assert!(dbg.contains("redacted"));
    }
}
