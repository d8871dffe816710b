//! Tool-call overhead of `seb mcp` over stdio on top of the underlying HTTP call
//! (harness = false; prints p50/p99; issue 12's target: ≤ 1 ms p50).
//!
//! The real `seb` binary of this build (`seb mcp`, release profile) is started as an agent
//! host would start it, with a 0600 agent key, against a loopback HTTP stand-in for admission
//! that answers at once with a canned proposal view / paths document. A minimal client in
//! this process writes newline-delimited JSON-RPC to its stdin and reads its stdout (the
//! `initialize` handshake, then `tools/call`), so the figure is `seb mcp`'s own cost: reading
//! and parsing the request, rmcp's dispatch, argument validation, signing the admission read,
//! building the structured result and the text summary, serialising and writing it back —
//! minus the time it reports in `_meta["io.seb/http_us"]` for waiting on admission.
//!
//! - `proposal_status`: one signed admission read, a pending human-path view.
//! - `list_operations`: one signed read of the levels plus the whole operation catalogue
//!   (the largest result, ~40 KB).
//! - `http`: the same admission read made directly from this process with reqwest, for scale.
//! - `ping`: a JSON-RPC ping through the pipes and rmcp (no tool, no HTTP): the transport's
//!   floor, included in every tool call's overhead.
//!
//! Run: `cargo bench -p seb-cli --bench mcp_stdio` (`SEB_MCP_BENCH_CALLS` calls per tool,
//! default 2000, after 200 warm-up calls).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

fn proposal_view(id: &str) -> Value {
    json!({
        "proposal_id": id,
        "agent": "agent-a",
        "status": "pending",
        "proposal": {"proposal_id": id, "agent": "agent-a", "platform": "kubernetes", "op": "scale",
            "target": {"cluster": "prod", "api_version": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"},
            "params": {"replicas": 6}, "constraints": [], "rationale": "sale traffic", "at_ms": 1_765_000_000_000u64},
        "received_at_ms": 1_765_000_000_100u64,
        "deadline_ms": 1_765_000_900_100u64,
        "contract": {"platform": "kubernetes", "op": "scale",
            "target": {"cluster": "prod", "api_version": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"},
            "params": {"replicas": 6}, "constraints": []},
        "contract_digest": "sha256:8b1a9953c4611296a827abf8c47804d7e6c49c6b7c8f0e0f1b5a3e3c9b4f1c2d",
        "evidence": {"pointers": ["", "/spec/replicas"], "digest": "sha256:1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988",
            "observed_at_ms": 1_765_000_000_090u64, "resource_version": "48213"},
        "score": {"level": 3, "score_milli": 520, "weighted_milli": 410, "peak_milli": 520,
            "factors": {"blast": 400, "reversibility": 200, "sensitivity": 300, "novelty": 100},
            "reasons": ["scale of a Deployment: 6 replicas", "namespace shop is production"]},
        "policy": {"decision": "require_human", "policies": ["big-scale-needs-a-human"], "policy_epoch": 3,
            "policy_digest": "sha256:aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44"},
        "requirement": {"path": "human", "validators": 0, "humans": 1},
        "approvals": [],
        "reason": null, "cid": null, "cert_path": null, "validity": null,
        "certificate_digest": null, "break_glass": null, "record_id": null
    })
}

fn paths() -> Value {
    let r = |p: &str, v: u32, h: u32| json!({"path": p, "validators": v, "humans": h});
    json!({"levels": {"L0": null, "L1": r("policy", 0, 0), "L2": r("policy", 0, 0), "L3": r("quorum", 2, 0),
        "L4": r("human", 1, 1), "L5": null}, "escalation": {"require_human": r("human", 0, 1)}})
}

/// Loopback HTTP stand-in for admission; its base URL.
fn admission() -> String {
    use axum::Json;
    use axum::extract::Path;
    use axum::routing::get;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/v1/admission/proposals/{id}",
                    get(|Path(id): Path<String>| async move { Json(proposal_view(&id)) }),
                )
                .route("/v1/admission/paths", get(|| async { Json(paths()) }));
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    url
}

struct Stdio_ {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    next_id: u64,
}

impl Stdio_ {
    fn send(&mut self, v: &Value) {
        let mut line = serde_json::to_vec(v).unwrap();
        line.push(b'\n');
        self.stdin.write_all(&line).unwrap();
        self.stdin.flush().unwrap();
    }

    /// One request; the response with its id (notifications in between are skipped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "seb mcp closed stdout");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }
}

fn start(url: &str, key: &std::path::Path) -> Stdio_ {
    let mut child = Command::new(env!("CARGO_BIN_EXE_seb"))
        .args(["mcp", "--agent", "agent-a", "--agent-key"])
        .arg(key)
        .args(["--admission", url, "--broker", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut s = Stdio_ { child, stdin, stdout, next_id: 0 };
    let init = s.request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "seb-bench", "version": "0"}}),
    );
    assert!(init["result"]["serverInfo"]["name"] == "seb-mcp", "{init}");
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    s
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let (p50, p99) = (pct(&v, 0.5), pct(&v, 0.99));
    println!(
        "{name:<44} n={:<5} p50 {:>8.1} us   p90 {:>8.1} us   p99 {:>8.1} us",
        v.len(),
        p50,
        pct(&v, 0.9),
        p99
    );
    (p50, p99)
}

