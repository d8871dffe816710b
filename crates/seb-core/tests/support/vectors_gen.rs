//! Golden-vector generator and loader for `crates/seb-core/testdata/`.
//!
//! One source, two users: `cargo xtask vectors` includes this file with `#[path]` and writes
//! the files; `tests/vectors.rs` includes it too, re-derives every stored case from its
//! inputs and regenerates everything in memory to compare byte for byte (generator drift).
//! The file format is described in `crates/seb-core/testdata/README.md`.
//!
//! Everything is deterministic: keys come from fixed seeds, Ed25519 signatures are
//! deterministic, and the clock is a constant. The code is panic-free (it is also compiled
//! into the `xtask` binary under the workspace lints).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use seb_core::certificate::{CertificateTrust, encode_nonce};
use seb_core::digest::Digest;
use seb_core::envelope::{Envelope, EnvelopeError, PayloadType, pae};
use seb_core::json;
use seb_core::keys::{KeyError, PublicKey, SigningKey, TrustedKeys};
use seb_core::pipeline::{
    Admissible, Approver, ApproverRegistry, ApproverRole, BrokerPolicy, EpochView, Observation,
    PathRule, PathRules, Presented, Rejection, ScopeCheck, Snapshot, evaluate, sign_request,
};
use seb_core::types::{
    Approval, ApprovalDecision, CertPath, CertificatePayload, CheckKind, Constraint, Contract,
    Decision, Evidence, ExecRequest, FailedCheck, Issuer, Platform, Presentation, RiskLevel,
    Subject, Tolerance, Validity,
};

/// Errors of the generator and loader.
pub type GenResult<T> = Result<T, Box<dyn Error>>;

/// Schema tag of a pipeline case file.
pub const CASE_SCHEMA: &str = "seb-pipeline-vector/1";
/// The fixed broker clock of every case (ms). 2027-01-15T08:00:00Z.
pub const NOW_MS: u64 = 1_800_000_000_000;
const NOW_S: u64 = NOW_MS / 1000;
/// The body limit of the default broker configuration.
pub const MAX_BODY: usize = 64 * 1024;
const CID: &str = "01942f6e-3c1a-7b2e-9d4f-5a6b7c8d9e0f";
const OTHER_CID: &str = "01942f6e-3c1a-7b2e-9d4f-000000000000";

/// One generated file, path relative to `crates/seb-core/testdata/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The directories (relative to testdata/) the generator owns completely: any file in them
/// that the generator does not produce is stale.
pub const OWNED_DIRS: &[&str] = &["pipeline", "jcs", "jcs/input", "jcs/output"];
/// Files at the top of testdata/ that the generator owns.
pub const OWNED_TOP_FILES: &[&str] = &["keys.json", "envelopes.json"];

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// Every named test key. Seeds are `SHA-256("seb-core test vectors v1 key " + name)`.
pub const KEY_NAMES: &[&str] = &[
    "issuer",
    "rogue-issuer",
    "agent-1",
    "agent-2",
    "validator-1",
    "validator-2",
    "validator-3",
    "human-1",
    "human-2",
    "operator-1",
    "operator-2",
    "operator-3",
    "bg-approver",
    "mallory",
];

/// The deterministic seed of a named key.
pub fn seed(name: &str) -> [u8; 32] {
    Sha256::digest(format!("seb-core test vectors v1 key {name}").as_bytes()).into()
}

/// The deterministic signing key of a name.
pub fn key(name: &str) -> SigningKey {
    SigningKey::from_seed(&seed(name))
}

fn pk_b64(name: &str) -> String {
    key(name).public_key().to_base64()
}

/// The canonical encoding of the identity point (small order 1).
pub const IDENTITY_POINT: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};

/// A "signature" that verifies under non-strict rules for ANY message when the public key is
/// the identity point: R = identity, S = 0 (so [S]B = R + [k]A holds trivially).
pub fn small_order_forgery() -> String {
    let mut sig = [0u8; 64];
    for (d, s) in sig.iter_mut().zip(IDENTITY_POINT) {
        *d = s;
    }
    STANDARD.encode(sig)
}

