//! Fixtures for the broker's tests: keys, certificates, presentations, a broker on a real
//! SQLite store with the file-backed test double.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use seb_broker::clock::ManualClock;
use seb_broker::engine::{Broker, EngineSettings, TrustRoots};
use seb_broker::records::RecordSigner;
use seb_core::certificate::encode_nonce;
use seb_core::digest::Digest;
use seb_core::envelope::{Envelope, PayloadType};
use seb_core::json;
use seb_core::keys::{SigningKey, TrustedKeys};
use seb_core::pipeline::{Approver, ApproverRegistry, ApproverRole, PathRules, sign_request};
use seb_core::types::{
    Approval, ApprovalDecision, CertPath, CertificatePayload, Constraint, Contract, Evidence,
    ExecRequest, Issuer, Platform, Presentation, RiskLevel, Subject, Validity,
};
use seb_store::sqlite::SqliteStore;
use seb_target::test_double::TestTarget;
use serde_json::{Value, json};

pub const NOW_MS: u64 = 1_800_000_000_000;

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}
pub fn issuer() -> SigningKey {
    key(1)
}
pub fn agent() -> SigningKey {
    key(2)
}
pub fn broker_key() -> SigningKey {
    key(3)
}
pub fn validator(i: u8) -> SigningKey {
    key(10 + i)
}
pub fn human(i: u8) -> SigningKey {
    key(20 + i)
}
pub fn operator(i: u8) -> SigningKey {
    key(30 + i)
}

pub struct Env {
    pub broker: Arc<Broker>,
    pub store: Arc<SqliteStore>,
    pub target: Arc<TestTarget>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

pub fn trust() -> TrustRoots {
    let mut approvers = ApproverRegistry::default();
    for i in 0..3 {
        approvers.insert(Approver {
            name: format!("validator-{i}"),
            role: ApproverRole::Validator,
            key: validator(i).public_key(),
        });
        approvers.insert(Approver {
            name: format!("human-{i}"),
            role: ApproverRole::Human,
            key: human(i).public_key(),
        });
    }
    TrustRoots {
        issuers: [issuer().public_key()].into_iter().collect(),
        break_glass: (0..3).map(|i| operator(i).public_key()).collect::<TrustedKeys>(),
        break_glass_quorum: 2,
        approvers,
        path_rules: PathRules::default(),
    }
}

pub fn env() -> Env {
    env_in(tempfile::tempdir().unwrap())
}

pub fn env_in(dir: tempfile::TempDir) -> Env {
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("seb.db"), Default::default()).unwrap());
    let target = Arc::new(TestTarget::open(&dir.path().join("target.json")).unwrap());
    target.insecure_direct_write("cfg", json!({"replicas": 3, "image": "nginx:1"})).unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let broker = Arc::new(Broker::new(
        store.clone(),
        vec![target.clone()],
        RecordSigner::new(broker_key()),
        trust(),
        EngineSettings::default(),
        clock.clone(),
    ));
    Env { broker, store, target, clock, dir }
}

/// A certificate under construction.
#[derive(Clone)]
pub struct Cert {
    pub payload: CertificatePayload,
}

pub fn contract(params: Value, constraints: Vec<Constraint>, risk: u8) -> Contract {
    Contract {
        platform: Platform::Test,
        op: "set".into(),
        target: json!({"name": "cfg"}),
        params,
        constraints,
        risk_level: RiskLevel::new(risk).unwrap(),
    }
}

impl Cert {
    pub fn new(nonce_seed: u8) -> Self {
        Self::with_contract(
            nonce_seed,
            contract(json!({"value": {"replicas": 5, "image": "nginx:1"}}), vec![], 1),
        )
    }

    pub fn with_contract(nonce_seed: u8, contract: Contract) -> Self {
        let projection: BTreeMap<String, Value> =
            [("".to_owned(), json!({"replicas": 3, "image": "nginx:1"}))].into();
        let payload = CertificatePayload {
            version: 1,
            cid: uuid::Uuid::from_bytes([nonce_seed; 16]).to_string(),
            nonce: encode_nonce(&[nonce_seed; 24]),
            issuer: Issuer { name: "admission".into(), kid: issuer().kid() },
            subject: Subject { agent: "agent-a".into(), public_key: agent().public_key() },
            contract_digest: contract.digest().unwrap(),
            contract,
            evidence: Evidence {
                digest: Digest::of_json(&projection).unwrap(),
                projection,
                observed_at_ms: NOW_MS - 1000,
                tolerance: BTreeMap::new(),
            },
            validity: Validity { not_before: NOW_MS / 1000 - 10, not_after: NOW_MS / 1000 + 290 },
            policy_epoch: 0,
            revocation_epoch: 0,
            cert_path: CertPath::Policy,
            attestations: vec![],
            issued_at_ms: NOW_MS - 1000,
        };
        Self { payload }
    }

    /// Recompute digests after edits.
    pub fn fix(mut self) -> Self {
        self.payload.contract_digest = self.payload.contract.digest().unwrap();
        self.payload.evidence.digest = Digest::of_json(&self.payload.evidence.projection).unwrap();
        self
    }

    pub fn approve(&self, signer: &SigningKey, name: &str) -> Envelope {
        Envelope::sign(
            PayloadType::Approval,
            &Approval {
                proposal_id: "p-1".into(),
                contract_digest: self.payload.contract_digest,
                evidence_digest: self.payload.evidence.digest,
                decision: ApprovalDecision::Approve,
                approver: name.into(),
                comment: String::new(),
                at_ms: NOW_MS - 500,
            },
            signer,
        )
        .unwrap()
    }

    pub fn envelope(&self) -> Envelope {
        self.payload.sign(&issuer()).unwrap()
    }

    pub fn request(&self) -> ExecRequest {
        ExecRequest {
            cid: self.payload.cid.clone(),
            nonce: self.payload.nonce.clone(),
            op: self.payload.contract.op.clone(),
            target: self.payload.contract.target.clone(),
            params: self.payload.contract.params.clone(),
            caller: self.payload.subject.agent.clone(),
            t_exec_ms: NOW_MS,
        }
    }

    pub fn present_with(
        &self,
        env: Envelope,
        request: ExecRequest,
        signer: &SigningKey,
    ) -> Vec<u8> {
        let proof = sign_request(&request, signer).unwrap();
        json::canonical(&Presentation { certificate: env, request, proof }).unwrap()
    }

    pub fn present(&self) -> Vec<u8> {
        self.present_with(self.envelope(), self.request(), &agent())
    }
}

/// Every ledger entry parsed back to (payloadType, payload JSON).
pub async fn ledger(store: &dyn seb_store::Store) -> Vec<(String, Value)> {
    let n = store.ledger_size().await.unwrap();
    store
        .entries(0, n)
        .await
        .unwrap()
        .iter()
        .map(|e| {
            let env: Envelope = json::parse(e, usize::MAX).unwrap();
            let payload: Value =
                serde_json::from_slice(&env.insecure_payload_bytes().unwrap()).unwrap();
            (env.payload_type, payload)
        })
        .collect()
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
