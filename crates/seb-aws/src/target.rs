//! [`AwsTarget`]: the broker's side of the AWS platform (the [`Target`] seam), and
//! [`AwsPlatform`]: the admission side ([`PlatformProfile`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::types::Tag;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use seb_core::pipeline::{Observation, ScopeCheck};
use seb_core::types::{Contract, Evidence, Platform};
use seb_target::{
    ConsequenceFactors, Execution, Identity, MutationResult, MutationStatus, ObserveRequest,
    OpProfile, PlatformProfile, Reconciled, Target, TargetError, TargetFuture,
};

use crate::AwsError;
use crate::arn::{Resource, TargetRef, parse_target};
use crate::profiles::{self, Profile, normalise_params};
use crate::session;
#[allow(unused_imports)]
use crate::svc::{self, Called, Live};

/// Per-account settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The role the broker assumes for every execution in this account (its trust policy is
    /// the `execution_role_trust_policy` artefact).
    pub execution_role_arn: String,
    /// `sts:ExternalId`, when the trust policy requires one.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// The AWS target's configuration (the broker's `[aws]` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsTargetConfig {
    /// Account id → execution role. An execution in an account not listed is refused.
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Send every call here instead of the public endpoints (VPC endpoints, an emulator).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// STS session lifetime; 900 s (the API minimum) unless
    /// `insecure_allow_short_sessions` is set.
    #[serde(default = "default_duration")]
    pub session_duration_secs: i32,
    /// Per-call timeout for every AWS request (ms).
    #[serde(default = "default_timeout")]
    pub call_timeout_ms: u64,
    /// S3 path-style addressing (needed for emulators on an IP address).
    #[serde(default)]
    pub s3_force_path_style: bool,
    /// TEST ONLY: allow `session_duration_secs` below 900 (AWS refuses; moto accepts), so
    /// tests can watch credentials expire.
    #[serde(default)]
    pub insecure_allow_short_sessions: bool,
    /// TEST ONLY: services whose session policy names `Resource: "*"` instead of the
    /// certified ARN, for emulators that match only `*` outside S3 (moto). Never set this
    /// against AWS: the session would be scoped by action only.
    #[serde(default)]
    pub insecure_wildcard_resource_services: BTreeSet<String>,
}

fn default_duration() -> i32 {
    900
}
fn default_timeout() -> u64 {
    10_000
}

impl AwsTargetConfig {
    /// A configuration with one account and the defaults.
    pub fn new(account: &str, execution_role_arn: &str) -> Self {
        Self {
            accounts: [(
                account.to_owned(),
                AccountConfig {
                    execution_role_arn: execution_role_arn.to_owned(),
                    external_id: None,
                },
            )]
            .into(),
            endpoint_url: None,
            session_duration_secs: default_duration(),
            call_timeout_ms: default_timeout(),
            s3_force_path_style: false,
            insecure_allow_short_sessions: false,
            insecure_wildcard_resource_services: BTreeSet::new(),
        }
    }

    fn validate(&self) -> Result<(), AwsError> {
        let d = self.session_duration_secs;
        let allowed = (900..=43_200).contains(&d) || (self.insecure_allow_short_sessions && d >= 1);
        if !allowed {
            return Err(AwsError::Config(format!(
                "session_duration_secs `{d}` is outside 900..=43200"
            )));
        }
        if self.accounts.is_empty() {
            return Err(AwsError::Config("no accounts configured".into()));
        }
        for (acct, a) in &self.accounts {
            let want = format!(":iam::{acct}:role/");
            if !a.execution_role_arn.starts_with("arn:") || !a.execution_role_arn.contains(&want) {
                return Err(AwsError::Config(format!(
                    "execution role `{}` is not a role of account `{acct}`",
                    a.execution_role_arn
                )));
            }
        }
        for s in &self.insecure_wildcard_resource_services {
            tracing::warn!(service = %s, "insecure_wildcard_resource_services: session policies are scoped by action only");
        }
        Ok(())
    }
}

/// The broker's own credentials: used to assume execution roles and to observe, never to
/// mutate.
#[derive(Clone)]
pub enum BrokerCredentials {
    /// Static keys (tests, or keys injected by the operator's secret store).
    Static {
        access_key_id: String,
        secret_access_key: Zeroizing<String>,
        session_token: Option<Zeroizing<String>>,
    },
    /// The SDK's default chain (environment, profile, web identity, ECS, IMDS).
    DefaultChain,
}

