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
    assert_none_of(what, text, &[]);
}

/// [`assert_no_secrets`] and each of `more` (API server tokens, AWS secret keys, client
/// bearer tokens; STS session tokens minted by moto start with `FQoGZXIvYXdzE`).
fn assert_none_of(what: &str, text: &str, more: &[&str]) {
    for (i, m) in more.iter().enumerate() {
        assert!(m.len() >= 16, "secret {i} is too short to scan for");
        assert!(!text.contains(m), "{what} contains secret {i}");
    }
    assert!(!text.contains("FQoGZXIvYXdzE"), "{what} contains an STS session token");
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
        // A bare port: loopback by default.
        .args(["--listen", "0", "--allowed-origin", "http://localhost:5173"])
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
    let url = v["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "`--listen PORT` serves loopback: {url}");
    (child, url)
}

/// This machine's address off loopback (the one its default route uses).
fn non_loopback_ip() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    if s.connect("203.0.113.1:9").is_ok()
        && let Ok(a) = s.local_addr()
        && !a.ip().is_loopback()
        && !a.ip().is_unspecified()
    {
        return a.ip();
    }
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse::<std::net::IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("no address off loopback on this machine")
}

/// `seb mcp --listen <address off loopback>:0` over TLS (a certificate for that address from
/// a fresh test CA) with two clients' tokens; its URL and the CA.
fn serve_https(
    d: &Path,
    url: &str,
    ca: &Path,
    clients: &[(&str, &str)],
) -> (std::process::Child, String, PathBuf) {
    use std::io::BufRead as _;
    let ip = non_loopback_ip();
    let tls = d.join("mcp-tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (mcp_ca, crt, key) =
        seb_testinfra::certs::serving_certificate(&tls, "seb-mcp", &format!("IP:{ip}")).unwrap();
    let tokens = d.join("mcp-https-clients");
    let lines: String = clients.iter().map(|(n, t)| format!("{n} {t}\n")).collect();
    std::fs::write(&tokens, lines).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Command::new(SEB)
        .arg("mcp")
        .args(mcp_args(d, url, ca))
        .args(["--listen", &std::net::SocketAddr::new(ip, 0).to_string()])
        .arg("--tls-cert")
        .arg(&crt)
        .arg("--tls-key")
        .arg(&key)
        .arg("--client-tokens")
        .arg(&tokens)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(d.join("mcp-https.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!(
            "{e}: {line}{}",
            std::fs::read_to_string(d.join("mcp-https.log")).unwrap_or_default()
        )
    });
    let https = v["url"].as_str().unwrap().to_owned();
    assert!(https.starts_with(&format!("https://{ip}:")), "{https}");
    (child, https, mcp_ca)
}

/// The AWS side of the deployment on moto (as `seb deploy aws` prints it): the broker's and
/// the observer's users, the execution role, a bucket; the `[targets.aws]` section and the
/// secrets to scan for.
struct Aws {
    toml: String,
    bucket: String,
    secrets: Vec<String>,
}

fn aws_on_moto(d: &Path) -> Aws {
    use seb_testinfra::moto::{ACCOUNT, Call, MotoServer};
    let moto = MotoServer::shared().unwrap_or_else(|e| panic!("moto_server: {e}"));
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let out_dir = d.join("aws");
    let broker_user = format!("seb-broker-{suffix}");
    let role = format!("seb-execution-{suffix}");
    let (code, out, err) = support::seb(&[
        "deploy",
        "aws",
        "--broker-principal-arn",
        &format!("arn:aws:iam::{ACCOUNT}:user/{broker_user}"),
        "--account",
        ACCOUNT,
        "--execution-role-name",
        &role,
        "--admin-principal-arn-pattern",
        &format!("arn:aws:iam::{ACCOUNT}:user/seb-test-admin"),
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let doc = |n: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out_dir.join(n)).unwrap()).unwrap()
    };
    let broker = moto.create_user(&broker_user, &doc("broker-role-policy.json")).unwrap();
    let agent = moto
        .create_user(&format!("seb-agent-{suffix}"), &doc("agent-permission-boundary.json"))
        .unwrap();
    let broad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]});
    let role_arn =
        moto.create_role(&role, &doc("execution-role-trust-policy.json"), &broad).unwrap();
    let bucket = format!("mcp-{suffix}");
    moto.seed(&[Call::new("s3", "create_bucket", json!({"Bucket": bucket}))]).unwrap();
    for (file, k) in [("aws.json", &broker), ("aws-observer.json", &agent)] {
        std::fs::write(
            d.join(file),
            json!({"access_key_id": k.access_key_id, "secret_access_key": k.secret_access_key})
                .to_string(),
        )
        .unwrap();
    }
    let toml = format!(
        r#"
[targets.aws]
endpoint_url = "{endpoint}"
s3_force_path_style = true
broker_credentials_file = "{broker_file}"
observer_credentials_file = "{observer_file}"

[targets.aws.accounts.{ACCOUNT}]
execution_role_arn = "{role_arn}"
"#,
        endpoint = moto.endpoint(),
        broker_file = d.join("aws.json").display(),
        observer_file = d.join("aws-observer.json").display(),
    );
    let secrets = vec![broker.secret_access_key.clone(), agent.secret_access_key.clone()];
    Aws { toml, bucket, secrets }
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

