//! Cedar policies: who may propose what, and which proposals need a stronger path.
//!
//! Each proposal is evaluated three times against the loaded policy set, with
//!
//! - principal `SEB::Agent::"<name>"`: attributes from the registry (`principal.team`…) and
//!   parents `SEB::Group::"<group>"` (`principal in SEB::Group::"sre"`);
//! - resource `SEB::Platform::"kubernetes" | "aws" | "test"`;
//! - context `{platform, op, target, params, constraints, risk_level, score_milli, factors}`
//!   (factors and score in thousandths; floats and JSON nulls have no Cedar form, so floats
//!   become strings and nulls are dropped; object keys starting with `__` are prefixed with
//!   `esc` so a proposal can never smuggle in a Cedar entity or extension literal);
//! - action `SEB::Action::"propose"`: must be allowed, or the proposal is denied;
//! - actions `SEB::Action::"require_quorum"` and `SEB::Action::"require_human"`: when
//!   allowed, the path is escalated (see [`crate::paths`]); escalation only ever adds
//!   requirements.
//!
//! Fail closed: an evaluation error in the `propose` request denies the proposal; an
//! evaluation error in an escalation request escalates.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet,
    Request,
};
use seb_core::digest::Digest;
use seb_core::types::{CertPath, Platform, RiskLevel};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::AgentRegistry;
use crate::error::AdmissionError;
use crate::scoring::Score;

/// The policy used when no policy file is configured: every registered agent may propose;
/// paths follow the risk level alone.
pub const DEFAULT_POLICY: &str = r#"// SEB admission default policy: any registered agent may propose.
@id("registered-agents-may-propose")
permit(principal, action == SEB::Action::"propose", resource);
"#;

/// A loaded, versioned policy set.
#[derive(Debug)]
pub struct PolicyEngine {
    set: PolicySet,
    text: String,
    digest: Digest,
    entities: Entities,
    authorizer: Authorizer,
    propose: EntityUid,
    require_quorum: EntityUid,
    require_human: EntityUid,
}

/// What the policy decided for one proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PolicyOutcome {
    /// Whether `propose` was allowed.
    pub permitted: bool,
    /// The paths the policy escalated to.
    pub escalations: Vec<CertPath>,
    /// The policies that determined each decision (`@id` annotation, else the policy id).
    pub reasons: Vec<String>,
    /// Evaluation errors (each one made the outcome stricter).
    pub errors: Vec<String>,
}

/// What the policy is evaluated on.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub agent: &'a str,
    pub platform: Platform,
    pub op: &'a str,
    pub target: &'a Value,
    pub params: &'a Value,
    pub constraint_paths: &'a [String],
    pub level: RiskLevel,
    pub score: &'a Score,
    /// Further context entries (net effect, spec 5.2: `evidence`, `change`, `cumulative`),
    /// already in Cedar's JSON form ([`cedar_json`]); they never replace the entries above.
    pub extra: Option<&'a Value>,
}

fn uid(ty: &str, id: &str) -> Result<EntityUid, AdmissionError> {
    let t = EntityTypeName::from_str(ty).map_err(|e| AdmissionError::Internal(e.to_string()))?;
    let id = EntityId::from_str(id).map_err(|e| AdmissionError::Internal(format!("{e:?}")))?;
    Ok(EntityUid::from_type_name_and_id(t, id))
}

/// Map arbitrary JSON to Cedar's JSON form: integers stay, other numbers become strings,
/// nulls are dropped, keys starting with `__` are escaped.
pub fn cedar_json(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Bool(_) | Value::String(_) => Some(v.clone()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::String(n.to_string()),
        }),
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(cedar_json).collect())),
        Value::Object(o) => Some(Value::Object(
            o.iter()
                .filter_map(|(k, v)| {
                    let k = if k.starts_with("__") { format!("esc{k}") } else { k.clone() };
                    cedar_json(v).map(|v| (k, v))
                })
                .collect::<Map<String, Value>>(),
        )),
    }
}

