//! The approvers' web console (spec 12.2), served by admission under `/console`.
//!
//! | route | what |
//! |---|---|
//! | `GET /console` | the pending list when signed in, else the sign-in page |
//! | `GET /console/signin` | the sign-in page (no data) |
//! | `POST /console/signin/challenge` | a fresh single-use challenge (cookie-bound) for `navigator.credentials.get` |
//! | `POST /console/signin` | the assertion → a session cookie |
//! | `POST /console/signout` | end the session (CSRF) |
//! | `GET /console/proposals?level&agent&platform` | pending proposals, time left |
//! | `GET /console/proposals/{id}` | one proposal: effect, score, policy, related changes, approvals, rationale |
//! | `POST /console/proposals/{id}/statement` | the approval statement to sign and its WebAuthn challenge (CSRF) |
//! | `POST /console/proposals/{id}/decision` | the passkey-signed approval envelope → admission's approvals (CSRF) |
//! | `GET /console/decisions` | past decisions with their ledger record ids |
//! | `GET /console/enrol/{token}` | the enrolment page (its script calls the enrolment routes) |
//! | `GET /console/assets/{console.css,console.js,icon.svg}` | the only assets, embedded in the binary |
//!
//! Security properties (each has a test in `tests/it/console.rs` or the browser test):
//! - Every response carries `Content-Security-Policy: default-src 'self'; …` without
//!   `unsafe-inline`, `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` (the enrolment
//!   token is in a page address: it never leaves for another site; same-origin keeps the
//!   `Origin` header on form posts), `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`.
//! - The session cookie is `__Host-seb-session`, `HttpOnly; Secure; SameSite=Strict; Path=/`.
//! - Every POST must come from one of the console's configured origins (`Origin` header) and,
//!   once signed in, carry the session's CSRF token (`x-seb-csrf` header or `csrf` form field).
//! - Nothing but the sign-in and enrolment pages is served without a session; every request
//!   re-reads the session's approver from the directory, so removal ends access at once.
//! - Sign-in attempts are rate-limited per client address and in total.
//! - The approval itself is verified by admission ([`crate::Admission::approve`]): the
//!   console only refuses envelopes that do not name the signed-in approver and credential.

pub mod effect;
pub mod render;
pub mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use seb_core::types::{Approval, ApprovalDecision};
use seb_core::webauthn::{Assertion, WebAuthnCredential, statement_challenge, verify_assertion};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::error::AdmissionError;
use crate::service::{Admission, ProposalStatus};

use render::{Decidable, Filter, Viewer};
use session::{Limits, Table};

/// The session cookie (the `__Host-` prefix: Secure, `Path=/`, no `Domain`).
pub const SESSION_COOKIE: &str = "__Host-seb-session";
/// The cookie binding a sign-in challenge to the browser that asked for it.
pub const CHALLENGE_COOKIE: &str = "__Host-seb-signin";
/// The header carrying the CSRF token on script requests.
pub const CSRF_HEADER: &str = "x-seb-csrf";
/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const ICON: &str = include_str!("assets/icon.svg");

/// Longest approval comment accepted, characters.
pub const MAX_COMMENT: usize = 1000;

/// A boxed future of the directory seam.
pub type DirFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AdmissionError>> + Send + 'a>>;

/// The approvers' passkeys as the console needs them; implemented over the approver
/// directory of the store (`seb_store::approvers`).
pub trait PasskeyDirectory: Send + Sync {
    /// The enrolled approver holding the credential with this id: `(name, credential)`.
    fn find<'a>(
        &'a self,
        credential_id: &'a [u8],
    ) -> DirFuture<'a, Option<(String, WebAuthnCredential)>>;
    /// Record the counter of a verified assertion: compare-and-set that refuses (`false`) a
    /// non-zero counter that does not increase (a cloned authenticator).
    fn advance_counter<'a>(&'a self, credential_id: &'a [u8], counter: u32) -> DirFuture<'a, bool>;
}

