//! `seb deploy kubernetes|aws`: the platform artefacts that make bypassing the broker
//! impossible, printed (to review and commit) or applied.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use seb_kube::deploy::{DeployConfig, Subject, WebhookEndpoint};

/// Deploy subcommands.
#[derive(Debug, Subcommand)]
pub enum DeployCmd {
    /// RBAC for the broker and the agents, the execution namespace, the validating webhook
    /// (failurePolicy Fail) for the protected namespaces and, for clusters ≥ 1.30, the
    /// equivalent ValidatingAdmissionPolicy. Prints YAML, or applies it with `--apply`.
    Kubernetes(Box<KubeArgs>),
    /// The execution role's trust policy, the SCP (and RCP) denying protected actions to every
    /// principal but execution sessions, the agents' permission boundary and the broker's
    /// own policy. Prints one JSON object, or writes one file each with `--out-dir`.
    Aws(AwsArgs),
}

/// `seb deploy kubernetes`.
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// A namespace the webhook protects (repeat).
    #[arg(long = "protected-namespace", required = true)]
    pub protected: Vec<String>,
    /// A namespace the broker may act in without webhook protection (repeat).
    #[arg(long = "unprotected-namespace")]
    pub unprotected: Vec<String>,
    /// Where per-execution ServiceAccounts are created.
    #[arg(long, default_value = "seb-exec")]
    pub exec_namespace: String,
    /// The broker's namespace (its ServiceAccount and Service).
    #[arg(long, default_value = "seb-system")]
    pub broker_namespace: String,
    /// The broker's ServiceAccount (in --broker-namespace).
    #[arg(long, default_value = "seb-broker", conflicts_with = "broker_user")]
    pub broker_service_account: String,
    /// The broker is this user instead (a broker outside the cluster).
    #[arg(long)]
    pub broker_user: Option<String>,
    /// Run the broker in the cluster from this image: also emit its Deployment, its
    /// `seb-broker` Service (the webhook's default endpoint) and, for one replica, the
    /// volume of its SQLite store. The pod reads `seb.toml`, the key and the TLS files from
    /// the Secret `--broker-secret`, which you create (see docs/operator-guide.md).
    #[arg(long, conflicts_with = "broker_user")]
    pub broker_image: Option<String>,
    /// Broker replicas; more than one needs `store = "postgres://…"` in its seb.toml.
    #[arg(long, default_value_t = 1, requires = "broker_image")]
    pub broker_replicas: u16,
    /// The Secret with `seb.toml`, the broker key and its serving certificate.
    #[arg(long, default_value = "seb-broker", requires = "broker_image")]
    pub broker_secret: String,
    /// The size of the SQLite volume (one replica).
    #[arg(long, default_value = "10Gi", requires = "broker_image")]
    pub broker_storage: String,
    /// Agents' group (repeat; default `seb:agents`). Agents get read-only access.
    #[arg(long = "agent-group")]
    pub agent_groups: Vec<String>,
    /// Agents' user names (repeat).
    #[arg(long = "agent-user")]
    pub agent_users: Vec<String>,
    /// The webhook's URL when the broker runs outside the cluster (https). Default: the
    /// Service seb-broker:8443 in --broker-namespace.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// PEM of the CA that signed the broker's serving certificate (the webhook caBundle).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// An identity always allowed in protected namespaces, added to the control-plane
    /// defaults (repeat); must match `exempt_usernames` in `[targets.kubernetes]`.
    #[arg(long = "exempt-user")]
    pub exempt_users: Vec<String>,
    /// A username prefix always allowed (repeat); matches `exempt_username_prefixes`.
    #[arg(long = "exempt-user-prefix")]
    pub exempt_user_prefixes: Vec<String>,
    /// A group always allowed (repeat; never `system:masters`); matches `exempt_groups`.
    #[arg(long = "exempt-group")]
    pub exempt_groups: Vec<String>,
    /// The operator path: a group that may change the protected namespaces and SEB's own
    /// objects and grant any RBAC (repeat; default `system:masters`); must match
    /// `operator_groups` in `[targets.kubernetes]`.
    #[arg(long = "operator-group")]
    pub operator_groups: Vec<String>,
    /// A user of the operator path (repeat); matches `operator_usernames`.
    #[arg(long = "operator-user")]
    pub operator_users: Vec<String>,
    /// Bind this user to `seb-cluster-admin` (repeat): every API group the cluster serves
    /// but no write on admission configuration and no impersonate/escalate/bind/approve/sign.
    #[arg(long = "cluster-admin-user")]
    pub cluster_admin_users: Vec<String>,
    /// Bind this group to `seb-cluster-admin` (repeat).
    #[arg(long = "cluster-admin-group")]
    pub cluster_admin_groups: Vec<String>,
    /// Omit the ValidatingAdmissionPolicy (clusters older than 1.30).
    #[arg(long)]
    pub no_admission_policy: bool,
    /// Omit the Namespace objects (they exist already; label them `seb.io/protected=true`).
    #[arg(long)]
    pub no_namespaces: bool,
    /// Apply with server-side apply instead of printing.
    #[arg(long, conflicts_with = "delete")]
    pub apply: bool,
    /// Delete what `--apply` with the same flags installed (admission objects first); this
    /// includes the Namespace objects unless --no-namespaces.
    #[arg(long)]
    pub delete: bool,
    /// Credentials to apply or delete with (a cluster administrator). Default: in-cluster,
    /// then $KUBECONFIG / ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// `seb deploy aws`.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// The broker's own principal (the only one allowed to assume execution roles).
    #[arg(long)]
    pub broker_principal_arn: String,
    /// An account the broker acts in (repeat).
    #[arg(long = "account", required = true)]
    pub accounts: Vec<String>,
    /// The execution role's name, the same in every account.
    #[arg(long, default_value = "seb-execution")]
    pub execution_role_name: String,
    /// ARN pattern of the administrators allowed to change the execution role.
    #[arg(long)]
    pub admin_principal_arn_pattern: String,
    /// `sts:ExternalId` the trust policy requires.
    #[arg(long)]
    pub external_id: Option<String>,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    #[arg(long, default_value = "aws")]
    pub partition: String,
    /// Write one JSON file per artefact here (created if missing).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Run a deploy subcommand.
