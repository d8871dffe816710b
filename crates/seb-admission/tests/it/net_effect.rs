//! Net-effect scoring (spec 5.2) through the real admission service and the real Kubernetes
//! profile: a split sequence ends on the same path as the single change whatever op
//! expresses it; shadow mode computes and shows but does not enforce; the window survives
//! a restart; two concurrent proposals on PostgreSQL that would each slip under are
//! accounted serially (exactly one gets the weak path).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use seb_admission::clock::ManualClock;
use seb_admission::service::{ProposalStatus, ProposalView};
use seb_admission::{Admission, AdmissionConfig, Platforms};
use seb_core::json;
use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{CertPath, Contract, Platform, Proposal};
use seb_kube::profile::KubeProfile;
use seb_store::Store;
use seb_store::sqlite::SqliteStore;
use seb_target::{
    Execution, Identity, MutationResult, ObserveRequest, OpProfile, Reconciled, Target,
    TargetError, TargetFuture,
};
use serde_json::{Value, json};

use crate::common::{NOW_MS, agent, config_text, human, issuer, write_key};

/// A Kubernetes "cluster" of one Deployment held in memory: observe-only (admission never
/// mutates). Tests set its replicas as if each certified change had been executed.
#[derive(Default)]
struct FakeKube {
    /// Deployment name -> replicas (2 when never set).
    replicas: Mutex<BTreeMap<String, i64>>,
}

impl FakeKube {
    fn set(&self, r: i64) {
        self.set_on("web", r);
    }
    fn set_on(&self, name: &str, r: i64) {
        self.replicas.lock().unwrap().insert(name.to_owned(), r);
    }
}

impl ScopeCheck for FakeKube {
    fn check_scope(&self, _contract: &Contract) -> Result<(), String> {
        Ok(())
    }
}

impl Target for FakeKube {
    fn platform(&self) -> Platform {
        Platform::Kubernetes
    }
    fn profile(&self, op: &str) -> Result<OpProfile, TargetError> {
        seb_kube::model::Op::parse(op)
            .map(seb_kube::profile::op_profile)
            .map_err(|e| TargetError::invalid(e.to_string()))
    }
    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        let name = req.target.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        let r = self.replicas.lock().unwrap().get(&name).copied().unwrap_or(2);
        Box::pin(async move {
            let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                             "metadata": {"name": name, "namespace": "prod"},
                             "spec": {"replicas": r}});
            Ok(Observation {
                projection: [(String::new(), obj)].into_iter().collect::<BTreeMap<_, _>>(),
                version: Some(r.to_string()),
            })
        })
    }
    fn mint<'a>(&'a self, _exec: &'a Execution) -> TargetFuture<'a, Identity> {
        Box::pin(async { Err(TargetError::refused("observe-only fake")) })
    }
    fn mutate<'a>(
        &'a self,
        _exec: &'a Execution,
        _identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        Box::pin(async { Err(TargetError::refused("observe-only fake")) })
    }
    fn retire<'a>(&'a self, _exec: &'a Execution, _identity: Identity) -> TargetFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn reconcile<'a>(&'a self, _exec: &'a Execution) -> TargetFuture<'a, Reconciled> {
        Box::pin(async { Ok(Reconciled::Uncertain) })
    }
}

/// A policy written per field, not per op: growing a workload's replicas by more than 4
/// needs a human, whatever op expresses it and however it is split.
const POLICY: &str = r#"
@id("anyone-registered")
permit(principal, action == SEB::Action::"propose", resource);
@id("replica-growth-over-4-needs-a-human")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context has change && context.change has replicas && context.change.replicas.delta > 4 };
"#;

struct KubeEnv {
    admission: Arc<Admission>,
    kube: Arc<FakeKube>,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
    extra: String,
}

async fn open(
    store: Arc<dyn Store>,
    kube: Arc<FakeKube>,
    clock: Arc<ManualClock>,
    dir: &std::path::Path,
    extra: &str,
) -> Arc<Admission> {
    std::fs::write(dir.join("policy.cedar"), POLICY).unwrap();
    let text = config_text(&format!("policy_file = \"policy.cedar\"\n{extra}"));
    let cfg = AdmissionConfig::from_toml_str(&text, dir).unwrap();
    let mut platforms = Platforms::default();
    platforms.insert_parts(Arc::new(KubeProfile), kube);
    Admission::open(&cfg, store, platforms, clock).await.unwrap()
}

