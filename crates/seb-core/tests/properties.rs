//! Property tests for the spec-level functions of seb-core (GUIDE item 11).
//!
//! - RFC 8785: idempotence through the strict parser, and agreement with a second
//!   implementation (`serde_json_canonicalizer`) on arbitrary JSON.
//! - Strict parsing never panics, and accepts every serialised value it should.
//! - DSSE envelopes: sign/verify round trip; no single-byte change to a signed envelope's JSON
//!   yields a different verified payload; any bit flip in a signature or payload fails.
//! - The pure pipeline never panics on mutated presentations and always names a check with the
//!   decision section 7 assigns to it; a mutation it admits is the same presentation.
//! - Differential Ed25519: signatures by seb-core verify under aws-lc-rs, and strict
//!   verification agrees with aws-lc-rs on mutated signatures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "support/vectors_gen.rs"]
mod vectors_gen;

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use serde_json::{Number, Value, json};

use seb_core::envelope::{Envelope, PayloadType, pae};
use seb_core::json;
use seb_core::keys::{SigningKey, TrustedKeys};
use seb_core::pipeline::evaluate;
use seb_core::types::{Decision, FailedCheck, Presentation};
use vectors_gen::{EnforceableChecks, LoadedBroker, LoadedSnapshot, Scenario};

const MAX_SAFE: i64 = (1 << 53) - 1;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('a', 'z'),
        1 => prop::sample::select(vec![
            '\u{0}', '\u{8}', '\u{1f}', '"', '\\', '/', '\u{7f}', '\u{80}', 'é', '€', '\u{2028}',
            '\u{d7ff}', '\u{e000}', '\u{fb33}', '\u{ffff}', '\u{10000}', '😀', '\u{10ffff}',
        ]),
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop::collection::vec(arb_char(), 0..12).prop_map(|v| v.into_iter().collect())
}

/// Integers within ±(2^53 − 1); finite doubles, limited to the same magnitude when `strict`.
fn arb_number(strict: bool) -> impl Strategy<Value = Value> {
    let float = if strict { in_range_f64().boxed() } else { finite_f64().boxed() }
        .prop_map(|f| Value::Number(Number::from_f64(f).unwrap()));
    prop_oneof![
        (-MAX_SAFE..=MAX_SAFE).prop_map(|i| json!(i)),
        (-1000i64..1000).prop_map(|i| json!(i)),
        float,
        (-1_000_000i64..1_000_000, 0u32..8)
            .prop_map(|(m, e)| json!(m as f64 / f64::from(10u32.pow(e)))),
    ]
}

/// Any finite double (NaN and ±∞ mapped to other values rather than filtered).
fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>()
        .prop_map(|f| if f.is_finite() { f } else { f64::from_bits(f.to_bits() & !(1 << 62)) })
}

/// Finite doubles with magnitude ≤ 2^53 − 1 (reduced, not filtered, so nothing is rejected).
fn in_range_f64() -> impl Strategy<Value = f64> {
    finite_f64().prop_map(|f| f % (MAX_SAFE as f64))
}

