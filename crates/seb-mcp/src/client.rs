//! The agent side of SEB's HTTP APIs, shared by `seb mcp` and the `seb` CLI: the HTTP client
//! (CA, optional client certificate), signed admission reads and proposals, and the broker
//! presentation (certificate + request + proof) of `seb execute`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use seb_store::clock::{Clock as _, SystemClock};

use anyhow::{Context as _, Result};
use seb_admission::client::{READ_SIGNATURE_HEADER, sign_proposal, sign_read};
use seb_core::certificate::UnverifiedCertificate;
use seb_core::envelope::Envelope;
use seb_core::json;
use seb_core::keys::SigningKey;
use seb_core::pipeline::sign_request;
use seb_core::types::{ExecRequest, Presentation, Proposal};
use serde_json::Value;

/// Largest response body read from admission or the broker.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// TLS material for talking to `seb serve`.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM CA certificate to trust for the server's TLS.
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) for a server with `client_ca` (mTLS).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's PEM private key.
    pub client_key: Option<PathBuf>,
}

/// HTTP client trusting `tls.ca` when given, presenting `tls.client_cert` when given.
pub fn http_client(tls: &TlsFiles, timeout: Duration) -> Result<reqwest::Client> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading `{}`", p.display()));
    let mut b = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = &tls.ca {
        let cert = reqwest::Certificate::from_pem(&read(ca)?).context("CA is not PEM")?;
        b = b.tls_certs_only([cert]);
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend_from_slice(&zeroize::Zeroizing::new(read(key)?));
        let identity = reqwest::Identity::from_pem(&pem);
        zeroize::Zeroize::zeroize(&mut pem);
        b = b.identity(identity.context("client certificate and key are not PEM")?);
    }
    b.build().context("building the HTTP client")
}

/// Unix time, ms, from the one guarded clock (`seb_store::clock`): an error when the clock
/// cannot be read or stepped backwards, so nothing is signed at a time it cannot trust.
pub fn now_ms() -> Result<u64> {
    static CLOCK: std::sync::LazyLock<SystemClock> = std::sync::LazyLock::new(SystemClock::default);
    Ok(CLOCK.now_ms()?)
}

/// The broker presentation of a certificate: the request (the contract's op, target and
/// `params` or the contract's params, `caller` or the subject), signed by the agent.
pub fn presentation(
    certificate: Envelope,
    agent: &SigningKey,
    caller: Option<String>,
    params: Option<Value>,
    t_exec_ms: u64,
) -> Result<Presentation> {
    // The agent reads its own certificate to build the request; the broker verifies it.
    let cert = UnverifiedCertificate::new(certificate.clone()).insecure_payload(1 << 20)?;
    let request = ExecRequest {
        cid: cert.cid.clone(),
        nonce: cert.nonce.clone(),
        op: cert.contract.op.clone(),
        target: cert.contract.target.clone(),
        params: params.unwrap_or_else(|| cert.contract.params.clone()),
        caller: caller.unwrap_or_else(|| cert.subject.agent.clone()),
        t_exec_ms,
    };
    let proof = sign_request(&request, agent)?;
    Ok(Presentation { certificate, request, proof })
}

/// An HTTP response: status and JSON body (a string when it is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

async fn reply(resp: reqwest::Response) -> Result<Reply> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.context("reading the response")?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        anyhow::bail!("response of {} bytes is too large", bytes.len());
    }
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Reply { status, body })
}

/// One agent's view of admission and the broker: every admission read is signed with the
/// agent's key ([`sign_read`]), proposals are signed envelopes, executions carry a proof.
pub struct AgentClient {
    http: reqwest::Client,
    /// Microseconds spent in HTTP requests so far (for the per-call overhead figure).
    http_us: std::sync::atomic::AtomicU64,
    admission: String,
    broker: String,
    agent: String,
    key: SigningKey,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("agent", &self.agent)
            .field("kid", &self.key.kid())
            .field("admission", &self.admission)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    /// A client for `agent` holding `key`.
    pub fn new(
        http: reqwest::Client,
        admission: &str,
        broker: &str,
        agent: &str,
        key: SigningKey,
    ) -> Self {
        Self {
            http,
            http_us: std::sync::atomic::AtomicU64::new(0),
            admission: admission.trim_end_matches('/').to_owned(),
            broker: broker.trim_end_matches('/').to_owned(),
            agent: agent.to_owned(),
            key,
        }
    }

    /// Microseconds spent waiting for admission and the broker so far.
    pub fn http_us(&self) -> u64 {
        self.http_us.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn timed(
        &self,
        req: reqwest::RequestBuilder,
        what: impl FnOnce() -> String,
    ) -> Result<Reply> {
        let start = std::time::Instant::now();
        let r = match req.send().await {
            Ok(resp) => reply(resp).await,
            Err(e) => Err(anyhow::Error::new(e).context(what())),
        };
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.http_us.fetch_add(us, std::sync::atomic::Ordering::Relaxed);
        r
    }

    /// The agent's registered name.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The admission base URL.
    pub fn admission_url(&self) -> &str {
        &self.admission
    }

    /// `GET {admission}/v1/admission{path}` with `query` (URL-encoded here), signed over the
    /// exact path and query sent.
    pub async fn admission_get(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply> {
        let base = format!("{}/v1/admission{path}", self.admission);
        let url = if query.is_empty() {
            reqwest::Url::parse(&base)
        } else {
            reqwest::Url::parse_with_params(&base, query)
        }
        .with_context(|| format!("admission URL `{base}`"))?;
        let pq = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let sig = sign_read(&self.key, "GET", &pq, now_ms()?);
        let req = self.http.get(url.clone()).header(READ_SIGNATURE_HEADER, sig);
        self.timed(req, || format!("admission unreachable: GET {}", url.path())).await
    }

    /// Sign `p` (its `agent` must be this client's) and submit it.
    pub async fn submit(&self, p: &Proposal) -> Result<Reply> {
        let body = json::canonical(&sign_proposal(p, &self.key)?)?;
        let req = self
            .http
            .post(format!("{}/v1/admission/proposals", self.admission))
            .header("content-type", "application/json")
            .body(body);
        self.timed(req, || "admission unreachable: POST /v1/admission/proposals".into()).await
    }

    /// Present `certificate` to the broker with a fresh proof (one attempt, never retried).
    pub async fn execute(&self, certificate: Envelope) -> Result<Reply> {
        let p = presentation(certificate, &self.key, None, None, now_ms()?)?;
        let body = json::canonical(&p)?;
        let req = self
            .http
            .post(format!("{}/v1/executions", self.broker))
            .header("content-type", "application/json")
            .body(body);
        self.timed(req, || "broker unreachable: POST /v1/executions".into()).await
    }

    /// `GET {broker}{path}` (the open ledger routes).
    pub async fn broker_get(&self, path: &str) -> Result<Reply> {
        let req = self.http.get(format!("{}{path}", self.broker));
        self.timed(req, || format!("broker unreachable: GET {path}")).await
    }

    /// The broker's current signed checkpoint (`POST /v1/ledger/checkpoint` signs one for the
    /// current size when the newest is older; a `GET` may answer with an older one).
    pub async fn checkpoint(&self) -> Result<Reply> {
        let req = self.http.post(format!("{}/v1/ledger/checkpoint", self.broker));
        self.timed(req, || "broker unreachable: POST /v1/ledger/checkpoint".into()).await
    }
}
