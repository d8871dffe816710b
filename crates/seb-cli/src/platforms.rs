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

/// The webhook's index from execution identities (usernames) to the `(cid, nonce)` of the
/// execution each names, filled incrementally from [`seb_store::Store::in_flight_keys`]. A
/// name is a hash of the cid and nonce, so the index only says which row to read: whether
/// that execution is live is read from the store for every review
/// ([`seb_store::Store::in_flight_execution`]), never remembered (issue 17).
#[derive(Default)]
struct IdentityIndex {
    /// Username → (admit index, cid, nonce).
    names: std::collections::HashMap<String, (u64, String, String)>,
    /// The largest admit index read so far.
    seen: Option<u64>,
}

/// The most names the index keeps; above it the oldest half is dropped (a dropped name that
/// is still in flight is found again by the full read a miss falls back to).
const IDENTITY_INDEX_CAP: usize = 16_384;

impl IdentityIndex {
    fn learn(&mut self, keys: Vec<seb_store::InFlightKey>, exec_namespace: &str) {
        for k in keys {
            let name = seb_kube::model::identity_name(&k.cid, &k.nonce);
            let username = seb_kube::model::service_account_username(exec_namespace, &name);
            self.seen = Some(self.seen.map_or(k.admit_index, |s| s.max(k.admit_index)));
            self.names.insert(username, (k.admit_index, k.cid, k.nonce));
        }
        if self.names.len() > IDENTITY_INDEX_CAP {
            let mut at: Vec<u64> = self.names.values().map(|v| v.0).collect();
            at.sort_unstable();
            let cut = at.get(at.len() / 2).copied().unwrap_or(0);
            self.names.retain(|_, v| v.0 >= cut);
        }
    }

    fn keys_of(&self, wanted: &[String]) -> Vec<(String, String, String)> {
        wanted
            .iter()
            .filter_map(|u| self.names.get(u).map(|(_, c, n)| (u.clone(), c.clone(), n.clone())))
            .collect()
    }
}

/// The Kubernetes executions admitted by any broker sharing the store and not yet finished
/// whose identity is one of `wanted`, by the username of that identity. The store
/// unavailable or slow: none (the review is then decided on this replica's own executions,
/// that is, denied: fail closed).
///
/// Issue 17: a review that missed the answering replica used to read every in-flight row
/// with its intent (6,680 such reads for 2,000 executions with three replicas, ~54 rows
/// each, most of PostgreSQL's extra CPU there). Now the names of executions reserved since
/// the last read come from the index on admit_index, and only the wanted rows are read, by
/// primary key; a name still unknown after that falls back to reading every in-flight key.
async fn shared_executions(
    store: &dyn seb_store::Store,
    index: &std::sync::Mutex<IdentityIndex>,
    exec_namespace: &str,
    wanted: &[String],
) -> BTreeMap<String, Execution> {
    let known = |index: &std::sync::Mutex<IdentityIndex>| {
        index.lock().map(|i| (i.keys_of(wanted), i.seen)).unwrap_or_default()
    };
    let learn = |index: &std::sync::Mutex<IdentityIndex>, keys| {
        if let Ok(mut i) = index.lock() {
            i.learn(keys, exec_namespace);
        }
    };
    let lookup = async {
        let (mut hits, seen) = known(index);
        if hits.len() < wanted.len() {
            learn(index, store.in_flight_keys(seen).await?);
            hits = known(index).0;
        }
        if hits.len() < wanted.len() {
            learn(index, store.in_flight_keys(None).await?);
            hits = known(index).0;
        }
        let mut found = BTreeMap::new();
        for (username, cid, nonce) in hits {
            // Live only if the store still has it in flight, now.
            let Some(p) = store.in_flight_execution(&cid, &nonce).await? else {
                if let Ok(mut i) = index.lock() {
                    i.names.remove(&username);
                }
                continue;
            };
            // The parsed intent must be that row's own execution, or it is not used.
            let Ok(exec) = seb_core::json::parse::<Execution>(&p.intent, p.intent.len()) else {
                continue;
            };
            if exec.platform == seb_core::types::Platform::Kubernetes
                && exec.cid == p.cid
                && exec.nonce == p.nonce
            {
                found.insert(username, exec);
            }
        }
        Ok::<_, seb_store::StoreError>(found)
    };
    match tokio::time::timeout(SHARED_LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "admission review: shared executions unavailable");
            BTreeMap::new()
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = SHARED_LOOKUP_TIMEOUT.as_millis() as u64,
                "admission review: shared executions timed out"
            );
            BTreeMap::new()
        }
    }
}