pub async fn run(cmd: DeployCmd) -> Result<ExitCode> {
    match cmd {
        DeployCmd::Kubernetes(a) => kubernetes(*a).await,
        DeployCmd::Aws(a) => aws(a),
    }
}

fn kube_config(a: &KubeArgs) -> Result<DeployConfig> {
    let ca = match &a.ca_file {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading `{}`", p.display()))?
        }
        None => seb_kube::deploy::PLACEHOLDER_CA.to_owned(),
    };
    let mut cfg = DeployConfig::new(a.protected.clone(), ca);
    cfg.unprotected_namespaces = a.unprotected.clone();
    cfg.exec_namespace = a.exec_namespace.clone();
    cfg.broker_namespace = a.broker_namespace.clone();
    cfg.broker = match &a.broker_user {
        Some(u) => Subject::User(u.clone()),
        None => Subject::ServiceAccount {
            namespace: a.broker_namespace.clone(),
            name: a.broker_service_account.clone(),
        },
    };
    let mut agents: Vec<Subject> = a.agent_groups.iter().cloned().map(Subject::Group).collect();
    agents.extend(a.agent_users.iter().cloned().map(Subject::User));
    if !agents.is_empty() {
        cfg.agents = agents;
    }
    cfg.webhook = match &a.webhook_url {
        Some(u) if u.starts_with("https://") => WebhookEndpoint::Url(u.clone()),
        Some(u) => bail!("--webhook-url `{u}`: the API server calls webhooks over https only"),
        None => WebhookEndpoint::Service {
            namespace: a.broker_namespace.clone(),
            name: "seb-broker".into(),
            port: 8443,
        },
    };
    if a.exempt_groups.iter().any(|g| g == "system:masters") {
        bail!("--exempt-group system:masters would exempt every cluster administrator");
    }
    cfg.exempt_usernames.extend(a.exempt_users.iter().cloned());
    cfg.exempt_username_prefixes.extend(a.exempt_user_prefixes.iter().cloned());
    cfg.exempt_groups.extend(a.exempt_groups.iter().cloned());
    if !a.operator_groups.is_empty() {
        cfg.operator_groups = a.operator_groups.clone();
    }
    cfg.operator_usernames = a.operator_users.clone();
    cfg.cluster_admins = a.cluster_admin_users.iter().cloned().map(Subject::User).collect();
    cfg.cluster_admins.extend(a.cluster_admin_groups.iter().cloned().map(Subject::Group));
    if cfg.cluster_admins.iter().any(|s| {
        matches!(s, Subject::Group(g) if cfg.operator_groups.contains(g))
            || matches!(s, Subject::User(u) if cfg.operator_usernames.contains(u))
    }) {
        bail!("a --cluster-admin-* subject is already the operator path");
    }
    cfg.emit_admission_policy = !a.no_admission_policy;
    cfg.emit_namespaces = !a.no_namespaces;
    if let Some(image) = &a.broker_image {
        if a.broker_replicas == 0 {
            bail!("--broker-replicas must be at least 1");
        }
        cfg.broker_workload = Some(seb_kube::deploy::BrokerWorkload {
            image: image.clone(),
            replicas: a.broker_replicas,
            secret: a.broker_secret.clone(),
            storage: a.broker_storage.clone(),
        });
    }
    Ok(cfg)
}

