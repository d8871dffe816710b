//! Experiments 2 and 3: broker overhead per step (paper tables 7-9) with the two ablations,
//! and throughput against concurrency (paper figure 6).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Result, anyhow};
use seb_broker::engine::{Broker, Executed};
use seb_store::Store;
use seb_target::Target;

use crate::fixtures;
use crate::platform::Workload;
use crate::results::{OverheadRun, PaperFigure, ThroughputPoint};
use crate::rng::Rng;
use crate::stats::{summarize, us_to_ms};
use crate::wrappers::{NoReservation, SnapshotObserve};

/// Which variant of the pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The whole pipeline.
    Full,
    /// Observation served from admission's snapshot ([`SnapshotObserve`]).
    NoDrift,
    /// Reservation and dispatch mark replaced by an in-memory set ([`NoReservation`]).
    NoReservation,
}

impl Variant {
    /// Short label for figure legends.
    pub fn short(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::NoDrift => "no drift query",
            Self::NoReservation => "no reservation",
        }
    }
    /// Label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Full => "full pipeline",
            Self::NoDrift => "without drift query (ablation)",
            Self::NoReservation => "without nonce reservation (ablation)",
        }
    }
}

struct Rig {
    broker: Arc<Broker>,
    snapshot: Option<Arc<SnapshotObserve>>,
    _dir: tempfile::TempDir,
}

fn rig(w: &Workload, v: Variant) -> Result<Rig> {
    let dir = tempfile::tempdir()?;
    let sqlite: Arc<dyn Store> = fixtures::sqlite(dir.path())?;
    let store: Arc<dyn Store> = match v {
        Variant::NoReservation => Arc::new(NoReservation::new(sqlite)),
        _ => sqlite,
    };
    let (target, snapshot): (Arc<dyn Target>, _) = match v {
        Variant::NoDrift => {
            let s = Arc::new(SnapshotObserve::new(w.target()));
            (s.clone(), Some(s))
        }
        _ => (w.target(), None),
    };
    Ok(Rig { broker: fixtures::broker(store, target, fixtures::settings()), snapshot, _dir: dir })
}

async fn one(rig: &Rig, w: &Workload, rng: &mut Rng, worker: usize, i: u64) -> Result<Executed> {
    let p = w.prepare(rng, worker, i).await?;
    if let Some(s) = &rig.snapshot {
        s.prime(&p.target, p.observation);
    }
    match rig.broker.execute(&p.body, "eval").await {
        Ok(e) if e.outcome.status == seb_core::types::OutcomeStatus::Applied => Ok(e),
        Ok(e) => Err(anyhow!("{} execution not applied: {:?}", w.name(), e.outcome.error)),
        Err(r) => {
            Err(anyhow!("{} execution refused: {:?}: {}", w.name(), r.failed_check, r.reason))
        }
    }
}

/// Broker overhead: `n` sequential executions after `warmup`.
pub async fn overhead(
    w: &Workload,
    v: Variant,
    n: usize,
    warmup: usize,
    seed: u64,
    paper: Option<PaperFigure>,
) -> Result<(OverheadRun, Vec<f64>)> {
    let rig = rig(w, v)?;
    let mut rng = Rng::new(seed);
    for i in 0..warmup {
        one(&rig, w, &mut rng, 0, i as u64).await?;
    }
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut over, mut internal, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let e = one(&rig, w, &mut rng, 0, (warmup + i) as u64).await?;
        let t = &e.timings_us;
        let get = |k: &str| t.get(k).copied().unwrap_or(0);
        for (k, us) in t {
            steps.entry((*k).to_owned()).or_default().push(us_to_ms(*us));
        }
        let tot = get("total");
        total.push(us_to_ms(tot));
        over.push(us_to_ms(tot.saturating_sub(get("mutate"))));
        internal.push(us_to_ms(
            tot.saturating_sub(get("observe") + get("mint") + get("mutate") + get("retire")),
        ));
    }
    let note = match (w, v) {
        (Workload::TestDouble(_), _) => "in-memory test double; embedded SQLite (WAL, synchronous=FULL); Broker::execute in process (no HTTP)".to_owned(),
        (Workload::Kube { .. }, _) => "kube-apiserver v1.20 + etcd on loopback (seb-testinfra); mint = ServiceAccount + Role + RoleBinding + TokenRequest; embedded SQLite".to_owned(),
        (Workload::Aws { .. }, _) => "moto_server with IAM enforcement (seb-testinfra); s3:PutObject; mint = sts:AssumeRole with session policy; embedded SQLite".to_owned(),
    };
    let run = OverheadRun {
        platform: w.name().to_owned(),
        variant: v.label().to_owned(),
        derived: false,
        n,
        warmup,
        overhead: summarize(&over),
        broker_internal: summarize(&internal),
        total: summarize(&total),
        steps: steps.iter().map(|(k, v)| (k.clone(), summarize(v))).collect(),
        paper,
        note,
    };
    Ok((run, over))
}

