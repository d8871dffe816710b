//! [`KubeTarget`]: the [`Target`] for Kubernetes.
//!
//! Observe uses the broker's own read-only client. Mint creates a ServiceAccount, a Role and a
//! RoleBinding with the broker's client and requests a token; mutate builds a fresh client
//! from that token alone (never the broker's credentials) and sends the operation with the
//! resourceVersion read at the drift check as its precondition; retire deletes the binding,
//! the role and the account.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use kube::config::AuthInfo;
use kube::discovery::{ApiCapabilities, Scope};
use kube::{Client, Config};
use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Contract, Platform};
use seb_target::{
    Execution, Identity, MutationResult, MutationStatus, ObserveRequest, OpProfile, Reconciled,
    Target, TargetError, TargetFuture,
};
use serde_json::{Value, json};

use crate::model::{Op, TargetRef, identity_name, service_account_username};
use crate::profile::{ScopePolicy, op_profile};
use crate::projection::{project, reconcile_decision};
use crate::rbac::{self, Grant};
use crate::{KubeError, install_crypto_provider};

/// How the broker drives one cluster.
#[derive(Debug, Clone)]
pub struct KubeTargetConfig {
    /// This cluster's name; a contract's `target.cluster` must equal it.
    pub cluster: String,
    /// Where the per-execution ServiceAccounts live (only the broker has rights there).
    pub exec_namespace: String,
    /// The namespaces the admission webhook protects (scope check and create).
    pub scope: ScopePolicy,
    /// TokenRequest lifetime; the API's minimum is 600 s.
    pub token_seconds: i64,
    /// TokenRequest audiences; empty means the API server's own.
    pub audiences: Vec<String>,
    /// How long a fresh RoleBinding may take to reach the RBAC authorizer's cache before a
    /// 403 is taken as final.
    pub rbac_settle: Duration,
    /// Longest a mutation call may take before its fate is reported unknown.
    pub call_timeout: Duration,
}

impl KubeTargetConfig {
    /// Defaults: 600 s tokens, the server's audiences, 2 s RBAC settling.
    pub fn new(
        cluster: impl Into<String>,
        exec_namespace: impl Into<String>,
        scope: ScopePolicy,
    ) -> Self {
        Self {
            cluster: cluster.into(),
            exec_namespace: exec_namespace.into(),
            scope,
            token_seconds: 600,
            audiences: Vec::new(),
            rbac_settle: Duration::from_secs(2),
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// The client configuration of a kubeconfig file (its current context).
pub async fn kubeconfig(path: &std::path::Path) -> Result<Config, KubeError> {
    install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| KubeError::invalid_from(format!("kubeconfig `{}`", path.display()), e))?;
    Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| KubeError::invalid_from(format!("kubeconfig `{}`", path.display()), e))
}

/// A client for a kubeconfig file, or for the inferred configuration (in-cluster, then
/// `$KUBECONFIG` / `~/.kube/config`) when `path` is `None`.
pub async fn client(path: Option<&std::path::Path>) -> Result<Client, KubeError> {
    install_crypto_provider();
    let cfg = match path {
        Some(p) => kubeconfig(p).await?,
        None => Config::infer().await.map_err(|e| KubeError::invalid_from("kube config", e))?,
    };
    Client::try_from(cfg).map_err(|e| KubeError::invalid_from("kube client", e))
}

/// A discovered resource.
#[derive(Debug, Clone)]
struct Resolved {
    ar: ApiResource,
    caps: ApiCapabilities,
}

/// The Kubernetes [`Target`].
pub struct KubeTarget {
    cfg: KubeTargetConfig,
    base: Config,
    broker: Client,
    discovered: Mutex<HashMap<(String, String), Resolved>>,
}

impl std::fmt::Debug for KubeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTarget")
            .field("cfg", &self.cfg)
            .field("cluster_url", &self.base.cluster_url)
            .finish_non_exhaustive()
    }
}

/// The handle stored in [`Identity::handle`] (what retire deletes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityHandle {
    pub name: String,
    pub exec_namespace: String,
    pub target_namespace: String,
}

/// The `kube::Error` is kept as the source; the context names the call and the status.
pub(crate) fn api_err(context: &str, e: kube::Error) -> KubeError {
    match &e {
        kube::Error::Api(s) if s.code >= 500 => {
            let context = format!("{context}: {} {}", s.code, s.message);
            KubeError::unavailable_from(context, e)
        }
        kube::Error::Api(s) => {
            let context = format!("{context}: {} {} {}", s.code, s.reason, s.message);
            KubeError::refused_from(context, e)
        }
        _ => KubeError::unavailable_from(context, e),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A 403 from the RBAC authorizer (not from admission), which a binding created a moment
/// ago can cause until the authorizer's cache has it.
fn is_rbac_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && !s.message.contains("admission webhook"))
}

