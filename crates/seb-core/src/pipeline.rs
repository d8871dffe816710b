//! The enforcement predicate of spec section 7 as pure functions.
//!
//! The broker drives them in order, doing I/O between them:
//! [`authenticate`] (checks 1–6) → [`check_state`] (7–10, given an epoch snapshot and the
//! replay pre-check) → [`check_drift`] (11, given the live observation). The reservation
//! (12) is the store's atomic transaction. [`evaluate`] composes all of them for tests,
//! vectors and benchmarks. Every failure names its check and its decision; every success
//! carries what the later steps need.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::certificate::{
    CertificateError, CertificateTrust, UnverifiedCertificate, VerifiedCertificate,
};
use crate::constraints::params_match;
use crate::digest::Digest;
use crate::drift;
use crate::envelope::{PayloadType, pae};
use crate::json::{self, JsonError};
use crate::keys::{KeyId, KeyResolver};
use crate::types::{
    Approval, ApprovalDecision, CertPath, Contract, Decision, Evidence, ExecRequest, FailedCheck,
    Presentation, RiskLevel,
};
use crate::webauthn::WebAuthnCredential;

/// Role of an approver (spec section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApproverRole {
    Validator,
    Human,
    BreakGlass,
}

/// A registered approver, as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub name: String,
    pub role: ApproverRole,
    pub key: crate::keys::PublicKey,
}

/// A registered approver whose key is a passkey (spec 5.1; role `human`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyApprover {
    pub name: String,
    pub role: ApproverRole,
    pub credential: WebAuthnCredential,
}

/// The approvers a broker trusts, by key id: Ed25519 keys and passkeys (whose key id is the
/// SHA-256 of the SPKI DER).
#[derive(Debug, Clone, Default)]
pub struct ApproverRegistry {
    by_kid: BTreeMap<KeyId, Approver>,
    passkeys: BTreeMap<KeyId, PasskeyApprover>,
}

impl ApproverRegistry {
    /// Register an approver key (several keys per name are allowed during rotation).
    pub fn insert(&mut self, approver: Approver) {
        self.by_kid.insert(approver.key.kid(), approver);
    }
    /// Register a passkey approver (several passkeys per name are allowed).
    pub fn insert_passkey(&mut self, approver: PasskeyApprover) {
        self.passkeys.insert(approver.credential.kid(), approver);
    }
    /// Look up an Ed25519 approver by key id.
    pub fn get(&self, kid: &KeyId) -> Option<&Approver> {
        self.by_kid.get(kid)
    }
    /// Look up a passkey approver by key id.
    pub fn passkey(&self, kid: &KeyId) -> Option<&PasskeyApprover> {
        self.passkeys.get(kid)
    }
    /// Name and role of the approver holding `kid`, whatever its key kind.
    pub fn identity(&self, kid: &KeyId) -> Option<(&str, ApproverRole)> {
        self.by_kid
            .get(kid)
            .map(|a| (a.name.as_str(), a.role))
            .or_else(|| self.passkeys.get(kid).map(|p| (p.name.as_str(), p.role)))
    }
    /// Every passkey approver.
    pub fn passkeys(&self) -> impl Iterator<Item = &PasskeyApprover> {
        self.passkeys.values()
    }
}

impl KeyResolver for ApproverRegistry {
    fn resolve(&self, kid: &KeyId) -> Option<crate::keys::PublicKey> {
        self.by_kid.get(kid).map(|a| a.key)
    }
    fn resolve_webauthn(&self, kid: &KeyId) -> Option<WebAuthnCredential> {
        self.passkeys.get(kid).map(|p| p.credential.clone())
    }
}

/// What a risk level requires: the minimum path and distinct approvals by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// The weakest acceptable certification path.
    pub path: CertPath,
    /// Distinct validator approvals required.
    #[serde(default)]
    pub validators: usize,
    /// Distinct human approvals required.
    #[serde(default)]
    pub humans: usize,
}

/// Required path per risk level. `None` means the level is never certified (L0 advisory,
/// L5 never autonomous).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRules {
    pub levels: [Option<PathRule>; 6],
}

