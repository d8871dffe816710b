#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! The broker pipeline over a real SQLite store and the test double: every row of spec
//! section 7, its decision, HTTP status and signed record; single use; ordering of records;
//! retirement; recovery.

mod common;

use std::sync::Arc;

use common::*;
use seb_core::json;
use seb_core::types::{CertPath, CheckKind, Constraint, Decision, FailedCheck, OutcomeStatus};
use seb_store::{Reservation, Revocation, Store};
use serde_json::{Value, json};

fn refusal(r: &seb_broker::engine::ExecResult) -> (FailedCheck, Decision, u16) {
    match r {
        Ok(e) => panic!("expected a refusal, got {:?}", e.outcome.status),
        Err(f) => (f.failed_check, f.decision, f.http_status()),
    }
}

/// The last ledger entry is a decision record for this refusal.
async fn assert_recorded(env: &Env, r: &seb_broker::engine::ExecResult) {
    let f = r.as_ref().expect_err("refusal");
    let l = ledger(env.store.as_ref()).await;
    let (ty, rec) = l.last().expect("a record");
    assert_eq!(ty, "application/vnd.seb.decision+json;v=1");
    assert_eq!(rec["id"], json!(f.record_id));
    assert_eq!(rec["failed_check"], json!(f.failed_check));
    assert_eq!(rec["decision"], json!(f.decision));
    assert_eq!(rec["broker_kid"], json!(broker_key().kid()));
}

#[tokio::test]
async fn certified_change_is_applied_once_with_admit_before_outcome() {
    let env = env();
    let cert = Cert::new(1);
    let done = env.broker.execute(&cert.present(), "127.0.0.1").await.expect("admitted");
    assert_eq!(done.outcome.status, OutcomeStatus::Applied);
    assert_eq!(env.target.get("cfg").unwrap(), Some(json!({"replicas": 5, "image": "nginx:1"})));
    assert_eq!(env.target.mutations().unwrap().len(), 1);
    assert_eq!(env.target.live_tokens().unwrap(), 0, "credential retired right after the call");
    assert!(env.broker.live().is_empty());
    let l = ledger(env.store.as_ref()).await;
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].1["decision"], "admit");
    assert_eq!(l[0].1["cid"], json!(cert.payload.cid));
    assert_eq!(l[1].0, "application/vnd.seb.outcome+json;v=1");
    assert_eq!(l[1].1["status"], "applied");
    assert_eq!(done.admit_index, 0);
    assert_eq!(done.outcome_index, Some(1));
    assert!(env.store.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn parse_failures_are_400_and_recorded_with_the_client() {
    let env = env();
    for body in
        [b"not json".to_vec(), br#"{"certificate":1,"certificate":2}"#.to_vec(), vec![b' '; 70_000]]
    {
        let r = env.broker.execute(&body, "192.0.2.7").await;
        assert_eq!(refusal(&r), (FailedCheck::Parse, Decision::Reject, 400));
        assert_recorded(&env, &r).await;
        let l = ledger(env.store.as_ref()).await;
        assert_eq!(l.last().unwrap().1["identity"], "client:192.0.2.7");
    }
}

#[tokio::test]
async fn untrusted_issuer_fails_closed() {
    let env = env();
    let cert = Cert::new(2);
    let forged = cert.payload.sign(&key(99)).unwrap();
    let r = env.broker.execute(&cert.present_with(forged, cert.request(), &agent()), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Signature, Decision::FailClosed, 503));
    assert_recorded(&env, &r).await;
}

#[tokio::test]
async fn tampered_certificate_fails_closed() {
    let env = env();
    let cert = Cert::new(3);
    let mut e = cert.envelope();
    let mut other = cert.clone();
    other.payload.contract.params = json!({"value": {"replicas": 50, "image": "nginx:1"}});
    e.payload = other.fix().envelope().payload;
    let r = env.broker.execute(&cert.present_with(e, cert.request(), &agent()), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Signature, Decision::FailClosed, 503));
}

