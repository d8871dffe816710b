//! The admission state machine.
//!
//! ```text
//!            submit ──► denied        (policy, compile, scope, observation, revoked agent, L5)
//!              │    ──► advisory      (L0: no certificate)
//!              │    ──► certified     (policy path: issued at once)
//!              ▼
//!           pending ──► certified     (approvals meet the requirement; evidence re-observed)
//!              │    ──► denied        (an approver denies; timeout; evidence changed)
//!              └──── break-glass draft ──► certified (m-of-n operator signatures)
//! ```
//!
//! Proposals live in memory: a restart forgets pending proposals (agents propose again) and
//! bumps `policy_epoch`, which invalidates every certificate issued before it (`readmit`).
//! Issuances and denials are in the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seb_core::certificate::{CertificateTrust, UnverifiedCertificate, encode_nonce};
use seb_core::digest::Digest;
use seb_core::envelope::{Envelope, EnvelopeError, EnvelopeSignature, PayloadType, pae};
use seb_core::json;
use seb_core::keys::{KeyId, PublicKey, SigningKey, TrustedKeys};
use seb_core::pipeline::{ApproverRegistry, ApproverRole, Observation, PathRules};
use seb_core::types::{
    Approval, ApprovalDecision, CertPath, CertificatePayload, Contract, EpochStatement, Evidence,
    Issuer, Platform, Proposal, RiskLevel, Subject, Validity,
};
use seb_store::{Epochs, Revocation, Store};
use seb_target::{ObserveRequest, PlatformProfile, Target};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::access::Caller;
use crate::client::{
    ADMIN_MEDIA_TYPE, AdminRequest, READ_MEDIA_TYPE, READ_SIGNATURE_HEADER, read_message,
};
use crate::clock::Clock;
use crate::config::{AdmissionConfig, AgentRegistry, NamedKeys, read_key_file};
use crate::error::AdmissionError;
use crate::paths::{Escalation, Requirement, required};
use crate::policy::{DEFAULT_POLICY, PolicyEngine, PolicyInput, PolicyOutcome};
use crate::records::{
    AdmissionDecision, AdmissionRecord, STAGE, SignedEntry, new_id, sign_statement,
};
use crate::scoring::{Score, ScoringConfig};

mod enrol;
pub use enrol::{
    ApproverRecord, ApproverView, EnrolmentView, INVITATION_TTL_MS, InvitationView, Registration,
};

/// The profile (pure rules) and the read-only observer of one platform.
#[derive(Clone)]
pub struct PlatformAdapter {
    pub profile: Arc<dyn PlatformProfile>,
    pub target: Arc<dyn Target>,
}

impl std::fmt::Debug for PlatformAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlatformAdapter({})", self.profile.platform())
    }
}

/// The platforms admission can compile and observe.
#[derive(Debug, Clone, Default)]
pub struct Platforms {
    map: BTreeMap<Platform, PlatformAdapter>,
}

impl Platforms {
    /// Register a platform implementing both seams.
    pub fn insert<T: PlatformProfile + Target>(&mut self, t: Arc<T>) -> &mut Self {
        let profile: Arc<dyn PlatformProfile> = t.clone();
        let target: Arc<dyn Target> = t;
        self.map.insert(profile.platform(), PlatformAdapter { profile, target });
        self
    }
    /// Register a profile and an observer separately (they must name the same platform).
    pub fn insert_parts(
        &mut self,
        profile: Arc<dyn PlatformProfile>,
        target: Arc<dyn Target>,
    ) -> &mut Self {
        self.map.insert(profile.platform(), PlatformAdapter { profile, target });
        self
    }
    fn get(&self, p: Platform) -> Option<&PlatformAdapter> {
        self.map.get(&p)
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Waiting for approvals (or a break-glass quorum).
    Pending,
    /// A certificate was issued.
    Certified,
    /// Refused; `reason` says why.
    Denied,
    /// L0: advisory only, no certificate.
    Advisory,
}

impl ProposalStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Certified => "certified",
            Self::Denied => "denied",
            Self::Advisory => "advisory",
        }
    }
}

/// An approval as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    pub approver: String,
    pub role: ApproverRole,
    pub decision: ApprovalDecision,
    pub comment: String,
    pub at_ms: u64,
}

/// What the policy decided, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyView {
    #[serde(flatten)]
    pub outcome: PolicyOutcome,
    pub policy_epoch: u64,
    pub policy_digest: Digest,
}

/// A break-glass draft: the exact certificate payload operators sign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakGlassView {
    pub payload_type: String,
    /// Standard base64 of the canonical payload: sign `PAE(payload_type, payload)`.
    pub payload: String,
    pub certificate: CertificatePayload,
    pub signers: Vec<String>,
    pub quorum: usize,
    pub expires_at_ms: u64,
}

/// A break-glass draft as a proposal view shows it: who signed, not what (the exact payload
/// is served only to operators and admins by the break-glass route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakGlassStatus {
    pub cid: String,
    pub signers: Vec<String>,
    pub quorum: usize,
    pub expires_at_ms: u64,
}

/// A proposal with everything admission found out about it (what approvers see). Values the
/// platform profile marks sensitive are shown as `{digest, length}` ([`seb_target::Sensitive`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposalView {
    pub proposal_id: String,
    pub agent: String,
    pub status: ProposalStatus,
    /// The proposal as signed (the rationale is shown, never used).
    pub proposal: Proposal,
    pub received_at_ms: u64,
    /// Pending proposals are denied after this.
    pub deadline_ms: Option<u64>,
    pub contract: Option<Contract>,
    pub contract_digest: Option<Digest>,
    pub evidence: Option<Evidence>,
    pub score: Option<Score>,
    pub policy: Option<PolicyView>,
    pub requirement: Option<Requirement>,
    pub approvals: Vec<ApprovalView>,
    /// Why it was denied or is advisory.
    pub reason: Option<String>,
    pub cid: Option<String>,
    pub cert_path: Option<CertPath>,
    pub validity: Option<Validity>,
    pub certificate_digest: Option<Digest>,
    pub break_glass: Option<BreakGlassStatus>,
    /// Id of the ledger record of the final decision.
    pub record_id: Option<String>,
}

/// A short form for lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposalSummary {
    pub proposal_id: String,
    pub agent: String,
    pub status: ProposalStatus,
    pub platform: Platform,
    pub op: String,
    pub risk_level: Option<RiskLevel>,
    pub score_milli: Option<u32>,
    pub cert_path: Option<CertPath>,
    pub approvals: usize,
    pub received_at_ms: u64,
    pub cid: Option<String>,
}

struct BreakGlassState {
    payload: CertificatePayload,
    bytes: Vec<u8>,
    signatures: BTreeMap<KeyId, (String, EnvelopeSignature)>,
}

struct Entry {
    view: ProposalView,
    subject_key: PublicKey,
    attestations: Vec<Envelope>,
    validators: BTreeSet<String>,
    humans: BTreeSet<String>,
    issuing: bool,
    certificate: Option<Envelope>,
    break_glass: Option<BreakGlassState>,
}

/// The loaded policy and the epoch it was loaded at.
struct ActivePolicy {
    engine: Arc<PolicyEngine>,
    epoch: u64,
}

/// One entry of the policy history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVersion {
    pub policy_epoch: u64,
    pub digest: Digest,
    pub loaded_at_ms: u64,
    /// `startup` or the admin's name.
    pub loaded_by: String,
}

/// Static settings.
#[derive(Debug, Clone)]
struct Settings {
    issuer_name: String,
    validity_s: u64,
    approval_timeout_ms: u64,
    max_age_ms: u64,
    request_max_age_ms: u64,
    statement_ttl_ms: u64,
    body_limit: usize,
    observe_timeout: Duration,
    forbid_owner_approval: bool,
}

/// The admission boundary.
pub struct Admission {
    settings: Settings,
    issuer: SigningKey,
    agents: AgentRegistry,
    approvers: ApproverRegistry,
    admins: NamedKeys,
    break_glass: NamedKeys,
    break_glass_trust: TrustedKeys,
    break_glass_quorum: usize,
    path_rules: PathRules,
    escalation: Escalation,
    scoring: ScoringConfig,
    policy: RwLock<Option<ActivePolicy>>,
    history: Mutex<Vec<PolicyVersion>>,
    platforms: Platforms,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    proposals: Mutex<BTreeMap<String, Entry>>,
    /// Serialises this instance's epoch changes so each statement names the epochs it makes.
    epoch_lock: tokio::sync::Mutex<()>,
    admin_seen: Mutex<BTreeMap<String, u64>>,
    /// Told of every state change (notifications, [`crate::notify`]).
    events: std::sync::OnceLock<Arc<dyn crate::notify::ProposalEvents>>,
    /// Passkey enrolment settings and configured passkeys' counters (`enrol`).
    enrolment: enrol::Enrolment,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("issuer", &self.issuer.kid())
            .field("store", &self.store.backend())
            .field("platforms", &self.platforms)
            .finish_non_exhaustive()
    }
}

