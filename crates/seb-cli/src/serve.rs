//! `seb serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use seb_broker::clock::SystemClock;
use seb_broker::config::Config;
use seb_broker::engine::{Broker, EngineSettings, TrustRoots};
use seb_broker::http::{AppState, router};
use seb_broker::records::RecordSigner;
use seb_store::Store;
use tracing::info;

/// Arguments of `seb serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; see docs/configuration.md).
    #[arg(long, env = "SEB_CONFIG")]
    pub config: PathBuf,
    /// Override `broker.listen`.
    #[arg(long, env = "SEB_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Override `broker.store` (`sqlite:<path>` or `postgres://…`).
    #[arg(long, env = "SEB_STORE")]
    pub store: Option<String>,
    /// Log format: `json` (default) or `pretty`.
    #[arg(long, env = "SEB_LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

/// Open the store named by a `sqlite:<path>` or `postgres://…` URL.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let s =
            seb_store::sqlite::SqliteStore::open(std::path::Path::new(path), Default::default())
                .with_context(|| format!("opening store `{url}`"))?;
        return Ok(Arc::new(s));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Several replicas may share it; migrations run here. Never echo the URL: it may
        // hold a password.
        let s = seb_store_postgres::PostgresStore::connect(url, Default::default())
            .await
            .context("opening the postgres store")?;
        return Ok(Arc::new(s));
    }
    bail!("unsupported store `{url}`: use sqlite:<path> or postgres://…")
}

