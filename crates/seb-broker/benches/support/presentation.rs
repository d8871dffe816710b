//! Presentations for the broker benchmarks: a fresh certificate (test platform, `set` of
//! `obj-{i}`) and its caller proof, as the canonical JSON body of `POST /v1/executions`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use seb_core::certificate::encode_nonce;
use seb_core::digest::Digest;
use seb_core::json;
use seb_core::keys::SigningKey;
use seb_core::pipeline::sign_request;
use seb_core::types::*;
use serde_json::{Value, json};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

pub fn presentation(i: usize, issuer: &SigningKey, agent: &SigningKey) -> Vec<u8> {
    let name = format!("obj-{i}");
    let contract = Contract {
        platform: Platform::Test,
        op: "set".into(),
        target: json!({"name": name}),
        params: json!({"value": {"v": 1}}),
        constraints: vec![],
        risk_level: RiskLevel::L1,
    };
    let projection: BTreeMap<String, Value> = [("/v".to_owned(), json!(0))].into();
    let now = now_ms();
    let mut seed = [0u8; 24];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let cert = CertificatePayload {
        version: 1,
        cid: uuid::Uuid::new_v4().to_string(),
        nonce: encode_nonce(&seed),
        issuer: Issuer { name: "bench".into(), kid: issuer.kid() },
        subject: Subject { agent: "agent".into(), public_key: agent.public_key() },
        contract_digest: contract.digest().unwrap(),
        contract,
        evidence: Evidence {
            digest: Digest::of_json(&projection).unwrap(),
            projection,
            observed_at_ms: now,
            tolerance: BTreeMap::new(),
        },
        validity: Validity { not_before: now / 1000 - 5, not_after: now / 1000 + 295 },
        policy_epoch: 0,
        revocation_epoch: 0,
        cert_path: CertPath::Policy,
        attestations: vec![],
        issued_at_ms: now,
    };
    let request = ExecRequest {
        cid: cert.cid.clone(),
        nonce: cert.nonce.clone(),
        op: "set".into(),
        target: cert.contract.target.clone(),
        params: cert.contract.params.clone(),
        caller: "agent".into(),
        t_exec_ms: now,
    };
    let proof = sign_request(&request, agent).unwrap();
    json::canonical(&Presentation { certificate: cert.sign(issuer).unwrap(), request, proof })
        .unwrap()
}
