//! The AWS target reference `{account, region, service, arn}` (spec section 9) and the
//! resources the operation profiles act on.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AwsError;

/// Where an operation acts: the certified target of an AWS contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// 12-digit account id.
    pub account: String,
    /// Region the API calls go to (for S3, the bucket's region).
    pub region: String,
    /// The IAM service prefix of the operation (`ec2`, `s3`, …).
    pub service: String,
    /// The resource ARN. Never contains IAM wildcard characters (`*`, `?`) or `$`.
    pub arn: String,
}

/// A resource an operation profile acts on, parsed from [`TargetRef::arn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    SecurityGroup { group_id: String },
    S3Object { bucket: String, key: String },
    S3Bucket { bucket: String },
    DynamoTable { table: String },
    SsmParameter { name: String },
    AutoScalingGroup { name: String },
}

/// The kind of resource an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    SecurityGroup,
    S3Object,
    S3Bucket,
    DynamoTable,
    SsmParameter,
    AutoScalingGroup,
}

fn invalid(msg: impl Into<String>) -> AwsError {
    AwsError::Invalid(msg.into())
}

/// Parse and validate a target against the service and resource kind an operation needs.
pub fn parse_target(
    target: &Value,
    service: &str,
    kind: ResourceKind,
) -> Result<(TargetRef, Resource), AwsError> {
    let t: TargetRef = serde_json::from_value(target.clone())
        .map_err(|e| invalid(format!("target is not `{{account, region, service, arn}}`: {e}")))?;
    if t.account.len() != 12 || !t.account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("account `{}` is not a 12-digit id", t.account)));
    }
    if !valid_region(&t.region) {
        return Err(invalid(format!("region `{}` is not a region name", t.region)));
    }
    if t.service != service {
        return Err(invalid(format!(
            "target service `{}` does not match the operation's `{service}`",
            t.service
        )));
    }
    if t.arn.chars().any(|c| matches!(c, '*' | '?' | '$') || c.is_whitespace() || c.is_control()) {
        return Err(invalid("the ARN contains a wildcard, `$`, whitespace or a control character"));
    }
    let mut parts = t.arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(svc), Some(region), Some(account), Some(res)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("`{}` is not an ARN", t.arn)));
    };
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(invalid(format!("unknown partition `{partition}`")));
    }
    if svc != service {
        return Err(invalid(format!("ARN service `{svc}` does not match `{service}`")));
    }
    let regional = kind != ResourceKind::S3Object && kind != ResourceKind::S3Bucket;
    if regional && (region != t.region || account != t.account) {
        return Err(invalid("the ARN's region and account must equal the target's"));
    }
    if !regional && (!region.is_empty() || !account.is_empty()) {
        return Err(invalid("S3 ARNs carry no region or account"));
    }
    let resource = match kind {
        ResourceKind::SecurityGroup => {
            let id = res
                .strip_prefix("security-group/")
                .ok_or_else(|| invalid("not a security-group ARN"))?;
            let hex = id
                .strip_prefix("sg-")
                .ok_or_else(|| invalid("security group id must start with `sg-`"))?;
            if hex.is_empty() || hex.len() > 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!("`{id}` is not a security group id")));
            }
            Resource::SecurityGroup { group_id: id.to_owned() }
        }
        ResourceKind::S3Object => {
            let (bucket, key) = res
                .split_once('/')
                .ok_or_else(|| invalid("an S3 object ARN is `arn:aws:s3:::bucket/key`"))?;
            valid_bucket(bucket)?;
            if key.is_empty() || key.len() > 1024 {
                return Err(invalid("S3 key must be 1..1024 bytes"));
            }
            Resource::S3Object { bucket: bucket.to_owned(), key: key.to_owned() }
        }
        ResourceKind::S3Bucket => {
            valid_bucket(res)?;
            Resource::S3Bucket { bucket: res.to_owned() }
        }
        ResourceKind::DynamoTable => {
            let table =
                res.strip_prefix("table/").ok_or_else(|| invalid("not a DynamoDB table ARN"))?;
            let ok_chars =
                table.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if table.len() < 3 || table.len() > 255 || !ok_chars {
                return Err(invalid(format!("`{table}` is not a table name")));
            }
            Resource::DynamoTable { table: table.to_owned() }
        }
        ResourceKind::SsmParameter => {
            let rest = res
                .strip_prefix("parameter/")
                .ok_or_else(|| invalid("not an SSM parameter ARN"))?;
            let ok_chars = rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
            if rest.is_empty()
                || rest.len() > 1011
                || !ok_chars
                || rest.starts_with('/')
                || rest.contains("//")
            {
                return Err(invalid(format!("`{rest}` is not a parameter name")));
            }
            // A hierarchical name (`/a/b`) has its leading slash dropped in the ARN.
            let name = if rest.contains('/') { format!("/{rest}") } else { rest.to_owned() };
            Resource::SsmParameter { name }
        }
        ResourceKind::AutoScalingGroup => {
            let rest = res
                .strip_prefix("autoScalingGroup:")
                .ok_or_else(|| invalid("not an Auto Scaling group ARN"))?;
            let (uuid, name) = rest.split_once(":autoScalingGroupName/").ok_or_else(|| {
                invalid("an Auto Scaling group ARN ends in `:autoScalingGroupName/NAME`")
            })?;
            if uuid.len() != 36 || !uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                return Err(invalid("the Auto Scaling group ARN needs its group UUID"));
            }
            if name.is_empty() || name.len() > 255 {
                return Err(invalid("Auto Scaling group name must be 1..255 characters"));
            }
            Resource::AutoScalingGroup { name: name.to_owned() }
        }
    };
    Ok((t, resource))
}

fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && r.len() <= 32
        && parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_bucket(b: &str) -> Result<(), AwsError> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(invalid(format!("`{b}` is not a bucket name"))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(service: &str, arn: &str) -> Value {
        json!({"account": "123456789012", "region": "us-east-1", "service": service, "arn": arn})
    }

    #[test]
    fn parses_each_resource_kind() {
        let (_, r) = parse_target(
            &t("ec2", "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0abc12"),
            "ec2",
            ResourceKind::SecurityGroup,
        )
        .unwrap();
        assert_eq!(r, Resource::SecurityGroup { group_id: "sg-0abc12".into() });
        let (_, r) =
            parse_target(&t("s3", "arn:aws:s3:::bucket-a/dir/x.txt"), "s3", ResourceKind::S3Object)
                .unwrap();
        assert_eq!(r, Resource::S3Object { bucket: "bucket-a".into(), key: "dir/x.txt".into() });
        let (_, r) =
            parse_target(&t("s3", "arn:aws:s3:::bucket-a"), "s3", ResourceKind::S3Bucket).unwrap();
        assert_eq!(r, Resource::S3Bucket { bucket: "bucket-a".into() });
        let (_, r) = parse_target(
            &t("dynamodb", "arn:aws:dynamodb:us-east-1:123456789012:table/orders"),
            "dynamodb",
            ResourceKind::DynamoTable,
        )
        .unwrap();
        assert_eq!(r, Resource::DynamoTable { table: "orders".into() });
        let (_, r) = parse_target(
            &t("ssm", "arn:aws:ssm:us-east-1:123456789012:parameter/app/flag"),
            "ssm",
            ResourceKind::SsmParameter,
        )
        .unwrap();
        assert_eq!(r, Resource::SsmParameter { name: "/app/flag".into() });
        let (_, r) = parse_target(
            &t("ssm", "arn:aws:ssm:us-east-1:123456789012:parameter/flat"),
            "ssm",
            ResourceKind::SsmParameter,
        )
        .unwrap();
        assert_eq!(r, Resource::SsmParameter { name: "flat".into() });
        let asg = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0d2f1a2b-1111-2222-3333-444455556666:autoScalingGroupName/web";
        let (_, r) =
            parse_target(&t("autoscaling", asg), "autoscaling", ResourceKind::AutoScalingGroup)
                .unwrap();
        assert_eq!(r, Resource::AutoScalingGroup { name: "web".into() });
    }

    #[test]
    fn refuses_wildcards_and_mismatches() {
        for (svc, arn, kind) in [
            ("s3", "arn:aws:s3:::bucket-a/*", ResourceKind::S3Object),
            ("s3", "arn:aws:s3:::bucket-a/a?c", ResourceKind::S3Object),
            ("s3", "arn:aws:s3:::bucket-a/${aws:username}", ResourceKind::S3Object),
            ("s3", "arn:aws:s3:::bucket-a", ResourceKind::S3Object),
            ("s3", "arn:aws:s3:us-east-1:123456789012:bucket-a/k", ResourceKind::S3Object),
            (
                "ec2",
                "arn:aws:ec2:us-west-2:123456789012:security-group/sg-1",
                ResourceKind::SecurityGroup,
            ),
            (
                "ec2",
                "arn:aws:ec2:us-east-1:999999999999:security-group/sg-1",
                ResourceKind::SecurityGroup,
            ),
            ("ec2", "arn:aws:ec2:us-east-1:123456789012:instance/i-1", ResourceKind::SecurityGroup),
            (
                "s3",
                "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1",
                ResourceKind::SecurityGroup,
            ),
            (
                "dynamodb",
                "arn:aws:dynamodb:us-east-1:123456789012:table/t/index/i",
                ResourceKind::DynamoTable,
            ),
            ("ssm", "arn:aws:ssm:us-east-1:123456789012:parameter//a", ResourceKind::SsmParameter),
            (
                "autoscaling",
                "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/web",
                ResourceKind::AutoScalingGroup,
            ),
        ] {
            let svc_needed = match kind {
                ResourceKind::SecurityGroup => "ec2",
                ResourceKind::S3Object | ResourceKind::S3Bucket => "s3",
                ResourceKind::DynamoTable => "dynamodb",
                ResourceKind::SsmParameter => "ssm",
                ResourceKind::AutoScalingGroup => "autoscaling",
            };
            assert!(parse_target(&t(svc, arn), svc_needed, kind).is_err(), "{arn}");
        }
        let bad_acct = json!({"account": "12345", "region": "us-east-1", "service": "s3", "arn": "arn:aws:s3:::bucket-a/k"});
        assert!(parse_target(&bad_acct, "s3", ResourceKind::S3Object).is_err());
        let extra = json!({"account": "123456789012", "region": "us-east-1", "service": "s3", "arn": "arn:aws:s3:::bucket-a/k", "x": 1});
        assert!(parse_target(&extra, "s3", ResourceKind::S3Object).is_err());
    }
}
