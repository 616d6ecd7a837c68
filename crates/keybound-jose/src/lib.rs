//! # keybound-jose
//!
//! The thin JOSE layer keybound owns on purpose (ARCHITECTURE.md §2): every proof-of-possession
//! decision in keybound ends in "is this JWS signed by this key, and is this key what the token
//! says?". General-purpose JOSE crates accept far more than we want (`none`, HMAC keyed with a
//! public key, `crit` they ignore, unencoded payloads, JWKs that carry private members), so this
//! crate implements just what the protocols need, with every rejection rule explicit and tested:
//!
//! - [`b64`]: base64url without padding, strict (padding and non-alphabet bytes are errors);
//! - [`jwk`]: [`PublicJwk`] that cannot hold private members, rebuilt from its RFC 7638 members
//!   only, with curve-point and RSA-size checks at parse time; [`Jkt`] thumbprints;
//! - [`jws`]: compact serialization; verification against an explicit algorithm allow-list;
//! - [`key`]: private keys (generation, PKCS#8 DER/PEM, private JWK) whose `Debug` never shows
//!   key material; [`Secret`], the same promise for shared secrets (client secrets, passwords).
//!
//! Cryptography is aws-lc-rs throughout. No clock, network or disk is touched here.

#![deny(missing_docs)]

pub mod b64;
mod error;
pub mod jwk;
pub mod jwks;
pub mod jws;
pub mod key;
mod secret;

pub use error::Error;
pub use jwk::{Curve, Jkt, PublicJwk};
pub use jwks::{JwkSet, JwkSetEntry};
pub use jws::{Algorithm, Header, Jws};
pub use key::PrivateKey;
pub use secret::Secret;

/// SHA-256 of `data`, the one hash every binding in keybound is built on.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// base64url(SHA-256(`data`)), the form of `ath`, `c_s256`, `tbh` and thumbprints.
pub fn sha256_b64(data: &[u8]) -> String {
    b64::encode(sha256(data))
}

/// base64url(HMAC-SHA256(`key`, `data`)): a value derived from a secret that reveals nothing
/// about it (the OP's CSRF tokens are this over the session cookie).
pub fn hmac_sha256_b64(key: &[u8], data: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    b64::encode(aws_lc_rs::hmac::sign(&key, data).as_ref())
}

/// `n` bytes from the operating system's CSPRNG, base64url-encoded.
///
/// Randomness is the one environmental input this crate accepts (key generation needs it);
/// protocol crates take identifiers such as `jti` as arguments and callers use this helper.
pub fn random_b64(n: usize) -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    // Invariant: the system RNG only fails when the OS has no entropy source, which aws-lc
    // treats as fatal anyway; there is no sensible recovery for a caller.
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("operating system random number generator failed");
    b64::encode(buf)
}

/// Constant-time equality for secrets and MACs.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    /// RFC 4231 §4.3 (test case 2): HMAC-SHA256 with key "Jefe".
    #[test]
    fn rfc4231_4_3_hmac_sha256() {
        let mac = super::hmac_sha256_b64(b"Jefe", b"what do ya want for nothing?");
        let hex: String = super::b64::decode(&mac)
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
