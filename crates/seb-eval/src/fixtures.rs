//! Keys, trust roots, certificates, signed presentations and brokers for the experiments.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use seb_broker::clock::SystemClock;
use seb_broker::engine::{Broker, EngineSettings, TrustRoots};
use seb_broker::records::RecordSigner;
use seb_core::certificate::encode_nonce;
use seb_core::digest::Digest;
use seb_core::envelope::Envelope;
use seb_core::json;
use seb_core::keys::SigningKey;
use seb_core::pipeline::{Approver, ApproverRegistry, ApproverRole, PathRules, sign_request};
use seb_core::types::{
    CertPath, CertificatePayload, Constraint, Contract, Evidence, ExecRequest, Issuer, Platform,
    Presentation, RiskLevel, Subject, Tolerance, Validity,
};
use seb_store::Store;
use seb_target::Target;
use serde_json::{Value, json};

/// Wall clock in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A deterministic key.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}
/// The certificate issuer (admission).
pub fn issuer() -> SigningKey {
    key(1)
}
/// The agent (certificate subject, request signer).
pub fn agent() -> SigningKey {
    key(2)
}
/// The broker's record key.
pub fn broker_key() -> SigningKey {
    key(3)
}
/// Validators for the quorum path.
pub fn validator(i: u8) -> SigningKey {
    key(10 + i)
}
/// Admission's epoch-statement key (statement mode).
pub fn admission_key() -> SigningKey {
    key(50)
}

/// Trust roots: one issuer, three validators, three humans.
pub fn trust() -> TrustRoots {
    let mut approvers = ApproverRegistry::default();
    for i in 0..3u8 {
        approvers.insert(Approver {
            name: format!("validator-{i}"),
            role: ApproverRole::Validator,
            key: validator(i).public_key(),
        });
        approvers.insert(Approver {
            name: format!("human-{i}"),
            role: ApproverRole::Human,
            key: key(20 + i).public_key(),
        });
    }
    TrustRoots {
        issuers: [issuer().public_key()].into_iter().collect(),
        break_glass: [key(30).public_key(), key(31).public_key()].into_iter().collect(),
        break_glass_quorum: 2,
        approvers,
        path_rules: PathRules::default(),
    }
}

/// A broker over `store` and `target` with the system clock.
pub fn broker(
    store: Arc<dyn Store>,
    target: Arc<dyn Target>,
    settings: EngineSettings,
) -> Arc<Broker> {
    Arc::new(Broker::new(
        store,
        vec![target],
        RecordSigner::new(broker_key()),
        trust(),
        settings,
        Arc::new(SystemClock::default()),
    ))
}

/// Engine settings for the evaluation: defaults, but every pre-authentication failure is
/// recorded individually (the attack experiments count records).
pub fn settings() -> EngineSettings {
    EngineSettings { preauth_records_per_minute: 1_000_000, ..EngineSettings::default() }
}

/// Open an embedded SQLite store in `dir`.
pub fn sqlite(dir: &Path) -> Result<Arc<seb_store::sqlite::SqliteStore>> {
    let s = seb_store::sqlite::SqliteStore::open(&dir.join("seb.db"), Default::default())
        .map_err(|e| anyhow!("sqlite: {e}"))?;
    Ok(Arc::new(s))
}

/// A certificate under construction (all the fields an attack may want to bend).
#[derive(Debug, Clone)]
pub struct Cert {
    pub payload: CertificatePayload,
}

/// Seeded unique ids: `uuid` from 16 random bytes, nonce from 24.
pub fn ids(rng: &mut crate::rng::Rng) -> (String, String) {
    let mut a = [0u8; 16];
    rng.fill(&mut a);
    let mut n = [0u8; 24];
    rng.fill(&mut n);
    (uuid::Uuid::from_bytes(a).to_string(), encode_nonce(&n))
}

