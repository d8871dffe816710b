//! `seb-localinfra`: the platforms the walkthrough (`scripts/demo.sh`) runs against, and the
//! identities it uses on them.
//!
//! `seb-localinfra --out DIR --aws-artefacts DIR [--kubeconfig FILE --webhook-host HOST]
//! [--aws-profile NAME [--aws-region REGION]]`
//!
//! Without `--kubeconfig` it starts a real kube-apiserver + etcd on loopback; without
//! `--aws-profile`, moto_server with IAM enforcement. Either way it then sets up the same
//! identities with [`seb_testinfra::adopt`] (ServiceAccounts and tokens for an administrator,
//! the broker and an agent; IAM users for the broker and the agent, the execution role from
//! the artefacts `seb deploy aws --out-dir` wrote, a bucket), issues the broker a serving
//! certificate for `HOST` (default `127.0.0.1`) from a CA of its own, writes everything a
//! client needs to `<out>/infra.json`, and keeps the local servers running until stopped.
//!
//! `seb-localinfra release INFO`: delete what was set up on an adopted cluster or account.
//! `seb-localinfra aws-account --aws-profile NAME [--aws-region REGION]`: print the account.
//! `seb-localinfra kube INFO USER METHOD PATH [CONTENT-TYPE BODY]`: one request to the API
//! server as `admin`, `agent` or `broker`; prints the HTTP status on the first line and the
//! body after it. (The Debian-built v1.20 API server panics on some requests from curl; the
//! Rust HTTP stack the tests use works.)

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use seb_testinfra::adopt::{self, AdoptedKube};
use seb_testinfra::kube::KubeApiServer;
use seb_testinfra::moto::{AwsApi, AwsAuth, MotoServer, REGION};
use serde_json::{Value, json};

#[derive(Default)]
struct Args {
    out: Option<PathBuf>,
    aws_artefacts: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    webhook_host: Option<String>,
    aws_profile: Option<String>,
    aws_region: Option<String>,
}

fn args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?.clone();
        match k.as_str() {
            "--out" => a.out = Some(PathBuf::from(v)),
            "--aws-artefacts" => a.aws_artefacts = Some(PathBuf::from(v)),
            "--kubeconfig" => a.kubeconfig = Some(PathBuf::from(v)),
            "--webhook-host" => a.webhook_host = Some(v),
            "--aws-profile" => a.aws_profile = Some(v),
            "--aws-region" => a.aws_region = Some(v),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

fn read_json(p: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Write a file only its owner can read: several hold tokens, keys or a CA key.
fn write(p: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())
}

/// The administrator's AWS API for a profile (a real account, or whatever `AWS_ENDPOINT_URL`
/// names).
fn profile_api(profile: &str, region: Option<&str>) -> AwsApi {
    let region = region
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| REGION.to_owned());
    AwsApi {
        endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()),
        region,
        auth: AwsAuth::Profile(profile.to_owned()),
    }
}

/// A kubeconfig for one bearer token.
fn kubeconfig(url: &str, ca: Option<&Path>, user: &str, token: &str) -> String {
    let ca =
        ca.map(|c| format!("    certificate-authority: {}\n", c.display())).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: seb-demo\n  cluster:\n    server: {url}\n{ca}users:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {user}\n  context:\n    cluster: seb-demo\n    user: {user}\ncurrent-context: {user}\n"
    )
}

/// What keeps running: the local servers, if any were started.
type Running = (Option<KubeApiServer>, Option<MotoServer>);

