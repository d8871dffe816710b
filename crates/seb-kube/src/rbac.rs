//! The per-execution scoped identity (spec section 9): a ServiceAccount in the broker's
//! execution namespace, a Role in the target namespace granting exactly the verb on the
//! resource (with `resourceNames: [name]` where RBAC can restrict by name), and a
//! RoleBinding. All three share the name from [`crate::model::identity_name`]. Pure.

use serde_json::{Value, json};

use crate::model::{Op, TargetRef};

/// Label on every object the broker creates for an execution.
pub const LABEL_MANAGED: &str = "seb.io/managed-by";
/// Label carrying the execution's cid.
pub const LABEL_CID: &str = "seb.io/cid";
/// Annotation carrying the agent.
pub const ANNOTATION_AGENT: &str = "seb.io/agent";

/// What the Role grants: one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// API group (`""` for core).
    pub group: String,
    /// `plural` or `plural/scale`.
    pub resource: String,
    /// Exactly one verb.
    pub verb: &'static str,
    /// `Some(name)` where RBAC can restrict the verb by name.
    pub resource_name: Option<String>,
}

/// The single RBAC rule an execution needs. `plural` comes from discovery; `exists` says
/// whether the object was present at the drift check (server-side apply of an absent object
/// is performed as a create, so that it cannot land on an object that appeared since).
///
/// RBAC cannot restrict `create` by name (the name is not known to the authorizer before
/// the object exists): the create grant covers every name of the resource in the namespace,
/// and the admission webhook holds the identity to the certified name.
pub fn grant(op: Op, target: &TargetRef, plural: &str, exists: bool) -> Grant {
    let named = |verb| Grant {
        group: target.group().to_owned(),
        resource: plural.to_owned(),
        verb,
        resource_name: Some(target.name.clone()),
    };
    match op {
        Op::Create => Grant {
            group: target.group().to_owned(),
            resource: plural.to_owned(),
            verb: "create",
            resource_name: None,
        },
        Op::Apply if !exists => Grant {
            group: target.group().to_owned(),
            resource: plural.to_owned(),
            verb: "create",
            resource_name: None,
        },
        Op::Replace => named("update"),
        Op::MergePatch | Op::JsonPatch | Op::Apply => named("patch"),
        Op::Delete => named("delete"),
        Op::Scale => Grant { resource: format!("{plural}/scale"), ..named("patch") },
    }
}

fn labels(cid: &str) -> Value {
    // A label value is at most 63 characters of [A-Za-z0-9._-].
    let v: String =
        cid.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(63).collect();
    json!({ LABEL_MANAGED: "seb-broker", LABEL_CID: v.trim_matches(|c: char| !c.is_ascii_alphanumeric()) })
}

/// The ServiceAccount, in the broker's execution namespace.
pub fn service_account(name: &str, exec_namespace: &str, cid: &str, agent: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": exec_namespace, "labels": labels(cid),
                     "annotations": {ANNOTATION_AGENT: agent}},
        "automountServiceAccountToken": false,
    })
}

/// The Role, in the target namespace.
pub fn role(name: &str, target_namespace: &str, cid: &str, g: &Grant) -> Value {
    let mut rule = json!({"apiGroups": [g.group], "resources": [g.resource], "verbs": [g.verb]});
    if let (Some(n), Value::Object(m)) = (&g.resource_name, &mut rule) {
        m.insert("resourceNames".into(), json!([n]));
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": target_namespace, "labels": labels(cid)},
        "rules": [rule],
    })
}

/// The RoleBinding of the Role to the ServiceAccount, in the target namespace.
pub fn role_binding(name: &str, target_namespace: &str, exec_namespace: &str, cid: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": target_namespace, "labels": labels(cid)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": exec_namespace}],
    })
}

/// Whether a Role's rules are exactly the one rule [`role`] would write for `g` (used by the
/// admission webhook to let the broker create only the grants of live executions).
pub fn rules_match(rules: Option<&Value>, g: &Grant) -> bool {
    let Some(Value::Array(rules)) = rules else { return false };
    let [rule] = rules.as_slice() else { return false };
    let strs = |k: &str| -> Option<Vec<&str>> {
        rule.get(k).map(|v| {
            v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
        })
    };
    let names = strs("resourceNames").unwrap_or_default();
    let want_names: Vec<&str> = g.resource_name.as_deref().into_iter().collect();
    strs("apiGroups") == Some(vec![g.group.as_str()])
        && strs("resources") == Some(vec![g.resource.as_str()])
        && strs("verbs") == Some(vec![g.verb])
        && names == want_names
        && rule.get("nonResourceURLs").is_none_or(|v| v.as_array().is_some_and(Vec::is_empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TargetRef {
        TargetRef::from_value(&json!({"cluster":"c","api_version":"apps/v1","kind":"Deployment","namespace":"prod","name":"web"})).unwrap()
    }

    #[test]
    fn each_op_gets_exactly_one_verb() {
        let g = grant(Op::Scale, &t(), "deployments", true);
        assert_eq!(
            (g.resource.as_str(), g.verb, g.resource_name.as_deref()),
            ("deployments/scale", "patch", Some("web"))
        );
        assert_eq!(grant(Op::Delete, &t(), "deployments", true).verb, "delete");
        assert_eq!(grant(Op::Replace, &t(), "deployments", true).verb, "update");
        let c = grant(Op::Create, &t(), "deployments", false);
        assert_eq!((c.verb, c.resource_name), ("create", None));
        assert_eq!(grant(Op::Apply, &t(), "deployments", false).verb, "create");
        assert_eq!(grant(Op::Apply, &t(), "deployments", true).verb, "patch");
        let r = role("seb-exec-x", "prod", "cid", &g);
        assert_eq!(r["rules"][0]["resourceNames"], json!(["web"]));
        assert!(rules_match(r.get("rules"), &g));
        assert!(!rules_match(r.get("rules"), &grant(Op::Delete, &t(), "deployments", true)));
        let wide =
            json!([{"apiGroups":["apps"],"resources":["deployments/scale"],"verbs":["patch"]}]);
        assert!(!rules_match(Some(&wide), &g), "a rule without resourceNames is wider");
        let two = json!([r["rules"][0].clone(), r["rules"][0].clone()]);
        assert!(!rules_match(Some(&two), &g));
    }
}
