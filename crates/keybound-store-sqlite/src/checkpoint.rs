//! WAL checkpoints on a thread of their own.
//!
//! SQLite checkpoints automatically on the commit that crosses 1,000 WAL pages, on the
//! committing connection — here the writer thread, which every write waits for — and a checkpoint
//! syncs the database file, which took tens of milliseconds on the test VM and showed as p99
//! latency (55 ms at 1,000 requests/s). This thread runs passive checkpoints (they never block
//! the writer) until the store is dropped; the writer's own start only at
//! [`WRITER_CHECKPOINT_PAGES`].
//!
//! Under sustained writes a passive pass never quite catches up (the writer appends while it
//! copies), and the log restarts only once it is copied entirely, so it would grow to
//! [`WRITER_CHECKPOINT_PAGES`] and the writer's own checkpoint would copy the backlog, sync
//! twice and restart it on the request path (the 8–14 ms maximum at 1,000 refreshes/s). So
//! once the log holds [`RESTART_AT_FRAMES`], the thread runs a second pass as a job of the
//! writer thread — while it runs nobody writes — which copies only what was appended during the
//! first; the next commit then starts the log over.

use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::conn::{open, Location};
use crate::writer::Writer;

/// How often the checkpoint thread copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Log size (frames) from which the checkpoint thread finishes a pass with the writer held.
pub(crate) const RESTART_AT_FRAMES: i64 = 5_000;

/// Log size (pages) at which the writer checkpoints by itself: only if the thread stalls.
pub(crate) const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// The WAL is cut back to this size when a restart finds it larger: only after a stalled
/// checkpoint thread (a truncation on the request path waits for the device on `discard`
/// mounts: 9 ms seen).
pub(crate) const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Start the thread for the file at `at`; it stops when the returned sender is dropped.
pub(crate) fn start(at: Location, writer: Writer) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("keybound-sqlite-checkpoint".into())
        .spawn(move || {
            let conn = match open(&at, false) {
                Ok(c) => Arc::new(Mutex::new(c)),
                Err(e) => {
                    tracing::warn!(error = %e, "no WAL checkpoint thread");
                    return;
                }
            };
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(CHECKPOINT_EVERY) {
                let second = |conn: Arc<Mutex<Connection>>| {
                    writer.write_blocking(move |_| {
                        passive(&conn.lock().unwrap_or_else(PoisonError::into_inner))
                            .map_err(crate::conn::db)
                    })
                };
                if let Err(e) = pass(&conn, second) {
                    tracing::debug!(error = %e, "WAL checkpoint");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no WAL checkpoint thread");
    }
    tx
}

fn passive(conn: &Connection) -> rusqlite::Result<i64> {
    // (busy, frames in the log, frames copied)
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
}

/// One pass: a passive checkpoint, and when the log is long a second one through `second`
/// (with the writer held). The log's length in frames.
pub(crate) fn pass(
    conn: &Arc<Mutex<Connection>>,
    second: impl FnOnce(Arc<Mutex<Connection>>) -> keybound_store::Result<i64>,
) -> keybound_store::Result<i64> {
    let frames =
        passive(&conn.lock().unwrap_or_else(PoisonError::into_inner)).map_err(crate::conn::db)?;
    if frames < RESTART_AT_FRAMES {
        return Ok(frames);
    }
    second(Arc::clone(conn))
}
