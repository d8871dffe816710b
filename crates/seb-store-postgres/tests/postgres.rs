//! `PostgresStore` against a REAL PostgreSQL 15 started by `seb-testinfra` (never skipped: a
//! server that cannot start fails these tests).
//!
//! - the backend-independent conformance suite, on one store, on one store without group
//!   commit, and on THREE stores sharing one database (every call goes to the next store in
//!   turn, so same-nonce races, revocations and appends cross replicas);
//! - what only several replicas have: zero-window revocation across stores, one ledger
//!   order under concurrent appends, leases and recovery of a gone replica's executions;
//! - operations: migrations (concurrent start, newer schema refused), TLS with the
//!   server's CA, an unreachable database (fail closed, then recover), append-only tables,
//!   epoch change notifications.

// Test helpers outside `#[test]` functions fail the test by panicking too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seb_ledger::merkle::MemoryTree;
use seb_store::admission::{
    Added, AdmissionState, Cas, NewProposal, PolicyLoad, ProposalFilter, ProposalUpdate,
    StoredApproval, StoredPolicy, StoredProposal, StoredSignature,
};
use seb_store::{
    EpochCheck, Epochs, PendingExecution, Reservation, ReserveResult, Revocation, Store,
    StoreError, StoreFuture, StoredCheckpoint,
};
use seb_store_postgres::{PostgresOptions, PostgresStore};
use seb_testinfra::postgres::Postgres;

fn pg() -> &'static Postgres {
    Postgres::shared().expect("PostgreSQL could not be started")
}

async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url, PostgresOptions::default()).await.expect("connect")
}

/// The conformance suite on one store with the default options (group commit).
mod one_store {
    seb_store::conformance_tests!(|| async {
        let url = super::pg().fresh_database().expect("database");
        seb_store::conformance::Fixture::new(super::connect(&url).await)
    });
}

/// The conformance suite without group commit: one request per transaction.
mod unbatched {
    seb_store::conformance_tests!(|| async {
        let url = super::pg().fresh_database().expect("database");
        let opts = seb_store_postgres::PostgresOptions {
            max_batch: 1,
            pool_size: 4,
            ..Default::default()
        };
        let store = seb_store_postgres::PostgresStore::connect(&url, opts).await.expect("connect");
        seb_store::conformance::Fixture::new(store)
    });
}

/// The conformance suite on three replicas of one database (see [`Replicas`]).
mod three_replicas {
    seb_store::conformance_tests!(|| async {
        let url = super::pg().fresh_database().expect("database");
        seb_store::conformance::Fixture::new(super::Replicas::connect(&url, 3).await)
    });
}

/// Several stores on one database seen as one: each call goes to the next store in turn.
/// Two things follow the execution instead: `mark_dispatched` goes to the store that
/// reserved it (a store only dispatches under its own lease), and `pending` is the union of
/// every store's (each lists its own and dead replicas' executions), oldest first.
struct Replicas {
    stores: Vec<PostgresStore>,
    next: AtomicUsize,
    reserved_by: Mutex<HashMap<(String, String), usize>>,
}

impl Replicas {
    async fn connect(url: &str, n: usize) -> Self {
        let mut stores = Vec::new();
        for _ in 0..n {
            stores.push(connect(url).await);
        }
        Self { stores, next: AtomicUsize::new(0), reserved_by: Mutex::new(HashMap::new()) }
    }

    fn pick(&self) -> (usize, &PostgresStore) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.stores.len();
        (i, &self.stores[i])
    }

    fn one(&self) -> &PostgresStore {
        self.pick().1
    }
}

impl seb_store::NetEffectLog for Replicas {
    fn net_effect_window<'a>(
        &'a self,
        agent: &'a str,
        scope_key: &'a str,
        since_ms: u64,
    ) -> StoreFuture<'a, Vec<seb_store::CertifiedChange>> {
        self.one().net_effect_window(agent, scope_key, since_ms)
    }
    fn net_effect_append(
        &self,
        change: seb_store::CertifiedChange,
        since_ms: u64,
        seen_seq: Option<u64>,
    ) -> StoreFuture<'_, seb_store::NetEffectAppend> {
        self.one().net_effect_append(change, since_ms, seen_seq)
    }
    fn net_effect_prune(&self, before_ms: u64) -> StoreFuture<'_, u64> {
        self.one().net_effect_prune(before_ms)
    }
}

