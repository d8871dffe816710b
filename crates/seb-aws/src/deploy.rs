//! Bypass-prevention artefacts for AWS (spec section 9), emitted by `seb deploy aws`.
//!
//! - the execution role's **trust policy**: only the broker may assume it, and only while
//!   tagging the session with `seb:cid`, `seb:nonce`, `seb:risk` and setting a
//!   `SourceIdentity` (`sts:TagSession`, `sts:SetSourceIdentity`);
//! - a **service control policy** (organisation/OU): the protected actions are denied to
//!   every principal except sessions of the execution role that carry `seb:cid`; nobody but the
//!   broker may assume the execution role; nobody but the named administrators may change it;
//! - a **resource control policy** for the S3 actions (RCPs cover S3, not EC2, SSM or
//!   Auto Scaling): the same rule enforced on the resource side, so principals from outside
//!   the organisation are held to it too;
//! - a **permission boundary** for agent roles: whatever their policies say, agents cannot
//!   perform the protected actions, assume the execution role, or remove their boundary;
//! - the **broker role's policy**: assume the execution roles (with tags and source identity)
//!   and the read-only calls that observe the projections; the protected actions explicitly
//!   denied to the broker's own identity.
//!
//! docs/aws.md says where each goes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::profiles::protected_actions;
use crate::session::{TAG_CID, TAG_NONCE, TAG_RISK};

/// What the artefacts are generated for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    #[serde(default = "default_partition")]
    pub partition: String,
    /// The broker's own principal (the role it runs as), the only one allowed to assume the
    /// execution roles.
    pub broker_principal_arn: String,
    /// The execution role's name; the same name in every protected account.
    #[serde(default = "default_execution_role")]
    pub execution_role_name: String,
    /// Accounts the broker may act in (the broker policy's resources).
    pub accounts: Vec<String>,
    /// ARN pattern of the administrators allowed to change the execution role (for example
    /// your deployment pipeline's role).
    pub admin_principal_arn_pattern: String,
    /// Optional `sts:ExternalId` required in the trust policy.
    #[serde(default)]
    pub external_id: Option<String>,
}

fn default_partition() -> String {
    "aws".into()
}
fn default_execution_role() -> String {
    "seb-execution".into()
}

impl DeployConfig {
    /// The configuration the files under `deploy/aws/` are generated from.
    pub fn example() -> Self {
        Self {
            partition: default_partition(),
            broker_principal_arn: "arn:aws:iam::111111111111:role/seb-broker".into(),
            execution_role_name: default_execution_role(),
            accounts: vec!["222222222222".into()],
            admin_principal_arn_pattern: "arn:aws:iam::*:role/seb-deployer".into(),
            external_id: None,
        }
    }

    /// `arn:PARTITION:iam::*:role/NAME`: the execution role in any account.
    pub fn execution_role_pattern(&self) -> String {
        format!("arn:{}:iam::*:role/{}", self.partition, self.execution_role_name)
    }
}

/// The generated policy documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artefacts {
    pub execution_role_trust_policy: Value,
    pub scp: Value,
    /// The RCP for the protected actions of services RCPs support (S3), if any.
    pub rcp: Option<Value>,
    pub agent_permission_boundary: Value,
    pub broker_role_policy: Value,
}

impl Artefacts {
    /// `(file name, document)` for each artefact, as shipped under `deploy/aws/`.
    pub fn files(&self) -> Vec<(&'static str, &Value)> {
        let mut v = vec![
            ("execution-role-trust-policy.json", &self.execution_role_trust_policy),
            ("scp.json", &self.scp),
            ("agent-permission-boundary.json", &self.agent_permission_boundary),
            ("broker-role-policy.json", &self.broker_role_policy),
        ];
        if let Some(r) = &self.rcp {
            v.push(("rcp.json", r));
        }
        v
    }
}

/// The read-only actions the broker uses to observe and reconcile (`HeadObject` is
/// authorised as `s3:GetObject`).
pub const READ_ACTIONS: &[&str] = &[
    "ec2:DescribeSecurityGroups",
    "s3:GetObject",
    "s3:GetBucketPolicy",
    "s3:ListBucket",
    "dynamodb:GetItem",
    "ssm:GetParameter",
    "autoscaling:DescribeAutoScalingGroups",
];

/// IAM changes that would let someone re-shape the execution role.
const ROLE_CHANGES: &[&str] = &[
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:UpdateRole",
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UntagRole",
];

const ASSUME: &[&str] = &["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"];

