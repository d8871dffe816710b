//! # seb-store
//!
//! Everything the broker and admission keep: nonce reservations, the active epochs and
//! revocations, the execution intents (admitted, dispatched, completed), the ledger entries
//! with their stored Merkle subtree hashes, checkpoints, and admission's durable state
//! ([`admission::AdmissionState`] through [`Store::admission`]: proposals, approvals,
//! break-glass signatures, the admin replay cache, policy versions).
//!
//! It also holds what both trusted roles (broker and admission, which both depend on this
//! crate) read from the host besides their state: the one guarded wall [`clock`] and the one
//! [`keyfile`] reader. `seb-core` stays pure (time is an argument there, keys are bytes).
//!
//! [`Store`] is the seam; [`sqlite::SqliteStore`] is the embedded default, and the
//! PostgreSQL backend implements the same trait. Every backend must pass
//! [`conformance`] (feature `conformance`).
//!
//! Architecture invariants every backend keeps:
//! - [`Store::reserve`] is ONE transaction: it re-reads the epochs and revocations, inserts
//!   (cid, nonce) under a uniqueness constraint, appends the admit record to the ledger and
//!   records the intent. Either all of it commits or none of it does.
//! - A reserved (cid, nonce) is never deleted or released.
//! - The ledger is append-only with one total order; indices are dense from 0.
//! - A committed revocation is seen by every reservation that starts after the commit.
//!
//! Behaviour the trait leaves to the backend is pinned down by the conformance suite, so
//! every backend answers alike:
//! - Only [`Revocation::All`] changes an epoch; revoking a cid or an agent adds it to a set
//!   checked by membership. Every revocation and policy bump sets `updated_at_ms`, which
//!   never moves backwards.
//! - In [`Store::reserve`] the epochs are compared first (`EpochChanged`, also when the
//!   certificate carries a *newer* epoch), then the revocation sets (`Revoked`), then the
//!   (cid, nonce) uniqueness (`Replay`). Only `Reserved` writes anything.
//! - [`Store::mark_dispatched`] and [`Store::complete`] of an unknown execution are
//!   [`StoreError::Invalid`]; of a completed one, [`StoreError::AlreadyCompleted`].
//!   `mark_dispatched` is idempotent.
//! - Ledger reads outside the ledger (a range past its end, a size larger than it, an index
//!   outside the tree, `old_size` 0 or above `new_size`) are errors, never short answers.
//! - A checkpoint must not name a size beyond the ledger or below the newest stored
//!   checkpoint; `latest_checkpoint` is the last one stored.

#![warn(missing_docs)]

use std::future::Future;
use std::pin::Pin;

pub use seb_ledger::merkle::Hash;

pub mod admission;
pub mod approvers;
pub mod clock;
pub mod keyfile;
pub mod net_effect;
pub mod sqlite;

pub use net_effect::{CertifiedChange, NetEffectAppend, NetEffectLog};

#[cfg(feature = "conformance")]
pub mod conformance;

/// A boxed future returned by [`Store`] methods (keeps the trait object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The underlying error kept as a [`std::error::Error::source`]: shared (`Arc`) so that an
/// error can be cloned to every caller of a failed batch without losing its cause.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why the store could not do what was asked. Every variant makes the broker fail closed.
///
/// `Display` is one line (the context); the error that caused it, when there is one, is the
/// [`source`](std::error::Error::source) (a `rusqlite::Error`, a `tokio_postgres::Error` with
/// its SQLSTATE, a [`seb_ledger::LedgerError`]…). Logs and problem details print the whole
/// chain with [`error_chain`].
///
/// `std::error::Error` is written out rather than derived: `source()` must return the
/// underlying error itself (so callers can downcast it), not the `Arc` around it.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// The backend is unreachable or returned an I/O error.
    Unavailable {
        /// What was being done.
        context: String,
        /// The error that caused it.
        source: Option<Cause>,
    },
    /// Stored data is inconsistent (for example a Merkle node missing).
    Corrupt {
        /// What is inconsistent.
        context: String,
        /// The error that caused it.
        source: Option<Cause>,
    },
    /// The request does not fit the stored state (for example completing an unknown intent).
    Invalid {
        /// Why the request does not fit.
        context: String,
        /// The error that caused it.
        source: Option<Cause>,
    },
    /// The execution already has an outcome.
    AlreadyCompleted {
        /// The certificate id.
        cid: String,
        /// The execution nonce.
        nonce: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable { context, .. } => write!(f, "store unavailable: {context}"),
            StoreError::Corrupt { context, .. } => write!(f, "store corrupt: {context}"),
            StoreError::Invalid { context, .. } => f.write_str(context),
            StoreError::AlreadyCompleted { cid, nonce } => {
                write!(f, "execution `{cid}`/`{nonce}` already has an outcome")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable { source, .. }
            | StoreError::Corrupt { source, .. }
            | StoreError::Invalid { source, .. } => {
                source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
            }
            StoreError::AlreadyCompleted { .. } => None,
        }
    }
}

