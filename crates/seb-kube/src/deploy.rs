//! The manifests `seb deploy kubernetes` prints or applies (spec section 9): namespaces, the
//! broker's minimum RBAC, the agents' read-only RBAC, the ValidatingWebhookConfiguration
//! (failurePolicy Fail) and, for clusters ≥ 1.30, a ValidatingAdmissionPolicy with its binding.
//! Pure: the objects are built as JSON and printed as YAML.

use base64::Engine as _;
use serde_json::{Value, json};

/// The label that marks a namespace as protected (selected by the webhook and the policy).
/// Kubernetes before 1.21 has no `kubernetes.io/metadata.name` label, so a label of our own.
pub const PROTECTED_LABEL: &str = "seb.io/protected";

/// The label (and value) on every object SEB's manifests create: SEB's own objects, which only
/// the operator path may change or delete (the `owned.seb.io` webhook selects them by it).
pub const OWNED_LABEL: &str = "app.kubernetes.io/name";
pub const OWNED_LABEL_VALUE: &str = "seb";

/// SEB's ClusterRoles and Roles: binding them is reserved to the operator path.
pub const SEB_ROLE_NAMES: [&str; 5] =
    [BROKER_GRANTS, BROKER_OBSERVE, BROKER_IDENTITIES, AGENT_READ, CLUSTER_ADMIN];

/// The ClusterRole for day-to-day cluster administrators who are not the operator path.
pub const CLUSTER_ADMIN: &str = "seb-cluster-admin";

/// The API groups of a current Kubernetes release: what [`DeployConfig::new`] puts into
/// `seb-cluster-admin` until discovery (`seb deploy kubernetes --apply`) replaces them with the
/// groups the cluster serves.
pub const BUILTIN_API_GROUPS: [&str; 20] = [
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
];

/// The path of the admission endpoint on the broker.
pub const ADMISSION_PATH: &str = "/v1/kubernetes/admission-review";

/// A subject of a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A ServiceAccount.
    ServiceAccount { namespace: String, name: String },
    /// A user (static token, OIDC, client certificate…).
    User(String),
    /// A group.
    Group(String),
}

impl Subject {
    fn to_value(&self) -> Value {
        match self {
            Subject::ServiceAccount { namespace, name } => {
                json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
            }
            Subject::User(n) => {
                json!({"kind": "User", "name": n, "apiGroup": "rbac.authorization.k8s.io"})
            }
            Subject::Group(n) => {
                json!({"kind": "Group", "name": n, "apiGroup": "rbac.authorization.k8s.io"})
            }
        }
    }

    /// The username the API server sees (for users and ServiceAccounts).
    pub fn username(&self) -> Option<String> {
        match self {
            Subject::ServiceAccount { namespace, name } => {
                Some(format!("system:serviceaccount:{namespace}:{name}"))
            }
            Subject::User(n) => Some(n.clone()),
            Subject::Group(_) => None,
        }
    }
}

/// Where the API server reaches the broker's admission endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEndpoint {
    /// A Service in the cluster (the usual deployment).
    Service { namespace: String, name: String, port: u16 },
    /// A URL (a broker outside the cluster; must be https).
    Url(String),
}

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// The broker's namespace (its ServiceAccount, Service and Deployment live there).
    pub broker_namespace: String,
    /// Who the broker is. Default: the ServiceAccount `seb-broker` in `broker_namespace`.
    pub broker: Subject,
    /// Where execution ServiceAccounts are created.
    pub exec_namespace: String,
    /// Namespaces guarded by the webhook and the policy.
    pub protected_namespaces: Vec<String>,
    /// Further namespaces the broker may act in without admission protection (the scope check
    /// then refuses `create` and constraints there).
    pub unprotected_namespaces: Vec<String>,
    /// Who the agents are (read-only in every managed namespace).
    pub agents: Vec<Subject>,
    /// The admission endpoint.
    pub webhook: WebhookEndpoint,
    /// PEM of the CA that signed the broker's serving certificate (the webhook's caBundle).
    pub ca_bundle_pem: String,
    /// Webhook timeout (1..=30 s).
    pub timeout_seconds: u8,
    /// Identities always allowed in protected namespaces (see `webhook::WebhookPolicy`).
    pub exempt_usernames: Vec<String>,
    pub exempt_username_prefixes: Vec<String>,
    pub exempt_groups: Vec<String>,
    /// Emit the Namespace objects (with the protection label).
    pub emit_namespaces: bool,
    /// Emit the ValidatingAdmissionPolicy and its binding (clusters ≥ 1.30).
    pub emit_admission_policy: bool,
    /// Run the broker in the cluster: its Deployment and Service (and, for one replica, the
    /// volume of its SQLite store). `None`: the broker runs elsewhere.
    pub broker_workload: Option<BrokerWorkload>,
    /// The operator path (see `webhook::WebhookPolicy::operator_groups`).
    pub operator_groups: Vec<String>,
    pub operator_usernames: Vec<String>,
    /// Day-to-day cluster administrators, bound to `seb-cluster-admin`.
    pub cluster_admins: Vec<Subject>,
    /// The API groups `seb-cluster-admin` covers (from discovery when applied).
    pub cluster_admin_api_groups: Vec<String>,
}

/// The broker's own Deployment in `broker_namespace` under its ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerWorkload {
    /// The container image (built from the repository's `deploy/Containerfile`).
    pub image: String,
    /// Replicas. One runs on SQLite in a PersistentVolumeClaim and is replaced with the
    /// `Recreate` strategy (never two writers); more need a `postgres://` store.
    pub replicas: u16,
    /// The Secret mounted at `/etc/seb` holding `seb.toml`, the broker key and its serving
    /// certificate (created by the operator; the manifests never carry secrets).
    pub secret: String,
    /// The size of the SQLite volume (one replica).
    pub storage: String,
}

