//! Shared by the live test binaries: the broker's admission endpoint served over HTTPS by the
//! test process, as `seb serve` serves it (the pure `seb_kube::webhook` behind TLS), and the
//! cel-python cross-check of the shipped ValidatingAdmissionPolicies over the reviews it
//! received.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

/// What answers one review body.
pub type Handler = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// Serve `handler` at `seb_kube::deploy::ADMISSION_PATH` over TLS with the given serving
/// certificate on a free loopback port; returns the port.
pub async fn serve_https(handler: Handler, cert_pem: String, key_pem: String) -> Result<u16> {
    use axum::body::Bytes;
    use axum::routing::post;
    let app = axum::Router::new().route(
        seb_kube::deploy::ADMISSION_PATH,
        post(move |body: Bytes| {
            let out = handler(&body);
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], out) }
        }),
    );
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())?.context("no key")?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    Ok(port)
}

/// Every review the webhook answered: `{"review": <as sent>, "response": <answer>}`.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Value>>);

impl Recorder {
    /// Record one exchange (the body as the API server sent it).
    pub fn record(&self, body: &[u8], answer: &[u8]) {
        let review: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let response: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
        if let Ok(mut v) = self.0.lock() {
            v.push(json!({"review": review, "response": response}));
        }
    }
}

/// Run `tests/vap_crosscheck.py` (cel-python, pinned by `seb_testinfra::cel`) with the shipped
/// policies of `cfg` over the recorded reviews, the namespaces' labels as the API server has
/// them, and the identities the webhook also checks against a certificate. Returns its report
/// after asserting it found no mismatch.
pub async fn vap_crosscheck(
    cfg: &seb_kube::deploy::DeployConfig,
    rec: &Recorder,
    admin: kube::Client,
    certified: &[String],
) -> Result<Value> {
    use k8s_openapi::api::core::v1::Namespace;
    let version = seb_testinfra::cel::ensure_cel_python()?;
    let dir = std::env::temp_dir().join(seb_testinfra::kube::unique_name("seb-vap"));
    std::fs::create_dir_all(&dir)?;
    let reviews: Vec<Value> = rec.0.lock().map(|v| v.clone()).unwrap_or_default();
    let lines: Vec<String> = reviews.iter().map(Value::to_string).collect();
    std::fs::write(dir.join("reviews.jsonl"), lines.join("\n"))?;
    std::fs::write(
        dir.join("policies.json"),
        serde_json::to_vec(&seb_kube::deploy::admission_policy(cfg))?,
    )?;
    let mut labels = serde_json::Map::new();
    for n in kube::Api::<Namespace>::all(admin).list(&Default::default()).await? {
        labels.insert(
            n.metadata.name.unwrap_or_default(),
            json!(n.metadata.labels.unwrap_or_default()),
        );
    }
    std::fs::write(dir.join("ns.json"), serde_json::to_vec(&labels)?)?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vap_crosscheck.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(["policies.json", "reviews.jsonl", "ns.json"].map(|f| dir.join(f)))
        .args(certified)
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let requests = report["requests"].as_array().context("no requests")?;
    let count = |f: &dyn Fn(&Value) -> bool| requests.iter().filter(|r| f(r)).count();
    eprintln!(
        "cel-python {version}: {} recorded reviews, {} requests ({} allowed, {} denied, {} certificate-only), {} mismatches",
        reviews.len(),
        requests.len(),
        count(&|r| r["webhook_allowed"] == true),
        count(&|r| r["webhook_allowed"] == false),
        count(&|r| r["certificate_only"] == true),
        report["mismatches"].as_array().map_or(0, Vec::len)
    );
    ensure!(
        report["mismatches"] == json!([]),
        "policy and webhook disagree: {}",
        report["mismatches"]
    );
    Ok(report)
}
