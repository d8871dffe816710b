//! The Kubernetes contract vocabulary (spec section 9): the target reference, the seven
//! operations with their params shapes, and the per-execution names. Pure.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::KubeError;

/// `{cluster, api_version, kind, namespace, name}`: one namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// The cluster's name in the broker's configuration.
    pub cluster: String,
    /// `v1`, `apps/v1`, `example.com/v1alpha1`…
    pub api_version: String,
    /// `ConfigMap`, `Deployment`…
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl TargetRef {
    /// Parse and validate a contract's `target`.
    pub fn from_value(v: &Value) -> Result<Self, KubeError> {
        let t: TargetRef =
            serde_json::from_value(v.clone()).map_err(|e| KubeError::invalid_from("target", e))?;
        t.validate()?;
        Ok(t)
    }

    /// The JSON form (the contract's `target`).
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "cluster": self.cluster, "api_version": self.api_version, "kind": self.kind,
            "namespace": self.namespace, "name": self.name,
        })
    }

    fn validate(&self) -> Result<(), KubeError> {
        if self.cluster.is_empty() {
            return Err(KubeError::Invalid("target `cluster` is empty".into()));
        }
        let (group, version) = self.group_version();
        if version.is_empty()
            || !is_dns_label(version)
            || (!group.is_empty() && !is_dns_subdomain(group))
        {
            return Err(KubeError::Invalid(format!(
                "target api_version `{}` is malformed",
                self.api_version
            )));
        }
        if self.kind.is_empty() || !self.kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(KubeError::Invalid(format!("target kind `{}` is malformed", self.kind)));
        }
        if !is_dns_label(&self.namespace) {
            return Err(KubeError::Invalid(format!(
                "target namespace `{}` is not a DNS label",
                self.namespace
            )));
        }
        if !is_dns_subdomain(&self.name) {
            return Err(KubeError::Invalid(format!(
                "target name `{}` is not a DNS subdomain",
                self.name
            )));
        }
        Ok(())
    }

    /// `(group, version)`; the core group is `""`.
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        }
    }

    /// The API group (`""` for core).
    pub fn group(&self) -> &str {
        self.group_version().0
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}/{}/{}",
            self.cluster, self.api_version, self.kind, self.namespace, self.name
        )
    }
}

