//! Cedar policies: who may propose, escalation (never lowering), reloads.

use seb_admission::service::ProposalStatus;
use seb_admission::{AdmissionConfig, AdmissionError};
use seb_core::types::{CertPath, Decision, FailedCheck, RiskLevel};
use seb_store::Store as _;
use serde_json::json;

use crate::common::*;

const ESCALATING: &str = r#"
@id("agents-may-propose")
permit(principal, action == SEB::Action::"propose", resource == SEB::Platform::"test");

@id("web-team-may-not-delete")
forbid(principal, action == SEB::Action::"propose", resource) when { principal.team == "web" && context.op == "delete" };

@id("big-scale-needs-a-human")
permit(principal, action == SEB::Action::"require_human", resource)
  when { context.op == "set" && context.params.value.replicas > 10 };

@id("prod-payments-needs-quorum")
permit(principal in SEB::Group::"sre", action == SEB::Action::"require_quorum", resource)
  when { principal.environment == "prod" && context.risk_level >= 2 };
"#;

/// Would lower every path if escalation could go down: it forbids both escalations.
const TRIES_TO_LOWER: &str = r#"
permit(principal, action == SEB::Action::"propose", resource);
forbid(principal, action == SEB::Action::"require_quorum", resource);
forbid(principal, action == SEB::Action::"require_human", resource);
"#;

#[tokio::test]
async fn policy_escalates_the_path_and_the_broker_still_accepts() {
    let env = env().await;
    env.load_policy(ESCALATING).await;
    // L1 by score, but the policy wants a human for more than 10 replicas.
    let v = env.propose("p-esc", 20, 0.1).await;
    assert_eq!(v.score.as_ref().unwrap().level, RiskLevel::L1);
    assert_eq!(v.status, ProposalStatus::Pending);
    let req = v.requirement.unwrap();
    assert_eq!((req.path, req.validators, req.humans), (CertPath::Human, 0, 1));
    let policy = v.policy.as_ref().unwrap();
    assert!(
        policy.outcome.reasons.iter().any(|r| r.contains("big-scale-needs-a-human")),
        "{policy:?}"
    );
    let v = env.approve(&v, "human-0", &human(0)).await;
    assert_eq!(v.status, ProposalStatus::Certified);
    let (cert, p) = env.certificate("p-esc").await;
    assert_eq!(p.cert_path, CertPath::Human);
    assert_eq!(
        p.contract.risk_level,
        RiskLevel::L1,
        "escalation raises the path, not the scored level"
    );
    applied(&env.execute(&cert).await);
    // Group membership and attributes: an L2 proposal from agent-a (sre, prod) needs a quorum.
    let v = env.propose("p-esc2", 5, 0.5).await;
    assert_eq!(v.score.as_ref().unwrap().level, RiskLevel::L2);
    assert_eq!(v.requirement.unwrap().path, CertPath::Quorum);
}

#[tokio::test]
async fn policy_decides_who_may_propose() {
    let env = env().await;
    env.load_policy(ESCALATING).await;
    let mut p = env.proposal("p-del", 0, 0.1);
    p.agent = "agent-b".into();
    p.op = "delete".into();
    p.params = json!({});
    let v = env.submit_as(&p, &other_agent()).await.unwrap();
    assert_eq!(v.status, ProposalStatus::Denied);
    assert!(v.reason.as_deref().unwrap().contains("web-team-may-not-delete"), "{v:?}");
    // No policy permits anything: everything is denied (default deny).
    env.load_policy("forbid(principal, action, resource) when { false };").await;
    let v = env.propose("p-none", 5, 0.1).await;
    assert_eq!(v.status, ProposalStatus::Denied);
    assert!(v.reason.as_deref().unwrap().contains("no policy permits"));
}

#[tokio::test]
async fn policy_cannot_lower_a_path() {
    let env = env().await;
    env.load_policy(TRIES_TO_LOWER).await;
    let v = env.propose("p-low", 6, 0.7).await;
    assert_eq!(v.score.as_ref().unwrap().level, RiskLevel::L3);
    let req = v.requirement.unwrap();
    assert_eq!((req.path, req.validators), (CertPath::Quorum, 2), "the level's rule stands");
    let v = env.propose("p-low4", 6, 0.9).await;
    let req = v.requirement.unwrap();
    assert_eq!((req.path, req.validators, req.humans), (CertPath::Human, 2, 1));
    // Configuration cannot lower it either.
    let dir = tempfile::tempdir().unwrap();
    let l5 = "[admission.path_rules]\nL5 = { path = \"human\", humans = 3 }\n";
    assert!(
        AdmissionConfig::from_toml_str(&config_text(l5), dir.path()).is_err(),
        "L5 cannot be enabled"
    );
    let l3_weaker = "[admission.path_rules]\nL3 = { path = \"quorum\", validators = 1 }\n";
    let e = AdmissionConfig::from_toml_str(&config_text(l3_weaker), dir.path()).unwrap_err();
    assert!(e.to_string().contains("weaker"), "{e}");
    let l4_policy =
        "[admission.path_rules]\nL4 = { path = \"policy\", validators = 2, humans = 1 }\n";
    assert!(AdmissionConfig::from_toml_str(&config_text(l4_policy), dir.path()).is_err());
    let bad_escalation = "[admission.escalation]\nhuman = { path = \"policy\" }\n";
    assert!(AdmissionConfig::from_toml_str(&config_text(bad_escalation), dir.path()).is_err());
}