impl KubeTarget {
    /// A target driving the cluster at `base` (the broker's own credentials: read access and
    /// the rights to manage execution identities, see `deploy`).
    pub fn new(cfg: KubeTargetConfig, base: Config) -> Result<Self, KubeError> {
        install_crypto_provider();
        let broker = Client::try_from(base.clone())
            .map_err(|e| KubeError::invalid_from("kube client", e))?;
        Ok(Self { cfg, base, broker, discovered: Mutex::new(HashMap::new()) })
    }

    /// A target with the credentials `kube::Config::infer` finds (in-cluster ServiceAccount,
    /// or `$KUBECONFIG` / `~/.kube/config`).
    pub async fn infer(cfg: KubeTargetConfig) -> Result<Self, KubeError> {
        install_crypto_provider();
        let base = Config::infer().await.map_err(|e| KubeError::invalid_from("kube config", e))?;
        Self::new(cfg, base)
    }

    /// A target with the credentials of a kubeconfig file (its current context).
    pub async fn from_kubeconfig(
        cfg: KubeTargetConfig,
        path: &std::path::Path,
    ) -> Result<Self, KubeError> {
        Self::new(cfg, kubeconfig(path).await?)
    }

    /// The configuration.
    pub fn config(&self) -> &KubeTargetConfig {
        &self.cfg
    }

    /// A client that authenticates with `token` and nothing else (no client certificate, no
    /// exec plugin, no retries: a retried mutation must never be invisible).
    pub fn client_for_token(&self, token: &str) -> Result<Client, KubeError> {
        use kube::client::ConfigExt as _;
        let mut c = self.base.clone();
        c.auth_info = AuthInfo { token: Some(token.to_owned().into()), ..AuthInfo::default() };
        c.default_retry = false;
        let err = |e: kube::Error| KubeError::invalid_from("kube client", e);
        // kube's default connector leaves Nagle on: the request that follows the TLS handshake
        // on a fresh connection then waits for the server's delayed ACK (about 40 ms on
        // loopback, measured). Every execution uses a fresh connection, so set TCP_NODELAY.
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        if let Some(t) = c.connect_timeout {
            http.set_connect_timeout(Some(t));
        }
        let https = c.rustls_https_connector_with_connector(http).map_err(err)?;
        let hyper_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        let service = tower::ServiceBuilder::new()
            .layer(c.base_uri_layer())
            .option_layer(c.auth_layer().map_err(err)?)
            .layer(c.extra_headers_layer().map_err(err)?)
            .map_err(
                |e: hyper_util::client::legacy::Error| -> Box<dyn std::error::Error + Send + Sync> {
                    Box::new(e)
                },
            )
            .service(hyper_client);
        Ok(Client::new(service, c.default_namespace))
    }

    fn target_ref(&self, v: &Value) -> Result<TargetRef, KubeError> {
        let t = TargetRef::from_value(v)?;
        if t.cluster != self.cfg.cluster {
            return Err(KubeError::Invalid(format!(
                "target cluster `{}` is not `{}`",
                t.cluster, self.cfg.cluster
            )));
        }
        Ok(t)
    }