fn run(a: &Args) -> Result<Running, String> {
    let out = a.out.as_deref().ok_or("--out is required")?;
    let artefacts = a.aws_artefacts.as_deref().ok_or("--aws-artefacts is required")?;
    if a.kubeconfig.is_some() && a.webhook_host.is_none() {
        return Err("--kubeconfig needs --webhook-host: an address of this machine the cluster's API server can reach (SEB's admission webhook runs in the broker here)".into());
    }
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let t0 = Instant::now();

    // Kubernetes: a local API server unless a cluster was given, then the walkthrough's
    // identities on it.
    let (local_kube, admin_kubeconfig) = match &a.kubeconfig {
        Some(k) => {
            eprintln!("[localinfra] Kubernetes: the cluster of {} (nothing started)", k.display());
            (None, k.clone())
        }
        None => {
            eprintln!(
                "[localinfra] kube-apiserver + etcd: building on first use (several minutes), then starting…"
            );
            let kube = KubeApiServer::start().map_err(|e| format!("kube-apiserver: {e}"))?;
            eprintln!("[localinfra] kube-apiserver up at {} ({:.1?})", kube.url(), t0.elapsed());
            let ca = out.join("kube-bootstrap-ca.pem");
            write(&ca, &String::from_utf8_lossy(kube.ca_pem()))?;
            let path = out.join("bootstrap-admin.kubeconfig");
            write(&path, &kubeconfig(kube.url(), Some(&ca), "admin", &kube.tokens().admin))?;
            (Some(kube), path)
        }
    };
    let k: AdoptedKube = match runtime()?.block_on(adopt::adopt_kube(&admin_kubeconfig)) {
        Ok(k) => k,
        Err(e) => {
            if a.kubeconfig.is_some() {
                // Leave nothing half made on a cluster we were pointed at.
                drop(runtime()?.block_on(adopt::release_kube(&admin_kubeconfig)));
            }
            return Err(format!("Kubernetes identities: {e}"));
        }
    };
    let kube_ca = match &k.ca_pem {
        Some(pem) => {
            let p = out.join("kube-ca.pem");
            write(&p, pem)?;
            Some(p)
        }
        None => None,
    };
    for (user, token) in
        [("admin", &k.admin_token), ("broker", &k.broker_token), ("agent", &k.agent_token)]
    {
        write(
            &out.join(format!("{user}.kubeconfig")),
            &kubeconfig(&k.url, kube_ca.as_deref(), user, token),
        )?;
    }
    eprintln!(
        "[localinfra] ServiceAccounts {}, {}, {} in namespace {} with one-hour tokens",
        adopt::KUBE_ADMIN,
        adopt::KUBE_BROKER,
        adopt::KUBE_AGENT,
        adopt::KUBE_NAMESPACE
    );

    // The broker's serving certificate (its API and the webhook the API server calls).
    let host = a.webhook_host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let san = if host.parse::<std::net::IpAddr>().is_ok() {
        format!("IP:{host}")
    } else {
        format!("DNS:{host}")
    };
    let (tls_ca, tls_cert, tls_key) =
        seb_testinfra::certs::serving_certificate(out, "seb-demo-broker", &san)
            .map_err(|e| format!("broker certificate: {e}"))?;

    // AWS: moto unless a profile was given, then the walkthrough's users, role and bucket.
    let (local_moto, admin_api, bucket) = match &a.aws_profile {
        Some(p) => {
            let api = profile_api(p, a.aws_region.as_deref());
            eprintln!("[localinfra] AWS: profile {p} in {} (nothing started)", api.region);
            let account = adopt::account_of(&api).map_err(|e| format!("AWS profile {p}: {e}"))?;
            let bucket = format!("seb-demo-{account}-{}", std::process::id());
            (None, api, bucket)
        }
        None => {
            let t1 = Instant::now();
            eprintln!(
                "[localinfra] moto_server (IAM enforcement on): installing on first use, then starting…"
            );
            let moto = MotoServer::start().map_err(|e| format!("moto_server: {e}"))?;
            eprintln!("[localinfra] moto_server up at {} ({:.1?})", moto.endpoint(), t1.elapsed());
            let api = moto.api().clone();
            (Some(moto), api, "seb-demo-config".to_owned())
        }
    };
    let aws = match adopt::adopt_aws(&admin_api, artefacts, &bucket) {
        Ok(aws) => aws,
        Err(e) => {
            // Leave nothing half made on a cluster or in an account we were pointed at.
            if a.aws_profile.is_some() {
                drop(adopt::release_aws(&admin_api, &bucket));
            }
            if a.kubeconfig.is_some() {
                drop(runtime()?.block_on(adopt::release_kube(&admin_kubeconfig)));
            }
            return Err(format!("AWS identities: {e}"));
        }
    };
    eprintln!(
        "[localinfra] IAM users {}, {}, role {}, bucket {bucket}",
        adopt::AWS_BROKER_USER,
        adopt::AWS_AGENT_USER,
        adopt::AWS_EXECUTION_ROLE
    );
    let keys = |k: &seb_testinfra::moto::AccessKeys| json!({"access_key_id": k.access_key_id, "secret_access_key": k.secret_access_key});
    write(&out.join("aws-broker.json"), &keys(&aws.broker).to_string())?;
    write(&out.join("aws-agent.json"), &keys(&aws.agent).to_string())?;
    let admin = match &admin_api.auth {
        AwsAuth::Keys(k) => keys(k),
        AwsAuth::Profile(p) => json!({"profile": p}),
    };

    let info = json!({
        "kube": {
            "adopted": a.kubeconfig.is_some(), "source_kubeconfig": admin_kubeconfig,
            "url": k.url, "ca": kube_ca,
            "admin_kubeconfig": out.join("admin.kubeconfig"),
            "broker_kubeconfig": out.join("broker.kubeconfig"),
            "agent_kubeconfig": out.join("agent.kubeconfig"),
            "tokens": {"admin": k.admin_token, "agent": k.agent_token, "broker": k.broker_token},
            "users": {
                "admin": adopt::service_account_user(adopt::KUBE_ADMIN),
                "broker": adopt::service_account_user(adopt::KUBE_BROKER),
                "agent": adopt::service_account_user(adopt::KUBE_AGENT),
            },
        },
        "broker_tls": {"host": host, "ca": tls_ca, "cert": tls_cert, "key": tls_key},
        "aws": {
            "adopted": a.aws_profile.is_some(),
            "endpoint": admin_api.endpoint, "account": aws.account, "region": admin_api.region,
            "execution_role_arn": aws.execution_role_arn, "bucket": aws.bucket,
            "broker_credentials_file": out.join("aws-broker.json"),
            "agent_credentials_file": out.join("aws-agent.json"),
            "admin": admin,
            "agent": keys(&aws.agent),
        },
    });
    let text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    // Written last and atomically: its presence means everything is ready.
    let tmp = out.join("infra.json.tmp");
    write(&tmp, &text)?;
    std::fs::rename(&tmp, out.join("infra.json")).map_err(|e| e.to_string())?;
    eprintln!("[localinfra] ready ({:.1?}); stop me to stop what I started", t0.elapsed());
    Ok((local_kube, local_moto))
}

