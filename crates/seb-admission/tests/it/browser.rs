//! The console in a real browser (Debian's Chromium, Playwright for Python, the DevTools
//! virtual authenticator with user verification), against admission and the console served
//! over loopback HTTP by this test: keyboard-only passkey sign-in, the pending list and its
//! filters, the proposal page (before → after, factors, policies, approvals, untrusted
//! rationale), an expired proposal that offers no decision, an injected inline script that the
//! CSP stops, the cookie flags and CSP of real responses, laptop and phone widths, sign-out.
//! Screenshots go to the directory the test prints (`SEB_ARTIFACTS`, else
//! `target/artifacts/console`).
//!
//! The passkeys are injected into each approver's virtual authenticator
//! (`WebAuthn.addCredential`) with keys this test also enrols in the console's directory; the
//! enrolment page itself is driven end to end in crates/seb-cli/tests/console.rs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use seb_admission::console::{self, Console, ConsoleConfig, Site};
use serde_json::{Value, json};

use super::console::{Authenticator, Directory};
use crate::common::*;

pub fn artifacts(name: &str) -> PathBuf {
    let base = std::env::var_os("SEB_ARTIFACTS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts")
    });
    let d = base.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console_session.py")
}

/// PKCS#8 of an Ed25519 seed (RFC 8410), as the virtual authenticator takes it.
fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut v = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v.extend_from_slice(seed);
    v
}

