//! RFC 9162 (RFC 6962) Merkle tree hashing, appends and proofs over stored complete subtrees.
//!
//! Leaf hash `SHA-256(0x00 || entry)`, node hash `SHA-256(0x01 || left || right)`, empty root
//! `SHA-256("")`. The tree of `n` leaves splits at the largest power of two smaller than `n`
//! (RFC 9162 section 2.1.1).
//!
//! Storage model: only hashes of **complete** subtrees are stored, as [`StoredNode`]s.
//! Node `(level, index)` covers leaves `[index << level, (index + 1) << level)`. A complete
//! subtree never changes once its last leaf is appended, so a store written by
//! [`Frontier::push`] answers roots and proofs for every earlier size as well. Every node of
//! the RFC tree of size `n` that is not complete lies on its right edge and is recomputed
//! here from at most 64 complete ones; each root or proof needs O(log n) reads.

use sha2::{Digest as _, Sha256};

use crate::error::LedgerError;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Largest tree this crate handles: 2^63 leaves (keeps every level and offset in range).
pub const MAX_TREE_SIZE: u64 = 1 << 63;

/// `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A stored hash of a COMPLETE subtree: level 0 = leaf hashes; node (level, index) covers
/// leaves `[index << level, (index + 1) << level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredNode {
    /// Height of the subtree (0 = a leaf hash).
    pub level: u8,
    /// Position among the subtrees of this level.
    pub index: u64,
    /// The subtree's Merkle tree hash.
    pub hash: Hash,
}

/// Read access to stored complete-subtree hashes.
///
/// Implemented by the store crates over database rows and by [`MemoryTree`]. An
/// implementation returns [`LedgerError::MissingNode`] for a node it does not hold and
/// [`LedgerError::Storage`] when the backend fails. Callers only ever ask for complete
/// subtrees of the size they are working on.
pub trait NodeReader {
    /// The hash of complete subtree `(level, index)`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError>;
}

impl<T: NodeReader + ?Sized> NodeReader for &T {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        (**self).node(level, index)
    }
}

fn check_size(size: u64) -> Result<(), LedgerError> {
    if size > MAX_TREE_SIZE {
        return Err(LedgerError::TreeTooLarge { size });
    }
    Ok(())
}

/// The complete subtrees that make up leaves `[start, end)`, largest (leftmost) first.
///
/// The range must be a node of some RFC 9162 tree: `start` a multiple of the smallest power
/// of two that is at least `end - start`. Every range this module builds satisfies that;
/// anything else is refused rather than read wrongly.
fn decompose(start: u64, end: u64) -> Result<Vec<(u8, u64)>, LedgerError> {
    let len = end
        .checked_sub(start)
        .filter(|l| *l > 0)
        .ok_or(LedgerError::SizeOutOfRange { old_size: start, new_size: end })?;
    let mut out = Vec::with_capacity(len.count_ones() as usize);
    let mut offset = start;
    for level in (0u8..64).rev() {
        let width = 1u64 << level;
        if len & width == 0 {
            continue;
        }
        if !offset.is_multiple_of(width) {
            return Err(LedgerError::SizeOutOfRange { old_size: start, new_size: end });
        }
        out.push((level, offset >> level));
        offset = offset.checked_add(width).ok_or(LedgerError::TreeTooLarge { size: end })?;
    }
    Ok(out)
}

/// Fold complete-subtree hashes (leftmost first) into the Merkle tree hash of their union.
fn fold_right(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc)))
}

