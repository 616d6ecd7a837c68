//! Fuzz the public JWK parser; a parsed key must re-parse to the same thumbprint.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(k) = keybound_jose::PublicJwk::from_json(s) {
            let again = keybound_jose::PublicJwk::from_value(&k.to_value()).expect("re-parse");
            assert_eq!(again.thumbprint(), k.thumbprint());
        }
        let _ = keybound_jose::JwkSet::from_json(s);
    }
});
