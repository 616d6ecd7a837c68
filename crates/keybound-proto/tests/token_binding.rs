//! Token Binding codec and verification: strictness of the decoder, signatures over the
//! EKM for all three key parameters, TBH-2 header rules.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::b64;
use keybound_proto::tokbind::{
    verify_request, KeyParameters, TbPublicKey, TokenBinding, TokenBindingId, TokenBindingMessage,
    TokenBindingType,
};
use keybound_proto::Error;
use keybound_testkit::{vector, vstr};

fn rfc8473() -> Vec<u8> {
    b64::decode(vstr(&vector("rfc8473-token-binding.json"), "/header")).unwrap()
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut m = rfc8473();
    m.push(0);
    assert!(matches!(
        TokenBindingMessage::decode(&m),
        Err(Error::TokenBindingMalformed(_))
    ));
}

#[test]
fn every_truncation_is_rejected() {
    let m = rfc8473();
    for n in 0..m.len() {
        let r = TokenBindingMessage::decode(&m[..n]);
        assert!(
            matches!(r, Err(Error::TokenBindingMalformed(_))),
            "prefix of {n} bytes: {r:?}"
        );
    }
}

#[test]
fn inner_length_mismatch_is_rejected() {
    let mut m = rfc8473();
    m[5] = 0x42; // key_length 0x41 -> 0x42
    let r = TokenBindingMessage::decode(&m);
    assert!(
        matches!(&r, Err(Error::TokenBindingMalformed(msg)) if msg.contains("key_length")),
        "{r:?}"
    );
    let mut m = rfc8473();
    m[6] = 63; // point length 64 -> 63
    let r = TokenBindingMessage::decode(&m);
    assert!(
        matches!(&r, Err(Error::TokenBindingMalformed(msg)) if msg.contains("expected 64 bytes, got 63")),
        "{r:?}"
    );
}

#[test]
fn http_requires_exactly_one_provided() {
    let msg = TokenBindingMessage::decode(&rfc8473()).unwrap();
    let mut two = msg.clone();
    two.bindings.push(msg.bindings[0].clone());
    assert!(matches!(
        two.http_bindings(),
        Err(Error::TokenBindingHttp(_))
    ));
    let mut referred_only = msg.clone();
    referred_only.bindings[0].tb_type = TokenBindingType::Referred;
    assert!(matches!(
        referred_only.http_bindings(),
        Err(Error::TokenBindingHttp(_))
    ));
}

fn rsa_binding(params: KeyParameters, tb_type: TokenBindingType, ekm: &[u8; 32]) -> TokenBinding {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
    let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pk = kp.public_key();
    let id = TokenBindingId {
        key_parameters: params,
        key: TbPublicKey::Rsa {
            modulus: pk.modulus().big_endian_without_leading_zero().to_vec(),
            exponent: pk.exponent().big_endian_without_leading_zero().to_vec(),
        },
    };
    let mut b = TokenBinding {
        tb_type,
        id,
        signature: vec![],
        extensions: vec![],
    };
    let data = b.signed_data(ekm);
    let mut sig = vec![0u8; kp.public_modulus_len()];
    let enc: &'static dyn aws_lc_rs::signature::RsaEncoding = if params == KeyParameters::RsaPss {
        &RSA_PSS_SHA256
    } else {
        &RSA_PKCS1_SHA256
    };
    kp.sign(enc, &SystemRandom::new(), &data, &mut sig).unwrap();
    b.signature = sig;
    let _ = kp.public_key().as_ref();
    b
}

#[test]
fn rsa2048_pkcs1_and_pss_bindings_verify_and_round_trip() {
    let ekm = [9u8; 32];
    for params in [KeyParameters::RsaPkcs1, KeyParameters::RsaPss] {
        let b = rsa_binding(params, TokenBindingType::Provided, &ekm);
        b.verify(&ekm).unwrap();
        assert_eq!(b.verify(&[8u8; 32]), Err(Error::TokenBindingSignature));
        // the type byte is signed: the same signature as a referred binding fails
        let mut referred = b.clone();
        referred.tb_type = TokenBindingType::Referred;
        assert_eq!(referred.verify(&ekm), Err(Error::TokenBindingSignature));
        let msg = TokenBindingMessage {
            bindings: vec![b.clone()],
        };
        let back = TokenBindingMessage::decode(&msg.encode().unwrap()).unwrap();
        assert_eq!(back, msg);
        // 265-byte TB ID for e = 65537 (token-binding.md §2.1)
        assert_eq!(b.id.to_bytes().unwrap().len(), 265);
        assert!(b.id.to_public_jwk().is_ok());
    }
}

#[test]
fn unknown_key_parameters_parse_but_do_not_verify() {
    let mut m = rfc8473();
    m[3] = 7; // key_parameters ecdsap256 -> 7
    let msg = TokenBindingMessage::decode(&m).unwrap();
    assert_eq!(msg.bindings[0].id.key_parameters, KeyParameters::Unknown(7));
    assert!(matches!(
        msg.bindings[0].verify(&[0; 32]),
        Err(Error::TokenBindingKey(_))
    ));
    assert_eq!(msg.encode().unwrap(), m);
}