    /// Resolve `api_version`/`kind` through the cluster's discovery (cached): any namespaced
    /// resource the server serves.
    async fn resolve(&self, t: &TargetRef) -> Result<Resolved, KubeError> {
        let key = (t.api_version.clone(), t.kind.clone());
        if let Some(r) = self.discovered.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(r.clone());
        }
        let (group, version) = t.group_version();
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &t.kind);
        let (ar, caps) =
            kube::discovery::pinned_kind(&self.broker, &gvk).await.map_err(|e| match e {
                kube::Error::Discovery(d) => KubeError::invalid_from("discovery", d),
                kube::Error::Api(s) if s.code == 404 => {
                    KubeError::Invalid(format!("discovery: `{}` is not served", t.api_version))
                }
                other => api_err("discovery", other),
            })?;
        if caps.scope != Scope::Namespaced {
            return Err(KubeError::Invalid(format!(
                "{} is cluster-scoped; only namespaced resources are targets",
                t.kind
            )));
        }
        let r = Resolved { ar, caps };
        self.discovered.lock().unwrap_or_else(|p| p.into_inner()).insert(key, r.clone());
        Ok(r)
    }

    fn check_capability(op: Op, r: &Resolved) -> Result<(), KubeError> {
        let verb = match op {
            Op::Create => "create",
            Op::Replace => "update",
            Op::MergePatch | Op::JsonPatch | Op::Apply => "patch",
            Op::Delete => "delete",
            Op::Scale => {
                let has_scale = r
                    .caps
                    .subresources
                    .iter()
                    .any(|(ar, caps)| ar.plural == "scale" && caps.supports_operation("patch"));
                return if has_scale {
                    Ok(())
                } else {
                    Err(KubeError::Invalid(format!("{} has no scale subresource", r.ar.kind)))
                };
            }
        };
        if r.caps.supports_operation(verb) {
            Ok(())
        } else {
            Err(KubeError::Invalid(format!("{} does not support `{verb}`", r.ar.kind)))
        }
    }

    /// Read an object as the server returns it (`None` when it does not exist).
    pub async fn get_raw(&self, target: &Value) -> Result<Option<Value>, KubeError> {
        let t = self.target_ref(target)?;
        let r = self.resolve(&t).await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.broker.clone(), &t.namespace, &r.ar);
        let obj = api.get_opt(&t.name).await.map_err(|e| api_err("get", e))?;
        obj.map(|o| serde_json::to_value(o).map_err(|e| KubeError::unavailable_from("decode", e)))
            .transpose()
    }

    async fn observe_inner(&self, req: &ObserveRequest) -> Result<Observation, KubeError> {
        let obj = self.get_raw(&req.target).await?;
        let pointers =
            if req.pointers.is_empty() { vec![String::new()] } else { req.pointers.clone() };
        let version = obj
            .as_ref()
            .and_then(|o| o.pointer("/metadata/resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Observation { projection: project(obj.as_ref(), &pointers), version })
    }

    async fn mint_inner(&self, exec: &Execution) -> Result<Identity, KubeError> {
        let op = Op::parse(&exec.op)?;
        let t = self.target_ref(&exec.target)?;
        let r = self.resolve(&t).await?;
        Self::check_capability(op, &r)?;
        let g = rbac::grant(op, &t, &r.ar.plural, exec.observed_version.is_some());
        if g.resource_name.is_none() && !self.cfg.scope.is_protected(&t.namespace) {
            return Err(KubeError::Refused(format!(
                "{op} needs an unnamed `create` grant, which only the admission webhook can hold to `{}`; namespace `{}` is not protected",
                t.name, t.namespace
            )));
        }
        let name = identity_name(&exec.cid, &exec.nonce);
        let handle = IdentityHandle {
            name: name.clone(),
            exec_namespace: self.cfg.exec_namespace.clone(),
            target_namespace: t.namespace.clone(),
        };
        match self.create_identity(exec, &t, &g, &handle).await {
            Ok((token, expires_at_ms)) => Ok(Identity {
                name: service_account_username(&handle.exec_namespace, &name),
                secret: zeroize::Zeroizing::new(token),
                expires_at_ms,
                handle: serde_json::to_value(&handle)
                    .map_err(|e| KubeError::invalid_from("identity handle as JSON", e))?,
            }),
            Err(e) => {
                // Never leave a half-made grant behind.
                let _ = self.delete_identity(&handle).await;
                Err(e)
            }
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, KubeError> {
        serde_json::from_value(v).map_err(|e| KubeError::invalid_from("decode", e))
    }

    async fn create_identity(
        &self,
        exec: &Execution,
        t: &TargetRef,
        g: &Grant,
        h: &IdentityHandle,
    ) -> Result<(String, u64), KubeError> {
        let pp = PostParams::default();
        let sa: ServiceAccount = Self::decode(rbac::service_account(
            &h.name,
            &h.exec_namespace,
            &exec.cid,
            &exec.agent,
        ))?;
        let role: Role = Self::decode(rbac::role(&h.name, &t.namespace, &exec.cid, g))?;
        let rb: RoleBinding =
            Self::decode(rbac::role_binding(&h.name, &t.namespace, &h.exec_namespace, &exec.cid))?;
        let sas: Api<ServiceAccount> = Api::namespaced(self.broker.clone(), &h.exec_namespace);
        let roles = Api::<Role>::namespaced(self.broker.clone(), &t.namespace);
        let bindings = Api::<RoleBinding>::namespaced(self.broker.clone(), &t.namespace);
        // The three objects do not depend on each other (a binding may name a subject or a
        // role that does not exist yet): one round trip instead of three. Nothing can use
        // the grant before the TokenRequest below, and on any failure the caller deletes
        // whatever was created.
        let (sa_r, role_r, rb_r) =
            tokio::join!(sas.create(&pp, &sa), roles.create(&pp, &role), bindings.create(&pp, &rb));
        sa_r.map_err(|e| api_err("create ServiceAccount", e))?;
        role_r.map_err(|e| api_err("create Role", e))?;
        rb_r.map_err(|e| api_err("create RoleBinding", e))?;
        let tr = TokenRequest {
            spec: TokenRequestSpec {
                audiences: self.cfg.audiences.clone(),
                expiration_seconds: Some(self.cfg.token_seconds),
                ..Default::default()
            },
            ..Default::default()
        };
        let out = sas
            .create_token_request(&h.name, &pp, &tr)
            .await
            .map_err(|e| api_err("TokenRequest", e))?;
        let status = out
            .status
            .ok_or_else(|| KubeError::Unavailable("TokenRequest returned no status".into()))?;
        let expires = status.expiration_timestamp.0.as_millisecond().max(0) as u64;
        Ok((status.token, expires))
    }

    async fn delete_identity(&self, h: &IdentityHandle) -> Result<(), KubeError> {
        let dp = DeleteParams::default();
        let mut first_err = None;
        // All three at once: deleting either the binding or the role removes the grant, and
        // deleting the ServiceAccount invalidates the token; none waits for another.
        let bindings = Api::<RoleBinding>::namespaced(self.broker.clone(), &h.target_namespace);
        let roles = Api::<Role>::namespaced(self.broker.clone(), &h.target_namespace);
        let sas = Api::<ServiceAccount>::namespaced(self.broker.clone(), &h.exec_namespace);
        let (rb, role, sa) = tokio::join!(
            bindings.delete(&h.name, &dp),
            roles.delete(&h.name, &dp),
            sas.delete(&h.name, &dp)
        );
        for (what, r) in [
            ("RoleBinding", rb.map(|_| ())),
            ("Role", role.map(|_| ())),
            ("ServiceAccount", sa.map(|_| ())),
        ] {
            if let Err(e) = r
                && !is_not_found(&e)
                && first_err.is_none()
            {
                first_err = Some(api_err(&format!("delete {what}"), e));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn mutate_inner(
        &self,
        exec: &Execution,
        identity: &Identity,
    ) -> Result<MutationResult, KubeError> {
        let op = Op::parse(&exec.op)?;
        let t = self.target_ref(&exec.target)?;
        let r = self.resolve(&t).await?;
        let failed = |error: String| MutationResult {
            status: MutationStatus::Failed,
            target_request_id: None,
            result: None,
            post_state: None,
            error: Some(error),
        };
        let rv = exec.observed_version.clone();
        if op.needs_existing() && rv.is_none() {
            return Ok(failed(format!(
                "{op} needs the object, which did not exist at the drift check; nothing was sent"
            )));
        }
        let client = self.client_for_token(&identity.secret)?;
        let api: Api<DynamicObject> = Api::namespaced_with(client, &t.namespace, &r.ar);
        // The field manager names the execution, so reconcile can see our write in managedFields.
        let manager = identity_name(&exec.cid, &exec.nonce);
        let deadline = Instant::now() + self.cfg.rbac_settle;
        let mut attempts = 0u32;
        let outcome = loop {
            let call = self.send(op, &t, &api, &exec.params, rv.as_deref(), &manager);
            let Ok(res) = tokio::time::timeout(self.cfg.call_timeout, call).await else {
                return Err(KubeError::Unavailable(format!(
                    "{op}: no answer within {:?}; fate unknown",
                    self.cfg.call_timeout
                )));
            };
            match res {
                Err(e) if is_rbac_forbidden(&e) && Instant::now() < deadline => {
                    // The authorizer's informer usually has the binding within tens of ms:
                    // poll at a short fixed interval rather than back off past it.
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(if attempts < 40 { 3 } else { 25 }))
                        .await;
                }
                other => break other,
            }
        };
        tracing::debug!(cid = %exec.cid, rbac_retries = attempts, "mutation sent");
        let pointers: Vec<String> = if exec.evidence.is_empty() {
            vec![String::new()]
        } else {
            exec.evidence.keys().cloned().collect()
        };
        match outcome {
            Ok(Sent::Object(v)) if op != Op::Scale => {
                let gone = op == Op::Delete
                    && v.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null);
                let post = project(if gone { None } else { Some(&v) }, &pointers);
                Ok(MutationResult {
                    status: MutationStatus::Applied,
                    target_request_id: None,
                    result: Some(v),
                    post_state: Some(post),
                    error: None,
                })
            }
            Ok(Sent::Object(v)) => {
                // The scale subresource answers with a Scale; the post-state is the object's.
                let post =
                    self.observe_inner(&exec.observe_request()).await.ok().map(|o| o.projection);
                Ok(MutationResult {
                    status: MutationStatus::Applied,
                    target_request_id: None,
                    result: Some(v),
                    post_state: post,
                    error: None,
                })
            }
            Ok(Sent::Status(v)) => Ok(MutationResult {
                status: MutationStatus::Applied,
                target_request_id: None,
                result: Some(v),
                post_state: Some(project(None, &pointers)),
                error: None,
            }),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(MutationResult {
                status: MutationStatus::Conflict,
                target_request_id: None,
                result: serde_json::to_value(&*s).ok(),
                post_state: None,
                error: Some(format!("409 {}: {}", s.reason, s.message)),
            }),
            Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => Ok(MutationResult {
                status: MutationStatus::Failed,
                target_request_id: None,
                result: serde_json::to_value(&*s).ok(),
                post_state: None,
                error: Some(format!("{} {}: {}", s.code, s.reason, s.message)),
            }),
            // 5xx or transport failure: whether the server applied it is unknown.
            Err(e) => Err(api_err(&format!("{op}"), e)),
        }
    }

    /// Send one operation with its precondition.
    async fn send(
        &self,
        op: Op,
        t: &TargetRef,
        api: &Api<DynamicObject>,
        params: &Value,
        rv: Option<&str>,
        manager: &str,
    ) -> Result<Sent, kube::Error> {
        let to_value = |o: DynamicObject| serde_json::to_value(o).map_err(kube::Error::SerdeError);
        let with_rv = |p: &Value| -> Value {
            let mut p = p.clone();
            if let (Some(rv), Value::Object(m)) = (rv, &mut p)
                && let Value::Object(meta) = m.entry("metadata").or_insert_with(|| json!({}))
            {
                meta.insert("resourceVersion".into(), Value::String(rv.to_owned()));
            }
            p
        };
        let pp = PostParams { dry_run: false, field_manager: Some(manager.to_owned()) };
        let patch_params =
            PatchParams { field_manager: Some(manager.to_owned()), ..PatchParams::default() };
        let obj =
            |v: Value| serde_json::from_value::<DynamicObject>(v).map_err(kube::Error::SerdeError);
        match op {
            Op::Create => {
                api.create(&pp, &obj(params.clone())?).await.and_then(to_value).map(Sent::Object)
            }
            // Server-side apply of an absent object is a create: it must not land on an object
            // that appeared after the drift check.
            Op::Apply if rv.is_none() => {
                api.create(&pp, &obj(params.clone())?).await.and_then(to_value).map(Sent::Object)
            }
            Op::Replace => api
                .replace(&t.name, &pp, &obj(with_rv(params))?)
                .await
                .and_then(to_value)
                .map(Sent::Object),
            Op::MergePatch => api
                .patch(&t.name, &patch_params, &Patch::Merge(with_rv(params)))
                .await
                .and_then(to_value)
                .map(Sent::Object),
            Op::Apply => {
                let ssa = PatchParams {
                    field_manager: Some(manager.to_owned()),
                    ..PatchParams::default()
                };
                api.patch(&t.name, &ssa, &Patch::Apply(with_rv(params)))
                    .await
                    .and_then(to_value)
                    .map(Sent::Object)
            }
            Op::JsonPatch => {
                // Setting /metadata/resourceVersion makes the server's update compare it with
                // the stored version (409 on mismatch), like the merge patch's body field.
                let mut ops = vec![
                    json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv}),
                ];
                ops.extend(params.as_array().cloned().unwrap_or_default());
                let patch: json_patch::Patch =
                    serde_json::from_value(Value::Array(ops)).map_err(kube::Error::SerdeError)?;
                api.patch(&t.name, &patch_params, &Patch::<()>::Json(patch))
                    .await
                    .and_then(to_value)
                    .map(Sent::Object)
            }
            Op::Scale => {
                let body = json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": params.get("replicas")}});
                let s = api.patch_scale(&t.name, &patch_params, &Patch::Merge(body)).await?;
                serde_json::to_value(s).map_err(kube::Error::SerdeError).map(Sent::Object)
            }
            Op::Delete => {
                let propagation_policy =
                    match params.get("propagationPolicy").and_then(Value::as_str) {
                        Some("Foreground") => Some(PropagationPolicy::Foreground),
                        Some("Orphan") => Some(PropagationPolicy::Orphan),
                        Some("Background") => Some(PropagationPolicy::Background),
                        _ => None,
                    };
                let dp = DeleteParams {
                    propagation_policy,
                    preconditions: Some(Preconditions {
                        resource_version: rv.map(str::to_owned),
                        uid: None,
                    }),
                    ..DeleteParams::default()
                };
                api.delete(&t.name, &dp).await?.either(
                    |o| to_value(o).map(Sent::Object),
                    |s| serde_json::to_value(s).map_err(kube::Error::SerdeError).map(Sent::Status),
                )
            }
        }
    }

    /// Delete an execution's identity objects by name (retire without the [`Identity`], as
    /// after a crash). Idempotent.
    pub async fn retire_by_name(&self, exec: &Execution) -> Result<(), KubeError> {
        let t = self.target_ref(&exec.target)?;
        let h = IdentityHandle {
            name: identity_name(&exec.cid, &exec.nonce),
            exec_namespace: self.cfg.exec_namespace.clone(),
            target_namespace: t.namespace,
        };
        self.delete_identity(&h).await
    }

    /// Observe only (never deletes, never mutates): read the target and decide with
    /// [`reconcile_decision`]. Retiring a crashed execution's identity is
    /// [`Target::retire_orphans`], which the broker retries on its own schedule.
    async fn reconcile_inner(&self, exec: &Execution) -> Result<Reconciled, KubeError> {
        let op = Op::parse(&exec.op)?;
        let live = self.get_raw(&exec.target).await?;
        Ok(reconcile_decision(
            op,
            &exec.params,
            &exec.evidence,
            exec.observed_version.as_deref(),
            &identity_name(&exec.cid, &exec.nonce),
            live.as_ref(),
        ))
    }
}

/// What the server answered.
enum Sent {
    Object(Value),
    Status(Value),
}

impl ScopeCheck for KubeTarget {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        let t = TargetRef::from_value(&contract.target).map_err(|e| e.to_string())?;
        if t.cluster != self.cfg.cluster {
            return Err(format!("target cluster `{}` is not `{}`", t.cluster, self.cfg.cluster));
        }
        self.cfg.scope.check_scope(contract)
    }
}

impl Target for KubeTarget {
    fn platform(&self) -> Platform {
        Platform::Kubernetes
    }

    fn profile(&self, op: &str) -> Result<OpProfile, TargetError> {
        Ok(op_profile(Op::parse(op)?))
    }

    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        Box::pin(async move { Ok(self.observe_inner(req).await?) })
    }

    fn retire_orphans<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, ()> {
        Box::pin(async move { Ok(self.retire_by_name(exec).await?) })
    }

    fn identity_name(&self, exec: &Execution) -> Option<String> {
        Some(service_account_username(
            &self.cfg.exec_namespace,
            &identity_name(&exec.cid, &exec.nonce),
        ))
    }

    fn mint<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Identity> {
        Box::pin(async move { Ok(self.mint_inner(exec).await?) })
    }

    fn mutate<'a>(
        &'a self,
        exec: &'a Execution,
        identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        Box::pin(async move { Ok(self.mutate_inner(exec, identity).await?) })
    }

    fn retire<'a>(&'a self, _exec: &'a Execution, identity: Identity) -> TargetFuture<'a, ()> {
        Box::pin(async move {
            let h: IdentityHandle = serde_json::from_value(identity.handle.clone())
                .map_err(|e| TargetError::invalid_from("identity handle", e))?;
            drop(identity);
            Ok(self.delete_identity(&h).await?)
        })
    }

    fn reconcile<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Reconciled> {
        Box::pin(async move { Ok(self.reconcile_inner(exec).await?) })
    }
}

/// The projection pointers of an execution's evidence (`""` when it has none).
pub fn evidence_pointers(evidence: &BTreeMap<String, Value>) -> Vec<String> {
    if evidence.is_empty() { vec![String::new()] } else { evidence.keys().cloned().collect() }
}
