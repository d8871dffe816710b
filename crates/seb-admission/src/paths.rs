//! Certification paths: what a level requires, and escalation (never lowering).

use std::collections::BTreeSet;

use seb_core::pipeline::{PathRule, PathRules};
use seb_core::types::{CertPath, RiskLevel};
use serde::{Deserialize, Serialize};

use crate::error::AdmissionError;

/// What a proposal needs before it is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The certification path the certificate will carry.
    pub path: CertPath,
    /// Distinct validator approvals.
    pub validators: usize,
    /// Distinct human approvals.
    pub humans: usize,
}

impl From<PathRule> for Requirement {
    fn from(r: PathRule) -> Self {
        Self { path: r.path, validators: r.validators, humans: r.humans }
    }
}

impl Requirement {
    /// The stricter of two requirements, field by field. Used for every combination, so a
    /// requirement can only grow.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        Self {
            path: self.path.max(other.path),
            validators: self.validators.max(other.validators),
            humans: self.humans.max(other.humans),
        }
    }

    /// Whether the approvals collected meet it.
    pub fn satisfied_by(&self, validators: &BTreeSet<String>, humans: &BTreeSet<String>) -> bool {
        validators.len() >= self.validators && humans.len() >= self.humans
    }

    /// Whether it needs approvals at all.
    pub fn needs_approvals(&self) -> bool {
        self.validators > 0 || self.humans > 0
    }
}

/// `[admission.escalation]`: what a Cedar escalation to each path requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    #[serde(default = "default_quorum")]
    pub quorum: PathRule,
    #[serde(default = "default_human")]
    pub human: PathRule,
}

fn default_quorum() -> PathRule {
    PathRule { path: CertPath::Quorum, validators: 2, humans: 0 }
}
fn default_human() -> PathRule {
    PathRule { path: CertPath::Human, validators: 0, humans: 1 }
}

impl Default for Escalation {
    fn default() -> Self {
        Self { quorum: default_quorum(), human: default_human() }
    }
}

impl Escalation {
    /// Escalations must name their own path and require at least one approval.
    pub fn validate(&self) -> Result<(), AdmissionError> {
        let bad = |s: String| Err(AdmissionError::Config(format!("escalation: {s}")));
        if self.quorum.path < CertPath::Quorum
            || self.quorum.path == CertPath::BreakGlass
            || self.quorum.validators == 0
        {
            return bad("quorum must have path quorum or human and at least one validator".into());
        }
        if self.human.path != CertPath::Human || self.human.humans == 0 {
            return bad("human must have path human and at least one human".into());
        }
        Ok(())
    }

    /// The requirement of escalating to `path` (`policy` adds nothing).
    pub fn rule(&self, path: CertPath) -> Option<Requirement> {
        match path {
            CertPath::Policy | CertPath::BreakGlass => None,
            CertPath::Quorum => Some(self.quorum.into()),
            CertPath::Human => Some(self.human.into()),
        }
    }
}

/// The requirement for `level` under `rules`, raised by `escalations` (which can only add).
/// `None`: the level is never certified by the autonomous paths (L0 advisory, L5).
pub fn required(
    level: RiskLevel,
    rules: &PathRules,
    escalation: &Escalation,
    escalations: &[CertPath],
) -> Option<Requirement> {
    let base: Requirement = rules.rule(level)?.into();
    Some(escalations.iter().filter_map(|p| escalation.rule(*p)).fold(base, Requirement::max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_escalation_only_raise() {
        let rules = PathRules::default();
        let esc = Escalation::default();
        assert_eq!(required(RiskLevel::L0, &rules, &esc, &[]), None);
        assert_eq!(required(RiskLevel::L5, &rules, &esc, &[CertPath::Human]), None);
        let l1 = required(RiskLevel::L1, &rules, &esc, &[]).unwrap();
        assert_eq!(l1, Requirement { path: CertPath::Policy, validators: 0, humans: 0 });
        let l1h = required(RiskLevel::L1, &rules, &esc, &[CertPath::Human]).unwrap();
        assert_eq!(l1h, Requirement { path: CertPath::Human, validators: 0, humans: 1 });
        // Escalating an L4 proposal to quorum cannot lower its human requirement.
        let l4 = required(RiskLevel::L4, &rules, &esc, &[CertPath::Quorum]).unwrap();
        assert_eq!(l4, Requirement { path: CertPath::Human, validators: 2, humans: 1 });
        let both =
            required(RiskLevel::L2, &rules, &esc, &[CertPath::Quorum, CertPath::Human]).unwrap();
        assert_eq!(both, Requirement { path: CertPath::Human, validators: 2, humans: 1 });
        // "Escalating" to policy adds nothing.
        assert_eq!(
            required(RiskLevel::L3, &rules, &esc, &[CertPath::Policy]).unwrap().validators,
            2
        );
    }
}
