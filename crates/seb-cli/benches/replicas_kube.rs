//! Several `seb serve` replicas on ONE real PostgreSQL against a real kube-apiserver, measured
//! from outside (issue 17): the webhook is served by replica 0 (as `seb deploy kubernetes`
//! installs it for a Service it cannot load-balance here), 64 client threads present 2,000
//! distinct certificates, each scaling the client's own Deployment 2 ↔ 3 from what it reads,
//! spread over the replicas round robin.
//!
//! Prints, for 1 and 3 replicas: executions/s, the client's latency p50/p95/p99 (the POST
//! only; the client's own read of the Deployment is outside it), the broker's per-step
//! timings (observe, mint, mutate — which includes the API server's call to the webhook —,
//! retire, reserve…), and the CPU each party used per execution (the brokers, PostgreSQL,
//! kube-apiserver, etcd).
//!
//! `cargo bench -p seb-cli --bench replicas_kube` (env: `SEB_BENCH_REPLICAS=3,1`,
//! `SEB_BENCH_CLIENTS=64`, `SEB_BENCH_EXECUTIONS=2000`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../seb-broker/tests/common/mod.rs"]
mod common;
#[path = "../../seb-broker/benches/support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../../seb-broker/benches/support/stats.rs"]
mod stats;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seb_core::certificate::encode_nonce;
use seb_core::types::{Contract, Platform, RiskLevel};
use seb_testinfra::kube::KubeApiServer;
use seb_testinfra::postgres::Postgres;
use serde_json::{Value, json};
use stats::pct;
use support::kube::{deploy_args, free_port, kube, namespace_with_deployments, seb_with};
use support::{Server, write_signing_key};

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A certificate (fresh cid and nonce) scaling Deployment `name` in `ns` from `from` to `to`.
fn scale_presentation(seq: usize, ns: &str, name: &str, from: u64, to: u64) -> Vec<u8> {
    let contract = Contract {
        platform: Platform::Kubernetes,
        op: "scale".into(),
        target: json!({"cluster": "test", "api_version": "apps/v1", "kind": "Deployment",
                       "namespace": ns, "name": name}),
        params: json!({"replicas": to}),
        constraints: vec![],
        risk_level: RiskLevel::new(1).unwrap(),
    };
    let mut c = common::Cert::with_contract(1, contract);
    c.payload.cid = uuid::Uuid::new_v4().to_string();
    let mut seed = [0u8; 24];
    seed[..8].copy_from_slice(&(seq as u64).to_le_bytes());
    seed[8..16].copy_from_slice(&now_ms().to_le_bytes());
    c.payload.nonce = encode_nonce(&seed);
    c.payload.evidence.projection = [("/spec/replicas".to_owned(), json!(from))].into();
    let now = now_ms();
    c.payload.validity.not_before = now / 1000 - 5;
    c.payload.validity.not_after = now / 1000 + 280;
    let c = c.fix();
    let mut r = c.request();
    r.t_exec_ms = now_ms();
    c.present_with(c.envelope(), r, &common::agent())
}

/// A replica in `d`: TLS (the API server calls its webhook), the Kubernetes target
/// protecting `ns`, the shared store.
fn replica(s: &KubeApiServer, d: &Path, port: u16, store: &str, ns: &str) -> Server {
    std::fs::create_dir_all(d).unwrap();
    let t = s.tokens();
    let ca = d.join("kube-ca.pem");
    std::fs::write(&ca, s.ca_pem()).unwrap();
    support::kube::write_broker_files(s, t, d, &ca);
    write_signing_key(d, "broker.seed", &common::broker_key());
    std::fs::write(
        d.join("seb.toml"),
        support::kube::broker_toml(
            port,
            store,
            ns,
            &format!("\n[trust]\nissuers = [\"{}\"]\n", common::issuer().public_key().to_base64()),
        )
        // Every client here, and the API server calling the webhook, is 127.0.0.1.
        .replacen("[broker]\n", "[broker]\nmax_connections_per_client = 512\n", 1),
    )
    .unwrap();
    support::serve(d, Some(&ca))
}

/// One execution as its client saw it: latency (µs) and the broker's step timings.
type Timed = (u64, BTreeMap<String, u64>);

struct Run {
    replicas: usize,
    executions: usize,
    wall: Duration,
    latency_us: Vec<u64>,
    steps: BTreeMap<String, Vec<u64>>,
    cpu: BTreeMap<String, u64>,
    /// CPU ticks per party over [`IDLE`] with the replicas up and no load.
    idle: BTreeMap<String, u64>,
}

/// How long the replicas are measured idle before the load starts.
const IDLE: Duration = Duration::from_secs(5);

