//! # keybound-proto
//!
//! The sans-IO protocol core of keybound (the rustls / quinn-proto model): pure functions and
//! types that take `now`, keys and request facts as arguments and return decisions. Nothing
//! here opens a socket, reads a clock or touches a database, so every rule can be tested with a
//! fixed clock against the spec examples, and the OP, the RP and the consuming component share
//! one implementation of each check.
//!
//! - [`dpop`]: RFC 9449 proofs (build, verify DP-V1…V12), `htu` normalisation, stateless nonces,
//!   replay keys;
//! - [`keybinding`]: OpenID Connect Key Binding (`bound_key`, `dpop_jkt`, `c_s256`, profiles);
//! - [`idtoken`]: ID Token claims, builder and validator (OIDC Core 3.1.3.7 + Key Binding);
//! - [`cnf`]: RFC 7800 confirmation (`jwk`, `jkt`, `tbh`);
//! - [`tokbind`]: RFC 8471/8473 Token Binding messages and OIDC Token Bound Authentication;
//! - [`presentation`]: how an RP authenticating component proves possession of a key-bound ID
//!   Token to a consuming component, over HTTP and peer to peer (docs/presentation.md);
//! - [`idjag`]: Identity Assertion JWT authorization grants (ID-JAG) claims;
//! - [`access_token`]: RFC 9068 access tokens, built and validated by one set of rules;
//! - [`wire`]: OAuth/OIDC wire types (discovery, client metadata, requests, responses, errors).
//!
//! Times are seconds since the Unix epoch (`u64`), passed in by the caller.

#![deny(missing_docs)]

pub mod access_token;
pub mod cnf;
pub mod dbsc;
pub mod dpop;
mod error;
pub mod idjag;
pub mod idtoken;
pub mod keybinding;
pub mod presentation;
pub mod tokbind;
pub mod wire;

pub use error::Error;
pub use keybound_jose as jose;

/// Seconds since the Unix epoch, as every `now` argument in this crate.
pub type UnixTime = u64;

/// Where the outer crates get `now` from. This crate never calls it: functions here take
/// `now` as an argument. The trait lives here so the OP, the RP and the consuming component
/// share one definition; only the binary and the outer crates implement it with the real clock.
pub trait Clock: Send + Sync {
    /// Current time.
    fn now(&self) -> UnixTime;
}

/// A clock that moves only when told to: for tests, simulations and replaying recorded traffic.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: UnixTime) -> Self {
        ManualClock(std::sync::atomic::AtomicU64::new(now))
    }

    /// Move forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
