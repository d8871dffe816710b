//! The admission side of Kubernetes (compile, default pointers, consequence rules) and the
//! scope check (spec section 7, check 9). Pure; the rules are documented in
//! `docs/kubernetes.md`.

use std::collections::BTreeSet;

use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Contract, Platform};
use seb_target::{ConsequenceFactors, OpProfile, PlatformProfile, Sensitive, TargetError};
use serde_json::Value;

use crate::model::{Op, TargetRef, normalise_params};

/// The per-operation facts (spec section 9: "the op's profile says so").
pub fn op_profile(op: Op) -> OpProfile {
    match op {
        Op::Create => OpProfile {
            precondition: Some("object absent (409 AlreadyExists)"),
            irreversible: false,
        },
        Op::Replace => {
            OpProfile { precondition: Some("metadata.resourceVersion"), irreversible: false }
        }
        Op::MergePatch => OpProfile {
            precondition: Some("metadata.resourceVersion in the patch"),
            irreversible: false,
        },
        Op::JsonPatch => OpProfile {
            precondition: Some("test + replace of /metadata/resourceVersion"),
            irreversible: false,
        },
        Op::Apply => OpProfile {
            precondition: Some(
                "metadata.resourceVersion in the applied configuration; create when absent",
            ),
            irreversible: false,
        },
        Op::Delete => {
            OpProfile { precondition: Some("preconditions.resourceVersion"), irreversible: true }
        }
        Op::Scale => OpProfile {
            precondition: Some("metadata.resourceVersion on the scale subresource"),
            irreversible: false,
        },
    }
}

/// Where a constraint on `params` lands in the object the API server admits, so the admission
/// webhook can check it. `None`: the constraint has no enforcement point.
pub fn constraint_object_pointer(op: Op, params: &Value, path: &str) -> Option<String> {
    match op {
        Op::Create | Op::Replace | Op::Apply | Op::MergePatch => (!path.is_empty()
            && !path.starts_with("/metadata/name")
            && !path.starts_with("/metadata/namespace"))
        .then(|| path.to_owned()),
        Op::Scale => (path == "/replicas").then(|| "/spec/replicas".to_owned()),
        Op::JsonPatch => {
            let rest = path.strip_prefix('/')?;
            let (idx, rest) = rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b));
            let i: usize = idx.parse().ok()?;
            let op = params.as_array()?.get(i)?;
            let kind = op.get("op")?.as_str()?;
            let target = op.get("path")?.as_str()?;
            let sub = if rest == "value" { "" } else { rest.strip_prefix("value/")? };
            if !matches!(kind, "add" | "replace") || target.ends_with("/-") {
                return None;
            }
            Some(if sub.is_empty() { target.to_owned() } else { format!("{target}/{sub}") })
        }
        Op::Delete => None,
    }
}

/// Which namespaces the broker's admission webhook protects: the scope check's view of the
/// enforcement points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopePolicy {
    /// Namespaces covered by the ValidatingWebhookConfiguration (and the agents' read-only
    /// RBAC). Parameter-level constraints, and `create` (which RBAC cannot restrict by
    /// name), are scopeable only there.
    pub protected_namespaces: BTreeSet<String>,
}

impl ScopePolicy {
    /// A policy protecting `namespaces`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(namespaces: I) -> Self {
        Self { protected_namespaces: namespaces.into_iter().map(Into::into).collect() }
    }

    /// Whether `ns` is protected.
    pub fn is_protected(&self, ns: &str) -> bool {
        self.protected_namespaces.contains(ns)
    }
}

impl ScopeCheck for ScopePolicy {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        if contract.platform != Platform::Kubernetes {
            return Err(format!("platform `{}` is not kubernetes", contract.platform));
        }
        let op = Op::parse(&contract.op).map_err(|e| e.to_string())?;
        let target = TargetRef::from_value(&contract.target).map_err(|e| e.to_string())?;
        let protected = self.is_protected(&target.namespace);
        if op == Op::Create && !protected {
            return Err(format!(
                "create in unprotected namespace `{}`: RBAC cannot restrict create by name and no admission webhook guards it",
                target.namespace
            ));
        }
        for c in &contract.constraints {
            if !protected {
                return Err(format!(
                    "constraint on `{}` needs the admission webhook, which does not protect namespace `{}`",
                    c.path, target.namespace
                ));
            }
            if constraint_object_pointer(op, &contract.params, &c.path).is_none() {
                return Err(format!(
                    "constraint on `{}` has no enforcement point for {op}",
                    c.path
                ));
            }
        }
        Ok(())
    }
}