fn run(s: &KubeApiServer, pg: &Postgres, replicas: usize, clients: usize, total: usize) -> Run {
    let admin = s.tokens().admin.clone();
    let db = pg.fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ns, deps) = namespace_with_deployments(&admin, "bench", clients);
    let port0 = free_port();
    let ca = d.join("kube-ca.pem");
    std::fs::write(&ca, s.ca_pem()).unwrap();
    let deploy = deploy_args(s, &ns, port0, &ca);
    let (code, out, err) = seb_with(&deploy, &["--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let servers: Vec<Server> = (0..replicas)
        .map(|k| {
            let port = if k == 0 { port0 } else { free_port() };
            replica(s, &d.join(format!("r{k}")), port, &db, &ns)
        })
        .collect();
    let urls: Arc<Vec<String>> = Arc::new(servers.iter().map(|r| r.url.clone()).collect());

    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<Timed>>> = Arc::default();
    let names = ["seb", "postgres", "kube-apiserver", "etcd"];
    // What the replicas cost with nothing to do (background duties, the store's sessions).
    let idle_before = cpu::ticks_of(&names);
    std::thread::sleep(IDLE);
    let idle_after = cpu::ticks_of(&names);
    let idle = names
        .iter()
        .map(|n| ((*n).to_owned(), idle_after[*n].saturating_sub(idle_before[*n])))
        .collect();
    let cpu_before = cpu::ticks_of(&names);
    let clients_before = cpu::sample().process;
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (urls, ns, deps, admin, ca, next, results) = (
                urls.clone(),
                ns.clone(),
                deps.clone(),
                admin.clone(),
                ca.clone(),
                next.clone(),
                results.clone(),
            );
            std::thread::spawn(move || {
                let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
                let client = reqwest::blocking::Client::builder()
                    .add_root_certificate(root)
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap();
                // This client's Deployment is only ever changed by this client.
                let (_, dep) = kube("GET", &format!("{deps}/w{i}"), &admin, None);
                let mut from = dep["spec"]["replicas"].as_u64().unwrap();
                let mut k = i;
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= total {
                        break;
                    }
                    let to = if from == 2 { 3 } else { 2 };
                    let body = scale_presentation(seq, &ns, &format!("w{i}"), from, to);
                    let t = Instant::now();
                    let r = client
                        .post(format!("{}/v1/executions", urls[k % urls.len()]))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .unwrap();
                    let status = r.status().as_u16();
                    let v: Value = r.json().unwrap_or(Value::Null);
                    let lat = t.elapsed().as_micros() as u64;
                    k += 1;
                    assert_eq!(status, 200, "{v}");
                    assert_eq!(v["outcome"]["status"], "applied", "{v}");
                    from = to;
                    let timings: BTreeMap<String, u64> =
                        serde_json::from_value(v["timings_us"].clone()).unwrap_or_default();
                    results.lock().unwrap().push((lat, timings));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = start.elapsed();
    let cpu_after = cpu::ticks_of(&names);
    let mut cpu: BTreeMap<String, u64> = names
        .iter()
        .map(|n| ((*n).to_owned(), cpu_after[*n].saturating_sub(cpu_before[*n])))
        .collect();
    // This process: the 64 client threads (TLS, JSON, signing each presentation).
    cpu.insert("clients".into(), cpu::sample().process.saturating_sub(clients_before));
    let results = std::mem::take(&mut *results.lock().unwrap());
    let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, t) in &results {
        for (k, v) in t {
            steps.entry(k.clone()).or_default().push(*v);
        }
    }
    // No `seb deploy --delete` between runs: without a controller manager the execution
    // namespace would stay `Terminating`; the next run's `--apply` replaces the webhook, and
    // the API server is this process's own.
    drop(servers);
    Run {
        replicas,
        executions: results.len(),
        wall,
        latency_us: results.iter().map(|r| r.0).collect(),
        steps,
        cpu,
        idle,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let replicas: Vec<usize> = std::env::var("SEB_BENCH_REPLICAS")
        .unwrap_or_else(|_| "3,1".into())
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    // One process (and so one API server of its own) per replica count: the previous run's
    // webhook would otherwise guard the next run's `seb deploy`.
    if replicas.len() > 1 {
        let me = std::env::current_exe().unwrap();
        for n in replicas {
            let st = std::process::Command::new(&me)
                .arg("--bench")
                .env("SEB_BENCH_REPLICAS", n.to_string())
                .status()
                .unwrap();
            assert!(st.success(), "the run with {n} replica(s) failed");
        }
        return;
    }
    let clients: usize = env_or("SEB_BENCH_CLIENTS", 64);
    let total: usize = env_or("SEB_BENCH_EXECUTIONS", 2000);
    let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
    let _iso = KubeApiServer::isolated();
    let pg = Postgres::start().unwrap();
    println!(
        "\nSEB replicas on one PostgreSQL against kube-apiserver: {clients} clients, {total} \
         distinct certificates (scale 2 <-> 3), webhook served by replica 0"
    );
    for n in replicas {
        let mut r = run(s, &pg, n, clients, total);
        let ms = |v: u64| v as f64 / 1000.0;
        println!(
            "\n{} replica(s): {} executions in {:.1} s = {:.1} exec/s; client latency p50 / p95 / p99 = {:.1} / {:.1} / {:.1} ms",
            r.replicas,
            r.executions,
            r.wall.as_secs_f64(),
            r.executions as f64 / r.wall.as_secs_f64(),
            ms(pct(&mut r.latency_us, 0.5)),
            ms(pct(&mut r.latency_us, 0.95)),
            ms(pct(&mut r.latency_us, 0.99)),
        );
        println!("  broker steps (ms) p50 / p95 / p99:");
        for (k, v) in &mut r.steps {
            println!(
                "  {k:>14}: {:>8.2} {:>8.2} {:>8.2}",
                ms(pct(v, 0.5)),
                ms(pct(v, 0.95)),
                ms(pct(v, 0.99))
            );
        }
        let n = r.executions.max(1) as f64;
        let line: Vec<String> =
            r.cpu.iter().map(|(k, t)| format!("{k} {:.2} ms", *t as f64 * 10.0 / n)).collect();
        println!("  CPU per execution: {}", line.join(", "));
        let idle: Vec<String> = r
            .idle
            .iter()
            .map(|(k, t)| format!("{k} {:.1} ms/s", *t as f64 * 10.0 / IDLE.as_secs_f64()))
            .collect();
        println!("  CPU while idle ({} s before the load): {}", IDLE.as_secs(), idle.join(", "));
    }
}
