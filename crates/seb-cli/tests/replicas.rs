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
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("seb.toml");
    write_signing_key(dir, "broker.seed", &common::broker_key());
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nlisten = \"127.0.0.1:0\"\nkey_file = \"broker.seed\"\nstore = \"{store}\"\ncheckpoint_interval_s = 1\n\n[trust]\nissuers = [\"{}\"]\nbreak_glass = [\"{}\", \"{}\"]\nbreak_glass_quorum = 2\n\n[targets.test]\nstate_file = \"{}\"\n",
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
    let out = r.dir.join("export.json");
    let (code, _, err) =
        seb(&["ledger", "export", "--broker", &r.url, "--out", out.to_str().unwrap()]);
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
