//! Admission answers only those who may ask (spec section 11): every route but the signed
//! epoch statement and the keys needs a fresh request signed by a registered key, and each
//! role reads only what it may; sensitive values are shown as digest and length; a proposal
//! that cannot apply is refused with a signed denial.

use axum::http::StatusCode;
use seb_admission::client::{READ_SIGNATURE_HEADER, sign_proposal, sign_read};
use seb_admission::service::ProposalStatus;
use seb_core::certificate::UnverifiedCertificate;
use seb_core::digest::Digest;
use seb_core::envelope::Envelope;
use seb_core::json;
use seb_core::keys::SigningKey;
use serde_json::{Value, json};

use crate::common::*;

/// Every read route (and break-glass draft creation), on proposals of agent-a.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/admission/proposals"),
    ("GET", "/v1/admission/proposals?status=pending"),
    ("GET", "/v1/admission/proposals/p-a"),
    ("GET", "/v1/admission/proposals/p-cert/certificate"),
    ("POST", "/v1/admission/proposals/p-a/break-glass"),
    ("GET", "/v1/admission/proposals/p-a/break-glass"),
    ("GET", "/v1/admission/policy"),
    ("GET", "/v1/admission/epochs"),
];

/// agent-a: `p-a` pending (quorum), `p-cert` certified; agent-b: `p-b` pending.
async fn fixture() -> (Env, axum::Router) {
    let env = env().await;
    assert_eq!(env.propose("p-a", 6, 0.7).await.status, ProposalStatus::Pending);
    assert_eq!(env.propose("p-cert", 4, 0.1).await.status, ProposalStatus::Certified);
    let mut p = env.proposal("p-b", 5, 0.7);
    p.agent = "agent-b".into();
    assert_eq!(env.submit_as(&p, &other_agent()).await.unwrap().status, ProposalStatus::Pending);
    let app = app(&env);
    (env, app)
}

