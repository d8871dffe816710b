//! The issue's walkthrough through the `seb` binary: one `seb serve` with an `[admission]`
//! section (embedded mode, shared store, the test double). An agent proposes with
//! `seb propose --wait`, a human approves with `seb approve`, the agent executes with
//! `seb execute`, and a revocation with `seb admission revoke` stops the next execution.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::{PERMIT_PROPOSALS, SEB, Server, admission_config, key, pk, seb, serve, write_key};

fn start(dir: &Path) -> Server {
    start_with(dir, "", None)
}

/// [`start`] with more `[broker]` lines, trusting `ca` for its TLS.
fn start_with(dir: &Path, broker_extra: &str, ca: Option<&Path>) -> Server {
    // Every proposal needs one human: the walkthrough's "a human approves".
    let policy = format!(
        "{PERMIT_PROPOSALS}permit(principal, action == SEB::Action::\"require_human\", resource);\n"
    );
    let cfg = format!(
        r#"[broker]
listen = "127.0.0.1:0"
key_file = "broker.seed"
store = "sqlite:seb.db"
checkpoint_interval_s = 0
{broker_extra}
[targets.test]
state_file = "target.json"
{}"#,
        admission_config(
            dir,
            &policy,
            // A second agent (key 50), whose key must not read agent-a's proposals, and two
            // break-glass operators (keys 30, 31).
            &format!(
                "statement_ttl_ms = 1500\n[[admission.agents]]\nname = \"agent-b\"\npublic_keys = [\"{}\"]\n[admission.break_glass]\nquorum = 2\noperators = [{{ name = \"op-0\", public_key = \"{}\" }}, {{ name = \"op-1\", public_key = \"{}\" }}]\n",
                pk(50),
                pk(30),
                pk(31)
            )
        )
    );
    std::fs::write(dir.join("seb.toml"), cfg).unwrap();
    serve(dir, ca)
}

/// `seb propose --wait` in the background, approved by `seb approve` meanwhile.
fn propose_and_approve(s: &Server, dir: &Path, id: &str, replicas: u64) -> PathBuf {
    propose_and_approve_tls(s, dir, id, replicas, None)
}

/// [`propose_and_approve`] trusting `ca` for admission's TLS.
fn propose_and_approve_tls(
    s: &Server,
    dir: &Path,
    id: &str,
    replicas: u64,
    ca: Option<&Path>,
) -> PathBuf {
    let ca_args: Vec<&str> = ca.map(|c| vec!["--ca", c.to_str().unwrap()]).unwrap_or_default();
    let agent = dir.join("agent.seed");
    let alice = dir.join("alice.seed");
    let cert = dir.join(format!("{id}.cert.json"));
    let params = json!({"value": {"replicas": replicas}, "risk": 0.1}).to_string();
    let mut waiter = Command::new(SEB)
        .args([
            "propose",
            "--admission",
            &s.url,
            "--agent",
            "agent-a",
            "--agent-key",
            agent.to_str().unwrap(),
            "--platform",
            "test",
            "--op",
            "set",
            "--target",
            r#"{"name":"cfg"}"#,
            "--params",
            &params,
            "--rationale",
            "scale out before the sale",
            "--id",
            id,
            "--wait",
            "--timeout-s",
            "60",
            "--out",
            cert.to_str().unwrap(),
        ])
        .args(&ca_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The proposal shows up as pending, in the table and in JSON.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, _) = seb(&[
            &["proposals", "--admission", &s.url, "--status", "pending", "--json"][..],
            &["--key", alice.to_str().unwrap()],
            &ca_args,
        ]
        .concat());
        assert_eq!(code, 0);
        let v: Value = serde_json::from_str(&out).unwrap();
        if v["proposals"].as_array().unwrap().iter().any(|p| p["proposal_id"] == id) {
            break;
        }
        assert!(Instant::now() < deadline, "proposal never showed up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, table, _) = seb(&[
        &["proposals", "--admission", &s.url, "--key", alice.to_str().unwrap()][..],
        &ca_args,
    ]
    .concat());
    assert_eq!(code, 0);
    assert!(table.contains(id) && table.contains("pending") && table.contains("L1"), "{table}");
    // The human sees the contract, the evidence digest and the consequence, then approves.
    let approve = [
        "approve",
        id,
        "--admission",
        &s.url,
        "--approver",
        "alice",
        "--key",
        alice.to_str().unwrap(),
        "--yes",
        "--comment",
        "ok for the sale",
    ];
    let (code, out, err) = seb(&[&approve[..], &ca_args].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("evidence_digest")
            && out.contains("consequence L1")
            && out.contains("rationale"),
        "{out}"
    );
    assert!(out.contains("certified"), "{out}");
    let status = waiter.wait().unwrap();
    assert!(status.success(), "seb propose --wait exited {status:?}");
    assert!(cert.exists());
    cert
}

