//! What a model needs to form a valid proposal, from the same platform profiles admission
//! compiles contracts with ([`seb_kube::KubeProfile`], [`seb_aws::AwsPlatform`] and
//! [`seb_aws::profiles::PROFILES`]), and the local validation every tool runs before it signs
//! or sends anything.

use schemars::JsonSchema;
use seb_core::types::{Constraint, Platform};
use seb_target::PlatformProfile as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The platforms `seb mcp` proposes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformName {
    Kubernetes,
    Aws,
}

impl PlatformName {
    /// The protocol's platform.
    pub fn platform(self) -> Platform {
        match self {
            Self::Kubernetes => Platform::Kubernetes,
            Self::Aws => Platform::Aws,
        }
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Aws => "aws",
        }
    }
}

/// A Kubernetes target: one namespaced object.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeTargetShape {
    /// The cluster's name in the broker's configuration.
    pub cluster: String,
    /// `v1`, `apps/v1`, …
    pub api_version: String,
    /// `ConfigMap`, `Deployment`, …
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// An AWS target: one resource.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsTargetShape {
    /// 12-digit account id.
    pub account: String,
    /// Region of the API calls (for S3, the bucket's region).
    pub region: String,
    /// The IAM service prefix of the operation (`s3`, `ec2`, `dynamodb`, `ssm`, `autoscaling`).
    pub service: String,
    /// The resource ARN (no wildcards).
    pub arn: String,
}

/// The JSON Schema of a `target` argument: one of the platform shapes.
pub fn target_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The object the operation acts on; its shape depends on the platform (see list_operations).",
        "anyOf": [g.subschema_for::<KubeTargetShape>(), g.subschema_for::<AwsTargetShape>()]
    })
}

/// One operation as `list_operations` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OperationInfo {
    pub op: String,
    pub description: String,
    /// JSON Schema (Kubernetes) or the profile's list of parameter locations (AWS).
    pub params: Value,
    /// Where a constraint may be placed (JSON pointers into params).
    pub constraint_paths: String,
    pub precondition: Option<String>,
    pub irreversible: bool,
    /// What the evidence covers (JSON pointers into the live projection).
    pub evidence: Vec<String>,
    /// A valid example proposal's target and params.
    pub example: Value,
}

/// One platform's operations.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlatformInfo {
    pub platform: PlatformName,
    pub target_shape: Value,
    pub operations: Vec<OperationInfo>,
}

fn kube_params(op: seb_kube::Op) -> (&'static str, Value, &'static str, Value) {
    use seb_kube::Op;
    let manifest = json!({"type": "object", "description": "the full object manifest (apiVersion, kind, metadata.name/namespace equal to the target)", "required": ["apiVersion", "kind", "metadata"]});
    match op {
        Op::Create => (
            "POST the object (must not exist)",
            manifest,
            "any pointer into the manifest except /metadata/name and /metadata/namespace",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "NAME", "namespace": "NS"}, "data": {"k": "v"}}),
        ),
        Op::Replace => (
            "PUT the whole object (pinned to the observed resourceVersion)",
            manifest,
            "any pointer into the manifest except /metadata/name and /metadata/namespace",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "NAME", "namespace": "NS"}, "data": {"k": "v2"}}),
        ),
        Op::MergePatch => (
            "JSON merge patch (RFC 7386)",
            json!({"type": "object", "description": "the merge patch"}),
            "any pointer into the patch",
            json!({"spec": {"replicas": 3}}),
        ),
        Op::JsonPatch => (
            "JSON patch (RFC 6902)",
            json!({"type": "array", "items": {"type": "object", "required": ["op", "path"], "properties": {"op": {"enum": ["add", "remove", "replace", "test", "copy", "move"]}, "path": {"type": "string"}, "value": {}}}}),
            "/<index>/value of a patch operation",
            json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
        ),
        Op::Apply => (
            "server-side apply of the applied configuration (creates when absent)",
            manifest,
            "any pointer into the manifest except /metadata/name and /metadata/namespace",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "NAME", "namespace": "NS"}, "spec": {"replicas": 3}}),
        ),
        Op::Delete => (
            "DELETE the object (pinned to the observed resourceVersion; irreversible)",
            json!({"type": "object", "additionalProperties": false, "properties": {"propagationPolicy": {"enum": ["Orphan", "Background", "Foreground"]}}}),
            "none",
            json!({}),
        ),
        Op::Scale => (
            "set replicas through the scale subresource",
            json!({"type": "object", "additionalProperties": false, "required": ["replicas"], "properties": {"replicas": {"type": "integer", "minimum": 0}}}),
            "/replicas",
            json!({"replicas": 3}),
        ),
    }
}