/// The approvers' passkeys as admission knows them: the configured ones and those enrolled
/// in the store ([`Admission::approver_registry`]), counters kept by
/// [`Admission::advance_passkey_counter`] (shared with approvals).
pub struct AdmissionPasskeys(pub Arc<Admission>);

impl std::fmt::Debug for AdmissionPasskeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionPasskeys")
    }
}

impl PasskeyDirectory for AdmissionPasskeys {
    fn find<'a>(
        &'a self,
        credential_id: &'a [u8],
    ) -> DirFuture<'a, Option<(String, WebAuthnCredential)>> {
        Box::pin(async move {
            let reg = self.0.approver_registry().await?;
            Ok(reg
                .passkeys()
                .find(|p| p.credential.credential_id == credential_id)
                .map(|p| (p.name.clone(), p.credential.clone())))
        })
    }

    fn advance_counter<'a>(&'a self, credential_id: &'a [u8], counter: u32) -> DirFuture<'a, bool> {
        Box::pin(async move {
            let reg = self.0.approver_registry().await?;
            let Some(p) = reg.passkeys().find(|p| p.credential.credential_id == credential_id)
            else {
                return Ok(false);
            };
            let kid = p.credential.kid();
            Ok(self.0.advance_passkey_counter(&kid, counter).await?.is_none())
        })
    }
}

/// `[admission.console]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Whether `/console` is served.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A session ends this long after its last request.
    #[serde(default = "default_idle")]
    pub session_idle_s: u64,
    /// A session ends this long after sign-in.
    #[serde(default = "default_max")]
    pub session_max_s: u64,
    /// Sign-in attempts per client address per minute.
    #[serde(default = "default_attempts")]
    pub signin_attempts_per_minute: u32,
}

fn yes() -> bool {
    true
}
fn default_idle() -> u64 {
    900
}
fn default_max() -> u64 {
    8 * 3600
}
fn default_attempts() -> u32 {
    10
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_s: default_idle(),
            session_max_s: default_max(),
            signin_attempts_per_minute: default_attempts(),
        }
    }
}

impl ConsoleConfig {
    /// Check what TOML types cannot express.
    pub fn validate(&self) -> Result<(), AdmissionError> {
        let bad = |m: &str| Err(AdmissionError::Config(format!("admission.console: {m}")));
        if self.session_idle_s == 0 || self.session_idle_s > self.session_max_s {
            return bad("session_idle_s must be within 1..=session_max_s");
        }
        if self.session_max_s > 7 * 86_400 {
            return bad("session_max_s must be at most 7 days");
        }
        if self.signin_attempts_per_minute == 0 {
            return bad("signin_attempts_per_minute must be positive");
        }
        Ok(())
    }
}

/// Where the console is reached and which passkeys it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// WebAuthn relying-party id (a registrable domain of the origins, `localhost` in tests).
    pub rp_id: String,
    /// The console's origins (`https://seb.example.com`); POSTs from any other are refused.
    pub origins: Vec<String>,
}

/// The console: state and collaborators.
pub struct Console {
    admission: Arc<Admission>,
    directory: Arc<dyn PasskeyDirectory>,
    clock: Arc<dyn Clock>,
    site: Site,
    table: Mutex<Table>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("site", &self.site).finish_non_exhaustive()
    }
}

type St = State<Arc<Console>>;

/// Every route of [`router`] as (method, path); the console is HTML, so these are not in
/// `/openapi.json` (see crates/seb-cli/tests/openapi.rs).
pub const ROUTES: [(&str, &str); 15] = [
    ("get", "/console"),
    ("get", "/console/signin"),
    ("post", "/console/signin/challenge"),
    ("post", "/console/signin"),
    ("post", "/console/signout"),
    ("get", "/console/proposals"),
    ("get", "/console/proposals/{id}"),
    ("post", "/console/proposals/{id}/statement"),
    ("post", "/console/proposals/{id}/decision"),
    ("get", "/console/decisions"),
    ("get", "/console/enrol/{token}"),
    ("get", "/console/assets/console.css"),
    ("get", "/console/assets/console.js"),
    ("get", "/console/assets/icon.svg"),
    ("get", "/console/"),
];