fn entities_of(agents: &AgentRegistry) -> Result<Entities, AdmissionError> {
    let mut list = Vec::new();
    let mut groups = std::collections::BTreeSet::new();
    for a in agents.iter() {
        let mut attrs: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in &a.attributes {
            if let Some(v) = cedar_json(v) {
                let k = if k.starts_with("__") { format!("esc{k}") } else { k.clone() };
                attrs.insert(k, v);
            }
        }
        attrs.insert("name".into(), Value::String(a.name.clone()));
        let parents: Vec<Value> =
            a.groups.iter().map(|g| json!({"type": "SEB::Group", "id": g})).collect();
        groups.extend(a.groups.iter().cloned());
        list.push(json!({
            "uid": {"type": "SEB::Agent", "id": a.name},
            "attrs": attrs,
            "parents": parents,
        }));
    }
    for g in groups {
        list.push(json!({"uid": {"type": "SEB::Group", "id": g}, "attrs": {}, "parents": []}));
    }
    Entities::from_json_value(Value::Array(list), None)
        .map_err(|e| AdmissionError::Config(format!("agent entities for Cedar: {e}")))
}

impl PolicyEngine {
    /// Parse a policy set; the agents become Cedar entities.
    pub fn new(text: &str, agents: &AgentRegistry) -> Result<Self, AdmissionError> {
        let set = PolicySet::from_str(text).map_err(|e| AdmissionError::Policy(format!("{e}")))?;
        Ok(Self {
            set,
            text: text.to_owned(),
            digest: Digest::of_bytes(text.as_bytes()),
            entities: entities_of(agents)?,
            authorizer: Authorizer::new(),
            propose: uid("SEB::Action", "propose")?,
            require_quorum: uid("SEB::Action", "require_quorum")?,
            require_human: uid("SEB::Action", "require_human")?,
        })
    }

    /// The policy text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the policy text.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The context record of a proposal (also what `docs/admission.md` documents).
    pub fn context_json(input: &PolicyInput<'_>) -> Value {
        let mut v = Self::base_context(input);
        if let (Some(Value::Object(extra)), Value::Object(m)) = (input.extra, &mut v) {
            for (k, x) in extra {
                m.entry(k.clone()).or_insert_with(|| x.clone());
            }
        }
        v
    }

    fn base_context(input: &PolicyInput<'_>) -> Value {
        let f = &input.score.factors;
        json!({
            "platform": input.platform.to_string(),
            "op": input.op,
            "target": cedar_json(input.target).unwrap_or_else(|| json!({})),
            "params": cedar_json(input.params).unwrap_or_else(|| json!({})),
            "constraints": input.constraint_paths,
            "risk_level": input.level.get(),
            "score_milli": input.score.score_milli,
            "factors": {
                "blast_radius": f.blast_radius,
                "privilege_expansion": f.privilege_expansion,
                "data_sensitivity": f.data_sensitivity,
                "irreversibility": f.irreversibility,
                "uncertainty": f.uncertainty,
            },
        })
    }

    fn name_of(&self, id: &cedar_policy::PolicyId) -> String {
        match self.set.annotation(id, "id") {
            Some(a) if !a.is_empty() => a.to_owned(),
            _ => id.to_string(),
        }
    }