fn execute(s: &Server, dir: &Path, cert: &Path) -> (i32, Value) {
    let agent = dir.join("agent.seed");
    let (code, out, _) = seb(&[
        "execute",
        "--broker",
        &s.url,
        "--certificate",
        cert.to_str().unwrap(),
        "--agent-key",
        agent.to_str().unwrap(),
    ]);
    (code, serde_json::from_str(&out).unwrap_or(Value::Null))
}

#[test]
fn propose_approve_execute_then_a_revocation_stops_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_key(d, "agent.seed", 2);
    write_key(d, "alice.seed", 20);
    let ops = write_key(d, "ops.seed", 40);
    let s = start(d);

    let first = propose_and_approve(&s, d, "p-first", 4);
    let second = propose_and_approve(&s, d, "p-second", 6);
    let (code, v) = execute(&s, d, &first);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"]["status"], "applied");

    // Revoke the second certificate through the admission API; the broker refuses it.
    let cert: Value = serde_json::from_str(&std::fs::read_to_string(&second).unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(cert["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let cid = payload["cid"].as_str().unwrap();
    let (code, out, err) = seb(&[
        "admission",
        "revoke",
        "--admission",
        &s.url,
        "--admin",
        "ops",
        "--admin-key",
        ops.to_str().unwrap(),
        "--cid",
        cid,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(cid), "{out}");
    let (code, v) = execute(&s, d, &second);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["failed_check"], "revocation");
    assert_eq!(v["decision"], "fail_closed");

    // A forged admin request is refused; the signed statement is served.
    let (code, _, _) = seb(&[
        "admission",
        "revoke",
        "--admission",
        &s.url,
        "--admin",
        "ops",
        "--admin-key",
        d.join("agent.seed").to_str().unwrap(),
        "--all",
    ]);
    assert_eq!(code, 2);
    let (code, out, _) = seb(&["admission", "statement", "--admission", &s.url]);
    assert_eq!(code, 0);
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["revoked_cids"], json!([cid]));
    assert!(st["ttl_ms"].as_u64().unwrap() > 0);

    // Loading the policy in force again changes nothing; a changed policy bumps the epoch.
    let load = |file: &Path| {
        let (code, out, err) = seb(&[
            "policy",
            "load",
            file.to_str().unwrap(),
            "--admission",
            &s.url,
            "--admin",
            "ops",
            "--admin-key",
            ops.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str::<Value>(&out).unwrap()["policy_epoch"].as_u64().unwrap()
    };
    let before = payload["policy_epoch"].as_u64().unwrap();
    assert_eq!(load(&d.join("admission.cedar")), before, "the same policy bumped the epoch");
    let changed = d.join("changed.cedar");
    let text = std::fs::read_to_string(d.join("admission.cedar")).unwrap();
    std::fs::write(&changed, format!("{text}// reviewed\n")).unwrap();
    assert_eq!(load(&changed), before + 1);

    // The shared ledger holds admission's issuance records next to the broker's; an auditor
    // verifies it offline with both keys, and each key only for its own role.
    let (code, _, err) = seb(&["ledger", "checkpoint", "--broker", &s.url]);
    assert_eq!(code, 0, "{err}");
    let export = d.join("ledger.json");
    let (code, out, err) =
        seb(&["ledger", "export", "--broker", &s.url, "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let verify = |extra: &[&str]| {
        let mut args = vec!["ledger", "verify", export.to_str().unwrap()];
        args.extend_from_slice(extra);
        seb(&args)
    };
    let (code, out, err) = verify(&["--broker-key", &pk(3), "--admission-key", &pk(1)]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["issued"], 2, "{report}");
    assert_eq!(report["admits"], 1, "{report}");
    assert_eq!(report["fail_closed"], 1, "{report}");
    assert!(report["epochs"].as_u64().unwrap() >= 3, "{report}");
    // Without the admission key, or with the issuer key passed as the broker's, it fails.
    let (code, _, err) = verify(&["--broker-key", &pk(3)]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) =
        verify(&["--broker-key", &pk(3), "--broker-key", &pk(1), "--admission-key", &pk(3)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("admission record must be signed"), "{err}");
}

/// A broker that does not share admission's store: it follows admission's signed epoch
/// statements (statement mode), on the same test-double state file.
fn start_statement_broker(dir: &Path, shared: &Path, admission: &Server) -> Server {
    start_statement_broker_with(dir, shared, admission, "")
}

/// [`start_statement_broker`] with more `[broker]` lines.
fn start_statement_broker_with(
    dir: &Path,
    shared: &Path,
    admission: &Server,
    broker_extra: &str,
) -> Server {
    write_key(dir, "broker.seed", 3);
    let cfg = format!(
        r#"[broker]
listen = "127.0.0.1:0"
key_file = "broker.seed"
store = "sqlite:b.db"
checkpoint_interval_s = 0
epoch_source = "statement"
epoch_statement_url = "{url}/v1/admission/epochs/statement"
epoch_poll_interval_ms = 200
{broker_extra}

[trust]
issuers = ["{issuer}"]
admission_keys = ["{issuer}"]

[[approvers]]
name = "alice"
role = "human"
public_key = "{alice}"

[targets.test]
state_file = "{target}"
"#,
        url = admission.url,
        issuer = pk(1),
        alice = pk(20),
        target = shared.join("target.json").display(),
    );
    std::fs::write(dir.join("seb.toml"), cfg).unwrap();
    serve(dir, None)
}

fn cid_of(cert: &Path) -> String {
    let c: Value = serde_json::from_str(&std::fs::read_to_string(cert).unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(c["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    payload["cid"].as_str().unwrap().to_owned()
}

#[test]
fn a_broker_in_statement_mode_follows_admission_and_fails_closed_when_it_goes_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_key(d, "agent.seed", 2);
    write_key(d, "alice.seed", 20);
    let ops = write_key(d, "ops.seed", 40);
    let a = start(d);
    let bdir = tempfile::tempdir().unwrap();
    let b = start_statement_broker(bdir.path(), d, &a);
    let first = propose_and_approve(&a, d, "s-first", 4);
    let second = propose_and_approve(&a, d, "s-second", 5);
    let third = propose_and_approve(&a, d, "s-third", 6);

    // Executed on the statement-mode broker while admission's statements are fresh.
    let (code, v) = execute(&b, d, &first);
    assert_eq!(code, 0, "{v}\n{}", b.log());
    assert_eq!(v["outcome"]["status"], "applied");

    // A revocation on admission reaches it at the next poll.
    let cid = cid_of(&second);
    let (code, out, err) = seb(&[
        "admission",
        "revoke",
        "--admission",
        &a.url,
        "--admin",
        "ops",
        "--admin-key",
        ops.to_str().unwrap(),
        "--cid",
        &cid,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    std::thread::sleep(Duration::from_millis(800));
    let (code, v) = execute(&b, d, &second);
    assert_eq!(code, 2, "{v}");
    assert_eq!(
        (v["failed_check"].as_str(), v["decision"].as_str()),
        (Some("revocation"), Some("fail_closed"))
    );

    // Admission goes away: once the last statement's TTL (1.5 s) runs out, the broker
    // fails closed instead of trusting stale epochs.
    drop(a);
    std::thread::sleep(Duration::from_millis(2500));
    let (code, v) = execute(&b, d, &third);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["decision"], "fail_closed", "{v}");
}

/// Statement mode over TLS: a broker reaches admission's signed statement at an `https://`
/// URL by trusting `epoch_statement_ca`, and executes; a broker without that CA never gets a
/// statement and fails closed.
#[test]
fn a_statement_broker_trusts_epoch_statement_ca_for_an_https_statement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_key(d, "agent.seed", 2);
    write_key(d, "alice.seed", 20);
    let (ca, crt, key) =
        seb_testinfra::certs::serving_certificate(d, "admission", "IP:127.0.0.1").unwrap();
    let a = start_with(
        d,
        &format!("tls_cert = \"{}\"\ntls_key = \"{}\"\n", crt.display(), key.display()),
        Some(&ca),
    );
    assert!(a.url.starts_with("https://"), "{}", a.url);
    let trusting = tempfile::tempdir().unwrap();
    let b = start_statement_broker_with(
        trusting.path(),
        d,
        &a,
        &format!("epoch_statement_ca = \"{}\"", ca.display()),
    );
    let untrusting = tempfile::tempdir().unwrap();
    let c = start_statement_broker_with(untrusting.path(), d, &a, "");
    let cert = propose_and_approve_tls(&a, d, "tls-first", 4, Some(&ca));
    let (code, v) = execute(&c, d, &cert);
    assert_ne!(code, 0, "a broker without the statement CA executed: {v}");
    assert_eq!(v["decision"], "fail_closed", "{v}\n{}", c.log());
    let (code, v) = execute(&b, d, &cert);
    assert_eq!(code, 0, "{v}\n{}", b.log());
    assert_eq!(v["outcome"]["status"], "applied");
}

/// Admission's reads over the live server: `seb` signs them with the caller's key, and the
/// server answers by role (an agent its own proposals only, the policy not at all); a request
/// without a signature, with a stale one, or with another agent's key gets nothing. A delete of
/// an object that does not exist is refused at admission.
#[test]
fn admission_reads_are_signed_and_answered_by_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d);
    let other = write_key(d, "agent-b.seed", 50);
    let (agent, alice) = (d.join("agent.seed"), d.join("alice.seed"));
    let propose = |id: &str, op: &str, target: &str, params: &str| {
        seb(&[
            "propose",
            "--admission",
            &s.url,
            "--agent",
            "agent-a",
            "--agent-key",
            agent.to_str().unwrap(),
            "--platform",
            "test",
            "--op",
            op,
            "--target",
            target,
            "--params",
            params,
            "--id",
            id,
        ])
    };
    let (code, out, err) =
        propose("p-mine", "set", r#"{"name":"cfg"}"#, r#"{"value":{"replicas":2},"risk":0.1}"#);
    assert_eq!(code, 3, "pending for a human: {out}{err}");
    let reads = |k: &Path, args: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--admission", &s.url, "--key", k.to_str().unwrap()]);
        seb(&a)
    };
    // Its agent and the approver see it; another agent's key neither lists nor shows it.
    let (code, out, err) = reads(&agent, &["proposals", "p-mine", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["agent"], "agent-a");
    let (code, out, _) = reads(&alice, &["proposals", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("p-mine"), "{out}");
    let (code, out, err) = reads(&other, &["proposals", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["proposals"], json!([]), "{out}");
    let (code, _, err) = reads(&other, &["proposals", "p-mine"]);
    assert_eq!(code, 2);
    assert!(err.contains("refused (404)") && err.contains("not_found"), "{err}");
    // The policy is for approvers and admins; epochs for any registered key.
    let (code, _, err) = reads(&agent, &["policy", "show"]);
    assert!(code == 2 && err.contains("refused (403)"), "{err}");
    assert_eq!(reads(&alice, &["policy", "show"]).0, 0);
    assert_eq!(reads(&other, &["admission", "epochs"]).0, 0);

    // The same route by hand: no signature, a stale one, a fresh one.
    let http = reqwest::blocking::Client::new();
    let path = "/v1/admission/proposals/p-mine";
    let get = |sig: Option<String>| {
        let mut r = http.get(format!("{}{path}", s.url));
        if let Some(sig) = sig {
            r = r.header(seb_admission::client::READ_SIGNATURE_HEADER, sig);
        }
        let resp = r.send().unwrap();
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (resp.status().as_u16(), ct, resp.json::<Value>().unwrap())
    };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let sign = |n: u8, at: u64| Some(seb_admission::client::sign_read(&key(n), "GET", path, at));
    let (st, ct, v) = get(None);
    assert_eq!((st, ct.as_deref()), (401, Some("application/problem+json")), "{v}");
    let (st, _, v) = get(sign(2, now - 120_000));
    assert_eq!(st, 401, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("stale"), "{v}");
    assert_eq!(get(sign(50, now)).0, 404);
    let (st, _, v) = get(sign(2, now));
    assert_eq!((st, v["proposal_id"].as_str()), (200, Some("p-mine")), "{v}");

    // A delete of an object that does not exist: refused with the reason, denied on record.
    let (code, out, err) = propose("p-gone", "delete", r#"{"name":"gone"}"#, "{}");
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("refused (422)") && err.contains("observation found absent"), "{err}");
    let (code, out, _) = reads(&agent, &["proposals", "p-gone", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["status"], "denied", "{out}");
}

/// `seb admission break-glass` signs its draft creation and certificate fetch with the
/// operator's key: two operators reach the quorum and the second writes the certificate; the
/// agent's key may not create a draft, and the policy-path reads of an operator are refused.
#[test]
fn break_glass_operators_sign_their_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d);
    let ops = [write_key(d, "op0.seed", 30), write_key(d, "op1.seed", 31)];
    let agent = d.join("agent.seed");
    let (code, out, err) = seb(&[
        "propose",
        "--admission",
        &s.url,
        "--agent",
        "agent-a",
        "--agent-key",
        agent.to_str().unwrap(),
        "--platform",
        "test",
        "--op",
        "set",
        "--target",
        r#"{"name":"cfg"}"#,
        "--params",
        r#"{"value":{"replicas":7},"risk":0.1}"#,
        "--id",
        "p-bg",
    ]);
    assert_eq!(code, 3, "pending for a human: {out}{err}");
    let bg = |k: &Path, out: Option<&Path>| {
        let mut a = vec![
            "admission",
            "break-glass",
            "p-bg",
            "--admission",
            &s.url,
            "--key",
            k.to_str().unwrap(),
            "--yes",
        ];
        if let Some(o) = out {
            a.extend_from_slice(&["--out", o.to_str().unwrap()]);
        }
        seb(&a)
    };
    let (code, _, err) = bg(&agent, None);
    assert!(code == 2 && err.contains("refused (403)"), "{err}");
    let (code, out, err) = bg(&ops[0], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signers so far [\"op-0\"]"), "{out}");
    let cert = d.join("bg.cert.json");
    let (code, out, err) = bg(&ops[1], Some(&cert));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("certified"), "{out}");
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    assert_eq!(c["signatures"].as_array().unwrap().len(), 2, "{c}");
    // An operator reads drafts, not proposals.
    let (code, _, err) =
        seb(&["proposals", "--admission", &s.url, "--key", ops[0].to_str().unwrap()]);
    assert!(code == 2 && err.contains("refused (403)"), "{err}");
}

/// Passkey approvers (spec 5.1) through the binary and the HTTP routes the console calls:
/// `seb approver invite` prints the console link; the enrolment routes register a software
/// passkey (single use); `seb approver list` shows it; its passkey approval, posted to the
/// approvals route, certifies a proposal that `seb execute` applies; `seb approver remove` is
/// recorded; `seb ledger verify` re-verifies the passkey approval offline.
#[test]
fn passkey_approvers_enrol_approve_and_are_removed_through_the_cli() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use seb_core::webauthn::soft::SoftPasskey;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = format!(
        "{PERMIT_PROPOSALS}permit(principal, action == SEB::Action::\"require_human\", resource);\n"
    );
    let cfg = format!(
        "[broker]\nlisten = \"127.0.0.1:0\"\nkey_file = \"broker.seed\"\nstore = \"sqlite:seb.db\"\ncheckpoint_interval_s = 0\n[targets.test]\nstate_file = \"target.json\"\n{}",
        admission_config(
            d,
            &policy,
            "public_url = \"http://localhost:8443\"\n[admission.webauthn]\nrp_id = \"localhost\"\norigins = [\"http://localhost:8443\"]\n",
        )
    );
    std::fs::write(d.join("seb.toml"), cfg).unwrap();
    let s = serve(d, None);
    let (ops, alice) = (d.join("ops.seed"), d.join("alice.seed"));
    let admin =
        ["--admission", &s.url, "--admin", "ops", "--admin-key", ops.to_str().unwrap(), "--json"];

    // Invite.
    let (code, out, err) =
        seb(&[&["approver", "invite", "bob", "--role", "human"][..], &admin].concat());
    assert_eq!(code, 0, "{out}{err}");
    let inv: Value = serde_json::from_str(&out).unwrap();
    let token = inv["token"].as_str().unwrap().to_owned();
    assert_eq!(inv["url"], format!("http://localhost:8443/console/enrol/{token}"));
    // Without an admin key nothing is invited.
    let (code, _, _) = seb(&[
        &["approver", "invite", "eve", "--admission", &s.url, "--admin", "ops"][..],
        &["--admin-key", alice.to_str().unwrap()],
    ]
    .concat());
    assert_eq!(code, 2);

    // Enrol over the console's routes.
    let http = reqwest::blocking::Client::new();
    let enrol_url = format!("{}/v1/admission/enrolments/{token}", s.url);
    let view: Value = http.get(&enrol_url).send().unwrap().json().unwrap();
    assert_eq!((view["name"].as_str(), view["rp_id"].as_str()), (Some("bob"), Some("localhost")));
    let challenge = URL_SAFE_NO_PAD.decode(view["challenge"].as_str().unwrap()).unwrap();
    let mut bob = SoftPasskey::new([77; 32], "localhost", "http://localhost:8443");
    let (cdj, ad) = bob.register(&challenge);
    let reg = json!({
        "credential_id": URL_SAFE_NO_PAD.encode(&bob.credential.credential_id),
        "public_key": URL_SAFE_NO_PAD.encode(&bob.credential.public_key),
        "alg": -8,
        "client_data_json": URL_SAFE_NO_PAD.encode(cdj),
        "authenticator_data": URL_SAFE_NO_PAD.encode(ad),
    });
    let r = http.post(&enrol_url).json(&reg).send().unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let again = http.post(&enrol_url).json(&reg).send().unwrap();
    assert_eq!(again.status().as_u16(), 404, "an invitation is single use");
    assert_eq!(http.get(&enrol_url).send().unwrap().status().as_u16(), 404);

    // Listed.
    let (code, out, err) = seb(&[
        "approver",
        "list",
        "--admission",
        &s.url,
        "--key",
        alice.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let row = list["approvers"].as_array().unwrap().iter().find(|a| a["name"] == "bob").unwrap();
    assert_eq!(
        (row["source"].as_str(), row["kid"].as_str()),
        (Some("enrolled"), Some(bob.credential.kid().as_str()))
    );

    // Propose (waiting for the certificate), approve with the passkey over HTTP, execute.
    let agent = d.join("agent.seed");
    let cert = d.join("pk.cert.json");
    let mut waiter = Command::new(SEB)
        .args(["propose", "--admission", &s.url, "--agent", "agent-a", "--agent-key"])
        .arg(&agent)
        .args(["--platform", "test", "--op", "set", "--target", r#"{"name":"cfg"}"#])
        .args(["--params", r#"{"value":{"replicas":9},"risk":0.1}"#, "--rationale", "r"])
        .args(["--id", "pk-1", "--wait", "--timeout-s", "60", "--out"])
        .arg(&cert)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let (code, out, _) = seb(&[
            "proposals",
            "pk-1",
            "--admission",
            &s.url,
            "--key",
            alice.to_str().unwrap(),
            "--json",
        ]);
        // Stored as soon as it is received, the proposal is `evaluating` (no contract or
        // evidence digest yet) until admission has observed and scored it: wait for
        // `pending`, as an approver would.
        if code == 0 {
            let v = serde_json::from_str::<Value>(&out).unwrap();
            if v["status"] == "pending" {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "proposal never became pending");
        std::thread::sleep(Duration::from_millis(100));
    };
    let approval = json!({
        "proposal_id": "pk-1",
        "contract_digest": view["contract_digest"],
        "evidence_digest": view["evidence"]["digest"],
        "decision": "approve",
        "approver": "bob",
        "comment": "passkey ok",
        "at_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64,
    });
    let env = bob.sign_approval(&approval).unwrap();
    let r = http
        .post(format!("{}/v1/admission/proposals/pk-1/approvals", s.url))
        .json(&env)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    assert!(waiter.wait().unwrap().success());
    let (code, out) = execute(&s, d, &cert);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["outcome"]["status"], "applied");
    // The same assertion again (a replay) is refused by its counter, or as a second decision.
    let r = http
        .post(format!("{}/v1/admission/proposals/pk-1/approvals", s.url))
        .json(&env)
        .send()
        .unwrap();
    assert!(r.status().is_client_error());

    // Removed, recorded.
    let (code, out, err) = seb(&[&["approver", "remove", "bob"][..], &admin].concat());
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = seb(&[
        "approver",
        "list",
        "--admission",
        &s.url,
        "--key",
        alice.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    assert!(!out.contains("\"bob\""), "{out}");

    // Offline: the ledger re-verifies the passkey approval and counts both registry changes.
    let (code, _, err) = seb(&["ledger", "checkpoint", "--broker", &s.url]);
    assert_eq!(code, 0, "{err}");
    let export = d.join("ledger.json");
    let (code, _, err) =
        seb(&["ledger", "export", "--broker", &s.url, "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
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
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["passkey_approvals"], 1, "{report}");
    assert_eq!(report["approver_changes"], 2, "{report}");
}
