//! The admission API (spec section 11), mounted under `/v1/admission`.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/admission/proposals` | submit a signed `proposal` envelope → 201 + the proposal |
//! | `GET /v1/admission/proposals?status&agent` | list (summaries) |
//! | `GET /v1/admission/proposals/{id}` | one proposal: contract, evidence, score, policy, path, approvals |
//! | `POST /v1/admission/proposals/{id}/approvals` | add a signed `approval` envelope |
//! | `GET /v1/admission/proposals/{id}/certificate` | the certificate envelope (409 until certified) |
//! | `GET`/`POST /v1/admission/proposals/{id}/break-glass` | show / create the break-glass draft |
//! | `POST /v1/admission/proposals/{id}/break-glass/signatures` | add one operator signature `{keyid, sig}` |
//! | `POST /v1/admission/revocations` | admin-signed `{revoke: …}` → signed epoch statement |
//! | `GET`/`POST /v1/admission/policy` | the policy in force and its history / admin-signed `{load_policy}` |
//! | `GET /v1/admission/epochs` | active epochs and revocations |
//! | `GET /v1/admission/epochs/statement` | a fresh signed epoch statement (TTL `statement_ttl_ms`) |
//! | `GET /v1/admission/keys` | issuer key, break-glass operators and quorum |
//! | `GET /v1/admission/observations?platform&op&target&params` | agent-signed read: the live projection a proposal would record as evidence |
//! | `GET /v1/admission/paths` | agent-signed read: each level's required path, and escalations |
//! | `POST /v1/admission/approvers/invitations` | admin-signed `{invite_approver: {name, role}}` → `{token, url, expires_at_ms}` |
//! | `GET /v1/admission/enrolments/{token}` | the passkey registration parameters (the token is the secret; 404 when used or expired) |
//! | `POST /v1/admission/enrolments/{token}` | register the passkey → the signed registry entry (ledger `enrol` record) |
//! | `GET /v1/admission/approvers` | any signed caller: configured and enrolled approvers |
//! | `DELETE /v1/admission/approvers/{name}` | admin-signed `{remove_approver: name}` → the signed `remove_approver` record |
//!
//! Every route but the signed epoch statement and the keys is authenticated: the proposal,
//! approval, revocation and policy-load POSTs are signed statements themselves (their signer
//! is the caller); every other request carries a signed-request header
//! ([`crate::client::sign_read`]) and is answered according to the caller's roles
//! ([`crate::access`]). No or bad credentials, or a stale signature: `401`; a route the
//! caller's roles may not use: `403`; a proposal it may not see: `404`, like one that does not
//! exist.
//!
//! Errors are `application/problem+json` with a stable `error` code.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use crate::access::Caller;
use crate::client::{ADMIN_SIGNATURE_HEADER, READ_SIGNATURE_HEADER};
use crate::error::AdmissionError;
use crate::service::Admission;

type St = State<Arc<Admission>>;

/// Every route of [`router`] as (OpenAPI method, path); `/openapi.json` is tested against this
/// list, and the list against the router (crates/seb-cli/tests/openapi.rs).
pub const ROUTES: [(&str, &str); 21] = [
    ("post", "/v1/admission/proposals"),
    ("get", "/v1/admission/proposals"),
    ("get", "/v1/admission/proposals/{id}"),
    ("post", "/v1/admission/proposals/{id}/approvals"),
    ("get", "/v1/admission/proposals/{id}/certificate"),
    ("get", "/v1/admission/proposals/{id}/break-glass"),
    ("post", "/v1/admission/proposals/{id}/break-glass"),
    ("post", "/v1/admission/proposals/{id}/break-glass/signatures"),
    ("post", "/v1/admission/revocations"),
    ("get", "/v1/admission/policy"),
    ("post", "/v1/admission/policy"),
    ("get", "/v1/admission/epochs"),
    ("get", "/v1/admission/epochs/statement"),
    ("get", "/v1/admission/keys"),
    ("get", "/v1/admission/observations"),
    ("get", "/v1/admission/paths"),
    ("post", "/v1/admission/approvers/invitations"),
    ("get", "/v1/admission/enrolments/{token}"),
    ("post", "/v1/admission/enrolments/{token}"),
    ("get", "/v1/admission/approvers"),
    ("delete", "/v1/admission/approvers/{name}"),
];

/// The router, with state already applied, usable as extra routes of any router state `S`.
pub fn router<S: Clone + Send + Sync + 'static>(admission: Arc<Admission>) -> Router<S> {
    Router::new()
        .route("/v1/admission/proposals", post(submit).get(list))
        .route("/v1/admission/proposals/{id}", get(show))
        .route("/v1/admission/proposals/{id}/approvals", post(approve))
        .route("/v1/admission/proposals/{id}/certificate", get(certificate))
        .route("/v1/admission/proposals/{id}/break-glass", get(bg_show).post(bg_create))
        .route("/v1/admission/proposals/{id}/break-glass/signatures", post(bg_sign))
        .route("/v1/admission/revocations", post(revoke))
        .route("/v1/admission/policy", get(policy).post(load_policy))
        .route("/v1/admission/epochs", get(epochs))
        .route("/v1/admission/epochs/statement", get(statement))
        .route("/v1/admission/keys", get(keys))
        .route("/v1/admission/observations", get(observe))
        .route("/v1/admission/paths", get(paths))
        .route("/v1/admission/approvers/invitations", post(invite))
        .route("/v1/admission/enrolments/{token}", get(enrolment).post(enrol))
        .route("/v1/admission/approvers", get(approvers))
        .route("/v1/admission/approvers/{name}", axum::routing::delete(remove_approver))
        .with_state(admission)
}

