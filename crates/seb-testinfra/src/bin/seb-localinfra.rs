//! `seb-localinfra`: start the local platforms the walkthrough (`scripts/demo.sh`) runs
//! against — a real kube-apiserver + etcd and moto_server with IAM enforcement — seed the
//! AWS side from the artefacts `seb deploy aws --out-dir` wrote, write everything a client
//! needs to `<out>/infra.json`, then keep them running until this process is stopped.
//!
//! Usage: `seb-localinfra --out DIR --aws-artefacts DIR --broker-user NAME`
//!
//! And `seb-localinfra kube INFO USER METHOD PATH [CONTENT-TYPE BODY]`: one request to the
//! local API server as a test user (`admin`, `agent`, `broker`); prints the HTTP status on
//! the first line and the body after it. (The Debian-built v1.20 API server panics on some
//! requests from curl; the Rust HTTP stack the tests use works.)
//!
//! Loopback only, test credentials only: never point it at anything real.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use seb_testinfra::kube::KubeApiServer;
use seb_testinfra::moto::{ACCOUNT, Call, MotoServer, REGION};
use serde_json::{Value, json};

struct Args {
    out: PathBuf,
    aws_artefacts: PathBuf,
    broker_user: String,
}

fn args() -> Result<Args, String> {
    let mut out = None;
    let mut aws = None;
    let mut broker_user = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(v)),
            "--aws-artefacts" => aws = Some(PathBuf::from(v)),
            "--broker-user" => broker_user = Some(v),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        out: out.ok_or("--out is required")?,
        aws_artefacts: aws.ok_or("--aws-artefacts is required")?,
        broker_user: broker_user.ok_or("--broker-user is required")?,
    })
}

fn read_json(p: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

fn write(p: &Path, text: &str) -> Result<(), String> {
    std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))
}

