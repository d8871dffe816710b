//! # seb-aws
//!
//! The AWS target of SEB (spec section 9): certified changes are enforced through the official
//! Rust SDK with a scoped STS session per execution.
//!
//! - [`profiles`]: one [`profiles::Profile`] per IAM action — how the projection is observed,
//!   the precondition that pins it (or that there is none), the exact request shape, which
//!   constraints are enforceable, the consequence rules, and how reconciliation recognises the
//!   post-state. Pure.
//! - [`session`]: the inline session policy (one statement, one action, one resource), the
//!   session tags `seb:cid`, `seb:nonce`, `seb:risk`, `SourceIdentity` and session name. Pure.
//! - [`deploy`]: the bypass-prevention artefacts (`seb deploy aws`). Pure.
//! - [`AwsTarget`]: the broker's [`seb_target::Target`]: observe with the broker's read
//!   identity, mint with `sts:AssumeRole`, mutate with the session's credentials only, retire,
//!   reconcile.
//! - [`AwsPlatform`]: the admission side's [`seb_target::PlatformProfile`].
//!
//! Architecture invariants:
//! - The mutation is made with the minted session's credentials only: a separate SDK
//!   configuration holding nothing but those static credentials, retries off.
//! - The session policy allows exactly the certified action on the certified ARN; ARNs with
//!   IAM wildcards are refused when the target is parsed.
//! - Each service's SDK crate sits behind a cargo feature; the pure parts are always built.

pub mod arn;
pub mod deploy;
pub mod profiles;
pub mod session;
mod svc;
mod target;

pub use arn::{Resource, ResourceKind, TargetRef};
pub use deploy::{Artefacts, DeployConfig, artefacts};
pub use target::{
    AccountConfig, AwsPlatform, AwsTarget, AwsTargetConfig, BrokerCredentials, MutateTimings,
    project,
};

/// Why the AWS target refused something before calling AWS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// The operation, target or params do not fit a profile.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The target's configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}
