//! Admission latency (harness = false; prints p50/p99).
//!
//! - `policy path (memory store)`: `Admission::submit` of a policy-path (L1) proposal, end to
//!   end — parse, verify the agent's signature, compile, score, scope check, observation (an
//!   instant in-process stub: live observation is excluded), three Cedar evaluations, epoch
//!   read, nonce, certificate signature, issuance record signed and appended — on an
//!   in-memory SQLite store. The SAB paper's prototype reached 1.84 ms; the target is < 1 ms
//!   p99.
//! - `policy path (SQLite, synchronous=FULL)`: the same with the issuance record fsynced to
//!   a file-backed store before the certificate is released (one proposal at a time, so no
//!   group commit helps).
//! - `cedar`: one `evaluate_policy` (three authorisation requests) with a five-policy set.
//!
//! Run: `cargo bench -p seb-admission --bench admission`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use seb_admission::client::{AdminRequest, sign_admin, sign_proposal};
use seb_admission::clock::SystemClock;
use seb_admission::policy::PolicyInput;
use seb_admission::service::ProposalStatus;
use seb_admission::{Admission, AdmissionConfig, Platforms};
use seb_core::json;
use seb_core::keys::SigningKey;
use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Contract, Platform, Proposal};
use seb_store::Store;
use seb_store::sqlite::SqliteStore;
use seb_target::{
    ConsequenceFactors, Execution, Identity, MutationResult, ObserveRequest, OpProfile,
    PlatformProfile, Reconciled, Target, TargetError, TargetFuture,
};
use serde_json::{Value, json};

/// A platform whose observation is instant (live observation is excluded from the figure).
#[derive(Debug)]
struct Instant0;

impl ScopeCheck for Instant0 {
    fn check_scope(&self, _: &Contract) -> Result<(), String> {
        Ok(())
    }
}

impl PlatformProfile for Instant0 {
    fn platform(&self) -> Platform {
        Platform::Test
    }
    fn compile(
        &self,
        _op: &str,
        target: &Value,
        params: &Value,
    ) -> Result<(Value, Value), TargetError> {
        Ok((target.clone(), params.clone()))
    }
    fn default_pointers(&self, _: &str, _: &Value, _: &Value) -> Vec<String> {
        vec!["/spec/replicas".into(), "/spec/template/spec/containers/0/image".into()]
    }
    fn consequence(&self, _: &str, _: &Value, _: &Value) -> ConsequenceFactors {
        ConsequenceFactors {
            blast_radius: 0.2,
            privilege_expansion: 0.0,
            data_sensitivity: 0.1,
            irreversibility: 0.1,
            uncertainty: 0.1,
            reasons: vec!["bench".into()],
        }
    }
}

impl Target for Instant0 {
    fn platform(&self) -> Platform {
        Platform::Test
    }
    fn profile(&self, _: &str) -> Result<OpProfile, TargetError> {
        Ok(OpProfile { precondition: Some("version"), irreversible: false })
    }
    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        Box::pin(async move {
            let projection: BTreeMap<String, Value> =
                req.pointers.iter().map(|p| (p.clone(), json!(3))).collect();
            Ok(Observation { projection, version: Some("7".into()) })
        })
    }
    fn mint<'a>(&'a self, _: &'a Execution) -> TargetFuture<'a, Identity> {
        Box::pin(async { Err(TargetError::refused("bench")) })
    }
    fn mutate<'a>(&'a self, _: &'a Execution, _: &'a Identity) -> TargetFuture<'a, MutationResult> {
        Box::pin(async { Err(TargetError::refused("bench")) })
    }
    fn retire<'a>(&'a self, _: &'a Execution, _: Identity) -> TargetFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn reconcile<'a>(&'a self, _: &'a Execution) -> TargetFuture<'a, Reconciled> {
        Box::pin(async { Ok(Reconciled::Uncertain) })
    }
}

const POLICY: &str = r#"
@id("sre-may-propose")
permit(principal in SEB::Group::"sre", action == SEB::Action::"propose", resource == SEB::Platform::"test");
@id("no-deletes-from-web")
forbid(principal, action == SEB::Action::"propose", resource) when { principal.team == "web" && context.op == "delete" };
@id("big-scale-needs-a-human")
permit(principal, action == SEB::Action::"require_human", resource) when { context.op == "scale" && context.params.replicas > 50 };
@id("prod-privilege-needs-quorum")
permit(principal, action == SEB::Action::"require_quorum", resource) when { principal.environment == "prod" && context.factors.privilege_expansion > 500 };
@id("no-secrets")
forbid(principal, action == SEB::Action::"propose", resource) when { context.target has kind && context.target.kind == "Secret" };
"#;

