//! The walkthrough pointed at a real cluster or account instead of the local platforms.
//!
//! `seb-localinfra --kubeconfig FILE` and `--aws-profile NAME` give the walkthrough
//! (`scripts/demo.sh`) the same identities the local platforms give it, made with the
//! administrator credentials it is handed, and `seb-localinfra release INFO` deletes them:
//!
//! - Kubernetes: namespace [`KUBE_NAMESPACE`] with three ServiceAccounts — an administrator
//!   (bound to `cluster-admin`, so the walkthrough can show that even an administrator is
//!   refused by SEB's webhook), the broker and an agent — and a one-hour TokenRequest token
//!   for each. `seb deploy kubernetes` then grants the broker and the agent exactly what the
//!   shipped manifests grant.
//! - AWS: IAM users for the broker and the agent, the execution role, and a bucket with a
//!   name of its own, created from the artefacts `seb deploy aws` wrote; it waits until IAM
//!   lets the broker assume the role (IAM is eventually consistent on AWS).
//!
//! Every name starts with `seb-demo`, so nothing of an existing SEB installation is touched.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use crate::InfraError;
use crate::moto::{AccessKeys, AwsApi, AwsAuth, Call};

/// The namespace of the walkthrough's ServiceAccounts on an adopted cluster.
pub const KUBE_NAMESPACE: &str = "seb-demo";
/// The administrator ServiceAccount (bound to `cluster-admin`).
pub const KUBE_ADMIN: &str = "seb-demo-admin";
/// The broker's ServiceAccount.
pub const KUBE_BROKER: &str = "seb-demo-broker";
/// The agent's ServiceAccount.
pub const KUBE_AGENT: &str = "seb-demo-agent";
/// Lifetime of the walkthrough's tokens.
const TOKEN_SECONDS: i64 = 3600;

/// The username a ServiceAccount of [`KUBE_NAMESPACE`] authenticates as.
pub fn service_account_user(name: &str) -> String {
    format!("system:serviceaccount:{KUBE_NAMESPACE}:{name}")
}

/// What [`adopt_kube`] made.
#[derive(Clone)]
pub struct AdoptedKube {
    /// The API server's URL (no trailing slash).
    pub url: String,
    /// The cluster's CA (PEM), when the kubeconfig names one (else the system roots apply).
    pub ca_pem: Option<String>,
    pub admin_token: String,
    pub broker_token: String,
    pub agent_token: String,
}

impl std::fmt::Debug for AdoptedKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdoptedKube").field("url", &self.url).finish_non_exhaustive()
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> InfraError {
    InfraError::Command { command: what.into(), detail: e.to_string() }
}

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

async fn admin_client(kubeconfig: &Path) -> Result<(kube::Client, kube::Config), InfraError> {
    // kube-rs uses rustls; this build carries aws-lc-rs only.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let what = format!("kubeconfig {}", kubeconfig.display());
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| err(&what, e))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| err(&what, e))?;
    let client = kube::Client::try_from(cfg.clone()).map_err(|e| err(&what, e))?;
    Ok((client, cfg))
}

/// Create `value` unless it exists (HTTP 409).
async fn create_if_absent<K>(api: &Api<K>, value: Value) -> Result<(), InfraError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("object").to_owned();
    let obj: K = serde_json::from_value(value).map_err(|e| err(&kind, e))?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(err(&format!("create {kind}"), e)),
    }
}

