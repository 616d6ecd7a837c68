//! Fuzz DPoP proof verification (RFC 9449 §4.3) with arbitrary proofs.
#![no_main]
use keybound_proto::dpop::{verify_proof, DpopPolicy, RequestFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let facts = RequestFacts::new("POST", "https://op.example/token", 1_700_000_000);
        let _ = verify_proof(s, &facts, &DpopPolicy::default());
    }
});