#[tokio::test]
async fn path_requires_the_brokers_own_quorum() {
    let env = env();
    // L3 needs two validators by the broker's own rules, whatever the issuer claims.
    let mut cert = Cert::with_contract(4, contract(json!({"value": 1}), vec![], 3));
    cert.payload.cert_path = CertPath::Quorum;
    let cert = cert.fix();
    let mut one = cert.clone();
    one.payload.attestations = vec![cert.approve(&validator(0), "validator-0")];
    let r = env.broker.execute(&one.present(), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Path, Decision::Reject, 403));
    assert_recorded(&env, &r).await;
    // The same approval twice is still one approver.
    let mut dup = cert.clone();
    dup.payload.attestations = vec![
        cert.approve(&validator(0), "validator-0"),
        cert.approve(&validator(0), "validator-0"),
    ];
    assert_eq!(refusal(&env.broker.execute(&dup.present(), "c").await).0, FailedCheck::Path);
    // An approval naming someone else than its signer.
    let mut lie = cert.clone();
    lie.payload.attestations = vec![
        cert.approve(&validator(0), "validator-0"),
        cert.approve(&validator(2), "validator-1"),
    ];
    assert_eq!(refusal(&env.broker.execute(&lie.present(), "c").await).0, FailedCheck::Path);
    let mut two = cert.clone();
    two.payload.attestations = vec![
        cert.approve(&validator(0), "validator-0"),
        cert.approve(&validator(1), "validator-1"),
    ];
    let done = env.broker.execute(&two.present(), "c").await.expect("quorum met");
    assert_eq!(done.outcome.status, OutcomeStatus::Applied);
}

#[tokio::test]
async fn an_approval_for_another_contract_does_not_count() {
    let env = env();
    let mut cert = Cert::with_contract(5, contract(json!({"value": 1}), vec![], 3));
    cert.payload.cert_path = CertPath::Quorum;
    let cert = cert.fix();
    let mut other = Cert::with_contract(6, contract(json!({"value": 2}), vec![], 3));
    other.payload.cert_path = CertPath::Quorum;
    let other = other.fix();
    let mut c = cert.clone();
    c.payload.attestations = vec![
        other.approve(&validator(0), "validator-0"),
        other.approve(&validator(1), "validator-1"),
    ];
    assert_eq!(refusal(&env.broker.execute(&c.present(), "c").await).0, FailedCheck::Path);
}

#[tokio::test]
async fn l0_and_l5_are_never_executed() {
    let env = env();
    for (seed, risk) in [(7u8, 0u8), (8, 5)] {
        let cert = Cert::with_contract(seed, contract(json!({"value": 1}), vec![], risk));
        assert_eq!(refusal(&env.broker.execute(&cert.present(), "c").await).0, FailedCheck::Path);
    }
}

#[tokio::test]
async fn break_glass_needs_the_operator_quorum_and_is_flagged() {
    let env = env();
    let mut cert = Cert::new(9);
    cert.payload.cert_path = CertPath::BreakGlass;
    cert.payload.contract.risk_level = seb_core::types::RiskLevel::L5;
    cert.payload.issuer.kid = operator(0).kid();
    let cert = cert.fix();
    let one = seb_core::envelope::Envelope::sign_multi(
        seb_core::envelope::PayloadType::Certificate,
        &cert.payload,
        &[&operator(0)],
    )
    .unwrap();
    let r = env.broker.execute(&cert.present_with(one, cert.request(), &agent()), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Signature, Decision::FailClosed, 503));
    let two = seb_core::envelope::Envelope::sign_multi(
        seb_core::envelope::PayloadType::Certificate,
        &cert.payload,
        &[&operator(0), &operator(1)],
    )
    .unwrap();
    let done = env
        .broker
        .execute(&cert.present_with(two, cert.request(), &agent()), "c")
        .await
        .expect("break-glass");
    assert!(done.outcome.break_glass);
    let l = ledger(env.store.as_ref()).await;
    assert!(l.iter().rev().take(2).all(|(_, r)| r["break_glass"] == json!(true)));
}

#[tokio::test]
async fn caller_must_hold_the_subject_key_and_be_the_subject() {
    let env = env();
    let cert = Cert::new(10);
    let r = env
        .broker
        .execute(&cert.present_with(cert.envelope(), cert.request(), &key(77)), "c")
        .await;
    assert_eq!(refusal(&r), (FailedCheck::Caller, Decision::Reject, 403));
    let mut req = cert.request();
    req.caller = "agent-b".into();
    assert_eq!(
        refusal(&env.broker.execute(&cert.present_with(cert.envelope(), req, &agent()), "c").await)
            .0,
        FailedCheck::Caller
    );
    let mut req = cert.request();
    req.t_exec_ms = NOW_MS - 31_000;
    assert_eq!(
        refusal(&env.broker.execute(&cert.present_with(cert.envelope(), req, &agent()), "c").await)
            .0,
        FailedCheck::Caller
    );
    // None of this consumed the nonce: the real caller still executes.
    assert!(env.broker.execute(&cert.present(), "c").await.is_ok());
}

