//! Fixtures: one store shared by admission and broker (embedded mode), the test double, keys,
//! and helpers to propose, approve and execute.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use seb_admission::client::{
    ADMIN_SIGNATURE_HEADER, AdminRequest, READ_SIGNATURE_HEADER, sign_admin, sign_approval,
    sign_proposal, sign_read,
};
use seb_admission::clock::ManualClock;
use seb_admission::service::ProposalView;
use seb_admission::{Admission, AdmissionConfig, AdmissionError, Platforms};
use seb_broker::clock::ManualClock as BrokerClock;
use seb_broker::engine::{Broker, EngineSettings, ExecResult, TrustRoots};
use seb_broker::http::AppState;
use seb_broker::records::RecordSigner;
use seb_core::certificate::UnverifiedCertificate;
use seb_core::envelope::Envelope;
use seb_core::json;
use seb_core::keys::{SigningKey, TrustedKeys};
use seb_core::pipeline::{Approver, ApproverRegistry, ApproverRole, PathRules, sign_request};
use seb_core::types::{
    Approval, ApprovalDecision, CertificatePayload, Decision, ExecRequest, FailedCheck, Platform,
    Presentation, Proposal,
};
use seb_store::Revocation;
use seb_store::sqlite::SqliteStore;
use seb_target::test_double::TestTarget;
use serde_json::{Value, json};
use tower::ServiceExt as _;

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
pub fn admin() -> SigningKey {
    key(40)
}
pub fn other_agent() -> SigningKey {
    key(50)
}

pub struct Env {
    pub admission: Arc<Admission>,
    pub broker: Arc<Broker>,
    pub store: Arc<SqliteStore>,
    pub target: Arc<TestTarget>,
    pub clock: Arc<ManualClock>,
    pub broker_clock: Arc<BrokerClock>,
    /// Kept alive for the store and target files.
    pub _dir: tempfile::TempDir,
}

pub fn write_key(dir: &Path, name: &str, k: &SigningKey) {
    std::fs::write(
        dir.join(name),
        base64::engine::general_purpose::STANDARD.encode(k.seed().as_ref()),
    )
    .unwrap();
    // Key files other users can read are refused.
    std::fs::set_permissions(dir.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
}

/// The `[admission]` configuration of the fixtures, with `extra` appended inside the table.
pub fn config_text(extra: &str) -> String {
    let mut s = String::from(
        "[admission]\nissuer_key_file = \"issuer.seed\"\nissuer_name = \"test-admission\"\n",
    );
    s += extra;
    s += &format!(
        "\n[[admission.agents]]\nname = \"agent-a\"\npublic_keys = [\"{}\"]\ngroups = [\"sre\"]\nattributes = {{ team = \"payments\", environment = \"prod\" }}\n",
        agent().public_key().to_base64()
    );
    s += &format!(
        "\n[[admission.agents]]\nname = \"agent-b\"\npublic_keys = [\"{}\"]\nattributes = {{ team = \"web\" }}\n",
        other_agent().public_key().to_base64()
    );
    for i in 0..3u8 {
        s += &format!(
            "\n[[admission.approvers]]\nname = \"validator-{i}\"\nrole = \"validator\"\npublic_key = \"{}\"\n",
            validator(i).public_key().to_base64()
        );
        s += &format!(
            "\n[[admission.approvers]]\nname = \"human-{i}\"\nrole = \"human\"\npublic_key = \"{}\"\n",
            human(i).public_key().to_base64()
        );
    }
    s += &format!(
        "\n[[admission.admins]]\nname = \"ops\"\npublic_key = \"{}\"\n",
        admin().public_key().to_base64()
    );
    s += &format!(
        "\n[admission.break_glass]\nquorum = 2\noperators = [{{ name = \"op-0\", public_key = \"{}\" }}, {{ name = \"op-1\", public_key = \"{}\" }}, {{ name = \"op-2\", public_key = \"{}\" }}]\n",
        operator(0).public_key().to_base64(),
        operator(1).public_key().to_base64(),
        operator(2).public_key().to_base64()
    );
    s
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

pub async fn env() -> Env {
    env_with("").await
}

/// An environment whose `[admission]` table has `extra` lines.
pub async fn env_with(extra: &str) -> Env {
    env_with_text(&config_text(extra)).await
}

/// An environment from this whole configuration text.
pub async fn env_with_text(text: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    write_key(dir.path(), "issuer.seed", &issuer());
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("seb.db"), Default::default()).unwrap());
    let target = Arc::new(TestTarget::open(&dir.path().join("target.json")).unwrap());
    target.insecure_direct_write("cfg", json!({"replicas": 3, "image": "nginx:1"})).unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let broker_clock = Arc::new(BrokerClock::new(NOW_MS));
    let cfg = AdmissionConfig::from_toml_str(text, dir.path()).unwrap();
    let mut platforms = Platforms::default();
    platforms.insert(target.clone());
    let admission = Admission::open(&cfg, store.clone(), platforms, clock.clone()).await.unwrap();
    let broker = Arc::new(Broker::new(
        store.clone(),
        vec![target.clone()],
        RecordSigner::new(broker_key()),
        trust(),
        EngineSettings::default(),
        broker_clock.clone(),
    ));
    Env { admission, broker, store, target, clock, broker_clock, _dir: dir }
}

