//! The token endpoint's statements, on rusqlite, run where they are called.
//!
//! sqlx gives every SQLite connection its own worker thread: each statement is a message to it
//! and a wake-up back, two cross-thread wake-ups per statement, which profiles showed as the
//! largest cost keybound controls (docs/performance.md, issue 14). SQLite is a library, and a
//! statement on a warm page cache takes microseconds, less than one ES256 signature, so the
//! operations every token request makes — the DPoP replay insert, looking up and consuming a
//! code, device code or refresh token, and the grant checks — run here on the calling thread,
//! on prepared, cached statements:
//!
//! - one writer connection behind a mutex (SQLite admits one writer; queueing on the mutex is
//!   cheaper than SQLite's sleeping busy handler), each operation one `BEGIN IMMEDIATE`
//!   transaction or one conditional statement;
//! - a few reader connections (WAL readers never wait for the writer), taken from a stack.
//!
//! The authorization endpoint's sessions and consents live here too, so the two endpoints'
//! writes queue on one mutex instead of meeting in SQLite's busy handler.
//!
//! A caller blocks its async worker for the statement, as it does for a signature. Writes from
//! another process on the same file (several nodes on one SQLite file) wait in SQLite's busy
//! handler, bounded by the same 10 s busy timeout as the sqlx connections. The rest of the
//! store — administration (clients, users, issuers, registration tokens), signing keys, new
//! device authorizations and their decisions, migrations — stays on sqlx: rare writes that may
//! meet these in SQLite's busy handler.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use keybound_store::{
    AuthorizationCode, BrowserSession, CodeLookup, Consent, DeviceAuthorization, DeviceDecision,
    DevicePoll, FirstRefreshFor, NewRefresh, RefreshLookup, RefreshToken, Result, StoreError,
    TokenHash,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension as _, TransactionBehavior};

/// Readers kept open; more are opened when all are busy, and closed again after use.
const READERS: usize = 4;

/// Marks a live refresh token used, if its family is not revoked. The family is checked by a
/// correlated `EXISTS` (one primary-key search): `family_id IN (SELECT … WHERE revoked_at IS
/// NULL)` made SQLite build a temporary index of every live family on each rotation, so a
/// refresh cost grew with the number of grants (2,100 → 740 req/s after 1,000 grants).
const ROTATE_REFRESH: &str = "UPDATE refresh_tokens SET used_at = ?1
     WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1
       AND EXISTS (SELECT 1 FROM refresh_families f
                   WHERE f.family_id = refresh_tokens.family_id AND f.revoked_at IS NULL)
     RETURNING data";

pub(crate) struct Hot {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    /// dropping it stops the checkpoint thread
    _checkpoints: mpsc::Sender<()>,
}

/// How often the checkpoint thread copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Log size (frames) from which the checkpoint thread finishes a pass with the writer held.
const RESTART_AT_FRAMES: i64 = 5_000;

/// Log size (pages) at which the writer checkpoints by itself: only if the thread stalls.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// WAL checkpoints on a thread of their own. SQLite checkpoints automatically on the commit that
/// crosses 1,000 WAL pages, on the committing connection — here an async worker thread — and a
/// checkpoint syncs the database file, which took tens of milliseconds on the test VM and showed
/// as p99 latency (55 ms at 1,000 requests/s). This thread runs passive checkpoints (they never
/// block the writer) until the store is dropped; the writer's own start only at
/// [`WRITER_CHECKPOINT_PAGES`].
///
/// Under sustained writes a passive pass never quite catches up (the writer appends while it
/// copies), and the log restarts only once it is copied entirely, so it would grow to
/// [`WRITER_CHECKPOINT_PAGES`] and the writer's own checkpoint would copy the backlog, sync
/// twice and restart it on the request path (the 8–14 ms maximum at 1,000 refreshes/s). So
/// once the log holds [`RESTART_AT_FRAMES`], the thread takes the writer lock for a second
/// pass, which copies only what was appended during the first; the next commit then starts
/// the log over.
fn checkpoints(path: PathBuf, writer: Arc<Mutex<Connection>>) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("keybound-sqlite-checkpoint".into())
        .spawn(move || {
            let conn = match open(&path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "no WAL checkpoint thread");
                    return;
                }
            };
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = checkpoint_pass(&conn, &writer, || ()) {
                    tracing::debug!(error = %e, "WAL checkpoint");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no WAL checkpoint thread");
    }
    tx
}

