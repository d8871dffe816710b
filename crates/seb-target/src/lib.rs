//! # seb-target
//!
//! The seam between the broker and a platform (spec section 7 steps 9, 11, 14–16 and
//! section 10). A [`Target`] observes the live projection and the version that will pin the
//! mutation, decides whether a contract's constraints can be enforced, mints a credential
//! scoped to exactly one operation, performs the mutation with that credential and a
//! precondition, retires the credential, and reconciles after a crash.
//!
//! Architecture invariants every target keeps:
//! - [`Target::mutate`] uses only the [`Identity`] minted for this execution, never the
//!   broker's own credentials.
//! - The mutation carries the precondition observed at the drift check when the operation's
//!   profile has one ([`OpProfile::precondition`]); a precondition failure is
//!   [`MutationStatus::Conflict`] with nothing changed.
//! - [`Target::reconcile`] never mutates.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Contract, Platform, RiskLevel};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod net_effect;
pub mod sensitive;
#[cfg(feature = "test-double")]
pub mod test_double;

pub use net_effect::{Change, FieldChange, NetScope};
pub use sensitive::Sensitive;

/// A boxed future returned by [`Target`] methods.
pub type TargetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, TargetError>> + Send + 'a>>;

/// The underlying error kept as a [`std::error::Error::source`] (shared, so the error stays
/// `Clone`).
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a target operation failed.
///
/// `Display` is one line (the context); the error that caused it (a `kube::Error`, an AWS
/// answer, an I/O error…), when there is one, is the [`source`](std::error::Error::source),
/// so logs and problem details can print the whole chain.
///
/// `std::error::Error` is written out rather than derived: `source()` must return the
/// underlying error itself (so callers can downcast it), not the `Arc` around it.
#[derive(Debug, Clone)]
pub enum TargetError {
    /// The platform could not be reached or answered with a server error.
    Unavailable {
        /// What was being done.
        context: String,
        /// The error that caused it.
        source: Option<Cause>,
    },
    /// The platform refused (authentication, authorisation, validation).
    Refused {
        /// What was refused.
        context: String,
        /// The error that caused it.
        source: Option<Cause>,
    },
    /// The contract or request does not fit this platform's profile.
    Invalid {
        /// Why it does not fit.
        context: String,
        /// The error that caused it.
        source: Option<Cause>,
    },
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Unavailable { context, .. } => {
                write!(f, "platform unavailable: {context}")
            }
            TargetError::Refused { context, .. } => write!(f, "platform refused: {context}"),
            TargetError::Invalid { context, .. } => {
                write!(f, "invalid for this platform: {context}")
            }
        }
    }
}

impl std::error::Error for TargetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TargetError::Unavailable { source, .. }
            | TargetError::Refused { source, .. }
            | TargetError::Invalid { source, .. } => {
                source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl TargetError {
    /// [`TargetError::Unavailable`] without an underlying error.
    pub fn unavailable(context: impl Into<String>) -> Self {
        TargetError::Unavailable { context: context.into(), source: None }
    }
    /// [`TargetError::Unavailable`] caused by `source`.
    pub fn unavailable_from(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        TargetError::Unavailable {
            context: context.into(),
            source: Some(Cause::from(source.into())),
        }
    }
    /// [`TargetError::Refused`] without an underlying error.
    pub fn refused(context: impl Into<String>) -> Self {
        TargetError::Refused { context: context.into(), source: None }
    }
    /// [`TargetError::Refused`] caused by `source`.
    pub fn refused_from(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        TargetError::Refused { context: context.into(), source: Some(Cause::from(source.into())) }
    }
    /// [`TargetError::Invalid`] without an underlying error.
    pub fn invalid(context: impl Into<String>) -> Self {
        TargetError::Invalid { context: context.into(), source: None }
    }
    /// [`TargetError::Invalid`] caused by `source`.
    pub fn invalid_from(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        TargetError::Invalid { context: context.into(), source: Some(Cause::from(source.into())) }
    }
}

/// Everything a target needs to act on one admitted execution. Serialised as the intent
/// stored with the reservation, so recovery after a crash sees exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    pub cid: String,
    pub nonce: String,
    pub agent: String,
    pub risk_level: RiskLevel,
    pub platform: Platform,
    pub op: String,
    pub target: Value,
    /// The params of the request (equal to the contract's, or within its constraints).
    pub params: Value,
    /// The contract as certified.
    pub contract: Contract,
    /// The admitted evidence projection (pointer → value): the pre-state.
    pub evidence: BTreeMap<String, Value>,
    /// The version observed at the drift check; the mutation's precondition.
    pub observed_version: Option<String>,
    pub break_glass: bool,
}