/// Every operation of every platform (built once: the profiles are static).
pub fn catalogue() -> &'static [PlatformInfo] {
    static CATALOGUE: std::sync::LazyLock<Vec<PlatformInfo>> = std::sync::LazyLock::new(build);
    &CATALOGUE
}

fn build() -> Vec<PlatformInfo> {
    let kube_target = json!({"cluster": "CLUSTER", "api_version": "apps/v1", "kind": "Deployment", "namespace": "NS", "name": "NAME"});
    let kube = PlatformInfo {
        platform: PlatformName::Kubernetes,
        target_shape: json!({
            "type": "object", "additionalProperties": false,
            "required": ["cluster", "api_version", "kind", "namespace", "name"],
            "properties": {"cluster": {"type": "string"}, "api_version": {"type": "string"}, "kind": {"type": "string"}, "namespace": {"type": "string", "description": "a DNS label; protected namespaces only"}, "name": {"type": "string"}},
        }),
        operations: seb_kube::Op::ALL
            .iter()
            .map(|&op| {
                let p = seb_kube::profile::op_profile(op);
                let (description, params, constraint_paths, example) = kube_params(op);
                OperationInfo {
                    op: op.as_str().to_owned(),
                    description: description.to_owned(),
                    params,
                    constraint_paths: constraint_paths.to_owned(),
                    precondition: p.precondition.map(str::to_owned),
                    irreversible: p.irreversible,
                    evidence: vec![
                        "\"\" (the whole object without status and volatile metadata)".into(),
                    ],
                    example: json!({"target": kube_target, "params": example}),
                }
            })
            .collect(),
    };
    let aws = PlatformInfo {
        platform: PlatformName::Aws,
        target_shape: json!({
            "type": "object", "additionalProperties": false,
            "required": ["account", "region", "service", "arn"],
            "properties": {"account": {"type": "string", "pattern": "^[0-9]{12}$"}, "region": {"type": "string"}, "service": {"type": "string", "description": "the operation's service prefix"}, "arn": {"type": "string", "description": "the resource ARN, no wildcards"}},
        }),
        operations: seb_aws::profiles::PROFILES
            .iter()
            .map(|p| OperationInfo {
                op: p.action.to_owned(),
                description: format!(
                    "{} on one {} (observed with {})",
                    p.action,
                    serde_json::to_value(p.resource)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    p.observe_call
                ),
                params: json!({
                    "locations": p.params,
                    "note": "params is an object; only these JSON-pointer locations are accepted (`*` one index or key, `/**` anything below); `identity` locations cannot carry constraints",
                }),
                constraint_paths: "a listed location that is not `identity`".into(),
                precondition: p.precondition.describe().map(str::to_owned),
                irreversible: p.irreversible,
                evidence: p.default_pointers.iter().map(|s| (*s).to_owned()).collect(),
                example: json!({"target": {"account": "123456789012", "region": "us-east-1", "service": p.service, "arn": "ARN"}}),
            })
            .collect(),
    };
    vec![kube, aws]
}

