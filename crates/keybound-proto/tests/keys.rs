//! Private keys across encodings, with the fixed test keys: the same key imported from PEM and
//! from a private JWK has the same public JWK, signs verifiably, and never shows in `Debug`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{Algorithm, Error, PrivateKey, PublicJwk};
use keybound_testkit::keys;

#[test]
fn rsa_private_jwk_import_matches_pkcs8() {
    let from_pem = keys::rsa2048();
    let from_jwk = PrivateKey::from_jwk(keys::RSA2048_PRIVATE_JWK).unwrap();
    assert_eq!(from_pem.public_jwk(), from_jwk.public_jwk());
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let sig = from_jwk.sign(alg, b"message").unwrap();
        from_pem.public_jwk().verify(alg, b"message", &sig).unwrap();
    }
    // the private JWK is never a public one
    assert_eq!(
        PublicJwk::from_json(keys::RSA2048_PRIVATE_JWK),
        Err(Error::PrivateMember("d"))
    );
    // RSA keys export as PKCS#8, not JWK
    assert!(matches!(
        from_jwk.to_private_jwk(),
        Err(Error::PrivateKey(_))
    ));
    assert_eq!(
        PrivateKey::from_pkcs8_der(&from_jwk.to_pkcs8_der().unwrap())
            .unwrap()
            .public_jwk(),
        from_pem.public_jwk()
    );
}

#[test]
fn rsa_private_jwk_with_inconsistent_component_is_rejected() {
    let mut v: serde_json::Value = serde_json::from_str(keys::RSA2048_PRIVATE_JWK).unwrap();
    v["qi"] = v["dp"].clone();
    assert!(matches!(
        PrivateKey::from_jwk(&v.to_string()),
        Err(Error::PrivateKey(_))
    ));
}

#[test]
fn fixed_keys_have_fixed_thumbprints_and_redacted_debug() {
    for k in [
        keys::es256_a(),
        keys::es256_b(),
        keys::es384(),
        keys::ed25519(),
        keys::rsa2048(),
    ] {
        let again = PrivateKey::from_pem(&k.to_pem().unwrap()).unwrap();
        assert_eq!(again.public_jwk().thumbprint(), k.public_jwk().thumbprint());
        let dbg = format!("{k:?}");
        assert!(dbg.contains("redacted"), "{dbg}");
        assert!(!dbg.contains("PRIVATE KEY"));
    }
    assert_ne!(keys::es256_a().public_jwk(), keys::es256_b().public_jwk());
}

#[test]
fn pem_of_wrong_kind_is_rejected_with_a_message() {
    let e = PrivateKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        .unwrap_err();
    assert!(e.to_string().contains("PRIVATE KEY"), "{e}");
    assert!(PrivateKey::from_pkcs8_der(b"not a key").is_err());
}
