//! The net-effect model (SEB-SPEC section 5.2), pure.
//!
//! A platform profile describes what one operation changes as a [`Change`]: for each
//! *projected field* it knows (named per platform, not per op: `replicas`, `ingress`,
//! `desired_capacity`…) the value before (from the live evidence) and after (the end state
//! the operation asks for), plus whether the operation deletes or creates the object. Two
//! kinds of field:
//!
//! - **numeric** (`replicas`, `desired_capacity`, `max_size`…): `before → after`;
//! - **additive** (security-group rules, RBAC rules, policy statements…): the items the
//!   change adds and removes (as canonical JSON values).
//!
//! [`net`] folds the changes of one scope, oldest first, into one [`Change`] — the net effect:
//!
//! - per object, a numeric field goes from the `before` of the **oldest** change that names
//!   it to the `after` of the **newest** (intermediate steps do not matter);
//! - across objects (a namespace or account scope), numeric fields add up (`before` and
//!   `after` are sums over the objects);
//! - additive fields are the **union** of what every change added (an item added and
//!   removed again inside the window still counts: it was in force) and of what every
//!   change removed;
//! - deletes and creates **count as such**: the net effect of a window holding a delete is a
//!   delete, whatever recreated the object afterwards.
//!
//! The profile then scores the net change ([`crate::PlatformProfile::net_consequence`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What one change does to one projected field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldChange {
    /// A number: `before` (absent: the object or field did not exist) to `after` (absent:
    /// the field is gone).
    Numeric {
        /// The live value.
        before: Option<i64>,
        /// The end state.
        after: Option<i64>,
    },
    /// A set of items.
    Additive {
        /// Items present after that were not before.
        added: Vec<Value>,
        /// Items present before that are not after.
        removed: Vec<Value>,
        /// Items present before.
        before_count: u64,
        /// Items present after.
        after_count: u64,
    },
}

impl FieldChange {
    /// `after - before` of a numeric field (absent counts as 0); `added - removed` items of
    /// an additive one.
    pub fn delta(&self) -> i64 {
        match self {
            Self::Numeric { before, after } => {
                after.unwrap_or(0).saturating_sub(before.unwrap_or(0))
            }
            Self::Additive { added, removed, .. } => i64::try_from(added.len())
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(removed.len()).unwrap_or(i64::MAX)),
        }
    }

    /// A numeric change from `before` to `after`.
    pub fn numeric(before: Option<i64>, after: Option<i64>) -> Self {
        Self::Numeric { before, after }
    }

    /// An additive change from the item list `before` to `after` (items compared as JSON).
    pub fn additive(before: &[Value], after: &[Value]) -> Self {
        let b: BTreeSet<String> = before.iter().map(Value::to_string).collect();
        let a: BTreeSet<String> = after.iter().map(Value::to_string).collect();
        Self::Additive {
            added: dedup(after.iter().filter(|v| !b.contains(&v.to_string()))),
            removed: dedup(before.iter().filter(|v| !a.contains(&v.to_string()))),
            before_count: u64::try_from(b.len()).unwrap_or(u64::MAX),
            after_count: u64::try_from(a.len()).unwrap_or(u64::MAX),
        }
    }

    /// The record Cedar sees (`context.change.<field>` / `context.cumulative.net.<field>`):
    /// `{kind, delta, before?, after?}` for numbers, `{kind, delta, added, removed,
    /// before_count, after_count}` (counts) for sets.
    pub fn cedar(&self) -> Value {
        match self {
            Self::Numeric { before, after } => {
                let mut m = serde_json::Map::new();
                m.insert("kind".into(), json!("numeric"));
                m.insert("delta".into(), json!(self.delta()));
                if let Some(b) = before {
                    m.insert("before".into(), json!(b));
                }
                if let Some(a) = after {
                    m.insert("after".into(), json!(a));
                }
                Value::Object(m)
            }
            Self::Additive { added, removed, before_count, after_count } => json!({
                "kind": "additive",
                "delta": self.delta(),
                "added": added.len(),
                "removed": removed.len(),
                "before_count": before_count,
                "after_count": after_count,
            }),
        }
    }
}

fn dedup<'a>(items: impl Iterator<Item = &'a Value>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    items.filter(|v| seen.insert(v.to_string())).cloned().collect()
}

