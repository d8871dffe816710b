//! The full pipeline over real HTTP with the in-memory test double: per-step p50/p95/p99 and
//! throughput at 1, 8 and 64 concurrent clients.
//!
//! - default: one broker on the embedded SQLite store (synchronous=FULL);
//! - `SEB_BENCH_STORE=postgres`: `SEB_BENCH_REPLICAS` brokers (default 3), each with its own
//!   `PostgresStore` (pool, lease, group-commit writer) and HTTP listener, on ONE real
//!   PostgreSQL started by seb-testinfra (fsync and synchronous_commit on); the clients
//!   spread their presentations over the replicas, and the run prints the database's own
//!   share of the machine's CPU.
//!
//! Run: `cargo bench -p seb-broker --features test-double --bench http`
//! (`SEB_BENCH_SCALE=0.1` for a quick run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

/// The `seb` binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/broker.rs"]
mod broker;
#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/floor.rs"]
#[allow(dead_code)]
mod floor;
#[path = "support/presentation.rs"]
mod presentation;
use presentation::presentation;
#[path = "support/stats.rs"]
mod stats;
use stats::pct;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seb_broker::http::{AppState, router};
use seb_core::keys::SigningKey;
use seb_store::Store;
use seb_store::sqlite::SqliteStore;
use seb_store_postgres::{PostgresOptions, PostgresStore};
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let scale: f64 =
        std::env::var("SEB_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let postgres = std::env::var("SEB_BENCH_STORE").is_ok_and(|s| s == "postgres");
    let replicas: usize = std::env::var("SEB_BENCH_REPLICAS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if postgres { 3 } else { 1 })
        .max(1);
    let dir = tempfile::tempdir().unwrap();
    let pg = postgres.then(|| seb_testinfra::postgres::Postgres::start().unwrap());
    let db_url = pg.as_ref().map(|pg| pg.fresh_database().unwrap());
    let issuer = SigningKey::from_seed(&[1; 32]);
    let agent = SigningKey::from_seed(&[2; 32]);
    // Each replica: its own store handle, target (every object exists in each) and listener.
    let mut urls = Vec::new();
    let mut targets = Vec::new();
    for _ in 0..replicas {
        let store: Arc<dyn Store> = match &db_url {
            Some(url) => {
                Arc::new(PostgresStore::connect(url, PostgresOptions::default()).await.unwrap())
            }
            None => Arc::new(
                SqliteStore::open(&dir.path().join("bench.db"), Default::default()).unwrap(),
            ),
        };
        let (broker, target) = broker::broker(store, &issuer);
        let state = AppState { broker, ready: Arc::new(AtomicBool::new(true)) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}/v1/executions", listener.local_addr().unwrap()));
        // Every client of the benchmark is 127.0.0.1: room for its 64 connections and more.
        let limits =
            seb_broker::ServeLimits { max_connections_per_client: 512, ..Default::default() };
        tokio::spawn(seb_broker::serve_with_limits(
            listener,
            router(state, None),
            None,
            limits,
            std::future::pending(),
        ));
        targets.push(target);
    }
    let urls = Arc::new(urls);

    if postgres {
        println!(
            "SEB brokers over HTTP: {replicas} replicas, each with its own PostgresStore, on one \
             PostgreSQL (fsync on, synchronous_commit on) + test double (in memory)"
        );
    } else {
        println!("SEB broker over HTTP: test double (in memory) + SQLite (WAL, synchronous=FULL)");
    }
    let fl = floor::Floor::measure(dir.path());
    fl.print();
    println!(
        "{:>7} {:>7} {:>10} {:>8} | {:>26} | {:>26} | {:>26}",
        "clients",
        "n",
        "exec/s",
        "% floor",
        "client latency p50/p95/p99 ms",
        "broker overhead p50/p95/p99",
        "reserve p50/p95/p99"
    );
    let mut next_obj = 0usize;
    let mut all_steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (clients, n) in [(1usize, 400usize), (8, 3000), (64, 6000)] {
        let n = ((n as f64) * scale).max(clients as f64) as usize;
        for i in next_obj..next_obj + n {
            for target in &targets {
                target.insecure_direct_write(&format!("obj-{i}"), json!({"v": 0})).unwrap();
            }
        }
        let bodies: VecDeque<Vec<u8>> =
            (next_obj..next_obj + n).map(|i| presentation(i, &issuer, &agent)).collect();
        next_obj += n;
        // Warm-up request outside the measurement.
        let queue = Arc::new(Mutex::new(bodies));
        let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
        let results = Arc::new(Mutex::new(Vec::<(u64, BTreeMap<String, u64>)>::new()));
        let cpu_before = cpu::sample();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (queue, client, urls, results) =
                (queue.clone(), client.clone(), urls.clone(), results.clone());
            tasks.push(tokio::spawn(async move {
                let mut k = c;
                loop {
                    let Some(body) = queue.lock().unwrap().pop_front() else { break };
                    let url = &urls[k % urls.len()];
                    k += 1;
                    let t = Instant::now();
                    let resp = client
                        .post(url)
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
        let cpu_used = cpu::sample().since(&cpu_before);
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
            "{:>7} {:>7} {:>10.0} {:>7.1}% | {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2}",
            clients,
            n,
            n as f64 / wall.as_secs_f64(),
            fl.throughput_pct(n as f64 / wall.as_secs_f64()),
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
        cpu_used.print(wall, n, postgres);
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
        "\npeak RSS of the process (broker and its 64 clients together): {} MB",
        peak_rss_kb() / 1024
    );
    println!(
        "\npaper (PostgreSQL, EKS): nonce reservation 3.20 ms p50, ledger write 3.50 ms p50, 820 req/s"
    );
}

/// Peak resident set size of this process (`VmHWM`), KiB; 0 where /proc is absent.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