/// RFC 1123 label: lowercase alphanumerics and `-`, 1..=63, alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The seven operations of spec section 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `POST` the object in `params` (the full manifest).
    Create,
    /// `PUT` the object in `params` (the full manifest) with the observed resourceVersion.
    Replace,
    /// `PATCH` with `application/merge-patch+json` (`params` is the patch).
    MergePatch,
    /// `PATCH` with `application/json-patch+json` (`params` is the RFC 6902 array).
    JsonPatch,
    /// Server-side apply (`params` is the applied configuration).
    Apply,
    /// `DELETE` (`params` is `{}` or `{"propagationPolicy": …}`).
    Delete,
    /// The `scale` subresource (`params` is `{"replicas": n}`).
    Scale,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 7] =
        [Op::Create, Op::Replace, Op::MergePatch, Op::JsonPatch, Op::Apply, Op::Delete, Op::Scale];

    /// Parse the contract's `op`.
    pub fn parse(s: &str) -> Result<Self, KubeError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| KubeError::Invalid(format!("unknown kubernetes op `{s}`")))
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Replace => "replace",
            Op::MergePatch => "merge_patch",
            Op::JsonPatch => "json_patch",
            Op::Apply => "apply",
            Op::Delete => "delete",
            Op::Scale => "scale",
        }
    }

    /// Whether the op needs the object to exist at the drift check.
    pub const fn needs_existing(self) -> bool {
        !matches!(self, Op::Create | Op::Apply)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metadata fields the server owns; never part of a projection or of certified params.
pub const VOLATILE_METADATA: [&str; 9] = [
    "resourceVersion",
    "managedFields",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "uid",
    "selfLink",
    "generateName",
];

/// Validate and normalise `params` for `op` on `target` (admission's compile step; the
/// broker's match rule then compares against the normalised form).
pub fn normalise_params(op: Op, target: &TargetRef, params: &Value) -> Result<Value, KubeError> {
    let bad = |m: String| Err(KubeError::Invalid(m));
    match op {
        Op::Create | Op::Replace | Op::Apply => {
            let Value::Object(obj) = params else {
                return bad(format!("{op} params must be the object's manifest"));
            };
            let mut obj = obj.clone();
            for (field, want) in [("apiVersion", &target.api_version), ("kind", &target.kind)] {
                match obj.get(field) {
                    None => {
                        obj.insert(field.into(), Value::String(want.clone()));
                    }
                    Some(Value::String(s)) if s == want => {}
                    Some(other) => {
                        return bad(format!(
                            "params `{field}` {other} differs from the target's `{want}`"
                        ));
                    }
                }
            }
            let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(meta) = meta else {
                return bad("params `metadata` is not an object".into());
            };
            for (field, want) in [("name", &target.name), ("namespace", &target.namespace)] {
                match meta.get(field) {
                    None => {
                        meta.insert(field.into(), Value::String(want.clone()));
                    }
                    Some(Value::String(s)) if s == want => {}
                    Some(other) => {
                        return bad(format!(
                            "params `metadata.{field}` {other} differs from the target's `{want}`"
                        ));
                    }
                }
            }
            for f in VOLATILE_METADATA {
                if meta.contains_key(f) {
                    return bad(format!(
                        "params must not carry `metadata.{f}` (the broker sets the precondition)"
                    ));
                }
            }
            obj.remove("status");
            Ok(Value::Object(obj))
        }
        Op::MergePatch => {
            let Value::Object(obj) = params else {
                return bad("merge_patch params must be a JSON object".into());
            };
            if let Some(meta) = obj.get("metadata") {
                let Value::Object(meta) = meta else {
                    return bad("patch `metadata` must be an object".into());
                };
                for f in ["name", "namespace"].iter().chain(VOLATILE_METADATA.iter()) {
                    if meta.contains_key(*f) {
                        return bad(format!("merge_patch must not touch `metadata.{f}`"));
                    }
                }
            }
            for f in ["apiVersion", "kind"] {
                if obj.contains_key(f) {
                    return bad(format!("merge_patch must not touch `{f}`"));
                }
            }
            Ok(params.clone())
        }
        Op::JsonPatch => {
            let Value::Array(ops) = params else {
                return bad("json_patch params must be an RFC 6902 array".into());
            };
            if ops.is_empty() {
                return bad("json_patch params must not be empty".into());
            }
            serde_json::from_value::<json_patch::Patch>(params.clone())
                .map_err(|e| KubeError::invalid_from("json_patch params", e))?;
            for op in ops {
                for key in ["path", "from"] {
                    if let Some(Value::String(p)) = op.get(key)
                        && touches_protected(p)
                    {
                        return bad(format!("json_patch must not touch `{p}`"));
                    }
                }
            }
            Ok(params.clone())
        }
        Op::Delete => match params {
            Value::Null => Ok(Value::Object(Map::new())),
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("propagationPolicy", Value::String(s))
                            if ["Foreground", "Background", "Orphan"].contains(&s.as_str()) => {}
                        _ => {
                            return bad(format!(
                                "delete params take only `propagationPolicy` (Foreground|Background|Orphan), not `{k}`"
                            ));
                        }
                    }
                }
                Ok(params.clone())
            }
            _ => bad("delete params must be an object".into()),
        },
        Op::Scale => match params {
            Value::Object(m)
                if m.len() == 1
                    && m.get("replicas")
                        .and_then(Value::as_u64)
                        .is_some_and(|r| r <= i32::MAX as u64) =>
            {
                Ok(params.clone())
            }
            _ => {
                bad("scale params must be exactly `{\"replicas\": <non-negative integer>}`".into())
            }
        },
    }
}

fn touches_protected(pointer: &str) -> bool {
    let p = pointer.trim_end_matches('/');
    if p.is_empty() || p == "/metadata" || p == "/apiVersion" || p == "/kind" {
        return true;
    }
    ["name", "namespace"].iter().chain(VOLATILE_METADATA.iter()).any(|f| {
        let base = format!("/metadata/{f}");
        p == base || p.starts_with(&format!("{base}/"))
    })
}

