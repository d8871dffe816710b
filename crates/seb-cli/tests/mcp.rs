//! `seb mcp` driven by MCP clients nobody here wrote — the official Python SDK (PyPI `mcp`,
//! pinned) — against real admission + broker + kube-apiserver: the tools and their schemas,
//! `observe` against a kube read, bad inputs refused with nothing sent, a policy-path `apply`
//! visible on the API server, a human-path proposal approved with `seb approve` while
//! `seb mcp` was restarted, progress notifications, replay and revocation refusals with their
//! remedies, admission unreachable; and no key material or token in anything it printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use seb_testinfra::kube::KubeApiServer;
use serde_json::{Value, json};
use support::kube::{
    broker_toml, deploy_args, free_port, kube, seb_with, workload, write_broker_files,
};
use support::{SEB, admission_config, key, serve};

/// The Python MCP SDK the tests drive `seb mcp` with.
const PY_MCP: &str = "mcp==2.3.0";

fn python_mcp() {
    seb_testinfra::process::ensure_python_package(
        "import importlib.metadata as m; print(m.version('mcp'))",
        "2.3.0",
        PY_MCP,
    )
    .unwrap_or_else(|e| panic!("installing {PY_MCP}: {e}"));
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../seb-mcp/tests/clients")
}

/// Cedar: agents may propose; scaling above 4 replicas needs a human.
const POLICY: &str = r#"permit(principal, action == SEB::Action::"propose", resource);
@id("big-scale-needs-a-human")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context.op == "scale" && context.params.replicas > 4 };
"#;

/// Every secret the session could leak: the seeds of every key in the deployment (base64 and
/// hex) and Kubernetes tokens (JWTs, `{"alg":` → `eyJhbGciOi`).
fn assert_no_secrets(what: &str, text: &str) {
    for n in [1u8, 2, 3, 20, 40] {
        let seed = key(n).seed();
        let b64 = base64::engine::general_purpose::STANDARD.encode(seed.as_ref());
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&b64), "{what} contains the seed of key {n}");
        assert!(!text.contains(&hex), "{what} contains the seed of key {n} (hex)");
    }
    assert!(!text.contains("eyJhbGciOi"), "{what} contains a token");
    assert!(!text.contains("PRIVATE KEY"), "{what} contains a private key");
}

fn mcp_args(d: &Path, url: &str, ca: &Path) -> Vec<String> {
    [
        "--agent",
        "agent-a",
        "--agent-key",
        d.join("agent.seed").to_str().unwrap(),
        "--admission",
        url,
        "--broker",
        url,
        "--ca",
        ca.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn seb_mcp_refuses_to_start_with_a_missing_or_exposed_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = |k: &Path| -> Vec<String> {
        let mut a = vec!["mcp".to_owned()];
        a.extend(mcp_args(d, "http://127.0.0.1:9", Path::new("/nonexistent-ca.pem")));
        a[4] = k.display().to_string();
        a
    };
    let run = |a: Vec<String>| {
        let out = Command::new(SEB).args(a).stdin(std::process::Stdio::null()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), out.stdout)
    };
    let (code, err, stdout) = run(args(&d.join("missing.seed")));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refusing to start") && err.contains("missing.seed"), "{err}");
    assert!(stdout.is_empty(), "nothing on the protocol channel");
    let k = support::write_key(d, "agent.seed", 2);
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err, _) = run(args(&k));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("readable by group or other users") && err.contains("0644"), "{err}");
    assert_no_secrets("stderr", &err);
    // Off loopback, the HTTP transport needs TLS and client tokens.
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut a = args(&k);
    a.extend(["--listen".to_owned(), "0.0.0.0:0".to_owned()]);
    let (code, err, _) = run(a);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refusing to listen on 0.0.0.0:0") && err.contains("TLS"), "{err}");
}

/// `seb mcp --listen 127.0.0.1:0` with one client token and one allowed origin; its URL.
fn serve_http(d: &Path, url: &str, ca: &Path, token: &str) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let tokens = d.join("mcp-clients");
    std::fs::write(&tokens, format!("# client token\npython-client {token}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Command::new(SEB)
        .arg("mcp")
        .args(mcp_args(d, url, ca))
        .args(["--listen", "127.0.0.1:0", "--allowed-origin", "http://localhost:5173"])
        .arg("--client-tokens")
        .arg(&tokens)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(d.join("mcp-http.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!("{e}: {line}{}", std::fs::read_to_string(d.join("mcp-http.log")).unwrap_or_default())
    });
    (child, v["url"].as_str().unwrap().to_owned())
}

/// A protected namespace with Deployment `web`, `seb deploy kubernetes --apply`, and one
/// `seb serve` with admission (agent key 0600); undeployed on drop.
struct Deployment {
    dir: tempfile::TempDir,
    srv: support::Server,
    ns: String,
    deps: String,
    ca: PathBuf,
    deploy: Vec<String>,
    admin: String,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = seb_with(&self.deploy, &["--no-namespaces", "--delete"]);
    }
}

