//! Several `seb serve` replicas on ONE real PostgreSQL (started by `seb-testinfra`, never
//! skipped) behave as one broker:
//! - 64 concurrent presentations of one certificate spread over three replicas: one admit;
//! - a revocation committed with `seb revoke --store postgres://…` stops every replica for
//!   the very next presentation;
//! - replicas writing concurrently build one ledger that `seb ledger verify` accepts, and
//!   the checkpoints each replica signs are consistent with each other;
//! - a replica killed mid-execution (`SEB_CRASH_AT`) leaves no duplicate mutation, and the
//!   next replica to start reconciles it while the others keep serving;
//! - with the database stopped every replica fails closed, and once it is back they serve
//!   again without a restart and the refusals they could not record reach the ledger.
//!
//! The test double's state file is locked per process only, so each replica gets its own
//! state file (and its own objects), except where a crashed replica and the one that
//! reconciles it must see the same platform: those two never run at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../seb-broker/tests/common/mod.rs"]
mod common;
mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine as _;
use seb_core::certificate::encode_nonce;
use seb_ledger::checkpoint::Checkpoint;
use seb_ledger::merkle::verify_consistency;
use seb_store::Store as _;
use seb_store_postgres::{PostgresOptions, PostgresStore};
use seb_testinfra::postgres::Postgres;
use serde_json::{Value, json};
use support::{Server, seb, serve_crashing_at, write_signing_key};

const ORIGIN: &str = "seb.local/ledger";

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn pg() -> &'static Postgres {
    Postgres::shared().expect("PostgreSQL could not be started")
}

/// The platform state every object starts in (the certificates' evidence).
fn initial() -> Value {
    json!({"replicas": 3, "image": "nginx:1"})
}

/// A test-double state file with these objects in their initial state.
fn target_file(path: &Path, objects: &[String]) -> PathBuf {
    let t = seb_target::test_double::TestTarget::open(path).unwrap();
    for o in objects {
        t.insecure_direct_write(o, initial()).unwrap();
    }
    path.to_owned()
}

fn mutations(path: &Path) -> Vec<seb_target::test_double::MutationLog> {
    seb_target::test_double::TestTarget::open(path).unwrap().mutations().unwrap()
}

/// A replica: one `seb serve` on the shared database.
type Replica = Server;

/// Write a replica's config into `dir`: the shared broker key, the PostgreSQL store, its
/// test-double state file. Then start `seb serve` and wait until recovery is done.
fn start(dir: &Path, store: &str, state_file: &Path, crash_at: Option<&str>) -> Replica {
    start_with(dir, store, state_file, crash_at, "")
}

/// [`start`] with more `[broker]` lines.
fn start_with(
    dir: &Path,
    store: &str,
    state_file: &Path,
    crash_at: Option<&str>,
    broker_extra: &str,
) -> Replica {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("seb.toml");
    write_signing_key(dir, "broker.seed", &common::broker_key());
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nlisten = \"127.0.0.1:0\"\nkey_file = \"broker.seed\"\nstore = \"{store}\"\ncheckpoint_interval_s = 1\n{broker_extra}\n[trust]\nissuers = [\"{}\"]\nbreak_glass = [\"{}\", \"{}\"]\nbreak_glass_quorum = 2\n\n[targets.test]\nstate_file = \"{}\"\n",
            common::issuer().public_key().to_base64(),
            common::operator(0).public_key().to_base64(),
            common::operator(1).public_key().to_base64(),
            state_file.display(),
        ),
    )
    .unwrap();
    serve_crashing_at(dir, None, crash_at)
}

/// The certificate id (a UUID) for a readable name, the same for the same name.
fn cid_for(name: &str) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut bytes = [0u8; 16];
    for (half, salt) in bytes.chunks_mut(8).zip([1u8, 2]) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (name, salt).hash(&mut h);
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// A certificate valid now, for `object`, with its own cid (from `name`) and nonce.
fn cert(name: &str, nonce: &str, object: &str) -> common::Cert {
    let mut contract =
        common::contract(json!({"value": {"replicas": 5, "image": "nginx:1"}}), vec![], 1);
    contract.target = json!({"name": object});
    let mut c = common::Cert::with_contract(1, contract);
    c.payload.cid = cid_for(name);
    let mut seed = [0u8; 24];
    for (i, b) in nonce.bytes().take(24).enumerate() {
        seed[i] = b;
    }
    c.payload.nonce = encode_nonce(&seed);
    let now = now_ms();
    c.payload.validity.not_before = now / 1000 - 5;
    c.payload.validity.not_after = now / 1000 + 200;
    c.fix()
}

