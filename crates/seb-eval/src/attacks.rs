//! Experiment 6: attack injection. The paper's nine classes plus eight more; every case is
//! generated from a seeded generator (randomised variants), run against a real broker
//! (embedded SQLite, in-memory test double), and counted as rejected or escaped. Each class
//! first runs one legitimate case built the same way, which must be admitted (so the
//! rejections are not an artefact of a broken fixture).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use seb_broker::engine::{Broker, EngineSettings, EpochSource, ExecResult};
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::keys::SigningKey;
use seb_core::types::{
    Approval, ApprovalDecision, CertPath, CheckKind, Constraint, Platform, RiskLevel,
};
use seb_store::{Revocation, Store};
use seb_target::test_double::TestTarget;
use seb_target::{Execution, Identity, MutationStatus, Target};
use serde_json::{Value, json};

use crate::fixtures::{self, Cert, agent, present_with};
use crate::results::AttackClass;
use crate::rng::Rng;

/// The attack classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    UncertifiedMutation,
    RequestMismatch,
    Replay,
    StalePolicyEpoch,
    StaleRevocationEpoch,
    RevocationPartition,
    MalformedCertificate,
    LiveStateDrift,
    ParameterViolation,
    CallerImpersonation,
    ApprovalReuse,
    PayloadTypeSwap,
    CanonicalisationTricks,
    OversizeMalformedBody,
    ConcurrentReplayReplicas,
    TokenReuseAfterRetirement,
    ParameterSmuggling,
}

/// Every class, the paper's nine first.
pub const ALL: [Class; 17] = [
    Class::UncertifiedMutation,
    Class::RequestMismatch,
    Class::Replay,
    Class::StalePolicyEpoch,
    Class::StaleRevocationEpoch,
    Class::RevocationPartition,
    Class::MalformedCertificate,
    Class::LiveStateDrift,
    Class::ParameterViolation,
    Class::CallerImpersonation,
    Class::ApprovalReuse,
    Class::PayloadTypeSwap,
    Class::CanonicalisationTricks,
    Class::OversizeMalformedBody,
    Class::ConcurrentReplayReplicas,
    Class::TokenReuseAfterRetirement,
    Class::ParameterSmuggling,
];

impl Class {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Class::UncertifiedMutation => "uncertified mutation",
            Class::RequestMismatch => "request/certificate mismatch",
            Class::Replay => "replay",
            Class::StalePolicyEpoch => "stale policy epoch",
            Class::StaleRevocationEpoch => "stale revocation epoch",
            Class::RevocationPartition => "revocation partition",
            Class::MalformedCertificate => "malformed certificate",
            Class::LiveStateDrift => "live-state drift",
            Class::ParameterViolation => "parameter-level violation",
            Class::CallerImpersonation => "caller impersonation",
            Class::ApprovalReuse => "approval reuse",
            Class::PayloadTypeSwap => "payloadType swap",
            Class::CanonicalisationTricks => "canonicalisation tricks",
            Class::OversizeMalformedBody => "oversize and malformed bodies",
            Class::ConcurrentReplayReplicas => "concurrent replay across replicas",
            Class::TokenReuseAfterRetirement => "token reuse after retirement",
            Class::ParameterSmuggling => "parameter smuggling in patches",
        }
    }
    fn in_paper(self) -> bool {
        ALL.iter().position(|c| *c == self).is_some_and(|i| i < 9)
    }
}

enum Outcome {
    Rejected(String),
    Escaped(String),
}

struct Env {
    store: Arc<dyn Store>,
    target: Arc<TestTarget>,
    broker: Arc<Broker>,
    /// Second replica on the same store.
    replica: Arc<Broker>,
    policy_epoch: u64,
    revocation_epoch: u64,
    _dir: tempfile::TempDir,
}

