//! Replay caches for presentation proofs. Both refuse rather than forget: the in-memory one is
//! bounded, and when it is full of entries that have not expired it refuses new proofs (fail
//! closed) instead of evicting old ones, which would let a replay through; the SQLite one
//! (feature `sqlite`) keeps its entries in a file, so a proof accepted before a restart is
//! still refused after it, and answers [`VerifyError::ReplayCacheUnavailable`] when its
//! database fails.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::VerifyError;

/// Remembers proof digests until they expire.
#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// `Ok(true)` if `digest` is new (recorded until `expires_at`), `Ok(false)` for a replay.
    /// Atomic: of two concurrent calls with one digest, exactly one gets `Ok(true)`.
    async fn check_and_insert(
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

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn check_and_insert(
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

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteReplayCache;

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use sqlx::SqlitePool;

    use super::ReplayCache;
    use crate::VerifyError;

    /// Expired rows are deleted once every this many inserts.
    const PURGE_EVERY: u64 = 1024;

    fn unavailable(e: &sqlx::Error) -> VerifyError {
        VerifyError::ReplayCacheUnavailable(e.to_string())
    }

    /// A replay cache in a SQLite file (WAL): it survives restarts of the consuming component,
    /// and several processes on one machine may share it. Entries live until their proof
    /// could no longer be accepted anyway; expired ones are purged as inserts go by.
    #[derive(Debug)]
    pub struct SqliteReplayCache {
        pool: SqlitePool,
        inserts: AtomicU64,
    }

    impl SqliteReplayCache {
        /// Open (or create, mode 0600) the cache at `path`.
        pub async fn open(path: &Path) -> Result<Self, VerifyError> {
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // a committed insert survives a crash or kill of this process (docs/decisions.md)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .map_err(|e| unavailable(&e))?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS replay \
                 (digest BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID",
            )
            .execute(&pool)
            .await
            .map_err(|e| unavailable(&e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| VerifyError::ReplayCacheUnavailable(e.to_string()))?;
            }
            Ok(SqliteReplayCache {
                pool,
                inserts: AtomicU64::new(0),
            })
        }
    }

    #[async_trait]
    impl ReplayCache for SqliteReplayCache {
        async fn check_and_insert(
            &self,
            digest: &[u8; 32],
            expires_at: u64,
            now: u64,
        ) -> Result<bool, VerifyError> {
            let as_i64 = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
            // one statement: a new digest is inserted, an expired one renewed, a live one left
            // alone (0 rows: a replay)
            let r = sqlx::query(
                "INSERT INTO replay (digest, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT(digest) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE replay.expires_at <= ?3",
            )
            .bind(&digest[..])
            .bind(as_i64(expires_at))
            .bind(as_i64(now))
            .execute(&self.pool)
            .await
            .map_err(|e| unavailable(&e))?;
            if self.inserts.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
                sqlx::query("DELETE FROM replay WHERE expires_at <= ?1")
                    .bind(as_i64(now))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| unavailable(&e))?;
            }
            Ok(r.rows_affected() == 1)
        }
    }
}
