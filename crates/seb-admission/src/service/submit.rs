//! Stage `submit` and `observe/score`: authenticate the signed proposal, store it (once,
//! ever: the seen-proposal set), evaluate it, and move it out of `evaluating`.
//!
//! Scoring stage: [`Admission::evaluate`] computes the proposal's score and requirement; a
//! later stage (net-effect scoring, spec 5.2) may return a stronger requirement here, never
//! a weaker one ([`Requirement::max`]).

use std::collections::BTreeMap;

use seb_core::digest::Digest;
use seb_core::envelope::{Envelope, EnvelopeError, PayloadType};
use seb_core::json;
use seb_core::keys::TrustedKeys;
use seb_core::pipeline::Observation;
use seb_core::types::{Contract, Evidence, Proposal, RiskLevel};
use seb_store::admission::{Cas, NewProposal};
use seb_target::ObserveRequest;
use tracing::{error, info, warn};

use super::state::{AfterEvaluation, Body, Evaluating, Evaluation, Received, Stage, Verdict};
use super::{Admission, Loaded, PlatformAdapter, PolicyView, ProposalView, proposal_id_ok, short};
use crate::error::AdmissionError;
use crate::paths::required;
use crate::records::AdmissionDecision;

/// What evaluation found and where it leads; `inapplicable`: the denial is because the op
/// cannot apply to the observed state (answered 422).
pub(super) struct Evaluated {
    pub(super) evaluation: Evaluation,
    pub(super) verdict: Verdict,
    pub(super) inapplicable: bool,
}

