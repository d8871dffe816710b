//! Store-level benchmark of the PostgreSQL backend on a real PostgreSQL 15 started by
//! `seb-testinfra` (fsync and synchronous_commit ON: every reported reservation is durable).
//!
//! "Replicas" here are independent `PostgresStore`s in this one process: each has its own
//! pool, its own lease session and its own group-commit writer, and they meet only in the
//! database, exactly like separate broker processes would (the processes would add no
//! database work; they would add their own CPU, which on this 2-core machine competes with
//! PostgreSQL either way).
//!
//! Prints, for 1 and 3 replicas: reservations/s and the p50/p99 latency of one
//! `reserve` (the whole of steps 12–13: lock, epoch and revocation re-read, nonce insert,
//! admit record with its Merkle nodes, intent, commit), plus a baseline without group commit;
//! then the revocation propagation: how many reservations are admitted after a revocation
//! committed through another replica (must be 0), and how long after the revoke call returns
//! each replica's next reservation is refused.
//!
//! `cargo bench -p seb-store-postgres --bench pg` (env `SEB_BENCH_SECONDS`, default 5, and
//! `SEB_BENCH_CLIENTS` per replica, default 64).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use seb_store::{Epochs, Reservation, ReserveResult, Revocation, Store};
use seb_store_postgres::{PostgresOptions, PostgresStore};
use seb_testinfra::postgres::Postgres;

