//! Stage `issue`: claim a pending proposal whose requirement is met, re-check what may have
//! changed while it waited, sign, and commit `certified` with its issue record in ONE store
//! transaction (a compare-and-set on the version the claim produced). Also expiry and the
//! take-over of work a killed replica left claimed.
//!
//! Exactly one certificate per proposal: the claim is a compare-and-set, the commit is a
//! compare-and-set on the claim's version, and the certificate is released (readable) only
//! from the committed `certified` stage. A replica killed after signing and before the commit
//! leaves nothing issued; the take-over signs a new certificate and is the only one recorded.

use seb_core::certificate::encode_nonce;
use seb_core::envelope::Envelope;
use seb_core::types::{CertificatePayload, Issuer, Subject, Validity};
use seb_store::Epochs;
use seb_store::admission::Cas;
use tracing::{info, warn};

use super::state::{Issuing, Stage};
use super::{Admission, Loaded, PolicyView};
use crate::error::AdmissionError;
use crate::paths::{Requirement, required};
use crate::policy::PolicyInput;
use crate::records::AdmissionDecision;

/// Why issuance did not happen.
pub(super) enum Refusal {
    /// Deny the proposal with this reason.
    Deny(String),
    /// A reloaded policy raised the requirement beyond the approvals: back to pending.
    Wait(Requirement, PolicyView),
    /// Net-effect accounting assessed it again (the window changed since evaluation) and
    /// the requirement now exceeds the approvals: back to pending under that assessment.
    Reassessed(Box<super::state::Evaluation>, Requirement),
    /// Net-effect accounting assessed it again and its approvals still meet the
    /// requirement: issue again under the new evaluation (bounded by [`RETRIES`]).
    Retry(Box<super::state::Evaluation>, Requirement),
}

/// Fault injection for crash tests: abort the process at a named step (feature
/// `fault-injection`, never in a product build).
#[cfg(feature = "fault-injection")]
fn crash_point(step: &str) {
    if std::env::var("SEB_CRASH_AT").is_ok_and(|v| v == step) {
        eprintln!("SEB_CRASH_AT={step}: aborting");
        std::process::abort();
    }
}
#[cfg(not(feature = "fault-injection"))]
fn crash_point(_step: &str) {}

/// Most compare-and-set retries of one step (each retry re-reads the proposal).
const RETRIES: usize = 16;

impl Admission {
    /// If the proposal is pending and its approvals meet the requirement, claim it and
    /// issue. Safe to call from any replica at any time.
    pub(super) async fn advance(&self, id: &str) -> Result<(), AdmissionError> {
        for _ in 0..RETRIES {
            let l = self.load(id).await?;
            let Stage::Pending(p) = l.body.stage.clone() else { return Ok(()) };
            let (validators, humans) = l.approvers();
            if !p.requirement.satisfied_by(&validators, &humans) {
                return Ok(());
            }
            let next = super::state::Body { stage: Stage::Issuing(p.claim()), ..l.body.clone() };
            match self.save(&l, next, None).await? {
                Cas::Done { .. } => return self.issue_claimed(id).await,
                Cas::Stale => continue,
            }
        }
        Ok(())
    }

    /// Deny a pending proposal (an approver denied, its agent was revoked), recording it.
    pub(super) async fn deny_pending(&self, id: &str, reason: &str) -> Result<(), AdmissionError> {
        for _ in 0..RETRIES {
            let l = self.load(id).await?;
            let Stage::Pending(p) = l.body.stage.clone() else { return Ok(()) };
            let now = self.now()?;
            let epochs = self.store.epochs().await.ok();
            let (v, h) = l.approvers();
            let record = self.record(
                &l.body.received,
                Some(&p.evaluation),
                Some(p.requirement),
                v.into_iter().chain(h).collect(),
                AdmissionDecision::Deny,
                reason,
                now,
                epochs,
            );
            let next = super::state::Body {
                stage: Stage::Denied(p.deny(reason.to_owned())),
                ..l.body.clone()
            };
            match self.save(&l, next, Some(&record)).await? {
                Cas::Done { .. } => {
                    warn!(proposal_id = %id, agent = %record.agent, reason, "proposal denied");
                    self.emit(id).await;
                    return Ok(());
                }
                Cas::Stale => continue,
            }
        }
        Ok(())
    }