/// Key id of raw public-key bytes (works for keys [`PublicKey`] refuses to hold).
pub fn raw_kid(bytes: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The Ed25519 group order L, little endian.
const GROUP_ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Make a valid signature non-canonical: S := S + L (still < 2^256, same value mod L).
pub fn add_group_order_to_s(sig_b64: &str) -> GenResult<String> {
    let mut raw = STANDARD.decode(sig_b64)?;
    if raw.len() != 64 {
        return Err("signature is not 64 bytes".into());
    }
    let mut carry = 0u16;
    for (b, l) in raw.iter_mut().skip(32).zip(GROUP_ORDER_LE) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    if carry != 0 {
        return Err("S + L overflowed 256 bits".into());
    }
    Ok(STANDARD.encode(raw))
}

/// Flip one bit of a base64 signature.
fn flip_sig_bit(sig_b64: &str, byte: usize, bit: u8) -> GenResult<String> {
    let mut raw = STANDARD.decode(sig_b64)?;
    let b = raw.get_mut(byte).ok_or("signature too short")?;
    *b ^= 1 << bit;
    Ok(STANDARD.encode(raw))
}

// ---------------------------------------------------------------------------------------
// Broker configuration, scope and snapshot (generator side)
// ---------------------------------------------------------------------------------------

/// The broker configuration of one case.
#[derive(Debug, Clone)]
pub struct BrokerCfg {
    pub issuers: Vec<&'static str>,
    pub break_glass: Vec<&'static str>,
    pub break_glass_quorum: usize,
    pub max_body: usize,
    /// (approver name, role, key name)
    pub approvers: Vec<(&'static str, ApproverRole, &'static str)>,
    pub path_rules: PathRules,
    pub skew_ms: u64,
    pub max_validity_s: u64,
}

impl Default for BrokerCfg {
    fn default() -> Self {
        Self {
            issuers: vec!["issuer"],
            break_glass: vec!["operator-1", "operator-2", "operator-3"],
            break_glass_quorum: 2,
            max_body: MAX_BODY,
            approvers: vec![
                ("validator-1", ApproverRole::Validator, "validator-1"),
                ("validator-2", ApproverRole::Validator, "validator-2"),
                ("validator-3", ApproverRole::Validator, "validator-3"),
                ("human-1", ApproverRole::Human, "human-1"),
                ("human-2", ApproverRole::Human, "human-2"),
                ("bg-approver", ApproverRole::BreakGlass, "bg-approver"),
            ],
            path_rules: PathRules::default(),
            skew_ms: 30_000,
            max_validity_s: 300,
        }
    }
}

impl BrokerCfg {
    fn to_json(&self) -> GenResult<Value> {
        let approvers: Vec<Value> = self
            .approvers
            .iter()
            .map(|(name, role, k)| json!({"name": name, "role": role, "public_key": pk_b64(k)}))
            .collect();
        Ok(json!({
            "issuer_keys": self.issuers.iter().map(|k| pk_b64(k)).collect::<Vec<_>>(),
            "break_glass_keys": self.break_glass.iter().map(|k| pk_b64(k)).collect::<Vec<_>>(),
            "break_glass_quorum": self.break_glass_quorum,
            "max_body_bytes": self.max_body,
            "approvers": approvers,
            "path_rules": json::to_value(&self.path_rules.levels)?,
            "skew_ms": self.skew_ms,
            "max_validity_s": self.max_validity_s,
        }))
    }
}

const ALL_CHECKS: [CheckKind; 6] = [
    CheckKind::Eq,
    CheckKind::In,
    CheckKind::Range,
    CheckKind::Prefix,
    CheckKind::CidrWithin,
    CheckKind::MaxLen,
];

/// A change applied to a value while a scenario is built.
type Mutator<T> = Box<dyn Fn(&mut T)>;

/// What the live observation is in a case.
pub enum ObsCfg {
    /// The live projection equals the certificate's evidence projection.
    SameAsEvidence,
    /// The evidence projection with a change applied.
    Changed(Mutator<BTreeMap<String, Value>>),
    /// The live state could not be read.
    Unreadable(&'static str),
}

/// The state snapshot of one case.
pub struct SnapCfg {
    pub now_ms: u64,
    pub epochs: Option<EpochView>,
    pub already_reserved: bool,
    pub observation: ObsCfg,
    pub version: Option<&'static str>,
}

impl Default for SnapCfg {
    fn default() -> Self {
        Self {
            now_ms: NOW_MS,
            epochs: Some(EpochView {
                policy_epoch: 7,
                revocation_epoch: 3,
                revoked_cids: BTreeSet::new(),
                revoked_agents: BTreeSet::new(),
                as_of_ms: NOW_MS - 1_000,
                max_staleness_ms: 10_000,
            }),
            already_reserved: false,
            observation: ObsCfg::SameAsEvidence,
            version: Some("4711"),
        }
    }
}

fn epochs_json(e: &EpochView) -> Value {
    json!({
        "policy_epoch": e.policy_epoch,
        "revocation_epoch": e.revocation_epoch,
        "revoked_cids": e.revoked_cids,
        "revoked_agents": e.revoked_agents,
        "as_of_ms": e.as_of_ms,
        "max_staleness_ms": e.max_staleness_ms,
    })
}

// ---------------------------------------------------------------------------------------
// Scenario: a valid presentation plus the knobs each case turns
// ---------------------------------------------------------------------------------------

type Hook<T> = Option<Mutator<T>>;
type TryHook<T> = Option<Box<dyn Fn(&mut T) -> GenResult<()>>>;
type BytesHook = Option<Box<dyn Fn(Vec<u8>) -> GenResult<Vec<u8>>>>;

/// One approval to attach to the certificate.
pub struct ApprovalSpec {
    /// Key that signs the approval envelope.
    pub signer: &'static str,
    /// Approver name written in the approval.
    pub approver: &'static str,
    pub decision: ApprovalDecision,
    pub contract_digest: Option<Digest>,
    pub evidence_digest: Option<Digest>,
    pub payload_type: PayloadType,
    pub envelope_hook: TryHook<Envelope>,
}

impl ApprovalSpec {
    /// An approval by `name`, signed with the key of the same name.
    pub fn by(name: &'static str) -> Self {
        Self {
            signer: name,
            approver: name,
            decision: ApprovalDecision::Approve,
            contract_digest: None,
            evidence_digest: None,
            payload_type: PayloadType::Approval,
            envelope_hook: None,
        }
    }

    fn build(&self, cert: &CertificatePayload) -> GenResult<Envelope> {
        let approval = Approval {
            proposal_id: "prop-0001".into(),
            contract_digest: self.contract_digest.unwrap_or(cert.contract_digest),
            evidence_digest: self.evidence_digest.unwrap_or(cert.evidence.digest),
            decision: self.decision,
            approver: self.approver.into(),
            comment: format!("reviewed by {}", self.approver),
            at_ms: NOW_MS - 120_000,
        };
        let mut env = Envelope::sign(self.payload_type, &approval, &key(self.signer))?;
        if let Some(h) = &self.envelope_hook {
            h(&mut env)?;
        }
        Ok(env)
    }
}

/// A scenario. [`Scenario::default`] is an admissible policy-path (L2) scale of a Deployment.
pub struct Scenario {
    pub broker: BrokerCfg,
    pub enforceable: Vec<CheckKind>,
    pub snap: SnapCfg,
    /// The certificate payload; `contract_digest` and `evidence.digest` are recomputed.
    pub cert: CertificatePayload,
    pub approvals: Vec<ApprovalSpec>,
    /// Applied after digests and attestations are filled in.
    pub cert_hook: Hook<CertificatePayload>,
    /// Applied to the payload as a JSON value (for contents the typed payload cannot hold).
    pub cert_value_hook: Hook<Value>,
    /// Applied to the canonical payload bytes before signing.
    pub cert_bytes_hook: BytesHook,
    pub cert_signers: Vec<&'static str>,
    pub cert_payload_type: PayloadType,
    /// Applied to the signed certificate envelope.
    pub envelope_hook: TryHook<Envelope>,
    /// Applied to the request derived from the certificate (the proof covers the result).
    pub request_hook: Hook<ExecRequest>,
    /// Key that signs the proof.
    pub proof_key: &'static str,
    /// When set, the proof is computed over the request after this hook instead.
    pub proof_over_hook: Hook<ExecRequest>,
    /// Applied to the proof signature.
    pub proof_hook: TryHook<String>,
    /// Applied to the presentation as a JSON value.
    pub presentation_hook: Hook<Value>,
    /// Applied to the final presentation bytes.
    pub body_hook: BytesHook,
}

fn base_certificate() -> CertificatePayload {
    let nonce_bytes: [u8; 32] = Sha256::digest(b"seb-core test vectors v1 nonce").into();
    let mut nonce24 = [0u8; 24];
    for (d, s) in nonce24.iter_mut().zip(nonce_bytes) {
        *d = s;
    }
    let projection: BTreeMap<String, Value> = [
        ("/spec/replicas".to_owned(), json!(2)),
        ("/metadata/labels/app".to_owned(), json!("api")),
    ]
    .into();
    CertificatePayload {
        version: 1,
        cid: CID.into(),
        nonce: encode_nonce(&nonce24),
        issuer: Issuer { name: "admission-1".into(), kid: key("issuer").kid() },
        subject: Subject { agent: "agent-1".into(), public_key: key("agent-1").public_key() },
        contract: Contract {
            platform: Platform::Kubernetes,
            op: "scale".into(),
            target: json!({
                "cluster": "prod-eu-1",
                "api_version": "apps/v1",
                "kind": "Deployment",
                "namespace": "payments",
                "name": "api"
            }),
            params: json!({"spec": {"replicas": 3}}),
            constraints: vec![],
            risk_level: RiskLevel::L2,
        },
        contract_digest: Digest([0; 32]),
        evidence: Evidence {
            digest: Digest([0; 32]),
            projection,
            observed_at_ms: NOW_MS - 90_000,
            tolerance: BTreeMap::new(),
        },
        validity: Validity { not_before: NOW_S - 60, not_after: NOW_S + 240 },
        policy_epoch: 7,
        revocation_epoch: 3,
        cert_path: CertPath::Policy,
        attestations: vec![],
        issued_at_ms: NOW_MS - 60_000,
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            broker: BrokerCfg::default(),
            enforceable: ALL_CHECKS.to_vec(),
            snap: SnapCfg::default(),
            cert: base_certificate(),
            approvals: vec![],
            cert_hook: None,
            cert_value_hook: None,
            cert_bytes_hook: None,
            cert_signers: vec!["issuer"],
            cert_payload_type: PayloadType::Certificate,
            envelope_hook: None,
            request_hook: None,
            proof_key: "agent-1",
            proof_over_hook: None,
            proof_hook: None,
            presentation_hook: None,
            body_hook: None,
        }
    }
}

impl Scenario {
    fn quorum(level: RiskLevel, approvers: &[&'static str]) -> Self {
        let mut s = Self::default();
        s.cert.contract.risk_level = level;
        s.cert.cert_path = CertPath::Quorum;
        s.approvals = approvers.iter().map(|a| ApprovalSpec::by(a)).collect();
        s
    }

    fn human(approvers: &[&'static str]) -> Self {
        let mut s = Self::quorum(RiskLevel::L4, approvers);
        s.cert.cert_path = CertPath::Human;
        s
    }

    fn break_glass(operators: &[&'static str]) -> Self {
        let mut s = Self::default();
        s.cert.contract.risk_level = RiskLevel::L4;
        s.cert.cert_path = CertPath::BreakGlass;
        s.cert.issuer = Issuer { name: "break-glass".into(), kid: key("operator-1").kid() };
        s.cert_signers = operators.to_vec();
        s
    }

    fn constrained(params: Value, constraint: Constraint, requested: Value) -> Self {
        let mut s = Self::default();
        s.cert.contract.params = params;
        s.cert.contract.constraints = vec![constraint];
        s.request_hook = Some(Box::new(move |r| r.params = requested.clone()));
        s
    }

    /// Build the case's inputs: the certificate payload (as signed), the presentation bytes,
    /// the broker configuration and the snapshot, all as JSON.
    pub fn build(&self) -> GenResult<Built> {
        let mut cert = self.cert.clone();
        cert.contract_digest = cert.contract.digest()?;
        cert.evidence.digest = Digest::of_json(&cert.evidence.projection)?;
        let mut attestations = Vec::with_capacity(self.approvals.len());
        for a in &self.approvals {
            attestations.push(a.build(&cert)?);
        }
        cert.attestations = attestations;
        if let Some(h) = &self.cert_hook {
            h(&mut cert);
        }
        let mut payload_value = json::to_value(&cert)?;
        if let Some(h) = &self.cert_value_hook {
            h(&mut payload_value);
        }
        let mut payload_bytes = json::canonical(&payload_value)?;
        if let Some(h) = &self.cert_bytes_hook {
            payload_bytes = h(payload_bytes)?;
        }
        let signers: Vec<SigningKey> = self.cert_signers.iter().map(|n| key(n)).collect();
        let refs: Vec<&SigningKey> = signers.iter().collect();
        let mut envelope = Envelope::sign_bytes(self.cert_payload_type, &payload_bytes, &refs);
        if let Some(h) = &self.envelope_hook {
            h(&mut envelope)?;
        }

        let mut request = ExecRequest {
            cid: cert.cid.clone(),
            nonce: cert.nonce.clone(),
            op: cert.contract.op.clone(),
            target: cert.contract.target.clone(),
            params: cert.contract.params.clone(),
            caller: cert.subject.agent.clone(),
            t_exec_ms: self.snap.now_ms - 500,
        };
        if let Some(h) = &self.request_hook {
            h(&mut request);
        }
        let mut signed_request = request.clone();
        if let Some(h) = &self.proof_over_hook {
            h(&mut signed_request);
        }
        let mut proof = sign_request(&signed_request, &key(self.proof_key))?;
        if let Some(h) = &self.proof_hook {
            h(&mut proof.sig)?;
        }
        let presentation = Presentation { certificate: envelope, request, proof };
        let mut pv = json::to_value(&presentation)?;
        if let Some(h) = &self.presentation_hook {
            h(&mut pv);
        }
        let mut body = serde_json::to_vec_pretty(&pv)?;
        if let Some(h) = &self.body_hook {
            body = h(body)?;
        }

        let observation = match &self.snap.observation {
            ObsCfg::SameAsEvidence | ObsCfg::Changed(_) => {
                let mut live = cert.evidence.projection.clone();
                if let ObsCfg::Changed(f) = &self.snap.observation {
                    f(&mut live);
                }
                json!({"projection": live, "version": self.snap.version})
            }
            ObsCfg::Unreadable(why) => json!({"unreadable": why}),
        };
        let snapshot = json!({
            "now_ms": self.snap.now_ms,
            "epochs": self.snap.epochs.as_ref().map(epochs_json),
            "already_reserved": self.snap.already_reserved,
            "observation": observation,
        });
        let scope = json!({"enforceable_checks": self.enforceable});
        let certificate_payload = json::parse_value(&payload_bytes, usize::MAX).ok();
        Ok(Built { body, broker: self.broker.to_json()?, scope, snapshot, certificate_payload })
    }
}

/// A built scenario.
#[derive(Debug, Clone)]
pub struct Built {
    pub body: Vec<u8>,
    pub broker: Value,
    pub scope: Value,
    pub snapshot: Value,
    /// The signed certificate payload, when it is strict JSON (informational).
    pub certificate_payload: Option<Value>,
}

// ---------------------------------------------------------------------------------------
// Loader: case JSON → pipeline inputs (used by the generator to check each case's intent and
// by the test to re-derive stored cases)
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproverJson {
    name: String,
    role: ApproverRole,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrokerJson {
    issuer_keys: Vec<String>,
    break_glass_keys: Vec<String>,
    break_glass_quorum: usize,
    max_body_bytes: usize,
    approvers: Vec<ApproverJson>,
    path_rules: [Option<PathRule>; 6],
    skew_ms: u64,
    max_validity_s: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EpochsJson {
    policy_epoch: u64,
    revocation_epoch: u64,
    revoked_cids: BTreeSet<String>,
    revoked_agents: BTreeSet<String>,
    as_of_ms: u64,
    max_staleness_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, untagged)]
enum ObservationJson {
    Live { projection: BTreeMap<String, Value>, version: Option<String> },
    Unreadable { unreadable: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotJson {
    now_ms: u64,
    epochs: Option<EpochsJson>,
    already_reserved: bool,
    observation: ObservationJson,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeJson {
    enforceable_checks: Vec<CheckKind>,
}

/// A broker configuration loaded from a case.
#[derive(Debug)]
pub struct LoadedBroker {
    issuers: TrustedKeys,
    break_glass: TrustedKeys,
    break_glass_quorum: usize,
    limit: usize,
    approvers: ApproverRegistry,
    path_rules: PathRules,
    skew_ms: u64,
    max_validity_s: u64,
}

fn parse_keys(keys: &[String]) -> GenResult<TrustedKeys> {
    let mut t = TrustedKeys::new();
    for k in keys {
        t.insert(PublicKey::from_base64(k)?);
    }
    Ok(t)
}

impl LoadedBroker {
    /// Load from the `broker` object of a case. Refuses weak or malformed keys.
    pub fn from_json(v: &Value) -> GenResult<Self> {
        let b: BrokerJson = json::from_value(v.clone())?;
        let mut approvers = ApproverRegistry::default();
        for a in b.approvers {
            let key = PublicKey::from_base64(&a.public_key)?;
            approvers.insert(Approver { name: a.name, role: a.role, key });
        }
        Ok(Self {
            issuers: parse_keys(&b.issuer_keys)?,
            break_glass: parse_keys(&b.break_glass_keys)?,
            break_glass_quorum: b.break_glass_quorum,
            limit: b.max_body_bytes,
            approvers,
            path_rules: PathRules { levels: b.path_rules },
            skew_ms: b.skew_ms,
            max_validity_s: b.max_validity_s,
        })
    }

    /// The pipeline's view of this configuration.
    pub fn policy(&self) -> BrokerPolicy<'_> {
        BrokerPolicy {
            trust: CertificateTrust {
                issuers: &self.issuers,
                break_glass: &self.break_glass,
                break_glass_quorum: self.break_glass_quorum,
                limit: self.limit,
            },
            approvers: &self.approvers,
            path_rules: &self.path_rules,
            skew_ms: self.skew_ms,
            max_validity_s: self.max_validity_s,
        }
    }
}

/// The scope rule of the vectors: every constraint's check must be enforceable.
#[derive(Debug, Clone)]
pub struct EnforceableChecks(pub Vec<CheckKind>);

impl ScopeCheck for EnforceableChecks {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        match contract.constraints.iter().find(|c| !self.0.contains(&c.check)) {
            Some(c) => Err(format!("no enforcement point for the constraint on `{}`", c.path)),
            None => Ok(()),
        }
    }
}

impl EnforceableChecks {
    /// Load from the `scope` object of a case.
    pub fn from_json(v: &Value) -> GenResult<Self> {
        let s: ScopeJson = json::from_value(v.clone())?;
        Ok(Self(s.enforceable_checks))
    }
}

/// A snapshot loaded from a case.
#[derive(Debug)]
pub struct LoadedSnapshot {
    now_ms: u64,
    epochs: Option<EpochView>,
    already_reserved: bool,
    observation: Result<Observation, String>,
}

impl LoadedSnapshot {
    /// Load from the `snapshot` object of a case.
    pub fn from_json(v: &Value) -> GenResult<Self> {
        let s: SnapshotJson = json::from_value(v.clone())?;
        Ok(Self {
            now_ms: s.now_ms,
            epochs: s.epochs.map(|e| EpochView {
                policy_epoch: e.policy_epoch,
                revocation_epoch: e.revocation_epoch,
                revoked_cids: e.revoked_cids,
                revoked_agents: e.revoked_agents,
                as_of_ms: e.as_of_ms,
                max_staleness_ms: e.max_staleness_ms,
            }),
            already_reserved: s.already_reserved,
            observation: match s.observation {
                ObservationJson::Live { projection, version } => {
                    Ok(Observation { projection, version })
                }
                ObservationJson::Unreadable { unreadable } => Err(unreadable),
            },
        })
    }

    /// The pipeline's view of this snapshot.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            now_ms: self.now_ms,
            epochs: self.epochs.as_ref(),
            already_reserved: self.already_reserved,
            observation: self.observation.as_ref().map_err(String::as_str),
        }
    }
}

/// Run the pure pipeline on a case's inputs.
pub fn run_case(
    body: &[u8],
    broker: &Value,
    scope: &Value,
    snapshot: &Value,
) -> GenResult<Result<Admissible, Rejection>> {
    let broker = LoadedBroker::from_json(broker)?;
    let scope = EnforceableChecks::from_json(scope)?;
    let snap = LoadedSnapshot::from_json(snapshot)?;
    Ok(evaluate(body, &broker.policy(), &scope, &snap.snapshot()))
}

/// The `expected` member for a verdict.
pub fn verdict_json(v: &Result<Admissible, Rejection>) -> Value {
    match v {
        Ok(_) => json!("admissible"),
        Err(r) => json!({"failed_check": r.check, "decision": r.decision}),
    }
}

/// The `presented` member for a verdict: what the broker records about the presentation.
pub fn presented_json(v: &Result<Admissible, Rejection>) -> Value {
    let p: &Presented = match v {
        Ok(a) => a.auth.presented(),
        Err(r) => &r.presented,
    };
    let d = |d: &Option<Digest>| d.map(|d| d.to_string());
    json!({
        "cid": p.cid,
        "nonce": p.nonce,
        "caller": p.caller,
        "certificate_digest": d(&p.certificate_digest),
        "request_digest": d(&p.request_digest),
        "contract_digest": d(&p.contract_digest),
        "evidence_digest": d(&p.evidence_digest),
        "observed_digest": d(&p.observed_digest),
        "not_before": p.not_before,
        "not_after": p.not_after,
        "break_glass": p.break_glass,
    })
}

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

/// What a case is meant to produce. The generator refuses to write a case whose actual
/// verdict differs from its declared intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Admissible,
    Rejected(FailedCheck, Decision),
}

/// One pipeline case.
pub struct Case {
    pub name: &'static str,
    pub description: &'static str,
    pub intent: Intent,
    pub scenario: Scenario,
}

fn case(name: &'static str, description: &'static str, intent: Intent, scenario: Scenario) -> Case {
    Case { name, description, intent, scenario }
}

fn with(f: impl FnOnce(&mut Scenario)) -> Scenario {
    let mut s = Scenario::default();
    f(&mut s);
    s
}

fn constraint(path: &str, check: CheckKind, value: Value) -> Constraint {
    Constraint { path: path.into(), check, value }
}

/// Replace the first occurrence of `from` in a byte string.
fn replace_once(body: Vec<u8>, from: &str, to: &str) -> GenResult<Vec<u8>> {
    let s = String::from_utf8(body)?;
    if !s.contains(from) {
        return Err(format!("`{from}` not found in the body").into());
    }
    Ok(s.replacen(from, to, 1).into_bytes())
}

fn set_ptr(v: &mut Value, ptr: &str, new: Value) {
    if let Some(slot) = v.pointer_mut(ptr) {
        *slot = new;
    }
}

fn insert_at(v: &mut Value, ptr: &str, key: &str, new: Value) {
    if let Some(Value::Object(m)) = v.pointer_mut(ptr) {
        m.insert(key.into(), new);
    }
}

const ADMIT: Intent = Intent::Admissible;
const fn rej(check: FailedCheck, decision: Decision) -> Intent {
    Intent::Rejected(check, decision)
}
const PARSE: Intent = rej(FailedCheck::Parse, Decision::Reject);
const SIGNATURE: Intent = rej(FailedCheck::Signature, Decision::FailClosed);
const PATH: Intent = rej(FailedCheck::Path, Decision::Reject);
const CALLER: Intent = rej(FailedCheck::Caller, Decision::Reject);
const MATCH: Intent = rej(FailedCheck::Match, Decision::Reject);
const TIME: Intent = rej(FailedCheck::Time, Decision::Reject);
const POLICY_EPOCH: Intent = rej(FailedCheck::PolicyEpoch, Decision::Readmit);
const REVOCATION: Intent = rej(FailedCheck::Revocation, Decision::FailClosed);
const SCOPE: Intent = rej(FailedCheck::Scope, Decision::Reject);
const REPLAY: Intent = rej(FailedCheck::Replay, Decision::Reject);
const DRIFT_READMIT: Intent = rej(FailedCheck::Drift, Decision::Readmit);
const DRIFT_FAIL_CLOSED: Intent = rej(FailedCheck::Drift, Decision::FailClosed);

/// Every pipeline case, in a stable order.
#[allow(clippy::too_many_lines)]
pub fn cases() -> Vec<Case> {
    use CheckKind as K;
    let mut v = Vec::new();

    // --- admissible -------------------------------------------------------------------
    v.push(case(
        "admit_policy_l2",
        "Baseline: L2 scale of a Deployment certified on the policy path; every check passes.",
        ADMIT,
        Scenario::default(),
    ));
    v.push(case(
        "admit_policy_l1",
        "L1 on the policy path.",
        ADMIT,
        with(|s| s.cert.contract.risk_level = RiskLevel::L1),
    ));
    v.push(case(
        "admit_quorum_l3",
        "L3 on the quorum path with approvals by validator-1 and validator-2 (2 required).",
        ADMIT,
        Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]),
    ));
    v.push(case(
        "admit_quorum_l3_three_validators",
        "L3 quorum with three validator approvals (more than required is fine).",
        ADMIT,
        Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2", "validator-3"]),
    ));
    v.push(case(
        "admit_human_l4",
        "L4 on the human path: two validators and one human approver.",
        ADMIT,
        Scenario::human(&["validator-1", "validator-2", "human-1"]),
    ));
    v.push(case(
        "admit_path_escalated",
        "L2 certified on the stronger quorum path (policy may escalate a path).",
        ADMIT,
        Scenario::quorum(RiskLevel::L2, &["validator-1", "validator-2"]),
    ));
    v.push(case(
        "admit_break_glass_2_of_3",
        "Break-glass certificate signed by operator-1 and operator-2 (quorum 2 of 3) under the \
         separate trust root; the record is flagged break_glass.",
        ADMIT,
        Scenario::break_glass(&["operator-1", "operator-2"]),
    ));
    v.push(case(
        "admit_break_glass_3_of_3",
        "Break-glass certificate signed by all three operators.",
        ADMIT,
        Scenario::break_glass(&["operator-3", "operator-1", "operator-2"]),
    ));
    v.push(case(
        "admit_aws_policy",
        "AWS ssm:PutParameter on the policy path.",
        ADMIT,
        with(|s| {
            s.cert.contract.platform = Platform::Aws;
            s.cert.contract.op = "ssm:PutParameter".into();
            s.cert.contract.target = json!({
                "account": "123456789012",
                "region": "eu-west-1",
                "service": "ssm",
                "arn": "arn:aws:ssm:eu-west-1:123456789012:parameter/app/flag"
            });
            s.cert.contract.params = json!({"Name": "/app/flag", "Value": "on", "Overwrite": true});
            s.cert.evidence.projection = [("/Parameter/Value".to_owned(), json!("off"))].into();
        }),
    ));

    // --- constraints: every check passing and failing (check 5, match) ----------------
    let replicas = |n: i64| json!({"spec": {"replicas": n}});
    v.push(case(
        "constraint_eq_pass",
        "eq constraint on /spec/replicas with value 3; request sends 3.",
        ADMIT,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::Eq, json!(3)),
            replicas(3),
        ),
    ));
    v.push(case(
        "constraint_eq_fail",
        "eq constraint on /spec/replicas with value 3; request sends 4.",
        MATCH,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::Eq, json!(3)),
            replicas(4),
        ),
    ));
    v.push(case(
        "constraint_in_pass",
        "in constraint [2,3,4]; request sends 4 (differs from the contract's 3 but passes).",
        ADMIT,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::In, json!([2, 3, 4])),
            replicas(4),
        ),
    ));
    v.push(case(
        "constraint_in_fail",
        "in constraint [2,3,4]; request sends 5.",
        MATCH,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::In, json!([2, 3, 4])),
            replicas(5),
        ),
    ));
    v.push(case(
        "constraint_range_pass",
        "range {min 1, max 5}; request sends the upper bound 5.",
        ADMIT,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::Range, json!({"min": 1, "max": 5})),
            replicas(5),
        ),
    ));
    v.push(case(
        "constraint_range_fail_above",
        "range {min 1, max 5}; request sends 6.",
        MATCH,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::Range, json!({"min": 1, "max": 5})),
            replicas(6),
        ),
    ));
    v.push(case(
        "constraint_range_fail_below",
        "range {min 1, max 5}; request sends 0.",
        MATCH,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::Range, json!({"min": 1, "max": 5})),
            replicas(0),
        ),
    ));
    v.push(case(
        "constraint_range_fail_not_a_number",
        "range {min 1, max 5}; request sends the string \"4\".",
        MATCH,
        Scenario::constrained(
            replicas(3),
            constraint("/spec/replicas", K::Range, json!({"min": 1, "max": 5})),
            json!({"spec": {"replicas": "4"}}),
        ),
    ));
    let image = |i: &str| json!({"spec": {"image": i}});
    v.push(case(
        "constraint_prefix_pass",
        "prefix \"registry.internal/payments/\"; request sends another image under it.",
        ADMIT,
        Scenario::constrained(
            image("registry.internal/payments/api:1.4.2"),
            constraint("/spec/image", K::Prefix, json!("registry.internal/payments/")),
            image("registry.internal/payments/api:1.4.3"),
        ),
    ));
    v.push(case(
        "constraint_prefix_fail",
        "prefix \"registry.internal/payments/\"; request sends an image from elsewhere.",
        MATCH,
        Scenario::constrained(
            image("registry.internal/payments/api:1.4.2"),
            constraint("/spec/image", K::Prefix, json!("registry.internal/payments/")),
            image("docker.io/evil/api:latest"),
        ),
    ));
    let cidr = |c: &str| json!({"IpPermissions": [{"IpRanges": [{"CidrIp": c}]}]});
    v.push(case(
        "constraint_cidr_within_pass",
        "cidr_within 10.0.0.0/8; request opens 10.20.0.0/16.",
        ADMIT,
        Scenario::constrained(
            cidr("10.1.0.0/16"),
            constraint("/IpPermissions/0/IpRanges/0/CidrIp", K::CidrWithin, json!("10.0.0.0/8")),
            cidr("10.20.0.0/16"),
        ),
    ));
    v.push(case(
        "constraint_cidr_within_pass_ipv6",
        "cidr_within fd00::/8; request opens fd12:3456::/48.",
        ADMIT,
        Scenario::constrained(
            cidr("fd00:1::/64"),
            constraint("/IpPermissions/0/IpRanges/0/CidrIp", K::CidrWithin, json!("fd00::/8")),
            cidr("fd12:3456::/48"),
        ),
    ));
    v.push(case(
        "constraint_cidr_within_fail_wider",
        "cidr_within 10.0.0.0/8; request opens 0.0.0.0/0.",
        MATCH,
        Scenario::constrained(
            cidr("10.1.0.0/16"),
            constraint("/IpPermissions/0/IpRanges/0/CidrIp", K::CidrWithin, json!("10.0.0.0/8")),
            cidr("0.0.0.0/0"),
        ),
    ));
    v.push(case(
        "constraint_cidr_within_fail_outside",
        "cidr_within 10.0.0.0/8; request opens 11.0.0.0/24.",
        MATCH,
        Scenario::constrained(
            cidr("10.1.0.0/16"),
            constraint("/IpPermissions/0/IpRanges/0/CidrIp", K::CidrWithin, json!("10.0.0.0/8")),
            cidr("11.0.0.0/24"),
        ),
    ));
    v.push(case(
        "constraint_cidr_within_fail_family",
        "cidr_within 10.0.0.0/8; request opens the IPv6 range ::/0.",
        MATCH,
        Scenario::constrained(
            cidr("10.1.0.0/16"),
            constraint("/IpPermissions/0/IpRanges/0/CidrIp", K::CidrWithin, json!("10.0.0.0/8")),
            cidr("::/0"),
        ),
    ));
    let value = |s: &str| json!({"Name": "/app/motd", "Value": s});
    v.push(case(
        "constraint_max_len_pass",
        "max_len 8 on a string; request sends 8 characters (non-ASCII counted as characters).",
        ADMIT,
        Scenario::constrained(
            value("hello"),
            constraint("/Value", K::MaxLen, json!(8)),
            value("grüß, ok"),
        ),
    ));
    v.push(case(
        "constraint_max_len_fail",
        "max_len 8 on a string; request sends 9 characters.",
        MATCH,
        Scenario::constrained(
            value("hello"),
            constraint("/Value", K::MaxLen, json!(8)),
            value("123456789"),
        ),
    ));
    v.push(case(
        "constraint_max_len_array_pass",
        "max_len 2 on an array; request sends 2 items.",
        ADMIT,
        Scenario::constrained(
            json!({"args": ["--a"]}),
            constraint("/args", K::MaxLen, json!(2)),
            json!({"args": ["--a", "--b"]}),
        ),
    ));
    v.push(case(
        "constraint_max_len_array_fail",
        "max_len 2 on an array; request sends 3 items.",
        MATCH,
        Scenario::constrained(
            json!({"args": ["--a"]}),
            constraint("/args", K::MaxLen, json!(2)),
            json!({"args": ["--a", "--b", "--c"]}),
        ),
    ));
    v.push(case(
        "constraint_neighbour_smuggling",
        "A range constraint on /spec/replicas does not relax /spec/image: request changes both.",
        MATCH,
        Scenario::constrained(
            json!({"spec": {"replicas": 3, "image": "nginx:1"}}),
            constraint("/spec/replicas", K::Range, json!({"min": 1, "max": 5})),
            json!({"spec": {"replicas": 4, "image": "evil:1"}}),
        ),
    ));
    v.push(case(
        "constraint_param_missing",
        "The constrained parameter is absent from the request.",
        MATCH,
        Scenario::constrained(
            json!({"spec": {"replicas": 3, "image": "nginx:1"}}),
            constraint("/spec/replicas", K::Range, json!({"min": 1, "max": 5})),
            json!({"spec": {"image": "nginx:1"}}),
        ),
    ));

    // --- 1 parse ----------------------------------------------------------------------
    v.push(case(
        "parse_not_json",
        "The body is not JSON.",
        PARSE,
        with(|s| s.body_hook = Some(Box::new(|_| Ok(b"certificate=please".to_vec())))),
    ));
    v.push(case(
        "parse_trailing_bytes",
        "A valid presentation followed by a second JSON value.",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|mut b| {
                b.extend_from_slice(b" {}");
                Ok(b)
            }))
        }),
    ));
    v.push(case(
        "parse_duplicate_key_top_level",
        "The presentation object has `proof` twice (the second a valid-looking copy).",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                replace_once(b, "\n  \"proof\": {", "\n  \"proof\": {},\n  \"proof\": {")
            }))
        }),
    ));
    v.push(case(
        "parse_duplicate_key_in_request",
        "The request has `caller` twice, once naming another agent.",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                replace_once(
                    b,
                    "\"caller\": \"agent-1\"",
                    "\"caller\": \"agent-2\",\n    \"caller\": \"agent-1\"",
                )
            }))
        }),
    ));
    v.push(case(
        "parse_duplicate_key_in_params",
        "A duplicate key deep inside request params.",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                replace_once(b, "\"replicas\": 3", "\"replicas\": 3,\n        \"replicas\": 30")
            }))
        }),
    ));
    v.push(case(
        "parse_duplicate_key_in_certificate_payload",
        "The issuer signed payload bytes that hold a duplicate key (`policy_epoch` twice); the \
         signature verifies, the payload parse refuses it.",
        PARSE,
        with(|s| {
            s.cert_bytes_hook = Some(Box::new(|b| {
                replace_once(b, "\"policy_epoch\":7", "\"policy_epoch\":7,\"policy_epoch\":8")
            }))
        }),
    ));
    v.push(case(
        "parse_oversize_body",
        "A body one byte over the 64 KiB limit (a long parameter).",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                let pad = (MAX_BODY + 1).saturating_sub(b.len());
                let mut b = b;
                // Grow with whitespace before the closing brace: still valid JSON.
                let close = b.pop().ok_or("empty body")?;
                b.extend(std::iter::repeat_n(b' ', pad));
                b.push(close);
                Ok(b)
            }))
        }),
    ));
    v.push(case(
        "parse_body_at_limit",
        "A body of exactly 64 KiB (padded with whitespace) is accepted.",
        ADMIT,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                let pad = MAX_BODY.saturating_sub(b.len());
                let mut b = b;
                let close = b.pop().ok_or("empty body")?;
                b.extend(std::iter::repeat_n(b' ', pad));
                b.push(close);
                Ok(b)
            }))
        }),
    ));
    v.push(case(
        "parse_integer_out_of_range",
        "t_exec_ms is 2^53, outside the I-JSON safe range.",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                let text = String::from_utf8(b)?;
                let from = format!("\"t_exec_ms\": {}", NOW_MS - 500);
                replace_once(text.into_bytes(), &from, "\"t_exec_ms\": 9007199254740992")
            }))
        }),
    ));
    v.push(case(
        "parse_integer_out_of_range_in_params",
        "A params integer of -2^53.",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                replace_once(b, "\"replicas\": 3", "\"replicas\": -9007199254740992")
            }))
        }),
    ));
    v.push(case(
        "parse_negative_t_exec",
        "t_exec_ms is negative.",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                let from = format!("\"t_exec_ms\": {}", NOW_MS - 500);
                replace_once(b, &from, "\"t_exec_ms\": -1")
            }))
        }),
    ));
    v.push(case(
        "parse_unknown_field_in_request",
        "The request carries a field the schema does not know.",
        PARSE,
        with(|s| {
            s.presentation_hook = Some(Box::new(|p| insert_at(p, "/request", "sudo", json!(true))))
        }),
    ));
    v.push(case(
        "parse_unknown_field_in_presentation",
        "The presentation carries a field the schema does not know.",
        PARSE,
        with(|s| s.presentation_hook = Some(Box::new(|p| insert_at(p, "", "note", json!("hi"))))),
    ));
    v.push(case(
        "parse_missing_proof",
        "The presentation has no proof.",
        PARSE,
        with(|s| {
            s.presentation_hook = Some(Box::new(|p| {
                if let Some(o) = p.as_object_mut() {
                    o.remove("proof");
                }
            }))
        }),
    ));
    v.push(case(
        "parse_deep_nesting",
        "Request params nested 70 levels deep.",
        PARSE,
        with(|s| {
            s.body_hook = Some(Box::new(|b| {
                let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
                replace_once(b, "\"replicas\": 3", &format!("\"replicas\": {deep}"))
            }))
        }),
    ));
    v.push(case(
        "parse_unknown_field_in_certificate_payload",
        "The signed certificate payload carries an unknown field.",
        PARSE,
        with(|s| s.cert_value_hook = Some(Box::new(|p| insert_at(p, "", "admin", json!(true))))),
    ));
    v.push(case(
        "parse_subject_small_order_key",
        "The signed certificate names a small-order subject key (the identity point), and the \
         proof is the matching universal forgery (R = identity, S = 0); the key is refused \
         when the payload is parsed.",
        PARSE,
        with(|s| {
            let weak = STANDARD.encode(IDENTITY_POINT);
            s.cert_value_hook =
                Some(Box::new(move |p| set_ptr(p, "/subject/public_key", json!(weak.clone()))));
            s.proof_hook = Some(Box::new(|sig| {
                *sig = small_order_forgery();
                Ok(())
            }));
        }),
    ));
    v.push(case(
        "parse_certificate_nonce_too_short",
        "The certificate nonce decodes to 12 bytes (at least 16 are required).",
        PARSE,
        with(|s| s.cert.nonce = "AAAAAAAAAAAAAAAA".into()),
    ));
    v.push(case(
        "parse_certificate_cid_not_uuid",
        "The certificate cid is not a UUID.",
        PARSE,
        with(|s| s.cert.cid = "cert-42".into()),
    ));
    v.push(case(
        "parse_certificate_risk_level_6",
        "The signed contract has risk_level 6.",
        PARSE,
        with(|s| {
            s.cert_value_hook = Some(Box::new(|p| set_ptr(p, "/contract/risk_level", json!(6))))
        }),
    ));
    v.push(case(
        "parse_certificate_version_2",
        "The certificate says version 2.",
        PARSE,
        with(|s| s.cert.version = 2),
    ));

    // --- 2 signature ------------------------------------------------------------------
    v.push(case(
        "signature_tampered_payload",
        "The certificate payload was changed after signing (replicas 3 → 30, digests \
         recomputed); the issuer signature no longer verifies.",
        SIGNATURE,
        with(|s| {
            s.envelope_hook = Some(Box::new(|env| {
                let bytes = STANDARD.decode(&env.payload)?;
                let mut p = json::parse_value(&bytes, usize::MAX)?;
                set_ptr(&mut p, "/contract/params/spec/replicas", json!(30));
                let c: Contract =
                    json::from_value(p.pointer("/contract").cloned().ok_or("no contract")?)?;
                set_ptr(&mut p, "/contract_digest", json!(c.digest()?.to_string()));
                env.payload = STANDARD.encode(json::canonical(&p)?);
                Ok(())
            }));
            s.request_hook = Some(Box::new(|r| r.params = json!({"spec": {"replicas": 30}})));
        }),
    ));
    v.push(case(
        "signature_untrusted_issuer",
        "A certificate issued and signed by a key the broker does not trust.",
        SIGNATURE,
        with(|s| {
            s.cert.issuer = Issuer { name: "rogue".into(), kid: key("rogue-issuer").kid() };
            s.cert_signers = vec!["rogue-issuer"];
        }),
    ));
    v.push(case(
        "signature_trusted_kid_wrong_key",
        "The envelope names the trusted issuer's key id but the signature is by another key.",
        SIGNATURE,
        with(|s| {
            s.cert_signers = vec!["rogue-issuer"];
            s.envelope_hook = Some(Box::new(|env| {
                for sig in &mut env.signatures {
                    sig.keyid = key("issuer").kid().to_string();
                }
                Ok(())
            }));
        }),
    ));
    v.push(case(
        "signature_swapped_payload_type",
        "The payloadType was changed to approval after signing.",
        SIGNATURE,
        with(|s| {
            s.envelope_hook = Some(Box::new(|env| {
                env.payload_type = PayloadType::Approval.media_type().into();
                Ok(())
            }))
        }),
    ));
    v.push(case(
        "signature_signed_as_other_type",
        "The issuer signed the certificate bytes as payloadType `request` (valid signature, \
         wrong type).",
        SIGNATURE,
        with(|s| s.cert_payload_type = PayloadType::Request),
    ));
    v.push(case(
        "signature_non_canonical_s",
        "The issuer signature with the group order L added to S (S ≥ L): same value mod L, \
         refused by strict verification.",
        SIGNATURE,
        with(|s| {
            s.envelope_hook = Some(Box::new(|env| {
                for sig in &mut env.signatures {
                    sig.sig = add_group_order_to_s(&sig.sig)?;
                }
                Ok(())
            }))
        }),
    ));
    v.push(case(
        "signature_bit_flip",
        "One bit of the issuer signature flipped.",
        SIGNATURE,
        with(|s| {
            s.envelope_hook = Some(Box::new(|env| {
                for sig in &mut env.signatures {
                    sig.sig = flip_sig_bit(&sig.sig, 17, 3)?;
                }
                Ok(())
            }))
        }),
    ));
    v.push(case(
        "signature_no_signatures",
        "The certificate envelope carries no signature.",
        SIGNATURE,
        with(|s| s.cert_signers = vec![]),
    ));
    v.push(case(
        "signature_payload_not_base64",
        "The certificate payload is not canonical base64.",
        SIGNATURE,
        with(|s| {
            s.envelope_hook = Some(Box::new(|env| {
                env.payload.push('!');
                Ok(())
            }))
        }),
    ));
    v.push(case(
        "signature_issuer_kid_mismatch",
        "Signed by the trusted issuer, but the payload names another issuer kid.",
        SIGNATURE,
        with(|s| s.cert.issuer.kid = key("rogue-issuer").kid()),
    ));
    v.push(case(
        "signature_contract_digest_mismatch",
        "Validly signed, but contract_digest is not sha256(JCS(contract)).",
        SIGNATURE,
        with(|s| s.cert_hook = Some(Box::new(|c| c.contract_digest = Digest::of_bytes(b"other")))),
    ));
    v.push(case(
        "signature_evidence_digest_mismatch",
        "Validly signed, but evidence.digest is not sha256(JCS(projection)).",
        SIGNATURE,
        with(|s| s.cert_hook = Some(Box::new(|c| c.evidence.digest = Digest::of_bytes(b"other")))),
    ));
    v.push(case(
        "signature_break_glass_below_quorum",
        "Break-glass certificate signed by one operator; two are required.",
        SIGNATURE,
        Scenario::break_glass(&["operator-1"]),
    ));
    v.push(case(
        "signature_break_glass_same_operator_twice",
        "Break-glass certificate carrying operator-1's signature twice.",
        SIGNATURE,
        Scenario::break_glass(&["operator-1", "operator-1"]),
    ));
    v.push(case(
        "signature_break_glass_with_untrusted_signer",
        "Break-glass certificate signed by operator-1 and mallory.",
        SIGNATURE,
        Scenario::break_glass(&["operator-1", "mallory"]),
    ));
    v.push(case(
        "signature_break_glass_path_signed_by_issuer",
        "A certificate claiming cert_path break_glass signed by the regular issuer.",
        SIGNATURE,
        with(|s| {
            s.cert.cert_path = CertPath::BreakGlass;
            s.cert.contract.risk_level = RiskLevel::L4;
        }),
    ));
    v.push(case(
        "signature_policy_path_signed_by_operators",
        "A policy-path certificate signed by two break-glass operators (wrong trust root).",
        SIGNATURE,
        with(|s| s.cert_signers = vec!["operator-1", "operator-2"]),
    ));
    v.push(case(
        "signature_issuer_and_operator_mixed",
        "A certificate signed by the issuer and an operator.",
        SIGNATURE,
        with(|s| s.cert_signers = vec!["issuer", "operator-1"]),
    ));

    // --- 3 path -----------------------------------------------------------------------
    v.push(case(
        "path_weaker_than_required",
        "L3 requires the quorum path; the certificate is on the policy path.",
        PATH,
        with(|s| s.cert.contract.risk_level = RiskLevel::L3),
    ));
    v.push(case(
        "path_quorum_one_of_two",
        "L3 quorum with a single validator approval.",
        PATH,
        Scenario::quorum(RiskLevel::L3, &["validator-1"]),
    ));
    v.push(case(
        "path_quorum_same_validator_twice",
        "L3 quorum with validator-1's approval attached twice (one distinct approver).",
        PATH,
        Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-1"]),
    ));
    v.push(case(
        "path_human_missing",
        "L4 on the human path with two validators and no human.",
        PATH,
        Scenario::human(&["validator-1", "validator-2"]),
    ));
    v.push(case(
        "path_human_counts_not_as_validator",
        "L3 quorum with one validator and one human (humans do not count as validators).",
        PATH,
        Scenario::quorum(RiskLevel::L3, &["validator-1", "human-1"]),
    ));
    v.push(case(
        "path_approval_other_contract_digest",
        "One approval is bound to a different contract digest.",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.contract_digest = Some(Digest::of_bytes(b"another contract"));
            }
            s
        },
    ));
    v.push(case(
        "path_approval_other_evidence_digest",
        "One approval is bound to a different evidence digest (another observed state).",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.evidence_digest = Some(Digest::of_bytes(b"another state"));
            }
            s
        },
    ));
    v.push(case(
        "path_forged_approver_signature",
        "An approval naming validator-2 and carrying validator-2's key id, signed by mallory.",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.signer = "mallory";
                a.envelope_hook = Some(Box::new(|env| {
                    for sig in &mut env.signatures {
                        sig.keyid = key("validator-2").kid().to_string();
                    }
                    Ok(())
                }));
            }
            s
        },
    ));
    v.push(case(
        "path_unknown_approver",
        "An approval signed by an approver the broker does not know (mallory).",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.signer = "mallory";
                a.approver = "mallory";
            }
            s
        },
    ));
    v.push(case(
        "path_approver_name_mismatch",
        "An approval signed by validator-2's key but naming validator-3.",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.approver = "validator-3";
            }
            s
        },
    ));
    v.push(case("path_approval_deny", "One of the approvals is a deny.", PATH, {
        let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2", "validator-3"]);
        if let Some(a) = s.approvals.get_mut(2) {
            a.decision = ApprovalDecision::Deny;
        }
        s
    }));
    v.push(case(
        "path_approver_small_order_key",
        "An approval whose key id is that of the identity point (small order) with the \
         universal forgery as signature: no such approver can be registered, so it is \
         unknown, and strict verification would refuse it anyway.",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.envelope_hook = Some(Box::new(|env| {
                    for sig in &mut env.signatures {
                        sig.keyid = raw_kid(&IDENTITY_POINT);
                        sig.sig = small_order_forgery();
                    }
                    Ok(())
                }));
            }
            s
        },
    ));
    v.push(case(
        "path_approval_non_canonical_s",
        "validator-2's approval signature with L added to S.",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.envelope_hook = Some(Box::new(|env| {
                    for sig in &mut env.signatures {
                        sig.sig = add_group_order_to_s(&sig.sig)?;
                    }
                    Ok(())
                }));
            }
            s
        },
    ));
    v.push(case(
        "path_approval_wrong_payload_type",
        "validator-2 signed its approval as payloadType `proposal`.",
        PATH,
        {
            let mut s = Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2"]);
            if let Some(a) = s.approvals.get_mut(1) {
                a.payload_type = PayloadType::Proposal;
            }
            s
        },
    ));
    v.push(case(
        "path_break_glass_key_approves",
        "An approval by a registered break-glass approver (break-glass keys do not approve).",
        PATH,
        Scenario::quorum(RiskLevel::L3, &["validator-1", "validator-2", "bg-approver"]),
    ));
    v.push(case(
        "path_l0_refused",
        "An L0 (advisory) contract is never certified.",
        PATH,
        with(|s| s.cert.contract.risk_level = RiskLevel::L0),
    ));
    v.push(case(
        "path_l5_refused",
        "An L5 contract is never certified, whatever approvals it carries.",
        PATH,
        {
            let mut s = Scenario::human(&["validator-1", "validator-2", "human-1", "human-2"]);
            s.cert.contract.risk_level = RiskLevel::L5;
            s
        },
    ));

    // --- 4 caller ---------------------------------------------------------------------
    v.push(case(
        "caller_not_subject",
        "The request names agent-2 as caller (proof by the subject key is valid).",
        CALLER,
        with(|s| s.request_hook = Some(Box::new(|r| r.caller = "agent-2".into()))),
    ));
    v.push(case(
        "caller_proof_by_other_key",
        "The proof is signed by agent-2's key; the subject is agent-1.",
        CALLER,
        with(|s| s.proof_key = "agent-2"),
    ));
    v.push(case(
        "caller_proof_over_other_request",
        "The proof covers a request with different params than the one presented.",
        CALLER,
        with(|s| {
            s.proof_over_hook = Some(Box::new(|r| r.params = json!({"spec": {"replicas": 4}})))
        }),
    ));
    v.push(case(
        "caller_proof_non_canonical_s",
        "The proof signature with L added to S.",
        CALLER,
        with(|s| {
            s.proof_hook = Some(Box::new(|sig| {
                *sig = add_group_order_to_s(sig)?;
                Ok(())
            }))
        }),
    ));
    v.push(case(
        "caller_proof_bit_flip",
        "One bit of the proof signature flipped.",
        CALLER,
        with(|s| {
            s.proof_hook = Some(Box::new(|sig| {
                *sig = flip_sig_bit(sig, 40, 0)?;
                Ok(())
            }))
        }),
    ));
    v.push(case(
        "caller_t_exec_too_old",
        "t_exec_ms is 30 001 ms before the broker clock (skew 30 s).",
        CALLER,
        with(|s| s.request_hook = Some(Box::new(|r| r.t_exec_ms = NOW_MS - 30_001))),
    ));
    v.push(case(
        "caller_t_exec_in_future",
        "t_exec_ms is 30 001 ms after the broker clock.",
        CALLER,
        with(|s| s.request_hook = Some(Box::new(|r| r.t_exec_ms = NOW_MS + 30_001))),
    ));
    v.push(case(
        "caller_t_exec_at_skew_edge",
        "t_exec_ms is exactly 30 000 ms before the broker clock: accepted.",
        ADMIT,
        with(|s| s.request_hook = Some(Box::new(|r| r.t_exec_ms = NOW_MS - 30_000))),
    ));

    // --- 5 match ----------------------------------------------------------------------
    v.push(case(
        "match_cid_mismatch",
        "The request names another cid.",
        MATCH,
        with(|s| s.request_hook = Some(Box::new(|r| r.cid = OTHER_CID.into()))),
    ));
    v.push(case(
        "match_nonce_mismatch",
        "The request names another nonce.",
        MATCH,
        with(|s| s.request_hook = Some(Box::new(|r| r.nonce = encode_nonce(&[0x5a; 24])))),
    ));
    v.push(case(
        "match_op_mismatch",
        "The request's op is `delete` where `scale` was certified.",
        MATCH,
        with(|s| s.request_hook = Some(Box::new(|r| r.op = "delete".into()))),
    ));
    v.push(case(
        "match_target_mismatch",
        "The request targets another namespace.",
        MATCH,
        with(|s| {
            s.request_hook =
                Some(Box::new(|r| set_ptr(&mut r.target, "/namespace", json!("kube-system"))))
        }),
    ));
    v.push(case(
        "match_params_mismatch",
        "The request asks for 30 replicas; the contract (no constraints) says 3.",
        MATCH,
        with(|s| s.request_hook = Some(Box::new(|r| r.params = json!({"spec": {"replicas": 30}})))),
    ));
    v.push(case(
        "match_params_extra_field",
        "The request adds a parameter the contract does not have.",
        MATCH,
        with(|s| {
            s.request_hook =
                Some(Box::new(|r| insert_at(&mut r.params, "/spec", "paused", json!(true))))
        }),
    ));

    // --- 6 time -----------------------------------------------------------------------
    v.push(case(
        "time_expired",
        "The broker clock is at not_after (the window is half-open).",
        TIME,
        with(|s| s.cert.validity = Validity { not_before: NOW_S - 300, not_after: NOW_S }),
    ));
    v.push(case(
        "time_last_second",
        "The broker clock is in the last second before not_after: accepted.",
        ADMIT,
        with(|s| s.cert.validity = Validity { not_before: NOW_S - 299, not_after: NOW_S + 1 }),
    ));
    v.push(case(
        "time_not_yet_valid",
        "not_before is 31 s ahead of the broker clock (skew 30 s).",
        TIME,
        with(|s| s.cert.validity = Validity { not_before: NOW_S + 31, not_after: NOW_S + 300 }),
    ));
    v.push(case(
        "time_not_before_within_skew",
        "not_before is 30 s ahead of the broker clock: accepted within the skew.",
        ADMIT,
        with(|s| s.cert.validity = Validity { not_before: NOW_S + 30, not_after: NOW_S + 300 }),
    ));
    v.push(case(
        "time_window_longer_than_max",
        "A validity window of 301 s where the broker accepts at most 300 s.",
        TIME,
        with(|s| s.cert.validity = Validity { not_before: NOW_S - 1, not_after: NOW_S + 300 }),
    ));

    // --- 7 policy epoch -----------------------------------------------------------------
    v.push(case(
        "policy_epoch_stale",
        "Certificate policy epoch 6, active 7: re-admission needed.",
        POLICY_EPOCH,
        with(|s| s.cert.policy_epoch = 6),
    ));
    v.push(case(
        "policy_epoch_ahead",
        "Certificate policy epoch 8, active 7 (strict equality).",
        POLICY_EPOCH,
        with(|s| s.cert.policy_epoch = 8),
    ));

    // --- 8 revocation -------------------------------------------------------------------
    v.push(case(
        "revocation_epoch_stale",
        "Certificate revocation epoch 2, active 3 (a revoke-all happened).",
        REVOCATION,
        with(|s| s.cert.revocation_epoch = 2),
    ));
    v.push(case(
        "revocation_cid_revoked",
        "The certificate's cid is on the revocation list.",
        REVOCATION,
        with(|s| {
            if let Some(e) = &mut s.snap.epochs {
                e.revoked_cids.insert(CID.into());
            }
        }),
    ));
    v.push(case(
        "revocation_agent_revoked",
        "The subject agent is revoked.",
        REVOCATION,
        with(|s| {
            if let Some(e) = &mut s.snap.epochs {
                e.revoked_agents.insert("agent-1".into());
            }
        }),
    ));
    v.push(case(
        "revocation_epoch_state_stale",
        "The epoch state is 10 001 ms old; its maximum staleness is 10 000 ms.",
        REVOCATION,
        with(|s| {
            if let Some(e) = &mut s.snap.epochs {
                e.as_of_ms = NOW_MS - 10_001;
            }
        }),
    ));
    v.push(case(
        "revocation_epoch_state_unreadable",
        "The epoch state could not be read.",
        REVOCATION,
        with(|s| s.snap.epochs = None),
    ));
    v.push(case(
        "revocation_state_checked_before_policy_epoch",
        "Stale policy epoch AND unreadable epoch state: the unreadable state fails closed first.",
        REVOCATION,
        with(|s| {
            s.cert.policy_epoch = 6;
            s.snap.epochs = None;
        }),
    ));

    // --- 9 scope ------------------------------------------------------------------------
    v.push(case(
        "scope_unenforceable_constraint",
        "A cidr_within constraint on a platform profile that cannot enforce cidr_within.",
        SCOPE,
        {
            let mut s = Scenario::constrained(
                cidr("10.1.0.0/16"),
                constraint(
                    "/IpPermissions/0/IpRanges/0/CidrIp",
                    K::CidrWithin,
                    json!("10.0.0.0/8"),
                ),
                cidr("10.1.0.0/16"),
            );
            s.enforceable = ALL_CHECKS.into_iter().filter(|c| *c != K::CidrWithin).collect();
            s
        },
    ));

    // --- 10 replay ----------------------------------------------------------------------
    v.push(case(
        "replay_nonce_reserved",
        "(cid, nonce) is already reserved.",
        REPLAY,
        with(|s| s.snap.already_reserved = true),
    ));

    // --- 11 drift -----------------------------------------------------------------------
    v.push(case(
        "drift_exact_changed",
        "Live replicas 5 where 2 was admitted, no tolerance.",
        DRIFT_READMIT,
        with(|s| {
            s.snap.observation = ObsCfg::Changed(Box::new(|m| {
                m.insert("/spec/replicas".into(), json!(5));
            }))
        }),
    ));
    v.push(case(
        "drift_field_missing_live",
        "An admitted field is absent live.",
        DRIFT_READMIT,
        with(|s| {
            s.snap.observation = ObsCfg::Changed(Box::new(|m| {
                m.remove("/metadata/labels/app");
            }))
        }),
    ));
    v.push(case(
        "drift_null_admitted_absent_live",
        "A field admitted as null is absent live: no drift.",
        ADMIT,
        with(|s| {
            s.cert.evidence.projection.insert("/metadata/annotations/owner".into(), Value::Null);
            s.snap.observation = ObsCfg::Changed(Box::new(|m| {
                m.remove("/metadata/annotations/owner");
            }));
        }),
    ));
    v.push(case(
        "drift_extra_live_field_ignored",
        "A live field outside the projection is ignored.",
        ADMIT,
        with(|s| {
            s.snap.observation = ObsCfg::Changed(Box::new(|m| {
                m.insert("/status/readyReplicas".into(), json!(1));
            }))
        }),
    ));
    let abs = |live: f64, intent: Intent, name: &'static str, d: &'static str| {
        case(
            name,
            d,
            intent,
            with(move |s| {
                s.cert.evidence.tolerance =
                    [("/spec/replicas".to_owned(), Tolerance::Abs(1.0))].into();
                s.snap.observation = ObsCfg::Changed(Box::new(move |m| {
                    m.insert("/spec/replicas".into(), json!(live));
                }));
            }),
        )
    };
    v.push(abs(3.0, ADMIT, "drift_abs_within", "Tolerance abs 1: live 3 where 2 was admitted."));
    v.push(abs(
        1.0,
        ADMIT,
        "drift_abs_within_below",
        "Tolerance abs 1: live 1 where 2 was admitted.",
    ));
    v.push(abs(
        4.0,
        DRIFT_READMIT,
        "drift_abs_outside",
        "Tolerance abs 1: live 4 where 2 was admitted.",
    ));
    let rel = |live: f64, intent: Intent, name: &'static str, d: &'static str| {
        case(
            name,
            d,
            intent,
            with(move |s| {
                s.cert.evidence.projection.insert("/status/cpu_millis".into(), json!(400));
                s.cert.evidence.tolerance =
                    [("/status/cpu_millis".to_owned(), Tolerance::Rel(0.25))].into();
                s.snap.observation = ObsCfg::Changed(Box::new(move |m| {
                    m.insert("/status/cpu_millis".into(), json!(live));
                }));
            }),
        )
    };
    v.push(rel(
        500.0,
        ADMIT,
        "drift_rel_within",
        "Tolerance rel 0.25 on 400: live 500 (the bound) is accepted.",
    ));
    v.push(rel(
        500.5,
        DRIFT_READMIT,
        "drift_rel_outside",
        "Tolerance rel 0.25 on 400: live 500.5 is beyond it.",
    ));
    v.push(case(
        "drift_tolerance_on_string",
        "A tolerance on a string field does not make a changed string acceptable.",
        DRIFT_READMIT,
        with(|s| {
            s.cert.evidence.tolerance =
                [("/metadata/labels/app".to_owned(), Tolerance::Abs(100.0))].into();
            s.snap.observation = ObsCfg::Changed(Box::new(|m| {
                m.insert("/metadata/labels/app".into(), json!("apj"));
            }));
        }),
    ));
    v.push(case(
        "drift_live_unreadable",
        "The live state could not be read: fail closed.",
        DRIFT_FAIL_CLOSED,
        with(|s| s.snap.observation = ObsCfg::Unreadable("connection refused")),
    ));

    // --- order of checks ----------------------------------------------------------------
    v.push(case(
        "order_signature_before_caller",
        "Untrusted issuer AND wrong caller: signature is checked first.",
        SIGNATURE,
        with(|s| {
            s.cert_signers = vec!["rogue-issuer"];
            s.cert.issuer.kid = key("rogue-issuer").kid();
            s.request_hook = Some(Box::new(|r| r.caller = "agent-2".into()));
        }),
    ));
    v.push(case(
        "order_caller_before_match",
        "Proof by another key AND a params mismatch: caller is checked first.",
        CALLER,
        with(|s| {
            s.proof_key = "agent-2";
            s.request_hook = Some(Box::new(|r| r.params = json!({"spec": {"replicas": 30}})));
        }),
    ));
    v.push(case(
        "order_match_before_time",
        "Expired AND an op mismatch: match is checked first.",
        MATCH,
        with(|s| {
            s.cert.validity = Validity { not_before: NOW_S - 300, not_after: NOW_S };
            s.request_hook = Some(Box::new(|r| r.op = "delete".into()));
        }),
    ));
    v.push(case(
        "order_policy_epoch_before_replay",
        "Stale policy epoch AND a reserved nonce: policy_epoch is checked first.",
        POLICY_EPOCH,
        with(|s| {
            s.cert.policy_epoch = 6;
            s.snap.already_reserved = true;
        }),
    ));
    v.push(case(
        "order_replay_before_drift",
        "Reserved nonce AND drift: replay is checked first.",
        REPLAY,
        with(|s| {
            s.snap.already_reserved = true;
            s.snap.observation = ObsCfg::Unreadable("timeout");
        }),
    ));
    v
}