impl Store for Replicas {
    fn backend(&self) -> &'static str {
        "postgres x3"
    }
    fn approver_directory(&self) -> Option<&dyn seb_store::approvers::ApproverDirectory> {
        self.one().approver_directory()
    }
    fn epochs(&self) -> StoreFuture<'_, Epochs> {
        self.one().epochs()
    }
    fn epoch_check<'a>(&'a self, cid: &'a str, agent: &'a str) -> StoreFuture<'a, EpochCheck> {
        self.one().epoch_check(cid, agent)
    }
    fn bump_policy_epoch(&self, at_ms: u64, record: Option<Vec<u8>>) -> StoreFuture<'_, Epochs> {
        self.one().bump_policy_epoch(at_ms, record)
    }
    fn revoke(
        &self,
        what: Revocation,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Epochs> {
        self.one().revoke(what, at_ms, record)
    }
    fn revocations(&self) -> StoreFuture<'_, (Vec<String>, Vec<String>)> {
        self.one().revocations()
    }
    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> StoreFuture<'a, bool> {
        self.one().is_reserved(cid, nonce)
    }
    fn reserve(&self, r: Reservation) -> StoreFuture<'_, ReserveResult> {
        Box::pin(async move {
            let (i, s) = self.pick();
            let key = (r.cid.clone(), r.nonce.clone());
            let out = s.reserve(r).await?;
            if matches!(out, ReserveResult::Reserved { .. }) {
                self.reserved_by.lock().unwrap().insert(key, i);
            }
            Ok(out)
        })
    }
    fn mark_dispatched<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        let owner =
            self.reserved_by.lock().unwrap().get(&(cid.to_owned(), nonce.to_owned())).copied();
        match owner {
            Some(i) => self.stores[i].mark_dispatched(cid, nonce, at_ms),
            None => self.one().mark_dispatched(cid, nonce, at_ms),
        }
    }
    fn complete<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> StoreFuture<'a, u64> {
        self.one().complete(cid, nonce, outcome_entry)
    }
    fn pending(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        Box::pin(async move {
            let mut all: Vec<PendingExecution> = Vec::new();
            for s in &self.stores {
                for p in s.pending().await? {
                    if !all.iter().any(|q| q.cid == p.cid && q.nonce == p.nonce) {
                        all.push(p);
                    }
                }
            }
            all.sort_by_key(|p| p.admitted_at_ms);
            Ok(all)
        })
    }
    // Every store sees every replica's executions in flight: any one answers.
    fn in_flight_keys(&self, after: Option<u64>) -> StoreFuture<'_, Vec<seb_store::InFlightKey>> {
        self.one().in_flight_keys(after)
    }
    fn in_flight_execution<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
    ) -> StoreFuture<'a, Option<PendingExecution>> {
        self.one().in_flight_execution(cid, nonce)
    }
    fn append(&self, entries: Vec<Vec<u8>>) -> StoreFuture<'_, Vec<u64>> {
        self.one().append(entries)
    }
    fn ledger_size(&self) -> StoreFuture<'_, u64> {
        self.one().ledger_size()
    }
    fn entries(&self, start: u64, end: u64) -> StoreFuture<'_, Vec<Vec<u8>>> {
        self.one().entries(start, end)
    }
    fn root(&self, size: u64) -> StoreFuture<'_, seb_store::Hash> {
        self.one().root(size)
    }
    fn inclusion_proof(&self, index: u64, size: u64) -> StoreFuture<'_, Vec<seb_store::Hash>> {
        self.one().inclusion_proof(index, size)
    }
    fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> StoreFuture<'_, Vec<seb_store::Hash>> {
        self.one().consistency_proof(old_size, new_size)
    }
    fn put_checkpoint(&self, cp: StoredCheckpoint) -> StoreFuture<'_, ()> {
        self.one().put_checkpoint(cp)
    }
    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<StoredCheckpoint>> {
        self.one().latest_checkpoint()
    }
    fn checkpoints(&self) -> StoreFuture<'_, Vec<StoredCheckpoint>> {
        self.one().checkpoints()
    }
    fn admission(&self) -> Option<&dyn AdmissionState> {
        Some(self)
    }
}

