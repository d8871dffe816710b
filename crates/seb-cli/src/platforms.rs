//! The platforms `seb serve` drives, built from `[targets.*]`: the broker's targets, the
//! profiles admission compiles and observes with, and the Kubernetes admission webhook.
//!
//! ```toml
//! [targets.kubernetes]
//! cluster = "prod-eu"                  # a contract's target.cluster must equal it
//! kubeconfig = "broker.kubeconfig"     # optional; default: in-cluster, then $KUBECONFIG
//! observer_kubeconfig = "ro.kubeconfig" # optional: admission observes read-only
//! exec_namespace = "seb-exec"
//! protected_namespaces = ["production"]
//! webhook = true                       # serve /v1/kubernetes/admission-review (needs TLS)
//! broker_username = "system:serviceaccount:seb-system:seb-broker"
//! operator_groups = ["system:masters"] # optional: who may change the protected set
//!
//! [targets.aws]
//! endpoint_url = "http://127.0.0.1:5000"   # optional (VPC endpoint, emulator)
//! broker_credentials_file = "aws.json"     # optional; default: the SDK's default chain
//! observer_credentials_file = "ro.json"    # optional: admission observes read-only
//! [targets.aws.accounts.123456789012]
//! execution_role_arn = "arn:aws:iam::123456789012:role/seb-execution"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use seb_broker::config::Config;
use seb_broker::engine::Broker;
use seb_broker::http::AppState;
use seb_kube::webhook::{LiveExecutions, WebhookPolicy};
use seb_target::{Execution, PlatformProfile, Target};
use serde::Deserialize;
use zeroize::Zeroizing;

/// `[targets.kubernetes]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSection {
    pub cluster: String,
    /// Credentials of the broker (its ServiceAccount token, or a user). Relative to the
    /// configuration file. Default: in-cluster, then `$KUBECONFIG` / `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Credentials admission observes with (evidence): a read-only identity, so the
    /// assurance side never holds the broker's rights. Default: the broker's.
    #[serde(default)]
    pub observer_kubeconfig: Option<PathBuf>,
    #[serde(default = "default_exec_namespace")]
    pub exec_namespace: String,
    pub protected_namespaces: Vec<String>,
    #[serde(default = "default_token_seconds")]
    pub token_seconds: i64,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default = "default_rbac_settle_ms")]
    pub rbac_settle_ms: u64,
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Serve the validating admission webhook on the broker's listener.
    #[serde(default)]
    pub webhook: bool,
    /// The broker's own Kubernetes username (required with `webhook`).
    #[serde(default)]
    pub broker_username: Option<String>,
    /// Extra identities always allowed in protected namespaces, added to the control-plane
    /// defaults (never `system:masters`).
    #[serde(default)]
    pub exempt_usernames: Vec<String>,
    #[serde(default)]
    pub exempt_username_prefixes: Vec<String>,
    #[serde(default)]
    pub exempt_groups: Vec<String>,
    /// The operator path: groups that may change the protected namespaces and SEB's own
    /// objects (default `["system:masters"]`; must match `seb deploy --operator-group`).
    #[serde(default)]
    pub operator_groups: Option<Vec<String>>,
    /// Users of the operator path (default none; `seb deploy --operator-user`).
    #[serde(default)]
    pub operator_usernames: Vec<String>,
}

fn default_exec_namespace() -> String {
    "seb-exec".into()
}
fn default_token_seconds() -> i64 {
    600
}
fn default_rbac_settle_ms() -> u64 {
    2_000
}
fn default_call_timeout_ms() -> u64 {
    30_000
}

/// The broker's own AWS credentials, from a file (mode 0600): used to assume execution roles
/// and to observe, never to mutate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsCredentialsFile {
    access_key_id: String,
    /// Moved (not copied) into a `Zeroizing` right after parsing.
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// A platform's profile (contract compilation, consequence) and its observer, for admission.
pub type ProfiledTarget = (Arc<dyn PlatformProfile>, Arc<dyn Target>);

