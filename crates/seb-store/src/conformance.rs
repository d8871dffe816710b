//! The backend-independent conformance suite (feature `conformance`).
//!
//! Every [`Store`] backend runs these cases against a fresh, empty store. Each case is a
//! `pub async fn` taking an `Arc<dyn Store>` that panics with a message naming the broken
//! property. Two ways to run them:
//!
//! - [`conformance_tests!`](crate::conformance_tests) expands to one
//!   `#[tokio::test(flavor = "multi_thread")]` per case, so failures are reported per case
//!   (the calling crate needs `tokio` with the `macros` and `rt-multi-thread` features):
//!
//!   ```text
//!   seb_store::conformance_tests!(|| async {
//!       seb_store::conformance::Fixture::new(MyStore::connect().await.unwrap())
//!   });
//!   ```
//! - [`run_all`] runs every case in sequence, each on a store from the factory.
//!
//! Ledger entries in these cases are arbitrary bytes: a store never parses them.

// A conformance case reports failure by panicking, exactly like a test.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::any::Any;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use seb_ledger::merkle::{MemoryTree, empty_root, leaf_hash, verify_consistency, verify_inclusion};

use crate::admission::{
    Added, AdmissionState, Cas, NewProposal, PolicyLoad, ProposalFilter, ProposalUpdate,
    StoredApproval, StoredSignature,
};
use crate::{Epochs, Reservation, ReserveResult, Revocation, Store, StoreError, StoredCheckpoint};

mod net_effect;
pub use net_effect::{
    net_effect_append_conflicts_when_the_window_changed,
    net_effect_concurrent_appends_have_one_winner,
    net_effect_window_lists_changes_per_agent_and_scope,
};

/// A store under test plus whatever must outlive it (a temporary directory, a database
/// container handle, ...). The store is dropped before the guard.
pub struct Fixture {
    store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("backend", &self.store.backend()).finish()
    }
}

impl Fixture {
    /// A fixture owning just the store.
    pub fn new(store: impl Store) -> Self {
        Self::with_guard(store, ())
    }

    /// A fixture owning the store and a guard dropped after it.
    pub fn with_guard(store: impl Store, guard: impl Any + Send) -> Self {
        Self { store: Arc::new(store), _guard: Box::new(guard) }
    }

    /// A fixture from an already shared store.
    pub fn from_arc(store: Arc<dyn Store>, guard: impl Any + Send) -> Self {
        Self { store, _guard: Box::new(guard) }
    }

    /// The store under test.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }
}

/// A boxed conformance case.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One conformance case: its name and how to run it on a fresh store.
pub type Case = (&'static str, fn(Arc<dyn Store>) -> CaseFuture);

macro_rules! case_list {
    ($($name:ident),+ $(,)?) => {
        /// Every case, in the order [`run_all`] runs them.
        pub const CASES: &[Case] = &[
            $((stringify!($name), |s: Arc<dyn Store>| -> CaseFuture { Box::pin($name(s)) })),+
        ];
    };
}

case_list!(
    fresh_store_is_empty,
    reserve_then_replay_writes_nothing,
    stale_epochs_are_epoch_changed_and_write_nothing,
    revoked_cid_is_refused,
    revoked_agent_is_refused,
    revoke_all_bumps_revocation_epoch,
    bump_policy_epoch_appends_record,
    revocation_committed_first_always_wins,
    revocation_during_reservations_is_linearizable,
    admit_entry_lands_at_returned_index,
    complete_appends_outcome_once,
    complete_unknown_execution_fails,
    pending_lists_admitted_without_outcome,
    concurrent_same_nonce_has_one_winner,
    concurrent_distinct_nonces_get_dense_indices,
    roots_and_proofs_match_memory_tree,
    ledger_reads_refuse_out_of_range,
    checkpoints_round_trip,
    append_is_all_or_nothing_per_call,
    admission_proposal_is_seen_once,
    admission_cas_has_one_winner,
    admission_approval_once_per_approver,
    admission_concurrent_quorum_issues_once,
    admission_signature_once_per_operator,
    admission_overdue_lists_deadlines_and_claims,
    admission_admin_request_once,
    admission_notification_once,
    admission_policy_epoch_follows_digest,
    net_effect_window_lists_changes_per_agent_and_scope,
    net_effect_append_conflicts_when_the_window_changed,
    net_effect_concurrent_appends_have_one_winner,
    approvers_enrol_consumes_the_invitation_once,
    approvers_concurrent_enrolments_have_one_winner,
    approvers_counter_is_compare_and_set,
    approvers_removal_is_recorded,
);

/// Run every case in [`CASES`], each on a fresh store from `factory`.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fixture>,
{
    for (name, case) in CASES {
        let fixture = factory().await;
        eprintln!("conformance: {name} ({})", fixture.store.backend());
        case(fixture.store()).await;
        drop(fixture);
    }
}

/// Expand to one `#[tokio::test]` per conformance case, each on a fresh store from the
/// factory (an expression callable as `factory().await` giving a
/// [`Fixture`](crate::conformance::Fixture)), plus a test that the expansion covers
/// [`CASES`](crate::conformance::CASES). Invoke it inside a module per backend
/// configuration. Needs `tokio` (`macros`, `rt-multi-thread`) in the calling crate.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__conformance_tests!(
            $factory;
            fresh_store_is_empty,
            reserve_then_replay_writes_nothing,
            stale_epochs_are_epoch_changed_and_write_nothing,
            revoked_cid_is_refused,
            revoked_agent_is_refused,
            revoke_all_bumps_revocation_epoch,
            bump_policy_epoch_appends_record,
            revocation_committed_first_always_wins,
            revocation_during_reservations_is_linearizable,
            admit_entry_lands_at_returned_index,
            complete_appends_outcome_once,
            complete_unknown_execution_fails,
            pending_lists_admitted_without_outcome,
            concurrent_same_nonce_has_one_winner,
            concurrent_distinct_nonces_get_dense_indices,
            roots_and_proofs_match_memory_tree,
            ledger_reads_refuse_out_of_range,
            checkpoints_round_trip,
            append_is_all_or_nothing_per_call,
            admission_proposal_is_seen_once,
            admission_cas_has_one_winner,
            admission_approval_once_per_approver,
            admission_concurrent_quorum_issues_once,
            admission_signature_once_per_operator,
            admission_overdue_lists_deadlines_and_claims,
            admission_admin_request_once,
            admission_notification_once,
            admission_policy_epoch_follows_digest,
            net_effect_window_lists_changes_per_agent_and_scope,
            net_effect_append_conflicts_when_the_window_changed,
            net_effect_concurrent_appends_have_one_winner,
            approvers_enrol_consumes_the_invitation_once,
            approvers_concurrent_enrolments_have_one_winner,
            approvers_counter_is_compare_and_set,
            approvers_removal_is_recorded,
        );
    };
}