async fn kube_env_on(store: Arc<dyn Store>, extra: &str, kube: Option<Arc<FakeKube>>) -> KubeEnv {
    let dir = tempfile::tempdir().unwrap();
    write_key(dir.path(), "issuer.seed", &issuer());
    let kube = kube.unwrap_or_default();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let admission = open(store.clone(), kube.clone(), clock.clone(), dir.path(), extra).await;
    KubeEnv { admission, kube, store, clock, dir, extra: extra.to_owned() }
}

async fn kube_env(extra: &str) -> KubeEnv {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("seb.db"), Default::default()).unwrap());
    let mut e = kube_env_on(store, extra, None).await;
    // Keep the database directory alive with the environment (a restart reads it again).
    write_key(dir.path(), "issuer.seed", &issuer());
    e.dir = dir;
    e
}

fn deployment(name: &str) -> Value {
    json!({"cluster": "c", "api_version": "apps/v1", "kind": "Deployment", "namespace": "prod", "name": name})
}

/// `op`'s params setting the replicas to `r`.
fn params(op: &str, r: i64) -> Value {
    match op {
        "scale" => json!({"replicas": r}),
        "merge_patch" => json!({"spec": {"replicas": r}}),
        "json_patch" => json!([{"op": "replace", "path": "/spec/replicas", "value": r}]),
        other => panic!("no params for {other}"),
    }
}

impl KubeEnv {
    async fn propose(&self, id: &str, op: &str, r: i64) -> ProposalView {
        self.propose_on("web", id, op, r).await
    }

    async fn propose_on(&self, name: &str, id: &str, op: &str, r: i64) -> ProposalView {
        let now = seb_admission::clock::Clock::now_ms(self.clock.as_ref()).unwrap();
        let p = Proposal {
            proposal_id: id.into(),
            agent: "agent-a".into(),
            platform: Platform::Kubernetes,
            op: op.into(),
            target: deployment(name),
            params: params(op, r),
            constraints: vec![],
            rationale: "capacity".into(),
            at_ms: now,
        };
        let env = seb_admission::client::sign_proposal(&p, &agent()).unwrap();
        self.admission.submit(&json::canonical(&env).unwrap()).await.unwrap()
    }

    /// Ten +1 steps from 2 to 12 with `ops` (cycled). A step that waits for a human is
    /// approved by one (when `approve`); each certified step is "executed" (the live state
    /// moves). Returns each step's view as submitted and whether it needed the human.
    async fn split(&self, prefix: &str, ops: &[&str], approve: bool) -> Vec<ProposalView> {
        let mut out = Vec::new();
        for (i, r) in (2..12).enumerate() {
            let op = ops[i % ops.len()];
            let v = self.propose(&format!("{prefix}-{i}"), op, r + 1).await;
            let mut done = v.status == ProposalStatus::Certified;
            if !done && approve && v.status == ProposalStatus::Pending {
                let a = self.approve_human(&v).await;
                assert_eq!(a.status, ProposalStatus::Certified, "{a:?}");
                assert_eq!(a.cert_path, Some(CertPath::Human));
                done = true;
            }
            if done {
                self.kube.set(r + 1);
            }
            out.push(v);
            self.clock.advance(1_000);
        }
        out
    }

    async fn approve_human(&self, v: &ProposalView) -> ProposalView {
        let a = seb_core::types::Approval {
            proposal_id: v.proposal_id.clone(),
            contract_digest: v.contract_digest.unwrap(),
            evidence_digest: v.evidence.as_ref().unwrap().digest,
            decision: seb_core::types::ApprovalDecision::Approve,
            approver: "human-0".into(),
            comment: "ok".into(),
            at_ms: seb_admission::clock::Clock::now_ms(self.clock.as_ref()).unwrap(),
        };
        let env = seb_admission::client::sign_approval(&a, &human(0)).unwrap();
        self.admission.approve(&a.proposal_id, &json::canonical(&env).unwrap()).await.unwrap()
    }
}

fn path(v: &ProposalView) -> CertPath {
    v.requirement.expect("evaluated").path
}