/// Run the broker until SIGINT/SIGTERM.
pub async fn run(a: ServeArgs) -> Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SEB_LOG").unwrap_or_else(|_| "info".into());
    if a.log_format == "pretty" {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
    // A product build has neither (tests/shipped_features.rs); say so loudly if this one does.
    for (feature, on) in [
        ("test-double", cfg!(feature = "test-double")),
        ("fault-injection", cfg!(feature = "fault-injection")),
    ] {
        if on {
            tracing::warn!(feature, "this seb is a test build: never run it in production");
        }
    }
    let mut cfg = Config::load(&a.config)?;
    if let Some(l) = a.listen {
        cfg.broker.listen = l;
    }
    if let Some(s) = a.store {
        cfg.broker.store = s;
    }
    cfg.validate()?;
    let b = &cfg.broker;
    let key = crate::keyfile::read(&b.key_file)?;
    let store = open_store(&b.store).await?;
    let base = a.config.parent().unwrap_or(std::path::Path::new("."));
    let platforms = crate::platforms::Platforms::build(&cfg, base).await?;
    if platforms.kube_webhook.is_some() && (b.tls_cert.is_none() || b.tls_key.is_none()) {
        bail!(
            "[targets.kubernetes] webhook = true needs TLS (broker.tls_cert, broker.tls_key): the API server calls webhooks over HTTPS only"
        );
    }
    let admission =
        crate::admission_cmd::mount(&cfg, &a.config, store.clone(), &platforms.profiles).await?;
    let trust = TrustRoots {
        issuers: cfg.issuer_keys()?,
        break_glass: cfg.break_glass_keys()?,
        break_glass_quorum: cfg.trust.break_glass_quorum,
        approvers: cfg.approver_registry()?,
        path_rules: cfg.path_rules()?,
    };
    let settings = EngineSettings {
        body_limit: b.body_limit,
        skew_ms: b.skew_ms,
        max_validity_s: b.max_validity_s,
        epoch_max_staleness_ms: b.epoch_max_staleness_ms,
        target_timeout: Duration::from_millis(b.target_timeout_ms),
        origin: b.origin.clone(),
        preauth_records_per_minute: b.preauth_records_per_minute,
        epoch_source: cfg.epoch_source()?,
    };
    let spool = seb_broker::spool::Spool::open(&b.spool_dir).context("opening the spool")?;
    let broker = Arc::new(
        Broker::new(
            store,
            platforms.targets.clone(),
            RecordSigner::new(key),
            trust,
            settings,
            Arc::new(SystemClock::default()),
        )
        .with_spool(spool),
    );
    let state = AppState { broker: broker.clone(), ready: Arc::new(AtomicBool::new(false)) };
    // Outcomes this replica told its clients before the store went away are written first,
    // with their own ids: recovery must not record them by observation.
    let waiting = broker.flush_spool().await;
    if waiting > 0 {
        bail!("{waiting} spooled records could not be written: the store is not answering");
    }
    let poller =
        b.epoch_statement_url.clone().filter(|_| b.epoch_source == "statement").map(|url| {
            tokio::spawn(poll_statements(
                broker.clone(),
                url,
                b.epoch_statement_ca.clone(),
                Duration::from_millis(b.epoch_poll_interval_ms),
            ))
        });
    let tls = match (&b.tls_cert, &b.tls_key) {
        (Some(c), Some(k)) => Some(seb_broker::tls::server_config(c, k, b.client_ca.as_deref())?),
        _ => None,
    };
    if b.client_ca.is_some() && tls.is_none() {
        bail!("[broker] client_ca needs tls_cert and tls_key (mTLS is TLS)");
    }
    let listener = tokio::net::TcpListener::bind(b.listen)
        .await
        .with_context(|| format!("binding {}", b.listen))?;
    let addr = listener.local_addr()?;
    info!(listen = %addr, tls = tls.is_some(), kid = %broker.signer().kid(), store = broker.store().backend(), "broker listening");
    // A line on stdout that scripts and tests can wait for.
    println!("{}", serde_json::json!({ "listening": addr.to_string(), "tls": tls.is_some() }));
    let mut extra = admission;
    if let Some(policy) = platforms.kube_webhook.clone() {
        let hook = crate::platforms::webhook_routes(broker.clone(), policy);
        extra = Some(match extra {
            Some(r) => r.merge(hook),
            None => hook,
        });
        info!(path = seb_kube::deploy::ADMISSION_PATH, "kubernetes admission webhook mounted");
    }
    let mut app = router(state.clone(), extra);
    if b.client_ca.is_some() && tls.is_some() {
        app = app.layer(axum::middleware::from_fn(seb_broker::require_client_certificate));
        info!(exempt = ?seb_broker::MTLS_EXEMPT_PATHS, "mTLS: client certificates required");
    }
    // Crash recovery starts once the listener is bound: on Kubernetes, deleting a crashed
    // execution's Role and RoleBinding passes through this broker's own admission review.
    // Until it finishes, /readyz answers 503 and executions wait (spec section 10).
    let bg = tokio::spawn(seb_broker::run_background(
        state,
        Duration::from_secs(b.checkpoint_interval_s),
    ));
    let retirements = tokio::spawn(seb_broker::run_retirements(broker.clone()));
    let keeper = tokio::spawn(seb_broker::keep_store_current(
        broker.clone(),
        Duration::from_secs(b.orphan_grace_s),
    ));
    let limits = b.serve_limits();
    info!(?limits, "connection limits");
    seb_broker::serve_with_limits(listener, app, tls, limits, shutdown_signal()).await?;
    bg.abort();
    retirements.abort();
    keeper.abort();
    if let Some(p) = poller {
        p.abort();
    }
    // Write a final checkpoint so the ledger ends with a signed statement of its size.
    let _ = broker.checkpoint().await;
    info!("broker stopped");
    Ok(())
}

/// Statement mode: fetch admission's signed epoch statement periodically and apply it. A
/// failure leaves the previous statement in force until its TTL runs out, then the broker
/// fails closed.
async fn poll_statements(
    broker: Arc<Broker>,
    url: String,
    ca: Option<std::path::PathBuf>,
    every: Duration,
) {
    let built = (|| -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(5));
        if let Some(ca) = &ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading `{}`", ca.display()))?;
            b = b.tls_certs_only([reqwest::Certificate::from_pem(&pem)?]);
        }
        Ok(b.build()?)
    })();
    let client = match built {
        Ok(c) => c,
        Err(e) => {
            // Without statements the broker fails closed once the last one is stale.
            tracing::error!(error = %e, "cannot build the statement poller");
            return;
        }
    };
    let mut iv = tokio::time::interval(every);
    loop {
        iv.tick().await;
        let fetched = async {
            let bytes = client.get(&url).send().await?.error_for_status()?.bytes().await?;
            Ok::<_, anyhow::Error>(seb_core::json::parse::<seb_core::envelope::Envelope>(
                &bytes,
                1 << 20,
            )?)
        }
        .await;
        match fetched {
            Ok(env) => {
                if let Err(e) = broker.apply_statement(&env).await {
                    tracing::warn!(error = %e, "epoch statement refused");
                }
            }
            Err(e) => tracing::warn!(error = %e, url, "epoch statement unavailable"),
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
