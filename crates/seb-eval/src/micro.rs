//! Experiment 1: micro-benchmarks per step (paper table 6).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use anyhow::{Result, anyhow};
use seb_broker::records::RecordSigner;
use seb_core::certificate::CertificateTrust;
use seb_core::constraints::params_match;
use seb_core::envelope::{PayloadType, pae};
use seb_core::json;
use seb_core::pipeline::{
    BrokerPolicy, EpochView, Observation, Presented, Snapshot, check_drift, check_state, evaluate,
};
use seb_core::types::{CheckKind, Constraint, Decision, Presentation};
use seb_store::{Reservation, Store};
use seb_target::test_double::TestTarget;
use serde_json::json;

use crate::fixtures::{self, Cert};
use crate::paper;
use crate::results::StepRow;
use crate::rng::Rng;
use crate::stats::summarize;
use crate::{Plan, Samples};

fn time_ms(mut f: impl FnMut() -> Result<()>, warmup: usize, n: usize) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(v)
}

/// Run the micro-benchmarks.
pub async fn run(plan: &Plan, samples: &mut Samples) -> Result<Vec<StepRow>> {
    let mut rng = Rng::new(plan.seed ^ 0x1111);
    let (n, w) = (plan.micro_n, plan.micro_warmup);
    let constraints = vec![
        Constraint {
            path: "/value/replicas".into(),
            check: CheckKind::Range,
            value: json!({"min": 1, "max": 5}),
        },
        Constraint {
            path: "/value/image".into(),
            check: CheckKind::Prefix,
            value: json!("registry.internal/"),
        },
    ];
    let evidence: BTreeMap<String, serde_json::Value> = [
        ("/replicas".to_owned(), json!(3)),
        ("/image".to_owned(), json!("registry.internal/app:1")),
    ]
    .into();
    let contract = fixtures::set_contract(
        "cfg",
        json!({"replicas": 5, "image": "registry.internal/app:2"}),
        constraints.clone(),
    );
    let cert = Cert::new(&mut rng, contract, evidence.clone())?;
    let body = cert.present()?;
    let trust = fixtures::trust();
    let policy = BrokerPolicy {
        trust: CertificateTrust {
            issuers: &trust.issuers,
            break_glass: &trust.break_glass,
            break_glass_quorum: trust.break_glass_quorum,
            limit: json::DEFAULT_MAX_BODY,
        },
        approvers: &trust.approvers,
        path_rules: &trust.path_rules,
        skew_ms: 30_000,
        max_validity_s: 300,
    };
    let env = cert.envelope()?;
    let cert_bytes = env.insecure_payload_bytes().map_err(|e| anyhow!("{e}"))?;
    let cert_pae = pae(PayloadType::Certificate.media_type(), &cert_bytes);
    let sig = env.signatures.first().map(|s| s.sig.clone()).ok_or_else(|| anyhow!("no sig"))?;
    let issuer = fixtures::issuer().public_key();
    let now = fixtures::now_ms();
    let scope = TestTarget::in_memory();
    let ep = EpochView {
        policy_epoch: 0,
        revocation_epoch: 0,
        revoked_cids: Default::default(),
        revoked_agents: Default::default(),
        as_of_ms: now,
        max_staleness_ms: 60_000,
    };
    let obs = Observation { projection: evidence.clone(), version: Some("1".into()) };
    let request_params = json!({"value": {"replicas": 4, "image": "registry.internal/app:3"}});
    let live = evidence.clone();

    let mut rows = Vec::new();
    let mut push = |name: &str, v: Vec<f64>, paper: Option<crate::results::PaperFigure>| {
        samples.micro.push((name.split(" (").next().unwrap_or(name).to_owned(), v.clone()));
        rows.push(StepRow { name: name.to_owned(), summary: summarize(&v), paper });
    };

    let v = time_ms(
        || issuer.verify_b64(black_box(&cert_pae), black_box(&sig)).map_err(|e| anyhow!("{e}")),
        w,
        n,
    )?;
    push("Ed25519 verify (certificate signature, strict)", v, Some(paper::fig(0.08, None, 0.11)));
    let v = time_ms(
        || {
            let p: Presentation = json::parse(black_box(&body), json::DEFAULT_MAX_BODY)
                .map_err(|e| anyhow!("{e}"))?;
            let v = json::parse_value(&cert_bytes, json::DEFAULT_MAX_BODY)
                .map_err(|e| anyhow!("{e}"))?;
            black_box(json::canonical(&p.request).map_err(|e| anyhow!("{e}"))?);
            black_box(json::canonical(&v).map_err(|e| anyhow!("{e}"))?);
            Ok(())
        },
        w,
        n,
    )?;
    push(
        "parse + canonicalise (presentation and certificate payload, RFC 8785)",
        v,
        Some(paper::fig(0.12, None, 0.18)),
    );
    let v = time_ms(
        || {
            params_match(&cert.payload.contract.params, &constraints, black_box(&request_params))
                .map_err(|e| anyhow!("{e}"))
        },
        w,
        n,
    )?;
    push("constraint match (range + prefix)", v, Some(paper::fig(0.05, None, 0.08)));
    let v = time_ms(
        || {
            seb_core::drift::compare(black_box(&evidence), &BTreeMap::new(), black_box(&live))
                .map_err(|e| anyhow!("{e}"))
        },
        w,
        n,
    )?;
    push("drift compare (2 pointers, ε = 0)", v, None);
    let auth = seb_core::pipeline::authenticate(&body, &policy, now)
        .map_err(|e| anyhow!("authenticate: {}", e.reason))?;
    let v = time_ms(
        || {
            check_state(black_box(&auth), Some(&ep), now, &scope, false)
                .map_err(|e| anyhow!("{}", e.reason))?;
            black_box(check_drift(&auth, Ok(&obs)).map_err(|e| anyhow!("{}", e.reason))?);
            Ok(())
        },
        w,
        n,
    )?;
    push(
        "epoch + revocation + scope + drift checks (7-11, state in hand)",
        v,
        Some(paper::fig(0.03, None, 0.05)),
    );
    let snap =
        Snapshot { now_ms: now, epochs: Some(&ep), already_reserved: false, observation: Ok(&obs) };
    let v = time_ms(
        || {
            black_box(
                evaluate(black_box(&body), &policy, &scope, &snap)
                    .map_err(|e| anyhow!("evaluate: {}", e.reason))?,
            );
            Ok(())
        },
        w,
        n,
    )?;
    push("full pure pipeline (checks 1-11, policy path)", v, None);

    // Store steps: embedded SQLite, synchronous=FULL.
    let dir = tempfile::tempdir()?;
    let store = fixtures::sqlite(dir.path())?;
    let signer = RecordSigner::new(fixtures::broker_key());
    let record =
        signer.decision(Decision::Admit, None, "admitted", &Presented::default(), None, now);
    let entry = signer.sign_decision(&record).map_err(|e| anyhow!("{e}"))?.entry;
    let sn = plan.store_n;
    let sw = (plan.micro_warmup / 10).clamp(5, 50);
    let mut reserve = Vec::with_capacity(sn);
    for i in 0..(sn + sw) {
        let (cid, nonce) = fixtures::ids(&mut rng);
        let r = Reservation {
            cid,
            nonce,
            agent: "agent-a".into(),
            policy_epoch: 0,
            revocation_epoch: 0,
            admit_entry: entry.clone(),
            intent: b"{}".to_vec(),
            at_ms: now,
        };
        let t = Instant::now();
        store.reserve(r).await.map_err(|e| anyhow!("reserve: {e}"))?;
        if i >= sw {
            reserve.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    push(
        "nonce reservation + admit record (SQLite, one durable commit)",
        reserve,
        Some(paper::fig(3.20, None, 5.12)),
    );
    let mut append = Vec::with_capacity(sn);
    for i in 0..(sn + sw) {
        let t = Instant::now();
        store.append(vec![entry.clone()]).await.map_err(|e| anyhow!("append: {e}"))?;
        if i >= sw {
            append.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    push(
        "record append (ledger write, SQLite, one durable commit)",
        append,
        Some(paper::fig(3.50, None, 5.60)),
    );
    let mut epoch = Vec::with_capacity(sn);
    for i in 0..(sn + sw) {
        let t = Instant::now();
        black_box(store.epoch_check("cid", "agent-a").await.map_err(|e| anyhow!("{e}"))?);
        if i >= sw {
            epoch.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    push(
        "epoch check read (SQLite, authoritative, no cache)",
        epoch,
        Some(paper::fig(2.40, None, 3.82)),
    );
    Ok(rows)
}
