//! What a change does to the live object, as approvers read it: for each projected field, the
//! value admission observed (the evidence) and the value the operation leaves there. Pure.
//!
//! The after-state is computed here for display only (no decision reads it):
//! - Kubernetes `scale`: `/spec/replicas` becomes `params.replicas`;
//! - `merge_patch`: RFC 7386 applied to the observed object;
//! - `json_patch`: `add`/`replace`/`remove` applied (other operations leave the value shown
//!   as unknown);
//! - `create`/`replace`/`apply`: the object becomes `params` (volatile metadata and `status`
//!   are not compared);
//! - `delete`: the object becomes absent;
//! - the test double's `set`: the object becomes `params.value`;
//! - anything else (AWS operations): the params are shown at the pointers they share with
//!   the projection, and the rest as "set by the operation".
//!
//! Fields are flattened to dotted paths (`spec.replicas`, `spec.template.spec.containers.0.image`);
//! only fields whose value changes are listed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One changed field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// Dotted path from the object root (`spec.replicas`).
    pub field: String,
    /// Observed value; `None` when absent.
    pub before: Option<Value>,
    /// Value after the operation; `None` when absent.
    pub after: Option<Value>,
}

/// Most changes listed (a replace of a large object is summarised after this many).
pub const MAX_CHANGES: usize = 200;

