//! Password and client-secret hashing: argon2id (RFC 9106) PHC strings, default parameters of
//! the `argon2` crate (19 MiB, t = 2, p = 1, OWASP's minimum).

use argon2::password_hash::rand_core::{CryptoRng, Error as RandError, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

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

/// argon2id of a random, discarded password: verifying against it always fails but costs what
/// a real verification does, so a login for an unknown username takes as long as a wrong
/// password.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXlzYWx0ZHVtbXk$0Bq0cF6OIsCz7Y8q9mCz3Yq2bO0d1A3Vb6b7m2mWl1c";
