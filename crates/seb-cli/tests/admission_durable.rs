//! Durable, replicated admission (SEB-SPEC 5.3, issue 14) through the `seb` binary:
//! `seb serve` with `[admission]` is killed with SIGKILL (a) while a proposal is pending,
//! (b) between the first and the second of two required approvals, (c) during issuance
//! (after the certificate is signed, before it is committed: `SEB_CRASH_AT`); after each
//! restart nothing is lost and nothing is issued twice, and a certificate issued before a
//! restart still executes after it (the policy epoch follows the policy digest, not the
//! process). The same on SQLite and on PostgreSQL; then three replicas on one PostgreSQL:
//! approvals spread over them, one killed mid-way, exactly one certificate, and an admin
//! request replayed to another replica refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use seb_admission::client::{
    ADMIN_SIGNATURE_HEADER, AdminRequest, READ_SIGNATURE_HEADER, sign_admin, sign_proposal,
    sign_read,
};
use seb_core::json;
use seb_core::types::{Platform, Proposal};
use seb_store::Revocation;
use seb_testinfra::postgres::Postgres;
use serde_json::{Value, json};
use support::{
    PERMIT_PROPOSALS, Server, admission_config, key, pk, seb, serve_crashing_at, write_key,
};

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `seb.toml` in `dir` on `store`: every proposal needs TWO human approvals (alice, key 20;
/// bob, key 21), short observation timeout (so a claim left by a killed replica runs out
/// after 7 s).
fn configure(dir: &Path, store: &str, state_file: &Path) {
    let policy = format!(
        "{PERMIT_PROPOSALS}permit(principal, action == SEB::Action::\"require_human\", resource);\n"
    );
    write_key(dir, "bob.seed", 21);
    let cfg = format!(
        r#"[broker]
listen = "127.0.0.1:0"
key_file = "broker.seed"
store = "{store}"
checkpoint_interval_s = 0

[targets.test]
state_file = "{state}"
{admission}
[[approvers]]
name = "bob"
role = "human"
public_key = "{bob}"

[[admission.approvers]]
name = "bob"
role = "human"
public_key = "{bob}"
"#,
        state = state_file.display(),
        admission = admission_config(
            dir,
            &policy,
            "observe_timeout_ms = 1000\n[admission.escalation]\nhuman = { path = \"human\", humans = 2 }\n",
        ),
        bob = pk(21),
    );
    std::fs::write(dir.join("seb.toml"), cfg).unwrap();
}

fn serve(dir: &Path, crash_at: Option<&str>) -> Server {
    serve_crashing_at(dir, None, crash_at)
}

/// A signed proposal envelope (canonical bytes) setting `cfg`'s replicas.
fn proposal(id: &str, replicas: u64) -> Vec<u8> {
    let p = Proposal {
        proposal_id: id.into(),
        agent: "agent-a".into(),
        platform: Platform::Test,
        op: "set".into(),
        target: json!({"name": "cfg"}),
        params: json!({"value": {"replicas": replicas}, "risk": 0.1}),
        constraints: Vec::new(),
        rationale: "durability test".into(),
        at_ms: now_ms(),
    };
    json::canonical(&sign_proposal(&p, &key(2)).unwrap()).unwrap()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn post(s: &Server, path: &str, body: Vec<u8>, admin_sig: Option<&str>) -> (u16, Value) {
    let mut r = http()
        .post(format!("{}/v1/admission{path}", s.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(sig) = admin_sig {
        r = r.header(ADMIN_SIGNATURE_HEADER, sig);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// A signed GET as alice.
fn get(s: &Server, path: &str) -> (u16, Value) {
    get_as(s, path, 20)
}

/// A signed GET with key `n` (20: alice, 2: the agent).
fn get_as(s: &Server, path: &str, n: u8) -> (u16, Value) {
    let full = format!("/v1/admission{path}");
    let sig = sign_read(&key(n), "GET", &full, now_ms());
    let r =
        http().get(format!("{}{full}", s.url)).header(READ_SIGNATURE_HEADER, sig).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn view(s: &Server, id: &str) -> Value {
    let (st, v) = get(s, &format!("/proposals/{id}"));
    assert_eq!(st, 200, "{v}");
    v
}

/// `seb approve` as `who` (alice or bob) at `s`.
fn approve(s: &Server, dir: &Path, id: &str, who: &str) -> (i32, String) {
    let k = dir.join(format!("{who}.seed"));
    let (code, out, err) = seb(&[
        "approve",
        id,
        "--admission",
        &s.url,
        "--approver",
        who,
        "--key",
        k.to_str().unwrap(),
        "--yes",
        "--comment",
        "durability test",
    ]);
    (code, format!("{out}{err}"))
}

/// Wait until `id` has `status` at `s`.
fn wait_status(s: &Server, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = view(s, id);
        if v["status"] == status {
            return v;
        }
        assert!(Instant::now() < deadline, "`{id}` stayed {} (want {status}): {v}", v["status"]);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The admission records of the ledger (decoded payloads), exported from `s`.
fn admission_records(s: &Server, dir: &Path) -> Vec<Value> {
    let export = dir.join("ledger.json");
    let (code, out, err) =
        seb(&["ledger", "export", "--broker", &s.url, "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    use base64::Engine as _;
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(e.as_str()?).ok()?;
            let env: Value = serde_json::from_slice(&bytes).ok()?;
            if !env["payloadType"].as_str()?.contains("admission") {
                return None;
            }
            let payload =
                base64::engine::general_purpose::STANDARD.decode(env["payload"].as_str()?).ok()?;
            serde_json::from_slice(&payload).ok()
        })
        .collect()
}

/// `seb ledger verify` of the export (both keys): the admission invariants hold.
fn verify_ledger(dir: &Path) -> Value {
    let export = dir.join("ledger.json");
    let (code, out, err) = seb(&[
        "ledger",
        "verify",
        export.to_str().unwrap(),
        "--broker-key",
        &pk(3),
        "--admission-key",
        &pk(1),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

fn count(records: &[Value], decision: &str, id: &str) -> usize {
    records.iter().filter(|r| r["decision"] == decision && r["proposal_id"] == id).count()
}

fn execute(s: &Server, dir: &Path, id: &str) -> (i32, Value) {
    let (st, cert) = get_as(s, &format!("/proposals/{id}/certificate"), 2);
    assert_eq!(st, 200, "{cert}");
    let file = dir.join(format!("{id}.cert.json"));
    std::fs::write(&file, serde_json::to_vec(&cert).unwrap()).unwrap();
    let (code, out, _) = seb(&[
        "execute",
        "--broker",
        &s.url,
        "--certificate",
        file.to_str().unwrap(),
        "--agent-key",
        dir.join("agent.seed").to_str().unwrap(),
    ]);
    (code, serde_json::from_str(&out).unwrap_or(Value::Null))
}

/// The three kills on one store (the server restarts on the same store each time).
fn kills_lose_nothing_and_issue_nothing_twice(store: &str) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join("target.json");
    seb_target::test_double::TestTarget::open(&state)
        .unwrap()
        .insecure_direct_write("cfg", json!({"replicas": 3}))
        .unwrap();
    configure(dir, store, &state);

    // (a) A proposal is pending; SIGKILL.
    let mut s = serve(dir, None);
    let epoch_before = get(&s, "/epochs").1["policy_epoch"].clone();
    let envelope_a = proposal("p-a", 4);
    let (st, v) = post(&s, "/proposals", envelope_a.clone(), None);
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["status"], "pending", "{v}");
    s.kill();
    let s = serve(dir, None);
    let v = view(&s, "p-a");
    assert_eq!(v["status"], "pending", "the pending proposal was lost: {v}");
    assert_eq!(get(&s, "/epochs").1["policy_epoch"], epoch_before, "a restart bumped the epoch");
    // The same signed proposal replayed after the restart: refused, never certified again.
    let (st, v) = post(&s, "/proposals", envelope_a, None);
    assert_eq!(st, 409, "a replayed proposal was accepted after a restart: {v}");

    // (b) Killed between the first and the second of two required approvals.
    let (code, out) = approve(&s, dir, "p-a", "alice");
    assert_eq!(code, 0, "{out}");
    assert_eq!(view(&s, "p-a")["approvals"].as_array().unwrap().len(), 1);
    let mut s = s;
    s.kill();
    let s = serve(dir, None);
    let v = view(&s, "p-a");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["approvals"][0]["approver"], "alice", "the first approval was lost: {v}");
    // alice again: still one decision per approver across the restart.
    let (code, out) = approve(&s, dir, "p-a", "alice");
    assert_ne!(code, 0, "a second approval by alice was accepted: {out}");
    let (code, out) = approve(&s, dir, "p-a", "bob");
    assert_eq!(code, 0, "{out}");
    assert_eq!(view(&s, "p-a")["status"], "certified");

    // Restart between issue and execution: the certificate still executes.
    let mut s = s;
    s.kill();
    let s = serve(dir, None);
    let (code, out) = execute(&s, dir, "p-a");
    assert_eq!(code, 0, "a certificate issued before a restart was refused after it: {out}");
    assert_eq!(out["decision"], "admit", "{out}");

    // (c) Killed during issuance: signed, not committed.
    drop(s);
    let mut crashing = serve(dir, Some("admission_issue_signed"));
    let (st, v) = post(&crashing, "/proposals", proposal("p-c", 5), None);
    assert_eq!(st, 201, "{v}");
    let (code, out) = approve(&crashing, dir, "p-c", "alice");
    assert_eq!(code, 0, "{out}");
    let (code, out) = approve(&crashing, dir, "p-c", "bob");
    assert_ne!(code, 0, "the server did not crash during issuance: {out}");
    let status = crashing.wait();
    assert!(!status.success(), "{status:?}");
    let s = serve(dir, None);
    // The claim of the killed process runs out; the restarted one takes the issuance over.
    let v = wait_status(&s, "p-c", "certified", Duration::from_secs(30));
    assert!(v["cid"].is_string(), "{v}");
    let records = admission_records(&s, dir);
    for id in ["p-a", "p-c"] {
        assert_eq!(
            count(&records, "issue", id),
            1,
            "`{id}` issued {} times",
            count(&records, "issue", id)
        );
        assert_eq!(count(&records, "approval", id), 2, "approvals of `{id}` in the ledger");
    }
    let report = verify_ledger(dir);
    assert_eq!(report["issued"], 2, "{report}");
    assert_eq!(report["approvals"], 4, "{report}");
    assert!(s.log().contains("taking the work over"), "no take-over was logged");
    // The certificate the take-over issued executes.
    let (code, out) = execute(&s, dir, "p-c");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn sqlite_kills_lose_nothing_and_issue_nothing_twice() {
    kills_lose_nothing_and_issue_nothing_twice("sqlite:seb.db");
}

fn pg() -> &'static Postgres {
    Postgres::shared().expect("PostgreSQL could not be started")
}

#[test]
fn postgres_kills_lose_nothing_and_issue_nothing_twice() {
    let url = pg().fresh_database().expect("database");
    kills_lose_nothing_and_issue_nothing_twice(&url);
}

/// Three replicas on one PostgreSQL: any replica lists and shows any proposal; approvals
/// spread over replicas (one killed between them) give exactly one certificate; two
/// approvals completing quorums at two replicas at once give one certificate each; an admin
/// request replayed to another replica is refused.
#[test]
fn three_replicas_serve_admission_as_one() {
    let url = pg().fresh_database().expect("database");
    let root = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for i in 0..3 {
        let dir = root.path().join(format!("r{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        // One state file shared by the replicas that observe (locked per process: each
        // replica reads it; the observation is read-only).
        let state = root.path().join("target.json");
        configure(&dir, &url, &state);
        dirs.push(dir);
    }
    seb_target::test_double::TestTarget::open(&root.path().join("target.json"))
        .unwrap()
        .insecure_direct_write("cfg", json!({"replicas": 3}))
        .unwrap();
    let mut r: Vec<Server> = dirs.iter().map(|d| serve(d, None)).collect();

    // Proposed at replica 0, seen at replicas 1 and 2.
    let (st, v) = post(&r[0], "/proposals", proposal("p-x", 6), None);
    assert_eq!(st, 201, "{v}");
    for s in &r[1..] {
        assert_eq!(view(s, "p-x")["status"], "pending");
        let (st, list) = get(s, "/proposals?status=pending");
        assert_eq!(st, 200);
        assert!(list["proposals"].as_array().unwrap().iter().any(|p| p["proposal_id"] == "p-x"));
    }
    // alice approves at replica 1, which is then killed; bob approves at replica 2.
    let (code, out) = approve(&r[1], &dirs[1], "p-x", "alice");
    assert_eq!(code, 0, "{out}");
    r[1].kill();
    let (code, out) = approve(&r[2], &dirs[2], "p-x", "bob");
    assert_eq!(code, 0, "{out}");
    let cid = view(&r[0], "p-x")["cid"].clone();
    assert!(cid.is_string());
    assert_eq!(view(&r[2], "p-x")["cid"], cid, "two replicas show different certificates");

    // Quorums completed at two replicas at once, ten times: one certificate each.
    for n in 0..10 {
        let id = format!("p-race-{n}");
        let (st, v) = post(&r[0], "/proposals", proposal(&id, 7), None);
        assert_eq!(st, 201, "{v}");
        let (a, b) = (&r[0], &r[2]);
        let (da, db) = (&dirs[0], &dirs[2]);
        std::thread::scope(|sc| {
            let x = sc.spawn(|| approve(a, da, &id, "alice"));
            let y = sc.spawn(|| approve(b, db, &id, "bob"));
            let (x, y) = (x.join().unwrap(), y.join().unwrap());
            assert!(x.0 == 0 || y.0 == 0, "neither approval completed: {x:?} {y:?}");
        });
        wait_status(&r[0], &id, "certified", Duration::from_secs(30));
    }
    let records = admission_records(&r[0], &dirs[0]);
    assert_eq!(count(&records, "issue", "p-x"), 1);
    for n in 0..10 {
        let id = format!("p-race-{n}");
        assert_eq!(
            count(&records, "issue", &id),
            1,
            "`{id}` issued {} times",
            count(&records, "issue", &id)
        );
    }
    verify_ledger(&dirs[0]);

    // An admin request accepted by replica 0 and replayed to replica 2: refused.
    let req = AdminRequest {
        request_id: "admin-once".into(),
        admin: "ops".into(),
        at_ms: now_ms(),
        revoke: Some(Revocation::Cid(cid.as_str().unwrap().to_owned())),
        load_policy: None,
        invite_approver: None,
        remove_approver: None,
    };
    let (body, sig) = sign_admin(&req, &key(40)).unwrap();
    let (st, v) = post(&r[0], "/revocations", body.clone(), Some(&sig));
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(&r[2], "/revocations", body, Some(&sig));
    assert_eq!(st, 409, "an admin request replayed to another replica was accepted: {v}");
}
