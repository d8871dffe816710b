//! The proposal state machine (pure: no I/O, no clock, no keys).
//!
//! ```text
//!   Evaluating ──► Pending ──► Issuing ──► Certified
//!       │            │  ▲         │
//!       │            │  └─────────┤ (a reloaded policy raised the requirement)
//!       ├──► Issuing │            └──► Denied   (revoked, policy, evidence changed, ...)
//!       ├──► Denied  ├──► Denied  (an approver denies, the agent is revoked)
//!       └──► Advisory└──► Expired (the approval deadline passed)
//!   break-glass: any evaluated, undecided-or-refused stage ──► Certified (operators' quorum)
//! ```
//!
//! Each stage is its own type and a transition is a method that consumes the stage it
//! leaves, so a transition the diagram does not have does not compile: only [`Issuing`] can
//! become [`Certified`] through issuance, and every stage after `Evaluating` carries the
//! [`Evaluation`] (contract, evidence, score, policy) it was built from, so there is no
//! "issuing an unevaluated proposal". The store keeps the [`Stage`] enum as JSON next to a
//! version; the adapters move a proposal from one stage to the next with a
//! compare-and-set on that version (see `seb_store::admission`), so two replicas can never
//! both take the same transition.

use seb_core::digest::Digest;
use seb_core::envelope::Envelope;
use seb_core::keys::PublicKey;
use seb_core::types::{CertPath, CertificatePayload, Contract, Evidence, Proposal, Validity};
use serde::{Deserialize, Serialize};

use super::PolicyView;
use crate::paths::Requirement;
use crate::scoring::Score;

/// What admission knows of a proposal from the moment it is accepted for evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// The proposal as signed.
    pub proposal: Proposal,
    /// The agent key that signed it (the certificate's subject).
    pub subject_key: PublicKey,
    /// Admission's clock when it arrived.
    pub received_at_ms: u64,
}

/// What evaluation found: compile, observe, score, policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub contract: Contract,
    pub contract_digest: Digest,
    pub evidence: Evidence,
    pub score: Score,
    pub policy: PolicyView,
    /// What the level and the policy require (`None`: the path rules never certify it).
    pub requirement: Option<Requirement>,
}

/// Being compiled, observed and scored by the replica that holds its claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluating {}

/// Waiting for approvals (or a break-glass quorum) until `deadline_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub evaluation: Evaluation,
    pub requirement: Requirement,
    pub deadline_ms: u64,
}

/// Claimed for issuance by one replica (the claim expires; another replica may take over).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issuing {
    pub evaluation: Evaluation,
    pub requirement: Requirement,
    /// The approval deadline, kept for a return to [`Pending`].
    pub deadline_ms: u64,
}

/// A certificate was issued (its issue record is in the ledger, written in the same
/// transaction as this stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certified {
    pub evaluation: Evaluation,
    pub certificate: Envelope,
    pub cid: String,
    pub cert_path: CertPath,
    pub validity: Validity,
    pub certificate_digest: Digest,
}

/// Refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Denied {
    /// `None` when evaluation itself failed.
    pub evaluation: Option<Evaluation>,
    pub reason: String,
}

/// The approval deadline passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expired {
    pub evaluation: Evaluation,
    pub reason: String,
}

/// L0: shown, never certified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    pub evaluation: Evaluation,
    pub reason: String,
}

/// Every stage, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Stage {
    Evaluating(Evaluating),
    Pending(Pending),
    Issuing(Issuing),
    Certified(Box<Certified>),
    Denied(Denied),
    Expired(Expired),
    Advisory(Advisory),
}

/// Where evaluation leads.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Refused (policy, L5, no path, inapplicable op).
    Deny(String),
    /// L0.
    Advisory(String),
    /// Approvals are needed.
    Wait(Requirement),
    /// The policy path: issue now.
    Issue(Requirement),
}

/// The stage evaluation leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterEvaluation {
    Pending(Pending),
    Issuing(Issuing),
    Denied(Denied),
    Advisory(Advisory),
}

impl Evaluating {
    /// Evaluation finished: `deadline_ms` is the approval deadline if it waits.
    pub fn evaluated(
        self,
        evaluation: Evaluation,
        v: Verdict,
        deadline_ms: u64,
    ) -> AfterEvaluation {
        match v {
            Verdict::Deny(reason) => {
                AfterEvaluation::Denied(Denied { evaluation: Some(evaluation), reason })
            }
            Verdict::Advisory(reason) => AfterEvaluation::Advisory(Advisory { evaluation, reason }),
            Verdict::Wait(requirement) => {
                AfterEvaluation::Pending(Pending { evaluation, requirement, deadline_ms })
            }
            Verdict::Issue(requirement) => {
                AfterEvaluation::Issuing(Issuing { evaluation, requirement, deadline_ms })
            }
        }
    }

    /// Evaluation could not finish (compile, scope, observation, store).
    pub fn failed(self, reason: String) -> Denied {
        Denied { evaluation: None, reason }
    }
}

