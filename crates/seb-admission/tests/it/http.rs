//! The HTTP API mounted next to the broker's router, as `seb serve` does.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use seb_admission::client::{ADMIN_SIGNATURE_HEADER, sign_approval, sign_proposal};
use seb_broker::http::AppState;
use seb_core::json;
use seb_core::types::ApprovalDecision;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::common::*;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Vec<u8>,
    admin_sig: Option<&str>,
) -> (StatusCode, Value) {
    let mut b =
        Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if let Some(s) = admin_sig {
        b = b.header(ADMIN_SIGNATURE_HEADER, s);
    }
    let resp = app.clone().oneshot(b.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{v}");
    }
    (status, v)
}

#[tokio::test]
async fn propose_approve_execute_revoke_over_http() {
    let env = env().await;
    let state = AppState { broker: env.broker.clone(), ready: Arc::new(AtomicBool::new(true)) };
    let app =
        seb_broker::http::router(state, Some(seb_admission::http::router(env.admission.clone())));

    // Propose (quorum path).
    let p = env.proposal("p-http", 6, 0.7);
    let body = json::canonical(&sign_proposal(&p, &agent()).unwrap()).unwrap();
    let (s, v) = call(&app, "POST", "/v1/admission/proposals", body.clone(), None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["score"]["level"], 3);
    let (s, _) = call(&app, "POST", "/v1/admission/proposals", body, None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) =
        call(&app, "POST", "/v1/admission/proposals", b"{\"payloadType\":1}".to_vec(), None).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("parse")));

    // List and show.
    let (s, l) = call(&app, "GET", "/v1/admission/proposals?status=pending", vec![], None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["proposals"].as_array().unwrap().len(), 1);
    let (_, shown) = call(&app, "GET", "/v1/admission/proposals/p-http", vec![], None).await;
    let view = env.admission.view("p-http").unwrap();
    assert_eq!(shown["contract_digest"], serde_json::json!(view.contract_digest));
    let (s, v) =
        call(&app, "GET", "/v1/admission/proposals/p-http/certificate", vec![], None).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
    let (s, _) = call(&app, "GET", "/v1/admission/proposals/nope", vec![], None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A mis-bound approval is 422, a forged one 403; two good ones certify.
    let mut bad = env.approval(&view, "validator-0", ApprovalDecision::Approve);
    bad.evidence_digest = bad.contract_digest;
    let (s, _) = call(
        &app,
        "POST",
        "/v1/admission/proposals/p-http/approvals",
        json::canonical(&sign_approval(&bad, &validator(0)).unwrap()).unwrap(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let a0 = env.approval(&view, "validator-0", ApprovalDecision::Approve);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/admission/proposals/p-http/approvals",
        json::canonical(&sign_approval(&a0, &key(99)).unwrap()).unwrap(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (name, k) in [("validator-0", validator(0)), ("validator-1", validator(1))] {
        let a = env.approval(&view, name, ApprovalDecision::Approve);
        let (s, v) = call(
            &app,
            "POST",
            "/v1/admission/proposals/p-http/approvals",
            json::canonical(&sign_approval(&a, &k).unwrap()).unwrap(),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, cert) =
        call(&app, "GET", "/v1/admission/proposals/p-http/certificate", vec![], None).await;
    assert_eq!(s, StatusCode::OK);
    let cert: seb_core::envelope::Envelope = serde_json::from_value(cert).unwrap();
    applied(&env.execute(&cert).await);

    // Keys, epochs, statement, policy.
    let (_, k) = call(&app, "GET", "/v1/admission/keys", vec![], None).await;
    assert_eq!(k["issuer"]["kid"], serde_json::json!(issuer().kid()));
    assert_eq!(k["break_glass"]["quorum"], 2);
    let (_, st) = call(&app, "GET", "/v1/admission/epochs/statement", vec![], None).await;
    assert_eq!(st["payloadType"], "application/vnd.seb.epoch+json;v=1");
    let (_, pol) = call(&app, "GET", "/v1/admission/policy", vec![], None).await;
    assert!(pol["text"].as_str().unwrap().contains("propose"));

    // Revocation: unsigned is 403; signed revokes, and the broker refuses the next one.
    env.propose("p-next", 5, 0.1).await;
    let (next, p) = env.certificate("p-next");
    let (body, sig) = env.admin_request(Some(seb_store::Revocation::Cid(p.cid.clone())), None);
    let (s, _) = call(&app, "POST", "/v1/admission/revocations", body.clone(), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = call(&app, "POST", "/v1/admission/revocations", body, Some(&sig)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, e) = call(&app, "GET", "/v1/admission/epochs", vec![], None).await;
    assert_eq!(e["revoked_cids"], serde_json::json!([p.cid]));
    let state_body = json::canonical(&serde_json::json!({})).unwrap();
    let _ = state_body;
    let r = env.execute(&next).await;
    assert_eq!(refused(&r).0, seb_core::types::FailedCheck::Revocation);
}
