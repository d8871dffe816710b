//! EC2 security groups: DescribeSecurityGroups; Authorize/RevokeSecurityGroupIngress. EC2 has
//! no precondition for these calls (the profile says so).

use aws_config::SdkConfig;
use aws_sdk_ec2::operation::RequestId;
use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
use serde_json::{Value, json};

use seb_target::{MutationStatus, TargetError};

use super::{Called, Live, failure};
use crate::arn::Resource;
use crate::profiles::{Op, rule_identity};

fn rules(perms: &[IpPermission]) -> Value {
    let mut out = Vec::new();
    for p in perms {
        let proto = p.ip_protocol().unwrap_or("-1").to_owned();
        let from = p.from_port().map(i64::from).unwrap_or(-1);
        let to = p.to_port().map(i64::from).unwrap_or(-1);
        let (from, to) = if proto == "-1" { (-1, -1) } else { (from, to) };
        let mut push = |cidr: &str, desc: Option<&str>| {
            let mut r = json!({"protocol": proto, "from_port": from, "to_port": to, "cidr": cidr});
            if let (Some(d), Some(m)) = (desc, r.as_object_mut()) {
                m.insert("description".into(), json!(d));
            }
            out.push(r);
        };
        for r in p.ip_ranges() {
            push(r.cidr_ip().unwrap_or_default(), r.description());
        }
        for r in p.ipv6_ranges() {
            push(r.cidr_ipv6().unwrap_or_default(), r.description());
        }
    }
    out.sort_by_key(rule_identity);
    Value::Array(out)
}

pub(crate) async fn observe(sdk: &SdkConfig, res: &Resource) -> Result<Live, TargetError> {
    let Resource::SecurityGroup { group_id } = res else {
        return Err(TargetError::invalid("not a security group"));
    };
    match aws_sdk_ec2::Client::new(sdk).describe_security_groups().group_ids(group_id).send().await
    {
        Ok(out) => {
            let Some(g) =
                out.security_groups().iter().find(|g| g.group_id() == Some(group_id.as_str()))
            else {
                return Ok(Live::absent());
            };
            Ok(Live {
                object: json!({
                    "group_id": g.group_id(),
                    "group_name": g.group_name(),
                    "vpc_id": g.vpc_id(),
                    "ingress": rules(g.ip_permissions()),
                    "egress": rules(g.ip_permissions_egress()),
                }),
                version: None,
            })
        }
        Err(e) => {
            let f = failure(e);
            if f.code.as_deref() == Some("InvalidGroup.NotFound") {
                return Ok(Live::absent());
            }
            Err(f.into_read_error("ec2:DescribeSecurityGroups"))
        }
    }
}

fn permissions(params: &Value) -> Vec<IpPermission> {
    let rules = params.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
    rules
        .iter()
        .map(|r| {
            let cidr = r.get("cidr").and_then(Value::as_str).unwrap_or_default();
            let desc = r.get("description").and_then(Value::as_str);
            let mut p = IpPermission::builder()
                .ip_protocol(r.get("protocol").and_then(Value::as_str).unwrap_or("-1"));
            let (from, to) = (
                r.get("from_port").and_then(Value::as_i64),
                r.get("to_port").and_then(Value::as_i64),
            );
            if let (Some(f), Some(t)) =
                (from.and_then(|x| i32::try_from(x).ok()), to.and_then(|x| i32::try_from(x).ok()))
            {
                p = p.from_port(f).to_port(t);
            }
            if cidr.contains(':') {
                p = p.ipv6_ranges(
                    Ipv6Range::builder()
                        .cidr_ipv6(cidr)
                        .set_description(desc.map(str::to_owned))
                        .build(),
                );
            } else {
                p = p.ip_ranges(
                    IpRange::builder()
                        .cidr_ip(cidr)
                        .set_description(desc.map(str::to_owned))
                        .build(),
                );
            }
            p.build()
        })
        .collect()
}

pub(crate) async fn mutate(
    sdk: &SdkConfig,
    op: Op,
    res: &Resource,
    params: &Value,
) -> Result<Called, TargetError> {
    let Resource::SecurityGroup { group_id } = res else {
        return Err(TargetError::invalid("not a security group"));
    };
    let c = aws_sdk_ec2::Client::new(sdk);
    let perms = permissions(params);
    match op {
        Op::Ec2AuthorizeSecurityGroupIngress => {
            match c
                .authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(perms))
                .send()
                .await
            {
                Ok(out) => Ok(Called {
                    status: MutationStatus::Applied,
                    request_id: out.request_id().map(str::to_owned),
                    result: Some(json!({
                        "return": out.r#return(),
                        "rule_ids": out.security_group_rules().iter().filter_map(|r| r.security_group_rule_id()).collect::<Vec<_>>(),
                    })),
                    error: None,
                }),
                Err(e) => failure(e).into_called("ec2:AuthorizeSecurityGroupIngress", false),
            }
        }
        Op::Ec2RevokeSecurityGroupIngress => {
            match c
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(perms))
                .send()
                .await
            {
                Ok(out) => {
                    let unknown = out.unknown_ip_permissions().len();
                    Ok(Called {
                        status: MutationStatus::Applied,
                        request_id: out.request_id().map(str::to_owned),
                        result: Some(
                            json!({"return": out.r#return(), "unknown_ip_permissions": unknown}),
                        ),
                        error: (unknown > 0).then(|| format!("{unknown} rule(s) were not present")),
                    })
                }
                Err(e) => failure(e).into_called("ec2:RevokeSecurityGroupIngress", false),
            }
        }
        _ => Err(TargetError::invalid(format!("{op:?} is not an EC2 operation"))),
    }
}