/// Set up the walkthrough's identities on the cluster `kubeconfig` (an administrator's) reaches.
pub async fn adopt_kube(kubeconfig: &Path) -> Result<AdoptedKube, InfraError> {
    let (client, cfg) = admin_client(kubeconfig).await?;
    let url = cfg.cluster_url.to_string().trim_end_matches('/').to_owned();
    let ca_pem = cfg.root_cert.as_ref().map(|certs| certs.iter().map(|c| pem(c)).collect());
    create_if_absent(
        &Api::<Namespace>::all(client.clone()),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUBE_NAMESPACE}}),
    )
    .await?;
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), KUBE_NAMESPACE);
    for name in [KUBE_ADMIN, KUBE_BROKER, KUBE_AGENT] {
        create_if_absent(
            &sas,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        )
        .await?;
    }
    create_if_absent(
        &Api::<ClusterRoleBinding>::all(client.clone()),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": KUBE_ADMIN},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": KUBE_ADMIN, "namespace": KUBE_NAMESPACE}],
        }),
    )
    .await?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let mut tokens = Vec::new();
    for name in [KUBE_ADMIN, KUBE_BROKER, KUBE_AGENT] {
        let tr = sas
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| err(&format!("TokenRequest for {name}"), e))?;
        let token = tr.status.map(|s| s.token).filter(|t| !t.is_empty());
        tokens.push(token.ok_or_else(|| err("TokenRequest", format!("no token for {name}")))?);
    }
    let [admin_token, broker_token, agent_token] = <[String; 3]>::try_from(tokens)
        .map_err(|_| err("TokenRequest", "expected three tokens"))?;
    Ok(AdoptedKube { url, ca_pem, admin_token, broker_token, agent_token })
}

/// Delete what [`adopt_kube`] made (the namespace takes its ServiceAccounts with it).
pub async fn release_kube(kubeconfig: &Path) -> Result<(), InfraError> {
    let (client, _) = admin_client(kubeconfig).await?;
    let dp = DeleteParams::default();
    let gone = |r: Result<_, kube::Error>, what: &str| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(err(what, e)),
    };
    gone(
        Api::<ClusterRoleBinding>::all(client.clone()).delete(KUBE_ADMIN, &dp).await.map(|_| ()),
        "delete ClusterRoleBinding",
    )?;
    gone(
        Api::<Namespace>::all(client).delete(KUBE_NAMESPACE, &dp).await.map(|_| ()),
        "delete Namespace",
    )
}

/// The walkthrough's AWS names.
pub const AWS_BROKER_USER: &str = "seb-demo-broker";
pub const AWS_AGENT_USER: &str = "seb-demo-agent";
pub const AWS_EXECUTION_ROLE: &str = "seb-demo-execution";

/// What [`adopt_aws`] made.
#[derive(Debug, Clone)]
pub struct AdoptedAws {
    pub account: String,
    pub bucket: String,
    pub execution_role_arn: String,
    pub broker: AccessKeys,
    pub agent: AccessKeys,
}

/// The account `api`'s credentials belong to.
pub fn account_of(api: &AwsApi) -> Result<String, InfraError> {
    let v = api.call("sts", "get_caller_identity", json!({}))?;
    v.get("Account")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| err("sts.get_caller_identity", "no Account"))
}

/// Set up the walkthrough's identities and bucket in the account `admin` reaches, from the
/// artefacts in `artefacts` (`seb deploy aws --out-dir`, made for [`AWS_BROKER_USER`] and
/// [`AWS_EXECUTION_ROLE`]).
pub fn adopt_aws(admin: &AwsApi, artefacts: &Path, bucket: &str) -> Result<AdoptedAws, InfraError> {
    let doc = |n: &str| -> Result<Value, InfraError> {
        let p = artefacts.join(n);
        let text = std::fs::read_to_string(&p).map_err(|e| err(&p.display().to_string(), e))?;
        serde_json::from_str(&text).map_err(|e| err(&p.display().to_string(), e))
    };
    let account = account_of(admin)?;
    // What a run that did not finish left behind (nothing, normally: NoSuchEntity).
    drop(remove_identities(admin));
    let broker = admin.create_user(AWS_BROKER_USER, &doc("broker-role-policy.json")?)?;
    let agent = admin.create_user(AWS_AGENT_USER, &doc("agent-permission-boundary.json")?)?;
    let exec_policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:*", "ec2:*", "dynamodb:*", "ssm:*", "autoscaling:*"], "Resource": "*"}]});
    let execution_role_arn = admin.create_role(
        AWS_EXECUTION_ROLE,
        &doc("execution-role-trust-policy.json")?,
        &exec_policy,
    )?;
    admin.create_bucket(bucket)?;
    // IAM is eventually consistent: wait until the broker's new keys may assume the role.
    let as_broker = AwsApi { auth: AwsAuth::Keys(broker.clone()), ..admin.clone() };
    let probe = Call::new(
        "sts",
        "assume_role",
        json!({"RoleArn": execution_role_arn, "RoleSessionName": "seb-demo-probe", "DurationSeconds": 900}),
    );
    let started = Instant::now();
    loop {
        match as_broker.batch(std::slice::from_ref(&probe))?.pop() {
            Some(Ok(_)) => break,
            Some(Err(e)) if started.elapsed() < Duration::from_secs(90) => {
                eprintln!("[localinfra] waiting for IAM to accept the broker's keys ({})", e.code);
                std::thread::sleep(Duration::from_secs(3));
            }
            Some(Err(e)) => return Err(err("sts.assume_role as the broker", e.message)),
            None => return Err(err("sts.assume_role as the broker", "no result")),
        }
    }
    Ok(AdoptedAws { account, bucket: bucket.to_owned(), execution_role_arn, broker, agent })
}