/// Admission's state through the replicas: each call goes to the next one in turn.
impl AdmissionState for Replicas {
    fn insert_proposal(&self, p: NewProposal) -> StoreFuture<'_, bool> {
        self.one().insert_proposal(p)
    }
    fn proposal<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredProposal>> {
        self.one().proposal(id)
    }
    fn proposals(&self, f: ProposalFilter) -> StoreFuture<'_, Vec<StoredProposal>> {
        self.one().proposals(f)
    }
    fn overdue<'a>(&'a self, status: &'a str, now_ms: u64) -> StoreFuture<'a, Vec<String>> {
        self.one().overdue(status, now_ms)
    }
    fn update_proposal(&self, u: ProposalUpdate) -> StoreFuture<'_, Cas> {
        self.one().update_proposal(u)
    }
    fn add_approval(
        &self,
        id: String,
        expected: String,
        a: StoredApproval,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added> {
        self.one().add_approval(id, expected, a, record)
    }
    fn add_signature(
        &self,
        id: String,
        expected: String,
        s: StoredSignature,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added> {
        self.one().add_signature(id, expected, s, record)
    }
    fn admin_request_once<'a>(
        &'a self,
        id: &'a str,
        at_ms: u64,
        forget_before_ms: u64,
    ) -> StoreFuture<'a, bool> {
        self.one().admin_request_once(id, at_ms, forget_before_ms)
    }
    fn notification_once<'a>(&'a self, key: &'a str, at_ms: u64) -> StoreFuture<'a, bool> {
        self.one().notification_once(key, at_ms)
    }
    fn load_policy(&self, load: PolicyLoad) -> StoreFuture<'_, (Epochs, bool)> {
        self.one().load_policy(load)
    }
    fn policies(&self) -> StoreFuture<'_, Vec<StoredPolicy>> {
        self.one().policies()
    }
}

// ---------------------------------------------------------------------------------------------

fn reservation(cid: &str, nonce: &str, agent: &str, e: Epochs) -> Reservation {
    Reservation {
        cid: cid.into(),
        nonce: nonce.into(),
        agent: agent.into(),
        policy_epoch: e.policy_epoch,
        revocation_epoch: e.revocation_epoch,
        admit_entry: format!("admit {cid}/{nonce}").into_bytes(),
        intent: format!("intent {cid}/{nonce}").into_bytes(),
        at_ms: 1,
    }
}

/// A revocation committed through one store is seen by the very next reservation on every
/// other store: no window at all, 50 times in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_store_stops_the_next_reservation_on_every_store() {
    let url = pg().fresh_database().unwrap();
    let stores = [connect(&url).await, connect(&url).await, connect(&url).await];
    let e = stores[0].epochs().await.unwrap();
    for i in 0..50 {
        let cid = format!("cid-{i}");
        // Each store can reserve it before the revocation.
        for (k, s) in stores.iter().enumerate() {
            let r = s.reserve(reservation(&cid, &format!("pre-{k}"), "agent", e)).await.unwrap();
            assert!(matches!(r, ReserveResult::Reserved { .. }), "{r:?}");
        }
        stores[i % 3].revoke(Revocation::Cid(cid.clone()), 10, None).await.unwrap();
        for (k, s) in stores.iter().enumerate() {
            let r = s.reserve(reservation(&cid, &format!("post-{k}"), "agent", e)).await.unwrap();
            assert!(
                matches!(r, ReserveResult::Revoked { .. }),
                "round {i}: store {k} reserved after the revocation committed: {r:?}"
            );
        }
    }
    // Revoke-all through one store: the next reservation anywhere is EpochChanged.
    let after = stores[1].revoke(Revocation::All, 20, None).await.unwrap();
    for s in &stores {
        let r = s.reserve(reservation("fresh", "n", "agent", e)).await.unwrap();
        assert_eq!(r, ReserveResult::EpochChanged { active: after });
    }
}