fn deployment(prefix: &str) -> Deployment {
    let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
    let t = &s.tokens().clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ns, deps) = workload(t, prefix);
    let port = free_port();
    let ca = d.join("ca.pem");
    std::fs::write(&ca, s.ca_pem()).unwrap();
    let deploy = deploy_args(s, &ns, port, &ca);
    let (code, out, err) = seb_with(&deploy, &["--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    write_broker_files(s, t, d, &ca);
    let cfg = broker_toml(port, "sqlite:seb.db", &ns, &admission_config(d, POLICY, ""));
    std::fs::write(d.join("seb.toml"), cfg).unwrap();
    let agent_key = d.join("agent.seed");
    std::fs::set_permissions(&agent_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let srv = serve(d, Some(&ca));
    Deployment { srv, ns, deps, ca, deploy, admin: t.admin.clone(), dir }
}

#[test]
fn an_agent_drives_seb_through_mcp_with_the_python_sdk() {
    python_mcp();
    let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
    let _iso = KubeApiServer::isolated();
    let dep = deployment("mcp");
    let (d, srv, ns, deps, ca) = (dep.dir.path(), &dep.srv, &dep.ns, &dep.deps, &dep.ca);
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let (mut http_child, http_url) = serve_http(d, &srv.url, ca, &token);
    let scenario = json!({
        "seb": SEB,
        "http_url": http_url,
        "http_token": token,
        "http_origin": "http://localhost:5173",
        "mcp_args": mcp_args(d, &srv.url, ca),
        "unreachable_args": mcp_args(d, &format!("https://127.0.0.1:{}", free_port()), ca),
        "env": {"SEB_LOG": "info", "PATH": std::env::var("PATH").unwrap_or_default()},
        "admission": srv.url,
        "broker": srv.url,
        "ca": ca,
        "ns": ns,
        "approver_key": d.join("alice.seed"),
        "admin_key": d.join("ops.seed"),
        "out": d.join("transcript.json"),
        "steps": ["tools_and_bad_inputs", "policy_apply", "human_path", "benchmark", "http_transport", "drift", "revoked", "unreachable"],
    });
    std::fs::write(d.join("scenario.json"), scenario.to_string()).unwrap();
    let (_, before) = kube("GET", &format!("{deps}/web"), &dep.admin, None);
    let started = std::time::Instant::now();
    let out = Command::new("python3")
        .arg(clients_dir().join("python_session.py"))
        .arg(d.join("scenario.json"))
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("SESSION OK"),
        "python session failed:\n{stdout}\n{stderr}\n{}",
        srv.log()
    );
    eprintln!("python MCP session: {:.1} s", started.elapsed().as_secs_f64());
    for line in stdout.lines() {
        eprintln!("  {}", line.chars().take(300).collect::<String>());
    }
    let transcript: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(d.join("transcript.json")).unwrap()).unwrap();
    let step =
        |name: &str| -> Vec<&Value> { transcript.iter().filter(|s| s["step"] == name).collect() };

    // observe matched the API server's object at the time.
    let obs = &step("observe")[0]["structured"];
    assert_eq!(obs["projection"][""]["spec"]["replicas"], before["spec"]["replicas"], "{obs}");
    assert_eq!(obs["projection"][""]["metadata"]["name"], "web");
    // Every bad input was refused, none reached admission or the broker.
    assert_eq!(step("bad_input").len(), 9);
    let unchanged = &step("ledger_unchanged")[0];
    assert_eq!(unchanged["before"], unchanged["after"]);
    // Every applied change is on the API server: 3 by policy, 6 after approval, 3 by the
    // change that made `mcp-drift-a` stale, 4 re-proposed; the revoked agent's 4 never ran.
    let (_, web) = kube("GET", &format!("{deps}/web"), &dep.admin, None);
    assert_eq!(web["spec"]["replicas"], 4, "{web}");
    let readmit = transcript
        .iter()
        .find(|s| s["step"] == "execute" && s["structured"]["decision"] == "readmit")
        .expect("a readmit");
    assert_eq!(readmit["structured"]["failed_check"], "drift", "{readmit}");
    assert!(!step("progress")[0]["notifications"].as_array().unwrap().is_empty());

    // No key material or token in anything the session printed (tool results, seb mcp's
    // stderr, which the SDK forwards).
    assert_no_secrets("python stdout", &stdout);
    assert_no_secrets("python stderr + seb mcp logs", &stderr);
    assert_no_secrets("transcript", &serde_json::to_string(&transcript).unwrap());
    assert!(stderr.contains("proposal submitted"), "seb mcp logged to stderr: {stderr}");
    let _ = http_child.kill();
    let _ = http_child.wait();
    let http_log = std::fs::read_to_string(d.join("mcp-http.log")).unwrap();
    assert_no_secrets("seb mcp --listen logs", &http_log);
    assert!(
        http_log.contains("bearer token refused") && http_log.contains("origin not allowed"),
        "{http_log}"
    );
    for (what, text) in
        [("http log", &http_log), ("stdout", &stdout.to_string()), ("stderr", &stderr.to_string())]
    {
        assert!(!text.contains(&token), "{what} contains the client's bearer token");
    }

    // The agent reads seb mcp uses are signed: unsigned, signed by an unregistered key, or
    // signed over another query, they are refused.
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(s.ca_pem()).unwrap())
        .build()
        .unwrap();
    let pq = "/v1/admission/paths";
    let get = |path: &str, sig: Option<String>| {
        let mut r = http.get(format!("{}{path}", srv.url));
        if let Some(sig) = sig {
            r = r.header(seb_admission::client::READ_SIGNATURE_HEADER, sig);
        }
        r.send().unwrap().status().as_u16()
    };
    // Admission's one request authentication: every failure is 401 (no credentials, an
    // unregistered key, a signature over another request, a stale signature).
    let now = seb_mcp::client::now_ms().unwrap();
    assert_eq!(get(pq, Some(seb_admission::client::sign_read(&key(2), "GET", pq, now))), 200);
    assert_eq!(get(pq, None), 401);
    assert_eq!(get(pq, Some(seb_admission::client::sign_read(&key(99), "GET", pq, now))), 401);
    let other = "/v1/admission/observations?platform=kubernetes&op=scale&target=%7B%7D";
    assert_eq!(get(other, Some(seb_admission::client::sign_read(&key(2), "GET", pq, now))), 401);
    assert_eq!(
        get(pq, Some(seb_admission::client::sign_read(&key(2), "GET", pq, now - 3_600_000))),
        401
    );
}

