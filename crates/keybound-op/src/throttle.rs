//! Brute-force throttling of secrets the OP checks (End-User passwords, client secrets):
//! exponential back-off per key (an account, a source address, a client id). The first
//! `free_failures` wrong attempts cost nothing; each further one doubles the wait before the
//! next attempt is even looked at, up to `max_delay`. There is no permanent lockout an attacker
//! could use against a user: the wait is bounded, and a success resets the count. NIST SP
//! 800-63B §5.2.2 allows at most 100 consecutive failures; with the defaults (5 free, 1 s
//! doubling to 15 min) 100 failures take more than 22 hours.
//!
//! A key's count starts again when its last failure is older than `max_delay`.
//!
//! Attempts at one principal (an account, a client id) take turns ([`Throttle::turn`]): each
//! sees the count its predecessors left, so a burst of concurrent guesses cannot slip past the
//! check while one is being hashed (counting after the hash without turns let a stream of 300
//! guesses/s get 27 wrong passwords hashed in a minute instead of about 11), and concurrent
//! *right* secrets are never refused for it (counting every attempt as a failure from its start
//! refused a confidential client's parallel token requests). The source address, shared by many
//! principals, is counted when an attempt starts ([`Throttle::begin`]) and taken back when the
//! secret was right — completely: the count *and* the time of the last failure go back to what
//! they were, so a right sign-in never restarts the address's back-off (it did: with the time
//! left at the sign-in, everyone behind one NAT waited again after every success).
//!
//! The counts live in this node's memory (bounded: idle entries are dropped when the map is
//! large). Several nodes each apply the limit, so a guesser spread over N nodes gets N times the
//! allowance — still exponential (docs/decisions.md).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Throttling settings.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// wrong attempts per account or client id before the back-off starts (default 5)
    pub free_failures: u32,
    /// wrong attempts per source address before its back-off starts (default 20)
    pub free_failures_per_address: u32,
    /// first wait, seconds; doubles with each further failure (default 1)
    pub base_delay: u64,
    /// longest wait, seconds (default 900)
    pub max_delay: u64,
    /// passwords and client secrets hashed at once, on blocking threads (default: the number
    /// of CPUs); further checks wait their turn without holding an async thread
    pub hash_concurrency: usize,
    /// longest wait for a turn, seconds, before the check is refused as busy (default 10)
    pub hash_queue_wait: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 5,
            free_failures_per_address: 20,
            base_delay: 1,
            max_delay: 900,
            hash_concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            hash_queue_wait: 10,
        }
    }
}

/// Entries beyond which idle ones are dropped.
const MAX_ENTRIES: usize = 100_000;

/// Shards of the per-principal turns (a principal waits only for others hashed to its shard).
const TURN_SHARDS: usize = 64;

/// Failure counts per key, and the turns of attempts per principal.
#[derive(Debug)]
pub(crate) struct Throttle {
    map: Mutex<HashMap<String, (u32, u64)>>,
    turns: Vec<tokio::sync::Mutex<()>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            map: Mutex::default(),
            turns: (0..TURN_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
}

type Counts = HashMap<String, (u32, u64)>;

/// A failure counted when an attempt began: the key's entry before it, and when it was counted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Provisional {
    before: Option<(u32, u64)>,
    at: u64,
}

