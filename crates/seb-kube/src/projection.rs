//! Evidence projections of a live object (spec section 9) and the expected post-state of each
//! operation (section 10's reconcile). Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use seb_target::Reconciled;

use crate::model::{Op, VOLATILE_METADATA};

/// The default projection (the `""` pointer): the object without `status` and without the
/// metadata the server owns (resourceVersion, managedFields, generation, timestamps, uid,
/// selfLink…).
pub fn strip_volatile(object: &Value) -> Value {
    let mut o = object.clone();
    if let Value::Object(m) = &mut o {
        m.remove("status");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for f in VOLATILE_METADATA {
                meta.remove(f);
            }
            // Empty maps the server may or may not print are noise, not state.
            for f in ["annotations", "labels"] {
                if meta
                    .get(f)
                    .is_some_and(|v| v.as_object().is_some_and(Map::is_empty) || v.is_null())
                {
                    meta.remove(f);
                }
            }
        }
    }
    o
}

/// Project a live object (or its absence) at `pointers`. `""` is the default projection;
/// other pointers index the object as the server returned it. Pointers that do not resolve,
/// and every pointer of an absent object, map to `null` (absent), so the projection always
/// carries every requested pointer.
pub fn project(object: Option<&Value>, pointers: &[String]) -> BTreeMap<String, Value> {
    let stripped = object.map(strip_volatile);
    pointers
        .iter()
        .map(|p| {
            let v = match (&stripped, object) {
                (Some(s), _) if p.is_empty() => s.clone(),
                (_, Some(o)) => o.pointer(p).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            };
            (p.clone(), v)
        })
        .collect()
}

