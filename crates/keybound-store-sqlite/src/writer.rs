//! The writer thread: it owns the one write connection and commits several requests' writes in
//! one transaction (group commit).
//!
//! SQLite admits one writer at a time, and on a WAL database each commit is one append and,
//! with `synchronous = NORMAL`, no sync; what a commit costs beyond its statements is the
//! transaction's begin and end and the lock hand-over between callers. So callers do not take a
//! lock: they hand a job to this thread through a bounded queue (an async send: a full queue
//! makes the caller wait without blocking its runtime worker) and await the answer. The thread
//! takes whatever is queued (up to [`MAX_BATCH`]), runs each job under a savepoint inside one
//! `BEGIN IMMEDIATE` transaction — a job that fails is rolled back alone — commits once, and
//! only then answers each job: nobody hears "done" for a write that is not committed. If the
//! commit fails, every job of the batch is answered with that failure.
//!
//! Each job is one atomic store operation (a conditional statement, or a read-then-write under
//! the write lock this transaction holds), so batching changes when writes become durable, never
//! what they decide.

use std::sync::Arc;

use keybound_store::{Result, StoreError};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::conn::db;

/// Jobs queued before callers wait for room.
const QUEUE: usize = 1024;
/// Jobs committed together at most.
const MAX_BATCH: usize = 64;

/// A unit of work for the writer thread.
trait Job: Send {
    /// Run inside the batch's transaction; whether it succeeded (else it is rolled back).
    fn run(&mut self, c: &Connection) -> bool;
    /// Answer the caller once the batch's fate is known.
    fn answer(self: Box<Self>, committed: &std::result::Result<(), Arc<StoreError>>);
}

struct Typed<T, F> {
    work: Option<F>,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, c: &Connection) -> bool {
        let out = match self.work.take() {
            // a panicking job fails alone: the thread, and every later write, live on
            Some(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)))
                .unwrap_or_else(|_| Err(StoreError::Database("a store job panicked".into()))),
            None => Err(StoreError::Database("a job ran twice".into())),
        };
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn answer(self: Box<Self>, committed: &std::result::Result<(), Arc<StoreError>>) {
        let out = match (self.out, committed) {
            (Some(Ok(_)), Err(e)) => Err(StoreError::Database(
                format!("the batch did not commit: {e}").into(),
            )),
            (Some(out), _) => out,
            (None, _) => Err(StoreError::Database("a job never ran".into())),
        };
        // the caller may have gone (its request was cancelled): nothing to tell
        let _ = self.reply.send(out);
    }
}

/// The handle callers send jobs through; the thread stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Start the thread over `conn`.
    pub(crate) fn start(conn: Connection) -> Result<Writer> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("keybound-sqlite-writer".into())
            .spawn(move || run(&conn, rx))
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        Ok(Writer { jobs })
    }

    /// Run `f` on the write connection inside a batch's transaction; its result once the batch
    /// is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, answer) = job(f);
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// [`Writer::write`] from a thread outside the async runtime (the checkpoint thread).
    pub(crate) fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, answer) = job(f);
        self.jobs.blocking_send(job).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }
}

/// `f` as a job, and where its answer will come.
fn job<T, F>(f: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Box::new(Typed {
        work: Some(f),
        out: None,
        reply,
    });
    (job, answer)
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread has stopped".into())
}

fn run(conn: &Connection, mut rx: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let committed = commit(conn, &mut batch).map_err(Arc::new);
        if let Err(e) = &committed {
            tracing::warn!(error = %e, jobs = batch.len(), "a SQLite write batch failed");
        }
        for job in batch.drain(..) {
            job.answer(&committed);
        }
    }
}

/// Run a fixed statement (transaction control) through the statement cache: it is parsed once.
fn control(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(db)
}

/// One transaction over `batch`. A batch of one needs no savepoint: if its job fails, the
/// transaction is rolled back; in a larger batch each job runs under its own savepoint, so a
/// failing job is rolled back alone.
fn commit(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<()> {
    control(conn, "BEGIN IMMEDIATE")?;
    let mut body = || -> Result<()> {
        if let [job] = batch {
            if job.run(conn) {
                return control(conn, "COMMIT");
            }
            return control(conn, "ROLLBACK");
        }
        for job in batch.iter_mut() {
            control(conn, "SAVEPOINT job")?;
            if !job.run(conn) {
                control(conn, "ROLLBACK TO job")?;
            }
            control(conn, "RELEASE job")?;
        }
        control(conn, "COMMIT")
    };
    body().inspect_err(|_| {
        // leave no transaction open for the next batch (a failed COMMIT may have ended it)
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    })
}
