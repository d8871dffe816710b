//! Admission's durable state (SEB-SPEC section 5.3): proposals, approvals, break-glass
//! signatures, the admin-request replay cache and the policy in force, kept in the same
//! store as the broker's ledger so that a restart or the loss of a replica loses nothing and
//! any replica serves any proposal.
//!
//! The store does not interpret a proposal: `body` is admission's own JSON. What the store
//! guarantees, on every backend (pinned by [`crate::conformance`]):
//!
//! - **Seen once.** [`AdmissionState::insert_proposal`] refuses a proposal id that was ever
//!   stored (proposals are never deleted): a signed proposal replayed after a restart, or to
//!   another replica, is a conflict, never a second certificate.
//! - **Compare-and-set transitions.** Every proposal row has a `version`, bumped by every
//!   change (an approval and a break-glass signature included).
//!   [`AdmissionState::update_proposal`] applies a change only if the version is the one the
//!   caller read, and appends the caller's ledger record in the same transaction. So two
//!   replicas racing to issue, to expire or to deny one proposal: exactly one wins, and
//!   exactly one record is written.
//! - **One approval per approver.** [`AdmissionState::add_approval`] inserts under the
//!   primary key (proposal, approver), only while the proposal has the expected status,
//!   appends the `approval` record in the same transaction and bumps the version (so an
//!   issuance claim that read the approvals before it is stale). Likewise break-glass
//!   signatures, one per (proposal, draft cid, operator).
//! - **Admin requests once.** [`AdmissionState::admin_request_once`] inserts the request id
//!   under a primary key shared by every replica.
//! - **Policy epoch follows the digest.** [`AdmissionState::load_policy`] bumps
//!   `policy_epoch` (and appends the epoch record) only when the digest differs from the
//!   policy in force.

use crate::{Epochs, StoreFuture};

/// A proposal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProposal {
    /// The id the agent signed.
    pub proposal_id: String,
    /// The proposing agent.
    pub agent: String,
    /// Admission's status name (`evaluating`, `pending`, `issuing`, `certified`, ...).
    pub status: String,
    /// Bumped by every change; the compare-and-set token.
    pub version: u64,
    /// When admission received it (ms).
    pub received_at_ms: u64,
    /// Pending proposals are expired after this (ms).
    pub deadline_ms: Option<u64>,
    /// A replica working on it (evaluating, issuing) holds it until this (ms); after that
    /// another replica may take it over.
    pub claim_until_ms: Option<u64>,
    /// Admission's JSON.
    pub body: Vec<u8>,
    /// Approvals, in the order they were stored.
    pub approvals: Vec<StoredApproval>,
    /// Break-glass signatures, in the order they were stored.
    pub signatures: Vec<StoredSignature>,
}

/// An approval as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApproval {
    /// The approver's registered name (unique per proposal).
    pub approver: String,
    /// Admission's JSON (the approval envelope and what is shown).
    pub body: Vec<u8>,
    /// When it was received (ms).
    pub at_ms: u64,
}

/// A break-glass operator signature as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignature {
    /// The cid of the draft it signs.
    pub cid: String,
    /// The operator's name (unique per proposal and draft).
    pub operator: String,
    /// Admission's JSON (the envelope signature).
    pub body: Vec<u8>,
    /// When it was received (ms).
    pub at_ms: u64,
}

/// A new proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProposal {
    /// The id the agent signed.
    pub proposal_id: String,
    /// The proposing agent.
    pub agent: String,
    /// The first status.
    pub status: String,
    /// When admission received it (ms).
    pub received_at_ms: u64,
    /// See [`StoredProposal::deadline_ms`].
    pub deadline_ms: Option<u64>,
    /// See [`StoredProposal::claim_until_ms`].
    pub claim_until_ms: Option<u64>,
    /// Admission's JSON.
    pub body: Vec<u8>,
}

/// A compare-and-set change of a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalUpdate {
    /// Which proposal.
    pub proposal_id: String,
    /// The version the caller read; anything else: [`Cas::Stale`], nothing written.
    pub expected_version: u64,
    /// The new status.
    pub status: String,
    /// The new deadline.
    pub deadline_ms: Option<u64>,
    /// The new claim.
    pub claim_until_ms: Option<u64>,
    /// The new JSON.
    pub body: Vec<u8>,
    /// A ledger entry appended in the same transaction (issue, deny, ...).
    pub record: Option<Vec<u8>>,
}