impl StoreError {
    /// [`StoreError::Unavailable`] without an underlying error.
    pub fn unavailable(context: impl Into<String>) -> Self {
        StoreError::Unavailable { context: context.into(), source: None }
    }
    /// [`StoreError::Unavailable`] caused by `source`.
    pub fn unavailable_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError::Unavailable { context: context.into(), source: Some(cause(source)) }
    }
    /// [`StoreError::Corrupt`] without an underlying error.
    pub fn corrupt(context: impl Into<String>) -> Self {
        StoreError::Corrupt { context: context.into(), source: None }
    }
    /// [`StoreError::Corrupt`] caused by `source`.
    pub fn corrupt_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError::Corrupt { context: context.into(), source: Some(cause(source)) }
    }
    /// [`StoreError::Invalid`] without an underlying error.
    pub fn invalid(context: impl Into<String>) -> Self {
        StoreError::Invalid { context: context.into(), source: None }
    }
    /// [`StoreError::Invalid`] caused by `source`.
    pub fn invalid_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError::Invalid { context: context.into(), source: Some(cause(source)) }
    }
}

fn cause(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Cause {
    std::sync::Arc::from(source.into())
}

impl From<seb_ledger::LedgerError> for StoreError {
    fn from(e: seb_ledger::LedgerError) -> Self {
        StoreError::corrupt_from("ledger", e)
    }
}

/// An error and every [`source`](std::error::Error::source) below it on one line, outermost
/// first, separated by `: ` (for logs and problem details: the operator sees the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// The active epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Epochs {
    /// Bumped by every policy change; a certificate from another policy epoch is readmitted.
    pub policy_epoch: u64,
    /// Bumped by [`Revocation::All`]; a certificate from another one fails closed.
    pub revocation_epoch: u64,
    /// When they last changed (ms).
    pub updated_at_ms: u64,
}

/// The epoch state relevant to one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochCheck {
    /// The active epochs.
    pub epochs: Epochs,
    /// Whether the certificate itself is revoked.
    pub cid_revoked: bool,
    /// Whether the certificate's subject (agent) is revoked.
    pub agent_revoked: bool,
}

/// What checks 7–10 read before the reservation, in one round trip: the epoch state of
/// [`Store::epoch_check`] and the replay state of [`Store::is_reserved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreCheck {
    /// Epochs and the two revocation memberships.
    pub epoch: EpochCheck,
    /// Whether (cid, nonce) is already reserved.
    pub reserved: bool,
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Revocation {
    /// One certificate.
    Cid(String),
    /// Every certificate of an agent (subject).
    Agent(String),
    /// Everything issued so far: bumps `revocation_epoch`.
    All,
}

/// One reservation attempt (spec section 7, steps 12 and 13).
#[derive(Debug, Clone)]
pub struct Reservation {
    /// The certificate id.
    pub cid: String,
    /// The execution nonce; (cid, nonce) is consumed at most once, forever.
    pub nonce: String,
    /// The certificate subject, re-checked against agent revocations in the transaction.
    pub agent: String,
    /// The policy epoch the certificate carries; any difference at commit time fails closed.
    pub policy_epoch: u64,
    /// The revocation epoch the certificate carries; any difference at commit time fails
    /// closed.
    pub revocation_epoch: u64,
    /// Canonical bytes of the signed `admit` decision envelope, appended in the same
    /// transaction.
    pub admit_entry: Vec<u8>,
    /// Opaque JSON the broker needs to reconcile this execution after a crash.
    pub intent: Vec<u8>,
    /// The broker's clock at admission (ms), kept as the intent's `admitted_at_ms`.
    pub at_ms: u64,
}