fn random32() -> Result<[u8; 32], AdmissionError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| AdmissionError::Internal(format!("random source: {e}")))?;
    Ok(b)
}

impl Console {
    /// A console for `admission`, reading passkeys from `directory`.
    pub fn new(
        admission: Arc<Admission>,
        directory: Arc<dyn PasskeyDirectory>,
        clock: Arc<dyn Clock>,
        site: Site,
        cfg: &ConsoleConfig,
    ) -> Result<Arc<Self>, AdmissionError> {
        cfg.validate()?;
        if site.rp_id.is_empty() || site.origins.is_empty() {
            return Err(AdmissionError::Config(
                "the console needs [admission.webauthn] rp_id and origins".into(),
            ));
        }
        let limits = Limits {
            idle_ms: cfg.session_idle_s.saturating_mul(1000),
            max_ms: cfg.session_max_s.saturating_mul(1000),
            attempts_per_window: cfg.signin_attempts_per_minute,
            attempts_total_per_window: cfg.signin_attempts_per_minute.saturating_mul(30),
            ..Limits::default()
        };
        Ok(Arc::new(Self {
            admission,
            directory,
            clock,
            site,
            table: Mutex::new(Table::new(limits)),
        }))
    }

    fn now(&self) -> Result<u64, AdmissionError> {
        Ok(self.clock.now_ms()?)
    }

    fn table(&self) -> Result<std::sync::MutexGuard<'_, Table>, AdmissionError> {
        self.table.lock().map_err(|_| AdmissionError::Internal("console lock poisoned".into()))
    }
}

/// The console's routes with state applied, usable as extra routes of any router.
pub fn router<S: Clone + Send + Sync + 'static>(console: Arc<Console>) -> Router<S> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/signin", get(signin_page))
        .route("/console/signin/challenge", post(signin_challenge))
        .route("/console/signin", post(signin))
        .route("/console/signout", post(signout))
        .route("/console/proposals", get(list))
        .route("/console/proposals/{id}", get(show))
        .route("/console/proposals/{id}/statement", post(statement))
        .route("/console/proposals/{id}/decision", post(decision))
        .route("/console/decisions", get(decisions))
        .route("/console/enrol/{token}", get(enrol))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/assets/icon.svg", get(icon))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn json_reply(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A refusal for script requests: `application/problem+json` (RFC 9457) whose `error` and
/// `failed_check` name the check that failed. Console refusals are answered before anything
/// is decided, so they carry `decision: "deny"` and no ledger record (like the broker's
/// pre-authentication refusals); the handlers log each one with its `failed_check`.
fn refuse(status: StatusCode, error: &str, detail: &str) -> Response {
    let mut r = json_reply(
        status,
        json!({
            "type": format!("https://seb.invalid/problems/console/{error}"),
            "title": error,
            "status": status.as_u16(),
            "detail": detail,
            "error": error,
            "failed_check": error,
            "decision": "deny",
        }),
    );
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(name: &str, value: &str, max_age_s: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; Secure; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn client(req_ext: Option<&ConnectInfo<SocketAddr>>) -> String {
    // Every connection carries its peer (the broker's server inserts it); without one all
    // clients share one bucket, which only makes the limit stricter.
    req_ext.map_or_else(|| "unknown".into(), |ConnectInfo(a)| a.ip().to_string())
}

/// A POST must come from one of the console's origins (browsers always send `Origin` on
/// POST); a fetch from another site also says so in `Sec-Fetch-Site`.
fn same_origin(c: &Console, h: &HeaderMap) -> bool {
    let origin_ok = h
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| c.site.origins.iter().any(|x| x == o));
    let site_ok =
        h.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_none_or(|s| s == "same-origin");
    origin_ok && site_ok
}

/// The signed-in approver of this request, checked against the directory.
struct Signed {
    token: String,
    session: session::Session,
}

impl Signed {
    fn viewer(&self) -> Viewer<'_> {
        Viewer { approver: &self.session.approver, csrf: &self.session.csrf }
    }
}