/// Generate every artefact.
pub fn artefacts(cfg: &DeployConfig) -> Artefacts {
    let protected = protected_actions();
    let exec_any = cfg.execution_role_pattern();

    let mut assume_conditions = json!({
        "StringLike": {
            format!("aws:RequestTag/{TAG_CID}"): "?*",
            format!("aws:RequestTag/{TAG_NONCE}"): "?*",
            format!("aws:RequestTag/{TAG_RISK}"): "L?",
            "sts:SourceIdentity": "?*",
            "sts:RoleSessionName": "seb-*",
        },
        "ForAllValues:StringEquals": {"aws:TagKeys": [TAG_CID, TAG_NONCE, TAG_RISK]},
    });
    if let (Some(x), Some(o)) = (&cfg.external_id, assume_conditions.as_object_mut()) {
        o.insert("StringEquals".into(), json!({"sts:ExternalId": x}));
    }
    let execution_role_trust_policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SebBrokerOnlyWithCertificateTags",
            "Effect": "Allow",
            "Principal": {"AWS": cfg.broker_principal_arn},
            "Action": ASSUME,
            "Condition": assume_conditions,
        }]
    });

    let scp = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SebProtectedActionsOnlyByExecutionRole",
                "Effect": "Deny",
                "Action": protected,
                "Resource": "*",
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": exec_any}},
            },
            {
                "Sid": "SebProtectedActionsOnlyWithCertificate",
                "Effect": "Deny",
                "Action": protected,
                "Resource": "*",
                "Condition": {"Null": {format!("aws:PrincipalTag/{TAG_CID}"): "true"}},
            },
            {
                "Sid": "SebOnlyBrokerAssumesExecutionRole",
                "Effect": "Deny",
                "Action": ASSUME,
                "Resource": exec_any,
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": cfg.broker_principal_arn}},
            },
            {
                "Sid": "SebExecutionRoleIsImmutable",
                "Effect": "Deny",
                "Action": ROLE_CHANGES,
                "Resource": exec_any,
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": cfg.admin_principal_arn_pattern}},
            },
        ]
    });

    let s3_protected: Vec<&str> =
        protected.iter().copied().filter(|a| a.starts_with("s3:")).collect();
    let rcp = (!s3_protected.is_empty()).then(|| {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "SebS3ProtectedActionsOnlyByExecutionRole",
                "Effect": "Deny",
                "Principal": "*",
                "Action": s3_protected,
                "Resource": "*",
                "Condition": {
                    "ArnNotLike": {"aws:PrincipalArn": exec_any},
                    "BoolIfExists": {"aws:PrincipalIsAWSService": "false"},
                },
            }]
        })
    });

    let agent_permission_boundary = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SebBoundaryCeiling", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Sid": "SebAgentsNeverMutateProtected", "Effect": "Deny", "Action": protected, "Resource": "*"},
            {"Sid": "SebAgentsNeverAssumeExecutionRole", "Effect": "Deny", "Action": ASSUME, "Resource": exec_any},
            {"Sid": "SebAgentsNeverChangeExecutionRole", "Effect": "Deny", "Action": ROLE_CHANGES, "Resource": exec_any},
            {
                "Sid": "SebAgentsKeepTheirBoundary",
                "Effect": "Deny",
                "Action": [
                    "iam:DeleteRolePermissionsBoundary",
                    "iam:DeleteUserPermissionsBoundary",
                    "iam:PutRolePermissionsBoundary",
                    "iam:PutUserPermissionsBoundary",
                ],
                "Resource": "*",
            },
        ]
    });

    let exec_roles: Vec<String> = cfg
        .accounts
        .iter()
        .map(|a| format!("arn:{}:iam::{a}:role/{}", cfg.partition, cfg.execution_role_name))
        .collect();
    let broker_role_policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SebAssumeExecutionRoles", "Effect": "Allow", "Action": ASSUME, "Resource": exec_roles},
            {"Sid": "SebObserve", "Effect": "Allow", "Action": READ_ACTIONS, "Resource": "*"},
            {"Sid": "SebBrokerNeverMutatesDirectly", "Effect": "Deny", "Action": protected, "Resource": "*"},
        ]
    });

    Artefacts {
        execution_role_trust_policy,
        scp,
        rcp,
        agent_permission_boundary,
        broker_role_policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::PROFILES;
    use std::path::PathBuf;

    fn statements(doc: &Value) -> &Vec<Value> {
        assert_eq!(doc["Version"], "2012-10-17");
        doc["Statement"].as_array().unwrap()
    }

    fn sid<'a>(doc: &'a Value, sid: &str) -> &'a Value {
        statements(doc)
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    fn actions(s: &Value) -> Vec<String> {
        match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
            other => panic!("bad Action {other}"),
        }
    }

    #[test]
    fn every_protected_action_is_covered() {
        let a = artefacts(&DeployConfig::example());
        for p in PROFILES {
            for (doc, s) in [
                (&a.scp, "SebProtectedActionsOnlyByExecutionRole"),
                (&a.scp, "SebProtectedActionsOnlyWithCertificate"),
                (&a.agent_permission_boundary, "SebAgentsNeverMutateProtected"),
                (&a.broker_role_policy, "SebBrokerNeverMutatesDirectly"),
            ] {
                let st = sid(doc, s);
                assert_eq!(st["Effect"], "Deny");
                assert!(actions(st).contains(&p.action.to_owned()), "{s} misses {}", p.action);
            }
            if p.service == "s3" {
                let rcp = a.rcp.as_ref().unwrap();
                assert!(
                    actions(sid(rcp, "SebS3ProtectedActionsOnlyByExecutionRole"))
                        .contains(&p.action.to_owned())
                );
            }
        }
    }

    #[test]
    fn trust_policy_admits_only_the_broker_with_tags_and_source_identity() {
        let cfg = DeployConfig::example();
        let a = artefacts(&cfg);
        let st = statements(&a.execution_role_trust_policy);
        assert_eq!(st.len(), 1);
        let s = &st[0];
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Principal"], json!({"AWS": cfg.broker_principal_arn}));
        assert_eq!(actions(s), ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]);
        let like = &s["Condition"]["StringLike"];
        for k in [
            "aws:RequestTag/seb:cid",
            "aws:RequestTag/seb:nonce",
            "aws:RequestTag/seb:risk",
            "sts:SourceIdentity",
        ] {
            assert!(like.get(k).is_some(), "trust policy must require {k}");
        }
        assert_eq!(
            s["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
            json!(["seb:cid", "seb:nonce", "seb:risk"])
        );
        let with_ext = artefacts(&DeployConfig { external_id: Some("x-1".into()), ..cfg });
        assert_eq!(
            with_ext.execution_role_trust_policy["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "x-1"
        );
    }

    #[test]
    fn scp_denies_all_but_tagged_execution_sessions() {
        let cfg = DeployConfig::example();
        let a = artefacts(&cfg);
        let s = sid(&a.scp, "SebProtectedActionsOnlyByExecutionRole");
        assert_eq!(
            s["Condition"]["ArnNotLike"]["aws:PrincipalArn"],
            "arn:aws:iam::*:role/seb-execution"
        );
        let s = sid(&a.scp, "SebProtectedActionsOnlyWithCertificate");
        assert_eq!(s["Condition"]["Null"]["aws:PrincipalTag/seb:cid"], "true");
        let s = sid(&a.scp, "SebOnlyBrokerAssumesExecutionRole");
        assert_eq!(
            s["Condition"]["ArnNotLike"]["aws:PrincipalArn"],
            cfg.broker_principal_arn.as_str()
        );
        // SCPs have no Principal element and a 5,120-character limit.
        for st in statements(&a.scp) {
            assert!(st.get("Principal").is_none());
        }
        assert!(a.scp.to_string().len() <= 5120);
        assert!(a.rcp.as_ref().unwrap().to_string().len() <= 5120);
        assert!(a.agent_permission_boundary.to_string().len() <= 6144);
    }

    #[test]
    fn broker_policy_assumes_and_reads_only() {
        let a = artefacts(&DeployConfig::example());
        let s = sid(&a.broker_role_policy, "SebAssumeExecutionRoles");
        assert_eq!(s["Resource"], json!(["arn:aws:iam::222222222222:role/seb-execution"]));
        let reads = actions(sid(&a.broker_role_policy, "SebObserve"));
        for p in PROFILES {
            assert!(!reads.contains(&p.action.to_owned()));
        }
    }

    fn deploy_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/aws")
    }

    /// The shipped files are the generator's output for [`DeployConfig::example`].
    /// Regenerate with `SEB_REGENERATE=1 cargo test -p seb-aws deploy`.
    #[test]
    fn shipped_files_match_the_generator() {
        let a = artefacts(&DeployConfig::example());
        let dir = deploy_dir();
        let regen = std::env::var_os("SEB_REGENERATE").is_some();
        for (name, doc) in a.files() {
            let path = dir.join(name);
            let want = serde_json::to_string_pretty(doc).unwrap() + "\n";
            if regen {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            }
            let got = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let parsed: Value =
                serde_json::from_str(&got).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            assert_eq!(&parsed, doc, "{name} differs from the generator; regenerate");
        }
        let cfg: DeployConfig = serde_json::from_str(
            &std::fs::read_to_string(dir.join("deploy-config.example.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg, DeployConfig::example());
    }
}