/// Implementation detail of [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture = ($factory)().await;
                $crate::conformance::$case(fixture.store()).await;
                ::std::mem::drop(fixture);
            }
        )+

        #[test]
        fn conformance_suite_is_complete() {
            let expanded: &[&str] = &[$(stringify!($case)),+];
            let all: ::std::vec::Vec<&str> =
                $crate::conformance::CASES.iter().map(|case| case.0).collect();
            assert_eq!(expanded, all.as_slice(), "conformance_tests! does not expand every case");
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn admit_bytes(cid: &str, nonce: &str) -> Vec<u8> {
    format!("{{\"admit\":{{\"cid\":\"{cid}\",\"nonce\":\"{nonce}\"}}}}").into_bytes()
}

fn intent_bytes(cid: &str, nonce: &str) -> Vec<u8> {
    format!("{{\"intent\":{{\"cid\":\"{cid}\",\"nonce\":\"{nonce}\"}}}}").into_bytes()
}

/// A reservation carrying `epochs`.
fn reservation(cid: &str, nonce: &str, agent: &str, epochs: Epochs, at_ms: u64) -> Reservation {
    Reservation {
        cid: cid.into(),
        nonce: nonce.into(),
        agent: agent.into(),
        policy_epoch: epochs.policy_epoch,
        revocation_epoch: epochs.revocation_epoch,
        admit_entry: admit_bytes(cid, nonce),
        intent: intent_bytes(cid, nonce),
        at_ms,
    }
}

async fn epochs(store: &dyn Store) -> Epochs {
    store.epochs().await.expect("epochs() failed")
}

async fn size(store: &dyn Store) -> u64 {
    store.ledger_size().await.expect("ledger_size() failed")
}

async fn reserve_ok(store: &dyn Store, r: Reservation) -> u64 {
    let what = format!("`{}`/`{}`", r.cid, r.nonce);
    match store.reserve(r).await {
        Ok(ReserveResult::Reserved { admit_index }) => admit_index,
        other => panic!("reserve {what}: expected Reserved, got {other:?}"),
    }
}

async fn entry(store: &dyn Store, index: u64) -> Vec<u8> {
    let mut v = store
        .entries(index, index + 1)
        .await
        .unwrap_or_else(|e| panic!("entries({index}, {}) failed: {e}", index + 1));
    assert_eq!(v.len(), 1, "entries({index}, {}) returned {} entries", index + 1, v.len());
    v.pop().unwrap()
}

/// The whole ledger, checked against the reported size.
async fn all_entries(store: &dyn Store) -> Vec<Vec<u8>> {
    let n = size(store).await;
    let all = store.entries(0, n).await.expect("entries(0, size) failed");
    assert_eq!(all.len() as u64, n, "entries(0, {n}) returned {} entries", all.len());
    all
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// A fresh store: epochs 0/0 at 0 ms, empty ledger with the empty root, nothing reserved,
/// pending, revoked or checkpointed.
pub async fn fresh_store_is_empty(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert!(!s.backend().is_empty(), "backend() is empty");
    assert_eq!(
        epochs(s).await,
        Epochs { policy_epoch: 0, revocation_epoch: 0, updated_at_ms: 0 },
        "fresh epochs"
    );
    let check = s.epoch_check("cid-0", "agent-0").await.unwrap();
    assert!(!check.cid_revoked && !check.agent_revoked, "fresh store reports a revocation");
    assert_eq!(size(s).await, 0, "fresh ledger is not empty");
    assert!(s.entries(0, 0).await.unwrap().is_empty(), "entries(0, 0) of a fresh ledger");
    assert_eq!(s.root(0).await.unwrap(), empty_root(), "root(0) is not SHA-256(\"\")");
    assert!(!s.is_reserved("cid-0", "n-0").await.unwrap(), "fresh store reports a reservation");
    let pre = s.pre_check("cid-0", "n-0", "agent-0").await.unwrap();
    assert_eq!((pre.epoch, pre.reserved), (check, false), "fresh store: pre_check");
    assert!(s.pending().await.unwrap().is_empty(), "fresh store has pending executions");
    let (cids, agents) = s.revocations().await.unwrap();
    assert!(cids.is_empty() && agents.is_empty(), "fresh store has revocations");
    assert_eq!(s.latest_checkpoint().await.unwrap(), None, "fresh store has a checkpoint");
    assert!(s.checkpoints().await.unwrap().is_empty(), "fresh store has checkpoints");
}

/// A second reservation of the same (cid, nonce) is `Replay` and writes nothing, even with a
/// different agent, intent and admit record.
pub async fn reserve_then_replay_writes_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    let idx = reserve_ok(s, reservation("cid-1", "n-1", "agent-1", e, 10)).await;
    assert_eq!(idx, 0, "first admit index");
    assert!(s.is_reserved("cid-1", "n-1").await.unwrap(), "reserved (cid, nonce) not reported");
    let mut again = reservation("cid-1", "n-1", "agent-other", e, 11);
    again.admit_entry = b"a different admit record".to_vec();
    again.intent = b"a different intent".to_vec();
    assert_eq!(s.reserve(again).await.unwrap(), ReserveResult::Replay, "second reservation");
    assert_eq!(size(s).await, 1, "a replay appended to the ledger");
    assert_eq!(entry(s, 0).await, admit_bytes("cid-1", "n-1"), "a replay changed the admit");
    let pending = s.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "a replay added a pending execution");
    assert_eq!(pending[0].intent, intent_bytes("cid-1", "n-1"), "a replay changed the intent");
    // Same nonce under another cid, same cid with another nonce: both independent.
    reserve_ok(s, reservation("cid-2", "n-1", "agent-1", e, 12)).await;
    reserve_ok(s, reservation("cid-1", "n-2", "agent-1", e, 13)).await;
    assert!(!s.is_reserved("cid-3", "n-1").await.unwrap(), "unrelated (cid, nonce) reported");
    // The one-call pre-check says the same as the two calls.
    assert!(s.pre_check("cid-1", "n-1", "agent-1").await.unwrap().reserved, "pre_check replay");
    assert!(!s.pre_check("cid-3", "n-1", "agent-1").await.unwrap().reserved, "pre_check fresh");
}

/// A reservation whose policy or revocation epoch differs from the active one (older or
/// newer) is `EpochChanged { active }` and writes nothing.
pub async fn stale_epochs_are_epoch_changed_and_write_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let old = epochs(s).await;
    let after_policy = s.bump_policy_epoch(100, None).await.unwrap();
    assert_eq!(after_policy.policy_epoch, old.policy_epoch + 1, "policy epoch bump");
    let active = s.revoke(Revocation::All, 200, None).await.unwrap();
    assert_eq!(active.revocation_epoch, old.revocation_epoch + 1, "revocation epoch bump");
    assert_eq!(epochs(s).await, active, "epochs() after the bumps");
    let base = size(s).await;

    let cases = [
        ("stale policy epoch", old.policy_epoch, active.revocation_epoch),
        ("stale revocation epoch", active.policy_epoch, old.revocation_epoch),
        ("future policy epoch", active.policy_epoch + 1, active.revocation_epoch),
        ("future revocation epoch", active.policy_epoch, active.revocation_epoch + 1),
    ];
    for (n, (what, policy, revocation)) in cases.into_iter().enumerate() {
        let nonce = format!("n-{n}");
        let mut r = reservation("cid-e", &nonce, "agent-e", active, 300);
        r.policy_epoch = policy;
        r.revocation_epoch = revocation;
        assert_eq!(
            s.reserve(r).await.unwrap(),
            ReserveResult::EpochChanged { active },
            "{what}: expected EpochChanged with the active epochs"
        );
        assert!(!s.is_reserved("cid-e", &nonce).await.unwrap(), "{what}: nonce was consumed");
    }
    assert_eq!(size(s).await, base, "an EpochChanged reservation appended to the ledger");
    assert!(s.pending().await.unwrap().is_empty(), "an EpochChanged reservation left an intent");
    // With the active epochs the same certificate reserves.
    reserve_ok(s, reservation("cid-e", "n-ok", "agent-e", active, 400)).await;
}