impl BrokerWorkload {
    /// One replica of `image` with the Secret `seb-broker` and a 10 GiB volume.
    pub fn new(image: &str) -> Self {
        Self {
            image: image.to_owned(),
            replicas: 1,
            secret: "seb-broker".into(),
            storage: "10Gi".into(),
        }
    }
}

/// The broker's Deployment name (also its Service, Secret and volume claim by default).
pub const BROKER_WORKLOAD: &str = "seb-broker";
/// Where the broker's container finds its configuration.
pub const BROKER_CONFIG_DIR: &str = "/etc/seb";
/// Where it keeps its SQLite store (one replica, a volume claim) and its spool (every
/// replica; an `emptyDir` with several).
pub const BROKER_DATA_DIR: &str = "/var/lib/seb";
/// The port the broker serves its API and the webhook on, in the container and the Service.
pub const BROKER_PORT: u16 = 8443;

impl DeployConfig {
    /// Defaults: broker `seb-system/seb-broker`, executions in `seb-exec`, agents the group
    /// `seb:agents`, the webhook at the Service `seb-system/seb-broker:8443`, the control-plane
    /// exemptions of `WebhookPolicy::new`.
    pub fn new(protected_namespaces: Vec<String>, ca_bundle_pem: String) -> Self {
        Self {
            broker_namespace: "seb-system".into(),
            broker: Subject::ServiceAccount {
                namespace: "seb-system".into(),
                name: "seb-broker".into(),
            },
            exec_namespace: "seb-exec".into(),
            protected_namespaces,
            unprotected_namespaces: Vec::new(),
            agents: vec![Subject::Group("seb:agents".into())],
            webhook: WebhookEndpoint::Service {
                namespace: "seb-system".into(),
                name: "seb-broker".into(),
                port: 8443,
            },
            ca_bundle_pem,
            timeout_seconds: 10,
            exempt_usernames: vec![
                "system:kube-controller-manager".into(),
                "system:kube-scheduler".into(),
            ],
            exempt_username_prefixes: vec!["system:serviceaccount:kube-system:".into()],
            exempt_groups: vec!["system:nodes".into()],
            emit_namespaces: true,
            emit_admission_policy: true,
            broker_workload: None,
            operator_groups: vec![crate::webhook::DEFAULT_OPERATOR_GROUP.into()],
            operator_usernames: Vec::new(),
            cluster_admins: Vec::new(),
            cluster_admin_api_groups: BUILTIN_API_GROUPS.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// The webhook policy the broker must serve with, consistent with these manifests.
    pub fn webhook_policy(&self) -> crate::webhook::WebhookPolicy {
        crate::webhook::WebhookPolicy {
            protected_namespaces: self.protected_namespaces.iter().cloned().collect(),
            broker_username: self.broker.username().unwrap_or_default(),
            exec_namespace: self.exec_namespace.clone(),
            exempt_usernames: self.exempt_usernames.iter().cloned().collect(),
            exempt_username_prefixes: self.exempt_username_prefixes.clone(),
            exempt_groups: self.exempt_groups.iter().cloned().collect(),
            operator_groups: self.operator_groups.iter().cloned().collect(),
            operator_usernames: self.operator_usernames.iter().cloned().collect(),
        }
    }

    fn managed(&self) -> impl Iterator<Item = &String> {
        self.protected_namespaces.iter().chain(self.unprotected_namespaces.iter())
    }
}

const BROKER_GRANTS: &str = "seb-broker-grants";
const BROKER_OBSERVE: &str = "seb-broker-observe";
const BROKER_IDENTITIES: &str = "seb-broker-identities";
const AGENT_READ: &str = "seb-agent-read";

fn labels() -> Value {
    json!({OWNED_LABEL: OWNED_LABEL_VALUE, "app.kubernetes.io/component": "broker"})
}

/// The verbs `seb-cluster-admin` holds: every standard verb, none of the privileged ones
/// (`impersonate`, `escalate`, `bind`, `approve`, `sign`), no `*`.
pub const CLUSTER_ADMIN_VERBS: [&str; 8] =
    ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/// `seb-cluster-admin`: full rights on every API group in `api_groups` (those a cluster
/// serves, from discovery) but read-only on `admissionregistration.k8s.io`, and no privileged
/// verb; RBAC's own escalation check then keeps its holders from creating or binding a role
/// with more (webhook write, `cluster-admin`). A group added later (a new CRD group) is not
/// covered until `seb deploy kubernetes --apply` runs again.
pub fn cluster_admin_role(api_groups: &[String]) -> Value {
    let mut groups: Vec<&str> = api_groups
        .iter()
        .map(String::as_str)
        .filter(|g| *g != "admissionregistration.k8s.io" && *g != "*")
        .collect();
    groups.sort_unstable();
    groups.dedup();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": CLUSTER_ADMIN, "labels": labels()},
        "rules": [
            {"apiGroups": groups, "resources": ["*"], "verbs": CLUSTER_ADMIN_VERBS},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
            {"nonResourceURLs": ["*"], "verbs": ["get"]},
        ],
    })
}

fn role_binding(name: &str, ns: &str, role_kind: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns, "labels": labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    })
}