/// An RFC 9457 problem response for an admission error.
pub fn problem(e: &AdmissionError) -> Response {
    let status = e.http_status();
    let mut body = json!({
        "type": format!("https://seb.invalid/problems/admission/{}", e.code()),
        "title": e.code(),
        "status": status,
        // The whole cause chain (a store error's own cause included), one line.
        "detail": seb_store::error_chain(e),
        "error": e.code(),
    });
    if let (AdmissionError::Inapplicable { proposal_id, record_id, .. }, Some(o)) =
        (e, body.as_object_mut())
    {
        o.insert("decision".into(), json!("deny"));
        o.insert("failed_check".into(), json!("precondition"));
        o.insert("proposal_id".into(), json!(proposal_id));
        o.insert("record_id".into(), json!(record_id));
    }
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    resp
}

fn reply<T: serde::Serialize>(status: StatusCode, r: Result<T, AdmissionError>) -> Response {
    match r {
        Ok(v) => (status, axum::Json(v)).into_response(),
        Err(e) => problem(&e),
    }
}

async fn read(a: &Admission, body: Body) -> Result<Bytes, AdmissionError> {
    axum::body::to_bytes(body, a.body_limit()).await.map_err(|_| {
        AdmissionError::Parse(format!("body exceeds {} bytes or could not be read", a.body_limit()))
    })
}

async fn submit(State(a): St, body: Body) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.submit(&b).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::CREATED, r)
}

/// Authenticate a signed request (see [`Admission::authenticate_request`]), logging refusals.
fn caller(
    a: &Admission,
    method: &Method,
    uri: &OriginalUri,
    h: &HeaderMap,
) -> Result<Caller, AdmissionError> {
    let path = uri.0.path_and_query().map_or_else(|| uri.0.path(), |p| p.as_str());
    let header = h.get(READ_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    a.authenticate_request(method.as_str(), path, header).map_err(|e| {
        warn!(route = %uri.0.path(), method = %method, decision = "deny", failed_check = "authentication", error = %e, "admission request refused");
        e
    })
}

/// The caller of a signed request, or the `401` response.
macro_rules! who {
    ($a:expr, $m:expr, $u:expr, $h:expr) => {
        match caller(&$a, &$m, &$u, &$h) {
            Ok(c) => c,
            Err(e) => return problem(&e),
        }
    };
}

fn logged<T>(c: &Caller, route: &str, r: Result<T, AdmissionError>) -> Result<T, AdmissionError> {
    if let Err(e) = &r
        && matches!(e, AdmissionError::Forbidden(_) | AdmissionError::NotFound(_))
    {
        warn!(route, caller = %c.describe(), decision = "deny", error = %e, "admission read refused");
    }
    r
}

#[derive(Debug, Deserialize)]
struct ListQ {
    status: Option<String>,
    agent: Option<String>,
}

async fn list(
    State(a): St,
    m: Method,
    u: OriginalUri,
    h: HeaderMap,
    Query(q): Query<ListQ>,
) -> Response {
    let c = who!(a, m, u, h);
    a.expire().await;
    let r = a.list_as(&c, q.status.as_deref(), q.agent.as_deref()).await;
    reply(StatusCode::OK, logged(&c, "list", r).map(|p| json!({ "proposals": p })))
}

async fn show(
    State(a): St,
    m: Method,
    u: OriginalUri,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = who!(a, m, u, h);
    a.expire().await;
    reply(StatusCode::OK, logged(&c, "show", a.view_as(&c, &id).await))
}

async fn approve(State(a): St, Path(id): Path<String>, body: Body) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.approve(&id, &b).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::OK, r)
}

async fn certificate(
    State(a): St,
    m: Method,
    u: OriginalUri,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = who!(a, m, u, h);
    reply(StatusCode::OK, logged(&c, "certificate", a.certificate_as(&c, &id).await))
}

async fn bg_show(
    State(a): St,
    m: Method,
    u: OriginalUri,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = who!(a, m, u, h);
    reply(StatusCode::OK, logged(&c, "break-glass", a.break_glass_show_as(&c, &id).await))
}

async fn bg_create(
    State(a): St,
    m: Method,
    u: OriginalUri,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = who!(a, m, u, h);
    reply(StatusCode::OK, logged(&c, "break-glass", a.break_glass_draft_as(&c, &id).await))
}

