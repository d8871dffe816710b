//! The console over HTTP (tower, no network): security headers, no data before sign-in,
//! passkey sign-in (a software EdDSA authenticator producing real assertions), single-use
//! challenges, the rate limit, CSRF and Origin checks, session binding of approvals, owner
//! rule, sign-out and removal; notifications to a local receiver.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use seb_admission::AdmissionError;
use seb_admission::console::{
    self, CSP, Console, ConsoleConfig, DirFuture, PasskeyDirectory, SESSION_COOKIE, Site,
};
use seb_core::digest::Digest;
use seb_core::keys::SigningKey;
use seb_core::types::{Approval, ApprovalDecision};
use seb_core::webauthn::{CoseAlg, WebAuthnCredential, statement_challenge};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::common::*;

const ORIGIN: &str = "https://console.test";
const RP: &str = "console.test";

/// A software passkey: EdDSA, UP+UV, a counter that increases with every assertion.
pub struct Authenticator {
    key: SigningKey,
    pub id: Vec<u8>,
    pub counter: Mutex<u32>,
    rp: String,
    origin: String,
}

impl Authenticator {
    pub fn new(n: u8) -> Self {
        Self::for_site(n, RP, ORIGIN)
    }

    /// The key is `SigningKey::from_seed(&[100 + n; 32])`, the credential id `[n; 16]`.
    pub fn for_site(n: u8, rp: &str, origin: &str) -> Self {
        Self {
            key: SigningKey::from_seed(&[100 + n; 32]),
            id: vec![n; 16],
            counter: Mutex::new(0),
            rp: rp.into(),
            origin: origin.into(),
        }
    }

    pub fn credential(&self) -> WebAuthnCredential {
        let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        spki.extend_from_slice(self.key.public_key().as_bytes());
        WebAuthnCredential {
            alg: CoseAlg::EdDsa,
            public_key: spki,
            credential_id: self.id.clone(),
            rp_id: self.rp.clone(),
            origins: vec![self.origin.clone()],
        }
    }

    /// An assertion over `challenge` as a browser at `origin` would send it.
    fn assert(&self, challenge: &[u8], origin: &str) -> Value {
        let mut c = self.counter.lock().unwrap();
        *c += 1;
        let mut ad = Digest::of_bytes(self.rp.as_bytes()).as_bytes().to_vec();
        ad.push(0x05);
        ad.extend_from_slice(&c.to_be_bytes());
        let cd = serde_json::to_vec(&json!({"type": "webauthn.get", "challenge": B64URL.encode(challenge), "origin": origin, "crossOrigin": false})).unwrap();
        let mut msg = ad.clone();
        msg.extend_from_slice(Digest::of_bytes(&cd).as_bytes());
        let sig = self.key.sign(&msg);
        json!({
            "credential_id": B64URL.encode(&self.id),
            "authenticator_data": B64URL.encode(&ad),
            "client_data_json": B64URL.encode(&cd),
            "signature": B64URL.encode(sig),
        })
    }
}

/// An in-memory approver directory.
#[derive(Default)]
pub struct Directory {
    entries: Mutex<BTreeMap<Vec<u8>, (String, WebAuthnCredential, u32)>>,
    site: Option<(String, String)>,
}

impl Directory {
    /// Credentials enrolled here are for this RP id and origin.
    pub fn with_site(rp: &str, origin: &str) -> Self {
        Self { site: Some((rp.into(), origin.into())), ..Self::default() }
    }
    pub fn enrol(&self, name: &str, a: &Authenticator) {
        let mut cred = a.credential();
        if let Some((rp, origin)) = &self.site {
            cred.rp_id = rp.clone();
            cred.origins = vec![origin.clone()];
        }
        self.entries.lock().unwrap().insert(a.id.clone(), (name.into(), cred, 0));
    }
    fn remove(&self, name: &str) {
        self.entries.lock().unwrap().retain(|_, (n, _, _)| n != name);
    }
}

impl PasskeyDirectory for Directory {
    fn find<'a>(&'a self, id: &'a [u8]) -> DirFuture<'a, Option<(String, WebAuthnCredential)>> {
        let r = self.entries.lock().unwrap().get(id).map(|(n, c, _)| (n.clone(), c.clone()));
        Box::pin(async move { Ok::<_, AdmissionError>(r) })
    }
    fn advance_counter<'a>(&'a self, id: &'a [u8], counter: u32) -> DirFuture<'a, bool> {
        let mut m = self.entries.lock().unwrap();
        let ok = match m.get_mut(id) {
            Some((_, _, stored)) if seb_core::webauthn::check_counter(*stored, counter).is_ok() => {
                *stored = counter;
                true
            }
            _ => false,
        };
        Box::pin(async move { Ok(ok) })
    }
}

