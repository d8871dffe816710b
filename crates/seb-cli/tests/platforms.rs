//! The walkthrough on real platforms, through the `seb` binary: `seb deploy` installs the
//! bypass-prevention artefacts, `seb serve` drives the real target (kube-apiserver + etcd;
//! moto_server with IAM enforcement), an agent proposes, admission certifies, the agent
//! executes, and every way around the broker is refused by the platform itself.
//! The services are started by seb-testinfra; nothing here is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::kube::free_port;
use support::{PERMIT_PROPOSALS, Server, admission_config, pk, seb, serve};

/// What an agent proposes.
struct Change<'a> {
    platform: &'a str,
    op: &'a str,
    target: Value,
    params: Value,
}

/// `seb propose --wait` for a change admission certifies by policy; returns the certificate.
fn propose(s: &Server, dir: &Path, ca: Option<&Path>, id: &str, c: &Change<'_>) -> PathBuf {
    let (platform, op, target, params) = (c.platform, c.op, &c.target, &c.params);
    let cert = dir.join(format!("{id}.cert.json"));
    let mut args = vec![
        "propose".to_owned(),
        "--admission".into(),
        s.url.clone(),
        "--agent".into(),
        "agent-a".into(),
        "--agent-key".into(),
        dir.join("agent.seed").display().to_string(),
        "--platform".into(),
        platform.into(),
        "--op".into(),
        op.into(),
        "--target".into(),
        target.to_string(),
        "--params".into(),
        params.to_string(),
        "--id".into(),
        id.into(),
        "--wait".into(),
        "--timeout-s".into(),
        "60".into(),
        "--out".into(),
        cert.display().to_string(),
    ];
    if let Some(ca) = ca {
        args.push("--ca".into());
        args.push(ca.display().to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = seb(&a);
    assert_eq!(code, 0, "propose: {out}{err}\n{}", s.log());
    cert
}

fn execute(s: &Server, dir: &Path, ca: Option<&Path>, cert: &Path) -> (i32, Value) {
    let mut args = vec![
        "execute".to_owned(),
        "--broker".into(),
        s.url.clone(),
        "--certificate".into(),
        cert.display().to_string(),
        "--agent-key".into(),
        dir.join("agent.seed").display().to_string(),
    ];
    if let Some(ca) = ca {
        args.push("--ca".into());
        args.push(ca.display().to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = seb(&a);
    (code, serde_json::from_str(&out).unwrap_or_else(|_| json!({"stdout": out, "stderr": err})))
}

/// Export the ledger and verify it offline with the broker and admission keys.
fn verify_ledger(s: &Server, dir: &Path, ca: Option<&Path>) -> Value {
    let export = dir.join("ledger.json");
    let mut args = vec!["ledger", "export", "--broker", &s.url, "--out", export.to_str().unwrap()];
    if let Some(ca) = ca {
        args.extend(["--ca", ca.to_str().unwrap()]);
    }
    let (code, out, err) = seb(&args);
    assert_eq!(code, 0, "{out}{err}");
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

// ------------------------------------------------------------------------------ Kubernetes

mod kubernetes {
    use super::*;
    use seb_testinfra::kube::{KubeApiServer, KubeTokens as Tokens};
    use support::kube::{broker_toml, deploy_args, kube, seb_with, workload, write_broker_files};

    #[test]
    fn a_certified_scale_is_applied_and_every_bypass_is_refused() {
        let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
        let _iso = KubeApiServer::isolated();
        let t = &s.tokens().clone();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The workload exists before SEB protects its namespace.
        let (ns, deps) = workload(t, "walk");

        // seb deploy kubernetes --apply: RBAC, execution namespace, webhook (Fail).
        let port = free_port();
        let ca = d.join("ca.pem");
        std::fs::write(&ca, s.ca_pem()).unwrap();
        let deploy_args = deploy_args(s, &ns, port, &ca);
        let (code, out, err) = seb_with(&deploy_args, &["--apply"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("ValidatingWebhookConfiguration"), "{out}");
        // seb-cluster-admin covers the groups this server serves (discovery), never writes
        // admission configuration.
        let (st, role) = kube(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/seb-cluster-admin",
            &t.admin,
            None,
        );
        assert_eq!(st, 200, "{role}");
        let groups = &role["rules"][0]["apiGroups"];
        assert!(groups.as_array().unwrap().contains(&json!("apps")), "{role}");
        assert!(!groups.as_array().unwrap().contains(&json!("admissionregistration.k8s.io")));

        write_broker_files(s, t, d, &ca);
        let cfg =
            broker_toml(port, "sqlite:seb.db", &ns, &admission_config(d, PERMIT_PROPOSALS, ""));
        std::fs::write(d.join("seb.toml"), cfg).unwrap();
        let srv = serve(d, Some(&ca));

        // Propose, certify (scaling by one replica is L2: the policy path), execute.
        let target = json!({"cluster":"test","api_version":"apps/v1","kind":"Deployment","namespace": ns,"name":"web"});
        let change =
            Change { platform: "kubernetes", op: "scale", target, params: json!({"replicas": 3}) };
        let cert = propose(&srv, d, Some(&ca), "scale-web", &change);
        let (code, v) = execute(&srv, d, Some(&ca), &cert);
        assert_eq!(code, 0, "{v}\n{}", srv.log());
        assert_eq!(v["outcome"]["status"], "applied", "{v}");
        let (_, dep) = kube("GET", &format!("{deps}/web"), &t.admin, None);
        assert_eq!(dep["spec"]["replicas"], 3, "the change is visible");
        // The execution identity was retired right after the call.
        let (_, sas) = kube("GET", "/api/v1/namespaces/seb-exec/serviceaccounts", &t.admin, None);
        let left: Vec<&Value> = sas["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["metadata"]["name"].as_str().unwrap_or("").starts_with("seb-exec-"))
            .collect();
        assert!(left.is_empty(), "execution ServiceAccounts left behind: {left:?}");

        // A replay is refused.
        let (code, v) = execute(&srv, d, Some(&ca), &cert);
        assert_eq!(code, 2, "{v}");
        assert_eq!(v["failed_check"], "replay");

        // Bypass 1: the agent's own credentials are read-only (RBAC).
        let patch = Some(("application/merge-patch+json", json!({"spec": {"replicas": 9}})));
        let (st, body) = kube("PATCH", &format!("{deps}/web"), &t.agent, patch.clone());
        assert_eq!(st, 403, "agent patch: {body}");
        // Bypass 2: even a cluster administrator is denied by the webhook without a live
        // execution identity.
        let (st, body) = kube("PATCH", &format!("{deps}/web"), &t.admin, patch);
        assert!(st >= 400, "admin patch went through: {body}");
        let msg = body["message"].as_str().unwrap_or("");
        assert!(msg.contains("not the identity of a live SEB execution"), "{body}");
        let (_, dep) = kube("GET", &format!("{deps}/web"), &t.admin, None);
        assert_eq!(dep["spec"]["replicas"], 3, "nothing changed");

        // The shared ledger verifies offline: one issuance, one admit, one outcome, the replay.
        let report = verify_ledger(&srv, d, Some(&ca));
        assert_eq!(
            (
                report["issued"].as_u64(),
                report["admits"].as_u64(),
                report["outcomes"].as_u64(),
                report["rejects"].as_u64()
            ),
            (Some(1), Some(1), Some(1), Some(1)),
            "{report}"
        );

        // A proposal that cannot apply to what admission observed on the live cluster is
        // refused with the reason (a scale of a Deployment that does not exist, a create of
        // one that does), and denied on record.
        for (id, op, name, params, why) in [
            ("scale-ghost", "scale", "ghost", json!({"replicas": 2}), "does not exist"),
            ("create-web", "create", "web", json!({"spec": {}}), "already exists"),
        ] {
            let target = json!({"cluster":"test","api_version":"apps/v1","kind":"Deployment","namespace": ns,"name": name});
            let (code, out, err) = seb(&[
                "propose",
                "--admission",
                &srv.url,
                "--ca",
                ca.to_str().unwrap(),
                "--agent",
                "agent-a",
                "--agent-key",
                d.join("agent.seed").to_str().unwrap(),
                "--platform",
                "kubernetes",
                "--op",
                op,
                "--target",
                &target.to_string(),
                "--params",
                &params.to_string(),
                "--id",
                id,
            ]);
            assert_eq!(code, 2, "{id}: {out}{err}");
            assert!(err.contains("refused (422)") && err.contains(why), "{id}: {err}");
        }
        let (_, dep) = kube("GET", &format!("{deps}/web"), &t.admin, None);
        assert_eq!(dep["spec"]["replicas"], 3, "nothing changed");

        // `seb deploy kubernetes --delete` with the same flags uninstalls it (webhook first);
        // --no-namespaces keeps the namespaces, which other tests in this process share.
        let (code, out, err) = seb_with(&deploy_args, &["--no-namespaces", "--delete"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("\"deleted\""), "{out}");
        let (st, _) = kube(
            "GET",
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/seb-broker",
            &t.admin,
            None,
        );
        assert_eq!(st, 404, "the webhook is gone");
        let (st, _) = kube(
            "GET",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            &t.admin,
            None,
        );
        assert_eq!(st, 200);
        let (_, bindings) = kube(
            "GET",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            &t.admin,
            None,
        );
        assert_eq!(bindings["items"].as_array().map(Vec::len), Some(0), "{bindings}");
        // Without the webhook the administrator's patch goes through again.
        let patch = Some(("application/merge-patch+json", json!({"spec": {"replicas": 9}})));
        let (st, body) = kube("PATCH", &format!("{deps}/web"), &t.admin, patch);
        assert_eq!(st, 200, "{body}");
        // A second --delete finds nothing and still succeeds.
        let (code, out, err) = seb_with(&deploy_args, &["--no-namespaces", "--delete"]);
        assert_eq!(code, 0, "{out}{err}");
    }

    /// Behind one Service the API server may send an execution's admission review to a replica
    /// that is not running it. The webhook then answers from the executions every replica
    /// sharing the store has admitted and not finished: here the webhook is replica B's, the
    /// execution runs on replica A, and both share one PostgreSQL database.
    #[test]
    fn a_webhook_on_another_replica_admits_an_execution_through_the_shared_store() {
        let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
        let _iso = KubeApiServer::isolated();
        let t = &s.tokens().clone();
        let db = seb_testinfra::postgres::Postgres::shared()
            .unwrap_or_else(|e| panic!("postgres: {e}"))
            .fresh_database()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (da, db_dir) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&da).unwrap();
        std::fs::create_dir_all(&db_dir).unwrap();
        let (ns, deps) = workload(t, "ha");

        // Two replicas on one database; the webhook names replica B only.
        let (port_a, port_b) = (free_port(), free_port());
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, s.ca_pem()).unwrap();
        let deploy_args = deploy_args(s, &ns, port_b, &ca);
        let (code, out, err) = seb_with(&deploy_args, &["--apply"]);
        assert_eq!(code, 0, "{out}{err}");
        let broker = |port: u16, extra: &str| broker_toml(port, &db, &ns, extra);
        for d in [&da, &db_dir] {
            write_broker_files(s, t, d, &ca);
        }
        let admission = admission_config(&da, PERMIT_PROPOSALS, "");
        std::fs::write(da.join("seb.toml"), broker(port_a, &admission)).unwrap();
        support::write_key(&db_dir, "broker.seed", 3);
        std::fs::write(
            db_dir.join("seb.toml"),
            broker(port_b, &format!("\n[trust]\nissuers = [\"{}\"]\n", pk(1))),
        )
        .unwrap();
        let replica_b = serve(&db_dir, Some(&ca));
        let replica_a = serve(&da, Some(&ca));

        // Proposed, certified and executed on replica A; every review went to replica B.
        let target = json!({"cluster":"test","api_version":"apps/v1","kind":"Deployment","namespace": ns,"name":"web"});
        let change =
            Change { platform: "kubernetes", op: "scale", target, params: json!({"replicas": 3}) };
        let cert = propose(&replica_a, &da, Some(&ca), "scale-ha", &change);
        let (code, v) = execute(&replica_a, &da, Some(&ca), &cert);
        assert_eq!(code, 0, "{v}\nA: {}\nB: {}", replica_a.log(), replica_b.log());
        assert_eq!(v["outcome"]["status"], "applied", "{v}");
        let (_, dep) = kube("GET", &format!("{deps}/web"), &t.admin, None);
        assert_eq!(dep["spec"]["replicas"], 3, "the change is visible");

        // Replica B still denies everyone else, the cluster administrator included.
        let patch = Some(("application/merge-patch+json", json!({"spec": {"replicas": 9}})));
        let (st, body) = kube("PATCH", &format!("{deps}/web"), &t.admin, patch);
        assert!(st >= 400, "admin patch went through: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("not the identity of a live SEB execution"),
            "{body}"
        );

        let (code, out, err) = seb_with(&deploy_args, &["--no-namespaces", "--delete"]);
        assert_eq!(code, 0, "{out}{err}");
    }

    /// Execution objects named `seb-exec-…` anywhere: ServiceAccounts, Roles, RoleBindings.
    fn execution_identities(t: &Tokens) -> Vec<String> {
        let mut left = Vec::new();
        for (kind, path) in [
            ("ServiceAccount", "/api/v1/serviceaccounts"),
            ("Role", "/apis/rbac.authorization.k8s.io/v1/roles"),
            ("RoleBinding", "/apis/rbac.authorization.k8s.io/v1/rolebindings"),
        ] {
            let (st, list) = kube("GET", path, &t.admin, None);
            assert_eq!(st, 200, "{list}");
            for i in list["items"].as_array().unwrap() {
                let name = i["metadata"]["name"].as_str().unwrap_or("");
                if name.starts_with("seb-exec-") {
                    left.push(format!("{kind} {}/{name}", i["metadata"]["namespace"]));
                }
            }
        }
        left
    }

    /// Spec section 10 under SIGKILL: `seb serve` (Kubernetes target, webhook on) is killed
    /// at a random point 0–200 ms into a presentation (after the client's own start-up time,
    /// measured once), 50 times, and restarted on the same store and port each time. Each execution appends its own argument to a Deployment's
    /// container (a JSON patch at the array's current end), so a double application would
    /// show as a repeated argument. After each restart no execution ServiceAccount, Role or
    /// RoleBinding remains anywhere (the Role and RoleBinding are deleted through the
    /// restarted broker's own webhook); at the end every admitted execution has exactly one
    /// outcome, its status is what the object shows (never `uncertain`: the object is always
    /// readable), whatever a client was told is what the ledger says, and the ledger verifies.
    #[test]
    fn sigkill_during_executions_leaves_no_grant_and_outcomes_match_the_object() {
        const KILLS: usize = 50;
        let started = std::time::Instant::now();
        let s = KubeApiServer::shared().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
        let _iso = KubeApiServer::isolated();
        let t = &s.tokens().clone();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ns, deps) = workload(t, "kill");
        // Before SEB guards the namespace, the container gets one argument: every execution
        // then appends one more.
        let patch = json!([{"op": "add", "path": "/spec/template/spec/containers/0/args", "value": ["serve"]}]);
        let (st, body) = kube(
            "PATCH",
            &format!("{deps}/web"),
            &t.admin,
            Some(("application/json-patch+json", patch)),
        );
        assert_eq!(st, 200, "{body}");
        let port = free_port();
        let ca = d.join("ca.pem");
        std::fs::write(&ca, s.ca_pem()).unwrap();
        let deploy_args = deploy_args(s, &ns, port, &ca);
        let (code, out, err) = seb_with(&deploy_args, &["--apply"]);
        assert_eq!(code, 0, "{out}{err}");
        write_broker_files(s, t, d, &ca);
        let cfg =
            broker_toml(port, "sqlite:seb.db", &ns, &admission_config(d, PERMIT_PROPOSALS, ""));
        std::fs::write(d.join("seb.toml"), cfg).unwrap();
        let args_of = || -> Vec<String> {
            let (st, dep) = kube("GET", &format!("{deps}/web"), &t.admin, None);
            assert_eq!(st, 200, "{dep}");
            dep["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        };
        assert_eq!(args_of(), vec!["serve".to_owned()]);
        let seed: u64 =
            std::env::var("SEB_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
            });
        eprintln!("SEB_KILL_SEED={seed}");
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };

        let target = json!({"cluster":"test","api_version":"apps/v1","kind":"Deployment","namespace": ns,"name":"web"});
        // (cid, its argument, what its client was told if anything)
        let mut runs: Vec<(String, String, Option<Value>)> = Vec::new();
        let mut srv = serve(d, Some(&ca));
        // How long `seb execute` takes from its start to the broker's first step (measured on
        // presentation 0, which is not killed): kills land 0–200 ms after that point.
        let mut lead_ms = 0u64;
        for k in 0..=KILLS {
            let arg = format!("exec-{k}");
            // Appended at the array's current end (the agent proposes from what it sees).
            let at = format!("/spec/template/spec/containers/0/args/{}", args_of().len());
            let params = json!([{"op": "add", "path": at, "value": arg}]);
            let change =
                Change { platform: "kubernetes", op: "json_patch", target: target.clone(), params };
            let cert = propose(&srv, d, Some(&ca), &format!("kill-{k}"), &change);
            let cid = serde_json::from_str::<Value>(&std::fs::read_to_string(&cert).unwrap())
                .ok()
                .and_then(|c| {
                    let payload = c["payload"].as_str()?;
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD.decode(payload).ok()?;
                    serde_json::from_slice::<Value>(&bytes).ok()?["cid"].as_str().map(str::to_owned)
                })
                .unwrap_or_else(|| panic!("no cid in {}", cert.display()));
            // Present, and SIGKILL the broker 0–200 ms into the presentation.
            let spawned = std::time::Instant::now();
            let client = std::process::Command::new(support::SEB)
                .args(["execute", "--broker", &srv.url, "--certificate"])
                .arg(&cert)
                .arg("--agent-key")
                .arg(d.join("agent.seed"))
                .arg("--ca")
                .arg(&ca)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            if k == 0 {
                let answer = client.wait_with_output().unwrap();
                let v: Value = serde_json::from_slice(&answer.stdout).unwrap();
                assert_eq!(v["outcome"]["status"], "applied", "{v}\n{}", srv.log());
                let server_ms = v["timings_us"]["total"].as_u64().unwrap() / 1000;
                let wall_ms = u64::try_from(spawned.elapsed().as_millis()).unwrap();
                lead_ms = wall_ms.saturating_sub(server_ms);
                eprintln!(
                    "presentation 0: {wall_ms} ms at the client, {server_ms} ms in the broker"
                );
                runs.push((cid, arg, Some(v)));
                continue;
            }
            std::thread::sleep(std::time::Duration::from_millis(lead_ms + next() % 201));
            drop(srv); // SIGKILL, then wait
            let answer = client.wait_with_output().unwrap();
            let told = serde_json::from_slice::<Value>(&answer.stdout)
                .ok()
                .filter(|v| v["outcome"]["status"].is_string());
            runs.push((cid, arg, told));
            // Restart on the same store and port: ready means recovery is done.
            srv = serve(d, Some(&ca));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            loop {
                let left = execution_identities(t);
                if left.is_empty() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "kill {k}: execution identities left behind: {left:?}\n{}",
                    srv.log()
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }

        // Nothing awaits retirement on the last broker.
        let ca_cert = reqwest::Certificate::from_pem(s.ca_pem()).unwrap();
        let client =
            reqwest::blocking::Client::builder().add_root_certificate(ca_cert).build().unwrap();
        let metrics = client.get(format!("{}/metrics", srv.url)).send().unwrap().text().unwrap();
        assert!(metrics.contains("seb_identities_awaiting_retirement 0"), "{metrics}");
        // Every admit has exactly one outcome, and it is what the object shows.
        let export = d.join("ledger.json");
        let (code, out, err) = seb(&[
            "ledger",
            "export",
            "--broker",
            &srv.url,
            "--out",
            export.to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let ledger: Value =
            serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
        let mut outcomes: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        let mut admits: std::collections::BTreeMap<String, usize> = Default::default();
        for e in ledger["entries"].as_array().unwrap() {
            use base64::Engine as _;
            let raw =
                base64::engine::general_purpose::STANDARD.decode(e.as_str().unwrap()).unwrap();
            let env: Value = serde_json::from_slice(&raw).unwrap();
            let payload: Value = serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD
                    .decode(env["payload"].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap();
            let cid = payload["cid"].as_str().unwrap_or("").to_owned();
            if env["payloadType"].as_str().unwrap_or("").contains("outcome") {
                outcomes.entry(cid).or_default().push(payload);
            } else if payload["decision"] == "admit" {
                *admits.entry(cid).or_default() += 1;
            }
        }
        let final_args = args_of();
        let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
        for (cid, arg, told) in &runs {
            let times = final_args.iter().filter(|a| *a == arg).count();
            assert!(times <= 1, "{arg} was applied {times} times: {final_args:?}");
            let Some(o) = outcomes.get(cid) else {
                // Killed before the reservation: never admitted, never applied.
                assert_eq!(admits.get(cid), None, "{cid}: admitted without an outcome");
                assert_eq!(times, 0, "{arg} applied without an admit");
                assert!(told.is_none(), "{cid}: a client was told {told:?} without a record");
                *tally.entry("not admitted".into()).or_default() += 1;
                continue;
            };
            assert_eq!(o.len(), 1, "{cid}: {} outcome records", o.len());
            assert_eq!(admits.get(cid), Some(&1), "{cid}: admits");
            let status = o[0]["status"].as_str().unwrap().to_owned();
            let applied = status == "applied";
            assert!(
                status != "uncertain",
                "{cid}: uncertain although the object is readable: {}",
                o[0]
            );
            assert_eq!(
                times,
                usize::from(applied),
                "{cid}: outcome `{status}` but {arg} appears {times} times"
            );
            if let Some(told) = told {
                assert_eq!(
                    told["outcome"]["status"], o[0]["status"],
                    "{cid}: the client was told otherwise"
                );
                assert_eq!(told["outcome"]["id"], o[0]["id"], "{cid}: another outcome id");
            }
            let how = if o[0]["error"] == "resolved by crash recovery" {
                "recovered"
            } else {
                "finished"
            };
            *tally.entry(format!("{how} {status}")).or_default() += 1;
        }
        assert!(
            tally.keys().any(|k| k.starts_with("recovered")),
            "no kill landed inside an execution: {tally:?}"
        );
        // The ledger verifies offline with no open admit.
        let report = verify_ledger(&srv, d, Some(&ca));
        assert_eq!(report["open_admits"].as_u64().unwrap_or(0), 0, "{report}");
        eprintln!(
            "{KILLS} SIGKILLs in {:.1} s; outcomes {tally:?}; {} arguments applied",
            started.elapsed().as_secs_f64(),
            final_args.iter().filter(|a| a.starts_with("exec-")).count()
        );
        let (code, out, err) = seb_with(&deploy_args, &["--no-namespaces", "--delete"]);
        assert_eq!(code, 0, "{out}{err}");
    }
}

// ------------------------------------------------------------------------------ AWS

mod aws {
    use super::*;
    use seb_testinfra::moto::{ACCOUNT, Call, MotoServer, REGION};

    #[test]
    fn a_certified_put_object_is_applied_and_the_agents_own_credentials_are_denied() {
        let moto = MotoServer::shared().unwrap_or_else(|e| panic!("moto_server: {e}"));
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];

        // seb deploy aws: the artefacts, written to files and used as they are.
        let out_dir = d.join("aws");
        let broker_user = format!("seb-broker-{suffix}");
        let role = format!("seb-execution-{suffix}");
        let (code, out, err) = seb(&[
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
        let bucket = format!("walk-{suffix}");
        moto.seed(&[Call::new("s3", "create_bucket", json!({"Bucket": bucket}))]).unwrap();

        std::fs::write(
            d.join("aws.json"),
            json!({"access_key_id": broker.access_key_id, "secret_access_key": broker.secret_access_key}).to_string(),
        )
        .unwrap();
        // Admission observes with the agent's keys, which cannot write (the boundary).
        std::fs::write(
            d.join("observer.json"),
            json!({"access_key_id": agent.access_key_id, "secret_access_key": agent.secret_access_key}).to_string(),
        )
        .unwrap();
        let cfg = format!(
            r#"[broker]
listen = "127.0.0.1:0"
key_file = "broker.seed"
store = "sqlite:seb.db"
checkpoint_interval_s = 0

[targets.aws]
endpoint_url = "{endpoint}"
s3_force_path_style = true
broker_credentials_file = "aws.json"
observer_credentials_file = "observer.json"

[targets.aws.accounts.{ACCOUNT}]
execution_role_arn = "{role_arn}"
{admission}"#,
            endpoint = moto.endpoint(),
            admission = admission_config(d, PERMIT_PROPOSALS, "")
        );
        std::fs::write(d.join("seb.toml"), cfg).unwrap();
        let srv = serve(d, None);

        // Propose, certify (PutObject scores L2: the policy path), execute.
        let target = json!({"account": ACCOUNT, "region": REGION, "service": "s3", "arn": format!("arn:aws:s3:::{bucket}/flags.json")});
        let params = json!({"body": "{\"sale\":true}"});
        let change = Change { platform: "aws", op: "s3:PutObject", target, params };
        let cert = propose(&srv, d, None, "put-flags", &change);
        let (code, v) = execute(&srv, d, None, &cert);
        assert_eq!(code, 0, "{v}\n{}", srv.log());
        assert_eq!(v["outcome"]["status"], "applied", "{v}");
        let got =
            moto.call("s3", "get_object", json!({"Bucket": bucket, "Key": "flags.json"})).unwrap();
        assert_eq!(got["Body"], "{\"sale\":true}", "{got}");
        // The proposal view shows the object body only as digest and length (the approver
        // here, the agent alike); the certificate carries it exactly.
        for k in ["alice.seed", "agent.seed"] {
            let key = d.join(k);
            let (code, out, err) = seb(&[
                "proposals",
                "put-flags",
                "--admission",
                &srv.url,
                "--key",
                key.to_str().unwrap(),
                "--json",
            ]);
            assert_eq!(code, 0, "{out}{err}");
            assert!(!out.contains("sale"), "{out}");
            let v: Value = serde_json::from_str(&out).unwrap();
            let body = json!({"digest": seb_core::digest::Digest::of_bytes(b"{\"sale\":true}"), "length": 13});
            assert_eq!(v["contract"]["params"]["body"], body, "{v}");
            assert_eq!(v["proposal"]["params"]["body"], body, "{v}");
        }
        let c: Value = serde_json::from_str(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        let payload: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                c["payload"].as_str().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["contract"]["params"]["body"], "{\"sale\":true}");

        // A replay is refused.
        let (code, v) = execute(&srv, d, None, &cert);
        assert_eq!(code, 2, "{v}");
        assert_eq!(v["failed_check"], "replay");

        // Bypass: the agent's own credentials cannot write (permission boundary; the SCP
        // would deny it too in an organisation).
        let r = moto
            .batch_as(
                &agent,
                &[Call::new(
                    "s3",
                    "put_object",
                    json!({"Bucket": bucket, "Key": "flags.json", "Body": "{\"sale\":false}"}),
                )],
            )
            .unwrap();
        let e = r[0].as_ref().expect_err("the agent wrote to S3 directly");
        assert_eq!(e.code, "AccessDenied", "{e:?}");
        let got =
            moto.call("s3", "get_object", json!({"Bucket": bucket, "Key": "flags.json"})).unwrap();
        assert_eq!(got["Body"], "{\"sale\":true}", "nothing changed");

        let report = verify_ledger(&srv, d, None);
        assert_eq!(
            (report["issued"].as_u64(), report["admits"].as_u64(), report["outcomes"].as_u64()),
            (Some(1), Some(1), Some(1)),
            "{report}"
        );
    }
}

// ------------------------------------------------------------------------------ artefacts

mod artefacts {
    use super::*;

    #[test]
    fn seb_deploy_kubernetes_prints_the_manifests_with_the_extra_exemptions() {
        let (code, yaml, err) = seb(&[
            "deploy",
            "kubernetes",
            "--protected-namespace",
            "prod",
            "--exempt-user",
            "system:serviceaccount:argocd:controller",
        ]);
        assert_eq!(code, 0, "{err}");
        for kind in [
            "ValidatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ClusterRole",
            "RoleBinding",
        ] {
            assert!(yaml.contains(&format!("kind: {kind}")), "{kind} missing");
        }
        assert!(yaml.contains("system:serviceaccount:argocd:controller"), "exemption missing");
        assert!(err.contains("placeholder"), "a missing --ca-file is called out: {err}");
        let (code, _, err) = seb(&[
            "deploy",
            "kubernetes",
            "--protected-namespace",
            "prod",
            "--exempt-group",
            "system:masters",
        ]);
        assert_eq!(code, 1);
        assert!(err.contains("system:masters"), "{err}");
        let (code, _, err) = seb(&[
            "deploy",
            "kubernetes",
            "--protected-namespace",
            "prod",
            "--webhook-url",
            "http://broker:8443/x",
        ]);
        assert_eq!(code, 1, "plain-HTTP webhook URL refused: {err}");
        // Day-to-day administrators and another operator group.
        let (code, yaml, err) = seb(&[
            "deploy",
            "kubernetes",
            "--protected-namespace",
            "prod",
            "--cluster-admin-group",
            "ops",
            "--operator-group",
            "platform-owners",
        ]);
        assert_eq!(code, 0, "{err}");
        let binding = yaml
            .split("\n---\n")
            .find(|d| d.contains("kind: ClusterRoleBinding"))
            .expect("a ClusterRoleBinding");
        assert!(binding.contains("  name: seb-cluster-admin\n"), "{binding}");
        assert!(binding.contains("- kind: Group\n  name: ops\n"), "{binding}");
        assert!(yaml.contains("'platform-owners'") && !yaml.contains("'system:masters'"), "{yaml}");
        let (code, _, err) = seb(&[
            "deploy",
            "kubernetes",
            "--protected-namespace",
            "prod",
            "--cluster-admin-group",
            "system:masters",
        ]);
        assert_eq!(code, 1, "a cluster-admin subject that is the operator path: {err}");
    }

    #[test]
    fn seb_deploy_aws_prints_every_artefact_as_json() {
        let (code, out, err) = seb(&[
            "deploy",
            "aws",
            "--broker-principal-arn",
            "arn:aws:iam::111111111111:role/seb-broker",
            "--account",
            "222222222222",
            "--admin-principal-arn-pattern",
            "arn:aws:iam::*:role/deployer",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        for f in [
            "execution-role-trust-policy.json",
            "scp.json",
            "agent-permission-boundary.json",
            "broker-role-policy.json",
        ] {
            assert_eq!(v[f]["Version"], "2012-10-17", "{f}");
        }
        let trust = v["execution-role-trust-policy.json"].to_string();
        assert!(trust.contains("arn:aws:iam::111111111111:role/seb-broker"), "{trust}");
        assert!(trust.contains("sts:TagSession") && trust.contains("sts:SetSourceIdentity"));
    }
}
