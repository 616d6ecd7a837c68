//! Replay caches for presentation proofs. The in-memory one is bounded: when it is full of
//! entries that have not expired it refuses new proofs (fail closed) instead of forgetting old
//! ones, which would let a replay through.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::VerifyError;

/// Remembers proof digests until they expire.
pub trait ReplayCache: Send + Sync {
    /// `Ok(true)` if `digest` is new (recorded until `expires_at`), `Ok(false)` for a replay.
    fn check_and_insert(
        &self,
        digest: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, VerifyError>;
}

/// A bounded in-memory replay cache.
#[derive(Debug)]
pub struct MemoryReplayCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], u64>>,
}

impl MemoryReplayCache {
    /// A cache holding at most `capacity` live entries.
    pub fn new(capacity: usize) -> Self {
        MemoryReplayCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl ReplayCache for MemoryReplayCache {
    fn check_and_insert(
        &self,
        digest: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, VerifyError> {
        let mut m = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if m.get(digest).is_some_and(|&exp| exp > now) {
            return Ok(false);
        }
        if m.len() >= self.capacity {
            m.retain(|_, exp| *exp > now);
            if m.len() >= self.capacity {
                return Err(VerifyError::ReplayCacheFull);
            }
        }
        m.insert(*digest, expires_at);
        Ok(true)
    }
}