/// How a reservation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveResult {
    /// Nonce consumed, admit record durable at this ledger index.
    Reserved {
        /// The ledger index of the admit record.
        admit_index: u64,
    },
    /// (cid, nonce) was already reserved: nothing written.
    Replay,
    /// The epochs changed since the checks ran: nothing written (fail closed).
    EpochChanged {
        /// The epochs active at commit time.
        active: Epochs,
    },
    /// The certificate or its agent was revoked: nothing written (fail closed).
    Revoked {
        /// Which revocation applied (the cid or the agent, in backticks).
        reason: String,
    },
}

/// An admitted execution without an outcome (for crash recovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingExecution {
    /// The certificate id.
    pub cid: String,
    /// The execution nonce.
    pub nonce: String,
    /// The intent bytes given to [`Store::reserve`].
    pub intent: Vec<u8>,
    /// Whether the broker recorded that it was about to call the target.
    pub dispatched: bool,
    /// [`Reservation::at_ms`].
    pub admitted_at_ms: u64,
}

/// An execution [`Store::in_flight`] lists, by key (see [`Store::in_flight_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightKey {
    /// The ledger index of its admit record.
    pub admit_index: u64,
    /// The certificate id.
    pub cid: String,
    /// The execution nonce.
    pub nonce: String,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size the checkpoint commits to.
    pub size: u64,
    /// The signed note text.
    pub note: String,
    /// When it was signed (ms).
    pub at_ms: u64,
}