async fn signed(c: &Console, h: &HeaderMap) -> Option<Signed> {
    let token = cookie(h, SESSION_COOKIE)?;
    let now = c.now().ok()?;
    let session = c.table().ok()?.get(&token, now).ok()?;
    // Removal from the directory ends the session at the next request.
    match c.directory.find(&session.credential_id).await {
        Ok(Some((name, _))) if name == session.approver => Some(Signed { token, session }),
        Ok(_) => {
            if let Ok(mut t) = c.table() {
                t.close_all_of(&session.approver);
            }
            warn!(approver = %session.approver, decision = "deny", failed_check = "session", "console session of a removed approver ended");
            None
        }
        Err(e) => {
            warn!(error = %e, "console: approver directory unavailable");
            None
        }
    }
}

fn to_signin() -> Response {
    Redirect::to("/console/signin").into_response()
}

/// Require a session for a page, else redirect to sign-in (no data before sign-in).
macro_rules! page_session {
    ($c:expr, $h:expr) => {
        match signed(&$c, &$h).await {
            Some(s) => s,
            None => return to_signin(),
        }
    };
}

/// Require a same-origin POST with a session and its CSRF token.
macro_rules! post_session {
    ($c:expr, $h:expr, $csrf:expr) => {{
        if !same_origin(&$c, &$h) {
            warn!(decision = "deny", failed_check = "origin", "console POST from another origin refused");
            return refuse(StatusCode::FORBIDDEN, "origin", "request from another origin");
        }
        let Some(s) = signed(&$c, &$h).await else {
            return refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first");
        };
        if !session::csrf_ok(&s.session, $csrf) {
            warn!(approver = %s.session.approver, decision = "deny", failed_check = "csrf", "console POST without a valid CSRF token refused");
            return refuse(StatusCode::FORBIDDEN, "csrf", "missing or wrong CSRF token");
        }
        s
    }};
}

fn csrf_header(h: &HeaderMap) -> Option<&str> {
    h.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

async fn home(State(c): St, h: HeaderMap) -> Response {
    if signed(&c, &h).await.is_some() {
        Redirect::to("/console/proposals").into_response()
    } else {
        to_signin()
    }
}

async fn signin_page(State(c): St, h: HeaderMap) -> Response {
    if signed(&c, &h).await.is_some() {
        return Redirect::to("/console/proposals").into_response();
    }
    html(StatusCode::OK, render::signin(None))
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn icon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], ICON).into_response()
}

async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS).into_response()
}

