//! Password and client-secret hashing: argon2id (RFC 9106) PHC strings, default parameters of
//! the `argon2` crate (19 MiB, t = 2, p = 1, OWASP's minimum).
//!
//! A verification costs tens of milliseconds of CPU on purpose, so the provider never runs one
//! on an async thread: [`HashPool`] runs them on tokio's blocking threads, at most
//! `hash_concurrency` at once; the rest wait for a turn without holding a thread, and a check
//! that waits longer than `hash_queue_wait` is refused as busy (429) instead of piling up.
//! Parallel sign-ins therefore cannot stall other requests (`/healthz`, token requests).

use argon2::password_hash::rand_core::{CryptoRng, Error as RandError, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

use crate::OpError;

/// aws-lc-rs randomness behind the `rand_core` traits the `password-hash` API wants.
struct AwsLcRng;

impl RngCore for AwsLcRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // Invariant: the OS RNG only fails without an entropy source, which aws-lc treats as
        // fatal too.
        self.try_fill_bytes(dest)
            .expect("operating system random number generator failed");
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RandError> {
        use aws_lc_rs::rand::SecureRandom as _;
        aws_lc_rs::rand::SystemRandom::new()
            .fill(dest)
            .map_err(|_| {
                RandError::from(
                    core::num::NonZeroU32::new(RandError::CUSTOM_START)
                        .unwrap_or(core::num::NonZeroU32::MIN),
                )
            })
    }
}

impl CryptoRng for AwsLcRng {}

/// Hash `secret` into an argon2id PHC string.
pub fn hash(secret: &str) -> String {
    let salt = SaltString::generate(&mut AwsLcRng);
    // Invariant: hashing with default parameters and a generated salt cannot fail.
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters")
        .to_string()
}

/// Whether `secret` matches the PHC string `hash` (constant time inside argon2).
pub fn verify(hash: &str, secret: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// Verifies secrets on blocking threads, a bounded number at a time.
#[derive(Debug)]
pub(crate) struct HashPool {
    turns: tokio::sync::Semaphore,
    wait: std::time::Duration,
}

impl HashPool {
    pub(crate) fn new(concurrency: usize, wait_secs: u64) -> Self {
        HashPool {
            turns: tokio::sync::Semaphore::new(concurrency.max(1)),
            wait: std::time::Duration::from_secs(wait_secs),
        }
    }

    /// [`verify`] on a blocking thread when a turn is free.
    pub(crate) async fn verify(&self, hash: &str, secret: &str) -> Result<bool, OpError> {
        let busy = || OpError::Throttled {
            description: "too many sign-ins are being checked right now; try again".into(),
            retry_after: 1,
        };
        let _turn = tokio::time::timeout(self.wait, self.turns.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let hash = hash.to_owned();
        let secret = zeroize::Zeroizing::new(secret.to_owned());
        tokio::task::spawn_blocking(move || verify(&hash, &secret))
            .await
            .map_err(|e| OpError::internal(format!("password check failed: {e}")))
    }
}

/// argon2id of a random, discarded password: verifying against it always fails but costs what
/// a real verification does, so a login for an unknown username takes as long as a wrong
/// password.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXlzYWx0ZHVtbXk$0Bq0cF6OIsCz7Y8q9mCz3Yq2bO0d1A3Vb6b7m2mWl1c";