/// Most proposals kept in memory; the oldest decided ones are dropped first.
const MAX_PROPOSALS: usize = 100_000;

fn proposal_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

impl Admission {
    /// Build from configuration, reading the issuer key and the policy file, then load the
    /// policy ([`Admission::start`]).
    pub async fn open(
        cfg: &AdmissionConfig,
        store: Arc<dyn Store>,
        platforms: Platforms,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, AdmissionError> {
        let issuer = read_key_file(&cfg.issuer_key_file)?;
        let policy = match &cfg.policy_file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                AdmissionError::Config(format!("reading policy file `{}`: {e}", p.display()))
            })?),
            None => None,
        };
        let a = Arc::new(Self::new(cfg, issuer, store, platforms, clock)?);
        a.start(policy.as_deref()).await?;
        Ok(a)
    }

    /// Build without loading a policy yet (call [`Admission::start`] before serving).
    pub fn new(
        cfg: &AdmissionConfig,
        issuer: SigningKey,
        store: Arc<dyn Store>,
        platforms: Platforms,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AdmissionError> {
        cfg.validate()?;
        let reg = cfg.registries()?;
        Ok(Self {
            settings: Settings {
                issuer_name: cfg.issuer_name.clone(),
                validity_s: cfg.validity_s,
                approval_timeout_ms: cfg.approval_timeout_s.saturating_mul(1000),
                max_age_ms: cfg.proposal_max_age_s.saturating_mul(1000),
                request_max_age_ms: cfg.request_max_age_s.saturating_mul(1000),
                statement_ttl_ms: cfg.statement_ttl_ms,
                body_limit: cfg.body_limit,
                observe_timeout: Duration::from_millis(cfg.observe_timeout_ms),
                forbid_owner_approval: cfg.forbid_owner_approval,
            },
            issuer,
            agents: reg.agents,
            approvers: reg.approvers,
            admins: reg.admins,
            break_glass_trust: reg.break_glass.trusted(),
            break_glass: reg.break_glass,
            break_glass_quorum: reg.break_glass_quorum,
            path_rules: reg.path_rules,
            escalation: cfg.escalation,
            scoring: cfg.scoring.clone(),
            policy: RwLock::new(None),
            history: Mutex::new(Vec::new()),
            platforms,
            store,
            clock,
            proposals: Mutex::new(BTreeMap::new()),
            epoch_lock: tokio::sync::Mutex::new(()),
            admin_seen: Mutex::new(BTreeMap::new()),
            events: std::sync::OnceLock::new(),
            enrolment: enrol::Enrolment::from_config(cfg)?,
        })
    }

    /// Tell `events` of every proposal state change from now on (once; `false` if already set).
    pub fn set_events(&self, events: Arc<dyn crate::notify::ProposalEvents>) -> bool {
        self.events.set(events).is_ok()
    }

    /// Hand the proposal's current view to the events sink, if any.
    fn emit(&self, id: &str) {
        if let Some(ev) = self.events.get()
            && let Ok(v) = self.view(id)
        {
            ev.changed(&v);
        }
    }

    /// Whether `approver` is an owner of `agent` and the configuration forbids owners to
    /// approve their agent's proposals.
    pub fn owner_conflict(&self, approver: &str, agent: &str) -> bool {
        self.settings.forbid_owner_approval
            && self.agents.get(agent).is_some_and(|a| a.owners.iter().any(|o| o == approver))
    }

    /// Load the initial policy (the default when `None`). Starting admission is a policy
    /// load: it bumps `policy_epoch`, so certificates issued before a restart under a
    /// possibly different policy answer `readmit`.
    pub async fn start(&self, policy: Option<&str>) -> Result<u64, AdmissionError> {
        self.load_policy_text(policy.unwrap_or(DEFAULT_POLICY), "startup").await
    }

    /// The issuer's public key.
    pub fn issuer_key(&self) -> PublicKey {
        self.issuer.public_key()
    }

    /// The issuer's name.
    pub fn issuer_name(&self) -> &str {
        &self.settings.issuer_name
    }

    /// Body limit for the HTTP layer.
    pub fn body_limit(&self) -> usize {
        self.settings.body_limit
    }

    /// Break-glass operator keys (for `/keys`).
    pub fn break_glass_operators(&self) -> Vec<(String, PublicKey)> {
        self.break_glass.iter().map(|(n, k)| (n.to_owned(), *k)).collect()
    }

    /// Distinct operator signatures a break-glass certificate needs.
    pub fn break_glass_quorum(&self) -> usize {
        self.break_glass_quorum
    }

    fn now(&self) -> Result<u64, AdmissionError> {
        Ok(self.clock.now_ms()?)
    }

    fn active_policy(&self) -> Result<(Arc<PolicyEngine>, u64), AdmissionError> {
        let g = self
            .policy
            .read()
            .map_err(|_| AdmissionError::Internal("policy lock poisoned".into()))?;
        g.as_ref()
            .map(|p| (p.engine.clone(), p.epoch))
            .ok_or_else(|| AdmissionError::Internal("no policy loaded: call start()".into()))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Entry>>, AdmissionError> {
        self.proposals.lock().map_err(|_| AdmissionError::Internal("proposal lock poisoned".into()))
    }

    // ------------------------------------------------------------------ proposals

    /// Submit a signed proposal (the body is the `proposal` envelope).
    pub async fn submit(&self, body: &[u8]) -> Result<ProposalView, AdmissionError> {
        let now = self.now()?;
        let limit = self.settings.body_limit;
        let env: Envelope =
            json::parse(body, limit).map_err(|e| AdmissionError::Parse(e.to_string()))?;
        // The agent's name is needed to know which keys may have signed: read it from the
        // unverified payload, then verify under exactly that agent's keys and use only the
        // verified bytes from here on.
        let claimed: Proposal = json::parse(
            &env.insecure_payload_bytes().map_err(|e| AdmissionError::Parse(e.to_string()))?,
            limit,
        )
        .map_err(|e| AdmissionError::Parse(format!("proposal: {e}")))?;
        let agent = self.agents.get(&claimed.agent).ok_or_else(|| {
            AdmissionError::Unauthenticated(format!(
                "agent `{}` is not registered",
                short(&claimed.agent)
            ))
        })?;
        let keys: TrustedKeys = agent.keys.iter().copied().collect();
        let verified = env.verify(PayloadType::Proposal, &keys).map_err(|e| match e {
            EnvelopeError::UntrustedKey(_) => AdmissionError::Unauthenticated(format!(
                "proposal is not signed by a key registered to `{}`",
                agent.name
            )),
            EnvelopeError::WrongPayloadType { .. }
            | EnvelopeError::PayloadEncoding
            | EnvelopeError::Payload(_) => AdmissionError::Parse(e.to_string()),
            other => AdmissionError::Unauthenticated(other.to_string()),
        })?;
        let [signer] = verified.signers() else {
            return Err(AdmissionError::Unauthenticated(
                "a proposal carries exactly one signature".into(),
            ));
        };
        let subject_key = seb_core::keys::KeyResolver::resolve(&keys, signer)
            .ok_or_else(|| AdmissionError::Unauthenticated("signer vanished".into()))?;
        let proposal: Proposal =
            verified.parse(limit).map_err(|e| AdmissionError::Parse(format!("proposal: {e}")))?;
        if proposal.agent != agent.name {
            return Err(AdmissionError::Unauthenticated(
                "signed agent differs from the claimed one".into(),
            ));
        }
        if !proposal_id_ok(&proposal.proposal_id) {
            return Err(AdmissionError::Parse(
                "proposal_id must be 1..128 of [A-Za-z0-9-_.:]".into(),
            ));
        }
        if proposal.at_ms.abs_diff(now) > self.settings.max_age_ms {
            return Err(AdmissionError::Stale(format!(
                "proposal at_ms is {} ms from admission's clock, at most {} allowed",
                proposal.at_ms.abs_diff(now),
                self.settings.max_age_ms
            )));
        }
        // Reserve the id.
        {
            let mut map = self.lock()?;
            if map.contains_key(&proposal.proposal_id) {
                return Err(AdmissionError::Conflict(format!(
                    "proposal `{}` exists",
                    proposal.proposal_id
                )));
            }
            if map.len() >= MAX_PROPOSALS {
                prune(&mut map);
            }
            map.insert(
                proposal.proposal_id.clone(),
                Entry {
                    view: ProposalView {
                        proposal_id: proposal.proposal_id.clone(),
                        agent: proposal.agent.clone(),
                        status: ProposalStatus::Pending,
                        proposal: proposal.clone(),
                        received_at_ms: now,
                        deadline_ms: Some(now.saturating_add(self.settings.approval_timeout_ms)),
                        contract: None,
                        contract_digest: None,
                        evidence: None,
                        score: None,
                        policy: None,
                        requirement: None,
                        approvals: Vec::new(),
                        reason: None,
                        cid: None,
                        cert_path: None,
                        validity: None,
                        certificate_digest: None,
                        break_glass: None,
                        record_id: None,
                    },
                    subject_key,
                    attestations: Vec::new(),
                    validators: BTreeSet::new(),
                    humans: BTreeSet::new(),
                    // Nothing else may act on it until evaluation finishes.
                    issuing: true,
                    certificate: None,
                    break_glass: None,
                },
            );
        }
        let id = proposal.proposal_id.clone();
        match self.evaluate(&proposal, now).await {
            Ok(ev) => {
                let next = {
                    let mut map = self.lock()?;
                    let e = map.get_mut(&id).ok_or_else(|| AdmissionError::NotFound(id.clone()))?;
                    e.view.contract_digest = Some(ev.contract_digest);
                    e.view.contract = Some(ev.contract);
                    e.view.evidence = Some(ev.evidence);
                    e.view.score = Some(ev.score);
                    e.view.policy = Some(ev.policy);
                    e.view.requirement = ev.requirement;
                    e.issuing = false;
                    ev.next
                };
                match next {
                    Next::Deny(reason) => self.deny(&id, &reason).await?,
                    Next::Inapplicable(reason) => {
                        self.deny(&id, &reason).await?;
                        let record_id = self.view(&id).ok().and_then(|v| v.record_id);
                        return Err(AdmissionError::Inapplicable {
                            proposal_id: id,
                            record_id,
                            reason,
                        });
                    }
                    Next::Advisory(reason) => self.finish_advisory(&id, &reason).await?,
                    Next::Wait => {
                        info!(proposal_id = %id, "proposal waits for approvals");
                        self.emit(&id);
                    }
                    Next::Issue => self.issue(&id).await?,
                }
            }
            Err(reason) => {
                if let Ok(mut map) = self.lock()
                    && let Some(e) = map.get_mut(&id)
                {
                    e.issuing = false;
                }
                self.deny(&id, &reason).await?;
            }
        }
        self.view(&id)
    }

    /// Compile, check scope, observe, score and evaluate the policy. `Err` is a denial
    /// reason (nothing to show beyond it).
    async fn evaluate(&self, p: &Proposal, now: u64) -> Result<Evaluated, String> {
        let epochs =
            self.store.epoch_check("", &p.agent).await.map_err(|e| format!("store: {e}"))?;
        if epochs.agent_revoked {
            return Err(format!("agent `{}` is revoked", p.agent));
        }
        let adapter = self
            .platforms
            .get(p.platform)
            .ok_or_else(|| format!("platform `{}` is not configured", p.platform))?;
        let (target, params) = adapter
            .profile
            .compile(&p.op, &p.target, &p.params)
            .map_err(|e| format!("compile: {}", seb_store::error_chain(&e)))?;
        seb_core::constraints::validate(&p.constraints).map_err(|e| format!("constraints: {e}"))?;
        for c in &p.constraints {
            if params.pointer(&c.path).is_none() {
                return Err(format!("constraint path `{}` is not in params", short(&c.path)));
            }
        }
        let score = self.scoring.score(&adapter.profile.consequence(&p.op, &target, &params));
        let contract = Contract {
            platform: p.platform,
            op: p.op.clone(),
            target: target.clone(),
            params: params.clone(),
            constraints: p.constraints.clone(),
            risk_level: score.level,
        };
        let contract_digest = contract.digest().map_err(|e| format!("contract: {e}"))?;
        adapter.target.check_scope(&contract).map_err(|e| format!("scope: {e}"))?;
        let (evidence, observed) = self.observe(adapter, &contract, now).await?;
        let inapplicable = adapter.profile.applicable(&contract.op, &observed).err();
        let (engine, policy_epoch) = self.active_policy().map_err(|e| e.to_string())?;
        let paths: Vec<String> = p.constraints.iter().map(|c| c.path.clone()).collect();
        let outcome = engine
            .evaluate(&PolicyInput {
                agent: &p.agent,
                platform: p.platform,
                op: &p.op,
                target: &target,
                params: &params,
                constraint_paths: &paths,
                level: score.level,
                score: &score,
            })
            .map_err(|e| format!("policy: {e}"))?;
        let requirement =
            required(score.level, &self.path_rules, &self.escalation, &outcome.escalations);
        let next = if let Some(why) = inapplicable {
            Next::Inapplicable(why)
        } else if !outcome.permitted {
            Next::Deny(format!("policy: {}", outcome.reasons.join("; ")))
        } else if score.level == RiskLevel::L0 {
            Next::Advisory("L0 is advisory: no certificate is issued".into())
        } else if score.level == RiskLevel::L5 {
            Next::Deny("L5 is never certified autonomously (break-glass only)".into())
        } else {
            match requirement {
                None => Next::Deny(format!(
                    "{} is not certified by the configured path rules",
                    score.level
                )),
                Some(r) if r.needs_approvals() => Next::Wait,
                Some(_) => Next::Issue,
            }
        };
        Ok(Evaluated {
            contract,
            contract_digest,
            evidence,
            score,
            policy: PolicyView { outcome, policy_epoch, policy_digest: engine.digest() },
            requirement,
            next,
        })
    }

    async fn observe(
        &self,
        adapter: &PlatformAdapter,
        c: &Contract,
        now: u64,
    ) -> Result<(Evidence, Observation), String> {
        let req = ObserveRequest {
            op: c.op.clone(),
            target: c.target.clone(),
            params: c.params.clone(),
            pointers: adapter.profile.default_pointers(&c.op, &c.target, &c.params),
        };
        let obs = tokio::time::timeout(self.settings.observe_timeout, adapter.target.observe(&req))
            .await
            .map_err(|_| "observe: timed out".to_owned())?
            .map_err(|e| format!("observe: {}", seb_store::error_chain(&e)))?;
        let digest = Digest::of_json(&obs.projection).map_err(|e| format!("evidence: {e}"))?;
        let evidence = Evidence {
            digest,
            projection: obs.projection.clone(),
            observed_at_ms: now,
            tolerance: BTreeMap::new(),
        };
        // Check 9's rules against the observed state (an SSM type change), as the broker runs
        // them against the certified evidence.
        adapter.target.check_evidence(c, &evidence).map_err(|e| format!("scope: {e}"))?;
        Ok((evidence, obs))
    }

    // ------------------------------------------------------------------ access

    /// The registered identities of `kid` (none: not a registered key).
    fn caller(&self, kid: &KeyId) -> Option<(Caller, PublicKey)> {
        let mut key = None;
        let agent = self.agents.iter().find_map(|a| {
            a.keys.iter().find(|k| k.kid() == *kid).map(|k| {
                key = Some(*k);
                a.name.clone()
            })
        });
        let approver = self.approvers.get(kid).map(|a| {
            key = Some(a.key);
            (a.name.clone(), a.role)
        });
        let mut named = |keys: &NamedKeys| {
            keys.iter().find(|(_, k)| k.kid() == *kid).map(|(n, k)| {
                key = Some(*k);
                n.to_owned()
            })
        };
        let operator = named(&self.break_glass);
        let admin = named(&self.admins);
        let c = Caller { kid: kid.clone(), agent, approver, operator, admin };
        key.map(|k| (c, k))
    }

    /// Authenticate a signed request: `header` is the [`READ_SIGNATURE_HEADER`] value
    /// `<kid>:<at_ms>:<base64 signature>` over `PAE(READ_MEDIA_TYPE, "<method>\n<path?query>\n<at_ms>")`
    /// (see [`crate::client::sign_read`]). No header, a malformed one, an unregistered key,
    /// a signature that does not verify, or an `at_ms` outside `request_max_age_s` of
    /// admission's clock: [`AdmissionError::Unauthenticated`] (401).
    pub fn authenticate_request(
        &self,
        method: &str,
        path_and_query: &str,
        header: Option<&str>,
    ) -> Result<Caller, AdmissionError> {
        let unauth = |m: String| AdmissionError::Unauthenticated(m);
        let header = header.ok_or_else(|| {
            unauth(format!(
                "no credentials: sign the request with a registered key (`{READ_SIGNATURE_HEADER}: <kid>:<at_ms>:<signature>`)"
            ))
        })?;
        let mut parts = header.splitn(3, ':');
        let (Some(kid), Some(at), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(unauth(format!("malformed `{READ_SIGNATURE_HEADER}`")));
        };
        let kid: KeyId = kid.parse().map_err(|_| unauth("malformed key id".into()))?;
        let at_ms: u64 = at.parse().map_err(|_| unauth("malformed at_ms".into()))?;
        let (caller, key) =
            self.caller(&kid).ok_or_else(|| unauth(format!("key `{kid}` is not registered")))?;
        key.verify_b64(&pae(READ_MEDIA_TYPE, &read_message(method, path_and_query, at_ms)), sig)
            .map_err(|_| {
                unauth(format!(
                    "the signature does not verify for `{method} {}` under key `{kid}`",
                    short(path_and_query)
                ))
            })?;
        let now = self.now()?;
        if at_ms.abs_diff(now) > self.settings.request_max_age_ms {
            return Err(unauth(format!(
                "stale signature: signed {} ms from admission's clock, at most {} allowed",
                at_ms.abs_diff(now),
                self.settings.request_max_age_ms
            )));
        }
        Ok(caller)
    }

    fn not_found(id: &str) -> AdmissionError {
        AdmissionError::NotFound(format!("proposal `{}`", short(id)))
    }

    /// [`Admission::list`] as `caller` sees it: an agent its own proposals, approvers and
    /// admins every proposal.
    pub fn list_as(
        &self,
        caller: &Caller,
        status: Option<&str>,
        agent: Option<&str>,
    ) -> Result<Vec<ProposalSummary>, AdmissionError> {
        caller.require(caller.reads_proposals(), "GET /v1/admission/proposals")?;
        let mut all = self.list(status, agent)?;
        all.retain(|p| caller.sees(&p.agent));
        Ok(all)
    }

    /// [`Admission::view`] as `caller` sees it: a proposal it may not see is `404`, exactly
    /// like one that does not exist.
    pub fn view_as(&self, caller: &Caller, id: &str) -> Result<ProposalView, AdmissionError> {
        caller.require(caller.reads_proposals(), "GET /v1/admission/proposals/{id}")?;
        let v = self.view(id).map_err(|_| Self::not_found(id))?;
        if caller.sees(&v.agent) { Ok(v) } else { Err(Self::not_found(id)) }
    }

    /// [`Admission::certificate`] as `caller` may fetch it.
    pub fn certificate_as(&self, caller: &Caller, id: &str) -> Result<Envelope, AdmissionError> {
        caller
            .require(caller.reads_certificates(), "GET /v1/admission/proposals/{id}/certificate")?;
        let visible = {
            let map = self.lock()?;
            map.get(id).is_some_and(|e| {
                caller
                    .sees_certificate(&e.view.agent, e.view.cert_path == Some(CertPath::BreakGlass))
            })
        };
        if !visible {
            return Err(Self::not_found(id));
        }
        self.certificate(id)
    }

    /// The live break-glass draft of a proposal, for operators and admins.
    pub fn break_glass_show_as(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<BreakGlassView, AdmissionError> {
        caller.require(
            caller.handles_break_glass(),
            "GET /v1/admission/proposals/{id}/break-glass",
        )?;
        let map = self.lock()?;
        let e = map.get(id).ok_or_else(|| Self::not_found(id))?;
        e.break_glass
            .as_ref()
            .map(|b| self.bg_view(b))
            .ok_or_else(|| AdmissionError::NotFound("no break-glass draft".into()))
    }

    /// [`Admission::break_glass_draft`] by an operator or an admin.
    pub async fn break_glass_draft_as(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<BreakGlassView, AdmissionError> {
        caller.require(
            caller.handles_break_glass(),
            "POST /v1/admission/proposals/{id}/break-glass",
        )?;
        let v = self.break_glass_draft(id).await?;
        warn!(proposal_id = %id, caller = %caller.describe(), break_glass = true, "break-glass draft served");
        Ok(v)
    }

    /// A proposal.
    pub fn view(&self, id: &str) -> Result<ProposalView, AdmissionError> {
        let map = self.lock()?;
        let e = map
            .get(id)
            .ok_or_else(|| AdmissionError::NotFound(format!("proposal `{}`", short(id))))?;
        let mut v = e.view.clone();
        v.break_glass = e.break_glass.as_ref().map(|b| BreakGlassStatus {
            cid: b.payload.cid.clone(),
            signers: b.signatures.values().map(|(n, _)| n.clone()).collect(),
            quorum: self.break_glass_quorum,
            expires_at_ms: b.payload.validity.not_after.saturating_mul(1000),
        });
        self.redact(&mut v);
        Ok(v)
    }

    /// Replace the values the platform's profile marks sensitive by `{digest, length}` in
    /// the proposal's and the contract's params (and constraints on them) and in the
    /// evidence. A platform that is not configured has no profile to say: all its params are.
    fn redact(&self, v: &mut ProposalView) {
        let sensitive = self.platforms.get(v.proposal.platform).map(|a| {
            let target = v.contract.as_ref().map_or(&v.proposal.target, |c| &c.target);
            a.profile.sensitive(&v.proposal.op, target)
        });
        let Some(s) = sensitive else {
            seb_target::sensitive::redact(&mut v.proposal.params, "");
            return;
        };
        if s.is_empty() {
            return;
        }
        let constraints = |cs: &mut Vec<seb_core::types::Constraint>| {
            for c in cs.iter_mut().filter(|c| s.covers_param(&c.path)) {
                seb_target::sensitive::redact(&mut c.value, "");
            }
        };
        s.redact_params(&mut v.proposal.params);
        constraints(&mut v.proposal.constraints);
        if let Some(c) = v.contract.as_mut() {
            s.redact_params(&mut c.params);
            constraints(&mut c.constraints);
        }
        if let Some(e) = v.evidence.as_mut() {
            s.redact_evidence(&mut e.projection);
        }
    }

    /// Every proposal, oldest first, optionally filtered.
    pub fn list(
        &self,
        status: Option<&str>,
        agent: Option<&str>,
    ) -> Result<Vec<ProposalSummary>, AdmissionError> {
        let map = self.lock()?;
        let mut out: Vec<ProposalSummary> = map
            .values()
            .filter(|e| status.is_none_or(|s| e.view.status.as_str() == s))
            .filter(|e| agent.is_none_or(|a| e.view.agent == a))
            .map(|e| ProposalSummary {
                proposal_id: e.view.proposal_id.clone(),
                agent: e.view.agent.clone(),
                status: e.view.status,
                platform: e.view.proposal.platform,
                op: e.view.proposal.op.clone(),
                risk_level: e.view.score.as_ref().map(|s| s.level),
                score_milli: e.view.score.as_ref().map(|s| s.score_milli),
                cert_path: e.view.cert_path.or(e.view.requirement.map(|r| r.path)),
                approvals: e.view.approvals.len(),
                received_at_ms: e.view.received_at_ms,
                cid: e.view.cid.clone(),
            })
            .collect();
        out.sort_by(|a, b| {
            (a.received_at_ms, &a.proposal_id).cmp(&(b.received_at_ms, &b.proposal_id))
        });
        Ok(out)
    }

    /// The certificate of a certified proposal.
    pub fn certificate(&self, id: &str) -> Result<Envelope, AdmissionError> {
        let map = self.lock()?;
        let e = map
            .get(id)
            .ok_or_else(|| AdmissionError::NotFound(format!("proposal `{}`", short(id))))?;
        e.certificate.clone().ok_or_else(|| {
            AdmissionError::Conflict(format!(
                "proposal `{}` is {}{}",
                short(id),
                e.view.status.as_str(),
                e.view.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ))
        })
    }

    // ------------------------------------------------------------------ approvals

    /// Add a signed approval (the body is the `approval` envelope).
    pub async fn approve(&self, id: &str, body: &[u8]) -> Result<ProposalView, AdmissionError> {
        self.expire().await;
        let limit = self.settings.body_limit;
        let env: Envelope =
            json::parse(body, limit).map_err(|e| AdmissionError::Parse(e.to_string()))?;
        // Configured and enrolled approvers; a passkey approval is verified here (spec 5.1).
        let approvers = self.approver_registry().await?;
        let verified = env.verify(PayloadType::Approval, &approvers).map_err(|e| match e {
            EnvelopeError::WrongPayloadType { .. }
            | EnvelopeError::PayloadEncoding
            | EnvelopeError::Payload(_) => AdmissionError::Parse(e.to_string()),
            other => AdmissionError::Unauthenticated(format!("approval: {other}")),
        })?;
        let [kid] = verified.signers() else {
            return Err(AdmissionError::Unauthenticated(
                "an approval carries exactly one signature".into(),
            ));
        };
        let approver = enrol::Identity::of(&approvers, kid)?;
        self.keep_counters(&verified).await?;
        let a: Approval =
            verified.parse(limit).map_err(|e| AdmissionError::Parse(format!("approval: {e}")))?;
        if a.approver != approver.name {
            return Err(AdmissionError::Unauthenticated(format!(
                "approval names `{}` but is signed by `{}`",
                short(&a.approver),
                approver.name
            )));
        }
        if a.proposal_id != id {
            return Err(AdmissionError::Invalid(format!(
                "approval is for proposal `{}`",
                short(&a.proposal_id)
            )));
        }
        if approver.role == ApproverRole::BreakGlass {
            return Err(AdmissionError::Forbidden("break-glass keys do not approve".into()));
        }
        let (denied, ready) = {
            let mut map = self.lock()?;
            let e = map
                .get_mut(id)
                .ok_or_else(|| AdmissionError::NotFound(format!("proposal `{}`", short(id))))?;
            if e.view.status != ProposalStatus::Pending || e.issuing {
                return Err(AdmissionError::Conflict(format!(
                    "proposal `{id}` is {}",
                    e.view.status.as_str()
                )));
            }
            if e.view.contract_digest != Some(a.contract_digest) {
                return Err(AdmissionError::Invalid(
                    "approval is bound to a different contract digest".into(),
                ));
            }
            if e.view.evidence.as_ref().map(|ev| ev.digest) != Some(a.evidence_digest) {
                return Err(AdmissionError::Invalid(
                    "approval is bound to a different evidence digest".into(),
                ));
            }
            if self.owner_conflict(&approver.name, &e.view.agent) {
                return Err(AdmissionError::Forbidden(format!(
                    "`{}` owns agent `{}` and may not approve its proposals (forbid_owner_approval)",
                    approver.name, e.view.agent
                )));
            }
            if e.view.approvals.iter().any(|x| x.approver == approver.name) {
                return Err(AdmissionError::Conflict(format!(
                    "`{}` already decided on `{id}`",
                    approver.name
                )));
            }
            e.view.approvals.push(ApprovalView {
                approver: approver.name.clone(),
                role: approver.role,
                decision: a.decision,
                comment: a.comment.clone(),
                at_ms: a.at_ms,
            });
            match a.decision {
                ApprovalDecision::Deny => {
                    (Some(format!("denied by `{}`: {}", approver.name, short(&a.comment))), false)
                }
                ApprovalDecision::Approve => {
                    match approver.role {
                        ApproverRole::Validator => e.validators.insert(approver.name.clone()),
                        ApproverRole::Human => e.humans.insert(approver.name.clone()),
                        ApproverRole::BreakGlass => false,
                    };
                    e.attestations.push(env.clone());
                    let ready = e
                        .view
                        .requirement
                        .is_some_and(|r| r.satisfied_by(&e.validators, &e.humans));
                    (None, ready)
                }
            }
        };
        info!(proposal_id = %id, approver = %approver.name, decision = ?a.decision, "approval recorded");
        if let Some(reason) = denied {
            self.deny(id, &reason).await?;
        } else if ready {
            self.issue(id).await?;
        }
        self.view(id)
    }

    /// Deny every pending proposal whose deadline passed. Returns how many.
    pub async fn expire(&self) -> usize {
        let Ok(now) = self.now() else { return 0 };
        let ids: Vec<String> = match self.lock() {
            Ok(map) => map
                .values()
                .filter(|e| e.view.status == ProposalStatus::Pending && !e.issuing)
                .filter(|e| e.view.deadline_ms.is_some_and(|d| now > d))
                .map(|e| e.view.proposal_id.clone())
                .collect(),
            Err(_) => return 0,
        };
        for id in &ids {
            if let Err(e) =
                self.deny(id, "approval timeout: the path was not satisfied in time").await
            {
                warn!(proposal_id = %id, error = %e, "could not record the timeout");
            }
        }
        ids.len()
    }

    // ------------------------------------------------------------------ decisions

    fn record(
        &self,
        e: &Entry,
        decision: AdmissionDecision,
        reason: &str,
        now: u64,
        epochs: Option<Epochs>,
    ) -> AdmissionRecord {
        let (policy_digest, policy_epoch) = self
            .active_policy()
            .map(|(p, ep)| (p.digest(), ep))
            .unwrap_or((Digest::of_bytes(b""), 0));
        let mut approvers: Vec<String> =
            e.validators.iter().chain(e.humans.iter()).cloned().collect();
        approvers.sort();
        AdmissionRecord {
            id: new_id(),
            stage: STAGE.into(),
            decision,
            proposal_id: e.view.proposal_id.clone(),
            agent: e.view.agent.clone(),
            cid: None,
            certificate_digest: None,
            contract_digest: e.view.contract_digest,
            evidence_digest: e.view.evidence.as_ref().map(|x| x.digest),
            risk_level: e.view.score.as_ref().map(|s| s.level),
            score_milli: e.view.score.as_ref().map(|s| s.score_milli),
            factors: e.view.score.as_ref().map(|s| s.factors),
            cert_path: e.view.requirement.map(|r| r.path),
            approvers,
            policy_epoch: epochs.map_or(policy_epoch, |x| x.policy_epoch),
            revocation_epoch: epochs.map_or(0, |x| x.revocation_epoch),
            policy_digest,
            not_before: None,
            not_after: None,
            reason: reason.chars().take(1024).collect(),
            issuer_kid: self.issuer.kid(),
            at_ms: now,
            break_glass: e.break_glass.is_some(),
            passkey_approvals: e
                .attestations
                .iter()
                .filter(|a| a.signatures.iter().any(|s| s.webauthn.is_some()))
                .cloned()
                .collect(),
        }
    }

    async fn append(&self, r: &AdmissionRecord) -> Result<(), AdmissionError> {
        let signed: SignedEntry = r.sign(&self.issuer)?;
        self.store.append(vec![signed.entry]).await?;
        Ok(())
    }

    /// Deny a proposal and record it. A proposal already decided stays as it is.
    async fn deny(&self, id: &str, reason: &str) -> Result<(), AdmissionError> {
        let now = self.now()?;
        let epochs = self.store.epochs().await.ok();
        let record = {
            let mut map = self.lock()?;
            let Some(e) = map.get_mut(id) else { return Ok(()) };
            if e.view.status != ProposalStatus::Pending || e.issuing {
                return Ok(());
            }
            e.view.status = ProposalStatus::Denied;
            e.view.reason = Some(reason.to_owned());
            e.view.deadline_ms = None;
            let r = self.record(e, AdmissionDecision::Deny, reason, now, epochs);
            e.view.record_id = Some(r.id.clone());
            r
        };
        warn!(proposal_id = %id, agent = %record.agent, reason, "proposal denied");
        if let Err(err) = self.append(&record).await {
            error!(proposal_id = %id, error = %err, "denial record not written");
        }
        self.emit(id);
        Ok(())
    }

    async fn finish_advisory(&self, id: &str, reason: &str) -> Result<(), AdmissionError> {
        let now = self.now()?;
        let epochs = self.store.epochs().await.ok();
        let record = {
            let mut map = self.lock()?;
            let Some(e) = map.get_mut(id) else { return Ok(()) };
            e.view.status = ProposalStatus::Advisory;
            e.view.reason = Some(reason.to_owned());
            e.view.deadline_ms = None;
            let r = self.record(e, AdmissionDecision::Deny, reason, now, epochs);
            e.view.record_id = Some(r.id.clone());
            r
        };
        if let Err(err) = self.append(&record).await {
            error!(proposal_id = %id, error = %err, "advisory record not written");
        }
        Ok(())
    }

    fn set_issuing(&self, id: &str, v: bool) {
        if let Ok(mut map) = self.lock()
            && let Some(e) = map.get_mut(id)
        {
            e.issuing = v;
        }
    }

    /// Issue the certificate of a proposal whose path is satisfied.
    async fn issue(&self, id: &str) -> Result<(), AdmissionError> {
        // Take the proposal for issuance.
        let (proposal, contract, evidence, requirement, approved, attestations, subject_key) = {
            let mut map = self.lock()?;
            let e = map.get_mut(id).ok_or_else(|| AdmissionError::NotFound(id.to_owned()))?;
            if e.view.status != ProposalStatus::Pending || e.issuing {
                return Ok(());
            }
            let (Some(c), Some(ev), Some(r)) =
                (e.view.contract.clone(), e.view.evidence.clone(), e.view.requirement)
            else {
                return Err(AdmissionError::Internal("issuing an unevaluated proposal".into()));
            };
            e.issuing = true;
            (
                e.view.proposal.clone(),
                c,
                ev,
                r,
                r.needs_approvals(),
                e.attestations.clone(),
                e.subject_key,
            )
        };
        let result = self
            .issue_taken(
                id,
                &proposal,
                contract,
                evidence,
                requirement,
                approved,
                attestations,
                subject_key,
            )
            .await;
        self.set_issuing(id, false);
        match result {
            Ok(()) => Ok(()),
            Err(Refusal::Deny(reason)) => self.deny(id, &reason).await,
            Err(Refusal::Wait) => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_taken(
        &self,
        id: &str,
        proposal: &Proposal,
        contract: Contract,
        evidence: Evidence,
        requirement: Requirement,
        approved: bool,
        attestations: Vec<Envelope>,
        subject_key: PublicKey,
    ) -> Result<(), Refusal> {
        let now = self.now().map_err(|e| Refusal::Deny(e.to_string()))?;
        let check = self
            .store
            .epoch_check("", &proposal.agent)
            .await
            .map_err(|e| Refusal::Deny(format!("store unavailable, not issued: {e}")))?;
        if check.agent_revoked {
            return Err(Refusal::Deny(format!("agent `{}` is revoked", proposal.agent)));
        }
        let (engine, policy_epoch) =
            self.active_policy().map_err(|e| Refusal::Deny(e.to_string()))?;
        if check.epochs.policy_epoch != policy_epoch {
            return Err(Refusal::Deny(format!(
                "the store's policy epoch {} is not the one this admission loaded ({policy_epoch}): a policy was loaded elsewhere",
                check.epochs.policy_epoch
            )));
        }
        // Re-evaluate under the policy in force now (it may have been reloaded while the
        // proposal waited): it may deny, or raise the requirement, never lower it.
        let evaluated_epoch = self
            .lock()
            .ok()
            .and_then(|m| m.get(id).and_then(|e| e.view.policy.as_ref().map(|p| p.policy_epoch)));
        let mut requirement = requirement;
        if evaluated_epoch != Some(policy_epoch) {
            let score = self.lock().ok().and_then(|m| m.get(id).and_then(|e| e.view.score.clone()));
            let Some(score) = score else { return Err(Refusal::Deny("score missing".into())) };
            let paths: Vec<String> = contract.constraints.iter().map(|c| c.path.clone()).collect();
            let outcome = engine
                .evaluate(&PolicyInput {
                    agent: &proposal.agent,
                    platform: contract.platform,
                    op: &contract.op,
                    target: &contract.target,
                    params: &contract.params,
                    constraint_paths: &paths,
                    level: score.level,
                    score: &score,
                })
                .map_err(|e| Refusal::Deny(format!("policy: {e}")))?;
            let permitted = outcome.permitted;
            let reasons = outcome.reasons.join("; ");
            let now_required =
                required(score.level, &self.path_rules, &self.escalation, &outcome.escalations);
            let Some(now_required) = now_required else {
                return Err(Refusal::Deny(format!(
                    "{} is not certified by the configured path rules",
                    score.level
                )));
            };
            requirement = requirement.max(now_required);
            let satisfied = {
                let mut map = self.lock().map_err(|e| Refusal::Deny(e.to_string()))?;
                let e = map.get_mut(id).ok_or(Refusal::Wait)?;
                e.view.policy =
                    Some(PolicyView { outcome, policy_epoch, policy_digest: engine.digest() });
                e.view.requirement = Some(requirement);
                requirement.satisfied_by(&e.validators, &e.humans)
            };
            if !permitted {
                return Err(Refusal::Deny(format!("policy: {reasons}")));
            }
            if !satisfied {
                return Err(Refusal::Wait);
            }
        }
        // Time has passed since the evidence was taken when approvals were needed: the
        // certificate must carry the state the approvers saw, and that state must still hold.
        if approved || requirement.needs_approvals() {
            let adapter = self
                .platforms
                .get(contract.platform)
                .ok_or_else(|| Refusal::Deny("platform vanished".into()))?;
            let (fresh, _) = self.observe(adapter, &contract, now).await.map_err(Refusal::Deny)?;
            if fresh.digest != evidence.digest {
                return Err(Refusal::Deny(
                    "the live state changed since the evidence the approvals are bound to: propose again".into(),
                ));
            }
        }
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).map_err(|e| Refusal::Deny(format!("random source: {e}")))?;
        let mut cid_bytes = [0u8; 16];
        getrandom::fill(&mut cid_bytes)
            .map_err(|e| Refusal::Deny(format!("random source: {e}")))?;
        let cid = uuid::Builder::from_random_bytes(cid_bytes).into_uuid().to_string();
        let now_s = now / 1000;
        let validity = Validity {
            not_before: now_s,
            not_after: now_s.saturating_add(self.settings.validity_s),
        };
        let contract_digest = contract.digest().map_err(|e| Refusal::Deny(e.to_string()))?;
        let payload = CertificatePayload {
            version: 1,
            cid: cid.clone(),
            nonce: encode_nonce(&random),
            issuer: Issuer { name: self.settings.issuer_name.clone(), kid: self.issuer.kid() },
            subject: Subject { agent: proposal.agent.clone(), public_key: subject_key },
            contract,
            contract_digest,
            evidence,
            validity,
            policy_epoch: check.epochs.policy_epoch,
            revocation_epoch: check.epochs.revocation_epoch,
            cert_path: requirement.path,
            attestations,
            issued_at_ms: now,
        };
        let envelope = payload.sign(&self.issuer).map_err(|e| Refusal::Deny(e.to_string()))?;
        self.finish_issue(id, envelope, &payload, false, Vec::new(), now, check.epochs).await
    }

    /// Record the issuance durably, then release the certificate.
    #[allow(clippy::too_many_arguments)]
    async fn finish_issue(
        &self,
        id: &str,
        envelope: Envelope,
        payload: &CertificatePayload,
        break_glass: bool,
        operators: Vec<String>,
        now: u64,
        epochs: Epochs,
    ) -> Result<(), Refusal> {
        let digest = envelope.digest().map_err(|e| Refusal::Deny(e.to_string()))?;
        let mut record = {
            let map = self.lock().map_err(|e| Refusal::Deny(e.to_string()))?;
            let e = map.get(id).ok_or(Refusal::Wait)?;
            self.record(e, AdmissionDecision::Issue, "issued", now, Some(epochs))
        };
        record.cid = Some(payload.cid.clone());
        record.certificate_digest = Some(digest);
        record.cert_path = Some(payload.cert_path);
        record.risk_level = Some(payload.contract.risk_level);
        record.not_before = Some(payload.validity.not_before);
        record.not_after = Some(payload.validity.not_after);
        record.break_glass = break_glass;
        if break_glass {
            record.approvers = operators;
            record.reason = "issued under break-glass".into();
        }
        // The record is durable before anyone can see the certificate.
        self.append(&record)
            .await
            .map_err(|e| Refusal::Deny(format!("issuance record not written, not issued: {e}")))?;
        let mut map = self.lock().map_err(|e| Refusal::Deny(e.to_string()))?;
        let e = map.get_mut(id).ok_or(Refusal::Wait)?;
        e.view.status = ProposalStatus::Certified;
        e.view.cid = Some(payload.cid.clone());
        e.view.cert_path = Some(payload.cert_path);
        e.view.validity = Some(payload.validity);
        e.view.certificate_digest = Some(digest);
        e.view.deadline_ms = None;
        e.view.record_id = Some(record.id.clone());
        e.view.reason = None;
        e.certificate = Some(envelope);
        drop(map);
        info!(proposal_id = %id, cid = %payload.cid, cert_path = %payload.cert_path, risk_level = %payload.contract.risk_level, break_glass, "certificate issued");
        self.emit(id);
        Ok(())
    }

    // ------------------------------------------------------------------ break-glass

    fn bg_view(&self, b: &BreakGlassState) -> BreakGlassView {
        BreakGlassView {
            payload_type: PayloadType::Certificate.media_type().to_owned(),
            payload: STANDARD.encode(&b.bytes),
            certificate: b.payload.clone(),
            signers: b.signatures.values().map(|(n, _)| n.clone()).collect(),
            quorum: self.break_glass_quorum,
            expires_at_ms: b.payload.validity.not_after.saturating_mul(1000),
        }
    }

    /// Create (or return the live) break-glass draft of a proposal: the exact certificate
    /// payload, `cert_path = break_glass`, for operators to sign.
    pub async fn break_glass_draft(&self, id: &str) -> Result<BreakGlassView, AdmissionError> {
        if self.break_glass.is_empty() {
            return Err(AdmissionError::Forbidden(
                "no break-glass operators are configured".into(),
            ));
        }
        let now = self.now()?;
        let epochs = self.store.epochs().await?;
        let mut map = self.lock()?;
        let e = map
            .get_mut(id)
            .ok_or_else(|| AdmissionError::NotFound(format!("proposal `{}`", short(id))))?;
        if e.view.status == ProposalStatus::Certified || e.issuing {
            return Err(AdmissionError::Conflict(format!(
                "proposal `{id}` is {}",
                e.view.status.as_str()
            )));
        }
        if let Some(b) = &e.break_glass
            && b.payload.validity.not_after.saturating_mul(1000) > now
        {
            return Ok(self.bg_view(b));
        }
        let (Some(contract), Some(evidence)) = (e.view.contract.clone(), e.view.evidence.clone())
        else {
            return Err(AdmissionError::Conflict(format!(
                "proposal `{id}` was not compiled and observed: nothing to certify"
            )));
        };
        let mut random = [0u8; 24];
        getrandom::fill(&mut random)
            .map_err(|e| AdmissionError::Internal(format!("random source: {e}")))?;
        let mut cid_bytes = [0u8; 16];
        getrandom::fill(&mut cid_bytes)
            .map_err(|e| AdmissionError::Internal(format!("random source: {e}")))?;
        let now_s = now / 1000;
        let payload = CertificatePayload {
            version: 1,
            cid: uuid::Builder::from_random_bytes(cid_bytes).into_uuid().to_string(),
            nonce: encode_nonce(&random),
            issuer: Issuer { name: self.settings.issuer_name.clone(), kid: self.issuer.kid() },
            subject: Subject { agent: e.view.agent.clone(), public_key: e.subject_key },
            contract_digest: contract.digest()?,
            contract,
            evidence,
            validity: Validity {
                not_before: now_s,
                not_after: now_s.saturating_add(self.settings.validity_s),
            },
            policy_epoch: epochs.policy_epoch,
            revocation_epoch: epochs.revocation_epoch,
            cert_path: CertPath::BreakGlass,
            attestations: Vec::new(),
            issued_at_ms: now,
        };
        let bytes = json::canonical(&payload)?;
        let state = BreakGlassState { payload, bytes, signatures: BTreeMap::new() };
        let v = self.bg_view(&state);
        e.break_glass = Some(state);
        warn!(proposal_id = %id, break_glass = true, "break-glass draft created");
        Ok(v)
    }

    /// Add one operator's signature to the break-glass draft; at the quorum the certificate
    /// is assembled, verified under the break-glass root, recorded and released.
    pub async fn break_glass_sign(
        &self,
        id: &str,
        body: &[u8],
    ) -> Result<ProposalView, AdmissionError> {
        let sig: EnvelopeSignature = json::parse(body, self.settings.body_limit)
            .map_err(|e| AdmissionError::Parse(e.to_string()))?;
        let kid: KeyId =
            sig.keyid.parse().map_err(|_| AdmissionError::Unauthenticated("bad keyid".into()))?;
        let name = self
            .break_glass
            .name(&kid)
            .ok_or_else(|| {
                AdmissionError::Unauthenticated("not a break-glass operator key".into())
            })?
            .to_owned();
        let now = self.now()?;
        let assembled = {
            let mut map = self.lock()?;
            let e = map
                .get_mut(id)
                .ok_or_else(|| AdmissionError::NotFound(format!("proposal `{}`", short(id))))?;
            if e.view.status == ProposalStatus::Certified || e.issuing {
                return Err(AdmissionError::Conflict(format!(
                    "proposal `{id}` is {}",
                    e.view.status.as_str()
                )));
            }
            let b = e
                .break_glass
                .as_mut()
                .ok_or_else(|| AdmissionError::Conflict("no break-glass draft".into()))?;
            if b.payload.validity.not_after.saturating_mul(1000) <= now {
                return Err(AdmissionError::Conflict(
                    "the break-glass draft expired: create a new one".into(),
                ));
            }
            let key = self.break_glass.iter().find(|(_, k)| k.kid() == kid).map(|(_, k)| *k);
            let key = key.ok_or_else(|| {
                AdmissionError::Unauthenticated("not a break-glass operator key".into())
            })?;
            key.verify_b64(&pae(PayloadType::Certificate.media_type(), &b.bytes), &sig.sig)
                .map_err(|e| {
                    AdmissionError::Unauthenticated(format!(
                        "break-glass signature by `{name}`: {e}"
                    ))
                })?;
            b.signatures.insert(kid, (name.clone(), sig));
            warn!(proposal_id = %id, operator = %name, break_glass = true, "break-glass signature added");
            if b.signatures.len() >= self.break_glass_quorum {
                let env = Envelope {
                    payload_type: PayloadType::Certificate.media_type().to_owned(),
                    payload: STANDARD.encode(&b.bytes),
                    signatures: b.signatures.values().map(|(_, s)| s.clone()).collect(),
                };
                let operators: Vec<String> =
                    b.signatures.values().map(|(n, _)| n.clone()).collect();
                e.issuing = true;
                Some((env, b.payload.clone(), operators))
            } else {
                None
            }
        };
        if let Some((env, payload, operators)) = assembled {
            // Check what the broker will check, under the break-glass root alone.
            let checked = {
                let no_issuers = TrustedKeys::new();
                let trust = CertificateTrust {
                    issuers: &no_issuers,
                    break_glass: &self.break_glass_trust,
                    break_glass_quorum: self.break_glass_quorum,
                    limit: usize::MAX,
                };
                UnverifiedCertificate::new(env.clone()).verify(&trust).map(|_| ())
            };
            let epochs = self.store.epochs().await;
            let result = match (checked, epochs) {
                (Ok(_), Ok(ep)) => {
                    self.finish_issue(id, env, &payload, true, operators, now, ep).await
                }
                (Err(e), _) => Err(Refusal::Deny(format!(
                    "assembled break-glass certificate does not verify: {e}"
                ))),
                (_, Err(e)) => Err(Refusal::Deny(format!("store unavailable, not issued: {e}"))),
            };
            self.set_issuing(id, false);
            if let Err(Refusal::Deny(reason)) = result {
                error!(proposal_id = %id, break_glass = true, reason = %reason, "break-glass issuance failed");
                return Err(AdmissionError::Internal(reason));
            }
        }
        self.view(id)
    }

    // ------------------------------------------------------------------ epochs

    async fn epoch_statement_after(
        &self,
        change: &EpochChange,
        now: u64,
    ) -> Result<EpochStatement, AdmissionError> {
        let epochs = self.store.epochs().await?;
        let revoked = self.store.revocations().await?;
        Ok(statement_after(&epochs, revoked, change, now, self.settings.statement_ttl_ms))
    }

    async fn load_policy_text(&self, text: &str, by: &str) -> Result<u64, AdmissionError> {
        let engine = Arc::new(PolicyEngine::new(text, &self.agents)?);
        let _g = self.epoch_lock.lock().await;
        let now = self.now()?;
        let statement = self.epoch_statement_after(&EpochChange::Policy, now).await?;
        let signed = sign_statement(&statement, &self.issuer)?;
        let epochs = self.store.bump_policy_epoch(now, Some(signed.entry)).await?;
        if epochs.policy_epoch != statement.policy_epoch {
            warn!(
                expected = statement.policy_epoch,
                got = epochs.policy_epoch,
                "policy epoch moved concurrently"
            );
        }
        {
            let mut g = self
                .policy
                .write()
                .map_err(|_| AdmissionError::Internal("policy lock poisoned".into()))?;
            *g = Some(ActivePolicy { engine: engine.clone(), epoch: epochs.policy_epoch });
        }
        if let Ok(mut h) = self.history.lock() {
            h.push(PolicyVersion {
                policy_epoch: epochs.policy_epoch,
                digest: engine.digest(),
                loaded_at_ms: now,
                loaded_by: by.to_owned(),
            });
        }
        info!(policy_epoch = epochs.policy_epoch, digest = %engine.digest(), loaded_by = by, "policy loaded");
        Ok(epochs.policy_epoch)
    }

    /// The policy in force and its history.
    pub fn policy(&self) -> Result<(String, u64, Digest, Vec<PolicyVersion>), AdmissionError> {
        let (engine, epoch) = self.active_policy()?;
        let history = self.history.lock().map(|h| h.clone()).unwrap_or_default();
        Ok((engine.text().to_owned(), epoch, engine.digest(), history))
    }

    /// Evaluate the loaded policy alone (benchmarks, diagnostics).
    pub fn evaluate_policy(
        &self,
        input: &PolicyInput<'_>,
    ) -> Result<PolicyOutcome, AdmissionError> {
        self.active_policy()?.0.evaluate(input)
    }

    /// Authenticate a signed admin request.
    fn admin(&self, body: &[u8], signature: Option<&str>) -> Result<AdminRequest, AdmissionError> {
        let now = self.now()?;
        let header = signature
            .ok_or_else(|| AdmissionError::Unauthenticated("missing admin signature".into()))?;
        let (kid, sig) = header
            .split_once(':')
            .ok_or_else(|| AdmissionError::Unauthenticated("malformed admin signature".into()))?;
        let kid: KeyId = kid
            .parse()
            .map_err(|_| AdmissionError::Unauthenticated("malformed admin key id".into()))?;
        let name = self
            .admins
            .name(&kid)
            .ok_or_else(|| AdmissionError::Unauthenticated("not an admin key".into()))?
            .to_owned();
        let key = self.admins.iter().find(|(_, k)| k.kid() == kid).map(|(_, k)| *k);
        let key = key.ok_or_else(|| AdmissionError::Unauthenticated("not an admin key".into()))?;
        key.verify_b64(&pae(ADMIN_MEDIA_TYPE, body), sig)
            .map_err(|e| AdmissionError::Unauthenticated(format!("admin signature: {e}")))?;
        let req: AdminRequest = json::parse(body, self.settings.body_limit)
            .map_err(|e| AdmissionError::Parse(e.to_string()))?;
        if req.admin != name {
            return Err(AdmissionError::Unauthenticated(format!(
                "request names `{}` but is signed by `{name}`",
                short(&req.admin)
            )));
        }
        if req.at_ms.abs_diff(now) > self.settings.max_age_ms {
            return Err(AdmissionError::Stale(
                "admin request is outside the freshness window".into(),
            ));
        }
        let mut seen =
            self.admin_seen.lock().map_err(|_| AdmissionError::Internal("lock poisoned".into()))?;
        let horizon = now.saturating_sub(self.settings.max_age_ms.saturating_mul(2));
        seen.retain(|_, at| *at >= horizon);
        if seen.insert(req.request_id.clone(), req.at_ms).is_some() {
            return Err(AdmissionError::Conflict("admin request replayed".into()));
        }
        Ok(req)
    }

    /// A signed admin request to load a policy. Returns the new policy epoch.
    pub async fn load_policy(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<u64, AdmissionError> {
        let req = self.admin(body, signature)?;
        if req.commands() != 1 && req.load_policy.is_some() {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        let text = req
            .load_policy
            .ok_or_else(|| AdmissionError::Parse("`load_policy` is missing".into()))?;
        self.load_policy_text(&text, &req.admin).await
    }

    /// A signed admin request to revoke. Returns the signed statement of the new state.
    pub async fn revoke(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Envelope, AdmissionError> {
        let req = self.admin(body, signature)?;
        if req.commands() != 1 {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        let what = req.revoke.ok_or_else(|| AdmissionError::Parse("`revoke` is missing".into()))?;
        if req.load_policy.is_some() {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        self.revoke_as(what, &req.admin).await
    }

    /// Revoke (already authorised). Appends a signed epoch statement in the same store
    /// transaction; pending proposals of a revoked agent are denied.
    pub async fn revoke_as(&self, what: Revocation, by: &str) -> Result<Envelope, AdmissionError> {
        match &what {
            Revocation::Cid(c) if uuid::Uuid::parse_str(c).is_err() => {
                return Err(AdmissionError::Parse(format!("cid `{}` is not a UUID", short(c))));
            }
            Revocation::Agent(a) if a.is_empty() || a.len() > 128 => {
                return Err(AdmissionError::Parse("agent name must be 1..128 characters".into()));
            }
            _ => {}
        }
        let statement = {
            let _g = self.epoch_lock.lock().await;
            let now = self.now()?;
            let statement =
                self.epoch_statement_after(&EpochChange::Revoke(what.clone()), now).await?;
            let signed = sign_statement(&statement, &self.issuer)?;
            self.store.revoke(what.clone(), now, Some(signed.entry)).await?;
            statement
        };
        warn!(revocation = ?what, by, "revoked");
        if let Revocation::Agent(agent) = &what {
            let ids: Vec<String> = self
                .lock()?
                .values()
                .filter(|e| &e.view.agent == agent && e.view.status == ProposalStatus::Pending)
                .map(|e| e.view.proposal_id.clone())
                .collect();
            for id in ids {
                self.deny(&id, &format!("agent `{agent}` was revoked")).await?;
            }
        }
        Ok(sign_statement(&statement, &self.issuer)?.envelope)
    }

    /// A fresh signed epoch statement for brokers that do not share the store.
    pub async fn statement(&self) -> Result<Envelope, AdmissionError> {
        let now = self.now()?;
        let epochs = self.store.epochs().await?;
        let (revoked_cids, revoked_agents) = self.store.revocations().await?;
        let s = EpochStatement {
            policy_epoch: epochs.policy_epoch,
            revocation_epoch: epochs.revocation_epoch,
            revoked_cids,
            revoked_agents,
            issued_at_ms: now,
            ttl_ms: self.settings.statement_ttl_ms,
        };
        Ok(sign_statement(&s, &self.issuer)?.envelope)
    }

    /// The active epochs and revocations (unsigned).
    pub async fn epochs(&self) -> Result<Value, AdmissionError> {
        let e = self.store.epochs().await?;
        let (cids, agents) = self.store.revocations().await?;
        Ok(serde_json::json!({
            "policy_epoch": e.policy_epoch,
            "revocation_epoch": e.revocation_epoch,
            "updated_at_ms": e.updated_at_ms,
            "revoked_cids": cids,
            "revoked_agents": agents,
        }))
    }

    /// Deny timed-out proposals every second, forever (spawn it next to the server).
    pub async fn run_background(self: Arc<Self>) {
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        loop {
            iv.tick().await;
            self.expire().await;
        }
    }
}

/// An epoch change, for the signed statement that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochChange {
    /// A policy load: `policy_epoch + 1`.
    Policy,
    /// A revocation (`All` bumps `revocation_epoch`).
    Revoke(Revocation),
}

/// The epoch statement that describes the store's state after `change` (pure): the current
/// `epochs` and `revoked` (cids, agents) with the change applied, issued at `now_ms`.
pub fn statement_after(
    epochs: &seb_store::Epochs,
    revoked: (Vec<String>, Vec<String>),
    change: &EpochChange,
    now_ms: u64,
    ttl_ms: u64,
) -> EpochStatement {
    let (mut cids, mut agents) = revoked;
    let (mut policy_epoch, mut revocation_epoch) = (epochs.policy_epoch, epochs.revocation_epoch);
    match change {
        EpochChange::Policy => policy_epoch = policy_epoch.saturating_add(1),
        EpochChange::Revoke(Revocation::All) => {
            revocation_epoch = revocation_epoch.saturating_add(1)
        }
        EpochChange::Revoke(Revocation::Cid(c)) => cids.push(c.clone()),
        EpochChange::Revoke(Revocation::Agent(a)) => agents.push(a.clone()),
    }
    cids.sort();
    cids.dedup();
    agents.sort();
    agents.dedup();
    EpochStatement {
        policy_epoch,
        revocation_epoch,
        revoked_cids: cids,
        revoked_agents: agents,
        issued_at_ms: now_ms,
        ttl_ms,
    }
}

enum Next {
    Deny(String),
    /// The operation cannot apply to what observation found.
    Inapplicable(String),
    Advisory(String),
    Wait,
    Issue,
}

enum Refusal {
    Deny(String),
    Wait,
}

struct Evaluated {
    contract: Contract,
    contract_digest: Digest,
    evidence: Evidence,
    score: Score,
    policy: PolicyView,
    requirement: Option<Requirement>,
    next: Next,
}

/// Drop the oldest decided proposals (a tenth of the cap).
fn prune(map: &mut BTreeMap<String, Entry>) {
    let mut decided: Vec<(u64, String)> = map
        .values()
        .filter(|e| e.view.status != ProposalStatus::Pending)
        .map(|e| (e.view.received_at_ms, e.view.proposal_id.clone()))
        .collect();
    decided.sort();
    for (_, id) in decided.into_iter().take(MAX_PROPOSALS / 10) {
        map.remove(&id);
    }
}

// ------------------------------------------------------------------ agent reads (MCP)

/// What `GET /v1/admission/observations` returns: the live projection of a target as
/// admission would record it as evidence for this op, target and params (nothing is
/// proposed, signed or recorded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservationView {
    pub platform: Platform,
    pub op: String,
    /// The target and params as the profile normalised them.
    pub target: Value,
    pub params: Value,
    /// The consequence level the proposal would get (before policy escalation).
    pub risk_level: RiskLevel,
    /// The evidence pointers, the projection at them and its digest.
    pub pointers: Vec<String>,
    pub projection: BTreeMap<String, Value>,
    pub digest: Digest,
    pub observed_at_ms: u64,
}

/// What `GET /v1/admission/paths` returns: per level, the requirement of the path rules in
/// force (`null`: never certified by the autonomous paths), and what an escalation adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathsView {
    pub levels: BTreeMap<String, Option<Requirement>>,
    pub escalation: Escalation,
}

impl Admission {
    /// Authenticate a signed read ([`Admission::authenticate_request`]) made by a registered
    /// agent; returns the agent's name. Any other caller: [`AdmissionError::Forbidden`].
    pub fn authenticate_agent_read(
        &self,
        header: Option<&str>,
        method: &str,
        path_and_query: &str,
    ) -> Result<String, AdmissionError> {
        let caller = self.authenticate_request(method, path_and_query, header)?;
        caller.agent.ok_or_else(|| {
            AdmissionError::Forbidden("only a registered agent may use this route".into())
        })
    }

    /// Observe a target for a registered, unrevoked agent exactly as a proposal's evidence
    /// would be observed (compile, scope check, read-only observation); records nothing.
    pub async fn observe_for(
        &self,
        agent: &str,
        platform: Platform,
        op: &str,
        target: &Value,
        params: &Value,
    ) -> Result<ObservationView, AdmissionError> {
        let now = self.now()?;
        let epochs = self.store.epoch_check("", agent).await?;
        if epochs.agent_revoked {
            return Err(AdmissionError::Forbidden(format!("agent `{}` is revoked", short(agent))));
        }
        let adapter = self.platforms.get(platform).ok_or_else(|| {
            AdmissionError::Invalid(format!("platform `{platform}` is not configured"))
        })?;
        let (target, params) = adapter
            .profile
            .compile(op, target, params)
            .map_err(|e| AdmissionError::Invalid(format!("compile: {e}")))?;
        let score = self.scoring.score(&adapter.profile.consequence(op, &target, &params));
        let contract = Contract {
            platform,
            op: op.to_owned(),
            target,
            params,
            constraints: Vec::new(),
            risk_level: score.level,
        };
        adapter
            .target
            .check_scope(&contract)
            .map_err(|e| AdmissionError::Forbidden(format!("scope: {e}")))?;
        let (evidence, _) = self
            .observe(adapter, &contract, now)
            .await
            .map_err(|e| AdmissionError::Invalid(short(&e)))?;
        Ok(ObservationView {
            platform,
            pointers: adapter.profile.default_pointers(op, &contract.target, &contract.params),
            op: contract.op,
            target: contract.target,
            params: contract.params,
            risk_level: score.level,
            projection: evidence.projection,
            digest: evidence.digest,
            observed_at_ms: evidence.observed_at_ms,
        })
    }

    /// The path rules and escalations in force.
    pub fn paths(&self) -> PathsView {
        let levels = self
            .path_rules
            .levels
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("L{i}"), r.map(Requirement::from)))
            .collect();
        PathsView { levels, escalation: self.escalation }
    }
}