/// 2 -> 12 replicas as one change needs a human (the per-field rule); as ten +1 steps the
/// steps slip under the rule alone, yet the last step ends on the same human path, for
/// `scale`, `merge_patch`, `json_patch` and a mix of them.
#[tokio::test]
async fn ten_plus_one_steps_end_on_the_single_changes_path() {
    let single = kube_env("").await;
    let one = single.propose("single", "scale", 12).await;
    assert_eq!(path(&one), CertPath::Human, "the single change: {one:?}");
    for op in ["merge_patch", "json_patch"] {
        let e = kube_env("").await;
        let v = e.propose("single", op, 12).await;
        assert_eq!(path(&v), CertPath::Human, "the single change as {op}: the rule is per field");
    }
    for ops in
        [&["scale"][..], &["merge_patch"], &["json_patch"], &["scale", "merge_patch", "json_patch"]]
    {
        let e = kube_env("").await;
        let steps = e.split("step", ops, true).await;
        let first = &steps[0];
        assert_eq!(path(first), CertPath::Policy, "{ops:?}: a lone +1 is the policy path");
        assert_eq!(first.status, ProposalStatus::Certified);
        let ne = first.net_effect.as_ref().unwrap();
        assert_eq!((ne.related_count, ne.decided_by.as_str()), (0, "alone"));
        let last = steps.last().unwrap();
        assert_eq!(path(last), path(&one), "{ops:?}: the split ends on the single change's path");
        assert_eq!(last.status, ProposalStatus::Pending, "{ops:?}: it waited for a human");
        let ne = last.net_effect.as_ref().unwrap();
        assert_eq!(ne.decided_by, "net", "{ops:?}");
        assert_eq!(
            ne.alone.requirement.unwrap().path,
            CertPath::Policy,
            "alone it would slip under"
        );
        assert_eq!(ne.net_score.requirement.unwrap().path, CertPath::Human);
        assert!(ne.related_count >= 4, "{ops:?}: approvers see the related changes: {ne:?}");
        assert_eq!(ne.related.len(), ne.related_count);
        assert_eq!(ne.cumulative["net"]["replicas"]["before"], 2, "{ops:?}");
        assert_eq!(ne.cumulative["net"]["replicas"]["after"], 12, "{ops:?}");
        // Once the net crossed the bound no step was issued on the weak path: +1..+4 went
        // through on policy, every later one needed the human.
        let weak: Vec<bool> = steps.iter().map(|v| v.status == ProposalStatus::Certified).collect();
        assert_eq!(
            weak,
            [true, true, true, true, false, false, false, false, false, false],
            "{ops:?}"
        );
        assert!(steps[4..].iter().all(|v| path(v) == CertPath::Human), "{ops:?}");
    }
}

/// Shadow mode: the same split is computed, shown and logged but not enforced: every step
/// is certified on the policy path; the view says the net side would have decided.
#[tokio::test]
async fn shadow_mode_computes_and_shows_but_does_not_enforce() {
    let e = kube_env("net_effect = \"shadow\"\n").await;
    let steps = e.split("s", &["scale"], false).await;
    assert!(
        steps.iter().all(|v| v.status == ProposalStatus::Certified && path(v) == CertPath::Policy),
        "shadow mode must not enforce: {:?}",
        steps.iter().map(|v| (v.status, path(v))).collect::<Vec<_>>()
    );
    let last = steps.last().unwrap();
    let ne = last.net_effect.as_ref().unwrap();
    assert_eq!(ne.decided_by, "net_shadow");
    assert_eq!(ne.net_score.requirement.unwrap().path, CertPath::Human);
    assert_eq!(ne.related_count, 9, "every certified step is accounted, in shadow mode too");
    let window = e.store.net_effect_window("agent-a", &ne.scope_key, 0).await.unwrap();
    assert_eq!(window.len(), 10);
}

