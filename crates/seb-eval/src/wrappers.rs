//! Ablation and fault wrappers. They live only in the evaluation crate: no product crate has
//! an ablation switch.
//!
//! - [`SnapshotObserve`]: a target whose `observe` answers from the observation admission
//!   took (primed by the harness) instead of querying live state: the "without drift query"
//!   ablation. Everything else goes to the real target.
//! - [`NoReservation`]: a store whose reservation (and dispatch mark) is an in-memory set, not
//!   a durable transaction: the "without nonce reservation" ablation. Outcome records are
//!   still appended to the real ledger.
//! - [`Partitioned`]: a store whose epoch reads fail (revocation service unreachable).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Contract, Platform};
use seb_store::{
    EpochCheck, PendingExecution, Reservation, ReserveResult, Store, StoreError, StoreFuture,
};
use seb_target::{
    Execution, Identity, MutationResult, ObserveRequest, OpProfile, Reconciled, Target,
    TargetFuture,
};

fn key_of(target: &serde_json::Value) -> String {
    target.to_string()
}

/// See the module documentation.
pub struct SnapshotObserve {
    inner: Arc<dyn Target>,
    cache: Mutex<HashMap<String, Observation>>,
}

impl std::fmt::Debug for SnapshotObserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotObserve").finish_non_exhaustive()
    }
}

impl SnapshotObserve {
    /// Wrap a target.
    pub fn new(inner: Arc<dyn Target>) -> Self {
        Self { inner, cache: Mutex::new(HashMap::new()) }
    }
    /// Remember admission's observation of `target` for the next execution on it.
    pub fn prime(&self, target: &serde_json::Value, obs: Observation) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key_of(target), obs);
        }
    }
}

impl ScopeCheck for SnapshotObserve {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        self.inner.check_scope(contract)
    }
    fn check_evidence(
        &self,
        contract: &Contract,
        evidence: &seb_core::types::Evidence,
    ) -> Result<(), String> {
        self.inner.check_evidence(contract, evidence)
    }
}

impl Target for SnapshotObserve {
    fn platform(&self) -> Platform {
        self.inner.platform()
    }
    fn profile(&self, op: &str) -> Result<OpProfile, seb_target::TargetError> {
        self.inner.profile(op)
    }
    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        let cached = self.cache.lock().ok().and_then(|mut c| c.remove(&key_of(&req.target)));
        match cached {
            Some(o) => Box::pin(async move { Ok(o) }),
            None => self.inner.observe(req),
        }
    }
    fn mint<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Identity> {
        self.inner.mint(exec)
    }
    fn mutate<'a>(
        &'a self,
        exec: &'a Execution,
        identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        self.inner.mutate(exec, identity)
    }
    fn retire<'a>(&'a self, exec: &'a Execution, identity: Identity) -> TargetFuture<'a, ()> {
        self.inner.retire(exec, identity)
    }
    fn reconcile<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Reconciled> {
        self.inner.reconcile(exec)
    }
}

/// The store methods neither wrapper changes: epochs, revocations, the ledger, checkpoints.
macro_rules! forward_epochs_and_ledger {
    () => {
        seb_store::forward_store!(
            inner: backend, epochs, bump_policy_epoch, revoke, revocations, append, ledger_size,
            entries, root, inclusion_proof, consistency_proof, put_checkpoint, latest_checkpoint,
            checkpoints
        );
    };
}

/// See the module documentation.
pub struct NoReservation {
    inner: Arc<dyn Store>,
    used: Mutex<HashSet<(String, String)>>,
    next: AtomicU64,
}

impl std::fmt::Debug for NoReservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoReservation").finish_non_exhaustive()
    }
}

impl NoReservation {
    /// Wrap a store.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, used: Mutex::new(HashSet::new()), next: AtomicU64::new(1 << 40) }
    }
}

impl seb_store::NetEffectLog for NoReservation {
    seb_store::forward_net_effect_log!(inner);
}

impl Store for NoReservation {
    forward_epochs_and_ledger!();
    seb_store::forward_store!(inner: epoch_check);
    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> StoreFuture<'a, bool> {
        let r = self
            .used
            .lock()
            .map(|u| u.contains(&(cid.to_owned(), nonce.to_owned())))
            .map_err(|_| StoreError::unavailable("poisoned"));
        Box::pin(async move { r })
    }
    fn reserve(&self, r: Reservation) -> StoreFuture<'_, ReserveResult> {
        let fresh = self
            .used
            .lock()
            .map(|mut u| u.insert((r.cid.clone(), r.nonce.clone())))
            .map_err(|_| StoreError::unavailable("poisoned"));
        let idx = self.next.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            Ok(if fresh? {
                ReserveResult::Reserved { admit_index: idx }
            } else {
                ReserveResult::Replay
            })
        })
    }
    fn mark_dispatched<'a>(
        &'a self,
        _cid: &'a str,
        _nonce: &'a str,
        _at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn complete<'a>(
        &'a self,
        _cid: &'a str,
        _nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let v = self.inner.append(vec![outcome_entry]).await?;
            Ok(v.first().copied().unwrap_or(0))
        })
    }
    fn pending(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// See the module documentation.
pub struct Partitioned {
    inner: Arc<dyn Store>,
}

impl std::fmt::Debug for Partitioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitioned").finish_non_exhaustive()
    }
}

impl Partitioned {
    /// Wrap a store.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }
}

impl seb_store::NetEffectLog for Partitioned {
    seb_store::forward_net_effect_log!(inner);
}

impl Store for Partitioned {
    forward_epochs_and_ledger!();
    seb_store::forward_store!(inner: is_reserved, reserve, mark_dispatched, complete, pending);
    fn epoch_check<'a>(&'a self, _cid: &'a str, _agent: &'a str) -> StoreFuture<'a, EpochCheck> {
        Box::pin(async { Err(StoreError::unavailable("revocation service partitioned")) })
    }
}
