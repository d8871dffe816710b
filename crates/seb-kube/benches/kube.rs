//! Kubernetes path benchmark against the real kube-apiserver v1.20.2 + etcd (seb-testinfra).
//!
//! Per execution, as the broker pipeline runs it: drift query (observe), mint
//! (ServiceAccount + Role + RoleBinding + TokenRequest), mutate (merge patch with the
//! resourceVersion precondition, sent with the minted token), retire (delete RoleBinding,
//! Role, ServiceAccount). Prints p50/p95/p99 per step over N sequential executions, then
//! throughput at 1, 8 and 32 concurrent executions, and the paper's figures beside them.
//!
//! `SEB_KUBE_BENCH_N` (default 200) sets N; `SEB_KUBE_BENCH_SECS` (default 5) the length of
//! each throughput run. Everything runs on this machine: 2 cores shared by etcd, the API
//! server and the broker code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DynamicObject, PostParams};
use kube::{Client, Config};
use seb_core::types::{Contract, Platform, RiskLevel};
use seb_kube::deploy::{DeployConfig, Subject};
use seb_kube::{KubeTarget, KubeTargetConfig, ScopePolicy};
use seb_target::{Execution, MutationStatus, ObserveRequest, Target};
use seb_testinfra::kube::KubeApiServer;
use serde_json::{Value, json};

const EXEC_NS: &str = "seb-exec";

fn config(s: &KubeApiServer, token: &str) -> Config {
    let mut c = Config::new(s.url().parse().unwrap());
    c.root_cert =
        Some(rustls_pemfile::certs(&mut s.ca_pem()).map(|c| c.unwrap().to_vec()).collect());
    c.auth_info.token = Some(token.to_owned().into());
    c
}