/// Every object, in apply order.
pub fn objects(cfg: &DeployConfig) -> Vec<Value> {
    let mut out = Vec::new();
    let broker = cfg.broker.to_value();
    if cfg.emit_namespaces {
        out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.broker_namespace, "labels": labels()}}));
        if cfg.exec_namespace != cfg.broker_namespace {
            out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.exec_namespace, "labels": labels()}}));
        }
        for ns in &cfg.protected_namespaces {
            out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {PROTECTED_LABEL: "true"}}}));
        }
    }
    if let Subject::ServiceAccount { namespace, name } = &cfg.broker {
        out.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace, "labels": labels()}}));
    }
    // 1. Execution identities: only in the execution namespace; no get/list (the broker never
    //    needs to read them), no update (nothing to change).
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": BROKER_IDENTITIES, "namespace": cfg.exec_namespace, "labels": labels()},
        "rules": [
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create", "delete"]},
            {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        ],
    }));
    out.push(role_binding(
        BROKER_IDENTITIES,
        &cfg.exec_namespace,
        "Role",
        BROKER_IDENTITIES,
        vec![broker.clone()],
    ));
    // 2. Per-execution grants: create/delete Roles and RoleBindings. `escalate` and `bind`
    //    let the broker write a Role it does not itself hold (it holds no mutating verb on
    //    workload objects); the admission webhook holds every such Role to the exact grant of
    //    a live execution. Bound per managed namespace, so it is namespaced power only.
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": BROKER_GRANTS, "labels": labels()},
        "rules": [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create", "delete", "escalate", "bind"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create", "delete"]},
        ],
    }));
    // 3. Observation (drift check, evidence, reconcile): `get` only.
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": BROKER_OBSERVE, "labels": labels()},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}],
    }));
    // 4. Agents: read-only, secrets excluded (RBAC has no deny, so the readable kinds are listed).
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": AGENT_READ, "labels": labels()},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps", "services", "endpoints", "pods", "pods/log", "serviceaccounts",
                "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "events", "limitranges", "resourcequotas"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps", "batch", "autoscaling", "policy", "networking.k8s.io", "discovery.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        ],
    }));
    out.push(cluster_admin_role(&cfg.cluster_admin_api_groups));
    if !cfg.cluster_admins.is_empty() {
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": CLUSTER_ADMIN, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ADMIN},
            "subjects": cfg.cluster_admins.iter().map(Subject::to_value).collect::<Vec<_>>(),
        }));
    }
    let agents: Vec<Value> = cfg.agents.iter().map(Subject::to_value).collect();
    for ns in cfg.managed() {
        out.push(role_binding(
            BROKER_GRANTS,
            ns,
            "ClusterRole",
            BROKER_GRANTS,
            vec![broker.clone()],
        ));
        out.push(role_binding(
            BROKER_OBSERVE,
            ns,
            "ClusterRole",
            BROKER_OBSERVE,
            vec![broker.clone()],
        ));
        if !agents.is_empty() {
            out.push(role_binding(AGENT_READ, ns, "ClusterRole", AGENT_READ, agents.clone()));
        }
    }
    if let (Some(w), Subject::ServiceAccount { namespace, name }) =
        (&cfg.broker_workload, &cfg.broker)
    {
        out.extend(broker_workload(w, namespace, name));
    }
    out.push(webhook_configuration(cfg));
    if cfg.emit_admission_policy {
        out.extend(admission_policy(cfg));
    }
    out
}

/// The broker's Service, Deployment and (one replica) volume claim. The pod runs as a
/// non-root user with a read-only root filesystem, no capabilities and the runtime's
/// seccomp profile; it reads `seb.toml`, the key and the certificate from the Secret, talks
/// to the API server in-cluster with its ServiceAccount token, and is ready when `/readyz`
/// answers over TLS (store reachable, epochs fresh).
pub fn broker_workload(w: &BrokerWorkload, namespace: &str, service_account: &str) -> Vec<Value> {
    let selector = json!({"app.kubernetes.io/name": BROKER_WORKLOAD});
    let mut pod_labels = labels();
    if let Value::Object(m) = &mut pod_labels {
        m.insert("app.kubernetes.io/name".into(), json!(BROKER_WORKLOAD));
    }
    let single = w.replicas <= 1;
    let mut out = vec![json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": BROKER_WORKLOAD, "namespace": namespace, "labels": labels()},
        "spec": {"selector": selector, "ports": [{"name": "https", "port": BROKER_PORT, "targetPort": BROKER_PORT, "protocol": "TCP"}]},
    })];
    let mut volumes =
        vec![json!({"name": "config", "secret": {"secretName": w.secret, "defaultMode": 0o440}})];
    let mut mounts =
        vec![json!({"name": "config", "mountPath": BROKER_CONFIG_DIR, "readOnly": true})];
    if single {
        out.push(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": format!("{BROKER_WORKLOAD}-data"), "namespace": namespace, "labels": labels()},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": w.storage}}},
        }));
        volumes.push(json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("{BROKER_WORKLOAD}-data")}}));
        mounts.push(json!({"name": "data", "mountPath": BROKER_DATA_DIR}));
    } else {
        // Each replica's spool (`spool_dir = "/var/lib/seb/spool"`): outcomes its store did not
        // take survive a container restart in the pod (the root filesystem is read-only).
        volumes.push(json!({"name": "data", "emptyDir": {}}));
        mounts.push(json!({"name": "data", "mountPath": BROKER_DATA_DIR}));
    }
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": BROKER_PORT, "scheme": "HTTPS"}, "periodSeconds": 5, "failureThreshold": 3});
    out.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": BROKER_WORKLOAD, "namespace": namespace, "labels": labels()},
        "spec": {
            "replicas": w.replicas.max(1),
            // One SQLite writer: the old pod is gone before the new one opens the store.
            "strategy": if single { json!({"type": "Recreate"}) } else { json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}) },
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": service_account,
                    "automountServiceAccountToken": true,
                    "enableServiceLinks": false,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "seb",
                        "image": w.image,
                        "args": ["serve", "--config", format!("{BROKER_CONFIG_DIR}/seb.toml")],
                        "ports": [{"name": "https", "containerPort": BROKER_PORT, "protocol": "TCP"}],
                        "env": [{"name": "SEB_LOG", "value": "info"}],
                        "readinessProbe": probe("/readyz"),
                        "livenessProbe": probe("/healthz"),
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }));
    out
}

