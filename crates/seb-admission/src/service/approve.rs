//! Stage `approve`: a signed approval is stored once per approver (a second one is `409`),
//! with its `approval` ledger record in the same transaction; a deny denies; a met
//! requirement claims the proposal for issuance (whichever replica completes the quorum,
//! exactly one certificate: see `issue`).

use seb_core::envelope::{Envelope, EnvelopeError, PayloadType};
use seb_core::json;
use seb_core::pipeline::ApproverRole;
use seb_core::types::{Approval, ApprovalDecision};
use seb_store::admission::{Added, StoredApproval};
use tracing::{info, warn};

use super::state::Stage;
use super::{Admission, ApprovalBody, ApprovalView, ProposalView, short};
use crate::error::AdmissionError;
use crate::records::AdmissionDecision;

impl Admission {
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
        let approver = super::enrol::Identity::of(&approvers, kid)?;
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
        let l = self.load(id).await?;
        let Stage::Pending(p) = &l.body.stage else {
            return Err(AdmissionError::Conflict(format!(
                "proposal `{id}` is {}",
                l.status().as_str()
            )));
        };
        if p.evaluation.contract_digest != a.contract_digest {
            return Err(AdmissionError::Invalid(
                "approval is bound to a different contract digest".into(),
            ));
        }
        if p.evaluation.evidence.digest != a.evidence_digest {
            return Err(AdmissionError::Invalid(
                "approval is bound to a different evidence digest".into(),
            ));
        }
        if self.owner_conflict(&approver.name, &l.body.received.proposal.agent) {
            return Err(AdmissionError::Forbidden(format!(
                "`{}` owns agent `{}` and may not approve its proposals (forbid_owner_approval)",
                approver.name, l.body.received.proposal.agent
            )));
        }
        let now = self.now()?;
        let view = ApprovalView {
            approver: approver.name.clone(),
            role: approver.role,
            decision: a.decision,
            comment: a.comment.clone(),
            at_ms: a.at_ms,
        };
        let epochs = self.store.epochs().await.ok();
        let mut record = self.record(
            &l.body.received,
            Some(&p.evaluation),
            Some(p.requirement),
            vec![approver.name.clone()],
            AdmissionDecision::Approval,
            &format!(
                "{}: {}",
                match a.decision {
                    ApprovalDecision::Approve => "approve",
                    ApprovalDecision::Deny => "deny",
                },
                short(&a.comment)
            ),
            now,
            epochs,
        );
        record.attestation_digest = Some(env.digest()?);
        let entry = record.sign(&self.issuer)?.entry;
        let stored = StoredApproval {
            approver: approver.name.clone(),
            body: serde_json::to_vec(&ApprovalBody { view, envelope: env })
                .map_err(|e| AdmissionError::Internal(format!("approval as JSON: {e}")))?,
            at_ms: now,
        };
        match self
            .state()?
            .add_approval(id.to_owned(), "pending".into(), stored, Some(entry))
            .await?
        {
            Added::Added { .. } => {}
            Added::Duplicate => {
                warn!(proposal_id = %id, approver = %approver.name, "second decision by one approver refused");
                return Err(AdmissionError::Conflict(format!(
                    "`{}` already decided on `{id}`",
                    approver.name
                )));
            }
            Added::WrongStatus { status } => {
                return Err(AdmissionError::Conflict(format!(
                    "proposal `{id}` is {}",
                    status.as_deref().unwrap_or("gone")
                )));
            }
        }
        info!(proposal_id = %id, approver = %approver.name, decision = ?a.decision, record_id = %record.id, "approval recorded");
        match a.decision {
            ApprovalDecision::Deny => {
                let reason = format!("denied by `{}`: {}", approver.name, short(&a.comment));
                self.deny_pending(id, &reason).await?;
            }
            ApprovalDecision::Approve => self.advance(id).await?,
        }
        self.view(id).await
    }
}