/// The window is in the store: a restarted admission continues it.
#[tokio::test]
async fn the_window_survives_a_restart() {
    let e = kube_env("").await;
    for (i, r) in (2..6).enumerate() {
        let v = e.propose(&format!("a-{i}"), "scale", r + 1).await;
        assert_eq!(v.status, ProposalStatus::Certified);
        e.kube.set(r + 1);
    }
    // Restart: a new admission on the same store.
    let again =
        open(e.store.clone(), e.kube.clone(), e.clock.clone(), e.dir.path(), &e.extra).await;
    let e2 = KubeEnv {
        admission: again,
        kube: e.kube.clone(),
        store: e.store.clone(),
        clock: e.clock.clone(),
        dir: tempfile::tempdir().unwrap(),
        extra: String::new(),
    };
    let v = e2.propose("after-restart", "scale", 7).await;
    assert_eq!(path(&v), CertPath::Human, "2 -> 7 across a restart: {:?}", v.net_effect);
    assert_eq!(v.status, ProposalStatus::Pending);
    // Outside the window (default 1 h) the old changes no longer count.
    e.clock.advance(3_600_001);
    let v = e2.propose("much-later", "scale", 7).await;
    assert_eq!(path(&v), CertPath::Policy, "{:?}", v.net_effect);
}

/// Two admissions (replicas) on one PostgreSQL database, scope `namespace`; the agent sends
/// +3 on two Deployments of one namespace at once, to the two replicas, each scored
/// against the same (empty) window: alone each is under the bound of 4. Their accounting
/// is serial: exactly one gets the weak (policy) path, the other is scored again with the
/// first in its window (the namespace's net +6) and waits for a human.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_proposals_on_postgres_are_accounted_serially() {
    let pg = seb_testinfra::postgres::Postgres::shared().expect("PostgreSQL could not be started");
    for round in 0..5 {
        let url = pg.fresh_database().expect("database");
        let s1: Arc<dyn Store> = Arc::new(
            seb_store_postgres::PostgresStore::connect(&url, Default::default()).await.unwrap(),
        );
        let s2: Arc<dyn Store> = Arc::new(
            seb_store_postgres::PostgresStore::connect(&url, Default::default()).await.unwrap(),
        );
        let scope = "net_effect_scope = \"namespace\"\n";
        // One admission whose store alternates between two PostgreSQL stores (two pools):
        // the two submissions are accounted on different connections and sessions, and
        // only the database's per-scope lock orders them.
        let both: Arc<dyn Store> =
            Arc::new(Alternating { stores: [s1, s2], next: Default::default() });
        let r1 = kube_env_on(both, scope, None).await;
        let (x, y) = (format!("x-{round}"), format!("y-{round}"));
        let (a, b) = tokio::join!(
            r1.propose_on("web", &x, "scale", 5),
            r1.propose_on("api", &y, "merge_patch", 5)
        );
        let weak = [&a, &b]
            .iter()
            .filter(|v| v.status == ProposalStatus::Certified && path(v) == CertPath::Policy)
            .count();
        assert_eq!(
            weak, 1,
            "round {round}: exactly one may take the weak path: a={:?}/{:?} b={:?}/{:?}",
            a.status, a.requirement, b.status, b.requirement
        );
        let other = if a.status == ProposalStatus::Certified { &b } else { &a };
        assert_eq!(
            (other.status, path(other)),
            (ProposalStatus::Pending, CertPath::Human),
            "round {round}: {:?} {:?}",
            other.reason,
            other.net_effect
        );
        // Both were scored against the empty window; the loser was scored again at issuance
        // with the winner in it.
        let winner = if a.status == ProposalStatus::Certified { &a } else { &b };
        assert_eq!(winner.net_effect.as_ref().unwrap().related_count, 0, "round {round}");
        let ne = other.net_effect.as_ref().unwrap();
        assert_eq!((ne.related_count, ne.decided_by.as_str()), (1, "net"), "round {round}");
        assert_eq!(ne.net.fields["replicas"].delta(), 6, "round {round}: the namespace's net");
    }
}

/// A store that sends each call to one of two stores in turn (two replicas' connections to
/// one database).
struct Alternating {
    stores: [Arc<dyn Store>; 2],
    next: std::sync::atomic::AtomicUsize,
}

impl Alternating {
    fn one(&self) -> &Arc<dyn Store> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2;
        &self.stores[i]
    }
}

