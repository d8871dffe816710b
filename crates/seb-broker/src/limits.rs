//! What a client may hold on a listener of `seb serve`: the TLS handshake, the request headers
//! and an idle connection each have a deadline, and the open connections are capped per server
//! and per client address. [`crate::serve_with_limits`] applies them to every connection; a
//! connection over a cap is closed before any TLS or HTTP work.
//!
//! | limit | what it closes |
//! |---|---|
//! | `tls_handshake` | a TCP connection whose TLS handshake has not finished (half-open, silent) |
//! | `header_read` | an HTTP/1 request whose headers have not all arrived (slowloris) |
//! | `idle` | a connection with no request in flight (idle keep-alive, HTTP/2 even while it pings, a client that never sends a request) |
//! | `max_connections` | every connection past this many open on the listener |
//! | `max_connections_per_client` | every connection past this many from one address (IPv6: one /64) |

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt as _;
use tracing::{debug, warn};

use crate::ClientCertificate;

/// Deadlines and caps of a listener (`[broker]` `tls_handshake_timeout_ms`,
/// `header_read_timeout_ms`, `idle_timeout_ms`, `max_connections`,
/// `max_connections_per_client`; see docs/configuration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Longest TLS handshake.
    pub tls_handshake: Duration,
    /// Longest time to receive a whole HTTP/1 request head, counted from its first byte, or
    /// from the end of the previous response on a kept-alive connection.
    pub header_read: Duration,
    /// Longest time a connection may stay open with no request in flight (a request is in
    /// flight from its head until its response body has been sent).
    pub idle: Duration,
    /// Open connections on the listener.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64).
    pub max_connections_per_client: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_connections: 512,
            max_connections_per_client: 64,
        }
    }
}

/// Counts open connections, in all and per client address.
#[derive(Debug)]
pub(crate) struct ConnectionGate {
    max: usize,
    per_client: usize,
    state: Mutex<GateState>,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct GateState {
    open: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Arc<ConnectionGate>,
    client: IpAddr,
}

/// The address a per-client cap counts: IPv4 as is, IPv6 by its /64 (one host usually holds
/// a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl ConnectionGate {
    pub(crate) fn new(limits: &ServeLimits) -> Self {
        Self {
            max: limits.max_connections,
            per_client: limits.max_connections_per_client,
            state: Mutex::new(GateState::default()),
            refused: AtomicU64::new(0),
        }
    }

    /// A place for a new connection from `ip`, or `None` when a cap is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let client = client_key(ip);
        let admitted = {
            let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let from_client = st.by_client.get(&client).copied().unwrap_or(0);
            if st.open >= self.max {
                Err("max_connections")
            } else if from_client >= self.per_client {
                Err("max_connections_per_client")
            } else {
                st.open += 1;
                st.by_client.insert(client, from_client + 1);
                Ok(())
            }
        };
        match admitted {
            Ok(()) => Some(Permit { gate: self.clone(), client }),
            Err(cap) => {
                let n = self.refused.fetch_add(1, Ordering::Relaxed);
                // One line per 1000 refusals: an attack must not flood the log either.
                if n.is_multiple_of(1000) {
                    warn!(client = %ip, cap, refused_so_far = n + 1, "connection refused: cap reached");
                } else {
                    debug!(client = %ip, cap, "connection refused: cap reached");
                }
                None
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.gate.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.open = st.open.saturating_sub(1);
        if let Some(n) = st.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.by_client.remove(&self.client);
            }
        }
    }
}

/// How many requests a connection has in flight (a request is in flight from its head until
/// its response body has been sent), and when the last one ended.
#[derive(Debug)]
struct Activity {
    base: Instant,
    last_end_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_end_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }
    /// When the connection became idle: its start, or the end of its last request.
    fn idle_since(&self) -> Instant {
        self.base + Duration::from_millis(self.last_end_ms.load(Ordering::Acquire))
    }
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

/// One request in flight; dropped with its response body (or with the request's future when
/// it is cancelled).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end_ms.store(ms, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it has been sent (or dropped).
#[derive(Debug)]
struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serve HTTP/1 or HTTP/2 on one accepted (and, with TLS, handshaken) connection until the
/// client closes it, an HTTP/1 request head is late (`header_read`), or it has had no request
/// in flight for `idle` — whatever bytes (HTTP/2 pings, say) it moves meanwhile.
pub(crate) async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    client_cert: bool,
    app: Router,
    limits: ServeLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let requests = activity.clone();
    let svc = tower::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        if client_cert {
            req.extensions_mut().insert(ClientCertificate);
        }
        let in_flight = InFlight::enter(&requests);
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await?;
            Ok::<_, std::convert::Infallible>(
                resp.map(|inner| TrackedBody { inner, _in_flight: in_flight }),
            )
        }
    });
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    loop {
        let check_at = if activity.busy() {
            Instant::now() + limits.idle
        } else {
            activity.idle_since() + limits.idle
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(client = %peer, error = %e, "connection closed");
                }
                return;
            }
            () = tokio::time::sleep_until(check_at.into()) => {
                if !activity.busy() && activity.idle_since().elapsed() >= limits.idle {
                    debug!(client = %peer, "idle connection closed");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_server_and_per_client_and_free_on_drop() {
        let limits =
            ServeLimits { max_connections: 3, max_connections_per_client: 2, ..Default::default() };
        let gate = Arc::new(ConnectionGate::new(&limits));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "third from one client");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate.admit(b).is_none(), "fourth on the server");
        drop(a1);
        assert!(gate.admit(a).is_some(), "a place freed by a closed connection");
    }

    #[test]
    fn ipv6_clients_count_by_64_prefix() {
        let limits = ServeLimits { max_connections_per_client: 1, ..Default::default() };
        let gate = Arc::new(ConnectionGate::new(&limits));
        let _p = gate.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(gate.admit("2001:db8:1:2::ffff".parse().unwrap()).is_none());
        assert!(gate.admit("2001:db8:1:3::1".parse().unwrap()).is_some());
        let _v4 = gate.admit("192.0.2.9".parse().unwrap()).unwrap();
        assert!(gate.admit("::ffff:192.0.2.9".parse().unwrap()).is_none(), "mapped v4 is v4");
    }
}
