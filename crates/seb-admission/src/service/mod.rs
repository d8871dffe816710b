//! The admission service: the proposal state machine ([`state`]) driven over the durable
//! store, in modules by stage.
//!
//! - [`submit`](Admission::submit): authenticate, store (the seen-proposal set), evaluate
//!   (compile, observe, score, policy) → `Pending | Issuing | Denied | Advisory`.
//! - [`approve`](Admission::approve): one decision per approver; a deny denies, a met
//!   requirement claims the proposal for issuance.
//! - issue: re-check epochs, revocations and the policy in force, re-observe when approvals
//!   are bound to the evidence, sign, and commit `Certified` with its issue record in one
//!   transaction.
//! - break-glass: drafts and operator signatures; the quorum certifies.
//! - admin: signed admin requests (replay cache in the store), policy loads, revocation.
//!
//! Every proposal, approval, break-glass draft and signature is in the store
//! (`seb_store::admission`), so any replica serves any proposal and a restart loses nothing.
//! A replica moves a proposal from one stage to the next only with a compare-and-set on the
//! version it read; a stage that needs work (`evaluating`, `issuing`) carries a claim that
//! expires, after which any replica takes the work over (crash recovery), and its result is
//! committed only if nobody else committed first. The policy epoch moves only when the policy
//! digest in force changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use seb_core::digest::Digest;
use seb_core::envelope::Envelope;
use seb_core::keys::{PublicKey, SigningKey, TrustedKeys};
use seb_core::pipeline::{ApproverRegistry, ApproverRole, PathRules};
use seb_core::types::{
    ApprovalDecision, CertPath, CertificatePayload, Contract, EpochStatement, Evidence, Platform,
    Proposal, RiskLevel, Validity,
};
use seb_store::admission::{AdmissionState, Cas, ProposalUpdate, StoredApproval, StoredProposal};
use seb_store::{Epochs, Revocation, Store};
use seb_target::{PlatformProfile, Target};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use crate::clock::Clock;
use crate::config::{AdmissionConfig, AgentRegistry, NamedKeys, read_key_file};
use crate::error::AdmissionError;
use crate::paths::{Escalation, Requirement};
use crate::policy::{DEFAULT_POLICY, PolicyEngine, PolicyOutcome};
use crate::records::{AdmissionDecision, AdmissionRecord, STAGE, SignedEntry, new_id};
use crate::scoring::{Score, ScoringConfig};

mod admin;
mod approve;
mod break_glass;
mod enrol;
mod issue;
// Net-effect scoring (spec 5.2): the assessment at evaluation and the accounting at issuance.
mod net_effect_hooks;
mod reads;
pub mod state;
mod submit;

pub use enrol::{
    ApproverRecord, ApproverView, EnrolmentView, INVITATION_TTL_MS, InvitationView, Registration,
};
use state::{Body, Evaluation, Received, Stage};

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

/// Where a proposal stands (the [`state::Stage`] names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Being compiled, observed and scored.
    Evaluating,
    /// Waiting for approvals (or a break-glass quorum).
    Pending,
    /// Claimed for issuance by a replica.
    Issuing,
    /// A certificate was issued.
    Certified,
    /// Refused; `reason` says why.
    Denied,
    /// The approval deadline passed.
    Expired,
    /// L0: advisory only, no certificate.
    Advisory,
}

impl ProposalStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evaluating => "evaluating",
            Self::Pending => "pending",
            Self::Issuing => "issuing",
            Self::Certified => "certified",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Advisory => "advisory",
        }
    }

    fn of(stage: &Stage) -> Self {
        match stage {
            Stage::Evaluating(_) => Self::Evaluating,
            Stage::Pending(_) => Self::Pending,
            Stage::Issuing(_) => Self::Issuing,
            Stage::Certified(_) => Self::Certified,
            Stage::Denied(_) => Self::Denied,
            Stage::Expired(_) => Self::Expired,
            Stage::Advisory(_) => Self::Advisory,
        }
    }
}

/// An approval as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub approver: String,
    pub role: ApproverRole,
    pub decision: ApprovalDecision,
    pub comment: String,
    pub at_ms: u64,
}

/// What the policy decided, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Net-effect scoring (spec 5.2): related changes, the score alone and net.
    pub net_effect: Option<crate::net_effect::NetEffectView>,
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

/// One entry of the policy history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVersion {
    pub policy_epoch: u64,
    pub digest: Digest,
    pub loaded_at_ms: u64,
    /// `startup` or the admin's name.
    pub loaded_by: String,
}