fn presentation(c: &common::Cert) -> Vec<u8> {
    let mut r = c.request();
    r.t_exec_ms = now_ms();
    c.present_with(c.envelope(), r, &common::agent())
}

fn post(client: &reqwest::blocking::Client, replica: &str, body: Vec<u8>) -> (u16, Value) {
    let r = client
        .post(format!("{replica}/v1/executions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json::<Value>().unwrap_or(Value::Null))
}

fn export(r: &Replica) -> PathBuf {
    export_trusting(r, None)
}

/// [`export`] from a replica serving TLS with a certificate of `ca`.
fn export_trusting(r: &Replica, ca: Option<&Path>) -> PathBuf {
    let out = r.dir.join("export.json");
    let mut args = vec!["ledger", "export", "--broker", &r.url, "--out", out.to_str().unwrap()];
    if let Some(ca) = ca {
        args.extend(["--ca", ca.to_str().unwrap()]);
    }
    let (code, _, err) = seb(&args);
    assert_eq!(code, 0, "{err}");
    out
}

fn verify(export: &Path) -> Value {
    let (code, out, err) = seb(&[
        "ledger",
        "verify",
        export.to_str().unwrap(),
        "--broker-key",
        &common::broker_key().public_key().to_base64(),
    ]);
    assert_eq!(code, 0, "ledger verification failed: {out}{err}");
    serde_json::from_str(&out).unwrap()
}

/// Every entry's payload, in ledger order.
fn payloads(export: &Path) -> Vec<Value> {
    let x: Value = serde_json::from_slice(&std::fs::read(export).unwrap()).unwrap();
    x["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let raw =
                base64::engine::general_purpose::STANDARD.decode(e.as_str().unwrap()).unwrap();
            let env: seb_core::envelope::Envelope = serde_json::from_slice(&raw).unwrap();
            serde_json::from_slice::<Value>(&env.insecure_payload_bytes().unwrap()).unwrap()
        })
        .collect()
}

fn refused(body: &Value) -> &str {
    body["failed_check"].as_str().unwrap_or("")
}

#[test]
fn one_certificate_presented_64_times_across_three_replicas_is_admitted_once() {
    let db = pg().fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Replica> = (0..3)
        .map(|k| {
            let d = dir.path().join(format!("r{k}"));
            std::fs::create_dir_all(&d).unwrap();
            let t = target_file(&d.join("target.json"), &["shared".into()]);
            start(&d, &db, &t, None)
        })
        .collect();
    let c = cert("cid-single", "single-use", "shared");
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let body = presentation(&c);
            let url = urls[i % 3].clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                barrier.wait();
                post(&client, &url, body)
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let admitted: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
    assert_eq!(admitted.len(), 1, "admitted {} times: {answers:?}", admitted.len());
    assert_eq!(admitted[0]["outcome"]["status"], "applied");
    // Every other presentation is refused: as a replay (the nonce is reserved), or, when it
    // read "not reserved" just before the winner committed and then observed the winner's
    // mutation on that replica's platform, as drift (readmit). Never admitted.
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        let ok = (*status == 403 && ["replay", "reserve"].contains(&refused(body)))
            || (*status == 409 && refused(body) == "drift");
        assert!(ok, "{status}: {body}");
    }
    let total: usize =
        (0..3).map(|k| mutations(&dir.path().join(format!("r{k}/target.json"))).len()).sum();
    assert_eq!(total, 1, "the platform was mutated {total} times");
    // One admit in the one ledger, as exported by any replica.
    for r in &replicas {
        let report = verify(&export(r));
        assert_eq!(report["admits"], 1, "{report}");
        assert_eq!(report["outcomes"], 1, "{report}");
        assert_eq!(report["decisions"], 64, "one admit and 63 signed refusals: {report}");
    }
}