fn arb_json(strict: bool) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(strict),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((arb_string(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn payload_type(i: usize) -> PayloadType {
    PayloadType::ALL[i % PayloadType::ALL.len()]
}

// ---------------------------------------------------------------------------------------
// RFC 8785 and strict parsing
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// canonical(parse(canonical(v))) == canonical(v) through the strict parser, and the
    /// second implementation produces the same bytes.
    #[test]
    fn canonical_is_idempotent_and_agrees_with_oracle(v in arb_json(true)) {
        let c = json::canonical(&v).unwrap();
        let oracle = serde_json_canonicalizer::to_vec(&v).unwrap();
        prop_assert_eq!(&c, &oracle, "oracle disagrees");
        let parsed = json::parse_value(&c, usize::MAX).unwrap();
        prop_assert_eq!(json::canonical(&parsed).unwrap(), c);
    }

    /// Over the whole finite double range (beyond the strict parser's limit), both
    /// implementations agree and canonical text reads back as the same value.
    #[test]
    fn canonical_agrees_with_oracle_on_all_finite_doubles(v in arb_json(false)) {
        let c = json::canonical(&v).unwrap();
        prop_assert_eq!(&c, &serde_json_canonicalizer::to_vec(&v).unwrap());
        let back: Value = serde_json::from_slice(&c).unwrap();
        prop_assert_eq!(json::canonical(&back).unwrap(), c);
    }

    /// Any finite double survives canonicalisation and a (lenient) parse bit for bit
    /// (−0 becomes 0, as RFC 8785 says).
    #[test]
    fn doubles_round_trip_through_canonical_text(f in finite_f64()) {
        let c = json::canonical(&f).unwrap();
        let back: f64 = String::from_utf8(c).unwrap().parse().unwrap();
        prop_assert_eq!(back.to_bits(), if f == 0.0 { 0 } else { f.to_bits() });
    }

    /// The strict parser reads the canonical text of any in-range double back bit for bit
    /// (otherwise a broker would canonicalise a request differently from its signer).
    #[test]
    fn doubles_survive_the_strict_parser(f in in_range_f64()) {
        let c = json::canonical(&f).unwrap();
        let back = json::parse_value(&c, 64).unwrap();
        prop_assert_eq!(back.as_f64().unwrap().to_bits(), if f == 0.0 { 0 } else { f.to_bits() }, "{}", String::from_utf8_lossy(&c));
    }

    /// Whatever a serialiser writes for a value in range, the strict parser accepts, and the
    /// canonical form is unchanged.
    #[test]
    fn strict_parse_accepts_serialised_values(v in arb_json(true), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
        let parsed = json::parse_value(&text, usize::MAX).unwrap();
        prop_assert_eq!(json::canonical(&parsed).unwrap(), json::canonical(&v).unwrap());
    }

    #[test]
    fn strict_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = json::parse_value(&bytes, 1024);
        let _ = json::parse::<Presentation>(&bytes, 1024);
        let _ = json::parse::<Envelope>(&bytes, 1024);
    }

    #[test]
    fn strict_parse_never_panics_on_json_like_text(s in r#"[\[\]{}",:0-9eE.+\-a-z\\ u]{0,64}"#) {
        let _ = json::parse_value(s.as_bytes(), 1024);
        let _ = json::parse::<Presentation>(s.as_bytes(), 1024);
    }
}

// ---------------------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------------------

fn envelope_fixture(seed: [u8; 32], payload: &[u8], ty: PayloadType) -> (Envelope, TrustedKeys) {
    let k = SigningKey::from_seed(&seed);
    let trusted: TrustedKeys = [k.public_key()].into_iter().collect();
    (Envelope::sign_bytes(ty, payload, &[&k]), trusted)
}

/// The single-byte-change property for one envelope: every mutated serialisation either fails
/// to parse, fails to verify, or verifies to the identical payload and signature.
fn check_byte_mutation(
    env: &Envelope,
    trusted: &TrustedKeys,
    ty: PayloadType,
    pos: usize,
    byte: u8,
) -> Result<(), TestCaseError> {
    let mut text = serde_json::to_vec(env).unwrap();
    let pos = pos % text.len();
    if text[pos] == byte {
        return Ok(());
    }
    text[pos] = byte;
    let Ok(mutated) = json::parse::<Envelope>(&text, json::DEFAULT_MAX_BODY) else {
        return Ok(());
    };
    if let Ok(v) = mutated.verify(ty, trusted) {
        prop_assert_eq!(
            v.bytes(),
            env.insecure_payload_bytes().unwrap(),
            "different payload verified"
        );
        prop_assert_eq!(&mutated.signatures, &env.signatures);
        prop_assert_eq!(&mutated.payload, &env.payload);
        prop_assert_eq!(&mutated.payload_type, &env.payload_type);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sign_verify_round_trip(
        seed in any::<[u8; 32]>(),
        payload in prop::collection::vec(any::<u8>(), 0..512),
        ty in 0usize..8,
        other_ty in 1usize..8,
    ) {
        let ty = payload_type(ty);
        let (env, trusted) = envelope_fixture(seed, &payload, ty);
        let v = env.verify(ty, &trusted).unwrap();
        prop_assert_eq!(v.bytes(), payload.as_slice());
        prop_assert_eq!(v.signers().to_vec(), vec![SigningKey::from_seed(&seed).kid()]);
        // Survives serialisation through the strict parser.
        let text = serde_json::to_vec(&env).unwrap();
        let back: Envelope = json::parse(&text, usize::MAX).unwrap();
        prop_assert_eq!(back.verify(ty, &trusted).unwrap().bytes().to_vec(), payload);
        // Any other expected type refuses it.
        let wrong = PayloadType::ALL[(PayloadType::ALL.iter().position(|t| *t == ty).unwrap() + other_ty) % PayloadType::ALL.len()];
        prop_assert!(env.verify(wrong, &trusted).is_err());
    }

    #[test]
    fn no_single_byte_change_yields_a_different_verified_payload(
        seed in any::<[u8; 32]>(),
        payload in arb_json(true),
        pos in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let bytes = json::canonical(&payload).unwrap();
        let (env, trusted) = envelope_fixture(seed, &bytes, PayloadType::Approval);
        check_byte_mutation(&env, &trusted, PayloadType::Approval, pos, byte)?;
    }

    #[test]
    fn any_bit_flip_in_signature_or_payload_fails(
        seed in any::<[u8; 32]>(),
        payload in prop::collection::vec(any::<u8>(), 1..256),
        sig_bit in 0usize..512,
        payload_bit in any::<usize>(),
    ) {
        let (env, trusted) = envelope_fixture(seed, &payload, PayloadType::Outcome);
        let mut sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
        sig[sig_bit / 8] ^= 1 << (sig_bit % 8);
        let mut e = env.clone();
        e.signatures[0].sig = STANDARD.encode(&sig);
        prop_assert!(e.verify(PayloadType::Outcome, &trusted).is_err(), "signature bit {}", sig_bit);

        let mut p = payload.clone();
        let bit = payload_bit % (p.len() * 8);
        p[bit / 8] ^= 1 << (bit % 8);
        let mut e = env;
        e.payload = STANDARD.encode(&p);
        prop_assert!(e.verify(PayloadType::Outcome, &trusted).is_err(), "payload bit {}", bit);
    }
}

/// The single-byte property exhaustively for one small envelope: every position, every value.
#[test]
fn exhaustive_single_byte_changes_to_one_envelope() {
    let payload = json::canonical(&json!({"decision": "approve", "n": 7})).unwrap();
    let (env, trusted) = envelope_fixture([42; 32], &payload, PayloadType::Approval);
    let len = serde_json::to_vec(&env).unwrap().len();
    for pos in 0..len {
        for byte in 0..=255u8 {
            check_byte_mutation(&env, &trusted, PayloadType::Approval, pos, byte)
                .unwrap_or_else(|e| panic!("pos {pos} byte {byte}: {e}"));
        }
    }
}

/// Every one of the 512 single-bit flips of a signature fails, and so does every bit flip of
/// a short payload.
#[test]
fn exhaustive_bit_flips() {
    let payload = b"{\"a\":1}".to_vec();
    let (env, trusted) = envelope_fixture([9; 32], &payload, PayloadType::Decision);
    let sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
    for bit in 0..512 {
        let mut s = sig.clone();
        s[bit / 8] ^= 1 << (bit % 8);
        let mut e = env.clone();
        e.signatures[0].sig = STANDARD.encode(&s);
        assert!(e.verify(PayloadType::Decision, &trusted).is_err(), "signature bit {bit}");
    }
    for bit in 0..payload.len() * 8 {
        let mut p = payload.clone();
        p[bit / 8] ^= 1 << (bit % 8);
        let mut e = env.clone();
        e.payload = STANDARD.encode(&p);
        assert!(e.verify(PayloadType::Decision, &trusted).is_err(), "payload bit {bit}");
    }
}

// ---------------------------------------------------------------------------------------
// The pipeline under mutation
// ---------------------------------------------------------------------------------------

struct Fixture {
    body: Vec<u8>,
    value: Value,
    broker: LoadedBroker,
    scope: EnforceableChecks,
    snap: LoadedSnapshot,
}

fn fixture(s: &Scenario) -> Fixture {
    let b = s.build().unwrap();
    Fixture {
        value: serde_json::from_slice(&b.body).unwrap(),
        broker: LoadedBroker::from_json(&b.broker).unwrap(),
        scope: EnforceableChecks::from_json(&b.scope).unwrap(),
        snap: LoadedSnapshot::from_json(&b.snapshot).unwrap(),
        body: b.body,
    }
}

/// The policy-path baseline and an L3 quorum certificate with two attestations.
static FIXTURES: LazyLock<[Fixture; 2]> = LazyLock::new(|| {
    let cases = vectors_gen::cases();
    let get = |n: &str| fixture(&cases.iter().find(|c| c.name == n).unwrap().scenario);
    [get("admit_policy_l2"), get("admit_quorum_l3")]
});

/// The decision section 7 assigns to each check.
fn decision_fits(check: FailedCheck, d: Decision) -> bool {
    use Decision::*;
    use FailedCheck::*;
    matches!(
        (check, d),
        (Parse | Path | Caller | Match | Time | Scope | Replay, Reject)
            | (Signature | Revocation, FailClosed)
            | (PolicyEpoch, Readmit)
            | (Drift, Readmit | FailClosed)
    )
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// Copy a slice of the body over another position.
    Splice(usize, usize, usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let b = prop::sample::select(b"{}[]\",:0123456789-+.eE \\u/=AZaz\x00\xff".to_vec());
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(p, bit)| Mutation::Flip(p, bit)),
        3 => (any::<usize>(), b.clone()).prop_map(|(p, v)| Mutation::Set(p, v)),
        2 => (any::<usize>(), b).prop_map(|(p, v)| Mutation::Insert(p, v)),
        2 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<usize>(), 1usize..64).prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    if body.is_empty() {
        return;
    }
    let n = body.len();
    match *m {
        Mutation::Flip(p, bit) => body[p % n] ^= 1 << bit,
        Mutation::Set(p, v) => body[p % n] = v,
        Mutation::Insert(p, v) => body.insert(p % (n + 1), v),
        Mutation::Delete(p) => {
            body.remove(p % n);
        }
        Mutation::Truncate(p) => body.truncate(p % n),
        Mutation::Splice(from, to, len) => {
            let from = from % n;
            let to = to % n;
            let len = len.min(n - from).min(n - to);
            let chunk = body[from..from + len].to_vec();
            body[to..to + len].copy_from_slice(&chunk);
        }
    }
}

fn check_verdict(f: &Fixture, body: &[u8]) -> Result<(), TestCaseError> {
    let verdict = evaluate(body, &f.broker.policy(), &f.scope, &f.snap.snapshot());
    match verdict {
        Ok(_) => {
            // Only a change that leaves the presentation the same value may be admitted.
            let v: Value = serde_json::from_slice(body).unwrap();
            prop_assert_eq!(v, f.value.clone(), "a different presentation was admitted");
        }
        Err(r) => {
            prop_assert!(
                decision_fits(r.check, r.decision),
                "check {} with decision {}",
                r.check,
                r.decision
            );
            prop_assert!(!r.reason.is_empty());
        }
    }
    Ok(())
}

/// Replace one leaf of a JSON value (chosen by `pick`) with `new`.
fn replace_leaf(v: &mut Value, pick: &mut usize, new: &Value) -> bool {
    match v {
        Value::Object(m) => m.values_mut().any(|c| replace_leaf(c, pick, new)),
        Value::Array(a) => a.iter_mut().any(|c| replace_leaf(c, pick, new)),
        leaf => {
            if *pick == 0 {
                *leaf = new.clone();
                true
            } else {
                *pick -= 1;
                false
            }
        }
    }
}

fn count_leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.values().map(count_leaves).sum(),
        Value::Array(a) => a.iter().map(count_leaves).sum(),
        _ => 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn pipeline_never_panics_on_byte_mutations(
        which in 0usize..2,
        mutations in prop::collection::vec(arb_mutation(), 1..6),
    ) {
        let f = &FIXTURES[which];
        let mut body = f.body.clone();
        for m in &mutations {
            apply(&mut body, m);
        }
        check_verdict(f, &body)?;
    }

    /// Structured mutations: one leaf of the presentation replaced by another JSON value.
    #[test]
    fn pipeline_rejects_any_changed_leaf(
        which in 0usize..2,
        pick in any::<usize>(),
        new in arb_json(true),
    ) {
        let f = &FIXTURES[which];
        let mut v = f.value.clone();
        let mut pick = pick % count_leaves(&v);
        replace_leaf(&mut v, &mut pick, &new);
        let body = serde_json::to_vec(&v).unwrap();
        check_verdict(f, &body)?;
    }
}

