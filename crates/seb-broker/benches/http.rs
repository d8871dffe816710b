//! The full pipeline over real HTTP with the in-memory test double and the embedded SQLite
//! store (synchronous=FULL): per-step p50/p95/p99 and throughput at 1, 8 and 64 concurrent
//! clients. Run: `cargo bench -p seb-broker --features test-double --bench http`
//! (`SEB_BENCH_SCALE=0.1` for a quick run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seb_broker::clock::SystemClock;
use seb_broker::engine::{Broker, EngineSettings, TrustRoots};
use seb_broker::http::{AppState, router};
use seb_broker::records::RecordSigner;
use seb_core::certificate::encode_nonce;
use seb_core::digest::Digest;
use seb_core::json;
use seb_core::keys::SigningKey;
use seb_core::pipeline::sign_request;
use seb_core::types::*;
use seb_store::sqlite::SqliteStore;
use seb_target::test_double::TestTarget;
use serde_json::{Value, json};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn presentation(i: usize, issuer: &SigningKey, agent: &SigningKey) -> Vec<u8> {
    let name = format!("obj-{i}");
    let contract = Contract {
        platform: Platform::Test,
        op: "set".into(),
        target: json!({"name": name}),
        params: json!({"value": {"v": 1}}),
        constraints: vec![],
        risk_level: RiskLevel::L1,
    };
    let projection: BTreeMap<String, Value> = [("/v".to_owned(), json!(0))].into();
    let now = now_ms();
    let mut seed = [0u8; 24];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let cert = CertificatePayload {
        version: 1,
        cid: uuid::Uuid::new_v4().to_string(),
        nonce: encode_nonce(&seed),
        issuer: Issuer { name: "bench".into(), kid: issuer.kid() },
        subject: Subject { agent: "agent".into(), public_key: agent.public_key() },
        contract_digest: contract.digest().unwrap(),
        contract,
        evidence: Evidence {
            digest: Digest::of_json(&projection).unwrap(),
            projection,
            observed_at_ms: now,
            tolerance: BTreeMap::new(),
        },
        validity: Validity { not_before: now / 1000 - 5, not_after: now / 1000 + 295 },
        policy_epoch: 0,
        revocation_epoch: 0,
        cert_path: CertPath::Policy,
        attestations: vec![],
        issued_at_ms: now,
    };
    let request = ExecRequest {
        cid: cert.cid.clone(),
        nonce: cert.nonce.clone(),
        op: "set".into(),
        target: cert.contract.target.clone(),
        params: cert.contract.params.clone(),
        caller: "agent".into(),
        t_exec_ms: now,
    };
    let proof = sign_request(&request, agent).unwrap();
    json::canonical(&Presentation { certificate: cert.sign(issuer).unwrap(), request, proof })
        .unwrap()
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx.min(v.len() - 1)]
}

#[tokio::main]
async fn main() {
    let scale: f64 =
        std::env::var("SEB_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("bench.db"), Default::default()).unwrap());
    let target = Arc::new(TestTarget::in_memory());
    let issuer = SigningKey::from_seed(&[1; 32]);
    let agent = SigningKey::from_seed(&[2; 32]);
    let trust =
        TrustRoots { issuers: [issuer.public_key()].into_iter().collect(), ..Default::default() };
    let broker = Arc::new(Broker::new(
        store,
        vec![target.clone()],
        RecordSigner::new(SigningKey::from_seed(&[3; 32])),
        trust,
        EngineSettings::default(),
        Arc::new(SystemClock::default()),
    ));
    let state = AppState { broker, ready: Arc::new(AtomicBool::new(true)) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/executions", listener.local_addr().unwrap());
    // Every client of the benchmark is 127.0.0.1: room for its 64 connections and more.
    let limits = seb_broker::ServeLimits { max_connections_per_client: 512, ..Default::default() };
    tokio::spawn(seb_broker::serve_with_limits(
        listener,
        router(state, None),
        None,
        limits,
        std::future::pending(),
    ));

    println!(
        "SEB broker over HTTP: test double (in memory) + SQLite (WAL, synchronous=FULL), 2 cores"
    );
    println!(
        "{:>7} {:>7} {:>10} | {:>26} | {:>26} | {:>26}",
        "clients",
        "n",
        "exec/s",
        "client latency p50/p95/p99 ms",
        "broker overhead p50/p95/p99",
        "reserve p50/p95/p99"
    );
    let mut next_obj = 0usize;
    let mut all_steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (clients, n) in [(1usize, 400usize), (8, 3000), (64, 6000)] {
        let n = ((n as f64) * scale).max(clients as f64) as usize;
        for i in next_obj..next_obj + n {
            target.insecure_direct_write(&format!("obj-{i}"), json!({"v": 0})).unwrap();
        }
        let bodies: VecDeque<Vec<u8>> =
            (next_obj..next_obj + n).map(|i| presentation(i, &issuer, &agent)).collect();
        next_obj += n;
        // Warm-up request outside the measurement.
        let queue = Arc::new(Mutex::new(bodies));
        let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
        let results = Arc::new(Mutex::new(Vec::<(u64, BTreeMap<String, u64>)>::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (queue, client, url, results) =
                (queue.clone(), client.clone(), url.clone(), results.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(body) = queue.lock().unwrap().pop_front() else { break };
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status();
                    let v: Value = resp.json().await.unwrap();
                    let lat = t.elapsed().as_micros() as u64;
                    assert!(status.is_success(), "{v}");
                    assert_eq!(v["outcome"]["status"], "applied", "{v}");
                    let timings: BTreeMap<String, u64> =
                        serde_json::from_value(v["timings_us"].clone()).unwrap();
                    results.lock().unwrap().push((lat, timings));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let wall = start.elapsed();
        let results = std::mem::take(&mut *results.lock().unwrap());
        let mut lat: Vec<u64> = results.iter().map(|r| r.0).collect();
        let platform = ["observe", "mint", "mutate", "retire"];
        let mut overhead: Vec<u64> = results
            .iter()
            .map(|(_, t)| {
                t["total"]
                    .saturating_sub(platform.iter().map(|p| t.get(*p).copied().unwrap_or(0)).sum())
            })
            .collect();
        let mut reserve: Vec<u64> = results.iter().map(|r| r.1["reserve"]).collect();
        for (_, t) in &results {
            for (k, v) in t {
                all_steps.entry(k.clone()).or_default().push(*v);
            }
        }
        let ms = |v: u64| v as f64 / 1000.0;
        println!(
            "{:>7} {:>7} {:>10.0} | {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2}",
            clients,
            n,
            n as f64 / wall.as_secs_f64(),
            ms(pct(&mut lat, 0.5)),
            ms(pct(&mut lat, 0.95)),
            ms(pct(&mut lat, 0.99)),
            ms(pct(&mut overhead, 0.5)),
            ms(pct(&mut overhead, 0.95)),
            ms(pct(&mut overhead, 0.99)),
            ms(pct(&mut reserve, 0.5)),
            ms(pct(&mut reserve, 0.95)),
            ms(pct(&mut reserve, 0.99)),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("\nper step over all runs (ms): p50 / p95 / p99");
    for (k, mut v) in all_steps {
        println!(
            "{k:>14}: {:>8.3} {:>8.3} {:>8.3}",
            pct(&mut v, 0.5) as f64 / 1e3,
            pct(&mut v, 0.95) as f64 / 1e3,
            pct(&mut v, 0.99) as f64 / 1e3
        );
    }
    println!(
        "\npaper (PostgreSQL, EKS): nonce reservation 3.20 ms p50, ledger write 3.50 ms p50, 820 req/s"
    );
}
