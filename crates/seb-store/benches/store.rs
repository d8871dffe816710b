//! Throughput and latency of the SQLite store: `cargo bench -p seb-store --bench store`.
//!
//! Reservations of distinct nonces from 1, 8 and 64 concurrent tokio tasks against a
//! temporary-file store, with `synchronous=FULL` (the default) and `NORMAL`, then ledger
//! appends. Each figure is one run of a fixed duration; print-only, no statistics framework.
//! `SEB_BENCH_SECS` overrides the duration of each run (default 3).

// A benchmark binary reports failure by panicking, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use seb_store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use seb_store::{Reservation, ReserveResult, Store};

/// A realistic admit record: a signed decision envelope is about 1.2 KB of JSON.
const ADMIT_BYTES: usize = 1_200;
/// A realistic intent: about 300 bytes of JSON.
const INTENT_BYTES: usize = 300;

struct Row {
    label: String,
    ops: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn open(dir: &std::path::Path, synchronous: Synchronous) -> Arc<SqliteStore> {
    let opts = SqliteOptions { synchronous, ..SqliteOptions::default() };
    Arc::new(SqliteStore::open(&dir.join("bench.db"), opts).expect("open store"))
}

async fn reserve_run(synchronous: Synchronous, tasks: usize, run: Duration) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), synchronous);
    let epochs = store.epochs().await.expect("epochs");
    let start = Instant::now();
    let deadline = start + run;
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let store = Arc::clone(&store);
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let nonce = format!("t{t}-n{n}");
                let mut admit = format!("{{\"admit\":\"{nonce}\",\"pad\":\"").into_bytes();
                admit.resize(ADMIT_BYTES, b'x');
                let r = Reservation {
                    cid: format!("cid-{t}"),
                    nonce,
                    agent: "agent".into(),
                    policy_epoch: epochs.policy_epoch,
                    revocation_epoch: epochs.revocation_epoch,
                    admit_entry: admit,
                    intent: vec![b'i'; INTENT_BYTES],
                    at_ms: n,
                };
                let t0 = Instant::now();
                let result = store.reserve(r).await.expect("reserve");
                latencies.push(t0.elapsed());
                assert!(matches!(result, ReserveResult::Reserved { .. }), "{result:?}");
                n += 1;
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = set.join_next().await {
        all.extend(joined.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let size = store.ledger_size().await.expect("size");
    assert_eq!(size, all.len() as u64, "ledger size differs from the reservations made");
    let label = format!(
        "reserve  {:<6} {:>3} task{}",
        format!("{synchronous:?}").to_uppercase(),
        tasks,
        if tasks == 1 { " " } else { "s" }
    );
    Row {
        label,
        ops: all.len() as u64,
        secs,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

async fn append_run(synchronous: Synchronous, tasks: usize, per_call: usize, run: Duration) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), synchronous);
    let start = Instant::now();
    let deadline = start + run;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let store = Arc::clone(&store);
        set.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let batch = vec![vec![b'e'; ADMIT_BYTES]; per_call];
                let t0 = Instant::now();
                store.append(batch).await.expect("append");
                latencies.push(t0.elapsed());
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = set.join_next().await {
        all.extend(joined.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let label = format!(
        "append   {:<6} {:>3} task{} x{per_call}",
        format!("{synchronous:?}").to_uppercase(),
        tasks,
        if tasks == 1 { " " } else { "s" }
    );
    let entries = store.ledger_size().await.expect("size");
    Row { label, ops: entries, secs, p50: percentile(&all, 0.50), p99: percentile(&all, 0.99) }
}

fn main() {
    let secs: u64 = std::env::var("SEB_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let run = Duration::from_secs(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    rt.block_on(async {
        for synchronous in [Synchronous::Full, Synchronous::Normal] {
            for tasks in [1, 8, 64] {
                rows.push(reserve_run(synchronous, tasks, run).await);
            }
        }
        rows.push(append_run(Synchronous::Full, 64, 1, run).await);
        rows.push(append_run(Synchronous::Full, 1, 100, run).await);
    });
    println!();
    println!(
        "seb-store SQLite benchmark ({secs} s per run, admit record {ADMIT_BYTES} B, 2 tokio workers)"
    );
    println!("{:<32} {:>10} {:>12} {:>10} {:>10}", "run", "ops", "ops/s", "p50", "p99");
    for r in rows {
        println!(
            "{:<32} {:>10} {:>12.0} {:>10} {:>10}",
            r.label,
            r.ops,
            r.ops as f64 / r.secs,
            format!("{:.2} ms", r.p50.as_secs_f64() * 1e3),
            format!("{:.2} ms", r.p99.as_secs_f64() * 1e3),
        );
    }
    println!("(append rows count entries; their latencies are per call)");
}