impl Default for PathRules {
    /// L0 advisory; L1–L2 policy; L3 two validators; L4 two validators and one human; L5 never.
    fn default() -> Self {
        let rule = |path, validators, humans| Some(PathRule { path, validators, humans });
        Self {
            levels: [
                None,
                rule(CertPath::Policy, 0, 0),
                rule(CertPath::Policy, 0, 0),
                rule(CertPath::Quorum, 2, 0),
                rule(CertPath::Human, 2, 1),
                None,
            ],
        }
    }
}

impl PathRules {
    /// The rule for a level.
    pub fn rule(&self, level: RiskLevel) -> Option<PathRule> {
        self.levels.get(usize::from(level.get())).copied().flatten()
    }
}

/// The broker's configuration as the predicate sees it.
pub struct BrokerPolicy<'a> {
    /// Issuer, break-glass roots and body limit.
    pub trust: CertificateTrust<'a>,
    /// Approver keys and roles, held independently of the issuer.
    pub approvers: &'a ApproverRegistry,
    /// Required path per risk level.
    pub path_rules: &'a PathRules,
    /// Allowed clock skew, milliseconds (default 30 000).
    pub skew_ms: u64,
    /// Longest validity window accepted, seconds (default 300).
    pub max_validity_s: u64,
}

impl std::fmt::Debug for BrokerPolicy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerPolicy")
            .field("skew_ms", &self.skew_ms)
            .field("max_validity_s", &self.max_validity_s)
            .finish_non_exhaustive()
    }
}

/// The digests of what was presented, as far as they could be computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presented {
    pub cid: Option<String>,
    pub nonce: Option<String>,
    pub caller: Option<String>,
    pub certificate_digest: Option<Digest>,
    pub request_digest: Option<Digest>,
    pub contract_digest: Option<Digest>,
    pub evidence_digest: Option<Digest>,
    pub observed_digest: Option<Digest>,
    pub not_before: Option<u64>,
    pub not_after: Option<u64>,
    pub break_glass: bool,
}

/// A failed check: which, what it means, why, and what was presented.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub check: FailedCheck,
    pub decision: Decision,
    pub reason: String,
    pub presented: Box<Presented>,
}

impl Rejection {
    fn new(
        check: FailedCheck,
        decision: Decision,
        reason: impl Into<String>,
        presented: &Presented,
    ) -> Self {
        Self { check, decision, reason: reason.into(), presented: Box::new(presented.clone()) }
    }
}

/// Checks 1–6 passed: the certificate is authentic, its path is satisfied, the caller holds
/// the subject key, the request matches, and the window is open.
#[derive(Debug, Clone)]
pub struct Authenticated {
    certificate: VerifiedCertificate,
    request: ExecRequest,
    presented: Presented,
}

impl Authenticated {
    /// The verified certificate.
    pub fn certificate(&self) -> &VerifiedCertificate {
        &self.certificate
    }
    /// The matched request.
    pub fn request(&self) -> &ExecRequest {
        &self.request
    }
    /// The contract.
    pub fn contract(&self) -> &Contract {
        &self.certificate.payload().contract
    }
    /// Digests for records.
    pub fn presented(&self) -> &Presented {
        &self.presented
    }
    /// Fail this authenticated request at a later check.
    pub fn reject(
        &self,
        check: FailedCheck,
        decision: Decision,
        reason: impl Into<String>,
    ) -> Rejection {
        Rejection::new(check, decision, reason, &self.presented)
    }
}

/// The epoch state a check runs against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochView {
    pub policy_epoch: u64,
    pub revocation_epoch: u64,
    pub revoked_cids: BTreeSet<String>,
    pub revoked_agents: BTreeSet<String>,
    /// When this state was known to be current (ms).
    pub as_of_ms: u64,
    /// How old it may be before the broker fails closed (ms).
    pub max_staleness_ms: u64,
}

/// The live observation of the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Pointer → live value, for the pointers of the evidence projection.
    pub projection: BTreeMap<String, Value>,
    /// The platform version the mutation's precondition will pin (resourceVersion, ETag…).
    pub version: Option<String>,
}

/// Whether a contract can be enforced on its platform (check 9). Implemented by each
/// platform profile; pure.
pub trait ScopeCheck {
    /// `Err(reason)` when some constraint has no enforcement point, or the contract can never
    /// be valid on the platform (a target or params the operation cannot take).
    fn check_scope(&self, contract: &Contract) -> Result<(), String>;

