//! The one error type of this crate.

use seb_core::envelope::EnvelopeError;

/// Everything that can go wrong in the ledger math, the checkpoint format and the auditor.
///
/// Not `#[non_exhaustive]`: a caller of the auditor must decide what every failed check means.
/// Indices are 0-based leaf indices; sizes are tree sizes (numbers of leaves).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    // ----- Merkle trees and proofs -----
    /// A complete-subtree node that a computation needs is not stored (the tree is smaller
    /// than the size asked for, or the store lost a row).
    #[error("node (level {level}, index {index}) is not stored")]
    MissingNode {
        /// Height of the subtree (0 = leaf).
        level: u8,
        /// Position of the subtree among those of its level.
        index: u64,
    },
    /// The store behind a [`crate::merkle::NodeReader`] failed.
    #[error("node store failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Proofs about a tree of size 0 do not exist.
    #[error("a tree of size 0 has no proofs")]
    EmptyTree,
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("old size {old_size} is larger than new size {new_size}")]
    SizeOutOfRange {
        /// The older (first) tree size.
        old_size: u64,
        /// The newer (second) tree size.
        new_size: u64,
    },
    /// The tree would exceed [`crate::merkle::MAX_TREE_SIZE`] leaves.
    #[error("tree size {size} exceeds the maximum of 2^63 leaves")]
    TreeTooLarge {
        /// The size asked for.
        size: u64,
    },
    /// An inclusion proof does not lead to the expected root.
    #[error("inclusion proof does not verify: {0}")]
    InclusionProofInvalid(&'static str),
    /// A consistency proof does not lead to the expected roots.
    #[error("consistency proof does not verify: {0}")]
    ConsistencyProofInvalid(&'static str),

    // ----- Signed notes and checkpoints -----
    /// The text is not a well-formed C2SP signed note.
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    /// A key name is empty or holds a Unicode space or `+`.
    #[error("invalid note key name `{0}`")]
    InvalidKeyName(String),
    /// The note text is not a well-formed C2SP tlog checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    /// A signature line names the expected key (name and key hash) but does not verify.
    #[error("signature by note key `{name}` does not verify")]
    NoteSignatureInvalid {
        /// The key name.
        name: String,
    },
    /// No signature line belongs to the expected key.
    #[error("note carries no signature by note key `{name}`")]
    NoteNotSigned {
        /// The key name.
        name: String,
    },

    // ----- The export and its entries -----
    /// The export file is not valid JSON in the export format.
    #[error("export is not in the ledger export format: {0}")]
    ExportFormat(String),
    /// An entry is not a strictly parsed envelope.
    #[error("entry {index}: not a valid envelope: {reason}")]
    EntryMalformed {
        /// The entry's leaf index.
        index: u64,
        /// What the parser said.
        reason: String,
    },
    /// An entry's bytes are not the RFC 8785 form of the envelope they parse to.
    #[error("entry {index}: bytes are not the envelope's canonical form")]
    EntryNotCanonical {
        /// The entry's leaf index.
        index: u64,
    },
    /// An entry carries a payloadType that does not belong in the ledger.
    #[error("entry {index}: payloadType `{found}` is not a ledger record type")]
    EntryPayloadType {
        /// The entry's leaf index.
        index: u64,
        /// The payloadType found (truncated).
        found: String,
    },
    /// An entry is signed by a key the auditor does not trust.
    #[error("entry {index}: signed by untrusted key `{kid}`")]
    EntryUntrustedKey {
        /// The entry's leaf index.
        index: u64,
        /// The key id named by the signature (truncated).
        kid: String,
    },
    /// An entry's signature is malformed or does not verify.
    #[error("entry {index}: signature does not verify: {source}")]
    EntrySignature {
        /// The entry's leaf index.
        index: u64,
        /// What the envelope verifier said.
        #[source]
        source: EnvelopeError,
    },
    /// A signed payload is not a valid record of its type.
    #[error("entry {index}: invalid record payload: {reason}")]
    EntryPayload {
        /// The entry's leaf index.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record's `broker_kid` names a key that did not sign it.
    #[error("entry {index}: `broker_kid` `{claimed}` is not a key that signed the entry")]
    EntryBrokerKid {
        /// The entry's leaf index.
        index: u64,
        /// The key id the record claims (truncated).
        claimed: String,
    },

    /// A record is not signed by a key trusted for its role: broker records (decisions of the
    /// broker, outcomes) by a broker key, admission records (`stage: "admission"`) by an
    /// admission issuer key named in `issuer_kid`.
    #[error("entry {index}: a {role} record must be signed by a trusted {role} key")]
    EntrySignerRole {
        /// The entry's leaf index.
        index: u64,
        /// `broker` or `admission`.
        role: &'static str,
    },

    // ----- Checkpoints against the entries -----
    /// A checkpoint in the export does not parse or verify.
    #[error("checkpoint {position} of the export: {source}")]
    CheckpointInvalid {
        /// Position of the note in the export's checkpoint list.
        position: usize,
        /// Why it was refused.
        #[source]
        source: Box<LedgerError>,
    },
    /// A checkpoint names another log.
    #[error("checkpoint size {size}: origin `{found}` is not the export's origin `{expected}`")]
    CheckpointOrigin {
        /// The checkpoint's tree size.
        size: u64,
        /// The origin in the checkpoint (truncated).
        found: String,
        /// The export's origin (truncated).
        expected: String,
    },
    /// Two validly signed checkpoints of the same size disagree: signed proof of a fork.
    #[error("two signed checkpoints of size {size} have different roots (the log forked)")]
    ConflictingCheckpoints {
        /// The tree size both claim.
        size: u64,
    },
    /// A checkpoint covers more entries than the export holds.
    #[error(
        "export truncated: checkpoint size {checkpoint_size} but the export holds {entries} entries"
    )]
    ExportTruncated {
        /// The checkpoint's tree size.
        checkpoint_size: u64,
        /// Number of entries in the export.
        entries: u64,
    },
    /// The root recomputed from the entries differs from a signed checkpoint's root.
    #[error(
        "checkpoint size {size}: root mismatch (fork or tampering: an entry was changed, \
         removed, inserted or reordered)"
    )]
    CheckpointRootMismatch {
        /// The checkpoint's tree size.
        size: u64,
    },
    /// The export carries no checkpoint at all.
    #[error("export carries no checkpoint")]
    NoCheckpoint,
    /// Entries past the latest checkpoint are not committed to by any signed tree head.
    #[error(
        "entries {covered}..{entries} are not covered by any checkpoint (the latest has size {covered})"
    )]
    UncoveredEntries {
        /// Size of the largest checkpoint.
        covered: u64,
        /// Number of entries in the export.
        entries: u64,
    },
    /// The auditor's trusted checkpoint names another log.
    #[error("trusted checkpoint: origin `{found}` is not the export's origin `{expected}`")]
    TrustedOrigin {
        /// The trusted checkpoint's origin (truncated).
        found: String,
        /// The export's origin (truncated).
        expected: String,
    },
    /// The trusted checkpoint is larger than the export: the log shrank or was rolled back.
    #[error(
        "trusted checkpoint size {trusted_size} is beyond the export's {entries} entries \
         (export truncated or log rolled back)"
    )]
    TrustedBeyondExport {
        /// The trusted checkpoint's size.
        trusted_size: u64,
        /// Number of entries in the export.
        entries: u64,
    },
    /// The export is not an extension of the trusted checkpoint.
    #[error("trusted checkpoint size {size}: root mismatch (the log forked or was rewritten)")]
    TrustedRootMismatch {
        /// The trusted checkpoint's size.
        size: u64,
    },

    // ----- Semantic invariants (spec section 8) -----
    /// An outcome for a (cid, nonce) that was never admitted.
    #[error("entry {index}: outcome for (`{cid}`, `{nonce}`) without a prior admit")]
    OutcomeWithoutAdmit {
        /// The outcome's leaf index.
        index: u64,
        /// The certificate id (truncated).
        cid: String,
        /// The nonce (truncated).
        nonce: String,
    },
    /// An outcome that comes before its admit in the log.
    #[error(
        "entry {index}: outcome for (`{cid}`, `{nonce}`) precedes its admit at entry \
         {admit_index} (entries reordered)"
    )]
    OutcomeBeforeAdmit {
        /// The outcome's leaf index.
        index: u64,
        /// The admit's leaf index.
        admit_index: u64,
        /// The certificate id (truncated).
        cid: String,
        /// The nonce (truncated).
        nonce: String,
    },
    /// An admission `issue` record names an approval (by digest) that no earlier `approval`
    /// record of the same proposal recorded.
    #[error(
        "entry {index}: the certificate of proposal `{proposal_id}` carries approval `{digest}`, which no earlier approval record holds"
    )]
    AttestationNotRecorded {
        /// The issue record's leaf index.
        index: u64,
        /// The proposal (truncated).
        proposal_id: String,
        /// The approval envelope's digest (truncated).
        digest: String,
    },
    /// A second outcome for the same (cid, nonce).
    #[error("entry {index}: second outcome for (`{cid}`, `{nonce}`), the first is entry {first}")]
    DuplicateOutcome {
        /// The second outcome's leaf index.
        index: u64,
        /// The first outcome's leaf index.
        first: u64,
        /// The certificate id (truncated).
        cid: String,
        /// The nonce (truncated).
        nonce: String,
    },
    /// A second admit for the same (cid, nonce): the nonce was consumed twice.
    #[error("entry {index}: second admit for (`{cid}`, `{nonce}`), the first is entry {first}")]
    DuplicateAdmit {
        /// The second admit's leaf index.
        index: u64,
        /// The first admit's leaf index.
        first: u64,
        /// The certificate id (truncated).
        cid: String,
        /// The nonce (truncated).
        nonce: String,
    },
    /// An admit recorded outside its certificate's validity window (with the allowed skew).
    #[error(
        "entry {index}: admit at {at_ms} ms lies outside the certificate validity \
         [{not_before}, {not_after}) s"
    )]
    AdmitOutsideValidity {
        /// The admit's leaf index.
        index: u64,
        /// The admit's time, Unix milliseconds.
        at_ms: u64,
        /// Validity start, Unix seconds.
        not_before: u64,
        /// Validity end (exclusive), Unix seconds.
        not_after: u64,
    },
}

impl LedgerError {
    /// Wrap a store's error (for [`crate::merkle::NodeReader`] implementations).
    pub fn storage<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Self::Storage(Box::new(e))
    }
}

/// At most 100 characters of untrusted text, for error messages.
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 100;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}
