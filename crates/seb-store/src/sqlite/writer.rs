//! The group-commit writer thread and the reader threads.
//!
//! One writer thread owns the only read-write connection and the in-memory [`Frontier`].
//! It blocks for one request, drains whatever else is queued (up to `max_batch`), and runs
//! them all in ONE `BEGIN IMMEDIATE` transaction with a `SAVEPOINT` per request:
//!
//! - a request that fails rolls back to its own savepoint (its rows, ledger entries and
//!   Merkle nodes vanish) and the frontier is restored to its snapshot from before the
//!   request, so the next request appends at the right index;
//! - the batch commits once (one fsync with `synchronous=FULL`), and only then is any
//!   request answered, so an answer always describes durable state;
//! - if the commit fails, every request of the batch is answered `Unavailable`, the
//!   frontier is re-read from the database, and if even that fails the thread stops: every
//!   later call sees a closed channel and fails closed with `Unavailable`;
//! - a request that panics (a bug) stops the writer the same way, after clearing the
//!   "alive" flag so that no call — reads included — succeeds afterwards.
//!
//! Reads never queue behind the writer when there are reader threads; without them (the
//! in-memory store) they run on the writer connection between batches, after the commit.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use seb_ledger::merkle::Frontier;
use tokio::sync::oneshot;

use super::ops::{self, DbResult as _};
use super::schema;
use crate::StoreError;

/// What a write request sees: the connection inside its savepoint and the frontier.
pub(super) struct WriteCtx<'a> {
    /// The writer connection, inside this request's savepoint.
    pub(super) conn: &'a Connection,
    /// The right edge of the ledger as of this request (committed plus earlier requests of
    /// the same batch).
    pub(super) frontier: &'a mut Frontier,
}

/// A read job: runs on some read connection and answers through its own channel.
pub(super) type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// A message to the writer thread.
pub(super) enum Msg {
    /// A write request.
    Write(Box<dyn WriteJob>),
    /// A read, run after the current batch commits (stores without reader threads).
    Read(ReadJob),
}

/// One queued write request, type-erased.
pub(super) trait WriteJob: Send {
    /// Run inside the request's savepoint. `true` keeps its writes, `false` rolls them back.
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool;
    /// Answer once the batch's fate is known: `Err` means nothing of the batch committed.
    fn finish(self: Box<Self>, batch: Result<(), &str>);
}

/// A write request: the work, then its result, then the reply channel.
pub(super) struct Job<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job<T, F> {
    /// A request that answers on `reply`.
    pub(super) fn new(work: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Self { work: Some(work), result: None, reply }
    }
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool {
        let result = match self.work.take() {
            Some(work) => work(ctx),
            None => Err(StoreError::unavailable("store request ran twice")),
        };
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn finish(self: Box<Self>, batch: Result<(), &str>) {
        let answer = match batch {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::unavailable("store request did not run"))),
            Err(why) => Err(StoreError::unavailable(format!("store transaction failed: {why}"))),
        };
        // The caller may have gone away (a dropped future); the work is durable regardless.
        let _ = self.reply.send(answer);
    }
}

/// Clears the shared "writer alive" flag when the writer goes away, however it goes (a
/// normal exit, a fatal error, or unwinding from a panic), so reads fail closed too.
pub(super) struct AliveGuard(pub(super) Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) frontier: Frontier,
    pub(super) rx: Receiver<Msg>,
    pub(super) max_batch: usize,
    pub(super) alive: AliveGuard,
}

/// Why the writer stops for good.
struct Fatal;

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).db()?.execute([]).db().map(|_| ())
}

impl Writer {
    /// Serve until every sender is gone or the state can no longer be trusted.
    pub(super) fn run(mut self) {
        let max = self.max_batch.max(1);
        while let Ok(first) = self.rx.recv() {
            let mut writes: Vec<Box<dyn WriteJob>> = Vec::new();
            let mut reads: Vec<ReadJob> = Vec::new();
            let mut next = Some(first);
            let mut taken = 0usize;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Write(job) => writes.push(job),
                    Msg::Read(job) => reads.push(job),
                }
                taken = taken.saturating_add(1);
                if taken < max {
                    match self.rx.try_recv() {
                        Ok(m) => next = Some(m),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
                    }
                }
            }
            if !writes.is_empty() && self.commit_batch(writes).is_err() {
                // Dropping the reads and the receiver answers every waiting caller with a
                // closed channel, which they report as `Unavailable`.
                return;
            }
            for read in reads {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| read(&mut self.conn)));
            }
        }
    }

    /// One transaction for the whole batch, one savepoint per request.
    fn commit_batch(&mut self, mut jobs: Vec<Box<dyn WriteJob>>) -> Result<(), Fatal> {
        let before_batch = self.frontier.clone();
        let mut failure = exec(&self.conn, "BEGIN IMMEDIATE").err();
        if failure.is_none() {
            failure = self.sync_frontier().err();
        }
        if failure.is_none() {
            for job in &mut jobs {
                if let Err(e) = self.run_one(job.as_mut()) {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none() {
            failure = exec(&self.conn, "COMMIT").err();
        }
        let Some(err) = failure else {
            for job in jobs {
                job.finish(Ok(()));
            }
            return Ok(());
        };
        if !self.conn.is_autocommit() {
            // Ignored: SQLite may already have rolled back; the re-read below decides.
            let _ = exec(&self.conn, "ROLLBACK");
        }
        self.frontier = before_batch;
        let why = err.to_string();
        for job in jobs {
            job.finish(Err(&why));
        }
        if !self.alive.0.load(Ordering::SeqCst) {
            return Err(Fatal);
        }
        // Trust only what is committed: re-derive the frontier (O(log n) reads).
        match schema::load_frontier(&self.conn, false) {
            Ok(f) => {
                self.frontier = f;
                Ok(())
            }
            Err(_) => Err(Fatal),
        }
    }

    /// Under the write lock, make sure the frontier matches the committed ledger (another
    /// process writing the same file would otherwise make it stale).
    fn sync_frontier(&mut self) -> Result<(), StoreError> {
        if ops::ledger_size(&self.conn)? != self.frontier.size() {
            self.frontier = schema::load_frontier(&self.conn, false)?;
        }
        Ok(())
    }

    /// Run one request in its savepoint. An `Err` here is a failure of the savepoint
    /// machinery itself and aborts the whole batch; the request's own failure is its result.
    fn run_one(&mut self, job: &mut dyn WriteJob) -> Result<(), StoreError> {
        exec(&self.conn, "SAVEPOINT seb_request")?;
        let snapshot = self.frontier.clone();
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            job.run(&mut WriteCtx { conn: &self.conn, frontier: &mut self.frontier })
        }));
        let Ok(keep) = ran else {
            // A bug, not a data problem: stop serving before anyone is answered, so that no
            // later call can succeed. The batch is rolled back and answered `Unavailable`.
            self.alive.0.store(false, Ordering::SeqCst);
            self.frontier = snapshot;
            return Err(StoreError::unavailable("a store request panicked"));
        };
        if keep {
            exec(&self.conn, "RELEASE seb_request")
        } else {
            self.frontier = snapshot;
            exec(&self.conn, "ROLLBACK TO seb_request")?;
            exec(&self.conn, "RELEASE seb_request")
        }
    }
}

/// A reader thread: take jobs from the shared queue until it closes.
pub(super) fn reader_loop(mut conn: Connection, jobs: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else {
                return;
            };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // A panicking read loses only its own answer (the caller sees `Unavailable`); its
        // read transaction was rolled back while unwinding, so the connection stays usable.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
    }
}