fn reservation(cid: &str, nonce: &str, e: Epochs) -> Reservation {
    Reservation {
        cid: cid.into(),
        nonce: nonce.into(),
        agent: "agent-bench".into(),
        policy_epoch: e.policy_epoch,
        revocation_epoch: e.revocation_epoch,
        // About the size of a real signed admit record and intent.
        admit_entry: vec![b'a'; 900],
        intent: vec![b'i'; 700],
        at_ms: 1,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Run {
    label: String,
    replicas: usize,
    clients: usize,
    done: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

async fn throughput(
    label: &str,
    url: &str,
    replicas: usize,
    clients: usize,
    opts: PostgresOptions,
    secs: u64,
) -> Run {
    let mut stores = Vec::new();
    for _ in 0..replicas {
        stores.push(Arc::new(PostgresStore::connect(url, opts.clone()).await.unwrap()));
    }
    let e = stores[0].epochs().await.unwrap();
    // Warm up pools and prepared statements.
    for (k, s) in stores.iter().enumerate() {
        for i in 0..20 {
            s.reserve(reservation(&format!("warm-{label}-{k}"), &i.to_string(), e)).await.unwrap();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for (k, store) in stores.iter().enumerate() {
        for c in 0..clients {
            let s = Arc::clone(store);
            let stop = Arc::clone(&stop);
            let count = Arc::clone(&count);
            let cid = format!("{label}-{k}-{c}");
            tasks.spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = s.reserve(reservation(&cid, &i.to_string(), e)).await.unwrap();
                    assert!(matches!(r, ReserveResult::Reserved { .. }), "{r:?}");
                    lat.push(t.elapsed());
                    count.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                lat
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    Run {
        label: label.into(),
        replicas,
        clients,
        done: count.load(Ordering::Relaxed),
        secs: elapsed,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

/// Revocations committed through replica `i % 3` while all three replicas carry load; after
/// each revoke call returns, every replica's next reservation of the revoked cid is timed.
async fn propagation(url: &str, rounds: usize) {
    let stores: Vec<Arc<PostgresStore>> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(Arc::new(
                PostgresStore::connect(url, PostgresOptions::default()).await.unwrap(),
            ));
        }
        v
    };
    let e = stores[0].epochs().await.unwrap();
    // Background load: 16 clients per replica.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for (k, s) in stores.iter().enumerate() {
        for c in 0..16 {
            let s = Arc::clone(s);
            let stop = Arc::clone(&stop);
            load.spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    s.reserve(reservation(&format!("load-{k}-{c}"), &i.to_string(), e))
                        .await
                        .unwrap();
                    i += 1;
                }
            });
        }
    }
    let mut revoke_lat = Vec::new();
    let mut first_refusal = Vec::new();
    let mut admitted_after_commit = 0usize;
    let mut probes = 0usize;
    for round in 0..rounds {
        let cid = format!("victim-{round}");
        // Each replica reserves the victim once before (so it is live and known).
        for (k, s) in stores.iter().enumerate() {
            let r = s.reserve(reservation(&cid, &format!("pre-{k}"), e)).await.unwrap();
            assert!(matches!(r, ReserveResult::Reserved { .. }));
        }
        let t = Instant::now();
        stores[round % 3].revoke(Revocation::Cid(cid.clone()), 2, None).await.unwrap();
        let returned = Instant::now();
        revoke_lat.push(returned - t);
        // The next reservation on every replica, started right after the call returned.
        let mut probes_now = tokio::task::JoinSet::new();
        for (k, s) in stores.iter().enumerate() {
            let s = Arc::clone(s);
            let cid = cid.clone();
            probes_now.spawn(async move {
                let r = s.reserve(reservation(&cid, &format!("post-{k}"), e)).await.unwrap();
                (r, returned.elapsed())
            });
        }
        while let Some(p) = probes_now.join_next().await {
            let (r, after) = p.unwrap();
            probes += 1;
            match r {
                ReserveResult::Revoked { .. } => first_refusal.push(after),
                _ => admitted_after_commit += 1,
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    revoke_lat.sort();
    first_refusal.sort();
    println!();
    println!(
        "revocation propagation (3 replicas under load, {rounds} revocations, each through another replica)"
    );
    println!("| what | value |");
    println!("|---|---|");
    println!(
        "| reservations admitted after the revoke call returned | {admitted_after_commit} of {probes} |"
    );
    println!(
        "| revoke call (commit under the head lock) p50 / p99 / max, ms | {} / {} / {} |",
        ms(percentile(&revoke_lat, 0.5)),
        ms(percentile(&revoke_lat, 0.99)),
        ms(*revoke_lat.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "| revoke returned -> next reservation refused, per replica, p50 / max, ms | {} / {} |",
        ms(percentile(&first_refusal, 0.5)),
        ms(*first_refusal.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "| propagation delay (revocation visible before the revoke call returns) | 0: the first reservation after the commit is refused on every replica |"
    );
    assert_eq!(
        admitted_after_commit, 0,
        "a reservation was admitted after the revocation committed"
    );
}

fn main() {
    let secs: u64 =
        std::env::var("SEB_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let clients: usize =
        std::env::var("SEB_BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let server = Postgres::start().expect("PostgreSQL could not be started");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "seb-store-postgres benchmark: PostgreSQL 15 on loopback (fsync on), 2 cores shared with the benchmark"
    );
    println!("load average at start: {}", load.trim());
    println!(
        "replicas = independent PostgresStore instances in this process (own pool, lease, writer)"
    );
    println!();
    let mut runs = Vec::new();
    rt.block_on(async {
        let unbatched = PostgresOptions { max_batch: 1, ..Default::default() };
        runs.push(
            throughput(
                "no-group-commit",
                &server.fresh_database().unwrap(),
                1,
                clients,
                unbatched,
                secs,
            )
            .await,
        );
        runs.push(
            throughput(
                "1-replica",
                &server.fresh_database().unwrap(),
                1,
                clients,
                PostgresOptions::default(),
                secs,
            )
            .await,
        );
        runs.push(
            throughput(
                "3-replicas",
                &server.fresh_database().unwrap(),
                3,
                clients,
                PostgresOptions::default(),
                secs,
            )
            .await,
        );
    });
    println!(
        "| configuration | replicas | clients/replica | reservations | seconds | reservations/s | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.0} | {} | {} |",
            r.label,
            r.replicas,
            r.clients,
            r.done,
            r.secs,
            r.done as f64 / r.secs,
            ms(r.p50),
            ms(r.p99)
        );
    }
    rt.block_on(propagation(&server.fresh_database().unwrap(), 30));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!("load average at end: {}", load.trim());
}