/// A forwarded TokenBindingID (draft-ietf-tokbind-ttrp) parses back exactly; trailing bytes
/// or a truncation are refused.
#[test]
fn forwarded_token_binding_id_round_trip_is_strict() {
    let id = keybound_proto::tokbind::TokenBindingId {
        key_parameters: keybound_proto::tokbind::KeyParameters::EcdsaP256,
        key: keybound_proto::tokbind::TbPublicKey::Ec { point: vec![3; 64] },
    };
    let bytes = id.to_bytes().unwrap();
    assert_eq!(
        keybound_proto::tokbind::TokenBindingId::from_bytes(&bytes).unwrap(),
        id
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(keybound_proto::tokbind::TokenBindingId::from_bytes(&longer).is_err());
    assert!(
        keybound_proto::tokbind::TokenBindingId::from_bytes(&bytes[..bytes.len() - 1]).is_err()
    );
}

fn ec_binding(tb_type: TokenBindingType, ekm: &[u8; 32]) -> TokenBinding {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let mut b = TokenBinding {
        tb_type,
        id: TokenBindingId {
            key_parameters: KeyParameters::EcdsaP256,
            key: TbPublicKey::Ec {
                point: kp.public_key().as_ref()[1..].to_vec(),
            },
        },
        signature: vec![],
        extensions: vec![],
    };
    b.signature = kp
        .sign(&SystemRandom::new(), &b.signed_data(ekm))
        .unwrap()
        .as_ref()
        .to_vec();
    b
}

fn header(bindings: Vec<TokenBinding>) -> String {
    TokenBindingMessage { bindings }.to_header().unwrap()
}

/// RFC 8473 §2 / RFC 8471 §4.2 as one request check: each rule refuses with its reason.
#[test]
fn tb_s1_to_s5_request_rules() {
    let ekm = [5u8; 32];
    let ec = Some((KeyParameters::EcdsaP256, &ekm));
    let provided = ec_binding(TokenBindingType::Provided, &ekm);
    let referred = ec_binding(TokenBindingType::Referred, &ekm);
    let good = header(vec![provided.clone(), referred.clone()]);
    let v = verify_request(&[&good], ec).unwrap().unwrap();
    assert_eq!(v.provided, provided.id);
    assert_eq!(v.referred, Some(referred.id.clone()));
    // nothing negotiated and nothing sent: no binding, no error
    assert_eq!(verify_request(&[], None), Ok(None));
    // TB-S2: a header on a connection without Token Binding
    let e = verify_request(&[&good], None).unwrap_err();
    assert!(e.to_string().contains("did not negotiate"), "{e}");
    // RFC 8473 §2: two headers; negotiated but none
    let e = verify_request(&[&good, &good], ec).unwrap_err();
    assert!(e.to_string().contains("2 Sec-Token-Binding headers"), "{e}");
    let e = verify_request(&[], ec).unwrap_err();
    assert!(e.to_string().contains("no Sec-Token-Binding header"), "{e}");
    // TB-S3: provided binding with other key parameters than negotiated
    let rsa = Some((KeyParameters::RsaPss, &ekm));
    let e = verify_request(&[&good], rsa).unwrap_err();
    assert!(e.to_string().contains("negotiated 1 (rsa2048_pss)"), "{e}");
    // TB-S4: another connection's EKM; a tampered signature; a bad referred signature
    assert_eq!(
        verify_request(&[&good], Some((KeyParameters::EcdsaP256, &[6u8; 32]))),
        Err(Error::TokenBindingSignature)
    );
    let mut tampered = provided.clone();
    tampered.signature[10] ^= 1;
    assert_eq!(
        verify_request(&[&header(vec![tampered])], ec),
        Err(Error::TokenBindingSignature)
    );
    let bad_referred = ec_binding(TokenBindingType::Referred, &[7u8; 32]);
    assert_eq!(
        verify_request(&[&header(vec![provided.clone(), bad_referred])], ec),
        Err(Error::TokenBindingSignature)
    );
    // TBH-2: no provided binding
    assert!(matches!(
        verify_request(&[&header(vec![referred])], ec),
        Err(Error::TokenBindingHttp(_))
    ));
    // TB-S5: a binding of an unknown type is ignored
    let mut other = provided.clone();
    other.tb_type = TokenBindingType::Other(9);
    let v = verify_request(&[&header(vec![provided.clone(), other])], ec)
        .unwrap()
        .unwrap();
    assert_eq!(v.provided, provided.id);
    // not base64url
    assert!(matches!(
        verify_request(&["%%%"], ec),
        Err(Error::TokenBindingMalformed(_))
    ));
}

/// RFC 8471 §3.1: RSA integers carry no leading zero byte (the legacy C stack accepts one,
/// which gives one key two TokenBindingIDs and two `tbh` values).
#[test]
fn rfc8471_3_1_rsa_leading_zero_is_refused() {
    let ekm = [9u8; 32];
    let b = rsa_binding(KeyParameters::RsaPss, TokenBindingType::Provided, &ekm);
    let mut padded = b.clone();
    if let TbPublicKey::Rsa { modulus, .. } = &mut padded.id.key {
        modulus.insert(0, 0);
    }
    let value = header(vec![padded.clone()]);
    let e = verify_request(&[&value], Some((KeyParameters::RsaPss, &ekm))).unwrap_err();
    assert!(e.to_string().contains("leading zero byte"), "{e}");
    assert!(TokenBindingId::from_bytes(&padded.id.to_bytes().unwrap()).is_err());
    let ok = header(vec![b]);
    assert!(verify_request(&[&ok], Some((KeyParameters::RsaPss, &ekm))).is_ok());
}
