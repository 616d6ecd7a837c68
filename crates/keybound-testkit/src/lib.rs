//! # keybound-testkit
//!
//! Shared test fixtures, so every crate tests against the same deterministic material:
//!
//! - time is an argument everywhere in keybound, and the spec examples carry timestamps from
//!   2017–2025, so tests pin `now` explicitly or use `keybound_proto::ManualClock` (the one
//!   manual clock; `keybound_verify::SystemClock` is the one system clock);
//! - [`keys`]: fixed private keys (test-only, committed on purpose, never used outside tests),
//!   so signatures verify across runs and expected thumbprints can be written down;
//! - [`vector`]: loads the spec vectors stored as JSON under `testdata/vectors/`.
//!
//! - [`op`]: the OpenID Provider in process or on a loopback socket ([`op::OpBuilder`]), the
//!   standard End-User and client fixtures, form bodies;
//! - [`browser`]: the one headless form browser for keybound's pages, over a real socket or
//!   straight into the router ([`browser::RouterTransport`]);
//! - [`tokens`]: key-bound ID Tokens as an OP issues them;
//! - [`conformance`]: the one store conformance suite, run against every backend;
//! - [`process`]: the `keybound` binary as a child process (admin runs, a killed-on-drop
//!   `serve`, free ports, a bounded readiness wait).
//! - [`otlp`]: an OpenTelemetry collector on loopback (OTLP/HTTP traces, decoded);
//! - [`pg`]: a throwaway PostgreSQL cluster on loopback;
//! - [`cluster`]: several `keybound serve` nodes on one database and the DPoP client that
//!   races and crashes them.
//!
//! `publish = false`: nothing here is for production use. (`keybound demo` and `keybound login
//! --username` drive keybound's own pages with [`browser`] for scripted sign-ins.)

pub mod authenticator;
pub mod browser;
pub mod cluster;
pub mod conformance;
pub mod op;
pub mod otlp;
pub mod pg;
pub mod process;
pub mod receiver;
pub mod soak;
pub mod tb;
pub mod tokens;

use std::path::PathBuf;

use keybound_jose::PrivateKey;
use serde_json::Value;

/// Deterministic test keys (PKCS#8 PEM files under `crates/keybound-testkit/keys/`).
pub mod keys {
    use super::PrivateKey;

    fn load(pem: &str) -> PrivateKey {
        PrivateKey::from_pem(pem).expect("testkit key parses")
    }

    /// A P-256 key ("client key A").
    pub fn es256_a() -> PrivateKey {
        load(include_str!("../keys/es256-a.pem"))
    }

    /// A second P-256 key ("client key B", for mismatch tests).
    pub fn es256_b() -> PrivateKey {
        load(include_str!("../keys/es256-b.pem"))
    }

    /// A P-384 key.
    pub fn es384() -> PrivateKey {
        load(include_str!("../keys/es384.pem"))
    }

    /// An Ed25519 key.
    pub fn ed25519() -> PrivateKey {
        load(include_str!("../keys/ed25519.pem"))
    }

    /// An RSA 2048 key.
    pub fn rsa2048() -> PrivateKey {
        load(include_str!("../keys/rsa2048.pem"))
    }

    /// The same RSA 2048 key as a private JWK (components extracted with `openssl rsa -text`).
    pub const RSA2048_PRIVATE_JWK: &str = include_str!("../keys/rsa2048.private.jwk.json");
}

/// Path of `testdata/vectors/NAME`.
pub fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors")
        .join(name)
}

/// Load `testdata/vectors/NAME` as JSON.
pub fn vector(name: &str) -> Value {
    let path = vector_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading vector {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing vector {}: {e}", path.display()))
}

/// A string member of a vector, by JSON pointer (e.g. `/code_proof/proof`).
pub fn vstr<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("vector has no string at {pointer}"))
}

/// An integer member of a vector, by JSON pointer.
pub fn vu64(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("vector has no integer at {pointer}"))
}

/// A distinct 32-byte digest for `i` (replay entries, token hashes in store tests).
pub fn numbered_digest(i: u32) -> [u8; 32] {
    keybound_jose::sha256(&i.to_be_bytes())
}

/// Lower-case hex of `bytes`, for comparing with hex in the spec texts.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