/// A test-double `set` contract on object `name`.
pub fn set_contract(name: &str, value: Value, constraints: Vec<Constraint>) -> Contract {
    Contract {
        platform: Platform::Test,
        op: "set".into(),
        target: json!({ "name": name }),
        params: json!({ "value": value }),
        constraints,
        risk_level: RiskLevel::L1,
    }
}

impl Cert {
    /// A policy-path certificate for `contract` with evidence `projection`, valid now.
    pub fn new(
        rng: &mut crate::rng::Rng,
        contract: Contract,
        projection: BTreeMap<String, Value>,
    ) -> Result<Self> {
        let (cid, nonce) = ids(rng);
        let now = now_ms();
        let payload = CertificatePayload {
            version: 1,
            cid,
            nonce,
            issuer: Issuer { name: "admission".into(), kid: issuer().kid() },
            subject: Subject { agent: "agent-a".into(), public_key: agent().public_key() },
            contract_digest: contract.digest().map_err(|e| anyhow!("{e}"))?,
            contract,
            evidence: Evidence {
                digest: Digest::of_json(&projection).map_err(|e| anyhow!("{e}"))?,
                projection,
                observed_at_ms: now.saturating_sub(500),
                tolerance: BTreeMap::new(),
            },
            validity: Validity { not_before: now / 1000 - 5, not_after: now / 1000 + 240 },
            policy_epoch: 0,
            revocation_epoch: 0,
            cert_path: CertPath::Policy,
            attestations: vec![],
            issued_at_ms: now.saturating_sub(500),
        };
        Ok(Self { payload })
    }

    /// Set tolerances (recomputes nothing: tolerances are not part of the evidence digest).
    pub fn with_tolerance(mut self, tol: BTreeMap<String, Tolerance>) -> Self {
        self.payload.evidence.tolerance = tol;
        self
    }

    /// Recompute the contract and evidence digests after edits.
    pub fn fix(mut self) -> Result<Self> {
        self.payload.contract_digest =
            self.payload.contract.digest().map_err(|e| anyhow!("{e}"))?;
        self.payload.evidence.digest =
            Digest::of_json(&self.payload.evidence.projection).map_err(|e| anyhow!("{e}"))?;
        Ok(self)
    }

    /// Signed by the trusted issuer.
    pub fn envelope(&self) -> Result<Envelope> {
        self.payload.sign(&issuer()).map_err(|e| anyhow!("sign: {e}"))
    }

    /// The request that matches the certificate exactly.
    pub fn request(&self) -> ExecRequest {
        ExecRequest {
            cid: self.payload.cid.clone(),
            nonce: self.payload.nonce.clone(),
            op: self.payload.contract.op.clone(),
            target: self.payload.contract.target.clone(),
            params: self.payload.contract.params.clone(),
            caller: self.payload.subject.agent.clone(),
            t_exec_ms: now_ms(),
        }
    }

    /// The legitimate presentation.
    pub fn present(&self) -> Result<Vec<u8>> {
        present_with(self.envelope()?, self.request(), &agent())
    }
}

/// A presentation of `env` with `request`, proof signed by `signer`.
pub fn present_with(env: Envelope, request: ExecRequest, signer: &SigningKey) -> Result<Vec<u8>> {
    let proof = sign_request(&request, signer).map_err(|e| anyhow!("proof: {e}"))?;
    json::canonical(&Presentation { certificate: env, request, proof })
        .map_err(|e| anyhow!("canonical: {e}"))
}

/// Every ledger entry parsed back to (payload type media string, payload JSON).
pub async fn ledger(store: &dyn Store) -> Result<Vec<(String, Value)>> {
    let n = store.ledger_size().await.map_err(|e| anyhow!("{e}"))?;
    let entries = store.entries(0, n).await.map_err(|e| anyhow!("{e}"))?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let env: Envelope = json::parse(&e, usize::MAX).context("ledger entry")?;
        let bytes = env.insecure_payload_bytes().map_err(|e| anyhow!("{e}"))?;
        let payload: Value = serde_json::from_slice(&bytes).context("ledger payload")?;
        out.push((env.payload_type, payload));
    }
    Ok(out)
}