#[test]
fn fixtures_are_admissible() {
    for f in FIXTURES.iter() {
        let v = evaluate(&f.body, &f.broker.policy(), &f.scope, &f.snap.snapshot());
        assert!(v.is_ok(), "{:?}", v.err());
    }
}

// ---------------------------------------------------------------------------------------
// Differential Ed25519: seb-core (ed25519-dalek, verify_strict) vs aws-lc-rs
// ---------------------------------------------------------------------------------------

fn aws_lc_verifies(pk: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    UnparsedPublicKey::new(&ED25519, pk).verify(msg, sig).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Signatures produced by seb-core verify under aws-lc-rs, over the PAE of an envelope.
    #[test]
    fn seb_core_signatures_verify_under_aws_lc_rs(
        seed in any::<[u8; 32]>(),
        payload in prop::collection::vec(any::<u8>(), 0..512),
        ty in 0usize..8,
    ) {
        let ty = payload_type(ty);
        let k = SigningKey::from_seed(&seed);
        let env = Envelope::sign_bytes(ty, &payload, &[&k]);
        let sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
        let msg = pae(ty.media_type(), &payload);
        prop_assert!(aws_lc_verifies(k.public_key().as_bytes(), &msg, &sig));
        // aws-lc-rs derives the same public key from the same seed.
        let alc = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        let ours_pk = k.public_key();
        prop_assert_eq!(alc.public_key().as_ref(), ours_pk.as_bytes().as_slice());
        // Ed25519 is deterministic: both produce the same signature.
        let theirs = alc.sign(&msg);
        prop_assert_eq!(theirs.as_ref(), sig.as_slice());
    }

    /// On mutated signatures (bit flips, S + L) seb-core's verification (aws-lc's equation
    /// plus the small-order `R` check) accepts exactly what ed25519-dalek's `verify_strict`
    /// accepts, and never what aws-lc-rs alone refuses.
    #[test]
    fn strict_verification_agrees_with_verify_strict_and_is_never_laxer_than_aws_lc_rs(
        seed in any::<[u8; 32]>(),
        msg in prop::collection::vec(any::<u8>(), 0..128),
        bit in prop::option::of(0usize..512),
        add_l in any::<bool>(),
    ) {
        let k = SigningKey::from_seed(&seed);
        let mut sig = k.sign_b64(&msg);
        if add_l {
            sig = vectors_gen::add_group_order_to_s(&sig).unwrap();
        }
        let mut raw: [u8; 64] = STANDARD.decode(&sig).unwrap().try_into().unwrap();
        if let Some(b) = bit {
            raw[b / 8] ^= 1 << (b % 8);
        }
        let ours = k.public_key().verify(&msg, &raw).is_ok();
        let theirs = aws_lc_verifies(k.public_key().as_bytes(), &msg, &raw);
        prop_assert!(!ours || theirs, "seb-core accepts what aws-lc-rs refuses");
        let dalek = ed25519_dalek::VerifyingKey::from_bytes(k.public_key().as_bytes())
            .unwrap()
            .verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&raw))
            .is_ok();
        prop_assert_eq!(ours, dalek, "seb-core and verify_strict disagree");
        prop_assert_eq!(ours, bit.is_none() && !add_l);
    }
}