impl std::fmt::Debug for BrokerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            Self::DefaultChain => f.write_str("DefaultChain"),
        }
    }
}

/// The session credentials inside [`Identity::secret`] (JSON), wiped on drop.
#[derive(Deserialize, Serialize, Zeroize, ZeroizeOnDrop)]
struct SessionSecret {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

/// Timings of one step, for benchmarks and metrics (not part of any record).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MutateTimings {
    pub call: Duration,
    pub post_observe: Duration,
}

/// The AWS target.
#[derive(Debug, Clone)]
pub struct AwsTarget {
    cfg: AwsTargetConfig,
    /// The broker's own configuration (read identity, STS).
    base: SdkConfig,
}

/// An [`AwsError`] is a refusal by the pure checks, with no underlying error: its message
/// becomes the context (a failed AWS call keeps the SDK error as the source instead, see
/// `svc::Failure`).
pub(crate) fn target_err(e: AwsError) -> TargetError {
    match e {
        AwsError::Invalid(m) | AwsError::Config(m) => TargetError::invalid(m),
    }
}

/// A service compiled out of this build.
#[allow(dead_code)]
fn not_compiled(service: &str) -> TargetError {
    TargetError::invalid(format!(
        "support for `{service}` is not compiled into this broker (cargo feature `{service}`)"
    ))
}

/// Project the live model onto the pointers (`""` is the whole object; absent → `null`).
pub fn project(live: &Value, pointers: &[String]) -> BTreeMap<String, Value> {
    pointers
        .iter()
        .map(|p| {
            let v = if p.is_empty() {
                live.clone()
            } else {
                live.pointer(p).cloned().unwrap_or(Value::Null)
            };
            (p.clone(), v)
        })
        .collect()
}

/// Everything the profile needs about one call, parsed and validated.
#[cfg_attr(
    not(any(
        feature = "ec2",
        feature = "s3",
        feature = "dynamodb",
        feature = "ssm",
        feature = "autoscaling"
    )),
    allow(dead_code)
)]
struct Prepared {
    profile: &'static Profile,
    target: TargetRef,
    resource: Resource,
    params: Value,
}

fn prepare(op: &str, target: &Value, params: &Value) -> Result<Prepared, TargetError> {
    let profile = profiles::profile(op).map_err(target_err)?;
    let (target, resource) =
        parse_target(target, profile.service, profile.resource).map_err(target_err)?;
    let params = normalise_params(profile.op, params).map_err(target_err)?;
    Ok(Prepared { profile, target, resource, params })
}

impl AwsTarget {
    /// Build the target: loads the broker's SDK configuration once (one shared HTTP client,
    /// aws-lc-rs TLS). Fails on an invalid configuration.
    pub async fn new(cfg: AwsTargetConfig, creds: BrokerCredentials) -> Result<Self, AwsError> {
        cfg.validate()?;
        let timeout = Duration::from_millis(cfg.call_timeout_ms);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build());
        if let Some(ep) = &cfg.endpoint_url {
            loader = loader.endpoint_url(ep);
        }
        if let BrokerCredentials::Static { access_key_id, secret_access_key, session_token } =
            &creds
        {
            loader = loader.credentials_provider(Credentials::new(
                access_key_id.clone(),
                secret_access_key.as_str(),
                session_token.as_ref().map(|t| t.as_str().to_owned()),
                None,
                "seb-broker",
            ));
        }
        let base = loader.load().await;
        Ok(Self { cfg, base })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AwsTargetConfig {
        &self.cfg
    }

    fn read_sdk(&self, region: &str) -> SdkConfig {
        self.base.to_builder().region(Region::new(region.to_owned())).build()
    }

    /// The SDK configuration of one execution: the session's credentials only, no retries
    /// (a retried conditional write could report `conflict` for our own first attempt).
    fn scoped_sdk(&self, region: &str, secret: &SessionSecret, expires_at_ms: u64) -> SdkConfig {
        let expiry = std::time::UNIX_EPOCH + Duration::from_millis(expires_at_ms);
        let creds = Credentials::new(
            secret.access_key_id.clone(),
            secret.secret_access_key.clone(),
            Some(secret.session_token.clone()),
            Some(expiry),
            "seb-execution-session",
        );
        self.base
            .to_builder()
            .region(Region::new(region.to_owned()))
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .retry_config(RetryConfig::disabled())
            .build()
    }