async fn signin_challenge(State(c): St, h: HeaderMap, req: Request) -> Response {
    if !same_origin(&c, &h) {
        return refuse(StatusCode::FORBIDDEN, "origin", "request from another origin");
    }
    let who = client(req.extensions().get::<ConnectInfo<SocketAddr>>());
    let r = (|| {
        let now = c.now()?;
        let mut t = c.table()?;
        if !t.attempt(&who, now) {
            return Ok(None);
        }
        let challenge = random32()?;
        let bind = session::token_from(&random32()?);
        if !t.add_challenge(&bind, challenge, now) {
            return Err(AdmissionError::Internal("too many sign-ins in progress".into()));
        }
        Ok::<_, AdmissionError>(Some((challenge, bind, t.limits().challenge_ms / 1000)))
    })();
    match r {
        Ok(Some((challenge, bind, ttl))) => {
            let mut resp = json_reply(
                StatusCode::OK,
                json!({ "challenge": B64URL.encode(challenge), "rp_id": c.site.rp_id, "timeout_ms": ttl * 1000 }),
            );
            resp.headers_mut().append(header::SET_COOKIE, set_cookie(CHALLENGE_COOKIE, &bind, ttl));
            resp
        }
        Ok(None) => {
            warn!(client = %who, decision = "deny", failed_check = "rate_limit", "console sign-in rate limit reached");
            refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many sign-in attempts; wait a minute",
            )
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    credential_id: String,
    authenticator_data: String,
    client_data_json: String,
    signature: String,
    #[serde(default)]
    user_handle: Option<String>,
}

fn b64url(field: &str, s: &str) -> Result<Vec<u8>, String> {
    B64URL.decode(s.trim_end_matches('=')).map_err(|_| format!("`{field}` is not base64url"))
}

async fn signin(State(c): St, h: HeaderMap, req: Request) -> Response {
    if !same_origin(&c, &h) {
        return refuse(StatusCode::FORBIDDEN, "origin", "request from another origin");
    }
    let who = client(req.extensions().get::<ConnectInfo<SocketAddr>>());
    let body = match axum::body::to_bytes(req.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "parse", "body too large"),
    };
    // Count the attempt and take the challenge first: whatever happens next, this challenge
    // is used up and the attempt counted.
    let taken = (|| {
        let now = c.now()?;
        let mut t = c.table()?;
        if !t.attempt(&who, now) {
            return Ok(None);
        }
        let bind = cookie(&h, CHALLENGE_COOKIE).unwrap_or_default();
        Ok::<_, AdmissionError>(Some(t.take_challenge(&bind, now)))
    })();
    let challenge = match taken {
        Ok(Some(Ok(ch))) => ch,
        Ok(Some(Err(e))) => {
            warn!(client = %who, decision = "deny", failed_check = "challenge", reason = ?e, "console sign-in refused");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "challenge",
                "the sign-in challenge is unknown, used or expired: try again",
            );
        }
        Ok(None) => {
            warn!(client = %who, decision = "deny", failed_check = "rate_limit", "console sign-in rate limit reached");
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many sign-in attempts; wait a minute",
            );
        }
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string()),
    };
    let parsed: Result<SignIn, _> = seb_core::json::parse(&body, 16 * 1024);
    let Ok(si) = parsed else {
        return refuse(StatusCode::BAD_REQUEST, "parse", "malformed sign-in body");
    };
    let decoded = (|| {
        Ok::<_, String>((
            b64url("credential_id", &si.credential_id)?,
            Assertion {
                authenticator_data: b64url("authenticator_data", &si.authenticator_data)?,
                client_data_json: b64url("client_data_json", &si.client_data_json)?,
                signature: b64url("signature", &si.signature)?,
            },
        ))
    })();
    // The user handle is not needed: the credential id names the approver.
    let _ = si.user_handle;
    let (cred_id, assertion) = match decoded {
        Ok(x) => x,
        Err(m) => return refuse(StatusCode::BAD_REQUEST, "parse", &m),
    };
    let found = match c.directory.find(&cred_id).await {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string()),
    };
    let Some((name, cred)) = found else {
        warn!(client = %who, decision = "deny", failed_check = "credential", "console sign-in with an unknown credential");
        return refuse(StatusCode::UNAUTHORIZED, "credential", "this passkey is not enrolled");
    };
    let verified = match verify_assertion(&cred, &challenge, &assertion) {
        Ok(v) => v,
        Err(e) => {
            warn!(client = %who, approver = %name, decision = "deny", failed_check = "assertion", error = %e, "console sign-in assertion refused");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "assertion",
                &format!("the passkey assertion does not verify: {e}"),
            );
        }
    };
    match c.directory.advance_counter(&cred_id, verified.counter).await {
        Ok(true) => {}
        Ok(false) => {
            warn!(client = %who, approver = %name, decision = "deny", failed_check = "counter", counter = verified.counter, "console sign-in with a counter that did not increase");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "counter",
                "signature counter did not increase (cloned authenticator?)",
            );
        }
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string()),
    }
    let opened = (|| {
        let now = c.now()?;
        let token = session::token_from(&random32()?);
        let csrf = session::token_from(&random32()?);
        let mut t = c.table()?;
        if !t.open(&token, &csrf, &name, &cred_id, now) {
            return Err(AdmissionError::Internal("too many console sessions".into()));
        }
        Ok::<_, AdmissionError>((token, t.limits().max_ms / 1000))
    })();
    match opened {
        Ok((token, max_s)) => {
            info!(approver = %name, client = %who, kid = %cred.kid(), "console sign-in");
            let mut resp = json_reply(
                StatusCode::OK,
                json!({ "approver": name, "next": "/console/proposals" }),
            );
            resp.headers_mut()
                .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &token, max_s));
            resp.headers_mut().append(header::SET_COOKIE, set_cookie(CHALLENGE_COOKIE, "", 0));
            resp
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn signout(State(c): St, h: HeaderMap, body: Body) -> Response {
    let form = axum::body::to_bytes(body, 4096).await.ok().and_then(|b| serde_urlencoded_csrf(&b));
    let presented = csrf_header(&h).map(str::to_owned).or(form);
    let s = post_session!(c, h, presented.as_deref());
    if let Ok(mut t) = c.table() {
        t.close(&s.token);
    }
    info!(approver = %s.session.approver, "console sign-out");
    let mut resp = Redirect::to("/console/signin").into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    resp
}