/// How a compare-and-set ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Applied; the new version (and the record's ledger index).
    Done {
        /// The proposal's new version.
        version: u64,
        /// Where the record landed.
        record_index: Option<u64>,
    },
    /// The proposal changed since it was read (or does not exist): nothing written.
    Stale,
}

/// How adding an approval or a break-glass signature ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Stored (with the record); the proposal's new version.
    Added {
        /// The proposal's new version.
        version: u64,
    },
    /// This approver (operator) already has one on this proposal (draft): nothing written.
    Duplicate,
    /// The proposal does not have the expected status: nothing written.
    WrongStatus {
        /// Its status (`None`: no such proposal).
        status: Option<String>,
    },
}

/// One version of the policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The policy epoch it was loaded at.
    pub policy_epoch: u64,
    /// Lowercase hex SHA-256 of the text (admission's digest form).
    pub digest: String,
    /// The Cedar text.
    pub text: String,
    /// When (ms).
    pub loaded_at_ms: u64,
    /// `startup` or the admin's name.
    pub loaded_by: String,
}

/// A policy load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLoad {
    /// Digest of the text.
    pub digest: String,
    /// The Cedar text.
    pub text: String,
    /// When (ms).
    pub at_ms: u64,
    /// `startup` or the admin's name.
    pub loaded_by: String,
    /// The epoch record appended when (and only when) the epoch is bumped.
    pub record: Option<Vec<u8>>,
}

/// Filters of [`AdmissionState::proposals`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProposalFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this agent.
    pub agent: Option<String>,
    /// At most this many, oldest first (0: no limit).
    pub limit: usize,
}

/// Admission's durable state. Implemented by every product [`crate::Store`] backend and
/// reached through [`crate::Store::admission`].
pub trait AdmissionState: Send + Sync {
    /// Store a new proposal. `false`: the id was stored before (replay), nothing written.
    fn insert_proposal(&self, p: NewProposal) -> StoreFuture<'_, bool>;
    /// One proposal with its approvals and signatures, read in one snapshot.
    fn proposal<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredProposal>>;
    /// Proposals (with approvals and signatures), oldest first (`received_at_ms`, id).
    fn proposals(&self, filter: ProposalFilter) -> StoreFuture<'_, Vec<StoredProposal>>;
    /// Ids of proposals with `status` whose deadline (`deadline_ms`) or claim
    /// (`claim_until_ms`) is before `now_ms`: due for expiry or for a take-over.
    fn overdue<'a>(&'a self, status: &'a str, now_ms: u64) -> StoreFuture<'a, Vec<String>>;
    /// Compare-and-set a proposal, appending `record` in the same transaction.
    fn update_proposal(&self, u: ProposalUpdate) -> StoreFuture<'_, Cas>;
    /// Add an approval while the proposal has status `expected_status`; appends `record`
    /// and bumps the version in the same transaction.
    #[allow(clippy::too_many_arguments)]
    fn add_approval(
        &self,
        proposal_id: String,
        expected_status: String,
        approval: StoredApproval,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added>;
    /// Add a break-glass signature while the proposal has status `expected_status`; appends
    /// `record` and bumps the version in the same transaction.
    fn add_signature(
        &self,
        proposal_id: String,
        expected_status: String,
        signature: StoredSignature,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added>;
    /// Remember an admin request id. `false`: seen before (a replay, on any replica).
    /// Ids remembered before `forget_before_ms` are dropped first (they are outside the
    /// freshness window anyway).
    fn admin_request_once<'a>(
        &'a self,
        request_id: &'a str,
        at_ms: u64,
        forget_before_ms: u64,
    ) -> StoreFuture<'a, bool>;
    /// Make `load` the policy in force. When its digest is the one in force already, nothing
    /// changes (`false`); otherwise `policy_epoch` is bumped, `load.record` appended and the
    /// version stored, in one transaction (`true`). Returns the epochs after it.
    fn load_policy(&self, load: PolicyLoad) -> StoreFuture<'_, (Epochs, bool)>;
    /// Every policy version, oldest first (the last is in force).
    fn policies(&self) -> StoreFuture<'_, Vec<StoredPolicy>>;
}