async fn kubernetes(a: KubeArgs) -> Result<ExitCode> {
    let cfg = kube_config(&a)?;
    if a.ca_file.is_none() && !a.delete {
        eprintln!(
            "note: no --ca-file: the webhook's caBundle is a placeholder; the API server will refuse to call it until you replace it"
        );
        if a.apply {
            bail!("--apply needs --ca-file (the CA of the broker's serving certificate)");
        }
    }
    let mut cfg = cfg;
    if a.apply {
        // seb-cluster-admin covers the API groups this cluster serves.
        let client = seb_kube::target::client(a.kubeconfig.as_deref()).await?;
        cfg.cluster_admin_api_groups = seb_kube::deploy::served_api_groups(&client).await?;
    }
    let objects = seb_kube::deploy::objects(&cfg);
    if a.delete {
        let client = seb_kube::target::client(a.kubeconfig.as_deref()).await?;
        seb_kube::deploy::delete(&client, &objects).await?;
        println!("{}", serde_json::json!({ "deleted": names(&objects) }));
        return Ok(ExitCode::SUCCESS);
    }
    if a.kubeconfig.is_some() && !a.apply {
        bail!("--kubeconfig is for --apply or --delete");
    }
    if !a.apply {
        print!("{}", seb_kube::deploy::to_yaml(&objects));
        return Ok(ExitCode::SUCCESS);
    }
    let client = seb_kube::target::client(a.kubeconfig.as_deref()).await?;
    seb_kube::deploy::apply(&client, &objects).await?;
    println!("{}", serde_json::json!({ "applied": names(&objects) }));
    Ok(ExitCode::SUCCESS)
}

/// `Kind/name` of each object.
fn names(objects: &[serde_json::Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or("?")
            )
        })
        .collect()
}

fn aws(a: AwsArgs) -> Result<ExitCode> {
    let cfg = seb_aws::DeployConfig {
        partition: a.partition,
        broker_principal_arn: a.broker_principal_arn,
        execution_role_name: a.execution_role_name,
        accounts: a.accounts,
        admin_principal_arn_pattern: a.admin_principal_arn_pattern,
        external_id: a.external_id,
    };
    let art = seb_aws::artefacts(&cfg);
    match a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating `{}`", dir.display()))?;
            let mut written = Vec::new();
            for (name, doc) in art.files() {
                let p = dir.join(name);
                let mut text = serde_json::to_string_pretty(doc)?;
                text.push('\n');
                std::fs::write(&p, text).with_context(|| format!("writing `{}`", p.display()))?;
                written.push(p);
            }
            println!("{}", serde_json::json!({ "written": written }));
        }
        None => {
            let all: serde_json::Map<String, serde_json::Value> =
                art.files().into_iter().map(|(n, d)| (n.to_owned(), d.clone())).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