/// The TypeScript MCP SDK (npm, pinned) installed into a temporary directory.
const TS_SDK: &str = "@modelcontextprotocol/sdk@1.32.2";

#[test]
fn the_typescript_sdk_drives_seb_mcp_over_stdio() {
    let _iso = KubeApiServer::isolated();
    let dep = deployment("mcpts");
    let d = dep.dir.path();
    let node = d.join("node");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::write(node.join("package.json"), r#"{"type": "module", "private": true}"#).unwrap();
    let out = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", TS_SDK])
        .current_dir(&node)
        .output()
        .unwrap();
    assert!(out.status.success(), "npm install {TS_SDK}: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(clients_dir().join("ts_session.mjs"), node.join("ts_session.mjs")).unwrap();
    let scenario = json!({
        "seb": SEB,
        "mcp_args": mcp_args(d, &dep.srv.url, &dep.ca),
        "env": {"SEB_LOG": "info", "PATH": std::env::var("PATH").unwrap_or_default()},
        "ns": dep.ns,
        "ts_proposal": "ts-scale-5",
    });
    std::fs::write(d.join("scenario.json"), scenario.to_string()).unwrap();
    let out = Command::new("node")
        .arg(node.join("ts_session.mjs"))
        .arg(d.join("scenario.json"))
        .current_dir(&node)
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for line in stdout.lines() {
        eprintln!("  {}", line.chars().take(300).collect::<String>());
    }
    assert!(out.status.success() && stdout.contains("SESSION OK"), "{stdout}\n{stderr}");
    // `apply` returned pending after its 1 s bound: nothing changed on the API server.
    let (_, web) = kube("GET", &format!("{}/web", dep.deps), &dep.admin, None);
    assert_eq!(web["spec"]["replicas"], 2, "{web}");
    assert_no_secrets("node stdout", &stdout);
    assert_no_secrets("node stderr + seb mcp logs", &stderr);
}