#[test]
fn a_revocation_through_the_cli_stops_every_replica_at_once() {
    let db = pg().fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let objects: Vec<String> = (0..6).map(|i| format!("o{i}")).collect();
    let replicas: Vec<Replica> = (0..3)
        .map(|k| {
            let d = dir.path().join(format!("r{k}"));
            std::fs::create_dir_all(&d).unwrap();
            let t = target_file(&d.join("target.json"), &objects);
            start(&d, &db, &t, None)
        })
        .collect();
    let client = reqwest::blocking::Client::new();
    // Every replica serves before the revocation.
    for (k, r) in replicas.iter().enumerate() {
        let (s, b) =
            post(&client, &r.url, presentation(&cert("cid-live", &format!("live-{k}"), "o0")));
        assert_eq!(s, 200, "{b}");
    }
    // Revoke the cid through the store, as an operator would (signed with the brokers' key:
    // every epoch change is a ledger record); no waiting afterwards.
    let key = dir.path().join("r0/broker.seed");
    let key = key.to_str().unwrap();
    let doomed = cid_for("cid-doomed");
    let (code, out, err) = seb(&["revoke", "--store", &db, "--cid", &doomed, "--key", key]);
    assert_eq!(code, 0, "{out}{err}");
    for (k, r) in replicas.iter().enumerate() {
        let (s, b) =
            post(&client, &r.url, presentation(&cert("cid-doomed", &format!("doomed-{k}"), "o1")));
        assert_eq!(s, 503, "replica {k} after the cid revocation: {b}");
        assert_eq!(refused(&b), "revocation", "{b}");
        assert_eq!(b["decision"], "fail_closed");
    }
    // An agent revocation, then revoke-all: the next presentation on each replica fails.
    let (code, _, err) = seb(&["revoke", "--store", &db, "--agent", "agent-a", "--key", key]);
    assert_eq!(code, 0, "{err}");
    for (k, r) in replicas.iter().enumerate() {
        let (s, b) =
            post(&client, &r.url, presentation(&cert(&format!("cid-agent-{k}"), "n", "o2")));
        assert_eq!(
            (s, refused(&b)),
            (503, "revocation"),
            "replica {k} after the agent revocation: {b}"
        );
    }
    let (code, out, _) = seb(&["epoch", "show", "--store", &db]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["revoked_cids"], json!([doomed]));
    assert_eq!(shown["revoked_agents"], json!(["agent-a"]));
    let (code, _, err) = seb(&["revoke", "--store", &db, "--all", "--key", key]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = seb(&["epoch", "show", "--store", &db]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["epochs"]["revocation_epoch"], 1);
    // The refusals are in the one ledger, which verifies.
    let report = verify(&export(&replicas[2]));
    assert_eq!(report["admits"], 3, "{report}");
    assert_eq!(report["fail_closed"], 6, "{report}");
    assert_eq!(report["epochs"], 3, "every revocation is a signed record: {report}");
}

#[test]
fn replicas_writing_concurrently_share_one_verifiable_ledger_and_consistent_checkpoints() {
    const PER_THREAD: usize = 10;
    const THREADS_PER_REPLICA: usize = 2;
    let db = pg().fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Replica> = (0..3)
        .map(|k| {
            let d = dir.path().join(format!("r{k}"));
            std::fs::create_dir_all(&d).unwrap();
            let objects: Vec<String> =
                (0..THREADS_PER_REPLICA * PER_THREAD).map(|j| format!("o-{k}-{j}")).collect();
            let t = target_file(&d.join("target.json"), &objects);
            start(&d, &db, &t, None)
        })
        .collect();
    let threads: Vec<_> = (0..3 * THREADS_PER_REPLICA)
        .map(|t| {
            let k = t % 3;
            let url = replicas[k].url.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                for i in 0..PER_THREAD {
                    let j = (t / 3) * PER_THREAD + i;
                    let c =
                        cert(&format!("cid-{t}-{i}"), &format!("n-{t}-{i}"), &format!("o-{k}-{j}"));
                    let (s, b) = post(&client, &url, presentation(&c));
                    assert_eq!(s, 200, "{b}");
                    assert_eq!(b["outcome"]["status"], "applied", "{b}");
                    if i % 5 == 0 {
                        // A replay: one more signed refusal in the ledger.
                        let (s, _) = post(&client, &url, presentation(&c));
                        assert_eq!(s, 403);
                    }
                }
            })
        })
        .collect();
    // While they write, ask each replica in turn to sign a checkpoint.
    let mut notes = Vec::new();
    for round in 0..9 {
        let r = &replicas[round % 3];
        let (code, note, err) = seb(&["ledger", "checkpoint", "--broker", &r.url]);
        assert_eq!(code, 0, "{err}");
        notes.push(note);
        std::thread::sleep(Duration::from_millis(100));
    }
    for t in threads {
        t.join().unwrap();
    }
    let executions = (3 * THREADS_PER_REPLICA * PER_THREAD) as u64;
    let x = export(&replicas[1]);
    let report = verify(&x);
    assert_eq!(report["admits"], executions, "{report}");
    assert_eq!(report["outcomes"], executions, "{report}");
    assert_eq!(report["rejects"], (3 * THREADS_PER_REPLICA * PER_THREAD / 5) as u64, "{report}");
    // Every replica exports the same history.
    let first = std::fs::read(&x).unwrap();
    for r in [&replicas[0], &replicas[2]] {
        let other: Value = serde_json::from_slice(&std::fs::read(export(r)).unwrap()).unwrap();
        let mine: Value = serde_json::from_slice(&first).unwrap();
        let n = mine["entries"].as_array().unwrap().len();
        assert_eq!(
            other["entries"].as_array().unwrap()[..n],
            mine["entries"].as_array().unwrap()[..]
        );
    }
    let total: usize =
        (0..3).map(|k| mutations(&dir.path().join(format!("r{k}/target.json"))).len()).sum();
    assert_eq!(total as u64, executions, "each admitted execution mutated exactly once");
    // Checkpoints signed by different replicas at different times: each root is the store's
    // root at its size, and every pair is consistent.
    let pk = common::broker_key().public_key();
    let cps: Vec<Checkpoint> =
        notes.iter().map(|n| Checkpoint::parse_and_verify(n, ORIGIN, &pk).unwrap()).collect();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let store = PostgresStore::connect(&db, PostgresOptions::default()).await.unwrap();
        for a in &cps {
            assert_eq!(store.root(a.size).await.unwrap(), a.root, "checkpoint at {}", a.size);
            for b in cps.iter().filter(|b| b.size >= a.size && a.size > 0) {
                let proof = store.consistency_proof(a.size, b.size).await.unwrap();
                verify_consistency(a.size, b.size, &a.root, &b.root, &proof).unwrap_or_else(|e| {
                    panic!("checkpoints {} and {} are inconsistent: {e}", a.size, b.size)
                });
            }
        }
    });
    let sizes: Vec<u64> = cps.iter().map(|c| c.size).collect();
    assert!(
        sizes.windows(2).any(|w| w[0] < w[1]),
        "the checkpoints did not see the ledger grow: {sizes:?}"
    );
}

