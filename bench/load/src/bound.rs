//! The crypto bound: what the server's signature work alone allows on this machine, timed with
//! aws-lc-rs in the same run as the load.

use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::Serialize;

/// Per-request crypto work and the rate it bounds.
#[derive(Debug, Clone, Serialize)]
pub struct CryptoCosts {
    /// ES256 verifications per request
    pub verifies: u32,
    /// ES256 signatures per request
    pub signs: u32,
    /// one verification, microseconds
    pub verify_us: f64,
    /// one signature, microseconds
    pub sign_us: f64,
    /// cores available
    pub cores: usize,
    /// requests/s if the server did nothing but this crypto on every core
    pub bound_rps: f64,
}

/// Time ES256 verify and sign here, on every core at once (as the server under load uses them:
/// on a virtual machine two vCPUs may not give twice one vCPU's work), and derive the bound for
/// `verifies` + `signs` per request.
#[allow(clippy::disallowed_methods, clippy::cast_precision_loss)] // measuring is the point
pub fn crypto_bound(verifies: u32, signs: u32) -> CryptoCosts {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let start = std::sync::Barrier::new(cores);
    let timings: Vec<Option<(f64, f64)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| scope.spawn(|| time_on_this_core(&start)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().ok().flatten())
            .collect()
    });
    let done: Vec<(f64, f64)> = timings.into_iter().flatten().collect();
    let n = done.len().max(1) as f64;
    let verify_us = done.iter().map(|t| t.0).sum::<f64>() / n;
    let sign_us = done.iter().map(|t| t.1).sum::<f64>() / n;
    bound_from(verifies, signs, verify_us, sign_us, cores)
}

/// One ES256 verification and one signature, microseconds each, timed on this thread once
/// every thread has reached `start`.
#[allow(clippy::disallowed_methods)] // measuring is the point
fn time_on_this_core(start: &std::sync::Barrier) -> Option<(f64, f64)> {
    let rng = SystemRandom::new();
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).ok();
    start.wait();
    let kp = kp?;
    let msg = [7u8; 400];
    let sig = kp.sign(&rng, &msg).ok()?.as_ref().to_vec();
    let public = kp.public_key().as_ref().to_vec();
    let n = 3000;
    let t = Instant::now();
    for _ in 0..n {
        let _ = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public).verify(&msg, &sig);
    }
    let v = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = kp.sign(&rng, &msg);
    }
    Some((v, t.elapsed().as_secs_f64() * 1e6 / f64::from(n)))
}

#[allow(clippy::cast_precision_loss)]
fn bound_from(
    verifies: u32,
    signs: u32,
    verify_us: f64,
    sign_us: f64,
    cores: usize,
) -> CryptoCosts {
    let per_request = f64::from(verifies) * verify_us + f64::from(signs) * sign_us;
    CryptoCosts {
        verifies,
        signs,
        verify_us,
        sign_us,
        cores,
        bound_rps: if per_request > 0.0 {
            cores as f64 * 1e6 / per_request
        } else {
            f64::INFINITY
        },
    }
}