// ---------------------------------------------------------------------------------------
// Envelope, key and JCS vectors
// ---------------------------------------------------------------------------------------

/// Short name of an envelope verification error, as written in `envelopes.json`.
pub fn envelope_error_kind(e: &EnvelopeError) -> &'static str {
    match e {
        EnvelopeError::WrongPayloadType { .. } => "wrong_payload_type",
        EnvelopeError::PayloadEncoding => "payload_encoding",
        EnvelopeError::SignatureCount(_) => "signature_count",
        EnvelopeError::DuplicateSigner(_) => "duplicate_signer",
        EnvelopeError::UntrustedKey(_) => "untrusted_key",
        EnvelopeError::Signature { source: KeyError::SignatureEncoding, .. } => {
            "signature_encoding"
        }
        EnvelopeError::Signature { .. } => "bad_signature",
        EnvelopeError::Payload(_) => "payload",
        EnvelopeError::PasskeyNotAllowed => "passkey_not_allowed",
        EnvelopeError::Passkey { .. } => "passkey",
    }
}

/// Short name of a public-key parse result, as written in `keys.json`.
pub fn key_check_kind(r: &Result<PublicKey, KeyError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(KeyError::Encoding) => "encoding",
        Err(KeyError::InvalidPoint) => "invalid_point",
        Err(KeyError::WeakKey) => "weak",
        Err(_) => "other",
    }
}

