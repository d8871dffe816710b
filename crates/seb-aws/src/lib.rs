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
pub mod net_effect;
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

/// Why the AWS target refused something before calling AWS. Raised by the pure checks
/// (profiles, ARNs, session tags, configuration), which have no underlying error: the
/// variants carry the message only, which becomes a [`seb_target::TargetError::Invalid`]'s
/// context. A failed AWS call has one: the SDK's error is the source of its `TargetError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// The operation, target or params do not fit a profile.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The target's configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::config::http::HttpResponse;
    use aws_sdk_sts::error::SdkError;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use seb_target::TargetError;
    use std::error::Error as _;

    /// A refusal by the pure checks has no cause: its message is the context.
    #[test]
    fn an_aws_refusal_keeps_its_message() {
        let e =
            target::target_err(AwsError::Invalid("`s3:DeleteBucket` is not an operation".into()));
        assert!(matches!(e, TargetError::Invalid { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "invalid for this platform: `s3:DeleteBucket` is not an operation"
        );
        assert!(e.source().is_none());
    }

    /// A failed SDK call: the SDK error, and what it wraps, stay reachable below the
    /// `TargetError`.
    #[test]
    fn an_sdk_error_is_the_source_of_the_target_error() {
        let sdk: SdkError<AssumeRoleError, HttpResponse> =
            SdkError::construction_failure(std::io::Error::other("no region configured"));
        let e = svc::failure(sdk).into_read_error("sts:AssumeRole");
        assert!(matches!(e, TargetError::Unavailable { .. }), "{e:?}");
        assert_eq!(e.to_string(), "platform unavailable: sts:AssumeRole");
        let sdk = e.source().expect("the SDK error is kept");
        assert!(sdk.is::<SdkError<AssumeRoleError, HttpResponse>>(), "{sdk:?}");
        let io = sdk.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(ToString::to_string).as_deref(), Some("no region configured"));
    }
}
