//! Revocation of one certificate, one agent and everything; epoch statements.

use seb_admission::service::ProposalStatus;
use seb_core::envelope::PayloadType;
use seb_core::keys::TrustedKeys;
use seb_core::types::{Decision, EpochStatement, FailedCheck};
use seb_store::{Revocation, Store as _};

use crate::common::*;

#[tokio::test]
async fn revoking_one_certificate_stops_it_and_only_it() {
    let env = env().await;
    env.propose("p-1", 5, 0.1).await;
    env.propose("p-2", 6, 0.1).await;
    let (c1, p1) = env.certificate("p-1").await;
    let (c2, _) = env.certificate("p-2").await;
    let st = env.revoke(Revocation::Cid(p1.cid.clone())).await;
    let r = env.execute(&c1).await;
    assert_eq!(refused(&r), (FailedCheck::Revocation, Decision::FailClosed, 503));
    applied(&env.execute(&c2).await);
    let trusted: TrustedKeys = [issuer().public_key()].into_iter().collect();
    let s: EpochStatement =
        st.verify(PayloadType::Epoch, &trusted).unwrap().parse(usize::MAX).unwrap();
    assert_eq!(s.revoked_cids, vec![p1.cid]);
}

#[tokio::test]
async fn revoking_an_agent_stops_its_certificates_and_proposals() {
    let env = env().await;
    env.propose("p-a", 5, 0.1).await;
    let (c, _) = env.certificate("p-a").await;
    let pending = env.propose("p-pending", 6, 0.7).await;
    assert_eq!(pending.status, ProposalStatus::Pending);
    env.revoke(Revocation::Agent("agent-a".into())).await;
    let r = env.execute(&c).await;
    assert_eq!(refused(&r), (FailedCheck::Revocation, Decision::FailClosed, 503));
    assert_eq!(env.admission.view("p-pending").await.unwrap().status, ProposalStatus::Denied);
    let v = env.propose("p-after", 5, 0.1).await;
    assert_eq!(v.status, ProposalStatus::Denied);
    assert!(v.reason.unwrap().contains("revoked"));
}

#[tokio::test]
async fn revoking_everything_bumps_the_revocation_epoch() {
    let env = env().await;
    env.propose("p-a", 5, 0.1).await;
    let (c, p) = env.certificate("p-a").await;
    let before = env.store.epochs().await.unwrap().revocation_epoch;
    env.revoke(Revocation::All).await;
    assert_eq!(env.store.epochs().await.unwrap().revocation_epoch, before + 1);
    let r = env.execute(&c).await;
    assert_eq!(refused(&r), (FailedCheck::Revocation, Decision::FailClosed, 503));
    // New certificates carry the new epoch and work.
    env.propose("p-b", 6, 0.1).await;
    let (c, q) = env.certificate("p-b").await;
    assert_eq!(q.revocation_epoch, p.revocation_epoch + 1);
    applied(&env.execute(&c).await);
}

#[tokio::test]
async fn revocations_need_an_admin_and_are_recorded_in_the_ledger() {
    let env = env().await;
    let (body, _) = env.admin_request(Some(Revocation::All), None);
    let other = seb_admission::client::sign_admin(
        &seb_core::json::parse(&body, usize::MAX).unwrap(),
        &validator(0),
    )
    .unwrap()
    .1;
    assert!(env.admission.revoke(&body, Some(&other)).await.is_err());
    let (body, sig) = env.admin_request(Some(Revocation::Cid("not-a-uuid".into())), None);
    assert!(env.admission.revoke(&body, Some(&sig)).await.is_err());
    env.revoke(Revocation::Agent("agent-b".into())).await;
    let l = env.ledger().await;
    let (ty, kid, p) = l.last().unwrap();
    assert_eq!(ty, "application/vnd.seb.epoch+json;v=1");
    assert_eq!(kid, &issuer().kid().to_string());
    assert_eq!(p["revoked_agents"], serde_json::json!(["agent-b"]));
}

#[tokio::test]
async fn epoch_statements_are_signed_current_and_carry_their_ttl() {
    let env = env().await;
    env.propose("p-a", 5, 0.1).await;
    let (_, p) = env.certificate("p-a").await;
    env.revoke(Revocation::Cid(p.cid.clone())).await;
    env.revoke(Revocation::Agent("agent-b".into())).await;
    env.advance(1234);
    let st = env.admission.statement().await.unwrap();
    let trusted: TrustedKeys = [issuer().public_key()].into_iter().collect();
    let s: EpochStatement =
        st.verify(PayloadType::Epoch, &trusted).unwrap().parse(usize::MAX).unwrap();
    let e = env.store.epochs().await.unwrap();
    assert_eq!((s.policy_epoch, s.revocation_epoch), (e.policy_epoch, e.revocation_epoch));
    assert_eq!(s.revoked_cids, vec![p.cid]);
    assert_eq!(s.revoked_agents, vec!["agent-b".to_owned()]);
    assert_eq!(s.issued_at_ms, NOW_MS + 1234);
    assert_eq!(s.ttl_ms, 10_000, "default TTL");
    // A broker in statement mode treats it as stale once issued_at_ms + ttl_ms has passed:
    // the fields a consumer needs are exactly these two.
    assert!(s.issued_at_ms + s.ttl_ms > env.now());
    // Not signed by anyone else.
    let broker_only: TrustedKeys = [broker_key().public_key()].into_iter().collect();
    assert!(st.verify(PayloadType::Epoch, &broker_only).is_err());
    let custom = env_with("statement_ttl_ms = 2500\n").await;
    let st = custom.admission.statement().await.unwrap();
    let s: EpochStatement =
        st.verify(PayloadType::Epoch, &trusted).unwrap().parse(usize::MAX).unwrap();
    assert_eq!(s.ttl_ms, 2500);
}