/// Delete what [`adopt_aws`] made; goes on past failures and reports the first.
pub fn release_aws(admin: &AwsApi, bucket: &str) -> Result<(), InfraError> {
    let mut errors = remove_identities(admin);
    errors.extend(remove_bucket(admin, bucket));
    errors.into_iter().next().map_or(Ok(()), Err)
}

/// Delete the walkthrough's IAM users (keys, inline policy) and execution role; returns the
/// failures (`NoSuchEntity` among them when there was nothing to delete).
fn remove_identities(admin: &AwsApi) -> Vec<InfraError> {
    let mut errors = Vec::new();
    let mut keep = |r: Result<Vec<Value>, InfraError>| {
        r.unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        })
    };
    for user in [AWS_BROKER_USER, AWS_AGENT_USER] {
        let listed =
            keep(admin.seed(&[Call::new("iam", "list_access_keys", json!({"UserName": user}))]));
        let ids: Vec<String> = listed
            .first()
            .and_then(|v| v.get("AccessKeyMetadata"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter().filter_map(|k| k.get("AccessKeyId")?.as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default();
        for id in ids {
            keep(admin.seed(&[Call::new(
                "iam",
                "delete_access_key",
                json!({"UserName": user, "AccessKeyId": id}),
            )]));
        }
        keep(admin.seed(&[Call::new(
            "iam",
            "delete_user_policy",
            json!({"UserName": user, "PolicyName": "inline"}),
        )]));
        keep(admin.seed(&[Call::new("iam", "delete_user", json!({"UserName": user}))]));
    }
    keep(admin.seed(&[Call::new(
        "iam",
        "delete_role_policy",
        json!({"RoleName": AWS_EXECUTION_ROLE, "PolicyName": "inline"}),
    )]));
    keep(admin.seed(&[Call::new("iam", "delete_role", json!({"RoleName": AWS_EXECUTION_ROLE}))]));
    errors
}

/// Empty and delete a bucket; returns the failures.
fn remove_bucket(admin: &AwsApi, bucket: &str) -> Vec<InfraError> {
    let listed = match admin.seed(&[Call::new("s3", "list_objects_v2", json!({"Bucket": bucket}))])
    {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let keys: Vec<Value> = listed
        .first()
        .and_then(|v| v.get("Contents"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|o| o.get("Key").cloned()).collect())
        .unwrap_or_default();
    let mut calls: Vec<Call> = keys
        .into_iter()
        .map(|k| Call::new("s3", "delete_object", json!({"Bucket": bucket, "Key": k})))
        .collect();
    calls.push(Call::new("s3", "delete_bucket", json!({"Bucket": bucket})));
    admin.seed(&calls).err().into_iter().collect()
}
