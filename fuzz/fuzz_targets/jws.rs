//! Fuzz the JWS compact parser and verifier with arbitrary input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(jws) = keybound_jose::Jws::parse(s) {
            if let Some(jwk) = &jws.header().jwk {
                let _ = jws.verify(jwk, &keybound_jose::Algorithm::ALL);
            }
        }
    }
});