/// One pass of the checkpoint thread; the log's length in frames (copied or not: the log
/// restarts at the next commit once all are copied). `between` runs after the first, unlocked
/// checkpoint (a test's stand-in for the writer appending meanwhile).
fn checkpoint_pass(
    conn: &Connection,
    writer: &Mutex<Connection>,
    between: impl FnOnce(),
) -> rusqlite::Result<i64> {
    // (busy, frames in the log, frames copied)
    let passive = || conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
    let frames = passive()?;
    if frames < RESTART_AT_FRAMES {
        return Ok(frames);
    }
    between();
    let _writer = lock(writer);
    passive()
}

impl std::fmt::Debug for Hot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hot")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn t(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The one conversion of rusqlite's errors: a unique or key violation is a conflict, a lock
/// still held after the busy timeout is unavailability, anything else a database failure.
fn db(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(e.to_string()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(Box::new(e))
        }
        _ => StoreError::Database(Box::new(e)),
    }
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    Ok(serde_json::from_str(text)?)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panic while holding the connection leaves no half transaction: rusqlite rolls back an
    // unfinished transaction when it is dropped during the unwind
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

impl Hot {
    /// Connections to the database file at `path` (created and migrated by sqlx before).
    pub(crate) fn open(path: &Path) -> Result<Hot> {
        let writer = open(path)?;
        // the thread checkpoints (and restarts the log from RESTART_AT_FRAMES); the writer
        // only if the log outgrows WRITER_CHECKPOINT_PAGES (≈ 41 MB) anyway, i.e. the thread
        // stalled. The file is cut back only when a restart finds it above 64 MiB, so also
        // only after such a stall: a truncation on the request path waits for the device on
        // `discard` mounts (9 ms seen), with the writer lock held.
        writer
            .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(db)?;
        writer
            .pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(db)?;
        let writer = Arc::new(Mutex::new(writer));
        Ok(Hot {
            path: path.to_owned(),
            _checkpoints: checkpoints(path.to_owned(), writer.clone()),
            writer,
            readers: Mutex::new(Vec::new()),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match lock(&self.readers).pop() {
            Some(c) => c,
            None => open(&self.path)?,
        };
        let out = f(&conn);
        let mut readers = lock(&self.readers);
        if readers.len() < READERS {
            readers.push(conn);
        }
        out
    }

    /// `f` in one `BEGIN IMMEDIATE` transaction, committed when it returns `Ok`.
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// One statement that writes, outside an explicit transaction.
    fn write_one<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&lock(&self.writer))
    }