    /// `Err(reason)` when the contract may not act on the state its evidence certifies (for
    /// example: changing the type of an existing SSM parameter). Also part of check 9, run
    /// after [`ScopeCheck::check_scope`], before anything is observed; admission runs it on
    /// the evidence it has just built. Default: no such rule.
    fn check_evidence(&self, contract: &Contract, evidence: &Evidence) -> Result<(), String> {
        let _ = (contract, evidence);
        Ok(())
    }
}

/// Checks 1 to 6.
pub fn authenticate(
    bytes: &[u8],
    policy: &BrokerPolicy<'_>,
    now_ms: u64,
) -> Result<Authenticated, Rejection> {
    let mut presented = Presented::default();
    // 1. parse
    let p: Presentation = json::parse(bytes, policy.trust.limit).map_err(|e| {
        Rejection::new(FailedCheck::Parse, Decision::Reject, e.to_string(), &presented)
    })?;
    presented.cid = Some(p.request.cid.clone());
    presented.nonce = Some(p.request.nonce.clone());
    presented.caller = Some(p.request.caller.clone());
    // Computed once: the records name it, and the certificate check binds to it.
    let certificate_digest = p.certificate.digest();
    presented.certificate_digest = certificate_digest.as_ref().ok().copied();
    let request_bytes = json::canonical(&p.request).map_err(|e| {
        Rejection::new(FailedCheck::Parse, Decision::Reject, e.to_string(), &presented)
    })?;
    presented.request_digest = Some(Digest::of_bytes(&request_bytes));

    // 2. signature (then the payload parse, which fails as `parse`)
    let cert = certificate_digest
        .map_err(CertificateError::Payload)
        .and_then(|d| UnverifiedCertificate::new(p.certificate).verify_digested(&policy.trust, d))
        .map_err(|e| {
            let (check, decision) = match &e {
                CertificateError::Payload(_) | CertificateError::Field { .. } => {
                    (FailedCheck::Parse, Decision::Reject)
                }
                _ => (FailedCheck::Signature, Decision::FailClosed),
            };
            Rejection::new(check, decision, e.to_string(), &presented)
        })?;
    let c = cert.payload();
    presented.contract_digest = Some(c.contract_digest);
    presented.evidence_digest = Some(c.evidence.digest);
    presented.not_before = Some(c.validity.not_before);
    presented.not_after = Some(c.validity.not_after);
    presented.break_glass = cert.is_break_glass();

    // 3. path
    check_path(&cert, policy)
        .map_err(|r| Rejection::new(FailedCheck::Path, Decision::Reject, r, &presented))?;

    // 4. caller
    let caller_err =
        |r: String| Rejection::new(FailedCheck::Caller, Decision::Reject, r, &presented);
    c.subject
        .public_key
        .verify_b64(&pae(PayloadType::Request.media_type(), &request_bytes), &p.proof.sig)
        .map_err(|e| caller_err(format!("proof: {e}")))?;
    if p.request.caller != c.subject.agent {
        return Err(caller_err(format!(
            "caller `{}` is not the certificate subject `{}`",
            trunc(&p.request.caller),
            trunc(&c.subject.agent)
        )));
    }
    if p.request.t_exec_ms.abs_diff(now_ms) > policy.skew_ms {
        return Err(caller_err(format!(
            "t_exec_ms is {} ms from the broker clock, skew allows {}",
            p.request.t_exec_ms.abs_diff(now_ms),
            policy.skew_ms
        )));
    }

    // 5. match
    let match_err = |r: String| Rejection::new(FailedCheck::Match, Decision::Reject, r, &presented);
    if p.request.cid != c.cid {
        return Err(match_err("request cid differs from the certificate".into()));
    }
    if p.request.nonce != c.nonce {
        return Err(match_err("request nonce differs from the certificate".into()));
    }
    if p.request.op != c.contract.op {
        return Err(match_err(format!(
            "op `{}` is not the certified `{}`",
            trunc(&p.request.op),
            c.contract.op
        )));
    }
    if p.request.target != c.contract.target {
        return Err(match_err("target differs from the certified target".into()));
    }
    params_match(&c.contract.params, &c.contract.constraints, &p.request.params)
        .map_err(match_err)?;

    // 6. time
    let now_s = now_ms / 1000;
    let skew_s = policy.skew_ms.div_ceil(1000);
    let v = c.validity;
    let time_err = |r: String| Rejection::new(FailedCheck::Time, Decision::Reject, r, &presented);
    if v.not_after.saturating_sub(v.not_before) > policy.max_validity_s {
        return Err(time_err(format!(
            "validity window of {} s exceeds the broker's maximum {} s",
            v.not_after.saturating_sub(v.not_before),
            policy.max_validity_s
        )));
    }
    if now_s < v.not_before.saturating_sub(skew_s) {
        return Err(time_err(format!("not valid before {} (now {now_s})", v.not_before)));
    }
    if now_s >= v.not_after {
        return Err(time_err(format!("expired at {} (now {now_s})", v.not_after)));
    }
    Ok(Authenticated { certificate: cert, request: p.request, presented })
}

