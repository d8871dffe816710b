//! The embedded default backend: one SQLite file in WAL mode.
//!
//! # Architecture
//!
//! - **One writer thread** owns the only read-write connection and the ledger's in-memory
//!   [`Frontier`](seb_ledger::merkle::Frontier). Every write request (reserve, revoke,
//!   complete, append, ...) is sent to it over a channel and answered through a oneshot, so
//!   the async runtime never blocks on SQLite.
//! - **Group commit**: the writer drains everything queued (up to
//!   [`SqliteOptions::max_batch`]) into ONE transaction with a `SAVEPOINT` per request, and
//!   commits once. A failing request rolls back only its own savepoint — its rows, ledger
//!   entries and Merkle nodes — and the frontier is restored to its snapshot from before the
//!   request. Nobody is answered before the commit, so every answer describes durable state;
//!   one fsync covers the whole batch, which is what makes thousands of durable reservations
//!   per second possible with `synchronous=FULL`.
//! - **Zero-window revocation**: [`Store::reserve`] re-reads the epochs and the revocation
//!   sets inside its savepoint, under the database write lock. A revocation answered before
//!   a reservation was submitted is therefore always seen by it, and the ledger order is the
//!   commit order.
//! - **Reads** (`is_reserved`, `epoch_check`, `entries`, roots and proofs, ...) run on a
//!   small pool of read-only connections on their own threads, each in a read transaction
//!   (one consistent snapshot). WAL lets them proceed while the writer commits.
//! - **Fail closed**: SQLite errors become [`StoreError::Unavailable`] (I/O, locking) or
//!   [`StoreError::Corrupt`] (damaged data, violated constraints). If the writer thread
//!   stops, every later call returns `Unavailable` instead of hanging.
//!
//! # Durability
//!
//! With the default [`Synchronous::Full`], SQLite fsyncs the WAL at every commit: a
//! reservation answered `Reserved` survives a process crash, an OS crash and a power loss,
//! so the admit record is on disk before the broker mints a credential (spec section 7,
//! step 13). See [`Synchronous::Normal`] for the trade-off of the faster setting.
//!
//! # Integrity on open
//!
//! [`SqliteStore::open`] runs the versioned migrations (refusing a database whose schema is
//! newer than [`SCHEMA_VERSION`]), rebuilds the frontier from the stored nodes and checks
//! that the entries, the leaf nodes and the frontier agree; any disagreement is
//! [`StoreError::Corrupt`].
//!
//! One process should own a database file. If another process appends to the same file
//! anyway, the writer notices at its next batch (the ledger size under the write lock no
//! longer matches its frontier) and re-reads the frontier before appending.

mod admission;
mod approvers;
mod net_effect;
mod ops;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

pub use schema::SCHEMA_VERSION;

use self::writer::{AliveGuard, Job, Msg, ReadJob, WriteCtx, Writer};
use crate::{
    EpochCheck, Epochs, Hash, InFlightKey, PendingExecution, PreCheck, Reservation, ReserveResult,
    Revocation, Store, StoreError, StoreFuture, StoredCheckpoint,
};

/// SQLite's `synchronous` setting for the writer connection (in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=FULL` (default): the WAL is fsynced at every commit. A reservation
    /// answered `Reserved` is on stable storage before the broker can mint a credential,
    /// whatever crashes afterwards (process, OS or power).
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is fsynced only at checkpoints. Commits survive a crash
    /// of the broker process (the data is in the OS page cache), but an OS crash or power
    /// loss can roll back the newest commits: a consumed nonce could be forgotten (a replay
    /// window for credentials already minted) and admit records could vanish from the ledger
    /// after a checkpoint naming them was published. Use it only where the storage layer
    /// below provides durability, or for tests and comparisons.
    Normal,
}

