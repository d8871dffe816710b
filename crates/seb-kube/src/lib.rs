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
pub mod net_effect;
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
///
/// The three message-only variants are for refusals that have no underlying error (a
/// malformed target, an operation the kind does not support). When an underlying error
/// exists (a `kube::Error` from the API server, a kubeconfig error, a decoding error), it is
/// kept as the [`source`](std::error::Error::source) in [`KubeError::Caused`], whose `kind`
/// says which of the three it counts as; `Display` stays one line.
#[derive(Debug, thiserror::Error)]
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
    /// One of the three above, caused by `source`.
    #[error("{}: {context}", .kind.label())]
    Caused {
        /// Which of the three variants above this counts as.
        kind: KubeErrorKind,
        /// What was being done.
        context: String,
        /// The error that caused it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// How a [`KubeError`] counts: the variant it is, or the one a [`KubeError::Caused`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeErrorKind {
    /// [`KubeError::Invalid`].
    Invalid,
    /// [`KubeError::Refused`].
    Refused,
    /// [`KubeError::Unavailable`].
    Unavailable,
}

impl KubeErrorKind {
    fn label(self) -> &'static str {
        match self {
            KubeErrorKind::Invalid => "invalid for kubernetes",
            KubeErrorKind::Refused => "api server refused",
            KubeErrorKind::Unavailable => "api server unavailable",
        }
    }
}

impl KubeError {
    /// [`KubeError::Invalid`] caused by `source`.
    pub fn invalid_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::caused(KubeErrorKind::Invalid, context, source)
    }
    /// [`KubeError::Refused`] caused by `source`.
    pub fn refused_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::caused(KubeErrorKind::Refused, context, source)
    }
    /// [`KubeError::Unavailable`] caused by `source`.
    pub fn unavailable_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::caused(KubeErrorKind::Unavailable, context, source)
    }
    fn caused(
        kind: KubeErrorKind,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        KubeError::Caused { kind, context: context.into(), source: source.into() }
    }
    /// Which variant this error counts as.
    pub fn kind(&self) -> KubeErrorKind {
        match self {
            KubeError::Invalid(_) => KubeErrorKind::Invalid,
            KubeError::Refused(_) => KubeErrorKind::Refused,
            KubeError::Unavailable(_) => KubeErrorKind::Unavailable,
            KubeError::Caused { kind, .. } => *kind,
        }
    }
}

/// The [`TargetError`] of the same kind: the context moves up (so its one-line `Display`
/// still says what failed) and the cause (the `kube::Error`, the kubeconfig error…) stays its
/// source, typed. The `KubeError` level itself is not kept: it would repeat the context.
impl From<KubeError> for TargetError {
    fn from(e: KubeError) -> Self {
        let kind = e.kind();
        let (context, source) = match e {
            KubeError::Invalid(m) | KubeError::Refused(m) | KubeError::Unavailable(m) => (m, None),
            KubeError::Caused { context, source, .. } => {
                (context, Some(seb_target::Cause::from(source)))
            }
        };
        match kind {
            KubeErrorKind::Invalid => TargetError::Invalid { context, source },
            KubeErrorKind::Refused => TargetError::Refused { context, source },
            KubeErrorKind::Unavailable => TargetError::Unavailable { context, source },
        }
    }
}

/// Install aws-lc-rs as the process's rustls crypto provider (idempotent). kube-rs and any
/// other rustls user in the process then agree on one backend; ring is never used.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn forbidden() -> kube::Error {
        let status = kube::core::Status::failure(
            "roles.rbac.authorization.k8s.io is forbidden",
            "Forbidden",
        )
        .with_code(403);
        kube::Error::Api(status.boxed())
    }

    /// An API server refusal: the `kube::Error` is the source of the `KubeError`, and stays
    /// the source of the `TargetError` it becomes, with its status code.
    #[test]
    fn a_kube_error_stays_the_root_of_the_chain() {
        let e = target::api_err("create Role", forbidden());
        assert_eq!(e.kind(), KubeErrorKind::Refused);
        let root = e.source().and_then(|s| s.downcast_ref::<kube::Error>());
        assert!(matches!(root, Some(kube::Error::Api(s)) if s.code == 403), "{root:?}");
        let t = TargetError::from(e);
        assert!(matches!(t, TargetError::Refused { .. }), "{t:?}");
        assert_eq!(
            t.to_string(),
            "platform refused: create Role: 403 Forbidden roles.rbac.authorization.k8s.io is forbidden"
        );
        let root = t.source().and_then(|s| s.downcast_ref::<kube::Error>());
        assert!(matches!(root, Some(kube::Error::Api(s)) if s.code == 403), "{root:?}");
        let mut chain = t.to_string();
        let mut next = t.source();
        while let Some(s) = next {
            chain = format!("{chain}: {s}");
            next = s.source();
        }
        // Every level once: the target's context, then kube's own error.
        assert_eq!(chain.matches("create Role").count(), 1, "{chain}");
        assert!(chain.contains("403"), "{chain}");
    }

    /// A 5xx counts as unavailable; a message-only error converts with its kind, its
    /// message and no source.
    #[test]
    fn kinds_survive_the_conversion() {
        let status = kube::core::Status::failure("etcdserver: request timed out", "InternalError")
            .with_code(500);
        let t = TargetError::from(target::api_err("get", kube::Error::Api(status.boxed())));
        assert!(matches!(t, TargetError::Unavailable { .. }), "{t:?}");
        assert!(t.source().is_some_and(|s| s.is::<kube::Error>()));
        let t = TargetError::from(KubeError::Invalid("target `cluster` is empty".into()));
        assert!(matches!(t, TargetError::Invalid { .. }), "{t:?}");
        assert_eq!(t.to_string(), "invalid for this platform: target `cluster` is empty");
        assert!(t.source().is_none());
    }
}
