//! TLS to PostgreSQL over the workspace's one crypto backend: rustls with the aws-lc-rs
//! provider, through tokio-rustls.
//!
//! This is a small [`MakeTlsConnect`] of our own rather than the `tokio-postgres-rustls`
//! crate, which depends on `ring` (a second crypto backend) for channel binding. Channel
//! binding is therefore not offered ([`ChannelBinding::none`]): SCRAM authentication still
//! works, and the server's certificate is verified against the configured CA, which is what
//! protects against an impostor.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::TlsConnector;

use seb_store::StoreError;

/// Makes rustls (aws-lc-rs) TLS connections for tokio-postgres and the pool.
#[derive(Clone, Debug)]
pub struct RustlsConnector {
    config: Arc<ClientConfig>,
}

impl RustlsConnector {
    /// Trust exactly the certificates in the PEM file `ca` (TLS 1.2 and 1.3, aws-lc-rs).
    pub fn from_ca_file(ca: &Path) -> Result<Self, StoreError> {
        let pem = std::fs::read(ca).map_err(|e| {
            StoreError::invalid_from(format!("reading the PostgreSQL CA `{}`", ca.display()), e)
        })?;
        let mut roots = rustls::RootCertStore::empty();
        let mut n = 0usize;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| {
                StoreError::invalid_from(format!("the PostgreSQL CA `{}`", ca.display()), e)
            })?;
            roots.add(cert).map_err(|e| {
                StoreError::invalid_from(format!("the PostgreSQL CA `{}`", ca.display()), e)
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(StoreError::invalid(format!(
                "the PostgreSQL CA `{}` holds no certificate",
                ca.display()
            )));
        }
        Self::with_roots(roots)
    }

    /// A connector that trusts nothing: used for plain-TCP configurations, where
    /// tokio-postgres never asks for TLS (`sslmode=disable`).
    pub fn untrusting() -> Result<Self, StoreError> {
        Self::with_roots(rustls::RootCertStore::empty())
    }

    fn with_roots(roots: rustls::RootCertStore) -> Result<Self, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::invalid_from("TLS configuration", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { config: Arc::new(config) })
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        let name = ServerName::try_from(domain)?.to_owned();
        Ok(RustlsConnect { name, connector: TlsConnector::from(Arc::clone(&self.config)) })
    }
}

/// One TLS handshake to do.
#[allow(missing_debug_implementations)]
pub struct RustlsConnect {
    name: ServerName<'static>,
    connector: TlsConnector,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move { self.connector.connect(self.name, stream).await.map(RustlsStream) })
    }
}

/// An established TLS session.
#[allow(missing_debug_implementations)]
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> tokio_postgres::tls::TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S> AsyncRead for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