/// Reservations run continuously on two stores while a third revokes an agent, with a
/// record. Every reservation that STARTED after the revoke call returned is refused, and in
/// the ledger no admit of that agent follows the revocation record (the ledger order agrees
/// with the commit order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_during_concurrent_reservations_on_other_stores_has_no_window() {
    let url = pg().fresh_database().unwrap();
    let revoker = connect(&url).await;
    let a = Arc::new(connect(&url).await);
    let b = Arc::new(connect(&url).await);
    let e = a.epochs().await.unwrap();
    let revoked = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16usize {
        let store = if t % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        let revoked = Arc::clone(&revoked);
        tasks.spawn(async move {
            let mut late_admits = 0;
            for i in 0..40 {
                let started_after = revoked.load(Ordering::SeqCst);
                let mut r = reservation(&format!("c-{t}-{i}"), "n", "agent-x", e);
                r.admit_entry = format!("admit agent-x {t} {i}").into_bytes();
                let out = store.reserve(r).await.unwrap();
                if started_after && matches!(out, ReserveResult::Reserved { .. }) {
                    late_admits += 1;
                }
            }
            late_admits
        });
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    revoker
        .revoke(Revocation::Agent("agent-x".into()), 5, Some(b"revoke agent-x".to_vec()))
        .await
        .unwrap();
    revoked.store(true, Ordering::SeqCst);
    let mut late = 0;
    while let Some(r) = tasks.join_next().await {
        late += r.unwrap();
    }
    assert_eq!(late, 0, "reservations that started after the revocation committed were admitted");
    let size = revoker.ledger_size().await.unwrap();
    let entries = revoker.entries(0, size).await.unwrap();
    let at = entries.iter().position(|x| x.as_slice() == b"revoke agent-x").unwrap();
    assert!(at > 0, "the revocation raced nothing");
    assert!(
        entries[at + 1..].iter().all(|x| !x.starts_with(b"admit agent-x")),
        "an admit of the revoked agent follows the revocation in the ledger"
    );
    assert_eq!(revoker.root(size).await.unwrap(), MemoryTree::from_entries(&entries).root());
}

/// Three stores append and reserve concurrently: indices are dense, every entry is where its
/// writer was told, and every store computes the same roots and consistent proofs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_three_stores_build_one_ledger() {
    let url = pg().fresh_database().unwrap();
    let stores: Vec<Arc<PostgresStore>> = vec![
        Arc::new(connect(&url).await),
        Arc::new(connect(&url).await),
        Arc::new(connect(&url).await),
    ];
    let e = stores[0].epochs().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..48usize {
        let s = Arc::clone(&stores[t % 3]);
        tasks.spawn(async move {
            let mut placed = Vec::new();
            for i in 0..10 {
                if i % 2 == 0 {
                    let entry = format!("record {t} {i}").into_bytes();
                    let idx = s.append(vec![entry.clone()]).await.unwrap();
                    placed.push((idx[0], entry));
                } else {
                    let r = reservation(&format!("c{t}"), &format!("n{i}"), "agent", e);
                    let entry = r.admit_entry.clone();
                    let ReserveResult::Reserved { admit_index } = s.reserve(r).await.unwrap()
                    else {
                        panic!("not reserved");
                    };
                    placed.push((admit_index, entry));
                }
            }
            placed
        });
    }
    let mut placed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        placed.extend(r.unwrap());
    }
    placed.sort();
    let n = placed.len() as u64;
    assert_eq!(placed.iter().map(|p| p.0).collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
    let entries = stores[1].entries(0, n).await.unwrap();
    for (idx, entry) in &placed {
        assert_eq!(&entries[*idx as usize], entry, "entry {idx}");
    }
    let tree = MemoryTree::from_entries(&entries);
    for s in &stores {
        assert_eq!(s.root(n).await.unwrap(), tree.root());
        assert_eq!(
            s.consistency_proof(n / 3, n).await.unwrap(),
            tree.consistency_proof(n / 3, n).unwrap()
        );
        assert_eq!(s.inclusion_proof(7, n).await.unwrap(), tree.inclusion_proof(7, n).unwrap());
    }
}