/// What `[targets.*]` built.
#[derive(Default)]
pub struct Platforms {
    /// The broker's targets.
    pub targets: Vec<Arc<dyn Target>>,
    /// Profile and observer per platform, for admission.
    pub profiles: Vec<ProfiledTarget>,
    /// The Kubernetes webhook's policy, when it is served.
    pub kube_webhook: Option<WebhookPolicy>,
}

impl Platforms {
    /// Build every configured platform. `base` resolves relative paths.
    pub async fn build(cfg: &Config, base: &Path) -> Result<Self> {
        let mut out = Self::default();
        if let Some(t) = &cfg.targets.test {
            #[cfg(feature = "test-double")]
            {
                tracing::warn!(
                    "the TEST DOUBLE target is enabled: this broker is not for production"
                );
                let target = Arc::new(seb_target::test_double::TestTarget::open(&t.state_file)?);
                out.targets.push(target.clone());
                out.profiles.push((target.clone(), target));
            }
            #[cfg(not(feature = "test-double"))]
            {
                let _ = t;
                bail!("[targets.test] needs a build with the `test-double` feature");
            }
        }
        if let Some(table) = &cfg.targets.kubernetes {
            let k: KubeSection = table.clone().try_into().context("[targets.kubernetes]")?;
            out.add_kube(k, base).await?;
        }
        if let Some(table) = &cfg.targets.aws {
            out.add_aws(table.clone(), base).await?;
        }
        Ok(out)
    }

    async fn add_kube(&mut self, k: KubeSection, base: &Path) -> Result<()> {
        if k.protected_namespaces.is_empty() {
            bail!("[targets.kubernetes] protected_namespaces is empty");
        }
        let mut tcfg = seb_kube::KubeTargetConfig::new(
            k.cluster.clone(),
            k.exec_namespace.clone(),
            seb_kube::ScopePolicy::new(k.protected_namespaces.iter().cloned()),
        );
        tcfg.token_seconds = k.token_seconds;
        tcfg.audiences = k.audiences.clone();
        tcfg.rbac_settle = Duration::from_millis(k.rbac_settle_ms);
        tcfg.call_timeout = Duration::from_millis(k.call_timeout_ms);
        let target = match &k.kubeconfig {
            Some(p) => seb_kube::KubeTarget::from_kubeconfig(tcfg.clone(), &base.join(p)).await,
            None => seb_kube::KubeTarget::infer(tcfg.clone()).await,
        }
        .context("[targets.kubernetes]")?;
        let target = Arc::new(target);
        self.targets.push(target.clone());
        let observer: Arc<dyn Target> = match &k.observer_kubeconfig {
            Some(p) => Arc::new(
                seb_kube::KubeTarget::from_kubeconfig(tcfg, &base.join(p))
                    .await
                    .context("[targets.kubernetes] observer_kubeconfig")?,
            ),
            None => target,
        };
        self.profiles.push((Arc::new(seb_kube::KubeProfile), observer));
        if k.webhook {
            let Some(user) = k.broker_username.as_deref() else {
                bail!("[targets.kubernetes] webhook = true needs broker_username");
            };
            let mut policy =
                WebhookPolicy::new(k.protected_namespaces.iter().cloned(), user, &k.exec_namespace);
            if k.exempt_groups.iter().any(|g| g == "system:masters") {
                bail!("[targets.kubernetes] exempt_groups must not contain system:masters");
            }
            policy.exempt_usernames.extend(k.exempt_usernames);
            policy.exempt_username_prefixes.extend(k.exempt_username_prefixes);
            policy.exempt_groups.extend(k.exempt_groups);
            if let Some(groups) = k.operator_groups {
                policy.operator_groups = groups.into_iter().collect();
            }
            policy.operator_usernames.extend(k.operator_usernames);
            self.kube_webhook = Some(policy);
        }
        tracing::info!(cluster = %k.cluster, protected = ?k.protected_namespaces, webhook = k.webhook, "kubernetes target ready");
        Ok(())
    }