/// The `csrf` field of an `application/x-www-form-urlencoded` body.
fn serde_urlencoded_csrf(b: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(b).ok()?;
    let q: Query<CsrfForm> = Query::try_from_uri(&format!("/?{text}").parse().ok()?).ok()?;
    q.0.csrf
}

#[derive(Debug, Deserialize)]
struct ListQ {
    level: Option<String>,
    agent: Option<String>,
    platform: Option<String>,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|x| !x.is_empty())
}

/// Most proposals one page renders.
const PAGE_MAX: usize = 500;

/// Full views of the proposals with `status` (all but pending when `None`), the newest
/// [`PAGE_MAX`], oldest first.
async fn views(a: &Admission, status: Option<&str>) -> Vec<Value> {
    let mut list = a.list(status, None).await.unwrap_or_default();
    if status.is_none() {
        list.retain(|p| p.status != ProposalStatus::Pending);
    }
    let skip = list.len().saturating_sub(PAGE_MAX);
    let mut out = Vec::new();
    for p in list.into_iter().skip(skip) {
        if let Ok(v) = a.view(&p.proposal_id).await
            && let Ok(v) = serde_json::to_value(v)
        {
            out.push(v);
        }
    }
    out
}

async fn list(
    State(c): St,
    h: HeaderMap,
    q: Result<Query<ListQ>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let s = page_session!(c, h);
    c.admission.expire().await;
    let q = q.ok().map(|Query(q)| q);
    let filter = match q {
        Some(q) => Filter {
            level: nonempty(q.level).and_then(|l| l.trim_start_matches(['L', 'l']).parse().ok()),
            agent: nonempty(q.agent),
            platform: nonempty(q.platform),
        },
        None => Filter::default(),
    };
    let all = views(&c.admission, Some(ProposalStatus::Pending.as_str())).await;
    let mut agents: Vec<String> = all
        .iter()
        .filter_map(|v| v.get("agent").and_then(Value::as_str).map(str::to_owned))
        .collect();
    agents.sort();
    agents.dedup();
    let mut platforms: Vec<String> = all
        .iter()
        .filter_map(|v| v.pointer("/proposal/platform").and_then(Value::as_str).map(str::to_owned))
        .chain(["aws".to_owned(), "kubernetes".to_owned()])
        .collect();
    platforms.sort();
    platforms.dedup();
    let now = c.now().unwrap_or(0);
    html(StatusCode::OK, render::pending(s.viewer(), &all, &filter, &agents, &platforms, now))
}