fn pct(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

fn report(name: &str, v: Vec<Duration>) {
    let n = v.len();
    let (p50, p99, max) = pct(v);
    println!("{name:<44} n={n:<6} p50 {p50:>8.3} ms   p99 {p99:>8.3} ms   max {max:>8.3} ms");
}

async fn admission(store: Arc<dyn Store>, dir: &std::path::Path) -> (Arc<Admission>, SigningKey) {
    let agent = SigningKey::from_seed(&[2; 32]);
    let admin = SigningKey::from_seed(&[40; 32]);
    std::fs::write(
        dir.join("issuer.seed"),
        base64::engine::general_purpose::STANDARD.encode([1u8; 32]),
    )
    .unwrap();
    // Key files other users can read are refused.
    std::fs::set_permissions(
        dir.join("issuer.seed"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cfg = format!(
        "[admission]\nissuer_key_file = \"issuer.seed\"\n\n[[admission.agents]]\nname = \"bot\"\npublic_keys = [\"{}\"]\ngroups = [\"sre\"]\nattributes = {{ team = \"payments\", environment = \"prod\" }}\n\n[[admission.admins]]\nname = \"ops\"\npublic_key = \"{}\"\n",
        agent.public_key().to_base64(),
        admin.public_key().to_base64()
    );
    let cfg = AdmissionConfig::from_toml_str(&cfg, dir).unwrap();
    let mut platforms = Platforms::default();
    platforms.insert(Arc::new(Instant0));
    let a =
        Admission::open(&cfg, store, platforms, Arc::new(SystemClock::default())).await.unwrap();
    let req = AdminRequest {
        request_id: "bench".into(),
        admin: "ops".into(),
        at_ms: now_ms(),
        revoke: None,
        load_policy: Some(POLICY.into()),
        invite_approver: None,
        remove_approver: None,
    };
    let (body, sig) = sign_admin(&req, &admin).unwrap();
    a.load_policy(&body, Some(&sig)).await.unwrap();
    (a, agent)
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
    )
    .unwrap()
}

fn proposal_body(i: usize, agent: &SigningKey) -> Vec<u8> {
    let p = Proposal {
        proposal_id: format!("bench-{i}"),
        agent: "bot".into(),
        platform: Platform::Test,
        op: "scale".into(),
        target: json!({"cluster": "c1", "namespace": "shop", "kind": "Deployment", "name": "web"}),
        params: json!({"replicas": 3 + (i % 5)}),
        constraints: vec![],
        rationale: "bench".into(),
        at_ms: now_ms(),
    };
    json::canonical(&sign_proposal(&p, agent).unwrap()).unwrap()
}

async fn policy_path(name: &str, a: &Admission, agent: &SigningKey, n: usize, offset: usize) {
    // Signing the proposal is the agent's cost: done before the clock starts.
    let bodies: Vec<Vec<u8>> = (0..n + 100).map(|i| proposal_body(offset + i, agent)).collect();
    let mut lat = Vec::with_capacity(n);
    for (i, body) in bodies.iter().enumerate() {
        let t = Instant::now();
        let v = a.submit(body).await.unwrap();
        let d = t.elapsed();
        assert_eq!(v.status, ProposalStatus::Certified, "{v:?}");
        if i >= 100 {
            lat.push(d); // the first 100 warm up
        }
    }
    report(name, lat);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let n: usize =
            std::env::var("SEB_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
        let dir = tempfile::tempdir().unwrap();
        let mem: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let (a, agent) = admission(mem, dir.path()).await;
        policy_path("policy path (memory store)", &a, &agent, n, 0).await;

        // Cedar alone: three authorisation requests per evaluation.
        let score = seb_admission::scoring::ScoringConfig::default().score(&Instant0.consequence(
            "",
            &json!({}),
            &json!({}),
        ));
        let target =
            json!({"cluster": "c1", "namespace": "shop", "kind": "Deployment", "name": "web"});
        let params = json!({"replicas": 5});
        let input = PolicyInput {
            agent: "bot",
            platform: Platform::Test,
            op: "scale",
            target: &target,
            params: &params,
            constraint_paths: &[],
            level: score.level,
            score: &score,
            extra: None,
        };
        let mut lat = Vec::with_capacity(n * 5);
        for i in 0..n * 5 + 500 {
            let t = Instant::now();
            let o = a.evaluate_policy(&input).unwrap();
            let d = t.elapsed();
            assert!(o.permitted);
            if i >= 500 {
                lat.push(d);
            }
        }
        report("cedar: evaluate (3 requests, 5 policies)", lat);

        let file_dir = tempfile::tempdir().unwrap();
        let file: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&file_dir.path().join("seb.db"), Default::default()).unwrap(),
        );
        let (b, agent) = admission(file, dir.path()).await;
        policy_path("policy path (SQLite file, synchronous=FULL)", &b, &agent, n / 4, 1_000_000)
            .await;
    });
}