fn trunc(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Check 3: the attestations satisfy the rule the broker's own configuration requires.
fn check_path(cert: &VerifiedCertificate, policy: &BrokerPolicy<'_>) -> Result<(), String> {
    let c = cert.payload();
    let level = c.contract.risk_level;
    if cert.is_break_glass() {
        // Break-glass is authorised by its operator quorum (verified at check 2), not by the
        // autonomous path rules, and is flagged on every record. It may override up to L5
        // (it is human, not autonomous), but L0 is advisory and never executes.
        if level == RiskLevel::L0 {
            return Err("risk level L0 is advisory and never certified, even by break-glass".into());
        }
        return Ok(());
    }
    let rule = policy
        .path_rules
        .rule(level)
        .ok_or_else(|| format!("risk level {level} is never certified"))?;
    if c.cert_path < rule.path {
        return Err(format!(
            "path `{}` is weaker than `{}` required for {level}",
            c.cert_path, rule.path
        ));
    }
    let mut validators = BTreeSet::new();
    let mut humans = BTreeSet::new();
    for (i, att) in c.attestations.iter().enumerate() {
        let v = att
            .verify(PayloadType::Approval, policy.approvers)
            .map_err(|e| format!("attestation {i}: {e}"))?;
        let a: Approval =
            v.parse(policy.trust.limit).map_err(|e| format!("attestation {i}: {e}"))?;
        let [kid] = v.signers() else {
            return Err(format!("attestation {i}: must carry exactly one signature"));
        };
        let (name, role) = policy
            .approvers
            .identity(kid)
            .ok_or_else(|| format!("attestation {i}: unknown approver"))?;
        if name != a.approver {
            return Err(format!(
                "attestation {i}: signed by `{name}` but names `{}`",
                trunc(&a.approver)
            ));
        }
        if a.contract_digest != c.contract_digest || a.evidence_digest != c.evidence.digest {
            return Err(format!("attestation {i}: bound to a different contract or evidence"));
        }
        if a.decision != ApprovalDecision::Approve {
            return Err(format!("attestation {i}: `{name}` denied"));
        }
        match role {
            ApproverRole::Validator => validators.insert(name.to_owned()),
            ApproverRole::Human => humans.insert(name.to_owned()),
            ApproverRole::BreakGlass => {
                return Err(format!("attestation {i}: break-glass keys do not approve"));
            }
        };
    }
    if validators.len() < rule.validators {
        return Err(format!("{} of {} validator approvals", validators.len(), rule.validators));
    }
    if humans.len() < rule.humans {
        return Err(format!("{} of {} human approvals", humans.len(), rule.humans));
    }
    Ok(())
}

/// Checks 7 to 10. `epochs` is `None` when the epoch state could not be read.
pub fn check_state(
    auth: &Authenticated,
    epochs: Option<&EpochView>,
    now_ms: u64,
    scope: &dyn ScopeCheck,
    already_reserved: bool,
) -> Result<(), Rejection> {
    let c = auth.certificate.payload();
    // The epoch state must be readable and fresh before either epoch check can be trusted.
    let Some(ep) = epochs else {
        return Err(auth.reject(
            FailedCheck::Revocation,
            Decision::FailClosed,
            "epoch state is unreadable",
        ));
    };
    let age = now_ms.saturating_sub(ep.as_of_ms);
    if age > ep.max_staleness_ms {
        return Err(auth.reject(
            FailedCheck::Revocation,
            Decision::FailClosed,
            format!("epoch state is {age} ms old, limit {} ms", ep.max_staleness_ms),
        ));
    }
    // 7. policy epoch
    if c.policy_epoch != ep.policy_epoch {
        return Err(auth.reject(
            FailedCheck::PolicyEpoch,
            Decision::Readmit,
            format!(
                "certificate policy epoch {} is not the active {}",
                c.policy_epoch, ep.policy_epoch
            ),
        ));
    }
    // 8. revocation
    if c.revocation_epoch != ep.revocation_epoch {
        return Err(auth.reject(
            FailedCheck::Revocation,
            Decision::FailClosed,
            format!(
                "certificate revocation epoch {} is not the active {}",
                c.revocation_epoch, ep.revocation_epoch
            ),
        ));
    }
    if ep.revoked_cids.contains(&c.cid) {
        return Err(auth.reject(
            FailedCheck::Revocation,
            Decision::FailClosed,
            "certificate is revoked",
        ));
    }
    if ep.revoked_agents.contains(&c.subject.agent) {
        return Err(auth.reject(FailedCheck::Revocation, Decision::FailClosed, "agent is revoked"));
    }
    // 9. scope
    scope
        .check_scope(&c.contract)
        .and_then(|()| scope.check_evidence(&c.contract, &c.evidence))
        .map_err(|r| auth.reject(FailedCheck::Scope, Decision::Reject, r))?;
    // 10. replay (pre-check; the reservation at 12 is authoritative)
    if already_reserved {
        return Err(auth.reject(FailedCheck::Replay, Decision::Reject, "nonce already used"));
    }
    Ok(())
}

/// Check 11. `observation` is `Err` when the live state could not be read.
pub fn check_drift(
    auth: &Authenticated,
    observation: Result<&Observation, &str>,
) -> Result<Digest, Rejection> {
    let obs = observation.map_err(|e| {
        auth.reject(FailedCheck::Drift, Decision::FailClosed, format!("live state unreadable: {e}"))
    })?;
    let observed = Digest::of_json(&obs.projection).map_err(|e: JsonError| {
        auth.reject(FailedCheck::Drift, Decision::FailClosed, e.to_string())
    })?;
    let ev = &auth.certificate.payload().evidence;
    drift::compare(&ev.projection, &ev.tolerance, &obs.projection).map_err(|r| {
        let mut rej = auth.reject(FailedCheck::Drift, Decision::Readmit, r);
        rej.presented.observed_digest = Some(observed);
        rej
    })?;
    Ok(observed)
}

/// Everything the state snapshot holds for [`evaluate`].
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    pub now_ms: u64,
    pub epochs: Option<&'a EpochView>,
    pub already_reserved: bool,
    pub observation: Result<&'a Observation, &'a str>,
}

/// Checks 1–11 passed: ready to reserve.
#[derive(Debug, Clone)]
pub struct Admissible {
    pub auth: Authenticated,
    pub observed_digest: Digest,
}

/// The whole pure predicate, checks 1 to 11, in order.
pub fn evaluate(
    bytes: &[u8],
    policy: &BrokerPolicy<'_>,
    scope: &dyn ScopeCheck,
    snap: &Snapshot<'_>,
) -> Result<Admissible, Rejection> {
    let auth = authenticate(bytes, policy, snap.now_ms)?;
    check_state(&auth, snap.epochs, snap.now_ms, scope, snap.already_reserved)?;
    let observed_digest = check_drift(&auth, snap.observation)?;
    let mut auth = auth;
    auth.presented.observed_digest = Some(observed_digest);
    Ok(Admissible { auth, observed_digest })
}

/// Sign an execution request as its caller (the agent side of spec section 6).
pub fn sign_request(
    request: &ExecRequest,
    agent: &crate::keys::SigningKey,
) -> Result<crate::types::Proof, JsonError> {
    let bytes = json::canonical(request)?;
    Ok(crate::types::Proof { sig: agent.sign_b64(&pae(PayloadType::Request.media_type(), &bytes)) })
}
