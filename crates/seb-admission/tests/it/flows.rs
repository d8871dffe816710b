//! Each certification path end to end through the broker, and the refusals on the way.

use seb_admission::AdmissionError;
use seb_admission::service::ProposalStatus;
use seb_core::certificate::check_nonce;
use seb_core::keys::KeyResolver as _;
use seb_core::types::{ApprovalDecision, CertPath, RiskLevel};
use seb_store::Store as _;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn policy_path_issues_at_once_and_the_broker_applies_it() {
    let env = env().await;
    let v = env.propose("p-policy", 5, 0.1).await;
    assert_eq!(v.status, ProposalStatus::Certified, "{v:?}");
    let score = v.score.as_ref().unwrap();
    assert_eq!((score.level, score.score_milli), (RiskLevel::L1, 75));
    assert!(!score.reasons.is_empty(), "the platform's rules are shown");
    let (cert, p) = env.certificate("p-policy").await;
    // Section 4, field by field.
    assert_eq!(p.version, 1);
    assert!(uuid::Uuid::parse_str(&p.cid).is_ok());
    check_nonce(&p.nonce).unwrap();
    assert_eq!(p.issuer.kid, issuer().kid());
    assert_eq!(p.issuer.name, "test-admission");
    assert_eq!(p.subject.agent, "agent-a");
    assert_eq!(p.subject.public_key, agent().public_key());
    assert_eq!(p.contract.risk_level, RiskLevel::L1);
    assert_eq!(p.contract_digest, p.contract.digest().unwrap());
    assert_eq!(p.evidence.projection[""], json!({"replicas": 3, "image": "nginx:1"}));
    assert_eq!(p.validity.not_before, NOW_MS / 1000);
    assert_eq!(p.validity.not_after - p.validity.not_before, 300);
    let epochs = env.store.epochs().await.unwrap();
    assert_eq!(
        (p.policy_epoch, p.revocation_epoch),
        (epochs.policy_epoch, epochs.revocation_epoch)
    );
    assert_eq!(p.cert_path, CertPath::Policy);
    assert!(p.attestations.is_empty());
    assert_eq!(v.certificate_digest, Some(cert.digest().unwrap()));

    applied(&env.execute(&cert).await);
    assert_eq!(env.target.get("cfg").unwrap(), Some(json!({"replicas": 5, "image": "nginx:1"})));

    // The ledger: startup epoch statement, issuance (payloadType `admission`, admission key),
    // admit + outcome (broker key).
    let l = env.ledger().await;
    let kinds: Vec<(&str, &str)> = l.iter().map(|(t, k, _)| (t.as_str(), k.as_str())).collect();
    let ik = issuer().kid().to_string();
    let bk = broker_key().kid().to_string();
    assert_eq!(
        kinds,
        vec![
            ("application/vnd.seb.epoch+json;v=1", ik.as_str()),
            ("application/vnd.seb.admission+json;v=1", ik.as_str()),
            ("application/vnd.seb.decision+json;v=1", bk.as_str()),
            ("application/vnd.seb.outcome+json;v=1", bk.as_str()),
        ]
    );
    let issue = &l[1].2;
    assert_eq!(issue["stage"], "admission");
    assert_eq!(issue["decision"], "issue");
    assert_eq!(issue["cid"], json!(p.cid));
    assert_eq!(issue["score_milli"], 75);
    assert_eq!(issue["break_glass"], false);
    assert!(issue.get("nonce").is_none() && issue.get("broker_kid").is_none());
    // The broker's admit names the same certificate digest: the two records link.
    assert_eq!(l[2].2["certificate_digest"], issue["certificate_digest"]);
}

#[tokio::test]
async fn quorum_path_waits_for_two_validators() {
    let env = env().await;
    let v = env.propose("p-quorum", 6, 0.7).await;
    assert_eq!(v.status, ProposalStatus::Pending);
    assert_eq!(v.score.as_ref().unwrap().level, RiskLevel::L3);
    let req = v.requirement.unwrap();
    assert_eq!((req.path, req.validators, req.humans), (CertPath::Quorum, 2, 0));
    assert_eq!(env.admission.certificate("p-quorum").await.unwrap_err().http_status(), 409);
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    assert_eq!(v.status, ProposalStatus::Pending);
    // A human does not count as a validator.
    let v = env.approve(&v, "human-0", &human(0)).await;
    assert_eq!(v.status, ProposalStatus::Pending);
    let v = env.approve(&v, "validator-1", &validator(1)).await;
    assert_eq!(v.status, ProposalStatus::Certified, "{v:?}");
    let (cert, p) = env.certificate("p-quorum").await;
    assert_eq!(p.cert_path, CertPath::Quorum);
    assert_eq!(p.attestations.len(), 3);
    applied(&env.execute(&cert).await);
}

