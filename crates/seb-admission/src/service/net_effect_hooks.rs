//! The two net-effect hooks of the admission state machine (spec 5.2): assessment when a
//! proposal is evaluated, accounting when its certificate is about to be issued. The model
//! and the pure parts are in [`crate::net_effect`]; this module only reads and updates the
//! proposal's state.

use seb_target::ConsequenceFactors;

use super::issue::Refusal;
use super::state::{Evaluation, Issuing};
use super::{Admission, Loaded, PlatformAdapter, PolicyView};
use crate::net_effect::{
    self, NetEffectMode, NetEffectView, SideScore, combine, cumulative, fold, policy_facts,
    read_window, related,
};
use crate::paths::{Requirement, required};
use crate::policy::{PolicyEngine, PolicyInput, PolicyOutcome};
use crate::scoring::Score;
use seb_core::types::{Evidence, Proposal, RiskLevel};
use serde_json::Value;
use tracing::{info, warn};

/// What the assessment decided.
pub(super) struct Assessed {
    /// The effective score (the stronger side in `enforce` mode).
    pub score: Score,
    /// The effective policy outcome.
    pub outcome: PolicyOutcome,
    pub view: NetEffectView,
}

impl Admission {
    /// Score `p` alone and as the net effect of its window, evaluate the policy on both,
    /// and combine them. `Err` is a denial reason.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn net_effect_assess(
        &self,
        adapter: &PlatformAdapter,
        engine: &PolicyEngine,
        policy_epoch: u64,
        p: &Proposal,
        target: &Value,
        params: &Value,
        paths: &[String],
        evidence: &Evidence,
        factors: &ConsequenceFactors,
        alone: &Score,
        now: u64,
    ) -> Result<Assessed, String> {
        let settings = self.net_effect;
        let profile = adapter.profile.as_ref();
        let scope_key = profile.scope_key(target, settings.scope);
        let mut window = match read_window(
            self.store.as_ref(),
            &settings,
            &p.agent,
            &scope_key,
            now,
        )
        .await
        {
            Ok(w) => w,
            Err(e) if settings.mode == NetEffectMode::Enforce => {
                warn!(proposal_id = %p.proposal_id, scope_key = %scope_key, error = %e, "net effect: window unavailable, proposal denied");
                return Err(e);
            }
            Err(e) => {
                warn!(proposal_id = %p.proposal_id, scope_key = %scope_key, error = %e, "net effect (shadow): window unavailable, scored alone");
                net_effect::Window {
                    since_ms: now.saturating_sub(settings.window_ms),
                    ..Default::default()
                }
            }
        };
        // The proposal's own change is never its own context (a replica that raced another
        // one issuing the same proposal may find it logged); `seen_seq` still covers it.
        window.changes.retain(|(r, _)| r.proposal_id != p.proposal_id);
        let change = profile.change(&p.op, target, params, &evidence.projection);
        let netc = fold(&window, &change);
        let net_score = net_effect::net_score(&self.scoring, profile, factors, target, &netc);
        let cum = cumulative(&window, &netc, &settings);
        let enforce = settings.mode == NetEffectMode::Enforce;
        let eval = |score: &Score, facts: &Value| {
            engine
                .evaluate(&PolicyInput {
                    agent: &p.agent,
                    platform: p.platform,
                    op: &p.op,
                    target,
                    params,
                    constraint_paths: paths,
                    level: score.level,
                    score,
                    extra: Some(facts),
                })
                .map_err(|e| format!("policy: {e}"))
        };
        // Shadow mode: the proposal's own evaluation does not see the window.
        let alone_facts = policy_facts(&evidence.projection, &change, enforce.then_some(&cum));
        let alone_outcome = eval(alone, &alone_facts)?;
        let net_facts = policy_facts(&evidence.projection, &netc, Some(&cum));
        let net_outcome = eval(&net_score, &net_facts)?;
        let side = |s: &Score, o: &PolicyOutcome| SideScore {
            level: s.level,
            score_milli: s.score_milli,
            permitted: o.permitted,
            escalations: o.escalations.clone(),
            requirement: required(s.level, &self.path_rules, &self.escalation, &o.escalations),
        };
        let alone_side = side(alone, &alone_outcome);
        let net_side = side(&net_score, &net_outcome);
        let (score, outcome, decided_by) =
            combine(settings.mode, (alone, &alone_outcome), (&net_score, &net_outcome));
        if decided_by == "net_shadow" {
            warn!(proposal_id = %p.proposal_id, agent = %p.agent, scope_key = %scope_key, related = window.changes.len(), alone_level = %alone.level, net_level = %net_score.level, "net effect would escalate this proposal (shadow mode: not enforced)");
        } else {
            info!(proposal_id = %p.proposal_id, agent = %p.agent, scope_key = %scope_key, related = window.changes.len(), alone_level = %alone.level, net_level = %net_score.level, decided_by, "net effect assessed");
        }
        let view = NetEffectView {
            mode: settings.mode,
            scope: settings.scope,
            scope_key,
            window_ms: settings.window_ms,
            since_ms: window.since_ms,
            seen_seq: window.seen_seq,
            related: related(&window),
            related_count: window.changes.len(),
            change,
            net: netc,
            alone: alone_side,
            net_score: net_side,
            decided_by: decided_by.to_owned(),
            cumulative: cum,
            policy_epoch,
        };
        Ok(Assessed { score, outcome, view })
    }

    /// Append the proposal's change to its scope's log if the window is unchanged since it
    /// was assessed (and under the policy in force). Otherwise assess it again and answer
    /// with the new evaluation: [`Refusal::Retry`] when its approvals still meet the
    /// (possibly raised) requirement, [`Refusal::Reassessed`] when it must wait for more,
    /// a denial when the policy now forbids it, or its level rose after approvals were bound
    /// to the contract.
    pub(super) async fn net_effect_account(
        &self,
        l: &Loaded,
        issuing: &Issuing,
        cid: &str,
        requirement: Requirement,
        now: u64,
    ) -> Result<(), Refusal> {
        let proposal = &l.body.received.proposal;
        let ev = &issuing.evaluation;
        let Some(view) = ev.net_effect.as_ref() else {
            return Err(Refusal::Deny("net effect was not assessed: not issued".into()));
        };
        let (engine, policy_epoch) =
            self.policy_in_force().await.map_err(|e| Refusal::Deny(e.to_string()))?;
        if view.policy_epoch == policy_epoch {
            let done = net_effect::account(
                self.store.as_ref(),
                view,
                &proposal.agent,
                l.id(),
                &ev.contract.op,
                cid,
                ev.contract.risk_level,
                now,
            )
            .await
            .map_err(|e| Refusal::Deny(format!("net effect not recorded, not issued: {e}")))?;
            if done {
                return Ok(());
            }
            info!(proposal_id = %l.id(), scope_key = %view.scope_key, "net effect: the window changed since scoring; scoring again");
        }
        // Assess again against the window (and policy) as they are now.
        let adapter = self
            .platforms
            .get(ev.contract.platform)
            .ok_or_else(|| Refusal::Deny("platform vanished".into()))?;
        let contract = &ev.contract;
        let factors = adapter.profile.consequence(&contract.op, &contract.target, &contract.params);
        let alone = self.scoring.score(&factors);
        let paths: Vec<String> = contract.constraints.iter().map(|c| c.path.clone()).collect();
        let ne = self
            .net_effect_assess(
                adapter,
                &engine,
                policy_epoch,
                proposal,
                &contract.target,
                &contract.params,
                &paths,
                &ev.evidence,
                &factors,
                &alone,
                now,
            )
            .await
            .map_err(Refusal::Deny)?;
        if !ne.outcome.permitted {
            return Err(Refusal::Deny(format!("policy: {}", ne.outcome.reasons.join("; "))));
        }
        if ne.score.level == RiskLevel::L5 {
            return Err(Refusal::Deny(
                "L5 is never certified autonomously (break-glass only)".into(),
            ));
        }
        let Some(now_required) =
            required(ne.score.level, &self.path_rules, &self.escalation, &ne.outcome.escalations)
        else {
            return Err(Refusal::Deny(format!(
                "{} is not certified by the configured path rules",
                ne.score.level
            )));
        };
        let requirement = requirement.max(now_required);
        let (validators, humans) = l.approvers();
        let mut evaluation: Evaluation = ev.clone();
        if ne.score.level > evaluation.contract.risk_level {
            if !validators.is_empty() || !humans.is_empty() {
                return Err(Refusal::Deny(format!(
                    "the net effect rose from {} to {} while approvals were collected: propose again",
                    evaluation.contract.risk_level, ne.score.level
                )));
            }
            evaluation.contract.risk_level = ne.score.level;
            evaluation.contract_digest =
                evaluation.contract.digest().map_err(|x| Refusal::Deny(x.to_string()))?;
        }
        if ne.score.level >= evaluation.contract.risk_level {
            evaluation.score = ne.score;
        }
        evaluation.policy =
            PolicyView { outcome: ne.outcome, policy_epoch, policy_digest: engine.digest() };
        evaluation.requirement = Some(requirement);
        evaluation.net_effect = Some(ne.view);
        if requirement.satisfied_by(&validators, &humans) {
            Err(Refusal::Retry(Box::new(evaluation), requirement))
        } else {
            Err(Refusal::Reassessed(Box::new(evaluation), requirement))
        }
    }
}