/// Whether `approver` may still decide on `v` (also enforced by admission on receipt).
fn decidable(a: &Admission, approver: &str, v: &Value, now: u64) -> Decidable {
    let status = v.get("status").and_then(Value::as_str).unwrap_or("");
    if status != "pending" {
        return Decidable::No(format!("This proposal is {status}: nothing left to decide."));
    }
    if v.get("deadline_ms").and_then(Value::as_u64).is_some_and(|d| now > d) {
        return Decidable::No("This proposal expired: it can no longer be approved.".into());
    }
    let already = v.get("approvals").and_then(Value::as_array).is_some_and(|x| {
        x.iter().any(|e| e.get("approver").and_then(Value::as_str) == Some(approver))
    });
    if already {
        return Decidable::No(
            "You already decided on this proposal; another approver must give the next approval."
                .into(),
        );
    }
    let agent = v.get("agent").and_then(Value::as_str).unwrap_or("");
    if a.owner_conflict(approver, agent) {
        return Decidable::No(format!(
            "You own the agent `{agent}`: the configuration forbids approving its proposals."
        ));
    }
    Decidable::Yes
}

async fn show(State(c): St, h: HeaderMap, Path(id): Path<String>) -> Response {
    let s = page_session!(c, h);
    c.admission.expire().await;
    let Some(v) = c.admission.view(&id).await.ok().and_then(|v| serde_json::to_value(v).ok())
    else {
        return html(
            StatusCode::NOT_FOUND,
            render::error(Some(s.viewer()), "Not found", &format!("No proposal `{id}`.")),
        );
    };
    let now = c.now().unwrap_or(0);
    let d = decidable(&c.admission, &s.session.approver, &v, now);
    html(StatusCode::OK, render::proposal(s.viewer(), &v, &d, now))
}

async fn decisions(State(c): St, h: HeaderMap) -> Response {
    let s = page_session!(c, h);
    c.admission.expire().await;
    let mut all = views(&c.admission, None).await;
    all.reverse();
    html(StatusCode::OK, render::decisions(s.viewer(), &all))
}

async fn enrol(Path(token): Path<String>) -> Response {
    // The token is the secret: the page itself shows nothing until its script has read the
    // invitation from the enrolment route; a malformed token gets the same page (the
    // route answers 404).
    let t: String = token
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || "-_".contains(*ch))
        .take(128)
        .collect();
    html(StatusCode::OK, render::enrol(&t))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementReq {
    decision: ApprovalDecision,
    #[serde(default)]
    comment: String,
}

fn comment_ok(decision: ApprovalDecision, comment: &str) -> Result<(), &'static str> {
    if comment.chars().count() > MAX_COMMENT {
        return Err("the reason is longer than 1000 characters");
    }
    if decision == ApprovalDecision::Deny && comment.trim().is_empty() {
        return Err("a denial needs a reason");
    }
    Ok(())
}