impl Admission {
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
        let id = proposal.proposal_id.clone();
        let body = Body {
            received: Received { proposal: proposal.clone(), subject_key, received_at_ms: now },
            stage: Stage::Evaluating(Evaluating {}),
            break_glass: None,
            record_id: None,
        };
        // The seen-proposal set: a proposal id is stored once, ever, on every replica.
        let stored = self
            .state()?
            .insert_proposal(NewProposal {
                proposal_id: id.clone(),
                agent: proposal.agent.clone(),
                status: body.stage.name().to_owned(),
                received_at_ms: now,
                deadline_ms: None,
                claim_until_ms: Some(now.saturating_add(self.settings.claim_ms)),
                body: serde_json::to_vec(&body)
                    .map_err(|e| AdmissionError::Internal(format!("proposal as JSON: {e}")))?,
            })
            .await?;
        if !stored {
            warn!(proposal_id = %id, agent = %proposal.agent, "proposal id seen before: refused (replay or reuse)");
            return Err(AdmissionError::Conflict(format!("proposal `{id}` exists")));
        }
        let loaded = self.load(&id).await?;
        self.run_evaluation(loaded).await?;
        self.view(&id).await
    }

    /// Evaluate a proposal in `evaluating` (this replica holds its claim) and store where it
    /// leads. Policy-path proposals are issued at once.
    pub(super) async fn run_evaluation(&self, l: Loaded) -> Result<(), AdmissionError> {
        let Stage::Evaluating(evaluating) = l.body.stage.clone() else { return Ok(()) };
        let id = l.id().to_owned();
        let now = self.now()?;
        let received = l.body.received.clone();
        let deadline = now.saturating_add(self.settings.approval_timeout_ms);
        let (stage, inapplicable) = match self.evaluate(&received.proposal, now).await {
            Ok(ev) => (evaluating.evaluated(ev.evaluation, ev.verdict, deadline), ev.inapplicable),
            Err(reason) => (AfterEvaluation::Denied(evaluating.failed(reason)), false),
        };
        let epochs = self.store.epochs().await.ok();
        let record = match &stage {
            AfterEvaluation::Denied(d) => Some(self.record(
                &received,
                d.evaluation.as_ref(),
                None,
                Vec::new(),
                AdmissionDecision::Deny,
                &d.reason,
                now,
                epochs,
            )),
            AfterEvaluation::Advisory(a) => Some(self.record(
                &received,
                Some(&a.evaluation),
                None,
                Vec::new(),
                AdmissionDecision::Deny,
                &a.reason,
                now,
                epochs,
            )),
            AfterEvaluation::Pending(_) | AfterEvaluation::Issuing(_) => None,
        };
        let stage: Stage = stage.into();
        let next = Body { stage: stage.clone(), ..l.body.clone() };
        let cas = self.save(&l, next, record.as_ref()).await?;
        let Cas::Done { .. } = cas else { return Ok(()) };
        match &stage {
            Stage::Denied(d) => {
                warn!(proposal_id = %id, agent = %received.proposal.agent, reason = %d.reason, "proposal denied");
                self.emit(&id).await;
                if inapplicable {
                    return Err(AdmissionError::Inapplicable {
                        proposal_id: id,
                        record_id: record.map(|r| r.id),
                        reason: d.reason.clone(),
                    });
                }
            }
            Stage::Advisory(a) => {
                info!(proposal_id = %id, reason = %a.reason, "proposal is advisory");
            }
            Stage::Pending(_) => {
                info!(proposal_id = %id, "proposal waits for approvals");
                self.emit(&id).await;
            }
            Stage::Issuing(_) => {
                if let Err(e) = self.issue_claimed(&id).await {
                    error!(proposal_id = %id, error = %e, "issuance failed");
                    return Err(e);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Compile, check scope, observe, score and evaluate the policy. `Err` is a denial
    /// reason (nothing to show beyond it).
    pub(super) async fn evaluate(&self, p: &Proposal, now: u64) -> Result<Evaluated, String> {
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
        // Scoring stage: the proposal alone (net-effect scoring may raise it, never lower it).
        let factors = adapter.profile.consequence(&p.op, &target, &params);
        let alone = self.scoring.score(&factors);
        let mut contract = Contract {
            platform: p.platform,
            op: p.op.clone(),
            target: target.clone(),
            params: params.clone(),
            constraints: p.constraints.clone(),
            risk_level: alone.level,
        };
        let mut contract_digest = contract.digest().map_err(|e| format!("contract: {e}"))?;
        adapter.target.check_scope(&contract).map_err(|e| format!("scope: {e}"))?;
        let (evidence, observed) = self.observe(adapter, &contract, now).await?;
        let inapplicable = adapter.profile.applicable(&contract.op, &observed).err();
        let (engine, policy_epoch) =
            self.policy_in_force().await.map_err(|e| format!("policy: {e}"))?;
        let paths: Vec<String> = p.constraints.iter().map(|c| c.path.clone()).collect();
        // Net-effect scoring (spec 5.2): the policy is evaluated on the proposal alone and on
        // the net effect of its window; the stronger side decides (enforce) or is shown
        // (shadow). It may raise the level, never lower it.
        let ne = self
            .net_effect_assess(
                adapter,
                &engine,
                policy_epoch,
                p,
                &target,
                &params,
                &paths,
                &evidence,
                &factors,
                &alone,
                now,
            )
            .await?;
        let (score, outcome) = (ne.score, ne.outcome);
        if score.level != contract.risk_level {
            contract.risk_level = score.level;
            contract_digest = contract.digest().map_err(|e| format!("contract: {e}"))?;
        }
        let requirement =
            required(score.level, &self.path_rules, &self.escalation, &outcome.escalations);
        let verdict = if let Some(why) = &inapplicable {
            Verdict::Deny(why.clone())
        } else if !outcome.permitted {
            Verdict::Deny(format!("policy: {}", outcome.reasons.join("; ")))
        } else if score.level == RiskLevel::L0 {
            Verdict::Advisory("L0 is advisory: no certificate is issued".into())
        } else if score.level == RiskLevel::L5 {
            Verdict::Deny("L5 is never certified autonomously (break-glass only)".into())
        } else {
            match requirement {
                None => Verdict::Deny(format!(
                    "{} is not certified by the configured path rules",
                    score.level
                )),
                Some(r) if r.needs_approvals() => Verdict::Wait(r),
                Some(r) => Verdict::Issue(r),
            }
        };
        Ok(Evaluated {
            evaluation: Evaluation {
                contract,
                contract_digest,
                evidence,
                score,
                policy: PolicyView { outcome, policy_epoch, policy_digest: engine.digest() },
                requirement,
                net_effect: Some(ne.view),
            },
            verdict,
            inapplicable: inapplicable.is_some(),
        })
    }

    pub(super) async fn observe(
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
}