#[tokio::test]
async fn request_must_match_the_contract() {
    let env = env();
    let cert = Cert::new(11);
    for edit in [
        |r: &mut seb_core::types::ExecRequest| {
            r.params = json!({"value": {"replicas": 6, "image": "nginx:1"}})
        },
        |r: &mut seb_core::types::ExecRequest| r.op = "delete".into(),
        |r: &mut seb_core::types::ExecRequest| r.target = json!({"name": "other"}),
        |r: &mut seb_core::types::ExecRequest| r.nonce = "AAAAAAAAAAAAAAAAAAAAAAAA".into(),
        |r: &mut seb_core::types::ExecRequest| r.cid = uuid::Uuid::nil().to_string(),
    ] {
        let mut req = cert.request();
        edit(&mut req);
        let r = env.broker.execute(&cert.present_with(cert.envelope(), req, &agent()), "c").await;
        assert_eq!(refusal(&r), (FailedCheck::Match, Decision::Reject, 403));
        assert_recorded(&env, &r).await;
    }
}

#[tokio::test]
async fn constrained_params_may_vary_within_the_constraint_only() {
    let env = env();
    let c = contract(
        json!({"value": {"replicas": 3, "image": "nginx:1"}}),
        vec![Constraint {
            path: "/value/replicas".into(),
            check: CheckKind::Range,
            value: json!({"min": 1, "max": 5}),
        }],
        1,
    );
    let cert = Cert::with_contract(12, c);
    let mut req = cert.request();
    req.params = json!({"value": {"replicas": 9, "image": "nginx:1"}});
    assert_eq!(
        refusal(&env.broker.execute(&cert.present_with(cert.envelope(), req, &agent()), "c").await)
            .0,
        FailedCheck::Match
    );
    let mut req = cert.request();
    req.params = json!({"value": {"replicas": 4, "image": "nginx:1"}});
    env.broker
        .execute(&cert.present_with(cert.envelope(), req, &agent()), "c")
        .await
        .expect("within constraint");
    assert_eq!(env.target.get("cfg").unwrap(), Some(json!({"replicas": 4, "image": "nginx:1"})));
}

#[tokio::test]
async fn validity_window_is_enforced() {
    let env = env();
    let cert = Cert::new(13);
    env.clock.set((cert.payload.validity.not_after) * 1000);
    let mut req = cert.request();
    req.t_exec_ms = cert.payload.validity.not_after * 1000;
    let r = env.broker.execute(&cert.present_with(cert.envelope(), req, &agent()), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Time, Decision::Reject, 403));
    // Before the window, on a fresh broker (setting this one's clock back would distrust it).
    let env = common::env();
    env.clock.set((cert.payload.validity.not_before - 31) * 1000);
    let mut req = cert.request();
    req.t_exec_ms = (cert.payload.validity.not_before - 31) * 1000;
    let r = env.broker.execute(&cert.present_with(cert.envelope(), req, &agent()), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Time, Decision::Reject, 403));
    assert_recorded(&env, &r).await;
}

#[tokio::test]
async fn policy_epoch_change_asks_for_readmission() {
    let env = env();
    env.store.bump_policy_epoch(NOW_MS, None).await.unwrap();
    let r = env.broker.execute(&Cert::new(14).present(), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::PolicyEpoch, Decision::Readmit, 409));
    assert_recorded(&env, &r).await;
}

#[tokio::test]
async fn revocations_fail_closed() {
    let env = env();
    let a = Cert::new(15);
    env.store.revoke(Revocation::Cid(a.payload.cid.clone()), NOW_MS, None).await.unwrap();
    assert_eq!(
        refusal(&env.broker.execute(&a.present(), "c").await),
        (FailedCheck::Revocation, Decision::FailClosed, 503)
    );
    let b = Cert::new(16);
    env.store.revoke(Revocation::Agent("agent-a".into()), NOW_MS, None).await.unwrap();
    assert_eq!(refusal(&env.broker.execute(&b.present(), "c").await).0, FailedCheck::Revocation);
    let env = common::env();
    env.store.revoke(Revocation::All, NOW_MS, None).await.unwrap();
    let r = env.broker.execute(&Cert::new(17).present(), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Revocation, Decision::FailClosed, 503));
    assert_recorded(&env, &r).await;
}