    pub(crate) fn check_and_insert(
        &self,
        digest: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> Result<bool> {
        self.write_one(|c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO replay (digest, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE replay.expires_at <= ?3",
                )
                .and_then(|mut s| s.execute(params![&digest[..], t(expires_at), t(now)]))
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    pub(crate) fn insert_code(&self, hash: &TokenHash, code: &AuthorizationCode) -> Result<()> {
        let text = serde_json::to_string(code)?;
        self.write_one(|c| {
            c.prepare_cached(
                "INSERT INTO auth_codes (code_hash, data, expires_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![&hash.0[..], text, t(code.expires_at)]))
            .map_err(|e| match db(e) {
                StoreError::Conflict(_) => StoreError::Conflict("code exists".into()),
                other => other,
            })?;
            Ok(())
        })
    }

    pub(crate) fn find_code(&self, hash: &TokenHash, now: u64) -> Result<CodeLookup> {
        self.read(|c| code_state(c, hash, now))
    }

    pub(crate) fn redeem_code(
        &self,
        hash: &TokenHash,
        now: u64,
        first: Option<NewRefresh<'_>>,
    ) -> Result<CodeLookup> {
        let redeem = |c: &Connection| -> Result<Option<AuthorizationCode>> {
            c.prepare_cached(
                "UPDATE auth_codes SET redeemed_at = ?1
                 WHERE code_hash = ?2 AND redeemed_at IS NULL AND expires_at > ?1
                 RETURNING data",
            )
            .and_then(|mut s| {
                s.query_row(params![t(now), &hash.0[..]], |r| r.get::<_, String>(0))
                    .optional()
            })
            .map_err(db)?
            .map(|text| json(&text))
            .transpose()
        };
        let won = match first {
            // nothing else to write: one statement
            None => self.write_one(redeem)?,
            Some((h, token)) => self.write(|tx| {
                let won = redeem(tx)?;
                if won.is_some() {
                    insert_refresh_in(tx, h, token, true)?;
                }
                Ok(won)
            })?,
        };
        match won {
            Some(code) => Ok(CodeLookup::Active(code)),
            None => self.find_code(hash, now),
        }
    }

    pub(crate) fn insert_refresh(&self, hash: &TokenHash, token: &RefreshToken) -> Result<()> {
        self.write(|tx| insert_refresh_in(tx, hash, token, true))
    }

    pub(crate) fn find_refresh(&self, hash: &TokenHash, now: u64) -> Result<RefreshLookup> {
        self.read(|c| refresh_state(c, hash, now))
    }

    pub(crate) fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_token: &RefreshToken,
        now: u64,
    ) -> Result<RefreshLookup> {
        self.write(|tx| {
            let used: Option<String> = tx
                .prepare_cached(ROTATE_REFRESH)
                .and_then(|mut s| {
                    s.query_row(params![t(now), &old.0[..]], |r| r.get(0))
                        .optional()
                })
                .map_err(db)?;
            if let Some(text) = used {
                let tok: RefreshToken = json(&text)?;
                if tok.family_id != new_token.family_id {
                    return Err(StoreError::Conflict(
                        "rotation must stay in the family".into(),
                    ));
                }
                // the family row exists: the UPDATE above found the old token through it
                insert_refresh_in(tx, new, new_token, false)?;
                return Ok(RefreshLookup::Active(tok));
            }
            let state = refresh_state(tx, old, now)?;
            if let RefreshLookup::Reused(tok) = &state {
                // reuse: the grant (every family, every access token) goes in this transaction
                revoke_grant_in(tx, &tok.grant_id, now)?;
            }
            Ok(state)
        })
    }

    pub(crate) fn revoke_family(&self, family_id: &str, now: u64) -> Result<()> {
        self.write_one(|c| {
            c.prepare_cached(
                "UPDATE refresh_families SET revoked_at = ?1 WHERE family_id = ?2 AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![t(now), family_id]))
            .map_err(db)?;
            Ok(())
        })
    }

    pub(crate) fn revoke_grant(&self, grant_id: &str, now: u64) -> Result<()> {
        self.write(|tx| revoke_grant_in(tx, grant_id, now))
    }

    pub(crate) fn is_grant_revoked(&self, grant_id: &str) -> Result<bool> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM revoked_grants WHERE grant_id = ?1")
                .and_then(|mut s| s.exists(params![grant_id]))
                .map_err(db)
        })
    }

    pub(crate) fn find_device(
        &self,
        hash: &TokenHash,
        now: u64,
    ) -> Result<Option<DeviceAuthorization>> {
        self.lookup(
            "SELECT data FROM device_codes WHERE device_hash = ?1 AND expires_at > ?2",
            params![&hash.0[..], t(now)],
        )
    }

    pub(crate) fn poll_device(
        &self,
        hash: &TokenHash,
        now: u64,
        first: &FirstRefreshFor<'_>,
    ) -> Result<DevicePoll> {
        // One statement records the poll and applies slow_down; SET expressions see the old
        // row. An approved code is consumed in the same transaction, with its refresh token.
        self.write(|tx| {
            let row = tx
                .prepare_cached(
                    "UPDATE device_codes SET
                         slowed = CASE WHEN last_poll IS NOT NULL AND ?1 < last_poll + interval THEN 1 ELSE 0 END,
                         interval = interval + CASE WHEN last_poll IS NOT NULL AND ?1 < last_poll + interval THEN 5 ELSE 0 END,
                         last_poll = ?1
                     WHERE device_hash = ?2 AND redeemed = 0 AND expires_at > ?1
                     RETURNING slowed, interval, decision, data",
                )
                .and_then(|mut s| {
                    s.query_row(params![t(now), &hash.0[..]], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(db)?;
            let Some((slowed, interval, decision, text)) = row else {
                let row = tx
                    .prepare_cached("SELECT redeemed, data FROM device_codes WHERE device_hash = ?1")
                    .and_then(|mut s| {
                        s.query_row(params![&hash.0[..]], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                        })
                        .optional()
                    })
                    .map_err(db)?;
                return Ok(match row {
                    None => DevicePoll::NotFound,
                    Some((1, text)) => DevicePoll::Redeemed(json(&text)?),
                    Some(_) => DevicePoll::Expired,
                });
            };
            let interval = u(interval);
            if slowed == 1 {
                return Ok(DevicePoll::SlowDown { interval });
            }
            let auth: DeviceAuthorization = json(&text)?;
            let decision: Option<DeviceDecision> = decision.as_deref().map(json).transpose()?;
            Ok(match decision {
                None => DevicePoll::Pending { interval },
                Some(DeviceDecision::Denied) => DevicePoll::Denied,
                Some(dec @ DeviceDecision::Approved { .. }) => {
                    // the write lock is held since the UPDATE above: this poll consumes it
                    tx.prepare_cached("UPDATE device_codes SET redeemed = 1 WHERE device_hash = ?1")
                        .and_then(|mut s| s.execute(params![&hash.0[..]]))
                        .map_err(db)?;
                    if let Some((h, token)) = first(&dec) {
                        insert_refresh_in(tx, &h, &token, true)?;
                    }
                    DevicePoll::Approved(auth, dec)
                }
            })
        })
    }
}

impl Hot {
    pub(crate) fn put_session(&self, hash: &TokenHash, session: &BrowserSession) -> Result<()> {
        let text = serde_json::to_string(session)?;
        self.write_one(|c| {
            c.prepare_cached(
                "INSERT INTO sessions (session_hash, data, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (session_hash) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
            )
            .and_then(|mut s| s.execute(params![&hash.0[..], text, t(session.expires_at)]))
            .map_err(db)?;
            Ok(())
        })
    }

    pub(crate) fn session(&self, hash: &TokenHash, now: u64) -> Result<Option<BrowserSession>> {
        self.lookup(
            "SELECT data FROM sessions WHERE session_hash = ?1 AND expires_at > ?2",
            params![&hash.0[..], t(now)],
        )
    }

    pub(crate) fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        self.write_one(|c| {
            c.prepare_cached("DELETE FROM sessions WHERE session_hash = ?1")
                .and_then(|mut s| s.execute(params![&hash.0[..]]))
                .map_err(db)?;
            Ok(())
        })
    }

    /// A record a request reads beside its own (an End-User, a trusted issuer, a link): the
    /// `data` of the row `sql` selects, if any.
    pub(crate) fn lookup<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<T>> {
        self.read(|c| one_json(c, sql, params))
    }

    /// [`Hot::lookup`] where two rows are no answer (an ambiguous key): `None` unless exactly
    /// one row matches.
    pub(crate) fn lookup_unique<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<T>> {
        self.read(|c| {
            let mut s = c.prepare_cached(sql).map_err(db)?;
            let mut rows = s.query(params).map_err(db)?;
            let first: Option<String> = match rows.next().map_err(db)? {
                Some(r) => Some(r.get(0).map_err(db)?),
                None => None,
            };
            if rows.next().map_err(db)?.is_some() {
                return Ok(None);
            }
            first.map(|text| json(&text)).transpose()
        })
    }

    pub(crate) fn consent(&self, sub: &str, client_id: &str) -> Result<Option<Consent>> {
        self.lookup(
            "SELECT data FROM consents WHERE sub = ?1 AND client_id = ?2",
            params![sub, client_id],
        )
    }

    pub(crate) fn put_consent(&self, consent: &Consent) -> Result<()> {
        let text = serde_json::to_string(consent)?;
        self.write_one(|c| {
            c.prepare_cached(
                "INSERT INTO consents (sub, client_id, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sub, client_id) DO UPDATE SET data = excluded.data",
            )
            .and_then(|mut s| s.execute(params![consent.sub, consent.client_id, text]))
            .map_err(db)?;
            Ok(())
        })
    }
}

impl Hot {
    /// A purge statement (`sql` with `?1` = now, `?2` = limit); the rows it deleted.
    pub(crate) fn delete_batch(&self, sql: &str, now: u64, limit: u32) -> Result<u64> {
        self.write_one(|c| {
            let n = c
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params![t(now), i64::from(limit)]))
                .map_err(db)?;
            Ok(n as u64)
        })
    }
}