/// The approval statement the signed-in approver is about to sign, and its challenge.
async fn statement(State(c): St, h: HeaderMap, Path(id): Path<String>, body: Body) -> Response {
    let s = post_session!(c, h, csrf_header(&h));
    let Ok(b) = axum::body::to_bytes(body, 16 * 1024).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "parse", "body too large");
    };
    let Ok(req) = seb_core::json::parse::<StatementReq>(&b, 16 * 1024) else {
        return refuse(StatusCode::BAD_REQUEST, "parse", "expected {decision, comment}");
    };
    if let Err(m) = comment_ok(req.decision, &req.comment) {
        return refuse(StatusCode::BAD_REQUEST, "comment", m);
    }
    c.admission.expire().await;
    let Some(view) = c.admission.view(&id).await.ok() else {
        return refuse(StatusCode::NOT_FOUND, "not_found", "no such proposal");
    };
    let Ok(v) = serde_json::to_value(&view) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "view");
    };
    let now = match c.now() {
        Ok(n) => n,
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string()),
    };
    if let Decidable::No(why) = decidable(&c.admission, &s.session.approver, &v, now) {
        return refuse(StatusCode::CONFLICT, "not_decidable", &why);
    }
    let (Some(contract_digest), Some(evidence_digest)) =
        (view.contract_digest, view.evidence.as_ref().map(|e| e.digest))
    else {
        return refuse(
            StatusCode::CONFLICT,
            "not_decidable",
            "the proposal has no contract or evidence",
        );
    };
    let approval = Approval {
        proposal_id: id.clone(),
        contract_digest,
        evidence_digest,
        decision: req.decision,
        approver: s.session.approver.clone(),
        comment: req.comment,
        at_ms: now,
    };
    let Ok(payload) = seb_core::json::canonical(&approval) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "canonical form");
    };
    let pt = seb_core::envelope::PayloadType::Approval.media_type();
    let challenge = statement_challenge(pt, &payload);
    let keyid = match c.directory.find(&s.session.credential_id).await {
        Ok(Some((_, cred))) => cred.kid().to_string(),
        _ => return refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in again"),
    };
    json_reply(
        StatusCode::OK,
        json!({
            "payload_type": pt,
            "payload": B64.encode(&payload),
            "challenge": B64URL.encode(challenge),
            "credential_id": B64URL.encode(&s.session.credential_id),
            "keyid": keyid,
            "rp_id": c.site.rp_id,
        }),
    )
}

/// Forward a passkey-signed approval envelope to admission, after checking it names the
/// signed-in approver and the session's credential.
async fn decision(State(c): St, h: HeaderMap, Path(id): Path<String>, body: Body) -> Response {
    let s = post_session!(c, h, csrf_header(&h));
    let limit = c.admission.body_limit();
    let Ok(b) = axum::body::to_bytes(body, limit).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "parse", "body too large");
    };
    let Ok(env) = seb_core::json::parse::<Value>(&b, limit) else {
        return refuse(StatusCode::BAD_REQUEST, "parse", "expected an approval envelope");
    };
    let payload = env
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| B64.decode(p).ok())
        .and_then(|p| seb_core::json::parse::<Approval>(&p, limit).ok());
    let Some(approval) = payload else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "parse",
            "the envelope's payload is not an approval",
        );
    };
    let keyid = env.pointer("/signatures/0/keyid").and_then(Value::as_str).unwrap_or("");
    let session_kid = match c.directory.find(&s.session.credential_id).await {
        Ok(Some((_, cred))) => cred.kid().to_string(),
        _ => return refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in again"),
    };
    if approval.approver != s.session.approver || keyid != session_kid || approval.proposal_id != id
    {
        warn!(approver = %s.session.approver, proposal_id = %id, decision = "deny", failed_check = "session_binding", "console approval not by the signed-in approver");
        return refuse(
            StatusCode::FORBIDDEN,
            "session_binding",
            "the approval must be signed by the signed-in approver's passkey for this proposal",
        );
    }
    if let Err(m) = comment_ok(approval.decision, &approval.comment) {
        return refuse(StatusCode::BAD_REQUEST, "comment", m);
    }
    match c.admission.approve(&id, &b).await {
        Ok(v) => {
            info!(approver = %s.session.approver, proposal_id = %id, decision = ?approval.decision, "console approval recorded");
            json_reply(
                StatusCode::OK,
                json!({ "status": v.status.as_str(), "record_id": v.record_id, "next": format!("/console/proposals/{}", render::url_enc(&id)) }),
            )
        }
        Err(e) => {
            warn!(approver = %s.session.approver, proposal_id = %id, decision = "deny", error = %e, "console approval refused by admission");
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            refuse(status, e.code(), &e.to_string())
        }
    }
}