/// Verify an envelope as `envelopes.json` describes it.
pub fn verify_envelope_case(
    envelope: &Value,
    trusted: &[String],
    expected_type: &str,
) -> GenResult<Value> {
    let env: Envelope = json::from_value(envelope.clone())?;
    let trusted = parse_keys(trusted)?;
    let ty = PayloadType::from_media_type(expected_type).ok_or("unknown payload type")?;
    Ok(match env.verify(ty, &trusted) {
        Ok(v) => json!({
            "ok": {
                "payload_sha256": Digest::of_bytes(v.bytes()).to_string(),
                "signers": v.signers().iter().map(ToString::to_string).collect::<Vec<_>>(),
            }
        }),
        Err(e) => json!({"error": envelope_error_kind(&e)}),
    })
}

/// (name, description, envelope, trusted keys, expected payload type)
type EnvCase = (&'static str, &'static str, Envelope, Vec<String>, &'static str);

fn envelopes_file() -> GenResult<Value> {
    let signer = key("issuer");
    let trusted = vec![signer.public_key().to_base64()];
    // 28 canonical bytes, so the base64 carries padding (see `payload_unpadded_base64`).
    let payload = json!({"statement": "hello", "n": 10});
    let base = Envelope::sign(PayloadType::Decision, &payload, &signer)?;
    let decision = PayloadType::Decision.media_type();

    let mut cases: Vec<EnvCase> = Vec::new();
    cases.push((
        "valid",
        "A valid single-signature envelope.",
        base.clone(),
        trusted.clone(),
        decision,
    ));
    let two =
        Envelope::sign_multi(PayloadType::Decision, &payload, &[&signer, &key("operator-1")])?;
    cases.push((
        "valid_two_signers",
        "Two signatures, both trusted.",
        two.clone(),
        [trusted.clone(), vec![pk_b64("operator-1")]].concat(),
        decision,
    ));
    cases.push((
        "one_of_two_signers_untrusted",
        "Two signatures, one by an untrusted key: every signature must verify.",
        two,
        trusted.clone(),
        decision,
    ));
    cases.push((
        "expected_other_type",
        "A valid envelope checked where an outcome is expected.",
        base.clone(),
        trusted.clone(),
        PayloadType::Outcome.media_type(),
    ));
    let mut e = base.clone();
    e.payload_type = PayloadType::Outcome.media_type().into();
    cases.push((
        "swapped_payload_type",
        "payloadType changed to outcome after signing (PAE binds the type).",
        e,
        trusted.clone(),
        PayloadType::Outcome.media_type(),
    ));
    let mut e = base.clone();
    let mut bytes = STANDARD.decode(&e.payload)?;
    if let Some(b) = bytes.last_mut() {
        *b = b']';
    }
    e.payload = STANDARD.encode(bytes);
    cases.push((
        "tampered_payload",
        "Last payload byte changed after signing.",
        e,
        trusted.clone(),
        decision,
    ));
    cases.push((
        "untrusted_key",
        "Signed by a key that is not trusted.",
        Envelope::sign(PayloadType::Decision, &payload, &key("mallory"))?,
        trusted.clone(),
        decision,
    ));
    let mut e = base.clone();
    for s in &mut e.signatures {
        s.sig = add_group_order_to_s(&s.sig)?;
    }
    cases.push((
        "non_canonical_s",
        "S + L: refused by strict verification.",
        e,
        trusted.clone(),
        decision,
    ));
    let mut e = base.clone();
    for s in &mut e.signatures {
        s.sig = flip_sig_bit(&s.sig, 0, 0)?;
    }
    cases.push(("bit_flip_r", "One bit of R flipped.", e, trusted.clone(), decision));
    let mut e = base.clone();
    for s in &mut e.signatures {
        s.sig = STANDARD.encode([0u8; 63]);
    }
    cases.push(("short_signature", "A 63-byte signature.", e, trusted.clone(), decision));
    let mut e = base.clone();
    let dup = e.signatures.clone();
    e.signatures.extend(dup);
    cases.push(("duplicate_signer", "The same signature twice.", e, trusted.clone(), decision));
    let mut e = base.clone();
    e.signatures.clear();
    cases.push(("no_signatures", "No signature at all.", e, trusted.clone(), decision));
    let mut e = base.clone();
    e.payload = e.payload.trim_end_matches('=').to_owned();
    if e.payload == base.payload {
        return Err("the envelope payload has no base64 padding to remove".into());
    }
    cases.push((
        "payload_unpadded_base64",
        "The payload without its base64 padding (not canonical).",
        e,
        trusted.clone(),
        decision,
    ));
    let mut e = base.clone();
    for s in &mut e.signatures {
        s.keyid = raw_kid(&IDENTITY_POINT);
        s.sig = small_order_forgery();
    }
    cases.push((
        "small_order_key_forgery",
        "The universal forgery for the identity point under its key id.",
        e,
        trusted.clone(),
        decision,
    ));

    let mut out = Vec::new();
    for (name, description, env, trusted, ty) in cases {
        let envelope = json::to_value(&env)?;
        let expected = verify_envelope_case(&envelope, &trusted, ty)?;
        out.push(json!({
            "name": name,
            "description": description,
            "envelope": envelope,
            "trusted_keys": trusted,
            "expected_payload_type": ty,
            "expected": expected,
        }));
    }
    let pae_cases: Vec<Value> = [
        ("http://example.com/HelloWorld", "hello world"),
        (PayloadType::Request.media_type(), "{}"),
        (PayloadType::Certificate.media_type(), ""),
    ]
    .iter()
    .map(|(t, b)| {
        json!({
            "payload_type": t,
            "body_utf8": b,
            "pae_hex": hex::encode(pae(t, b.as_bytes())),
        })
    })
    .collect();
    Ok(json!({
        "schema": "seb-envelope-vectors/1",
        "pae": pae_cases,
        "envelopes": out,
    }))
}

/// The canonical small-order points (orders 1, 2, 4, 4, 8, 8, 8, 8).
pub const SMALL_ORDER_POINTS: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// RFC 8032 section 7.1, tests 1 and 2: (secret seed, public key, message, signature).
pub const RFC8032: [(&str, &str, &str, &str); 2] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
];