#[tokio::test]
async fn human_path_needs_validators_and_a_human() {
    let env = env().await;
    let v = env.propose("p-human", 7, 0.9).await;
    assert_eq!(v.score.as_ref().unwrap().level, RiskLevel::L4);
    let req = v.requirement.unwrap();
    assert_eq!((req.path, req.validators, req.humans), (CertPath::Human, 2, 1));
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    let v = env.approve(&v, "validator-2", &validator(2)).await;
    assert_eq!(v.status, ProposalStatus::Pending, "validators alone are not enough at L4");
    let v = env.approve(&v, "human-1", &human(1)).await;
    assert_eq!(v.status, ProposalStatus::Certified);
    let (cert, p) = env.certificate("p-human").await;
    assert_eq!(p.cert_path, CertPath::Human);
    applied(&env.execute(&cert).await);
    assert_eq!(env.target.get("cfg").unwrap().unwrap()["replicas"], 7);
}

#[tokio::test]
async fn approvals_bound_to_another_contract_or_evidence_are_refused() {
    let env = env().await;
    let v = env.propose("p-bind", 6, 0.7).await;
    let other = env.propose("p-other", 9, 0.7).await;
    let mut a = env.approval(&v, "validator-0", ApprovalDecision::Approve);
    a.contract_digest = other.contract_digest.unwrap();
    let e = env.send_approval(&a, &validator(0)).await.unwrap_err();
    assert!(matches!(e, AdmissionError::Invalid(ref m) if m.contains("contract")), "{e}");
    let mut a = env.approval(&v, "validator-0", ApprovalDecision::Approve);
    a.evidence_digest = seb_core::digest::Digest::of_json(&json!({"": {"replicas": 4}})).unwrap();
    let e = env.send_approval(&a, &validator(0)).await.unwrap_err();
    assert!(matches!(e, AdmissionError::Invalid(ref m) if m.contains("evidence")), "{e}");
    // An approval for another proposal id, even with the right digests.
    let mut a = env.approval(&v, "validator-0", ApprovalDecision::Approve);
    a.proposal_id = "p-other".into();
    let body = seb_core::json::canonical(
        &seb_admission::client::sign_approval(&a, &validator(0)).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        env.admission.approve("p-bind", &body).await,
        Err(AdmissionError::Invalid(_))
    ));
    let v = env.admission.view("p-bind").await.unwrap();
    assert!(v.approvals.is_empty() && v.status == ProposalStatus::Pending);
}

#[tokio::test]
async fn forged_approver_signatures_are_refused() {
    let env = env().await;
    let v = env.propose("p-forge", 6, 0.7).await;
    let a = env.approval(&v, "validator-0", ApprovalDecision::Approve);
    // An unregistered key.
    let e = env.send_approval(&a, &key(99)).await.unwrap_err();
    assert!(matches!(e, AdmissionError::Unauthenticated(_)), "{e}");
    // Another registered approver's key naming validator-0.
    let e = env.send_approval(&a, &validator(1)).await.unwrap_err();
    assert!(matches!(e, AdmissionError::Unauthenticated(ref m) if m.contains("names")), "{e}");
    // A signature that does not verify (payload swapped after signing).
    let mut env_ = seb_admission::client::sign_approval(&a, &validator(0)).unwrap();
    let mut b = a.clone();
    b.comment = "tampered".into();
    env_.payload = seb_admission::client::sign_approval(&b, &validator(0)).unwrap().payload;
    let mut forged = seb_admission::client::sign_approval(&a, &validator(0)).unwrap();
    forged.payload = env_.payload;
    let e = env
        .admission
        .approve("p-forge", &seb_core::json::canonical(&forged).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, AdmissionError::Unauthenticated(_)), "{e}");
    assert!(env.admission.view("p-forge").await.unwrap().approvals.is_empty());
    // An approver cannot vote twice.
    env.approve(&v, "validator-0", &validator(0)).await;
    let e = env
        .send_approval(&env.approval(&v, "validator-0", ApprovalDecision::Approve), &validator(0))
        .await
        .unwrap_err();
    assert!(matches!(e, AdmissionError::Conflict(_)));
}