    /// Evaluate a proposal.
    pub fn evaluate(&self, input: &PolicyInput<'_>) -> Result<PolicyOutcome, AdmissionError> {
        let principal = uid("SEB::Agent", input.agent)?;
        let resource = uid("SEB::Platform", &input.platform.to_string())?;
        let context = Context::from_json_value(Self::context_json(input), None)
            .map_err(|e| AdmissionError::Invalid(format!("policy context: {e}")))?;
        let mut out = PolicyOutcome {
            permitted: false,
            escalations: Vec::new(),
            reasons: Vec::new(),
            errors: Vec::new(),
        };
        let actions: HashMap<&str, &EntityUid> = [
            ("propose", &self.propose),
            ("require_quorum", &self.require_quorum),
            ("require_human", &self.require_human),
        ]
        .into_iter()
        .collect();
        for name in ["propose", "require_quorum", "require_human"] {
            let Some(action) = actions.get(name) else { continue };
            let req = Request::new(
                principal.clone(),
                (*action).clone(),
                resource.clone(),
                context.clone(),
                None,
            )
            .map_err(|e| AdmissionError::Internal(e.to_string()))?;
            let resp = self.authorizer.is_authorized(&req, &self.set, &self.entities);
            let errors: Vec<String> =
                resp.diagnostics().errors().map(|e| format!("{name}: {e}")).collect();
            let allowed = resp.decision() == Decision::Allow;
            for id in resp.diagnostics().reason() {
                let verb = if allowed { "allowed" } else { "forbidden" };
                out.reasons.push(format!("{name} {verb} by `{}`", self.name_of(id)));
            }
            match name {
                "propose" => {
                    out.permitted = allowed && errors.is_empty();
                    if !allowed && resp.diagnostics().reason().next().is_none() {
                        out.reasons.push("propose: no policy permits it".into());
                    }
                }
                "require_quorum" if allowed || !errors.is_empty() => {
                    out.escalations.push(CertPath::Quorum)
                }
                "require_human" if allowed || !errors.is_empty() => {
                    out.escalations.push(CertPath::Human)
                }
                _ => {}
            }
            out.errors.extend(errors);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Agent;
    use crate::scoring::{FactorsMilli, Score};

    fn agents() -> AgentRegistry {
        let mut r = AgentRegistry::default();
        r.insert(Agent {
            name: "bot".into(),
            keys: vec![],
            groups: vec!["sre".into()],
            attributes: [("team".to_owned(), json!("payments")), ("weird".to_owned(), json!(0.5))]
                .into(),
            owners: vec![],
        });
        r
    }

    fn score(level: u8) -> Score {
        Score {
            level: RiskLevel::new(level).unwrap(),
            score_milli: 100,
            weighted_milli: 100,
            peak_milli: 100,
            factors: FactorsMilli {
                blast_radius: 100,
                privilege_expansion: 0,
                data_sensitivity: 0,
                irreversibility: 0,
                uncertainty: 0,
            },
            reasons: vec![],
        }
    }

    fn eval(policy: &str, agent: &str, params: Value, level: u8) -> PolicyOutcome {
        let e = PolicyEngine::new(policy, &agents()).unwrap();
        let s = score(level);
        e.evaluate(&PolicyInput {
            agent,
            platform: Platform::Test,
            op: "set",
            target: &json!({"name": "cfg"}),
            params: &params,
            constraint_paths: &[],
            level: s.level,
            score: &s,
            extra: None,
        })
        .unwrap()
    }

    #[test]
    fn default_permits_registered_agents() {
        let o = eval(DEFAULT_POLICY, "bot", json!({"value": 1}), 1);
        assert!(o.permitted);
        assert!(o.escalations.is_empty());
        assert_eq!(o.reasons, vec!["propose allowed by `registered-agents-may-propose`"]);
    }

    #[test]
    fn forbid_escalate_and_groups() {
        let p = r#"
            permit(principal in SEB::Group::"sre", action == SEB::Action::"propose", resource == SEB::Platform::"test");
            @id("no-deletes-of-prod")
            forbid(principal, action == SEB::Action::"propose", resource) when { context.op == "delete" };
            @id("payments-needs-human")
            permit(principal, action == SEB::Action::"require_human", resource) when { principal.team == "payments" && context.risk_level >= 2 };
            permit(principal, action == SEB::Action::"require_quorum", resource) when { context.params.value == 7 };
        "#;
        let o = eval(p, "bot", json!({"value": 1}), 1);
        assert!(o.permitted && o.escalations.is_empty());
        let o = eval(p, "bot", json!({"value": 7}), 2);
        assert_eq!(o.escalations, vec![CertPath::Quorum, CertPath::Human]);
        let o = eval(p, "someone-else", json!({"value": 1}), 1);
        assert!(!o.permitted);
        assert!(o.reasons.iter().any(|r| r.contains("no policy permits")));
    }

    #[test]
    fn errors_fail_closed_and_escalate() {
        // `context.params.missing` does not exist: the permit errors → not permitted.
        let o = eval(
            r#"permit(principal, action == SEB::Action::"propose", resource) when { context.params.missing == 1 };"#,
            "bot",
            json!({}),
            1,
        );
        assert!(!o.permitted && !o.errors.is_empty());
        let o = eval(
            r#"permit(principal, action == SEB::Action::"propose", resource);
               permit(principal, action == SEB::Action::"require_human", resource) when { context.params.missing == 1 };"#,
            "bot",
            json!({}),
            1,
        );
        assert!(o.permitted);
        assert_eq!(o.escalations, vec![CertPath::Human]);
    }

    #[test]
    fn entity_literals_cannot_be_smuggled() {
        let v = cedar_json(&json!({"__entity": {"type": "SEB::Agent", "id": "admin"}, "x": null, "f": 1.5, "n": [1, null]})).unwrap();
        assert_eq!(
            v,
            json!({"esc__entity": {"type": "SEB::Agent", "id": "admin"}, "f": "1.5", "n": [1]})
        );
    }

    #[test]
    fn bad_policy_text_is_refused() {
        assert!(matches!(PolicyEngine::new("permit(", &agents()), Err(AdmissionError::Policy(_))));
    }
}
