//! Merkle math against two oracles (the `ct-merkle` crate and the naive RFC 9162 transcription
//! in `oracle.rs`), property tests, tamper tests and the O(log n) read bound.

use std::cell::Cell;
use std::sync::OnceLock;

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use proptest::prelude::*;
use seb_ledger::merkle::{
    Frontier, Hash, MemoryTree, NodeReader, consistency_proof, empty_root, inclusion_proof,
    leaf_hash, node_hash, root_at, verify_consistency, verify_inclusion,
};
use seb_ledger::{LedgerError, StoredNode};
use sha2::Sha256;

use crate::oracle;

/// Sizes up to this are checked exhaustively (every index, every old size, every byte flip).
const SMALL: usize = 40;
/// Largest size the property tests draw.
const LARGE: usize = 2048;

fn big_tree() -> &'static (Vec<Vec<u8>>, MemoryTree) {
    static TREE: OnceLock<(Vec<Vec<u8>>, MemoryTree)> = OnceLock::new();
    TREE.get_or_init(|| {
        let entries = oracle::entries(LARGE);
        let tree = MemoryTree::from_entries(&entries);
        (entries, tree)
    })
}

fn ct_bytes_to_hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks(32).map(|c| c.try_into().unwrap()).collect()
}

#[test]
fn hash_functions_match_the_oracle() {
    assert_eq!(leaf_hash(b"entry-0"), oracle::leaf(b"entry-0"));
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert_eq!(node_hash(&a, &b), oracle::node(&a, &b));
    assert_eq!(empty_root(), oracle::mth(&[]));
}

#[test]
fn differential_against_ct_merkle() {
    const N: usize = 200;
    let entries = oracle::entries(N);
    let ours = MemoryTree::from_entries(&entries);
    let mut ct = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    assert_eq!(ct.root().as_bytes().as_slice(), root_at(&ours, 0).unwrap().as_slice());
    for n in 1..=N {
        ct.push(entries[n - 1].clone());
        let size = n as u64;
        let root = root_at(&ours, size).unwrap();
        assert_eq!(ct.root().as_bytes().as_slice(), root.as_slice(), "root at {n}");
        for i in 0..n {
            let theirs = ct_bytes_to_hashes(ct.prove_inclusion(i).as_bytes());
            assert_eq!(inclusion_proof(&ours, i as u64, size).unwrap(), theirs, "PATH({i}, {n})");
        }
        for m in 1..=n {
            let theirs = ct_bytes_to_hashes(ct.prove_consistency(n - m).as_bytes());
            assert_eq!(
                consistency_proof(&ours, m as u64, size).unwrap(),
                theirs,
                "PROOF({m}, {n})"
            );
        }
    }
}

#[test]
fn ct_merkle_accepts_our_proofs() {
    let entries = oracle::entries(77);
    let ours = MemoryTree::from_entries(&entries);
    let mut ct = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for e in &entries {
        ct.push(e.clone());
    }
    let new_root = ct.root();
    for i in 0..77u64 {
        let p = inclusion_proof(&ours, i, 77).unwrap();
        let proof = ct_merkle::InclusionProof::<Sha256>::from_digests(p.iter().map(|h| h.into()));
        new_root.verify_inclusion(&entries[i as usize], i, &proof).unwrap();
    }
    for m in 1..=77u64 {
        let p = consistency_proof(&ours, m, 77).unwrap();
        let proof = ct_merkle::ConsistencyProof::<Sha256>::from_digests(p.iter().map(|h| h.into()));
        let old = ct_merkle::RootHash::<Sha256>::new(root_at(&ours, m).unwrap().into(), m);
        new_root.verify_consistency(&old, &proof).unwrap();
    }
}

#[test]
fn exhaustive_small_sizes_against_naive_oracle() {
    let entries = oracle::entries(SMALL);
    let tree = MemoryTree::from_entries(&entries);
    for n in 0..=SMALL {
        let d = &entries[..n];
        let size = n as u64;
        let root = root_at(&tree, size).unwrap();
        assert_eq!(root, oracle::mth(d), "MTH at {n}");
        let mut f = Frontier::new();
        for e in d {
            f.push(leaf_hash(e));
        }
        assert_eq!(f.root(), root);
        for i in 0..n {
            let p = inclusion_proof(&tree, i as u64, size).unwrap();
            assert_eq!(p, oracle::path(i, d), "PATH({i}, {n})");
            verify_inclusion(&leaf_hash(&d[i]), i as u64, size, &p, &root).unwrap();
        }
        for m in 1..=n {
            let p = consistency_proof(&tree, m as u64, size).unwrap();
            assert_eq!(p, oracle::proof(m, d), "PROOF({m}, {n})");
            let old = root_at(&tree, m as u64).unwrap();
            verify_consistency(m as u64, size, &old, &root, &p).unwrap();
        }
    }
}

