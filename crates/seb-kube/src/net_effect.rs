//! Net effect of Kubernetes operations (SEB-SPEC 5.2, documented in `docs/admission.md`).
//!
//! Every op is reduced to the same thing — the object before (the admitted evidence, `""`)
//! and the object after the op — so a rule on a field holds whatever op expresses it
//! (`scale` and a `merge_patch` of `spec.replicas` are the same change). Projected fields:
//!
//! | field | kind | where |
//! |---|---|---|
//! | `replicas` | numeric | `spec.replicas` of Deployment, StatefulSet, ReplicaSet, ReplicationController (absent = 1, the API default) |
//! | `rules` | additive | `rules` of Role, ClusterRole |
//! | `subjects` | additive | `subjects` of RoleBinding, ClusterRoleBinding |
//! | `ingress`, `egress` | additive | `spec.ingress` / `spec.egress` of NetworkPolicy |
//! | `containers` | additive | `spec.template.spec.containers` images of workloads, `spec.containers` of a Pod |
//!
//! The after-object: `create`/`replace` → the params; `apply` → the params merged onto the
//! live object (fields it does not name stay); `merge_patch` → RFC 7386 merge; `json_patch`
//! → the patch applied to the live object (a patch that does not apply changes nothing: the
//! API server refuses it too); `scale` → the live object with `spec.replicas` set;
//! `delete` → absent (a delete; `replicas` goes to 0).

use std::collections::BTreeMap;

use seb_target::net_effect::object_key;
use seb_target::{Change, ConsequenceFactors, FieldChange, NetScope};
use serde_json::{Value, json};

use crate::model::{Op, TargetRef};
use crate::profile::KubeProfile;

const REPLICATED: [&str; 4] = ["Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"];

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The object after `op` (None: deleted or absent).
fn after_object(op: Op, before: Option<&Value>, params: &Value) -> Option<Value> {
    match op {
        Op::Delete => None,
        Op::Create | Op::Replace => Some(params.clone()),
        Op::Apply | Op::MergePatch => {
            let mut o = before.cloned().unwrap_or_else(|| json!({}));
            merge(&mut o, params);
            Some(o)
        }
        Op::JsonPatch => {
            let mut o = before.cloned().unwrap_or_else(|| json!({}));
            let applied = serde_json::from_value::<json_patch::Patch>(params.clone())
                .ok()
                .and_then(|p| json_patch::patch(&mut o, &p).ok());
            if applied.is_some() { Some(o) } else { before.cloned() }
        }
        Op::Scale => {
            let mut o = before.cloned().unwrap_or_else(|| json!({}));
            merge(&mut o, &json!({"spec": {"replicas": params.get("replicas").cloned()}}));
            Some(o)
        }
    }
}

fn replicas(kind: &str, obj: Option<&Value>) -> Option<i64> {
    let o = obj?;
    if !REPLICATED.contains(&kind) {
        return o.pointer("/spec/replicas").and_then(Value::as_i64);
    }
    Some(o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1))
}