fn ids(v: &Value) -> Vec<String> {
    v["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["proposal_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_route_refuses_no_credentials_unknown_keys_forgeries_and_stale_signatures() {
    let (env, app) = fixture().await;
    let now = env.now();
    for (m, uri) in ROUTES {
        let (s, v) = call(&app, m, uri, vec![], Auth::None).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
        assert!(v["detail"].as_str().unwrap().contains("no credentials"), "{v}");
        // A key no registry knows.
        let (s, v) = call(&app, m, uri, vec![], Auth::Read(&key(99), now)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {uri}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("not registered"), "{v}");
        // The admin's signature, older (and newer) than the window (60 s by default).
        for at in [now - 61_000, now + 61_000] {
            let (s, v) = call(&app, m, uri, vec![], Auth::Read(&admin(), at)).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {uri}: {v}");
            assert!(v["detail"].as_str().unwrap().contains("stale"), "{v}");
        }
        // Just inside the window it is answered.
        let (s, v) = call(&app, m, uri, vec![], Auth::Read(&admin(), now - 59_000)).await;
        assert!(s.is_success(), "{m} {uri}: {v}");
        // The admin's fresh signature of another route, or of another method, or claiming
        // another time, does not authenticate this one.
        let other = sign_read(&admin(), m, "/v1/admission/proposals/p-b", now);
        let wrong_method = sign_read(&admin(), if *m == "GET" { "POST" } else { "GET" }, uri, now);
        let moved =
            sign_read(&admin(), m, uri, now).replacen(&now.to_string(), &(now - 1).to_string(), 1);
        for forged in
            [other, wrong_method, moved, "garbage".into(), format!("{}:x:y", admin().kid())]
        {
            let (s, v) = call(&app, m, uri, vec![], Auth::Raw(&forged)).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {uri} {forged}: {v}");
        }
    }
    // Open: the signed epoch statement and the keys.
    for uri in ["/v1/admission/epochs/statement", "/v1/admission/keys"] {
        assert_eq!(call(&app, "GET", uri, vec![], Auth::None).await.0, StatusCode::OK);
    }
    assert_eq!(READ_SIGNATURE_HEADER, "seb-request-signature");
}

#[tokio::test]
async fn an_agent_reads_only_its_own_proposals_and_certificates() {
    let (env, app) = fixture().await;
    let now = env.now();
    let (a, b) = (agent(), other_agent());
    let get = |k: &SigningKey, uri: &str| {
        let (app, k, uri) = (app.clone(), SigningKey::from_seed(&k.seed()), uri.to_owned());
        async move { call(&app, "GET", &uri, vec![], Auth::Read(&k, now)).await }
    };
    // The right key.
    let (s, v) = get(&a, "/v1/admission/proposals").await;
    assert_eq!((s, ids(&v)), (StatusCode::OK, vec!["p-a".to_owned(), "p-cert".to_owned()]));
    let (s, v) = get(&a, "/v1/admission/proposals/p-a").await;
    assert_eq!((s, v["proposal_id"].as_str()), (StatusCode::OK, Some("p-a")));
    let (s, cert) = get(&a, "/v1/admission/proposals/p-cert/certificate").await;
    assert_eq!(s, StatusCode::OK);
    let cert: Envelope = serde_json::from_value(cert).unwrap();
    applied(&env.execute(&cert).await);
    // Another agent's key: its own only; agent-a's proposal and certificate are 404, with
    // the very body of a proposal that does not exist.
    let (s, v) = get(&b, "/v1/admission/proposals").await;
    assert_eq!((s, ids(&v)), (StatusCode::OK, vec!["p-b".to_owned()]));
    let (_, v) = get(&b, "/v1/admission/proposals?agent=agent-a").await;
    assert!(ids(&v).is_empty(), "{v}");
    let (s, hidden) = get(&b, "/v1/admission/proposals/p-a").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, missing) = get(&b, "/v1/admission/proposals/p-zz").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        hidden["detail"].as_str().unwrap().replace("p-a", "ID"),
        missing["detail"].as_str().unwrap().replace("p-zz", "ID")
    );
    let (s, _) = get(&b, "/v1/admission/proposals/p-cert/certificate").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Routes no agent may use: 403 whatever the id.
    for uri in ["/v1/admission/proposals/p-a/break-glass", "/v1/admission/policy"] {
        let (s, v) = get(&a, uri).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{uri}");
    }
    let (s, v) =
        call(&app, "POST", "/v1/admission/proposals/p-a/break-glass", vec![], Auth::Read(&a, now))
            .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(env.admission.view("p-a").await.unwrap().break_glass.is_none());
    let (s, _) = get(&b, "/v1/admission/epochs").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn approvers_operators_and_admins_read_what_their_roles_allow() {
    let (env, app) = fixture().await;
    let now = env.now();
    let req = |m: &'static str, k: SigningKey, uri: &'static str| {
        let app = app.clone();
        async move { call(&app, m, uri, vec![], Auth::Read(&k, now)).await }
    };
    let all = vec!["p-a".to_owned(), "p-b".to_owned(), "p-cert".to_owned()];
    // Approvers (validator, human): every proposal, to decide it; the policy; no
    // certificates, no break-glass.
    for k in [validator(0), human(1)] {
        let kk = || SigningKey::from_seed(&k.seed());
        assert_eq!(ids(&req("GET", kk(), "/v1/admission/proposals").await.1), all);
        assert_eq!(req("GET", kk(), "/v1/admission/proposals/p-b").await.0, StatusCode::OK);
        assert_eq!(req("GET", kk(), "/v1/admission/policy").await.0, StatusCode::OK);
        for (m, uri) in [
            ("GET", "/v1/admission/proposals/p-cert/certificate"),
            ("POST", "/v1/admission/proposals/p-a/break-glass"),
            ("GET", "/v1/admission/proposals/p-a/break-glass"),
        ] {
            assert_eq!(req(m, kk(), uri).await.0, StatusCode::FORBIDDEN, "{m} {uri}");
        }
    }
    // A break-glass operator: drafts only (and the certificates it signed).
    let op = || operator(0);
    for uri in ["/v1/admission/proposals", "/v1/admission/proposals/p-a"] {
        assert_eq!(req("GET", op(), uri).await.0, StatusCode::FORBIDDEN, "{uri}");
    }
    assert_eq!(
        req("GET", op(), "/v1/admission/proposals/p-a/break-glass").await.0,
        StatusCode::NOT_FOUND
    );
    let (s, draft) = req("POST", op(), "/v1/admission/proposals/p-a/break-glass").await;
    assert_eq!(s, StatusCode::OK, "{draft}");
    let (s, shown) = req("GET", op(), "/v1/admission/proposals/p-a/break-glass").await;
    assert_eq!((s, &shown["payload"]), (StatusCode::OK, &draft["payload"]));
    // A certificate issued by the policy path is not the operator's to fetch.
    assert_eq!(
        req("GET", op(), "/v1/admission/proposals/p-cert/certificate").await.0,
        StatusCode::NOT_FOUND
    );
    // Admins: everything.
    assert_eq!(ids(&req("GET", admin(), "/v1/admission/proposals").await.1), all);
    for (m, uri) in [
        ("GET", "/v1/admission/proposals/p-b"),
        ("GET", "/v1/admission/proposals/p-cert/certificate"),
        ("GET", "/v1/admission/proposals/p-a/break-glass"),
        ("POST", "/v1/admission/proposals/p-b/break-glass"),
        ("GET", "/v1/admission/policy"),
        ("GET", "/v1/admission/epochs"),
    ] {
        let (s, v) = req(m, admin(), uri).await;
        assert_eq!(s, StatusCode::OK, "{m} {uri}: {v}");
    }
    // The proposal view shows who signed the draft, never its payload.
    let (_, v) = req("GET", admin(), "/v1/admission/proposals/p-a").await;
    assert_eq!(v["break_glass"]["quorum"], 2);
    assert!(v["break_glass"].get("payload").is_none(), "{v}");
}

#[tokio::test]
async fn sensitive_values_are_shown_as_digest_and_length_and_certified_exactly() {
    let env = env().await;
    env.target
        .insecure_direct_write("cfg", json!({"replicas": 3, "secret": "old-secret"}))
        .unwrap();
    let app = app(&env);
    let now = env.now();
    let mut p = env.proposal("p-s", 4, 0.1);
    p.params = json!({"value": {"replicas": 4, "secret": "new-secret"}, "risk": 0.1});
    let body = json::canonical(&sign_proposal(&p, &agent()).unwrap()).unwrap();
    let (s, created) = call(&app, "POST", "/v1/admission/proposals", body, Auth::None).await;
    assert_eq!((s, created["status"].as_str()), (StatusCode::CREATED, Some("certified")));
    for k in [agent(), validator(0), admin()] {
        let (s, v) =
            call(&app, "GET", "/v1/admission/proposals/p-s", vec![], Auth::Read(&k, now)).await;
        assert_eq!(s, StatusCode::OK);
        for shown in [&created, &v] {
            let text = shown.to_string();
            assert!(!text.contains("new-secret") && !text.contains("old-secret"), "{text}");
            let secret = json!({"digest": Digest::of_bytes(b"new-secret"), "length": 10});
            assert_eq!(shown["proposal"]["params"]["value"]["secret"], secret);
            assert_eq!(shown["contract"]["params"]["value"]["secret"], secret);
            assert_eq!(shown["contract"]["params"]["value"]["replicas"], 4);
            assert_eq!(
                shown["evidence"]["projection"][""]["secret"],
                json!({"digest": Digest::of_bytes(b"old-secret"), "length": 10})
            );
        }
    }
    // The certificate (its agent's only) carries the exact values its digests are over.
    let (s, cert) = call(
        &app,
        "GET",
        "/v1/admission/proposals/p-s/certificate",
        vec![],
        Auth::Read(&agent(), now),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let cert: Envelope = serde_json::from_value(cert).unwrap();
    let payload = UnverifiedCertificate::new(cert.clone()).insecure_payload(usize::MAX).unwrap();
    assert_eq!(payload.contract.params["value"]["secret"], "new-secret");
    assert_eq!(payload.evidence.projection[""]["secret"], "old-secret");
    assert_eq!(created["contract_digest"], json!(payload.contract.digest().unwrap()));
    assert_eq!(created["evidence"]["digest"], json!(payload.evidence.digest));
    applied(&env.execute(&cert).await);
    assert_eq!(env.target.get("cfg").unwrap().unwrap()["secret"], "new-secret");
}

#[tokio::test]
async fn a_proposal_that_cannot_apply_is_refused_with_a_signed_deny() {
    let env = env().await;
    let app = app(&env);
    let mut p = env.proposal("p-gone", 0, 0.1);
    p.op = "delete".into();
    p.target = json!({"name": "gone"});
    p.params = json!({});
    let body = json::canonical(&sign_proposal(&p, &agent()).unwrap()).unwrap();
    let (s, v) = call(&app, "POST", "/v1/admission/proposals", body, Auth::None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"], "inapplicable");
    assert_eq!(
        (v["decision"].as_str(), v["failed_check"].as_str()),
        (Some("deny"), Some("precondition"))
    );
    assert_eq!(v["proposal_id"], "p-gone");
    assert!(v["detail"].as_str().unwrap().contains("observation found absent"), "{v}");
    let view = env.admission.view("p-gone").await.unwrap();
    assert_eq!(view.status, ProposalStatus::Denied);
    assert!(env.admission.certificate("p-gone").await.is_err());
    // The denial is in the ledger, signed by the issuer, under the id the problem names.
    let ledger = env.ledger().await;
    let (_, kid, record) =
        ledger.iter().find(|(_, _, r)| r["proposal_id"] == "p-gone").expect("deny record");
    assert_eq!(kid, issuer().kid().as_str());
    assert_eq!((record["decision"].as_str(), &record["id"]), (Some("deny"), &v["record_id"]));
    assert!(record["reason"].as_str().unwrap().contains("absent"), "{record}");
    // Deleting an object that exists is not refused for that reason.
    let mut p = env.proposal("p-del", 0, 0.1);
    p.op = "delete".into();
    p.params = json!({});
    let body = json::canonical(&sign_proposal(&p, &agent()).unwrap()).unwrap();
    let (s, v) = call(&app, "POST", "/v1/admission/proposals", body, Auth::None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(!v["reason"].as_str().unwrap_or_default().contains("absent"), "{v}");
}
