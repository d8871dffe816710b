//! AWS target benchmark against moto_server (IAM enforcement on): per-step latency of one
//! execution (observe = drift query, STS mint, mutate, post-state read, retire) and throughput
//! at 1, 8 and 32 concurrent executions. Prints a table.
//!
//! `cargo bench -p seb-aws --bench aws` (env `SEB_BENCH_N` = sequential samples per
//! operation, default 200; `SEB_BENCH_TOTAL` = executions per concurrency level, default 256).
//!
//! Emulator times are not AWS times: moto is a single Python process on the same two cores.
//! "broker CPU" is time spent inside the broker's own futures' `poll` (signing, serialising,
//! parsing, policy generation) — i.e. outside awaits — measured by wrapping each step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use seb_aws::{AwsTarget, AwsTargetConfig, BrokerCredentials, DeployConfig, artefacts};
use seb_core::types::{Contract, Platform, RiskLevel};
use seb_target::{Execution, MutationStatus, ObserveRequest, Target};
use seb_testinfra::moto::{ACCOUNT, MotoServer, REGION};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Measures the time spent inside `poll` of the wrapped future (CPU on the broker's side,
/// excluding time waiting on the network).
struct Timed<F> {
    inner: Pin<Box<F>>,
    busy: Duration,
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, Duration);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let t = Instant::now();
        let r = self.inner.as_mut().poll(cx);
        let d = t.elapsed();
        self.busy += d;
        match r {
            Poll::Ready(v) => Poll::Ready((v, self.busy)),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn timed<F: Future>(f: F) -> Timed<F> {
    Timed { inner: Box::pin(f), busy: Duration::ZERO }
}

#[derive(Default, Clone)]
struct Sample {
    observe: Duration,
    mint: Duration,
    mutate: Duration,
    post: Duration,
    retire: Duration,
    total: Duration,
    cpu: Duration,
}

fn cpu_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after the command: state(0) ... utime(11) stime(12)
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn execution(op: &str, target: Value, params: Value, i: usize) -> Execution {
    Execution {
        cid: format!("00000000-0000-4000-8000-{i:012}"),
        nonce: format!("bench-nonce-{i:08}"),
        agent: "agent-bench".into(),
        risk_level: RiskLevel::L2,
        platform: Platform::Aws,
        op: op.into(),
        target: target.clone(),
        params: params.clone(),
        contract: Contract {
            platform: Platform::Aws,
            op: op.into(),
            target,
            params,
            constraints: vec![],
            risk_level: RiskLevel::L2,
        },
        evidence: BTreeMap::new(),
        observed_version: None,
        break_glass: false,
    }
}

/// One execution as the broker runs it, timed step by step.
async fn run_one(t: &AwsTarget, mut e: Execution) -> Sample {
    let start = Instant::now();
    let mut s = Sample::default();
    let req = ObserveRequest {
        op: e.op.clone(),
        target: e.target.clone(),
        params: e.params.clone(),
        pointers: vec![],
    };
    let t0 = Instant::now();
    let (obs, c1) = timed(t.observe(&req)).await;
    s.observe = t0.elapsed();
    let obs = obs.unwrap();
    e.evidence = obs.projection;
    e.observed_version = obs.version;
    let t0 = Instant::now();
    let (id, c2) = timed(t.mint(&e)).await;
    s.mint = t0.elapsed();
    let id = id.unwrap();
    let t0 = Instant::now();
    let (r, c3) = timed(t.mutate_timed(&e, &id)).await;
    let (r, tm) = r.unwrap();
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
    s.mutate = tm.call;
    s.post = tm.post_observe;
    let _ = t0;
    let t0 = Instant::now();
    let ((), c4) = {
        let (r, c) = timed(t.retire(&e, id)).await;
        (r.unwrap(), c)
    };
    s.retire = t0.elapsed();
    s.total = start.elapsed();
    s.cpu = c1 + c2 + c3 + c4;
    s
}

type Row = (&'static str, fn(&Sample) -> Duration);

fn report(name: &str, samples: &[Sample]) {
    println!("\n{name}: {} sequential executions (ms)", samples.len());
    println!("{:<28} {:>8} {:>8} {:>8} {:>8}", "step", "p50", "p95", "p99", "mean");
    let rows: [Row; 7] = [
        ("observe (drift query)", |s| s.observe),
        ("mint (sts:AssumeRole)", |s| s.mint),
        ("mutate (scoped call)", |s| s.mutate),
        ("post-state read", |s| s.post),
        ("retire", |s| s.retire),
        ("total target path", |s| s.total),
        ("broker CPU in polls", |s| s.cpu),
    ];
    for (label, f) in rows {
        let mut v: Vec<f64> = samples.iter().map(|s| ms(f(s))).collect();
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        println!(
            "{label:<28} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            pct(&mut v, 50.0),
            pct(&mut v, 95.0),
            pct(&mut v, 99.0),
            mean
        );
    }
}

fn main() {
    let n: usize = std::env::var("SEB_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let total: usize =
        std::env::var("SEB_BENCH_TOTAL").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    let t0 = Instant::now();
    let moto = MotoServer::start().expect("moto_server");
    println!("moto_server started in {:?} on {}", t0.elapsed(), moto.endpoint());
    let cfg_deploy = DeployConfig {
        broker_principal_arn: format!("arn:aws:iam::{ACCOUNT}:user/seb-broker"),
        accounts: vec![ACCOUNT.into()],
        ..DeployConfig::example()
    };
    let a = artefacts(&cfg_deploy);
    let broker = moto.create_user("seb-broker", &a.broker_role_policy).unwrap();
    let broad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "dynamodb:*"], "Resource": "*"}]});
    let role = moto.create_role("seb-execution", &a.execution_role_trust_policy, &broad).unwrap();
    moto.create_bucket("bench-bucket").unwrap();
    let table_arn = moto.create_table(REGION, "bench-table", "pk").unwrap();

    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cfg = AwsTargetConfig::new(ACCOUNT, &role);
    cfg.endpoint_url = Some(moto.endpoint().to_owned());
    cfg.s3_force_path_style = true;
    cfg.insecure_wildcard_resource_services = ["dynamodb".to_owned()].into();
    let creds = BrokerCredentials::Static {
        access_key_id: broker.access_key_id.clone(),
        secret_access_key: Zeroizing::new(broker.secret_access_key.clone()),
        session_token: None,
    };
    let target = Arc::new(rt.block_on(AwsTarget::new(cfg, creds)).unwrap());
    let tgt_obj = |i: usize| json!({"account": ACCOUNT, "region": REGION, "service": "s3", "arn": format!("arn:aws:s3:::bench-bucket/obj-{i}")});
    let tgt_tab =
        json!({"account": ACCOUNT, "region": REGION, "service": "dynamodb", "arn": table_arn});
    let s3_exec = |i: usize| {
        execution("s3:PutObject", tgt_obj(i), json!({"body": format!("payload {i}")}), i)
    };
    let ddb_exec = |i: usize| {
        let k = format!("k{}", i % 64);
        execution(
            "dynamodb:UpdateItem",
            tgt_tab.clone(),
            json!({"key": {"pk": {"S": k}}, "set": {"n": {"N": i.to_string()}}}),
            i,
        )
    };

    // Warm-up (connections, first-call costs in moto).
    rt.block_on(async {
        for i in 0..10 {
            run_one(&target, s3_exec(1_000_000 + i)).await;
        }
    });

    let tck = clk_tck();
    let me = std::process::id().to_string();
    let moto_pid = moto.pid().map(|p| p.to_string());
    let cpu_before = (cpu_ticks(&me), moto_pid.as_deref().and_then(cpu_ticks));
    let wall = Instant::now();
    let s3_samples: Vec<Sample> = rt.block_on(async {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(run_one(&target, s3_exec(i)).await);
        }
        v
    });
    let ddb_samples: Vec<Sample> = rt.block_on(async {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(run_one(&target, ddb_exec(i)).await);
        }
        v
    });
    let wall = wall.elapsed().as_secs_f64();
    let cpu_after = (cpu_ticks(&me), moto_pid.as_deref().and_then(cpu_ticks));
    report("s3:PutObject (If-None-Match, exact-ARN session policy)", &s3_samples);
    report("dynamodb:UpdateItem (condition on observed item)", &ddb_samples);
    if let ((Some(b0), Some(m0)), (Some(b1), Some(m1))) = (cpu_before, cpu_after) {
        let b = (b1 - b0) as f64 / tck;
        let m = (m1 - m0) as f64 / tck;
        println!(
            "\nprocess CPU over the sequential runs ({wall:.1} s wall): broker (this process) {b:.2} s = {:.1}%, moto {m:.2} s = {:.1}%",
            100.0 * b / wall,
            100.0 * m / wall
        );
    }

    println!(
        "\nthroughput, s3:PutObject full target path (observe+mint+mutate+post-read+retire), {total} executions per level"
    );
    println!(
        "{:>11} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "concurrency", "exec/s", "p50 ms", "p95 ms", "p99 ms", "broker CPU%"
    );
    let mut base = 10_000_000;
    for conc in [1usize, 8, 32] {
        let cpu0 = cpu_ticks(&me);
        let start = Instant::now();
        let samples: Vec<Sample> = rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(conc));
            let mut handles = Vec::with_capacity(total);
            for i in 0..total {
                let permit = sem.clone().acquire_owned().await.unwrap();
                let t = target.clone();
                let e = s3_exec(base + i);
                handles.push(tokio::spawn(async move {
                    let s = run_one(&t, e).await;
                    drop(permit);
                    s
                }));
            }
            let mut v = Vec::with_capacity(total);
            for h in handles {
                v.push(h.await.unwrap());
            }
            v
        });
        base += total;
        let el = start.elapsed().as_secs_f64();
        let cpu = cpu0
            .zip(cpu_ticks(&me))
            .map(|(a, b)| 100.0 * (b - a) as f64 / tck / el)
            .unwrap_or(f64::NAN);
        let mut tot: Vec<f64> = samples.iter().map(|s| ms(s.total)).collect();
        println!(
            "{conc:>11} {:>12.1} {:>10.1} {:>10.1} {:>10.1} {:>12.1}",
            total as f64 / el,
            pct(&mut tot, 50.0),
            pct(&mut tot, 95.0),
            pct(&mut tot, 99.0),
            cpu
        );
    }
    println!(
        "\npaper, real AWS (for comparison only): broker overhead p50/p95/p99 136.9/180.4/284.1 ms, drift query 85.3 ms, STS 46.7 ms"
    );
    drop(moto);
}