struct Fixture {
    env: Env,
    dir: Arc<Directory>,
    app: axum::Router,
}

async fn fixture(extra: &str) -> Fixture {
    let env = env_with(extra).await;
    let dir = Arc::new(Directory::default());
    let c = Console::new(
        env.admission.clone(),
        dir.clone(),
        env.clock.clone(),
        Site { rp_id: RP.into(), origins: vec![ORIGIN.into()] },
        &ConsoleConfig::default(),
    )
    .unwrap();
    let app = console::router(c);
    Fixture { env, dir, app }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    cookies: Vec<String>,
    origin: Option<&'a str>,
    csrf: Option<&'a str>,
    body: Option<Value>,
    ip: [u8; 4],
    extra: Vec<(&'a str, &'a str)>,
}

fn get(path: &str) -> Call<'_> {
    Call {
        method: "GET",
        path,
        cookies: vec![],
        origin: None,
        csrf: None,
        body: None,
        ip: [10, 0, 0, 1],
        extra: vec![],
    }
}

fn post(path: &str, body: Value) -> Call<'_> {
    Call {
        method: "POST",
        path,
        cookies: vec![],
        origin: Some(ORIGIN),
        csrf: None,
        body: Some(body),
        ip: [10, 0, 0, 1],
        extra: vec![],
    }
}

async fn send(app: &axum::Router, c: Call<'_>) -> Resp {
    let mut b = Request::builder().method(c.method).uri(c.path);
    if !c.cookies.is_empty() {
        b = b.header(header::COOKIE, c.cookies.join("; "));
    }
    if let Some(o) = c.origin {
        b = b.header(header::ORIGIN, o);
    }
    if let Some(t) = c.csrf {
        b = b.header("x-seb-csrf", t);
    }
    for (k, v) in &c.extra {
        b = b.header(*k, *v);
    }
    let body = match c.body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = b.body(body).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from((c.ip, 40000))));
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
    Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// `name=value` of a Set-Cookie line.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Sign in with `a`: (session cookie pair, csrf token).
async fn sign_in(f: &Fixture, a: &Authenticator) -> (String, String) {
    let ch = send(&f.app, post("/console/signin/challenge", json!({}))).await;
    assert_eq!(ch.status, StatusCode::OK, "{}", ch.body);
    let bind = pair(&ch.cookie("__Host-seb-signin").unwrap());
    let challenge = B64URL.decode(ch.json()["challenge"].as_str().unwrap()).unwrap();
    let mut c = post("/console/signin", a.assert(&challenge, ORIGIN));
    c.cookies.push(bind);
    let r = send(&f.app, c).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let session = pair(&r.cookie(SESSION_COOKIE).unwrap());
    let page =
        send(&f.app, Call { cookies: vec![session.clone()], ..get("/console/proposals") }).await;
    let csrf = page
        .body
        .split("name=\"seb-csrf\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    (session, csrf)
}

#[tokio::test]
async fn pages_need_a_session_and_every_response_carries_the_security_headers() {
    let f = fixture("").await;
    let v = f.env.propose("p-secret-name", 7, 0.9).await;
    assert_eq!(v.status, seb_admission::service::ProposalStatus::Pending);
    for path in
        ["/console", "/console/proposals", "/console/proposals/p-secret-name", "/console/decisions"]
    {
        let r = send(&f.app, get(path)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers[header::LOCATION], "/console/signin");
        assert!(!r.body.contains("p-secret-name"));
    }
    let r = send(&f.app, get("/console/signin")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.body.contains("p-secret-name") && !r.body.contains("agent-a"),
        "no data before sign-in"
    );
    for path in [
        "/console/signin",
        "/console/assets/console.js",
        "/console/assets/console.css",
        "/console/proposals",
    ] {
        let r = send(&f.app, get(path)).await;
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert_eq!(csp, CSP);
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(r.headers[header::REFERRER_POLICY], "same-origin");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // Refusals are problem+json naming the failed check.
    let r = send(
        &f.app,
        Call { origin: Some("https://evil.test"), ..post("/console/signin/challenge", json!({})) },
    )
    .await;
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(
        (r.json()["failed_check"].as_str(), r.json()["status"].as_u64()),
        (Some("origin"), Some(403))
    );
    // No inline script or style in any page.
    let body = send(&f.app, get("/console/signin")).await.body;
    assert!(!body.contains("<script>") && !body.contains("style=") && !body.contains("onclick"));
}

#[tokio::test]
async fn passkey_sign_in_sets_a_strict_cookie_and_each_challenge_is_single_use() {
    let f = fixture("").await;
    f.env.propose("p-shown", 7, 0.9).await;
    let a = Authenticator::new(1);
    f.dir.enrol("human-1", &a);
    let ch = send(&f.app, post("/console/signin/challenge", json!({}))).await;
    let bind_line = ch.cookie("__Host-seb-signin").unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(bind_line.contains(flag), "{bind_line}");
    }
    let challenge = B64URL.decode(ch.json()["challenge"].as_str().unwrap()).unwrap();
    assert_eq!(challenge.len(), 32);
    let assertion = a.assert(&challenge, ORIGIN);
    let mut c = post("/console/signin", assertion.clone());
    c.cookies.push(pair(&bind_line));
    let r = send(&f.app, c).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let line = r.cookie(SESSION_COOKIE).unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(flag), "{line}");
    }
    assert!(!line.contains("Domain"), "__Host- cookies carry no Domain");
    let page = send(&f.app, Call { cookies: vec![pair(&line)], ..get("/console/proposals") }).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("p-shown") && page.body.contains("human-1"));
    // The same assertion and challenge again: the challenge is gone.
    let mut c = post("/console/signin", assertion);
    c.cookies.push(pair(&bind_line));
    let r = send(&f.app, c).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("challenge"))
    );
    // A made-up session cookie is no session.
    let r = send(
        &f.app,
        Call { cookies: vec![format!("{SESSION_COOKIE}=forged")], ..get("/console/proposals") },
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

/// One sign-in attempt from a fresh client address (so the rate limit stays out of the way).
async fn attempt(f: &Fixture, body: impl FnOnce(&[u8]) -> Value, origin: &str) -> Resp {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let ip = [10, 1, 0, NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)];
    let ch = send(&f.app, Call { ip, ..post("/console/signin/challenge", json!({})) }).await;
    let bind = pair(&ch.cookie("__Host-seb-signin").unwrap());
    let challenge = B64URL.decode(ch.json()["challenge"].as_str().unwrap()).unwrap();
    let mut c = post("/console/signin", body(&challenge));
    c.origin = Some(origin);
    c.ip = ip;
    c.cookies.push(bind);
    send(&f.app, c).await
}