/// The ValidatingWebhookConfiguration alone (tests register it on its own).
pub fn webhook_configuration(cfg: &DeployConfig) -> Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(cfg.ca_bundle_pem.as_bytes());
    let client_config = match &cfg.webhook {
        WebhookEndpoint::Service { namespace, name, port } => {
            json!({"service": {"namespace": namespace, "name": name, "port": port, "path": ADMISSION_PATH}, "caBundle": ca})
        }
        WebhookEndpoint::Url(u) => json!({"url": u, "caBundle": ca}),
    };
    let hook = |name: &str, rules: Value, selector: (&str, Value)| {
        json!({
            "name": name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "timeoutSeconds": cfg.timeout_seconds.clamp(1, 30),
            selector.0: selector.1,
            "clientConfig": client_config,
            "rules": rules,
        })
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "seb-broker", "labels": labels()},
        "webhooks": [
            // Workloads: every namespaced object in a namespace labelled protected. The label
            // itself can only be changed by the operator path (next hook).
            hook("objects.seb.io", json!([
                {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["*", "*/scale"], "scope": "Namespaced"},
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CONNECT"], "resources": ["pods/exec", "pods/attach", "pods/portforward"], "scope": "Namespaced"},
            ]), ("namespaceSelector", protected_selector())),
            // The protected namespaces themselves. An objectSelector matches when the old OR the
            // new object carries the label, so relabelling `true` → `false`, removing the label
            // or deleting the namespace all reach the broker, which decides by name. (A
            // namespaceSelector is evaluated against the new labels: a relabel never arrived.)
            hook("namespaces.seb.io", json!([
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE", "DELETE"], "resources": ["namespaces", "namespaces/status", "namespaces/finalize"], "scope": "Cluster"},
            ]), ("objectSelector", protected_selector())),
            // SEB's own objects (RBAC, bindings, ServiceAccount, namespaces, workload).
            hook("owned.seb.io", json!([
                {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["UPDATE", "DELETE"], "resources": ["*"], "scope": "*"},
            ]), ("objectSelector", owned_selector())),
            // RBAC that would hand out the operator path.
            hook("rbac.seb.io", json!([
                {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": ["roles", "clusterroles", "rolebindings", "clusterrolebindings"], "scope": "*"},
            ]), ("objectSelector", json!({}))),
        ],
    })
}

fn protected_selector() -> Value {
    json!({"matchLabels": {PROTECTED_LABEL: "true"}})
}

fn owned_selector() -> Value {
    json!({"matchLabels": {OWNED_LABEL: OWNED_LABEL_VALUE}})
}

fn cel_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn cel_list<S: AsRef<str>>(items: &[S]) -> String {
    let v: Vec<String> = items.iter().map(|s| cel_str(s.as_ref())).collect();
    format!("[{}]", v.join(", "))
}

/// The exempt control-plane identities, as CEL alternatives.
fn cel_exempt(cfg: &DeployConfig) -> Vec<String> {
    let mut alternatives = Vec::new();
    if !cfg.exempt_usernames.is_empty() {
        alternatives
            .push(format!("request.userInfo.username in {}", cel_list(&cfg.exempt_usernames)));
    }
    for p in &cfg.exempt_username_prefixes {
        alternatives.push(format!("request.userInfo.username.startsWith({})", cel_str(p)));
    }
    for g in &cfg.exempt_groups {
        alternatives.push(format!(
            "(has(request.userInfo.groups) && {} in request.userInfo.groups)",
            cel_str(g)
        ));
    }
    alternatives
}

fn or_false(alternatives: Vec<String>) -> String {
    if alternatives.is_empty() {
        "false".into()
    } else {
        format!("({})", alternatives.join(" || "))
    }
}

/// The operator path, as CEL.
pub fn cel_operator(cfg: &DeployConfig) -> String {
    let mut alternatives = Vec::new();
    if !cfg.operator_usernames.is_empty() {
        alternatives
            .push(format!("request.userInfo.username in {}", cel_list(&cfg.operator_usernames)));
    }
    if !cfg.operator_groups.is_empty() {
        alternatives.push(format!(
            "(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in {}))",
            cel_list(&cfg.operator_groups)
        ));
    }
    or_false(alternatives)
}

/// The CEL rule of the workloads policy: the same identities as the webhook's rule 4, without
/// the certificate match (a policy cannot see the broker's live executions; each execution
/// identity's RBAC pins it to one verb on one object, and the webhook checks the rest).
pub fn admission_policy_expression(cfg: &DeployConfig) -> String {
    let mut alternatives = vec![format!(
        "(request.userInfo.username.startsWith({}) && (!has(request.subResource) || request.subResource == '' || request.subResource == 'scale'))",
        cel_str(&format!("system:serviceaccount:{}:seb-exec-", cfg.exec_namespace))
    )];
    if let Some(b) = cfg.broker.username() {
        alternatives.push(format!(
            "(request.userInfo.username == {} && request.resource.group == 'rbac.authorization.k8s.io' && (request.resource.resource == 'roles' || request.resource.resource == 'rolebindings') && request.name.startsWith('seb-exec-'))",
            cel_str(&b)
        ));
    }
    alternatives.extend(cel_exempt(cfg));
    alternatives.join(" || ")
}

