//! `SqliteStore`: the conformance suite on several configurations, plus what only SQLite
//! has: reopening, crash durability, migrations, open-time corruption checks, and savepoint
//! isolation inside a group-commit batch.

// Test helpers outside `#[test]` functions fail the test by panicking too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;

use seb_ledger::merkle::MemoryTree;
use seb_store::conformance::Fixture;
use seb_store::sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};
use seb_store::{
    Epochs, Reservation, ReserveResult, Revocation, Store, StoreError, StoredCheckpoint,
};

/// The conformance suite on a private in-memory database (reads through the writer).
mod memory {
    seb_store::conformance_tests!(|| async {
        seb_store::conformance::Fixture::new(
            seb_store::sqlite::SqliteStore::open_in_memory().expect("open in memory"),
        )
    });
}

/// The conformance suite on a temporary file with the default options (FULL, 4 readers).
mod file {
    seb_store::conformance_tests!(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = seb_store::sqlite::SqliteStore::open(
            &dir.path().join("seb.db"),
            seb_store::sqlite::SqliteOptions::default(),
        )
        .expect("open file store");
        seb_store::conformance::Fixture::with_guard(store, dir)
    });
}

/// The conformance suite without group commit (one request per transaction), NORMAL
/// synchronous, and a single reader: the per-request path must behave the same.
mod file_unbatched {
    seb_store::conformance_tests!(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = seb_store::sqlite::SqliteOptions {
            synchronous: seb_store::sqlite::Synchronous::Normal,
            max_batch: 1,
            readers: 1,
            ..Default::default()
        };
        let store = seb_store::sqlite::SqliteStore::open(&dir.path().join("seb.db"), opts)
            .expect("open file store");
        seb_store::conformance::Fixture::with_guard(store, dir)
    });
}

/// The conformance suite on a file with reads served by the writer connection.
mod file_no_readers {
    seb_store::conformance_tests!(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = seb_store::sqlite::SqliteOptions { readers: 0, ..Default::default() };
        let store = seb_store::sqlite::SqliteStore::open(&dir.path().join("seb.db"), opts)
            .expect("open file store");
        seb_store::conformance::Fixture::with_guard(store, dir)
    });
}

#[test]
fn run_all_runs_every_case() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(seb_store::conformance::run_all(|| async {
        Fixture::new(SqliteStore::open_in_memory().unwrap())
    }));
}

// ---------------------------------------------------------------------------------------------

fn reservation(cid: &str, nonce: &str, e: Epochs, at_ms: u64) -> Reservation {
    Reservation {
        cid: cid.into(),
        nonce: nonce.into(),
        agent: "agent".into(),
        policy_epoch: e.policy_epoch,
        revocation_epoch: e.revocation_epoch,
        admit_entry: format!("admit {cid}/{nonce}").into_bytes(),
        intent: format!("intent {cid}/{nonce}").into_bytes(),
        at_ms,
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open")
}

fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    conn
}

/// Everything observable through the trait, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Snapshot {
    epochs: Epochs,
    revocations: (Vec<String>, Vec<String>),
    pending: Vec<seb_store::PendingExecution>,
    entries: Vec<Vec<u8>>,
    root: seb_store::Hash,
    checkpoints: Vec<StoredCheckpoint>,
}

async fn snapshot(s: &dyn Store) -> Snapshot {
    let size = s.ledger_size().await.unwrap();
    Snapshot {
        epochs: s.epochs().await.unwrap(),
        revocations: s.revocations().await.unwrap(),
        pending: s.pending().await.unwrap(),
        entries: s.entries(0, size).await.unwrap(),
        root: s.root(size).await.unwrap(),
        checkpoints: s.checkpoints().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seb.db");
    let before = {
        let s = open(&path);
        let mut e = s.epochs().await.unwrap();
        for i in 0..23u64 {
            let r = s.reserve(reservation("cid", &format!("n-{i}"), e, i)).await.unwrap();
            assert!(matches!(r, ReserveResult::Reserved { .. }), "{r:?}");
            if i % 5 == 1 {
                s.mark_dispatched("cid", &format!("n-{i}"), 1_000 + i).await.unwrap();
            }
            if i % 3 == 0 {
                s.complete("cid", &format!("n-{i}"), format!("outcome {i}").into_bytes())
                    .await
                    .unwrap();
            }
        }
        e = s.bump_policy_epoch(5_000, Some(b"policy".to_vec())).await.unwrap();
        s.revoke(Revocation::Cid("cid-bad".into()), 5_001, None).await.unwrap();
        s.revoke(Revocation::Agent("agent-bad".into()), 5_002, None).await.unwrap();
        s.revoke(Revocation::All, 5_003, Some(b"all".to_vec())).await.unwrap();
        let size = s.ledger_size().await.unwrap();
        s.put_checkpoint(StoredCheckpoint { size, note: "note".into(), at_ms: 6_000 })
            .await
            .unwrap();
        assert_eq!(e.policy_epoch, 1);
        snapshot(&s).await
    };
    let s = open(&path);
    let after = snapshot(&s).await;
    assert_eq!(before, after, "state changed across a reopen");
    // The frontier was rebuilt: the next append lands at the next index and the root matches
    // an independent tree over every entry.
    let n = s.ledger_size().await.unwrap();
    assert_eq!(s.append(vec![b"after reopen".to_vec()]).await.unwrap(), vec![n]);
    let mut entries = after.entries.clone();
    entries.push(b"after reopen".to_vec());
    let tree = MemoryTree::from_entries(&entries);
    assert_eq!(s.root(n + 1).await.unwrap(), tree.root());
    assert_eq!(s.root(n).await.unwrap(), after.root);
    // Reservations are still consumed; revocations still bite.
    let e = s.epochs().await.unwrap();
    assert_eq!(s.reserve(reservation("cid", "n-3", e, 9)).await.unwrap(), ReserveResult::Replay);
    let r = s.reserve(reservation("cid-bad", "n", e, 9)).await.unwrap();
    assert!(matches!(r, ReserveResult::Revoked { .. }), "{r:?}");
}

/// Run only as the child of [`reservations_survive_a_crash`]: reserve, then abort the
/// process without any shutdown (no destructor, no connection close, no WAL checkpoint).
#[test]
fn crash_child_process() {
    let Ok(path) = std::env::var("SEB_STORE_CRASH_DB") else {
        return;
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let store = Arc::new(open(Path::new(&path)));
        let e = store.epochs().await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50u64 {
            let store = Arc::clone(&store);
            tasks.spawn(
                async move { store.reserve(reservation("cid", &format!("n-{i}"), e, i)).await },
            );
        }
        while let Some(r) = tasks.join_next().await {
            assert!(matches!(r.unwrap().unwrap(), ReserveResult::Reserved { .. }));
        }
        std::process::abort();
    });
}

