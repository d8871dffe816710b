//! Micro-benchmarks of the pure enforcement path (`cargo bench -p seb-core --bench pipeline`).
//!
//! Plain `main` with `std::time::Instant`: each step is warmed up, then timed over N = 10 000
//! single iterations; the table gives p50, p99 and mean in microseconds, next to the figures of
//! the paper's prototype where it reports one (its table is in milliseconds). Inputs are the
//! golden-vector fixtures (`tests/support/vectors_gen.rs`): the policy-path baseline
//! `admit_policy_l2` and the quorum certificate with two attestations `admit_quorum_l3`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

/// The `seb` binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/vectors_gen.rs"]
mod vectors_gen;

use std::hint::black_box;
use std::time::Instant;

use seb_core::certificate::{CertificateTrust, UnverifiedCertificate};
use seb_core::constraints::params_match;
use seb_core::envelope::{PayloadType, pae};
use seb_core::json;
use seb_core::pipeline::{authenticate, check_drift, check_state, evaluate};
use seb_core::types::{CheckKind, Constraint, Presentation};
use serde_json::json;
use vectors_gen::{EnforceableChecks, LoadedBroker, LoadedSnapshot};

const WARMUP: usize = 1_000;
const N: usize = 10_000;

struct Row {
    name: &'static str,
    p50: f64,
    p99: f64,
    mean: f64,
    paper: &'static str,
}

fn measure(name: &'static str, paper: &'static str, mut f: impl FnMut()) -> Row {
    for _ in 0..WARMUP {
        f();
    }
    let mut samples = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    let mean = samples.iter().sum::<f64>() / N as f64;
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((N as f64 * p).ceil() as usize).saturating_sub(1).min(N - 1)];
    Row { name, p50: pct(0.50), p99: pct(0.99), mean, paper }
}

struct Fixture {
    body: Vec<u8>,
    broker: LoadedBroker,
    scope: EnforceableChecks,
    snap: LoadedSnapshot,
}