/// `pending` on a store lists its own executions and those of stores that are gone, never
/// another live store's (`in_flight` lists them all); a store cannot dispatch an execution reserved under another lease;
/// dropping a store (its session ends, as when its process dies) hands its executions to
/// recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_follows_leases_across_stores() {
    let url = pg().fresh_database().unwrap();
    let a = connect(&url).await;
    let b = connect(&url).await;
    assert_ne!(a.lease(), b.lease());
    let e = a.epochs().await.unwrap();
    a.reserve(reservation("cid", "a1", "agent", e)).await.unwrap();
    a.reserve(reservation("cid", "a2", "agent", e)).await.unwrap();
    a.mark_dispatched("cid", "a2", 5).await.unwrap();
    b.reserve(reservation("cid", "b1", "agent", e)).await.unwrap();
    let names = |p: Vec<PendingExecution>| p.into_iter().map(|p| p.nonce).collect::<Vec<_>>();
    assert_eq!(names(a.pending().await.unwrap()), ["a1", "a2"]);
    assert_eq!(names(b.pending().await.unwrap()), ["b1"]);
    // In flight: every store's executions, with their intents, from any store.
    for s in [&a, &b] {
        let all = s.in_flight().await.unwrap();
        assert_eq!(names(all.clone()), ["a1", "a2", "b1"]);
        assert!(all.iter().all(|p| !p.intent.is_empty()));
    }
    match b.mark_dispatched("cid", "a1", 6).await {
        Err(StoreError::Unavailable { context: m, .. }) => assert!(m.contains("lease"), "{m}"),
        other => panic!("b dispatched a's execution: {other:?}"),
    }
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = b.pending().await.unwrap();
        if p.len() == 3 {
            assert_eq!(names(p.clone()), ["a1", "a2", "b1"]);
            assert!(p[1].dispatched && !p[0].dispatched);
            break;
        }
        assert!(Instant::now() < deadline, "a's executions never became recoverable: {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new store (a restarted replica) sees them too, and recovery can close them.
    let c = connect(&url).await;
    assert_eq!(names(c.pending().await.unwrap()), ["a1", "a2"]);
    c.complete("cid", "a1", b"not_attempted".to_vec()).await.unwrap();
    c.complete("cid", "a2", b"reconciled".to_vec()).await.unwrap();
    assert!(c.pending().await.unwrap().is_empty());
    assert_eq!(names(c.in_flight().await.unwrap()), ["b1"], "completed ones are not in flight");
    assert!(matches!(
        c.mark_dispatched("cid", "a1", 9).await,
        Err(StoreError::AlreadyCompleted { .. })
    ));
}

/// Replicas starting at the same time migrate once; a database with a newer schema is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_a_newer_schema_is_refused() {
    let url = pg().fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = url.clone();
        starting.spawn(async move {
            PostgresStore::connect(&url, PostgresOptions::default()).await.map(|_| ())
        });
    }
    while let Some(r) = starting.join_next().await {
        r.unwrap().unwrap();
    }
    let versions = pg()
        .psql(&db, "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version")
        .unwrap();
    // Each migration once, in order (no duplicate rows from the concurrent starts).
    let expected: Vec<String> =
        (1..=seb_store_postgres::SCHEMA_VERSION).map(|v| v.to_string()).collect();
    assert_eq!(versions.trim(), expected.join(","));
    pg().psql(
        &db,
        &format!(
            "INSERT INTO schema_version (version) VALUES ({})",
            seb_store_postgres::SCHEMA_VERSION + 1
        ),
    )
    .unwrap();
    match PostgresStore::connect(&url, PostgresOptions::default()).await {
        Err(StoreError::Invalid { context: m, .. }) => assert!(m.contains("newer"), "{m}"),
        other => panic!("a newer schema was accepted: {other:?}"),
    }
}

/// The ledger tables are append-only even for a client that bypasses the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_tables_refuse_updates_and_deletes() {
    let url = pg().fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let s = connect(&url).await;
    let e = s.epochs().await.unwrap();
    s.reserve(reservation("cid", "n", "agent", e)).await.unwrap();
    s.put_checkpoint(StoredCheckpoint { size: 1, note: "cp".into(), at_ms: 1 }).await.unwrap();
    for sql in [
        "UPDATE ledger_entries SET entry = '\\x00' WHERE idx = 0",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries CASCADE",
        "UPDATE merkle_nodes SET hash = hash",
        "DELETE FROM reservations",
        "DELETE FROM checkpoints",
    ] {
        let err = pg().psql(&db, sql).expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(s.ledger_size().await.unwrap(), 1);
    assert!(s.is_reserved("cid", "n").await.unwrap());
}

