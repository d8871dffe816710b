//! Passkey approvers (spec 5.1) end to end over the library API: an admin invites, the approver
//! registers a passkey (software authenticator), a passkey approval certifies an L4 change, the
//! broker re-verifies it at check 3 from the store's registry, counters refuse a cloned
//! authenticator, tampered passkey approvals inside a re-signed certificate are refused at
//! `path`, and enrolment and removal are signed ledger records.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use seb_admission::AdmissionError;
use seb_admission::client::{AdminRequest, InviteApprover, sign_admin};
use seb_admission::service::ProposalStatus;
use seb_core::certificate::UnverifiedCertificate;
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::json;
use seb_core::types::{ApprovalDecision, CertPath, FailedCheck, RiskLevel};
use seb_core::webauthn::soft::SoftPasskey;
use serde_json::{Value, json};

use crate::common::*;

const ORIGIN: &str = "https://console.test";

fn webauthn_config() -> String {
    format!(
        "public_url = \"{ORIGIN}/\"\n[admission.webauthn]\nrp_id = \"console.test\"\norigins = [\"{ORIGIN}\"]\n"
    )
}

fn admin_command(env: &Env, set: impl FnOnce(&mut AdminRequest)) -> (Vec<u8>, String) {
    let mut r = AdminRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        admin: "ops".into(),
        at_ms: env.now(),
        revoke: None,
        load_policy: None,
        invite_approver: None,
        remove_approver: None,
    };
    set(&mut r);
    sign_admin(&r, &admin()).unwrap()
}

async fn invite(env: &Env, name: &str, role: &str) -> Result<String, AdmissionError> {
    let (body, sig) = admin_command(env, |r| {
        r.invite_approver = Some(InviteApprover { name: name.into(), role: role.into() })
    });
    let v = env.admission.invite_approver(&body, Some(&sig)).await?;
    assert_eq!(v.url, format!("{ORIGIN}/console/enrol/{}", v.token));
    assert_eq!(v.expires_at_ms, env.now() + 15 * 60 * 1000);
    Ok(v.token)
}

fn registration(pk: &SoftPasskey, challenge: &[u8]) -> Vec<u8> {
    let (cdj, ad) = pk.register(challenge);
    json::canonical(&json!({
        "credential_id": URL_SAFE_NO_PAD.encode(&pk.credential.credential_id),
        "public_key": URL_SAFE_NO_PAD.encode(&pk.credential.public_key),
        "alg": -8,
        "client_data_json": URL_SAFE_NO_PAD.encode(cdj),
        "authenticator_data": URL_SAFE_NO_PAD.encode(ad),
    }))
    .unwrap()
}

/// Invite `name`, register a fresh software passkey for it, return the passkey.
async fn enrol(env: &Env, name: &str, seed: u8) -> SoftPasskey {
    let token = invite(env, name, "human").await.unwrap();
    let view = env.admission.enrolment(&token).await.unwrap();
    assert_eq!((view.name.as_str(), view.rp_id.as_str()), (name, "console.test"));
    let challenge = URL_SAFE_NO_PAD.decode(&view.challenge).unwrap();
    let pk = SoftPasskey::new([seed; 32], "console.test", ORIGIN);
    let entry = env.admission.enrol(&token, &registration(&pk, &challenge)).await.unwrap();
    assert_eq!(entry.payload_type, PayloadType::Admission.media_type());
    // Single use: the token is gone.
    assert!(matches!(env.admission.enrolment(&token).await, Err(AdmissionError::NotFound(_))));
    assert!(matches!(
        env.admission.enrol(&token, &registration(&pk, &challenge)).await,
        Err(AdmissionError::NotFound(_))
    ));
    pk
}

async fn passkey_approve(
    env: &Env,
    v: &seb_admission::service::ProposalView,
    name: &str,
    pk: &mut SoftPasskey,
) -> Result<seb_admission::service::ProposalView, AdmissionError> {
    let a = env.approval(v, name, ApprovalDecision::Approve);
    let e = pk.sign_approval(&a).unwrap();
    env.admission.approve(&v.proposal_id, &json::canonical(&e).unwrap()).await
}