    /// The live model of the resource (see `crate::profiles::applied`), read with the broker's
    /// read identity. `detail` also reads what reconciliation needs (an S3 object's body).
    async fn read(&self, p: &Prepared, detail: bool) -> Result<Live, TargetError> {
        let sdk = self.read_sdk(&p.target.region);
        let _ = (&sdk, detail);
        match p.profile.service {
            "s3" => {
                #[cfg(feature = "s3")]
                return svc::s3::observe(&sdk, self.cfg.s3_force_path_style, &p.resource, detail)
                    .await;
                #[cfg(not(feature = "s3"))]
                return Err(not_compiled("s3"));
            }
            "ec2" => {
                #[cfg(feature = "ec2")]
                return svc::ec2::observe(&sdk, &p.resource).await;
                #[cfg(not(feature = "ec2"))]
                return Err(not_compiled("ec2"));
            }
            "dynamodb" => {
                #[cfg(feature = "dynamodb")]
                return svc::dynamodb::observe(&sdk, &p.resource, &p.params).await;
                #[cfg(not(feature = "dynamodb"))]
                return Err(not_compiled("dynamodb"));
            }
            "ssm" => {
                #[cfg(feature = "ssm")]
                return svc::ssm::observe(&sdk, &p.resource).await;
                #[cfg(not(feature = "ssm"))]
                return Err(not_compiled("ssm"));
            }
            "autoscaling" => {
                #[cfg(feature = "autoscaling")]
                return svc::autoscaling::observe(&sdk, &p.resource).await;
                #[cfg(not(feature = "autoscaling"))]
                return Err(not_compiled("autoscaling"));
            }
            other => Err(not_compiled(other)),
        }
    }

    async fn call(
        &self,
        p: &Prepared,
        sdk: &SdkConfig,
        observed_version: Option<&str>,
    ) -> Result<Called, TargetError> {
        let _ = (sdk, observed_version);
        match p.profile.service {
            "s3" => {
                #[cfg(feature = "s3")]
                return svc::s3::mutate(
                    sdk,
                    self.cfg.s3_force_path_style,
                    p.profile.op,
                    &p.resource,
                    &p.params,
                    observed_version,
                )
                .await;
                #[cfg(not(feature = "s3"))]
                return Err(not_compiled("s3"));
            }
            "ec2" => {
                #[cfg(feature = "ec2")]
                return svc::ec2::mutate(sdk, p.profile.op, &p.resource, &p.params).await;
                #[cfg(not(feature = "ec2"))]
                return Err(not_compiled("ec2"));
            }
            "dynamodb" => {
                #[cfg(feature = "dynamodb")]
                return svc::dynamodb::mutate(
                    sdk,
                    p.profile.op,
                    &p.resource,
                    &p.params,
                    observed_version,
                )
                .await;
                #[cfg(not(feature = "dynamodb"))]
                return Err(not_compiled("dynamodb"));
            }
            "ssm" => {
                #[cfg(feature = "ssm")]
                return svc::ssm::mutate(sdk, &p.resource, &p.params, observed_version).await;
                #[cfg(not(feature = "ssm"))]
                return Err(not_compiled("ssm"));
            }
            "autoscaling" => {
                #[cfg(feature = "autoscaling")]
                return svc::autoscaling::mutate(sdk, p.profile.op, &p.resource, &p.params).await;
                #[cfg(not(feature = "autoscaling"))]
                return Err(not_compiled("autoscaling"));
            }
            other => Err(not_compiled(other)),
        }
    }

    /// The session policy this target generates for an execution (exact unless the service
    /// is listed in `insecure_wildcard_resource_services`).
    pub fn session_policy_for(&self, op: &str, target: &Value) -> Result<Value, TargetError> {
        let profile = profiles::profile(op).map_err(target_err)?;
        let (t, _) = parse_target(target, profile.service, profile.resource).map_err(target_err)?;
        let resource = if self.cfg.insecure_wildcard_resource_services.contains(profile.service) {
            "*"
        } else {
            t.arn.as_str()
        };
        Ok(session::session_policy(profile.action, resource))
    }

