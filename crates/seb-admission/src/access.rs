//! Who may read what (spec section 11: "every admission request is authenticated").
//!
//! A request that is not itself a signed statement carries a signed-request header
//! ([`crate::client::sign_read`]); [`crate::Admission::authenticate_request`] resolves its key
//! against the registries into a [`Caller`]. One key may hold several roles (an admin that is
//! also a validator); a caller may do what any of its roles may.
//!
//! | route | agent | approver (validator, human) | break-glass operator | admin |
//! |---|---|---|---|---|
//! | `GET /proposals` | its own | all | 403 | all |
//! | `GET /proposals/{id}` | its own, else 404 | all | 403 | all |
//! | `GET /proposals/{id}/certificate` | its own, else 404 | 403 | break-glass certificates, else 404 | all |
//! | `GET`/`POST /proposals/{id}/break-glass` | 403 | 403 | yes | yes |
//! | `GET /policy` | 403 | yes | yes | yes |
//! | `GET /epochs` | yes | yes | yes | yes |
//!
//! A role that may not use a route at all gets `403` (independent of the proposal id, so it
//! tells nothing about which proposals exist); a role that may use the route but not see this
//! proposal gets the same `404` as a proposal that does not exist.

use seb_core::keys::KeyId;
use seb_core::pipeline::ApproverRole;

use crate::error::AdmissionError;

/// The registered identities behind the key that signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The signing key.
    pub kid: KeyId,
    /// The agent this key is registered to.
    pub agent: Option<String>,
    /// The approver (validator or human) this key is registered to.
    pub approver: Option<(String, ApproverRole)>,
    /// The break-glass operator this key is registered to.
    pub operator: Option<String>,
    /// The admin this key is registered to.
    pub admin: Option<String>,
}

impl Caller {
    /// The registered names, for logs: `agent:x`, `approver:y`, …
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.agent {
            parts.push(format!("agent:{a}"));
        }
        if let Some((n, _)) = &self.approver {
            parts.push(format!("approver:{n}"));
        }
        if let Some(o) = &self.operator {
            parts.push(format!("operator:{o}"));
        }
        if let Some(a) = &self.admin {
            parts.push(format!("admin:{a}"));
        }
        parts.join(",")
    }

    fn is_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// Whether any role of the caller reads proposals (list, view).
    pub fn reads_proposals(&self) -> bool {
        self.agent.is_some() || self.approver.is_some() || self.is_admin()
    }

    /// Whether the caller may see the proposals of `agent` (given [`Self::reads_proposals`]).
    /// Approvers see every proposal: any registered approver may decide any pending one.
    pub fn sees(&self, agent: &str) -> bool {
        self.is_admin() || self.approver.is_some() || self.agent.as_deref() == Some(agent)
    }

    /// Whether any role of the caller fetches certificates.
    pub fn reads_certificates(&self) -> bool {
        self.agent.is_some() || self.operator.is_some() || self.is_admin()
    }

    /// Whether the caller may fetch the certificate of a proposal by `agent`, issued under
    /// break-glass or not: its subject agent, admins, and the operators of a break-glass one
    /// (they signed its exact bytes).
    pub fn sees_certificate(&self, agent: &str, break_glass: bool) -> bool {
        self.is_admin()
            || self.agent.as_deref() == Some(agent)
            || (break_glass && self.operator.is_some())
    }

    /// Whether the caller may show and create break-glass drafts.
    pub fn handles_break_glass(&self) -> bool {
        self.operator.is_some() || self.is_admin()
    }

    /// Whether the caller may read the policy in force.
    pub fn reads_policy(&self) -> bool {
        self.approver.is_some() || self.operator.is_some() || self.is_admin()
    }

    /// `Ok` when `allowed`, else the route's `403`.
    pub fn require(&self, allowed: bool, route: &str) -> Result<(), AdmissionError> {
        if allowed {
            Ok(())
        } else {
            Err(AdmissionError::Forbidden(format!(
                "`{}` may not use {route} (see docs/admission.md, access)",
                self.describe()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seb_core::keys::SigningKey;

    fn caller() -> Caller {
        Caller {
            kid: SigningKey::from_seed(&[1; 32]).kid(),
            agent: None,
            approver: None,
            operator: None,
            admin: None,
        }
    }

    #[test]
    fn each_role_reads_what_the_table_says() {
        let agent = Caller { agent: Some("a".into()), ..caller() };
        assert!(agent.reads_proposals() && agent.sees("a") && !agent.sees("b"));
        assert!(agent.sees_certificate("a", false) && !agent.sees_certificate("b", true));
        assert!(!agent.handles_break_glass() && !agent.reads_policy());
        let human = Caller { approver: Some(("h".into(), ApproverRole::Human)), ..caller() };
        assert!(human.reads_proposals() && human.sees("a") && human.sees("b"));
        assert!(!human.reads_certificates() && !human.handles_break_glass());
        assert!(human.reads_policy());
        let op = Caller { operator: Some("o".into()), ..caller() };
        assert!(!op.reads_proposals() && op.handles_break_glass() && op.reads_certificates());
        assert!(op.sees_certificate("a", true) && !op.sees_certificate("a", false));
        let admin = Caller { admin: Some("ops".into()), ..caller() };
        assert!(admin.reads_proposals() && admin.sees("x") && admin.sees_certificate("x", false));
        assert!(admin.handles_break_glass() && admin.reads_policy());
        assert!(matches!(
            agent.require(false, "GET /policy"),
            Err(AdmissionError::Forbidden(m)) if m.contains("agent:a")
        ));
        assert_eq!(caller().describe(), "");
    }
}
