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
    use seb_testinfra::kube::KubeApiServer;
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
