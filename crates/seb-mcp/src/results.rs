//! The structured results of the tools, as Rust types: each tool's `outputSchema` is derived
//! from them ([`output_schema`]) and every successful result is built from them, so what a
//! client validates is what the server can produce. Objects admission or the broker own (a
//! contract, evidence, a policy decision) are passed through as JSON objects; everything a
//! model branches on (status, next step, who must approve, outcome, record ids) is typed.
//!
//! Failures (`isError: true`) carry [`ToolError`]-shaped content; MCP clients validate only
//! successful results against `outputSchema`.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalogue::{PlatformInfo, PlatformName};

/// A JSON object owned by admission or the broker, passed through as it is.
pub type Object = Map<String, Value>;

/// The `outputSchema` of a tool whose structured results are `T`: the schema of its
/// serialised form, with a root `"type": "object"` (MCP clients of revision 2025-11-25 drop
/// any other output schema) and without the integer `format`s (`uint64`, …) that JSON Schema
/// validators do not know (`minimum: 0` stays).
pub fn output_schema<T: JsonSchema + 'static>() -> Arc<rmcp::model::JsonObject> {
    fn strip_int_formats(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.get("format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.starts_with("uint") || f.starts_with("int"))
                {
                    o.remove("format");
                }
                o.values_mut().for_each(strip_int_formats);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_int_formats),
            _ => {}
        }
    }
    let mut o =
        Value::Object(rmcp::handler::server::common::schema_for_output::<T>().as_ref().clone());
    strip_int_formats(&mut o);
    let Value::Object(mut o) = o else { return Arc::default() };
    o.insert("type".into(), Value::String("object".into()));
    Arc::new(o)
}

/// A tool's structured result: its own type, or a failure ([`ToolError`]). MCP clients may
/// validate either against the tool's `outputSchema` (the TypeScript SDK validates failures
/// too), so the schema covers both.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Out<T> {
    Ok(T),
    Failed(ToolError),
}

/// `execute`'s structured results.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExecuteOut {
    /// Executed (`isError` unless the outcome is `applied`).
    Executed(ExecutionResult),
    /// The broker refused (`isError`).
    Refused(ExecutionRefusal),
    Failed(ToolError),
}

/// `list_operations`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OperationsResult {
    /// Every platform and operation SEB can change.
    pub platforms: Vec<PlatformInfo>,
    /// Admission's levels → certification paths (`GET /v1/admission/paths`), or
    /// `{"unavailable": why}` when admission could not be asked.
    pub levels: Object,
}

/// `observe`: the live projection as admission would record it as evidence.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ObserveResult {
    pub platform: PlatformName,
    pub op: String,
    /// The target as the platform profile normalised it.
    pub target: Object,
    /// The params as the platform profile normalised them.
    pub params: Value,
    /// The consequence level (0..=5) the proposal would get before policy escalation.
    pub risk_level: u8,
    /// The evidence pointers (RFC 6901 into the live object).
    pub pointers: Vec<String>,
    /// The live object at each pointer.
    pub projection: BTreeMap<String, Value>,
    /// The digest of the projection (what a certificate's evidence pins).
    pub digest: String,
    pub observed_at_ms: u64,
}

/// A proposal's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    /// Admission is observing and scoring it (transient).
    Evaluating,
    /// Waiting for approvals.
    Pending,
    /// Approvals are complete and a replica is signing the certificate (transient).
    Issuing,
    /// A certificate was issued: call `execute`.
    Certified,
    /// Refused (`reason`).
    Denied,
    /// L0: advisory only, no certificate.
    Advisory,
    /// Its approval deadline passed before it was certified.
    Expired,
}

impl ProposalState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evaluating => "evaluating",
            Self::Pending => "pending",
            Self::Issuing => "issuing",
            Self::Certified => "certified",
            Self::Denied => "denied",
            Self::Advisory => "advisory",
            Self::Expired => "expired",
        }
    }
}

/// The tool to call next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// The proposal is certified: `execute` it.
    Execute,
    /// Still pending: wait with `proposal_status`.
    ProposalStatus,
    /// Nothing more for this proposal: change it or ask a human.
    Stop,
}

/// Who must still approve a pending proposal, and where.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WaitingFor {
    /// Human approvals still missing.
    pub humans: u64,
    /// Validator approvals still missing.
    pub validators: u64,
    /// Where approvers give them, in words.
    #[serde(rename = "where")]
    pub where_: String,
    /// The approver console page of this proposal (when the deployment has a console).
    pub console_url: Option<String>,
    /// The command line an approver runs instead.
    pub approve_with: String,
}

