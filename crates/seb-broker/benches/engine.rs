//! The engine in process (no HTTP): `Broker::execute` with the in-memory test double and the
//! embedded SQLite store (WAL, `synchronous=FULL` unless `SEB_BENCH_SYNC=normal`), at 1, 8
//! and 64 concurrent tasks, against the floor measured in the same run (see `support/floor.rs`).
//! Run: `cargo bench -p seb-broker --features test-double --bench engine`
//! (`SEB_BENCH_SCALE=0.1` for a quick run; `SEB_BENCH_PROFILE_ITERS=N` runs N sequential
//! executions after a warm-up and prints nothing else, for callgrind or perf).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

/// The `seb` binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/broker.rs"]
mod broker;
#[path = "support/floor.rs"]
mod floor;
#[path = "support/presentation.rs"]
mod presentation;
#[path = "support/stats.rs"]
mod stats;
use stats::pct;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use seb_core::keys::SigningKey;
use seb_store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use serde_json::json;

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench")
        && std::env::var("SEB_BENCH_PROFILE_ITERS").is_err()
    {
        println!(
            "engine bench: run with `cargo bench -p seb-broker --features test-double --bench engine`"
        );
        return;
    }
    let scale: f64 =
        std::env::var("SEB_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let profile: Option<usize> =
        std::env::var("SEB_BENCH_PROFILE_ITERS").ok().and_then(|s| s.parse().ok());
    let synchronous = match std::env::var("SEB_BENCH_SYNC").as_deref() {
        Ok("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions { synchronous, ..SqliteOptions::default() };
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"), opts).unwrap());
    let issuer = SigningKey::from_seed(&[1; 32]);
    let agent = SigningKey::from_seed(&[2; 32]);
    let (broker, target) = broker::broker(store, &issuer);
    let mut next_obj = 0usize;
    let mut make = |n: usize| {
        for i in next_obj..next_obj + n {
            target.insecure_direct_write(&format!("obj-{i}"), json!({"v": 0})).unwrap();
        }
        let bodies: Vec<Vec<u8>> = (next_obj..next_obj + n)
            .map(|i| presentation::presentation(i, &issuer, &agent))
            .collect();
        next_obj += n;
        bodies
    };
    if let Some(n) = profile {
        for b in make(50) {
            broker.execute(&b, "bench").await.unwrap();
        }
        // In chunks: under valgrind a presentation made long before would leave the skew.
        for _ in 0..n.div_ceil(20) {
            for b in make(20) {
                std::hint::black_box(broker.execute(&b, "bench").await.unwrap());
            }
        }
        return;
    }
    let fl = floor::Floor::measure(dir.path());
    println!(
        "SEB engine in process: test double (in memory) + SQLite (WAL, synchronous={synchronous:?})"
    );
    fl.print();
    println!(
        "{:>7} {:>6} {:>8} {:>9} | {:>22} | {:>22} | {:>8} {:>10}",
        "tasks",
        "n",
        "exec/s",
        "% floor",
        "total p50/p99 ms",
        "overhead p50/p99 ms",
        "CPU µs/x",
        "CPU % floor"
    );
    let mut all_steps: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    for (tasks, n) in [(1usize, 1000usize), (8, 4000), (64, 8000)] {
        let n = ((n as f64) * scale).max(tasks as f64) as usize;
        let bodies = make(n);
        let queue = Arc::new(std::sync::Mutex::new(bodies));
        let cpu0 = cpu_time_us();
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (queue, broker) = (queue.clone(), broker.clone());
            set.spawn(async move {
                let mut out = Vec::new();
                loop {
                    let Some(body) = queue.lock().unwrap().pop() else { break };
                    let e = broker.execute(&body, "bench").await.unwrap();
                    assert_eq!(e.outcome.status.as_str(), "applied");
                    out.push(e.timings_us);
                }
                out
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.extend(r.unwrap());
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu_per = (cpu_time_us() - cpu0) / n as f64;
        let platform = ["observe", "mint", "mutate", "retire"];
        let mut total: Vec<u64> = results.iter().map(|t| t["total"]).collect();
        let mut overhead: Vec<u64> = results
            .iter()
            .map(|t| {
                t["total"]
                    .saturating_sub(platform.iter().map(|p| t.get(*p).copied().unwrap_or(0)).sum())
            })
            .collect();
        for t in &results {
            for (k, v) in t {
                all_steps.entry(k).or_default().push(*v);
            }
        }
        let rate = n as f64 / wall;
        let ms = |v: u64| v as f64 / 1000.0;
        println!(
            "{:>7} {:>6} {:>8.0} {:>8.1}% | {:>10.3} {:>10.3} | {:>10.3} {:>10.3} | {:>8.0} {:>9.1}%",
            tasks,
            n,
            rate,
            fl.throughput_pct(rate),
            ms(pct(&mut total, 0.5)),
            ms(pct(&mut total, 0.99)),
            ms(pct(&mut overhead, 0.5)),
            ms(pct(&mut overhead, 0.99)),
            cpu_per,
            fl.cpu_pct(cpu_per),
        );
    }
    println!("per step over all runs, µs p50 / p99:");
    for (k, mut v) in all_steps {
        let (a, b) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
        println!("  {k:<13} {a:>7} / {b:>7}");
    }
}

/// Process CPU time (user + system), µs, from /proc/self/stat (0 elsewhere).
fn cpu_time_us() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ")".
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 1e6 / 100.0
}