/// Settings of [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Durability of each commit (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// How long a connection waits for a lock held by someone else before failing with
    /// `Unavailable` (default 5 s).
    pub busy_timeout: Duration,
    /// Number of read-only connections, each on its own thread (default 4). With 0, reads
    /// run on the writer connection between batches.
    pub readers: usize,
    /// Most requests the writer takes into one transaction (default 512).
    pub max_batch: usize,
    /// Count every ledger entry on open and compare with the frontier size (default true).
    /// This is an O(n) scan; with `false` only the O(log n) checks run (first and last
    /// index, leaf count, frontier nodes, last leaf hash).
    pub count_entries_on_open: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            max_batch: 512,
            count_entries_on_open: true,
        }
    }
}

/// Where reads go.
enum ReadPath {
    /// A pool of read-only connections sharing one queue.
    Pool(Sender<ReadJob>),
    /// The writer connection, between batches.
    Writer,
}

/// The SQLite [`Store`]: a WAL database with a group-commit writer thread and a pool of
/// reader threads. See the [module documentation](self).
///
/// Dropping the store lets the writer finish what is queued, then joins its threads (this
/// blocks briefly); a request whose future was dropped still commits or not as a whole.
pub struct SqliteStore {
    writer: Option<Sender<Msg>>,
    reads: ReadPath,
    threads: Vec<JoinHandle<()>>,
    /// Cleared when the writer thread ends for any reason: every later call fails closed.
    alive: Arc<AtomicBool>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("threads", &self.threads.len())
            .field("running", &self.is_running())
            .finish()
    }
}

