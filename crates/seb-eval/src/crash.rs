//! Experiment 7: crash injection at every step. The broker runs in a child process (this
//! binary's hidden `crash-child` subcommand) built with the crash points; `SEB_CRASH_AT`
//! makes it `abort()` at the named step. The parent then restarts a broker on the same
//! SQLite store and target (the file-backed test double, or the same kube-apiserver), runs
//! `Broker::recover()` and the retirement queue, re-presents the same certificate (must be
//! refused), and checks: no duplicate mutation, the recovered status is what the target shows
//! (never `uncertain` for a readable object), no execution identity is left, every admitted
//! execution has exactly one outcome record, the ledger verifies.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use seb_core::envelope::PayloadType;
use seb_core::keys::TrustedKeys;
use seb_core::types::{Contract, OutcomeStatus, RiskLevel};
use seb_ledger::verify::{LedgerExport, verify_export};
use seb_store::Store;
use seb_target::test_double::TestTarget;
use seb_target::{ObserveRequest, PlatformProfile as _, Target};
use serde_json::{Value, json};

use crate::fixtures::{self, Cert};
use crate::platform::{EXEC_NS, KubeConn, Workload};
use crate::results::CrashStep;
use crate::rng::Rng;

/// The crash points of the broker engine, in pipeline order.
pub const STEPS: [&str; 5] =
    ["after_reserve", "after_mint", "after_dispatch", "after_mutate", "after_retire"];

const BODY: &str = "body.json";
const TARGET: &str = "target.json";
/// Present on Kubernetes runs: the [`KubeConn`] the child builds its target from.
const KUBE: &str = "kube.json";

/// The target a broker on `dir` drives: the cluster in `dir/kube.json`, or the file-backed
/// test double.
fn open_target(dir: &Path) -> Result<Arc<dyn Target>> {
    let kube = dir.join(KUBE);
    if kube.exists() {
        let conn: KubeConn = serde_json::from_slice(&std::fs::read(&kube)?).context("kube.json")?;
        return Ok(Arc::new(conn.target()?));
    }
    Ok(Arc::new(TestTarget::open(&dir.join(TARGET)).map_err(|e| anyhow!("{e}"))?))
}

/// The child: one execution of `dir/body.json`, printing the result.
pub async fn child(dir: &Path) -> Result<()> {
    let store = fixtures::sqlite(dir)?;
    let broker = fixtures::broker(store, open_target(dir)?, fixtures::settings());
    let body = std::fs::read(dir.join(BODY)).context("body")?;
    match broker.execute(&body, "crash-child").await {
        Ok(e) => println!("admitted {:?}", e.outcome.status),
        Err(r) => println!("refused {:?}: {}", r.failed_check, r.reason),
    }
    Ok(())
}