/// Kinds that grant or bind permissions.
const RBAC_KINDS: [&str; 4] = ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"];
/// Workload kinds whose replicas multiply the effect.
const WORKLOADS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];
/// Kinds that route or admit traffic.
const NETWORK: [&str; 5] = ["Service", "Ingress", "NetworkPolicy", "Endpoints", "EndpointSlice"];
/// Built-in kinds (anything else is a custom resource: more uncertainty).
const BUILTIN: [&str; 14] = [
    "ConfigMap",
    "Secret",
    "Pod",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "LimitRange",
    "ResourceQuota",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Lease",
    "Event",
    "ControllerRevision",
    "PodTemplate",
    "CSIStorageCapacity",
];

/// Kubernetes as an admission-side platform profile.
#[derive(Debug, Clone, Default)]
pub struct KubeProfile;

/// Whether `kind` is a workload controller.
pub fn is_workload(kind: &str) -> bool {
    WORKLOADS.contains(&kind)
}

impl KubeProfile {
    /// The consequence rules of one op (also used to score a net change).
    pub fn factors_of(op: Op, target: &TargetRef, params: &Value) -> ConsequenceFactors {
        Self::factors(op, target, params)
    }

    fn factors(op: Op, target: &TargetRef, params: &Value) -> ConsequenceFactors {
        let kind = target.kind.as_str();
        let mut f = ConsequenceFactors {
            blast_radius: 0.2,
            privilege_expansion: 0.0,
            data_sensitivity: 0.1,
            irreversibility: 0.0,
            uncertainty: 0.1,
            reasons: Vec::new(),
        };
        let raise = |field: &mut f64, to: f64, why: String, reasons: &mut Vec<String>| {
            if to > *field {
                *field = to;
                reasons.push(why);
            }
        };
        // Irreversibility: delete > replace > apply > patch > scale > create.
        let irr = match op {
            Op::Delete => 0.9,
            Op::Replace => 0.6,
            Op::Apply => 0.5,
            Op::MergePatch | Op::JsonPatch => 0.4,
            Op::Scale => 0.3,
            Op::Create => 0.1,
        };
        raise(
            &mut f.irreversibility,
            irr,
            format!("op {op}: irreversibility {irr}"),
            &mut f.reasons,
        );
        // Blast radius by kind.
        if WORKLOADS.contains(&kind) {
            raise(
                &mut f.blast_radius,
                0.4,
                format!("{kind} is a workload controller"),
                &mut f.reasons,
            );
        }
        if NETWORK.contains(&kind) {
            raise(
                &mut f.blast_radius,
                0.5,
                format!("{kind} routes or admits traffic"),
                &mut f.reasons,
            );
        }
        if op == Op::Delete && (WORKLOADS.contains(&kind) || NETWORK.contains(&kind)) {
            raise(
                &mut f.blast_radius,
                0.7,
                format!("deleting a {kind} takes down what depends on it"),
                &mut f.reasons,
            );
        }
        // Replica changes scale the blast radius.
        let replicas = match op {
            Op::Scale => params.get("replicas"),
            Op::JsonPatch => params.as_array().and_then(|ops| {
                ops.iter()
                    .find(|o| o.get("path").and_then(Value::as_str) == Some("/spec/replicas"))
                    .and_then(|o| o.get("value"))
            }),
            _ => params.pointer("/spec/replicas"),
        }
        .and_then(Value::as_u64);
        if let Some(r) = replicas {
            let (b, why) = match r {
                0 => (0.9, "scales to zero replicas (outage)".to_owned()),
                1..=10 => (0.3, format!("sets {r} replicas")),
                11..=50 => (0.5, format!("sets {r} replicas")),
                _ => (0.7, format!("sets {r} replicas (capacity and cost)")),
            };
            raise(&mut f.blast_radius, b, why, &mut f.reasons);
        }
        // Privilege: RBAC objects and identities; privileged pod specs.
        if RBAC_KINDS.contains(&kind) {
            let p = if kind.ends_with("Binding") { 1.0 } else { 0.9 };
            raise(
                &mut f.privilege_expansion,
                p,
                format!("{kind} grants permissions"),
                &mut f.reasons,
            );
            raise(
                &mut f.data_sensitivity,
                0.5,
                format!("{kind} controls access to data"),
                &mut f.reasons,
            );
            raise(
                &mut f.blast_radius,
                0.6,
                format!("{kind} affects every subject it binds"),
                &mut f.reasons,
            );
        }
        if kind == "ServiceAccount" {
            raise(
                &mut f.privilege_expansion,
                0.5,
                "ServiceAccount is an identity".into(),
                &mut f.reasons,
            );
        }
        if let Some(why) = privileged_pod_spec(params) {
            raise(&mut f.privilege_expansion, 0.8, why, &mut f.reasons);
        }
        // Sensitivity.
        if kind == "Secret" {
            raise(
                &mut f.data_sensitivity,
                0.9,
                "Secret holds credentials or keys".into(),
                &mut f.reasons,
            );
            raise(
                &mut f.privilege_expansion,
                0.4,
                "a Secret's contents can be credentials".into(),
                &mut f.reasons,
            );
        } else if kind == "ConfigMap" {
            raise(
                &mut f.data_sensitivity,
                0.3,
                "ConfigMap holds configuration".into(),
                &mut f.reasons,
            );
        } else if kind == "PersistentVolumeClaim" && op == Op::Delete {
            raise(
                &mut f.data_sensitivity,
                0.8,
                "deleting a PersistentVolumeClaim can delete its data".into(),
                &mut f.reasons,
            );
            raise(
                &mut f.irreversibility,
                1.0,
                "volume data may be unrecoverable".into(),
                &mut f.reasons,
            );
        }
        // Uncertainty.
        if !BUILTIN.contains(&kind)
            && !WORKLOADS.contains(&kind)
            && !NETWORK.contains(&kind)
            && !RBAC_KINDS.contains(&kind)
        {
            raise(
                &mut f.uncertainty,
                0.4,
                format!("{kind} is not a built-in kind (custom resource semantics)"),
                &mut f.reasons,
            );
        }
        match op {
            Op::JsonPatch => {
                raise(&mut f.uncertainty, 0.3, "json_patch is positional".into(), &mut f.reasons)
            }
            Op::Apply => raise(
                &mut f.uncertainty,
                0.3,
                "server-side apply merges field ownership".into(),
                &mut f.reasons,
            ),
            _ => {}
        }
        f
    }
}