/// Admission's approvals, break-glass signatures and policy versions cannot be relabelled or
/// deleted, and proposals (the seen-proposal set) cannot be deleted, even by a client that
/// bypasses the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_tables_refuse_relabels_and_deletes() {
    let url = pg().fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let s = connect(&url).await;
    let p = NewProposal {
        proposal_id: "p".into(),
        agent: "agent".into(),
        status: "pending".into(),
        received_at_ms: 1,
        deadline_ms: None,
        claim_until_ms: None,
        body: b"{}".to_vec(),
    };
    assert!(s.insert_proposal(p).await.unwrap());
    let a = StoredApproval { approver: "alice".into(), body: b"a".to_vec(), at_ms: 2 };
    s.add_approval("p".into(), "pending".into(), a, None).await.unwrap();
    let sig =
        StoredSignature { cid: "c".into(), operator: "op".into(), body: b"s".to_vec(), at_ms: 3 };
    s.add_signature("p".into(), "pending".into(), sig, None).await.unwrap();
    let load = PolicyLoad {
        digest: "d".into(),
        text: "t".into(),
        at_ms: 4,
        loaded_by: "startup".into(),
        record: None,
    };
    s.load_policy(load).await.unwrap();
    for sql in [
        "UPDATE admission_approvals SET approver = 'mallory'",
        "DELETE FROM admission_approvals",
        "TRUNCATE admission_approvals",
        "UPDATE admission_signatures SET operator = 'mallory'",
        "DELETE FROM admission_signatures",
        "DELETE FROM admission_proposals",
        "TRUNCATE admission_proposals CASCADE",
        "UPDATE admission_policies SET text = ''",
        "DELETE FROM admission_policies",
    ] {
        let err = pg().psql(&db, sql).expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let stored = s.proposal("p").await.unwrap().unwrap();
    assert_eq!(stored.approvals.len(), 1);
    assert_eq!(stored.approvals[0].approver, "alice");
    assert_eq!(stored.signatures.len(), 1);
}

/// TLS with the server's CA works (the session is encrypted); a wrong CA is refused; and
/// `sslmode=require` without a CA is a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_servers_ca() {
    let url = pg().fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let ca = pg().ca_cert_path();
    let tls_url = format!("{url}?sslmode=require&sslrootcert={}", ca.display());
    let opts = PostgresOptions { application_name: "seb-tls-test".into(), ..Default::default() };
    let s = PostgresStore::connect(&tls_url, opts).await.unwrap();
    let e = s.epochs().await.unwrap();
    s.reserve(reservation("cid", "tls", "agent", e)).await.unwrap();
    let encrypted = pg()
        .psql(
            &db,
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'seb-tls-test' AND s.ssl",
        )
        .unwrap();
    assert!(encrypted.trim().parse::<u32>().unwrap() >= 2, "sessions not encrypted: {encrypted}");
    let plain = pg()
        .psql(
            &db,
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'seb-tls-test' AND NOT s.ssl",
        )
        .unwrap();
    assert_eq!(plain.trim(), "0");
    // Another CA: the server's certificate does not verify.
    let dir = std::env::temp_dir().join(format!("seb-pg-otherca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = seb_testinfra::certs::make_ca(&dir, "127.0.0.1").unwrap();
    let bad = format!("{url}?sslmode=require&sslrootcert={}", other.display());
    match PostgresStore::connect(&bad, PostgresOptions::default()).await {
        Err(e @ StoreError::Unavailable { .. }) => {
            // The cause (which certificate check failed) is the error's source.
            let chain = seb_store::error_chain(&e);
            assert!(chain.to_lowercase().contains("cert"), "{chain}");
        }
        other => panic!("a server with an unknown certificate was accepted: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(
        PostgresStore::connect(&format!("{url}?sslmode=require"), PostgresOptions::default()).await,
        Err(StoreError::Invalid { .. })
    ));
}

/// Epoch changes through one store are announced to a subscriber on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_changes_are_announced_to_subscribers() {
    let url = pg().fresh_database().unwrap();
    let a = connect(&url).await;
    let b = connect(&url).await;
    let mut sub = b.subscribe().await.unwrap();
    let after = a.revoke(Revocation::All, 77, None).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!(got, after);
    let after = a.bump_policy_epoch(78, None).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!(got, after);
    a.revoke(Revocation::Cid("x".into()), 79, None).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!(got.updated_at_ms, 79);
}