/// A credential minted for one execution. The secret is zeroised on drop, never printed.
pub struct Identity {
    /// A non-secret name for records and logs (service account, session ARN…).
    pub name: String,
    /// The bearer secret (token, session credentials as JSON).
    pub secret: zeroize::Zeroizing<String>,
    /// When the platform will stop honouring it (ms).
    pub expires_at_ms: u64,
    /// Target-specific data needed to retire it.
    pub handle: Value,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// How a mutation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationStatus {
    /// The platform accepted the mutation.
    Applied,
    /// The platform refused it.
    Failed,
    /// The precondition no longer held; nothing changed.
    Conflict,
}

/// The result of [`Target::mutate`].
#[derive(Debug, Clone, PartialEq)]
pub struct MutationResult {
    pub status: MutationStatus,
    /// The platform's request id, when it gives one.
    pub target_request_id: Option<String>,
    /// The platform's response body (digested into the outcome record).
    pub result: Option<Value>,
    /// The projection after the mutation (digested into the outcome record).
    pub post_state: Option<BTreeMap<String, Value>>,
    pub error: Option<String>,
}

/// What reconciliation after a crash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconciled {
    /// The target shows the expected post-state.
    Applied,
    /// The target shows the pre-state unchanged.
    NotApplied,
    /// Neither can be shown.
    Uncertain,
}

/// What to observe: the operation's target and the pointers of the projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObserveRequest {
    pub op: String,
    pub target: Value,
    pub params: Value,
    /// RFC 6901 pointers into the live object; `""` is the whole object with status and
    /// volatile metadata removed (the default projection).
    pub pointers: Vec<String>,
}

impl Execution {
    /// What to observe for this execution's drift check.
    pub fn observe_request(&self) -> ObserveRequest {
        ObserveRequest {
            op: self.op.clone(),
            target: self.target.clone(),
            params: self.params.clone(),
            pointers: self.evidence.keys().cloned().collect(),
        }
    }
}

/// The five consequence factors of spec section 5, each in 0..=1, with the rule that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsequenceFactors {
    pub blast_radius: f64,
    pub privilege_expansion: f64,
    pub data_sensitivity: f64,
    pub irreversibility: f64,
    pub uncertainty: f64,
    /// Human-readable reasons, one per rule that fired (shown to approvers, recorded).
    pub reasons: Vec<String>,
}

/// The admission side of a platform: pure rules for compiling proposals into contracts and
/// scoring their consequence. No I/O.
pub trait PlatformProfile: Send + Sync {
    /// Which platform.
    fn platform(&self) -> Platform;
    /// Validate `op`/`target`/`params` against the platform and return them normalised.
    fn compile(
        &self,
        op: &str,
        target: &Value,
        params: &Value,
    ) -> Result<(Value, Value), TargetError>;
    /// The evidence pointers this operation depends on by default.
    fn default_pointers(&self, op: &str, target: &Value, params: &Value) -> Vec<String>;
    /// Documented per-platform consequence rules.
    fn consequence(&self, op: &str, target: &Value, params: &Value) -> ConsequenceFactors;
    /// Where `op` on `target` carries values this platform marks sensitive: admission shows
    /// them in views and logs only as digest and length. Default: none.
    fn sensitive(&self, op: &str, target: &Value) -> Sensitive {
        let _ = (op, target);
        Sensitive::NONE
    }
    /// Whether `op` can apply to what observation found: `Err(reason)` when it needs an
    /// object that `observed` shows absent (replace, patch, scale, delete…) or creates one
    /// that exists. Admission refuses such a proposal. Default: no opinion.
    fn applicable(&self, op: &str, observed: &Observation) -> Result<(), String> {
        let _ = (op, observed);
        Ok(())
    }
    /// What `op` changes (spec 5.2): each projected field numeric or additive, before (from
    /// `evidence`, the admitted projection) → after, and whether it deletes or creates.
    /// Default: no projected field (the change still counts in the window).
    fn change(
        &self,
        op: &str,
        target: &Value,
        params: &Value,
        evidence: &BTreeMap<String, Value>,
    ) -> Change {
        let _ = (op, params, evidence);
        Change::of(net_effect::object_key(target))
    }
    /// The consequence of a net change (several changes folded by [`net_effect::net`]) on
    /// `target` (the newest change's target), scored by the same rules as one operation.
    /// Admission takes the field-wise maximum with the newest proposal's own factors.
    /// Default: `None` (nothing beyond the proposal's own factors).
    fn net_consequence(&self, target: &Value, net: &Change) -> Option<ConsequenceFactors> {
        let _ = (target, net);
        None
    }
    /// The accounting scope key of `target` at the configured width. Default: the object
    /// whatever the width.
    fn scope_key(&self, target: &Value, scope: NetScope) -> String {
        let _ = scope;
        format!("{}|object|{}", self.platform(), net_effect::object_key(target))
    }
}