#[tokio::test]
async fn unenforceable_constraint_is_out_of_scope() {
    let env = env();
    let c = contract(
        json!({"value": {"cidr": "10.0.0.0/24"}}),
        vec![Constraint {
            path: "/value/cidr".into(),
            check: CheckKind::CidrWithin,
            value: json!("10.0.0.0/8"),
        }],
        1,
    );
    let r = env.broker.execute(&Cert::with_contract(18, c).present(), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Scope, Decision::Reject, 403));
    assert_recorded(&env, &r).await;
}

#[tokio::test]
async fn replay_is_refused_even_after_a_failed_execution() {
    let env = env();
    let cert = Cert::new(19);
    env.target.set_fail(&["mutate"]);
    let first = env.broker.execute(&cert.present(), "c").await.expect("admitted");
    assert_ne!(first.outcome.status, OutcomeStatus::Applied);
    env.target.set_fail(&[]);
    let r = env.broker.execute(&cert.present(), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Replay, Decision::Reject, 403));
    assert_recorded(&env, &r).await;
    assert!(env.target.mutations().unwrap().is_empty());
}

#[tokio::test]
async fn mint_failure_is_a_failed_outcome_and_keeps_the_nonce() {
    let env = env();
    let cert = Cert::new(20);
    env.target.set_fail(&["mint"]);
    let done = env.broker.execute(&cert.present(), "c").await.expect("admitted");
    assert_eq!(done.outcome.status, OutcomeStatus::Failed);
    env.target.set_fail(&[]);
    assert_eq!(refusal(&env.broker.execute(&cert.present(), "c").await).0, FailedCheck::Replay);
}

#[tokio::test]
async fn drift_is_readmit_and_unreadable_state_fails_closed() {
    let env = env();
    env.target.insecure_direct_write("cfg", json!({"replicas": 4, "image": "nginx:1"})).unwrap();
    let cert = Cert::new(21);
    let r = env.broker.execute(&cert.present(), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Drift, Decision::Readmit, 409));
    assert_recorded(&env, &r).await;
    let l = ledger(env.store.as_ref()).await;
    assert!(l.last().unwrap().1["observed_digest"].is_string());
    env.target.set_fail(&["observe"]);
    let r = env.broker.execute(&Cert::new(22).present(), "c").await;
    assert_eq!(refusal(&r), (FailedCheck::Drift, Decision::FailClosed, 503));
    // Neither consumed the nonce.
    env.target.set_fail(&[]);
    env.target.insecure_direct_write("cfg", json!({"replicas": 3, "image": "nginx:1"})).unwrap();
    assert!(env.broker.execute(&cert.present(), "c").await.is_ok());
}

#[tokio::test]
async fn a_change_racing_the_mutation_is_a_conflict() {
    // The observed version pins the mutation: a write after observe is caught.
    let env = env();
    let cert = Cert::new(23);
    let store = env.store.clone();
    // Reserve by hand the way the broker does, then race, then run the target.
    let exec = seb_target::Execution {
        cid: cert.payload.cid.clone(),
        nonce: cert.payload.nonce.clone(),
        agent: "agent-a".into(),
        risk_level: cert.payload.contract.risk_level,
        platform: seb_core::types::Platform::Test,
        op: "set".into(),
        target: json!({"name": "cfg"}),
        params: cert.payload.contract.params.clone(),
        contract: cert.payload.contract.clone(),
        evidence: cert.payload.evidence.projection.clone(),
        observed_version: Some("1".into()),
        break_glass: false,
    };
    use seb_target::Target;
    env.target.insecure_direct_write("cfg", json!({"replicas": 3, "image": "nginx:2"})).unwrap();
    let id = env.target.mint(&exec).await.unwrap();
    let m = env.target.mutate(&exec, &id).await.unwrap();
    assert_eq!(m.status, seb_target::MutationStatus::Conflict);
    assert_eq!(env.target.get("cfg").unwrap(), Some(json!({"replicas": 3, "image": "nginx:2"})));
    drop(store);
}