fn keys_file() -> GenResult<Value> {
    let keys: Vec<Value> = KEY_NAMES
        .iter()
        .map(|n| {
            let k = key(n);
            json!({
                "name": n,
                "seed_hex": hex::encode(seed(n)),
                "public_key": k.public_key().to_base64(),
                "kid": k.kid().to_string(),
            })
        })
        .collect();
    let mut checks = Vec::new();
    for (i, p) in SMALL_ORDER_POINTS.iter().enumerate() {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(p, &mut raw)?;
        let got = key_check_kind(&PublicKey::from_bytes(&raw));
        if got != "weak" {
            return Err(format!("small-order point {p} parsed as `{got}`").into());
        }
        checks.push(json!({"name": format!("small_order_{i}"), "public_key": STANDARD.encode(raw), "expected": got}));
    }
    // The first y (as a small integer) that is not on the curve.
    let mut found = false;
    for y in 2u8..=255 {
        let mut raw = [0u8; 32];
        raw[0] = y;
        let r = PublicKey::from_bytes(&raw);
        if key_check_kind(&r) == "invalid_point" {
            checks.push(json!({"name": "not_on_curve", "public_key": STANDARD.encode(raw), "expected": "invalid_point"}));
            found = true;
            break;
        }
    }
    if !found {
        return Err("no off-curve point found".into());
    }
    // Non-canonical y (≥ p): p + 3 encodes the same point as y = 3, which has large order.
    // RFC 8032 §5.1.3 requires refusing it; the canonical y = 3 is a valid key (of a point
    // whose private key nobody knows).
    let mut y3 = [0u8; 32];
    y3[0] = 3;
    checks.push(
        json!({"name": "y_3_canonical", "public_key": STANDARD.encode(y3), "expected": "ok"}),
    );
    for (name, sign) in [("y_3_non_canonical", 0x7f), ("y_3_non_canonical_sign_bit", 0xff)] {
        let mut twin = [0xffu8; 32];
        twin[0] = 0xed + 3;
        twin[31] = sign;
        checks.push(
            json!({"name": name, "public_key": STANDARD.encode(twin), "expected": "invalid_point"}),
        );
    }
    let mut p_itself = [0xffu8; 32];
    p_itself[0] = 0xed;
    p_itself[31] = 0x7f;
    checks.push(json!({"name": "y_p_non_canonical_zero", "public_key": STANDARD.encode(p_itself), "expected": "invalid_point"}));
    checks.push(json!({"name": "valid", "public_key": pk_b64("agent-1"), "expected": "ok"}));
    checks.push(json!({"name": "31_bytes", "public_key": STANDARD.encode([7u8; 31]), "expected": "encoding"}));
    checks.push(json!({"name": "unpadded", "public_key": pk_b64("agent-1").trim_end_matches('='), "expected": "encoding"}));
    for c in &checks {
        let pk = c.get("public_key").and_then(Value::as_str).ok_or("no key")?;
        let want = c.get("expected").and_then(Value::as_str).ok_or("no expectation")?;
        let got = key_check_kind(&PublicKey::from_base64(pk));
        if got != want {
            return Err(format!("key check {pk}: got `{got}`, meant `{want}`").into());
        }
    }
    let rfc8032: Vec<Value> = RFC8032
        .iter()
        .map(|(seed, pk, msg, sig)| json!({"seed_hex": seed, "public_key_hex": pk, "message_hex": msg, "signature_hex": sig}))
        .collect();
    Ok(json!({
        "schema": "seb-key-vectors/1",
        "seed_rule": "seed = SHA-256(\"seb-core test vectors v1 key \" + name); kid = hex(SHA-256(public key))",
        "keys": keys,
        "public_key_checks": checks,
        "rfc8032": rfc8032,
    }))
}

