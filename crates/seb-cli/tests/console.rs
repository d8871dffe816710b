//! Issue 13's browser walkthrough through the `seb` binary: one `seb serve` with admission,
//! the console and the Kubernetes target (kube-apiserver, webhook on), Debian's Chromium
//! driven by Playwright for Python with the DevTools virtual authenticator (one per
//! approver, user verification on). Two approvers enrol through the invitation links
//! `seb approver invite` prints; an L4 scale needing two validators and two humans is proposed
//! (validators approve with `seb approve`); approver 1 approves in the browser and the page
//! shows 1 of 2 humans; approver 2 approves; the certificate carries both passkey approvals; a
//! copy with one passkey approval tampered (re-signed by the issuer) is refused by the broker
//! at `path`; the agent executes the genuine one and the Deployment changes; a denial's reason
//! reaches the proposer; an expired proposal cannot be approved (page and CLI); CSP and cookie
//! flags come from real responses; `[admission.notify]` reaches a local receiver. Screenshots
//! go to the directory the test prints (`SEB_ARTIFACTS`, else `target/artifacts`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use seb_core::envelope::{Envelope, PayloadType};
use seb_testinfra::kube::KubeApiServer;
use serde_json::{Value, json};
use support::kube::{
    broker_toml, deploy_args, free_port, kube, seb_with, workload, write_broker_files,
};
use support::{SEB, key, pk, seb, serve, write_key};

/// Cedar: agents may propose; nothing escalates (the level alone picks the path).
const POLICY: &str = "permit(principal, action == SEB::Action::\"propose\", resource);\n";

/// Seconds a proposal waits for approvals in this deployment.
const TIMEOUT_S: u64 = 75;

fn artifacts(name: &str) -> PathBuf {
    let base = std::env::var_os("SEB_ARTIFACTS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts")
    });
    let d = base.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A local notification receiver: every POST body, with its Authorization header.
/// (Authorization header, body) of every notification received.
type Notes = Arc<Mutex<Vec<(String, Value)>>>;