/// The loaded policy and the epoch it is in force at.
struct ActivePolicy {
    engine: Arc<PolicyEngine>,
    epoch: u64,
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
    /// How long a replica holds a proposal it evaluates or issues before another may take
    /// the work over.
    claim_ms: u64,
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
    net_effect: crate::net_effect::NetEffectSettings,
    policy: RwLock<Option<ActivePolicy>>,
    platforms: Platforms,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Serialises this instance's epoch changes so each statement names the epochs it makes.
    epoch_lock: tokio::sync::Mutex<()>,
    /// Told of every state change this replica makes (notifications, [`crate::notify`]).
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

fn proposal_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// An approval as stored: what is shown and the signed envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApprovalBody {
    view: ApprovalView,
    envelope: Envelope,
}

/// A proposal read from the store: its row (version, approvals, signatures) and its body.
#[derive(Debug, Clone)]
struct Loaded {
    row: StoredProposal,
    body: Body,
    approvals: Vec<ApprovalBody>,
}

impl Loaded {
    fn id(&self) -> &str {
        &self.row.proposal_id
    }

    /// Approving validators and humans.
    fn approvers(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut validators = BTreeSet::new();
        let mut humans = BTreeSet::new();
        for a in self.approvals.iter().filter(|a| a.view.decision == ApprovalDecision::Approve) {
            match a.view.role {
                ApproverRole::Validator => validators.insert(a.view.approver.clone()),
                ApproverRole::Human => humans.insert(a.view.approver.clone()),
                ApproverRole::BreakGlass => false,
            };
        }
        (validators, humans)
    }

    /// The approval envelopes that approve (the certificate's attestations).
    fn attestations(&self) -> Vec<Envelope> {
        self.approvals
            .iter()
            .filter(|a| a.view.decision == ApprovalDecision::Approve)
            .map(|a| a.envelope.clone())
            .collect()
    }

    /// Whether the stage is `status`: for error messages.
    fn status(&self) -> ProposalStatus {
        ProposalStatus::of(&self.body.stage)
    }
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