/// A reason if the params carry a privileged pod spec anywhere.
fn privileged_pod_spec(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let hit = match (k.as_str(), val) {
                    (
                        "privileged"
                        | "hostNetwork"
                        | "hostPID"
                        | "hostIPC"
                        | "allowPrivilegeEscalation",
                        Value::Bool(true),
                    ) => true,
                    ("hostPath", Value::Object(_)) => true,
                    ("add", Value::Array(caps)) => caps
                        .iter()
                        .any(|c| c.as_str().is_some_and(|c| c == "SYS_ADMIN" || c == "ALL")),
                    ("runAsUser", Value::Number(n)) => n.as_u64() == Some(0),
                    _ => false,
                };
                if hit {
                    return Some(format!("pod spec sets `{k}`"));
                }
                if let Some(r) = privileged_pod_spec(val) {
                    return Some(r);
                }
            }
            None
        }
        Value::Array(a) => a.iter().find_map(privileged_pod_spec),
        _ => None,
    }
}

impl PlatformProfile for KubeProfile {
    fn platform(&self) -> Platform {
        Platform::Kubernetes
    }

    fn compile(
        &self,
        op: &str,
        target: &Value,
        params: &Value,
    ) -> Result<(Value, Value), TargetError> {
        let op = Op::parse(op)?;
        let t = TargetRef::from_value(target)?;
        let p = normalise_params(op, &t, params)?;
        Ok((t.to_value(), p))
    }

    /// `""`, the whole object without status and volatile metadata, for every op: the
    /// contract then depends on exactly the state that was admitted.
    fn default_pointers(&self, _op: &str, _target: &Value, _params: &Value) -> Vec<String> {
        vec![String::new()]
    }