fn flip(h: &Hash, byte: usize, bit: u8) -> Hash {
    let mut h = *h;
    h[byte] ^= 1 << bit;
    h
}

#[test]
fn every_byte_flip_breaks_small_proofs() {
    let entries = oracle::entries(SMALL);
    let tree = MemoryTree::from_entries(&entries);
    for n in 1..=SMALL as u64 {
        let root = tree.root_at(n).unwrap();
        for i in 0..n {
            let leaf = tree.leaf(i).unwrap();
            let p = tree.inclusion_proof(i, n).unwrap();
            for b in 0..32 {
                assert!(verify_inclusion(&flip(&leaf, b, 0), i, n, &p, &root).is_err());
                assert!(verify_inclusion(&leaf, i, n, &p, &flip(&root, b, 7)).is_err());
                for k in 0..p.len() {
                    let mut q = p.clone();
                    q[k] = flip(&q[k], b, 3);
                    assert!(
                        verify_inclusion(&leaf, i, n, &q, &root).is_err(),
                        "({i}, {n}) [{k}][{b}]"
                    );
                }
            }
            // Wrong index, truncated and extended proofs fail too.
            for j in (0..n).filter(|&j| j != i) {
                assert!(verify_inclusion(&leaf, j, n, &p, &root).is_err());
            }
            if let Some((_, shorter)) = p.split_last() {
                assert!(verify_inclusion(&leaf, i, n, shorter, &root).is_err());
            }
            let mut longer = p.clone();
            longer.push(root);
            assert!(verify_inclusion(&leaf, i, n, &longer, &root).is_err());
        }
        for m in 1..=n {
            let old = tree.root_at(m).unwrap();
            let p = tree.consistency_proof(m, n).unwrap();
            for b in 0..32 {
                assert!(verify_consistency(m, n, &flip(&old, b, 1), &root, &p).is_err());
                assert!(verify_consistency(m, n, &old, &flip(&root, b, 5), &p).is_err());
                for k in 0..p.len() {
                    let mut q = p.clone();
                    q[k] = flip(&q[k], b, 6);
                    assert!(
                        verify_consistency(m, n, &old, &root, &q).is_err(),
                        "({m}, {n}) [{k}][{b}]"
                    );
                }
            }
            if let Some((_, shorter)) = p.split_last() {
                assert!(verify_consistency(m, n, &old, &root, shorter).is_err());
            }
            let mut longer = p.clone();
            longer.push(root);
            assert!(verify_consistency(m, n, &old, &root, &longer).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_verify_and_match_the_oracle(
        (n, i) in (1..=LARGE).prop_flat_map(|n| (Just(n), 0..n))
    ) {
        let (entries, tree) = big_tree();
        let d = &entries[..n];
        let root = root_at(tree, n as u64).unwrap();
        prop_assert_eq!(root, oracle::mth(d));
        let p = inclusion_proof(tree, i as u64, n as u64).unwrap();
        prop_assert_eq!(&p, &oracle::path(i, d));
        prop_assert!(verify_inclusion(&leaf_hash(&d[i]), i as u64, n as u64, &p, &root).is_ok());
    }

    #[test]
    fn consistency_proofs_verify_and_match_the_oracle(
        (n, m) in (1..=LARGE).prop_flat_map(|n| (Just(n), 1..=n))
    ) {
        let (entries, tree) = big_tree();
        let p = consistency_proof(tree, m as u64, n as u64).unwrap();
        prop_assert_eq!(&p, &oracle::proof(m, &entries[..n]));
        let old = root_at(tree, m as u64).unwrap();
        let new = root_at(tree, n as u64).unwrap();
        prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &p).is_ok());
    }

    #[test]
    fn a_flipped_bit_breaks_inclusion(
        (n, i) in (1..=LARGE).prop_flat_map(|n| (Just(n), 0..n)),
        which in any::<prop::sample::Index>(),
        byte in 0..32usize,
        bit in 0..8u8,
    ) {
        let (_, tree) = big_tree();
        let (n, i) = (n as u64, i as u64);
        let root = root_at(tree, n).unwrap();
        let leaf = tree.leaf(i).unwrap();
        let mut p = inclusion_proof(tree, i, n).unwrap();
        // Position 0 = the leaf, 1 = the root, 2.. = a proof element.
        let k = which.index(p.len() + 2);
        let (leaf, root) = match k {
            0 => (flip(&leaf, byte, bit), root),
            1 => (leaf, flip(&root, byte, bit)),
            _ => {
                p[k - 2] = flip(&p[k - 2], byte, bit);
                (leaf, root)
            }
        };
        prop_assert!(verify_inclusion(&leaf, i, n, &p, &root).is_err());
    }

    #[test]
    fn a_flipped_bit_breaks_consistency(
        (n, m) in (1..=LARGE).prop_flat_map(|n| (Just(n), 1..=n)),
        which in any::<prop::sample::Index>(),
        byte in 0..32usize,
        bit in 0..8u8,
    ) {
        let (_, tree) = big_tree();
        let (n, m) = (n as u64, m as u64);
        let mut old = root_at(tree, m).unwrap();
        let mut new = root_at(tree, n).unwrap();
        let mut p = consistency_proof(tree, m, n).unwrap();
        let k = which.index(p.len() + 2);
        match k {
            0 => old = flip(&old, byte, bit),
            1 => new = flip(&new, byte, bit),
            _ => p[k - 2] = flip(&p[k - 2], byte, bit),
        }
        prop_assert!(verify_consistency(m, n, &old, &new, &p).is_err());
    }

    #[test]
    fn frontier_rebuilt_from_a_reader_continues_identically(n in 0..=LARGE as u64, extra in 0..64u64) {
        let (entries, tree) = big_tree();
        let mut rebuilt = Frontier::from_reader(tree, n).unwrap();
        let mut fresh = Frontier::new();
        for e in &entries[..n as usize] {
            fresh.push(leaf_hash(e));
        }
        prop_assert_eq!(&rebuilt, &fresh);
        let upto = (n + extra).min(LARGE as u64);
        for i in n..upto {
            let nodes = rebuilt.push(leaf_hash(&entries[i as usize]));
            // Every reported node is the one the full tree stores.
            for StoredNode { level, index, hash } in nodes {
                prop_assert_eq!(tree.node(level, index).unwrap(), hash);
            }
        }
        prop_assert_eq!(rebuilt.root(), root_at(tree, upto).unwrap());
    }
}

/// Counts node reads, to hold every operation to O(log n) of them.
struct Counting<'a> {
    inner: &'a MemoryTree,
    reads: Cell<u64>,
}

