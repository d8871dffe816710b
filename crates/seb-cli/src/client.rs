//! Agent-side commands: `seb execute`, and `seb insecure-issue` for bootstrapping.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use seb_core::certificate::encode_nonce;
use seb_core::digest::Digest;
use seb_core::envelope::Envelope;
use seb_core::json;
use seb_core::types::{
    CertPath, CertificatePayload, Constraint, Contract, Evidence, Issuer, Platform, RiskLevel,
    Subject, Tolerance, Validity,
};
use serde_json::Value;

use crate::clock::now_ms;
use crate::keyfile;

/// Arguments of `seb execute`.
#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// Broker base URL, e.g. `https://broker.example:8443`.
    #[arg(long, env = "SEB_BROKER")]
    pub broker: String,
    /// The certificate envelope (JSON file).
    #[arg(long)]
    pub certificate: PathBuf,
    /// The agent's key file (must be the certificate's subject key).
    #[arg(long, env = "SEB_AGENT_KEY")]
    pub agent_key: PathBuf,
    /// Caller name; defaults to the certificate's subject.
    #[arg(long)]
    pub caller: Option<String>,
    /// Params to send instead of the contract's (JSON); must satisfy the constraints.
    #[arg(long)]
    pub params: Option<String>,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// Override the request time (Unix ms); for tests.
    #[arg(long, hide = true)]
    pub t_exec_ms: Option<u64>,
}

/// The TLS options of every command that talks to `seb serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsClientArgs {
    /// PEM CA certificate to trust for the server's TLS.
    #[arg(long, env = "SEB_CA")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) for a broker with `client_ca` (mTLS).
    #[arg(long, env = "SEB_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's PEM private key.
    #[arg(long, env = "SEB_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// HTTP client trusting `tls.ca` when given, presenting `tls.client_cert` when given.
pub fn http_client(tls: &TlsClientArgs) -> Result<reqwest::Client> {
    seb_mcp::client::http_client(
        &seb_mcp::client::TlsFiles {
            ca: tls.ca.clone(),
            client_cert: tls.client_cert.clone(),
            client_key: tls.client_key.clone(),
        },
        std::time::Duration::from_secs(60),
    )
}

