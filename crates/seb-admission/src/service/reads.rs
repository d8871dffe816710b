//! Reads: signed-request authentication, who sees what, proposal views and lists, and the
//! certificate of a certified proposal. Any replica answers from the store.

use seb_core::envelope::{Envelope, pae};
use seb_core::keys::{KeyId, PublicKey};
use seb_core::types::CertPath;
use seb_store::admission::ProposalFilter;

use super::state::Stage;
use super::{Admission, Loaded, ProposalStatus, ProposalSummary, ProposalView, short};
use crate::access::Caller;
use crate::client::{READ_MEDIA_TYPE, READ_SIGNATURE_HEADER, read_message};
use crate::config::NamedKeys;
use crate::error::AdmissionError;

impl Admission {
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

    /// [`Admission::list`] as `caller` sees it: an agent its own proposals, approvers and
    /// admins every proposal.
    pub async fn list_as(
        &self,
        caller: &Caller,
        status: Option<&str>,
        agent: Option<&str>,
    ) -> Result<Vec<ProposalSummary>, AdmissionError> {
        caller.require(caller.reads_proposals(), "GET /v1/admission/proposals")?;
        let mut all = self.list(status, agent).await?;
        all.retain(|p| caller.sees(&p.agent));
        Ok(all)
    }

    /// [`Admission::view`] as `caller` sees it: a proposal it may not see is `404`, exactly
    /// like one that does not exist.
    pub async fn view_as(&self, caller: &Caller, id: &str) -> Result<ProposalView, AdmissionError> {
        caller.require(caller.reads_proposals(), "GET /v1/admission/proposals/{id}")?;
        let v = self.view(id).await.map_err(|e| match e {
            AdmissionError::NotFound(_) => Self::not_found(id),
            other => other,
        })?;
        if caller.sees(&v.agent) { Ok(v) } else { Err(Self::not_found(id)) }
    }

    /// [`Admission::certificate`] as `caller` may fetch it.
    pub async fn certificate_as(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Envelope, AdmissionError> {
        caller
            .require(caller.reads_certificates(), "GET /v1/admission/proposals/{id}/certificate")?;
        let l = self.load(id).await?;
        let break_glass =
            matches!(&l.body.stage, Stage::Certified(c) if c.cert_path == CertPath::BreakGlass);
        if !caller.sees_certificate(&l.body.received.proposal.agent, break_glass) {
            return Err(Self::not_found(id));
        }
        Self::certificate_of(&l)
    }

    /// A proposal.
    pub async fn view(&self, id: &str) -> Result<ProposalView, AdmissionError> {
        let l = self.load(id).await?;
        Ok(self.build_view(&l))
    }

    fn build_view(&self, l: &Loaded) -> ProposalView {
        let stage = &l.body.stage;
        let ev = stage.evaluation();
        let (requirement, deadline_ms) = match stage {
            Stage::Pending(p) => (Some(p.requirement), Some(p.deadline_ms)),
            Stage::Issuing(i) => (Some(i.requirement), None),
            _ => (ev.and_then(|e| e.requirement), None),
        };
        let reason = match stage {
            Stage::Denied(d) => Some(d.reason.clone()),
            Stage::Expired(e) => Some(e.reason.clone()),
            Stage::Advisory(a) => Some(a.reason.clone()),
            _ => None,
        };
        let certified = match stage {
            Stage::Certified(c) => Some(c),
            _ => None,
        };
        let mut v = ProposalView {
            proposal_id: l.id().to_owned(),
            agent: l.body.received.proposal.agent.clone(),
            status: ProposalStatus::of(stage),
            proposal: l.body.received.proposal.clone(),
            received_at_ms: l.body.received.received_at_ms,
            deadline_ms,
            contract: ev.map(|e| e.contract.clone()),
            contract_digest: ev.map(|e| e.contract_digest),
            evidence: ev.map(|e| e.evidence.clone()),
            score: ev.map(|e| e.score.clone()),
            policy: ev.map(|e| e.policy.clone()),
            requirement,
            approvals: l.approvals.iter().map(|a| a.view.clone()).collect(),
            reason,
            cid: certified.map(|c| c.cid.clone()),
            cert_path: certified.map(|c| c.cert_path),
            validity: certified.map(|c| c.validity),
            certificate_digest: certified.map(|c| c.certificate_digest),
            break_glass: self.bg_status(l),
            record_id: l.body.record_id.clone(),
        };
        self.redact(&mut v);
        v
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
    pub async fn list(
        &self,
        status: Option<&str>,
        agent: Option<&str>,
    ) -> Result<Vec<ProposalSummary>, AdmissionError> {
        let rows = self
            .state()?
            .proposals(ProposalFilter {
                status: status.map(str::to_owned),
                agent: agent.map(str::to_owned),
                limit: 0,
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let l = Self::decode(row)?;
            let v = &l.body;
            let ev = v.stage.evaluation();
            let cert_path = match &v.stage {
                Stage::Certified(c) => Some(c.cert_path),
                Stage::Pending(p) => Some(p.requirement.path),
                Stage::Issuing(i) => Some(i.requirement.path),
                _ => ev.and_then(|e| e.requirement).map(|r| r.path),
            };
            out.push(ProposalSummary {
                proposal_id: l.id().to_owned(),
                agent: v.received.proposal.agent.clone(),
                status: ProposalStatus::of(&v.stage),
                platform: v.received.proposal.platform,
                op: v.received.proposal.op.clone(),
                risk_level: ev.map(|e| e.score.level),
                score_milli: ev.map(|e| e.score.score_milli),
                cert_path,
                approvals: l.approvals.len(),
                received_at_ms: v.received.received_at_ms,
                cid: match &v.stage {
                    Stage::Certified(c) => Some(c.cid.clone()),
                    _ => None,
                },
            });
        }
        Ok(out)
    }

    /// The certificate of a certified proposal.
    pub async fn certificate(&self, id: &str) -> Result<Envelope, AdmissionError> {
        Self::certificate_of(&self.load(id).await?)
    }

    fn certificate_of(l: &Loaded) -> Result<Envelope, AdmissionError> {
        match &l.body.stage {
            Stage::Certified(c) => Ok(c.certificate.clone()),
            other => {
                let reason = match other {
                    Stage::Denied(d) => Some(d.reason.as_str()),
                    Stage::Expired(e) => Some(e.reason.as_str()),
                    Stage::Advisory(a) => Some(a.reason.as_str()),
                    _ => None,
                };
                Err(AdmissionError::Conflict(format!(
                    "proposal `{}` is {}{}",
                    short(l.id()),
                    other.name(),
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                )))
            }
        }
    }
}