/// An L4 change certified by two validators and an enrolled passkey approver executes; the
/// broker (which has no passkey in its configuration) re-verifies it from the store.
#[tokio::test]
async fn an_enrolled_passkey_approval_certifies_and_the_broker_reverifies_it() {
    let env = env_with(&webauthn_config()).await;
    let mut alice = enrol(&env, "alice", 1).await;

    let ledger = env.ledger().await;
    let (pt, signer, rec) = ledger.last().unwrap();
    assert_eq!(pt, PayloadType::Admission.media_type());
    assert_eq!(signer, issuer().kid().as_str(), "the registry entry is signed by the issuer");
    assert_eq!(rec["decision"], "enrol");
    assert_eq!(rec["approver"], "alice");
    assert_eq!(rec["kid"], alice.credential.kid().as_str());
    assert_eq!(rec["credential"]["alg"], -8);
    assert_eq!(rec["by"], "ops");

    let v = env.propose("pk-1", 7, 0.9).await;
    assert_eq!(v.score.as_ref().unwrap().level, RiskLevel::L4);
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    let v = env.approve(&v, "validator-1", &validator(1)).await;
    let v = passkey_approve(&env, &v, "alice", &mut alice).await.unwrap();
    assert_eq!(v.status, ProposalStatus::Certified);
    let (cert, p) = env.certificate("pk-1").await;
    assert_eq!(p.cert_path, CertPath::Human);
    assert!(p.attestations.iter().any(|a| a.signatures[0].webauthn.is_some()));
    applied(&env.execute(&cert).await);
    assert_eq!(env.target.get("cfg").unwrap().unwrap()["replicas"], 7);

    // The list shows configured and enrolled approvers.
    let caller = env
        .admission
        .authenticate_request(
            "GET",
            "/v1/admission/approvers",
            Some(&seb_admission::client::sign_read(
                &validator(0),
                "GET",
                "/v1/admission/approvers",
                env.now(),
            )),
        )
        .unwrap();
    let list = env.admission.list_approvers(&caller).await.unwrap();
    let alice_row = list.iter().find(|a| a.name == "alice").unwrap();
    assert_eq!(alice_row.source, "enrolled");
    assert_eq!(alice_row.kid, alice.credential.kid());
    assert!(list.iter().any(|a| a.name == "validator-0" && a.source == "config"));
}

/// A passkey assertion whose counter does not increase (a cloned authenticator, or the same
/// assertion replayed) is refused on receipt and recorded nowhere.
#[tokio::test]
async fn a_passkey_counter_that_does_not_increase_is_refused() {
    let env = env_with(&webauthn_config()).await;
    let mut alice = enrol(&env, "alice", 2).await;
    let v1 = env.propose("pk-c1", 7, 0.9).await;
    passkey_approve(&env, &v1, "alice", &mut alice).await.unwrap();
    // The clone: same key, counter rewound.
    let v2 = env.propose("pk-c2", 6, 0.9).await;
    alice.counter -= 1;
    let err = passkey_approve(&env, &v2, "alice", &mut alice).await.unwrap_err();
    assert!(matches!(&err, AdmissionError::Unauthenticated(m) if m.contains("counter")), "{err:?}");
    assert!(env.admission.view("pk-c2").await.unwrap().approvals.is_empty());
    // The real authenticator, one further, is accepted.
    alice.counter += 1;
    passkey_approve(&env, &v2, "alice", &mut alice).await.unwrap();
}

/// A passkey approval for another proposal, or with a flipped byte, is refused on receipt.
#[tokio::test]
async fn tampered_or_misbound_passkey_approvals_are_refused_on_receipt() {
    let env = env_with(&webauthn_config()).await;
    let mut alice = enrol(&env, "alice", 3).await;
    let v1 = env.propose("pk-t1", 7, 0.9).await;
    let v2 = env.propose("pk-t2", 6, 0.9).await;
    // Alice's assertion over the approval of pk-t1, with pk-t2's approval as payload.
    let signed =
        alice.sign_approval(&env.approval(&v1, "alice", ApprovalDecision::Approve)).unwrap();
    let mut moved = Envelope::sign_bytes(
        PayloadType::Approval,
        &json::canonical(&env.approval(&v2, "alice", ApprovalDecision::Approve)).unwrap(),
        &[],
    );
    moved.signatures = signed.signatures.clone();
    let err = env.admission.approve("pk-t2", &json::canonical(&moved).unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, AdmissionError::Unauthenticated(m) if m.contains("challenge")),
        "{err:?}"
    );
    // A flipped bit in the authenticator data (UV cleared).
    let mut flipped = signed.clone();
    let w = flipped.signatures[0].webauthn.as_mut().unwrap();
    let mut ad = URL_SAFE_NO_PAD.decode(&w.authenticator_data).unwrap();
    ad[32] &= !0x04;
    w.authenticator_data = URL_SAFE_NO_PAD.encode(ad);
    let err =
        env.admission.approve("pk-t1", &json::canonical(&flipped).unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, AdmissionError::Unauthenticated(m) if m.contains("user_verified")),
        "{err:?}"
    );
    // A passkey entry on any other statement kind is refused outright.
    let mut on_proposal = signed.clone();
    on_proposal.payload_type = PayloadType::Proposal.media_type().into();
    assert!(env.admission.submit(&json::canonical(&on_proposal).unwrap()).await.is_err());
    assert!(env.admission.view("pk-t1").await.unwrap().approvals.is_empty());
    assert!(env.admission.view("pk-t2").await.unwrap().approvals.is_empty());
}