impl seb_store::NetEffectLog for Alternating {
    fn net_effect_window<'a>(
        &'a self,
        agent: &'a str,
        scope_key: &'a str,
        since_ms: u64,
    ) -> seb_store::StoreFuture<'a, Vec<seb_store::CertifiedChange>> {
        self.one().net_effect_window(agent, scope_key, since_ms)
    }
    fn net_effect_append(
        &self,
        change: seb_store::CertifiedChange,
        since_ms: u64,
        seen_seq: Option<u64>,
    ) -> seb_store::StoreFuture<'_, seb_store::NetEffectAppend> {
        // Hold every append back, so that both proposals have been scored against the
        // same (empty) window before either is accounted: the race is certain, not lucky.
        let store = self.one().clone();
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            store.net_effect_append(change, since_ms, seen_seq).await
        })
    }
    fn net_effect_prune(&self, before_ms: u64) -> seb_store::StoreFuture<'_, u64> {
        self.one().net_effect_prune(before_ms)
    }
}

impl Store for Alternating {
    fn admission(&self) -> Option<&dyn seb_store::admission::AdmissionState> {
        // Proposals live in the first pool; the net-effect log alternates between both.
        self.stores[0].admission()
    }
    fn backend(&self) -> &'static str {
        "postgres x2"
    }
    fn epochs(&self) -> seb_store::StoreFuture<'_, seb_store::Epochs> {
        self.one().epochs()
    }
    fn epoch_check<'a>(
        &'a self,
        cid: &'a str,
        agent: &'a str,
    ) -> seb_store::StoreFuture<'a, seb_store::EpochCheck> {
        self.one().epoch_check(cid, agent)
    }
    fn bump_policy_epoch(
        &self,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> seb_store::StoreFuture<'_, seb_store::Epochs> {
        self.one().bump_policy_epoch(at_ms, record)
    }
    fn revoke(
        &self,
        what: seb_store::Revocation,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> seb_store::StoreFuture<'_, seb_store::Epochs> {
        self.one().revoke(what, at_ms, record)
    }
    fn revocations(&self) -> seb_store::StoreFuture<'_, (Vec<String>, Vec<String>)> {
        self.one().revocations()
    }
    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> seb_store::StoreFuture<'a, bool> {
        self.one().is_reserved(cid, nonce)
    }
    fn reserve(
        &self,
        r: seb_store::Reservation,
    ) -> seb_store::StoreFuture<'_, seb_store::ReserveResult> {
        self.stores[0].reserve(r)
    }
    fn mark_dispatched<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        at_ms: u64,
    ) -> seb_store::StoreFuture<'a, ()> {
        self.stores[0].mark_dispatched(cid, nonce, at_ms)
    }
    fn complete<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> seb_store::StoreFuture<'a, u64> {
        self.stores[0].complete(cid, nonce, outcome_entry)
    }
    fn pending(&self) -> seb_store::StoreFuture<'_, Vec<seb_store::PendingExecution>> {
        self.stores[0].pending()
    }
    fn append(&self, entries: Vec<Vec<u8>>) -> seb_store::StoreFuture<'_, Vec<u64>> {
        self.one().append(entries)
    }
    fn ledger_size(&self) -> seb_store::StoreFuture<'_, u64> {
        self.one().ledger_size()
    }
    fn entries(&self, start: u64, end: u64) -> seb_store::StoreFuture<'_, Vec<Vec<u8>>> {
        self.one().entries(start, end)
    }
    fn root(&self, size: u64) -> seb_store::StoreFuture<'_, seb_store::Hash> {
        self.one().root(size)
    }
    fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> seb_store::StoreFuture<'_, Vec<seb_store::Hash>> {
        self.one().inclusion_proof(index, size)
    }
    fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> seb_store::StoreFuture<'_, Vec<seb_store::Hash>> {
        self.one().consistency_proof(old_size, new_size)
    }
    fn put_checkpoint(&self, cp: seb_store::StoredCheckpoint) -> seb_store::StoreFuture<'_, ()> {
        self.one().put_checkpoint(cp)
    }
    fn latest_checkpoint(&self) -> seb_store::StoreFuture<'_, Option<seb_store::StoredCheckpoint>> {
        self.one().latest_checkpoint()
    }
    fn checkpoints(&self) -> seb_store::StoreFuture<'_, Vec<seb_store::StoredCheckpoint>> {
        self.one().checkpoints()
    }
}
