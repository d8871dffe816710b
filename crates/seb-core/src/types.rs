//! The protocol's statements (spec sections 3–6 and 8). Every signed structure refuses
//! unknown fields.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::envelope::Envelope;
use crate::json::{self, JsonError};
use crate::keys::{KeyId, PublicKey};

/// Target platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Kubernetes,
    Aws,
    /// The in-process test double of the broker's own test suite. Never a product target.
    Test,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kubernetes => "kubernetes",
            Self::Aws => "aws",
            Self::Test => "test",
        })
    }
}

/// A check a constraint applies to a parameter (spec section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Equal to `value`.
    Eq,
    /// Equal to one member of the array `value`.
    In,
    /// A number with `value.min <= x <= value.max` (either bound optional).
    Range,
    /// A string starting with the string `value`.
    Prefix,
    /// An IP address or CIDR inside the CIDR `value`.
    CidrWithin,
    /// A string of at most `value` characters, or an array of at most `value` items.
    MaxLen,
}

/// A constraint: the parameter at `path` may differ from the contract as long as it passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// RFC 6901 pointer into `params`.
    pub path: String,
    /// The check.
    pub check: CheckKind,
    /// The check's argument.
    pub value: Value,
}

/// Autonomy level L0..L5 (spec section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct RiskLevel(u8);

impl RiskLevel {
    /// L0: advisory, never certified.
    pub const L0: Self = Self(0);
    pub const L1: Self = Self(1);
    pub const L2: Self = Self(2);
    pub const L3: Self = Self(3);
    pub const L4: Self = Self(4);
    /// L5: never autonomous, never certified.
    pub const L5: Self = Self(5);
    /// Build from 0..=5.
    pub const fn new(n: u8) -> Option<Self> {
        if n <= 5 { Some(Self(n)) } else { None }
    }
    /// The level number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for RiskLevel {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        Self::new(n).ok_or_else(|| format!("risk_level `{n}` is outside 0..5"))
    }
}
impl From<RiskLevel> for u8 {
    fn from(r: RiskLevel) -> u8 {
        r.0
    }
}
impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// The execution contract (spec section 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub platform: Platform,
    pub op: String,
    /// Platform resource reference (an object; its shape is the platform's).
    pub target: Value,
    /// The exact payload of the mutation.
    pub params: Value,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    pub risk_level: RiskLevel,
}

impl Contract {
    /// `sha256(JCS(contract))`.
    pub fn digest(&self) -> Result<Digest, JsonError> {
        Digest::of_json(self)
    }
}

/// Certification path (spec section 4). Ordered: a later path is stronger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertPath {
    Policy,
    Quorum,
    Human,
    BreakGlass,
}

impl fmt::Display for CertPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Policy => "policy",
            Self::Quorum => "quorum",
            Self::Human => "human",
            Self::BreakGlass => "break_glass",
        })
    }
}

/// Who issued a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    pub name: String,
    pub kid: KeyId,
}

/// The only caller that may present a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub agent: String,
    pub public_key: PublicKey,
}

/// Per-field drift tolerance ε.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Tolerance {
    /// Numbers may differ by at most this much.
    Abs(f64),
    /// Numbers may differ by at most this fraction of the admitted value.
    Rel(f64),
}

/// The admitted live state (spec section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// `sha256(JCS(projection))`.
    pub digest: Digest,
    /// JSON pointer → value of the live object at admission. A pointer mapped to `null` that
    /// is absent live counts as absent on both sides.
    pub projection: BTreeMap<String, Value>,
    pub observed_at_ms: u64,
    /// Per-pointer tolerance; pointers not listed must be equal.
    #[serde(default)]
    pub tolerance: BTreeMap<String, Tolerance>,
}

/// Validity window in Unix seconds, `[not_before, not_after)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validity {
    pub not_before: u64,
    pub not_after: u64,
}

/// The certificate payload (spec section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePayload {
    pub version: u8,
    pub cid: String,
    pub nonce: String,
    pub issuer: Issuer,
    pub subject: Subject,
    pub contract: Contract,
    pub contract_digest: Digest,
    pub evidence: Evidence,
    pub validity: Validity,
    pub policy_epoch: u64,
    pub revocation_epoch: u64,
    pub cert_path: CertPath,
    #[serde(default)]
    pub attestations: Vec<Envelope>,
    pub issued_at_ms: u64,
}

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    Approve,
    Deny,
}

/// An approval statement (spec section 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub proposal_id: String,
    pub contract_digest: Digest,
    pub evidence_digest: Digest,
    pub decision: ApprovalDecision,
    pub approver: String,
    #[serde(default)]
    pub comment: String,
    pub at_ms: u64,
}