/// After `revoke(Cid)` reservations of that cid are `Revoked` and write nothing; other cids
/// are unaffected; the epochs do not change (except `updated_at_ms`); revoking twice is
/// harmless; the optional record is appended.
pub async fn revoked_cid_is_refused(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    reserve_ok(s, reservation("cid-r", "n-0", "agent-1", e, 10)).await;
    let before = size(s).await;
    let after = s
        .revoke(Revocation::Cid("cid-r".into()), 500, Some(b"revoke cid-r".to_vec()))
        .await
        .unwrap();
    assert_eq!(after.policy_epoch, e.policy_epoch, "a cid revocation changed policy_epoch");
    assert_eq!(
        after.revocation_epoch, e.revocation_epoch,
        "a cid revocation changed revocation_epoch (single revocations are set membership)"
    );
    assert_eq!(after.updated_at_ms, 500, "updated_at_ms after a cid revocation");
    assert_eq!(size(s).await, before + 1, "the revocation record was not appended");
    assert_eq!(entry(s, before).await, b"revoke cid-r", "revocation record bytes");

    let check = s.epoch_check("cid-r", "agent-1").await.unwrap();
    assert!(check.cid_revoked && !check.agent_revoked, "epoch_check after a cid revocation");
    assert_eq!(check.epochs, after, "epoch_check epochs");
    let pre = s.pre_check("cid-r", "n-1", "agent-1").await.unwrap();
    assert_eq!((pre.epoch, pre.reserved), (check, false), "pre_check after a cid revocation");

    let r = s.reserve(reservation("cid-r", "n-1", "agent-1", after, 600)).await.unwrap();
    assert!(matches!(r, ReserveResult::Revoked { .. }), "revoked cid: expected Revoked, got {r:?}");
    assert!(!s.is_reserved("cid-r", "n-1").await.unwrap(), "a revoked cid consumed a nonce");
    assert_eq!(size(s).await, before + 1, "a Revoked reservation appended to the ledger");
    reserve_ok(s, reservation("cid-other", "n-1", "agent-1", after, 700)).await;

    s.revoke(Revocation::Cid("cid-r".into()), 800, None).await.unwrap();
    let (cids, agents) = s.revocations().await.unwrap();
    assert_eq!(cids, vec!["cid-r".to_string()], "revoked cids");
    assert!(agents.is_empty(), "revoked agents after a cid revocation");
}

/// After `revoke(Agent)` every reservation of that agent is `Revoked`, whatever the cid.
pub async fn revoked_agent_is_refused(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    let after = s.revoke(Revocation::Agent("agent-bad".into()), 50, None).await.unwrap();
    assert_eq!(
        (after.policy_epoch, after.revocation_epoch),
        (e.policy_epoch, e.revocation_epoch),
        "an agent revocation changed an epoch"
    );
    assert_eq!(size(s).await, 0, "a revocation without record appended to the ledger");
    for n in 0..3 {
        let cid = format!("cid-{n}");
        let r = s.reserve(reservation(&cid, "n", "agent-bad", after, 60)).await.unwrap();
        assert!(matches!(r, ReserveResult::Revoked { .. }), "revoked agent: got {r:?}");
        assert!(!s.is_reserved(&cid, "n").await.unwrap(), "a revoked agent consumed a nonce");
    }
    assert!(s.epoch_check("cid-0", "agent-bad").await.unwrap().agent_revoked, "epoch_check");
    assert!(s.pre_check("cid-0", "n", "agent-bad").await.unwrap().epoch.agent_revoked, "pre_check");
    assert_eq!(size(s).await, 0, "Revoked reservations appended to the ledger");
    reserve_ok(s, reservation("cid-0", "n", "agent-good", after, 70)).await;
    let (cids, agents) = s.revocations().await.unwrap();
    assert!(cids.is_empty(), "revoked cids after an agent revocation");
    assert_eq!(agents, vec!["agent-bad".to_string()], "revoked agents");
}

/// `revoke(All)` bumps `revocation_epoch`: reservations carrying the old one are
/// `EpochChanged`, those carrying the new one succeed.
pub async fn revoke_all_bumps_revocation_epoch(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    let after = s.revoke(Revocation::All, 1_000, Some(b"revoke all".to_vec())).await.unwrap();
    assert_eq!(
        after,
        Epochs {
            policy_epoch: e.policy_epoch,
            revocation_epoch: e.revocation_epoch + 1,
            updated_at_ms: 1_000
        },
        "epochs after revoke(All)"
    );
    assert_eq!(entry(s, 0).await, b"revoke all", "revoke(All) record");
    let r = s.reserve(reservation("cid-a", "n", "agent", e, 1_001)).await.unwrap();
    assert_eq!(r, ReserveResult::EpochChanged { active: after }, "old revocation epoch");
    assert_eq!(size(s).await, 1, "EpochChanged appended to the ledger");
    let idx = reserve_ok(s, reservation("cid-a", "n", "agent", after, 1_002)).await;
    assert_eq!(idx, 1, "admit index after the revocation record");
}

/// `bump_policy_epoch` increments `policy_epoch`, sets `updated_at_ms`, and appends its
/// record in the same transaction when given.
pub async fn bump_policy_epoch_appends_record(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e1 = s.bump_policy_epoch(10, Some(b"policy v1".to_vec())).await.unwrap();
    assert_eq!(e1, Epochs { policy_epoch: 1, revocation_epoch: 0, updated_at_ms: 10 }, "bump 1");
    let e2 = s.bump_policy_epoch(20, None).await.unwrap();
    assert_eq!(e2, Epochs { policy_epoch: 2, revocation_epoch: 0, updated_at_ms: 20 }, "bump 2");
    assert_eq!(epochs(s).await, e2, "epochs() after two bumps");
    assert_eq!(all_entries(s).await, vec![b"policy v1".to_vec()], "policy records");
    let r = s.reserve(reservation("cid", "n", "agent", e1, 30)).await.unwrap();
    assert_eq!(r, ReserveResult::EpochChanged { active: e2 }, "reservation with policy epoch 1");
    reserve_ok(s, reservation("cid", "n", "agent", e2, 40)).await;
}

/// Sequentially: a revocation whose call has returned is seen by every reservation
/// submitted afterwards (zero window), for cids, agents and `All`.
pub async fn revocation_committed_first_always_wins(store: Arc<dyn Store>) {
    let s = store.as_ref();
    for i in 0..20u64 {
        let e = epochs(s).await;
        let cid = format!("cid-{i}");
        let agent = format!("agent-{i}");
        reserve_ok(s, reservation(&cid, "a", &agent, e, i)).await;
        s.revoke(Revocation::Cid(cid.clone()), i, None).await.unwrap();
        let r = s.reserve(reservation(&cid, "b", &agent, e, i)).await.unwrap();
        assert!(matches!(r, ReserveResult::Revoked { .. }), "round {i}: cid revoked, got {r:?}");

        let cid2 = format!("cid-{i}-2");
        reserve_ok(s, reservation(&cid2, "a", &agent, e, i)).await;
        s.revoke(Revocation::Agent(agent.clone()), i, None).await.unwrap();
        let r = s.reserve(reservation(&cid2, "b", &agent, e, i)).await.unwrap();
        assert!(matches!(r, ReserveResult::Revoked { .. }), "round {i}: agent revoked, got {r:?}");

        let cid3 = format!("cid-{i}-3");
        let agent3 = format!("agent-{i}-3");
        reserve_ok(s, reservation(&cid3, "a", &agent3, e, i)).await;
        let active = s.revoke(Revocation::All, i, None).await.unwrap();
        let r = s.reserve(reservation(&cid3, "b", &agent3, e, i)).await.unwrap();
        assert_eq!(r, ReserveResult::EpochChanged { active }, "round {i}: revoke(All)");
    }
}

