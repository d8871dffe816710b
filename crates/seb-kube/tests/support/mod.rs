//! Shared by the live test binaries: the broker's admission endpoint served over HTTPS by the
//! test process, as `seb serve` serves it (the pure `seb_kube::webhook` behind TLS).

use std::sync::Arc;

use anyhow::{Context, Result};

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