fn stopped() -> StoreError {
    StoreError::unavailable("the sqlite store's writer has stopped")
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`: apply the connection settings
    /// (WAL, `synchronous`, `busy_timeout`, foreign keys), run the migrations, rebuild and
    /// check the ledger frontier, and start the writer and reader threads.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<Self, StoreError> {
        Self::start(Some(path), &opts)
    }

    /// A private in-memory database for tests: one connection, reads served by the writer
    /// thread between batches. Not durable.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::start(None, &SqliteOptions { readers: 0, ..SqliteOptions::default() })
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn start(path: Option<&Path>, opts: &SqliteOptions) -> Result<Self, StoreError> {
        let mut conn = schema::open_writer(path, opts)?;
        schema::migrate(&mut conn)?;
        let frontier = schema::load_frontier(&conn, opts.count_entries_on_open)?;
        let readers = match path {
            Some(p) => {
                (0..opts.readers).map(|_| schema::open_reader(p, opts)).collect::<Result<_, _>>()?
            }
            None => Vec::new(),
        };

        let (tx, rx) = mpsc::channel();
        let alive = Arc::new(AtomicBool::new(true));
        let writer = Writer {
            conn,
            frontier,
            rx,
            max_batch: opts.max_batch,
            alive: AliveGuard(Arc::clone(&alive)),
        };
        let handle = std::thread::Builder::new()
            .name("seb-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::unavailable_from("cannot start the writer thread", e))?;
        let mut store = SqliteStore {
            writer: Some(tx),
            reads: ReadPath::Writer,
            threads: vec![handle],
            alive,
            path: path.map(Path::to_path_buf),
        };
        if !readers.is_empty() {
            let (read_tx, read_rx) = mpsc::channel::<ReadJob>();
            let shared = Arc::new(Mutex::new(read_rx));
            for (n, conn) in readers.into_iter().enumerate() {
                let jobs = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name(format!("seb-store-reader-{n}"))
                    .spawn(move || writer::reader_loop(conn, jobs))
                    .map_err(|e| StoreError::unavailable_from("cannot start a reader thread", e))?;
                store.threads.push(handle);
            }
            store.reads = ReadPath::Pool(read_tx);
        }
        Ok(store)
    }

    /// Whether the writer thread is still serving. Once it is gone every call fails closed
    /// with [`StoreError::Unavailable`], reads included.
    pub fn is_running(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn send(&self, msg: Msg) -> Result<(), StoreError> {
        if !self.is_running() {
            return Err(stopped());
        }
        self.writer.as_ref().ok_or_else(stopped)?.send(msg).map_err(|_| stopped())
    }

    /// Queue a write request for the next batch and wait for the commit.
    fn write<T, F>(&self, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.send(Msg::Write(Box::new(Job::new(work, tx))))?;
            rx.await.map_err(|_| stopped())?
        })
    }

    /// Run a read in one read transaction on a reader connection.
    fn read<T, F>(&self, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let job: ReadJob = Box::new(move |conn: &mut Connection| {
                let result = match conn.transaction() {
                    // Dropping the read transaction ends it; it wrote nothing.
                    Ok(txn) => work(&txn),
                    Err(e) => Err(ops::db_err(e)),
                };
                let _ = tx.send(result);
            });
            match &self.reads {
                ReadPath::Pool(_) if !self.is_running() => return Err(stopped()),
                ReadPath::Pool(pool) => pool.send(job).map_err(|_| stopped())?,
                ReadPath::Writer => self.send(Msg::Read(job))?,
            }
            rx.await.map_err(|_| stopped())?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.writer = None;
        self.reads = ReadPath::Writer;
        for handle in self.threads.drain(..) {
            // A thread that panicked has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn epochs(&self) -> StoreFuture<'_, Epochs> {
        self.read(ops::read_epochs)
    }

    fn epoch_check<'a>(&'a self, cid: &'a str, agent: &'a str) -> StoreFuture<'a, EpochCheck> {
        let (cid, agent) = (cid.to_owned(), agent.to_owned());
        self.read(move |conn| ops::epoch_check(conn, &cid, &agent))
    }

    fn bump_policy_epoch(&self, at_ms: u64, record: Option<Vec<u8>>) -> StoreFuture<'_, Epochs> {
        self.write(move |ctx| ops::bump_policy_epoch(ctx, at_ms, record.as_deref()))
    }

    fn revoke(
        &self,
        what: Revocation,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Epochs> {
        self.write(move |ctx| ops::revoke(ctx, &what, at_ms, record.as_deref()))
    }

    fn revocations(&self) -> StoreFuture<'_, (Vec<String>, Vec<String>)> {
        self.read(ops::revocations)
    }

    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> StoreFuture<'a, bool> {
        let (cid, nonce) = (cid.to_owned(), nonce.to_owned());
        self.read(move |conn| ops::is_reserved(conn, &cid, &nonce))
    }

    fn pre_check<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        agent: &'a str,
    ) -> StoreFuture<'a, PreCheck> {
        let (cid, nonce, agent) = (cid.to_owned(), nonce.to_owned(), agent.to_owned());
        self.read(move |conn| {
            Ok(PreCheck {
                epoch: ops::epoch_check(conn, &cid, &agent)?,
                reserved: ops::is_reserved(conn, &cid, &nonce)?,
            })
        })
    }

    fn reserve(&self, r: Reservation) -> StoreFuture<'_, ReserveResult> {
        self.write(move |ctx| ops::reserve(ctx, &r))
    }

    fn mark_dispatched<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        let (cid, nonce) = (cid.to_owned(), nonce.to_owned());
        self.write(move |ctx| ops::mark_dispatched(ctx, &cid, &nonce, at_ms))
    }

    fn complete<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> StoreFuture<'a, u64> {
        let (cid, nonce) = (cid.to_owned(), nonce.to_owned());
        self.write(move |ctx| ops::complete(ctx, &cid, &nonce, &outcome_entry))
    }

    fn pending(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        self.read(ops::pending)
    }

    fn in_flight_keys(&self, after: Option<u64>) -> StoreFuture<'_, Vec<InFlightKey>> {
        self.read(move |conn| ops::in_flight_keys(conn, after))
    }

    fn in_flight_execution<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
    ) -> StoreFuture<'a, Option<PendingExecution>> {
        let (cid, nonce) = (cid.to_owned(), nonce.to_owned());
        self.read(move |conn| ops::in_flight_execution(conn, &cid, &nonce))
    }

    fn append(&self, entries: Vec<Vec<u8>>) -> StoreFuture<'_, Vec<u64>> {
        if entries.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        self.write(move |ctx| ops::append(ctx, &entries))
    }

    fn ledger_size(&self) -> StoreFuture<'_, u64> {
        self.read(ops::ledger_size)
    }

    fn entries(&self, start: u64, end: u64) -> StoreFuture<'_, Vec<Vec<u8>>> {
        self.read(move |conn| ops::entries(conn, start, end))
    }

    fn root(&self, size: u64) -> StoreFuture<'_, Hash> {
        self.read(move |conn| ops::root(conn, size))
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> StoreFuture<'_, Vec<Hash>> {
        self.read(move |conn| ops::inclusion_proof(conn, index, size))
    }

    fn consistency_proof(&self, old_size: u64, new_size: u64) -> StoreFuture<'_, Vec<Hash>> {
        self.read(move |conn| ops::consistency_proof(conn, old_size, new_size))
    }

    fn put_checkpoint(&self, cp: StoredCheckpoint) -> StoreFuture<'_, ()> {
        self.write(move |ctx| ops::put_checkpoint(ctx, &cp))
    }

    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<StoredCheckpoint>> {
        self.read(ops::latest_checkpoint)
    }

    fn checkpoints(&self) -> StoreFuture<'_, Vec<StoredCheckpoint>> {
        self.read(ops::checkpoints)
    }

    fn admission(&self) -> Option<&dyn crate::admission::AdmissionState> {
        Some(self)
    }

    fn approver_directory(&self) -> Option<&dyn crate::approvers::ApproverDirectory> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that is not a database: the error keeps SQLite's own error as its source.
    #[test]
    fn a_sqlite_error_is_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seb.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let Err(e) = SqliteStore::open(&path, SqliteOptions::default()) else {
            panic!("a file of garbage opened as a store");
        };
        let source = std::error::Error::source(&e).expect("the SQLite error is kept");
        let db = source.downcast_ref::<rusqlite::Error>().expect("as a rusqlite::Error");
        assert_eq!(db.sqlite_error_code(), Some(rusqlite::ErrorCode::NotADatabase), "{db:?}");
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert!(crate::error_chain(&e).contains("file is not a database"), "{e:?}");
    }

    /// A request that panics stops the writer: that request and every later call — reads
    /// on the reader pool included — fail closed with `Unavailable` instead of hanging.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_writer_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("seb.db"), SqliteOptions::default()).unwrap();
        store.append(vec![b"kept".to_vec()]).await.unwrap();
        let died: Result<(), StoreError> =
            store.write(|_ctx: &mut WriteCtx<'_>| panic!("injected writer failure")).await;
        assert!(matches!(died, Err(StoreError::Unavailable { .. })), "{died:?}");
        assert!(!store.is_running());
        assert!(matches!(store.epochs().await, Err(StoreError::Unavailable { .. })));
        assert!(matches!(store.ledger_size().await, Err(StoreError::Unavailable { .. })));
        assert!(matches!(
            store.append(vec![b"x".to_vec()]).await,
            Err(StoreError::Unavailable { .. })
        ));
        let r = Reservation {
            cid: "c".into(),
            nonce: "n".into(),
            agent: "a".into(),
            policy_epoch: 0,
            revocation_epoch: 0,
            admit_entry: b"admit".to_vec(),
            intent: Vec::new(),
            at_ms: 0,
        };
        assert!(matches!(store.reserve(r).await, Err(StoreError::Unavailable { .. })));
        drop(store);
        // What committed before the failure is intact.
        let store =
            SqliteStore::open(&dir.path().join("seb.db"), SqliteOptions::default()).unwrap();
        assert_eq!(store.entries(0, 1).await.unwrap(), vec![b"kept".to_vec()]);
    }

    /// The in-memory store has the same failure behaviour through the writer read path.
    #[tokio::test]
    async fn a_dead_in_memory_writer_fails_closed() {
        let store = SqliteStore::open_in_memory().unwrap();
        let died: Result<(), StoreError> =
            store.write(|_ctx: &mut WriteCtx<'_>| panic!("injected writer failure")).await;
        assert!(matches!(died, Err(StoreError::Unavailable { .. })), "{died:?}");
        assert!(matches!(store.epochs().await, Err(StoreError::Unavailable { .. })));
        assert!(matches!(store.pending().await, Err(StoreError::Unavailable { .. })));
    }
}