/// Keys whose values the server owns: not shown as changes.
const VOLATILE: [&str; 8] = [
    "resourceVersion",
    "managedFields",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// Apply one `add`/`replace`/`remove` at an RFC 6901 pointer; `false` when it cannot.
fn patch_at(doc: &mut Value, pointer: &str, value: Option<&Value>, add: bool) -> bool {
    let Some(rest) = pointer.strip_prefix('/') else {
        if pointer.is_empty()
            && let Some(v) = value
        {
            *doc = v.clone();
            return true;
        }
        return false;
    };
    let segs: Vec<String> = rest.split('/').map(unescape).collect();
    let Some((last, parents)) = segs.split_last() else { return false };
    let mut cur = doc;
    for s in parents {
        cur = match cur {
            Value::Object(m) => match m.get_mut(s) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match s.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (cur, value) {
        (Value::Object(m), Some(v)) => {
            m.insert(last.clone(), v.clone());
            true
        }
        (Value::Object(m), None) => m.remove(last).is_some(),
        (Value::Array(a), Some(v)) => {
            if last == "-" && add {
                a.push(v.clone());
                return true;
            }
            let Ok(i) = last.parse::<usize>() else { return false };
            if add && i <= a.len() {
                a.insert(i, v.clone());
                true
            } else if let Some(slot) = a.get_mut(i) {
                *slot = v.clone();
                true
            } else {
                false
            }
        }
        (Value::Array(a), None) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn json_patch(doc: &mut Value, ops: &Value) -> bool {
    let Some(ops) = ops.as_array() else { return false };
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str);
        let Some(path) = op.get("path").and_then(Value::as_str) else { return false };
        let ok = match kind {
            Some("add") => patch_at(doc, path, op.get("value"), true),
            Some("replace") => patch_at(doc, path, op.get("value"), false),
            Some("remove") => patch_at(doc, path, None, false),
            Some("test") => true,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn strip(v: &Value) -> Value {
    let mut o = v.clone();
    if let Value::Object(m) = &mut o {
        m.remove("status");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for f in VOLATILE {
                meta.remove(f);
            }
        }
    }
    o
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&p, x, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), x, out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// The changed leaves between two documents (absent = `None`).
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<FieldChange> {
    let mut b = BTreeMap::new();
    let mut a = BTreeMap::new();
    if let Some(v) = before {
        flatten("", v, &mut b);
    }
    if let Some(v) = after {
        flatten("", v, &mut a);
    }
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (b.get(k), a.get(k));
            (x != y).then(|| FieldChange {
                field: if k.is_empty() { "(value)".into() } else { k.clone() },
                before: x.cloned(),
                after: y.cloned(),
            })
        })
        .take(MAX_CHANGES)
        .collect()
}

fn pointer_to_field(p: &str) -> String {
    p.trim_start_matches('/').split('/').map(unescape).collect::<Vec<_>>().join(".")
}

/// The before → after changes of `op` with `params` on the observed `projection`, or `None`
/// when they cannot be computed (the page then shows params and evidence side by side).
pub fn changes(
    platform: &str,
    op: &str,
    params: &Value,
    projection: &BTreeMap<String, Value>,
) -> Option<Vec<FieldChange>> {
    if platform == "kubernetes" {
        let observed = projection.get("").filter(|v| !v.is_null()).map(strip);
        let after: Option<Value> = match op {
            "delete" => None,
            "create" | "replace" | "apply" => Some(strip(params)),
            "scale" => {
                let mut o = observed.clone()?;
                let r = params.get("replicas")?.clone();
                if !patch_at(&mut o, "/spec/replicas", Some(&r), true) {
                    return None;
                }
                Some(o)
            }
            "merge_patch" => {
                let mut o = observed.clone()?;
                merge_patch(&mut o, params);
                Some(strip(&o))
            }
            "json_patch" => {
                let mut o = observed.clone()?;
                if !json_patch(&mut o, params) {
                    return None;
                }
                Some(o)
            }
            _ => return None,
        };
        // Server-populated metadata absent from params is not a change the operation makes.
        let mut out = diff(observed.as_ref(), after.as_ref());
        if matches!(op, "create" | "replace" | "apply") {
            out.retain(|c| c.after.is_some() || !c.field.starts_with("metadata."));
        }
        return Some(out);
    }
    // The test double's `set` replaces the object's value.
    if platform == "test" && op == "set" {
        let observed = projection.get("").filter(|v| !v.is_null());
        return Some(diff(observed, params.get("value")));
    }
    // Other platforms: the params at the pointers the projection shares with them.
    let mut out = Vec::new();
    for (p, before) in projection {
        if p.is_empty() {
            continue;
        }
        if let Some(after) = params.pointer(p)
            && after != before
        {
            out.push(FieldChange {
                field: pointer_to_field(p),
                before: (!before.is_null()).then(|| before.clone()),
                after: Some(after.clone()),
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proj(v: Value) -> BTreeMap<String, Value> {
        BTreeMap::from([(String::new(), v)])
    }

    fn dep(replicas: u64) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment",
               "metadata":{"name":"web","namespace":"prod","resourceVersion":"12","uid":"u"},
               "spec":{"replicas":replicas,"template":{"spec":{"containers":[{"name":"c","image":"nginx:1"}]}}},
               "status":{"readyReplicas":replicas}})
    }

    #[test]
    fn scale_shows_the_replicas_change_only() {
        let c = changes("kubernetes", "scale", &json!({"replicas": 6}), &proj(dep(2))).unwrap();
        assert_eq!(
            c,
            vec![FieldChange {
                field: "spec.replicas".into(),
                before: Some(json!(2)),
                after: Some(json!(6))
            }]
        );
    }

    #[test]
    fn patches_and_delete() {
        let c = changes(
            "kubernetes",
            "merge_patch",
            &json!({"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:2"}]}}}}),
            &proj(dep(2)),
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.template.spec.containers.0.image");
        assert_eq!(
            (c[0].before.clone(), c[0].after.clone()),
            (Some(json!("nginx:1")), Some(json!("nginx:2")))
        );
        let c = changes(
            "kubernetes",
            "json_patch",
            &json!([{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]),
            &proj(dep(2)),
        )
        .unwrap();
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.labels.a", "spec.replicas"]);
        let c = changes("kubernetes", "delete", &json!({}), &proj(dep(2))).unwrap();
        assert!(
            c.iter().all(|c| c.after.is_none()) && c.iter().any(|c| c.field == "spec.replicas")
        );
        // A patch that cannot apply is not guessed.
        assert!(
            changes(
                "kubernetes",
                "json_patch",
                &json!([{"op":"move","from":"/a","path":"/b"}]),
                &proj(dep(2))
            )
            .is_none()
        );
        assert!(
            changes("kubernetes", "scale", &json!({"replicas": 3}), &BTreeMap::new()).is_none()
        );
    }

    #[test]
    fn create_of_an_absent_object() {
        let c = changes(
            "kubernetes",
            "create",
            &json!({"kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"v"}}),
            &proj(Value::Null),
        )
        .unwrap();
        assert!(c.iter().all(|c| c.before.is_none()));
        assert!(c.iter().any(|c| c.field == "data.k" && c.after == Some(json!("v"))));
    }

    #[test]
    fn other_platforms_show_shared_pointers() {
        let p =
            BTreeMap::from([("/Policy".to_owned(), json!("old")), ("/Other".to_owned(), json!(1))]);
        let c = changes("aws", "put_policy", &json!({"Policy":"new"}), &p).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "Policy");
        assert!(changes("aws", "x", &json!({"Z": 1}), &p).is_none());
    }
}
