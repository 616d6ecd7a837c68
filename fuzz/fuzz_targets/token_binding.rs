//! Fuzz the TokenBindingMessage decoder; whatever decodes must re-encode to the same bytes.
#![no_main]
use keybound_proto::tokbind::TokenBindingMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = TokenBindingMessage::decode(data) {
        assert_eq!(m.encode().expect("encode"), data);
        for b in &m.bindings {
            let _ = b.verify(&[0u8; 32]);
        }
    }
});
