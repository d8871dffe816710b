//! What admission writes to the ledger (the broker's Merkle log, shared in embedded mode).
//!
//! - **Issuance and denial**: an [`AdmissionRecord`] with `stage = "admission"` and
//!   `decision = "issue" | "deny"`, payloadType `admission` (never the broker's `decision`:
//!   records of different roles are told apart by their payloadType), signed by the
//!   **admission issuer key** (never the broker's). It carries no `nonce` and no `broker_kid`, so it
//!   can never be mistaken for, or collide with, the broker's `admit` of the same
//!   certificate; `certificate_digest` is the digest the broker's decision records carry for
//!   that certificate, which links the two.
//! - **Approvals received**: `decision = "approval"`, one per stored approval, in the same
//!   store transaction as the approval itself; an issue record lists the digests of the
//!   approvals its certificate carries (`attestation_digests`), and `seb ledger verify`
//!   checks that each was recorded before it.
//! - **Enrolment** (`enrol`) and **removal** (`remove_approver`) of approvers use the same
//!   record with `approvers: [name]` (spec 5.1).
//! - **Epoch changes** (policy load, revocation): a signed [`EpochStatement`], payloadType
//!   `epoch`, appended in the same store transaction as the change.
//!
//! Every record produced for a break-glass certificate has `break_glass: true`.

use seb_core::digest::Digest;
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::json::JsonError;
use seb_core::keys::{KeyId, SigningKey};
use seb_core::types::{CertPath, EpochStatement, RiskLevel};
use serde::{Deserialize, Serialize};

use crate::scoring::FactorsMilli;

/// The `stage` of every admission record.
pub const STAGE: &str = "admission";

/// What an admission record records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdmissionDecision {
    /// A certificate was issued (`cid`, `certificate_digest`, validity; `attestation_digests`
    /// names each approval it carries, each recorded earlier by an `approval` record).
    Issue,
    /// A proposal was denied, expired or is advisory (`reason`).
    Deny,
    /// An approval (or a denial by an approver) was received and stored: `approvers` is
    /// `[name]`, `attestation_digest` the digest of the approval envelope, `reason` its
    /// decision and comment.
    Approval,
}
// Approver enrolments and removals (spec 5.1) are `admission` records of their own shape,
// `service::ApproverRecord` (`decision: "enrol" | "remove_approver"`).

/// An issuance or denial record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionRecord {
    /// Record id (UUID v7).
    pub id: String,
    /// Always [`STAGE`].
    pub stage: String,
    pub decision: AdmissionDecision,
    pub proposal_id: String,
    pub agent: String,
    /// The certificate's cid (issuance only).
    pub cid: Option<String>,
    /// Digest of the issued certificate envelope (issuance only).
    pub certificate_digest: Option<Digest>,
    pub contract_digest: Option<Digest>,
    pub evidence_digest: Option<Digest>,
    pub risk_level: Option<RiskLevel>,
    pub score_milli: Option<u32>,
    pub factors: Option<FactorsMilli>,
    pub cert_path: Option<CertPath>,
    /// Approvers (or break-glass operators) whose signatures the certificate carries.
    pub approvers: Vec<String>,
    pub policy_epoch: u64,
    pub revocation_epoch: u64,
    /// SHA-256 of the Cedar policy text in force.
    pub policy_digest: Digest,
    pub not_before: Option<u64>,
    pub not_after: Option<u64>,
    pub reason: String,
    pub issuer_kid: KeyId,
    pub at_ms: u64,
    pub break_glass: bool,
    /// `approval` records: the digest of the approval envelope received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_digest: Option<Digest>,
    /// `issue` records: the digests of the approval envelopes the certificate carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestation_digests: Vec<Digest>,
    /// The passkey-signed approvals the proposal gathered (spec 5.1), so the offline verifier
    /// (`seb ledger verify`) re-verifies each against the credential of its `enrol` record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passkey_approvals: Vec<Envelope>,
}

/// A record signed and encoded for the ledger.
#[derive(Debug, Clone)]
pub struct SignedEntry {
    pub envelope: Envelope,
    /// Canonical bytes of the envelope: the ledger entry.
    pub entry: Vec<u8>,
}

fn entry(envelope: Envelope) -> Result<SignedEntry, JsonError> {
    let entry = envelope.canonical_bytes()?;
    Ok(SignedEntry { envelope, entry })
}

impl AdmissionRecord {
    /// Sign with the admission key.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedEntry, JsonError> {
        entry(Envelope::sign(PayloadType::Admission, self, key)?)
    }
}

/// Sign an epoch statement with the admission key.
pub fn sign_statement(s: &EpochStatement, key: &SigningKey) -> Result<SignedEntry, JsonError> {
    entry(Envelope::sign(PayloadType::Epoch, s, key)?)
}

/// A fresh record id (UUID v7: time-ordered).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
