#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! An outcome told to the client survives the store not taking it: it is synced to the
//! replica's spool before the answer, survives the process (a new broker on the same spool),
//! is left alone by crash recovery, and is written once, with its id, when the store is back.
//! Refusals while the store is down name the store, never `replay`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use seb_broker::clock::ManualClock;
use seb_broker::engine::{Broker, EngineSettings, OutcomeState};
use seb_broker::records::RecordSigner;
use seb_broker::spool::Spool;
use seb_core::types::{Decision, FailedCheck};
use seb_store::sqlite::SqliteStore;
use seb_store::{Store, StoreError, StoreFuture};
use seb_target::test_double::TestTarget;

/// The store with two switches: `writes_down` fails outcomes and appends (the database went
/// away after the reservation), `reads_down` fails the reads of checks 7–10 as well.
struct Flaky {
    inner: Arc<SqliteStore>,
    writes_down: AtomicBool,
    reads_down: AtomicBool,
}

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable("test: the database is down"))
}

impl seb_store::NetEffectLog for Flaky {
    seb_store::forward_net_effect_log!(inner);
}

impl Store for Flaky {
    seb_store::forward_store!(inner: backend, epochs, bump_policy_epoch, revoke, revocations,
        reserve, mark_dispatched, pending, ledger_size, entries, root, inclusion_proof,
        consistency_proof, put_checkpoint, latest_checkpoint, checkpoints);
    fn epoch_check<'a>(
        &'a self,
        cid: &'a str,
        agent: &'a str,
    ) -> StoreFuture<'a, seb_store::EpochCheck> {
        if self.reads_down.load(Ordering::SeqCst) {
            return Box::pin(async { down() });
        }
        self.inner.epoch_check(cid, agent)
    }
    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> StoreFuture<'a, bool> {
        if self.reads_down.load(Ordering::SeqCst) {
            return Box::pin(async { down() });
        }
        self.inner.is_reserved(cid, nonce)
    }
    fn complete<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> StoreFuture<'a, u64> {
        if self.writes_down.load(Ordering::SeqCst) {
            return Box::pin(async { down() });
        }
        self.inner.complete(cid, nonce, outcome_entry)
    }
    fn append(&self, entries: Vec<Vec<u8>>) -> StoreFuture<'_, Vec<u64>> {
        if self.writes_down.load(Ordering::SeqCst) {
            return Box::pin(async { down() });
        }
        self.inner.append(entries)
    }
}

fn broker(store: Arc<Flaky>, target: Arc<TestTarget>, spool: &std::path::Path) -> Broker {
    Broker::new(
        store,
        vec![target],
        RecordSigner::new(broker_key()),
        trust(),
        EngineSettings::default(),
        Arc::new(ManualClock::new(NOW_MS)),
    )
    .with_spool(Spool::open(spool).unwrap())
}

/// A certificate for object `name` (initially 3 replicas).
fn cert(seed: u8, name: &str) -> Cert {
    let mut c = Cert::new(seed);
    c.payload.contract.target = serde_json::json!({"name": name});
    c.fix()
}

#[tokio::test]
async fn a_spooled_outcome_survives_a_restart_and_reaches_the_ledger_once_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let inner =
        Arc::new(SqliteStore::open(&dir.path().join("seb.db"), Default::default()).unwrap());
    let store = Arc::new(Flaky {
        inner: inner.clone(),
        writes_down: AtomicBool::new(false),
        reads_down: AtomicBool::new(false),
    });
    let target = Arc::new(TestTarget::open(&dir.path().join("target.json")).unwrap());
    for o in ["a", "b"] {
        target
            .insecure_direct_write(o, serde_json::json!({"replicas": 3, "image": "nginx:1"}))
            .unwrap();
    }
    let spool_dir = dir.path().join("spool");
    let first = broker(store.clone(), target.clone(), &spool_dir);

    // The normal path: recorded, nothing spooled.
    let done = first.execute(&cert(1, "a").present(), "c").await.unwrap();
    assert_eq!((done.outcome_state, done.outcome_index.is_some()), (OutcomeState::Recorded, true));
    assert!(first.spool().is_empty());

    // The store stops taking writes after the reservation: the mutation happened, the answer
    // says the outcome is spooled (synced), not yet recorded.
    store.writes_down.store(true, Ordering::SeqCst);
    let told = first.execute(&cert(2, "b").present(), "c").await.unwrap();
    assert_eq!(told.outcome.status.as_str(), "applied");
    assert_eq!((told.outcome_state, told.outcome_index), (OutcomeState::Spooled, None));
    assert_eq!(target.mutations().unwrap().len(), 2);

    // Then reads fail too: the refusal names the store (fail_closed), never a replay, and its
    // record is spooled as well.
    store.reads_down.store(true, Ordering::SeqCst);
    let refused = first.execute(&cert(3, "a").present(), "c").await.unwrap_err();
    assert!(
        matches!(refused.failed_check, FailedCheck::Reserve | FailedCheck::Revocation),
        "{refused:?}"
    );
    assert_eq!(refused.decision, Decision::FailClosed);
    assert!(refused.reason.contains("store unavailable"), "{}", refused.reason);
    assert_eq!(first.spool().len(), 2);

    // The replica dies before the store is back; a new process opens the same spool.
    drop(first);
    store.writes_down.store(false, Ordering::SeqCst);
    store.reads_down.store(false, Ordering::SeqCst);
    let second = broker(store.clone(), target.clone(), &spool_dir);
    assert_eq!(second.spool().len(), 2, "the spool survived the process");
    // Crash recovery leaves the execution whose outcome waits in the spool alone.
    assert!(second.recover().await.unwrap().is_empty());
    assert_eq!(second.flush_spool().await, 0);
    assert_eq!(second.flush_spool().await, 0, "a second flush writes nothing");
    assert!(inner.pending().await.unwrap().is_empty(), "every admit has its outcome");

    let ledger = ledger(inner.as_ref()).await;
    let outcomes: Vec<&serde_json::Value> =
        ledger.iter().map(|(_, p)| p).filter(|p| p.get("status").is_some()).collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    let mine: Vec<&&serde_json::Value> =
        outcomes.iter().filter(|p| p["cid"] == told.cid.as_str()).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], told.outcome.id.as_str(), "written with the id the client was given");
    assert_eq!(mine[0]["status"], "applied");
    assert!(
        ledger.iter().any(|(_, p)| p["id"] == refused.record_id.as_str()),
        "the refusal's record reached the ledger"
    );
    // Writing it again is refused by the store: an outcome is never written twice.
    let signed = second.signer().sign_outcome(&told.outcome).unwrap();
    assert!(matches!(
        inner.complete(&told.cid, &told.nonce, signed.entry).await,
        Err(StoreError::AlreadyCompleted { .. })
    ));
}