/// With the database gone every call fails closed (`Unavailable`) within the configured
/// bounds; when it is back, the same store serves again without a restart (new pooled
/// connections, its OWN lease retaken) without losing anything that was committed: its open
/// executions stay its own (it may still dispatch and complete them) and another live
/// store never sees them as orphans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_closed_and_the_store_recovers() {
    let mut server = Postgres::start().unwrap();
    let url = server.fresh_database().unwrap();
    let opts = PostgresOptions {
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let s = PostgresStore::connect(&url, opts.clone()).await.unwrap();
    let other = PostgresStore::connect(&url, opts).await.unwrap();
    let e = s.epochs().await.unwrap();
    assert!(matches!(
        s.reserve(reservation("cid", "before", "agent", e)).await.unwrap(),
        ReserveResult::Reserved { .. }
    ));
    let first_lease = s.lease();
    server.stop_server().unwrap();
    let t = Instant::now();
    for (what, r) in [
        ("reserve", s.reserve(reservation("cid", "during", "agent", e)).await.map(|_| ())),
        ("epochs", s.epochs().await.map(|_| ())),
        ("epoch_check", s.epoch_check("cid", "agent").await.map(|_| ())),
        ("revoke", s.revoke(Revocation::Cid("c".into()), 1, None).await.map(|_| ())),
        ("append", s.append(vec![b"x".to_vec()]).await.map(|_| ())),
        ("mark_dispatched", s.mark_dispatched("cid", "before", 1).await),
        ("complete", s.complete("cid", "before", b"o".to_vec()).await.map(|_| ())),
        ("pending", s.pending().await.map(|_| ())),
        ("root", s.root(1).await.map(|_| ())),
    ] {
        assert!(
            matches!(r, Err(StoreError::Unavailable { .. })),
            "{what} with the database down: {r:?}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(30), "failing closed took {:?}", t.elapsed());
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.reserve(reservation("cid", "after", "agent", e)).await {
            Ok(ReserveResult::Reserved { admit_index }) => {
                assert_eq!(admit_index, 1, "the committed admit was lost or a failed one kept");
                break;
            }
            other => {
                assert!(Instant::now() < deadline, "the store did not come back: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(s.lease(), first_lease, "the store retakes its own lease");
    assert!(s.is_reserved("cid", "before").await.unwrap());
    assert!(!s.is_reserved("cid", "during").await.unwrap());
    // The other live store retook its lease too, and neither sees the other's executions
    // as orphans.
    let deadline = Instant::now() + Duration::from_secs(30);
    while other.lease().is_none() {
        assert!(Instant::now() < deadline, "the other store never retook its lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(other.orphans().await.unwrap().is_empty(), "a live store's executions are not orphans");
    assert!(s.orphans().await.unwrap().is_empty());
    let pending: Vec<String> = s.pending().await.unwrap().into_iter().map(|p| p.nonce).collect();
    assert_eq!(pending, ["before", "after"]);
    // The execution reserved before the outage is still this store's to run and finish.
    s.mark_dispatched("cid", "before", 2).await.unwrap();
    s.complete("cid", "before", b"o".to_vec()).await.unwrap();
    // Once a store is gone (its session ends) its open execution is an orphan for the others.
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o: Vec<String> = other.orphans().await.unwrap().into_iter().map(|p| p.nonce).collect();
        if o == ["after"] {
            break;
        }
        assert!(Instant::now() < deadline, "orphans after the store went away: {o:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PostgreSQL error stays the source of the store error, with its SQLSTATE: a NUL byte in
/// a text column is a data exception (class 22) the server itself raises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_error_keeps_its_sqlstate() {
    let url = pg().fresh_database().unwrap();
    let store = connect(&url).await;
    let e = store.epochs().await.unwrap();
    let err = store.reserve(reservation("cid\0nul", "n", "agent", e)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    let source = std::error::Error::source(&err).expect("the PostgreSQL error is kept");
    assert!(source.is::<tokio_postgres::Error>(), "{source:?}");
    assert_eq!(seb_store_postgres::sqlstate(&err).as_deref(), Some("22021"), "{err:?}");
    let chain = seb_store::error_chain(&err);
    assert!(chain.contains("(22021)") && chain.contains("0x00"), "{chain}");
    // The store still answers.
    store.reserve(reservation("cid", "n", "agent", e)).await.unwrap();
}