/// Concurrently: reservations race a revocation of their cid. Every reservation submitted
/// after the revocation returned is `Revoked`, and no `Reserved` admit record lies after the
/// revocation record in the ledger (the ledger order is the commit order).
pub async fn revocation_during_reservations_is_linearizable(store: Arc<dyn Store>) {
    let e = epochs(store.as_ref()).await;
    let revoked = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let (task_store, task_revoked) = (Arc::clone(&store), Arc::clone(&revoked));
        tasks.spawn(async move {
            if i % 4 == 0 {
                tokio::task::yield_now().await;
            }
            let after_revocation = task_revoked.load(Ordering::SeqCst);
            let r =
                task_store.reserve(reservation("cid-x", &format!("n-{i}"), "agent", e, i)).await;
            (i, after_revocation, r.expect("reserve failed"))
        });
        if i == 60 {
            store
                .revoke(Revocation::Cid("cid-x".into()), 1, Some(b"revoke cid-x".to_vec()))
                .await
                .expect("revoke failed");
            revoked.store(true, Ordering::SeqCst);
        }
    }
    let all = all_entries(store.as_ref()).await;
    let record_at = all
        .iter()
        .position(|e| e.as_slice() == b"revoke cid-x")
        .expect("the revocation record is not in the ledger") as u64;
    while let Some(joined) = tasks.join_next().await {
        let (i, after_revocation, result) = joined.expect("task panicked");
        match result {
            ReserveResult::Reserved { admit_index } => {
                assert!(!after_revocation, "reservation {i} submitted after the revocation won");
                assert!(
                    admit_index < record_at,
                    "reservation {i} admitted at {admit_index}, after the revocation at {record_at}"
                );
            }
            ReserveResult::Revoked { .. } => {}
            other => panic!("reservation {i}: unexpected {other:?}"),
        }
    }
}

/// The admit record is at the returned index with exactly the given bytes; the intent and
/// admission time are kept for recovery.
pub async fn admit_entry_lands_at_returned_index(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    s.append(vec![b"before".to_vec(), b"".to_vec()]).await.unwrap();
    let mut r = reservation("cid", "n", "agent", e, 4_242);
    r.admit_entry = vec![0, 255, 1, 254, b'\n', 0];
    r.intent = vec![9; 3];
    let idx = reserve_ok(s, r).await;
    assert_eq!(idx, 2, "admit index after two appended entries");
    assert_eq!(entry(s, 2).await, vec![0, 255, 1, 254, b'\n', 0], "admit record bytes");
    assert_eq!(entry(s, 1).await, Vec::<u8>::new(), "an empty entry is stored as empty");
    let pending = s.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "pending after one reservation");
    assert_eq!(pending[0].cid, "cid", "pending cid");
    assert_eq!(pending[0].nonce, "n", "pending nonce");
    assert_eq!(pending[0].intent, vec![9; 3], "pending intent");
    assert_eq!(pending[0].admitted_at_ms, 4_242, "pending admitted_at_ms");
    assert!(!pending[0].dispatched, "pending dispatched before mark_dispatched");
    let root = s.root(3).await.unwrap();
    assert_eq!(
        root,
        MemoryTree::from_entries([
            b"before".as_slice(),
            b"".as_slice(),
            [0u8, 255, 1, 254, b'\n', 0].as_slice()
        ])
        .root(),
        "root after the admit"
    );
}

/// `complete` appends the outcome and returns its index; a second `complete` fails with
/// `AlreadyCompleted` and appends nothing.
pub async fn complete_appends_outcome_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    let admit = reserve_ok(s, reservation("cid", "n", "agent", e, 1)).await;
    s.mark_dispatched("cid", "n", 2).await.unwrap();
    let out = s.complete("cid", "n", b"outcome 1".to_vec()).await.unwrap();
    assert_eq!(out, admit + 1, "outcome index");
    assert_eq!(entry(s, out).await, b"outcome 1", "outcome bytes");
    match s.complete("cid", "n", b"outcome 2".to_vec()).await {
        Err(StoreError::AlreadyCompleted { cid, nonce }) => {
            assert_eq!((cid.as_str(), nonce.as_str()), ("cid", "n"), "AlreadyCompleted names");
        }
        other => panic!("second complete: expected AlreadyCompleted, got {other:?}"),
    }
    assert_eq!(size(s).await, out + 1, "a failed complete appended to the ledger");
    assert!(s.pending().await.unwrap().is_empty(), "a completed execution is still pending");
    assert!(s.is_reserved("cid", "n").await.unwrap(), "completion released the nonce");
    let r = s.reserve(reservation("cid", "n", "agent", e, 3)).await.unwrap();
    assert_eq!(r, ReserveResult::Replay, "a completed (cid, nonce) can be reserved again");
}

/// `complete` and `mark_dispatched` of an unknown execution fail and write nothing.
pub async fn complete_unknown_execution_fails(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    reserve_ok(s, reservation("cid", "n", "agent", e, 1)).await;
    for (cid, nonce) in [("cid", "other"), ("other", "n"), ("nobody", "nothing")] {
        match s.complete(cid, nonce, b"outcome".to_vec()).await {
            Err(StoreError::Invalid { .. }) => {}
            other => {
                panic!("complete of unknown `{cid}`/`{nonce}`: expected Invalid, got {other:?}")
            }
        }
        match s.mark_dispatched(cid, nonce, 5).await {
            Err(StoreError::Invalid { .. }) => {}
            other => panic!("mark_dispatched of unknown `{cid}`/`{nonce}`: got {other:?}"),
        }
        assert!(!s.is_reserved(cid, nonce).await.unwrap(), "complete reserved `{cid}`/`{nonce}`");
    }
    assert_eq!(size(s).await, 1, "a failed complete appended to the ledger");
}

/// `pending` lists admitted executions without an outcome, oldest first, with their
/// dispatched flag; `in_flight_keys` and `in_flight_execution` agree with it (a completed or
/// unknown execution is not in flight); a completed execution cannot be marked dispatched.
pub async fn pending_lists_admitted_without_outcome(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = epochs(s).await;
    for (n, nonce) in ["a", "b", "c", "d"].into_iter().enumerate() {
        reserve_ok(s, reservation("cid", nonce, "agent", e, 100 + n as u64)).await;
    }
    s.mark_dispatched("cid", "b", 200).await.unwrap();
    s.mark_dispatched("cid", "b", 201).await.unwrap(); // idempotent
    s.mark_dispatched("cid", "d", 202).await.unwrap();
    s.complete("cid", "a", b"outcome a".to_vec()).await.unwrap();
    s.complete("cid", "d", b"outcome d".to_vec()).await.unwrap();
    let pending = s.pending().await.unwrap();
    let seen: Vec<(&str, bool, u64)> =
        pending.iter().map(|p| (p.nonce.as_str(), p.dispatched, p.admitted_at_ms)).collect();
    assert_eq!(seen, vec![("b", true, 101), ("c", false, 102)], "pending (nonce, dispatched, at)");
    assert_eq!(pending[1].intent, intent_bytes("cid", "c"), "pending intent");
    let key = |admit_index: u64, nonce: &str| crate::InFlightKey {
        admit_index,
        cid: "cid".to_owned(),
        nonce: nonce.to_owned(),
    };
    assert_eq!(s.in_flight_keys(None).await.unwrap(), [key(1, "b"), key(2, "c")], "all keys");
    assert_eq!(s.in_flight_keys(Some(0)).await.unwrap(), [key(1, "b"), key(2, "c")], "above 0");
    assert_eq!(s.in_flight_keys(Some(1)).await.unwrap(), [key(2, "c")], "above 1");
    assert_eq!(s.in_flight_keys(Some(2)).await.unwrap(), [], "above 2");
    assert_eq!(s.in_flight_keys(Some(9)).await.unwrap(), [], "above the ledger");
    for p in &pending {
        let one = s.in_flight_execution(&p.cid, &p.nonce).await.unwrap();
        assert_eq!(one.as_ref(), Some(p), "in_flight_execution of `{}`", p.nonce);
    }
    for (cid, nonce) in [("cid", "a"), ("cid", "d"), ("cid", "zz"), ("other", "b")] {
        let none = s.in_flight_execution(cid, nonce).await.unwrap();
        assert_eq!(none, None, "`{cid}`/`{nonce}` is completed or unknown, not in flight");
    }
    assert!(
        s.mark_dispatched("cid", "a", 300).await.is_err(),
        "mark_dispatched of a completed execution succeeded"
    );
    assert_eq!(size(s).await, 6, "ledger: four admits and two outcomes");
}

