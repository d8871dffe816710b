//! # seb-broker
//!
//! The running enforcement point: [`engine::Broker`] drives spec section 7 over a
//! [`seb_store::Store`] and [`seb_target::Target`]s, signs decision and outcome records into
//! the Merkle ledger, recovers after crashes (section 10); [`http`] serves the API of
//! section 11; [`serve`] runs it over TLS (or plain HTTP on loopback only).

pub mod approvers;
pub mod clock;
pub mod config;
pub mod engine;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod ratelimit;
pub mod records;
pub mod spool;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tracing::{debug, error, warn};

pub use engine::Broker;
pub use limits::ServeLimits;

/// The OpenAPI document of the broker API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accept or bind failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// On a request whose TLS client presented a certificate the server's `client_ca` verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate;

/// Paths served without a client certificate when mTLS is on: the kubelet's probes, the
/// Kubernetes API server's admission reviews (which carry no client certificate unless the
/// cluster's admission configuration gives it one), and admission's signed epoch statement
/// (brokers in statement mode poll it; its signature is what they trust).
pub const MTLS_EXEMPT_PATHS: [&str; 4] =
    ["/healthz", "/readyz", "/v1/kubernetes/admission-review", "/v1/admission/epochs/statement"];

/// Middleware for `client_ca`: a request without a verified client certificate gets 401
/// (problem+json, `failed_check: client_certificate`) unless its path is in
/// [`MTLS_EXEMPT_PATHS`].
pub async fn require_client_certificate(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.extensions().get::<ClientCertificate>().is_some()
        || MTLS_EXEMPT_PATHS.contains(&req.uri().path())
    {
        return next.run(req).await;
    }
    warn!(path = %req.uri().path(), "request without a client certificate refused (mTLS)");
    http::problem(
        401,
        "client certificate required",
        "this broker requires a TLS client certificate signed by its client_ca",
        serde_json::json!({"failed_check": "client_certificate"}),
    )
}

/// Serve `app` on `listener`, over TLS when `tls` is given, until `shutdown` resolves, with the
/// default [`ServeLimits`]. See [`serve_with_limits`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_limits(listener, app, tls, ServeLimits::default(), shutdown).await
}

/// Serve `app` on `listener`, over TLS when `tls` is given, until `shutdown` resolves. Every
/// listener of `seb serve` (broker API, admission, Kubernetes webhook: one router) goes through
/// here, so that a slow or idle client cannot hold a connection or a file descriptor longer
/// than `limits` allow (see [`ServeLimits`]).
pub async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let gate = Arc::new(limits::ConnectionGate::new(&limits));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        // Over a cap: the socket is closed at once, before any TLS or HTTP work.
        let Some(permit) = gate.admit(peer.ip()) else {
            drop(tcp);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => limits::serve_connection(tcp, peer, false, app, limits).await,
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        limits.tls_handshake,
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            warn!(client = %peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(client = %peer, "tls handshake timed out; closed");
                            return;
                        }
                    };
                    // The handshake verified any certificate the client presented.
                    let client_cert =
                        stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                    limits::serve_connection(stream, peer, client_cert, app, limits).await;
                }
            }
        });
    }
}

/// Retry the retirement of execution identities that could not be deleted yet (after a
/// crash, or a failed retire), with backoff, for as long as the broker runs. Serve the
/// Kubernetes admission review before starting this: the deletion passes through it.
pub async fn run_retirements(broker: std::sync::Arc<engine::Broker>) {
    let mut iv = tokio::time::interval(Duration::from_millis(100));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        broker.retire_queued().await;
    }
}

/// Keep the store current, every second: write the spool's waiting records as soon as the
/// store takes them, and reconcile the open executions of replicas that are gone once they
/// stayed orphaned for `orphan_grace` (see [`Broker::reconcile_orphans`]).
pub async fn keep_store_current(broker: Arc<Broker>, orphan_grace: Duration) {
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        if broker.flush_spool().await > 0 {
            continue;
        }
        if let Err(e) = broker.reconcile_orphans(orphan_grace).await {
            warn!(error = %e, "reconciling orphaned executions failed; retrying");
        }
    }
}

/// Start the broker's background duties: checkpoints at `interval` and rate-limit summaries
/// (records that waited for the store are [`keep_store_current`]'s). Runs recovery first and sets `ready`
/// (executions wait for it); start it once the listener serves, since recovery on
/// Kubernetes needs the broker's own admission review.
pub async fn run_background(state: http::AppState, checkpoint_interval: Duration) {
    let broker = state.broker.clone();
    loop {
        // Spooled outcomes first: recovery leaves them alone, but they should be in.
        broker.flush_spool().await;
        match broker.recover().await {
            Ok(_) => break,
            Err(e) => {
                error!(error = %e, "crash recovery failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    state.ready.store(true, Ordering::Release);
    let tick =
        if checkpoint_interval.is_zero() { Duration::from_secs(10) } else { checkpoint_interval };
    let mut iv = tokio::time::interval(tick);
    loop {
        iv.tick().await;
        broker.write_summary().await;
        if !checkpoint_interval.is_zero()
            && let Err(e) = broker.checkpoint().await
        {
            warn!(error = %e, "checkpoint failed");
        }
    }
}
