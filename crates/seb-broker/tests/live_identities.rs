#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Live execution identities: a platform hook (the Kubernetes admission webhook) must find
//! the execution from the moment its identity exists, and never after it is retired.

mod common;

use std::sync::{Arc, Mutex, OnceLock, Weak};

use common::*;
use seb_broker::clock::ManualClock;
use seb_broker::engine::{Broker, EngineSettings};
use seb_broker::records::RecordSigner;
use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Contract, OutcomeStatus, Platform};
use seb_store::sqlite::SqliteStore;
use seb_target::test_double::TestTarget;
use seb_target::{
    Execution, Identity, MutationResult, ObserveRequest, OpProfile, Reconciled, Target,
    TargetError, TargetFuture,
};
use serde_json::json;

/// The test double, with a predictable identity name and a spy on the broker's live set.
struct Spy {
    inner: TestTarget,
    broker: OnceLock<Weak<Broker>>,
    /// (step, whether the execution was live under the predicted name then)
    seen: Mutex<Vec<(&'static str, bool)>>,
}

impl Spy {
    fn name(exec: &Execution) -> String {
        format!("system:serviceaccount:seb-exec:{}", exec.nonce)
    }
    fn look(&self, step: &'static str, exec: &Execution) {
        let live = self
            .broker
            .get()
            .and_then(Weak::upgrade)
            .and_then(|b| b.live().get(&Self::name(exec)))
            .is_some_and(|e| e.cid == exec.cid && e.nonce == exec.nonce);
        self.seen.lock().unwrap().push((step, live));
    }
}

impl ScopeCheck for Spy {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        self.inner.check_scope(contract)
    }
}

impl Target for Spy {
    fn platform(&self) -> Platform {
        self.inner.platform()
    }
    fn profile(&self, op: &str) -> Result<OpProfile, TargetError> {
        self.inner.profile(op)
    }
    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        self.inner.observe(req)
    }
    fn identity_name(&self, exec: &Execution) -> Option<String> {
        Some(Self::name(exec))
    }
    fn mint<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Identity> {
        self.look("mint", exec);
        self.inner.mint(exec)
    }
    fn mutate<'a>(
        &'a self,
        exec: &'a Execution,
        identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        self.look("mutate", exec);
        self.inner.mutate(exec, identity)
    }
    fn retire<'a>(&'a self, exec: &'a Execution, identity: Identity) -> TargetFuture<'a, ()> {
        self.look("retire", exec);
        self.inner.retire(exec, identity)
    }
    fn reconcile<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Reconciled> {
        self.inner.reconcile(exec)
    }
}

fn spy_env() -> (Arc<Broker>, Arc<Spy>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("seb.db"), Default::default()).unwrap());
    let inner = TestTarget::in_memory();
    inner.insecure_direct_write("cfg", json!({"replicas": 3, "image": "nginx:1"})).unwrap();
    let spy = Arc::new(Spy { inner, broker: OnceLock::new(), seen: Mutex::new(vec![]) });
    let broker = Arc::new(Broker::new(
        store,
        vec![spy.clone()],
        RecordSigner::new(broker_key()),
        trust(),
        EngineSettings::default(),
        Arc::new(ManualClock::new(NOW_MS)),
    ));
    spy.broker.set(Arc::downgrade(&broker)).unwrap();
    (broker, spy, dir)
}

#[tokio::test]
async fn the_execution_is_live_from_before_mint_until_retirement() {
    let (broker, spy, _dir) = spy_env();
    let cert = Cert::new(1);
    let done = broker.execute(&cert.present(), "c").await.expect("admitted");
    assert_eq!(done.outcome.status, OutcomeStatus::Applied);
    assert_eq!(
        *spy.seen.lock().unwrap(),
        vec![("mint", true), ("mutate", true), ("retire", true)],
        "the predicted identity name is live at every step with the platform"
    );
    assert!(broker.live().is_empty(), "nothing stays live after retirement");
}

#[tokio::test]
async fn a_failed_mint_leaves_nothing_live() {
    let (broker, spy, _dir) = spy_env();
    spy.inner.set_fail(&["mint"]);
    let cert = Cert::new(2);
    let done = broker.execute(&cert.present(), "c").await.expect("admitted, then failed");
    assert_eq!(done.outcome.status, OutcomeStatus::Failed);
    assert_eq!(*spy.seen.lock().unwrap(), vec![("mint", true)]);
    assert!(broker.live().is_empty());
    // Nothing mutated.
    assert_eq!(spy.inner.mutations().unwrap().len(), 0);
}