#[test]
fn a_replica_killed_mid_execution_is_reconciled_by_the_next_replica_to_start() {
    let db = pg().fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two replicas keep serving throughout.
    let others: Vec<Replica> = (0..2)
        .map(|k| {
            let d = dir.path().join(format!("r{k}"));
            std::fs::create_dir_all(&d).unwrap();
            let t = target_file(&d.join("target.json"), &["o".into()]);
            start(&d, &db, &t, None)
        })
        .collect();
    let client = reqwest::blocking::Client::new();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let watcher = rt.block_on(PostgresStore::connect(&db, PostgresOptions::default())).unwrap();
    for (point, expected, mutated) in
        [("after_dispatch", "not_applied", 0usize), ("after_mutate", "applied", 1)]
    {
        // The replica that crashes and the one that reconciles it share one platform.
        let platform = target_file(&dir.path().join(format!("{point}.json")), &["crash".into()]);
        let cid = cid_for(&format!("cid-{point}"));
        let c = cert(&format!("cid-{point}"), point, "crash");
        {
            let mut victim =
                start(&dir.path().join(format!("victim-{point}")), &db, &platform, Some(point));
            let sent = client
                .post(format!("{}/v1/executions", victim.url))
                .header("content-type", "application/json")
                .body(presentation(&c))
                .send();
            assert!(
                sent.is_err() || !sent.unwrap().status().is_success(),
                "{point}: the victim answered"
            );
            let status = victim.wait();
            assert!(!status.success(), "{point}: the victim should have aborted");
        }
        assert_eq!(mutations(&platform).len(), mutated, "{point}");
        // The live replicas refuse the certificate (the nonce is consumed) and do not touch
        // the victim's execution: it belongs to recovery, which runs when a replica starts.
        for r in &others {
            let (s, b) = post(&client, &r.url, presentation(&c));
            assert_eq!(s, 403, "{point}: {b}");
        }
        // Once the victim's session is gone its execution is an orphan anyone may recover.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !rt.block_on(watcher.pending()).unwrap().iter().any(|p| p.cid == cid) {
            assert!(Instant::now() < deadline, "{point}: the victim's lease never went away");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The next replica to start reconciles it by observation (its readiness waits for
        // recovery).
        let next = start(&dir.path().join(format!("next-{point}")), &db, &platform, None);
        assert!(
            rt.block_on(watcher.pending()).unwrap().iter().all(|p| p.cid != cid),
            "{point}: not reconciled"
        );
        assert_eq!(mutations(&platform).len(), mutated, "{point}: re-executed");
        let (s, b) = post(&client, &next.url, presentation(&c));
        assert_eq!(s, 403, "{point}: {b}");
        let x = export(&others[0]);
        let report = verify(&x);
        let outcomes: Vec<Value> = payloads(&x)
            .into_iter()
            .filter(|p| p.get("status").is_some() && p["cid"] == cid.as_str())
            .collect();
        assert_eq!(outcomes.len(), 1, "{point}: {outcomes:?} ({report})");
        assert_eq!(outcomes[0]["status"], expected, "{point}");
        assert_eq!(outcomes[0]["error"], "resolved by crash recovery", "{point}");
    }
}

#[test]
fn a_live_replica_reconciles_a_dead_replicas_execution_without_a_restart() {
    let db = pg().fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The live replica and the one that dies share one platform (the live one does not
    // execute anything on it while the other runs).
    let platform = target_file(&dir.path().join("shared.json"), &["crash".into()]);
    let live = start_with(&dir.path().join("live"), &db, &platform, None, "orphan_grace_s = 2\n");
    let client = reqwest::blocking::Client::new();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let watcher = rt.block_on(PostgresStore::connect(&db, PostgresOptions::default())).unwrap();
    let cid = cid_for("cid-dead");
    let c = cert("cid-dead", "dead", "crash");
    {
        let mut victim = start(&dir.path().join("victim"), &db, &platform, Some("after_mutate"));
        let sent = client
            .post(format!("{}/v1/executions", victim.url))
            .header("content-type", "application/json")
            .body(presentation(&c))
            .send();
        assert!(sent.is_err() || !sent.unwrap().status().is_success(), "the victim answered");
        assert!(!victim.wait().success(), "the victim should have aborted");
    }
    assert_eq!(mutations(&platform).len(), 1);
    // No replica starts: the live one finds the orphan on its own, waits out the grace
    // period, and records what it observes.
    let died = Instant::now();
    let deadline = died + Duration::from_secs(30);
    while rt.block_on(watcher.in_flight()).unwrap().iter().any(|p| p.cid == cid) {
        assert!(Instant::now() < deadline, "not reconciled without a restart:\n{}", live.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = died.elapsed();
    assert!(took >= Duration::from_secs(2), "reconciled before the grace period: {took:?}");
    assert_eq!(mutations(&platform).len(), 1, "re-executed");
    let x = export(&live);
    verify(&x);
    let outcomes: Vec<Value> = payloads(&x)
        .into_iter()
        .filter(|p| p.get("status").is_some() && p["cid"] == cid.as_str())
        .collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["status"], "applied", "observed, not guessed");
    assert_eq!(outcomes[0]["error"], "resolved by crash recovery");
}

#[test]
fn with_the_database_down_replicas_fail_closed_and_record_it_when_it_is_back() {
    // A server of its own: this test stops it.
    let mut server = Postgres::start().unwrap();
    let db = server.fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let objects: Vec<String> = (0..3).map(|i| format!("o{i}")).collect();
    let replicas: Vec<Replica> = (0..2)
        .map(|k| {
            let d = dir.path().join(format!("r{k}"));
            std::fs::create_dir_all(&d).unwrap();
            let t = target_file(&d.join("target.json"), &objects);
            start(&d, &db, &t, None)
        })
        .collect();
    let client = reqwest::blocking::Client::new();
    let (s, b) = post(&client, &replicas[0].url, presentation(&cert("before", "n", "o0")));
    assert_eq!(s, 200, "{b}");
    server.stop_server().unwrap();
    // Every replica refuses, fail closed, while the database is gone; nothing executes.
    let down = cert("while-down", "n", "o1");
    for r in &replicas {
        let t = Instant::now();
        let (s, b) = post(&client, &r.url, presentation(&down));
        assert_eq!((s, b["decision"].as_str()), (503, Some("fail_closed")), "{b}");
        assert!(t.elapsed() < Duration::from_secs(30), "refusing took {:?}", t.elapsed());
    }
    for k in 0..2 {
        assert!(mutations(&dir.path().join(format!("r{k}/target.json"))).len() <= 1);
    }
    server.restart().unwrap();
    // Back: the replicas serve again without a restart, and the refusals they could not
    // record are in the ledger (the broker's backlog is flushed once the store answers).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, b) = post(&client, &replicas[1].url, presentation(&cert("after", "n", "o2")));
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not come back: {s} {b}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let x = export(&replicas[0]);
        let refusals = payloads(&x)
            .into_iter()
            .filter(|p| p["cid"] == cid_for("while-down") && p["decision"] == "fail_closed")
            .count();
        if refusals == 2 {
            let report = verify(&x);
            assert_eq!(report["outcomes"], 2, "{report}");
            break;
        }
        assert!(Instant::now() < deadline, "refusals recorded: {refusals} of 2");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Issue 15, part 3: three replicas on one PostgreSQL drive a real kube-apiserver for twelve
/// clients; PostgreSQL is stopped (`pg_ctl stop -m fast`) for four seconds and started
/// again. Executions admitted just before the stop finish their mutation while the database
/// is down: their outcome is spooled on the replica (synced before the answer) and written
/// with the id the client was given once the database is back. Every admit ends with
/// exactly one outcome, the one its client was told; nothing is `uncertain`; the replicas
/// retake their leases without a restart (no live replica's execution is reconciled by
/// another); refusals while the database is down name the store, never `replay`.
mod outage {
    use std::sync::atomic::{AtomicBool, Ordering};

    use seb_core::types::{Contract, Platform, RiskLevel};
    use seb_testinfra::kube::KubeApiServer;
    use support::kube::{deploy_args, free_port, kube, namespace_with_deployments, seb_with};

    use super::*;

    const CLIENTS: usize = 12;

    /// A certificate scaling Deployment `name` in `ns` from `from` to `to` replicas.
    fn scale_cert(id: &str, ns: &str, name: &str, from: u64, to: u64) -> common::Cert {
        let contract = Contract {
            platform: Platform::Kubernetes,
            op: "scale".into(),
            target: json!({"cluster": "test", "api_version": "apps/v1", "kind": "Deployment",
                           "namespace": ns, "name": name}),
            params: json!({"replicas": to}),
            constraints: vec![],
            risk_level: RiskLevel::new(1).unwrap(),
        };
        let mut c = cert(id, id, "unused");
        c.payload.contract = contract;
        c.payload.evidence.projection = [("/spec/replicas".to_owned(), json!(from))].into();
        c.fix()
    }

    /// A replica in `d`: TLS (the API server calls its webhook), the Kubernetes target
    /// protecting `ns`, the shared store.
    fn replica(s: &KubeApiServer, d: &Path, port: u16, store: &str, ns: &str) -> Replica {
        std::fs::create_dir_all(d).unwrap();
        let t = s.tokens();
        let (crt, key) = s.issue_cert("broker").unwrap();
        std::fs::write(d.join("tls.crt"), crt).unwrap();
        std::fs::write(d.join("tls.key"), key).unwrap();
        let ca = d.join("kube-ca.pem");
        std::fs::write(&ca, s.ca_pem()).unwrap();
        std::fs::write(
            d.join("broker.kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: broker\n  user:\n    token: {}\ncontexts:\n- name: broker\n  context:\n    cluster: test\n    user: broker\ncurrent-context: broker\n",
                s.url(),
                ca.display(),
                t.broker
            ),
        )
        .unwrap();
        write_signing_key(d, "broker.seed", &common::broker_key());
        std::fs::write(
            d.join("seb.toml"),
            format!(
                r#"[broker]
listen = "127.0.0.1:{port}"
key_file = "broker.seed"
store = "{store}"
checkpoint_interval_s = 1
orphan_grace_s = 5
tls_cert = "tls.crt"
tls_key = "tls.key"

[trust]
issuers = ["{issuer}"]

[targets.kubernetes]
cluster = "test"
kubeconfig = "broker.kubeconfig"
exec_namespace = "seb-exec"
protected_namespaces = ["{ns}"]
webhook = true
broker_username = "broker"
"#,
                issuer = common::issuer().public_key().to_base64(),
            ),
        )
        .unwrap();
        support::serve(d, Some(&ca))
    }

    /// Outcome records in the ledger, by (cid, nonce).
    fn outcomes(x: &Path) -> Vec<Value> {
        payloads(x).into_iter().filter(|p| p.get("status").is_some()).collect()
    }

    #[test]
    fn every_outcome_told_to_a_client_reaches_the_ledger_with_its_id_across_a_database_restart() {
        let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
        let _iso = KubeApiServer::isolated();
        let admin = s.tokens().admin.clone();
        let mut server = Postgres::start().unwrap();
        let db = server.fresh_database().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();

        // Twelve Deployments (one per client) in a namespace SEB then protects, with the
        // webhook served by replica 0 (any replica answers for every replica's executions).
        let (ns, deps) = namespace_with_deployments(&admin, "outage", CLIENTS);
        let port0 = free_port();
        let ca = d.join("kube-ca.pem");
        std::fs::write(&ca, s.ca_pem()).unwrap();
        let deploy_args = deploy_args(s, &ns, port0, &ca);
        let (code, out, err) = seb_with(&deploy_args, &["--apply"]);
        assert_eq!(code, 0, "{out}{err}");
        let replicas: Vec<Replica> = (0..3)
            .map(|k| {
                let port = if k == 0 { port0 } else { free_port() };
                replica(s, &d.join(format!("r{k}")), port, &db, &ns)
            })
            .collect();
        let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();

        // Twelve clients present certificates back to back, each scaling its Deployment
        // 2 <-> 3 from what it reads now.
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (urls, ns, deps, admin, stop, ca) = (
                    urls.clone(),
                    ns.clone(),
                    deps.clone(),
                    admin.clone(),
                    stop.clone(),
                    ca.clone(),
                );
                std::thread::spawn(move || {
                    let root =
                        reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
                    let client = reqwest::blocking::Client::builder()
                        .add_root_certificate(root)
                        .timeout(Duration::from_secs(60))
                        .build()
                        .unwrap();
                    let mut told = Vec::new();
                    let mut k = 0;
                    while !stop.load(Ordering::Acquire) {
                        let (_, dep) = kube("GET", &format!("{deps}/w{i}"), &admin, None);
                        let from = dep["spec"]["replicas"].as_u64().unwrap();
                        let to = if from == 2 { 3 } else { 2 };
                        let c = scale_cert(&format!("c-{i}-{k}"), &ns, &format!("w{i}"), from, to);
                        let (st, b) = post(&client, &urls[(i + k) % 3], presentation(&c));
                        told.push((c.payload.cid.clone(), st, b));
                        k += 1;
                        if st != 200 {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    told
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        // Stop the database while executions are between mint and retire (their
        // ServiceAccounts exist): their outcomes cannot be written when they end.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, sas) = kube("GET", "/api/v1/namespaces/seb-exec/serviceaccounts", &admin, None);
            let live = sas["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|i| {
                            i["metadata"]["name"].as_str().unwrap_or("").starts_with("seb-exec-")
                        })
                        .count()
                })
                .unwrap_or(0);
            if live >= 2 {
                break;
            }
            assert!(Instant::now() < deadline, "no execution in flight to interrupt");
        }
        server.stop_server().unwrap();
        let stopped = Instant::now();
        std::thread::sleep(Duration::from_secs(4));
        server.restart().unwrap();
        let down_for = stopped.elapsed();
        std::thread::sleep(Duration::from_secs(6));
        stop.store(true, Ordering::Release);
        let told: Vec<Vec<(String, u16, Value)>> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();

        // What the clients were told.
        let mut admitted = Vec::new();
        let mut refused_down = 0;
        for (cid, st, b) in told.iter().flatten() {
            if *st == 200 {
                admitted.push((cid.clone(), b.clone()));
                continue;
            }
            // While the store is down a refusal names it, never as a replay.
            assert_eq!(*st, 503, "{b}");
            assert_eq!(b["decision"], "fail_closed", "{b}");
            assert!(["reserve", "revocation"].contains(&refused(b)), "{b}");
            assert!(b["detail"].as_str().unwrap_or("").contains("store unavailable"), "{b}");
            refused_down += 1;
        }
        let state = |b: &Value| b["outcome_state"].as_str().unwrap_or("").to_owned();
        let spooled = admitted.iter().filter(|(_, b)| state(b) == "spooled").count();
        for (_, b) in &admitted {
            match state(b).as_str() {
                "recorded" => assert!(b["outcome_index"].is_u64(), "{b}"),
                "spooled" => assert!(b["outcome_index"].is_null(), "{b}"),
                other => panic!("outcome_state `{other}`: {b}"),
            }
        }
        eprintln!(
            "database down for {down_for:?}: {} admitted ({spooled} outcomes spooled), {refused_down} refused",
            admitted.len()
        );
        assert!(refused_down > 0, "no presentation met the stopped database");
        assert!(spooled > 0, "no execution finished while the database was down");

        // Every outcome told reaches the ledger with its id, without a restart.
        let deadline = Instant::now() + Duration::from_secs(60);
        let x = loop {
            let x = export_trusting(&replicas[1], Some(&ca));
            let ids: std::collections::HashSet<String> =
                outcomes(&x).iter().map(|o| o["id"].as_str().unwrap_or("").to_owned()).collect();
            let missing = admitted
                .iter()
                .filter(|(_, b)| !ids.contains(b["outcome"]["id"].as_str().unwrap()))
                .count();
            if missing == 0 {
                break x;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} outcomes told to clients are not in the ledger:\n{}",
                replicas.iter().map(|r| r.log()).collect::<Vec<_>>().join("\n")
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        let report = verify(&x);
        let ledger_outcomes = outcomes(&x);
        assert_eq!(report["admits"], admitted.len() as u64, "one admit per 200: {report}");
        assert_eq!(report["outcomes"], admitted.len() as u64, "one outcome per admit: {report}");
        for (cid, b) in &admitted {
            let mine: Vec<&Value> =
                ledger_outcomes.iter().filter(|o| o["cid"] == cid.as_str()).collect();
            assert_eq!(mine.len(), 1, "{cid}: {mine:?}");
            assert_eq!(mine[0]["id"], b["outcome"]["id"], "{cid}: the id the client was given");
            assert_eq!(mine[0]["status"], b["outcome"]["status"], "{cid}: the status it was told");
            assert_ne!(mine[0]["error"], "resolved by crash recovery", "{cid}");
        }
        assert!(
            ledger_outcomes.iter().all(|o| o["status"] != "uncertain"),
            "an outcome the broker knew was recorded as uncertain"
        );
        // The platform agrees: each Deployment moved once per applied outcome.
        for (i, answers) in told.iter().enumerate() {
            let applied = answers
                .iter()
                .filter(|(_, st, b)| *st == 200 && b["outcome"]["status"] == "applied")
                .count();
            let (_, dep) = kube("GET", &format!("{deps}/w{i}"), &admin, None);
            let expected = if applied % 2 == 0 { 2 } else { 3 };
            assert_eq!(dep["spec"]["replicas"], expected, "w{i} after {applied} applied scales");
        }
        drop(replicas);
        let (code, out, err) = seb_with(&deploy_args, &["--delete"]);
        assert_eq!(code, 0, "{out}{err}");
    }
}
