//! Bypass prevention (spec section 9): the validating admission function the broker serves at
//! `/v1/kubernetes/admission-review`. In a protected namespace a mutation is allowed only when
//! the caller is the identity of a live execution whose certificate names this object and
//! this operation, and whose parameter-level constraints hold for the object the API server
//! is about to store. Everyone else is denied, `system:masters` included; the only
//! exceptions are the control-plane identities listed in [`WebhookPolicy`] and the broker's
//! own creation of the exact Role and RoleBinding of a live execution. Pure: no I/O.

use std::collections::BTreeSet;

use seb_core::constraints;
use seb_core::types::Platform;
use seb_target::Execution;
use serde_json::{Value, json};

use crate::model::{Op, TargetRef, service_account_username};
use crate::profile::constraint_object_pointer;
use crate::rbac;

/// The broker's in-flight executions, by the Kubernetes username of their minted identity
/// (`system:serviceaccount:<exec namespace>:<identity name>`). The broker registers an
/// execution before it mints and removes it after it retires.
pub trait LiveExecutions: Send + Sync {
    /// The live execution whose identity is `username`, if any.
    fn by_identity(&self, username: &str) -> Option<Execution>;
}

/// What the admission function enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// The namespaces it guards (the webhook configuration selects them by label too).
    pub protected_namespaces: BTreeSet<String>,
    /// The broker's own Kubernetes username (creates and deletes execution grants).
    pub broker_username: String,
    /// The broker's execution namespace (where execution ServiceAccounts live).
    pub exec_namespace: String,
    /// Users always allowed (control-plane controllers that act on certified objects).
    pub exempt_usernames: BTreeSet<String>,
    /// Username prefixes always allowed (e.g. `system:serviceaccount:kube-system:`).
    pub exempt_username_prefixes: Vec<String>,
    /// Groups always allowed (e.g. `system:nodes`). Never put `system:masters` here.
    pub exempt_groups: BTreeSet<String>,
}

impl WebhookPolicy {
    /// A policy with the control-plane exemptions a working cluster needs: the controller
    /// manager and scheduler (their own identities and, with
    /// `--use-service-account-credentials`, the kube-system controller accounts) and kubelets.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        protected: I,
        broker_username: &str,
        exec_namespace: &str,
    ) -> Self {
        Self {
            protected_namespaces: protected.into_iter().map(Into::into).collect(),
            broker_username: broker_username.to_owned(),
            exec_namespace: exec_namespace.to_owned(),
            exempt_usernames: ["system:kube-controller-manager", "system:kube-scheduler"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            exempt_username_prefixes: vec!["system:serviceaccount:kube-system:".to_owned()],
            exempt_groups: ["system:nodes"].into_iter().map(str::to_owned).collect(),
        }
    }

    /// The same policy without any exemption (tests, or clusters without controllers).
    pub fn strict(mut self) -> Self {
        self.exempt_usernames.clear();
        self.exempt_username_prefixes.clear();
        self.exempt_groups.clear();
        self
    }
}

/// The verdict with its reason (also what [`review`] writes into the response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: String,
    /// The execution the request was attributed to.
    pub cid: Option<String>,
}

fn deny(reason: impl Into<String>) -> Verdict {
    Verdict { allowed: false, reason: reason.into(), cid: None }
}

fn allow(reason: impl Into<String>, cid: Option<String>) -> Verdict {
    Verdict { allowed: true, reason: reason.into(), cid }
}