/// An insider holding the issuer key re-signs a certificate around a tampered passkey
/// approval (payload swapped to another proposal's approval, or the assertion's client data
/// altered): the broker re-verifies the assertion itself and refuses at `path`.
#[tokio::test]
async fn a_tampered_passkey_approval_inside_a_certificate_is_refused_at_path() {
    let env = env_with(&webauthn_config()).await;
    let mut alice = enrol(&env, "alice", 4).await;
    let v = env.propose("pk-b1", 7, 0.9).await;
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    let v = env.approve(&v, "validator-1", &validator(1)).await;
    passkey_approve(&env, &v, "alice", &mut alice).await.unwrap();
    let (cert, payload) = env.certificate("pk-b1").await;
    let i = payload.attestations.iter().position(|a| a.signatures[0].webauthn.is_some()).unwrap();

    let resign = |p: &seb_core::types::CertificatePayload| {
        Envelope::sign(PayloadType::Certificate, p, &issuer()).unwrap()
    };
    // 1. The client data's origin rewritten (signature no longer matches).
    let mut p1 = payload.clone();
    let w = p1.attestations[i].signatures[0].webauthn.as_mut().unwrap();
    let cdj = String::from_utf8(URL_SAFE_NO_PAD.decode(&w.client_data_json).unwrap()).unwrap();
    w.client_data_json = URL_SAFE_NO_PAD.encode(cdj.replace(ORIGIN, "https://console.test.evil"));
    // 2. The assertion signature replaced by one over another statement.
    let mut p2 = payload.clone();
    let other = alice
        .sign_approval(&json!({"approver": "alice", "proposal_id": "something-else"}))
        .unwrap();
    p2.attestations[i].signatures = other.signatures;
    for (what, p) in [("client data", p1), ("other statement", p2)] {
        let (check, ..) = refused(&env.execute(&resign(&p)).await);
        assert_eq!(check, FailedCheck::Path, "{what}");
    }
    // The untouched certificate still executes.
    applied(&env.execute(&cert).await);
    let _ = UnverifiedCertificate::new(cert);
}

/// Invitations: admin-signed only, human role only, 15 minutes, and a registration that fails
/// its checks leaves the invitation usable; removal is admin-signed, recorded, and stops the
/// approver's passkey at admission and (within a second) at the broker.
#[tokio::test]
async fn invitations_expire_and_removal_is_recorded_and_effective() {
    let env = env_with(&webauthn_config()).await;
    // Not an admin.
    let (body, _) = admin_command(&env, |r| {
        r.invite_approver = Some(InviteApprover { name: "eve".into(), role: "human".into() })
    });
    let forged = format!("{}:{}", validator(0).kid(), validator(0).sign_b64(&body));
    assert!(matches!(
        env.admission.invite_approver(&body, Some(&forged)).await,
        Err(AdmissionError::Unauthenticated(_))
    ));
    // Validators keep Ed25519 keys; names already configured are taken.
    assert!(matches!(invite(&env, "bob", "validator").await, Err(AdmissionError::Invalid(_))));
    assert!(matches!(invite(&env, "human-0", "human").await, Err(AdmissionError::Conflict(_))));
    // Expiry.
    let token = invite(&env, "bob", "human").await.unwrap();
    env.advance(15 * 60 * 1000);
    assert!(matches!(env.admission.enrolment(&token).await, Err(AdmissionError::NotFound(_))));
    // A registration over the wrong challenge is refused and does not use the invitation.
    let token = invite(&env, "bob", "human").await.unwrap();
    let pk = SoftPasskey::new([5; 32], "console.test", ORIGIN);
    let err = env.admission.enrol(&token, &registration(&pk, &[0u8; 32])).await.unwrap_err();
    assert!(matches!(&err, AdmissionError::Invalid(m) if m.contains("challenge")), "{err:?}");
    let challenge =
        URL_SAFE_NO_PAD.decode(env.admission.enrolment(&token).await.unwrap().challenge).unwrap();
    env.admission.enrol(&token, &registration(&pk, &challenge)).await.unwrap();
    let mut bob = pk;

    // Bob approves one proposal; then an admin removes him.
    let v = env.propose("pk-r1", 7, 0.9).await;
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    let v = env.approve(&v, "validator-1", &validator(1)).await;
    passkey_approve(&env, &v, "bob", &mut bob).await.unwrap();
    let (cert, _) = env.certificate("pk-r1").await;
    let (body, sig) = admin_command(&env, |r| r.remove_approver = Some("bob".into()));
    let rec = env.admission.remove_approver("bob", &body, Some(&sig)).await.unwrap();
    let payload: Value = serde_json::from_slice(&rec.insecure_payload_bytes().unwrap()).unwrap();
    assert_eq!(payload["decision"], "remove_approver");
    let (_, _, last) = env.ledger().await.pop().unwrap();
    assert_eq!(last["decision"], "remove_approver");
    assert_eq!(last["by"], "ops");
    // Removing again, or removing a configured approver, is refused.
    let (body, sig) = admin_command(&env, |r| r.remove_approver = Some("bob".into()));
    assert!(matches!(
        env.admission.remove_approver("bob", &body, Some(&sig)).await,
        Err(AdmissionError::NotFound(_))
    ));
    let (body, sig) = admin_command(&env, |r| r.remove_approver = Some("human-0".into()));
    assert!(matches!(
        env.admission.remove_approver("human-0", &body, Some(&sig)).await,
        Err(AdmissionError::Conflict(_))
    ));
    // Admission no longer accepts bob's passkey.
    let v2 = env.propose("pk-r2", 6, 0.9).await;
    assert!(matches!(
        passkey_approve(&env, &v2, "bob", &mut bob).await,
        Err(AdmissionError::Unauthenticated(_))
    ));
    // The broker refuses the certificate bob approved once its registry refreshed.
    tokio::time::sleep(seb_broker::approvers::REFRESH + std::time::Duration::from_millis(100))
        .await;
    let (check, ..) = refused(&env.execute(&cert).await);
    assert_eq!(check, FailedCheck::Path);
}