/// A proposal's parts validated as admission will compile them: `(target, params)`
/// normalised. Nothing is signed or sent when this fails.
pub fn validate(
    platform: PlatformName,
    op: &str,
    target: &Value,
    params: &Value,
    constraints: &[Constraint],
) -> Result<(Value, Value), String> {
    let compiled = match platform {
        PlatformName::Kubernetes => seb_kube::KubeProfile.compile(op, target, params),
        PlatformName::Aws => seb_aws::AwsPlatform.compile(op, target, params),
    };
    let (target, params) = compiled.map_err(|e| {
        let known: Vec<&str> = catalogue()
            .iter()
            .filter(|p| p.platform == platform)
            .flat_map(|p| p.operations.iter().map(|o| o.op.as_str()))
            .collect();
        format!("{e} (the {} operations are: {})", platform.as_str(), known.join(", "))
    })?;
    seb_core::constraints::validate(constraints).map_err(|e| format!("constraints: {e}"))?;
    for c in constraints {
        if params.pointer(&c.path).is_none() {
            return Err(format!("constraint path `{}` is not in params", c.path));
        }
    }
    Ok((target, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_every_profile() {
        let c = catalogue();
        let kube = c.iter().find(|p| p.platform == PlatformName::Kubernetes).unwrap();
        assert_eq!(kube.operations.len(), seb_kube::Op::ALL.len());
        let aws = c.iter().find(|p| p.platform == PlatformName::Aws).unwrap();
        assert_eq!(aws.operations.len(), 11);
        assert!(aws.operations.iter().any(|o| o.op == "s3:PutObject"));
        // Every Kubernetes example compiles.
        for o in &kube.operations {
            let ex = &o.example;
            let t = json!({"cluster": "c", "api_version": "v1", "kind": "ConfigMap", "namespace": "ns", "name": "name"});
            let target = if o.op == "apply"
                || o.op == "scale"
                || o.op == "merge_patch"
                || o.op == "json_patch"
            {
                json!({"cluster": "c", "api_version": "apps/v1", "kind": "Deployment", "namespace": "ns", "name": "name"})
            } else {
                t
            };
            let params = serde_json::to_string(&ex["params"])
                .unwrap()
                .replace("\"NAME\"", "\"name\"")
                .replace("\"NS\"", "\"ns\"");
            let params: Value = serde_json::from_str(&params).unwrap();
            validate(PlatformName::Kubernetes, &o.op, &target, &params, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", o.op));
        }
    }

    #[test]
    fn bad_proposals_are_refused_locally_with_the_field() {
        let t = json!({"cluster": "c", "api_version": "apps/v1", "kind": "Deployment", "namespace": "ns", "name": "web"});
        let e = validate(PlatformName::Kubernetes, "explode", &t, &json!({}), &[]).unwrap_err();
        assert!(e.contains("unknown kubernetes op `explode`") && e.contains("scale"), "{e}");
        let aws_shaped = json!({"account": "123456789012", "region": "us-east-1", "service": "s3", "arn": "arn:aws:s3:::bucket-a/k"});
        let e =
            validate(PlatformName::Kubernetes, "scale", &aws_shaped, &json!({"replicas": 1}), &[])
                .unwrap_err();
        assert!(e.contains("target"), "{e}");
        let e = validate(PlatformName::Kubernetes, "scale", &t, &json!({"replicas": -1}), &[])
            .unwrap_err();
        assert!(e.contains("replicas"), "{e}");
        let e =
            validate(PlatformName::Kubernetes, "scale", &t, &json!({"replicas": 2, "x": 1}), &[])
                .unwrap_err();
        assert!(e.contains('x'), "{e}");
        let e = validate(PlatformName::Aws, "s3:PutObject", &aws_shaped, &json!({"bdy": "x"}), &[])
            .unwrap_err();
        assert!(e.contains("bdy"), "{e}");
        let c: Vec<Constraint> = serde_json::from_value(
            json!([{"path": "/nope", "check": "range", "value": {"max": 3}}]),
        )
        .unwrap();
        let e = validate(PlatformName::Kubernetes, "scale", &t, &json!({"replicas": 2}), &c)
            .unwrap_err();
        assert!(e.contains("/nope"), "{e}");
        validate(PlatformName::Aws, "s3:PutObject", &aws_shaped, &json!({"body": "x"}), &[])
            .unwrap();
    }
}
