#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Two replicas on one store: a checkpoint request that loses the race to a newer checkpoint
//! answers with that newer checkpoint instead of failing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use seb_broker::clock::ManualClock;
use seb_broker::engine::{Broker, EngineSettings};
use seb_broker::records::RecordSigner;
use seb_ledger::checkpoint::Checkpoint;
use seb_store::sqlite::SqliteStore;
use seb_store::{
    EpochCheck, Epochs, Hash, PendingExecution, Reservation, ReserveResult, Revocation, Store,
    StoreFuture, StoredCheckpoint,
};
use seb_target::test_double::TestTarget;

/// The shared store, with "another replica" appending an entry and storing a newer checkpoint
/// just before this replica's checkpoint write lands.
struct RacingStore {
    inner: Arc<SqliteStore>,
    raced: AtomicBool,
}

impl Store for RacingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn epochs(&self) -> StoreFuture<'_, Epochs> {
        self.inner.epochs()
    }
    fn epoch_check<'a>(&'a self, cid: &'a str, agent: &'a str) -> StoreFuture<'a, EpochCheck> {
        self.inner.epoch_check(cid, agent)
    }
    fn bump_policy_epoch(&self, at_ms: u64, record: Option<Vec<u8>>) -> StoreFuture<'_, Epochs> {
        self.inner.bump_policy_epoch(at_ms, record)
    }
    fn revoke(
        &self,
        what: Revocation,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Epochs> {
        self.inner.revoke(what, at_ms, record)
    }
    fn revocations(&self) -> StoreFuture<'_, (Vec<String>, Vec<String>)> {
        self.inner.revocations()
    }
    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> StoreFuture<'a, bool> {
        self.inner.is_reserved(cid, nonce)
    }
    fn reserve(&self, r: Reservation) -> StoreFuture<'_, ReserveResult> {
        self.inner.reserve(r)
    }
    fn mark_dispatched<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        self.inner.mark_dispatched(cid, nonce, at_ms)
    }
    fn complete<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> StoreFuture<'a, u64> {
        self.inner.complete(cid, nonce, outcome_entry)
    }
    fn pending(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        self.inner.pending()
    }
    fn append(&self, entries: Vec<Vec<u8>>) -> StoreFuture<'_, Vec<u64>> {
        self.inner.append(entries)
    }
    fn ledger_size(&self) -> StoreFuture<'_, u64> {
        self.inner.ledger_size()
    }
    fn entries(&self, start: u64, end: u64) -> StoreFuture<'_, Vec<Vec<u8>>> {
        self.inner.entries(start, end)
    }
    fn root(&self, size: u64) -> StoreFuture<'_, Hash> {
        self.inner.root(size)
    }
    fn inclusion_proof(&self, index: u64, size: u64) -> StoreFuture<'_, Vec<Hash>> {
        self.inner.inclusion_proof(index, size)
    }
    fn consistency_proof(&self, old_size: u64, new_size: u64) -> StoreFuture<'_, Vec<Hash>> {
        self.inner.consistency_proof(old_size, new_size)
    }
    fn put_checkpoint(&self, cp: StoredCheckpoint) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if !self.raced.swap(true, Ordering::SeqCst) {
                // The other replica: one more entry, and a checkpoint of it.
                self.inner.append(vec![b"{\"other\":\"replica\"}".to_vec()]).await?;
                let size = self.inner.ledger_size().await?;
                let root = self.inner.root(size).await?;
                let note = Checkpoint { origin: "seb.local/ledger".into(), size, root }
                    .sign("seb.local/ledger", &key(77));
                self.inner.put_checkpoint(StoredCheckpoint { size, note, at_ms: cp.at_ms }).await?;
            }
            self.inner.put_checkpoint(cp).await
        })
    }
    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<StoredCheckpoint>> {
        self.inner.latest_checkpoint()
    }
    fn checkpoints(&self) -> StoreFuture<'_, Vec<StoredCheckpoint>> {
        self.inner.checkpoints()
    }
}

#[tokio::test]
async fn a_checkpoint_that_loses_the_race_answers_with_the_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let inner =
        Arc::new(SqliteStore::open(&dir.path().join("seb.db"), Default::default()).unwrap());
    let store = Arc::new(RacingStore { inner: inner.clone(), raced: AtomicBool::new(false) });
    let target = Arc::new(TestTarget::in_memory());
    target
        .insecure_direct_write("cfg", serde_json::json!({"replicas": 3, "image": "nginx:1"}))
        .unwrap();
    let broker = Broker::new(
        store,
        vec![target.clone()],
        RecordSigner::new(broker_key()),
        trust(),
        EngineSettings::default(),
        Arc::new(ManualClock::new(NOW_MS)),
    );
    broker.execute(&Cert::new(1).present(), "c").await.expect("admitted");
    assert_eq!(inner.ledger_size().await.unwrap(), 2);

    let cp = broker.checkpoint().await.expect("no error when another replica got there first");
    let cp = cp.expect("a checkpoint");
    assert_eq!(cp.size, 3, "the other replica's newer checkpoint, not an error");
    assert_eq!(inner.latest_checkpoint().await.unwrap().unwrap().size, 3);
    // Without a race, the broker signs its own.
    target
        .insecure_direct_write("cfg", serde_json::json!({"replicas": 3, "image": "nginx:1"}))
        .unwrap();
    broker.execute(&Cert::new(2).present(), "c").await.expect("admitted");
    let mine = broker.checkpoint().await.unwrap().unwrap();
    assert_eq!(mine.size, 5);
    assert!(
        Checkpoint::parse_and_verify(&mine.note, "seb.local/ledger", &broker_key().public_key())
            .is_ok()
    );
}