    /// Issue a proposal in `issuing` (this replica holds the claim it just made or took over).
    pub(super) async fn issue_claimed(&self, id: &str) -> Result<(), AdmissionError> {
        for _ in 0..RETRIES {
            let l = self.load(id).await?;
            let Stage::Issuing(issuing) = l.body.stage.clone() else { return Ok(()) };
            let now = self.now()?;
            match self.try_issue(&l, &issuing, now).await {
                Ok((envelope, payload, epochs)) => {
                    // Signed, not yet committed: a crash here must leave nothing issued.
                    crash_point("admission_issue_signed");
                    return self.commit_issue(&l, issuing, envelope, payload, epochs, now).await;
                }
                Err(Refusal::Retry(evaluation, requirement)) => {
                    // The net effect was assessed again and still allows issuance: keep the
                    // new evaluation (what approvers and the record see) and issue under it.
                    let stage = Stage::Issuing(super::state::Issuing {
                        evaluation: *evaluation,
                        requirement,
                        deadline_ms: issuing.deadline_ms,
                    });
                    let next = super::state::Body { stage, ..l.body.clone() };
                    if let Cas::Stale = self.save(&l, next, None).await? {
                        return Ok(());
                    }
                }
                Err(Refusal::Deny(reason)) => {
                    let epochs = self.store.epochs().await.ok();
                    let (v, h) = l.approvers();
                    let record = self.record(
                        &l.body.received,
                        Some(&issuing.evaluation),
                        Some(issuing.requirement),
                        v.into_iter().chain(h).collect(),
                        AdmissionDecision::Deny,
                        &reason,
                        now,
                        epochs,
                    );
                    let next = super::state::Body {
                        stage: Stage::Denied(issuing.deny(reason.clone())),
                        ..l.body.clone()
                    };
                    if let Cas::Done { .. } = self.save(&l, next, Some(&record)).await? {
                        warn!(proposal_id = %id, agent = %record.agent, reason = %reason, "proposal denied at issuance");
                        self.emit(id).await;
                    }
                    return Ok(());
                }
                Err(Refusal::Reassessed(evaluation, requirement)) => {
                    let next = super::state::Body {
                        stage: Stage::Pending(issuing.reassessed(*evaluation, requirement)),
                        ..l.body.clone()
                    };
                    if let Cas::Done { .. } = self.save(&l, next, None).await? {
                        info!(proposal_id = %id, path = %requirement.path, "net effect: the window's changes raised the requirement; proposal waits for approvals");
                        self.emit(id).await;
                    }
                    return Ok(());
                }
                Err(Refusal::Wait(requirement, policy)) => {
                    let next = super::state::Body {
                        stage: Stage::Pending(issuing.wait(requirement, policy)),
                        ..l.body.clone()
                    };
                    self.save(&l, next, None).await?;
                    info!(proposal_id = %id, "the policy in force raised the requirement: waits for approvals");
                    return Ok(());
                }
            }
        }
        warn!(proposal_id = %id, "net effect: the window kept changing during issuance; the claim is left to a later take-over");
        Ok(())
    }

