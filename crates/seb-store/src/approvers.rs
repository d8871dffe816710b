//! Enrolled approvers (spec 5.1 and 5.3): the durable approver registry that admission and a
//! broker in store mode read, the single-use enrolment invitations, and each passkey's
//! signature counter.
//!
//! Invariants every backend keeps (the conformance suite checks them):
//! - an invitation is found by the SHA-256 of its token (the token itself is never stored),
//!   is usable until `expires_at_ms`, and is consumed exactly once: of two concurrent
//!   enrolments with one token, one succeeds and the other gets
//!   [`EnrolResult::InvitationUnusable`];
//! - enrolment consumes the invitation, stores the approver and appends its ledger record in
//!   ONE transaction; removal deletes the approver and appends its record in one transaction;
//! - [`ApproverDirectory::advance_counter`] is a compare-and-set: a counter is stored only
//!   when it is greater than the stored one (or both are zero), so a replayed or cloned
//!   authenticator's assertion is refused even when two replicas race.

use crate::{StoreError, StoreFuture};

/// A pending enrolment invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Lowercase hex SHA-256 of the invitation token.
    pub token_hash: String,
    /// The approver name the invitation is for.
    pub name: String,
    /// The role (`human`).
    pub role: String,
    /// The registration challenge (random, 32 bytes).
    pub challenge: Vec<u8>,
    /// The WebAuthn user handle (random, 16 bytes).
    pub user_id: Vec<u8>,
    /// Who signed the invitation (admin name).
    pub invited_by: String,
    /// When the invitation was created (ms).
    pub created_at_ms: u64,
    /// When it stops being usable (ms, exclusive).
    pub expires_at_ms: u64,
}

/// An enrolled approver: one passkey per entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledApprover {
    /// Approver name (unique).
    pub name: String,
    /// Role (`human`).
    pub role: String,
    /// Key id of the credential (hex SHA-256 of the SPKI DER).
    pub kid: String,
    /// The registry entry's credential, as JSON (`{type: "webauthn", alg, …}`).
    pub credential: String,
    /// The signed registry entry (the `admission` record's envelope bytes).
    pub entry: Vec<u8>,
    /// When the approver enrolled (ms).
    pub enrolled_at_ms: u64,
}

/// Result of [`ApproverDirectory::enrol`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolResult {
    /// Enrolled; the record's ledger index.
    Enrolled {
        /// Ledger index of the enrolment record.
        index: u64,
    },
    /// No invitation with this token, or it is used or expired.
    InvitationUnusable,
    /// An approver with this name, or this credential, is already enrolled.
    AlreadyEnrolled,
}

/// Result of [`ApproverDirectory::advance_counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterResult {
    /// The new counter was accepted (and stored).
    Advanced,
    /// The new counter does not increase past the stored one.
    Regression {
        /// The stored counter.
        stored: u32,
    },
    /// No enrolled credential has this key id (config-file passkeys keep no counter here).
    Unknown,
}

/// The approver registry in the store.
pub trait ApproverDirectory: Send + Sync {
    /// Store a new invitation.
    fn create_invitation(&self, inv: Invitation) -> StoreFuture<'_, ()>;
    /// The invitation with this token hash if it is unused and `now_ms < expires_at_ms`.
    fn invitation<'a>(
        &'a self,
        token_hash: &'a str,
        now_ms: u64,
    ) -> StoreFuture<'a, Option<Invitation>>;
    /// Consume the invitation, store `approver` and append `record`, atomically.
    fn enrol<'a>(
        &'a self,
        token_hash: &'a str,
        now_ms: u64,
        approver: EnrolledApprover,
        record: Vec<u8>,
    ) -> StoreFuture<'a, EnrolResult>;
    /// Every enrolled approver, by name.
    fn enrolled(&self) -> StoreFuture<'_, Vec<EnrolledApprover>>;
    /// Remove an approver (every credential under `name`) and append `record`, atomically.
    /// `Ok(None)` when no such approver is enrolled (nothing is appended).
    fn remove_approver<'a>(
        &'a self,
        name: &'a str,
        record: Vec<u8>,
    ) -> StoreFuture<'a, Option<u64>>;
    /// Compare-and-set the signature counter of credential `kid` to `new` (the WebAuthn rule:
    /// accepted when `new > stored`, or both are zero).
    fn advance_counter<'a>(&'a self, kid: &'a str, new: u32) -> StoreFuture<'a, CounterResult>;
}

/// A store without an approver directory: every call fails closed.
pub fn unsupported(backend: &str) -> StoreError {
    StoreError::invalid(format!("the {backend} store keeps no approver directory"))
}

/// The counter rule shared by every backend.
pub fn counter_advances(stored: u32, new: u32) -> bool {
    (stored == 0 && new == 0) || new > stored
}