/// `kube_extra`: more `[targets.kubernetes]` lines; `extra`: more sections of `seb.toml`.
fn deployment(prefix: &str, deploy_extra: &[&str], kube_extra: &str, extra: &str) -> Deployment {
    let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
    let t = &s.tokens().clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ns, deps) = workload(t, prefix);
    let port = free_port();
    let ca = d.join("ca.pem");
    std::fs::write(&ca, s.ca_pem()).unwrap();
    let mut deploy = deploy_args(s, &ns, port, &ca);
    deploy.extend(deploy_extra.iter().map(|a| (*a).to_owned()));
    let (code, out, err) = seb_with(&deploy, &["--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    write_broker_files(s, t, d, &ca);
    let cfg = broker_toml(
        port,
        "sqlite:seb.db",
        &ns,
        &format!("{kube_extra}{}{extra}", admission_config(d, POLICY, "")),
    );
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
    let t = s.tokens().clone();
    // The AWS target on moto next to the Kubernetes one; `admin` is an emergency user SEB's
    // webhook exempts (an administrator who can still write directly: out-of-band drift).
    let aws_dir = tempfile::tempdir().unwrap();
    let aws = aws_on_moto(aws_dir.path());
    let dep = deployment(
        "mcp",
        &["--exempt-user", "admin"],
        "exempt_usernames = [\"admin\"]\n",
        &aws.toml,
    );
    let (d, srv, ns, deps, ca) = (dep.dir.path(), &dep.srv, &dep.ns, &dep.deps, &dep.ca);
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let (mut http_child, http_url) = serve_http(d, &srv.url, ca, &token);
    let https_clients = [
        ("ide-host", format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())),
        (
            "agent-framework",
            format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
        ),
    ];
    let clients: Vec<(&str, &str)> = https_clients.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let (mut https_child, https_url, https_ca) = serve_https(d, &srv.url, ca, &clients);
    let admin_token_file = d.join("kube-admin.token");
    std::fs::write(&admin_token_file, &t.admin).unwrap();
    std::fs::set_permissions(&admin_token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
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
        "kube": {"url": s.url(), "ca": ca, "admin_token_file": admin_token_file},
        "aws": {"account": seb_testinfra::moto::ACCOUNT, "region": seb_testinfra::moto::REGION, "bucket": aws.bucket},
        "https": {"url": https_url, "ca": https_ca, "token": https_clients[0].1,
                  "clients": https_clients.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()},
        "steps": ["tools_and_bad_inputs", "policy_apply", "human_path", "benchmark", "http_transport",
                  "https_transport", "output_schemas", "drift", "drift_out_of_band", "kill_during_wait",
                  "aws_apply", "revoked", "unreachable"],
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
    // change that made `mcp-drift-a` stale, 4 re-proposed, 1 by the administrator out of
    // band, 2 re-proposed from it, 5 approved after `seb mcp` was killed and restarted; the
    // revoked agent's 4 never ran.
    let (_, web) = kube("GET", &format!("{deps}/web"), &dep.admin, None);
    assert_eq!(web["spec"]["replicas"], 5, "{web}");
    let readmits: Vec<&Value> = transcript
        .iter()
        .filter(|s| s["step"] == "execute" && s["structured"]["decision"] == "readmit")
        .collect();
    assert_eq!(readmits.len(), 2, "a competing certified change and an out-of-band write");
    for r in &readmits {
        assert_eq!(r["structured"]["failed_check"], "drift", "{r}");
    }
    assert_eq!(step("drift_out_of_band")[0]["fresh_replicas"], 1);
    assert!(!step("progress")[0]["notifications"].as_array().unwrap().is_empty());
    assert_eq!(step("seb_mcp_killed").len(), 1);
    // The certified S3 PutObject is in the bucket.
    let moto = seb_testinfra::moto::MotoServer::shared().unwrap();
    let got =
        moto.call("s3", "get_object", json!({"Bucket": aws.bucket, "Key": "flags.json"})).unwrap();
    assert_eq!(got["Body"], "{\"sale\":true}", "{got}");
    // HTTPS off loopback: each client's session, and the refusals.
    let sessions: Vec<&str> =
        step("https_session").iter().map(|s| s["client"].as_str().unwrap()).collect();
    assert_eq!(sessions, ["agent-framework", "ide-host"]);
    assert_eq!(step("https_statuses")[0]["no token"], 401);
    // Each tool's successful results were validated against its outputSchema by the SDK.
    assert_eq!(step("output_schemas_validated")[0]["tools"].as_object().unwrap().len(), 6);

    // No key material or token in anything the session printed (tool results, seb mcp's
    // stderr, which the SDK forwards).
    let mut secrets: Vec<&str> = aws.secrets.iter().map(String::as_str).collect();
    secrets.extend([t.admin.as_str(), t.broker.as_str(), t.agent.as_str()]);
    secrets.extend(https_clients.iter().map(|(_, t)| t.as_str()));
    assert_none_of("python stdout", &stdout, &secrets);
    assert_none_of("python stderr + seb mcp logs", &stderr, &secrets);
    assert_none_of("transcript", &serde_json::to_string(&transcript).unwrap(), &secrets);
    assert_none_of("seb serve's log", &srv.log(), &secrets[..2]);
    assert!(stderr.contains("proposal submitted"), "seb mcp logged to stderr: {stderr}");
    let _ = http_child.kill();
    let _ = http_child.wait();
    let _ = https_child.kill();
    let _ = https_child.wait();
    let https_log = std::fs::read_to_string(d.join("mcp-https.log")).unwrap();
    assert_none_of("seb mcp --listen (TLS) logs", &https_log, &secrets);
    assert!(https_log.contains("bearer token refused"), "{https_log}");
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
    let dep = deployment("mcpts", &[], "", "");
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