async fn bg_sign(State(a): St, Path(id): Path<String>, body: Body) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.break_glass_sign(&id, &b).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::OK, r)
}

fn admin_sig(h: &HeaderMap) -> Option<String> {
    h.get(ADMIN_SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn revoke(State(a): St, headers: HeaderMap, body: Body) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.revoke(&b, admin_sig(&headers).as_deref()).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::OK, r)
}

async fn policy(State(a): St, m: Method, u: OriginalUri, h: HeaderMap) -> Response {
    let c = who!(a, m, u, h);
    let r = match c.require(c.reads_policy(), "GET /v1/admission/policy") {
        Ok(()) => a.policy().await,
        Err(e) => Err(e),
    };
    reply(
        StatusCode::OK,
        logged(&c, "policy", r).map(|(text, epoch, digest, history)| {
            json!({ "policy_epoch": epoch, "digest": digest, "text": text, "history": history })
        }),
    )
}

async fn load_policy(State(a): St, headers: HeaderMap, body: Body) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.load_policy(&b, admin_sig(&headers).as_deref()).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::OK, r.map(|epoch| json!({ "policy_epoch": epoch })))
}

/// Any registered caller: the same facts are in the open signed epoch statement.
async fn epochs(State(a): St, m: Method, u: OriginalUri, h: HeaderMap) -> Response {
    let _ = who!(a, m, u, h);
    reply(StatusCode::OK, a.epochs().await)
}

async fn statement(State(a): St) -> Response {
    reply(StatusCode::OK, a.statement().await)
}

async fn keys(State(a): St) -> Response {
    let pk = a.issuer_key();
    let ops: Vec<Value> = a
        .break_glass_operators()
        .into_iter()
        .map(|(n, k)| json!({ "name": n, "kid": k.kid(), "public_key": k.to_base64() }))
        .collect();
    axum::Json(json!({
        "issuer": { "name": a.issuer_name(), "kid": pk.kid(), "public_key": pk.to_base64() },
        "break_glass": { "operators": ops, "quorum": a.break_glass_quorum() },
    }))
    .into_response()
}

// ---------------------------------------------------------------- agent reads (seb mcp)

/// The agent who signed this read (see [`crate::client::sign_read`]), over the exact
/// path and query received.
fn agent_read(
    a: &Admission,
    h: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<String, AdmissionError> {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or_else(|| uri.path());
    let sig = h.get(READ_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    a.authenticate_agent_read(sig, "GET", pq)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObserveQ {
    platform: String,
    op: String,
    /// JSON text.
    target: String,
    /// JSON text; `{}` when absent.
    params: Option<String>,
}

/// `GET /v1/admission/observations`: what a proposal of this op, target and params would
/// record as evidence, for the signing agent. Read-only; nothing is recorded.
async fn observe(
    State(a): St,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    q: Result<Query<ObserveQ>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let r = async {
        let agent = agent_read(&a, &headers, &uri)?;
        let Query(q) = q.map_err(|e| AdmissionError::Parse(e.body_text()))?;
        let platform: seb_core::types::Platform =
            serde_json::from_value(Value::String(q.platform.clone())).map_err(|_| {
                AdmissionError::Invalid(format!("unknown platform `{}`", q.platform))
            })?;
        let limit = a.body_limit();
        let target: Value = seb_core::json::parse(q.target.as_bytes(), limit)
            .map_err(|e| AdmissionError::Parse(format!("target: {e}")))?;
        let params: Value = match &q.params {
            Some(p) => seb_core::json::parse(p.as_bytes(), limit)
                .map_err(|e| AdmissionError::Parse(format!("params: {e}")))?,
            None => json!({}),
        };
        a.observe_for(&agent, platform, &q.op, &target, &params).await
    }
    .await;
    reply(StatusCode::OK, r)
}

/// `GET /v1/admission/paths`: the path rules in force, for a signing agent.
async fn paths(State(a): St, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    reply(StatusCode::OK, agent_read(&a, &headers, &uri).map(|_| a.paths()))
}

// ---------------------------------------------------------------- passkey approvers (5.1)

async fn invite(State(a): St, headers: HeaderMap, body: Body) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.invite_approver(&b, admin_sig(&headers).as_deref()).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::CREATED, r)
}

async fn enrolment(State(a): St, Path(token): Path<String>) -> Response {
    reply(StatusCode::OK, a.enrolment(&token).await)
}

async fn enrol(State(a): St, Path(token): Path<String>, body: Body) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.enrol(&token, &b).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::CREATED, r)
}

async fn approvers(State(a): St, m: Method, u: OriginalUri, h: HeaderMap) -> Response {
    let c = who!(a, m, u, h);
    reply(StatusCode::OK, a.list_approvers(&c).await.map(|v| json!({ "approvers": v })))
}

async fn remove_approver(
    State(a): St,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    let r = match read(&a, body).await {
        Ok(b) => a.remove_approver(&name, &b, admin_sig(&headers).as_deref()).await,
        Err(e) => Err(e),
    };
    reply(StatusCode::OK, r)
}
