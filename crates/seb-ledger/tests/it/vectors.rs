//! Golden vectors in `testdata/`, for this crate and for implementations in other languages.
//!
//! The generators below write them; the tests re-derive them and fail on any difference.
//! Regenerate with `SEB_REGENERATE_VECTORS=1 cargo test -p seb-ledger --test it vectors`.
//! Independently of the generator, every Merkle vector in the file is also checked against
//! the naive RFC 9162 oracle and the crate's verifiers.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_core::keys::{PublicKey, SigningKey};
use seb_ledger::checkpoint::{Checkpoint, note_key_hash, verifier_key};
use seb_ledger::merkle::{Hash, MemoryTree, leaf_hash, verify_consistency, verify_inclusion};
use serde_json::{Value, json};

use crate::oracle;

const ENTRIES: usize = 16;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

fn hexes(hs: &[Hash]) -> Vec<String> {
    hs.iter().map(hex::encode).collect()
}

fn unhex(v: &Value) -> Hash {
    hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

/// Inclusion vectors: every (index, size) up to size 8, and all indices of sizes 13 and 16.
fn inclusion_cases() -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for size in (1..=8).chain([13, 16]) {
        for index in 0..size {
            out.push((index, size));
        }
    }
    out
}

/// Consistency vectors: every (old, new) up to 8, and from every old size to 13 and to 16.
fn consistency_cases() -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for new in (1..=8).chain([13, 16]) {
        for old in 1..=new {
            out.push((old, new));
        }
    }
    out
}

pub fn generate_merkle_vectors() -> Value {
    let entries = oracle::entries(ENTRIES);
    let tree = MemoryTree::from_entries(&entries);
    let roots: Vec<Value> = (0..=ENTRIES as u64)
        .map(|size| json!({"size": size, "root": hex::encode(tree.root_at(size).unwrap())}))
        .collect();
    let inclusion: Vec<Value> = inclusion_cases()
        .into_iter()
        .map(|(index, size)| {
            json!({"index": index, "size": size,
                   "proof": hexes(&tree.inclusion_proof(index, size).unwrap())})
        })
        .collect();
    let consistency: Vec<Value> = consistency_cases()
        .into_iter()
        .map(|(old, new)| {
            json!({"old_size": old, "new_size": new,
                   "proof": hexes(&tree.consistency_proof(old, new).unwrap())})
        })
        .collect();
    json!({
        "description": "RFC 9162 Merkle tree vectors (leaf = SHA-256(0x00 || entry), node = \
                        SHA-256(0x01 || left || right), empty = SHA-256('')). Entry i is the \
                        UTF-8 string entry-i. Hashes are lowercase hex; proofs are ordered from \
                        the leaf (or the old subtree) upwards, as in RFC 9162 section 2.1.",
        "entries": entries.iter().map(|e| String::from_utf8(e.clone()).unwrap()).collect::<Vec<_>>(),
        "leaf_hashes": entries.iter().map(|e| hex::encode(leaf_hash(e))).collect::<Vec<_>>(),
        "roots": roots,
        "inclusion": inclusion,
        "consistency": consistency,
    })
}

pub fn generate_checkpoint_vectors() -> Value {
    let entries = oracle::entries(ENTRIES);
    let tree = MemoryTree::from_entries(&entries);
    let seed = [0x5e_u8; 32];
    let sk = SigningKey::from_seed(&seed);
    let pk = sk.public_key();
    let name = "seb.example/ledger";
    let notes: Vec<Value> = [0u64, 1, 7, 16]
        .into_iter()
        .map(|size| {
            let c = Checkpoint { origin: name.into(), size, root: tree.root_at(size).unwrap() };
            json!({"origin": c.origin, "size": size, "root": hex::encode(c.root),
                   "body": c.body(), "note": c.sign(name, &sk)})
        })
        .collect();
    json!({
        "description": "C2SP tlog-checkpoint notes (C2SP signed-note, Ed25519) over the roots of \
                        merkle-vectors.json. The key is the Ed25519 seed below (a test key).",
        "seed": hex::encode(seed),
        "key_name": name,
        "public_key": pk.to_base64(),
        "key_hash": hex::encode(note_key_hash(name, &pk)),
        "verifier_key": verifier_key(name, &pk),
        "checkpoints": notes,
    })
}