/// The CEL rule for the protected namespaces themselves (the webhook's rule 1): the operator
/// path, a namespace that is not protected by name, or a control-plane identity finishing a
/// deletion (`finalize`/`status` of a terminating namespace).
pub fn namespaces_policy_expression(cfg: &DeployConfig) -> String {
    format!(
        "{} || !(request.name in {}) || (has(request.subResource) && request.subResource in ['finalize', 'status'] && oldObject != null && has(oldObject.metadata.deletionTimestamp) && {})",
        cel_operator(cfg),
        cel_list(&cfg.protected_namespaces),
        or_false(cel_exempt(cfg))
    )
}

/// The CEL rule of the webhook's rule 3 (see `webhook::rule_grants_operator_power` and
/// `webhook::role_ref_reserved`, which it mirrors clause by clause).
pub fn rbac_policy_expression(cfg: &DeployConfig) -> String {
    let g = |list: &[&str]| {
        format!("(has(r.apiGroups) && r.apiGroups.exists(g, g in {}))", cel_list(list))
    };
    let v = |list: &[&str]| format!("(has(r.verbs) && r.verbs.exists(v, v in {}))", cel_list(list));
    let r = |pred: &str| format!("(has(r.resources) && r.resources.exists(x, {pred}))");
    let bad = [
        format!(
            "({} && {} && {})",
            g(&["*", "admissionregistration.k8s.io"]),
            v(&crate::webhook::WRITE_VERBS),
            r("x == '*' || x.startsWith('validating') || x.startsWith('mutating')")
        ),
        format!(
            "({} && {} && {})",
            g(&["*", "", "authentication.k8s.io"]),
            v(&["*", "impersonate"]),
            r(
                "x in ['*', 'users', 'groups', 'serviceaccounts', 'uids'] || x.startsWith('userextras')"
            )
        ),
        format!(
            "({} && {} && {})",
            g(&["*", "rbac.authorization.k8s.io"]),
            v(&["*", "escalate", "bind"]),
            r("x in ['*', 'roles', 'clusterroles']")
        ),
        format!(
            "({} && {} && {})",
            g(&["*", "certificates.k8s.io"]),
            v(&["*", "approve", "sign"]),
            r("x in ['*', 'signers']")
        ),
    ];
    format!(
        "{} || ((!(request.resource.resource in ['roles', 'clusterroles']) || (!has(object.aggregationRule) && (!has(object.rules) || object.rules.all(r, !({}))))) && (!(request.resource.resource in ['rolebindings', 'clusterrolebindings']) || !((object.roleRef.kind == 'ClusterRole' && (object.roleRef.name == 'cluster-admin' || object.roleRef.name.startsWith('system:'))) || object.roleRef.name in {})))",
        cel_operator(cfg),
        bad.join(" || "),
        cel_list(&SEB_ROLE_NAMES)
    )
}

fn policy_pair(
    name: &str,
    match_constraints: Value,
    expression: String,
    message: &str,
) -> [Value; 2] {
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels()},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": match_constraints,
                "validations": [{"expression": expression, "message": message, "reason": "Forbidden"}],
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": labels()},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        }),
    ]
}

/// The ValidatingAdmissionPolicies and their bindings (admissionregistration.k8s.io/v1,
/// ≥ 1.30), one per webhook of [`webhook_configuration`], matching the same requests.
pub fn admission_policy(cfg: &DeployConfig) -> Vec<Value> {
    let mut out = Vec::new();
    out.extend(policy_pair(
        "seb-protected-namespaces",
        json!({
            "namespaceSelector": protected_selector(),
            "resourceRules": [
                {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["*", "*/scale"], "scope": "Namespaced"},
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CONNECT"], "resources": ["pods/exec", "pods/attach", "pods/portforward"], "scope": "Namespaced"},
            ],
        }),
        admission_policy_expression(cfg),
        "mutations in SEB-protected namespaces need a certified execution (seb broker)",
    ));
    out.extend(policy_pair(
        "seb-protected-namespace-objects",
        json!({
            "objectSelector": protected_selector(),
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE", "DELETE"], "resources": ["namespaces", "namespaces/status", "namespaces/finalize"], "scope": "Cluster"},
            ],
        }),
        namespaces_policy_expression(cfg),
        "a SEB-protected namespace is changed or deleted only by the operator path",
    ));
    out.extend(policy_pair(
        "seb-owned-objects",
        json!({
            "objectSelector": owned_selector(),
            "resourceRules": [
                {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["UPDATE", "DELETE"], "resources": ["*"], "scope": "*"},
            ],
        }),
        cel_operator(cfg),
        "SEB's own objects are changed or deleted only by the operator path",
    ));
    out.extend(policy_pair(
        "seb-rbac-escalation",
        json!({
            "resourceRules": [
                {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": ["roles", "clusterroles", "rolebindings", "clusterrolebindings"], "scope": "*"},
            ],
        }),
        rbac_policy_expression(cfg),
        "this RBAC would hand out the operator path (webhook write, impersonation, escalate/bind, cluster-admin)",
    ));
    out
}