/// Decide an AdmissionRequest (the `request` member of an AdmissionReview v1).
pub fn decide(req: &Value, policy: &WebhookPolicy, live: &dyn LiveExecutions) -> Verdict {
    let s = |p: &str| req.pointer(p).and_then(Value::as_str).unwrap_or("");
    // A Namespace object is cluster-scoped; the namespace it guards is its own name.
    let is_namespace_object =
        s("/resource/group").is_empty() && s("/resource/resource") == "namespaces";
    let namespace = if is_namespace_object { s("/name") } else { s("/namespace") };
    let username = s("/userInfo/username");
    let operation = s("/operation");
    let sub = s("/subResource");
    if !policy.protected_namespaces.contains(namespace) {
        return allow(format!("namespace `{namespace}` is not protected"), None);
    }
    if policy.exempt_usernames.contains(username)
        || policy.exempt_username_prefixes.iter().any(|p| !p.is_empty() && username.starts_with(p))
    {
        return allow(format!("`{username}` is an exempt control-plane identity"), None);
    }
    let groups: Vec<&str> = req
        .pointer("/userInfo/groups")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(g) = groups.iter().find(|g| policy.exempt_groups.contains(**g)) {
        return allow(format!("group `{g}` is exempt"), None);
    }
    if is_namespace_object {
        return deny(format!(
            "protected namespace `{namespace}` cannot be relabelled or deleted while the broker guards it"
        ));
    }
    let object = req.get("object").filter(|v| !v.is_null());
    let old = req.get("oldObject").filter(|v| !v.is_null());
    let name = match s("/name") {
        "" => {
            object.and_then(|o| o.pointer("/metadata/name")).and_then(Value::as_str).unwrap_or("")
        }
        n => n,
    };
    if username == policy.broker_username {
        return broker_request(req, policy, live, namespace, name, operation, sub, object);
    }
    let Some(exec) = live.by_identity(username) else {
        return deny(format!(
            "`{username}` is not the identity of a live SEB execution; mutations in `{namespace}` need a certificate"
        ));
    };
    let cid = Some(exec.cid.clone());
    match execution_matches(&exec, req, namespace, name, operation, sub, object.or(old)) {
        Ok(()) => {
            allow(format!("execution `{}` certified {} on this object", exec.cid, exec.op), cid)
        }
        Err(e) => Verdict { allowed: false, reason: format!("execution `{}`: {e}", exec.cid), cid },
    }
}