async fn env(class: Class) -> Result<Env> {
    let dir = tempfile::tempdir()?;
    let sqlite = fixtures::sqlite(dir.path())?;
    let target = Arc::new(TestTarget::in_memory());
    let store: Arc<dyn Store> = sqlite;
    let mut policy_epoch = 0;
    let mut revocation_epoch = 0;
    if class == Class::StalePolicyEpoch {
        for _ in 0..3 {
            policy_epoch = store
                .bump_policy_epoch(fixtures::now_ms(), None)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .policy_epoch;
        }
    }
    if class == Class::StaleRevocationEpoch {
        for _ in 0..2 {
            revocation_epoch = store
                .revoke(Revocation::All, fixtures::now_ms(), None)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .revocation_epoch;
        }
    }
    let broker = fixtures::broker(store.clone(), target.clone(), fixtures::settings());
    let replica = fixtures::broker(store.clone(), target.clone(), fixtures::settings());
    Ok(Env { store, target, broker, replica, policy_epoch, revocation_epoch, _dir: dir })
}

fn verdict(r: ExecResult) -> Outcome {
    match r {
        Err(rf) => Outcome::Rejected(format!("{:?}", rf.failed_check).to_lowercase()),
        Ok(e) => Outcome::Escaped(format!(
            "admitted cid {} nonce {} outcome {:?}",
            e.cid, e.nonce, e.outcome.status
        )),
    }
}

/// A legitimate certificate on a fresh object with two constraints, for epoch `(p, r)`.
fn base(env: &Env, rng: &mut Rng, i: usize, constraints: bool) -> Result<Cert> {
    let name = format!("atk-{i}-{}", rng.below(1 << 30));
    let state = json!({"replicas": 3, "image": "registry.internal/app:1"});
    env.target.insecure_direct_write(&name, state).map_err(|e| anyhow!("{e}"))?;
    let cons = if constraints {
        vec![
            Constraint {
                path: "/value/replicas".into(),
                check: CheckKind::Range,
                value: json!({"min": 1, "max": 5}),
            },
            Constraint {
                path: "/value/image".into(),
                check: CheckKind::Prefix,
                value: json!("registry.internal/"),
            },
        ]
    } else {
        vec![]
    };
    let contract = fixtures::set_contract(
        &name,
        json!({"replicas": rng.range(1, 5), "image": "registry.internal/app:2"}),
        cons,
    );
    let evidence: BTreeMap<String, Value> = [
        ("/replicas".to_owned(), json!(3)),
        ("/image".to_owned(), json!("registry.internal/app:1")),
    ]
    .into();
    let mut c = Cert::new(rng, contract, evidence)?;
    c.payload.policy_epoch = env.policy_epoch;
    c.payload.revocation_epoch = env.revocation_epoch;
    c.fix()
}

fn random_key(rng: &mut Rng) -> SigningKey {
    let mut s = [0u8; 32];
    rng.fill(&mut s);
    SigningKey::from_seed(&s)
}

fn to_value(body: &[u8]) -> Result<Value> {
    Ok(serde_json::from_slice(body)?)
}

fn set_ptr(v: &mut Value, ptr: &str, x: Value) {
    if let Some(slot) = v.pointer_mut(ptr) {
        *slot = x;
    }
}

fn approval(
    c: &Cert,
    signer: &SigningKey,
    name: &str,
    decision: ApprovalDecision,
) -> Result<Envelope> {
    Envelope::sign(
        PayloadType::Approval,
        &Approval {
            proposal_id: "p-1".into(),
            contract_digest: c.payload.contract_digest,
            evidence_digest: c.payload.evidence.digest,
            decision,
            approver: name.into(),
            comment: String::new(),
            at_ms: fixtures::now_ms().saturating_sub(100),
        },
        signer,
    )
    .map_err(|e| anyhow!("{e}"))
}