fn wait(child: &mut std::process::Child, limit: Duration) -> Result<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return Err(anyhow!("crash child did not finish in {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where the crash experiment runs: the test double, or a real kube-apiserver.
enum Platform<'a> {
    TestDouble,
    Kube(&'a Workload),
}

impl Platform<'_> {
    /// Object `name` for crash `k`, and its certificate: the test double's `set`, or on
    /// Kubernetes a Deployment whose container gets one argument appended by a JSON patch (a
    /// second application would append it again: visible).
    async fn prepare(&self, dir: &Path, rng: &mut Rng, name: &str, k: usize) -> Result<Cert> {
        match self {
            Self::TestDouble => {
                let t = TestTarget::open(&dir.join(TARGET)).map_err(|e| anyhow!("{e}"))?;
                t.insecure_direct_write(name, json!({"replicas": 3}))
                    .map_err(|e| anyhow!("{e}"))?;
                let contract = fixtures::set_contract(name, json!({"replicas": 4 + k}), vec![]);
                Cert::new(rng, contract, [("/replicas".to_owned(), json!(3))].into())
            }
            Self::Kube(w) => {
                let Workload::Kube { target, ns, admin, .. } = w else {
                    return Err(anyhow!("not a Kubernetes workload"));
                };
                deployments(admin, ns)
                    .create(
                        &kube::api::PostParams::default(),
                        &serde_json::from_value(json!({
                            "apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": name, "labels": {"app": name}},
                            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                     "template": {"metadata": {"labels": {"app": name}},
                                                  "spec": {"containers": [{"name": "c", "image": "registry.local/c:1", "args": ["serve"]}]}}}}))?,
                    )
                    .await
                    .map_err(|e| anyhow!("create deployment: {e}"))?;
                let t = json!({"cluster": "eval", "api_version": "apps/v1", "kind": "Deployment", "namespace": ns, "name": name});
                let p = json!([{"op": "add", "path": "/spec/template/spec/containers/0/args/1", "value": "exec"}]);
                let (t, p) = seb_kube::KubeProfile
                    .compile("json_patch", &t, &p)
                    .map_err(|e| anyhow!("compile: {e}"))?;
                let req = ObserveRequest {
                    op: "json_patch".into(),
                    target: t.clone(),
                    params: p.clone(),
                    pointers: seb_kube::KubeProfile.default_pointers("json_patch", &t, &p),
                };
                let observed =
                    target.observe(&req).await.map_err(|e| anyhow!("admission observe: {e}"))?;
                let contract = Contract {
                    platform: seb_core::types::Platform::Kubernetes,
                    op: "json_patch".into(),
                    target: t,
                    params: p,
                    constraints: vec![],
                    risk_level: RiskLevel::L1,
                };
                Cert::new(rng, contract, observed.projection)
            }
        }
    }

    /// How many times the mutation of `cid` on object `name` shows on the target.
    async fn applications(&self, dir: &Path, cid: &str, name: &str) -> Result<usize> {
        match self {
            Self::TestDouble => {
                let t = TestTarget::open(&dir.join(TARGET)).map_err(|e| anyhow!("{e}"))?;
                Ok(t.mutations()
                    .map_err(|e| anyhow!("{e}"))?
                    .iter()
                    .filter(|m| m.cid == cid)
                    .count())
            }
            Self::Kube(Workload::Kube { ns, admin, .. }) => {
                let d = deployments(admin, ns)
                    .get(name)
                    .await
                    .map_err(|e| anyhow!("read deployment: {e}"))?;
                let v = serde_json::to_value(d)?;
                Ok(v.pointer("/spec/template/spec/containers/0/args")
                    .and_then(Value::as_array)
                    .map_or(0, |a| a.iter().filter(|x| x.as_str() == Some("exec")).count()))
            }
            Self::Kube(_) => Err(anyhow!("not a Kubernetes workload")),
        }
    }

    /// Identities of this execution still alive on the platform: the test double's tokens;
    /// on Kubernetes its ServiceAccount, Role and RoleBinding.
    async fn live_identities(&self, dir: &Path, cid: &str, nonce: &str) -> Result<usize> {
        match self {
            Self::TestDouble => {
                let t = TestTarget::open(&dir.join(TARGET)).map_err(|e| anyhow!("{e}"))?;
                t.live_tokens().map_err(|e| anyhow!("{e}"))
            }
            Self::Kube(Workload::Kube { ns, admin, .. }) => {
                use k8s_openapi::api::core::v1::ServiceAccount;
                use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
                let name = seb_kube::model::identity_name(cid, nonce);
                let gone = |r: Result<Option<()>, kube::Error>| -> Result<usize> {
                    Ok(usize::from(r.map_err(|e| anyhow!("read identity: {e}"))?.is_some()))
                };
                let sa = kube::Api::<ServiceAccount>::namespaced(admin.clone(), EXEC_NS);
                let role = kube::Api::<Role>::namespaced(admin.clone(), ns);
                let rb = kube::Api::<RoleBinding>::namespaced(admin.clone(), ns);
                Ok(gone(sa.get_opt(&name).await.map(|o| o.map(drop)))?
                    + gone(role.get_opt(&name).await.map(|o| o.map(drop)))?
                    + gone(rb.get_opt(&name).await.map(|o| o.map(drop)))?)
            }
            Self::Kube(_) => Err(anyhow!("not a Kubernetes workload")),
        }
    }
}

fn deployments(admin: &kube::Client, ns: &str) -> kube::Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
    kube::Api::namespaced_with(admin.clone(), ns, &ar)
}

/// `crashes` crashes at `step` on the test double, all in one store and one target so the
/// ledger accumulates.
pub async fn run_step(exe: &Path, step: &str, crashes: usize, seed: u64) -> Result<CrashStep> {
    run(exe, step, crashes, seed, Platform::TestDouble).await
}

/// The same on a real kube-apiserver (`w` from [`Workload::kube`]), one Deployment per crash.
pub async fn run_step_kube(
    exe: &Path,
    w: &Workload,
    step: &str,
    crashes: usize,
    seed: u64,
) -> Result<CrashStep> {
    let Workload::Kube { .. } = w else { return Err(anyhow!("not a Kubernetes workload")) };
    run(exe, step, crashes, seed, Platform::Kube(w)).await
}