fn check_or_regenerate(file: &str, generated: &Value) {
    let text = serde_json::to_string_pretty(generated).unwrap() + "\n";
    let p = path(file);
    if std::env::var_os("SEB_REGENERATE_VECTORS").is_some_and(|v| v == "1") {
        std::fs::write(&p, &text).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!("{}: {e} (regenerate with SEB_REGENERATE_VECTORS=1)", p.display())
    });
    assert!(
        on_disk == text,
        "{} differs from what the code derives; if the change is intended, regenerate with \
         SEB_REGENERATE_VECTORS=1 and review the diff",
        p.display()
    );
}

#[test]
fn merkle_vectors_are_up_to_date() {
    check_or_regenerate("merkle-vectors.json", &generate_merkle_vectors());
}

#[test]
fn checkpoint_vectors_are_up_to_date() {
    check_or_regenerate("checkpoint-vectors.json", &generate_checkpoint_vectors());
}

fn load(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path(file)).unwrap()).unwrap()
}

#[test]
fn merkle_vectors_agree_with_the_naive_oracle() {
    let v = load("merkle-vectors.json");
    let entries: Vec<Vec<u8>> =
        v["entries"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().into()).collect();
    assert_eq!(entries, oracle::entries(ENTRIES));
    for (e, h) in entries.iter().zip(v["leaf_hashes"].as_array().unwrap()) {
        assert_eq!(oracle::leaf(e), unhex(h));
    }
    let roots = v["roots"].as_array().unwrap();
    assert_eq!(roots.len(), ENTRIES + 1);
    let root = |size: u64| unhex(&roots[size as usize]["root"]);
    for r in roots {
        let size = r["size"].as_u64().unwrap() as usize;
        assert_eq!(oracle::mth(&entries[..size]), unhex(&r["root"]));
    }
    for c in v["inclusion"].as_array().unwrap() {
        let (index, size) = (c["index"].as_u64().unwrap(), c["size"].as_u64().unwrap());
        let proof: Vec<Hash> = c["proof"].as_array().unwrap().iter().map(unhex).collect();
        assert_eq!(proof, oracle::path(index as usize, &entries[..size as usize]));
        verify_inclusion(&oracle::leaf(&entries[index as usize]), index, size, &proof, &root(size))
            .unwrap();
    }
    for c in v["consistency"].as_array().unwrap() {
        let (old, new) = (c["old_size"].as_u64().unwrap(), c["new_size"].as_u64().unwrap());
        let proof: Vec<Hash> = c["proof"].as_array().unwrap().iter().map(unhex).collect();
        assert_eq!(proof, oracle::proof(old as usize, &entries[..new as usize]));
        verify_consistency(old, new, &root(old), &root(new), &proof).unwrap();
    }
}

#[test]
fn checkpoint_vectors_verify() {
    let v = load("checkpoint-vectors.json");
    let pk = PublicKey::from_base64(v["public_key"].as_str().unwrap()).unwrap();
    let name = v["key_name"].as_str().unwrap();
    let roots = load("merkle-vectors.json")["roots"].clone();
    for c in v["checkpoints"].as_array().unwrap() {
        let parsed = Checkpoint::parse_and_verify(c["note"].as_str().unwrap(), name, &pk).unwrap();
        assert_eq!(parsed.size, c["size"].as_u64().unwrap());
        assert_eq!(parsed.root, unhex(&roots[parsed.size as usize]["root"]));
        assert_eq!(parsed.body(), c["body"].as_str().unwrap());
        assert_eq!(
            STANDARD.encode(parsed.root),
            c["body"].as_str().unwrap().lines().nth(2).unwrap()
        );
    }
}
