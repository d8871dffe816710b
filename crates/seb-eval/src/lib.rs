//! `seb-eval`: re-runs the SEB paper's experiments on this machine with the paper's
//! statistics (warm-up, then N trials; p50/p95/p99) and writes `results.json`, `report.md`
//! and SVG figures. See `docs/evaluation.md`.
//!
//! Experiments: (1) micro-benchmarks per step, (2) broker overhead per step on the test
//! double, a real kube-apiserver and moto (IAM enforcement on), with two ablations built
//! from wrappers in this crate, (3) throughput against concurrency, (4) revocation
//! propagation in three modes, (5) drift detection, (6) attack injection, (7) crash
//! injection at every step (child processes).
//!
//! Everything here needs the test double and the crash points: the crate is empty without
//! its `harness` feature, so that `cargo build --workspace` does not unify them into `seb`.
#![cfg(feature = "harness")]

pub mod attacks;
pub mod broker;
pub mod crash;
pub mod drift;
pub mod fixtures;
pub mod micro;
pub mod paper;
pub mod platform;
pub mod report;
pub mod results;
pub mod revocation;
pub mod rng;
pub mod split;
pub mod stats;
pub mod svg;
pub mod wrappers;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::broker::Variant;
use crate::platform::Workload;
use crate::results::Results;

/// How much of everything to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub seed: u64,
    pub micro_n: usize,
    pub micro_warmup: usize,
    pub store_n: usize,
    pub overhead_n: usize,
    pub overhead_warmup: usize,
    pub live_n: usize,
    pub live_warmup: usize,
    pub throughput_levels: Vec<usize>,
    pub throughput_per_level: usize,
    pub live_throughput_levels: Vec<usize>,
    pub live_throughput_per_level: usize,
    pub revocation_trials: usize,
    pub statement_poll_ms: u64,
    pub drift_cases: usize,
    pub attack_cases: usize,
    pub crashes_per_step: usize,
    /// Crashes per step on the real kube-apiserver (one Deployment each).
    pub kube_crashes_per_step: usize,
    /// The binary that runs crash children (`seb-eval`).
    pub exe: PathBuf,
}

impl Plan {
    /// The full evaluation (paper-sized where practical).
    pub fn full(exe: PathBuf) -> Self {
        Self {
            quick: false,
            seed: 20_260_620,
            micro_n: 10_000,
            micro_warmup: 1_000,
            store_n: 2_000,
            overhead_n: 5_000,
            overhead_warmup: 200,
            live_n: 300,
            live_warmup: 10,
            throughput_levels: vec![1, 8, 32, 64],
            throughput_per_level: 2_000,
            live_throughput_levels: vec![1, 8, 32],
            live_throughput_per_level: 96,
            revocation_trials: 30,
            statement_poll_ms: 1_000,
            drift_cases: 1_200,
            attack_cases: 1_000,
            crashes_per_step: 50,
            kube_crashes_per_step: 10,
            exe,
        }
    }

    /// The reduced evaluation for CI (`--quick`).
    pub fn quick(exe: PathBuf) -> Self {
        Self {
            quick: true,
            micro_n: 300,
            micro_warmup: 30,
            store_n: 40,
            overhead_n: 60,
            overhead_warmup: 5,
            live_n: 8,
            live_warmup: 2,
            throughput_levels: vec![1, 8, 32, 64],
            throughput_per_level: 64,
            live_throughput_levels: vec![1, 8],
            live_throughput_per_level: 8,
            revocation_trials: 3,
            statement_poll_ms: 200,
            drift_cases: 120,
            attack_cases: 12,
            crashes_per_step: 2,
            kube_crashes_per_step: 2,
            ..Self::full(exe)
        }
    }
}

/// Raw samples (milliseconds) kept for the figures; not written to `results.json`.
#[derive(Debug, Default)]
pub struct Samples {
    pub micro: Vec<(String, Vec<f64>)>,
    pub overhead: Vec<(String, Vec<f64>)>,
    pub throughput: Vec<(String, Vec<f64>)>,
}

fn note_err<T>(errors: &mut Vec<String>, what: &str, r: Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("seb-eval: {what} FAILED: {e:#}");
            errors.push(format!("{what}: {e:#}"));
            None
        }
    }
}

fn progress(msg: &str) {
    let start = START.get_or_init(std::time::Instant::now);
    eprintln!("[{:>8.1}s] {msg}", start.elapsed().as_secs_f64());
}