fn items(obj: Option<&Value>, ptr: &str) -> Vec<Value> {
    obj.and_then(|o| o.pointer(ptr)).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn images(obj: Option<&Value>, kind: &str) -> Vec<Value> {
    let ptr = if kind == "Pod" { "/spec/containers" } else { "/spec/template/spec/containers" };
    items(obj, ptr)
        .iter()
        .map(|c| json!({"name": c.get("name"), "image": c.get("image")}))
        .collect()
}

/// What `op` changes (see the module documentation).
pub fn change(
    op: &str,
    target: &Value,
    params: &Value,
    evidence: &BTreeMap<String, Value>,
) -> Change {
    let mut c = Change::of(object_key(target));
    let (Ok(op), Ok(t)) = (Op::parse(op), TargetRef::from_value(target)) else { return c };
    let kind = t.kind.as_str();
    let before =
        evidence.get("").filter(|v| !v.is_null() && v.as_object().is_some_and(|m| !m.is_empty()));
    let after = after_object(op, before, params);
    if op == Op::Delete {
        c.deletes = 1;
    } else if before.is_none() {
        c.creates = 1;
    }
    let (b, a) = (replicas(kind, before), replicas(kind, after.as_ref()));
    let a = if op == Op::Delete && b.is_some() { Some(0) } else { a };
    if b != a {
        c.fields.insert("replicas".into(), FieldChange::numeric(b, a));
    }
    let mut set = |name: &str, b: Vec<Value>, a: Vec<Value>| {
        let f = FieldChange::additive(&b, &a);
        if let FieldChange::Additive { added, removed, .. } = &f
            && (!added.is_empty() || !removed.is_empty())
        {
            c.fields.insert(name.into(), f);
        }
    };
    match kind {
        "Role" | "ClusterRole" => {
            set("rules", items(before, "/rules"), items(after.as_ref(), "/rules"))
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            set("subjects", items(before, "/subjects"), items(after.as_ref(), "/subjects"))
        }
        "NetworkPolicy" => {
            set("ingress", items(before, "/spec/ingress"), items(after.as_ref(), "/spec/ingress"));
            set("egress", items(before, "/spec/egress"), items(after.as_ref(), "/spec/egress"));
        }
        _ => {}
    }
    if kind == "Pod" || crate::profile::is_workload(kind) {
        set("containers", images(before, kind), images(after.as_ref(), kind));
    }
    c
}

/// The net change scored by the same rules as one op: the end state of `replicas` as a
/// `scale`, any delete as a `delete`, added RBAC rules/subjects or containers as a
/// `merge_patch` of the kind.
pub fn net_consequence(target: &Value, net: &Change) -> Option<ConsequenceFactors> {
    let t = TargetRef::from_value(target).ok()?;
    let mut out: Option<ConsequenceFactors> = None;
    let mut add = |f: ConsequenceFactors| {
        out = Some(match out.take() {
            Some(o) => o.max(&f),
            None => f,
        });
    };
    if let Some(r) = net.after("replicas") {
        add(KubeProfile::factors_of(Op::Scale, &t, &json!({"replicas": r.max(0)})));
    }
    if net.deletes > 0 {
        add(KubeProfile::factors_of(Op::Delete, &t, &json!({})));
    }
    for field in ["rules", "subjects", "ingress", "egress", "containers"] {
        if !net.added(field).is_empty() {
            add(KubeProfile::factors_of(Op::MergePatch, &t, &json!({})));
        }
    }
    out
}

/// `kubernetes|object|<cluster>/<namespace>/<api_version>/<kind>/<name>`,
/// `kubernetes|namespace|<cluster>/<namespace>`, `kubernetes|account_service|<cluster>`.
pub fn scope_key(target: &Value, scope: NetScope) -> String {
    let Ok(t) = TargetRef::from_value(target) else {
        return format!("kubernetes|object|{}", object_key(target));
    };
    match scope {
        NetScope::Object => format!(
            "kubernetes|object|{}/{}/{}/{}/{}",
            t.cluster, t.namespace, t.api_version, t.kind, t.name
        ),
        NetScope::Namespace => format!("kubernetes|namespace|{}/{}", t.cluster, t.namespace),
        NetScope::AccountService => format!("kubernetes|account_service|{}", t.cluster),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seb_target::net_effect::net;

    fn deploy() -> Value {
        json!({"cluster":"c","api_version":"apps/v1","kind":"Deployment","namespace":"prod","name":"web"})
    }
    fn live(r: i64) -> BTreeMap<String, Value> {
        [(String::new(), json!({"metadata": {"name": "web"}, "spec": {"replicas": r}}))].into()
    }

    #[test]
    fn every_op_on_replicas_is_the_same_change() {
        let want = FieldChange::numeric(Some(2), Some(12));
        let ops = [
            ("scale", json!({"replicas": 12})),
            ("merge_patch", json!({"spec": {"replicas": 12}})),
            ("json_patch", json!([{"op": "replace", "path": "/spec/replicas", "value": 12}])),
            ("apply", json!({"spec": {"replicas": 12}})),
            ("replace", json!({"metadata": {"name": "web"}, "spec": {"replicas": 12}})),
        ];
        for (op, params) in ops {
            let c = change(op, &deploy(), &params, &live(2));
            assert_eq!(c.fields.get("replicas"), Some(&want), "{op}");
            assert_eq!((c.deletes, c.creates), (0, 0), "{op}");
        }
        // A replace that drops the field resets it to the API default.
        let c = change("replace", &deploy(), &json!({"spec": {}}), &live(5));
        assert_eq!(c.fields["replicas"], FieldChange::numeric(Some(5), Some(1)));
        // A merge patch that does not name it changes nothing.
        assert!(
            change(
                "merge_patch",
                &deploy(),
                &json!({"metadata": {"labels": {"a": "b"}}}),
                &live(2)
            )
            .is_empty()
        );
    }

    #[test]
    fn ten_plus_one_steps_net_to_the_single_change() {
        let steps: Vec<Change> = (2..12)
            .map(|r| change("scale", &deploy(), &json!({"replicas": r + 1}), &live(r)))
            .collect();
        let n = net(&steps);
        assert_eq!(n.fields["replicas"], FieldChange::numeric(Some(2), Some(12)));
        let single = net_consequence(&deploy(), &n).unwrap();
        let direct = KubeProfile::factors_of(
            Op::Scale,
            &TargetRef::from_value(&deploy()).unwrap(),
            &json!({"replicas": 12}),
        );
        assert_eq!(single.blast_radius, direct.blast_radius);
    }

    #[test]
    fn deletes_creates_and_additive_fields() {
        let d = change("delete", &deploy(), &json!({}), &live(3));
        assert_eq!(
            (d.deletes, d.fields["replicas"].clone()),
            (1, FieldChange::numeric(Some(3), Some(0)))
        );
        let n = net_consequence(&deploy(), &d).unwrap();
        assert!(n.irreversibility >= 0.9);
        let role = json!({"cluster":"c","api_version":"rbac.authorization.k8s.io/v1","kind":"Role","namespace":"prod","name":"r"});
        let before: BTreeMap<String, Value> =
            [(String::new(), json!({"rules": [{"verbs": ["get"], "resources": ["pods"]}]}))].into();
        let c = change(
            "json_patch",
            &role,
            &json!([{"op": "add", "path": "/rules/-", "value": {"verbs": ["delete"], "resources": ["pods"]}}]),
            &before,
        );
        assert_eq!(c.added("rules"), [json!({"verbs": ["delete"], "resources": ["pods"]})]);
        let created = change("create", &role, &json!({"rules": []}), &BTreeMap::new());
        assert_eq!(created.creates, 1);
    }

    #[test]
    fn scope_keys() {
        assert_eq!(
            scope_key(&deploy(), NetScope::Object),
            "kubernetes|object|c/prod/apps/v1/Deployment/web"
        );
        assert_eq!(scope_key(&deploy(), NetScope::Namespace), "kubernetes|namespace|c/prod");
        assert_eq!(scope_key(&deploy(), NetScope::AccountService), "kubernetes|account_service|c");
    }
}