/// `seb-localinfra release INFO`: delete what was set up on an adopted cluster or account
/// (local platforms are thrown away whole).
fn release(rest: &[String]) -> Result<(), String> {
    let [info] = rest else { return Err("usage: seb-localinfra release INFO".into()) };
    let info = read_json(Path::new(info))?;
    let mut failed = Vec::new();
    if info.pointer("/kube/adopted").and_then(Value::as_bool) == Some(true) {
        let k = info
            .pointer("/kube/source_kubeconfig")
            .and_then(Value::as_str)
            .ok_or("no kube.source_kubeconfig")?;
        if let Err(e) = runtime()?.block_on(adopt::release_kube(Path::new(k))) {
            failed.push(format!("Kubernetes: {e}"));
        }
    }
    if info.pointer("/aws/adopted").and_then(Value::as_bool) == Some(true) {
        let p = info
            .pointer("/aws/admin/profile")
            .and_then(Value::as_str)
            .ok_or("no aws.admin.profile")?;
        let region = info.pointer("/aws/region").and_then(Value::as_str);
        let bucket = info.pointer("/aws/bucket").and_then(Value::as_str).ok_or("no aws.bucket")?;
        if let Err(e) = adopt::release_aws(&profile_api(p, region), bucket) {
            failed.push(format!("AWS: {e}"));
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
}

/// `seb-localinfra aws-account --aws-profile NAME [--aws-region REGION]`.
fn aws_account(rest: &[String]) -> Result<(), String> {
    let a = args(rest)?;
    let p = a.aws_profile.ok_or("--aws-profile is required")?;
    let account =
        adopt::account_of(&profile_api(&p, a.aws_region.as_deref())).map_err(|e| e.to_string())?;
    println!("{account}");
    Ok(())
}

/// `seb-localinfra kube INFO USER METHOD PATH [CONTENT-TYPE BODY]`.
fn kube_request(rest: &[String]) -> Result<(), String> {
    let [info, user, method, path, extra @ ..] = rest else {
        return Err("usage: seb-localinfra kube INFO USER METHOD PATH [CONTENT-TYPE BODY]".into());
    };
    let info = read_json(Path::new(info))?;
    let s = |p: &str| info.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let (Some(url), Some(token)) = (s("/kube/url"), s(&format!("/kube/tokens/{user}"))) else {
        return Err(format!("no url or token for `{user}` in the info file"));
    };
    let mut client = reqwest::blocking::Client::builder();
    if let Some(ca) = s("/kube/ca") {
        let pem = std::fs::read(&ca).map_err(|e| format!("{ca}: {e}"))?;
        client = client
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?);
    }
    let client = client.build().map_err(|e| e.to_string())?;
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

/// A subcommand: its arguments in, success or the reason out.
type Subcommand = fn(&[String]) -> Result<(), String>;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let sub: Option<Subcommand> = match argv.first().map(String::as_str) {
        Some("kube") => Some(kube_request),
        Some("release") => Some(release),
        Some("aws-account") => Some(aws_account),
        _ => None,
    };
    if let Some(f) = sub {
        return match f(argv.get(1..).unwrap_or_default()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("seb-localinfra: {e}");
                ExitCode::from(1)
            }
        };
    }
    let a = match args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("seb-localinfra: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        // Keep the local servers (and their watchdogs) alive until we are stopped.
        Ok(_servers) => loop {
            std::thread::park();
        },
        Err(e) => {
            eprintln!("seb-localinfra: {e}");
            ExitCode::from(1)
        }
    }
}