#[test]
fn reservations_survive_a_crash() {
    use std::os::unix::process::ExitStatusExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seb.db");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_process", "--nocapture", "--test-threads=1"])
        .env("SEB_STORE_CRASH_DB", &path)
        .output()
        .unwrap();
    assert_eq!(
        child.status.signal(),
        Some(6),
        "the child did not reach its abort: {:?}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let s = open(&path);
        let e = s.epochs().await.unwrap();
        assert_eq!(s.ledger_size().await.unwrap(), 50, "admit records lost in the crash");
        assert_eq!(s.pending().await.unwrap().len(), 50, "intents lost in the crash");
        for i in 0..50u64 {
            let r = s.reserve(reservation("cid", &format!("n-{i}"), e, i)).await.unwrap();
            assert_eq!(r, ReserveResult::Replay, "nonce n-{i} was forgotten by the crash");
        }
        let entries = s.entries(0, 50).await.unwrap();
        assert_eq!(s.root(50).await.unwrap(), MemoryTree::from_entries(&entries).root());
    });
}

#[test]
fn a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seb.db");
    drop(open(&path));
    let version: i64 = raw(&path)
        .query_row("SELECT MAX(version) FROM schema_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
    // Reopening the current version is fine and does not re-run migrations.
    drop(open(&path));
    raw(&path)
        .execute("INSERT INTO schema_version (version) VALUES (?1)", [SCHEMA_VERSION + 1])
        .unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Invalid { context: msg, .. }) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seb.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Build a ledger of 13 entries on disk and return the path (the store is closed).
fn ledger_of_13(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("seb.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s = open(&path);
        s.append((0..13u8).map(|i| vec![i; 3]).collect()).await.unwrap();
    });
    path
}