#[tokio::test]
async fn sixty_four_concurrent_presentations_admit_exactly_once() {
    let env = env();
    let cert = Cert::new(24);
    let body = Arc::new(cert.present());
    let mut tasks = Vec::new();
    for i in 0..64 {
        let b = env.broker.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move { b.execute(&body, &format!("c{i}")).await }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(f) => assert!(
                matches!(
                    f.failed_check,
                    FailedCheck::Replay | FailedCheck::Reserve | FailedCheck::Drift
                ),
                "{f:?}"
            ),
        }
    }
    assert_eq!(admitted, 1);
    assert_eq!(env.target.mutations().unwrap().len(), 1);
    let l = ledger(env.store.as_ref()).await;
    assert_eq!(l.iter().filter(|(_, r)| r["decision"] == "admit").count(), 1);
}

#[tokio::test]
async fn recovery_never_reexecutes_and_keeps_the_nonce() {
    let env = env();
    // An admit without dispatch: provably never called.
    let a = Cert::new(25);
    let exec = |c: &Cert| {
        json::canonical(&seb_target::Execution {
            cid: c.payload.cid.clone(),
            nonce: c.payload.nonce.clone(),
            agent: "agent-a".into(),
            risk_level: c.payload.contract.risk_level,
            platform: seb_core::types::Platform::Test,
            op: "set".into(),
            target: json!({"name": "cfg"}),
            params: c.payload.contract.params.clone(),
            contract: c.payload.contract.clone(),
            evidence: c.payload.evidence.projection.clone(),
            observed_version: Some("1".into()),
            break_glass: false,
        })
        .unwrap()
    };
    let reserve = |c: &Cert| Reservation {
        cid: c.payload.cid.clone(),
        nonce: c.payload.nonce.clone(),
        agent: "agent-a".into(),
        policy_epoch: 0,
        revocation_epoch: 0,
        admit_entry: b"admit".to_vec(),
        intent: exec(c),
        at_ms: NOW_MS,
    };
    env.store.reserve(reserve(&a)).await.unwrap();
    // A dispatched one whose call never landed: the target shows the pre-state.
    let b = Cert::new(26);
    env.store.reserve(reserve(&b)).await.unwrap();
    env.store.mark_dispatched(&b.payload.cid, &b.payload.nonce, NOW_MS).await.unwrap();
    let done = env.broker.recover().await.unwrap();
    let statuses: Vec<OutcomeStatus> = done.iter().map(|d| d.2).collect();
    assert_eq!(statuses, vec![OutcomeStatus::NotAttempted, OutcomeStatus::NotApplied]);
    assert!(env.store.pending().await.unwrap().is_empty());
    assert!(env.target.mutations().unwrap().is_empty());
    for c in [&a, &b] {
        assert_eq!(refusal(&env.broker.execute(&c.present(), "c").await).0, FailedCheck::Replay);
    }
}