#[tokio::test]
async fn stricter_configured_rules_apply() {
    // L1 requires a validator here (stricter than the default): allowed, and the broker's
    // default rules are still met.
    let stricter = "[admission.path_rules]\nL1 = { path = \"quorum\", validators = 1 }\n";
    let env = env_with(stricter).await;
    let v = env.propose("p-strict", 5, 0.1).await;
    assert_eq!(v.status, ProposalStatus::Pending);
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    assert_eq!(v.status, ProposalStatus::Certified);
    let (cert, _) = env.certificate("p-strict").await;
    applied(&env.execute(&cert).await);
}

#[tokio::test]
async fn a_policy_reload_invalidates_outstanding_certificates() {
    let env = env().await;
    let before = env.store.epochs().await.unwrap().policy_epoch;
    env.propose("p-old", 5, 0.1).await;
    let (old, _) = env.certificate("p-old").await;
    let epoch = env.load_policy(ESCALATING).await;
    assert_eq!(epoch, before + 1);
    let r = env.execute(&old).await;
    assert_eq!(refused(&r), (FailedCheck::PolicyEpoch, Decision::Readmit, 409));
    // Re-admission under the new policy works.
    env.propose("p-new", 5, 0.1).await;
    let (new, p) = env.certificate("p-new").await;
    assert_eq!(p.policy_epoch, epoch);
    applied(&env.execute(&new).await);
    // The load is recorded as a signed epoch statement, and versioned.
    let l = env.ledger().await;
    let statements: Vec<_> = l.iter().filter(|(t, _, _)| t.contains("epoch")).collect();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[1].2["policy_epoch"], epoch);
    let (_, e, digest, history) = env.admission.policy().await.unwrap();
    assert_eq!(e, epoch);
    assert_eq!(history.last().unwrap().digest, digest);
    assert_eq!(history.last().unwrap().loaded_by, "ops");
}

#[tokio::test]
async fn a_pending_proposal_is_re_evaluated_under_a_new_policy() {
    let env = env().await;
    let v = env.propose("p-pend", 20, 0.7).await;
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    env.load_policy(ESCALATING).await;
    // The second validator would have completed the quorum; the new policy wants a human too.
    let v = env.approve(&v, "validator-1", &validator(1)).await;
    assert_eq!(v.status, ProposalStatus::Pending);
    assert_eq!(v.requirement.unwrap().humans, 1);
    let v = env.approve(&v, "human-2", &human(2)).await;
    assert_eq!(v.status, ProposalStatus::Certified);
    let (cert, p) = env.certificate("p-pend").await;
    assert_eq!(p.cert_path, CertPath::Human);
    applied(&env.execute(&cert).await);
}

#[tokio::test]
async fn policy_loads_need_an_admin_signature_and_valid_cedar() {
    let env = env().await;
    let (body, _) = env.admin_request(None, Some(ESCALATING));
    assert!(matches!(
        env.admission.load_policy(&body, None).await,
        Err(AdmissionError::Unauthenticated(_))
    ));
    let forged = format!("{}:{}", admin().kid(), validator(0).sign_b64(b"x"));
    assert!(matches!(
        env.admission.load_policy(&body, Some(&forged)).await,
        Err(AdmissionError::Unauthenticated(_))
    ));
    let (body, sig) = env.admin_request(None, Some("permit("));
    assert!(matches!(
        env.admission.load_policy(&body, Some(&sig)).await,
        Err(AdmissionError::Policy(_))
    ));
    let (body, sig) = env.admin_request(None, Some(ESCALATING));
    env.admission.load_policy(&body, Some(&sig)).await.unwrap();
    assert!(
        matches!(
            env.admission.load_policy(&body, Some(&sig)).await,
            Err(AdmissionError::Conflict(_))
        ),
        "replay"
    );
}