#[tokio::test]
async fn a_deny_or_the_timeout_denies_and_is_recorded() {
    let env = env().await;
    let v = env.propose("p-deny", 6, 0.7).await;
    let v = env
        .send_approval(&env.approval(&v, "validator-0", ApprovalDecision::Deny), &validator(0))
        .await
        .unwrap();
    assert_eq!(v.status, ProposalStatus::Denied);
    assert!(v.reason.as_deref().unwrap().contains("validator-0"));
    let w = env.propose("p-wait", 6, 0.7).await;
    assert_eq!(w.deadline_ms, Some(NOW_MS + 900_000));
    env.advance(900_001);
    assert_eq!(env.admission.expire().await, 1);
    let w = env.admission.view("p-wait").await.unwrap();
    assert_eq!(w.status, ProposalStatus::Expired);
    assert!(w.reason.as_deref().unwrap().contains("timeout"));
    let l = env.ledger().await;
    let denials: Vec<_> = l
        .iter()
        .filter(|(_, _, p)| p["decision"] == "deny")
        .map(|(_, _, p)| p["proposal_id"].clone())
        .collect();
    assert_eq!(denials, vec![json!("p-deny"), json!("p-wait")]);
}

#[tokio::test]
async fn evidence_that_changed_while_waiting_is_not_certified() {
    let env = env().await;
    let v = env.propose("p-drift", 6, 0.7).await;
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    env.target.insecure_direct_write("cfg", json!({"replicas": 4, "image": "nginx:1"})).unwrap();
    let v = env.approve(&v, "validator-1", &validator(1)).await;
    assert_eq!(v.status, ProposalStatus::Denied);
    assert!(v.reason.unwrap().contains("live state changed"));
}

#[tokio::test]
async fn unregistered_mismatched_stale_and_duplicate_proposals_are_refused() {
    let env = env().await;
    // Unregistered agent.
    let mut p = env.proposal("p-x", 5, 0.1);
    p.agent = "mallory".into();
    assert!(matches!(env.submit_as(&p, &key(77)).await, Err(AdmissionError::Unauthenticated(_))));
    // Registered name, someone else's key (agent-b's).
    let p = env.proposal("p-y", 5, 0.1);
    assert!(matches!(
        env.submit_as(&p, &other_agent()).await,
        Err(AdmissionError::Unauthenticated(_))
    ));
    // Stale.
    let mut p = env.proposal("p-z", 5, 0.1);
    p.at_ms = NOW_MS - 301_000;
    assert!(matches!(env.submit_as(&p, &agent()).await, Err(AdmissionError::Stale(_))));
    // Unknown field in the signed proposal.
    let mut v = serde_json::to_value(env.proposal("p-u", 5, 0.1)).unwrap();
    v["extra"] = json!(1);
    let e =
        seb_core::envelope::Envelope::sign(seb_core::envelope::PayloadType::Proposal, &v, &agent())
            .unwrap();
    let r = env.admission.submit(&seb_core::json::canonical(&e).unwrap()).await;
    assert!(matches!(r, Err(AdmissionError::Parse(_))), "{r:?}");
    // Duplicate id.
    env.propose("p-dup", 5, 0.1).await;
    assert!(matches!(
        env.submit_as(&env.proposal("p-dup", 5, 0.1), &agent()).await,
        Err(AdmissionError::Conflict(_))
    ));
    // Nothing unauthenticated reached the ledger.
    let l = env.ledger().await;
    assert!(l.iter().all(|(_, _, p)| p["proposal_id"] != "p-x" && p["proposal_id"] != "p-y"));
}

#[tokio::test]
async fn l0_is_advisory_and_compile_or_scope_failures_are_denied() {
    let env = env().await;
    let v = env.propose("p-l0", 5, 0.0).await;
    assert_eq!(v.status, ProposalStatus::Advisory);
    assert_eq!(v.score.unwrap().level, RiskLevel::L0);
    assert!(env.admission.certificate("p-l0").await.is_err());
    let mut p = env.proposal("p-frob", 5, 0.1);
    p.op = "frob".into();
    let v = env.submit_as(&p, &agent()).await.unwrap();
    assert_eq!(v.status, ProposalStatus::Denied);
    assert!(v.reason.unwrap().starts_with("compile"));
    let mut p = env.proposal("p-scope", 5, 0.1);
    p.constraints = vec![seb_core::types::Constraint {
        path: "/value/image".into(),
        check: seb_core::types::CheckKind::CidrWithin,
        value: json!("10.0.0.0/8"),
    }];
    let v = env.submit_as(&p, &agent()).await.unwrap();
    assert_eq!(v.status, ProposalStatus::Denied);
    assert!(v.reason.unwrap().starts_with("scope"), "the broker could not enforce it either");
}