/// What one operation (or, folded by [`net`], a window of them) changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The objects touched (canonical target keys), in order of first appearance.
    pub objects: Vec<String>,
    /// Projected field → what changed.
    pub fields: BTreeMap<String, FieldChange>,
    /// Operations that delete an object.
    pub deletes: u64,
    /// Operations that create an object that did not exist.
    pub creates: u64,
    /// How many operations this is the net effect of.
    pub changes: u64,
}

impl Change {
    /// An empty change of one object (fill in `fields`, `deletes`, `creates`).
    pub fn of(object: impl Into<String>) -> Self {
        Self { objects: vec![object.into()], changes: 1, ..Self::default() }
    }

    /// Add a field change.
    #[must_use]
    pub fn with(mut self, field: &str, c: FieldChange) -> Self {
        self.fields.insert(field.to_owned(), c);
        self
    }

    /// Whether it changes any projected field, deletes or creates.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.deletes == 0 && self.creates == 0
    }

    /// The record Cedar sees for the fields (`{<field>: {kind, delta, …}}`).
    pub fn cedar_fields(&self) -> Value {
        Value::Object(self.fields.iter().map(|(k, v)| (k.clone(), v.cedar())).collect())
    }

    /// The numeric field's `after`, if the change names it.
    pub fn after(&self, field: &str) -> Option<i64> {
        match self.fields.get(field) {
            Some(FieldChange::Numeric { after, .. }) => *after,
            _ => None,
        }
    }

    /// The additive field's added items (empty if the change does not name it).
    pub fn added(&self, field: &str) -> &[Value] {
        match self.fields.get(field) {
            Some(FieldChange::Additive { added, .. }) => added,
            _ => &[],
        }
    }
}

/// Fold `changes` (oldest first) into their net effect; see the module documentation.
pub fn net<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Change {
    // Per object: the net of its own changes.
    let mut order: Vec<String> = Vec::new();
    let mut per: BTreeMap<String, Change> = BTreeMap::new();
    let mut total = 0u64;
    for c in changes {
        total = total.saturating_add(c.changes.max(1));
        // A change of several objects (already a net) is merged as one more step of each.
        let key = c.objects.join("\n");
        if !per.contains_key(&key) {
            order.push(key.clone());
        }
        let acc = per
            .entry(key)
            .or_insert_with(|| Change { objects: c.objects.clone(), ..Change::default() });
        acc.deletes = acc.deletes.saturating_add(c.deletes);
        acc.creates = acc.creates.saturating_add(c.creates);
        for (name, f) in &c.fields {
            let merged = match (acc.fields.remove(name), f) {
                (None, f) => f.clone(),
                (Some(FieldChange::Numeric { before, .. }), FieldChange::Numeric { after, .. }) => {
                    FieldChange::Numeric { before, after: *after }
                }
                (
                    Some(FieldChange::Additive { added, removed, before_count, .. }),
                    FieldChange::Additive { added: a2, removed: r2, after_count, .. },
                ) => FieldChange::Additive {
                    added: dedup(added.iter().chain(a2.iter())),
                    removed: dedup(removed.iter().chain(r2.iter())),
                    before_count,
                    after_count: *after_count,
                },
                // The kind of a field never changes within a profile; if it does (a
                // corrupted log), keep the newer description.
                (Some(_), f) => f.clone(),
            };
            acc.fields.insert(name.clone(), merged);
        }
    }
    // Across objects: sums and unions.
    let mut out = Change { changes: total, ..Change::default() };
    for key in order {
        let Some(c) = per.remove(&key) else { continue };
        for o in c.objects {
            if !out.objects.contains(&o) {
                out.objects.push(o);
            }
        }
        out.deletes = out.deletes.saturating_add(c.deletes);
        out.creates = out.creates.saturating_add(c.creates);
        for (name, f) in c.fields {
            let merged = match (out.fields.remove(&name), f) {
                (None, f) => f,
                (
                    Some(FieldChange::Numeric { before: b1, after: a1 }),
                    FieldChange::Numeric { before: b2, after: a2 },
                ) => FieldChange::Numeric { before: add(b1, b2), after: add(a1, a2) },
                (
                    Some(FieldChange::Additive { added, removed, before_count, after_count }),
                    FieldChange::Additive {
                        added: a2,
                        removed: r2,
                        before_count: bc2,
                        after_count: ac2,
                    },
                ) => FieldChange::Additive {
                    added: dedup(added.iter().chain(a2.iter())),
                    removed: dedup(removed.iter().chain(r2.iter())),
                    before_count: before_count.saturating_add(bc2),
                    after_count: after_count.saturating_add(ac2),
                },
                (Some(_), f) => f,
            };
            out.fields.insert(name, merged);
        }
    }
    out
}