/// RFC 8785 vectors: (name, input text, expected canonical text). The inputs and outputs are
/// the examples of RFC 8785 (sections 3.2.2, 3.2.3) and of its reference test suite, plus
/// escapes and UTF-16 ordering cases.
pub const JCS_CASES: &[(&str, &str, &str)] = &[
    (
        "arrays",
        "[\n  56,\n  {\n    \"d\": true,\n    \"10\": null,\n    \"1\": [ ]\n  }\n]\n",
        "[56,{\"1\":[],\"10\":null,\"d\":true}]",
    ),
    (
        "french",
        "{\n  \"peach\": \"This sorting order\",\n  \"péché\": \"is wrong according to French\",\n  \"pêche\": \"but canonicalization MUST\",\n  \"sin\":   \"ignore locale\"\n}\n",
        "{\"peach\":\"This sorting order\",\"péché\":\"is wrong according to French\",\"pêche\":\"but canonicalization MUST\",\"sin\":\"ignore locale\"}",
    ),
    (
        "structures",
        "{\n  \"1\": {\"f\": {\"f\": \"hi\",\"F\": 5} ,\"\\n\": 56.0},\n  \"10\": { },\n  \"\": \"empty\",\n  \"a\": { },\n  \"111\": [ {\"e\": \"yes\",\"E\": \"no\" } ],\n  \"A\": { }\n}\n",
        "{\"\":\"empty\",\"1\":{\"\\n\":56,\"f\":{\"F\":5,\"f\":\"hi\"}},\"10\":{},\"111\":[{\"E\":\"no\",\"e\":\"yes\"}],\"A\":{},\"a\":{}}",
    ),
    (
        "unicode",
        "{\n  \"Unnormalized Unicode\":\"A\\u030a\"\n}\n",
        "{\"Unnormalized Unicode\":\"A\u{30a}\"}",
    ),
    (
        "values",
        "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}\n",
        "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}",
    ),
    (
        "weird",
        "{\n  \"\\u20ac\": \"Euro Sign\",\n  \"\\r\": \"Carriage Return\",\n  \"\\u000a\": \"Newline\",\n  \"1\": \"One\",\n  \"\\u0080\": \"Control\\u007f\",\n  \"\\ud83d\\ude02\": \"Smiley\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"</script>\": \"Browser Challenge\"\n}\n",
        "{\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u{80}\":\"Control\u{7f}\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😂\":\"Smiley\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
    ),
    (
        "rfc8785_sorting",
        "{\n  \"\\u20ac\": \"Euro Sign\",\n  \"\\r\": \"Carriage Return\",\n  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"1\": \"One\",\n  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n  \"\\u0080\": \"Control\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n}\n",
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
    ),
    (
        "utf16_order_astral_before_private_use",
        "{\"\\ue000\": 1, \"\\ud83d\\ude00\": 2, \"\\uffff\": 3, \"\\ud800\\udc00\": 4, \"z\": 5}",
        "{\"z\":5,\"𐀀\":4,\"😀\":2,\"\u{e000}\":1,\"\u{ffff}\":3}",
    ),
    (
        "escapes",
        "[\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\", \"\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\", \"\\u007f\\u2028\\u2029\\/\\\\\\\"<>&'\"]",
        "[\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\",\"\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\",\"\u{7f}\u{2028}\u{2029}/\\\\\\\"<>&'\"]",
    ),
    (
        "numbers_edge",
        "[-0, 0.0, -0.0, 1e21, 1e20, 1E-7, 0.000001, 5e-324, -5e-324, 1.7976931348623157e308, 9007199254740991, -9007199254740991, 100, 1.5e1, 0.1]",
        "[0,0,0,1e+21,100000000000000000000,1e-7,0.000001,5e-324,-5e-324,1.7976931348623157e+308,9007199254740991,-9007199254740991,100,15,0.1]",
    ),
    (
        "nested_empty",
        "{\"b\": [[], {}], \"a\": {\"c\": {\"e\": [], \"d\": {}}}}",
        "{\"a\":{\"c\":{\"d\":{},\"e\":[]}},\"b\":[[],{}]}",
    ),
];