/// 64 concurrent reservations of one (cid, nonce): exactly one `Reserved`, 63 `Replay`, one
/// admit record in the ledger (the winner's).
pub async fn concurrent_same_nonce_has_one_winner(store: Arc<dyn Store>) {
    let e = epochs(store.as_ref()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u64 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut r = reservation("cid", "same", &format!("agent-{i}"), e, i);
            r.admit_entry = format!("admit by task {i}").into_bytes();
            (i, store.reserve(r).await.expect("reserve failed"))
        });
    }
    let (mut winners, mut replays) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task panicked") {
            (i, ReserveResult::Reserved { admit_index }) => winners.push((i, admit_index)),
            (_, ReserveResult::Replay) => replays += 1,
            (i, other) => panic!("task {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners of one (cid, nonce): {winners:?}");
    assert_eq!(replays, 63, "replays");
    let (winner, index) = winners[0];
    assert_eq!(index, 0, "the winner's admit index");
    assert_eq!(
        all_entries(store.as_ref()).await,
        vec![format!("admit by task {winner}").into_bytes()],
        "the ledger holds exactly the winner's admit record"
    );
    assert_eq!(store.pending().await.unwrap().len(), 1, "pending after the race");
}

/// 500 concurrent reservations of distinct nonces: all `Reserved`, with distinct dense
/// indices `0..500`, each holding its own admit record.
pub async fn concurrent_distinct_nonces_get_dense_indices(store: Arc<dyn Store>) {
    let e = epochs(store.as_ref()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500u64 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let nonce = format!("n-{i}");
            let r = store.reserve(reservation("cid", &nonce, "agent", e, i)).await;
            (nonce, r.expect("reserve failed"))
        });
    }
    let mut by_index = std::collections::BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (nonce, result) = joined.expect("task panicked");
        let ReserveResult::Reserved { admit_index } = result else {
            panic!("reservation of `{nonce}`: expected Reserved, got {result:?}");
        };
        assert!(by_index.insert(admit_index, nonce).is_none(), "index {admit_index} given twice");
    }
    let indices: Vec<u64> = by_index.keys().copied().collect();
    assert_eq!(indices, (0..500).collect::<Vec<_>>(), "admit indices are not dense from 0");
    let all = all_entries(store.as_ref()).await;
    assert_eq!(all.len(), 500, "ledger size after 500 reservations");
    for (index, nonce) in &by_index {
        assert_eq!(all[*index as usize], admit_bytes("cid", nonce), "entry {index}");
    }
    assert_eq!(store.pending().await.unwrap().len(), 500, "pending after 500 reservations");
}

/// Roots of every size, inclusion proofs of every leaf in every tree and consistency proofs
/// between every pair of sizes equal those of a `MemoryTree` over the same entries, and
/// verify.
pub async fn roots_and_proofs_match_memory_tree(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut e = epochs(s).await;
    // A mix of every kind of append.
    for i in 0..37u64 {
        match i % 6 {
            0 => {
                s.append(vec![format!("record {i}").into_bytes()]).await.unwrap();
            }
            1 => {
                reserve_ok(s, reservation("cid", &format!("n-{i}"), "agent", e, i)).await;
            }
            2 => {
                s.complete("cid", &format!("n-{}", i - 1), format!("outcome {i}").into_bytes())
                    .await
                    .unwrap();
            }
            3 => {
                s.append(vec![vec![i as u8; i as usize], Vec::new()]).await.unwrap();
            }
            4 => {
                e = s.bump_policy_epoch(i, Some(format!("policy {i}").into_bytes())).await.unwrap();
            }
            _ => {
                s.revoke(Revocation::Cid(format!("c{i}")), i, Some(vec![b'r'; 40])).await.unwrap();
            }
        }
    }
    let all = all_entries(s).await;
    let n = all.len() as u64;
    assert!(n >= 37, "ledger holds {n} entries");
    let tree = MemoryTree::from_entries(&all);
    let roots: Vec<_> = {
        let mut v = Vec::new();
        for m in 0..=n {
            let root = s.root(m).await.unwrap_or_else(|e| panic!("root({m}) failed: {e}"));
            assert_eq!(root, tree.root_at(m).unwrap(), "root({m}) differs from MemoryTree");
            v.push(root);
        }
        v
    };
    for m in 1..=n {
        for i in 0..m {
            let proof = s.inclusion_proof(i, m).await.unwrap();
            assert_eq!(proof, tree.inclusion_proof(i, m).unwrap(), "inclusion_proof({i}, {m})");
            verify_inclusion(&leaf_hash(&all[i as usize]), i, m, &proof, &roots[m as usize])
                .unwrap_or_else(|e| panic!("inclusion_proof({i}, {m}) does not verify: {e}"));
        }
        for old in 1..=m {
            let proof = s.consistency_proof(old, m).await.unwrap();
            assert_eq!(
                proof,
                tree.consistency_proof(old, m).unwrap(),
                "consistency_proof({old}, {m})"
            );
            verify_consistency(old, m, &roots[old as usize], &roots[m as usize], &proof)
                .unwrap_or_else(|e| panic!("consistency_proof({old}, {m}) does not verify: {e}"));
        }
    }
}

/// Ranges, sizes and indices outside the ledger are errors, not empty answers or panics.
pub async fn ledger_reads_refuse_out_of_range(store: Arc<dyn Store>) {
    let s = store.as_ref();
    s.append(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]).await.unwrap();
    assert!(s.entries(2, 1).await.is_err(), "entries(2, 1) succeeded");
    assert!(s.entries(0, 4).await.is_err(), "entries(0, 4) beyond the ledger succeeded");
    assert!(s.entries(5, 9).await.is_err(), "entries(5, 9) beyond the ledger succeeded");
    assert_eq!(s.entries(1, 3).await.unwrap(), vec![b"b".to_vec(), b"c".to_vec()], "entries(1, 3)");
    assert!(s.entries(3, 3).await.unwrap().is_empty(), "entries(3, 3)");
    assert!(s.root(4).await.is_err(), "root(4) of a 3-entry ledger succeeded");
    assert!(s.inclusion_proof(3, 3).await.is_err(), "inclusion_proof(3, 3) succeeded");
    assert!(s.inclusion_proof(0, 4).await.is_err(), "inclusion_proof(0, 4) succeeded");
    assert!(s.inclusion_proof(0, 0).await.is_err(), "inclusion_proof(0, 0) succeeded");
    assert!(s.consistency_proof(3, 2).await.is_err(), "consistency_proof(3, 2) succeeded");
    assert!(s.consistency_proof(1, 4).await.is_err(), "consistency_proof(1, 4) succeeded");
    assert!(s.consistency_proof(0, 3).await.is_err(), "consistency_proof(0, 3) succeeded");
    assert!(s.consistency_proof(3, 3).await.unwrap().is_empty(), "consistency_proof(3, 3)");
    assert!(s.root(u64::MAX).await.is_err(), "root(u64::MAX) succeeded");
    assert!(s.entries(0, u64::MAX).await.is_err(), "entries(0, u64::MAX) succeeded");
}