#[test]
fn open_detects_a_missing_merkle_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_of_13(dir.path());
    // 13 = 8 + 4 + 1: the frontier needs (3, 0), (2, 2) and (0, 12).
    raw(&path).execute("DELETE FROM merkle_nodes WHERE level = 2 AND idx = 2", []).unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn open_detects_a_missing_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_of_13(dir.path());
    raw(&path).execute("DELETE FROM ledger_entries WHERE idx = 5", []).unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Corrupt { context: msg, .. }) => assert!(msg.contains("13"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn open_detects_an_altered_last_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_of_13(dir.path());
    raw(&path).execute("UPDATE ledger_entries SET entry = X'00' WHERE idx = 12", []).unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn open_detects_entries_and_leaves_that_disagree() {
    let dir = tempfile::tempdir().unwrap();
    let path = ledger_of_13(dir.path());
    raw(&path).execute("DELETE FROM ledger_entries WHERE idx = 12", []).unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A request that fails in the middle of a group-commit batch rolls back only its own
/// savepoint (rows, entries and Merkle nodes), and the frontier stays consistent for the
/// requests after it in the same batch and later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_rolls_back_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seb.db");
    let store = Arc::new(open(&path));
    store.append(vec![b"genesis".to_vec()]).await.unwrap();
    // Inject a failure: any entry equal to 0xDEAD aborts its statement.
    raw(&path)
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON ledger_entries WHEN NEW.entry = X'DEAD' \
             BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END;",
        )
        .unwrap();
    let e = store.epochs().await.unwrap();
    for round in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40u64 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                match i % 4 {
                    // Two good entries, then the poison: all three must vanish.
                    0 => {
                        let batch = vec![b"ok-1".to_vec(), b"ok-2".to_vec(), vec![0xDE, 0xAD]];
                        (i, store.append(batch).await.map(|_| ReserveResult::Replay))
                    }
                    // A reservation whose admit record is poisoned: no nonce consumed.
                    1 => {
                        let mut r = reservation("poisoned", &format!("r{round}-{i}"), e, i);
                        r.admit_entry = vec![0xDE, 0xAD];
                        (i, store.reserve(r).await)
                    }
                    _ => {
                        (i, store.reserve(reservation("cid", &format!("r{round}-{i}"), e, i)).await)
                    }
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.unwrap();
            match i % 4 {
                0 | 1 => assert!(result.is_err(), "poisoned request {i} succeeded: {result:?}"),
                _ => assert!(
                    matches!(result, Ok(ReserveResult::Reserved { .. })),
                    "good request {i} failed: {result:?}"
                ),
            }
        }
    }
    let size = store.ledger_size().await.unwrap();
    assert_eq!(size, 1 + 5 * 20, "only the good reservations were appended");
    let entries = store.entries(0, size).await.unwrap();
    assert!(entries.iter().all(|e| e.as_slice() != b"ok-1" && e.as_slice() != b"ok-2"));
    assert_eq!(store.root(size).await.unwrap(), MemoryTree::from_entries(&entries).root());
    let pending = store.pending().await.unwrap();
    assert_eq!(pending.len(), 100);
    assert!(pending.iter().all(|p| p.cid == "cid"), "a poisoned reservation left an intent");
    assert!(!store.is_reserved("poisoned", "r0-1").await.unwrap());
    drop(store);
    // What is on disk passes the open-time checks.
    let s = open(&path);
    assert_eq!(s.ledger_size().await.unwrap(), size);
}

/// A second store on the same file (another process, in effect) appends; the first one's
/// writer notices under the write lock and re-reads its frontier instead of appending at a
/// stale index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_the_same_file_does_not_corrupt_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seb.db");
    let a = open(&path);
    let b = open(&path);
    a.append(vec![b"a1".to_vec()]).await.unwrap();
    assert_eq!(b.append(vec![b"b1".to_vec(), b"b2".to_vec()]).await.unwrap(), vec![1, 2]);
    assert_eq!(a.append(vec![b"a2".to_vec()]).await.unwrap(), vec![3]);
    let entries = a.entries(0, 4).await.unwrap();
    let tree = MemoryTree::from_entries(&entries);
    assert_eq!(a.root(4).await.unwrap(), tree.root());
    assert_eq!(b.root(4).await.unwrap(), tree.root());
}

#[test]
fn options_default_to_full_durability() {
    let o = SqliteOptions::default();
    assert_eq!(o.synchronous, Synchronous::Full);
    assert!(o.readers > 0 && o.max_batch > 1 && o.count_entries_on_open);
}

/// When the batch's COMMIT itself fails (here: a deferred foreign-key violation injected by a
/// trigger that deletes an admit record behind the store's back), every request of the batch
/// is answered `Unavailable`, nothing of it is durable, and the writer recovers: later
/// requests append at the right index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_the_whole_batch_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seb.db");
    let store = Arc::new(open(&path));
    store.append(vec![b"genesis".to_vec()]).await.unwrap();
    raw(&path)
        .execute_batch(
            "CREATE TRIGGER vanish AFTER INSERT ON ledger_entries WHEN NEW.entry = X'BEEF' \
             BEGIN DELETE FROM ledger_entries WHERE idx = NEW.idx; END;",
        )
        .unwrap();
    let e = store.epochs().await.unwrap();
    let mut unavailable = 0;
    for round in 0..3 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20u64 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let mut r = reservation("cid", &format!("r{round}-{i}"), e, i);
                if i == 0 {
                    r.admit_entry = vec![0xBE, 0xEF];
                }
                (i, store.reserve(r).await)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                (_, Ok(ReserveResult::Reserved { .. })) => {}
                (i, Err(StoreError::Unavailable { .. })) => {
                    unavailable += 1;
                    // Nothing of a failed batch is durable: the nonce is still free.
                    assert!(!store.is_reserved("cid", &format!("r{round}-{i}")).await.unwrap());
                }
                (i, other) => panic!("request {i}: unexpected {other:?}"),
            }
        }
    }
    assert!(unavailable >= 3, "the poisoned requests were not refused");
    assert!(store.is_running(), "a failed commit stopped the writer");
    let size = store.ledger_size().await.unwrap();
    assert_eq!(size, 1 + 60 - unavailable, "ledger size after failed batches");
    assert_eq!(store.pending().await.unwrap().len() as u64, size - 1);
    let entries = store.entries(0, size).await.unwrap();
    assert_eq!(store.root(size).await.unwrap(), MemoryTree::from_entries(&entries).root());
    assert_eq!(store.append(vec![b"after".to_vec()]).await.unwrap(), vec![size]);
    drop(store);
    let s = open(&path);
    assert_eq!(s.ledger_size().await.unwrap(), size + 1);
}
