//! Opening connections, and the one conversion of SQLite's errors.

use std::path::Path;
use std::time::Duration;

use keybound_store::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};

/// How long a statement waits for another process's write lock on the same file.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the database is.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// a file (WAL: readers never wait for the writer)
    File(std::path::PathBuf),
    /// an in-memory database of this process, named so that the writer and the checks of
    /// tests share it; one connection serves it (the writer's)
    Memory(String),
}

pub(crate) fn t(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The one conversion of rusqlite's errors: a unique or key violation is a conflict, a lock
/// still held after the busy timeout is unavailability, anything else a database failure.
pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(e.to_string()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(Box::new(e))
        }
        _ => StoreError::Database(Box::new(e)),
    }
}

/// A conflict described by `what` for a unique violation, else [`db`].
pub(crate) fn conflict_or_db(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match db(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what()),
        other => other,
    }
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    Ok(serde_json::from_str(text)?)
}

/// A connection with keybound's settings (busy timeout, `synchronous = NORMAL`, foreign keys,
/// a statement cache).
pub(crate) fn open(at: &Location, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = match at {
        Location::File(path) => Connection::open_with_flags(path, flags),
        Location::Memory(name) => Connection::open_with_flags(
            format!("file:{name}?mode=memory&cache=shared"),
            flags | OpenFlags::SQLITE_OPEN_URI,
        ),
    }
    .map_err(db)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A file's location.
pub(crate) fn file(path: &Path) -> Location {
    Location::File(path.to_owned())
}