    /// Step 14: `sts:AssumeRole` into the account's execution role.
    async fn mint_inner(&self, exec: &Execution) -> Result<Identity, TargetError> {
        if exec.platform != Platform::Aws {
            return Err(TargetError::invalid("not an AWS execution"));
        }
        let p = prepare(&exec.op, &exec.target, &exec.params)?;
        let account = self.cfg.accounts.get(&p.target.account).ok_or_else(|| {
            TargetError::invalid(format!("account `{}` is not configured", p.target.account))
        })?;
        let policy = self.session_policy_for(&exec.op, &exec.target)?;
        let tags = session::session_tags(&exec.cid, &exec.nonce, exec.risk_level.get())
            .map_err(target_err)?;
        let source_identity = session::source_identity(&exec.agent).map_err(target_err)?;
        let session_name = session::session_name(&exec.cid);
        let mut req = aws_sdk_sts::Client::new(&self.read_sdk(&p.target.region))
            .assume_role()
            .role_arn(&account.execution_role_arn)
            .role_session_name(&session_name)
            .duration_seconds(self.cfg.session_duration_secs)
            .policy(policy.to_string())
            .source_identity(&source_identity)
            .set_external_id(account.external_id.clone());
        for (k, v) in tags {
            let tag = Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| TargetError::invalid_from("session tag", e))?;
            req = req.tags(tag);
        }
        let out = req.send().await.map_err(|e| {
            let f = svc::failure(e);
            match f.status {
                Some(s) if (400..500).contains(&s) => TargetError::Refused {
                    context: format!("sts:AssumeRole: HTTP {s} {}", f.code.unwrap_or_default()),
                    source: Some(f.source),
                },
                _ => TargetError::Unavailable {
                    context: "sts:AssumeRole".into(),
                    source: Some(f.source),
                },
            }
        })?;
        let c = out
            .credentials()
            .ok_or_else(|| TargetError::unavailable("sts:AssumeRole returned no credentials"))?;
        let expires_at_ms = u64::try_from(c.expiration().secs()).unwrap_or(0).saturating_mul(1000);
        let secret = SessionSecret {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().to_owned(),
        };
        let secret_json = Zeroizing::new(
            serde_json::to_string(&secret)
                .map_err(|e| TargetError::invalid_from("session secret as JSON", e))?,
        );
        let user = out.assumed_role_user();
        let name = user.map(|u| u.arn().to_owned()).unwrap_or_else(|| session_name.clone());
        tracing::info!(cid = %exec.cid, nonce = %exec.nonce, identity = %name, "minted execution session");
        Ok(Identity {
            name,
            secret: secret_json,
            expires_at_ms,
            handle: json!({
                "cid": exec.cid,
                "nonce": exec.nonce,
                "role_arn": account.execution_role_arn,
                "session_name": session_name,
                "assumed_role_id": user.map(|u| u.assumed_role_id()),
                "access_key_id": c.access_key_id(),
                "source_identity": out.source_identity(),
                "region": p.target.region,
            }),
        })
    }

    /// Step 15 with per-phase timings.
    pub async fn mutate_timed(
        &self,
        exec: &Execution,
        identity: &Identity,
    ) -> Result<(MutationResult, MutateTimings), TargetError> {
        if exec.platform != Platform::Aws {
            return Err(TargetError::invalid("not an AWS execution"));
        }
        if identity.handle.get("cid").and_then(Value::as_str) != Some(exec.cid.as_str())
            || identity.handle.get("nonce").and_then(Value::as_str) != Some(exec.nonce.as_str())
        {
            return Err(TargetError::invalid("the identity was not minted for this execution"));
        }
        let p = prepare(&exec.op, &exec.target, &exec.params)?;
        let secret: SessionSecret = serde_json::from_str(&identity.secret)
            .map_err(|_| TargetError::invalid("the identity's secret is not an STS session"))?;
        let sdk = self.scoped_sdk(&p.target.region, &secret, identity.expires_at_ms);
        drop(secret);
        // Pre-call checks the platform would skip (moto accepts a capacity above MaxSize).
        if let Some(reason) = capacity_violation(&p, &exec.evidence) {
            return Ok((
                MutationResult {
                    status: MutationStatus::Failed,
                    target_request_id: None,
                    result: None,
                    post_state: None,
                    error: Some(reason),
                },
                MutateTimings::default(),
            ));
        }
        let t0 = std::time::Instant::now();
        let called = self.call(&p, &sdk, exec.observed_version.as_deref()).await?;
        let call = t0.elapsed();
        let t1 = std::time::Instant::now();
        let post_state = if called.status == MutationStatus::Applied {
            let mut ptrs: BTreeSet<String> =
                p.profile.default_pointers.iter().map(|s| (*s).to_owned()).collect();
            ptrs.extend(exec.evidence.keys().cloned());
            let ptrs: Vec<String> = ptrs.into_iter().collect();
            match self.read(&p, false).await {
                Ok(live) => Some(project(&live.object, &ptrs)),
                Err(e) => {
                    tracing::warn!(cid = %exec.cid, error = %e, "post-state unreadable");
                    None
                }
            }
        } else {
            None
        };
        let post_observe = t1.elapsed();
        tracing::info!(cid = %exec.cid, nonce = %exec.nonce, status = ?called.status, "aws mutation");
        Ok((
            MutationResult {
                status: called.status,
                target_request_id: called.request_id,
                result: called.result,
                post_state,
                error: called.error,
            },
            MutateTimings { call, post_observe },
        ))
    }

    async fn observe_inner(&self, req: &ObserveRequest) -> Result<Observation, TargetError> {
        let p = prepare(&req.op, &req.target, &req.params)?;
        let live = self.read(&p, false).await?;
        let pointers: Vec<String> = if req.pointers.is_empty() {
            p.profile.default_pointers.iter().map(|s| (*s).to_owned()).collect()
        } else {
            req.pointers.clone()
        };
        Ok(Observation { projection: project(&live.object, &pointers), version: live.version })
    }

    async fn reconcile_inner(&self, exec: &Execution) -> Result<Reconciled, TargetError> {
        let p = prepare(&exec.op, &exec.target, &exec.params)?;
        let live = self.read(&p, true).await?;
        if profiles::applied(p.profile.op, &live.object, &p.params) {
            return Ok(Reconciled::Applied);
        }
        let keys: Vec<String> = exec.evidence.keys().cloned().collect();
        let now = project(&live.object, &keys);
        if seb_core::drift::compare(&exec.evidence, &BTreeMap::new(), &now).is_ok() {
            Ok(Reconciled::NotApplied)
        } else {
            Ok(Reconciled::Uncertain)
        }
    }
}

