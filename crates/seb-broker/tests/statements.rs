#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Statement mode: a broker that does not share admission's store follows signed epoch
//! statements and fails closed once the newest one is older than its TTL.

mod common;

use std::sync::Arc;

use common::*;
use seb_broker::engine::{Broker, EngineSettings, EpochSource};
use seb_broker::records::RecordSigner;
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::keys::SigningKey;
use seb_core::types::{Decision, EpochStatement, FailedCheck};

fn admission() -> SigningKey {
    key(50)
}

fn statement_env(env_dir: tempfile::TempDir) -> Env {
    let mut e = env_in(env_dir);
    let settings = EngineSettings {
        epoch_source: EpochSource::Statement {
            admission_keys: [admission().public_key()].into_iter().collect(),
        },
        ..EngineSettings::default()
    };
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

fn statement(
    policy: u64,
    revocation: u64,
    cids: Vec<String>,
    issued_at_ms: u64,
    signer: &SigningKey,
) -> Envelope {
    Envelope::sign(
        PayloadType::Epoch,
        &EpochStatement {
            policy_epoch: policy,
            revocation_epoch: revocation,
            revoked_cids: cids,
            revoked_agents: vec![],
            issued_at_ms,
            ttl_ms: 10_000,
        },
        signer,
    )
    .unwrap()
}

fn check(r: &seb_broker::engine::ExecResult) -> Option<(FailedCheck, Decision)> {
    r.as_ref().err().map(|f| (f.failed_check, f.decision))
}

#[tokio::test]
async fn no_statement_yet_fails_closed() {
    let env = statement_env(tempfile::tempdir().unwrap());
    let r = env.broker.execute(&Cert::new(60).present(), "c").await;
    assert_eq!(check(&r), Some((FailedCheck::Revocation, Decision::FailClosed)));
}

#[tokio::test]
async fn fresh_statement_admits_and_expiry_fails_closed() {
    let env = statement_env(tempfile::tempdir().unwrap());
    env.broker.apply_statement(&statement(0, 0, vec![], NOW_MS, &admission())).await.unwrap();
    assert!(env.broker.execute(&Cert::new(61).present(), "c").await.is_ok());
    // 10 s TTL: one millisecond past it, the broker fails closed.
    env.clock.set(NOW_MS + 10_001);
    let c = Cert::new(62);
    let mut req = c.request();
    req.t_exec_ms = NOW_MS + 10_001;
    let body = c.present_with(c.envelope(), req, &agent());
    assert_eq!(
        check(&env.broker.execute(&body, "c").await),
        Some((FailedCheck::Revocation, Decision::FailClosed))
    );
    // A newer statement restores service (the object is put back to the admitted state,
    // which the first execution changed).
    env.target
        .insecure_direct_write("cfg", serde_json::json!({"replicas": 3, "image": "nginx:1"}))
        .unwrap();
    env.broker
        .apply_statement(&statement(0, 0, vec![], NOW_MS + 10_000, &admission()))
        .await
        .unwrap();
    assert!(env.broker.execute(&body, "c").await.is_ok());
}

#[tokio::test]
async fn statements_carry_revocations_and_epochs_forward_only() {
    let env = statement_env(tempfile::tempdir().unwrap());
    let c = Cert::new(63);
    env.broker
        .apply_statement(&statement(0, 0, vec![c.payload.cid.clone()], NOW_MS, &admission()))
        .await
        .unwrap();
    assert_eq!(
        check(&env.broker.execute(&c.present(), "c").await),
        Some((FailedCheck::Revocation, Decision::FailClosed))
    );
    env.broker.apply_statement(&statement(1, 0, vec![], NOW_MS + 1, &admission())).await.unwrap();
    assert_eq!(
        check(&env.broker.execute(&Cert::new(64).present(), "c").await),
        Some((FailedCheck::PolicyEpoch, Decision::Readmit))
    );
    // Replaying the older statement cannot roll the epoch back.
    assert!(
        env.broker.apply_statement(&statement(0, 0, vec![], NOW_MS, &admission())).await.is_err()
    );
    assert!(
        env.broker
            .apply_statement(&statement(0, 0, vec![], NOW_MS + 2, &admission()))
            .await
            .is_err()
    );
    // Only admission's key signs statements.
    assert!(
        env.broker.apply_statement(&statement(2, 0, vec![], NOW_MS + 3, &key(51))).await.is_err()
    );
}