impl NodeReader for Counting<'_> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.node(level, index)
    }
}

#[test]
fn proofs_need_only_logarithmic_reads() {
    // Synthetic leaf hashes keep this fast; the bound is about reads, not hashing.
    let mut tree = MemoryTree::new();
    let n_max = (1u64 << 17) + 12_345;
    for i in 0..n_max {
        tree.append_leaf_hash(node_hash(&[0; 32], &{
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&i.to_be_bytes());
            h
        }));
    }
    let r = Counting { inner: &tree, reads: Cell::new(0) };
    let mut sizes: Vec<u64> = vec![1, 2, 3, 1 << 16, (1 << 16) + 1, (1 << 17) - 1, n_max];
    sizes.extend((1..40).map(|k| n_max / k));
    for &n in &sizes {
        let log = u64::from(64 - n.leading_zeros());
        let measure = |f: &dyn Fn()| {
            r.reads.set(0);
            f();
            r.reads.get()
        };
        assert!(
            measure(&|| {
                root_at(&r, n).unwrap();
            }) <= log
        );
        assert!(measure(&|| drop(Frontier::from_reader(&r, n).unwrap())) <= log);
        for i in [0, n / 3, n / 2, n - 1] {
            let reads = measure(&|| drop(inclusion_proof(&r, i, n).unwrap()));
            assert!(reads <= 2 * log, "inclusion {i}/{n}: {reads} reads");
        }
        for m in [1, n / 3, n / 2, n - 1, n].into_iter().filter(|&m| m > 0) {
            let reads = measure(&|| drop(consistency_proof(&r, m, n).unwrap()));
            assert!(reads <= 2 * log, "consistency {m}/{n}: {reads} reads");
        }
    }
}

#[test]
fn missing_nodes_and_store_failures_surface_as_errors() {
    #[derive(Debug)]
    struct Broken;
    impl NodeReader for Broken {
        fn node(&self, _: u8, _: u64) -> Result<Hash, LedgerError> {
            Err(LedgerError::storage(std::io::Error::other("disk on fire")))
        }
    }
    assert!(matches!(root_at(&Broken, 3), Err(LedgerError::Storage(_))));
    assert_eq!(root_at(&Broken, 0).unwrap(), empty_root());
    let e = inclusion_proof(&Broken, 1, 3).unwrap_err();
    assert_eq!(e.to_string(), "node store failed: disk on fire");
    assert!(std::error::Error::source(&e).is_some());
}