/// `want` is contained in `got`: objects recursively (extra keys in `got` are server defaults),
/// arrays element-wise with equal length, scalars equal (numbers by value).
pub fn contained(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.iter().all(|(k, wv)| match g.get(k) {
                Some(gv) => contained(wv, gv),
                // An explicitly null/empty field the server dropped.
                None => {
                    wv.is_null()
                        || wv.as_object().is_some_and(Map::is_empty)
                        || wv.as_array().is_some_and(Vec::is_empty)
                }
            })
        }
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| contained(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

/// Whether `object` shows the effect of a merge patch: every non-null leaf of the patch is
/// present with that value; every null removes its key.
pub fn merge_patch_reflected(patch: &Value, object: &Value) -> bool {
    match (patch, object) {
        (Value::Object(p), Value::Object(o)) => p.iter().all(|(k, pv)| match (pv, o.get(k)) {
            (Value::Null, None) => true,
            (Value::Null, Some(_)) => false,
            (Value::Object(_), Some(ov)) => merge_patch_reflected(pv, ov),
            (Value::Object(inner), None) => inner.values().all(Value::is_null),
            (_, Some(ov)) => contained(pv, ov),
            (_, None) => false,
        }),
        (p, o) => contained(p, o),
    }
}

/// Whether `object` shows the effect of an RFC 6902 patch applied to `pre` (when known):
/// with a pre-state, the patched pre-state must be contained in the object at every path the
/// patch writes, and absent at every path it removes; without one, `add`/`replace` values
/// must be present and `remove` paths absent (`move`/`copy` cannot be judged: `None`).
pub fn json_patch_reflected(patch: &Value, pre: Option<&Value>, object: &Value) -> Option<bool> {
    let ops = patch.as_array()?;
    let expected = match pre {
        Some(pre) => {
            let mut doc = pre.clone();
            let p: json_patch::Patch = serde_json::from_value(patch.clone()).ok()?;
            json_patch::patch(&mut doc, &p).ok()?;
            Some(doc)
        }
        None => None,
    };
    for op in ops {
        let kind = op.get("op")?.as_str()?;
        let path = op.get("path")?.as_str()?;
        // `…/-` appends to an array: no pointer resolves it, so judge the whole array.
        let appended = path.strip_suffix("/-");
        let path = appended.unwrap_or(path);
        let ok = match &expected {
            Some(e) => {
                let touched: Vec<&str> = match kind {
                    "test" => vec![],
                    "move" => vec![op.get("from")?.as_str()?, path],
                    _ => vec![path],
                };
                touched.into_iter().all(|p| match e.pointer(p) {
                    Some(w) => object.pointer(p).is_some_and(|g| contained(w, g)),
                    None => object.pointer(p).is_none(),
                })
            }
            None => match kind {
                "test" => true,
                // Without the pre-state an append cannot be told from the array before it.
                _ if appended.is_some() => return None,
                "remove" => object.pointer(path).is_none(),
                "add" | "replace" => {
                    let v = op.get("value")?;
                    object.pointer(path).is_some_and(|g| contained(v, g))
                }
                _ => return None,
            },
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether a live object (or its absence) shows the effect of `op` with `params`. `pre` is
/// the admitted default projection when the evidence holds it. `None`: cannot tell.
pub fn effect_visible(
    op: Op,
    params: &Value,
    pre: Option<&Value>,
    live: Option<&Value>,
) -> Option<bool> {
    match (op, live) {
        (Op::Delete, None) => Some(true),
        (Op::Delete, Some(o)) => {
            Some(o.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()))
        }
        (_, None) => Some(false),
        (Op::Create | Op::Replace | Op::Apply, Some(o)) => {
            Some(contained(&strip_volatile(params), &strip_volatile(o)))
        }
        (Op::MergePatch, Some(o)) => Some(merge_patch_reflected(params, o)),
        (Op::JsonPatch, Some(o)) => json_patch_reflected(params, pre, o),
        (Op::Scale, Some(o)) => Some(
            o.pointer("/spec/replicas").is_some()
                && o.pointer("/spec/replicas") == params.get("replicas"),
        ),
    }
}

/// What reconciliation concludes from the live object (spec section 10), pure: the
/// execution's own write is in `managedFields`, or the live object shows the operation's
/// effect → [`Reconciled::Applied`]; the object is the one the drift check saw (same
/// resourceVersion, or absent both times) or its projection equals the admitted evidence →
/// [`Reconciled::NotApplied`]; anything else → [`Reconciled::Uncertain`]. A live object that
/// cannot be read is the caller's `Uncertain`.
pub fn reconcile_decision(
    op: Op,
    params: &Value,
    evidence: &BTreeMap<String, Value>,
    observed_version: Option<&str>,
    manager: &str,
    live: Option<&Value>,
) -> Reconciled {
    let rv = live.and_then(|o| o.pointer("/metadata/resourceVersion")).and_then(Value::as_str);
    let ours = live
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .is_some_and(|mf| {
            mf.iter().any(|e| e.get("manager").and_then(Value::as_str) == Some(manager))
        });
    let pre = evidence.get("").filter(|v| !v.is_null());
    if ours || effect_visible(op, params, pre, live) == Some(true) {
        return Reconciled::Applied;
    }
    let unchanged = match (observed_version, rv) {
        (Some(seen), Some(now)) => seen == now,
        (None, None) => true,
        _ => false,
    };
    let pointers: Vec<String> = evidence.keys().cloned().collect();
    let as_admitted = !evidence.is_empty() && project(live, &pointers) == *evidence;
    if unchanged || as_admitted { Reconciled::NotApplied } else { Reconciled::Uncertain }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap",
               "metadata":{"name":"a","namespace":"n","resourceVersion":"7","uid":"u","creationTimestamp":"t",
                           "managedFields":[{}],"labels":{"x":"1"},"annotations":{}},
               "data":{"k":"v"},"status":{"s":1}})
    }

    #[test]
    fn default_projection_strips_status_and_volatile_metadata() {
        let p = project(
            Some(&obj()),
            &["".into(), "/metadata/resourceVersion".into(), "/data/missing".into()],
        );
        assert_eq!(
            p[""],
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n","labels":{"x":"1"}},"data":{"k":"v"}})
        );
        assert_eq!(p["/metadata/resourceVersion"], json!("7"));
        assert_eq!(p["/data/missing"], Value::Null);
        let absent = project(None, &["".into(), "/data/k".into()]);
        assert_eq!(absent.len(), 2);
        assert!(absent.values().all(Value::is_null));
    }

    #[test]
    fn containment_and_patch_effects() {
        assert!(contained(&json!({"data":{"k":"v"}}), &obj()));
        assert!(!contained(&json!({"data":{"k":"w"}}), &obj()));
        assert!(contained(&json!({"a":[{"x":1}]}), &json!({"a":[{"x":1,"d":2}]})));
        assert!(!contained(&json!({"a":[{"x":1}]}), &json!({"a":[{"x":1},{"x":2}]})));
        assert!(merge_patch_reflected(&json!({"data":{"k":"v","gone":null}}), &obj()));
        assert!(!merge_patch_reflected(&json!({"data":{"k":null}}), &obj()));
        let jp = json!([{"op":"replace","path":"/data/k","value":"w"},{"op":"add","path":"/data/n","value":"1"}]);
        let mut after = obj();
        after["data"] = json!({"k":"w","n":"1"});
        assert_eq!(json_patch_reflected(&jp, Some(&strip_volatile(&obj())), &after), Some(true));
        assert_eq!(json_patch_reflected(&jp, None, &after), Some(true));
        assert_eq!(json_patch_reflected(&jp, Some(&obj()), &obj()), Some(false));
        let rm = json!([{"op":"remove","path":"/data/k"}]);
        assert_eq!(json_patch_reflected(&rm, None, &obj()), Some(false));
        assert_eq!(effect_visible(Op::Delete, &json!({}), None, None), Some(true));
        assert_eq!(effect_visible(Op::Delete, &json!({}), None, Some(&obj())), Some(false));
        assert_eq!(
            effect_visible(
                Op::Scale,
                &json!({"replicas":3}),
                None,
                Some(&json!({"spec":{"replicas":3}}))
            ),
            Some(true)
        );
        assert_eq!(
            effect_visible(Op::Create, &json!({"data":{"k":"v"}}), None, Some(&obj())),
            Some(true)
        );
    }

    /// A live object at resourceVersion `rv`, written last by `manager`, with `data`.
    fn cm(rv: &str, manager: &str, data: Value) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap",
               "metadata":{"name":"a","namespace":"n","resourceVersion":rv,
                           "managedFields":[{"manager":manager,"operation":"Update"}]},
               "data":data})
    }

    /// The admitted evidence of `pre` (the default projection; absent: null).
    fn evidence(pre: Option<&Value>) -> BTreeMap<String, Value> {
        project(pre, &[String::new()])
    }

    const ME: &str = "seb-exec-0190f4c2-aaaaaaaa";

    /// (op, params, pre-state, post-state when applied). Each op is decided three ways: the
    /// post-state (applied), the pre-state re-read (not applied, same and other version),
    /// and a third state that is neither (uncertain).
    fn cases() -> Vec<(Op, Value, Option<Value>, Option<Value>)> {
        let pre = cm("5", "admin", json!({"k":"1","list":"x"}));
        let with = |d: Value| Some(cm("6", "admin", d));
        vec![
            (
                Op::Create,
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":"2"}}),
                None,
                with(json!({"k":"2"})),
            ),
            (
                Op::Replace,
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":"2"}}),
                Some(pre.clone()),
                with(json!({"k":"2"})),
            ),
            (
                Op::Apply,
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":"2","list":"x"}}),
                Some(pre.clone()),
                with(json!({"k":"2","list":"x"})),
            ),
            (
                Op::MergePatch,
                json!({"data":{"k":"2"}}),
                Some(pre.clone()),
                with(json!({"k":"2","list":"x"})),
            ),
            (
                Op::JsonPatch,
                json!([{"op":"replace","path":"/data/k","value":"2"}]),
                Some(pre.clone()),
                with(json!({"k":"2","list":"x"})),
            ),
            (
                Op::Scale,
                json!({"replicas":3}),
                Some(json!({"metadata":{"resourceVersion":"5"},"spec":{"replicas":2}})),
                Some(json!({"metadata":{"resourceVersion":"6"},"spec":{"replicas":3}})),
            ),
            (Op::Delete, json!({}), Some(pre), None),
        ]
    }

    #[test]
    fn reconcile_decides_applied_not_applied_and_uncertain_for_every_op() {
        for (op, params, pre, post) in cases() {
            let ev = evidence(pre.as_ref());
            let seen = pre
                .as_ref()
                .and_then(|p| p.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str);
            let decide =
                |live: Option<&Value>| reconcile_decision(op, &params, &ev, seen, ME, live);
            // Applied: the expected post-state (written by someone the object does not name).
            assert_eq!(decide(post.as_ref()), Reconciled::Applied, "{op}: post-state");
            // Not applied: the object the drift check saw, unchanged.
            assert_eq!(decide(pre.as_ref()), Reconciled::NotApplied, "{op}: pre-state");
            // Not applied: another version whose projection is still the admitted one.
            if let Some(mut touched) = pre.clone() {
                touched["metadata"]["resourceVersion"] = json!("9");
                assert_eq!(
                    decide(Some(&touched)),
                    Reconciled::NotApplied,
                    "{op}: pre-state, new version"
                );
            }
            // Uncertain: readable, but neither the pre- nor the post-state.
            let neither = match op {
                Op::Scale => json!({"metadata":{"resourceVersion":"7"},"spec":{"replicas":7}}),
                _ => cm("7", "admin", json!({"k":"other"})),
            };
            assert_eq!(decide(Some(&neither)), Reconciled::Uncertain, "{op}: neither");
            // The execution's own field manager on the object: applied, whatever else changed.
            let mut ours = neither.clone();
            ours["metadata"]["managedFields"] = json!([{"manager": ME}]);
            assert_eq!(decide(Some(&ours)), Reconciled::Applied, "{op}: our write");
        }
    }

    #[test]
    fn reconcile_of_a_delete_and_of_an_absent_object() {
        let pre = cm("5", "admin", json!({"k":"1"}));
        let ev = evidence(Some(&pre));
        // Delete: absent or terminating is applied; recreated with other content, uncertain.
        let del = |live: Option<&Value>| {
            reconcile_decision(Op::Delete, &json!({}), &ev, Some("5"), ME, live)
        };
        assert_eq!(del(None), Reconciled::Applied);
        let mut terminating = pre.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(del(Some(&terminating)), Reconciled::Applied);
        // A create whose object is still absent: not applied; present with other content:
        // uncertain (someone else created it).
        let params = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":"2"}});
        let none = evidence(None);
        let create =
            |live: Option<&Value>| reconcile_decision(Op::Create, &params, &none, None, ME, live);
        assert_eq!(create(None), Reconciled::NotApplied);
        assert_eq!(create(Some(&cm("3", "admin", json!({"k":"x"})))), Reconciled::Uncertain);
        // A patch of an object that has since disappeared: uncertain.
        let patch = reconcile_decision(
            Op::MergePatch,
            &json!({"data":{"k":"2"}}),
            &ev,
            Some("5"),
            ME,
            None,
        );
        assert_eq!(patch, Reconciled::Uncertain);
    }

    #[test]
    fn an_append_is_judged_by_its_whole_array() {
        let pre = json!({"template":{"spec":{"containers":[{"name":"c","args":["a"]}]}}});
        let patch = json!([{"op":"add","path":"/template/spec/containers/0/args/-","value":"b"}]);
        let once = json!({"template":{"spec":{"containers":[{"name":"c","args":["a","b"]}]}}});
        let twice = json!({"template":{"spec":{"containers":[{"name":"c","args":["a","b","b"]}]}}});
        assert_eq!(json_patch_reflected(&patch, Some(&pre), &once), Some(true));
        assert_eq!(json_patch_reflected(&patch, Some(&pre), &pre), Some(false));
        assert_eq!(json_patch_reflected(&patch, Some(&pre), &twice), Some(false));
        assert_eq!(json_patch_reflected(&patch, None, &once), None);
    }
}