/// A quorum-path (L3) certificate with two valid validator approvals.
fn quorum(env: &Env, rng: &mut Rng, i: usize) -> Result<Cert> {
    let mut c = base(env, rng, i, false)?;
    c.payload.contract.risk_level = RiskLevel::L3;
    c.payload.cert_path = CertPath::Quorum;
    let mut c = c.fix()?;
    c.payload.attestations = vec![
        approval(&c, &fixtures::validator(0), "validator-0", ApprovalDecision::Approve)?,
        approval(&c, &fixtures::validator(1), "validator-1", ApprovalDecision::Approve)?,
    ];
    Ok(c)
}

fn exec_of(c: &Cert) -> Execution {
    let k = &c.payload;
    Execution {
        cid: k.cid.clone(),
        nonce: k.nonce.clone(),
        agent: k.subject.agent.clone(),
        risk_level: k.contract.risk_level,
        platform: Platform::Test,
        op: k.contract.op.clone(),
        target: k.contract.target.clone(),
        params: k.contract.params.clone(),
        contract: k.contract.clone(),
        evidence: k.evidence.projection.clone(),
        observed_version: Some("1".into()),
        break_glass: false,
    }
}

fn mutation_refused(r: Result<seb_target::MutationResult, seb_target::TargetError>) -> Outcome {
    match r {
        Ok(m) if m.status == MutationStatus::Applied => {
            Outcome::Escaped("target applied a mutation without a valid identity".into())
        }
        Ok(m) => Outcome::Rejected(format!(
            "platform: {}",
            m.error.unwrap_or_default().split(':').next().unwrap_or_default()
        )),
        Err(e) => Outcome::Rejected(format!("platform error: {e}")),
    }
}

/// The legitimate twin of a class's cases.
async fn baseline(class: Class, env: &Env, rng: &mut Rng) -> Result<bool> {
    let c = match class {
        Class::ApprovalReuse => quorum(env, rng, 999_999)?,
        Class::ParameterViolation | Class::ParameterSmuggling => base(env, rng, 999_999, true)?,
        _ => base(env, rng, 999_999, false)?,
    };
    let r = env.broker.execute(&c.present()?, "eval").await;
    Ok(matches!(r, Ok(ref e) if crate::broker::applied(e)))
}

