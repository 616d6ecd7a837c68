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
//! The counts live in the store ([`keybound_store::CounterStore`]): on PostgreSQL every node
//! reads and changes the same counts, so N nodes allow what one allows; with SQLite or in
//! memory they stay in the process. The turns stay in each node's memory: a burst at one
//! principal spread over N nodes can have at most one attempt per node being hashed before its
//! failure is counted (docs/decisions.md).
use keybound_store::{Count, Store, TokenHash};

use crate::OpError;

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

/// Shards of the per-principal turns (a principal waits only for others hashed to its shard).
const TURN_SHARDS: usize = 64;

/// The turns of attempts per principal (this node's).
#[derive(Debug)]
pub(crate) struct Throttle {
    turns: Vec<tokio::sync::Mutex<()>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            turns: (0..TURN_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
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
}

/// A failure counted when an attempt began: the key's count before it, and when it was counted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Provisional {
    before: Option<Count>,
    at: u64,
}

/// The store key of a throttled principal or address.
pub(crate) fn key(name: &str) -> TokenHash {
    TokenHash::of(&format!("throttle\0{name}"))
}

/// `Err(seconds to wait)` while a key with `count` is in its back-off.
fn waiting(count: Option<Count>, free: u32, cfg: &ThrottleConfig, now: u64) -> Result<(), u64> {
    match count {
        Some(c) if c.n >= free => {
            let shift = (c.n - free).min(30);
            let delay = cfg.base_delay.saturating_mul(1 << shift).min(cfg.max_delay);
            let until = c.at.saturating_add(delay);
            if now < until {
                Err(until - now)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// `count` with one more failure at `now`; failures older than the longest wait are forgiven
/// (the count expires then: it is a window, not a record).
fn counted(count: Option<Count>, cfg: &ThrottleConfig, now: u64) -> Count {
    let n = count.map_or(0, |c| c.n);
    Count {
        n: n.saturating_add(1),
        at: now,
        expires_at: now.saturating_add(cfg.max_delay),
    }
}

/// `Err(seconds to wait)` while `name` is in its back-off (nothing is counted).
pub(crate) async fn check(
    store: &dyn Store,
    name: &str,
    free: u32,
    cfg: &ThrottleConfig,
    now: u64,
) -> Result<Result<(), u64>, OpError> {
    Ok(waiting(store.count(&key(name), now).await?, free, cfg, now))
}

/// Check `name` and, when no back-off is running, count this attempt as a failure at once (one
/// atomic change, so concurrent attempts on any node see it). The [`Provisional`] count is what
/// [`undo`] takes back.
pub(crate) async fn begin(
    store: &dyn Store,
    name: &str,
    free: u32,
    cfg: &ThrottleConfig,
    now: u64,
) -> Result<Result<Provisional, u64>, OpError> {
    let rule = |c: Option<Count>| match waiting(c, free, cfg, now) {
        Ok(()) => Some(counted(c, cfg, now)),
        Err(_) => c,
    };
    let (before, _) = store.change_count(&key(name), now, &rule).await?;
    Ok(waiting(before, free, cfg, now).map(|()| Provisional { before, at: now }))
}

/// Take back a provisional failure of `name` (an attempt that did not fail): one count less, and
/// the last failure's time as it was before, unless a later failure set it since.
pub(crate) async fn undo(store: &dyn Store, name: &str, p: Provisional) -> Result<(), OpError> {
    let rule = |c: Option<Count>| {
        let mut c = c?;
        c.n = c.n.saturating_sub(1);
        if c.at == p.at {
            if let Some(b) = p.before {
                c.at = b.at;
                c.expires_at = b.expires_at;
            }
        }
        (c.n > 0).then_some(c)
    };
    store.change_count(&key(name), p.at, &rule).await?;
    Ok(())
}

/// Count a failure of `name` at `now`.
pub(crate) async fn fail(
    store: &dyn Store,
    name: &str,
    cfg: &ThrottleConfig,
    now: u64,
) -> Result<(), OpError> {
    store
        .change_count(&key(name), now, &|c| Some(counted(c, cfg, now)))
        .await?;
    Ok(())
}

/// A right attempt: forget `name`'s failures.
pub(crate) async fn succeed(store: &dyn Store, name: &str, now: u64) -> Result<(), OpError> {
    store.change_count(&key(name), now, &|_| None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keybound_store::{CounterStore as _, MemoryStore};

    /// Issue 26 item 1: a right attempt takes its provisional count back completely — the time
    /// of the last failure too — so successes never re-arm a back-off: 20 failures, the wait,
    /// then successes half a second apart all pass (they went ok, ok, 429, ok, 429, ok).
    #[tokio::test]
    async fn a_success_does_not_re_arm_the_back_off() {
        let cfg = ThrottleConfig::default();
        let s = MemoryStore::new();
        let now = 1_000_000;
        for _ in 0..20 {
            assert!(begin(&s, "addr", 20, &cfg, now).await.unwrap().is_ok());
        }
        assert_eq!(
            check(&s, "addr", 20, &cfg, now).await.unwrap(),
            Err(1),
            "the 21st waits"
        );
        for i in 0..6 {
            // two a second, as a clock of whole seconds sees "half a second apart"
            let at = now + 3 + i / 2;
            let p = begin(&s, "addr", 20, &cfg, at)
                .await
                .unwrap()
                .unwrap_or_else(|w| panic!("attempt {i} at +{}: wait {w}", at - now));
            undo(&s, "addr", p).await.unwrap();
        }
        let c = s.count(&key("addr"), now).await.unwrap().unwrap();
        assert_eq!((c.n, c.at), (20, now), "as before");
    }

    #[tokio::test]
    async fn back_off_doubles_is_bounded_and_forgets_old_failures() {
        let cfg = ThrottleConfig::default();
        let s = MemoryStore::new();
        let now = 1_000_000;
        let begun = |at: u64, free: u32| {
            let s = &s;
            async move { begin(s, "k", free, &cfg, at).await.unwrap().map(|_| ()) }
        };
        for _ in 0..5 {
            assert_eq!(begun(now, 5).await, Ok(()));
        }
        assert_eq!(begun(now, 5).await, Err(1), "counted when it began");
        assert_eq!(begun(now + 1, 5).await, Ok(()));
        assert_eq!(
            check(&s, "k", 5, &cfg, now + 1).await.unwrap(),
            Err(2),
            "doubles"
        );
        assert_eq!(begun(now + 1, 5).await, Err(2), "not counted while waiting");
        for _ in 0..40 {
            fail(&s, "k", &cfg, now + 1).await.unwrap();
        }
        assert_eq!(
            check(&s, "k", 5, &cfg, now + 1).await.unwrap(),
            Err(900),
            "bounded by max_delay"
        );
        assert_eq!(check(&s, "k", 5, &cfg, now + 901).await.unwrap(), Ok(()));
        // a failure long after the last one starts a new count
        assert_eq!(begun(now + 10_000, 5).await, Ok(()));
        assert_eq!(
            check(&s, "k", 1, &cfg, now + 10_000).await.unwrap(),
            Err(1),
            "one failure counted"
        );
        let p = begin(&s, "k", 5, &cfg, now + 10_000)
            .await
            .unwrap()
            .unwrap();
        undo(&s, "k", p).await.unwrap();
        assert_eq!(
            check(&s, "k", 2, &cfg, now + 10_000).await.unwrap(),
            Ok(()),
            "taken back: still one"
        );
        assert_eq!(begun(now + 10_000, 5).await, Ok(()));
        succeed(&s, "k", now + 10_000).await.unwrap();
        assert_eq!(check(&s, "k", 0, &cfg, now).await.unwrap(), Ok(()));
    }
}