    fn consequence(&self, op: &str, target: &Value, params: &Value) -> ConsequenceFactors {
        match (Op::parse(op), TargetRef::from_value(target)) {
            (Ok(op), Ok(t)) => Self::factors(op, &t, params),
            _ => ConsequenceFactors {
                blast_radius: 1.0,
                privilege_expansion: 1.0,
                data_sensitivity: 1.0,
                irreversibility: 1.0,
                uncertainty: 1.0,
                reasons: vec!["op or target does not compile: maximal consequence".into()],
            },
        }
    }

    /// A core `Secret`'s `data` and `stringData` (and, in a JSON patch of one, every `value`).
    fn sensitive(&self, op: &str, target: &Value) -> Sensitive {
        let secret = target.get("kind").and_then(Value::as_str) == Some("Secret")
            && target.get("api_version").and_then(Value::as_str) == Some("v1");
        const EVIDENCE: &[(&str, &str)] = &[("", "/data"), ("", "/stringData")];
        match Op::parse(op) {
            Ok(Op::JsonPatch) if secret => Sensitive { params: &["/*/value"], evidence: EVIDENCE },
            Ok(_) if secret => Sensitive { params: &["/data", "/stringData"], evidence: EVIDENCE },
            _ => Sensitive::NONE,
        }
    }

    /// The net-effect model of [`crate::net_effect`].
    fn change(
        &self,
        op: &str,
        target: &Value,
        params: &Value,
        evidence: &std::collections::BTreeMap<String, Value>,
    ) -> seb_target::Change {
        crate::net_effect::change(op, target, params, evidence)
    }

    fn net_consequence(
        &self,
        target: &Value,
        net: &seb_target::Change,
    ) -> Option<ConsequenceFactors> {
        crate::net_effect::net_consequence(target, net)
    }

    fn scope_key(&self, target: &Value, scope: seb_target::NetScope) -> String {
        crate::net_effect::scope_key(target, scope)
    }