fn execution_matches(
    exec: &Execution,
    req: &Value,
    namespace: &str,
    name: &str,
    operation: &str,
    sub: &str,
    object: Option<&Value>,
) -> Result<(), String> {
    if exec.platform != Platform::Kubernetes {
        return Err("is not a kubernetes execution".into());
    }
    let op = Op::parse(&exec.op).map_err(|e| e.to_string())?;
    let t = TargetRef::from_value(&exec.target).map_err(|e| e.to_string())?;
    if t.namespace != namespace || t.name != name {
        return Err(format!("certified `{}/{}`, not `{namespace}/{name}`", t.namespace, t.name));
    }
    let expected_op = match op {
        Op::Create => "CREATE",
        Op::Apply if exec.observed_version.is_none() => "CREATE",
        Op::Replace | Op::MergePatch | Op::JsonPatch | Op::Apply | Op::Scale => "UPDATE",
        Op::Delete => "DELETE",
    };
    if operation != expected_op {
        return Err(format!("certified {op} ({expected_op}), not {operation}"));
    }
    let group = |p: &str| req.pointer(p).and_then(Value::as_str).unwrap_or("");
    if op == Op::Scale {
        if sub != "scale" {
            return Err(format!("certified scale, not subresource `{sub}`"));
        }
        // The resource plural is not in the certificate; RBAC already pins the identity to
        // `<plural>/scale` of this object, so the group is what is left to compare.
        if group("/resource/group") != t.group() {
            return Err(format!(
                "scale of group `{}`, certified `{}`",
                group("/resource/group"),
                t.group()
            ));
        }
    } else if !sub.is_empty() {
        return Err(format!("certified {op}, not subresource `{sub}`"));
    } else if group("/kind/group") != t.group() || group("/kind/kind") != t.kind {
        return Err(format!(
            "object is {}/{}, certified {}/{}",
            group("/kind/group"),
            group("/kind/kind"),
            t.group(),
            t.kind
        ));
    }
    let Some(object) = object else { return Err("the request carries no object".into()) };
    for c in &exec.contract.constraints {
        let ptr = constraint_object_pointer(op, &exec.params, &c.path)
            .ok_or_else(|| format!("constraint on `{}` cannot be enforced here", c.path))?;
        let v = object
            .pointer(&ptr)
            .ok_or_else(|| format!("constrained field `{ptr}` is missing from the object"))?;
        constraints::check(c.check, &c.value, v)
            .map_err(|e| format!("constraint on `{}` (object `{ptr}`): {e}", c.path))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn broker_request(
    req: &Value,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
    namespace: &str,
    name: &str,
    operation: &str,
    sub: &str,
    object: Option<&Value>,
) -> Verdict {
    let s = |p: &str| req.pointer(p).and_then(Value::as_str).unwrap_or("");
    let resource = s("/resource/resource");
    if s("/resource/group") != "rbac.authorization.k8s.io"
        || !matches!(resource, "roles" | "rolebindings")
        || !sub.is_empty()
        || !name.starts_with("seb-exec-")
    {
        return deny(format!(
            "the broker `{}` may only manage execution grants here, not {operation} {resource} `{name}`",
            policy.broker_username
        ));
    }
    if operation == "DELETE" {
        // Retiring a grant is always allowed, even after the execution stopped being live.
        return allow("the broker retires an execution grant", None);
    }
    if operation != "CREATE" {
        return deny(format!("the broker may not {operation} execution grants"));
    }
    let identity = service_account_username(&policy.exec_namespace, name);
    let Some(exec) = live.by_identity(&identity) else {
        return deny(format!("no live execution has identity `{identity}`"));
    };
    let cid = Some(exec.cid.clone());
    let (Ok(op), Ok(t)) = (Op::parse(&exec.op), TargetRef::from_value(&exec.target)) else {
        return deny("the live execution does not parse");
    };
    if t.namespace != namespace {
        return Verdict {
            allowed: false,
            reason: format!("grant in `{namespace}` for a target in `{}`", t.namespace),
            cid,
        };
    }
    let Some(object) = object else { return deny("the request carries no object") };
    let ok = if resource == "roles" {
        // The rule's resource names the plural (from discovery); the rest must be exact.
        let plural = object.pointer("/rules/0/resources/0").and_then(Value::as_str).unwrap_or("");
        let plural =
            if op == Op::Scale { plural.strip_suffix("/scale").unwrap_or("") } else { plural };
        !plural.is_empty()
            && !plural.contains('/')
            && !plural.contains('*')
            && rbac::rules_match(
                object.get("rules"),
                &rbac::grant(op, &t, plural, exec.observed_version.is_some()),
            )
    } else {
        let want = rbac::role_binding(name, namespace, &policy.exec_namespace, &exec.cid);
        object.get("roleRef") == want.get("roleRef")
            && object.get("subjects") == want.get("subjects")
    };
    if ok {
        allow(format!("the broker creates the {resource} of live execution `{}`", exec.cid), cid)
    } else {
        Verdict {
            allowed: false,
            reason: format!(
                "the {resource} `{name}` is not exactly the grant of execution `{}`",
                exec.cid
            ),
            cid,
        }
    }
}

/// Answer an AdmissionReview v1: the response carries the request's `uid`, `allowed`, and for
/// a denial a 403 status with the reason. A review that does not parse is denied.
pub fn review(
    admission_review: &Value,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
) -> Value {
    let req = admission_review.get("request").filter(|r| r.is_object());
    let uid = req.and_then(|r| r.get("uid")).and_then(Value::as_str).unwrap_or("");
    let api_version =
        admission_review.get("apiVersion").and_then(Value::as_str).unwrap_or("admission.k8s.io/v1");
    let verdict = match req {
        Some(r) if !uid.is_empty() => decide(r, policy, live),
        _ => deny("malformed AdmissionReview: no request or uid"),
    };
    let mut response = json!({"uid": uid, "allowed": verdict.allowed});
    if let Value::Object(m) = &mut response {
        if !verdict.allowed {
            m.insert("status".into(), json!({"code": 403, "reason": "Forbidden", "message": format!("seb: {}", verdict.reason)}));
        }
        if let Some(cid) = &verdict.cid {
            m.insert("auditAnnotations".into(), json!({"cid": cid}));
        }
    }
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}

/// [`review`] on bytes, for the HTTP handler: at most `limit` bytes of JSON in, JSON out.
pub fn review_bytes(
    body: &[u8],
    limit: usize,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
) -> Vec<u8> {
    let parsed: Value = if body.len() > limit {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    serde_json::to_vec(&review(&parsed, policy, live)).unwrap_or_default()
}

/// The largest AdmissionReview the API server sends is bounded by its request limit (3 MiB
/// objects, carried twice for updates); the handler should accept this much.
pub const MAX_REVIEW_BYTES: usize = 7 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use seb_core::types::{CheckKind, Constraint, Contract, RiskLevel};
    use std::collections::{BTreeMap, HashMap};

    struct Live(HashMap<String, Execution>);
    impl LiveExecutions for Live {
        fn by_identity(&self, u: &str) -> Option<Execution> {
            self.0.get(u).cloned()
        }
    }

    const SA: &str = "system:serviceaccount:seb-exec:seb-exec-0190f4c2-aaaaaaaa";

    fn exec(op: &str, params: Value, constraints: Vec<Constraint>) -> Execution {
        let target = json!({"cluster":"c","api_version":"apps/v1","kind":"Deployment","namespace":"prod","name":"web"});
        Execution {
            cid: "0190f4c2-0000".into(),
            nonce: "n".into(),
            agent: "a".into(),
            risk_level: RiskLevel::L2,
            platform: Platform::Kubernetes,
            op: op.into(),
            target: target.clone(),
            params: params.clone(),
            contract: Contract {
                platform: Platform::Kubernetes,
                op: op.into(),
                target,
                params,
                constraints,
                risk_level: RiskLevel::L2,
            },
            evidence: BTreeMap::new(),
            observed_version: Some("5".into()),
            break_glass: false,
        }
    }

    fn policy() -> WebhookPolicy {
        WebhookPolicy::new(["prod"], "broker", "seb-exec")
    }

    fn req(user: &str, op: &str, sub: &str, object: Value) -> Value {
        json!({"uid":"u1","kind":{"group":if sub == "scale" {"autoscaling"} else {"apps"},"version":"v1","kind":if sub == "scale" {"Scale"} else {"Deployment"}},
               "resource":{"group":"apps","version":"v1","resource":"deployments"},"subResource":sub,
               "name":"web","namespace":"prod","operation":op,
               "userInfo":{"username":user,"groups":["system:authenticated"]},"object":object,"oldObject":null})
    }

    fn live(e: Execution) -> Live {
        Live([(SA.to_owned(), e)].into())
    }

    #[test]
    fn only_a_matching_live_execution_may_mutate() {
        let replicas = vec![Constraint {
            path: "/replicas".into(),
            check: CheckKind::Range,
            value: json!({"max": 5}),
        }];
        let l = live(exec("scale", json!({"replicas": 3}), replicas));
        let p = policy();
        assert!(
            decide(&req(SA, "UPDATE", "scale", json!({"spec":{"replicas":4}})), &p, &l).allowed
        );
        let over = decide(&req(SA, "UPDATE", "scale", json!({"spec":{"replicas":9}})), &p, &l);
        assert!(!over.allowed && over.reason.contains("maximum"), "{}", over.reason);
        assert!(
            !decide(&req(SA, "UPDATE", "", json!({"spec":{"replicas":4}})), &p, &l).allowed,
            "main resource, not scale"
        );
        assert!(!decide(&req(SA, "DELETE", "", json!(null)), &p, &l).allowed);
        let admin = json!({"uid":"u","namespace":"prod","name":"web","operation":"DELETE","userInfo":{"username":"admin","groups":["system:masters"]}});
        assert!(!decide(&admin, &p, &l).allowed, "system:masters is denied");
        let mut other = req(SA, "UPDATE", "scale", json!({"spec":{"replicas":4}}));
        other["name"] = json!("api");
        assert!(!decide(&other, &p, &l).allowed, "another object");
        let mut elsewhere = req("intruder", "CREATE", "", json!({}));
        elsewhere["namespace"] = json!("dev");
        assert!(decide(&elsewhere, &p, &l).allowed, "unprotected namespaces are not guarded");
        let node = json!({"uid":"u","namespace":"prod","name":"web","operation":"UPDATE","userInfo":{"username":"system:node:n1","groups":["system:nodes"]}});
        assert!(decide(&node, &p, &l).allowed);
        assert!(!decide(&node, &p.clone().strict(), &l).allowed);
    }

    #[test]
    fn merge_patch_and_delete_map_to_update_and_delete() {
        let cons = vec![Constraint {
            path: "/spec/template/spec/containers/0/image".into(),
            check: CheckKind::Prefix,
            value: json!("registry.local/"),
        }];
        let params = json!({"spec":{"template":{"spec":{"containers":[{"name":"c","image":"registry.local/web:2"}]}}}});
        let l = live(exec("merge_patch", params, cons));
        let obj = |img: &str| json!({"metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":[{"name":"c","image":img}]}}}});
        assert!(decide(&req(SA, "UPDATE", "", obj("registry.local/web:3")), &policy(), &l).allowed);
        assert!(!decide(&req(SA, "UPDATE", "", obj("evil.example/web:3")), &policy(), &l).allowed);
        let d = live(exec("delete", json!({}), vec![]));
        let mut r = req(SA, "DELETE", "", Value::Null);
        r["oldObject"] = json!({"metadata":{"name":"web"}});
        assert!(decide(&r, &policy(), &d).allowed);
    }

    #[test]
    fn the_broker_may_create_only_the_exact_grant() {
        let e = exec("scale", json!({"replicas": 3}), vec![]);
        let l = live(e.clone());
        let t = TargetRef::from_value(&e.target).unwrap();
        let name = "seb-exec-0190f4c2-aaaaaaaa";
        let g = rbac::grant(Op::Scale, &t, "deployments", true);
        let mk = |resource: &str, obj: Value| {
            json!({"uid":"u","kind":{"group":"rbac.authorization.k8s.io","version":"v1","kind":"Role"},
                   "resource":{"group":"rbac.authorization.k8s.io","version":"v1","resource":resource},
                   "name":name,"namespace":"prod","operation":"CREATE","userInfo":{"username":"broker"},"object":obj})
        };
        assert!(decide(&mk("roles", rbac::role(name, "prod", &e.cid, &g)), &policy(), &l).allowed);
        let wider =
            rbac::role(name, "prod", &e.cid, &rbac::grant(Op::Delete, &t, "deployments", true));
        assert!(!decide(&mk("roles", wider), &policy(), &l).allowed);
        let rb = rbac::role_binding(name, "prod", "seb-exec", &e.cid);
        assert!(decide(&mk("rolebindings", rb.clone()), &policy(), &l).allowed);
        let mut rb2 = rb;
        rb2["subjects"][0]["name"] = json!("someone");
        assert!(!decide(&mk("rolebindings", rb2), &policy(), &l).allowed);
        let mut cm = mk("configmaps", json!({}));
        cm["resource"]["group"] = json!("");
        assert!(!decide(&cm, &policy(), &l).allowed, "the broker cannot mutate objects itself");
    }

    #[test]
    fn review_wraps_the_verdict() {
        let l = Live(HashMap::new());
        let out = review(
            &json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":req("x","UPDATE","",json!({}))}),
            &policy(),
            &l,
        );
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        let bad: Value =
            serde_json::from_slice(&review_bytes(b"{not json", 100, &policy(), &l)).unwrap();
        assert_eq!(bad["response"]["allowed"], false);
    }
}