/// Throughput with `c` concurrent executions, `total` executions in all.
pub async fn throughput(
    w: &Workload,
    c: usize,
    total: usize,
    seed: u64,
) -> Result<(ThroughputPoint, Vec<f64>)> {
    let rig = Arc::new(rig(w, Variant::Full)?);
    // Test double: bodies prepared up front (admission is not part of the broker's work).
    // Live platforms: admission must read the state each mutation leaves, so each worker
    // prepares its next certificate in the loop; that read is outside the latency but inside
    // the wall time.
    let prepare_up_front = matches!(w, Workload::TestDouble(_));
    let per = total.div_ceil(c.max(1));
    let mut queues: Vec<Vec<Vec<u8>>> = vec![Vec::new(); c];
    if prepare_up_front {
        let mut rng = Rng::new(seed);
        for (worker, q) in queues.iter_mut().enumerate() {
            for i in 0..per {
                q.push(w.prepare(&mut rng, worker, i as u64).await?.body);
            }
        }
    }
    let lat = Arc::new(Mutex::new(Vec::<f64>::with_capacity(total)));
    let applied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (worker, q) in queues.into_iter().enumerate() {
        let (rig, w, lat, applied, errors) =
            (rig.clone(), w.clone(), lat.clone(), applied.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ (worker as u64 + 1).wrapping_mul(0x9E37));
            for i in 0..per {
                let body = match q.get(i) {
                    Some(b) => b.clone(),
                    None => match w.prepare(&mut rng, worker, i as u64).await {
                        Ok(p) => p.body,
                        Err(e) => {
                            if let Ok(mut v) = errors.lock() {
                                v.push(e.to_string());
                            }
                            continue;
                        }
                    },
                };
                let t = Instant::now();
                let r = rig.broker.execute(&body, "eval").await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                match r {
                    Ok(e) if e.outcome.status == seb_core::types::OutcomeStatus::Applied => {
                        applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(e) => {
                        if let Ok(mut v) = errors.lock() {
                            v.push(format!("not applied: {:?}", e.outcome.error));
                        }
                    }
                    Err(r) => {
                        if let Ok(mut v) = errors.lock() {
                            v.push(format!("refused {:?}: {}", r.failed_check, r.reason));
                        }
                    }
                }
                if let Ok(mut v) = lat.lock() {
                    v.push(ms);
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| anyhow!("worker: {e}"))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let lat = lat.lock().map(|v| v.clone()).unwrap_or_default();
    let applied = applied.load(std::sync::atomic::Ordering::Relaxed);
    let errors = errors.lock().map(|v| v.clone()).unwrap_or_default();
    let mut note = if prepare_up_front {
        "certificates prepared before timing".to_owned()
    } else {
        "admission read per execution inside the wall time".to_owned()
    };
    if !errors.is_empty() {
        note.push_str(&format!(
            "; {} executions not applied (first: {})",
            errors.len(),
            errors.first().cloned().unwrap_or_default()
        ));
    }
    let n = lat.len();
    Ok((
        ThroughputPoint {
            platform: w.name().to_owned(),
            concurrency: c,
            executions: n,
            applied,
            seconds: secs,
            per_second: if secs > 0.0 { applied as f64 / secs } else { 0.0 },
            latency: summarize(&lat),
            note,
        },
        lat,
    ))
}

/// Whether an outcome applied (helper for other experiments).
pub fn applied(e: &Executed) -> bool {
    e.outcome.status == seb_core::types::OutcomeStatus::Applied
}