/// `Err(seconds to wait)` while `key` is in its back-off.
fn waiting(g: &Counts, key: &str, free: u32, cfg: &ThrottleConfig, now: u64) -> Result<(), u64> {
    match g.get(key) {
        Some(&(failures, last)) if failures >= free => {
            let shift = (failures - free).min(30);
            let delay = cfg.base_delay.saturating_mul(1 << shift).min(cfg.max_delay);
            let until = last.saturating_add(delay);
            if now < until {
                Err(until - now)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Count a failure of `key` at `now`.
fn count(g: &mut Counts, key: &str, cfg: &ThrottleConfig, now: u64) {
    if g.len() >= MAX_ENTRIES {
        g.retain(|_, (_, last)| now < last.saturating_add(cfg.max_delay));
    }
    let e = g.entry(key.to_owned()).or_insert((0, now));
    // failures long past the longest wait are forgiven: the count is a window, not a record
    if now >= e.1.saturating_add(cfg.max_delay) {
        e.0 = 0;
    }
    e.0 = e.0.saturating_add(1);
    e.1 = now;
}

impl Throttle {
    /// The turn of an attempt at `principal`: held until the attempt is settled.
    pub(crate) async fn turn(&self, principal: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash as _, Hasher as _};
        // a fixed hasher: the same principal must always land on the same shard
        let mut fixed = std::hash::DefaultHasher::new();
        principal.hash(&mut fixed);
        let shard = usize::try_from(fixed.finish() % TURN_SHARDS as u64).unwrap_or(0);
        self.turns[shard].lock().await
    }

    /// Count a failure of `key` now.
    pub(crate) fn fail(&self, key: &str, cfg: &ThrottleConfig, now: u64) {
        count(&mut self.lock(), key, cfg, now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(seconds to wait)` while `key` is in its back-off (nothing is counted).
    pub(crate) fn check(
        &self,
        key: &str,
        free: u32,
        cfg: &ThrottleConfig,
        now: u64,
    ) -> Result<(), u64> {
        waiting(&self.lock(), key, free, cfg, now)
    }

    /// Check `key` and, when no back-off is running, count this attempt as a failure at once
    /// (one step under the lock, so concurrent attempts see it). The [`Provisional`] count is
    /// what [`Throttle::undo`] takes back.
    pub(crate) fn begin(
        &self,
        key: &str,
        free: u32,
        cfg: &ThrottleConfig,
        now: u64,
    ) -> Result<Provisional, u64> {
        let mut g = self.lock();
        waiting(&g, key, free, cfg, now)?;
        let before = g.get(key).copied();
        count(&mut g, key, cfg, now);
        Ok(Provisional { before, at: now })
    }

    /// Take back a provisional failure of `key` (an attempt that did not fail): one count less,
    /// and the last failure's time as it was before, unless a later failure set it since.
    pub(crate) fn undo(&self, key: &str, p: Provisional) {
        let mut g = self.lock();
        if let Some(e) = g.get_mut(key) {
            e.0 = e.0.saturating_sub(1);
            if e.1 == p.at {
                if let Some((_, last)) = p.before {
                    e.1 = last;
                }
            }
            if e.0 == 0 {
                g.remove(key);
            }
        }
    }

    /// A right attempt: forget `key`'s failures.
    pub(crate) fn succeed(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Throttle::begin`] without its provisional count.
    fn begun(
        t: &Throttle,
        key: &str,
        free: u32,
        cfg: &ThrottleConfig,
        now: u64,
    ) -> Result<(), u64> {
        t.begin(key, free, cfg, now).map(|_| ())
    }

    /// Issue 26 item 1: a right attempt takes its provisional count back completely — the time
    /// of the last failure too — so successes never re-arm a back-off: 20 failures, the wait,
    /// then successes half a second apart all pass (they went ok, ok, 429, ok, 429, ok).
    #[test]
    fn a_success_does_not_re_arm_the_back_off() {
        let cfg = ThrottleConfig::default();
        let t = Throttle::default();
        let now = 1_000_000;
        for _ in 0..20 {
            assert!(t.begin("addr", 20, &cfg, now).is_ok());
        }
        assert_eq!(t.check("addr", 20, &cfg, now), Err(1), "the 21st waits");
        for i in 0..6 {
            // two a second, as a clock of whole seconds sees "half a second apart"
            let at = now + 3 + i / 2;
            let p = t
                .begin("addr", 20, &cfg, at)
                .unwrap_or_else(|w| panic!("attempt {i} at +{}: wait {w}", at - now));
            t.undo("addr", p);
        }
        assert_eq!(t.lock().get("addr").copied(), Some((20, now)), "as before");
    }

    #[test]
    fn back_off_doubles_is_bounded_and_forgets_old_failures() {
        let cfg = ThrottleConfig::default();
        let t = Throttle::default();
        let now = 1_000_000;
        for _ in 0..5 {
            assert_eq!(begun(&t, "k", 5, &cfg, now), Ok(()));
        }
        assert_eq!(
            begun(&t, "k", 5, &cfg, now),
            Err(1),
            "counted when it began"
        );
        assert_eq!(begun(&t, "k", 5, &cfg, now + 1), Ok(()));
        assert_eq!(t.check("k", 5, &cfg, now + 1), Err(2), "doubles");
        assert_eq!(
            begun(&t, "k", 5, &cfg, now + 1),
            Err(2),
            "not counted while waiting"
        );
        for _ in 0..40 {
            count(&mut t.lock(), "k", &cfg, now + 1);
        }
        assert_eq!(
            t.check("k", 5, &cfg, now + 1),
            Err(900),
            "bounded by max_delay"
        );
        assert_eq!(t.check("k", 5, &cfg, now + 901), Ok(()));
        // a failure long after the last one starts a new count
        assert_eq!(begun(&t, "k", 5, &cfg, now + 10_000), Ok(()));
        assert_eq!(
            t.check("k", 1, &cfg, now + 10_000),
            Err(1),
            "one failure counted"
        );
        let p = t.begin("k", 5, &cfg, now + 10_000).unwrap();
        t.undo("k", p);
        assert_eq!(
            t.check("k", 2, &cfg, now + 10_000),
            Ok(()),
            "taken back: still one"
        );
        assert_eq!(begun(&t, "k", 5, &cfg, now + 10_000), Ok(()));
        t.succeed("k");
        assert_eq!(t.check("k", 0, &cfg, now), Ok(()));
    }
}