/// The dynamic API of one manifest object (its kind resolved through discovery), with its kind
/// and name; `Ok(None)` when the server does not serve the kind.
async fn object_api(
    client: &kube::Client,
    o: &Value,
) -> Result<Option<(kube::Api<kube::api::DynamicObject>, String, String)>, crate::KubeError> {
    use kube::api::{Api, GroupVersionKind};
    use kube::discovery::Scope;
    use kube::error::DiscoveryError;
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let (Some(av), Some(kind), Some(name)) = (s("/apiVersion"), s("/kind"), s("/metadata/name"))
    else {
        return Err(crate::KubeError::Invalid(format!("object without apiVersion/kind/name: {o}")));
    };
    let (g, v) = av.split_once('/').unwrap_or(("", av.as_str()));
    let (ar, caps) =
        match kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(g, v, &kind)).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(
                DiscoveryError::MissingKind(_) | DiscoveryError::MissingApiGroup(_),
            )) => return Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => {
                return Err(crate::KubeError::Invalid(format!("discovery of {av} {kind}: {e}")));
            }
        };
    let api = match (caps.scope, s("/metadata/namespace")) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    Ok(Some((api, kind, name)))
}

/// The API groups the server serves (`""` for the core group first), from discovery.
pub async fn served_api_groups(client: &kube::Client) -> Result<Vec<String>, crate::KubeError> {
    let groups = client
        .list_api_groups()
        .await
        .map_err(|e| crate::KubeError::Unavailable(format!("discovery of API groups: {e}")))?;
    let mut out = vec![String::new()];
    out.extend(groups.groups.into_iter().map(|g| g.name));
    Ok(out)
}

/// Apply objects with server-side apply (field manager `seb-deploy`, forced), resolving each
/// kind through discovery: what `seb deploy kubernetes --apply` does with [`objects`].
pub async fn apply(client: &kube::Client, objects: &[Value]) -> Result<(), crate::KubeError> {
    use kube::api::{Patch, PatchParams};
    for o in objects {
        let Some((api, kind, name)) = object_api(client, o).await? else {
            return Err(crate::KubeError::Invalid(format!(
                "this API server does not serve {} (clusters < 1.30: --no-admission-policy)",
                o.get("kind").and_then(Value::as_str).unwrap_or("the kind")
            )));
        };
        api.patch(&name, &PatchParams::apply("seb-deploy").force(), &Patch::Apply(o))
            .await
            .map_err(|e| crate::KubeError::Refused(format!("apply {kind} `{name}`: {e}")))?;
    }
    Ok(())
}

/// Delete what [`apply`] applied: the admission objects first (so they cannot refuse the
/// rest), then everything else in reverse order; objects already gone, or of a kind the
/// server does not serve (so never applied), are fine.
pub async fn delete(client: &kube::Client, objects: &[Value]) -> Result<(), crate::KubeError> {
    use kube::api::DeleteParams;
    let admission = |o: &&Value| {
        o.get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|av| av.starts_with("admissionregistration.k8s.io/"))
    };
    let ordered =
        objects.iter().filter(admission).chain(objects.iter().rev().filter(|o| !admission(o)));
    for o in ordered {
        let Some((api, kind, name)) = object_api(client, o).await? else { continue };
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(crate::KubeError::Refused(format!("delete {kind} `{name}`: {e}")));
            }
        }
    }
    Ok(())
}

/// All manifests as one multi-document YAML stream.
pub fn manifests(cfg: &DeployConfig) -> String {
    to_yaml(&objects(cfg))
}

