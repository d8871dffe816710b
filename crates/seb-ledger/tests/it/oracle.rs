//! A second, deliberately naive RFC 9162 implementation: MTH, PATH and PROOF transcribed
//! from RFC 9162 section 2.1, recursive over the list of entries, sharing nothing with the
//! crate except the two hash functions.

use sha2::{Digest as _, Sha256};

pub type Hash = [u8; 32];

pub fn leaf(entry: &[u8]) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(entry).finalize().into()
}

pub fn node(l: &Hash, r: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().into()
}

/// The largest power of two smaller than `n` (`n > 1`).
fn k(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]).
pub fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => Sha256::digest(b"").into(),
        1 => leaf(&d[0]),
        n => {
            let k = k(n);
            node(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]).
pub fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    assert!(m < n);
    if n == 1 {
        return vec![];
    }
    let k = k(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
pub fn proof(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    subproof(m, d, true)
}

fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

/// `b"entry-0"`, `b"entry-1"`, ...
pub fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("entry-{i}").into_bytes()).collect()
}