/// Per-execution resource names: `seb-exec-<8 hex of the cid>-<8 hex of sha256(nonce)>`.
/// The same name is used for the ServiceAccount, the Role and the RoleBinding.
pub fn identity_name(cid: &str, nonce: &str) -> String {
    let cid_hex: String = cid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let cid_part = if cid_hex.len() == 8 {
        cid_hex
    } else {
        hex::encode(Sha256::digest(cid.as_bytes())).chars().take(8).collect()
    };
    let nonce_hash: String =
        hex::encode(Sha256::digest(nonce.as_bytes())).chars().take(8).collect();
    format!("seb-exec-{cid_part}-{nonce_hash}")
}

/// The Kubernetes username of a ServiceAccount.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t() -> TargetRef {
        TargetRef::from_value(&json!({"cluster":"c","api_version":"apps/v1","kind":"Deployment","namespace":"prod","name":"web"})).unwrap()
    }

    #[test]
    fn target_ref_validates_shape() {
        assert_eq!(t().group_version(), ("apps", "v1"));
        let core = TargetRef::from_value(&json!({"cluster":"c","api_version":"v1","kind":"ConfigMap","namespace":"a","name":"b.c"})).unwrap();
        assert_eq!(core.group(), "");
        for bad in [
            json!({"cluster":"c","api_version":"v1","kind":"ConfigMap","namespace":"A","name":"b"}),
            json!({"cluster":"c","api_version":"v1","kind":"ConfigMap","namespace":"a","name":"b/../c"}),
            json!({"cluster":"c","api_version":"v1","kind":"ConfigMap","namespace":"a","name":"b","x":1}),
            json!({"cluster":"","api_version":"v1","kind":"ConfigMap","namespace":"a","name":"b"}),
            json!({"cluster":"c","api_version":"a/b/c","kind":"ConfigMap","namespace":"a","name":"b"}),
        ] {
            assert!(TargetRef::from_value(&bad).is_err(), "{bad}");
        }
        assert_eq!(TargetRef::from_value(&t().to_value()).unwrap(), t());
    }

    #[test]
    fn params_are_normalised_per_op() {
        let p = normalise_params(Op::Create, &t(), &json!({"spec":{"replicas":1}})).unwrap();
        assert_eq!(p["metadata"]["name"], "web");
        assert_eq!(p["kind"], "Deployment");
        assert!(normalise_params(Op::Create, &t(), &json!({"metadata":{"name":"other"}})).is_err());
        assert!(
            normalise_params(Op::Replace, &t(), &json!({"metadata":{"resourceVersion":"1"}}))
                .is_err()
        );
        assert!(normalise_params(Op::MergePatch, &t(), &json!({"metadata":{"name":"x"}})).is_err());
        assert!(normalise_params(Op::MergePatch, &t(), &json!({"spec":{"replicas":2}})).is_ok());
        assert!(
            normalise_params(
                Op::JsonPatch,
                &t(),
                &json!([{"op":"replace","path":"/spec/replicas","value":2}])
            )
            .is_ok()
        );
        assert!(
            normalise_params(
                Op::JsonPatch,
                &t(),
                &json!([{"op":"replace","path":"/metadata/resourceVersion","value":"2"}])
            )
            .is_err()
        );
        assert!(
            normalise_params(Op::JsonPatch, &t(), &json!([{"op":"frob","path":"/x"}])).is_err()
        );
        assert!(normalise_params(Op::Scale, &t(), &json!({"replicas":3})).is_ok());
        assert!(normalise_params(Op::Scale, &t(), &json!({"replicas":-1})).is_err());
        assert!(normalise_params(Op::Scale, &t(), &json!({"replicas":3,"x":1})).is_err());
        assert_eq!(normalise_params(Op::Delete, &t(), &Value::Null).unwrap(), json!({}));
        assert!(normalise_params(Op::Delete, &t(), &json!({"gracePeriodSeconds":0})).is_err());
    }

    #[test]
    fn identity_names_are_short_and_distinct() {
        let a = identity_name("0190f4c2-7b1e-7000-8000-000000000000", "nonce-a");
        let b = identity_name("0190f4c2-7b1e-7000-8000-000000000000", "nonce-b");
        assert!(a.starts_with("seb-exec-0190f4c2-"));
        assert_ne!(a, b);
        assert!(is_dns_label(&a) && a.len() <= 63);
        assert!(is_dns_label(&identity_name("not-a-uuid", "n")));
    }
}