fn execution(ns: &str, name: &str, value: u64, evidence: BTreeMap<String, Value>) -> Execution {
    let target = json!({"cluster": "bench", "api_version": "v1", "kind": "ConfigMap", "namespace": ns, "name": name});
    let params = json!({"data": {"n": value.to_string()}});
    Execution {
        cid: uuid::Uuid::new_v4().to_string(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        agent: "bench".into(),
        risk_level: RiskLevel::L2,
        platform: Platform::Kubernetes,
        op: "merge_patch".into(),
        target: target.clone(),
        params: params.clone(),
        contract: Contract {
            platform: Platform::Kubernetes,
            op: "merge_patch".into(),
            target,
            params,
            constraints: vec![],
            risk_level: RiskLevel::L2,
        },
        evidence,
        observed_version: None,
        break_glass: false,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Steps {
    observe: Duration,
    mint: Duration,
    mutate: Duration,
    retire: Duration,
}

/// One execution the way the broker runs it. With `admission`, admission's evidence read
/// comes first (untimed); without it (throughput runs) the drift read is the evidence.
async fn one(target: &KubeTarget, ns: &str, name: &str, value: u64, admission: bool) -> Steps {
    let evidence = if admission {
        let pointers = vec![String::new()];
        let req = ObserveRequest {
            op: "merge_patch".into(),
            target: json!({"cluster": "bench", "api_version": "v1", "kind": "ConfigMap", "namespace": ns, "name": name}),
            params: json!({}),
            pointers,
        };
        target.observe(&req).await.unwrap().projection
    } else {
        BTreeMap::from([(String::new(), Value::Null)])
    };
    let mut exec = execution(ns, name, value, evidence);
    let t0 = Instant::now();
    let obs = target.observe(&exec.observe_request()).await.unwrap();
    if !admission {
        exec.evidence = obs.projection.clone();
    }
    seb_core::drift::compare(&exec.evidence, &BTreeMap::new(), &obs.projection).unwrap();
    exec.observed_version = obs.version;
    let t1 = Instant::now();
    let id = target.mint(&exec).await.unwrap();
    let t2 = Instant::now();
    let r = target.mutate(&exec, &id).await.unwrap();
    let t3 = Instant::now();
    target.retire(&exec, id).await.unwrap();
    let t4 = Instant::now();
    assert_eq!(r.status, MutationStatus::Applied, "{:?}", r.error);
    Steps { observe: t1 - t0, mint: t2 - t1, mutate: t3 - t2, retire: t4 - t3 }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn row(name: &str, mut v: Vec<f64>, paper: &str) {
    let (a, b, c) = (pct(&mut v, 0.50), pct(&mut v, 0.95), pct(&mut v, 0.99));
    println!("| {name:<44} | {a:>8.2} | {b:>8.2} | {c:>8.2} | {paper:<22} |");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    seb_kube::install_crypto_provider();
    let n: usize =
        std::env::var("SEB_KUBE_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let secs: u64 =
        std::env::var("SEB_KUBE_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let server = KubeApiServer::start().expect("kube-apiserver");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let admin = Client::try_from(config(&server, &server.tokens().admin)).unwrap();
        let ns = "bench".to_owned();
        let mut cfg = DeployConfig::new(vec![ns.clone()], String::from_utf8_lossy(server.ca_pem()).into_owned());
        cfg.broker = Subject::User("broker".into());
        cfg.exec_namespace = EXEC_NS.into();
        cfg.emit_admission_policy = false;
        let objs: Vec<Value> = seb_kube::deploy::objects(&cfg).into_iter().filter(|o| o["kind"] != "ValidatingWebhookConfiguration").collect();
        seb_kube::deploy::apply(&admin, &objs).await.unwrap();
        let cms: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()));
        for i in 0..32 {
            let cm: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"n": "0"}})).unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        let target = Arc::new(
            KubeTarget::new(KubeTargetConfig::new("bench", EXEC_NS, ScopePolicy::new([ns.clone()])), config(&server, &server.tokens().broker)).unwrap(),
        );
        // Warm-up (discovery cache, connections, RBAC caches).
        for i in 0..10 {
            one(&target, &ns, "cm-0", i, true).await;
        }
        let mut steps = Vec::with_capacity(n);
        for i in 0..n {
            steps.push(one(&target, &ns, "cm-0", 100 + i as u64, true).await);
        }
        // TokenRequest alone, on an existing ServiceAccount, with the broker's rights.
        let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), EXEC_NS);
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "bench-sa"}})).unwrap();
        sas.create(&PostParams::default(), &sa).await.unwrap();
        let broker = Client::try_from(config(&server, &server.tokens().broker)).unwrap();
        let bsas: Api<ServiceAccount> = Api::namespaced(broker, EXEC_NS);
        let tr: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}})).unwrap();
        let mut token_only = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            bsas.create_token_request("bench-sa", &PostParams::default(), &tr).await.unwrap();
            token_only.push(ms(t.elapsed()));
        }

        println!();
        println!("SEB Kubernetes path, kube-apiserver v1.20.2 + etcd 3.4 on loopback, 2 cores shared; N = {n} sequential executions (merge_patch of a ConfigMap)");
        println!();
        println!("| step (ms)                                    |      p50 |      p95 |      p99 | paper (EKS 1.28) p50   |");
        println!("|----------------------------------------------|----------|----------|----------|------------------------|");
        row("drift query (observe, GET)", steps.iter().map(|s| ms(s.observe)).collect(), "12.1");
        row("mint (SA + Role + RoleBinding + TokenRequest)", steps.iter().map(|s| ms(s.mint)).collect(), "12.1 (TokenRequest)");
        row("  of which TokenRequest alone", token_only, "12.1 (p99 18.3)");
        row("mutate (PATCH with the minted token)", steps.iter().map(|s| ms(s.mutate)).collect(), "-");
        row("retire (delete RoleBinding, Role, SA)", steps.iter().map(|s| ms(s.retire)).collect(), "-");
        row("broker overhead = observe + mint + retire", steps.iter().map(|s| ms(s.observe + s.mint + s.retire)).collect(), "28.2 / 36.5 / 47.1");
        row("end to end (observe + mint + mutate + retire)", steps.iter().map(|s| ms(s.observe + s.mint + s.mutate + s.retire)).collect(), "-");
        println!();
        println!("| concurrent executions | executions | seconds | executions/s | paper                          |");
        println!("|-----------------------|------------|---------|--------------|--------------------------------|");
        for c in [1usize, 8, 32] {
            let done = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..c {
                let (target, done, ns) = (target.clone(), done.clone(), ns.clone());
                tasks.push(tokio::spawn(async move {
                    let name = format!("cm-{w}");
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        one(&target, &ns, &name, 1_000_000 + i, false).await;
                        i += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let el = start.elapsed().as_secs_f64();
            let d = done.load(Ordering::Relaxed);
            let paper = if c == 32 { "820 req/s at 80 threads (3 VMs)" } else { "" };
            println!("| {c:>21} | {d:>10} | {el:>7.1} | {:>12.1} | {paper:<30} |", d as f64 / el);
        }
        println!();
    });
    drop(server);
}
