//! # seb-mcp
//!
//! `seb mcp` (spec section 12.1): a Model Context Protocol server that an agent host starts
//! for ONE agent identity. It holds that agent's key — the model never sees a key, a
//! certificate's proof or a minted credential — and reaches admission and the broker over
//! their HTTP APIs only. Seven tools: `list_operations`, `observe`, `propose`,
//! `proposal_status`, `execute`, `apply`, `history` ([`server`]).
//!
//! - [`client`]: the agent side of SEB's HTTP APIs (also used by the `seb` CLI).
//! - [`catalogue`]: operations from the platform profiles, and local input validation.
//! - [`server`]: the tools, resources and the MCP handler.
//! - [`http`]: the streamable HTTP transport (`--listen`): loopback by default, TLS and
//!   per-client bearer tokens elsewhere, an `Origin` allow-list.
//!
//! Invariants:
//! - Nothing is signed or sent before the input validated against the same platform profile
//!   admission compiles with; a bad input is a tool error.
//! - A refusal is a tool result with `isError: true` and a next step; nothing is retried
//!   with a new proof.
//! - No tool result, error or log line contains the key, a certificate envelope or a token.
//! - `seb mcp` refuses to start when the key file is missing or readable by other users.

pub mod catalogue;
pub mod client;
pub mod http;
pub mod results;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use rmcp::ServiceExt as _;
use serde::Deserialize;

use crate::client::{AgentClient, TlsFiles, http_client};
use crate::server::SebMcp;

/// Arguments of `seb mcp` (flags and environment override the `--config` file).
#[derive(Debug, Clone, Default, Args)]
pub struct McpArgs {
    /// A TOML file with any of: agent, agent_key, admission, broker, ca, client_cert,
    /// client_key, console_url (relative paths are relative to the file).
    #[arg(long, env = "SEB_MCP_CONFIG")]
    pub config: Option<PathBuf>,
    /// The agent's registered name.
    #[arg(long, env = "SEB_AGENT")]
    pub agent: Option<String>,
    /// The agent's key file (mode 0600; refused when others can read it).
    #[arg(long, env = "SEB_AGENT_KEY")]
    pub agent_key: Option<PathBuf>,
    /// Admission base URL.
    #[arg(long, env = "SEB_ADMISSION")]
    pub admission: Option<String>,
    /// Broker base URL.
    #[arg(long, env = "SEB_BROKER")]
    pub broker: Option<String>,
    /// PEM CA certificate to trust for admission's and the broker's TLS.
    #[arg(long, env = "SEB_CA")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate for mTLS.
    #[arg(long, env = "SEB_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's PEM private key.
    #[arg(long, env = "SEB_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Serve streamable HTTP on this address (endpoint `/mcp`) instead of stdio: `PORT`
    /// (loopback, 127.0.0.1) or `ADDRESS:PORT`; off loopback only with TLS and client tokens.
    #[arg(long, value_parser = parse_listen)]
    pub listen: Option<std::net::SocketAddr>,
    /// PEM certificate for `--listen` over TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's PEM private key.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bearer tokens, one client per line: `<client name> <token>` (mode 0600).
    #[arg(long)]
    pub client_tokens: Option<PathBuf>,
    /// An origin (`scheme://host:port`) browser requests may come from; others get 403.
    #[arg(long)]
    pub allowed_origin: Vec<String>,
    /// A host name clients use to reach `--listen` (beyond its address and loopback).
    #[arg(long)]
    pub allowed_host: Vec<String>,
    /// The approver console's base URL (admission's `[admission] public_url`): pending
    /// proposals point approvers at `<console-url>/console/proposals/<id>`.
    #[arg(long, env = "SEB_CONSOLE_URL")]
    pub console_url: Option<String>,
}

/// `--listen`: a bare port means loopback.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| format!("`{s}` is neither a port nor an ADDRESS:PORT"))
}

