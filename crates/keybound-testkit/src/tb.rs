//! Token Binding on loopback — a throwaway certificate, the Token Binding listener, user agent
//! and terminator, and the OP + example RP federation — from the example RP's crate
//! (`tb_rp::federation`), where `keybound demo --token-binding` finds them too.

pub use tb_rp::federation::*;