    async fn add_aws(&mut self, mut table: toml::Table, base: &Path) -> Result<()> {
        let creds = credentials(table.remove("broker_credentials_file"), base)?;
        let observer_creds = match table.remove("observer_credentials_file") {
            None => None,
            v => Some(credentials(v, base)?),
        };
        let acfg: seb_aws::AwsTargetConfig =
            toml::Value::Table(table).try_into().context("[targets.aws]")?;
        let accounts: BTreeSet<String> = acfg.accounts.keys().cloned().collect();
        let target =
            Arc::new(seb_aws::AwsTarget::new(acfg.clone(), creds).await.context("[targets.aws]")?);
        self.targets.push(target.clone());
        let observer: Arc<dyn Target> = match observer_creds {
            Some(c) => Arc::new(
                seb_aws::AwsTarget::new(acfg, c)
                    .await
                    .context("[targets.aws] observer_credentials_file")?,
            ),
            None => target,
        };
        self.profiles.push((Arc::new(seb_aws::AwsPlatform), observer));
        tracing::info!(accounts = ?accounts, "aws target ready");
        Ok(())
    }
}

/// Credentials from a `…_credentials_file` key (absent: the SDK's default chain).
fn credentials(v: Option<toml::Value>, base: &Path) -> Result<seb_aws::BrokerCredentials> {
    Ok(match v {
        None => seb_aws::BrokerCredentials::DefaultChain,
        Some(toml::Value::String(p)) => {
            let path = base.join(p);
            let bytes = Zeroizing::new(
                std::fs::read(&path).with_context(|| format!("reading `{}`", path.display()))?,
            );
            let f: AwsCredentialsFile = seb_core::json::parse(&bytes, 64 * 1024)
                .with_context(|| format!("`{}`", path.display()))?;
            seb_aws::BrokerCredentials::Static {
                access_key_id: f.access_key_id,
                secret_access_key: Zeroizing::new(f.secret_access_key),
                session_token: f.session_token.map(Zeroizing::new),
            }
        }
        Some(_) => bail!("[targets.aws] a credentials file setting must be a path"),
    })
}

/// How long the webhook waits for the shared store before it denies.
const SHARED_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The live executions as one review sees them: this replica's own first (registered before
/// mint, removed after retire); then, when given, the executions every broker sharing the
/// store has admitted and not finished — so that behind one Service any replica can answer
/// for an execution another replica runs. Lookups that found nothing are remembered.
struct ReviewLive<'a> {
    broker: &'a Broker,
    shared: Option<&'a BTreeMap<String, Execution>>,
    missed: std::sync::Mutex<Vec<String>>,
}

impl<'a> ReviewLive<'a> {
    fn new(broker: &'a Broker, shared: Option<&'a BTreeMap<String, Execution>>) -> Self {
        Self { broker, shared, missed: std::sync::Mutex::default() }
    }

    /// The execution identities (`<prefix>…`) a lookup found nothing for.
    fn missed(&self, prefix: &str) -> Vec<String> {
        self.missed
            .lock()
            .map(|m| m.iter().filter(|u| u.starts_with(prefix)).cloned().collect())
            .unwrap_or_default()
    }
}

impl LiveExecutions for ReviewLive<'_> {
    fn by_identity(&self, username: &str) -> Option<Execution> {
        let found = self
            .broker
            .live()
            .get(username)
            .or_else(|| self.shared.and_then(|s| s.get(username).cloned()));
        if found.is_none()
            && let Ok(mut m) = self.missed.lock()
        {
            m.push(username.to_owned());
        }
        found
    }
}