    /// Build without loading a policy yet (call [`Admission::start`] before serving). The
    /// store must keep admission's state ([`Store::admission`]).
    pub fn new(
        cfg: &AdmissionConfig,
        issuer: SigningKey,
        store: Arc<dyn Store>,
        platforms: Platforms,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AdmissionError> {
        cfg.validate()?;
        if store.admission().is_none() {
            return Err(AdmissionError::Config(format!(
                "the `{}` store keeps no admission state: admission needs SQLite or PostgreSQL",
                store.backend()
            )));
        }
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
                claim_ms: cfg.observe_timeout_ms.saturating_mul(2).saturating_add(5_000),
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
            net_effect: crate::net_effect::NetEffectSettings {
                mode: cfg.net_effect,
                window_ms: cfg.net_effect_window_s.saturating_mul(1000),
                scope: cfg.net_effect_scope,
            },
            policy: RwLock::new(None),
            platforms,
            store,
            clock,
            epoch_lock: tokio::sync::Mutex::new(()),
            events: std::sync::OnceLock::new(),
            enrolment: enrol::Enrolment::from_config(cfg)?,
        })
    }

    /// Tell `events` of every proposal state change from now on (once; `false` if already set).
    pub fn set_events(&self, events: Arc<dyn crate::notify::ProposalEvents>) -> bool {
        self.events.set(events).is_ok()
    }

    /// Hand the proposal's current view to the events sink, if any. Called by the replica
    /// whose compare-and-set made the change, so each change is told once.
    async fn emit(&self, id: &str) {
        if let Some(ev) = self.events.get()
            && let Ok(v) = self.view(id).await
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

    /// Load the configured policy (the default when `None`). The policy epoch changes only
    /// when its digest differs from the policy in force in the store: a restart, or another
    /// replica starting with the same policy, leaves certificates in flight valid.
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

    fn state(&self) -> Result<&dyn AdmissionState, AdmissionError> {
        self.store
            .admission()
            .ok_or_else(|| AdmissionError::Internal("the store keeps no admission state".into()))
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

    fn set_policy(&self, engine: Arc<PolicyEngine>, epoch: u64) -> Result<(), AdmissionError> {
        let mut g = self
            .policy
            .write()
            .map_err(|_| AdmissionError::Internal("policy lock poisoned".into()))?;
        *g = Some(ActivePolicy { engine, epoch });
        Ok(())
    }

    fn not_found(id: &str) -> AdmissionError {
        AdmissionError::NotFound(format!("proposal `{}`", short(id)))
    }

    /// Read a proposal.
    async fn load(&self, id: &str) -> Result<Loaded, AdmissionError> {
        let row = self.state()?.proposal(id).await?.ok_or_else(|| Self::not_found(id))?;
        Self::decode(row)
    }

    fn decode(row: StoredProposal) -> Result<Loaded, AdmissionError> {
        let body: Body = serde_json::from_slice(&row.body).map_err(|e| {
            AdmissionError::Internal(format!("stored proposal `{}`: {e}", short(&row.proposal_id)))
        })?;
        let approvals = row
            .approvals
            .iter()
            .map(|a: &StoredApproval| {
                serde_json::from_slice::<ApprovalBody>(&a.body).map_err(|e| {
                    AdmissionError::Internal(format!(
                        "stored approval `{}`: {e}",
                        short(&a.approver)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Loaded { row, body, approvals })
    }

    /// The deadline and the claim a stage is stored with.
    fn timers(&self, stage: &Stage, now: u64) -> (Option<u64>, Option<u64>) {
        match stage {
            Stage::Pending(p) => (Some(p.deadline_ms), None),
            Stage::Evaluating(_) | Stage::Issuing(_) => {
                (None, Some(now.saturating_add(self.settings.claim_ms)))
            }
            _ => (None, None),
        }
    }

    /// Compare-and-set `l` (at the version it was read) to `body`, appending `record` signed
    /// in the same transaction.
    async fn save(
        &self,
        l: &Loaded,
        mut body: Body,
        record: Option<&AdmissionRecord>,
    ) -> Result<Cas, AdmissionError> {
        let now = self.now()?;
        let entry = match record {
            Some(r) => {
                body.record_id = Some(r.id.clone());
                let signed: SignedEntry = r.sign(&self.issuer)?;
                Some(signed.entry)
            }
            None => None,
        };
        let (deadline_ms, claim_until_ms) = self.timers(&body.stage, now);
        let update = ProposalUpdate {
            proposal_id: l.id().to_owned(),
            expected_version: l.row.version,
            status: body.stage.name().to_owned(),
            deadline_ms,
            claim_until_ms,
            body: serde_json::to_vec(&body)
                .map_err(|e| AdmissionError::Internal(format!("proposal as JSON: {e}")))?,
            record: entry,
        };
        let cas = self.state()?.update_proposal(update).await?;
        if cas == Cas::Stale {
            warn!(proposal_id = %l.id(), from = %l.body.stage.name(), to = %body.stage.name(), "proposal changed concurrently (another replica): transition not applied");
        }
        Ok(cas)
    }

    /// A record of `l` (issue/deny/approval), with the policy and the epochs in force.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        received: &Received,
        ev: Option<&Evaluation>,
        requirement: Option<Requirement>,
        approvers: Vec<String>,
        decision: AdmissionDecision,
        reason: &str,
        now: u64,
        epochs: Option<Epochs>,
    ) -> AdmissionRecord {
        let (policy_digest, policy_epoch) = self
            .active_policy()
            .map(|(p, ep)| (p.digest(), ep))
            .unwrap_or((Digest::of_bytes(b""), 0));
        AdmissionRecord {
            id: new_id(),
            stage: STAGE.into(),
            decision,
            proposal_id: received.proposal.proposal_id.clone(),
            agent: received.proposal.agent.clone(),
            cid: None,
            certificate_digest: None,
            contract_digest: ev.map(|e| e.contract_digest),
            evidence_digest: ev.map(|e| e.evidence.digest),
            risk_level: ev.map(|e| e.score.level),
            score_milli: ev.map(|e| e.score.score_milli),
            factors: ev.map(|e| e.score.factors),
            cert_path: requirement.or(ev.and_then(|e| e.requirement)).map(|r| r.path),
            approvers,
            policy_epoch: epochs.map_or(policy_epoch, |x| x.policy_epoch),
            revocation_epoch: epochs.map_or(0, |x| x.revocation_epoch),
            policy_digest,
            not_before: None,
            not_after: None,
            reason: reason.chars().take(1024).collect(),
            issuer_kid: self.issuer.kid(),
            at_ms: now,
            break_glass: false,
            attestation_digest: None,
            attestation_digests: Vec::new(),
            passkey_approvals: Vec::new(),
        }
    }

    /// Recover and expire, every second, forever (spawn it next to the server): pending
    /// proposals past their deadline are expired, and work a replica claimed but did not
    /// finish (it was killed) is taken over once its claim runs out.
    pub async fn run_background(self: Arc<Self>) {
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        loop {
            iv.tick().await;
            self.expire().await;
            self.recover().await;
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