/// Checkpoints round trip in order; `latest_checkpoint` is the newest; a checkpoint beyond
/// the ledger or behind the newest one is refused and not stored.
pub async fn checkpoints_round_trip(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let cp = |size: u64, at_ms: u64| StoredCheckpoint {
        size,
        note: format!("seb.example/log\n{size}\nroot{size}=\n\n\u{2014} seb sig{at_ms}\n"),
        at_ms,
    };
    s.put_checkpoint(cp(0, 1)).await.unwrap();
    assert_eq!(s.latest_checkpoint().await.unwrap(), Some(cp(0, 1)), "latest after one");
    s.append(vec![b"x".to_vec(), b"y".to_vec(), b"z".to_vec()]).await.unwrap();
    s.put_checkpoint(cp(2, 2)).await.unwrap();
    s.put_checkpoint(cp(3, 3)).await.unwrap();
    s.put_checkpoint(cp(3, 4)).await.unwrap(); // re-signed at the same size
    assert_eq!(s.latest_checkpoint().await.unwrap(), Some(cp(3, 4)), "latest checkpoint");
    assert!(s.put_checkpoint(cp(4, 5)).await.is_err(), "a checkpoint beyond the ledger");
    assert!(s.put_checkpoint(cp(1, 6)).await.is_err(), "a checkpoint behind the newest");
    assert_eq!(
        s.checkpoints().await.unwrap(),
        vec![cp(0, 1), cp(2, 2), cp(3, 3), cp(3, 4)],
        "every checkpoint, oldest first"
    );
    assert_eq!(s.latest_checkpoint().await.unwrap(), Some(cp(3, 4)), "latest after refusals");
}

/// `append` gives each call a contiguous run of indices (calls do not interleave), in the
/// order given; an empty call appends nothing.
pub async fn append_is_all_or_nothing_per_call(store: Arc<dyn Store>) {
    assert!(store.append(Vec::new()).await.unwrap().is_empty(), "empty append");
    assert_eq!(size(store.as_ref()).await, 0, "an empty append wrote");
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20u64 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let batch: Vec<Vec<u8>> = (0..5).map(|k| format!("t{t} e{k}").into_bytes()).collect();
            (t, store.append(batch).await.expect("append failed"))
        });
    }
    let mut seen = BTreeSet::new();
    let mut runs = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (t, indices) = joined.expect("task panicked");
        assert_eq!(indices.len(), 5, "call {t} got {} indices", indices.len());
        for w in indices.windows(2) {
            assert_eq!(w[1], w[0] + 1, "call {t} got non-contiguous indices {indices:?}");
        }
        for i in &indices {
            assert!(seen.insert(*i), "index {i} given twice");
        }
        runs.push((t, indices));
    }
    let all = all_entries(store.as_ref()).await;
    assert_eq!(all.len(), 100, "ledger size after 20 appends of 5");
    for (t, indices) in runs {
        for (k, i) in indices.iter().enumerate() {
            assert_eq!(all[*i as usize], format!("t{t} e{k}").into_bytes(), "entry {i}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Admission state (section 5.3)
// ---------------------------------------------------------------------------------------------

fn adm(store: &dyn Store) -> &dyn AdmissionState {
    store.admission().expect("this backend keeps no admission state (Store::admission is None)")
}

fn new_proposal(id: &str, status: &str, deadline_ms: Option<u64>) -> NewProposal {
    NewProposal {
        proposal_id: id.into(),
        agent: "agent-a".into(),
        status: status.into(),
        received_at_ms: 1_000,
        deadline_ms,
        claim_until_ms: None,
        body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
    }
}

fn update(id: &str, version: u64, status: &str, record: Option<&str>) -> ProposalUpdate {
    ProposalUpdate {
        proposal_id: id.into(),
        expected_version: version,
        status: status.into(),
        deadline_ms: None,
        claim_until_ms: None,
        body: format!("{{\"id\":\"{id}\",\"status\":\"{status}\"}}").into_bytes(),
        record: record.map(|r| r.as_bytes().to_vec()),
    }
}

fn approval(approver: &str, at_ms: u64) -> StoredApproval {
    StoredApproval { approver: approver.into(), body: approver.as_bytes().to_vec(), at_ms }
}

/// A proposal id is stored once, ever: a second insert (a replayed signed proposal, after a
/// restart or at another replica) changes nothing; the stored row reads back as written.
pub async fn admission_proposal_is_seen_once(store: Arc<dyn Store>) {
    let a = adm(store.as_ref());
    assert!(a.proposal("p1").await.unwrap().is_none(), "unknown proposal found");
    assert!(a.insert_proposal(new_proposal("p1", "evaluating", Some(9))).await.unwrap());
    let mut again = new_proposal("p1", "pending", None);
    again.body = b"replayed".to_vec();
    assert!(!a.insert_proposal(again).await.unwrap(), "a seen proposal id was stored again");
    let p = a.proposal("p1").await.unwrap().expect("stored proposal");
    assert_eq!((p.status.as_str(), p.version, p.deadline_ms), ("evaluating", 0, Some(9)));
    assert_eq!(p.body, b"{\"id\":\"p1\"}".to_vec(), "the replay overwrote the body");
    // Even after it is decided, the id stays taken.
    let Cas::Done { version, .. } =
        a.update_proposal(update("p1", 0, "denied", None)).await.unwrap()
    else {
        panic!("update of the version just read was stale");
    };
    assert_eq!(version, 1);
    assert!(!a.insert_proposal(new_proposal("p1", "evaluating", None)).await.unwrap());
    assert_eq!(size(store.as_ref()).await, 0, "inserting proposals wrote ledger entries");
}

/// Two replicas racing to change one proposal from the same version: exactly one wins and
/// exactly one record is appended.
pub async fn admission_cas_has_one_winner(store: Arc<dyn Store>) {
    adm(store.as_ref()).insert_proposal(new_proposal("p", "pending", None)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let u = update("p", 0, "certified", Some(&format!("issue by {t}")));
            adm(store.as_ref()).update_proposal(u).await.expect("update failed")
        });
    }
    let mut won = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("task panicked") {
            Cas::Done { version: 1, record_index: Some(0) } => won += 1,
            Cas::Stale => {}
            other => panic!("unexpected compare-and-set answer {other:?}"),
        }
    }
    assert_eq!(won, 1, "{won} replicas changed the same version");
    assert_eq!(size(store.as_ref()).await, 1, "records of losing updates were appended");
    let p = adm(store.as_ref()).proposal("p").await.unwrap().unwrap();
    assert_eq!((p.status.as_str(), p.version), ("certified", 1));
    assert_eq!(
        adm(store.as_ref()).update_proposal(update("nope", 0, "denied", Some("x"))).await.unwrap(),
        Cas::Stale,
        "an unknown proposal was updated"
    );
    assert_eq!(size(store.as_ref()).await, 1, "the record of a failed update was appended");
}

/// One decision per approver and proposal; only while the proposal has the expected
/// status; each approval appends its record and bumps the version (a stale compare-and-set
/// made before it fails).
pub async fn admission_approval_once_per_approver(store: Arc<dyn Store>) {
    let a = adm(store.as_ref());
    a.insert_proposal(new_proposal("p", "pending", None)).await.unwrap();
    let added = a
        .add_approval("p".into(), "pending".into(), approval("alice", 5), Some(b"rec-a".to_vec()))
        .await
        .unwrap();
    assert_eq!(added, Added::Added { version: 1 });
    let dup = a
        .add_approval("p".into(), "pending".into(), approval("alice", 6), Some(b"rec-a2".to_vec()))
        .await
        .unwrap();
    assert_eq!(dup, Added::Duplicate, "a second decision by one approver");
    let wrong = a.add_approval("p".into(), "issuing".into(), approval("bob", 7), None).await;
    assert_eq!(wrong.unwrap(), Added::WrongStatus { status: Some("pending".into()) });
    let unknown = a.add_approval("q".into(), "pending".into(), approval("bob", 7), None).await;
    assert_eq!(unknown.unwrap(), Added::WrongStatus { status: None });
    assert_eq!(
        a.update_proposal(update("p", 0, "issuing", None)).await.unwrap(),
        Cas::Stale,
        "a claim made before the approval arrived succeeded"
    );
    a.add_approval("p".into(), "pending".into(), approval("bob", 8), Some(b"rec-b".to_vec()))
        .await
        .unwrap();
    let p = a.proposal("p").await.unwrap().unwrap();
    assert_eq!(p.version, 2);
    assert_eq!(p.approvals, vec![approval("alice", 5), approval("bob", 8)], "stored approvals");
    assert_eq!(all_entries(store.as_ref()).await, vec![b"rec-a".to_vec(), b"rec-b".to_vec()]);
}