impl ConsequenceFactors {
    /// The field-wise maximum (reasons of both).
    #[must_use]
    pub fn max(mut self, other: &ConsequenceFactors) -> Self {
        let up = |a: &mut f64, b: f64| {
            // A non-finite factor is fail-safe 1 in scoring; keep it visible here.
            if !b.is_finite() || b > *a {
                *a = b;
            }
        };
        up(&mut self.blast_radius, other.blast_radius);
        up(&mut self.privilege_expansion, other.privilege_expansion);
        up(&mut self.data_sensitivity, other.data_sensitivity);
        up(&mut self.irreversibility, other.irreversibility);
        up(&mut self.uncertainty, other.uncertainty);
        for r in &other.reasons {
            if !self.reasons.contains(r) {
                self.reasons.push(r.clone());
            }
        }
        self
    }
}

/// Per-operation facts a platform declares (spec section 9: "the op's profile says so").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpProfile {
    /// The precondition that pins the observed state, or `None` where the platform has none.
    pub precondition: Option<&'static str>,
    /// Whether the operation removes state that cannot be restored.
    pub irreversible: bool,
}

/// A platform.
pub trait Target: ScopeCheck + Send + Sync + 'static {
    /// Which platform this drives.
    fn platform(&self) -> Platform;

    /// The operation's profile, or an error if the op is unknown.
    fn profile(&self, op: &str) -> Result<OpProfile, TargetError>;

    /// Read the live projection at `req.pointers` and the version that will pin the
    /// mutation, with a read-only identity (admission's evidence, and check 11). An object
    /// that does not exist is an observation (absent values, version `None`), not an error.
    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation>;

    /// The name the platform will know this execution's identity by, known before it is
    /// minted, for platforms whose admission hook must recognise the identity from the
    /// moment it exists (Kubernetes). The broker registers the execution as live under
    /// this name before [`Target::mint`] and removes it after [`Target::retire`].
    fn identity_name(&self, exec: &Execution) -> Option<String> {
        let _ = exec;
        None
    }

    /// Mint a credential scoped to exactly this operation on this target (step 14).
    fn mint<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Identity>;

    /// Perform the mutation with `identity` and the precondition from `exec.observed_version`
    /// (step 15). Platform refusals are a [`MutationResult`] with `Failed`, not an error;
    /// an error means the call's fate is unknown.
    fn mutate<'a>(
        &'a self,
        exec: &'a Execution,
        identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult>;

    /// Revoke or delete the credential (step 16).
    fn retire<'a>(&'a self, exec: &'a Execution, identity: Identity) -> TargetFuture<'a, ()>;

    /// After a crash: revoke or delete whatever [`Target::mint`] may have created for this
    /// execution (the [`Identity`] was lost with the process). Idempotent: nothing left is
    /// success. Platforms whose credentials cannot be revoked individually (AWS STS
    /// sessions, which lapse with their duration) keep this default, which does nothing.
    fn retire_orphans<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, ()> {
        let _ = exec;
        Box::pin(async { Ok(()) })
    }

    /// After a crash: observe (never mutate) and compare with the expected post-state.
    fn reconcile<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Reconciled>;
}

#[cfg(test)]
mod error_tests {
    use super::*;
    use std::error::Error as _;

    /// An underlying error is the `source()`, with its type; a clone keeps it; `Display` is
    /// the context alone.
    #[test]
    fn an_underlying_error_is_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = TargetError::unavailable_from("sts:AssumeRole", io);
        assert_eq!(e.to_string(), "platform unavailable: sts:AssumeRole");
        for e in [&e, &e.clone()] {
            let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
            assert_eq!(io.map(std::io::Error::kind), Some(std::io::ErrorKind::ConnectionRefused));
        }
        assert!(TargetError::refused("forbidden").source().is_none());
    }
}
