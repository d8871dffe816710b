//! The tamper-evident log of SEB (spec section 8), as pure math: no I/O, no clock, no async.
//!
//! Every decision and outcome record the broker signs is appended to an append-only Merkle
//! log. This crate holds everything about that log that does not touch the world:
//!
//! - [`merkle`]: RFC 9162 (RFC 6962) hashing, the [`merkle::Frontier`] that appends in
//!   O(log n) and says which complete-subtree nodes to store, and root, inclusion-proof and
//!   consistency-proof computation over any [`merkle::NodeReader`] (the store crates implement
//!   it over database rows; [`merkle::MemoryTree`] is the in-memory one).
//! - [`checkpoint`]: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` form, Ed25519.
//! - [`verify`]: the offline auditor, which takes a [`verify::LedgerExport`] and checks
//!   signatures, roots, consistency with a trusted checkpoint and the semantic invariants.
//!
//! # Invariants
//!
//! - **Only complete subtrees are ever stored or read.** Node `(level, index)` is the hash of
//!   leaves `[index << level, (index + 1) << level)`. Such a node never changes once its last
//!   leaf exists, so the nodes stored for a tree of size `n` serve every root and proof for
//!   every size `m <= n`, and a store is append-only too. Incomplete (right-edge) subtrees are
//!   recomputed from at most 64 complete ones.
//! - **Every proof costs O(log n) node reads**: ranges are decomposed into complete subtrees
//!   (RFC 9162 sections 2.1.3 and 2.1.4), at most one of which is an incomplete right edge.
//! - **Nothing panics**: out-of-range indices, empty trees, oversize trees, missing nodes and
//!   malformed input are all [`LedgerError`]s.
//! - **Entries are the envelope's canonical bytes**: the auditor refuses an entry whose bytes
//!   differ from the RFC 8785 form of the envelope they parse to, so one record has exactly
//!   one leaf hash.
//! - **Integrity before semantics**: the auditor first proves that the export is what the
//!   broker's checkpoints commit to, and only then judges the records; a semantic error on an
//!   intact export is evidence against the broker itself.

pub mod checkpoint;
pub mod error;
pub mod merkle;
pub mod verify;

pub use checkpoint::{Checkpoint, note_key_hash};
pub use error::LedgerError;
pub use merkle::{
    Frontier, Hash, MemoryTree, NodeReader, StoredNode, consistency_proof, empty_root,
    inclusion_proof, leaf_hash, node_hash, root_at, verify_consistency, verify_inclusion,
};
pub use verify::{
    LedgerExport, RecordKeys, VerifyOptions, VerifyReport, verify_export, verify_export_with,
    verify_ledger,
};