/// Approvals completing a quorum arrive at once; each approver then tries to claim the
/// issuance with the version it read after its own approval: exactly one claim wins.
pub async fn admission_concurrent_quorum_issues_once(store: Arc<dyn Store>) {
    adm(store.as_ref()).insert_proposal(new_proposal("p", "pending", None)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..6 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let a = adm(store.as_ref());
            let name = format!("approver-{t}");
            let added = a
                .add_approval("p".into(), "pending".into(), approval(&name, t), None)
                .await
                .unwrap();
            assert!(matches!(added, Added::Added { .. } | Added::WrongStatus { .. }), "{added:?}");
            // Read, and claim while the quorum (3) is met, until someone has claimed.
            loop {
                let p = a.proposal("p").await.unwrap().unwrap();
                if p.status != "pending" || p.approvals.len() < 3 {
                    return false;
                }
                let u = update("p", p.version, "certified", Some(&format!("issue by {t}")));
                match a.update_proposal(u).await.unwrap() {
                    Cas::Done { .. } => return true,
                    Cas::Stale => continue,
                }
            }
        });
    }
    let mut issued = 0;
    while let Some(r) = tasks.join_next().await {
        issued += usize::from(r.expect("task panicked"));
    }
    assert_eq!(issued, 1, "{issued} certificates for one proposal");
    assert_eq!(size(store.as_ref()).await, 1, "one issue record");
}

/// One signature per operator and draft; another draft (cid) is a new set.
pub async fn admission_signature_once_per_operator(store: Arc<dyn Store>) {
    let a = adm(store.as_ref());
    a.insert_proposal(new_proposal("p", "pending", None)).await.unwrap();
    let sig = |cid: &str, op: &str| StoredSignature {
        cid: cid.into(),
        operator: op.into(),
        body: op.as_bytes().to_vec(),
        at_ms: 3,
    };
    let first = a.add_signature("p".into(), "pending".into(), sig("c1", "op1"), None).await;
    assert_eq!(first.unwrap(), Added::Added { version: 1 });
    let dup = a.add_signature("p".into(), "pending".into(), sig("c1", "op1"), None).await;
    assert_eq!(dup.unwrap(), Added::Duplicate, "one operator signed one draft twice");
    let other = a.add_signature("p".into(), "pending".into(), sig("c2", "op1"), None).await;
    assert_eq!(other.unwrap(), Added::Added { version: 2 }, "a new draft starts a new set");
    let p = a.proposal("p").await.unwrap().unwrap();
    assert_eq!(p.signatures, vec![sig("c1", "op1"), sig("c2", "op1")]);
}