/// The Kubernetes executions admitted by any broker sharing the store and not yet finished
/// whose identity is one of `wanted`, by the username of that identity. The store
/// unavailable or slow: none (the review is then decided on this replica's own executions,
/// that is, denied: fail closed).
async fn shared_executions(
    broker: &Broker,
    exec_namespace: &str,
    wanted: &[String],
) -> BTreeMap<String, Execution> {
    let pending =
        match tokio::time::timeout(SHARED_LOOKUP_TIMEOUT, broker.store().in_flight()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "admission review: shared executions unavailable");
                return BTreeMap::new();
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = SHARED_LOOKUP_TIMEOUT.as_millis() as u64,
                    "admission review: shared executions timed out"
                );
                return BTreeMap::new();
            }
        };
    pending
        .iter()
        .filter_map(|p| {
            // The identity's name first (from the row's cid and nonce), so that only the
            // intents a review asks about are parsed (issue 17: with 64 executions in flight,
            // parsing every intent for every review was most of the webhook replica's extra
            // CPU). The parsed intent must be that row's execution, or it is not used.
            let name = seb_kube::model::identity_name(&p.cid, &p.nonce);
            let username = seb_kube::model::service_account_username(exec_namespace, &name);
            if !wanted.contains(&username) {
                return None;
            }
            let exec: Execution = seb_core::json::parse(&p.intent, p.intent.len()).ok()?;
            (exec.platform == seb_core::types::Platform::Kubernetes
                && exec.cid == p.cid
                && exec.nonce == p.nonce)
                .then_some((username, exec))
        })
        .collect()
}

#[derive(Clone)]
struct WebhookState {
    policy: Arc<WebhookPolicy>,
    broker: Arc<Broker>,
}

/// The Kubernetes validating admission webhook at `seb_kube::deploy::ADMISSION_PATH`.
/// Whatever the body, the answer is an AdmissionReview (denying what it cannot read), so the
/// API server's `failurePolicy: Fail` is never the only guard.
pub fn webhook_routes(broker: Arc<Broker>, policy: WebhookPolicy) -> axum::Router<AppState> {
    let st = WebhookState { policy: Arc::new(policy), broker };
    axum::Router::new().route(seb_kube::deploy::ADMISSION_PATH, post(review)).with_state(st)
}

async fn review(State(st): State<WebhookState>, body: Body) -> Response {
    let limit = seb_kube::webhook::MAX_REVIEW_BYTES;
    // Read one byte past the limit so that an oversize review is answered (denied), not cut;
    // then strict JSON (size, depth, duplicate keys) into the typed request.
    let parsed = match axum::body::to_bytes(body, limit.saturating_add(1)).await {
        Ok(b) => seb_kube::webhook::parse_review(&b, limit),
        Err(e) => seb_kube::webhook::ParsedReview {
            uid: String::new(),
            request: Err(format!("unreadable AdmissionReview body: {e}")),
        },
    };
    let local = ReviewLive::new(&st.broker, None);
    let (mut answer, mut verdict) = seb_kube::webhook::answer(&parsed, &st.policy, &local);
    // Denied because an execution identity is not one of this replica's: another replica
    // sharing the store may be running it. Decide again with every replica's executions.
    let prefix = format!("system:serviceaccount:{}:seb-exec-", st.policy.exec_namespace);
    let missed = local.missed(&prefix);
    if !verdict.allowed && !missed.is_empty() {
        let shared = shared_executions(&st.broker, &st.policy.exec_namespace, &missed).await;
        (answer, verdict) = seb_kube::webhook::answer(
            &parsed,
            &st.policy,
            &ReviewLive::new(&st.broker, Some(&shared)),
        );
    }
    let decision = if verdict.allowed { "allow" } else { "deny" };
    match &parsed.request {
        Ok(r) => tracing::info!(
            uid = %parsed.uid,
            decision,
            cid = verdict.cid.as_deref().unwrap_or(""),
            username = %r.user_info.username,
            operation = ?r.operation,
            resource = %r.resource.resource,
            namespace = r.namespace.as_deref().unwrap_or(""),
            name = r.name.as_deref().unwrap_or(""),
            reason = %verdict.reason,
            "kubernetes admission review"
        ),
        Err(e) => {
            tracing::warn!(uid = %parsed.uid, decision, failed_check = "parse", error = %e, "kubernetes admission review refused")
        }
    }
    let out = serde_json::to_vec(&answer).unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response()
}
