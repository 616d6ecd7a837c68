//! Property tests: parsing arbitrary bytes as JWS, JWK, DPoP proof or TokenBindingMessage
//! never panics, and encode → decode round-trips. These run in the normal suite; the same four
//! parsers have coverage-guided fuzz targets in `fuzz/`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{b64, Jws, PublicJwk};
use keybound_proto::dpop::{self, DpopPolicy, ProofBuilder, RequestFacts};
use keybound_proto::tokbind::{
    KeyParameters, TbExtension, TbPublicKey, TokenBinding, TokenBindingId, TokenBindingMessage,
    TokenBindingType,
};
use keybound_testkit::keys;
use proptest::prelude::*;

fn jsonish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[{}\\[\\]\":,a-z0-9 -]{0,80}",
        Just(r#"{"kty":"EC","crv":"P-256","x":"","y":""}"#.to_owned()),
        "\\{\"kty\":\"(EC|OKP|RSA|oct)\",\"crv\":\"(P-256|P-384|Ed25519|X)\",\"x\":\"[A-Za-z0-9_-]{0,90}\",\"y\":\"[A-Za-z0-9_-]{0,90}\",\"n\":\"[A-Za-z0-9_-]{0,20}\",\"e\":\"AQAB\"\\}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn jws_parse_never_panics(s in any::<String>()) {
        let _ = Jws::parse(&s);
    }

    #[test]
    fn jws_parse_structured_never_panics(h in jsonish(), p in any::<Vec<u8>>(), sig in any::<Vec<u8>>()) {
        let t = format!("{}.{}.{}", b64::encode(h.as_bytes()), b64::encode(&p), b64::encode(&sig));
        if let Ok(j) = Jws::parse(&t) {
            let _ = j.verify(keys::es256_a().public_jwk(), &keybound_jose::Algorithm::ALL);
        }
    }

    #[test]
    fn jwk_parse_never_panics(s in jsonish()) {
        if let Ok(k) = PublicJwk::from_json(&s) {
            // a parsed key re-serialises to itself
            let again = PublicJwk::from_value(&k.to_value()).unwrap();
            prop_assert_eq!(again.thumbprint(), k.thumbprint());
        }
    }

    #[test]
    fn dpop_verify_never_panics(s in any::<String>(), h in jsonish(), c in jsonish()) {
        let facts = RequestFacts::new("POST", "https://op.example/token", 1_700_000_000);
        let _ = dpop::verify_proof(&s, &facts, &DpopPolicy::default());
        let t = format!("{}.{}.AAAA", b64::encode(h.as_bytes()), b64::encode(c.as_bytes()));
        let _ = dpop::verify_proof(&t, &facts, &DpopPolicy::default());
    }

    #[test]
    fn dpop_build_verify_round_trip(jti in "[A-Za-z0-9_-]{1,64}", path in "[a-z]{0,12}", iat in 1_000_000u64..4_000_000_000u64) {
        let key = keys::es256_a();
        let htu = format!("https://op.example/{path}");
        let p = ProofBuilder::new("POST", &htu, iat, &jti).sign(&key).unwrap();
        let v = dpop::verify_proof(&p, &RequestFacts::new("POST", &htu, iat), &DpopPolicy::default()).unwrap();
        prop_assert_eq!(v.jti, jti);
        prop_assert_eq!(v.iat, iat);
    }

    #[test]
    fn token_binding_decode_never_panics(bytes in any::<Vec<u8>>()) {
        if let Ok(m) = TokenBindingMessage::decode(&bytes) {
            // whatever decodes re-encodes to the same bytes
            prop_assert_eq!(m.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn token_binding_round_trip(
        bindings in proptest::collection::vec(
            (0u8..4, any::<[u8; 32]>(), any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 64..80),
             proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..3)),
            1..4)
    ) {
        let msg = TokenBindingMessage {
            bindings: bindings.into_iter().map(|(t, x, y, sig, ext)| TokenBinding {
                tb_type: match t { 0 => TokenBindingType::Provided, 1 => TokenBindingType::Referred, o => TokenBindingType::Other(o) },
                id: TokenBindingId {
                    key_parameters: KeyParameters::EcdsaP256,
                    key: TbPublicKey::Ec { point: [x, y].concat() },
                },
                signature: sig,
                extensions: ext.into_iter().map(|(ext_type, data)| TbExtension { ext_type, data }).collect(),
            }).collect(),
        };
        let bytes = msg.encode().unwrap();
        prop_assert_eq!(TokenBindingMessage::decode(&bytes).unwrap(), msg);
    }
}