/// The `--config` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    pub agent: Option<String>,
    pub agent_key: Option<PathBuf>,
    pub admission: Option<String>,
    pub broker: Option<String>,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub console_url: Option<String>,
}

/// Everything `seb mcp` needs, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub agent: String,
    pub agent_key: PathBuf,
    pub admission: String,
    pub broker: String,
    pub tls: TlsFiles,
    /// The approver console's base URL, when the deployment has one.
    pub console_url: Option<String>,
}

/// Merge flags over the config file; every setting but TLS is required.
pub fn resolve(a: &McpArgs) -> Result<Resolved> {
    let (file, base) = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config `{}`", p.display()))?;
            let c: McpConfig =
                toml::from_str(&text).with_context(|| format!("config `{}`", p.display()))?;
            (c, p.parent().map(Path::to_path_buf).unwrap_or_default())
        }
        None => (McpConfig::default(), PathBuf::new()),
    };
    let rel = |p: Option<PathBuf>| p.map(|p| if p.is_absolute() { p } else { base.join(p) });
    let need = |v: Option<String>, what: &str| {
        v.filter(|s| !s.is_empty())
            .with_context(|| format!("no {what}: pass --{what} or set it in --config"))
    };
    let tls = TlsFiles {
        ca: a.ca.clone().or(rel(file.ca)),
        client_cert: a.client_cert.clone().or(rel(file.client_cert)),
        client_key: a.client_key.clone().or(rel(file.client_key)),
    };
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        bail!("client_cert and client_key go together");
    }
    let console_url = a.console_url.clone().or(file.console_url).filter(|s| !s.is_empty());
    if let Some(u) = &console_url {
        let ok = reqwest::Url::parse(u).is_ok_and(|p| {
            matches!(p.scheme(), "https" | "http") && p.query().is_none() && p.fragment().is_none()
        });
        if !ok {
            bail!("console_url `{u}` is not an http(s) base URL");
        }
    }
    Ok(Resolved {
        agent: need(a.agent.clone().or(file.agent), "agent")?,
        agent_key: a
            .agent_key
            .clone()
            .or(rel(file.agent_key))
            .context("no agent-key: pass --agent-key or set agent_key in --config")?,
        admission: need(a.admission.clone().or(file.admission), "admission")?,
        broker: need(a.broker.clone().or(file.broker), "broker")?,
        tls,
        console_url,
    })
}

/// Build the server: reads the key (refusing a missing or exposed key file).
pub fn build(r: &Resolved) -> Result<SebMcp> {
    let key = seb_store::keyfile::read_signing_key(&r.agent_key)
        .context("refusing to start: the agent key file cannot be used")?;
    let http = http_client(&r.tls, Duration::from_secs(30))?;
    Ok(SebMcp::new(AgentClient::new(http, &r.admission, &r.broker, &r.agent, key))
        .with_console_url(r.console_url.as_deref()))
}

/// `seb mcp`: serve MCP on stdin/stdout until the host closes it (the caller sends logs to
/// stderr: stdout is the protocol), or on `--listen` over streamable HTTP.
pub async fn run(a: McpArgs) -> Result<()> {
    let o = http::HttpOptions {
        listen: a.listen,
        tls_cert: a.tls_cert.clone(),
        tls_key: a.tls_key.clone(),
        client_tokens: a.client_tokens.clone(),
        allowed_origins: a.allowed_origin.clone(),
        allowed_hosts: a.allowed_host.clone(),
    };
    if o.listen.is_some() {
        http::check_exposure(&o)?;
    }
    let r = resolve(&a)?;
    let server = build(&r)?;
    if o.listen.is_some() {
        return http::serve(server, &o).await;
    }
    tracing::info!(agent = %r.agent, admission = %r.admission, broker = %r.broker, transport = "stdio", "seb mcp serving");
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP initialisation over stdio failed")?;
    running.waiting().await.context("MCP service")?;
    Ok(())
}