/// The storage seam. All methods are cancel-safe in the sense that a dropped future never
/// leaves a half-written transaction.
pub trait Store: NetEffectLog + Send + Sync + 'static {
    /// A short name for logs and metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    // ---- epochs and revocation ----
    /// The active epochs.
    fn epochs(&self) -> StoreFuture<'_, Epochs>;
    /// The epochs plus whether this cid or agent is revoked.
    fn epoch_check<'a>(&'a self, cid: &'a str, agent: &'a str) -> StoreFuture<'a, EpochCheck>;
    /// Bump `policy_epoch` (a policy change). Appends `record` to the ledger in the same
    /// transaction when given. Returns the new epochs.
    fn bump_policy_epoch(&self, at_ms: u64, record: Option<Vec<u8>>) -> StoreFuture<'_, Epochs>;
    /// Revoke a cid, an agent, or everything. Appends `record` in the same transaction when
    /// given. Returns the epochs after the change.
    fn revoke(
        &self,
        what: Revocation,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Epochs>;
    /// Every revoked cid and agent (for epoch statements).
    fn revocations(&self) -> StoreFuture<'_, (Vec<String>, Vec<String>)>;

    // ---- executions ----
    /// Whether (cid, nonce) is already reserved (the check 10 pre-check).
    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> StoreFuture<'a, bool>;
    /// [`Store::epoch_check`] and [`Store::is_reserved`] in one call (one read transaction
    /// or one query where the backend can). The default makes the two calls, so a wrapper
    /// that changes either keeps that change here. Only a pre-check: the reservation re-reads
    /// all of it inside its own transaction.
    fn pre_check<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        agent: &'a str,
    ) -> StoreFuture<'a, PreCheck> {
        Box::pin(async move {
            let epoch = self.epoch_check(cid, agent).await?;
            let reserved = self.is_reserved(cid, nonce).await?;
            Ok(PreCheck { epoch, reserved })
        })
    }
    /// Steps 12–13 in one transaction.
    fn reserve(&self, r: Reservation) -> StoreFuture<'_, ReserveResult>;
    /// Durably note that the target call is about to happen.
    fn mark_dispatched<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        at_ms: u64,
    ) -> StoreFuture<'a, ()>;
    /// Append the outcome record and close the intent, in one transaction. Fails with
    /// [`StoreError::AlreadyCompleted`] when it already has one.
    fn complete<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> StoreFuture<'a, u64>;
    /// Admitted executions without an outcome that this store is to reconcile: on a store
    /// shared by several brokers, its own and those of brokers that are gone.
    fn pending(&self) -> StoreFuture<'_, Vec<PendingExecution>>;
    /// Every admitted execution without an outcome, whichever broker sharing the store runs
    /// it (the Kubernetes webhook answers for any replica's execution with it). A store with
    /// one broker: [`Store::pending`].
    fn in_flight(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        self.pending()
    }
    /// The executions [`Store::in_flight`] lists whose admit index is above `after` (all of
    /// them with `None`), oldest first, by key, without their intents. Admit indices are
    /// assigned in commit order (one writer, or the ledger head lock), so a caller that keeps
    /// the largest index it has seen and asks only for those above it misses none committed
    /// since: the Kubernetes webhook's name index (issue 17: scanning every in-flight row
    /// for each review that missed the answering replica was most of PostgreSQL's extra work
    /// with three replicas). The default, from [`Store::in_flight`], gives index 0 to each
    /// and ignores `after`: correct, only not incremental.
    fn in_flight_keys(&self, after: Option<u64>) -> StoreFuture<'_, Vec<InFlightKey>> {
        let _ = after;
        Box::pin(async move {
            Ok(self
                .in_flight()
                .await?
                .into_iter()
                .map(|p| InFlightKey { admit_index: 0, cid: p.cid, nonce: p.nonce })
                .collect())
        })
    }
    /// The execution `(cid, nonce)` if [`Store::in_flight`] lists it (admitted, no outcome
    /// yet), whichever broker runs it. Defaults to [`Store::in_flight`].
    fn in_flight_execution<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
    ) -> StoreFuture<'a, Option<PendingExecution>> {
        Box::pin(async move {
            Ok(self.in_flight().await?.into_iter().find(|p| p.cid == cid && p.nonce == nonce))
        })
    }
    /// Admitted executions without an outcome whose broker is gone (its lease lost), on a
    /// store shared by several brokers; never this store's own. Live brokers reconcile these
    /// periodically. A store with one broker has none.
    fn orphans(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    // ---- ledger ----
    /// Append records (decision records of failures, summaries); returns their indices.
    fn append(&self, entries: Vec<Vec<u8>>) -> StoreFuture<'_, Vec<u64>>;
    /// Number of entries.
    fn ledger_size(&self) -> StoreFuture<'_, u64>;
    /// Entries `[start, end)`.
    fn entries(&self, start: u64, end: u64) -> StoreFuture<'_, Vec<Vec<u8>>>;
    /// RFC 9162 root of the first `size` entries.
    fn root(&self, size: u64) -> StoreFuture<'_, Hash>;
    /// Inclusion proof of entry `index` in the tree of `size`.
    fn inclusion_proof(&self, index: u64, size: u64) -> StoreFuture<'_, Vec<Hash>>;
    /// Consistency proof between sizes.
    fn consistency_proof(&self, old_size: u64, new_size: u64) -> StoreFuture<'_, Vec<Hash>>;
    /// Store a signed checkpoint.
    fn put_checkpoint(&self, cp: StoredCheckpoint) -> StoreFuture<'_, ()>;
    /// The newest checkpoint.
    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<StoredCheckpoint>>;
    /// Every checkpoint, oldest first.
    fn checkpoints(&self) -> StoreFuture<'_, Vec<StoredCheckpoint>>;

    // ---- admission ----
    /// Admission's durable state on this store (section 5.3). `None`: this store cannot keep
    /// it (a test wrapper); admission refuses to start on it.
    fn admission(&self) -> Option<&dyn admission::AdmissionState> {
        None
    }

    // ---- bounded contexts ----
    /// The enrolled-approver directory (spec 5.1), when this backend keeps one (SQLite and
    /// PostgreSQL do; a wrapper forwards it with `forward_store!(… approver_directory)`).
    fn approver_directory(&self) -> Option<&dyn approvers::ApproverDirectory> {
        None
    }
}

