//! The three platforms the broker experiments run on: the in-memory test double, a real
//! kube-apiserver (seb-testinfra) and moto_server with IAM enforcement (seb-testinfra).
//! Each builds certificates the way admission would: compile, observe the live state for the
//! evidence, sign.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow};
use seb_core::pipeline::Observation;
use seb_core::types::{Contract, Platform, RiskLevel};
use seb_target::test_double::TestTarget;
use seb_target::{ObserveRequest, PlatformProfile, Target};
use serde_json::{Value, json};

use crate::fixtures::Cert;
use crate::rng::Rng;

/// Where the execution ServiceAccounts live.
pub const EXEC_NS: &str = "seb-exec";

/// A platform under test.
#[derive(Clone)]
pub enum Workload {
    /// In-memory test double.
    TestDouble(Arc<TestTarget>),
    /// kube-apiserver + etcd.
    Kube {
        target: Arc<seb_kube::KubeTarget>,
        ns: String,
        /// What another process needs to drive the same cluster as the broker.
        conn: KubeConn,
        /// The cluster administrator (sets up workloads, inspects the cluster).
        admin: kube::Client,
    },
    /// moto_server, IAM enforcement on.
    Aws { target: Arc<seb_aws::AwsTarget>, bucket: String },
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A kube-apiserver and the broker's token on it, for a broker in another process (the crash
/// experiment's child) to build the same [`seb_kube::KubeTarget`].
/// Its `Debug` leaves the token out.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct KubeConn {
    pub url: String,
    pub ca_pem: String,
    pub token: String,
    /// The protected namespace.
    pub ns: String,
}

impl std::fmt::Debug for KubeConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConn")
            .field("url", &self.url)
            .field("ns", &self.ns)
            .finish_non_exhaustive()
    }
}

impl KubeConn {
    /// A client configuration authenticating with the token.
    pub fn config(&self) -> Result<kube::Config> {
        let mut c = kube::Config::new(self.url.parse().context("kube url")?);
        let mut certs = Vec::new();
        for c in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            certs.push(c.context("ca pem")?.to_vec());
        }
        c.root_cert = Some(certs);
        c.auth_info.token = Some(self.token.clone().into());
        c.default_namespace = "default".into();
        Ok(c)
    }

    /// The broker's target on this cluster (cluster `eval`, protecting `ns`).
    pub fn target(&self) -> Result<seb_kube::KubeTarget> {
        seb_kube::install_crypto_provider();
        let tcfg = seb_kube::KubeTargetConfig::new(
            "eval",
            EXEC_NS,
            seb_kube::ScopePolicy::new([self.ns.clone()]),
        );
        seb_kube::KubeTarget::new(tcfg, self.config()?).map_err(|e| anyhow!("kube target: {e}"))
    }
}

/// One prepared presentation and admission's observation (for the no-drift ablation).
#[derive(Debug)]
pub struct Prepared {
    pub body: Vec<u8>,
    pub target: Value,
    pub observation: Observation,
}