#[tokio::test]
async fn sign_in_refuses_wrong_challenges_origins_unknown_passkeys_and_cloned_counters() {
    let f = fixture("").await;
    let a = Authenticator::new(1);
    f.dir.enrol("human-1", &a);
    let stranger = Authenticator::new(9);
    // Another challenge than the one issued to this browser.
    let r = attempt(&f, |_| a.assert(&[7; 32], ORIGIN), ORIGIN).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("assertion"))
    );
    // Signed for another origin (a phishing site relaying the challenge).
    let r = attempt(&f, |c| a.assert(c, "https://evil.test"), ORIGIN).await;
    assert_eq!(r.json()["error"], "assertion", "{}", r.body);
    // Posted from another origin.
    let r = attempt(&f, |c| a.assert(c, ORIGIN), "https://evil.test").await;
    assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::FORBIDDEN, Some("origin")));
    // A passkey nobody enrolled.
    let r = attempt(&f, |c| stranger.assert(c, ORIGIN), ORIGIN).await;
    assert_eq!(r.json()["error"], "credential");
    // A tampered signature.
    let r = attempt(
        &f,
        |c| {
            let mut v = a.assert(c, ORIGIN);
            let mut sig = B64URL.decode(v["signature"].as_str().unwrap()).unwrap();
            sig[0] ^= 1;
            v["signature"] = json!(B64URL.encode(sig));
            v
        },
        ORIGIN,
    )
    .await;
    assert_eq!(r.json()["error"], "assertion");
    // A clone: the counter goes back.
    let r = attempt(&f, |c| a.assert(c, ORIGIN), ORIGIN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    *a.counter.lock().unwrap() = 1;
    let r = attempt(&f, |c| a.assert(c, ORIGIN), ORIGIN).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("counter")));
    // A cross-site fetch says so.
    let mut c = post("/console/signin/challenge", json!({}));
    c.extra.push(("sec-fetch-site", "cross-site"));
    assert_eq!(send(&f.app, c).await.status, StatusCode::FORBIDDEN);
    // No Origin at all.
    let mut c = post("/console/signin/challenge", json!({}));
    c.origin = None;
    assert_eq!(send(&f.app, c).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_client() {
    let f = fixture("").await;
    for _ in 0..10 {
        assert_eq!(
            send(&f.app, post("/console/signin/challenge", json!({}))).await.status,
            StatusCode::OK
        );
    }
    let r = send(&f.app, post("/console/signin/challenge", json!({}))).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // Sign-in itself counts too, and is refused before any verification.
    let r = send(&f.app, post("/console/signin", json!({}))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not blocked; the window passes.
    let mut c = post("/console/signin/challenge", json!({}));
    c.ip = [10, 0, 0, 2];
    assert_eq!(send(&f.app, c).await.status, StatusCode::OK);
    f.env.advance(61_000);
    assert_eq!(
        send(&f.app, post("/console/signin/challenge", json!({}))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn state_changes_need_the_csrf_token_and_build_the_exact_approval_statement() {
    let f = fixture("").await;
    let v = f.env.propose("p-csrf", 7, 0.9).await;
    let a = Authenticator::new(1);
    f.dir.enrol("human-1", &a);
    let (session, csrf) = sign_in(&f, &a).await;
    let path = "/console/proposals/p-csrf/statement";
    let body = json!({"decision": "approve", "comment": "fine"});
    // No token, a wrong token, the right token from another origin.
    let r = send(&f.app, Call { cookies: vec![session.clone()], ..post(path, body.clone()) }).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")));
    let r = send(
        &f.app,
        Call { cookies: vec![session.clone()], csrf: Some("AAAA"), ..post(path, body.clone()) },
    )
    .await;
    assert_eq!(r.json()["error"], "csrf");
    let r = send(
        &f.app,
        Call {
            cookies: vec![session.clone()],
            csrf: Some(&csrf),
            origin: Some("https://evil.test"),
            ..post(path, body.clone())
        },
    )
    .await;
    assert_eq!(r.json()["error"], "origin");
    // No session.
    let r = send(&f.app, Call { csrf: Some(&csrf), ..post(path, body.clone()) }).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A denial needs a reason.
    let r = send(
        &f.app,
        Call {
            cookies: vec![session.clone()],
            csrf: Some(&csrf),
            ..post(path, json!({"decision": "deny", "comment": " "}))
        },
    )
    .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("comment")));
    let r = send(
        &f.app,
        Call { cookies: vec![session.clone()], csrf: Some(&csrf), ..post(path, body) },
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let st = r.json();
    let payload = B64.decode(st["payload"].as_str().unwrap()).unwrap();
    let approval: Approval = serde_json::from_slice(&payload).unwrap();
    assert_eq!(approval.approver, "human-1");
    assert_eq!(approval.decision, ApprovalDecision::Approve);
    assert_eq!(Some(approval.contract_digest), v.contract_digest);
    assert_eq!(approval.evidence_digest, v.evidence.as_ref().unwrap().digest);
    let pt = st["payload_type"].as_str().unwrap();
    assert_eq!(pt, "application/vnd.seb.approval+json;v=1");
    assert_eq!(st["challenge"], json!(B64URL.encode(statement_challenge(pt, &payload))));
    assert_eq!(st["keyid"], json!(a.credential().kid().to_string()));
    assert_eq!(st["credential_id"], json!(B64URL.encode(&a.id)));
}

#[tokio::test]
async fn an_approval_must_be_the_signed_in_approvers_and_sign_out_and_removal_end_sessions() {
    let f = fixture("").await;
    f.env.propose("p-bind", 7, 0.9).await;
    let a = Authenticator::new(1);
    f.dir.enrol("human-1", &a);
    let (session, csrf) = sign_in(&f, &a).await;
    // An envelope naming another approver, signed by someone else.
    let v = f.env.admission.view("p-bind").await.unwrap();
    let other = f.env.approval(&v, "human-2", ApprovalDecision::Approve);
    let env = seb_admission::client::sign_approval(&other, &human(2)).unwrap();
    let r = send(
        &f.app,
        Call {
            cookies: vec![session.clone()],
            csrf: Some(&csrf),
            ..post("/console/proposals/p-bind/decision", serde_json::to_value(&env).unwrap())
        },
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("session_binding"))
    );
    assert!(
        f.env.admission.view("p-bind").await.unwrap().approvals.is_empty(),
        "nothing reached admission"
    );
    // Sign-out needs the token too (a form field), then the cookie is dead.
    let out = send(
        &f.app,
        Call { cookies: vec![session.clone()], ..post("/console/signout", json!({})) },
    )
    .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    let req = Request::builder()
        .method("POST")
        .uri("/console/signout")
        .header(header::COOKIE, &session)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .unwrap();
    let r = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = send(&f.app, Call { cookies: vec![session], ..get("/console/proposals") }).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Removal from the directory ends a live session at its next request.
    let (session, _) = sign_in(&f, &a).await;
    f.dir.remove("human-1");
    let r = send(&f.app, Call { cookies: vec![session], ..get("/console/proposals") }).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn owners_and_second_approvals_are_refused_in_the_page_and_by_admission() {
    let owners = "forbid_owner_approval = true\n";
    // human-1 owns agent-a.
    let text = config_text(owners)
        .replace("name = \"agent-a\"\n", "name = \"agent-a\"\nowners = [\"human-1\"]\n");
    let dir = tempfile::tempdir().unwrap();
    let cfg = seb_admission::AdmissionConfig::from_toml_str(&text, dir.path()).unwrap();
    assert_eq!(cfg.agents[0].owners, vec!["human-1".to_owned()]);
    let f = fixture_with_text(&text).await;
    let v = f.env.propose("p-own", 7, 0.9).await;
    // Admission refuses the owner's approval whatever signed it.
    let r = f
        .env
        .send_approval(&f.env.approval(&v, "human-1", ApprovalDecision::Approve), &human(1))
        .await;
    assert!(matches!(r, Err(AdmissionError::Forbidden(ref m)) if m.contains("owns")), "{r:?}");
    let a = Authenticator::new(1);
    f.dir.enrol("human-1", &a);
    let (session, csrf) = sign_in(&f, &a).await;
    let page =
        send(&f.app, Call { cookies: vec![session.clone()], ..get("/console/proposals/p-own") })
            .await;
    assert!(page.body.contains("You own the agent") && !page.body.contains("id=\"decide\""));
    let r = send(
        &f.app,
        Call {
            cookies: vec![session],
            csrf: Some(&csrf),
            ..post("/console/proposals/p-own/statement", json!({"decision": "approve"}))
        },
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::CONFLICT, Some("not_decidable"))
    );
    // human-2 approves with its key; the page then tells human-2 it already decided.
    f.env.approve(&v, "human-2", &human(2)).await;
    let b = Authenticator::new(2);
    f.dir.enrol("human-2", &b);
    let (session, _) = sign_in(&f, &b).await;
    let page =
        send(&f.app, Call { cookies: vec![session], ..get("/console/proposals/p-own") }).await;
    assert!(page.body.contains("You already decided"), "{}", page.body);
    assert!(page.body.contains("human-2") && page.body.contains("approve"));
}

async fn fixture_with_text(text: &str) -> Fixture {
    let env = env_with_text(text).await;
    let dir = Arc::new(Directory::default());
    let c = Console::new(
        env.admission.clone(),
        dir.clone(),
        env.clock.clone(),
        Site { rp_id: RP.into(), origins: vec![ORIGIN.into()] },
        &ConsoleConfig::default(),
    )
    .unwrap();
    Fixture { app: console::router(c), env, dir }
}

/// What the local receiver got: (Authorization header, body).
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[tokio::test]
async fn notifications_reach_a_local_receiver_when_a_proposal_waits_and_when_it_is_decided() {
    use axum::routing::post as axpost;
    let got: Received = Arc::default();
    let sink = got.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axpost(move |h: axum::http::HeaderMap, body: axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                let auth =
                    h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
                sink.lock().unwrap().push((auth, body.0));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("token"), "s3cret-token\n").unwrap();
    let cfg = seb_admission::notify::NotifyConfig {
        url: format!("http://{addr}/hook"),
        bearer_token_file: Some(tmp.path().join("token")),
        timeout_ms: 2000,
    };
    let env = env().await;
    let n =
        seb_admission::notify::Notifier::start(&cfg, "https://console.test/", env.clock.clone())
            .unwrap();
    assert!(env.admission.set_events(n));
    env.propose("p-policy-path", 5, 0.1).await; // certified at once: no message
    let v = env.propose("p-wait", 7, 0.9).await;
    let mut d = env.approval(&v, "human-0", ApprovalDecision::Deny);
    d.comment = "not during the freeze".into();
    env.send_approval(&d, &human(0)).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let (auth, waiting) = &got[0];
    assert_eq!(auth.as_deref(), Some("Bearer s3cret-token"));
    assert_eq!(waiting["type"], "seb.proposal.waiting");
    assert_eq!(waiting["proposal_id"], "p-wait");
    assert_eq!(waiting["console_url"], "https://console.test/console/proposals/p-wait");
    assert_eq!(waiting["needed"]["humans"], 1);
    assert!(waiting.get("params").is_none(), "no params in notifications");
    let decided = &got[1].1;
    assert_eq!(decided["type"], "seb.proposal.decided");
    assert_eq!(decided["status"], "denied");
    assert!(decided["reason"].as_str().unwrap().contains("not during the freeze"));
    assert!(decided["record_id"].is_string());
}
