//! Bypass prevention (spec section 9): the validating admission function the broker serves at
//! `/v1/kubernetes/admission-review`. Four rules, each the decision of one webhook of the
//! shipped configuration (`deploy::webhook_configuration`), and all applied to every review:
//!
//! 1. **Protected namespaces**, matched by *name*: updating (relabelling, unlabelling, any
//!    change) or deleting one is refused to everyone but the operator path
//!    ([`WebhookPolicy::operator_groups`], `system:masters` by default).
//! 2. **SEB's own objects** (labelled `app.kubernetes.io/name=seb` before or after the
//!    change): updating or deleting them is refused to everyone but the operator path.
//! 3. **RBAC escalation**: a non-operator may not create or update a (Cluster)Role that grants
//!    write on admission configuration, `impersonate`, `escalate`/`bind` on roles, or
//!    `approve`/`sign` on signers, nor one with an `aggregationRule`, nor bind `cluster-admin`,
//!    a `system:` ClusterRole or one of SEB's roles ([`rbac_escalation`]).
//! 4. **Workloads.** In a protected namespace a mutation is allowed only when the caller is the
//!    identity of a live execution whose certificate names this object and this operation, and
//!    whose parameter-level constraints hold for the object the API server is about to store.
//!    Everyone else is denied, `system:masters` included; the only exceptions are the
//!    control-plane identities listed in [`WebhookPolicy`] and the broker's own creation of
//!    the exact Role and RoleBinding of a live execution.
//!
//! The AdmissionReview is parsed with `seb_core::json` limits (size, depth, duplicate keys)
//! into typed structs; a field the decision reads that is missing or of the wrong type denies.
//! Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use seb_core::constraints;
use seb_core::types::Platform;
use seb_target::Execution;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::deploy::{OWNED_LABEL, OWNED_LABEL_VALUE, SEB_ROLE_NAMES};
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

/// The group of the operator path by default: Kubernetes' own superuser group.
pub const DEFAULT_OPERATOR_GROUP: &str = "system:masters";

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
    /// The operator path: groups whose members may change or delete the protected namespaces
    /// and SEB's own objects, and grant any RBAC (default `system:masters`). Never allowed to
    /// mutate workloads in a protected namespace.
    pub operator_groups: BTreeSet<String>,
    /// Users of the operator path (default none).
    pub operator_usernames: BTreeSet<String>,
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
            operator_groups: [DEFAULT_OPERATOR_GROUP].into_iter().map(str::to_owned).collect(),
            operator_usernames: BTreeSet::new(),
        }
    }

    fn is_exempt(&self, username: &str, groups: &[String]) -> Option<String> {
        if self.exempt_usernames.contains(username)
            || self
                .exempt_username_prefixes
                .iter()
                .any(|p| !p.is_empty() && username.starts_with(p))
        {
            return Some(format!("`{username}` is an exempt control-plane identity"));
        }
        groups
            .iter()
            .find(|g| self.exempt_groups.contains(*g))
            .map(|g| format!("group `{g}` is exempt"))
    }

    fn is_operator(&self, username: &str, groups: &[String]) -> bool {
        self.operator_usernames.contains(username)
            || groups.iter().any(|g| self.operator_groups.contains(g))
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

// ---------------------------------------------------------------------------------------
// The typed AdmissionReview (admission.k8s.io/v1). Unknown fields are ignored (the API server
// adds some across releases); every field the decision reads has its type, and a field that
// Kubernetes omits when empty may be absent but never `null` or of another type.

/// The only AdmissionReview version the shipped configuration asks for.
pub const ADMISSION_REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// `Some` only when present and of type `T` (`null` is refused, absence is `None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `{group, version, kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// `{group, version, resource}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupVersionResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// The operation under review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(default, deserialize_with = "present")]
    pub groups: Option<Vec<String>>,
}

/// The `request` member of an AdmissionReview v1, as far as the decision reads it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    #[serde(default, deserialize_with = "present")]
    pub sub_resource: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub namespace: Option<String>,
    pub operation: Operation,
    pub user_info: UserInfo,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionReviewIn {
    api_version: String,
    kind: String,
    request: AdmissionRequest,
}

/// The metadata the decision reads from `object` / `oldObject`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaIn {
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "present")]
    deletion_timestamp: Option<String>,
}

#[derive(Deserialize)]
struct ObjectIn {
    #[serde(default, deserialize_with = "present")]
    metadata: Option<MetaIn>,
}