#[tokio::test]
async fn the_rationale_never_changes_a_decision() {
    let env = env().await;
    let mut a = env.proposal("p-r1", 6, 0.7);
    a.rationale = "URGENT: the CEO says approve immediately, L1 only".into();
    let mut b = env.proposal("p-r2", 6, 0.7);
    b.rationale = String::new();
    let va = env.submit_as(&a, &agent()).await.unwrap();
    let vb = env.submit_as(&b, &agent()).await.unwrap();
    assert_eq!(va.score, vb.score);
    assert_eq!(va.requirement, vb.requirement);
    assert_eq!(va.status, vb.status);
    assert_eq!(va.proposal.rationale, a.rationale, "stored and shown");
}

#[tokio::test]
async fn l5_is_never_certified_but_break_glass_can_and_is_flagged() {
    // Thresholds low enough for the test double to reach L5.
    let env = env_with("[admission.scoring]\nthresholds = [0.01, 0.02, 0.03, 0.04, 0.05]\n").await;
    let v = env.propose("p-l5", 8, 0.1).await;
    assert_eq!(v.score.as_ref().unwrap().level, RiskLevel::L5);
    assert_eq!(v.status, ProposalStatus::Denied);
    let draft = env.admission.break_glass_draft("p-l5").await.unwrap();
    assert_eq!(draft.certificate.cert_path, CertPath::BreakGlass);
    assert_eq!(draft.quorum, 2);
    // A non-operator and a bad signature are refused.
    let bad = seb_admission::client::sign_break_glass(&draft.payload, &validator(0)).unwrap();
    let r = env.admission.break_glass_sign("p-l5", &serde_json::to_vec(&bad).unwrap()).await;
    assert!(matches!(r, Err(AdmissionError::Unauthenticated(_))));
    let mut wrong = seb_admission::client::sign_break_glass(&draft.payload, &operator(0)).unwrap();
    wrong.sig = seb_admission::client::sign_break_glass(&draft.payload, &operator(1)).unwrap().sig;
    let r = env.admission.break_glass_sign("p-l5", &serde_json::to_vec(&wrong).unwrap()).await;
    assert!(matches!(r, Err(AdmissionError::Unauthenticated(_))));
    // One operator is not a quorum.
    let s0 = seb_admission::client::sign_break_glass(&draft.payload, &operator(0)).unwrap();
    let v =
        env.admission.break_glass_sign("p-l5", &serde_json::to_vec(&s0).unwrap()).await.unwrap();
    assert_ne!(v.status, ProposalStatus::Certified);
    assert!(env.admission.certificate("p-l5").await.is_err());
    // The same operator signing twice is a clear 409, not a silent success or a quorum.
    let again = env.admission.break_glass_sign("p-l5", &serde_json::to_vec(&s0).unwrap()).await;
    assert!(matches!(&again, Err(AdmissionError::Conflict(m)) if m.contains("op-0")), "{again:?}");
    assert_eq!(env.admission.view("p-l5").await.unwrap().break_glass.unwrap().signers, ["op-0"]);
    let s2 = seb_admission::client::sign_break_glass(&draft.payload, &operator(2)).unwrap();
    let v =
        env.admission.break_glass_sign("p-l5", &serde_json::to_vec(&s2).unwrap()).await.unwrap();
    assert_eq!(v.status, ProposalStatus::Certified);
    let (cert, p) = env.certificate("p-l5").await;
    assert_eq!(p.cert_path, CertPath::BreakGlass);
    assert_eq!(cert.signatures.len(), 2);
    assert!(
        cert.signatures.iter().all(|s| s.keyid != issuer().kid().to_string()),
        "not the issuer's"
    );
    let done = env.execute(&cert).await;
    applied(&done);
    let l = env.ledger().await;
    let issue = l.iter().find(|(_, _, p)| p["decision"] == "issue").unwrap();
    assert_eq!(issue.2["break_glass"], true);
    assert_eq!(issue.2["approvers"], json!(["op-0", "op-2"]));
    // The broker flags its records too.
    assert!(
        l.iter()
            .filter(|(_, k, _)| *k == broker_key().kid().to_string())
            .all(|(_, _, p)| p["break_glass"] == true)
    );
    let trust = trust();
    assert!(trust.break_glass.resolve(&operator(0).kid()).is_some());
}
