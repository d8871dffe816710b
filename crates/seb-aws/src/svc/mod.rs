//! The SDK calls, one module per AWS service, each behind its cargo feature. Everything here
//! is I/O; the rules live in `crate::profiles`.

// With every service compiled out, some helpers have no caller.
#![cfg_attr(
    not(any(
        feature = "ec2",
        feature = "s3",
        feature = "dynamodb",
        feature = "ssm",
        feature = "autoscaling"
    )),
    allow(dead_code)
)]

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde_json::Value;

use seb_target::{MutationStatus, TargetError};

#[cfg(feature = "autoscaling")]
pub(crate) mod autoscaling;
#[cfg(feature = "dynamodb")]
pub(crate) mod dynamodb;
#[cfg(feature = "ec2")]
pub(crate) mod ec2;
#[cfg(feature = "s3")]
pub(crate) mod s3;
#[cfg(feature = "ssm")]
pub(crate) mod ssm;

/// What a read found: the live model (`null` when the resource is absent) and the version
/// the precondition will pin.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Live {
    pub object: Value,
    pub version: Option<String>,
}

impl Live {
    pub(crate) fn absent() -> Self {
        Self { object: Value::Null, version: None }
    }
}

/// What a mutation call returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Called {
    pub status: MutationStatus,
    pub request_id: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// Whether a failed request reached the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Refused before it was sent (construction).
    No,
    /// The platform answered.
    Answered,
    /// Timeout or connection failure: it may or may not have been processed.
    Unknown,
}

/// A failed SDK call, reduced to what the broker needs; the SDK error itself is kept as the
/// source of the [`TargetError`] it becomes.
#[derive(Debug)]
pub(crate) struct Failure {
    pub sent: Sent,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub source: seb_target::Cause,
}

pub(crate) fn failure<E>(e: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let sent = match e {
        SdkError::ConstructionFailure(_) => Sent::No,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Sent::Unknown,
        _ => Sent::Answered,
    };
    Failure {
        sent,
        status: e.raw_response().map(|r| r.status().as_u16()),
        code: e.code().map(str::to_owned),
        message: DisplayErrorContext(&e).to_string(),
        source: std::sync::Arc::new(e),
    }
}

impl Failure {
    /// A read failed: refused (4xx) or unavailable.
    pub(crate) fn into_read_error(self, what: &str) -> TargetError {
        match self.status {
            Some(s) if (400..500).contains(&s) => {
                let context = format!("{what}: HTTP {s} {}", self.code.unwrap_or_default());
                TargetError::Refused { context, source: Some(self.source) }
            }
            _ => TargetError::Unavailable { context: what.to_owned(), source: Some(self.source) },
        }
    }

    /// A mutation failed. `conflict` says whether this failure is the precondition not holding.
    /// Answered 4xx → `Failed` (or `Conflict`); not sent → `Failed`; 5xx, timeouts and
    /// connection failures → `Err`: the call's fate is unknown and the broker reconciles.
    pub(crate) fn into_called(self, what: &str, conflict: bool) -> Result<Called, TargetError> {
        let summary = format!(
            "{what}: HTTP {} {}",
            self.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            self.code.clone().unwrap_or_default()
        );
        match (self.sent, self.status) {
            (Sent::No, _) => Ok(Called {
                status: MutationStatus::Failed,
                request_id: None,
                result: None,
                error: Some(self.message),
            }),
            (Sent::Answered, Some(s)) if (400..500).contains(&s) => Ok(Called {
                status: if conflict { MutationStatus::Conflict } else { MutationStatus::Failed },
                request_id: None,
                result: None,
                error: Some(summary),
            }),
            _ => Err(TargetError::Unavailable {
                context: format!("{summary}; outcome unknown"),
                source: Some(self.source),
            }),
        }
    }
}