fn add(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

/// How wide the accounting scope of a change is (`[admission] net_effect_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetScope {
    /// The target object (default).
    #[default]
    Object,
    /// The object's namespace (Kubernetes: cluster + namespace; elsewhere the object).
    Namespace,
    /// The account and service (AWS: account + IAM service prefix; elsewhere the object).
    AccountService,
}

impl NetScope {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Namespace => "namespace",
            Self::AccountService => "account_service",
        }
    }
}

/// The canonical key of a target object: its JSON with sorted keys.
pub fn object_key(target: &Value) -> String {
    // serde_json's map is a BTreeMap here (no `preserve_order`), so this is canonical.
    target.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(obj: &str, b: i64, a: i64) -> Change {
        Change::of(obj).with("replicas", FieldChange::numeric(Some(b), Some(a)))
    }

    #[test]
    fn numeric_nets_from_the_oldest_before_to_the_newest_after() {
        let steps: Vec<Change> = (2..12).map(|r| replicas("d", r, r + 1)).collect();
        let n = net(&steps);
        assert_eq!(n.fields["replicas"], FieldChange::numeric(Some(2), Some(12)));
        assert_eq!(n.fields["replicas"].delta(), 10);
        assert_eq!(n.changes, 10);
        // Up and down again: the net is what is left.
        let n = net(&[replicas("d", 2, 12), replicas("d", 12, 3)]);
        assert_eq!(n.fields["replicas"].delta(), 1);
    }

    #[test]
    fn numeric_sums_across_objects() {
        let n = net(&[replicas("a", 2, 4), replicas("b", 1, 5), replicas("a", 4, 6)]);
        assert_eq!(n.fields["replicas"], FieldChange::numeric(Some(3), Some(11)));
        assert_eq!(n.objects, ["a", "b"]);
    }

    #[test]
    fn additive_is_the_union_and_keeps_what_was_removed_again() {
        let r = |p: i64| json!({"port": p});
        let c1 = Change::of("sg").with("ingress", FieldChange::additive(&[], &[r(1)]));
        let c2 = Change::of("sg").with("ingress", FieldChange::additive(&[r(1)], &[r(1), r(2)]));
        let c3 = Change::of("sg").with("ingress", FieldChange::additive(&[r(1), r(2)], &[r(2)]));
        let n = net(&[c1, c2, c3]);
        assert_eq!(n.added("ingress"), [r(1), r(2)]);
        let FieldChange::Additive { removed, before_count, after_count, .. } = &n.fields["ingress"]
        else {
            panic!("additive")
        };
        assert_eq!((removed.as_slice(), *before_count, *after_count), ([r(1)].as_slice(), 0, 1));
    }

    #[test]
    fn deletes_count_as_such() {
        let mut del = Change::of("d").with("replicas", FieldChange::numeric(Some(5), Some(0)));
        del.deletes = 1;
        let mut create = Change::of("d").with("replicas", FieldChange::numeric(None, Some(5)));
        create.creates = 1;
        let n = net(&[del, create]);
        assert_eq!((n.deletes, n.creates), (1, 1));
        assert_eq!(n.fields["replicas"].delta(), 0, "5 -> 0 -> 5");
        assert!(!n.is_empty());
    }

    #[test]
    fn cedar_records_are_integers_and_counts() {
        let c = replicas("d", 2, 12);
        assert_eq!(
            c.cedar_fields(),
            json!({"replicas": {"kind": "numeric", "delta": 10, "before": 2, "after": 12}})
        );
        let a = FieldChange::additive(&[json!(1)], &[json!(1), json!(2), json!(2)]);
        assert_eq!(
            a.cedar(),
            json!({"kind": "additive", "delta": 1, "added": 1, "removed": 0, "before_count": 1, "after_count": 2})
        );
        let none = FieldChange::numeric(None, None);
        assert_eq!(none.cedar(), json!({"kind": "numeric", "delta": 0}));
    }

    #[test]
    fn round_trips_as_json() {
        let c = replicas("d", 1, 2);
        let back: Change = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