static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Run every experiment and write the outputs into `out`.
pub async fn run_all(plan: &Plan, out: &Path) -> Result<Results> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let mut r = Results::default();
    r.meta.started_unix_ms = fixtures::now_ms();
    r.meta.quick = plan.quick;
    r.meta.seed = plan.seed;
    r.meta.cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    r.meta.load_average_start = read_trim("/proc/loadavg");
    r.meta.kernel = read_trim("/proc/sys/kernel/osrelease");
    r.meta.cpu_model = read_trim("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    r.meta.profile = if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned();
    let mut samples = Samples::default();
    let errors = &mut r.errors;

    progress("1/7 micro-benchmarks");
    if let Some(rows) = note_err(errors, "micro-benchmarks", micro::run(plan, &mut samples).await) {
        r.micro = rows;
    }

    progress("2/7 broker overhead: test double");
    let td = Workload::test_double();
    for v in [Variant::Full, Variant::NoDrift, Variant::NoReservation] {
        let res =
            broker::overhead(&td, v, plan.overhead_n, plan.overhead_warmup, plan.seed ^ 0x22, None)
                .await;
        if let Some((run, s)) =
            note_err(errors, &format!("overhead test-double {}", v.label()), res)
        {
            samples.overhead.push((format!("test double, {}", v.short()), s));
            r.overhead.push(run);
        }
    }
    progress("2/7 broker overhead: Kubernetes (kube-apiserver)");
    let kube = note_err(errors, "kube-apiserver setup", Workload::kube(32).await);
    progress("2/7 broker overhead: AWS (moto)");
    let aws = note_err(errors, "moto setup", Workload::aws().await);
    for (w, paper) in [(&kube, paper::kube_overhead()), (&aws, paper::aws_overhead())] {
        let Some(w) = w else { continue };
        for v in [Variant::Full, Variant::NoDrift, Variant::NoReservation] {
            let res = broker::overhead(
                w,
                v,
                plan.live_n,
                plan.live_warmup,
                plan.seed ^ 0x33,
                Some(paper.clone()),
            )
            .await;
            if let Some((run, s)) =
                note_err(errors, &format!("overhead {} {}", w.name(), v.label()), res)
            {
                samples.overhead.push((format!("{}, {}", w.name(), v.short()), s));
                r.overhead.push(run);
            }
        }
    }

    progress("3/7 throughput");
    for &c in &plan.throughput_levels {
        let res =
            broker::throughput(&td, c, plan.throughput_per_level.max(c), plan.seed ^ 0x44).await;
        if let Some((p, s)) = note_err(errors, &format!("throughput test-double c={c}"), res) {
            samples.throughput.push((format!("test double, c={c}"), s));
            r.throughput.push(p);
        }
    }
    for w in [&kube, &aws].into_iter().flatten() {
        for &c in &plan.live_throughput_levels {
            let res =
                broker::throughput(w, c, plan.live_throughput_per_level.max(c), plan.seed ^ 0x45)
                    .await;
            if let Some((p, s)) = note_err(errors, &format!("throughput {} c={c}", w.name()), res) {
                samples.throughput.push((format!("{}, c={c}", w.name()), s));
                r.throughput.push(p);
            }
        }
    }

    progress("4/7 revocation propagation");
    if let Some(x) = note_err(
        errors,
        "revocation embedded",
        revocation::embedded(plan.revocation_trials, plan.seed ^ 0x55).await,
    ) {
        r.revocation.push(x);
    }
    if let Some(x) = note_err(
        errors,
        "revocation postgres",
        revocation::postgres(plan.revocation_trials, plan.seed ^ 0x56).await,
    ) {
        r.revocation.push(x);
    }
    if let Some(x) = note_err(
        errors,
        "revocation statement",
        revocation::statement(plan.revocation_trials, plan.statement_poll_ms, plan.seed ^ 0x57)
            .await,
    ) {
        r.revocation.push(x);
    }

    progress("5/7 drift detection");
    r.drift = note_err(errors, "drift", drift::run(plan.drift_cases, plan.seed ^ 0x66).await);

    progress("6/7 attack injection");
    for (i, class) in attacks::ALL.iter().enumerate() {
        let res =
            attacks::run_class(*class, plan.attack_cases, plan.seed ^ (0x7700 + i as u64)).await;
        if let Some(a) = note_err(errors, &format!("attack class {}", class.name()), res) {
            if a.escaped > 0 {
                eprintln!(
                    "seb-eval: ESCAPE in attack class `{}`: {} of {} cases: {:?}",
                    a.class, a.escaped, a.cases, a.escapes
                );
            }
            r.attacks.push(a);
        }
    }

    // Split proposals (spec 5.2): through the real admission service.
    for (i, op) in split::OPS.iter().enumerate() {
        let res = split::run_op(i, plan.attack_cases, plan.seed ^ (0x7800 + i as u64)).await;
        if let Some(a) = note_err(errors, &format!("split proposal {op}"), res) {
            if a.escaped > 0 {
                eprintln!(
                    "seb-eval: ESCAPE in attack class `{}`: {} of {} cases: {:?}",
                    a.class, a.escaped, a.cases, a.escapes
                );
            }
            r.attacks.push(a);
        }
    }

    progress("7/7 crash injection");
    for (i, step) in crash::STEPS.iter().enumerate() {
        let res = crash::run_step(
            &plan.exe,
            step,
            plan.crashes_per_step,
            plan.seed ^ (0x8800 + i as u64),
        )
        .await;
        if let Some(c) = note_err(errors, &format!("crash injection {step}"), res) {
            r.crashes.push(c);
        }
    }
    // The same on Kubernetes: the crashed identity is a ServiceAccount, Role and RoleBinding.
    if let Some(w) =
        note_err(errors, "crash injection on kubernetes", platform::Workload::kube(0).await)
    {
        for (i, step) in crash::STEPS.iter().enumerate() {
            let res = crash::run_step_kube(
                &plan.exe,
                &w,
                step,
                plan.kube_crashes_per_step,
                plan.seed ^ (0x8900 + i as u64),
            )
            .await;
            if let Some(c) = note_err(errors, &format!("crash injection kubernetes {step}"), res) {
                r.crashes.push(c);
            }
        }
    }

    r.meta.load_average_end = read_trim("/proc/loadavg");
    r.meta.finished_unix_ms = fixtures::now_ms();
    progress("writing results");
    report::write(&r, &samples, out)?;
    Ok(r)
}
