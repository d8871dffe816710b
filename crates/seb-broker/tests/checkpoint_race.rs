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
use seb_store::{Store, StoreFuture, StoredCheckpoint};
use seb_target::test_double::TestTarget;

/// The shared store, with "another replica" appending an entry and storing a newer checkpoint
/// just before this replica's checkpoint write lands.
struct RacingStore {
    inner: Arc<SqliteStore>,
    raced: AtomicBool,
}

impl seb_store::NetEffectLog for RacingStore {
    seb_store::forward_net_effect_log!(inner);
}

impl Store for RacingStore {
    seb_store::forward_store!(inner: backend, epochs, epoch_check, bump_policy_epoch, revoke,
        revocations, is_reserved, reserve, mark_dispatched, complete, pending, append,
        ledger_size, entries, root, inclusion_proof, consistency_proof, latest_checkpoint,
        checkpoints);
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