/// The JSON record in the first column of the one row `sql` selects, if any.
fn one_json<T: serde::de::DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get::<_, String>(0)).optional())
        .map_err(db)?
        .map(|text| json(&text))
        .transpose()
}

fn code_state(c: &Connection, hash: &TokenHash, now: u64) -> Result<CodeLookup> {
    let row = c
        .prepare_cached("SELECT data, expires_at, redeemed_at FROM auth_codes WHERE code_hash = ?1")
        .and_then(|mut s| {
            s.query_row(params![&hash.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .optional()
        })
        .map_err(db)?;
    let Some((text, expires_at, redeemed_at)) = row else {
        return Ok(CodeLookup::NotFound);
    };
    Ok(CodeLookup::classify(
        json(&text)?,
        redeemed_at.is_some(),
        u(expires_at),
        now,
    ))
}

fn refresh_state(c: &Connection, hash: &TokenHash, now: u64) -> Result<RefreshLookup> {
    let row = c
        .prepare_cached(
            "SELECT t.data, t.expires_at, t.used_at, f.revoked_at
             FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id
             WHERE t.token_hash = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![&hash.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .optional()
        })
        .map_err(db)?;
    let Some((text, expires_at, used_at, revoked_at)) = row else {
        return Ok(RefreshLookup::NotFound);
    };
    Ok(RefreshLookup::classify(
        json(&text)?,
        revoked_at.is_some(),
        used_at.is_some(),
        u(expires_at),
        now,
    ))
}

/// Store a refresh token inside the caller's transaction (starting its family if new).
fn insert_refresh_in(
    c: &Connection,
    hash: &TokenHash,
    token: &RefreshToken,
    new_family: bool,
) -> Result<()> {
    if new_family {
        c.prepare_cached(
            "INSERT INTO refresh_families (family_id, grant_id) VALUES (?1, ?2)
             ON CONFLICT (family_id) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![token.family_id, token.grant_id]))
        .map_err(db)?;
    }
    let text = serde_json::to_string(token)?;
    c.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, family_id, data, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![&hash.0[..], token.family_id, text, t(token.expires_at)]))
    .map_err(|e| match db(e) {
        StoreError::Conflict(_) => StoreError::Conflict("refresh token exists".into()),
        other => other,
    })?;
    Ok(())
}

