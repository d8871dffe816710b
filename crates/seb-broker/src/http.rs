//! The broker's HTTP/JSON API (spec section 11).
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/executions` | run a presentation (spec section 6) |
//! | `GET /v1/ledger/checkpoint` | newest signed checkpoint (text) |
//! | `POST /v1/ledger/checkpoint` | publish a checkpoint now |
//! | `GET /v1/ledger/entries?start&end` | entries as base64, at most 1000 |
//! | `GET /v1/ledger/proofs/inclusion?index&size` | RFC 9162 inclusion proof |
//! | `GET /v1/ledger/proofs/consistency?old&new` | RFC 9162 consistency proof |
//! | `GET /v1/ledger/export` | the whole ledger, for `seb ledger verify` |
//! | `GET /v1/keys` | the broker's public key and kid |
//! | `POST /v1/epochs/statement` | push a signed epoch statement (statement mode) |
//! | `GET /metrics`, `/healthz`, `/readyz`, `/openapi.json` | operations |
//!
//! Errors are `application/problem+json` with `failed_check`, `decision` and `record_id`;
//! a query string that does not parse, or asks for what cannot be given, is 400 with
//! `failed_check: parse`. [`routes`] is the one list of routes: the router is built from it and
//! `openapi.json` is tested against it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_ledger::verify::LedgerExport;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{Broker, Refusal};

/// Shared state of the HTTP layer.
#[derive(Debug, Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub ready: Arc<AtomicBool>,
}

/// Extra routes mounted by platform crates (for example the Kubernetes admission review).
pub type ExtraRoutes = Router<AppState>;

/// An HTTP method a [`Route`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    /// The lower-case name OpenAPI uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
        }
    }
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }
}

/// One route of the broker API.
#[derive(Debug)]
pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
}

fn at<H, T>(verb: Verb, path: &'static str, handler: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    Route { verb, path, handler: on(verb.filter(), handler) }
}

/// Every route of the broker API. [`router`] mounts exactly these, and `/openapi.json` is
/// tested against the same list (crates/seb-cli/tests/openapi.rs).
pub fn routes() -> Vec<Route> {
    use Verb::{Get, Post};
    vec![
        at(Post, "/v1/executions", execute),
        at(Get, "/v1/ledger/checkpoint", get_checkpoint),
        at(Post, "/v1/ledger/checkpoint", post_checkpoint),
        at(Get, "/v1/ledger/entries", entries),
        at(Get, "/v1/ledger/proofs/inclusion", inclusion),
        at(Get, "/v1/ledger/proofs/consistency", consistency),
        at(Get, "/v1/ledger/export", export),
        at(Get, "/v1/keys", keys),
        at(Post, "/v1/epochs/statement", push_statement),
        at(Get, "/metrics", metrics),
        at(Get, "/healthz", || async { "ok" }),
        at(Get, "/readyz", readyz),
        at(Get, "/openapi.json", openapi),
    ]
}

/// Build the router: [`routes`] and `extra`.
pub fn router(state: AppState, extra: Option<ExtraRoutes>) -> Router {
    let limit = state.broker.settings().body_limit;
    let mut r = routes().into_iter().fold(Router::new(), |r, rt| r.route(rt.path, rt.handler));
    if let Some(extra) = extra {
        r = r.merge(extra);
    }
    // Bodies over the limit are read up to limit+1 bytes by the handler so that they can be
    // recorded as `parse` failures; the transport cap stops anything far larger.
    r.layer(DefaultBodyLimit::max(limit.saturating_add(1).saturating_mul(2)))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(
                state.broker.settings().target_timeout.as_millis().try_into().unwrap_or(u64::MAX),
            )
            .saturating_mul(4),
        ))
        .with_state(state)
}

/// An RFC 9457 problem response.
pub fn problem(status: u16, title: &str, detail: &str, extra: Value) -> Response {
    let mut body = json!({
        "type": format!("https://seb.invalid/problems/{}", title.replace(' ', "-")),
        "title": title,
        "status": status,
        "detail": detail,
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let mut resp =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body))
            .into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    resp
}

fn refusal_response(r: &Refusal) -> Response {
    problem(
        r.http_status(),
        r.failed_check.as_str(),
        &r.reason,
        json!({
            "failed_check": r.failed_check,
            "decision": r.decision,
            "record_id": r.record_id,
            "recorded": r.recorded,
        }),
    )
}

/// Wait (bounded by the target timeout) for crash recovery to finish: an execution admitted
/// while recovery runs would be taken for a crashed one.
async fn recovered(st: &AppState) -> bool {
    let deadline = tokio::time::Instant::now() + st.broker.settings().target_timeout;
    while !st.ready.load(Ordering::Acquire) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn execute(State(st): State<AppState>, req: axum::extract::Request) -> Response {
    if !recovered(&st).await {
        return problem(
            503,
            "not ready",
            "crash recovery has not finished; nothing was checked or reserved, retry later",
            json!({"failed_check": "reserve", "decision": "fail_closed", "record_id": null, "recorded": false}),
        );
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let body: Body = req.into_body();
    let limit = st.broker.settings().body_limit;
    // Read at most limit+1 bytes: enough to know the body is oversize.
    let bytes: Bytes = match axum::body::to_bytes(body, limit.saturating_add(1)).await {
        Ok(b) => b,
        Err(_) => Bytes::from(vec![b' '; limit.saturating_add(1)]),
    };
    match st.broker.execute(&bytes, &client).await {
        Ok(done) => (StatusCode::OK, Json(done)).into_response(),
        Err(r) => refusal_response(&r),
    }
}

fn store_error(e: impl std::fmt::Display) -> Response {
    problem(503, "store unavailable", &e.to_string(), json!({}))
}

async fn get_checkpoint(State(st): State<AppState>) -> Response {
    match st.broker.store().latest_checkpoint().await {
        Ok(Some(cp)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cp.note).into_response()
        }
        Ok(None) => match st.broker.checkpoint().await {
            Ok(Some(cp)) => {
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cp.note).into_response()
            }
            Ok(None) => problem(404, "no checkpoint", "no checkpoint yet", json!({})),
            Err(e) => store_error(e),
        },
        Err(e) => store_error(e),
    }
}

async fn post_checkpoint(State(st): State<AppState>) -> Response {
    match st.broker.checkpoint().await {
        Ok(Some(cp)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cp.note).into_response()
        }
        Ok(None) => problem(404, "no checkpoint", "no checkpoint yet", json!({})),
        Err(e) => store_error(e),
    }
}

/// A query string that does not parse: 400 problem+json, `failed_check: parse`.
fn bad_query(e: &QueryRejection) -> Response {
    problem(400, "bad query", &e.body_text(), json!({"failed_check": "parse"}))
}

/// A well-formed query that asks for what cannot be given: 400 problem+json.
fn bad_request(title: &str, detail: &str) -> Response {
    problem(400, title, detail, json!({"failed_check": "parse"}))
}

#[derive(Debug, Deserialize)]
struct Range {
    start: u64,
    end: u64,
}

const MAX_ENTRIES_PER_CALL: u64 = 1000;

async fn entries(State(st): State<AppState>, q: Result<Query<Range>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(&e),
    };
    if q.end < q.start || q.end - q.start > MAX_ENTRIES_PER_CALL {
        return bad_request("bad range", "need start <= end and at most 1000 entries");
    }
    match st.broker.store().entries(q.start, q.end).await {
        Ok(es) => Json(json!({
            "start": q.start,
            "entries": es.iter().map(|e| STANDARD.encode(e)).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => bad_request("bad range", &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct InclusionQ {
    index: u64,
    size: u64,
}

async fn inclusion(
    State(st): State<AppState>,
    q: Result<Query<InclusionQ>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(&e),
    };
    let s = st.broker.store();
    match (s.inclusion_proof(q.index, q.size).await, s.root(q.size).await) {
        (Ok(p), Ok(root)) => Json(json!({
            "index": q.index, "size": q.size,
            "root": STANDARD.encode(root),
            "proof": p.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => bad_request("bad proof request", &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct ConsistencyQ {
    old: u64,
    new: u64,
}

async fn consistency(
    State(st): State<AppState>,
    q: Result<Query<ConsistencyQ>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(&e),
    };
    let s = st.broker.store();
    match s.consistency_proof(q.old, q.new).await {
        Ok(p) => Json(json!({
            "old": q.old, "new": q.new,
            "proof": p.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => bad_request("bad proof request", &e.to_string()),
    }
}

/// Build an export of the ledger: every entry the newest checkpoint covers, and every
/// checkpoint.
pub async fn build_export(broker: &Broker) -> Result<LedgerExport, seb_store::StoreError> {
    let store = broker.store();
    // Entries up to the newest checkpoint only: a record appended after it (by this replica
    // or another sharing the store) waits for the next export, so every exported entry is
    // covered by a signed checkpoint. Checkpoints are read first: they only ever cover
    // entries already committed.
    let stored = store.checkpoints().await?;
    let size = match stored.iter().map(|c| c.size).max() {
        Some(s) => s,
        None => store.ledger_size().await?,
    };
    let mut entries = Vec::new();
    let mut start = 0;
    while start < size {
        let end = (start + MAX_ENTRIES_PER_CALL).min(size);
        entries.extend(store.entries(start, end).await?);
        start = end;
    }
    let checkpoints = stored.into_iter().map(|c| c.note).collect();
    Ok(LedgerExport { origin: broker.settings().origin.clone(), entries, checkpoints })
}

async fn export(State(st): State<AppState>) -> Response {
    // Checkpoint first, so the export ends with a signed statement of its own size.
    if let Err(e) = st.broker.checkpoint().await {
        return store_error(e);
    }
    match build_export(&st.broker).await {
        Ok(x) => Json(x).into_response(),
        Err(e) => store_error(e),
    }
}

async fn keys(State(st): State<AppState>) -> Response {
    let pk = st.broker.signer().public_key();
    Json(json!({
        "broker": { "kid": pk.kid(), "public_key": pk.to_base64() },
        "checkpoint": {
            "origin": st.broker.settings().origin,
            "key_name": st.broker.settings().origin,
            "verifier_key": seb_ledger::checkpoint::verifier_key(&st.broker.settings().origin, &pk),
        },
    }))
    .into_response()
}

async fn push_statement(State(st): State<AppState>, body: Bytes) -> Response {
    let env = match seb_core::json::parse::<seb_core::envelope::Envelope>(
        &body,
        st.broker.settings().body_limit,
    ) {
        Ok(e) => e,
        Err(e) => return problem(400, "bad statement", &e.to_string(), json!({})),
    };
    match st.broker.apply_statement(&env).await {
        Ok(s) => Json(json!({ "applied": s })).into_response(),
        Err(e) => problem(422, "statement refused", &e, json!({})),
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        st.broker.metrics().encode(),
    )
        .into_response()
}

async fn readyz(State(st): State<AppState>) -> Response {
    if !st.ready.load(Ordering::Acquire) {
        return problem(503, "not ready", "crash recovery has not finished", json!({}));
    }
    match st.broker.store().epochs().await {
        Ok(_) => "ready".into_response(),
        Err(e) => store_error(e),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}