/// Merkle tree hash of leaves `[start, end)`, a node of an RFC 9162 tree (see [`decompose`]).
fn range_hash(reader: &dyn NodeReader, start: u64, end: u64) -> Result<Hash, LedgerError> {
    let parts = decompose(start, end)?;
    let hashes = parts
        .iter()
        .map(|&(level, index)| reader.node(level, index))
        .collect::<Result<Vec<_>, _>>()?;
    fold_right(&hashes).ok_or(LedgerError::EmptyTree)
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    // n >= 2, so n - 1 >= 1 and the shift is below 64.
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The root of the tree of the first `size` leaves.
pub fn root_at(reader: &dyn NodeReader, size: u64) -> Result<Hash, LedgerError> {
    check_size(size)?;
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(reader, 0, size)
}

/// RFC 9162 section 2.1.3.1 `PATH(index, D[size])`: the audit path of leaf `index` in the tree
/// of `size` leaves, from the leaf's sibling up to the root's child.
pub fn inclusion_proof(
    reader: &dyn NodeReader,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, LedgerError> {
    check_size(size)?;
    if size == 0 {
        return Err(LedgerError::EmptyTree);
    }
    if index >= size {
        return Err(LedgerError::IndexOutOfRange { index, size });
    }
    // Walk down from the root, collecting siblings top-down.
    let (mut lo, mut hi) = (0u64, size);
    let mut path = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            path.push(range_hash(reader, mid, hi)?);
            hi = mid;
        } else {
            path.push(range_hash(reader, lo, mid)?);
            lo = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 section 2.1.4.1 `PROOF(old_size, D[new_size])`: proof that the tree of `old_size`
/// leaves is a prefix of the tree of `new_size` leaves. Empty when the sizes are equal.
pub fn consistency_proof(
    reader: &dyn NodeReader,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, LedgerError> {
    check_size(new_size)?;
    if old_size == 0 {
        return Err(LedgerError::EmptyTree);
    }
    if old_size > new_size {
        return Err(LedgerError::SizeOutOfRange { old_size, new_size });
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled; siblings collected top-down.
    let (mut lo, mut hi) = (0u64, new_size);
    let mut whole = true; // b: the old tree is exactly the subtree under consideration
    let mut proof = Vec::new();
    loop {
        if old_size == hi {
            if !whole {
                proof.push(range_hash(reader, lo, hi)?);
            }
            break;
        }
        let mid = lo + split_point(hi - lo);
        if old_size <= mid {
            proof.push(range_hash(reader, mid, hi)?);
            hi = mid;
        } else {
            proof.push(range_hash(reader, lo, mid)?);
            lo = mid;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 section 2.1.3.2: check that `leaf` (a leaf hash) is at `index` in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LedgerError> {
    check_size(size)?;
    if size == 0 {
        return Err(LedgerError::EmptyTree);
    }
    if index >= size {
        return Err(LedgerError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(LedgerError::InclusionProofInvalid("proof is too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(LedgerError::InclusionProofInvalid("proof is too short"));
    }
    if r != *root {
        return Err(LedgerError::InclusionProofInvalid("recomputed root differs"));
    }
    Ok(())
}

/// RFC 9162 section 2.1.4.2: check that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`.
///
/// Equal sizes need an empty proof and equal roots. An old size of 0 is refused (there is no
/// proof to check; the empty tree is a prefix of every tree).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), LedgerError> {
    check_size(new_size)?;
    if old_size == 0 {
        return Err(LedgerError::EmptyTree);
    }
    if old_size > new_size {
        return Err(LedgerError::SizeOutOfRange { old_size, new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(LedgerError::ConsistencyProofInvalid("proof for equal sizes is not empty"));
        }
        if old_root != new_root {
            return Err(LedgerError::ConsistencyProofInvalid("roots of equal sizes differ"));
        }
        return Ok(());
    }
    // Step 2: an old tree that is a complete subtree is its own first proof element.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof);
    let (first, rest) =
        path.split_first().ok_or(LedgerError::ConsistencyProofInvalid("proof is empty"))?;
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (**first, **first);
    for c in rest {
        if snode == 0 {
            return Err(LedgerError::ConsistencyProofInvalid("proof is too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(LedgerError::ConsistencyProofInvalid("proof is too short"));
    }
    if fr != *old_root {
        return Err(LedgerError::ConsistencyProofInvalid("recomputed old root differs"));
    }
    if sr != *new_root {
        return Err(LedgerError::ConsistencyProofInvalid("recomputed new root differs"));
    }
    Ok(())
}

/// The right edge ("compact range") of a tree: the roots of the complete subtrees that make
/// up its leaves, largest first. Appends in O(log n) and reports the newly completed subtree
/// nodes that must be stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Complete-subtree roots for the set bits of `size`, highest level first.
    edge: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild the frontier of the tree of `size` leaves from stored nodes (after a restart):
    /// one read per set bit of `size`.
    pub fn from_reader(reader: &dyn NodeReader, size: u64) -> Result<Self, LedgerError> {
        check_size(size)?;
        if size == 0 {
            return Ok(Self::new());
        }
        let edge = decompose(0, size)?
            .into_iter()
            .map(|(level, index)| reader.node(level, index))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { size, edge })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete-subtree nodes of the right edge, largest (leftmost) first.
    pub fn nodes(&self) -> Vec<StoredNode> {
        let mut out = Vec::with_capacity(self.edge.len());
        let mut offset = 0u64;
        let mut hashes = self.edge.iter();
        for level in (0u8..64).rev() {
            let width = 1u64 << level;
            if self.size & width == 0 {
                continue;
            }
            if let Some(hash) = hashes.next() {
                out.push(StoredNode { level, index: offset >> level, hash: *hash });
            }
            offset = offset.saturating_add(width);
        }
        out
    }

    /// Append a leaf hash. Returns the nodes to store: the level-0 node for the leaf itself,
    /// then every subtree the leaf completes, lowest level first.
    ///
    /// A full tree ([`MAX_TREE_SIZE`] leaves, unreachable in practice) is left unchanged and
    /// nothing is returned; [`Frontier::try_push`] reports that case as an error.
    pub fn push(&mut self, leaf: Hash) -> Vec<StoredNode> {
        self.try_push(leaf).unwrap_or_default()
    }

    /// Append a leaf hash, refusing to grow past [`MAX_TREE_SIZE`] leaves.
    pub fn try_push(&mut self, leaf: Hash) -> Result<Vec<StoredNode>, LedgerError> {
        if self.size >= MAX_TREE_SIZE {
            return Err(LedgerError::TreeTooLarge { size: self.size.saturating_add(1) });
        }
        let mut index = self.size;
        let mut level = 0u8;
        let mut cur = leaf;
        let mut out = vec![StoredNode { level, index, hash: cur }];
        // Each set low bit of the old size is a complete left sibling waiting on the edge.
        while index & 1 == 1 {
            let Some(left) = self.edge.pop() else {
                // The edge always holds one hash per set bit of the size.
                return Err(LedgerError::MissingNode { level, index: index - 1 });
            };
            cur = node_hash(&left, &cur);
            index >>= 1;
            level += 1;
            out.push(StoredNode { level, index, hash: cur });
        }
        self.edge.push(cur);
        self.size += 1;
        Ok(out)
    }

    /// The current root (the empty root for size 0).
    pub fn root(&self) -> Hash {
        fold_right(&self.edge).unwrap_or_else(empty_root)
    }
}

/// An in-memory, Vec-backed tree of complete-subtree hashes: a [`NodeReader`] plus an append
/// helper. Used by tests, the offline verifier and in-memory stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of complete subtree `(l, i)`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree holding `entries` in order.
    pub fn from_entries<I, E>(entries: I) -> Self
    where
        I: IntoIterator<Item = E>,
        E: AsRef<[u8]>,
    {
        let mut t = Self::new();
        for e in entries {
            t.append(e.as_ref());
        }
        t
    }

    /// Append an entry (hashed as a leaf); returns its leaf index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Append an already computed leaf hash; returns its leaf index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.frontier.size();
        for node in self.frontier.push(leaf) {
            self.store(node);
        }
        index
    }

    fn store(&mut self, node: StoredNode) {
        let level = usize::from(node.level);
        while self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        if let Some(row) = self.levels.get_mut(level) {
            // Nodes of a level are completed left to right, so this is always a push.
            if usize::try_from(node.index).is_ok_and(|i| i == row.len()) {
                row.push(node.hash);
            }
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier (right edge) of the current tree.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// Leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Result<Hash, LedgerError> {
        self.node(0, index)
    }

    /// Every stored node, level by level.
    pub fn stored_nodes(&self) -> impl Iterator<Item = StoredNode> + '_ {
        self.levels.iter().zip(0u8..).flat_map(|(row, level)| {
            row.iter().zip(0u64..).map(move |(hash, index)| StoredNode {
                level,
                index,
                hash: *hash,
            })
        })
    }

    /// [`root_at`] over this tree.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        root_at(self, size)
    }

    /// [`inclusion_proof`] over this tree.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        inclusion_proof(self, index, size)
    }

    /// [`consistency_proof`] over this tree.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, LedgerError> {
        consistency_proof(self, old_size, new_size)
    }
}

impl NodeReader for MemoryTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        self.levels
            .get(usize::from(level))
            .and_then(|row| row.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(LedgerError::MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn known_answers() {
        // SHA-256("") and the RFC 6962 leaf hash of the empty entry.
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn frontier_matches_memory_tree_and_reports_nodes() {
        let mut f = Frontier::new();
        let mut t = MemoryTree::new();
        for i in 0u64..40 {
            let leaf = leaf_hash(&i.to_be_bytes());
            let nodes = f.push(leaf);
            assert_eq!(nodes[0], StoredNode { level: 0, index: i, hash: leaf });
            // A leaf completes one subtree per trailing one bit of its index.
            assert_eq!(nodes.len() as u32, 1 + i.trailing_ones());
            t.append_leaf_hash(leaf);
            assert_eq!(f.root(), t.root());
            assert_eq!(f.root(), root_at(&t, i + 1).unwrap());
            assert_eq!(Frontier::from_reader(&t, i + 1).unwrap(), f);
            for n in nodes {
                assert_eq!(t.node(n.level, n.index).unwrap(), n.hash);
            }
        }
        assert_eq!(Frontier::from_reader(&t, 0).unwrap(), Frontier::new());
        assert!(matches!(Frontier::from_reader(&t, 41), Err(LedgerError::MissingNode { .. })));
    }

    #[test]
    fn errors_instead_of_panics() {
        let t = MemoryTree::from_entries([b"a", b"b", b"c"]);
        assert!(matches!(inclusion_proof(&t, 0, 0), Err(LedgerError::EmptyTree)));
        assert!(matches!(
            inclusion_proof(&t, 3, 3),
            Err(LedgerError::IndexOutOfRange { index: 3, size: 3 })
        ));
        assert!(matches!(consistency_proof(&t, 0, 3), Err(LedgerError::EmptyTree)));
        assert!(matches!(consistency_proof(&t, 3, 2), Err(LedgerError::SizeOutOfRange { .. })));
        assert!(matches!(root_at(&t, 4), Err(LedgerError::MissingNode { .. })));
        assert!(matches!(root_at(&t, u64::MAX), Err(LedgerError::TreeTooLarge { .. })));
        assert!(matches!(inclusion_proof(&t, 0, 5), Err(LedgerError::MissingNode { .. })));
        assert!(consistency_proof(&t, 3, 3).unwrap().is_empty());
        let r = t.root();
        assert!(verify_consistency(3, 3, &r, &r, &[]).is_ok());
        assert!(verify_consistency(0, 3, &r, &r, &[]).is_err());
        assert!(verify_consistency(2, 3, &r, &r, &[]).is_err());
        assert!(verify_inclusion(&r, 0, 0, &[], &r).is_err());
        assert!(verify_inclusion(&r, 1, 1, &[], &r).is_err());
        assert!(verify_inclusion(&r, 0, u64::MAX, &[], &r).is_err());
    }

    #[test]
    fn decompose_refuses_unaligned_ranges() {
        assert_eq!(decompose(0, 7).unwrap(), vec![(2, 0), (1, 2), (0, 6)]);
        assert_eq!(decompose(8, 13).unwrap(), vec![(2, 2), (0, 12)]);
        assert!(decompose(1, 3).is_err());
        assert!(decompose(3, 3).is_err());
        assert!(decompose(4, 3).is_err());
    }

    #[test]
    fn full_tree_is_refused() {
        let mut f = Frontier { size: MAX_TREE_SIZE, edge: vec![[0; 32]] };
        assert!(f.try_push([1; 32]).is_err());
        assert!(f.push([1; 32]).is_empty());
        assert_eq!(f.size(), MAX_TREE_SIZE);
        // The last leaf of a 2^63 tree completes 63 subtrees without overflowing.
        let mut g = Frontier { size: MAX_TREE_SIZE - 1, edge: vec![[0; 32]; 63] };
        let nodes = g.try_push([1; 32]).unwrap();
        assert_eq!(nodes.len(), 64);
        assert_eq!(nodes[63].level, 63);
        assert_eq!(g.size(), MAX_TREE_SIZE);
    }
}