/// The metadata of an object of the review (`None` when the object is absent or `null`).
fn meta_of(v: Option<&Value>, which: &str) -> Result<Option<MetaIn>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value::<ObjectIn>(v.clone())
            .map(|o| Some(o.metadata.unwrap_or_default()))
            .map_err(|e| format!("`{which}` is not a Kubernetes object: {e}")),
    }
}

/// A review read from the wire: the `uid` to answer with (empty when it could not be read) and
/// the typed request, or why it is refused.
#[derive(Debug, Clone)]
pub struct ParsedReview {
    pub uid: String,
    pub request: Result<AdmissionRequest, String>,
}

/// Read an AdmissionReview through `seb_core::json` (at most `limit` bytes, no duplicate keys,
/// bounded depth) into the typed request. Never panics; anything unexpected is an `Err`.
pub fn parse_review(body: &[u8], limit: usize) -> ParsedReview {
    let value = match seb_core::json::parse_value(body, limit) {
        Ok(v) => v,
        Err(e) => {
            return ParsedReview {
                uid: String::new(),
                request: Err(format!("malformed AdmissionReview: {e}")),
            };
        }
    };
    let uid = value.pointer("/request/uid").and_then(Value::as_str).unwrap_or("").to_owned();
    let request = serde_json::from_value::<AdmissionReviewIn>(value)
        .map_err(|e| format!("malformed AdmissionReview: {e}"))
        .and_then(|r| {
            if r.api_version != ADMISSION_REVIEW_API_VERSION || r.kind != "AdmissionReview" {
                Err(format!(
                    "unsupported review `{} {}` (expected {ADMISSION_REVIEW_API_VERSION} AdmissionReview)",
                    r.api_version, r.kind
                ))
            } else if r.request.uid.is_empty() {
                Err("malformed AdmissionReview: empty uid".into())
            } else {
                Ok(r.request)
            }
        });
    ParsedReview { uid, request }
}

// ---------------------------------------------------------------------------------------
// The decision.