fn receiver() -> (u16, Notes) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Notes = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let (mut len, mut auth) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice(&body) {
                sink.lock().unwrap().push((auth, v));
            }
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The agent's signed read of a proposal's certificate.
fn certificate(url: &str, ca: &Path, id: &str) -> Envelope {
    let path = format!("/v1/admission/proposals/{id}/certificate");
    let at =
        u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let sig = seb_admission::client::sign_read(&key(2), "GET", &path, at);
    let c = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let r = c
        .get(format!("{url}{path}"))
        .header(seb_admission::client::READ_SIGNATURE_HEADER, sig)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn execute(url: &str, ca: &Path, d: &Path, cert: &Envelope, name: &str) -> (i32, Value, String) {
    let file = d.join(name);
    std::fs::write(&file, serde_json::to_vec(cert).unwrap()).unwrap();
    let (code, out, err) = seb(&[
        "execute",
        "--broker",
        url,
        "--certificate",
        file.to_str().unwrap(),
        "--agent-key",
        d.join("agent.seed").to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
    ]);
    (code, serde_json::from_str(&out).unwrap_or(Value::Null), err)
}

#[test]
fn approvers_enrol_and_decide_in_chromium_with_passkeys_the_broker_re_verifies() {
    let chromium = seb_testinfra::browser::ensure().unwrap_or_else(|e| panic!("browser: {e}"));
    let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
    let _iso = KubeApiServer::isolated();
    let t = &s.tokens().clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = artifacts("console-e2e");
    eprintln!("console screenshots and transcript: {}", out.display());
    let (ns, deps) = workload(t, "console");
    let port = free_port();
    let ca = d.join("ca.pem");
    std::fs::write(&ca, s.ca_pem()).unwrap();
    let deploy = deploy_args(s, &ns, port, &ca);
    let (code, o, e) = seb_with(&deploy, &["--apply"]);
    assert_eq!(code, 0, "{o}{e}");
    struct Undeploy(Vec<String>);
    impl Drop for Undeploy {
        fn drop(&mut self) {
            let _ = seb_with(&self.0, &["--no-namespaces", "--delete"]);
        }
    }
    let _undeploy = Undeploy(deploy.clone());
    write_broker_files(s, t, d, &ca);
    write_key(d, "broker.seed", 3);
    write_key(d, "issuer.seed", 1);
    write_key(d, "agent.seed", 2);
    write_key(d, "validator-1.seed", 11);
    write_key(d, "validator-2.seed", 12);
    write_key(d, "ops.seed", 40);
    std::fs::write(d.join("admission.cedar"), POLICY).unwrap();
    std::fs::write(d.join("notify.token"), "console-e2e-notify-token\n").unwrap();
    let (hook_port, notes) = receiver();
    let origin = format!("https://localhost:{port}");
    let extra = format!(
        r#"
[trust]
issuers = ["{issuer}"]

[[approvers]]
name = "validator-1"
role = "validator"
public_key = "{v1}"

[[approvers]]
name = "validator-2"
role = "validator"
public_key = "{v2}"

[admission]
issuer_key_file = "issuer.seed"
policy_file = "admission.cedar"
approval_timeout_s = {TIMEOUT_S}
public_url = "{origin}"

[admission.webauthn]
rp_id = "localhost"
origins = ["{origin}"]

[admission.notify]
url = "http://127.0.0.1:{hook_port}/hook"
bearer_token_file = "notify.token"

[admission.scoring]
thresholds = [0.01, 0.02, 0.03, 0.04, 0.99]

[admission.path_rules]
L4 = {{ path = "human", validators = 2, humans = 2 }}

[[admission.agents]]
name = "agent-a"
public_keys = ["{agent}"]

[[admission.approvers]]
name = "validator-1"
role = "validator"
public_key = "{v1}"

[[admission.approvers]]
name = "validator-2"
role = "validator"
public_key = "{v2}"

[[admission.admins]]
name = "ops"
public_key = "{ops}"
"#,
        issuer = pk(1),
        v1 = pk(11),
        v2 = pk(12),
        agent = pk(2),
        ops = pk(40),
    );
    std::fs::write(d.join("seb.toml"), broker_toml(port, "sqlite:seb.db", &ns, &extra)).unwrap();
    let srv = serve(d, Some(&ca));
    let url = srv.url.clone();
    assert!(srv.log().contains("approvers' console mounted"), "{}", srv.log());

    let cli = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![SEB.to_owned()];
        v.extend(args.iter().map(|s| (*s).to_owned()));
        v.extend([
            "--admission".to_owned(),
            url.clone(),
            "--ca".to_owned(),
            ca.display().to_string(),
        ]);
        v
    };
    let agent_key = d.join("agent.seed").display().to_string();
    let ops_key = d.join("ops.seed").display().to_string();
    let target = json!({"cluster": "test", "api_version": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "web"}).to_string();
    let propose = |id: &str, replicas: u64, why: &str| -> Value {
        let params = json!({"replicas": replicas}).to_string();
        // Exit 3: pending (waiting for approvals).
        json!({"do": "run", "name": format!("propose {id}"), "expect_rc": 3, "argv": cli(&[
            "propose", "--agent", "agent-a", "--agent-key", &agent_key, "--platform", "kubernetes",
            "--op", "scale", "--target", &target, "--params", &params, "--rationale", why, "--id", id])})
    };
    let validate = |id: &str, n: u8| -> Value {
        let name = format!("validator-{n}");
        let k = d.join(format!("{name}.seed")).display().to_string();
        json!({"do": "run", "name": format!("{name} approves {id}"), "expect_rc": 0,
               "argv": cli(&["approve", id, "--approver", &name, "--key", &k, "--yes", "--comment", "checks green"])})
    };
    let invite = |who: &str| -> Value {
        json!({"do": "run", "name": format!("invite {who}"), "expect_rc": 0,
               "capture": {"var": format!("{who}_url"), "regex": "https://localhost:[0-9]+/console/enrol/[A-Za-z0-9_-]+"},
               "argv": cli(&["approver", "invite", who, "--role", "human", "--admin", "ops", "--admin-key", &ops_key])})
    };
    // p-expire is the first step: its deadline is at most this far from now (with margin).
    let expire_at = now_s() + TIMEOUT_S + 10;
    let scenario = json!({
        "base": origin,
        "out": out,
        "ca": ca,
        "approvers": {"carol": {}, "dave": {"viewport": {"width": 390, "height": 844}}},
        "env": {"PATH": std::env::var("PATH").unwrap_or_default(), "SEB_LOG": "warn"},
        "steps": [
            propose("p-expire", 3, "will wait too long"),
            invite("carol"),
            invite("dave"),
            {"do": "enrol", "who": "carol", "url": "{carol_url}", "keyboard": true, "shot": "enrol.png"},
            {"do": "enrol", "who": "dave", "url": "{dave_url}"},
            {"do": "run", "name": "approvers listed", "expect_rc": 0, "expect": ["carol", "dave", "enrolled", "ES256"],
             "argv": cli(&["approver", "list", "--key", &ops_key])},
            propose("p-l4", 6, "Black Friday: scale web from 2 to 6 replicas. <script>alert(1)</script>"),
            propose("p-deny", 5, "more replicas"),
            validate("p-l4", 1),
            validate("p-l4", 2),
            {"do": "signin", "who": "carol", "keyboard": true},
            {"do": "list", "who": "carol", "expect": ["p-l4", "p-deny", "L4", "0 of 2 humans"], "shot": "list.png"},
            {"do": "open", "who": "carol", "id": "p-l4", "decidable": true,
             "expect": ["spec.replicas", "2", "6", "0 of 2 humans, 2 of 2 validators", "untrusted text", "<script>alert(1)</script>", "validator-1"],
             "shot": "proposal.png"},
            {"do": "decide", "who": "carol", "id": "p-l4", "decision": "approve", "comment": "capacity checked", "keyboard": true,
             "expect": ["1 of 2 humans", "carol", "pending"], "shot": "proposal-1-of-2.png"},
            {"do": "open", "who": "carol", "id": "p-l4", "decidable": false, "expect": ["You already decided"]},
            {"do": "csp", "who": "carol"},
            {"do": "signin", "who": "dave"},
            {"do": "open", "who": "dave", "id": "p-l4", "decidable": true, "expect": ["1 of 2 humans"], "shot": "proposal-phone.png"},
            {"do": "decide", "who": "dave", "id": "p-l4", "decision": "approve", "comment": "ok", "expect": ["certified", "2 of 2 humans"]},
            {"do": "decide", "who": "dave", "id": "p-deny", "decision": "deny", "comment": "not during the freeze", "expect": ["denied", "not during the freeze"]},
            {"do": "run", "name": "the proposer reads the denial", "expect_rc": 0, "expect": ["not during the freeze"],
             "argv": cli(&["proposals", "p-deny", "--json", "--key", &agent_key])},
            {"do": "list", "who": "carol", "expect": ["p-expire"], "absent": ["p-deny", "p-l4"]},
            {"do": "sleep_until", "unix_s": expire_at},
            {"do": "open", "who": "carol", "id": "p-expire", "decidable": false, "expect": ["approval timeout", "expired"]},
            {"do": "run", "name": "an expired proposal cannot be approved", "expect": ["expired"],
             "argv": cli(&["approve", "p-expire", "--approver", "validator-1", "--key", &d.join("validator-1.seed").display().to_string(), "--yes"])},
            {"do": "list", "who": "carol", "query": "", "expect": ["Nothing is waiting"]},
            {"do": "signout", "who": "carol"},
        ],
    });
    std::fs::write(out.join("scenario.json"), scenario.to_string()).unwrap();
    let started = Instant::now();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../seb-admission/tests/browser/console_session.py");
    let run = std::process::Command::new("python3")
        .arg(script)
        .arg(out.join("scenario.json"))
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success() && stdout.contains("SESSION OK"),
        "browser session failed ({chromium}):\n{stdout}\n{stderr}\n{}",
        srv.log()
    );
    eprintln!("browser session: {:.1} s", started.elapsed().as_secs_f64());
    let transcript: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("transcript.json")).unwrap())
            .unwrap();
    let steps =
        |name: &str| -> Vec<&Value> { transcript.iter().filter(|s| s["step"] == name).collect() };
    let expired = steps("run")
        .into_iter()
        .find(|r| r["name"] == "an expired proposal cannot be approved")
        .unwrap();
    assert_ne!(expired["rc"], 0, "{expired}");

    // The certificate carries two passkey approvals and two validator approvals.
    let cert = certificate(&url, &ca, "p-l4");
    let payload: Value = serde_json::from_slice(&B64.decode(&cert.payload).unwrap()).unwrap();
    let atts = payload["attestations"].as_array().unwrap();
    let passkeys: Vec<&Value> =
        atts.iter().filter(|a| a["signatures"][0].get("webauthn").is_some()).collect();
    assert_eq!((atts.len(), passkeys.len()), (4, 2), "{payload}");
    // A copy with one passkey approval's signature changed, re-signed by the issuer: the
    // broker re-verifies the passkey and refuses at `path`.
    let mut forged = payload.clone();
    for a in forged["attestations"].as_array_mut().unwrap() {
        if a["signatures"][0].get("webauthn").is_some() {
            let mut sig = B64.decode(a["signatures"][0]["sig"].as_str().unwrap()).unwrap();
            let last = sig.len() - 1;
            sig[last] ^= 1;
            a["signatures"][0]["sig"] = json!(B64.encode(sig));
            break;
        }
    }
    let forged = Envelope::sign(PayloadType::Certificate, &forged, &key(1)).unwrap();
    let (code, v, err) = execute(&url, &ca, d, &forged, "forged.json");
    assert_ne!(code, 0, "{v}{err}");
    assert_eq!(v["failed_check"], "path", "{v}{err}");
    // The genuine one executes and the Deployment changes.
    let (_, before) = kube("GET", &format!("{deps}/web"), &t.admin, None);
    assert_eq!(before["spec"]["replicas"], 2);
    let (code, v, err) = execute(&url, &ca, d, &cert, "cert.json");
    assert_eq!(code, 0, "{v}{err}");
    assert_eq!(v["outcome"]["status"], "applied", "{v}");
    let (_, after) = kube("GET", &format!("{deps}/web"), &t.admin, None);
    assert_eq!(after["spec"]["replicas"], 6);

    // Cookie flags and CSP of the real responses.
    let signin = steps("signin")[0];
    let set = signin["set_cookie"].as_array().unwrap();
    let session = set
        .iter()
        .filter_map(Value::as_str)
        .find(|c| c.starts_with("__Host-seb-session="))
        .unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!signin["js_sees_cookie"].as_str().unwrap().contains("seb-session"));
    for r in steps("responses")[0]["responses"].as_array().unwrap() {
        if r["url"].as_str().unwrap().contains("/console") {
            let csp = r["headers"]["content-security-policy"].as_str().unwrap_or_default();
            assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"), "{r}");
        }
    }
    let csp = steps("csp")[0];
    assert_eq!((csp["inline"].as_bool(), csp["handler"].as_bool()), (Some(false), Some(false)));

    // Notifications: p-l4 and p-deny started waiting, then were decided; the links point at
    // the console; the bearer token was sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while notes.lock().unwrap().len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let notes = notes.lock().unwrap().clone();
    let find = |kind: &str, id: &str| {
        notes
            .iter()
            .find(|(_, n)| n["type"] == kind && n["proposal_id"] == id)
            .unwrap_or_else(|| panic!("no {kind} for {id}: {notes:?}"))
    };
    let (auth, waiting) = find("seb.proposal.waiting", "p-l4");
    assert_eq!(auth, "Bearer console-e2e-notify-token");
    assert_eq!(waiting["console_url"], json!(format!("{origin}/console/proposals/p-l4")));
    assert_eq!(find("seb.proposal.decided", "p-l4").1["status"], "certified");
    let denied = &find("seb.proposal.decided", "p-deny").1;
    assert!(denied["reason"].as_str().unwrap().contains("not during the freeze"), "{denied}");
    assert_eq!(find("seb.proposal.decided", "p-expire").1["status"], "expired");
    // Screenshots for CI.
    for f in ["enrol.png", "list.png", "proposal.png", "proposal-1-of-2.png", "proposal-phone.png"]
    {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 10_000, "{f}");
    }
}
