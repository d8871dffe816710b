//! The Kubernetes walkthrough setup the live tests share: API server requests as a test
//! user, the broker's files and `seb.toml`, a workload, and `seb deploy kubernetes` arguments.

use std::path::Path;

use seb_testinfra::kube::{KubeApiServer, KubeTokens as Tokens, unique_name};
use serde_json::{Value, json};

use super::seb;

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A request to the API server as one of the test users.
pub fn kube(method: &str, path: &str, token: &str, body: Option<(&str, Value)>) -> (u16, Value) {
    let s = KubeApiServer::shared().unwrap();
    let ca = reqwest::Certificate::from_pem(s.ca_pem()).unwrap();
    let c = reqwest::blocking::Client::builder().add_root_certificate(ca).build().unwrap();
    let mut r = c.request(method.parse().unwrap(), format!("{}{path}", s.url())).bearer_auth(token);
    if let Some((ct, b)) = body {
        r = r.header("content-type", ct).body(b.to_string());
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The broker's TLS certificate (the API server calls webhooks over HTTPS), its own
/// kubeconfig, and the read-only kubeconfig admission observes with.
pub fn write_broker_files(s: &KubeApiServer, t: &Tokens, d: &Path, ca: &Path) {
    let (crt, k) = s.issue_cert("broker").unwrap();
    std::fs::write(d.join("tls.crt"), crt).unwrap();
    std::fs::write(d.join("tls.key"), k).unwrap();
    std::fs::write(
        d.join("broker.kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: broker\n  user:\n    token: {}\ncontexts:\n- name: broker\n  context:\n    cluster: test\n    user: broker\ncurrent-context: broker\n",
            s.url(), ca.display(), t.broker
        ),
    )
    .unwrap();
    // Admission observes with the agents' read-only identity, never the broker's.
    std::fs::write(
        d.join("observer.kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: agent\n  user:\n    token: {}\ncontexts:\n- name: agent\n  context:\n    cluster: test\n    user: agent\ncurrent-context: agent\n",
            s.url(), ca.display(), t.agent
        ),
    )
    .unwrap();
}

/// `seb.toml` for a broker on `127.0.0.1:port` with `store`, the Kubernetes target
/// protecting `ns` and serving the webhook (files from [`write_broker_files`]), then `extra`.
pub fn broker_toml(port: u16, store: &str, ns: &str, extra: &str) -> String {
    format!(
        r#"[broker]
listen = "127.0.0.1:{port}"
key_file = "broker.seed"
store = "{store}"
checkpoint_interval_s = 0
tls_cert = "tls.crt"
tls_key = "tls.key"

[targets.kubernetes]
cluster = "test"
kubeconfig = "broker.kubeconfig"
observer_kubeconfig = "observer.kubeconfig"
exec_namespace = "seb-exec"
protected_namespaces = ["{ns}"]
webhook = true
broker_username = "broker"
{extra}"#
    )
}

/// A namespace `<prefix>-…` with Deployment `web` (2 replicas), made by the administrator
/// before SEB protects it; returns the namespace and its deployments path.
pub fn workload(t: &Tokens, prefix: &str) -> (String, String) {
    let ns = unique_name(prefix);
    let (st, _) = kube(
        "POST",
        "/api/v1/namespaces",
        &t.admin,
        Some((
            "application/json",
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name": ns}}),
        )),
    );
    assert_eq!(st, 201);
    let deployment = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"app":"web"}},
        "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
                "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"registry.local/web:1"}]}}}});
    let deps = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    let (st, _) = kube("POST", &deps, &t.admin, Some(("application/json", deployment)));
    assert_eq!(st, 201);
    (ns, deps)
}

/// A namespace `<prefix>-…` with Deployments `w0`…`w{n-1}` (2 replicas each), made by the
/// administrator before SEB protects it; returns the namespace and its deployments path.
pub fn namespace_with_deployments(admin: &str, prefix: &str, n: usize) -> (String, String) {
    let ns = unique_name(prefix);
    let (st, b) = kube(
        "POST",
        "/api/v1/namespaces",
        admin,
        Some((
            "application/json",
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name": ns}}),
        )),
    );
    assert_eq!(st, 201, "{b}");
    let deps = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    for i in 0..n {
        let name = format!("w{i}");
        let dep = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name": name},
            "spec":{"replicas":2,"selector":{"matchLabels":{"app": name}},
                    "template":{"metadata":{"labels":{"app": name}},"spec":{"containers":[{"name":"c","image":"registry.local/web:1"}]}}}});
        let (st, b) = kube("POST", &deps, admin, Some(("application/json", dep)));
        assert_eq!(st, 201, "{b}");
    }
    (ns, deps)
}

/// `seb deploy kubernetes` arguments protecting `ns` with the webhook at `127.0.0.1:port`
/// (add `--apply` or `--delete`).
pub fn deploy_args(s: &KubeApiServer, ns: &str, port: u16, ca: &Path) -> Vec<String> {
    let hook = format!("https://127.0.0.1:{port}/v1/kubernetes/admission-review");
    [
        "deploy",
        "kubernetes",
        "--protected-namespace",
        ns,
        "--broker-user",
        "broker",
        "--agent-user",
        "agent",
        "--webhook-url",
        &hook,
        "--ca-file",
        ca.to_str().unwrap(),
        "--no-admission-policy",
        "--kubeconfig",
        s.kubeconfig().to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `seb` with `args` and then `extra`.
pub fn seb_with(args: &[String], extra: &[&str]) -> (i32, String, String) {
    let all: Vec<&str> = args.iter().map(String::as_str).chain(extra.iter().copied()).collect();
    seb(&all)
}