    /// `create` needs the object absent; `apply` creates or updates; every other op needs
    /// it present (the observation's resourceVersion is `None` exactly when it is absent).
    fn applicable(&self, op: &str, observed: &Observation) -> Result<(), String> {
        let exists = observed.version.is_some();
        match Op::parse(op) {
            Ok(Op::Create) if exists => {
                Err("`create` of an object that observation found present: it already exists"
                    .into())
            }
            Ok(Op::Apply | Op::Create) | Err(_) => Ok(()),
            Ok(o) if !exists => Err(format!(
                "`{}` needs an object that observation found absent: it does not exist",
                o.as_str()
            )),
            Ok(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seb_core::types::{CheckKind, Constraint, RiskLevel};
    use serde_json::json;

    #[test]
    fn an_op_that_cannot_apply_to_what_was_observed_is_inapplicable() {
        let absent = Observation { projection: Default::default(), version: None };
        let present = Observation { projection: Default::default(), version: Some("7".into()) };
        for op in ["scale", "replace", "merge_patch", "json_patch", "delete"] {
            let e = KubeProfile.applicable(op, &absent).unwrap_err();
            assert!(e.contains("does not exist") && e.contains(op), "{e}");
            assert!(KubeProfile.applicable(op, &present).is_ok());
        }
        assert!(KubeProfile.applicable("create", &absent).is_ok());
        assert!(KubeProfile.applicable("create", &present).unwrap_err().contains("already exists"));
        assert!(KubeProfile.applicable("apply", &absent).is_ok());
        assert!(KubeProfile.applicable("apply", &present).is_ok());
    }

    #[test]
    fn a_secret_s_data_is_sensitive_a_config_map_s_is_not() {
        let secret = target("Secret", "v1", "a");
        let s = KubeProfile.sensitive("create", &secret);
        assert!(s.covers_param("/data/password") && s.covers_param("/stringData/x"));
        assert!(!s.covers_param("/metadata/name"));
        assert!(KubeProfile.sensitive("json_patch", &secret).covers_param("/0/value"));
        assert!(KubeProfile.sensitive("create", &target("ConfigMap", "v1", "a")).is_empty());
    }

    fn target(kind: &str, api: &str, ns: &str) -> Value {
        json!({"cluster":"c","api_version":api,"kind":kind,"namespace":ns,"name":"x"})
    }

    fn contract(op: &str, ns: &str, params: Value, constraints: Vec<Constraint>) -> Contract {
        Contract {
            platform: Platform::Kubernetes,
            op: op.into(),
            target: target("Deployment", "apps/v1", ns),
            params,
            constraints,
            risk_level: RiskLevel::L2,
        }
    }

    #[test]
    fn consequence_orders_delete_replace_patch_and_flags_privilege() {
        let p = KubeProfile;
        let d = p.consequence("delete", &target("ConfigMap", "v1", "a"), &json!({}));
        let r = p.consequence("replace", &target("ConfigMap", "v1", "a"), &json!({}));
        let m = p.consequence("merge_patch", &target("ConfigMap", "v1", "a"), &json!({}));
        assert!(d.irreversibility > r.irreversibility && r.irreversibility > m.irreversibility);
        let rb = p.consequence(
            "create",
            &target("RoleBinding", "rbac.authorization.k8s.io/v1", "a"),
            &json!({}),
        );
        assert!(rb.privilege_expansion >= 0.9 && !rb.reasons.is_empty());
        let s = p.consequence("merge_patch", &target("Secret", "v1", "a"), &json!({}));
        assert!(s.data_sensitivity >= 0.9);
        let zero =
            p.consequence("scale", &target("Deployment", "apps/v1", "a"), &json!({"replicas": 0}));
        let three =
            p.consequence("scale", &target("Deployment", "apps/v1", "a"), &json!({"replicas": 3}));
        let many = p.consequence(
            "scale",
            &target("Deployment", "apps/v1", "a"),
            &json!({"replicas": 200}),
        );
        assert!(zero.blast_radius > many.blast_radius && many.blast_radius > three.blast_radius);
        let priv_pod = p.consequence(
            "create",
            &target("Pod", "v1", "a"),
            &json!({"spec":{"containers":[{"securityContext":{"privileged":true}}]}}),
        );
        assert!(priv_pod.privilege_expansion >= 0.8);
        let crd =
            p.consequence("merge_patch", &target("Widget", "example.com/v1", "a"), &json!({}));
        assert!(crd.uncertainty >= 0.4);
        assert_eq!(p.consequence("frob", &target("Pod", "v1", "a"), &json!({})).blast_radius, 1.0);
    }

    #[test]
    fn compile_normalises_and_rejects() {
        let (t, p) = KubeProfile
            .compile("create", &target("ConfigMap", "v1", "a"), &json!({"data":{"k":"v"}}))
            .unwrap();
        assert_eq!(t["name"], "x");
        assert_eq!(p["metadata"]["namespace"], "a");
        assert!(KubeProfile.compile("frob", &t, &p).is_err());
        assert_eq!(KubeProfile.default_pointers("scale", &t, &p), vec![String::new()]);
    }

    #[test]
    fn scope_needs_the_webhook_for_constraints_and_create() {
        let s = ScopePolicy::new(["prod"]);
        let c = |path: &str| {
            vec![Constraint {
                path: path.into(),
                check: CheckKind::Range,
                value: json!({"max": 5}),
            }]
        };
        assert!(
            s.check_scope(&contract("scale", "prod", json!({"replicas": 3}), c("/replicas")))
                .is_ok()
        );
        assert!(
            s.check_scope(&contract("scale", "dev", json!({"replicas": 3}), c("/replicas")))
                .is_err()
        );
        assert!(s.check_scope(&contract("scale", "dev", json!({"replicas": 3}), vec![])).is_ok());
        assert!(s.check_scope(&contract("create", "dev", json!({}), vec![])).is_err());
        assert!(s.check_scope(&contract("create", "prod", json!({}), vec![])).is_ok());
        assert!(
            s.check_scope(&contract("delete", "prod", json!({}), c("/propagationPolicy"))).is_err()
        );
        let jp = json!([{"op":"replace","path":"/spec/replicas","value":3},{"op":"remove","path":"/spec/x"}]);
        assert!(s.check_scope(&contract("json_patch", "prod", jp.clone(), c("/0/value"))).is_ok());
        assert!(s.check_scope(&contract("json_patch", "prod", jp.clone(), c("/1/value"))).is_err());
        assert_eq!(
            constraint_object_pointer(Op::JsonPatch, &jp, "/0/value").as_deref(),
            Some("/spec/replicas")
        );
        assert_eq!(
            constraint_object_pointer(Op::Scale, &json!({}), "/replicas").as_deref(),
            Some("/spec/replicas")
        );
        let mut aws = contract("scale", "prod", json!({}), vec![]);
        aws.platform = Platform::Aws;
        assert!(s.check_scope(&aws).is_err());
    }
}