/// Revoke a grant inside the caller's transaction: its access tokens (by `gid`) and every
/// refresh family issued under it.
fn revoke_grant_in(c: &Connection, grant_id: &str, now: u64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO revoked_grants (grant_id, revoked_at) VALUES (?1, ?2)
         ON CONFLICT (grant_id) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![grant_id, t(now)]))
    .map_err(db)?;
    c.prepare_cached(
        "UPDATE refresh_families SET revoked_at = ?1 WHERE grant_id = ?2 AND revoked_at IS NULL",
    )
    .and_then(|mut s| s.execute(params![t(now), grant_id]))
    .map_err(db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
    use super::*;

    /// The plan of `sql` on the migrated schema, one line per step.
    fn plan(sql: &str) -> Vec<String> {
        let c = Connection::open_in_memory().unwrap();
        // every migration, in order, as sqlx applies them
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            c.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
        let mut s = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; s.parameter_count()];
        s.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|l| l.unwrap())
            .collect()
    }

    /// A refresh's cost must not grow with the number of grants: every table the rotation
    /// reads is searched by key, none is scanned or copied into a temporary index.
    #[test]
    fn rotation_searches_by_key_and_scans_nothing() {
        let p = plan(ROTATE_REFRESH);
        assert!(
            p.iter()
                .all(|l| !l.contains("SCAN") && !l.contains("LIST SUBQUERY")),
            "{p:#?}"
        );
        assert!(p.iter().any(|l| l.contains("SEARCH f USING")), "{p:#?}");
    }

    /// A jwt-bearer redemption by verified e-mail searches an index, whatever the number of
    /// End-Users (it scanned and parsed every user's record).
    #[test]
    fn verified_email_lookup_searches_an_index() {
        let p = plan(crate::USER_BY_VERIFIED_EMAIL);
        assert!(
            p.iter()
                .any(|l| l.contains("SEARCH users USING INDEX users_verified_email")),
            "{p:#?}"
        );
        assert!(p.iter().all(|l| !l.contains("SCAN")), "{p:#?}");
    }

    /// Once the log is long, the checkpoint thread's pass ends with the writer held and copies
    /// what the writer appended during its first, unlocked checkpoint, so the next commit
    /// starts the log over (the writer's own checkpoint did that on the request path).
    #[test]
    fn a_long_log_is_copied_entirely_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)")
            .unwrap();
        let writer = Mutex::new(w);
        let mut n = 0u32;
        let mut commit = |w: &Connection| {
            n += 1;
            w.execute(
                "INSERT INTO t (k, v) VALUES (?1, zeroblob(3000))",
                [n.to_be_bytes()],
            )
            .unwrap();
        };
        // each commit appends a page or two: past the threshold, bounded in count
        for _ in 0..RESTART_AT_FRAMES {
            commit(&lock(&writer));
        }
        // a reader's snapshot keeps the first, unlocked checkpoint from copying the commits
        // after it, as the writer's appends during that checkpoint would
        let reader = open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        for _ in 0..10 {
            commit(&lock(&writer));
        }
        let ckpt = open(&path).unwrap();
        let left =
            checkpoint_pass(&ckpt, &writer, || reader.execute_batch("COMMIT").unwrap()).unwrap();
        commit(&lock(&writer));
        let frames: i64 = ckpt
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap();
        assert!(left >= RESTART_AT_FRAMES, "{left}");
        assert!(frames < 10, "the log holds {frames} frames after the pass");
    }

    /// The WAL is cut back (`journal_size_limit`) only when it has outgrown what the writer
    /// lets it reach before checkpointing itself, i.e. after the checkpoint thread stalled. A
    /// limit below that made the request that restarted the log truncate the file on most
    /// restarts; on a file system mounted with `discard` the truncation waits for the device
    /// (9 ms seen), with the writer lock held. Refresh p99 at 1,000/s on such a disk: 6.5–11.6
    /// ms with an 8 MiB limit, 2.0–2.9 ms with this one.
    #[test]
    fn wal_is_cut_back_only_after_a_stalled_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Connection::open(&path).unwrap());
        let hot = Hot::open(&path).unwrap();
        let w = lock(&hot.writer);
        let get = |p: &str| {
            w.pragma_query_value(None, p, |r| r.get::<_, i64>(0))
                .unwrap()
        };
        let (limit, pages, page) = (
            get("journal_size_limit"),
            get("wal_autocheckpoint"),
            get("page_size"),
        );
        assert!(pages > 0 && limit > 0, "{pages} {limit}");
        // the thread restarts the log before the writer would checkpoint it itself
        assert!(RESTART_AT_FRAMES < pages, "{RESTART_AT_FRAMES} vs {pages}");
        // a WAL frame is a page plus its 24-byte header; the WAL itself has a 32-byte header
        let reached = 32 + pages * (page + 24);
        assert!(limit >= 3 * reached / 2, "limit {limit} vs {reached}");
    }
}
