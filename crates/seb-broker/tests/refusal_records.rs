#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Refusals that are not recorded one by one still name a real record, nothing is signed
//! without a trusted time, and garbage cannot page the operator:
//! - a distrusted clock refuses before anything is reserved, signs nothing, and the refusal
//!   names the summary record that counts it once the clock is trusted again;
//! - a rate-limited pre-authentication refusal names the summary record that counts it;
//! - refusals before authentication are counted apart from authenticated `fail_closed`
//!   decisions in `/metrics`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::*;
use seb_broker::engine::{Broker, EngineSettings};
use seb_broker::http::{AppState, router};
use seb_broker::records::RecordSigner;
use seb_core::types::{Decision, FailedCheck};
use seb_store::{Revocation, Store};
use serde_json::Value;

fn env_with(settings: EngineSettings) -> Env {
    let mut e = env();
    e.broker = Arc::new(Broker::new(
        e.store.clone(),
        vec![e.target.clone()],
        RecordSigner::new(broker_key()),
        trust(),
        settings,
        e.clock.clone(),
    ));
    e
}

/// A presentation that parses but whose certificate has an empty payloadType: unauthenticated.
fn garbage(seed: u8) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&Cert::new(seed).present()).unwrap();
    v["certificate"]["payloadType"] = Value::String(String::new());
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn an_untrusted_clock_refuses_before_reserve_and_signs_nothing_until_it_is_trusted() {
    let env = env();
    // A trusted reading first (the high-water mark), then the clock steps back 10 s.
    env.broker.execute(&Cert::new(70).present(), "c").await.unwrap();
    let before = ledger(env.store.as_ref()).await;
    let checkpoint = env.broker.checkpoint().await.unwrap().unwrap();
    env.clock.set(NOW_MS - 10_000);

    let cert = Cert::new(71);
    let f = env.broker.execute(&cert.present(), "c").await.unwrap_err();
    assert_eq!(
        (f.failed_check, f.decision, f.http_status()),
        (FailedCheck::Time, Decision::FailClosed, 503)
    );
    assert!(!f.recorded);
    assert!(f.reason.contains("stepped backwards"), "{}", f.reason);
    assert!(
        uuid::Uuid::parse_str(&f.record_id).is_ok(),
        "a record id, not a placeholder: {}",
        f.record_id
    );
    assert!(
        !env.store.is_reserved(&cert.payload.cid, &cert.payload.nonce).await.unwrap(),
        "refused before the reservation"
    );
    // Nothing is signed while the clock is distrusted: no decision, no summary, no checkpoint.
    let g = env.broker.execute(&Cert::new(72).present(), "d").await.unwrap_err();
    assert_eq!(g.record_id, f.record_id, "one summary window counts both");
    env.broker.write_summary().await;
    assert_eq!(env.broker.checkpoint().await.unwrap(), Some(checkpoint.clone()));
    assert_eq!(ledger(env.store.as_ref()).await, before, "nothing signed at an untrusted time");

    // The clock catches up: the summary is signed under the id both refusals carried.
    env.clock.set(NOW_MS + 1_000);
    env.broker.write_summary().await;
    let after = ledger(env.store.as_ref()).await;
    assert_eq!(after.len(), before.len() + 1);
    let (ty, summary) = after.last().unwrap();
    assert_eq!(ty, "application/vnd.seb.decision+json;v=1");
    assert_eq!(summary["id"], Value::String(f.record_id.clone()));
    assert_eq!(summary["identity"], "summary");
    assert_eq!(summary["at_ms"], NOW_MS + 1_000);
    assert!(summary["reason"].as_str().unwrap().contains("2 refusals from 2 clients"), "{summary}");
    // No record in the ledger carries time 0.
    for (_, r) in &after {
        for field in ["at_ms", "started_ms", "ended_ms"] {
            assert_ne!(r.get(field).and_then(Value::as_u64), Some(0), "{r}");
        }
    }
    // And the broker decides and signs again (cert 73's evidence predates cert 70's change:
    // a recorded readmit, at the trusted time).
    let again = env.broker.execute(&Cert::new(73).present(), "c").await.unwrap_err();
    assert_eq!(again.failed_check, FailedCheck::Drift);
    assert!(again.recorded);
    let l = ledger(env.store.as_ref()).await;
    assert_eq!(l.last().unwrap().1["id"], Value::String(again.record_id));
    assert_eq!(l.last().unwrap().1["at_ms"], NOW_MS + 1_000);
}

