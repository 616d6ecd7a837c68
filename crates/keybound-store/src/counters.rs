//! Counts of failed attempts, and client secrets verified moments ago: what bounds guessing
//! (password and client-secret back-off, user-code attempts at the device page) and what spares
//! a confidential client an argon2 run on each of its token requests.
//!
//! They are store state rather than each node's memory because a limit that lives in one
//! node's memory is a limit per node: behind a load balancer, N nodes allowed a guesser N times
//! the allowance. On PostgreSQL every node reads and changes the same rows; with SQLite or in
//! memory, one process is the whole deployment, so [`LocalCounters`] keeps them in memory.
//!
//! A count changes only through [`CounterStore::change_count`]: the caller's rule gets the
//! current count and returns the next, and the store applies it atomically (a row lock in
//! PostgreSQL), so the rule itself — how a back-off grows, when a window ends — lives once, in
//! the caller, whatever the backend. Counts expire (`expires_at`) and are purged like other
//! expiring rows; an expired count reads as none.
//!
//! A verified secret is remembered as an HMAC of (client id, registered hash, secret) under a
//! key derived from the key-encryption key ([`SecretMac`]), never as a plain digest: a copied
//! database alone does not allow guessing an operator-chosen secret faster than argon2 does.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use aws_lc_rs::hmac;

use crate::memory::purge;
use crate::{Expiring, Result, TokenHash};

/// A count of events under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// how many
    pub n: u32,
    /// the time the caller's rule keys on (the last failure, or the start of a window)
    pub at: u64,
    /// when the count is forgotten: from then on it reads as none, and it may be purged
    pub expires_at: u64,
}

/// A rule for changing a count: the current one (none when absent or expired) in, the next
/// out (none removes it). It may be called more than once (a retried transaction), so it must
/// depend on its argument only.
pub type CountChange<'a> = &'a (dyn Fn(Option<Count>) -> Option<Count> + Send + Sync);

/// Shared counts and verified secrets.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// The live count under `key`.
    async fn count(&self, key: &TokenHash, now: u64) -> Result<Option<Count>>;
    /// Apply `change` to the count under `key`, atomically: concurrent changes (from any node)
    /// each see the result of the ones before. The count before and after.
    async fn change_count(
        &self,
        key: &TokenHash,
        now: u64,
        change: CountChange<'_>,
    ) -> Result<(Option<Count>, Option<Count>)>;
    /// The key verified secrets are remembered under.
    fn secret_mac(&self) -> &SecretMac;
    /// The MAC of the secret last verified for `client_id`, while it is live.
    async fn verified_secret(&self, client_id: &str, now: u64) -> Result<Option<[u8; 32]>>;
    /// Remember `mac` ([`SecretMac::of`]) for `client_id` until `expires_at` (replacing).
    async fn put_verified_secret(
        &self,
        client_id: &str,
        mac: &[u8; 32],
        expires_at: u64,
    ) -> Result<()>;
}

/// The HMAC-SHA-256 key verified secrets are remembered under.
#[derive(Clone)]
pub struct SecretMac(hmac::Key);

impl std::fmt::Debug for SecretMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretMac(<redacted>)")
    }
}

impl SecretMac {
    /// A key of its own (a store whose counts live in one process's memory).
    pub fn random() -> Self {
        use aws_lc_rs::rand::SecureRandom as _;
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        // Invariant: the OS RNG only fails without an entropy source, which aws-lc treats as
        // fatal too.
        aws_lc_rs::rand::SystemRandom::new()
            .fill(raw.as_mut())
            .expect("operating system random number generator failed");
        Self::derive(raw.as_ref())
    }