fn run(a: &Args) -> Result<(KubeApiServer, MotoServer), String> {
    std::fs::create_dir_all(&a.out).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    eprintln!(
        "[localinfra] kube-apiserver + etcd: building on first use (several minutes), then starting…"
    );
    let kube = KubeApiServer::start().map_err(|e| format!("kube-apiserver: {e}"))?;
    eprintln!("[localinfra] kube-apiserver up at {} ({:.1?})", kube.url(), t0.elapsed());
    let t1 = Instant::now();
    eprintln!(
        "[localinfra] moto_server (IAM enforcement on): installing on first use, then starting…"
    );
    let moto = MotoServer::start().map_err(|e| format!("moto_server: {e}"))?;
    eprintln!("[localinfra] moto_server up at {} ({:.1?})", moto.endpoint(), t1.elapsed());

    // Kubernetes: the CA, a serving certificate for the broker (the webhook is HTTPS), and
    // kubeconfigs for the admin and the broker users.
    let ca = a.out.join("kube-ca.pem");
    write(&ca, &String::from_utf8_lossy(kube.ca_pem()))?;
    let (crt, key) = kube.issue_cert("broker").map_err(|e| e.to_string())?;
    write(&a.out.join("broker-tls.crt"), &crt)?;
    write(&a.out.join("broker-tls.key"), &key)?;
    let kubeconfig = |user: &str, token: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {user}\n  context:\n    cluster: local\n    user: {user}\ncurrent-context: {user}\n",
            kube.url(),
            ca.display()
        )
    };
    let t = kube.tokens();
    write(&a.out.join("admin.kubeconfig"), &kubeconfig("admin", &t.admin))?;
    write(&a.out.join("broker.kubeconfig"), &kubeconfig("broker", &t.broker))?;
    write(&a.out.join("agent.kubeconfig"), &kubeconfig("agent", &t.agent))?;

    // AWS: the broker user with the broker policy, an agent user inside the permission
    // boundary, the execution role with the shipped trust policy, a bucket.
    let doc = |n: &str| read_json(&a.aws_artefacts.join(n));
    let broker = moto
        .create_user(&a.broker_user, &doc("broker-role-policy.json")?)
        .map_err(|e| e.to_string())?;
    let agent = moto
        .create_user("seb-agent", &doc("agent-permission-boundary.json")?)
        .map_err(|e| e.to_string())?;
    let exec_policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:*", "ec2:*", "dynamodb:*", "ssm:*", "autoscaling:*"], "Resource": "*"}]});
    let role_arn = moto
        .create_role("seb-execution", &doc("execution-role-trust-policy.json")?, &exec_policy)
        .map_err(|e| e.to_string())?;
    moto.seed(&[Call::new("s3", "create_bucket", json!({"Bucket": "seb-demo-config"}))])
        .map_err(|e| e.to_string())?;
    write(
        &a.out.join("aws-broker.json"),
        &json!({"access_key_id": broker.access_key_id, "secret_access_key": broker.secret_access_key}).to_string(),
    )?;

    write(
        &a.out.join("aws-agent.json"),
        &json!({"access_key_id": agent.access_key_id, "secret_access_key": agent.secret_access_key}).to_string(),
    )?;
    let info = json!({
        "kube": {
            "url": kube.url(), "ca": ca, "admin_kubeconfig": a.out.join("admin.kubeconfig"),
            "broker_kubeconfig": a.out.join("broker.kubeconfig"),
            "agent_kubeconfig": a.out.join("agent.kubeconfig"),
            "tls_cert": a.out.join("broker-tls.crt"), "tls_key": a.out.join("broker-tls.key"),
            "tokens": {"admin": t.admin, "agent": t.agent, "broker": t.broker},
            "users": {"broker": "broker", "agent": "agent"},
        },
        "aws": {
            "endpoint": moto.endpoint(), "account": ACCOUNT, "region": REGION,
            "execution_role_arn": role_arn, "bucket": "seb-demo-config",
            "broker_credentials_file": a.out.join("aws-broker.json"),
            "agent_credentials_file": a.out.join("aws-agent.json"),
            "admin": {"access_key_id": moto.admin().access_key_id, "secret_access_key": moto.admin().secret_access_key},
            "agent": {"access_key_id": agent.access_key_id, "secret_access_key": agent.secret_access_key},
        },
    });
    let text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    // Written last and atomically: its presence means everything is ready.
    let tmp = a.out.join("infra.json.tmp");
    write(&tmp, &text)?;
    std::fs::rename(&tmp, a.out.join("infra.json")).map_err(|e| e.to_string())?;
    eprintln!("[localinfra] ready ({:.1?}); stop me to stop both", t0.elapsed());
    Ok((kube, moto))
}

/// `seb-localinfra kube INFO USER METHOD PATH [CONTENT-TYPE BODY]`.
fn kube_request(rest: &[String]) -> Result<(), String> {
    let [info, user, method, path, extra @ ..] = rest else {
        return Err("usage: seb-localinfra kube INFO USER METHOD PATH [CONTENT-TYPE BODY]".into());
    };
    let info = read_json(Path::new(info))?;
    let s = |p: &str| info.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let (Some(url), Some(ca), Some(token)) =
        (s("/kube/url"), s("/kube/ca"), s(&format!("/kube/tokens/{user}")))
    else {
        return Err(format!("no url, ca or token for `{user}` in the info file"));
    };
    let pem = std::fs::read(&ca).map_err(|e| format!("{ca}: {e}"))?;
    let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(cert)
        .build()
        .map_err(|e| e.to_string())?;
    let method: reqwest::Method = method.parse().map_err(|_| format!("bad method `{method}`"))?;
    let mut req = client.request(method, format!("{url}{path}")).bearer_auth(token);
    if let [ct, body] = extra {
        req = req.header("content-type", ct.as_str()).body(body.clone());
    }
    let resp = req.send().map_err(|e| e.to_string())?;
    println!("{}", resp.status().as_u16());
    println!("{}", resp.text().map_err(|e| e.to_string())?);
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("kube") {
        return match kube_request(argv.get(2..).unwrap_or_default()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("seb-localinfra kube: {e}");
                ExitCode::from(1)
            }
        };
    }
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("seb-localinfra: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        // Keep the servers (and their watchdogs) alive until we are stopped.
        Ok(_servers) => loop {
            std::thread::park();
        },
        Err(e) => {
            eprintln!("seb-localinfra: {e}");
            ExitCode::from(1)
        }
    }
}
