//! The HTTP API mounted next to the broker's router, as `seb serve` does.

use axum::http::StatusCode;
use seb_admission::client::{sign_approval, sign_proposal};
use seb_core::json;
use seb_core::types::ApprovalDecision;

use crate::common::*;

#[tokio::test]
async fn propose_approve_execute_revoke_over_http() {
    let env = env().await;
    let app = app(&env);
    let now = env.now();
    let (a, v0, ops) = (agent(), validator(0), admin());

    // Propose (quorum path).
    let p = env.proposal("p-http", 6, 0.7);
    let body = json::canonical(&sign_proposal(&p, &agent()).unwrap()).unwrap();
    let (s, v) = call(&app, "POST", "/v1/admission/proposals", body.clone(), Auth::None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["score"]["level"], 3);
    let (s, _) = call(&app, "POST", "/v1/admission/proposals", body, Auth::None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) =
        call(&app, "POST", "/v1/admission/proposals", b"{\"payloadType\":1}".to_vec(), Auth::None)
            .await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("parse")));

    // List and show.
    let (s, l) =
        call(&app, "GET", "/v1/admission/proposals?status=pending", vec![], Auth::Read(&v0, now))
            .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["proposals"].as_array().unwrap().len(), 1);
    let (_, shown) =
        call(&app, "GET", "/v1/admission/proposals/p-http", vec![], Auth::Read(&v0, now)).await;
    let view = env.admission.view("p-http").await.unwrap();
    assert_eq!(shown["contract_digest"], serde_json::json!(view.contract_digest));
    let (s, v) = call(
        &app,
        "GET",
        "/v1/admission/proposals/p-http/certificate",
        vec![],
        Auth::Read(&a, now),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
    let (s, _) =
        call(&app, "GET", "/v1/admission/proposals/nope", vec![], Auth::Read(&ops, now)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A mis-bound approval is 422, a forged one 401; two good ones certify.
    let mut bad = env.approval(&view, "validator-0", ApprovalDecision::Approve);
    bad.evidence_digest = bad.contract_digest;
    let (s, _) = call(
        &app,
        "POST",
        "/v1/admission/proposals/p-http/approvals",
        json::canonical(&sign_approval(&bad, &validator(0)).unwrap()).unwrap(),
        Auth::None,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let a0 = env.approval(&view, "validator-0", ApprovalDecision::Approve);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/admission/proposals/p-http/approvals",
        json::canonical(&sign_approval(&a0, &key(99)).unwrap()).unwrap(),
        Auth::None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for (name, k) in [("validator-0", validator(0)), ("validator-1", validator(1))] {
        let a = env.approval(&view, name, ApprovalDecision::Approve);
        let (s, v) = call(
            &app,
            "POST",
            "/v1/admission/proposals/p-http/approvals",
            json::canonical(&sign_approval(&a, &k).unwrap()).unwrap(),
            Auth::None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, cert) = call(
        &app,
        "GET",
        "/v1/admission/proposals/p-http/certificate",
        vec![],
        Auth::Read(&a, now),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let cert: seb_core::envelope::Envelope = serde_json::from_value(cert).unwrap();
    applied(&env.execute(&cert).await);

    // Keys, epochs, statement, policy.
    let (_, k) = call(&app, "GET", "/v1/admission/keys", vec![], Auth::None).await;
    assert_eq!(k["issuer"]["kid"], serde_json::json!(issuer().kid()));
    assert_eq!(k["break_glass"]["quorum"], 2);
    let (_, st) = call(&app, "GET", "/v1/admission/epochs/statement", vec![], Auth::None).await;
    assert_eq!(st["payloadType"], "application/vnd.seb.epoch+json;v=1");
    let (_, pol) = call(&app, "GET", "/v1/admission/policy", vec![], Auth::Read(&v0, now)).await;
    assert!(pol["text"].as_str().unwrap().contains("propose"));

    // Revocation: unsigned is 401; signed revokes, and the broker refuses the next one.
    env.propose("p-next", 5, 0.1).await;
    let (next, p) = env.certificate("p-next").await;
    let (body, sig) = env.admin_request(Some(seb_store::Revocation::Cid(p.cid.clone())), None);
    let (s, _) = call(&app, "POST", "/v1/admission/revocations", body.clone(), Auth::None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call(&app, "POST", "/v1/admission/revocations", body, Auth::Admin(&sig)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, e) = call(&app, "GET", "/v1/admission/epochs", vec![], Auth::Read(&a, now)).await;
    assert_eq!(e["revoked_cids"], serde_json::json!([p.cid]));
    let r = env.execute(&next).await;
    assert_eq!(refused(&r).0, seb_core::types::FailedCheck::Revocation);
}