    /// The key derived from a key-encryption key's bytes (the same on every node).
    pub(crate) fn derive(kek: &[u8]) -> Self {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, kek),
            b"keybound verified-secret mac v1",
        );
        SecretMac(hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()))
    }

    /// The MAC of `secret` verified against `phc`, the registered hash of `client_id` (a new
    /// registration or secret changes it, so the remembered one no longer matches).
    pub fn of(&self, client_id: &str, phc: &str, secret: &str) -> [u8; 32] {
        self.tag(&[client_id, phc, secret])
    }

    /// The MAC of `parts` (each length-prefixed, so no two lists of parts collide). Other
    /// uses name themselves in their first part (a pushed request's mark: the OP's own
    /// forms carry it).
    pub fn tag(&self, parts: &[&str]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// Counts beyond which the expired ones are dropped at once.
const MAX_COUNTS: usize = 100_000;
/// Verified secrets beyond which the memory starts again.
const MAX_SECRETS: usize = 10_000;

/// Counts and verified secrets in this process's memory (bounded).
#[derive(Debug)]
pub struct LocalCounters {
    counts: Mutex<HashMap<TokenHash, Count>>,
    secrets: Mutex<HashMap<String, ([u8; 32], u64)>>,
    mac: SecretMac,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // plain data: a panic while holding the lock leaves nothing half-changed worth refusing
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for LocalCounters {
    /// Empty, with a MAC key of its own.
    fn default() -> Self {
        LocalCounters {
            counts: Mutex::default(),
            secrets: Mutex::default(),
            mac: SecretMac::random(),
        }
    }
}

impl LocalCounters {
    /// [`CounterStore::count`].
    pub fn count(&self, key: &TokenHash, now: u64) -> Option<Count> {
        lock(&self.counts)
            .get(key)
            .copied()
            .filter(|c| now < c.expires_at)
    }

    /// [`CounterStore::change_count`] (one step under the lock).
    pub fn change_count(
        &self,
        key: &TokenHash,
        now: u64,
        change: CountChange<'_>,
    ) -> (Option<Count>, Option<Count>) {
        let mut g = lock(&self.counts);
        let before = g.get(key).copied().filter(|c| now < c.expires_at);
        let after = change(before);
        match after {
            Some(c) => {
                if g.len() >= MAX_COUNTS && !g.contains_key(key) {
                    g.retain(|_, c| now < c.expires_at);
                }
                g.insert(*key, c);
            }
            None => {
                g.remove(key);
            }
        }
        (before, after)
    }

    /// [`CounterStore::secret_mac`].
    pub fn secret_mac(&self) -> &SecretMac {
        &self.mac
    }

    /// [`CounterStore::verified_secret`].
    pub fn verified_secret(&self, client_id: &str, now: u64) -> Option<[u8; 32]> {
        lock(&self.secrets)
            .get(client_id)
            .filter(|(_, until)| now < *until)
            .map(|(mac, _)| *mac)
    }

    /// [`CounterStore::put_verified_secret`].
    pub fn put_verified_secret(&self, client_id: &str, mac: &[u8; 32], expires_at: u64) {
        let mut g = lock(&self.secrets);
        if g.len() >= MAX_SECRETS {
            g.clear();
        }
        g.insert(client_id.to_owned(), (*mac, expires_at));
    }

    /// Purge up to `limit` expired counts or secrets (`None` for kinds kept elsewhere).
    pub fn purge(&self, kind: Expiring, now: u64, limit: u32) -> Option<u64> {
        match kind {
            Expiring::Counters => Some(purge(&mut lock(&self.counts), limit, |c| {
                c.expires_at <= now
            })),
            Expiring::VerifiedSecrets => {
                Some(purge(&mut lock(&self.secrets), limit, |(_, until)| {
                    *until <= now
                }))
            }
            _ => None,
        }
    }
}

/// [`CounterStore`] for a store that keeps its counters in a [`LocalCounters`].
#[macro_export]
macro_rules! local_counter_store {
    ($store:ty, $field:ident) => {
        #[async_trait::async_trait]
        impl $crate::CounterStore for $store {
            async fn count(
                &self,
                key: &$crate::TokenHash,
                now: u64,
            ) -> $crate::Result<Option<$crate::Count>> {
                Ok(self.$field.count(key, now))
            }
            async fn change_count(
                &self,
                key: &$crate::TokenHash,
                now: u64,
                change: $crate::CountChange<'_>,
            ) -> $crate::Result<(Option<$crate::Count>, Option<$crate::Count>)> {
                Ok(self.$field.change_count(key, now, change))
            }
            fn secret_mac(&self) -> &$crate::SecretMac {
                self.$field.secret_mac()
            }
            async fn verified_secret(
                &self,
                client_id: &str,
                now: u64,
            ) -> $crate::Result<Option<[u8; 32]>> {
                Ok(self.$field.verified_secret(client_id, now))
            }
            async fn put_verified_secret(
                &self,
                client_id: &str,
                mac: &[u8; 32],
                expires_at: u64,
            ) -> $crate::Result<()> {
                self.$field.put_verified_secret(client_id, mac, expires_at);
                Ok(())
            }
        }
    };
}