/// `overdue` lists proposals of one status whose deadline or claim has passed.
pub async fn admission_overdue_lists_deadlines_and_claims(store: Arc<dyn Store>) {
    let a = adm(store.as_ref());
    a.insert_proposal(new_proposal("late", "pending", Some(100))).await.unwrap();
    a.insert_proposal(new_proposal("later", "pending", Some(500))).await.unwrap();
    a.insert_proposal(new_proposal("none", "pending", None)).await.unwrap();
    let mut claimed = new_proposal("claimed", "issuing", None);
    claimed.claim_until_ms = Some(200);
    a.insert_proposal(claimed).await.unwrap();
    assert_eq!(a.overdue("pending", 300).await.unwrap(), vec!["late".to_owned()]);
    assert_eq!(a.overdue("issuing", 300).await.unwrap(), vec!["claimed".to_owned()]);
    assert!(a.overdue("issuing", 150).await.unwrap().is_empty());
    let pending = a
        .proposals(ProposalFilter { status: Some("pending".into()), ..Default::default() })
        .await
        .unwrap();
    let ids: Vec<&str> = pending.iter().map(|p| p.proposal_id.as_str()).collect();
    assert_eq!(ids, ["late", "later", "none"], "pending proposals, oldest first then by id");
    let all = a.proposals(ProposalFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    let one = a.proposals(ProposalFilter { limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!(one.len(), 1, "limit");
}

/// An admin request id is accepted once; ids older than the horizon are forgotten.
pub async fn admission_admin_request_once(store: Arc<dyn Store>) {
    let a = adm(store.as_ref());
    assert!(a.admin_request_once("r1", 1_000, 0).await.unwrap());
    assert!(!a.admin_request_once("r1", 1_000, 0).await.unwrap(), "a replayed admin request");
    assert!(a.admin_request_once("r2", 5_000, 2_000).await.unwrap());
    assert!(a.admin_request_once("r1", 5_000, 2_000).await.unwrap(), "r1 was not forgotten");
}

/// A notification key is claimed by exactly one of many concurrent callers, once.
pub async fn admission_notification_once(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { adm(store.as_ref()).notification_once("p:pending", 5).await });
    }
    let mut won = 0;
    while let Some(r) = tasks.join_next().await {
        won += usize::from(r.expect("task panicked").expect("notification_once failed"));
    }
    assert_eq!(won, 1, "{won} callers claimed one notification");
    let a = adm(store.as_ref());
    assert!(!a.notification_once("p:pending", 9).await.unwrap());
    assert!(a.notification_once("p:certified", 9).await.unwrap(), "another key is its own");
}

/// The policy epoch moves only when the digest in force changes; each change appends its
/// record and stores the version; loading the policy in force again writes nothing.
pub async fn admission_policy_epoch_follows_digest(store: Arc<dyn Store>) {
    let a = adm(store.as_ref());
    let load = |digest: &str, by: &str| PolicyLoad {
        digest: digest.into(),
        text: format!("text of {digest}"),
        at_ms: 10,
        loaded_by: by.into(),
        record: Some(format!("epoch for {digest}").into_bytes()),
    };
    let (e, changed) = a.load_policy(load("d1", "startup")).await.unwrap();
    assert!(changed);
    assert_eq!(e.policy_epoch, 1);
    let (e, changed) = a.load_policy(load("d1", "startup")).await.unwrap();
    assert!(!changed, "a restart with the same policy bumped the epoch");
    assert_eq!(e.policy_epoch, 1);
    assert_eq!(size(store.as_ref()).await, 1, "an unchanged load appended a record");
    let (e, changed) = a.load_policy(load("d2", "admin")).await.unwrap();
    assert!(changed);
    assert_eq!(e.policy_epoch, 2);
    // An epoch bumped by someone else: the same digest is loaded under a new epoch.
    store.bump_policy_epoch(20, None).await.unwrap();
    let (e, changed) = a.load_policy(load("d2", "startup")).await.unwrap();
    assert!(changed, "the stored policy is not the one of the current epoch");
    assert_eq!(e.policy_epoch, 4);
    let history: Vec<(u64, String)> =
        a.policies().await.unwrap().into_iter().map(|p| (p.policy_epoch, p.digest)).collect();
    assert_eq!(history, vec![(1, "d1".into()), (2, "d2".into()), (4, "d2".into())]);
}

// ---------------------------------------------------------------------------------------------
// Approver directory (spec 5.1)
// ---------------------------------------------------------------------------------------------

fn directory(store: &dyn Store) -> &dyn crate::approvers::ApproverDirectory {
    store
        .approver_directory()
        .unwrap_or_else(|| panic!("the {} store keeps no approver directory", store.backend()))
}

fn invitation(token: &str, name: &str, expires_at_ms: u64) -> crate::approvers::Invitation {
    crate::approvers::Invitation {
        token_hash: format!("{token:0>64}"),
        name: name.into(),
        role: "human".into(),
        challenge: vec![7; 32],
        user_id: vec![9; 16],
        invited_by: "root".into(),
        created_at_ms: 1_000,
        expires_at_ms,
    }
}

fn enrolled(name: &str, kid: &str) -> crate::approvers::EnrolledApprover {
    crate::approvers::EnrolledApprover {
        name: name.into(),
        role: "human".into(),
        kid: kid.into(),
        credential: format!("{{\"kid\":\"{kid}\"}}"),
        entry: format!("{{\"enrol\":\"{name}\"}}").into_bytes(),
        enrolled_at_ms: 2_000,
    }
}

/// An invitation is found by its token hash until it expires or is used; enrolment consumes
/// it, stores the approver and appends its record at the returned index in one step; a used,
/// expired, unknown or misnamed invitation, or a name already enrolled, changes nothing.
pub async fn approvers_enrol_consumes_the_invitation_once(store: Arc<dyn Store>) {
    use crate::approvers::EnrolResult;
    let s = store.as_ref();
    directory(s).create_invitation(invitation("a1", "alice", 10_000)).await.unwrap();
    directory(s).create_invitation(invitation("e1", "erin", 5_000)).await.unwrap();
    directory(s).create_invitation(invitation("b1", "bob", 10_000)).await.unwrap();
    let found = directory(s).invitation(&format!("{:0>64}", "a1"), 4_000).await.unwrap();
    assert_eq!(found, Some(invitation("a1", "alice", 10_000)), "invitation not found by hash");
    assert_eq!(
        directory(s).invitation(&format!("{:0>64}", "e1"), 5_000).await.unwrap(),
        None,
        "an invitation is unusable at its expiry"
    );
    let before = size(s).await;
    let r = directory(s)
        .enrol(&format!("{:0>64}", "e1"), 5_000, enrolled("erin", "k-erin"), b"erin".to_vec())
        .await
        .unwrap();
    assert_eq!(r, EnrolResult::InvitationUnusable, "an expired invitation enrolled");
    let r = directory(s)
        .enrol(&format!("{:0>64}", "b1"), 4_000, enrolled("mallory", "k-m"), b"m".to_vec())
        .await
        .unwrap();
    assert_eq!(r, EnrolResult::InvitationUnusable, "an invitation enrolled another name");
    assert_eq!(size(s).await, before, "a refused enrolment appended a record");

    let r = directory(s)
        .enrol(&format!("{:0>64}", "a1"), 4_000, enrolled("alice", "k-alice"), b"alice".to_vec())
        .await
        .unwrap();
    let EnrolResult::Enrolled { index } = r else { panic!("enrol: {r:?}") };
    assert_eq!(index, before, "enrol record not at the end of the ledger");
    assert_eq!(entry(s, index).await, b"alice".to_vec());
    assert_eq!(
        directory(s).invitation(&format!("{:0>64}", "a1"), 4_000).await.unwrap(),
        None,
        "a used invitation is still usable"
    );
    let r = directory(s)
        .enrol(&format!("{:0>64}", "a1"), 4_001, enrolled("alice", "k-alice2"), b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(r, EnrolResult::InvitationUnusable, "an invitation was used twice");
    // A second invitation for an enrolled name, or an enrolled credential, is refused.
    directory(s).create_invitation(invitation("a2", "alice", 10_000)).await.unwrap();
    let r = directory(s)
        .enrol(&format!("{:0>64}", "a2"), 4_000, enrolled("alice", "k-other"), b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(r, EnrolResult::AlreadyEnrolled);
    let r = directory(s)
        .enrol(&format!("{:0>64}", "b1"), 4_000, enrolled("bob", "k-alice"), b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(r, EnrolResult::AlreadyEnrolled, "one credential enrolled under two names");
    assert_eq!(size(s).await, before + 1);
    let all = directory(s).enrolled().await.unwrap();
    assert_eq!(all, vec![enrolled("alice", "k-alice")]);
}

/// Concurrent enrolments with one token: exactly one wins, one record is appended.
pub async fn approvers_concurrent_enrolments_have_one_winner(store: Arc<dyn Store>) {
    use crate::approvers::EnrolResult;
    directory(store.as_ref()).create_invitation(invitation("c1", "carol", 10_000)).await.unwrap();
    let before = size(store.as_ref()).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            directory(store.as_ref())
                .enrol(
                    &format!("{:0>64}", "c1"),
                    3_000,
                    enrolled("carol", &format!("k-{i}")),
                    format!("carol-{i}").into_bytes(),
                )
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            EnrolResult::Enrolled { .. } => wins += 1,
            EnrolResult::InvitationUnusable | EnrolResult::AlreadyEnrolled => {}
        }
    }
    assert_eq!(wins, 1, "{wins} enrolments won with one invitation");
    assert_eq!(size(store.as_ref()).await, before + 1);
    assert_eq!(directory(store.as_ref()).enrolled().await.unwrap().len(), 1);
}

/// The counter: unknown credentials are reported; 0 → 0 is allowed (no counter); otherwise
/// only a strictly greater value is stored; of racing equal values exactly one is accepted.
pub async fn approvers_counter_is_compare_and_set(store: Arc<dyn Store>) {
    use crate::approvers::CounterResult;
    let s = store.as_ref();
    assert_eq!(directory(s).advance_counter("nobody", 1).await.unwrap(), CounterResult::Unknown);
    directory(s).create_invitation(invitation("d1", "dave", 10_000)).await.unwrap();
    directory(s)
        .enrol(&format!("{:0>64}", "d1"), 3_000, enrolled("dave", "k-dave"), b"d".to_vec())
        .await
        .unwrap();
    assert_eq!(directory(s).advance_counter("k-dave", 0).await.unwrap(), CounterResult::Advanced);
    assert_eq!(directory(s).advance_counter("k-dave", 0).await.unwrap(), CounterResult::Advanced);
    assert_eq!(directory(s).advance_counter("k-dave", 5).await.unwrap(), CounterResult::Advanced);
    for bad in [5, 4, 0] {
        assert_eq!(
            directory(s).advance_counter("k-dave", bad).await.unwrap(),
            CounterResult::Regression { stored: 5 },
            "counter {bad} after 5 accepted"
        );
    }
    assert_eq!(
        directory(s).advance_counter("k-dave", u32::MAX).await.unwrap(),
        CounterResult::Advanced
    );
    directory(s).create_invitation(invitation("f1", "fay", 10_000)).await.unwrap();
    directory(s)
        .enrol(&format!("{:0>64}", "f1"), 3_000, enrolled("fay", "k-fay"), b"f".to_vec())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            directory(store.as_ref()).advance_counter("k-fay", 7).await.unwrap()
        }));
    }
    let mut advanced = 0;
    for t in tasks {
        if t.await.unwrap() == CounterResult::Advanced {
            advanced += 1;
        }
    }
    assert_eq!(advanced, 1, "one counter value accepted {advanced} times");
}

/// Removal deletes the approver and appends its record; removing an unknown name does neither.
pub async fn approvers_removal_is_recorded(store: Arc<dyn Store>) {
    use crate::approvers::CounterResult;
    let s = store.as_ref();
    directory(s).create_invitation(invitation("g1", "gus", 10_000)).await.unwrap();
    directory(s)
        .enrol(&format!("{:0>64}", "g1"), 3_000, enrolled("gus", "k-gus"), b"g".to_vec())
        .await
        .unwrap();
    let before = size(s).await;
    let index = directory(s).remove_approver("gus", b"remove gus".to_vec()).await.unwrap();
    assert_eq!(index, Some(before));
    assert_eq!(entry(s, before).await, b"remove gus".to_vec());
    assert!(directory(s).enrolled().await.unwrap().is_empty());
    assert_eq!(directory(s).advance_counter("k-gus", 9).await.unwrap(), CounterResult::Unknown);
    assert_eq!(directory(s).remove_approver("gus", b"again".to_vec()).await.unwrap(), None);
    assert_eq!(size(s).await, before + 1, "removing an unknown approver appended a record");
}