/// Inside `impl Store for Wrapper`, forward the named methods to the store in field `$field`
/// (any `Deref` to a [`Store`]), so that a wrapper writes only the methods it changes:
///
/// ```text
/// impl Store for Slow {
///     seb_store::forward_store!(inner: backend, epochs, epoch_check, /* … */ checkpoints);
///     fn reserve(&self, r: Reservation) -> StoreFuture<'_, ReserveResult> { /* changed */ }
/// }
/// ```
#[macro_export]
macro_rules! forward_store {
    ($field:ident: $($method:ident),+ $(,)?) => {
        $( $crate::forward_store!(@one $field $method); )+
    };
    (@one $f:ident backend) => {
        fn backend(&self) -> &'static str { self.$f.backend() }
    };
    (@one $f:ident epochs) => {
        fn epochs(&self) -> $crate::StoreFuture<'_, $crate::Epochs> { self.$f.epochs() }
    };
    (@one $f:ident epoch_check) => {
        fn epoch_check<'a>(&'a self, cid: &'a str, agent: &'a str) -> $crate::StoreFuture<'a, $crate::EpochCheck> {
            self.$f.epoch_check(cid, agent)
        }
    };
    (@one $f:ident bump_policy_epoch) => {
        fn bump_policy_epoch(&self, at_ms: u64, record: Option<Vec<u8>>) -> $crate::StoreFuture<'_, $crate::Epochs> {
            self.$f.bump_policy_epoch(at_ms, record)
        }
    };
    (@one $f:ident revoke) => {
        fn revoke(&self, what: $crate::Revocation, at_ms: u64, record: Option<Vec<u8>>) -> $crate::StoreFuture<'_, $crate::Epochs> {
            self.$f.revoke(what, at_ms, record)
        }
    };
    (@one $f:ident revocations) => {
        fn revocations(&self) -> $crate::StoreFuture<'_, (Vec<String>, Vec<String>)> { self.$f.revocations() }
    };
    (@one $f:ident is_reserved) => {
        fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> $crate::StoreFuture<'a, bool> {
            self.$f.is_reserved(cid, nonce)
        }
    };
    (@one $f:ident pre_check) => {
        fn pre_check<'a>(&'a self, cid: &'a str, nonce: &'a str, agent: &'a str) -> $crate::StoreFuture<'a, $crate::PreCheck> {
            self.$f.pre_check(cid, nonce, agent)
        }
    };
    (@one $f:ident reserve) => {
        fn reserve(&self, r: $crate::Reservation) -> $crate::StoreFuture<'_, $crate::ReserveResult> { self.$f.reserve(r) }
    };
    (@one $f:ident mark_dispatched) => {
        fn mark_dispatched<'a>(&'a self, cid: &'a str, nonce: &'a str, at_ms: u64) -> $crate::StoreFuture<'a, ()> {
            self.$f.mark_dispatched(cid, nonce, at_ms)
        }
    };
    (@one $f:ident complete) => {
        fn complete<'a>(&'a self, cid: &'a str, nonce: &'a str, outcome_entry: Vec<u8>) -> $crate::StoreFuture<'a, u64> {
            self.$f.complete(cid, nonce, outcome_entry)
        }
    };
    (@one $f:ident pending) => {
        fn pending(&self) -> $crate::StoreFuture<'_, Vec<$crate::PendingExecution>> { self.$f.pending() }
    };
    (@one $f:ident in_flight) => {
        fn in_flight(&self) -> $crate::StoreFuture<'_, Vec<$crate::PendingExecution>> { self.$f.in_flight() }
    };
    (@one $f:ident in_flight_keys) => {
        fn in_flight_keys(&self, after: Option<u64>) -> $crate::StoreFuture<'_, Vec<$crate::InFlightKey>> { self.$f.in_flight_keys(after) }
    };
    (@one $f:ident in_flight_execution) => {
        fn in_flight_execution<'a>(&'a self, cid: &'a str, nonce: &'a str) -> $crate::StoreFuture<'a, Option<$crate::PendingExecution>> {
            self.$f.in_flight_execution(cid, nonce)
        }
    };
    (@one $f:ident orphans) => {
        fn orphans(&self) -> $crate::StoreFuture<'_, Vec<$crate::PendingExecution>> { self.$f.orphans() }
    };
    (@one $f:ident append) => {
        fn append(&self, entries: Vec<Vec<u8>>) -> $crate::StoreFuture<'_, Vec<u64>> { self.$f.append(entries) }
    };
    (@one $f:ident ledger_size) => {
        fn ledger_size(&self) -> $crate::StoreFuture<'_, u64> { self.$f.ledger_size() }
    };
    (@one $f:ident entries) => {
        fn entries(&self, start: u64, end: u64) -> $crate::StoreFuture<'_, Vec<Vec<u8>>> { self.$f.entries(start, end) }
    };
    (@one $f:ident root) => {
        fn root(&self, size: u64) -> $crate::StoreFuture<'_, $crate::Hash> { self.$f.root(size) }
    };
    (@one $f:ident inclusion_proof) => {
        fn inclusion_proof(&self, index: u64, size: u64) -> $crate::StoreFuture<'_, Vec<$crate::Hash>> {
            self.$f.inclusion_proof(index, size)
        }
    };
    (@one $f:ident consistency_proof) => {
        fn consistency_proof(&self, old_size: u64, new_size: u64) -> $crate::StoreFuture<'_, Vec<$crate::Hash>> {
            self.$f.consistency_proof(old_size, new_size)
        }
    };
    (@one $f:ident put_checkpoint) => {
        fn put_checkpoint(&self, cp: $crate::StoredCheckpoint) -> $crate::StoreFuture<'_, ()> { self.$f.put_checkpoint(cp) }
    };
    (@one $f:ident latest_checkpoint) => {
        fn latest_checkpoint(&self) -> $crate::StoreFuture<'_, Option<$crate::StoredCheckpoint>> { self.$f.latest_checkpoint() }
    };
    (@one $f:ident admission) => {
        fn admission(&self) -> Option<&dyn $crate::admission::AdmissionState> { self.$f.admission() }
    };
    (@one $f:ident approver_directory) => {
        fn approver_directory(&self) -> Option<&dyn $crate::approvers::ApproverDirectory> { self.$f.approver_directory() }
    };
    (@one $f:ident checkpoints) => {
        fn checkpoints(&self) -> $crate::StoreFuture<'_, Vec<$crate::StoredCheckpoint>> { self.$f.checkpoints() }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// An error built from an underlying one keeps it as `source()`, with its type: an
    /// operator (and code) can walk the chain down to the I/O error.
    #[test]
    fn an_underlying_error_is_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only disk");
        let e = StoreError::unavailable_from("sqlite", io);
        assert_eq!(e.to_string(), "store unavailable: sqlite");
        let source = e.source().expect("the I/O error is kept");
        let io = source.downcast_ref::<std::io::Error>().expect("as an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        // A clone (one failed batch answers every caller) keeps it too.
        assert!(e.clone().source().is_some_and(|s| s.is::<std::io::Error>()));
        // Without an underlying error there is none.
        assert!(StoreError::invalid("no such execution").source().is_none());
    }

    /// A ledger error stays a `LedgerError` under the store error, not a string.
    #[test]
    fn a_ledger_error_is_kept_as_the_source() {
        let e = StoreError::from(seb_ledger::LedgerError::MissingNode { level: 2, index: 7 });
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        let ledger = e.source().and_then(|s| s.downcast_ref::<seb_ledger::LedgerError>());
        assert!(
            matches!(ledger, Some(seb_ledger::LedgerError::MissingNode { level: 2, index: 7 })),
            "{ledger:?}"
        );
    }

    /// `error_chain` prints every level once, outermost first.
    #[test]
    fn error_chain_prints_every_level() {
        #[derive(Debug, thiserror::Error)]
        #[error("opening the database")]
        struct Open(#[source] std::io::Error);
        let e = StoreError::unavailable_from("sqlite", Open(std::io::Error::other("disk full")));
        assert_eq!(error_chain(&e), "store unavailable: sqlite: opening the database: disk full");
        assert_eq!(e.to_string(), "store unavailable: sqlite", "Display stays one level");
        assert_eq!(error_chain(&StoreError::invalid("bad")), "bad");
    }
}