/// The offline verifier re-verifies each passkey approval in the ledger against the
/// credential its `enrol` record registered; an issuer-key insider who rewrites a passkey
/// approval inside an issue record (and re-signs the record) is caught.
#[tokio::test]
async fn the_ledger_verifier_reverifies_passkey_approvals_offline() {
    use seb_ledger::verify::{LedgerExport, RecordKeys, VerifyOptions, verify_ledger};
    use seb_store::Store as _;
    let env = env_with(&webauthn_config()).await;
    let mut alice = enrol(&env, "alice", 6).await;
    let v = env.propose("pk-l1", 7, 0.9).await;
    let v = env.approve(&v, "validator-0", &validator(0)).await;
    let v = env.approve(&v, "validator-1", &validator(1)).await;
    passkey_approve(&env, &v, "alice", &mut alice).await.unwrap();
    let (cert, _) = env.certificate("pk-l1").await;
    applied(&env.execute(&cert).await);

    let n = env.store.ledger_size().await.unwrap();
    let entries = env.store.entries(0, n).await.unwrap();
    let brokers: seb_core::keys::TrustedKeys = [broker_key().public_key()].into_iter().collect();
    let issuers: seb_core::keys::TrustedKeys = [issuer().public_key()].into_iter().collect();
    let keys = RecordKeys { broker: &brokers, admission: Some(&issuers) };
    let opts = VerifyOptions { require_full_checkpoint: false, ..VerifyOptions::default() };
    let verify = |entries: Vec<Vec<u8>>| {
        let export = LedgerExport { origin: "test".into(), entries, checkpoints: vec![] };
        verify_ledger(&export, &keys, "test", &[broker_key().public_key()], None, &opts)
    };
    let report = verify(entries.clone()).unwrap();
    assert_eq!((report.approver_changes, report.passkey_approvals), (1, 1), "{report:?}");
    assert_eq!(report.passkey_unresolved, 0);

    // Rewrite the issue record's passkey approval to another proposal's statement and re-sign
    // the record with the issuer key.
    let i = entries
        .iter()
        .position(|e| {
            let env: Envelope = json::parse(e, usize::MAX).unwrap();
            let p: Value = serde_json::from_slice(&env.insecure_payload_bytes().unwrap()).unwrap();
            p["decision"] == "issue"
        })
        .unwrap();
    let outer: Envelope = json::parse(&entries[i], usize::MAX).unwrap();
    let mut rec: Value = serde_json::from_slice(&outer.insecure_payload_bytes().unwrap()).unwrap();
    let approval = &mut rec["passkey_approvals"][0];
    let mut forged: Value = serde_json::from_slice(
        &Envelope::insecure_payload_bytes(&serde_json::from_value(approval.clone()).unwrap())
            .unwrap(),
    )
    .unwrap();
    forged["proposal_id"] = json!("pk-other");
    approval["payload"] =
        json!(base64::engine::general_purpose::STANDARD.encode(json::canonical(&forged).unwrap()));
    let resigned = Envelope::sign(PayloadType::Admission, &rec, &issuer()).unwrap();
    let mut tampered = entries.clone();
    tampered[i] = resigned.canonical_bytes().unwrap();
    let err = verify(tampered).unwrap_err();
    assert!(err.to_string().contains("passkey approval does not verify"), "{err}");
}