    /// Everything that may have changed since evaluation, then the signed certificate.
    async fn try_issue(
        &self,
        l: &Loaded,
        issuing: &Issuing,
        now: u64,
    ) -> Result<(Envelope, CertificatePayload, Epochs), Refusal> {
        let proposal = &l.body.received.proposal;
        let ev = &issuing.evaluation;
        let check = self
            .store
            .epoch_check("", &proposal.agent)
            .await
            .map_err(|e| Refusal::Deny(format!("store unavailable, not issued: {e}")))?;
        if check.agent_revoked {
            return Err(Refusal::Deny(format!("agent `{}` is revoked", proposal.agent)));
        }
        let (engine, policy_epoch) =
            self.policy_in_force().await.map_err(|e| Refusal::Deny(e.to_string()))?;
        if check.epochs.policy_epoch != policy_epoch {
            return Err(Refusal::Deny(format!(
                "the store's policy epoch {} moved while issuing ({policy_epoch}): propose again",
                check.epochs.policy_epoch
            )));
        }
        let (validators, humans) = l.approvers();
        // Re-evaluate under the policy in force now (it may have been reloaded, here or at
        // another replica, while the proposal waited): it may deny, or raise the
        // requirement, never lower it.
        let mut requirement = issuing.requirement;
        if ev.policy.policy_epoch != policy_epoch {
            let contract = &ev.contract;
            let paths: Vec<String> = contract.constraints.iter().map(|c| c.path.clone()).collect();
            let outcome = engine
                .evaluate(&PolicyInput {
                    agent: &proposal.agent,
                    platform: contract.platform,
                    op: &contract.op,
                    target: &contract.target,
                    params: &contract.params,
                    constraint_paths: &paths,
                    level: ev.score.level,
                    score: &ev.score,
                    // The net-effect facts are evaluated again by `net_effect_account` below.
                    extra: None,
                })
                .map_err(|e| Refusal::Deny(format!("policy: {e}")))?;
            let Some(now_required) =
                required(ev.score.level, &self.path_rules, &self.escalation, &outcome.escalations)
            else {
                return Err(Refusal::Deny(format!(
                    "{} is not certified by the configured path rules",
                    ev.score.level
                )));
            };
            if !outcome.permitted {
                return Err(Refusal::Deny(format!("policy: {}", outcome.reasons.join("; "))));
            }
            requirement = requirement.max(now_required);
            if !requirement.satisfied_by(&validators, &humans) {
                let view = PolicyView { outcome, policy_epoch, policy_digest: engine.digest() };
                return Err(Refusal::Wait(requirement, view));
            }
        }
        let attestations = l.attestations();
        // Time has passed since the evidence was taken when approvals were needed: the
        // certificate must carry the state the approvers saw, and that state must still hold.
        if !attestations.is_empty() || requirement.needs_approvals() {
            let adapter = self
                .platforms
                .get(ev.contract.platform)
                .ok_or_else(|| Refusal::Deny("platform vanished".into()))?;
            let (fresh, _) =
                self.observe(adapter, &ev.contract, now).await.map_err(Refusal::Deny)?;
            if fresh.digest != ev.evidence.digest {
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
        // Net-effect accounting (spec 5.2): log this change in its scope's window, serially
        // across replicas, before the certificate exists; a window that changed since the
        // evaluation is assessed again (which may deny, or send it back to wait).
        self.net_effect_account(l, issuing, &cid, requirement, now).await?;
        let now_s = now / 1000;
        let validity = Validity {
            not_before: now_s,
            not_after: now_s.saturating_add(self.settings.validity_s),
        };
        let payload = CertificatePayload {
            version: 1,
            cid,
            nonce: encode_nonce(&random),
            issuer: Issuer { name: self.settings.issuer_name.clone(), kid: self.issuer.kid() },
            subject: Subject {
                agent: proposal.agent.clone(),
                public_key: l.body.received.subject_key,
            },
            contract: ev.contract.clone(),
            contract_digest: ev.contract_digest,
            evidence: ev.evidence.clone(),
            validity,
            policy_epoch: check.epochs.policy_epoch,
            revocation_epoch: check.epochs.revocation_epoch,
            cert_path: requirement.path,
            attestations,
            issued_at_ms: now,
        };
        let envelope = payload.sign(&self.issuer).map_err(|e| Refusal::Deny(e.to_string()))?;
        Ok((envelope, payload, check.epochs))
    }

    /// Commit `certified` and the issue record in one transaction; only then does anyone
    /// see the certificate.
    async fn commit_issue(
        &self,
        l: &Loaded,
        issuing: Issuing,
        envelope: Envelope,
        payload: CertificatePayload,
        epochs: Epochs,
        now: u64,
    ) -> Result<(), AdmissionError> {
        let digest = envelope.digest()?;
        let (v, h) = l.approvers();
        let mut approvers: Vec<String> = v.into_iter().chain(h).collect();
        approvers.sort();
        let mut record = self.record(
            &l.body.received,
            Some(&issuing.evaluation),
            Some(issuing.requirement),
            approvers,
            AdmissionDecision::Issue,
            "issued",
            now,
            Some(epochs),
        );
        record.cid = Some(payload.cid.clone());
        record.certificate_digest = Some(digest);
        record.cert_path = Some(payload.cert_path);
        record.risk_level = Some(payload.contract.risk_level);
        record.not_before = Some(payload.validity.not_before);
        record.not_after = Some(payload.validity.not_after);
        record.attestation_digests =
            payload.attestations.iter().filter_map(|a| a.digest().ok()).collect();
        // Passkey-signed approvals ride along so `seb ledger verify` re-verifies them offline
        // against the credential of their `enrol` record (spec 5.1).
        record.passkey_approvals = payload
            .attestations
            .iter()
            .filter(|a| a.signatures.iter().any(|s| s.webauthn.is_some()))
            .cloned()
            .collect();
        let certified = issuing.certify(envelope, &payload, digest);
        let next =
            super::state::Body { stage: Stage::Certified(Box::new(certified)), ..l.body.clone() };
        match self.save(l, next, Some(&record)).await? {
            Cas::Done { .. } => {
                info!(proposal_id = %l.id(), cid = %payload.cid, cert_path = %payload.cert_path, risk_level = %payload.contract.risk_level, break_glass = false, "certificate issued");
                self.emit(l.id()).await;
            }
            Cas::Stale => {
                warn!(proposal_id = %l.id(), cid = %payload.cid, "another replica finished this issuance first: this certificate is discarded, never released");
            }
        }
        Ok(())
    }

    /// Expire every pending proposal whose deadline passed (each exactly once across
    /// replicas: a compare-and-set). Returns how many this call expired.
    pub async fn expire(&self) -> usize {
        let Ok(now) = self.now() else { return 0 };
        let Ok(state) = self.state() else { return 0 };
        let ids = match state.overdue("pending", now).await {
            Ok(ids) => ids,
            Err(e) => {
                warn!(error = %e, "could not list overdue proposals");
                return 0;
            }
        };
        let mut n = 0;
        for id in ids {
            match self.expire_one(&id, now).await {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => warn!(proposal_id = %id, error = %e, "could not record the timeout"),
            }
        }
        n
    }

    async fn expire_one(&self, id: &str, now: u64) -> Result<bool, AdmissionError> {
        let l = self.load(id).await?;
        let Stage::Pending(p) = l.body.stage.clone() else { return Ok(false) };
        if p.deadline_ms >= now {
            return Ok(false);
        }
        let reason = "approval timeout: the path was not satisfied in time";
        let epochs = self.store.epochs().await.ok();
        let (v, h) = l.approvers();
        let record = self.record(
            &l.body.received,
            Some(&p.evaluation),
            Some(p.requirement),
            v.into_iter().chain(h).collect(),
            AdmissionDecision::Deny,
            reason,
            now,
            epochs,
        );
        let next =
            super::state::Body { stage: Stage::Expired(p.expire(reason.into())), ..l.body.clone() };
        let done = matches!(self.save(&l, next, Some(&record)).await?, Cas::Done { .. });
        if done {
            warn!(proposal_id = %id, agent = %record.agent, "proposal expired");
            self.emit(id).await;
        }
        Ok(done)
    }

    /// Take over work whose claim ran out (the replica holding it was killed or stalled):
    /// `evaluating` proposals are evaluated again, `issuing` ones issued. Returns how many
    /// this call took over.
    pub async fn recover(&self) -> usize {
        let Ok(now) = self.now() else { return 0 };
        let Ok(state) = self.state() else { return 0 };
        let mut n = 0;
        for status in ["evaluating", "issuing"] {
            let ids = match state.overdue(status, now).await {
                Ok(ids) => ids,
                Err(e) => {
                    warn!(error = %e, "could not list claimed proposals");
                    continue;
                }
            };
            for id in ids {
                match self.take_over(&id, now).await {
                    Ok(true) => n += 1,
                    Ok(false) => {}
                    Err(e) => warn!(proposal_id = %id, error = %e, "take-over failed"),
                }
            }
        }
        n
    }

    async fn take_over(&self, id: &str, now: u64) -> Result<bool, AdmissionError> {
        let l = self.load(id).await?;
        if l.row.claim_until_ms.is_none_or(|c| c >= now) {
            return Ok(false);
        }
        let stage = l.body.stage.clone();
        if !matches!(stage, Stage::Evaluating(_) | Stage::Issuing(_)) {
            return Ok(false);
        }
        // Renew the claim under this replica (same stage, new version).
        let next = super::state::Body { stage: stage.clone(), ..l.body.clone() };
        let Cas::Done { .. } = self.save(&l, next, None).await? else { return Ok(false) };
        warn!(proposal_id = %id, status = stage.name(), "claim ran out (a replica stopped): taking the work over");
        match stage {
            Stage::Evaluating(_) => {
                let l = self.load(id).await?;
                // An inapplicable proposal is already recorded; nobody waits for the answer.
                let _ = self.run_evaluation(l).await;
            }
            _ => self.issue_claimed(id).await?,
        }
        Ok(true)
    }
}