/// Retirement is retried until it succeeds: after a crash (the identity was minted, the
/// process died) and after a retire that failed in the execution itself. The queue shows in
/// `seb_identities_awaiting_retirement`; the recorded outcome does not wait for it.
#[tokio::test]
async fn retirement_that_fails_is_retried_with_backoff_until_it_succeeds() {
    let env = env();
    let gauge = |b: &seb_broker::engine::Broker| {
        let text = b.metrics().encode();
        text.lines()
            .find_map(|l| l.strip_prefix("seb_identities_awaiting_retirement "))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(gauge(&env.broker).as_deref(), Some("0"));
    // 1. A retire that fails during the execution: applied, and the identity queued.
    env.target.set_fail(&["retire", "retire_orphans"]);
    let done = env.broker.execute(&Cert::new(40).present(), "c").await.expect("admitted");
    assert_eq!(done.outcome.status, OutcomeStatus::Applied);
    assert_eq!(env.target.live_tokens().unwrap(), 1, "the failed retire left the token");
    assert_eq!(env.broker.awaiting_retirement(), 1);
    // 2. A crash after mint: the admit is open, the token lives, the platform refuses to
    // retire it at recovery. The outcome is recorded anyway; the identity is queued.
    let c = Cert::new(41);
    let exec = seb_target::Execution {
        cid: c.payload.cid.clone(),
        nonce: c.payload.nonce.clone(),
        agent: "agent-a".into(),
        risk_level: c.payload.contract.risk_level,
        platform: seb_core::types::Platform::Test,
        op: "set".into(),
        target: json!({"name": "cfg"}),
        params: c.payload.contract.params.clone(),
        contract: c.payload.contract.clone(),
        evidence: c.payload.evidence.projection.clone(),
        observed_version: Some("1".into()),
        break_glass: false,
    };
    env.store
        .reserve(Reservation {
            cid: exec.cid.clone(),
            nonce: exec.nonce.clone(),
            agent: "agent-a".into(),
            policy_epoch: 0,
            revocation_epoch: 0,
            admit_entry: b"admit".to_vec(),
            intent: json::canonical(&exec).unwrap(),
            at_ms: NOW_MS,
        })
        .await
        .unwrap();
    use seb_target::Target as _;
    let orphan = env.target.mint(&exec).await.unwrap();
    assert_eq!(env.target.live_tokens().unwrap(), 2);
    let recovered = env.broker.recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].2, OutcomeStatus::NotAttempted);
    assert!(env.store.pending().await.unwrap().is_empty(), "the outcome did not wait");
    assert_eq!(env.broker.awaiting_retirement(), 2);
    assert_eq!(gauge(&env.broker).as_deref(), Some("2"));
    // Retries fail while the platform refuses, and back off.
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_millis(900) {
        assert_eq!(env.broker.retire_queued().await, 2);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(env.target.live_tokens().unwrap(), 2);
    // The platform accepts again: both are retired by the next due attempts.
    env.target.set_fail(&[]);
    let t0 = std::time::Instant::now();
    while env.broker.retire_queued().await > 0 {
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "retirement never succeeded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(env.target.live_tokens().unwrap(), 0, "every identity retired");
    assert_eq!(gauge(&env.broker).as_deref(), Some("0"));
    drop(orphan);
}

/// Until crash recovery has finished (`ready`), a presentation waits (an execution admitted
/// meanwhile would be taken for a crashed one); past the bound it is refused 503
/// `reserve`/`fail_closed` without reserving or recording anything.
#[tokio::test]
async fn executions_wait_for_recovery_and_consume_nothing_when_it_does_not_finish() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = env();
    let settings = seb_broker::engine::EngineSettings {
        target_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let broker = Arc::new(seb_broker::engine::Broker::new(
        env.store.clone(),
        vec![env.target.clone()],
        seb_broker::records::RecordSigner::new(broker_key()),
        trust(),
        settings,
        env.clock.clone(),
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let state = seb_broker::http::AppState { broker, ready: ready.clone() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/executions", listener.local_addr().unwrap());
    tokio::spawn(seb_broker::serve(
        listener,
        seb_broker::http::router(state, None),
        None,
        std::future::pending(),
    ));
    let c = Cert::new(60);
    let post = || reqwest::Client::new().post(&url).body(c.present()).send();
    // Recovery never finishes: refused after the bound, nothing reserved or recorded.
    let t0 = std::time::Instant::now();
    let r = post().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(300), "it waited first");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["failed_check"].as_str(), body["decision"].as_str()),
        (Some("reserve"), Some("fail_closed")),
        "{body}"
    );
    assert_eq!(body["recorded"], false);
    assert!(!env.store.is_reserved(&c.payload.cid, &c.payload.nonce).await.unwrap());
    assert_eq!(env.store.ledger_size().await.unwrap(), 0, "nothing recorded");
    // Recovery finishes while the same presentation waits: it is then executed.
    let waiting = tokio::spawn(post());
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(!waiting.is_finished(), "answered before recovery finished");
    ready.store(true, Ordering::Release);
    let r = waiting.await.unwrap().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["outcome"]["status"], "applied", "{done}");
}

#[tokio::test]
async fn checkpoints_sign_the_current_root() {
    let env = env();
    env.broker.execute(&Cert::new(27).present(), "c").await.unwrap();
    let cp = env.broker.checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.size, 2);
    let parsed = seb_ledger::checkpoint::Checkpoint::parse_and_verify(
        &cp.note,
        "seb.local/ledger",
        &broker_key().public_key(),
    )
    .unwrap();
    assert_eq!(parsed.root, env.store.root(2).await.unwrap());
    let _: Value = json!(parsed.size);
}
