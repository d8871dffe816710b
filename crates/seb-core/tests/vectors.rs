//! Golden vectors (`crates/seb-core/testdata/`, format in its README.md).
//!
//! 1. Every stored pipeline case is re-derived from its stored inputs (broker configuration,
//!    scope rule, snapshot, presentation bytes) by running the pure pipeline, and must give the
//!    stored verdict and presented digests.
//! 2. The generator (shared with `cargo xtask vectors`) is run in memory and must reproduce
//!    every stored file byte for byte, with no stale files left over.
//! 3. RFC 8785, envelope and key vectors are checked against `seb_core`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "support/vectors_gen.rs"]
mod vectors_gen;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use seb_core::json;
use seb_core::keys::{PublicKey, SigningKey};
use seb_core::types::{CheckKind, Decision, FailedCheck};
use vectors_gen::{GenResult, run_case};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn read(rel: &str) -> Vec<u8> {
    let p = testdata().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn read_json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn index_cases() -> Vec<(String, Value)> {
    let index = read_json("pipeline/index.json");
    assert_eq!(index["schema"], "seb-pipeline-index/1");
    index["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["expected"].clone()))
        .collect()
}

fn rederive(name: &str) -> GenResult<(Value, Value, Value, Value, String)> {
    let case = read_json(&format!("pipeline/{name}.json"));
    assert_eq!(case["schema"], vectors_gen::CASE_SCHEMA, "{name}");
    assert_eq!(case["name"], name);
    let body = read(&format!("pipeline/{}", case["presentation_file"].as_str().unwrap()));
    let verdict = run_case(&body, &case["broker"], &case["scope"], &case["snapshot"])?;
    let reason = verdict.as_ref().err().map(|r| r.reason.clone()).unwrap_or_default();
    Ok((
        vectors_gen::verdict_json(&verdict),
        case["expected"].clone(),
        vectors_gen::presented_json(&verdict),
        case["presented"].clone(),
        reason,
    ))
}

#[test]
fn stored_pipeline_cases_re_derive_from_their_inputs() {
    let cases = index_cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, indexed) in &cases {
        let (got, stored, got_presented, stored_presented, reason) = rederive(name).unwrap();
        println!("{name:<48} {got} {reason}");
        if &stored != indexed {
            failures.push(format!("{name}: index says {indexed}, case file says {stored}"));
        }
        if got != stored {
            failures.push(format!("{name}: pipeline says {got} ({reason}), stored {stored}"));
        }
        if got_presented != stored_presented {
            failures
                .push(format!("{name}: presented {got_presented}\n  stored {stored_presented}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn pipeline_cases_cover_every_check_and_decision() {
    let cases = index_cases();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut admissible = 0;
    for (_, e) in &cases {
        if e == "admissible" {
            admissible += 1;
        } else {
            seen.insert((
                e["failed_check"].as_str().unwrap().to_owned(),
                e["decision"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(admissible >= 10);
    // Rows 1–11 of section 7 with every decision each can produce (12, reserve, is the
    // store's transaction and not part of the pure predicate).
    let want = [
        (FailedCheck::Parse, Decision::Reject),
        (FailedCheck::Signature, Decision::FailClosed),
        (FailedCheck::Path, Decision::Reject),
        (FailedCheck::Caller, Decision::Reject),
        (FailedCheck::Match, Decision::Reject),
        (FailedCheck::Time, Decision::Reject),
        (FailedCheck::PolicyEpoch, Decision::Readmit),
        (FailedCheck::Revocation, Decision::FailClosed),
        (FailedCheck::Scope, Decision::Reject),
        (FailedCheck::Replay, Decision::Reject),
        (FailedCheck::Drift, Decision::Readmit),
        (FailedCheck::Drift, Decision::FailClosed),
    ];
    for (c, d) in want {
        assert!(
            seen.contains(&(c.as_str().to_owned(), d.as_str().to_owned())),
            "no case for {c}/{d}"
        );
    }
    // Every constraint check both passes and fails somewhere.
    for k in ["eq", "in", "range", "prefix", "cidr_within", "max_len"] {
        let pass = cases
            .iter()
            .any(|(n, e)| n.starts_with(&format!("constraint_{k}_pass")) && e == "admissible");
        let fail = cases.iter().any(|(n, e)| {
            n.starts_with(&format!("constraint_{k}_fail")) && e["failed_check"] == "match"
        });
        assert!(pass && fail, "constraint {k}: pass {pass}, fail {fail}");
    }
    // And the check kinds named in the files are the ones the core knows.
    for k in [
        CheckKind::Eq,
        CheckKind::In,
        CheckKind::Range,
        CheckKind::Prefix,
        CheckKind::CidrWithin,
        CheckKind::MaxLen,
    ] {
        assert!(serde_json::to_value(k).unwrap().is_string());
    }
}

#[test]
fn generator_reproduces_every_stored_file_byte_for_byte() {
    let files = vectors_gen::generate().unwrap();
    let mut generated = BTreeSet::new();
    let mut differ = Vec::new();
    for f in &files {
        generated.insert(f.path.clone());
        let on_disk = std::fs::read(testdata().join(&f.path)).ok();
        if on_disk.as_deref() != Some(f.bytes.as_slice()) {
            differ.push(f.path.clone());
        }
    }
    let mut stale = Vec::new();
    for sub in vectors_gen::OWNED_DIRS {
        let Ok(entries) = std::fs::read_dir(testdata().join(sub)) else { continue };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                let rel = format!("{sub}/{}", e.file_name().to_string_lossy());
                if !generated.contains(&rel) {
                    stale.push(rel);
                }
            }
        }
    }
    assert!(
        differ.is_empty() && stale.is_empty(),
        "generator drift (run `cargo xtask vectors`):\n differ: {differ:?}\n stale: {stale:?}"
    );
}

// ---------------------------------------------------------------------------------------
// RFC 8785
// ---------------------------------------------------------------------------------------

#[test]
fn jcs_input_output_pairs() {
    let mut names: Vec<String> = std::fs::read_dir(testdata().join("jcs/input"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let input = read(&format!("jcs/input/{name}"));
        let expected = read(&format!("jcs/output/{name}"));
        // Lenient parse (RFC 8785's inputs hold numbers beyond the strict parser's range).
        let v: Value = serde_json::from_slice(&input).unwrap();
        let got = json::canonical(&v).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected), "{name}");
        let oracle = serde_json_canonicalizer::to_vec(&v).unwrap();
        assert_eq!(oracle, expected, "{name}: serde_json_canonicalizer disagrees with the vector");
        // Where the strict parser accepts the input, it must canonicalise identically.
        if let Ok(strict) = json::parse_value(&input, json::DEFAULT_MAX_BODY) {
            assert_eq!(json::canonical(&strict).unwrap(), expected, "{name} (strict parse)");
        }
        // Canonical output is a fixed point.
        let again: Value = serde_json::from_slice(&expected).unwrap();
        assert_eq!(json::canonical(&again).unwrap(), expected, "{name}: not idempotent");
    }
}

#[test]
fn jcs_rfc8785_appendix_b_numbers() {
    let doc = read_json("jcs/numbers.json");
    let numbers = doc["numbers"].as_array().unwrap();
    assert!(numbers.len() >= 20);
    for n in numbers {
        let bits = u64::from_str_radix(n["ieee754_hex"].as_str().unwrap(), 16).unwrap();
        let f = f64::from_bits(bits);
        let want = n["canonical"].as_str().unwrap();
        let got = String::from_utf8(json::canonical(&f).unwrap()).unwrap();
        assert_eq!(got, want, "bits {bits:016x}");
        assert_eq!(
            serde_json_canonicalizer::to_string(&f).unwrap(),
            want,
            "oracle, bits {bits:016x}"
        );
        // And the text reads back as the same double.
        assert_eq!(want.parse::<f64>().unwrap().to_bits(), if f == 0.0 { 0 } else { bits });
    }
    for bits in doc["not_serialisable"].as_array().unwrap() {
        let f = f64::from_bits(u64::from_str_radix(bits.as_str().unwrap(), 16).unwrap());
        assert!(json::canonical(&f).is_err(), "{f} must not canonicalise");
    }
}

// ---------------------------------------------------------------------------------------
// Envelopes and keys
// ---------------------------------------------------------------------------------------

#[test]
fn envelope_vectors() {
    let doc = read_json("envelopes.json");
    for p in doc["pae"].as_array().unwrap() {
        let got = seb_core::envelope::pae(
            p["payload_type"].as_str().unwrap(),
            p["body_utf8"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(hex::encode(got), p["pae_hex"].as_str().unwrap());
    }
    let cases = doc["envelopes"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let trusted: Vec<String> = serde_json::from_value(c["trusted_keys"].clone()).unwrap();
        let got = vectors_gen::verify_envelope_case(
            &c["envelope"],
            &trusted,
            c["expected_payload_type"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(got, c["expected"], "{}", c["name"]);
    }
}

#[test]
fn key_vectors() {
    let doc = read_json("keys.json");
    for k in doc["keys"].as_array().unwrap() {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(k["seed_hex"].as_str().unwrap(), &mut seed).unwrap();
        let sk = SigningKey::from_seed(&seed);
        assert_eq!(sk.public_key().to_base64(), k["public_key"].as_str().unwrap());
        assert_eq!(sk.kid().as_str(), k["kid"].as_str().unwrap());
    }
    for c in doc["public_key_checks"].as_array().unwrap() {
        let got =
            vectors_gen::key_check_kind(&PublicKey::from_base64(c["public_key"].as_str().unwrap()));
        assert_eq!(got, c["expected"].as_str().unwrap(), "{}", c["name"]);
    }
    // RFC 8032 section 7.1 known answers.
    for t in doc["rfc8032"].as_array().unwrap() {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(t["seed_hex"].as_str().unwrap(), &mut seed).unwrap();
        let sk = SigningKey::from_seed(&seed);
        assert_eq!(hex::encode(sk.public_key().as_bytes()), t["public_key_hex"].as_str().unwrap());
        let msg = hex::decode(t["message_hex"].as_str().unwrap()).unwrap();
        let sig = sk.sign(&msg);
        assert_eq!(hex::encode(sig), t["signature_hex"].as_str().unwrap());
        assert!(sk.public_key().verify(&msg, &sig).is_ok());
    }
}

/// Regression: the universal forgery for a small-order key really is accepted by lax
/// (non-strict) verification, so refusing weak keys and using `verify_strict` matters.
#[test]
fn small_order_forgery_is_a_real_forgery_under_lax_rules() {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&vectors_gen::IDENTITY_POINT).unwrap();
    let raw: [u8; 64] =
        STANDARD.decode(vectors_gen::small_order_forgery()).unwrap().try_into().unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&raw);
    use ed25519_dalek::Verifier as _;
    assert!(vk.verify(b"any message at all", &sig).is_ok(), "lax verification accepts it");
    assert!(vk.verify_strict(b"any message at all", &sig).is_err());
    assert!(PublicKey::from_bytes(&vectors_gen::IDENTITY_POINT).is_err());
}