/// RFC 8785 appendix B: IEEE 754 double (hex bits) → canonical number text.
pub const JCS_NUMBERS: &[(&str, &str)] = &[
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
];

fn jcs_files() -> GenResult<Vec<OutFile>> {
    let mut out = Vec::new();
    for (name, input, expected) in JCS_CASES {
        out.push(OutFile {
            path: format!("jcs/input/{name}.json"),
            bytes: input.as_bytes().to_vec(),
        });
        out.push(OutFile {
            path: format!("jcs/output/{name}.json"),
            bytes: expected.as_bytes().to_vec(),
        });
    }
    let numbers: Vec<Value> = JCS_NUMBERS
        .iter()
        .map(|(bits, text)| json!({"ieee754_hex": bits, "canonical": text}))
        .collect();
    let doc = json!({
        "schema": "seb-jcs-numbers/1",
        "source": "RFC 8785 appendix B",
        "numbers": numbers,
        "not_serialisable": ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"],
    });
    out.push(OutFile { path: "jcs/numbers.json".into(), bytes: pretty(&doc)? });
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Putting it together
// ---------------------------------------------------------------------------------------

fn pretty(v: &Value) -> GenResult<Vec<u8>> {
    let mut b = serde_json::to_vec_pretty(v)?;
    b.push(b'\n');
    Ok(b)
}

/// Build one case's files: `pipeline/<name>.json` and `pipeline/<name>.presentation.json`.
/// Fails when the pipeline's verdict differs from the case's declared intent.
pub fn case_files(c: &Case) -> GenResult<(Vec<OutFile>, Value)> {
    let built = c.scenario.build()?;
    let verdict = run_case(&built.body, &built.broker, &built.scope, &built.snapshot)?;
    let got = match &verdict {
        Ok(_) => Intent::Admissible,
        Err(r) => Intent::Rejected(r.check, r.decision),
    };
    if got != c.intent {
        let reason = verdict.as_ref().err().map(|r| r.reason.clone()).unwrap_or_default();
        return Err(format!(
            "case `{}`: meant {:?}, pipeline says {got:?} ({reason})",
            c.name, c.intent
        )
        .into());
    }
    let expected = verdict_json(&verdict);
    let presentation_file = format!("{}.presentation.json", c.name);
    let mut doc = json!({
        "schema": CASE_SCHEMA,
        "name": c.name,
        "description": c.description,
        "presentation_file": presentation_file,
        "broker": built.broker,
        "scope": built.scope,
        "snapshot": built.snapshot,
        "expected": expected,
        "presented": presented_json(&verdict),
    });
    if let (Some(p), Some(o)) = (built.certificate_payload, doc.as_object_mut()) {
        o.insert("certificate_payload".into(), p);
    }
    let files = vec![
        OutFile { path: format!("pipeline/{}.json", c.name), bytes: pretty(&doc)? },
        OutFile { path: format!("pipeline/{presentation_file}"), bytes: built.body },
    ];
    Ok((files, json!({"name": c.name, "expected": expected})))
}

/// Every generated file, in a stable order.
pub fn generate() -> GenResult<Vec<OutFile>> {
    let mut out = Vec::new();
    out.push(OutFile { path: "keys.json".into(), bytes: pretty(&keys_file()?)? });
    out.push(OutFile { path: "envelopes.json".into(), bytes: pretty(&envelopes_file()?)? });
    let mut index = Vec::new();
    let mut names = BTreeSet::new();
    for c in cases() {
        if !names.insert(c.name) {
            return Err(format!("duplicate case name `{}`", c.name).into());
        }
        let (files, entry) = case_files(&c)?;
        out.extend(files);
        index.push(entry);
    }
    out.push(OutFile {
        path: "pipeline/index.json".into(),
        bytes: pretty(
            &json!({"schema": "seb-pipeline-index/1", "now_ms": NOW_MS, "cases": index}),
        )?,
    });
    out.extend(jcs_files()?);
    Ok(out)
}