impl Pending {
    /// The approvals meet the requirement: claim it for issuance.
    pub fn claim(self) -> Issuing {
        Issuing {
            evaluation: self.evaluation,
            requirement: self.requirement,
            deadline_ms: self.deadline_ms,
        }
    }

    /// An approver denied, or the agent was revoked.
    pub fn deny(self, reason: String) -> Denied {
        Denied { evaluation: Some(self.evaluation), reason }
    }

    /// The deadline passed.
    pub fn expire(self, reason: String) -> Expired {
        Expired { evaluation: self.evaluation, reason }
    }
}

impl Issuing {
    /// The certificate is signed and its record is about to be written with this stage.
    pub fn certify(
        self,
        certificate: Envelope,
        payload: &CertificatePayload,
        certificate_digest: Digest,
    ) -> Certified {
        Certified {
            evaluation: self.evaluation,
            certificate,
            cid: payload.cid.clone(),
            cert_path: payload.cert_path,
            validity: payload.validity,
            certificate_digest,
        }
    }

    /// Refused at issuance.
    pub fn deny(self, reason: String) -> Denied {
        Denied { evaluation: Some(self.evaluation), reason }
    }

    /// A reloaded policy raised the requirement beyond the approvals: wait again.
    pub fn wait(self, requirement: Requirement, policy: PolicyView) -> Pending {
        let mut evaluation = self.evaluation;
        evaluation.policy = policy;
        Pending { evaluation, requirement, deadline_ms: self.deadline_ms }
    }
}

impl Stage {
    /// The status name (stored next to the JSON, shown, filtered on).
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Evaluating(_) => "evaluating",
            Stage::Pending(_) => "pending",
            Stage::Issuing(_) => "issuing",
            Stage::Certified(_) => "certified",
            Stage::Denied(_) => "denied",
            Stage::Expired(_) => "expired",
            Stage::Advisory(_) => "advisory",
        }
    }

    /// The evaluation, once there is one.
    pub fn evaluation(&self) -> Option<&Evaluation> {
        match self {
            Stage::Evaluating(_) => None,
            Stage::Pending(p) => Some(&p.evaluation),
            Stage::Issuing(i) => Some(&i.evaluation),
            Stage::Certified(c) => Some(&c.evaluation),
            Stage::Denied(d) => d.evaluation.as_ref(),
            Stage::Expired(e) => Some(&e.evaluation),
            Stage::Advisory(a) => Some(&a.evaluation),
        }
    }

    /// A break-glass draft can be made for an evaluated proposal that is neither certified
    /// nor being worked on: its evaluation.
    pub fn break_glass_candidate(&self) -> Option<&Evaluation> {
        match self {
            Stage::Pending(_) | Stage::Denied(_) | Stage::Expired(_) | Stage::Advisory(_) => {
                self.evaluation()
            }
            Stage::Evaluating(_) | Stage::Issuing(_) | Stage::Certified(_) => None,
        }
    }

    /// Break-glass: the operators' quorum certifies an evaluated proposal directly.
    pub fn break_glass_certify(
        self,
        certificate: Envelope,
        payload: &CertificatePayload,
        certificate_digest: Digest,
    ) -> Option<Certified> {
        let evaluation = match self {
            Stage::Pending(p) => p.evaluation,
            Stage::Denied(Denied { evaluation: Some(e), .. })
            | Stage::Expired(Expired { evaluation: e, .. })
            | Stage::Advisory(Advisory { evaluation: e, .. }) => e,
            _ => return None,
        };
        Some(Certified {
            evaluation,
            certificate,
            cid: payload.cid.clone(),
            cert_path: payload.cert_path,
            validity: payload.validity,
            certificate_digest,
        })
    }
}

impl From<AfterEvaluation> for Stage {
    fn from(a: AfterEvaluation) -> Self {
        match a {
            AfterEvaluation::Pending(p) => Stage::Pending(p),
            AfterEvaluation::Issuing(i) => Stage::Issuing(i),
            AfterEvaluation::Denied(d) => Stage::Denied(d),
            AfterEvaluation::Advisory(a) => Stage::Advisory(a),
        }
    }
}

/// A break-glass draft: the exact certificate payload operators sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub payload: CertificatePayload,
    /// Standard base64 of the canonical payload bytes.
    pub bytes_b64: String,
}

/// What the store keeps per proposal (besides approvals and signatures, which have their
/// own tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub received: Received,
    pub stage: Stage,
    pub break_glass: Option<Draft>,
    /// Id of the ledger record of the final decision.
    pub record_id: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The stored form names the stage as its status and reads back unchanged.
    #[test]
    fn stages_round_trip_with_their_status_name() {
        for (stage, name) in [
            (Stage::Evaluating(Evaluating {}), "evaluating"),
            (Stage::Denied(Denied { evaluation: None, reason: "compile: bad".into() }), "denied"),
        ] {
            let v = serde_json::to_value(&stage).unwrap();
            assert_eq!(v["status"], name);
            assert_eq!(stage.name(), name);
            let back: Stage = serde_json::from_value(v).unwrap();
            assert_eq!(back, stage);
            assert!(back.break_glass_candidate().is_none(), "nothing evaluated to certify");
        }
    }
}