/// Auto Scaling sizes must stay within the drift-checked bounds: `min <= desired <= max`.
fn capacity_violation(p: &Prepared, evidence: &BTreeMap<String, Value>) -> Option<String> {
    use profiles::Op;
    if !matches!(
        p.profile.op,
        Op::AutoScalingSetDesiredCapacity | Op::AutoScalingUpdateAutoScalingGroup
    ) {
        return None;
    }
    let get = |k: &str| {
        p.params
            .get(k)
            .and_then(Value::as_i64)
            .or_else(|| evidence.get(&format!("/{k}")).and_then(Value::as_i64))
    };
    let (min, max, des) = (get("min_size"), get("max_size"), get("desired_capacity"));
    match (min, max, des) {
        (Some(a), Some(b), _) if a > b => Some(format!("min_size {a} exceeds max_size {b}")),
        (Some(a), _, Some(d)) if d < a => {
            Some(format!("desired_capacity {d} is below min_size {a}"))
        }
        (_, Some(b), Some(d)) if d > b => {
            Some(format!("desired_capacity {d} exceeds max_size {b}"))
        }
        _ => None,
    }
}

impl ScopeCheck for AwsTarget {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        AwsPlatform.check_scope(contract)
    }
    fn check_evidence(&self, contract: &Contract, evidence: &Evidence) -> Result<(), String> {
        AwsPlatform.check_evidence(contract, evidence)
    }
}

impl Target for AwsTarget {
    fn platform(&self) -> Platform {
        Platform::Aws
    }

    fn profile(&self, op: &str) -> Result<OpProfile, TargetError> {
        let p = profiles::profile(op).map_err(target_err)?;
        Ok(OpProfile { precondition: p.precondition.describe(), irreversible: p.irreversible })
    }

    fn observe<'a>(&'a self, req: &'a ObserveRequest) -> TargetFuture<'a, Observation> {
        Box::pin(self.observe_inner(req))
    }

    fn mint<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Identity> {
        Box::pin(self.mint_inner(exec))
    }