#[tokio::test]
async fn a_rate_limited_refusal_names_the_summary_record_that_counts_it() {
    let env =
        env_with(EngineSettings { preauth_records_per_minute: 1, ..EngineSettings::default() });
    let client = "198.51.100.7";
    let first = env.broker.execute(&garbage(80), client).await.unwrap_err();
    assert!(first.recorded);
    assert_eq!(
        ledger(env.store.as_ref()).await.last().unwrap().1["id"],
        Value::String(first.record_id)
    );
    let limited: Vec<_> = futures_collect(&env, client, 3).await;
    let id = limited[0].record_id.clone();
    for f in &limited {
        assert_eq!(
            (f.failed_check, f.decision, f.http_status()),
            (FailedCheck::Signature, Decision::FailClosed, 503)
        );
        assert!(!f.recorded);
        assert_eq!(f.record_id, id, "one window, one summary record");
    }
    assert_ne!(id, "rate-limited");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let size = env.store.ledger_size().await.unwrap();
    env.broker.write_summary().await;
    let l = ledger(env.store.as_ref()).await;
    assert_eq!(l.len() as u64, size + 1);
    let (_, summary) = l.last().unwrap();
    assert_eq!(summary["id"], Value::String(id.clone()), "the refusals named this record");
    assert_eq!(summary["identity"], "summary");
    assert!(summary["reason"].as_str().unwrap().contains("3 refusals from 1 clients"), "{summary}");
    // The next window gets a new summary record.
    let next = env.broker.execute(&garbage(84), client).await.unwrap_err();
    assert!(!next.recorded);
    assert_ne!(next.record_id, id);
}

async fn futures_collect(env: &Env, client: &str, n: u8) -> Vec<seb_broker::engine::Refusal> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(env.broker.execute(&garbage(81 + i), client).await.unwrap_err());
    }
    out
}

async fn serve(env: &Env) -> String {
    let state = AppState { broker: env.broker.clone(), ready: Arc::new(AtomicBool::new(true)) };
    let app = router(state, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

/// `(name{labels} value)` lines of one metric family.
fn samples(metrics: &str, name: &str) -> Vec<String> {
    metrics.lines().filter(|l| l.starts_with(name)).map(str::to_owned).collect()
}

#[tokio::test]
async fn garbage_is_counted_apart_from_authenticated_fail_closed_decisions() {
    let env = env();
    let url = serve(&env).await;
    let client = reqwest::Client::new();
    for seed in 90..93 {
        let resp =
            client.post(format!("{url}/v1/executions")).body(garbage(seed)).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (body["failed_check"].as_str(), body["decision"].as_str()),
            (Some("signature"), Some("fail_closed"))
        );
    }
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let pre = samples(&metrics, "seb_preauth_refusals_total{");
    assert!(
        pre.iter().any(|l| l.contains("decision=\"fail_closed\"")
            && l.contains("failed_check=\"signature\"")
            && l.ends_with(" 3")),
        "{metrics}"
    );
    assert!(
        !samples(&metrics, "seb_decisions_total{").iter().any(|l| l.contains("fail_closed")),
        "garbage raised the paging metric:\n{metrics}"
    );

    // An authenticated certificate refused fail_closed (revoked) is a decision: it pages.
    let cert = Cert::new(94);
    env.store.revoke(Revocation::Cid(cert.payload.cid.clone()), NOW_MS, None).await.unwrap();
    let resp =
        client.post(format!("{url}/v1/executions")).body(cert.present()).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let decisions = samples(&metrics, "seb_decisions_total{");
    assert!(
        decisions.iter().any(|l| l.contains("decision=\"fail_closed\"")
            && l.contains("failed_check=\"revocation\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(!decisions.iter().any(|l| l.contains("failed_check=\"signature\"")), "{metrics}");
}
