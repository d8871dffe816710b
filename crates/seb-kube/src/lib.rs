//! # seb-kube
//!
//! SEB's Kubernetes platform (spec section 9), built on kube-rs.
//!
//! - [`model`]: the target reference `{cluster, api_version, kind, namespace, name}`, the
//!   seven operations and their params (pure).
//! - [`projection`]: the default evidence projection and the expected post-state of each op
//!   (pure).
//! - [`profile`]: the admission side ([`seb_target::PlatformProfile`]): compile, default
//!   pointers, consequence rules; and scope (check 9) given the protected namespaces (pure).
//! - [`rbac`]: the per-execution ServiceAccount, Role and RoleBinding (pure).
//! - [`target`]: [`KubeTarget`], the [`seb_target::Target`]: discovery, observe, mint, mutate
//!   with the resourceVersion precondition, retire, reconcile.
//! - [`webhook`]: the validating admission function that prevents bypass (pure).
//! - [`deploy`]: the manifests (`seb deploy kubernetes`).
//!
//! Architecture invariants:
//! - A mutation is made with the execution's own TokenRequest token, never with the broker's
//!   credentials (the broker's own RBAC has no mutating verb on workload objects at all).
//! - Every mutation of an existing object carries the resourceVersion read at the drift check;
//!   a create cannot succeed over an object that appeared since (409 AlreadyExists).
//! - A 409 from the API server is [`seb_target::MutationStatus::Conflict`] and changed nothing.
//!
//! TLS is rustls with aws-lc-rs only; [`install_crypto_provider`] makes that explicit.

pub mod deploy;
pub mod model;
pub mod profile;
pub mod projection;
pub mod rbac;
pub mod target;
pub mod webhook;

pub use model::{Op, TargetRef};
pub use profile::{KubeProfile, ScopePolicy};
pub use target::{KubeTarget, KubeTargetConfig};
pub use webhook::{LiveExecutions, WebhookPolicy, review};

use seb_target::TargetError;

/// Why a Kubernetes operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// The contract, target or params do not fit the platform.
    #[error("invalid for kubernetes: {0}")]
    Invalid(String),
    /// The API server refused (authentication, authorisation, admission, validation).
    #[error("api server refused: {0}")]
    Refused(String),
    /// The API server could not be reached, or failed.
    #[error("api server unavailable: {0}")]
    Unavailable(String),
}

impl From<KubeError> for TargetError {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::Invalid(m) => TargetError::Invalid(m),
            KubeError::Refused(m) => TargetError::Refused(m),
            KubeError::Unavailable(m) => TargetError::Unavailable(m),
        }
    }
}

/// Install aws-lc-rs as the process's rustls crypto provider (idempotent). kube-rs and any
/// other rustls user in the process then agree on one backend; ring is never used.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
