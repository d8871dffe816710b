//! # seb-testinfra
//!
//! The project's own harness for the real services its tests need. Each module starts one
//! service on loopback, installing what is missing (Debian packages, PyPI packages, or a
//! build from Debian's source package), waits until it is ready, and stops it when the
//! handle is dropped — or, if the test process dies, when the watchdog notices its parent is
//! gone. Nothing is silently skipped: a service that cannot be started is an error, and the
//! tests that need it fail.
//!
//! - [`browser`]: Debian's Chromium and a pinned Playwright for Python (console tests).
//! - [`process`]: supervised child processes, free ports, readiness polling.
//! - [`cel`]: cel-python (pinned), to evaluate admission policies' CEL in tests.
//! - [`certs`]: throwaway CAs and server or client certificates (`openssl`).
//! - [`kube`]: etcd + kube-apiserver (built from Debian's `kubernetes` source package).
//! - [`moto`]: moto_server with IAM enforcement.
//! - [`postgres`]: a throwaway PostgreSQL cluster.
//! - [`adopt`]: the walkthrough's identities on a real cluster or account instead.

pub mod adopt;
pub mod browser;
pub mod cel;
pub mod certs;
pub mod kube;
pub mod moto;
pub mod postgres;
pub mod process;

/// Why a service could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// A command needed to install or start the service failed.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    /// The service did not become ready in time.
    #[error("{service} not ready after {seconds} s: {detail}")]
    NotReady { service: &'static str, seconds: u64, detail: String },
    /// Filesystem or process error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