/// Objects as a multi-document YAML stream.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::from(
        "# SEB on Kubernetes: generated by `seb deploy kubernetes` (seb_kube::deploy::manifests)\n",
    );
    for o in objects {
        out.push_str("---\n");
        match serde_saphyr::to_string(o) {
            Ok(y) => out.push_str(&y),
            // Every JSON document is YAML; never reached with these objects.
            Err(_) => out.push_str(&o.to_string()),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The placeholder CA of the shipped example manifests: the API server cannot verify the
/// broker with it, so an unedited copy fails closed.
pub const PLACEHOLDER_CA: &str = "-----BEGIN CERTIFICATE-----\nREPLACE WITH THE PEM OF THE CA THAT SIGNED THE BROKER'S SERVING CERTIFICATE\n-----END CERTIFICATE-----\n";

/// The example manifests shipped in `deploy/kubernetes/`: `(seb.yaml, seb-admission-policy.yaml)`
/// for one protected namespace `production`. The second file needs Kubernetes ≥ 1.30.
pub fn shipped() -> (String, String) {
    let cfg = DeployConfig {
        emit_admission_policy: false,
        ..DeployConfig::new(vec!["production".into()], PLACEHOLDER_CA.into())
    };
    (manifests(&cfg), to_yaml(&admission_policy(&cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DeployConfig {
        DeployConfig::new(
            vec!["prod".into(), "payments".into()],
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        )
    }

    #[test]
    fn the_broker_workload_is_hardened_and_behind_the_webhook_service() {
        let mut c = cfg();
        c.broker_workload = Some(BrokerWorkload::new("registry.example/seb:1"));
        let objs = objects(&c);
        let find = |kind: &str| objs.iter().find(|o| o["kind"] == kind).unwrap().clone();
        let svc = find("Service");
        let dep = find("Deployment");
        let hook = webhook_configuration(&c);
        // The webhook's default endpoint is this Service, and the Service selects the pods.
        let endpoint = &hook["webhooks"][0]["clientConfig"]["service"];
        assert_eq!(endpoint["name"], svc["metadata"]["name"]);
        assert_eq!(endpoint["namespace"], svc["metadata"]["namespace"]);
        assert_eq!(endpoint["port"], svc["spec"]["ports"][0]["port"]);
        let pod = &dep["spec"]["template"];
        for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&pod["metadata"]["labels"][k], v, "selector {k}");
        }
        assert_eq!(dep["spec"]["selector"]["matchLabels"], svc["spec"]["selector"]);
        let spec = &pod["spec"];
        assert_eq!(spec["serviceAccountName"], "seb-broker");
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        let ctr = &spec["containers"][0];
        assert_eq!(ctr["image"], "registry.example/seb:1");
        assert_eq!(ctr["args"], json!(["serve", "--config", "/etc/seb/seb.toml"]));
        assert_eq!(ctr["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(ctr["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(ctr["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(ctr["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(ctr["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
        assert_eq!(ctr["ports"][0]["containerPort"], svc["spec"]["ports"][0]["targetPort"]);
        // The Secret is read-only; no secret value is in the manifests.
        assert_eq!(spec["volumes"][0]["secret"]["secretName"], "seb-broker");
        assert_eq!(ctr["volumeMounts"][0]["readOnly"], true);
        assert!(!manifests(&c).contains("PRIVATE"), "no key material");
        // One replica: SQLite on a claim, never two writers.
        assert_eq!(dep["spec"]["replicas"], 1);
        assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
        assert_eq!(find("PersistentVolumeClaim")["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(ctr["volumeMounts"][1]["mountPath"], "/var/lib/seb");
        // The workload comes before the webhook that points at it.
        let pos = |kind: &str| objs.iter().position(|o| o["kind"] == kind).unwrap();
        assert!(pos("Deployment") < pos("ValidatingWebhookConfiguration"));
    }

    #[test]
    fn several_broker_replicas_roll_without_a_volume_and_an_external_broker_gets_none() {
        let mut c = cfg();
        c.broker_workload =
            Some(BrokerWorkload { replicas: 3, ..BrokerWorkload::new("registry.example/seb:1") });
        let objs = objects(&c);
        let dep = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(dep["spec"]["replicas"], 3);
        assert_eq!(dep["spec"]["strategy"]["type"], "RollingUpdate");
        assert!(!objs.iter().any(|o| o["kind"] == "PersistentVolumeClaim"));
        // A writable directory per pod for its spool.
        let spec = &dep["spec"]["template"]["spec"];
        assert_eq!(spec["volumes"][1]["emptyDir"], json!({}));
        assert_eq!(spec["containers"][0]["volumeMounts"][1]["mountPath"], "/var/lib/seb");
        c.broker = Subject::User("broker".into());
        let objs = objects(&c);
        assert!(!objs.iter().any(|o| o["kind"] == "Deployment" || o["kind"] == "Service"));
    }

    #[test]
    fn yaml_round_trips_to_the_objects() {
        let c = cfg();
        let y = manifests(&c);
        let docs: Vec<Value> = serde_saphyr::from_multiple(&y).unwrap();
        let objs = objects(&c);
        assert_eq!(docs.len(), objs.len());
        for (d, o) in docs.iter().zip(&objs) {
            assert_eq!(d, o);
        }
        for d in &docs {
            assert!(
                d["apiVersion"].is_string()
                    && d["kind"].is_string()
                    && d["metadata"]["name"].is_string(),
                "{d}"
            );
        }
    }

    #[test]
    fn webhook_fails_closed_and_no_selector_can_be_switched_off_by_the_request() {
        let w = webhook_configuration(&cfg());
        let hooks = w["webhooks"].as_array().unwrap();
        for h in hooks {
            assert_eq!(h["failurePolicy"], "Fail");
            assert_eq!(h["sideEffects"], "None");
            assert_eq!(h["clientConfig"]["service"]["path"], ADMISSION_PATH);
            assert!(h["clientConfig"]["caBundle"].as_str().unwrap().starts_with("LS0t"));
        }
        let hook = |n: &str| hooks.iter().find(|h| h["name"] == n).unwrap();
        assert_eq!(
            hook("objects.seb.io")["namespaceSelector"]["matchLabels"][PROTECTED_LABEL],
            "true"
        );
        // The namespaces hook selects the Namespace object by its labels, old or new: no
        // namespaceSelector (evaluated on the new labels only).
        let ns = hook("namespaces.seb.io");
        assert!(ns.get("namespaceSelector").is_none());
        assert_eq!(ns["objectSelector"]["matchLabels"][PROTECTED_LABEL], "true");
        assert_eq!(
            ns["rules"][0]["resources"],
            json!(["namespaces", "namespaces/status", "namespaces/finalize"])
        );
        assert_eq!(ns["rules"][0]["operations"], json!(["UPDATE", "DELETE"]));
        let owned = hook("owned.seb.io");
        assert_eq!(owned["objectSelector"]["matchLabels"][OWNED_LABEL], OWNED_LABEL_VALUE);
        assert!(owned.get("namespaceSelector").is_none());
        let rbac = hook("rbac.seb.io");
        assert!(rbac.get("namespaceSelector").is_none());
        assert_eq!(rbac["rules"][0]["operations"], json!(["CREATE", "UPDATE"]));
        let objs = objects(&cfg());
        let prod = objs
            .iter()
            .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "prod")
            .unwrap();
        assert_eq!(prod["metadata"]["labels"][PROTECTED_LABEL], "true");
        // Every object SEB installs but the protected namespaces is SEB's own (owned.seb.io).
        for o in &objs {
            if o["kind"] == "Namespace" && o["metadata"]["labels"].get(PROTECTED_LABEL).is_some() {
                continue;
            }
            assert_eq!(o["metadata"]["labels"][OWNED_LABEL], OWNED_LABEL_VALUE, "{o}");
        }
    }

    #[test]
    fn the_cluster_admin_role_cannot_write_admission_configuration_nor_escalate() {
        let mut c = cfg();
        c.cluster_admins = vec![Subject::User("ops".into())];
        c.cluster_admin_api_groups = vec![
            "".into(),
            "apps".into(),
            "admissionregistration.k8s.io".into(),
            "example.com".into(),
        ];
        let objs = objects(&c);
        let role = objs
            .iter()
            .find(|o| o["metadata"]["name"] == CLUSTER_ADMIN && o["kind"] == "ClusterRole")
            .unwrap();
        let rules = role["rules"].as_array().unwrap();
        assert_eq!(rules[0]["apiGroups"], json!(["", "apps", "example.com"]));
        for r in rules {
            let strs = |k: &str| -> Vec<String> {
                r[k].as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            assert_eq!(
                crate::webhook::rule_grants_operator_power(
                    &strs("verbs"),
                    &strs("apiGroups"),
                    &strs("resources")
                ),
                None,
                "{r}"
            );
            assert!(!strs("verbs").iter().any(|v| {
                ["*", "impersonate", "escalate", "bind", "approve", "sign"].contains(&v.as_str())
            }));
        }
        let binding = objs.iter().find(|o| o["kind"] == "ClusterRoleBinding").unwrap();
        assert_eq!(binding["roleRef"]["name"], CLUSTER_ADMIN);
        assert_eq!(binding["subjects"][0]["name"], "ops");
    }

    #[test]
    fn broker_rbac_is_minimal_and_agents_read_only() {
        let objs = objects(&cfg());
        let verbs = |name: &str| -> Vec<String> {
            let r = objs
                .iter()
                .find(|o| {
                    o["metadata"]["name"] == name
                        && (o["kind"] == "ClusterRole" || o["kind"] == "Role")
                })
                .unwrap();
            r["rules"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    r["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned())
                })
                .collect()
        };
        let mutating = ["update", "patch", "deletecollection", "*"];
        for role in [BROKER_GRANTS, BROKER_OBSERVE, BROKER_IDENTITIES] {
            assert!(
                verbs(role).iter().all(|v| !mutating.contains(&v.as_str())),
                "{role}: {:?}",
                verbs(role)
            );
        }
        assert_eq!(verbs(BROKER_OBSERVE), vec!["get"]);
        assert!(verbs(AGENT_READ).iter().all(|v| ["get", "list", "watch"].contains(&v.as_str())));
        let agent = objs
            .iter()
            .find(|o| o["metadata"]["name"] == AGENT_READ && o["kind"] == "ClusterRole")
            .unwrap();
        assert!(!agent.to_string().contains("secrets"));
        // Nothing the broker holds is cluster-wide: every ClusterRole is bound per namespace
        // (the only ClusterRoleBinding is for `--cluster-admin-*` subjects, none here).
        assert!(objs.iter().all(|o| o["kind"] != "ClusterRoleBinding"));
        let grants: Vec<_> = objs
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" && o["metadata"]["name"] == BROKER_GRANTS)
            .collect();
        assert_eq!(grants.len(), 2);
    }

    /// `deploy/kubernetes/` holds exactly what the code generates; `SEB_REGENERATE=1`
    /// rewrites it.
    #[test]
    fn shipped_manifests_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
        let (main, vap) = shipped();
        if std::env::var_os("SEB_REGENERATE").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("seb.yaml"), &main).unwrap();
            std::fs::write(dir.join("seb-admission-policy.yaml"), &vap).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("seb.yaml")).unwrap(),
            main,
            "run with SEB_REGENERATE=1"
        );
        assert_eq!(std::fs::read_to_string(dir.join("seb-admission-policy.yaml")).unwrap(), vap);
        let docs: Vec<Value> = serde_saphyr::from_multiple(&vap).unwrap();
        assert_eq!(docs.len(), 8);
    }

    #[test]
    fn admission_policy_is_well_formed_for_1_30() {
        let c = cfg();
        let p = admission_policy(&c);
        assert_eq!(p.len(), 8);
        for pair in p.chunks(2) {
            assert_eq!(pair[0]["kind"], "ValidatingAdmissionPolicy");
            assert_eq!(pair[0]["apiVersion"], "admissionregistration.k8s.io/v1");
            assert_eq!(pair[1]["kind"], "ValidatingAdmissionPolicyBinding");
            assert_eq!(pair[1]["spec"]["policyName"], pair[0]["metadata"]["name"]);
            assert_eq!(pair[1]["spec"]["validationActions"], json!(["Deny"]));
            let e = pair[0]["spec"]["validations"][0]["expression"].as_str().unwrap();
            // Balanced parentheses and quotes.
            let mut depth = 0i32;
            let mut in_str = false;
            for ch in e.chars() {
                match ch {
                    '\'' => in_str = !in_str,
                    '(' if !in_str => depth += 1,
                    ')' if !in_str => depth -= 1,
                    _ => {}
                }
                assert!(depth >= 0);
            }
            assert!(depth == 0 && !in_str, "{e}");
        }
        let e = admission_policy_expression(&c);
        assert!(e.contains("'system:serviceaccount:seb-exec:seb-exec-'"));
        assert!(e.contains("'system:serviceaccount:seb-system:seb-broker'"));
        assert!(!e.contains("system:masters"));
        assert!(cel_operator(&c).contains("'system:masters'"));
        assert!(namespaces_policy_expression(&c).contains("['prod', 'payments']"));
        let no_vap = DeployConfig { emit_admission_policy: false, ..c };
        assert!(objects(&no_vap).iter().all(|o| o["kind"] != "ValidatingAdmissionPolicy"));
    }
}
