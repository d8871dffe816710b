//! Experiment 4: revocation propagation in three modes.
//!
//! Each trial: a client executes certificates of one agent back to back; after a random
//! delay the agent is revoked. An execution that *started* after the revocation committed
//! and was still admitted is counted in `admitted_after_revoke`; the trial's window is the
//! start of the last such execution minus the commit time (0 when there is none).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use seb_broker::engine::{Broker, EngineSettings, EpochSource};
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::types::{EpochStatement, FailedCheck};
use seb_store::{Revocation, Store};
use seb_target::test_double::TestTarget;
use serde_json::json;

use crate::fixtures::{self, Cert};
use crate::results::RevocationRun;
use crate::rng::Rng;
use crate::stats::summarize;

struct Trial {
    admitted_after: usize,
    window_ms: f64,
    first_refusal_ms: f64,
}

async fn trial(
    broker: Arc<Broker>,
    revoker: Arc<dyn Store>,
    target: Arc<TestTarget>,
    rng: &mut Rng,
    t: usize,
    max_wait: Duration,
    bodies_n: usize,
) -> Result<Trial> {
    let agent = format!("agent-r{t}-{}", rng.next_u64() % 1_000_000);
    // Certificates prepared in advance so the loop is only executions.
    let mut bodies = Vec::new();
    for k in 0..bodies_n {
        let name = format!("rv-{agent}-{k}");
        target.insecure_direct_write(&name, json!({"v": 0})).map_err(|e| anyhow!("{e}"))?;
        let contract = fixtures::set_contract(&name, json!({"v": 1}), vec![]);
        let mut cert = Cert::new(rng, contract, [("/v".to_owned(), json!(0))].into())?;
        cert.payload.subject.agent = agent.clone();
        bodies.push(cert.present()?);
    }
    let committed: Arc<std::sync::Mutex<Option<Instant>>> = Arc::new(std::sync::Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let (b2, c2, s2) = (broker.clone(), committed.clone(), stop.clone());
    let client = tokio::spawn(async move {
        // (start, end, admitted, failed_check)
        let mut log: Vec<(Instant, Instant, bool, Option<FailedCheck>)> = Vec::new();
        for body in bodies {
            let start = Instant::now();
            let r = b2.execute(&body, "eval").await;
            let end = Instant::now();
            let (ok, fc) = match r {
                Ok(_) => (true, None),
                Err(r) => (false, Some(r.failed_check)),
            };
            log.push((start, end, ok, fc));
            let done = c2.lock().ok().and_then(|g| *g).is_some() && !ok;
            if done || s2.load(Ordering::Relaxed) {
                break;
            }
        }
        log
    });
    tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
    revoker
        .revoke(Revocation::Agent(agent.clone()), fixtures::now_ms(), None)
        .await
        .map_err(|e| anyhow!("revoke: {e}"))?;
    let at = Instant::now();
    if let Ok(mut g) = committed.lock() {
        *g = Some(at);
    }
    let stopper = stop.clone();
    let guard = tokio::spawn(async move {
        tokio::time::sleep(max_wait).await;
        stopper.store(true, Ordering::Relaxed);
    });
    let log = client.await.map_err(|e| anyhow!("client: {e}"))?;
    guard.abort();
    let mut tr = Trial { admitted_after: 0, window_ms: 0.0, first_refusal_ms: f64::NAN };
    for (start, end, ok, fc) in log {
        if start > at && ok {
            tr.admitted_after += 1;
            tr.window_ms = tr.window_ms.max((start - at).as_secs_f64() * 1000.0);
        }
        if !ok && end > at && tr.first_refusal_ms.is_nan() {
            if fc != Some(FailedCheck::Revocation) && fc != Some(FailedCheck::Reserve) {
                return Err(anyhow!("unexpected refusal {fc:?} during the revocation trial"));
            }
            tr.first_refusal_ms = (end - at).as_secs_f64() * 1000.0;
        }
    }
    Ok(tr)
}

fn summarise(mode: &str, trials: Vec<Trial>, poll: Option<u64>, note: &str) -> RevocationRun {
    let refusals: Vec<f64> =
        trials.iter().map(|t| t.first_refusal_ms).filter(|x| x.is_finite()).collect();
    let missing = trials.len() - refusals.len();
    let mut note = note.to_owned();
    if missing > 0 {
        note.push_str(&format!("; {missing} trials saw no refusal before the time limit"));
    }
    RevocationRun {
        mode: mode.to_owned(),
        trials: trials.len(),
        admitted_after_revoke: trials.iter().map(|t| t.admitted_after).sum(),
        window_ms: summarize(&trials.iter().map(|t| t.window_ms).collect::<Vec<_>>()),
        first_refusal_ms: summarize(&refusals),
        poll_interval_ms: poll,
        note,
    }
}

/// Embedded: one SQLite store shared by the broker and the revoker.
pub async fn embedded(trials: usize, seed: u64) -> Result<RevocationRun> {
    let dir = tempfile::tempdir()?;
    let store = fixtures::sqlite(dir.path())?;
    let target = Arc::new(TestTarget::in_memory());
    let broker = fixtures::broker(store.clone(), target.clone(), fixtures::settings());
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for t in 0..trials {
        out.push(
            trial(
                broker.clone(),
                store.clone(),
                target.clone(),
                &mut rng,
                t,
                Duration::from_secs(5),
                400,
            )
            .await?,
        );
    }
    Ok(summarise(
        "embedded (SQLite, shared store)",
        out,
        None,
        "revocation re-checked inside the reservation transaction",
    ))
}

/// Shared PostgreSQL: the broker on one connection pool, the revoker on another.
pub async fn postgres(trials: usize, seed: u64) -> Result<RevocationRun> {
    let pg = seb_testinfra::postgres::Postgres::shared().map_err(|e| anyhow!("postgres: {e}"))?;
    let url = pg.fresh_database().map_err(|e| anyhow!("postgres db: {e}"))?;
    let a = seb_store_postgres::PostgresStore::connect(&url, Default::default())
        .await
        .map_err(|e| anyhow!("postgres A: {e}"))?;
    let b = seb_store_postgres::PostgresStore::connect(&url, Default::default())
        .await
        .map_err(|e| anyhow!("postgres B: {e}"))?;
    let target = Arc::new(TestTarget::in_memory());
    let broker = fixtures::broker(Arc::new(a), target.clone(), fixtures::settings());
    let revoker: Arc<dyn Store> = Arc::new(b);
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for t in 0..trials {
        out.push(
            trial(
                broker.clone(),
                revoker.clone(),
                target.clone(),
                &mut rng,
                t,
                Duration::from_secs(5),
                400,
            )
            .await?,
        );
    }
    Ok(summarise(
        "shared PostgreSQL (two stores, one database)",
        out,
        None,
        "broker and revoker on separate connection pools; revocation re-checked in the reservation transaction",
    ))
}

async fn publish(admission: &Arc<dyn Store>, broker: &Arc<Broker>, ttl_ms: u64) -> Result<()> {
    let ep = admission.epochs().await.map_err(|e| anyhow!("{e}"))?;
    let (cids, agents) = admission.revocations().await.map_err(|e| anyhow!("{e}"))?;
    let st = EpochStatement {
        policy_epoch: ep.policy_epoch,
        revocation_epoch: ep.revocation_epoch,
        revoked_cids: cids,
        revoked_agents: agents,
        issued_at_ms: fixtures::now_ms(),
        ttl_ms,
    };
    let env = Envelope::sign(PayloadType::Epoch, &st, &fixtures::admission_key())
        .map_err(|e| anyhow!("{e}"))?;
    broker.apply_statement(&env).await.map_err(|e| anyhow!("apply: {e}"))?;
    Ok(())
}

/// Statement mode: admission's state lives in its own store; a poller applies a signed
/// epoch statement to the broker every `poll` ms.
pub async fn statement(trials: usize, poll_ms: u64, seed: u64) -> Result<RevocationRun> {
    let dir = tempfile::tempdir()?;
    let admission_dir = tempfile::tempdir()?;
    let local = fixtures::sqlite(dir.path())?;
    let admission: Arc<dyn Store> = fixtures::sqlite(admission_dir.path())?;
    let target = Arc::new(TestTarget::in_memory());
    let settings = EngineSettings {
        epoch_source: EpochSource::Statement {
            admission_keys: [fixtures::admission_key().public_key()].into_iter().collect(),
        },
        ..fixtures::settings()
    };
    let broker = fixtures::broker(local, target.clone(), settings);
    let ttl_ms = (poll_ms * 3).max(5_000);
    publish(&admission, &broker, ttl_ms).await?;
    let (a2, b2) = (admission.clone(), broker.clone());
    let poller = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(poll_ms));
        loop {
            tick.tick().await;
            if let Err(e) = publish(&a2, &b2, ttl_ms).await {
                eprintln!("statement poller: {e}");
            }
        }
    });
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for t in 0..trials {
        let r = trial(
            broker.clone(),
            admission.clone(),
            target.clone(),
            &mut rng,
            t,
            Duration::from_millis(poll_ms * 3 + 2_000),
            // Enough certificates to keep executing past the next statement (an execution
            // takes well over 0.5 ms here), so the window is not cut short.
            usize::try_from(poll_ms).unwrap_or(usize::MAX).saturating_mul(2).saturating_add(400),
        )
        .await;
        match r {
            Ok(x) => out.push(x),
            Err(e) => {
                poller.abort();
                return Err(e);
            }
        }
    }
    poller.abort();
    Ok(summarise(
        "statement (signed epoch statements, polled)",
        out,
        Some(poll_ms),
        "bounded by the poll interval plus one execution; the paper used a 5 s poll",
    ))
}
