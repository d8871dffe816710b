//! Evidence projections of a live object (spec section 9) and the expected post-state of each
//! operation (section 10's reconcile). Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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
}