fn bench_tool(s: &mut Stdio_, tool: &str, args: &Value, warm: usize, n: usize) -> (f64, f64) {
    for _ in 0..warm {
        let r = s.request("tools/call", json!({"name": tool, "arguments": args}));
        assert!(r["result"]["isError"] != true, "{r}");
    }
    let (mut rtt, mut http, mut over) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t0 = Instant::now();
        let r = s.request("tools/call", json!({"name": tool, "arguments": args}));
        let us = t0.elapsed().as_secs_f64() * 1e6;
        let h = r["result"]["_meta"]["io.seb/http_us"]
            .as_f64()
            .unwrap_or_else(|| panic!("no io.seb/http_us in {r}"));
        assert!(r["result"]["structuredContent"].is_object(), "{r}");
        rtt.push(us);
        http.push(h);
        over.push(us - h);
    }
    report(&format!("{tool}: round trip"), rtt);
    report(&format!("{tool}: admission read (inside seb mcp)"), http);
    report(&format!("{tool}: seb mcp overhead"), over)
}

fn main() {
    let n: usize =
        std::env::var("SEB_MCP_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let warm = 200;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.seed");
    let seed = seb_core::keys::SigningKey::from_seed(&[2; 32]).seed();
    std::fs::write(
        &key,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, seed.as_ref()),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = admission();
    println!(
        "seb mcp over stdio ({} build), {n} calls per tool after {warm} warm-up calls",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );

    // The underlying HTTP call alone, from this process.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let direct: Vec<f64> = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..(warm + n) {
            let t0 = Instant::now();
            let r = http.get(format!("{url}/v1/admission/proposals/bench-1")).send().await.unwrap();
            let _ = r.bytes().await.unwrap();
            if i >= warm {
                v.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        v
    });
    report("http: the admission read alone (reqwest)", direct);

    let mut s = start(&url, &key);
    // The floor: a JSON-RPC `ping` through the pipes and rmcp, no tool, no HTTP.
    let mut ping = Vec::new();
    for i in 0..(warm + n) {
        let t0 = Instant::now();
        let r = s.request("ping", json!({}));
        assert!(r.get("result").is_some(), "{r}");
        if i >= warm {
            ping.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    report("ping: round trip (pipes + rmcp only)", ping);
    let (p50, p99) =
        bench_tool(&mut s, "proposal_status", &json!({"proposal_id": "bench-1"}), warm, n);
    bench_tool(&mut s, "list_operations", &json!({}), warm, n / 4);
    println!(
        "RESULT seb mcp stdio overhead (proposal_status): p50 {:.3} ms, p99 {:.3} ms (target p50 <= 1 ms: {})",
        p50 / 1000.0,
        p99 / 1000.0,
        if p50 <= 1000.0 { "met" } else { "NOT met" }
    );
    drop(s.stdin);
    let _ = s.child.wait();
}