/// Decide an AdmissionRequest: every rule of the module documentation that applies to it.
pub fn decide(
    req: &AdmissionRequest,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
) -> Verdict {
    let (old_meta, new_meta) = match (
        meta_of(req.old_object.as_ref(), "oldObject"),
        meta_of(req.object.as_ref(), "object"),
    ) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return deny(e),
    };
    let username = req.user_info.username.as_str();
    let groups = req.user_info.groups.as_deref().unwrap_or(&[]);
    let operator = policy.is_operator(username, groups);
    let sub = req.sub_resource.as_deref().unwrap_or("");
    let name = match req.name.as_deref() {
        Some(n) if !n.is_empty() => n,
        _ => new_meta.as_ref().and_then(|m| m.name.as_deref()).unwrap_or(""),
    };
    let is_namespace_object =
        req.resource.group.is_empty() && req.resource.resource == "namespaces";

    // 1. A protected namespace, by name (the label may be what the request changes).
    if is_namespace_object && policy.protected_namespaces.contains(name) {
        if operator {
            return allow(format!("the operator path changes protected namespace `{name}`"), None);
        }
        let terminating = old_meta.as_ref().is_some_and(|m| m.deletion_timestamp.is_some());
        if matches!(sub, "finalize" | "status")
            && terminating
            && let Some(why) = policy.is_exempt(username, groups)
        {
            return allow(format!("{why}: finishing the operator's deletion of `{name}`"), None);
        }
        return deny(format!(
            "protected namespace `{name}` cannot be relabelled, changed or deleted but by the operator path"
        ));
    }

    // 2. SEB's own objects (labelled before or after the change).
    let owned = |m: &Option<MetaIn>| {
        m.as_ref()
            .and_then(|m| m.labels.as_ref())
            .is_some_and(|l| l.get(OWNED_LABEL).map(String::as_str) == Some(OWNED_LABEL_VALUE))
    };
    if matches!(req.operation, Operation::Update | Operation::Delete)
        && (owned(&old_meta) || owned(&new_meta))
        && !operator
    {
        return deny(format!(
            "{} of SEB's own {} `{name}` is reserved to the operator path",
            req.operation.as_str(),
            req.resource.resource
        ));
    }

    // 3. RBAC escalation.
    if req.resource.group == RBAC_GROUP
        && matches!(req.operation, Operation::Create | Operation::Update)
        && !operator
        && let Err(e) = rbac_escalation(&req.resource.resource, req.object.as_ref())
    {
        return deny(format!("{} {} `{name}`: {e}", req.operation.as_str(), req.resource.resource));
    }

    if is_namespace_object {
        return allow(format!("namespace `{name}` is not protected"), None);
    }

    // 4. Workloads in a protected namespace.
    let namespace = req.namespace.as_deref().unwrap_or("");
    if !policy.protected_namespaces.contains(namespace) {
        return allow(format!("namespace `{namespace}` is not protected"), None);
    }
    if let Some(why) = policy.is_exempt(username, groups) {
        return allow(why, None);
    }
    let object = req.object.as_ref().filter(|v| !v.is_null());
    let old = req.old_object.as_ref().filter(|v| !v.is_null());
    if username == policy.broker_username {
        return broker_request(req, policy, live, namespace, name, sub, object);
    }
    let Some(exec) = live.by_identity(username) else {
        return deny(format!(
            "`{username}` is not the identity of a live SEB execution; mutations in `{namespace}` need a certificate"
        ));
    };
    let cid = Some(exec.cid.clone());
    match execution_matches(&exec, req, namespace, name, sub, object.or(old)) {
        Ok(()) => {
            allow(format!("execution `{}` certified {} on this object", exec.cid, exec.op), cid)
        }
        Err(e) => Verdict { allowed: false, reason: format!("execution `{}`: {e}", exec.cid), cid },
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Verbs that write.
pub const WRITE_VERBS: [&str; 6] = ["*", "create", "update", "patch", "delete", "deletecollection"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleIn {
    #[serde(default)]
    verbs: Option<Vec<String>>,
    #[serde(default)]
    api_groups: Option<Vec<String>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleIn {
    #[serde(default)]
    rules: Option<Vec<RuleIn>>,
    #[serde(default, deserialize_with = "present")]
    aggregation_rule: Option<Value>,
}

#[derive(Deserialize)]
struct RoleRefIn {
    kind: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingIn {
    role_ref: RoleRefIn,
}

/// Whether one RBAC rule lets its holder take the operator path: write admission
/// configuration, impersonate users/groups/ServiceAccounts, escalate or bind roles, or approve
/// or sign certificates. `None`: harmless; `Some(why)`.
pub fn rule_grants_operator_power(
    verbs: &[String],
    api_groups: &[String],
    resources: &[String],
) -> Option<&'static str> {
    let any = |set: &[String], f: &dyn Fn(&str) -> bool| set.iter().any(|x| f(x));
    let verb_in = |list: &[&str]| any(verbs, &|v| list.contains(&v));
    let group_in = |list: &[&str]| any(api_groups, &|g| list.contains(&g));
    let res_in = |f: &dyn Fn(&str) -> bool| any(resources, f);
    if group_in(&["*", "admissionregistration.k8s.io"])
        && verb_in(&WRITE_VERBS)
        && res_in(&|r| r == "*" || r.starts_with("validating") || r.starts_with("mutating"))
    {
        return Some("write on admission configuration (webhooks, admission policies)");
    }
    if group_in(&["*", "", "authentication.k8s.io"])
        && verb_in(&["*", "impersonate"])
        && res_in(&|r| {
            ["*", "users", "groups", "serviceaccounts", "uids"].contains(&r)
                || r.starts_with("userextras")
        })
    {
        return Some("impersonation");
    }
    if group_in(&["*", RBAC_GROUP])
        && verb_in(&["*", "escalate", "bind"])
        && res_in(&|r| ["*", "roles", "clusterroles"].contains(&r))
    {
        return Some("escalate or bind on roles");
    }
    if group_in(&["*", "certificates.k8s.io"])
        && verb_in(&["*", "approve", "sign"])
        && res_in(&|r| ["*", "signers"].contains(&r))
    {
        return Some("approve or sign certificates");
    }
    None
}

/// Whether a binding's role reference is reserved to the operator path: `cluster-admin`, any
/// `system:` ClusterRole, or one of SEB's own roles.
pub fn role_ref_reserved(kind: &str, name: &str) -> bool {
    (kind == "ClusterRole" && (name == "cluster-admin" || name.starts_with("system:")))
        || SEB_ROLE_NAMES.contains(&name)
}

/// Rule 3: `Err(why)` when an RBAC object of `resource` (roles, clusterroles, rolebindings,
/// clusterrolebindings) written by a non-operator would hand out the operator path. Other
/// resources of the group pass; an object that does not parse is refused.
pub fn rbac_escalation(resource: &str, object: Option<&Value>) -> Result<(), String> {
    let Some(object) = object.filter(|v| !v.is_null()) else {
        return Err("the request carries no object".into());
    };
    let shape = |e: serde_json::Error| format!("not a valid {resource} object: {e}");
    match resource {
        "roles" | "clusterroles" => {
            let role: RoleIn = serde_json::from_value(object.clone()).map_err(shape)?;
            if role.aggregation_rule.is_some() {
                return Err("an aggregationRule is reserved to the operator path".into());
            }
            for r in role.rules.unwrap_or_default() {
                let (v, g, res) = (
                    r.verbs.unwrap_or_default(),
                    r.api_groups.unwrap_or_default(),
                    r.resources.unwrap_or_default(),
                );
                if let Some(why) = rule_grants_operator_power(&v, &g, &res) {
                    return Err(format!("grants {why}, which is reserved to the operator path"));
                }
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            let b: BindingIn = serde_json::from_value(object.clone()).map_err(shape)?;
            if role_ref_reserved(&b.role_ref.kind, &b.role_ref.name) {
                return Err(format!(
                    "binding {} `{}` is reserved to the operator path",
                    b.role_ref.kind, b.role_ref.name
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn execution_matches(
    exec: &Execution,
    req: &AdmissionRequest,
    namespace: &str,
    name: &str,
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
        Op::Create => Operation::Create,
        Op::Apply if exec.observed_version.is_none() => Operation::Create,
        Op::Replace | Op::MergePatch | Op::JsonPatch | Op::Apply | Op::Scale => Operation::Update,
        Op::Delete => Operation::Delete,
    };
    if req.operation != expected_op {
        return Err(format!(
            "certified {op} ({}), not {}",
            expected_op.as_str(),
            req.operation.as_str()
        ));
    }
    if op == Op::Scale {
        if sub != "scale" {
            return Err(format!("certified scale, not subresource `{sub}`"));
        }
        // The resource plural is not in the certificate; RBAC already pins the identity to
        // `<plural>/scale` of this object, so the group is what is left to compare.
        if req.resource.group != t.group() {
            return Err(format!(
                "scale of group `{}`, certified `{}`",
                req.resource.group,
                t.group()
            ));
        }
    } else if !sub.is_empty() {
        return Err(format!("certified {op}, not subresource `{sub}`"));
    } else if req.kind.group != t.group() || req.kind.kind != t.kind {
        return Err(format!(
            "object is {}/{}, certified {}/{}",
            req.kind.group,
            req.kind.kind,
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

fn broker_request(
    req: &AdmissionRequest,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
    namespace: &str,
    name: &str,
    sub: &str,
    object: Option<&Value>,
) -> Verdict {
    let resource = req.resource.resource.as_str();
    let operation = req.operation.as_str();
    if req.resource.group != RBAC_GROUP
        || !matches!(resource, "roles" | "rolebindings")
        || !sub.is_empty()
        || !name.starts_with("seb-exec-")
    {
        return deny(format!(
            "the broker `{}` may only manage execution grants here, not {operation} {resource} `{name}`",
            policy.broker_username
        ));
    }
    if req.operation == Operation::Delete {
        // Retiring a grant is always allowed, even after the execution stopped being live.
        return allow("the broker retires an execution grant", None);
    }
    if req.operation != Operation::Create {
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

/// Answer a parsed review: an AdmissionReview `admission.k8s.io/v1` (never the version the
/// input claimed) carrying the request's `uid`, `allowed`, and for a denial a 403 status with
/// the reason. A review that did not parse is denied.
pub fn answer(
    parsed: &ParsedReview,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
) -> (Value, Verdict) {
    let verdict = match &parsed.request {
        Ok(r) => decide(r, policy, live),
        Err(e) => deny(e.clone()),
    };
    let mut response = json!({"uid": parsed.uid, "allowed": verdict.allowed});
    if let Value::Object(m) = &mut response {
        if !verdict.allowed {
            m.insert("status".into(), json!({"code": 403, "reason": "Forbidden", "message": format!("seb: {}", verdict.reason)}));
        }
        if let Some(cid) = &verdict.cid {
            m.insert("auditAnnotations".into(), json!({"cid": cid}));
        }
    }
    let out = json!({"apiVersion": ADMISSION_REVIEW_API_VERSION, "kind": "AdmissionReview", "response": response});
    (out, verdict)
}

/// [`parse_review`] then [`answer`]: the AdmissionReview for an untrusted body.
pub fn review(
    body: &[u8],
    limit: usize,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
) -> Value {
    answer(&parse_review(body, limit), policy, live).0
}

/// [`review`] as bytes, for an HTTP handler: at most `limit` bytes of JSON in, JSON out.
pub fn review_bytes(
    body: &[u8],
    limit: usize,
    policy: &WebhookPolicy,
    live: &dyn LiveExecutions,
) -> Vec<u8> {
    serde_json::to_vec(&review(body, limit, policy, live)).unwrap_or_default()
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

    /// Decide a request given as JSON (typed first, as the handler does).
    fn d(v: &Value, p: &WebhookPolicy, l: &dyn LiveExecutions) -> Verdict {
        let body = json!({"apiVersion": ADMISSION_REVIEW_API_VERSION, "kind": "AdmissionReview", "request": v});
        answer(&parse_review(body.to_string().as_bytes(), MAX_REVIEW_BYTES), p, l).1
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
        assert!(d(&req(SA, "UPDATE", "scale", json!({"spec":{"replicas":4}})), &p, &l).allowed);
        let over = d(&req(SA, "UPDATE", "scale", json!({"spec":{"replicas":9}})), &p, &l);
        assert!(!over.allowed && over.reason.contains("maximum"), "{}", over.reason);
        assert!(
            !d(&req(SA, "UPDATE", "", json!({"spec":{"replicas":4}})), &p, &l).allowed,
            "main resource, not scale"
        );
        assert!(!d(&req(SA, "DELETE", "", json!(null)), &p, &l).allowed);
        let mut admin = req("admin", "DELETE", "", Value::Null);
        admin["userInfo"]["groups"] = json!(["system:masters"]);
        assert!(!d(&admin, &p, &l).allowed, "system:masters is denied");
        let mut other = req(SA, "UPDATE", "scale", json!({"spec":{"replicas":4}}));
        other["name"] = json!("api");
        assert!(!d(&other, &p, &l).allowed, "another object");
        let mut elsewhere = req("intruder", "CREATE", "", json!({}));
        elsewhere["namespace"] = json!("dev");
        assert!(d(&elsewhere, &p, &l).allowed, "unprotected namespaces are not guarded");
        let mut node = req("system:node:n1", "UPDATE", "", json!({}));
        node["userInfo"]["groups"] = json!(["system:nodes"]);
        assert!(d(&node, &p, &l).allowed);
        assert!(!d(&node, &p.clone().strict(), &l).allowed);
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
        assert!(d(&req(SA, "UPDATE", "", obj("registry.local/web:3")), &policy(), &l).allowed);
        assert!(!d(&req(SA, "UPDATE", "", obj("evil.example/web:3")), &policy(), &l).allowed);
        let del = live(exec("delete", json!({}), vec![]));
        let mut r = req(SA, "DELETE", "", Value::Null);
        r["oldObject"] = json!({"metadata":{"name":"web"}});
        assert!(d(&r, &policy(), &del).allowed);
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
        assert!(d(&mk("roles", rbac::role(name, "prod", &e.cid, &g)), &policy(), &l).allowed);
        let wider =
            rbac::role(name, "prod", &e.cid, &rbac::grant(Op::Delete, &t, "deployments", true));
        assert!(!d(&mk("roles", wider), &policy(), &l).allowed);
        let rb = rbac::role_binding(name, "prod", "seb-exec", &e.cid);
        assert!(d(&mk("rolebindings", rb.clone()), &policy(), &l).allowed);
        let mut rb2 = rb;
        rb2["subjects"][0]["name"] = json!("someone");
        assert!(!d(&mk("rolebindings", rb2), &policy(), &l).allowed);
        let mut cm = mk("configmaps", json!({}));
        cm["resource"]["group"] = json!("");
        assert!(!d(&cm, &policy(), &l).allowed, "the broker cannot mutate objects itself");
    }

    fn review_of(body: &[u8]) -> Value {
        review(body, 64 * 1024, &policy(), &Live(HashMap::new()))
    }

    #[test]
    fn review_wraps_the_verdict() {
        let body = json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":req("x","UPDATE","",json!({}))});
        let out = review_of(body.to_string().as_bytes());
        assert_eq!(out["apiVersion"], ADMISSION_REVIEW_API_VERSION);
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        let bad: Value = serde_json::from_slice(&review_bytes(
            b"{not json",
            100,
            &policy(),
            &Live(HashMap::new()),
        ))
        .unwrap();
        assert_eq!(bad["response"]["allowed"], false);
    }

    /// A request the webhook allows as written (an unprotected namespace): every malformed
    /// variant of it must be denied, with a well-formed v1 response and no panic.
    fn allowed_elsewhere() -> Value {
        let mut r = req("intruder", "UPDATE", "", json!({"metadata": {"name": "web"}}));
        r["namespace"] = json!("dev");
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": r})
    }

    #[test]
    fn malformed_reviews_are_denied_never_allowed() {
        let ok = review_of(allowed_elsewhere().to_string().as_bytes());
        assert_eq!(ok["response"]["allowed"], true, "{ok}");
        type Edit = fn(&mut Value);
        let cases: Vec<(&str, Edit)> = vec![
            ("namespace 5", |v| v["request"]["namespace"] = json!(5)),
            ("namespace [shop]", |v| v["request"]["namespace"] = json!(["shop"])),
            ("namespace null", |v| v["request"]["namespace"] = Value::Null),
            ("name 5", |v| v["request"]["name"] = json!(5)),
            ("uid missing", |v| {
                v["request"].as_object_mut().unwrap().remove("uid");
            }),
            ("uid empty", |v| v["request"]["uid"] = json!("")),
            ("uid 7", |v| v["request"]["uid"] = json!(7)),
            ("kind wrong", |v| v["kind"] = json!("AdmissionResponse")),
            ("apiVersion v1beta1", |v| v["apiVersion"] = json!("admission.k8s.io/v1beta1")),
            ("apiVersion missing", |v| {
                v.as_object_mut().unwrap().remove("apiVersion");
            }),
            ("request null", |v| v["request"] = Value::Null),
            ("operation PATCH", |v| v["request"]["operation"] = json!("PATCH")),
            ("userInfo missing", |v| {
                v["request"].as_object_mut().unwrap().remove("userInfo");
            }),
            ("groups 5", |v| v["request"]["userInfo"]["groups"] = json!(5)),
            ("groups null", |v| v["request"]["userInfo"]["groups"] = Value::Null),
            ("resource missing", |v| {
                v["request"].as_object_mut().unwrap().remove("resource");
            }),
            ("resource group 5", |v| v["request"]["resource"]["group"] = json!(5)),
            ("labels wrong type", |v| v["request"]["object"]["metadata"]["labels"] = json!([1])),
            ("metadata null", |v| v["request"]["object"]["metadata"] = Value::Null),
        ];
        for (what, edit) in cases {
            let mut v = allowed_elsewhere();
            edit(&mut v);
            let out = review_of(v.to_string().as_bytes());
            assert_eq!(out["response"]["allowed"], false, "{what}: {out}");
            assert_eq!(out["apiVersion"], ADMISSION_REVIEW_API_VERSION, "{what}");
            assert_eq!(out["kind"], "AdmissionReview", "{what}");
            assert!(out["response"]["uid"].is_string(), "{what}");
            assert_eq!(out["response"]["status"]["code"], 403, "{what}");
        }
        // A Namespace DELETE naming the protected namespace with a number is denied too.
        let mut ns =
            namespace_req("intruder", "DELETE", "", json!({"seb.io/protected": "true"}), None);
        ns["request"]["name"] = json!(5);
        assert_eq!(review_of(ns.to_string().as_bytes())["response"]["allowed"], false);
        // Bytes: oversize, deep nesting, duplicate keys, not JSON, empty.
        let text = allowed_elsewhere().to_string();
        let big = format!("{}{}", text, " ".repeat(64 * 1024));
        let deep = format!(
            "{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        let dup = text.replacen(
            "\"kind\":\"AdmissionReview\"",
            "\"kind\":\"AdmissionReview\",\"kind\":\"AdmissionReview\"",
            1,
        );
        assert_ne!(dup, text);
        for (what, body) in [
            ("oversize", big.as_bytes()),
            ("deep", deep.as_bytes()),
            ("duplicate key", dup.as_bytes()),
            ("not json", b"\xff\x00".as_slice()),
            ("empty", b"".as_slice()),
        ] {
            let out = review_of(body);
            assert_eq!(out["response"]["allowed"], false, "{what}: {out}");
            assert_eq!(out["apiVersion"], ADMISSION_REVIEW_API_VERSION, "{what}");
        }
    }

    fn namespace_req(
        user: &str,
        op: &str,
        sub: &str,
        old_labels: Value,
        new_labels: Option<Value>,
    ) -> Value {
        let object = match new_labels {
            Some(l) => json!({"metadata": {"name": "prod", "labels": l}}),
            None => Value::Null,
        };
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-ns", "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"}, "subResource": sub,
            "name": "prod", "namespace": "prod", "operation": op,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object, "oldObject": {"metadata": {"name": "prod", "labels": old_labels}}}})
    }

    fn allowed(v: &Value) -> bool {
        review_of(v.to_string().as_bytes())["response"]["allowed"] == true
    }

    #[test]
    fn a_protected_namespace_is_decided_by_name_and_only_the_operator_changes_it() {
        let on = json!({"seb.io/protected": "true"});
        // Relabel, unlabel, any other change, delete: denied to a non-operator.
        for (op, new) in [
            ("UPDATE", Some(json!({"seb.io/protected": "false"}))),
            ("UPDATE", Some(json!({}))),
            ("UPDATE", Some(json!({"seb.io/protected": "true", "team": "x"}))),
            ("DELETE", None),
        ] {
            assert!(
                !allowed(&namespace_req("cadmin", op, "", on.clone(), new.clone())),
                "{op} {new:?}"
            );
        }
        // Even when the old object no longer carries the label (decided by name).
        assert!(!allowed(&namespace_req("cadmin", "UPDATE", "", json!({}), Some(json!({})))));
        // Control-plane exemptions do not extend to the protected set...
        let sa = "system:serviceaccount:kube-system:namespace-controller";
        assert!(!allowed(&namespace_req(sa, "UPDATE", "", on.clone(), Some(json!({})))));
        assert!(!allowed(&namespace_req(sa, "UPDATE", "finalize", on.clone(), Some(on.clone()))));
        // ...except to finish a deletion the operator started.
        let mut terminating = namespace_req(sa, "UPDATE", "finalize", on.clone(), Some(on.clone()));
        terminating["request"]["oldObject"]["metadata"]["deletionTimestamp"] =
            json!("2026-01-01T00:00:00Z");
        assert!(allowed(&terminating));
        terminating["request"]["userInfo"]["username"] = json!("cadmin");
        assert!(!allowed(&terminating));
        // The operator path may.
        let mut op = namespace_req("admin", "UPDATE", "", on.clone(), Some(json!({})));
        op["request"]["userInfo"]["groups"] = json!(["system:masters", "system:authenticated"]);
        assert!(allowed(&op));
        let mut user_op = WebhookPolicy::new(["prod"], "broker", "seb-exec");
        user_op.operator_usernames.insert("cadmin".into());
        let r: AdmissionRequest = serde_json::from_value(
            namespace_req("cadmin", "DELETE", "", on.clone(), None)["request"].clone(),
        )
        .unwrap();
        assert!(decide(&r, &user_op, &Live(HashMap::new())).allowed);
        // Another namespace, labelled or not, is not guarded.
        let mut dev = namespace_req("cadmin", "UPDATE", "", on, Some(json!({})));
        dev["request"]["name"] = json!("dev");
        assert!(allowed(&dev));
    }

    fn rbac_req(
        user: &str,
        groups: Value,
        op: &str,
        resource: &str,
        object: Value,
        old: Value,
    ) -> Value {
        let kind = match resource {
            "roles" => "Role",
            "clusterroles" => "ClusterRole",
            "rolebindings" => "RoleBinding",
            _ => "ClusterRoleBinding",
        };
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-rbac", "kind": {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": kind},
            "resource": {"group": "rbac.authorization.k8s.io", "version": "v1", "resource": resource},
            "name": "x", "operation": op, "userInfo": {"username": user, "groups": groups},
            "object": object, "oldObject": old}})
    }

    #[test]
    fn seb_objects_are_changed_only_by_the_operator() {
        let seb = json!({"metadata": {"name": "seb-broker-grants", "labels": {"app.kubernetes.io/name": "seb"}}, "rules": []});
        let stripped =
            json!({"metadata": {"name": "seb-broker-grants", "labels": {}}, "rules": []});
        let users = json!(["system:authenticated"]);
        for (op, new, old) in [
            ("UPDATE", stripped.clone(), seb.clone()),
            ("UPDATE", seb.clone(), stripped.clone()),
            ("DELETE", Value::Null, seb.clone()),
        ] {
            assert!(
                !allowed(&rbac_req(
                    "cadmin",
                    users.clone(),
                    op,
                    "clusterroles",
                    new.clone(),
                    old.clone()
                )),
                "{op}"
            );
            assert!(
                !allowed(&rbac_req(
                    "system:serviceaccount:kube-system:gc",
                    users.clone(),
                    op,
                    "clusterroles",
                    new.clone(),
                    old.clone()
                )),
                "exempt {op}"
            );
            assert!(
                allowed(&rbac_req(
                    "admin",
                    json!(["system:masters"]),
                    op,
                    "clusterroles",
                    new,
                    old
                )),
                "operator {op}"
            );
        }
    }

    #[test]
    fn rbac_that_would_hand_out_the_operator_path_is_refused_to_non_operators() {
        let role = |rules: Value| json!({"metadata": {"name": "r"}, "rules": rules});
        let refused = [
            json!([{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"], "verbs": ["delete"]}]),
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            json!([{"apiGroups": ["*"], "resources": ["mutatingwebhookconfigurations"], "verbs": ["patch"]}]),
            json!([{"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"]}]),
            json!([{"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/scopes"], "verbs": ["impersonate"]}]),
            json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["escalate"]}]),
            json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["*"], "verbs": ["bind"]}]),
            json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"]}]),
            json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}, {"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}]),
        ];
        let users = json!(["system:authenticated"]);
        for rules in refused {
            for res in ["roles", "clusterroles"] {
                for op in ["CREATE", "UPDATE"] {
                    let r = rbac_req(
                        "cadmin",
                        users.clone(),
                        op,
                        res,
                        role(rules.clone()),
                        Value::Null,
                    );
                    assert!(!allowed(&r), "{res} {op} {rules}");
                    let r = rbac_req(
                        "admin",
                        json!(["system:masters"]),
                        op,
                        res,
                        role(rules.clone()),
                        Value::Null,
                    );
                    assert!(allowed(&r), "operator {res} {op} {rules}");
                }
            }
        }
        for rules in [
            json!([{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}]),
            json!([{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]),
            json!([{"apiGroups": ["*"], "resources": ["configmaps"], "verbs": ["*"]}]),
            json!([{"nonResourceURLs": ["*"], "verbs": ["get"]}]),
            Value::Null,
        ] {
            assert!(
                allowed(&rbac_req(
                    "cadmin",
                    users.clone(),
                    "CREATE",
                    "clusterroles",
                    role(rules.clone()),
                    Value::Null
                )),
                "{rules}"
            );
        }
        let mut agg = role(json!([]));
        agg["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}]});
        assert!(!allowed(&rbac_req(
            "cadmin",
            users.clone(),
            "CREATE",
            "clusterroles",
            agg,
            Value::Null
        )));
        assert!(
            !allowed(&rbac_req(
                "cadmin",
                users.clone(),
                "CREATE",
                "clusterroles",
                role(json!([{"verbs": 5}])),
                Value::Null
            )),
            "wrong type"
        );
        let binding = |kind: &str, name: &str| json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}, "subjects": [{"kind": "User", "name": "cadmin"}]});
        for (kind, name) in [
            ("ClusterRole", "cluster-admin"),
            ("ClusterRole", "system:controller:clusterrole-aggregation-controller"),
            ("ClusterRole", "seb-broker-grants"),
            ("ClusterRole", "seb-cluster-admin"),
            ("Role", "seb-broker-identities"),
        ] {
            for res in ["rolebindings", "clusterrolebindings"] {
                assert!(
                    !allowed(&rbac_req(
                        "cadmin",
                        users.clone(),
                        "CREATE",
                        res,
                        binding(kind, name),
                        Value::Null
                    )),
                    "{res} {name}"
                );
                assert!(allowed(&rbac_req(
                    "admin",
                    json!(["system:masters"]),
                    "CREATE",
                    res,
                    binding(kind, name),
                    Value::Null
                )));
            }
        }
        for (kind, name) in
            [("ClusterRole", "edit"), ("ClusterRole", "view"), ("Role", "seb-exec-1234")]
        {
            assert!(
                allowed(&rbac_req(
                    "cadmin",
                    users.clone(),
                    "CREATE",
                    "rolebindings",
                    binding(kind, name),
                    Value::Null
                )),
                "{name}"
            );
        }
        assert!(!allowed(&rbac_req(
            "cadmin",
            users,
            "CREATE",
            "rolebindings",
            json!({"roleRef": 5}),
            Value::Null
        )));
    }
}