impl Env {
    /// Move both clocks.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(ms);
        let now = seb_admission::clock::Clock::now_ms(self.clock.as_ref()).unwrap();
        self.broker_clock.set(now);
    }

    pub fn now(&self) -> u64 {
        seb_admission::clock::Clock::now_ms(self.clock.as_ref()).unwrap()
    }

    /// A `set` proposal on `cfg` whose consequence is driven by `risk` (see the test double).
    pub fn proposal(&self, id: &str, replicas: u64, risk: f64) -> Proposal {
        Proposal {
            proposal_id: id.into(),
            agent: "agent-a".into(),
            platform: Platform::Test,
            op: "set".into(),
            target: json!({"name": "cfg"}),
            params: json!({"value": {"replicas": replicas, "image": "nginx:1"}, "risk": risk}),
            constraints: vec![],
            rationale: "scale for the sale".into(),
            at_ms: self.now(),
        }
    }

    pub async fn submit_as(
        &self,
        p: &Proposal,
        k: &SigningKey,
    ) -> Result<ProposalView, AdmissionError> {
        let env = sign_proposal(p, k).unwrap();
        self.admission.submit(&json::canonical(&env).unwrap()).await
    }

    pub async fn propose(&self, id: &str, replicas: u64, risk: f64) -> ProposalView {
        self.submit_as(&self.proposal(id, replicas, risk), &agent()).await.unwrap()
    }

    pub fn approval(&self, v: &ProposalView, name: &str, decision: ApprovalDecision) -> Approval {
        Approval {
            proposal_id: v.proposal_id.clone(),
            contract_digest: v.contract_digest.unwrap(),
            evidence_digest: v.evidence.as_ref().unwrap().digest,
            decision,
            approver: name.into(),
            comment: "looks right".into(),
            at_ms: self.now(),
        }
    }

    pub async fn send_approval(
        &self,
        a: &Approval,
        k: &SigningKey,
    ) -> Result<ProposalView, AdmissionError> {
        let env = sign_approval(a, k).unwrap();
        self.admission.approve(&a.proposal_id, &json::canonical(&env).unwrap()).await
    }

    pub async fn approve(&self, v: &ProposalView, name: &str, k: &SigningKey) -> ProposalView {
        self.send_approval(&self.approval(v, name, ApprovalDecision::Approve), k).await.unwrap()
    }

    pub async fn certificate(&self, id: &str) -> (Envelope, CertificatePayload) {
        let env = self.admission.certificate(id).await.unwrap();
        let p = UnverifiedCertificate::new(env.clone()).insecure_payload(usize::MAX).unwrap();
        (env, p)
    }

    /// Present a certificate to the broker as its agent.
    pub async fn execute(&self, env: &Envelope) -> ExecResult {
        let p = UnverifiedCertificate::new(env.clone()).insecure_payload(usize::MAX).unwrap();
        let request = ExecRequest {
            cid: p.cid.clone(),
            nonce: p.nonce.clone(),
            op: p.contract.op.clone(),
            target: p.contract.target.clone(),
            params: p.contract.params.clone(),
            caller: p.subject.agent.clone(),
            t_exec_ms: self.now(),
        };
        let signer = if p.subject.agent == "agent-a" { agent() } else { other_agent() };
        let proof = sign_request(&request, &signer).unwrap();
        let body =
            json::canonical(&Presentation { certificate: env.clone(), request, proof }).unwrap();
        self.broker.execute(&body, "127.0.0.1").await
    }

    pub fn admin_request(
        &self,
        revoke: Option<Revocation>,
        load_policy: Option<&str>,
    ) -> (Vec<u8>, String) {
        let r = AdminRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            admin: "ops".into(),
            at_ms: self.now(),
            revoke,
            load_policy: load_policy.map(str::to_owned),
            invite_approver: None,
            remove_approver: None,
        };
        sign_admin(&r, &admin()).unwrap()
    }

    pub async fn load_policy(&self, text: &str) -> u64 {
        let (body, sig) = self.admin_request(None, Some(text));
        self.admission.load_policy(&body, Some(&sig)).await.unwrap()
    }

    pub async fn revoke(&self, what: Revocation) -> Envelope {
        let (body, sig) = self.admin_request(Some(what), None);
        self.admission.revoke(&body, Some(&sig)).await.unwrap()
    }

    /// Every ledger entry as (payloadType, signer kid, payload).
    pub async fn ledger(&self) -> Vec<(String, String, Value)> {
        use seb_store::Store as _;
        let n = self.store.ledger_size().await.unwrap();
        self.store
            .entries(0, n)
            .await
            .unwrap()
            .iter()
            .map(|e| {
                let env: Envelope = json::parse(e, usize::MAX).unwrap();
                let payload: Value =
                    serde_json::from_slice(&env.insecure_payload_bytes().unwrap()).unwrap();
                (env.payload_type.clone(), env.signatures[0].keyid.clone(), payload)
            })
            .collect()
    }
}