/// `seb execute`: exit 0 when applied, 3 when admitted but not applied, 2 when refused.
pub async fn execute(a: ExecuteArgs) -> Result<ExitCode> {
    let env_bytes = std::fs::read(&a.certificate)
        .with_context(|| format!("reading `{}`", a.certificate.display()))?;
    let envelope: Envelope =
        json::parse(&env_bytes, 1 << 20).context("certificate is not an envelope")?;
    let agent = keyfile::read(&a.agent_key)?;
    let params = match &a.params {
        Some(p) => Some(serde_json::from_str(p).context("--params is not JSON")?),
        None => None,
    };
    let presentation = seb_mcp::client::presentation(
        envelope,
        &agent,
        a.caller.clone(),
        params,
        match a.t_exec_ms {
            Some(t) => t,
            None => now_ms()?,
        },
    )?;
    let body = json::canonical(&presentation)?;
    let url = format!("{}/v1/executions", a.broker.trim_end_matches('/'));
    let resp = http_client(&a.tls)?
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    println!("{}", serde_json::to_string_pretty(&value)?);
    if !status.is_success() {
        return Ok(ExitCode::from(2));
    }
    let applied = value.pointer("/outcome/status").and_then(Value::as_str) == Some("applied");
    Ok(if applied { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// Arguments of `seb insecure-issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The issuer's key file.
    #[arg(long)]
    pub issuer_key: PathBuf,
    /// The issuer's name.
    #[arg(long, default_value = "seb-admission")]
    pub issuer_name: String,
    /// The subject agent's name.
    #[arg(long)]
    pub agent: String,
    /// The subject agent's public key (base64).
    #[arg(long)]
    pub agent_public_key: String,
    /// `kubernetes`, `aws` or `test`.
    #[arg(long)]
    pub platform: String,
    /// The operation.
    #[arg(long)]
    pub op: String,
    /// The target (JSON object).
    #[arg(long)]
    pub target: String,
    /// The params (JSON).
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Constraints (JSON array of {path, check, value}).
    #[arg(long, default_value = "[]")]
    pub constraints: String,
    /// Risk level 0..5.
    #[arg(long, default_value_t = 1)]
    pub risk: u8,
    /// Evidence projection (JSON object: pointer → value).
    #[arg(long, default_value = "{}")]
    pub evidence: String,
    /// Evidence tolerances (JSON object: pointer → {"abs": n} | {"rel": r}).
    #[arg(long, default_value = "{}")]
    pub tolerance: String,
    /// Certification path.
    #[arg(long, default_value = "policy")]
    pub path: String,
    /// Approval envelopes (JSON files) to attach as attestations.
    #[arg(long)]
    pub attest: Vec<PathBuf>,
    /// Validity window in seconds from now.
    #[arg(long, default_value_t = 300)]
    pub validity_s: u64,
    /// Start of validity relative to now, seconds (negative: in the past).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub not_before_offset_s: i64,
    /// The policy epoch to bind.
    #[arg(long, default_value_t = 0)]
    pub policy_epoch: u64,
    /// The revocation epoch to bind.
    #[arg(long, default_value_t = 0)]
    pub revocation_epoch: u64,
    /// Write the envelope here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `seb insecure-issue`.
pub fn issue(a: IssueArgs) -> Result<()> {
    let issuer = keyfile::read(&a.issuer_key)?;
    let platform: Platform =
        serde_json::from_value(Value::String(a.platform.clone())).context("--platform")?;
    let cert_path: CertPath =
        serde_json::from_value(Value::String(a.path.clone())).context("--path")?;
    let risk = RiskLevel::new(a.risk).context("--risk must be 0..5")?;
    let constraints: Vec<Constraint> =
        serde_json::from_str(&a.constraints).context("--constraints")?;
    let contract = Contract {
        platform,
        op: a.op.clone(),
        target: serde_json::from_str(&a.target).context("--target")?,
        params: serde_json::from_str(&a.params).context("--params")?,
        constraints,
        risk_level: risk,
    };
    let projection: BTreeMap<String, Value> =
        serde_json::from_str(&a.evidence).context("--evidence")?;
    let tolerance: BTreeMap<String, Tolerance> =
        serde_json::from_str(&a.tolerance).context("--tolerance")?;
    let mut attestations = Vec::new();
    for p in &a.attest {
        let bytes = std::fs::read(p).with_context(|| format!("reading `{}`", p.display()))?;
        attestations.push(json::parse::<Envelope>(&bytes, 1 << 20)?);
    }
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let now_s = now_ms()? / 1000;
    let not_before =
        now_s.checked_add_signed(a.not_before_offset_s).context("--not-before-offset-s")?;
    if a.validity_s == 0 {
        bail!("--validity-s must be positive");
    }
    let payload = CertificatePayload {
        version: 1,
        cid: uuid::Uuid::new_v4().to_string(),
        nonce: encode_nonce(&random),
        issuer: Issuer { name: a.issuer_name.clone(), kid: issuer.kid() },
        subject: Subject {
            agent: a.agent.clone(),
            public_key: seb_core::keys::PublicKey::from_base64(&a.agent_public_key)?,
        },
        contract_digest: contract.digest()?,
        contract,
        evidence: Evidence {
            digest: Digest::of_json(&projection)?,
            projection,
            observed_at_ms: now_ms()?,
            tolerance,
        },
        validity: Validity { not_before, not_after: not_before + a.validity_s },
        policy_epoch: a.policy_epoch,
        revocation_epoch: a.revocation_epoch,
        cert_path,
        attestations,
        issued_at_ms: now_ms()?,
    };
    let env = payload.sign(&issuer)?;
    let text = serde_json::to_string_pretty(&env)?;
    match a.out {
        Some(p) => {
            std::fs::write(&p, text).with_context(|| format!("writing `{}`", p.display()))?
        }
        None => println!("{text}"),
    }
    Ok(())
}