#[derive(Clone)]
struct WebhookState {
    policy: Arc<WebhookPolicy>,
    broker: Arc<Broker>,
    identities: Arc<std::sync::Mutex<IdentityIndex>>,
}

/// The Kubernetes validating admission webhook at `seb_kube::deploy::ADMISSION_PATH`.
/// Whatever the body, the answer is an AdmissionReview (denying what it cannot read), so the
/// API server's `failurePolicy: Fail` is never the only guard.
pub fn webhook_routes(broker: Arc<Broker>, policy: WebhookPolicy) -> axum::Router<AppState> {
    let st = WebhookState { policy: Arc::new(policy), broker, identities: Arc::default() };
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
        let shared = shared_executions(
            st.broker.store().as_ref(),
            &st.identities,
            &st.policy.exec_namespace,
            &missed,
        )
        .await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use seb_store::sqlite::SqliteStore;
    use seb_store::{Reservation, ReserveResult, Store};

    fn execution(cid: &str, nonce: &str) -> Execution {
        let target = serde_json::json!({"cluster": "c", "api_version": "apps/v1",
            "kind": "Deployment", "namespace": "prod", "name": "web"});
        let params = serde_json::json!({"replicas": 3});
        Execution {
            cid: cid.into(),
            nonce: nonce.into(),
            agent: "agent-1".into(),
            risk_level: seb_core::types::RiskLevel::new(1).unwrap(),
            platform: seb_core::types::Platform::Kubernetes,
            op: "scale".into(),
            target: target.clone(),
            params: params.clone(),
            contract: seb_core::types::Contract {
                platform: seb_core::types::Platform::Kubernetes,
                op: "scale".into(),
                target,
                params,
                constraints: vec![],
                risk_level: seb_core::types::RiskLevel::new(1).unwrap(),
            },
            evidence: BTreeMap::new(),
            observed_version: None,
            break_glass: false,
        }
    }

    async fn reserve(store: &dyn Store, exec: &Execution) {
        let e = store.epochs().await.unwrap();
        let r = Reservation {
            cid: exec.cid.clone(),
            nonce: exec.nonce.clone(),
            agent: exec.agent.clone(),
            policy_epoch: e.policy_epoch,
            revocation_epoch: e.revocation_epoch,
            admit_entry: format!("admit {}", exec.nonce).into_bytes(),
            intent: serde_json::to_vec(exec).unwrap(),
            at_ms: 1,
        };
        assert!(matches!(store.reserve(r).await.unwrap(), ReserveResult::Reserved { .. }));
    }

    fn username(exec: &Execution) -> String {
        let name = seb_kube::model::identity_name(&exec.cid, &exec.nonce);
        seb_kube::model::service_account_username("seb-exec", &name)
    }

    /// The index remembers names only: an execution that finished is not live on the next
    /// review although its name is known; one reserved after the index was filled is found
    /// by the incremental read; an unknown identity is found by nobody.
    #[tokio::test]
    async fn the_webhook_index_never_answers_for_liveness() {
        let store = SqliteStore::open_in_memory().unwrap();
        let index = std::sync::Mutex::new(IdentityIndex::default());
        let first = execution("11111111-aaaa-4aaa-8aaa-000000000001", "n1");
        reserve(&store, &first).await;
        let wanted = vec![username(&first)];
        let found = shared_executions(&store, &index, "seb-exec", &wanted).await;
        assert_eq!(found.get(&wanted[0]), Some(&first), "in flight: found");

        store.complete(&first.cid, &first.nonce, b"outcome".to_vec()).await.unwrap();
        let found = shared_executions(&store, &index, "seb-exec", &wanted).await;
        assert!(found.is_empty(), "finished: not live, whatever the index remembers");

        let second = execution("22222222-bbbb-4bbb-8bbb-000000000002", "n2");
        reserve(&store, &second).await;
        let wanted = vec![username(&second), "system:serviceaccount:seb-exec:seb-exec-0-0".into()];
        let found = shared_executions(&store, &index, "seb-exec", &wanted).await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found.get(&wanted[0]), Some(&second), "reserved since: found");
        // Ledger: admit 0, outcome 1, admit 2.
        assert_eq!(index.lock().unwrap().seen, Some(2), "the second admit is ledger index 2");
    }
}