/// An agent's proposal (spec section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    pub proposal_id: String,
    pub agent: String,
    pub platform: Platform,
    pub op: String,
    pub target: Value,
    pub params: Value,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    #[serde(default)]
    pub rationale: String,
    pub at_ms: u64,
}

/// The request part of an execution (spec section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub cid: String,
    pub nonce: String,
    pub op: String,
    pub target: Value,
    pub params: Value,
    pub caller: String,
    pub t_exec_ms: u64,
}

/// The caller's proof of possession.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// Base64 Ed25519 signature by the subject key over
    /// `PAE("application/vnd.seb.request+json;v=1", JCS(request))`.
    pub sig: String,
}

/// What an agent sends to execute (spec section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presentation {
    pub certificate: Envelope,
    pub request: ExecRequest,
    pub proof: Proof,
}

/// A broker decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Admit,
    Reject,
    Readmit,
    FailClosed,
}

impl Decision {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admit => "admit",
            Self::Reject => "reject",
            Self::Readmit => "readmit",
            Self::FailClosed => "fail_closed",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The checks of spec section 7, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedCheck {
    Parse,
    Signature,
    Path,
    Caller,
    Match,
    Time,
    PolicyEpoch,
    Revocation,
    Scope,
    Replay,
    Drift,
    Reserve,
}

impl FailedCheck {
    /// Every check in pipeline order.
    pub const ALL: [FailedCheck; 12] = [
        Self::Parse,
        Self::Signature,
        Self::Path,
        Self::Caller,
        Self::Match,
        Self::Time,
        Self::PolicyEpoch,
        Self::Revocation,
        Self::Scope,
        Self::Replay,
        Self::Drift,
        Self::Reserve,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Signature => "signature",
            Self::Path => "path",
            Self::Caller => "caller",
            Self::Match => "match",
            Self::Time => "time",
            Self::PolicyEpoch => "policy_epoch",
            Self::Revocation => "revocation",
            Self::Scope => "scope",
            Self::Replay => "replay",
            Self::Drift => "drift",
            Self::Reserve => "reserve",
        }
    }
}

impl fmt::Display for FailedCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decision record (spec section 8). `not_before`/`not_after` copy the certificate's
/// validity onto the record so an offline auditor can check that every admit lies inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecord {
    pub id: String,
    pub cid: Option<String>,
    pub nonce: Option<String>,
    pub decision: Decision,
    pub failed_check: Option<FailedCheck>,
    pub reason: String,
    pub certificate_digest: Option<Digest>,
    pub request_digest: Option<Digest>,
    pub contract_digest: Option<Digest>,
    pub evidence_digest: Option<Digest>,
    pub observed_digest: Option<Digest>,
    /// The caller (agent) for authenticated requests, or the client address before that.
    pub identity: Option<String>,
    pub at_ms: u64,
    pub broker_kid: KeyId,
    pub not_before: Option<u64>,
    pub not_after: Option<u64>,
    /// Set on every record produced under a break-glass certificate.
    #[serde(default)]
    pub break_glass: bool,
}

/// Status of an execution (spec section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    Applied,
    Failed,
    Conflict,
    NotAttempted,
    NotApplied,
    Uncertain,
}

impl OutcomeStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Conflict => "conflict",
            Self::NotAttempted => "not_attempted",
            Self::NotApplied => "not_applied",
            Self::Uncertain => "uncertain",
        }
    }
}

impl fmt::Display for OutcomeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome record (spec section 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRecord {
    pub id: String,
    pub cid: String,
    pub nonce: String,
    pub status: OutcomeStatus,
    pub started_ms: u64,
    pub ended_ms: u64,
    pub identity: Option<String>,
    pub target_request_id: Option<String>,
    pub result_digest: Option<Digest>,
    pub post_state_digest: Option<Digest>,
    pub error: Option<String>,
    pub broker_kid: KeyId,
    #[serde(default)]
    pub break_glass: bool,
}

/// Signed epoch statement for brokers that do not share the store (spec section 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochStatement {
    pub policy_epoch: u64,
    pub revocation_epoch: u64,
    #[serde(default)]
    pub revoked_cids: Vec<String>,
    #[serde(default)]
    pub revoked_agents: Vec<String>,
    pub issued_at_ms: u64,
    pub ttl_ms: u64,
}

/// Parse a [`Presentation`] strictly from untrusted bytes.
pub fn parse_presentation(bytes: &[u8], limit: usize) -> Result<Presentation, JsonError> {
    json::parse(bytes, limit)
}
