//! The streamable HTTP transport of `seb mcp` (`--listen`).
//!
//! - Loopback by default. Any other address is refused unless TLS (`--tls-cert`,
//!   `--tls-key`) and per-client bearer tokens (`--client-tokens`) are both configured.
//! - With `--client-tokens`, every request carries `Authorization: Bearer <token>` of one
//!   client; anything else is `401` (the client's name is logged, never the token).
//! - A request with an `Origin` header is served only when the origin is in
//!   `--allowed-origin` (`403` otherwise; no `Origin`, as from non-browser clients, passes).
//! - The MCP endpoint is `/mcp`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::server::SebMcp;

/// The HTTP transport's settings.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Lines `<client name> <token>` (mode 0600; `#` comments).
    pub client_tokens: Option<PathBuf>,
    pub allowed_origins: Vec<String>,
    /// Host names clients use to reach this server (beyond the listen address and loopback).
    pub allowed_hosts: Vec<String>,
}

/// Known clients: SHA-256 of the token → name.
#[derive(Clone, Default)]
struct Gate {
    tokens: Arc<Vec<([u8; 32], String)>>,
    origins: Arc<Vec<String>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("clients", &self.tokens.len()).finish_non_exhaustive()
    }
}

fn read_tokens(path: &Path) -> Result<Vec<([u8; 32], String)>> {
    // The one secret-file reader: refuses a file the group or others can read.
    let bytes = seb_store::keyfile::read_secret(path)
        .context("refusing to start: the client tokens file cannot be used")?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("`{}` is not UTF-8 text", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, token)) = line.split_once(char::is_whitespace) else {
            bail!("{}:{}: expected `<client name> <token>`", path.display(), i + 1);
        };
        let token = token.trim();
        if token.len() < 32 {
            bail!("{}:{}: tokens must be at least 32 characters", path.display(), i + 1);
        }
        out.push((Sha256::digest(token.as_bytes()).into(), name.to_owned()));
    }
    if out.is_empty() {
        bail!("`{}` names no client", path.display());
    }
    Ok(out)
}

fn deny(status: StatusCode, msg: &'static str) -> Response {
    let mut r = (status, msg).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// Origin first (a browser page on another origin gets nothing), then the bearer token.
async fn gate(State(g): State<Gate>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| g.origins.iter().any(|a| a == o));
        if !ok {
            warn!(origin = ?origin, "request from an origin not allowed refused");
            return deny(StatusCode::FORBIDDEN, "origin not allowed\n");
        }
    }
    if !g.tokens.is_empty() {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| -> [u8; 32] { Sha256::digest(t.trim().as_bytes()).into() });
        // Compare digests without an early exit.
        let client = presented.and_then(|p| {
            g.tokens
                .iter()
                .find(|(d, _)| d.iter().zip(p.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
                .map(|(_, n)| n.clone())
        });
        let Some(client) = client else {
            warn!("request without a valid bearer token refused");
            return deny(StatusCode::UNAUTHORIZED, "a valid bearer token is required\n");
        };
        tracing::debug!(client = %client, "authenticated MCP request");
    }
    next.run(req).await
}

/// Off loopback, TLS and client tokens are required: checked before anything is read.
pub fn check_exposure(o: &HttpOptions) -> Result<()> {
    let addr = o.listen.context("no --listen address")?;
    let protected = o.tls_cert.is_some() && o.tls_key.is_some() && o.client_tokens.is_some();
    if !(addr.ip().is_loopback() || protected) {
        bail!(
            "refusing to listen on {addr}: off loopback, `seb mcp` needs TLS (--tls-cert, --tls-key) and per-client bearer tokens (--client-tokens)"
        );
    }
    Ok(())
}

/// Serve `server` over streamable HTTP until interrupted.
pub async fn serve(server: SebMcp, o: &HttpOptions) -> Result<()> {
    let addr = o.listen.context("no --listen address")?;
    let tls = match (&o.tls_cert, &o.tls_key) {
        (Some(c), Some(k)) => Some(seb_broker::tls::server_config(c, k, None)?),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let tokens = match &o.client_tokens {
        Some(p) => read_tokens(p)?,
        None => Vec::new(),
    };
    check_exposure(o)?;
    let mut hosts: Vec<String> =
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into(), addr.ip().to_string()];
    hosts.extend(o.allowed_hosts.iter().cloned());
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let svc = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let g = Gate { tokens: Arc::new(tokens), origins: Arc::new(o.allowed_origins.clone()) };
    let clients = g.tokens.len();
    let app = Router::new()
        .nest_service("/mcp", svc)
        .layer(axum::middleware::from_fn_with_state(g, gate));
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The one line on stdout: where to connect (tests and scripts read it).
    println!(
        "{}",
        serde_json::json!({"listening": local.to_string(), "url": format!("{scheme}://{local}/mcp")})
    );
    info!(listen = %local, tls = tls.is_some(), clients, origins = o.allowed_origins.len(), "seb mcp serving streamable HTTP");
    seb_broker::serve(listener, app, tls, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