/// `propose`, `proposal_status`, and `apply` when it did not execute.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProposalResult {
    pub proposal_id: String,
    pub status: ProposalState,
    /// The contract admission compiled (op, target, params, constraints, …).
    pub contract: Option<Object>,
    pub contract_digest: Option<String>,
    /// The risk level, `L0`..`L5`.
    #[schemars(regex(pattern = r"^L[0-5]$"))]
    pub level: Option<String>,
    /// The scoring rules that set the level.
    pub score_reasons: Option<Vec<String>>,
    /// What the policy decided and under which policy epoch.
    pub policy: Option<Object>,
    /// The certification path and the approvals it needs.
    pub path: Option<Object>,
    /// Approvals so far.
    pub approvals: Vec<Object>,
    /// The live state the certificate is pinned to.
    pub evidence: Option<Object>,
    /// A pending proposal is denied after this (Unix ms).
    pub deadline_ms: Option<u64>,
    /// Why it was denied or is advisory.
    pub reason: Option<String>,
    /// The certificate id, once certified.
    pub cid: Option<String>,
    pub cert_path: Option<String>,
    /// The certificate's validity window.
    pub validity: Option<Object>,
    /// The ledger record of admission's final decision.
    pub record_id: Option<String>,
    /// Set while pending.
    pub waiting_for: Option<WaitingFor>,
    pub next: Next,
}

/// `execute`, and `apply` when it executed: the broker's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionResult {
    pub proposal_id: String,
    pub cid: String,
    /// The broker's decision (`admit`).
    pub decision: String,
    /// `applied`, or how the mutation ended otherwise.
    pub outcome: String,
    /// Ledger record of the admission decision.
    pub admit_record_id: Option<String>,
    pub admit_index: Option<u64>,
    /// Ledger record of the outcome.
    pub outcome_record_id: Option<String>,
    /// `null` while the outcome record waits for the store (`outcome_state`).
    pub outcome_index: Option<u64>,
    /// `recorded`, `spooled` or `unsaved`.
    pub outcome_state: Option<String>,
    /// The platform's error, when the mutation failed.
    pub error: Option<Value>,
    /// The operation has no precondition.
    pub unpinned: Option<bool>,
    /// Time per broker step, microseconds.
    pub timings_us: Option<BTreeMap<String, u64>>,
}

/// A broker refusal of an execution (`isError: true`): what failed and what to do next.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionRefusal {
    pub proposal_id: String,
    pub cid: String,
    /// The broker's HTTP status.
    pub status: u16,
    /// `replay`, `drift`, `revocation`, `match`, `parse`, `time`, …
    pub failed_check: String,
    /// `reject`, `readmit` or `fail_closed`.
    pub decision: String,
    pub reason: String,
    /// The ledger record of the refusal.
    pub record_id: Option<String>,
    /// With `readmit`: the live object now, as admission would record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_observation: Option<Value>,
    /// What to do next.
    pub next: String,
}

/// `apply`: executed, or the proposal when it was not certified in time (or was denied),
/// or a refusal or failure.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ApplyResult {
    Executed(ExecutionResult),
    NotExecuted(Box<ProposalResult>),
    Refused(ExecutionRefusal),
    Failed(ToolError),
}

/// A ledger record of one of this agent's executions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LedgerRecord {
    /// Position in the ledger.
    pub index: u64,
    /// The record's payload type.
    #[serde(rename = "type")]
    pub type_: String,
    pub id: Option<String>,
    pub cid: String,
    /// Admit records: the broker's decision.
    pub decision: Option<Value>,
    pub failed_check: Option<Value>,
    /// Outcome records: how the execution ended.
    pub status: Option<Value>,
    pub reason: Option<Value>,
    /// RFC 6962 inclusion proof against `ledger_size` (with `proofs: true`).
    pub inclusion_proof: Option<Value>,
}

/// `history`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HistoryResult {
    pub agent: String,
    /// This agent's proposals, newest first (admission's summaries).
    pub proposals: Vec<Object>,
    /// The broker's ledger records naming their certificates.
    pub executions: Vec<LedgerRecord>,
    pub ledger_size: u64,
}

/// The structured content of a failed call (`isError: true`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolError {
    /// `invalid_input`, `unreachable`, `clock`, `not_certified`, `unexpected_response`,
    /// `ledger`, or admission's error code (`parse`, `forbidden`, `not_found`, …).
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The HTTP status admission or the broker answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `not_certified`: the proposal's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_status: Option<String>,
    /// `false`: nothing was signed or sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<bool>,
    /// What to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_schema_is_an_object_schema() {
        for s in [
            output_schema::<OperationsResult>(),
            output_schema::<Out<ObserveResult>>(),
            output_schema::<Out<ProposalResult>>(),
            output_schema::<ExecuteOut>(),
            output_schema::<ApplyResult>(),
            output_schema::<Out<HistoryResult>>(),
        ] {
            assert_eq!(s.get("type"), Some(&Value::String("object".into())), "{s:?}");
            let text = serde_json::to_string(&*s).unwrap_or_default();
            assert!(!text.contains("uint"), "{text}");
        }
        let apply = serde_json::to_string(&*output_schema::<ApplyResult>()).unwrap_or_default();
        assert!(
            apply.contains("anyOf") && apply.contains("outcome") && apply.contains("waiting_for")
        );
        let p = serde_json::to_string(&*output_schema::<Out<ProposalResult>>()).unwrap_or_default();
        assert!(p.contains("\"pending\"") && p.contains("\"certified\"") && p.contains("^L[0-5]$"));
    }
}