fn fixture(cases: &[vectors_gen::Case], name: &str) -> Fixture {
    let s = &cases.iter().find(|c| c.name == name).unwrap().scenario;
    let b = s.build().unwrap();
    Fixture {
        body: b.body,
        broker: LoadedBroker::from_json(&b.broker).unwrap(),
        scope: EnforceableChecks::from_json(&b.scope).unwrap(),
        snap: LoadedSnapshot::from_json(&b.snapshot).unwrap(),
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pipeline bench: run with `cargo bench -p seb-core --bench pipeline`");
        return;
    }
    let cases = vectors_gen::cases();
    let policy_fx = fixture(&cases, "admit_policy_l2");
    let quorum_fx = fixture(&cases, "admit_quorum_l3");
    let policy = policy_fx.broker.policy();
    let snap = policy_fx.snap.snapshot();
    let presentation: Presentation = json::parse(&policy_fx.body, usize::MAX).unwrap();
    let request = presentation.request.clone();
    let env = presentation.certificate.clone();
    let trust = CertificateTrust {
        issuers: policy.trust.issuers,
        break_glass: policy.trust.break_glass,
        break_glass_quorum: policy.trust.break_glass_quorum,
        limit: policy.trust.limit,
    };
    let cert = UnverifiedCertificate::new(env.clone()).verify(&trust).unwrap();
    let payload = cert.payload().clone();
    let cert_bytes = env.insecure_payload_bytes().unwrap();
    let issuer = vectors_gen::key("issuer").public_key();
    let cert_sig = {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD.decode(&env.signatures[0].sig).unwrap();
        <[u8; 64]>::try_from(raw).unwrap()
    };
    let cert_pae = pae(PayloadType::Certificate.media_type(), &cert_bytes);
    let auth = authenticate(&policy_fx.body, &policy, snap.now_ms).unwrap();

    // A contract with two constraints, and a request that differs at both locations.
    let c_params = json!({"spec": {"replicas": 3, "image": "registry.internal/payments/api:1.4.2",
                                   "template": {"labels": {"app": "api", "tier": "backend"}}}});
    let c_request = json!({"spec": {"replicas": 5, "image": "registry.internal/payments/api:1.4.3",
                                    "template": {"labels": {"app": "api", "tier": "backend"}}}});
    let constraints = vec![
        Constraint {
            path: "/spec/replicas".into(),
            check: CheckKind::Range,
            value: json!({"min": 1, "max": 5}),
        },
        Constraint {
            path: "/spec/image".into(),
            check: CheckKind::Prefix,
            value: json!("registry.internal/payments/"),
        },
    ];

    // Profiling mode (for callgrind or perf): run only the full policy-path pipeline.
    if let Ok(n) = std::env::var("SEB_BENCH_PROFILE_ITERS") {
        for _ in 0..n.parse::<usize>().unwrap() {
            black_box(
                evaluate(black_box(&policy_fx.body), &policy, &policy_fx.scope, &snap).unwrap(),
            );
        }
        return;
    }

    let mut rows = Vec::new();
    rows.push(measure("parse + canonicalise (presentation, JCS of request)", "120 / 180", || {
        let p: Presentation =
            json::parse(black_box(&policy_fx.body), json::DEFAULT_MAX_BODY).unwrap();
        black_box(json::canonical(&p.request).unwrap());
    }));
    rows.push(measure("parse + canonicalise (certificate payload)", "120 / 180", || {
        let v = json::parse_value(black_box(&cert_bytes), json::DEFAULT_MAX_BODY).unwrap();
        black_box(json::canonical(&v).unwrap());
    }));
    rows.push(measure("Ed25519 verify (strict, certificate PAE)", "80 / 110", || {
        issuer.verify(black_box(&cert_pae), black_box(&cert_sig)).unwrap();
    }));
    rows.push(measure("certificate verify (envelope + payload + digests)", "", || {
        black_box(UnverifiedCertificate::new(black_box(env.clone())).verify(&trust).unwrap());
    }));
    rows.push(measure("caller proof verify (JCS + PAE + Ed25519)", "", || {
        let bytes = json::canonical(black_box(&request)).unwrap();
        payload
            .subject
            .public_key
            .verify_b64(&pae(PayloadType::Request.media_type(), &bytes), &presentation.proof.sig)
            .unwrap();
    }));
    rows.push(measure("match, no constraints (op, target, params)", "50 / 80", || {
        let c = &payload.contract;
        assert!(black_box(&request.op) == &c.op && black_box(&request.target) == &c.target);
        params_match(&c.params, &c.constraints, black_box(&request.params)).unwrap();
    }));
    rows.push(measure("match, 2 constraints (range + prefix)", "50 / 80", || {
        params_match(black_box(&c_params), &constraints, black_box(&c_request)).unwrap();
    }));
    rows.push(measure("check_state (epochs, revocation, scope, replay)", "", || {
        check_state(black_box(&auth), snap.epochs, snap.now_ms, &policy_fx.scope, false).unwrap();
    }));
    rows.push(measure("check_drift (2 pointers, digest of live projection)", "", || {
        black_box(check_drift(black_box(&auth), snap.observation).unwrap());
    }));
    rows.push(measure("authenticate (checks 1-6), policy path", "", || {
        black_box(authenticate(black_box(&policy_fx.body), &policy, snap.now_ms).unwrap());
    }));
    rows.push(measure("evaluate (checks 1-11), policy path", "", || {
        black_box(evaluate(black_box(&policy_fx.body), &policy, &policy_fx.scope, &snap).unwrap());
    }));
    let qpolicy = quorum_fx.broker.policy();
    let qsnap = quorum_fx.snap.snapshot();
    rows.push(measure("evaluate (checks 1-11), quorum path, 2 attestations", "", || {
        black_box(
            evaluate(black_box(&quorum_fx.body), &qpolicy, &quorum_fx.scope, &qsnap).unwrap(),
        );
    }));

    println!();
    println!("seb-core pure pipeline, N = {N} iterations per step after {WARMUP} warm-up (µs)");
    println!("policy body {} B, quorum body {} B", policy_fx.body.len(), quorum_fx.body.len());
    println!();
    println!(
        "| {:<54} | {:>8} | {:>8} | {:>8} | {:>17} |",
        "step", "p50", "p99", "mean", "paper p50 / p99"
    );
    println!("|{:-<56}|{:->10}|{:->10}|{:->10}|{:->19}|", "", "", "", "", "");
    for r in &rows {
        println!(
            "| {:<54} | {:>8.1} | {:>8.1} | {:>8.1} | {:>17} |",
            r.name, r.p50, r.p99, r.mean, r.paper
        );
    }
}