#[allow(clippy::too_many_lines)]
async fn case(class: Class, env: &Env, rng: &mut Rng, i: usize) -> Result<(String, Outcome)> {
    let b = &env.broker;
    Ok(match class {
        Class::UncertifiedMutation => {
            let c = base(env, rng, i, false)?;
            match rng.below(3) {
                0 => {
                    let env_ = c.payload.sign(&random_key(rng)).map_err(|e| anyhow!("{e}"))?;
                    (
                        "signed by an untrusted key".into(),
                        verdict(
                            b.execute(&present_with(env_, c.request(), &agent())?, "eval").await,
                        ),
                    )
                }
                1 => {
                    let mut v = to_value(&c.present()?)?;
                    set_ptr(&mut v, "/certificate/signatures", json!([]));
                    (
                        "no signature".into(),
                        verdict(b.execute(&serde_json::to_vec(&v)?, "eval").await),
                    )
                }
                _ => {
                    // Direct call to the platform with a forged credential, no broker.
                    let mut tok = [0u8; 16];
                    rng.fill(&mut tok);
                    let id = Identity {
                        name: "forged".into(),
                        secret: zeroize::Zeroizing::new(
                            tok.iter().map(|b| format!("{b:02x}")).collect(),
                        ),
                        expires_at_ms: u64::MAX,
                        handle: json!({}),
                    };
                    (
                        "direct platform call with a forged token".into(),
                        mutation_refused(env.target.mutate(&exec_of(&c), &id).await),
                    )
                }
            }
        }
        Class::RequestMismatch => {
            let c = base(env, rng, i, false)?;
            let mut req = c.request();
            let v = match rng.below(5) {
                0 => {
                    req.op = "delete".into();
                    "op"
                }
                1 => {
                    req.target = json!({"name": format!("other-{}", rng.below(1000))});
                    "target"
                }
                2 => {
                    req.params = json!({"value": {"replicas": 50 + rng.below(50), "image": "registry.internal/app:2"}});
                    "params"
                }
                3 => {
                    req.cid = uuid::Uuid::from_u128(u128::from(rng.next_u64())).to_string();
                    "cid"
                }
                _ => {
                    req.nonce = fixtures::ids(rng).1;
                    "nonce"
                }
            };
            (
                format!("{v} differs"),
                verdict(b.execute(&present_with(c.envelope()?, req, &agent())?, "eval").await),
            )
        }
        Class::Replay => {
            let c = base(env, rng, i, false)?;
            let first = b.execute(&c.present()?, "eval").await;
            if !matches!(first, Ok(ref e) if crate::broker::applied(e)) {
                return Err(anyhow!("replay: the first presentation was not admitted"));
            }
            if rng.chance(1, 2) {
                ("same bytes again".into(), verdict(b.execute(&c.present()?, "eval").await))
            } else {
                // Fresh t_exec and proof, same (cid, nonce).
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                (
                    "re-signed request, same cid and nonce".into(),
                    verdict(
                        b.execute(&present_with(c.envelope()?, c.request(), &agent())?, "eval")
                            .await,
                    ),
                )
            }
        }
        Class::StalePolicyEpoch => {
            let mut c = base(env, rng, i, false)?;
            let e = loop {
                let e = rng.below(env.policy_epoch + 3);
                if e != env.policy_epoch {
                    break e;
                }
            };
            c.payload.policy_epoch = e;
            (
                if e < env.policy_epoch { "older epoch" } else { "future epoch" }.into(),
                verdict(b.execute(&c.present()?, "eval").await),
            )
        }
        Class::StaleRevocationEpoch => {
            let mut c = base(env, rng, i, false)?;
            let e = loop {
                let e = rng.below(env.revocation_epoch + 3);
                if e != env.revocation_epoch {
                    break e;
                }
            };
            c.payload.revocation_epoch = e;
            (
                if e < env.revocation_epoch { "older epoch" } else { "future epoch" }.into(),
                verdict(b.execute(&c.present()?, "eval").await),
            )
        }
        Class::RevocationPartition => {
            let c = base(env, rng, i, false)?;
            match rng.below(3) {
                0 => {
                    let part = fixtures::broker(
                        Arc::new(crate::wrappers::Partitioned::new(env.store.clone())),
                        env.target.clone(),
                        fixtures::settings(),
                    );
                    (
                        "epoch store unreachable".into(),
                        verdict(part.execute(&c.present()?, "eval").await),
                    )
                }
                1 => {
                    let settings = EngineSettings {
                        epoch_source: EpochSource::Statement {
                            admission_keys: [fixtures::admission_key().public_key()]
                                .into_iter()
                                .collect(),
                        },
                        ..fixtures::settings()
                    };
                    let sm = fixtures::broker(env.store.clone(), env.target.clone(), settings);
                    (
                        "statement mode, no statement received".into(),
                        verdict(sm.execute(&c.present()?, "eval").await),
                    )
                }
                _ => {
                    env.store
                        .revoke(Revocation::Cid(c.payload.cid.clone()), fixtures::now_ms(), None)
                        .await
                        .map_err(|e| anyhow!("{e}"))?;
                    ("revoked certificate".into(), verdict(b.execute(&c.present()?, "eval").await))
                }
            }
        }
        Class::MalformedCertificate => {
            let c = base(env, rng, i, false)?;
            let mut v = to_value(&c.present()?)?;
            let variant = match rng.below(6) {
                0 => {
                    // Flip one base64 character of the payload.
                    if let Some(Value::String(p)) = v.pointer_mut("/certificate/payload") {
                        let mut bytes = p.clone().into_bytes();
                        let k = rng.index(bytes.len());
                        if let Some(ch) = bytes.get_mut(k) {
                            *ch = if *ch == b'A' { b'B' } else { b'A' };
                        }
                        *p = String::from_utf8_lossy(&bytes).into_owned();
                    }
                    "payload byte flipped"
                }
                1 => {
                    if let Some(Value::String(s)) = v.pointer_mut("/certificate/signatures/0/sig") {
                        let cut = rng.index(s.len());
                        s.truncate(cut);
                    }
                    "signature truncated"
                }
                2 => {
                    set_ptr(&mut v, "/certificate/payload", json!("!!not base64!!"));
                    "payload not base64"
                }
                3 => {
                    let mut c2 = c.clone();
                    c2.payload.contract_digest =
                        seb_core::digest::Digest::of_json(&json!({"x": rng.below(1000)}))
                            .map_err(|e| anyhow!("{e}"))?;
                    v = to_value(&present_with(c2.envelope()?, c2.request(), &agent())?)?;
                    "issuer-signed, wrong contract digest"
                }
                4 => {
                    let mut c2 = c.clone();
                    c2.payload.evidence.digest =
                        seb_core::digest::Digest::of_json(&json!({"y": rng.below(1000)}))
                            .map_err(|e| anyhow!("{e}"))?;
                    v = to_value(&present_with(c2.envelope()?, c2.request(), &agent())?)?;
                    "issuer-signed, wrong evidence digest"
                }
                _ => {
                    let mut c2 = c.clone();
                    c2.payload.validity.not_after =
                        c2.payload.validity.not_before.saturating_sub(1 + rng.below(100));
                    v = to_value(&present_with(c2.envelope()?, c2.request(), &agent())?)?;
                    "issuer-signed, empty validity window"
                }
            };
            (variant.into(), verdict(b.execute(&serde_json::to_vec(&v)?, "eval").await))
        }
        Class::LiveStateDrift => {
            let c = base(env, rng, i, false)?;
            let name = c
                .payload
                .contract
                .target
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let (variant, state) = match rng.below(3) {
                0 => (
                    "replicas changed",
                    json!({"replicas": 4 + rng.below(10), "image": "registry.internal/app:1"}),
                ),
                1 => (
                    "image changed",
                    json!({"replicas": 3, "image": format!("registry.internal/app:{}", 3 + rng.below(10))}),
                ),
                _ => ("field removed", json!({"replicas": 3})),
            };
            env.target.insecure_direct_write(&name, state).map_err(|e| anyhow!("{e}"))?;
            (variant.into(), verdict(b.execute(&c.present()?, "eval").await))
        }
        Class::ParameterViolation => {
            let c = base(env, rng, i, true)?;
            let mut req = c.request();
            let v = match rng.below(4) {
                0 => {
                    req.params = json!({"value": {"replicas": 6 + rng.below(100), "image": "registry.internal/app:2"}});
                    "above range"
                }
                1 => {
                    req.params = json!({"value": {"replicas": -(rng.range(0, 5)), "image": "registry.internal/app:2"}});
                    "below range"
                }
                2 => {
                    req.params = json!({"value": {"replicas": 3, "image": format!("evil.example/app:{}", rng.below(9))}});
                    "prefix violated"
                }
                _ => {
                    req.params =
                        json!({"value": {"replicas": "3", "image": "registry.internal/app:2"}});
                    "type changed"
                }
            };
            (
                v.into(),
                verdict(b.execute(&present_with(c.envelope()?, req, &agent())?, "eval").await),
            )
        }
        Class::CallerImpersonation => {
            let c = base(env, rng, i, false)?;
            match rng.below(3) {
                0 => (
                    "proof by a random key".into(),
                    verdict(
                        b.execute(
                            &present_with(c.envelope()?, c.request(), &random_key(rng))?,
                            "eval",
                        )
                        .await,
                    ),
                ),
                1 => {
                    let mut req = c.request();
                    req.caller = format!("agent-{}", rng.below(100));
                    (
                        "caller name changed".into(),
                        verdict(
                            b.execute(&present_with(c.envelope()?, req, &agent())?, "eval").await,
                        ),
                    )
                }
                _ => (
                    "proof by another agent's key (not the subject's)".into(),
                    verdict(
                        b.execute(
                            &present_with(c.envelope()?, c.request(), &fixtures::key(4))?,
                            "eval",
                        )
                        .await,
                    ),
                ),
            }
        }
        Class::ApprovalReuse => {
            let mut c = quorum(env, rng, i)?;
            let other = quorum(env, rng, i + 1_000_000)?;
            let variant = match rng.below(4) {
                0 => {
                    c.payload.attestations = other.payload.attestations.clone();
                    "approvals of another contract"
                }
                1 => {
                    let a = c.payload.attestations.first().cloned();
                    c.payload.attestations = a.into_iter().cycle().take(2).collect();
                    "one approval twice"
                }
                2 => {
                    let mut e = c.clone();
                    e.payload.evidence.projection.insert("/replicas".into(), json!(99));
                    let e = e.fix()?;
                    c.payload.attestations = vec![
                        approval(
                            &e,
                            &fixtures::validator(0),
                            "validator-0",
                            ApprovalDecision::Approve,
                        )?,
                        approval(
                            &e,
                            &fixtures::validator(1),
                            "validator-1",
                            ApprovalDecision::Approve,
                        )?,
                    ];
                    "approvals bound to other evidence"
                }
                _ => {
                    c.payload.attestations = vec![
                        approval(
                            &c,
                            &fixtures::validator(0),
                            "validator-0",
                            ApprovalDecision::Approve,
                        )?,
                        approval(
                            &c,
                            &fixtures::validator(1),
                            "validator-1",
                            ApprovalDecision::Deny,
                        )?,
                    ];
                    "one approval is a denial"
                }
            };
            (variant.into(), verdict(b.execute(&c.present()?, "eval").await))
        }
        Class::PayloadTypeSwap => {
            let c = base(env, rng, i, false)?;
            let mut v = to_value(&c.present()?)?;
            let variant = match rng.below(3) {
                0 => {
                    let t = *rng
                        .pick(&[
                            PayloadType::Approval,
                            PayloadType::Request,
                            PayloadType::Epoch,
                            PayloadType::Decision,
                        ])
                        .unwrap_or(&PayloadType::Approval);
                    set_ptr(&mut v, "/certificate/payloadType", json!(t.media_type()));
                    "certificate relabelled"
                }
                1 => {
                    // The issuer's signature on the same bytes under another type.
                    let bytes =
                        seb_core::json::canonical(&c.payload).map_err(|e| anyhow!("{e}"))?;
                    let e =
                        Envelope::sign_bytes(PayloadType::Approval, &bytes, &[&fixtures::issuer()]);
                    let mut ev = serde_json::to_value(&e)?;
                    set_ptr(&mut ev, "/payloadType", json!(PayloadType::Certificate.media_type()));
                    set_ptr(&mut v, "/certificate", ev);
                    "signature made for another payload type"
                }
                _ => {
                    // An approval envelope (validly signed by a validator) as the certificate.
                    let a = approval(
                        &c,
                        &fixtures::validator(0),
                        "validator-0",
                        ApprovalDecision::Approve,
                    )?;
                    set_ptr(&mut v, "/certificate", serde_json::to_value(&a)?);
                    "approval presented as a certificate"
                }
            };
            (variant.into(), verdict(b.execute(&serde_json::to_vec(&v)?, "eval").await))
        }
        Class::CanonicalisationTricks => {
            let c = base(env, rng, i, false)?;
            let body = String::from_utf8(c.present()?)?;
            let evil = format!(
                "{{\"value\":{{\"replicas\":{},\"image\":\"evil/app\"}}}}",
                100 + rng.below(100)
            );
            let (variant, text) = match rng.below(7) {
                0 => (
                    "duplicate key in request (second value differs)",
                    body.replacen("\"params\":", &format!("\"params\":{evil},\"params\":"), 1),
                ),
                1 => (
                    "duplicate key via unicode escape",
                    body.replacen(
                        "\"params\":",
                        &format!("\"p\\u0061rams\":{evil},\"params\":"),
                        1,
                    ),
                ),
                2 => ("UTF-8 byte order mark", format!("\u{feff}{body}")),
                3 => (
                    "number out of range (1e400)",
                    body.replacen("\"t_exec_ms\":", "\"t_exec_ms\":1e400,\"x_t\":", 1),
                ),
                4 => (
                    "lone surrogate in caller",
                    body.replacen("\"caller\":\"", "\"caller\":\"\\ud800", 1),
                ),
                5 => {
                    ("trailing garbage after the document", format!("{body} {{\"request\":{{}}}}"))
                }
                _ => (
                    "duplicate top-level request",
                    body.replacen(
                        "{\"certificate\"",
                        &format!("{{\"request\":{{\"params\":{evil}}},\"certificate\""),
                        1,
                    ),
                ),
            };
            (variant.into(), verdict(b.execute(text.as_bytes(), "eval").await))
        }
        Class::OversizeMalformedBody => {
            let c = base(env, rng, i, false)?;
            let body = c.present()?;
            let limit = b.settings().body_limit;
            let (variant, bytes): (&str, Vec<u8>) = match rng.below(6) {
                0 => {
                    let mut v = to_value(&body)?;
                    set_ptr(&mut v, "/request/caller", json!("a".repeat(limit + rng.index(1000))));
                    ("over the body limit", serde_json::to_vec(&v)?)
                }
                1 => {
                    let d = 200 + rng.index(20_000);
                    ("deep nesting", format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes())
                }
                2 => {
                    let mut v = vec![0u8; 1 + rng.index(4096)];
                    rng.fill(&mut v);
                    ("random bytes", v)
                }
                3 => ("empty body", Vec::new()),
                4 => {
                    let cut = rng.index(body.len());
                    ("truncated", body.get(..cut).map(<[u8]>::to_vec).unwrap_or_default())
                }
                _ => (
                    "wrong JSON type",
                    rng.pick(&["[]", "42", "\"x\"", "null", "{}"])
                        .copied()
                        .unwrap_or("[]")
                        .as_bytes()
                        .to_vec(),
                ),
            };
            (variant.into(), verdict(b.execute(&bytes, "eval").await))
        }
        Class::ConcurrentReplayReplicas => {
            let c = base(env, rng, i, false)?;
            let body = c.present()?;
            let body2 = if rng.chance(1, 2) {
                body.clone()
            } else {
                present_with(c.envelope()?, c.request(), &agent())?
            };
            let (r1, r2) = tokio::join!(
                env.broker.execute(&body, "eval"),
                env.replica.execute(&body2, "eval")
            );
            let muts = env
                .target
                .mutations()
                .map_err(|e| anyhow!("{e}"))?
                .iter()
                .filter(|m| m.cid == c.payload.cid)
                .count();
            let ok = usize::from(r1.is_ok()) + usize::from(r2.is_ok());
            let o = if ok > 1 || muts > 1 {
                Outcome::Escaped(format!("{ok} admissions, {muts} mutations"))
            } else {
                match (r1, r2) {
                    (Err(rf), _) | (_, Err(rf)) => {
                        Outcome::Rejected(format!("{:?}", rf.failed_check).to_lowercase())
                    }
                    _ => Outcome::Escaped("unreachable".into()),
                }
            };
            ("same certificate to two brokers at once".into(), o)
        }
        Class::TokenReuseAfterRetirement => {
            let c = base(env, rng, i, false)?;
            let t = &env.target;
            let mut exec = exec_of(&c);
            let name =
                exec.target.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let obs = t.observe(&exec.observe_request()).await.map_err(|e| anyhow!("{e}"))?;
            exec.observed_version = obs.version;
            let id = t.mint(&exec).await.map_err(|e| anyhow!("{e}"))?;
            match rng.below(3) {
                0 => {
                    let first = t.mutate(&exec, &id).await.map_err(|e| anyhow!("{e}"))?;
                    let copy = Identity {
                        name: id.name.clone(),
                        secret: id.secret.clone(),
                        expires_at_ms: id.expires_at_ms,
                        handle: id.handle.clone(),
                    };
                    t.retire(&exec, id).await.map_err(|e| anyhow!("{e}"))?;
                    if first.status != MutationStatus::Applied {
                        return Err(anyhow!("token reuse: the legitimate use failed"));
                    }
                    // Reuse the retired token for the next version of the same object.
                    exec.observed_version = t
                        .observe(&exec.observe_request())
                        .await
                        .map_err(|e| anyhow!("{e}"))?
                        .version;
                    ("retired token reused".into(), mutation_refused(t.mutate(&exec, &copy).await))
                }
                1 => {
                    let other = format!("{name}-other");
                    t.insecure_direct_write(&other, json!({"replicas": 1}))
                        .map_err(|e| anyhow!("{e}"))?;
                    let mut e2 = exec.clone();
                    e2.target = json!({"name": other});
                    e2.observed_version = Some("1".into());
                    let r = mutation_refused(t.mutate(&e2, &id).await);
                    t.retire(&exec, id).await.map_err(|e| anyhow!("{e}"))?;
                    ("token used on another object".into(), r)
                }
                _ => {
                    let mut e2 = exec.clone();
                    e2.op = "delete".into();
                    let r = mutation_refused(t.mutate(&e2, &id).await);
                    t.retire(&exec, id).await.map_err(|e| anyhow!("{e}"))?;
                    ("token used for another operation".into(), r)
                }
            }
        }
        Class::ParameterSmuggling => {
            let c = base(env, rng, i, true)?;
            let mut req = c.request();
            let v = match rng.below(4) {
                0 => {
                    req.params = json!({"value": {"replicas": 3, "image": "registry.internal/app:2", "privileged": true}});
                    "extra field inside the patch value"
                }
                1 => {
                    req.params = json!({"value": {"replicas": 3, "image": "registry.internal/app:2"}, "target": {"name": "kube-system"}});
                    "extra top-level parameter"
                }
                2 => {
                    req.params = json!({"value": {"replicas": 3, "image": "registry.internal/app:2", "image/": "evil/app"}});
                    "key that looks like a pointer"
                }
                _ => {
                    req.params = json!({"value": [{"replicas": 3, "image": "registry.internal/app:2"}, {"replicas": 500}]});
                    "array instead of object"
                }
            };
            (
                v.into(),
                verdict(b.execute(&present_with(c.envelope()?, req, &agent())?, "eval").await),
            )
        }
    })
}

/// Run `n` cases of one class.
pub async fn run_class(class: Class, n: usize, seed: u64) -> Result<AttackClass> {
    let env = env(class).await?;
    let mut rng = Rng::new(seed);
    let mut out = AttackClass {
        class: class.name().to_owned(),
        from_paper: class.in_paper(),
        baseline_admitted: baseline(class, &env, &mut rng).await?,
        ..AttackClass::default()
    };
    for i in 0..n {
        let (variant, o) = case(class, &env, &mut rng, i).await?;
        out.cases += 1;
        *out.variants.entry(variant.clone()).or_default() += 1;
        match o {
            Outcome::Rejected(check) => {
                out.rejected += 1;
                *out.failed_checks.entry(check).or_default() += 1;
            }
            Outcome::Escaped(detail) => {
                out.escaped += 1;
                if out.escapes.len() < 20 {
                    out.escapes.push(format!("case {i} ({variant}): {detail}"));
                }
            }
        }
    }
    // No minted token may outlive its execution.
    let live = env.target.live_tokens().map_err(|e| anyhow!("{e}"))?;
    if live > 0 {
        out.escapes.push(format!("{live} platform tokens still live after the class"));
    }
    Ok(out)
}
