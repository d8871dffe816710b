//! Experiment 7: crash injection at every step. The broker runs in a child process (this
//! binary's hidden `crash-child` subcommand) built with the crash points; `SEB_CRASH_AT`
//! makes it `abort()` at the named step. The parent then restarts a broker on the same
//! SQLite store and file-backed test double, runs `Broker::recover()`, re-presents the same
//! certificate (must be refused), and checks: no duplicate mutation, every admitted execution
//! has exactly one outcome record, the ledger verifies.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use seb_core::envelope::PayloadType;
use seb_core::keys::TrustedKeys;
use seb_ledger::verify::{LedgerExport, verify_export};
use seb_store::Store;
use seb_target::test_double::TestTarget;
use serde_json::{Value, json};

use crate::fixtures::{self, Cert};
use crate::results::CrashStep;
use crate::rng::Rng;

/// The crash points of the broker engine, in pipeline order.
pub const STEPS: [&str; 5] =
    ["after_reserve", "after_mint", "after_dispatch", "after_mutate", "after_retire"];

const BODY: &str = "body.json";
const TARGET: &str = "target.json";

/// The child: one execution of `dir/body.json`, printing the result.
pub async fn child(dir: &Path) -> Result<()> {
    let store = fixtures::sqlite(dir)?;
    let target = Arc::new(TestTarget::open(&dir.join(TARGET)).map_err(|e| anyhow!("{e}"))?);
    let broker = fixtures::broker(store, target, fixtures::settings());
    let body = std::fs::read(dir.join(BODY)).context("body")?;
    match broker.execute(&body, "crash-child").await {
        Ok(e) => println!("admitted {:?}", e.outcome.status),
        Err(r) => println!("refused {:?}: {}", r.failed_check, r.reason),
    }
    Ok(())
}

fn wait(child: &mut std::process::Child, limit: Duration) -> Result<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return Err(anyhow!("crash child did not finish in {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `crashes` crashes at `step`, all in one store and one target so the ledger accumulates.
pub async fn run_step(exe: &Path, step: &str, crashes: usize, seed: u64) -> Result<CrashStep> {
    let dir = tempfile::tempdir()?;
    let mut rng = Rng::new(seed);
    let mut out = CrashStep { step: step.to_owned(), crashes, ..CrashStep::default() };
    let mut cids = Vec::new();
    for k in 0..crashes {
        let name = format!("cfg-{k}");
        {
            let t = TestTarget::open(&dir.path().join(TARGET)).map_err(|e| anyhow!("{e}"))?;
            t.insecure_direct_write(&name, json!({"replicas": 3})).map_err(|e| anyhow!("{e}"))?;
        }
        let contract = fixtures::set_contract(&name, json!({"replicas": 4 + k}), vec![]);
        let cert = Cert::new(&mut rng, contract, [("/replicas".to_owned(), json!(3))].into())?;
        let body = cert.present()?;
        std::fs::write(dir.path().join(BODY), &body)?;
        cids.push(cert.payload.cid.clone());
        let mut child = std::process::Command::new(exe)
            .arg("crash-child")
            .arg("--dir")
            .arg(dir.path())
            .env("SEB_CRASH_AT", step)
            .env_remove("SEB_TEST_TARGET_FAIL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", exe.display()))?;
        let status = wait(&mut child, Duration::from_secs(120))?;
        // Aborted by a signal (SIGABRT): no exit code.
        if !status.success() && status.code().is_none() {
            out.aborted += 1;
        } else {
            let mut s = String::new();
            if let Some(mut e) = child.stdout.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut s);
            }
            out.problems.push(format!("crash {k}: child did not abort ({status}): {}", s.trim()));
        }
        // Restart on the same state.
        let store = fixtures::sqlite(dir.path())?;
        let target =
            Arc::new(TestTarget::open(&dir.path().join(TARGET)).map_err(|e| anyhow!("{e}"))?);
        let broker = fixtures::broker(store.clone(), target.clone(), fixtures::settings());
        for (_, _, st) in broker.recover().await.map_err(|e| anyhow!("recover: {e}"))? {
            *out.recovered_statuses.entry(format!("{st:?}").to_lowercase()).or_default() += 1;
        }
        match broker.execute(&body, "eval").await {
            Err(_) => out.replays_refused += 1,
            Ok(_) => out.problems.push(format!("crash {k}: replay after recovery admitted")),
        }
        let muts = target
            .mutations()
            .map_err(|e| anyhow!("{e}"))?
            .iter()
            .filter(|m| m.cid == cert.payload.cid)
            .count();
        if muts > 1 {
            out.duplicates += 1;
            out.problems.push(format!("crash {k}: {muts} mutations for one certificate"));
        }
        out.applied += muts.min(1);
        out.live_tokens_after_recovery = target.live_tokens().map_err(|e| anyhow!("{e}"))?;
        drop(broker);
        drop(store);
    }
    // Ledger: one outcome per admitted execution, and the whole log verifies.
    let store = fixtures::sqlite(dir.path())?;
    let target = Arc::new(TestTarget::open(&dir.path().join(TARGET)).map_err(|e| anyhow!("{e}"))?);
    let broker = fixtures::broker(store.clone(), target, fixtures::settings());
    broker.checkpoint().await.map_err(|e| anyhow!("checkpoint: {e}"))?;
    let entries = fixtures::ledger(store.as_ref()).await?;
    let mut admits: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<(String, String), usize> = BTreeMap::new();
    let key = |p: &Value| {
        (
            p.get("cid").and_then(Value::as_str).unwrap_or_default().to_owned(),
            p.get("nonce").and_then(Value::as_str).unwrap_or_default().to_owned(),
        )
    };
    for (ty, p) in &entries {
        if ty == PayloadType::Decision.media_type()
            && p.get("decision").and_then(Value::as_str) == Some("admit")
        {
            *admits.entry(key(p)).or_default() += 1;
        } else if ty == PayloadType::Outcome.media_type() {
            *outcomes.entry(key(p)).or_default() += 1;
        }
    }
    for (k, n) in &admits {
        let o = outcomes.get(k).copied().unwrap_or(0);
        if *n != 1 || o != 1 {
            out.unrecorded_outcomes += 1;
            out.problems.push(format!("cid {}: {n} admit records, {o} outcome records", k.0));
        }
    }
    if admits.len() != crashes {
        out.problems.push(format!("{} admitted executions for {crashes} crashes", admits.len()));
    }
    let size = store.ledger_size().await.map_err(|e| anyhow!("{e}"))?;
    let raw = store.entries(0, size).await.map_err(|e| anyhow!("{e}"))?;
    let cps = store.checkpoints().await.map_err(|e| anyhow!("{e}"))?;
    let origin = broker.settings().origin.clone();
    let export = LedgerExport {
        origin: origin.clone(),
        entries: raw,
        checkpoints: cps.into_iter().map(|c| c.note).collect(),
    };
    let pk = fixtures::broker_key().public_key();
    let keys: TrustedKeys = [pk].into_iter().collect();
    match verify_export(&export, &keys, &origin, &pk, None) {
        Ok(r) => {
            out.ledger_verified = r.open_admits == 0;
            if r.open_admits > 0 {
                out.problems.push(format!("ledger verifies but {} admits are open", r.open_admits));
            }
        }
        Err(e) => out.problems.push(format!("ledger verification failed: {e}")),
    }
    out.ledger_entries = size;
    Ok(out)
}