async fn run(
    exe: &Path,
    step: &str,
    crashes: usize,
    seed: u64,
    platform: Platform<'_>,
) -> Result<CrashStep> {
    let dir = tempfile::tempdir()?;
    let mut rng = Rng::new(seed);
    let label = match platform {
        Platform::TestDouble => step.to_owned(),
        Platform::Kube(_) => format!("kubernetes {step}"),
    };
    let mut out = CrashStep { step: label, crashes, ..CrashStep::default() };
    if let Platform::Kube(Workload::Kube { conn, .. }) = &platform {
        std::fs::write(dir.path().join(KUBE), serde_json::to_vec(conn)?)?;
    }
    for k in 0..crashes {
        let name = format!("crash-{}-{k}", step.replace('_', "-"));
        let cert = platform.prepare(dir.path(), &mut rng, &name, k).await?;
        let body = cert.present()?;
        std::fs::write(dir.path().join(BODY), &body)?;
        let mut child = std::process::Command::new(exe)
            .arg("crash-child")
            .arg("--dir")
            .arg(dir.path())
            .env("SEB_CRASH_AT", step)
            .env_remove("SEB_TEST_TARGET_FAIL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", exe.display()))?;
        let status = wait(&mut child, Duration::from_secs(120))?;
        // Aborted by a signal (SIGABRT): no exit code.
        if !status.success() && status.code().is_none() {
            out.aborted += 1;
        } else {
            let mut s = String::new();
            if let Some(mut e) = child.stdout.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut s);
            }
            out.problems.push(format!("crash {k}: child did not abort ({status}): {}", s.trim()));
        }
        // Restart on the same state; retirement is retried until it succeeds (bounded here).
        let store = fixtures::sqlite(dir.path())?;
        let broker =
            fixtures::broker(store.clone(), open_target(dir.path())?, fixtures::settings());
        let mut recovered = None;
        for (cid, _, st) in broker.recover().await.map_err(|e| anyhow!("recover: {e}"))? {
            *out.recovered_statuses.entry(format!("{st:?}").to_lowercase()).or_default() += 1;
            if cid == cert.payload.cid {
                recovered = Some(st);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while broker.retire_queued().await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match broker.execute(&body, "eval").await {
            Err(_) => out.replays_refused += 1,
            Ok(_) => out.problems.push(format!("crash {k}: replay after recovery admitted")),
        }
        let muts = platform.applications(dir.path(), &cert.payload.cid, &name).await?;
        if muts > 1 {
            out.duplicates += 1;
            out.problems.push(format!("crash {k}: {muts} mutations for one certificate"));
        }
        // The recorded status is what the target shows.
        let consistent = match recovered {
            Some(OutcomeStatus::Applied) => muts == 1,
            Some(OutcomeStatus::NotApplied | OutcomeStatus::NotAttempted) => muts == 0,
            _ => false,
        };
        if !consistent {
            out.problems.push(format!(
                "crash {k}: recovered as {recovered:?} while the target shows {muts} applications"
            ));
        }
        out.applied += muts.min(1);
        out.live_tokens_after_recovery +=
            platform.live_identities(dir.path(), &cert.payload.cid, &cert.payload.nonce).await?;
        drop(broker);
        drop(store);
    }
    // Ledger: one outcome per admitted execution, and the whole log verifies.
    let store = fixtures::sqlite(dir.path())?;
    let broker = fixtures::broker(store.clone(), open_target(dir.path())?, fixtures::settings());
    broker.checkpoint().await.map_err(|e| anyhow!("checkpoint: {e}"))?;
    let entries = fixtures::ledger(store.as_ref()).await?;
    let mut admits: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<(String, String), usize> = BTreeMap::new();
    let key = |p: &Value| {
        (
            p.get("cid").and_then(Value::as_str).unwrap_or_default().to_owned(),
            p.get("nonce").and_then(Value::as_str).unwrap_or_default().to_owned(),
        )
    };
    for (ty, p) in &entries {
        if ty == PayloadType::Decision.media_type()
            && p.get("decision").and_then(Value::as_str) == Some("admit")
        {
            *admits.entry(key(p)).or_default() += 1;
        } else if ty == PayloadType::Outcome.media_type() {
            *outcomes.entry(key(p)).or_default() += 1;
        }
    }
    for (k, n) in &admits {
        let o = outcomes.get(k).copied().unwrap_or(0);
        if *n != 1 || o != 1 {
            out.unrecorded_outcomes += 1;
            out.problems.push(format!("cid {}: {n} admit records, {o} outcome records", k.0));
        }
    }
    if admits.len() != crashes {
        out.problems.push(format!("{} admitted executions for {crashes} crashes", admits.len()));
    }
    let size = store.ledger_size().await.map_err(|e| anyhow!("{e}"))?;
    let raw = store.entries(0, size).await.map_err(|e| anyhow!("{e}"))?;
    let cps = store.checkpoints().await.map_err(|e| anyhow!("{e}"))?;
    let origin = broker.settings().origin.clone();
    let export = LedgerExport {
        origin: origin.clone(),
        entries: raw,
        checkpoints: cps.into_iter().map(|c| c.note).collect(),
    };
    let pk = fixtures::broker_key().public_key();
    let keys: TrustedKeys = [pk].into_iter().collect();
    match verify_export(&export, &keys, &origin, &pk, None) {
        Ok(r) => {
            out.ledger_verified = r.open_admits == 0;
            if r.open_admits > 0 {
                out.problems.push(format!("ledger verifies but {} admits are open", r.open_admits));
            }
        }
        Err(e) => out.problems.push(format!("ledger verification failed: {e}")),
    }
    out.ledger_entries = size;
    Ok(out)
}
