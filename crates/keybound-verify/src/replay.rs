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
    use rusqlite::{params, Connection, OpenFlags};

    use super::ReplayCache;
    use crate::VerifyError;

    /// Expired rows are deleted once every this many inserts.
    const PURGE_EVERY: u64 = 1024;

    fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> VerifyError {
        VerifyError::ReplayCacheUnavailable(Box::new(e))
    }

    /// A replay cache in a SQLite file (WAL): it survives restarts of the consuming component,
    /// and several processes on one machine may share it. Entries live until their proof
    /// could no longer be accepted anyway; expired ones are purged as inserts go by.
    ///
    /// One connection, taken in turn with an async lock (a waiting request never blocks its
    /// runtime worker); each check is one statement on a warm page cache, microseconds,
    /// run where it is called (rusqlite, the SQLite driver of the whole project).
    pub struct SqliteReplayCache {
        conn: tokio::sync::Mutex<Connection>,
        inserts: AtomicU64,
    }

    impl std::fmt::Debug for SqliteReplayCache {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SqliteReplayCache").finish_non_exhaustive()
        }
    }

    impl SqliteReplayCache {
        /// Open (or create, mode 0600) the cache at `path`.
        pub async fn open(path: &Path) -> Result<Self, VerifyError> {
            let owned = path.to_owned();
            let conn = tokio::task::spawn_blocking(move || {
                let c = Connection::open_with_flags(
                    &owned,
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_CREATE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                // a committed insert survives a crash or kill of this process (docs/decisions.md)
                c.pragma_update(None, "synchronous", "NORMAL")?;
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS replay \
                     (digest BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID",
                )?;
                Ok::<_, rusqlite::Error>(c)
            })
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(unavailable)?;
            }
            Ok(SqliteReplayCache {
                conn: tokio::sync::Mutex::new(conn),
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
            let conn = self.conn.lock().await;
            // one statement: a new digest is inserted, an expired one renewed, a live one left
            // alone (0 rows: a replay)
            let n = conn
                .prepare_cached(
                    "INSERT INTO replay (digest, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT(digest) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE replay.expires_at <= ?3",
                )
                .and_then(|mut st| {
                    st.execute(params![&digest[..], as_i64(expires_at), as_i64(now)])
                })
                .map_err(unavailable)?;
            if self.inserts.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
                conn.prepare_cached("DELETE FROM replay WHERE expires_at <= ?1")
                    .and_then(|mut st| st.execute(params![as_i64(now)]))
                    .map_err(unavailable)?;
            }
            Ok(n == 1)
        }
    }
}