    fn mutate<'a>(
        &'a self,
        exec: &'a Execution,
        identity: &'a Identity,
    ) -> TargetFuture<'a, MutationResult> {
        Box::pin(async move { self.mutate_timed(exec, identity).await.map(|(r, _)| r) })
    }

    /// AWS cannot revoke one STS session. Retiring drops the credentials from memory (the
    /// secret is zeroised); the session stays valid until its expiry (900 s), but its session
    /// policy allows only the certified action on the certified resource, and the
    /// precondition (where one exists) makes a replay of the same call fail. See docs/aws.md.
    fn retire<'a>(&'a self, exec: &'a Execution, identity: Identity) -> TargetFuture<'a, ()> {
        Box::pin(async move {
            tracing::info!(
                cid = %exec.cid,
                nonce = %exec.nonce,
                identity = %identity.name,
                expires_at_ms = identity.expires_at_ms,
                "execution session retired (dropped; AWS sessions expire, they cannot be revoked one by one)"
            );
            drop(identity);
            Ok(())
        })
    }

    fn reconcile<'a>(&'a self, exec: &'a Execution) -> TargetFuture<'a, Reconciled> {
        Box::pin(self.reconcile_inner(exec))
    }
}

/// The admission side of AWS: pure rules, no I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsPlatform;

impl ScopeCheck for AwsPlatform {
    fn check_scope(&self, contract: &Contract) -> Result<(), String> {
        if contract.platform != Platform::Aws {
            return Err("not an AWS contract".into());
        }
        profiles::check_scope(contract)
    }
    fn check_evidence(&self, contract: &Contract, evidence: &Evidence) -> Result<(), String> {
        if contract.platform != Platform::Aws {
            return Err("not an AWS contract".into());
        }
        profiles::check_evidence(contract, evidence)
    }
}

impl PlatformProfile for AwsPlatform {
    fn platform(&self) -> Platform {
        Platform::Aws
    }

    fn compile(
        &self,
        op: &str,
        target: &Value,
        params: &Value,
    ) -> Result<(Value, Value), TargetError> {
        let p = prepare(op, target, params)?;
        let t = serde_json::to_value(&p.target)
            .map_err(|e| TargetError::invalid_from("target as JSON", e))?;
        Ok((t, p.params))
    }

    fn default_pointers(&self, op: &str, _target: &Value, _params: &Value) -> Vec<String> {
        profiles::profile(op)
            .map(|p| p.default_pointers.iter().map(|s| (*s).to_owned()).collect())
            .unwrap_or_default()
    }

    fn consequence(&self, op: &str, _target: &Value, params: &Value) -> ConsequenceFactors {
        match profiles::profile(op) {
            Ok(p) => {
                let params = normalise_params(p.op, params).unwrap_or_else(|_| params.clone());
                profiles::consequence(p.op, &params)
            }
            Err(e) => ConsequenceFactors {
                blast_radius: 1.0,
                privilege_expansion: 1.0,
                data_sensitivity: 1.0,
                irreversibility: 1.0,
                uncertainty: 1.0,
                reasons: vec![e.to_string()],
            },
        }
    }

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

    fn sensitive(&self, op: &str, _target: &Value) -> seb_target::Sensitive {
        profiles::profile(op).map(|p| profiles::sensitive(p.op)).unwrap_or_default()
    }

    fn applicable(&self, op: &str, observed: &Observation) -> Result<(), String> {
        match profiles::profile(op) {
            Ok(p) if profiles::needs_existing(p.op) && observed.version.is_none() => Err(format!(
                "`{op}` needs an object that observation found absent: it does not exist"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let ok =
            AwsTargetConfig::new("123456789012", "arn:aws:iam::123456789012:role/seb-execution");
        assert!(ok.validate().is_ok());
        let short = AwsTargetConfig { session_duration_secs: 60, ..ok.clone() };
        assert!(short.validate().is_err());
        assert!(
            AwsTargetConfig { insecure_allow_short_sessions: true, ..short }.validate().is_ok()
        );
        let wrong =
            AwsTargetConfig::new("123456789012", "arn:aws:iam::999999999999:role/seb-execution");
        assert!(wrong.validate().is_err());
        let parsed: AwsTargetConfig = serde_json::from_value(json!({
            "accounts": {"123456789012": {"execution_role_arn": "arn:aws:iam::123456789012:role/seb-execution"}}
        }))
        .unwrap();
        assert_eq!(
            parsed,
            AwsTargetConfig::new("123456789012", "arn:aws:iam::123456789012:role/seb-execution")
        );
    }

    #[test]
    fn projection() {
        let live = json!({"etag": "\"abc\"", "content_length": 3});
        let p = project(&live, &["/etag".into(), "/missing".into(), "".into()]);
        assert_eq!(p["/etag"], json!("\"abc\""));
        assert_eq!(p["/missing"], Value::Null);
        assert_eq!(p[""], live);
        assert_eq!(project(&Value::Null, &["/etag".into()])["/etag"], Value::Null);
    }
}