#[test]
fn the_console_in_chromium_with_a_virtual_authenticator() {
    let chromium = seb_testinfra::browser::ensure().unwrap_or_else(|e| panic!("browser: {e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = artifacts("console-inprocess");
    eprintln!("console screenshots and transcript: {}", out.display());
    let (transcript, env) = rt.block_on(async {
        let env = env().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let origin = format!("http://localhost:{port}");
        let dir = Arc::new(Directory::with_site("localhost", &origin));
        let c = Console::new(
            env.admission.clone(),
            dir.clone(),
            env.clock.clone(),
            Site { rp_id: "localhost".into(), origins: vec![origin.clone()] },
            &ConsoleConfig::default(),
        )
        .unwrap();
        let app: axum::Router = console::router(c)
            .merge(seb_admission::http::router(env.admission.clone()));
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap()
        });
        let a1 = Authenticator::new(1);
        let a2 = Authenticator::new(2);
        dir.enrol("human-1", &a1);
        dir.enrol("human-2", &a2);
        // An expired proposal, then the live ones.
        env.propose("p-expired", 6, 0.9).await;
        env.advance(901_000);
        env.admission.expire().await;
        let mut p = env.proposal("p-scale", 7, 0.9);
        p.rationale = "Black Friday traffic.\n</pre><script>alert('x')</script> <b>bold?</b>".into();
        env.submit_as(&p, &agent()).await.unwrap();
        env.propose("p-deny", 8, 0.85).await;
        env.propose("p-policy", 4, 0.1).await;
        let mut b = env.proposal("p-b", 5, 0.9);
        b.agent = "agent-b".into();
        env.submit_as(&b, &other_agent()).await.unwrap();
        let inject = |a: &Authenticator, n: u8| {
            json!({"credential_id": B64.encode(&a.id), "private_key": B64.encode(pkcs8(&[100 + n; 32])),
                   "user_handle": B64.encode([n; 8]), "rp_id": "localhost"})
        };
        let phone = json!({"width": 390, "height": 844});
        let scenario = json!({
            "base": origin,
            "out": out,
            "approvers": {
                "human-1": {"inject": inject(&a1, 1)},
                "human-2": {"inject": inject(&a2, 2)},
            },
            "steps": [
                {"do": "signin", "who": "human-1", "keyboard": true, "absent": ["p-scale"]},
                {"do": "list", "who": "human-1", "expect": ["p-scale", "p-deny", "p-b", "left", "0 of 1 human"], "absent": ["p-expired", "p-policy"], "shot": "list.png"},
                {"do": "filter", "who": "human-1", "choose": {"agent": "agent-b"}, "expect": ["p-b"], "absent": ["p-scale"]},
                {"do": "list", "who": "human-1", "query": "?level=2", "expect": ["Nothing is waiting"]},
                {"do": "open", "who": "human-1", "id": "p-scale", "decidable": true,
                 "expect": ["replicas", "3", "7", "blast radius", "untrusted text written by the agent", "</pre><script>alert('x')</script>", "0 of 1 human"],
                 "shot": "proposal.png"},
                {"do": "csp", "who": "human-1"},
                {"do": "open", "who": "human-1", "id": "p-expired", "decidable": false, "expect": ["expired", "approval timeout", "nothing left to decide"]},
                {"do": "decide", "who": "human-1", "id": "p-deny", "decision": "deny", "comment": "", "expect_error": "A denial needs a reason"},
                {"do": "list", "who": "human-2", "expect": ["Sign in with a passkey"], "absent": ["p-scale", "agent-a"]},
                {"do": "signin", "who": "human-2"},
                {"do": "list", "who": "human-2", "viewport": phone, "expect": ["p-scale"], "shot": "list-phone.png"},
                {"do": "open", "who": "human-2", "id": "p-scale", "viewport": phone, "expect": ["replicas"], "shot": "proposal-phone.png"},
                {"do": "signout", "who": "human-1"},
            ],
        });
        std::fs::write(out.join("scenario.json"), scenario.to_string()).unwrap();
        let run = tokio::task::spawn_blocking({
            let out = out.clone();
            move || {
                Command::new("python3").arg(script()).arg(out.join("scenario.json")).output().unwrap()
            }
        })
        .await
        .unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert!(
            run.status.success() && stdout.contains("SESSION OK"),
            "browser session failed ({chromium}):\n{stdout}\n{stderr}"
        );
        let t: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(out.join("transcript.json")).unwrap())
                .unwrap();
        (t, env)
    });
    let steps =
        |name: &str| -> Vec<&Value> { transcript.iter().filter(|s| s["step"] == name).collect() };
    // The cookie flags of the real sign-in response, and what the browser kept.
    let signin = steps("signin")[0];
    let set: Vec<&str> =
        signin["set_cookie"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let session =
        set.iter().find(|c| c.starts_with("__Host-seb-session=")).expect("session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    let kept = signin["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "__Host-seb-session")
        .unwrap();
    assert_eq!(
        (kept["httpOnly"].as_bool(), kept["secure"].as_bool(), kept["sameSite"].as_str()),
        (Some(true), Some(true), Some("Strict"))
    );
    assert!(
        !signin["js_sees_cookie"].as_str().unwrap().contains("seb-session"),
        "HttpOnly: scripts cannot read it"
    );
    // The CSP of every console response the browser saw.
    let responses = steps("responses")[0]["responses"].as_array().unwrap();
    assert!(responses.len() > 10);
    for r in responses {
        let csp = r["headers"]["content-security-policy"]
            .as_str()
            .unwrap_or_else(|| panic!("no CSP on {r}"));
        assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    }
    // The injected inline script and handler did not run, and the browser reported it.
    let csp = steps("csp")[0];
    assert_eq!((csp["inline"].as_bool(), csp["handler"].as_bool()), (Some(false), Some(false)));
    assert!(
        csp["seen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("script-src")),
        "{csp}"
    );
    // Nothing was approved by the refused denial; the page's script logged no errors.
    assert!(rt.block_on(env.admission.view("p-deny")).unwrap().approvals.is_empty());
    let errors = steps("responses")[0]["console_errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e.to_string().contains("Content Security Policy")), "{errors:?}");
    for (f, width) in [
        ("list.png", 1280),
        ("proposal.png", 1280),
        ("list-phone.png", 390),
        ("proposal-phone.png", 390),
    ] {
        let png = std::fs::read(out.join(f)).unwrap();
        assert!(png.len() > 10_000, "{f}");
        // The full-page screenshot is as wide as the viewport: nothing overflows sideways.
        assert_eq!(
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            width,
            "{f} is wider than its viewport"
        );
    }
}