pub fn applied(r: &ExecResult) {
    match r {
        Ok(done) => {
            assert_eq!(done.outcome.status, seb_core::types::OutcomeStatus::Applied, "{done:?}")
        }
        Err(f) => panic!("refused: {f:?}"),
    }
}

pub fn refused(r: &ExecResult) -> (FailedCheck, Decision, u16) {
    match r {
        Ok(e) => panic!("expected a refusal, got {:?}", e.outcome.status),
        Err(f) => (f.failed_check, f.decision, f.http_status()),
    }
}

/// The broker's router with admission mounted, as `seb serve` builds it.
pub fn app(env: &Env) -> axum::Router {
    let state = AppState {
        broker: env.broker.clone(),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
    };
    seb_broker::http::router(state, Some(seb_admission::http::router(env.admission.clone())))
}

/// How a test request authenticates.
pub enum Auth<'a> {
    None,
    /// An admin-signed body's header value.
    Admin(&'a str),
    /// A signed request by this key at this time.
    Read(&'a SigningKey, u64),
    /// A raw `seb-request-signature` header value.
    Raw(&'a str),
}

/// Send one request; every error must be problem+json.
pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Vec<u8>,
    auth: Auth<'_>,
) -> (StatusCode, Value) {
    let mut b =
        Request::builder().method(method).uri(uri).header("content-type", "application/json");
    match auth {
        Auth::None => {}
        Auth::Admin(s) => b = b.header(ADMIN_SIGNATURE_HEADER, s),
        Auth::Read(k, at) => b = b.header(READ_SIGNATURE_HEADER, sign_read(k, method, uri, at)),
        Auth::Raw(s) => b = b.header(READ_SIGNATURE_HEADER, s),
    }
    let resp = app.clone().oneshot(b.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{v}");
    }
    (status, v)
}