impl Workload {
    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TestDouble(_) => "test-double",
            Self::Kube { .. } => "kubernetes",
            Self::Aws { .. } => "aws",
        }
    }

    /// The target as the broker sees it.
    pub fn target(&self) -> Arc<dyn Target> {
        match self {
            Self::TestDouble(t) => t.clone(),
            Self::Kube { target, .. } => target.clone(),
            Self::Aws { target, .. } => target.clone(),
        }
    }

    /// A fresh in-memory test double.
    pub fn test_double() -> Self {
        Self::TestDouble(Arc::new(TestTarget::in_memory()))
    }

    /// Kubernetes: RBAC for the broker, one namespace with `objects` ConfigMaps.
    pub async fn kube(objects: usize) -> Result<Self> {
        seb_kube::install_crypto_provider();
        let server = seb_testinfra::kube::KubeApiServer::shared()
            .map_err(|e| anyhow!("kube-apiserver: {e}"))?;
        let conn = |token: &str| KubeConn {
            url: server.url().to_owned(),
            ca_pem: String::from_utf8_lossy(server.ca_pem()).into_owned(),
            token: token.to_owned(),
            ns: String::new(),
        };
        let cfg = |token: &str| conn(token).config();
        let admin = kube::Client::try_from(cfg(&server.tokens().admin)?)
            .map_err(|e| anyhow!("kube client: {e}"))?;
        let ns = seb_testinfra::kube::unique_name("eval");
        let mut dcfg = seb_kube::deploy::DeployConfig::new(
            vec![ns.clone()],
            String::from_utf8_lossy(server.ca_pem()).into_owned(),
        );
        dcfg.broker = seb_kube::deploy::Subject::User("broker".into());
        dcfg.exec_namespace = EXEC_NS.into();
        dcfg.emit_admission_policy = false;
        let objs: Vec<Value> = seb_kube::deploy::objects(&dcfg)
            .into_iter()
            .filter(|o| {
                o.get("kind").and_then(Value::as_str) != Some("ValidatingWebhookConfiguration")
            })
            .collect();
        seb_kube::deploy::apply(&admin, &objs).await.map_err(|e| anyhow!("deploy: {e}"))?;
        let ar = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        let cms: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(admin.clone(), &ns, &ar);
        for i in 0..objects {
            let cm: kube::api::DynamicObject = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i}")}, "data": {"n": "0"}}))?;
            cms.create(&kube::api::PostParams::default(), &cm)
                .await
                .map_err(|e| anyhow!("create configmap: {e}"))?;
        }
        let conn = KubeConn { ns: ns.clone(), ..conn(&server.tokens().broker) };
        let target = conn.target()?;
        Ok(Self::Kube { target: Arc::new(target), ns, conn, admin })
    }

    /// AWS on moto: the broker user with the shipped policy, an execution role, a bucket.
    pub async fn aws() -> Result<Self> {
        use seb_testinfra::moto::{ACCOUNT, MotoServer};
        let moto = MotoServer::shared().map_err(|e| anyhow!("moto: {e}"))?;
        let run = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dcfg = seb_aws::DeployConfig {
            broker_principal_arn: format!(
                "arn:aws:iam::{ACCOUNT}:user/seb-eval-broker-{pid}-{run}"
            ),
            accounts: vec![ACCOUNT.into()],
            execution_role_name: format!("seb-execution-eval-{pid}-{run}"),
            ..seb_aws::DeployConfig::example()
        };
        let a = seb_aws::artefacts(&dcfg);
        let user = moto
            .create_user(&format!("seb-eval-broker-{pid}-{run}"), &a.broker_role_policy)
            .map_err(|e| anyhow!("moto user: {e}"))?;
        let broad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]});
        let role = moto
            .create_role(&dcfg.execution_role_name, &a.execution_role_trust_policy, &broad)
            .map_err(|e| anyhow!("moto role: {e}"))?;
        let bucket = format!("seb-eval-{pid}-{run}");
        moto.create_bucket(&bucket).map_err(|e| anyhow!("moto bucket: {e}"))?;
        let mut cfg = seb_aws::AwsTargetConfig::new(ACCOUNT, &role);
        cfg.endpoint_url = Some(moto.endpoint().to_owned());
        cfg.s3_force_path_style = true;
        let creds = seb_aws::BrokerCredentials::Static {
            access_key_id: user.access_key_id.clone(),
            secret_access_key: zeroize::Zeroizing::new(user.secret_access_key.clone()),
            session_token: None,
        };
        let target =
            seb_aws::AwsTarget::new(cfg, creds).await.map_err(|e| anyhow!("aws target: {e}"))?;
        Ok(Self::Aws { target: Arc::new(target), bucket })
    }

    /// Admission for execution `i` by worker `worker`: compile, observe, certify, present.
    pub async fn prepare(&self, rng: &mut Rng, worker: usize, i: u64) -> Result<Prepared> {
        let (platform, op, target, params, pointers) = match self {
            Self::TestDouble(t) => {
                let name = format!("obj-{worker}-{i}-{}", SEQ.fetch_add(1, Ordering::Relaxed));
                t.insecure_direct_write(&name, json!({"v": 0}))
                    .map_err(|e| anyhow!("test double: {e}"))?;
                (
                    Platform::Test,
                    "set".to_owned(),
                    json!({"name": name}),
                    json!({"value": {"v": i + 1}}),
                    vec!["/v".to_owned()],
                )
            }
            Self::Kube { ns, .. } => {
                let t = json!({"cluster": "eval", "api_version": "v1", "kind": "ConfigMap",
                               "namespace": ns, "name": format!("cm-{worker}")});
                let p = json!({"data": {"n": format!("{i}-{}", rng.next_u64() % 1000)}});
                let (t, p) = seb_kube::KubeProfile
                    .compile("merge_patch", &t, &p)
                    .map_err(|e| anyhow!("compile: {e}"))?;
                let ptrs = seb_kube::KubeProfile.default_pointers("merge_patch", &t, &p);
                (Platform::Kubernetes, "merge_patch".to_owned(), t, p, ptrs)
            }
            Self::Aws { bucket, .. } => {
                use seb_testinfra::moto::{ACCOUNT, REGION};
                let key = format!("obj-{worker}-{i}-{}", SEQ.fetch_add(1, Ordering::Relaxed));
                let t = json!({"account": ACCOUNT, "region": REGION, "service": "s3",
                               "arn": format!("arn:aws:s3:::{bucket}/{key}")});
                let p = json!({"body": format!("payload {i}")});
                let (t, p) = seb_aws::AwsPlatform
                    .compile("s3:PutObject", &t, &p)
                    .map_err(|e| anyhow!("compile: {e}"))?;
                let ptrs = seb_aws::AwsPlatform.default_pointers("s3:PutObject", &t, &p);
                (Platform::Aws, "s3:PutObject".to_owned(), t, p, ptrs)
            }
        };
        let req = ObserveRequest {
            op: op.clone(),
            target: target.clone(),
            params: params.clone(),
            pointers,
        };
        let observation =
            self.target().observe(&req).await.map_err(|e| anyhow!("admission observe: {e}"))?;
        let contract = Contract {
            platform,
            op,
            target: target.clone(),
            params,
            constraints: vec![],
            risk_level: RiskLevel::L1,
        };
        let projection: BTreeMap<String, Value> = observation.projection.clone();
        let cert = Cert::new(rng, contract, projection)?;
        Ok(Prepared { body: cert.present()?, target, observation })
    }
}
