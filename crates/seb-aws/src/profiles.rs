//! Operation profiles: one table entry per IAM action (spec section 9).
//!
//! A profile says which resource the action acts on, how the broker observes its projection,
//! which precondition pins the observed state (or that none exists), the exact request shape
//! (`params` schema, validated and normalised here), which parameters may carry constraints,
//! the consequence rules, and how reconciliation recognises the post-state. Adding an
//! operation is one [`Profile`] entry in [`PROFILES`], its params validation in
//! [`normalise_params`], its `applied` arm, and its SDK call in the service module — not a new
//! pipeline.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use seb_core::constraints::parse_cidr;
use seb_core::digest::Digest;
use seb_core::types::{CheckKind, Contract, Evidence};

use crate::AwsError;
use crate::arn::{ResourceKind, parse_target};

/// The operations this target drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Op {
    Ec2AuthorizeSecurityGroupIngress,
    Ec2RevokeSecurityGroupIngress,
    S3PutObject,
    S3DeleteObject,
    S3PutBucketPolicy,
    DynamoDbPutItem,
    DynamoDbUpdateItem,
    DynamoDbDeleteItem,
    SsmPutParameter,
    AutoScalingSetDesiredCapacity,
    AutoScalingUpdateAutoScalingGroup,
}

/// What kind of value a parameter location holds (for the scope check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Str,
    Int,
    Bool,
    Cidr,
    Array,
    /// A free-form JSON subtree (DynamoDB attribute values, a bucket policy document).
    Json,
}

/// One location of the params schema. `*` matches one array index or object key; a trailing
/// `/**` matches any location below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Field {
    pub path: &'static str,
    pub kind: FieldKind,
    /// The location selects *which* resource or item is touched (for example a DynamoDB
    /// key). It may not vary under a constraint: the evidence and the session policy pin one.
    pub identity: bool,
}

const fn f(path: &'static str, kind: FieldKind) -> Field {
    Field { path, kind, identity: false }
}
const fn id(path: &'static str, kind: FieldKind) -> Field {
    Field { path, kind, identity: true }
}

/// How the mutation is pinned to the state observed at the drift check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// S3 `If-Match: <observed ETag>`, or `If-None-Match: *` when the object was absent.
    S3ETag,
    /// DynamoDB `ConditionExpression` equal to every attribute of the observed item, or
    /// `attribute_not_exists` of the key when it was absent.
    DynamoItem,
    /// SSM: `Overwrite=false` when the parameter was absent (atomic); when present,
    /// `Overwrite=true` and the returned version must be the observed one plus one (a check
    /// after the write: it detects an interleaved writer but cannot prevent it).
    SsmVersion,
    /// The platform has no precondition for this action; the broker records that the window
    /// between drift check and mutation is open.
    None,
}

impl Precondition {
    /// The description recorded in [`seb_target::OpProfile::precondition`].
    pub const fn describe(self) -> Option<&'static str> {
        match self {
            Self::S3ETag => {
                Some("s3: If-Match with the observed ETag (If-None-Match: * when absent)")
            }
            Self::DynamoItem => Some(
                "dynamodb: ConditionExpression equal to every observed attribute (attribute_not_exists when absent)",
            ),
            Self::SsmVersion => Some(
                "ssm: Overwrite=false when absent; when present, returned Version must be observed+1 (detects, cannot prevent, an interleaved write)",
            ),
            Self::None => None,
        }
    }
}

/// An operation profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub op: Op,
    /// The IAM action, which is also the contract's `op`.
    pub action: &'static str,
    /// The IAM service prefix (and SDK service).
    pub service: &'static str,
    pub resource: ResourceKind,
    /// How the projection is read (documentation; the call is in the service module).
    pub observe_call: &'static str,
    pub precondition: Precondition,
    /// Removes state that cannot be restored, or changes who may act (privilege-changing).
    pub irreversible: bool,
    /// Projection pointers the contract depends on by default (into the live model, see
    /// `crate::model`).
    pub default_pointers: &'static [&'static str],
    /// Parameter locations; anything else in `params` is refused.
    pub params: &'static [Field],
}

use FieldKind::{Array, Bool, Cidr, Int, Json, Str};

const SG_RULES: &[Field] = &[
    f("/rules", Array),
    f("/rules/*", Json),
    f("/rules/*/protocol", Str),
    f("/rules/*/from_port", Int),
    f("/rules/*/to_port", Int),
    f("/rules/*/cidr", Cidr),
    f("/rules/*/description", Str),
];

/// Every profile, in a fixed order.
pub const PROFILES: &[Profile] = &[
    Profile {
        op: Op::Ec2AuthorizeSecurityGroupIngress,
        action: "ec2:AuthorizeSecurityGroupIngress",
        service: "ec2",
        resource: ResourceKind::SecurityGroup,
        observe_call: "ec2:DescribeSecurityGroups",
        precondition: Precondition::None,
        irreversible: false,
        default_pointers: &["/ingress"],
        params: SG_RULES,
    },
    Profile {
        op: Op::Ec2RevokeSecurityGroupIngress,
        action: "ec2:RevokeSecurityGroupIngress",
        service: "ec2",
        resource: ResourceKind::SecurityGroup,
        observe_call: "ec2:DescribeSecurityGroups",
        precondition: Precondition::None,
        irreversible: false,
        default_pointers: &["/ingress"],
        params: SG_RULES,
    },
    Profile {
        op: Op::S3PutObject,
        action: "s3:PutObject",
        service: "s3",
        resource: ResourceKind::S3Object,
        observe_call: "s3:HeadObject",
        precondition: Precondition::S3ETag,
        irreversible: false,
        default_pointers: &["/etag"],
        params: &[f("/body", Str), f("/content_type", Str)],
    },
    Profile {
        op: Op::S3DeleteObject,
        action: "s3:DeleteObject",
        service: "s3",
        resource: ResourceKind::S3Object,
        observe_call: "s3:HeadObject",
        precondition: Precondition::S3ETag,
        irreversible: true,
        default_pointers: &["/etag"],
        params: &[],
    },
    Profile {
        op: Op::S3PutBucketPolicy,
        action: "s3:PutBucketPolicy",
        service: "s3",
        resource: ResourceKind::S3Bucket,
        observe_call: "s3:GetBucketPolicy",
        precondition: Precondition::None,
        irreversible: true,
        default_pointers: &["/policy"],
        params: &[f("/policy", Json), f("/policy/**", Json)],
    },
    Profile {
        op: Op::DynamoDbPutItem,
        action: "dynamodb:PutItem",
        service: "dynamodb",
        resource: ResourceKind::DynamoTable,
        observe_call: "dynamodb:GetItem (ConsistentRead)",
        precondition: Precondition::DynamoItem,
        irreversible: false,
        default_pointers: &[""],
        params: &[id("/key", Json), id("/key/**", Json), f("/item", Json), f("/item/**", Json)],
    },
    Profile {
        op: Op::DynamoDbUpdateItem,
        action: "dynamodb:UpdateItem",
        service: "dynamodb",
        resource: ResourceKind::DynamoTable,
        observe_call: "dynamodb:GetItem (ConsistentRead)",
        precondition: Precondition::DynamoItem,
        irreversible: false,
        default_pointers: &[""],
        params: &[
            id("/key", Json),
            id("/key/**", Json),
            f("/set", Json),
            f("/set/**", Json),
            f("/remove", Array),
            f("/remove/*", Str),
        ],
    },
    Profile {
        op: Op::DynamoDbDeleteItem,
        action: "dynamodb:DeleteItem",
        service: "dynamodb",
        resource: ResourceKind::DynamoTable,
        observe_call: "dynamodb:GetItem (ConsistentRead)",
        precondition: Precondition::DynamoItem,
        irreversible: true,
        default_pointers: &[""],
        params: &[id("/key", Json), id("/key/**", Json)],
    },
    Profile {
        op: Op::SsmPutParameter,
        action: "ssm:PutParameter",
        service: "ssm",
        resource: ResourceKind::SsmParameter,
        observe_call: "ssm:GetParameter",
        precondition: Precondition::SsmVersion,
        irreversible: false,
        // Never the value itself: a SecureString's value is its ciphertext (moto even embeds
        // the plaintext), and evidence is kept verbatim in certificates and the store.
        default_pointers: &["/value_digest", "/type", "/version"],
        // The type may not vary under a constraint: check 9 compares it with the observed one.
        params: &[f("/value", Str), id("/type", Str), f("/description", Str)],
    },
    Profile {
        op: Op::AutoScalingSetDesiredCapacity,
        action: "autoscaling:SetDesiredCapacity",
        service: "autoscaling",
        resource: ResourceKind::AutoScalingGroup,
        observe_call: "autoscaling:DescribeAutoScalingGroups",
        precondition: Precondition::None,
        irreversible: false,
        default_pointers: &["/desired_capacity", "/min_size", "/max_size"],
        params: &[f("/desired_capacity", Int), f("/honor_cooldown", Bool)],
    },
    Profile {
        op: Op::AutoScalingUpdateAutoScalingGroup,
        action: "autoscaling:UpdateAutoScalingGroup",
        service: "autoscaling",
        resource: ResourceKind::AutoScalingGroup,
        observe_call: "autoscaling:DescribeAutoScalingGroups",
        precondition: Precondition::None,
        irreversible: false,
        default_pointers: &["/desired_capacity", "/min_size", "/max_size"],
        params: &[f("/min_size", Int), f("/max_size", Int), f("/desired_capacity", Int)],
    },
];

/// The profile for an IAM action.
pub fn profile(action: &str) -> Result<&'static Profile, AwsError> {
    PROFILES.iter().find(|p| p.action == action).ok_or_else(|| {
        AwsError::Invalid(format!("`{action}` is not an operation of the AWS target"))
    })
}

/// Every IAM action the target performs: the protected actions of the bypass artefacts.
pub fn protected_actions() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.action).collect()
}

fn invalid(msg: impl Into<String>) -> AwsError {
    AwsError::Invalid(msg.into())
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, AwsError> {
    v.as_object().ok_or_else(|| invalid(format!("{what} must be an object")))
}

fn only_keys(m: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), AwsError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!("unknown field `{k}` in {what}"))),
        None => Ok(()),
    }
}

fn int_in(m: &Map<String, Value>, k: &str, lo: i64, hi: i64) -> Result<Option<i64>, AwsError> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => {
            let n = v.as_i64().ok_or_else(|| invalid(format!("`{k}` must be an integer")))?;
            if n < lo || n > hi {
                return Err(invalid(format!("`{k}` must be within {lo}..={hi}")));
            }
            Ok(Some(n))
        }
    }
}

fn string(m: &Map<String, Value>, k: &str, max: usize) -> Result<Option<String>, AwsError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(format!("`{k}` is longer than {max} bytes"))),
        Some(_) => Err(invalid(format!("`{k}` must be a string"))),
    }
}

/// Canonical rendering of a CIDR: network address with host bits cleared.
pub fn canonical_cidr(s: &str) -> Result<String, AwsError> {
    if !s.contains('/') {
        return Err(invalid(format!("`{s}` is not a CIDR (`a.b.c.d/n`)")));
    }
    let (ip, len) = parse_cidr(s).ok_or_else(|| invalid(format!("`{s}` is not a CIDR")))?;
    let net = match ip {
        std::net::IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            std::net::IpAddr::V4(std::net::Ipv4Addr::from(bits & mask))
        }
        std::net::IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits & mask))
        }
    };
    if net != ip {
        return Err(invalid(format!("`{s}` has host bits set; the network is `{net}/{len}`")));
    }
    Ok(format!("{net}/{len}"))
}

/// One security-group rule, normalised.
pub fn normalise_rule(v: &Value) -> Result<Value, AwsError> {
    let m = obj(v, "a rule")?;
    only_keys(m, &["protocol", "from_port", "to_port", "cidr", "description"], "a rule")?;
    let proto = string(m, "protocol", 16)?
        .ok_or_else(|| invalid("a rule needs `protocol`"))?
        .to_ascii_lowercase();
    let proto = match proto.as_str() {
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        "icmpv6" | "58" => "icmpv6",
        "-1" | "all" => "-1",
        other => {
            return Err(invalid(format!("protocol `{other}` is not tcp, udp, icmp, icmpv6 or -1")));
        }
    };
    let cidr =
        canonical_cidr(&string(m, "cidr", 64)?.ok_or_else(|| invalid("a rule needs `cidr`"))?)?;
    let (from, to) = if proto == "-1" {
        if m.contains_key("from_port") || m.contains_key("to_port") {
            return Err(invalid("protocol -1 (all) takes no ports"));
        }
        (-1, -1)
    } else {
        let from = int_in(m, "from_port", -1, 65535)?
            .ok_or_else(|| invalid("a rule needs `from_port`"))?;
        let to =
            int_in(m, "to_port", -1, 65535)?.ok_or_else(|| invalid("a rule needs `to_port`"))?;
        if (proto == "tcp" || proto == "udp") && (from < 0 || to < from) {
            return Err(invalid("tcp/udp rules need 0 <= from_port <= to_port"));
        }
        (from, to)
    };
    let mut out = json!({"protocol": proto, "from_port": from, "to_port": to, "cidr": cidr});
    if let (Some(d), Some(o)) = (string(m, "description", 255)?, out.as_object_mut()) {
        o.insert("description".into(), Value::String(d));
    }
    Ok(out)
}

/// A DynamoDB attribute value in DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, …), validated.
pub fn check_attribute_value(v: &Value, depth: usize) -> Result<(), AwsError> {
    if depth > 32 {
        return Err(invalid("attribute value nested too deeply"));
    }
    let m = obj(v, "an attribute value")?;
    let mut it = m.iter();
    let (Some((t, x)), None) = (it.next(), it.next()) else {
        return Err(invalid(
            "an attribute value has exactly one type key (S, N, B, BOOL, NULL, SS, NS, BS, L, M)",
        ));
    };
    let strs =
        |x: &Value| x.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
    let ok = match t.as_str() {
        "S" | "B" => x.is_string(),
        "N" => x.as_str().is_some_and(|s| s.parse::<f64>().is_ok_and(f64::is_finite)),
        "BOOL" => x.is_boolean(),
        "NULL" => x == &Value::Bool(true),
        "SS" | "BS" => strs(x),
        "NS" => {
            strs(x)
                && x.as_array().is_some_and(|a| {
                    a.iter().all(|n| n.as_str().is_some_and(|s| s.parse::<f64>().is_ok()))
                })
        }
        "L" => match x.as_array() {
            Some(a) => {
                for e in a {
                    check_attribute_value(e, depth + 1)?;
                }
                true
            }
            None => false,
        },
        "M" => match x.as_object() {
            Some(o) => {
                for e in o.values() {
                    check_attribute_value(e, depth + 1)?;
                }
                true
            }
            None => false,
        },
        _ => false,
    };
    if ok { Ok(()) } else { Err(invalid(format!("`{t}` attribute value is malformed"))) }
}

fn attribute_map(v: &Value, what: &str, max: usize) -> Result<Map<String, Value>, AwsError> {
    let m = obj(v, what)?;
    if m.is_empty() || m.len() > max {
        return Err(invalid(format!("{what} needs 1..={max} attributes")));
    }
    for (k, av) in m {
        if k.is_empty() || k.len() > 255 {
            return Err(invalid(format!("attribute name `{k}` must be 1..255 bytes")));
        }
        check_attribute_value(av, 0)?;
    }
    Ok(m.clone())
}

/// Validate `params` against the operation's request shape and return them normalised.
pub fn normalise_params(op: Op, params: &Value) -> Result<Value, AwsError> {
    let m = obj(params, "params")?;
    match op {
        Op::Ec2AuthorizeSecurityGroupIngress | Op::Ec2RevokeSecurityGroupIngress => {
            only_keys(m, &["rules"], "params")?;
            let rules = m
                .get("rules")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("`rules` must be an array"))?;
            if rules.is_empty() || rules.len() > 50 {
                return Err(invalid("`rules` needs 1..=50 rules"));
            }
            let rules = rules.iter().map(normalise_rule).collect::<Result<Vec<_>, _>>()?;
            let mut seen = BTreeSet::new();
            for r in &rules {
                if !seen.insert(rule_identity(r)) {
                    return Err(invalid("`rules` lists the same rule twice"));
                }
            }
            Ok(json!({"rules": rules}))
        }
        Op::S3PutObject => {
            only_keys(m, &["body", "content_type"], "params")?;
            let body = string(m, "body", 5 * 1024 * 1024)?
                .ok_or_else(|| invalid("`body` (UTF-8 text) is required"))?;
            let mut out = json!({"body": body});
            if let (Some(ct), Some(o)) = (string(m, "content_type", 255)?, out.as_object_mut()) {
                o.insert("content_type".into(), Value::String(ct));
            }
            Ok(out)
        }
        Op::S3DeleteObject => {
            only_keys(m, &[], "params")?;
            Ok(json!({}))
        }
        Op::S3PutBucketPolicy => {
            only_keys(m, &["policy"], "params")?;
            let pol = m
                .get("policy")
                .ok_or_else(|| invalid("`policy` (a policy document object) is required"))?;
            let pm = obj(pol, "`policy`")?;
            if !pm.get("Statement").is_some_and(|s| s.is_array() || s.is_object()) {
                return Err(invalid("`policy` needs a `Statement`"));
            }
            if pm.get("Version").and_then(Value::as_str) != Some("2012-10-17") {
                return Err(invalid("`policy` needs `\"Version\": \"2012-10-17\"`"));
            }
            if pol.to_string().len() > 20 * 1024 {
                return Err(invalid("`policy` exceeds the 20 KB bucket policy limit"));
            }
            Ok(json!({"policy": pol}))
        }
        Op::DynamoDbPutItem => {
            only_keys(m, &["key", "item"], "params")?;
            let key = attribute_map(m.get("key").unwrap_or(&Value::Null), "`key`", 2)?;
            let item = attribute_map(m.get("item").unwrap_or(&Value::Null), "`item`", 1000)?;
            for (k, v) in &key {
                if item.get(k) != Some(v) {
                    return Err(invalid(format!(
                        "`item` must carry key attribute `{k}` with the key's value"
                    )));
                }
            }
            Ok(json!({"key": key, "item": item}))
        }
        Op::DynamoDbUpdateItem => {
            only_keys(m, &["key", "set", "remove"], "params")?;
            let key = attribute_map(m.get("key").unwrap_or(&Value::Null), "`key`", 2)?;
            let set = match m.get("set") {
                Some(s) => attribute_map(s, "`set`", 500)?,
                None => Map::new(),
            };
            let remove: Vec<String> = match m.get("remove") {
                None => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| invalid("`remove` lists attribute names"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(invalid("`remove` must be an array of attribute names")),
            };
            if set.is_empty() && remove.is_empty() {
                return Err(invalid("UpdateItem needs `set` or `remove`"));
            }
            let mut names = BTreeSet::new();
            for n in set.keys().chain(remove.iter()) {
                if key.contains_key(n) {
                    return Err(invalid(format!("key attribute `{n}` cannot be updated")));
                }
                if n.is_empty() || !names.insert(n.clone()) {
                    return Err(invalid(format!("attribute `{n}` is named twice or empty")));
                }
            }
            let mut out = Map::new();
            out.insert("key".into(), Value::Object(key));
            if !set.is_empty() {
                out.insert("set".into(), Value::Object(set));
            }
            if !remove.is_empty() {
                out.insert("remove".into(), json!(remove));
            }
            Ok(Value::Object(out))
        }
        Op::DynamoDbDeleteItem => {
            only_keys(m, &["key"], "params")?;
            let key = attribute_map(m.get("key").unwrap_or(&Value::Null), "`key`", 2)?;
            Ok(json!({"key": key}))
        }
        Op::SsmPutParameter => {
            only_keys(m, &["value", "type", "description"], "params")?;
            let value = string(m, "value", 8192)?.ok_or_else(|| invalid("`value` is required"))?;
            if value.is_empty() {
                return Err(invalid("`value` must not be empty"));
            }
            let ty = string(m, "type", 16)?.unwrap_or_else(|| "String".into());
            if ty != "String" && ty != "StringList" {
                return Err(invalid(
                    "`type` must be String or StringList (SecureString needs KMS and is not supported)",
                ));
            }
            let mut out = json!({"value": value, "type": ty});
            if let (Some(d), Some(o)) = (string(m, "description", 1024)?, out.as_object_mut()) {
                o.insert("description".into(), Value::String(d));
            }
            Ok(out)
        }
        Op::AutoScalingSetDesiredCapacity => {
            only_keys(m, &["desired_capacity", "honor_cooldown"], "params")?;
            let d = int_in(m, "desired_capacity", 0, 100_000)?
                .ok_or_else(|| invalid("`desired_capacity` is required"))?;
            let mut out = json!({"desired_capacity": d});
            if let Some(h) = m.get("honor_cooldown") {
                let h = h.as_bool().ok_or_else(|| invalid("`honor_cooldown` must be a boolean"))?;
                if let Some(o) = out.as_object_mut() {
                    o.insert("honor_cooldown".into(), Value::Bool(h));
                }
            }
            Ok(out)
        }
        Op::AutoScalingUpdateAutoScalingGroup => {
            only_keys(m, &["min_size", "max_size", "desired_capacity"], "params")?;
            let min = int_in(m, "min_size", 0, 100_000)?;
            let max = int_in(m, "max_size", 0, 100_000)?;
            let des = int_in(m, "desired_capacity", 0, 100_000)?;
            if min.is_none() && max.is_none() && des.is_none() {
                return Err(invalid(
                    "UpdateAutoScalingGroup needs min_size, max_size or desired_capacity",
                ));
            }
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                return Err(invalid("min_size exceeds max_size"));
            }
            if let Some(d) = des
                && (min.is_some_and(|a| d < a) || max.is_some_and(|b| d > b))
            {
                return Err(invalid("desired_capacity is outside [min_size, max_size]"));
            }
            let mut out = Map::new();
            for (k, v) in [("min_size", min), ("max_size", max), ("desired_capacity", des)] {
                if let Some(v) = v {
                    out.insert(k.into(), json!(v));
                }
            }
            Ok(Value::Object(out))
        }
    }
}

/// The identity of a security-group rule: protocol, ports, CIDR (descriptions ignored).
pub fn rule_identity(r: &Value) -> (String, i64, i64, String) {
    (
        r.get("protocol").and_then(Value::as_str).unwrap_or_default().to_owned(),
        r.get("from_port").and_then(Value::as_i64).unwrap_or(-1),
        r.get("to_port").and_then(Value::as_i64).unwrap_or(-1),
        r.get("cidr").and_then(Value::as_str).unwrap_or_default().to_owned(),
    )
}

fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split('/').skip(1);
    let mut got = path.split('/').skip(1);
    loop {
        match (pat.next(), got.next()) {
            (Some("**"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(g)) if p == g => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The schema field a constraint path names, if any.
pub fn field_for(profile: &Profile, path: &str) -> Option<&'static Field> {
    profile.params.iter().find(|f| pattern_matches(f.path, path))
}

/// How an SSM parameter's value appears in the live model, evidence and records: its digest
/// (`sha256:<hex>` of the UTF-8 bytes), never the value. A changed value changes the digest,
/// so the drift check still sees it.
pub fn value_digest(value: &str) -> String {
    Digest::of_bytes(value.as_bytes()).to_string()
}

/// Check 9 for AWS: can the contract ever be valid, and can every constraint be enforced?
///
/// A contract whose target or params the operation cannot take (an ARN with a wildcard, of
/// another resource type, region or account; params outside the request shape) is refused
/// here, before anything is observed: it can never become valid, so it is not retried.
///
/// IAM enforces the action and the resource (the session policy names exactly the certified
/// ARN). No constraint on a parameter can be expressed to IAM; every one is enforced by the
/// broker itself, which builds the exact API request from the request's params after the
/// match rule has checked them against the constraints — nothing the agent sends reaches AWS
/// any other way. A constraint is therefore enforceable exactly when it names a location of
/// the operation's request shape whose value the broker sends as is, and refused when:
/// - the operation is unknown, or the path is not a location of its request shape (the
///   constraint would check something that is never sent);
/// - the path is the whole params (`""`), or a location that selects *which* item is touched
///   (a DynamoDB key): the evidence, the precondition and the session policy pin one item;
/// - the check cannot apply to the location's kind (`cidr_within` on a non-CIDR, `range` on
///   a non-integer, `prefix`/`max_len` on a number or boolean).
pub fn check_scope(contract: &Contract) -> Result<(), String> {
    let p = profile(&contract.op).map_err(|e| e.to_string())?;
    parse_target(&contract.target, p.service, p.resource).map_err(|e| format!("target: {e}"))?;
    normalise_params(p.op, &contract.params).map_err(|e| format!("params: {e}"))?;
    for c in &contract.constraints {
        if c.path.is_empty() {
            return Err("a constraint on the whole params cannot be enforced".into());
        }
        let field = field_for(p, &c.path)
            .ok_or_else(|| format!("`{}` is not a parameter of `{}`", c.path, p.action))?;
        if field.identity {
            return Err(format!(
                "`{}` selects the item `{}` acts on; the evidence and precondition pin one item, so it cannot vary",
                c.path, p.action
            ));
        }
        let ok = match c.check {
            CheckKind::Eq | CheckKind::In => true,
            CheckKind::CidrWithin => matches!(field.kind, FieldKind::Cidr | FieldKind::Json),
            CheckKind::Range => matches!(field.kind, FieldKind::Int | FieldKind::Json),
            CheckKind::Prefix => {
                matches!(field.kind, FieldKind::Str | FieldKind::Cidr | FieldKind::Json)
            }
            CheckKind::MaxLen => {
                matches!(
                    field.kind,
                    FieldKind::Str | FieldKind::Cidr | FieldKind::Array | FieldKind::Json
                )
            }
        };
        if !ok {
            return Err(format!(
                "a `{:?}` check cannot apply to `{}` ({:?})",
                c.check, c.path, field.kind
            ));
        }
    }
    Ok(())
}

/// Check 9 against the evidence (spec section 9, AWS): rules that compare the contract with
/// the certified live state.
///
/// `ssm:PutParameter` may not change the type of an existing parameter (`Overwrite=true`
/// would turn a SecureString into a plain String): the evidence must pin the observed type
/// (`/type`, a default pointer), and when the parameter existed the contract's type must be
/// that type. Since the contract's params cannot carry SecureString, a write to an existing
/// SecureString is always refused. The drift check then holds the live type to the evidence.
pub fn check_evidence(contract: &Contract, evidence: &Evidence) -> Result<(), String> {
    let p = profile(&contract.op).map_err(|e| e.to_string())?;
    if p.op != Op::SsmPutParameter {
        return Ok(());
    }
    let params = normalise_params(p.op, &contract.params).map_err(|e| format!("params: {e}"))?;
    let wanted = params.get("type").and_then(Value::as_str).unwrap_or("String");
    match evidence.projection.get("/type") {
        None => Err("the evidence does not pin the parameter's type (`/type`): a type change could not be refused".into()),
        Some(Value::Null) => Ok(()),
        Some(Value::String(observed)) if observed == wanted => Ok(()),
        Some(Value::String(observed)) => Err(format!(
            "the parameter exists as `{observed}`; changing its type to `{wanted}` is refused"
        )),
        Some(other) => Err(format!("the evidence's `/type` is not a parameter type: {other}")),
    }
}

/// Merge `[start, end]` ranges and return the number of values they cover (saturating).
fn covered(mut ranges: Vec<(u128, u128)>) -> u128 {
    ranges.sort_unstable();
    let mut total: u128 = 0;
    let mut cur: Option<(u128, u128)> = None;
    for (s, e) in ranges {
        cur = match cur {
            Some((cs, ce)) if s <= ce.saturating_add(1) => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total = total.saturating_add(ce - cs).saturating_add(1);
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = cur {
        total = total.saturating_add(ce - cs).saturating_add(1);
    }
    total
}

/// The prefix length of a single CIDR as wide as the address space the rules cover together
/// (IPv6 lengths divided by 4, as for one rule); 32 when there is none.
fn covered_prefix(rules: &[Value]) -> u32 {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (ip, len) in
        rules.iter().filter_map(|x| x.get("cidr").and_then(Value::as_str).and_then(parse_cidr))
    {
        match ip {
            std::net::IpAddr::V4(a) => {
                let host = 32 - u32::from(len);
                let base = u128::from(u32::from(a)) >> host << host;
                v4.push((base, base + ((1u128 << host) - 1)));
            }
            std::net::IpAddr::V6(a) => {
                let host = 128 - u32::from(len);
                let size_minus_1 = if host == 128 { u128::MAX } else { (1u128 << host) - 1 };
                let base = if host == 128 { 0 } else { u128::from(a) >> host << host };
                v6.push((base, base.saturating_add(size_minus_1)));
            }
        }
    }
    // floor(log2(n)) for n >= 1.
    let log2 = |n: u128| 127 - n.leading_zeros();
    let mut widest = 32;
    if !v4.is_empty() {
        widest = widest.min(32u32.saturating_sub(log2(covered(v4).max(1))));
    }
    if !v6.is_empty() {
        let n = covered(v6).max(1);
        let len = if n == u128::MAX { 0 } else { 128u32.saturating_sub(log2(n)) };
        widest = widest.min(len / 4);
    }
    widest
}

/// Whether the rules of `protocol` together open every port 0..=65535.
fn covers_all_ports(rules: &[Value], protocol: &str) -> bool {
    let ranges: Vec<(u128, u128)> = rules
        .iter()
        .filter(|x| x.get("protocol").and_then(Value::as_str) == Some(protocol))
        .filter_map(|x| {
            let f = u128::try_from(x.get("from_port")?.as_i64()?).ok()?;
            let t = u128::try_from(x.get("to_port")?.as_i64()?).ok()?;
            (f <= t).then_some((f, t.min(65535)))
        })
        .collect();
    let min = ranges.iter().map(|r| r.0).min();
    min == Some(0) && covered(ranges) >= 65536
}

/// The consequence factors of spec section 5 for AWS (documented in docs/aws.md).
pub fn consequence(op: Op, params: &Value) -> seb_target::ConsequenceFactors {
    let mut r = Vec::new();
    let (mut blast, mut priv_, mut unc): (f64, f64, f64) = (0.2, 0.0, 0.1);
    let (data, irrev): (f64, f64);
    let p = PROFILES.iter().find(|p| p.op == op);
    if p.is_some_and(|p| p.precondition == Precondition::None) {
        unc = 0.5;
        r.push("no precondition: the window between drift check and mutation is open (uncertainty 0.5)".into());
    }
    match op {
        Op::Ec2AuthorizeSecurityGroupIngress | Op::Ec2RevokeSecurityGroupIngress => {
            let authorize = op == Op::Ec2AuthorizeSecurityGroupIngress;
            let rules = params.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
            // Coverage of all the rules together, so splitting a range over several rules
            // (or several proposals, scored as their union: spec 5.2) does not narrow it.
            let widest = covered_prefix(&rules);
            let all_ports =
                rules.iter().any(|x| x.get("protocol").and_then(Value::as_str) == Some("-1"))
                    || ["tcp", "udp"].iter().any(|p| covers_all_ports(&rules, p));
            data = 0.2;
            irrev = 0.1;
            if authorize {
                blast = match widest {
                    0 => 1.0,
                    1..=8 => 0.8,
                    9..=16 => 0.6,
                    17..=24 => 0.4,
                    _ => 0.2,
                };
                priv_ = if widest == 0 { 1.0 } else { 0.6 };
                if widest == 0 {
                    r.push("ingress from 0.0.0.0/0 or ::/0: maximal blast radius and privilege expansion".into());
                } else {
                    r.push(format!("ingress opened to a /{widest} (blast radius {blast})"));
                }
                if all_ports {
                    priv_ = 1.0;
                    r.push("all ports or all protocols opened (privilege expansion 1.0)".into());
                }
            } else {
                blast = 0.3;
                priv_ = 0.0;
                r.push(
                    "revoking ingress can cut off traffic (availability), blast radius 0.3".into(),
                );
            }
        }
        Op::S3PutObject => {
            blast = 0.2;
            data = 0.5;
            irrev = 0.5;
            r.push("object overwrite: previous content lost unless the bucket is versioned (irreversibility 0.5)".into());
        }
        Op::S3DeleteObject => {
            blast = 0.2;
            data = 0.5;
            irrev = 1.0;
            r.push("delete: irreversible unless the bucket is versioned".into());
        }
        Op::S3PutBucketPolicy => {
            blast = 0.8;
            data = 0.7;
            irrev = 0.8;
            priv_ = 0.8;
            r.push("bucket policy: privilege-changing for every object of the bucket".into());
            let stmts = match params.pointer("/policy/Statement") {
                Some(Value::Array(a)) => a.clone(),
                Some(o @ Value::Object(_)) => vec![o.clone()],
                _ => vec![],
            };
            let public = stmts.iter().any(|s| {
                s.get("Effect").and_then(Value::as_str) == Some("Allow")
                    && matches!(s.get("Principal"), Some(Value::String(p)) if p == "*")
                    || s.pointer("/Principal/AWS").is_some_and(|a| {
                        a == "*" || a.as_array().is_some_and(|l| l.iter().any(|x| x == "*"))
                    }) && s.get("Effect").and_then(Value::as_str) == Some("Allow")
            });
            if public {
                blast = 1.0;
                priv_ = 1.0;
                r.push("bucket policy allows Principal \"*\": public access (maximal)".into());
            }
        }
        Op::DynamoDbPutItem | Op::DynamoDbUpdateItem => {
            data = 0.5;
            let removes = params.get("remove").is_some();
            irrev = if removes {
                0.6
            } else if op == Op::DynamoDbPutItem {
                0.5
            } else {
                0.4
            };
            if removes {
                r.push("UpdateItem removes attributes".into());
            }
            r.push("single item write, pinned by a condition expression".into());
        }
        Op::DynamoDbDeleteItem => {
            data = 0.5;
            irrev = 1.0;
            r.push("item delete: irreversible without point-in-time recovery".into());
        }
        Op::SsmPutParameter => {
            blast = 0.5;
            data = 0.6;
            irrev = 0.2;
            r.push("configuration read by every consumer of the parameter (blast radius 0.5); history kept (irreversibility 0.2)".into());
        }
        Op::AutoScalingSetDesiredCapacity | Op::AutoScalingUpdateAutoScalingGroup => {
            data = 0.1;
            let to_zero = params.get("desired_capacity").and_then(Value::as_i64) == Some(0)
                || params.get("max_size").and_then(Value::as_i64) == Some(0);
            blast = if to_zero { 0.9 } else { 0.5 };
            irrev = if to_zero { 0.6 } else { 0.3 };
            if to_zero {
                r.push("scales the group to zero: every instance is terminated".into());
            } else {
                r.push(
                    "capacity change: scale-in terminates instances (irreversibility 0.3)".into(),
                );
            }
        }
    }
    seb_target::ConsequenceFactors {
        blast_radius: blast,
        privilege_expansion: priv_,
        data_sensitivity: data,
        irreversibility: irrev,
        uncertainty: unc,
        reasons: r,
    }
}

/// Whether the live object (see `crate::model`) shows the operation's effect: the expected
/// post-state used by reconciliation. `live` is `null` when the resource is absent.
pub fn applied(op: Op, live: &Value, params: &Value) -> bool {
    let rules = || params.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
    let live_rules = || -> BTreeSet<(String, i64, i64, String)> {
        live.get("ingress")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(rule_identity).collect())
            .unwrap_or_default()
    };
    match op {
        Op::Ec2AuthorizeSecurityGroupIngress => {
            let have = live_rules();
            !live.is_null() && rules().iter().all(|r| have.contains(&rule_identity(r)))
        }
        Op::Ec2RevokeSecurityGroupIngress => {
            let have = live_rules();
            !live.is_null() && rules().iter().all(|r| !have.contains(&rule_identity(r)))
        }
        Op::S3PutObject => !live.is_null() && live.get("body") == params.get("body"),
        Op::S3DeleteObject | Op::DynamoDbDeleteItem => live.is_null(),
        Op::S3PutBucketPolicy => !live.is_null() && live.get("policy") == params.get("policy"),
        Op::DynamoDbPutItem => Some(live) == params.get("item"),
        Op::DynamoDbUpdateItem => {
            let set_ok = params
                .get("set")
                .and_then(Value::as_object)
                .is_none_or(|s| s.iter().all(|(k, v)| live.get(k) == Some(v)));
            let rm_ok = params
                .get("remove")
                .and_then(Value::as_array)
                .is_none_or(|r| r.iter().filter_map(Value::as_str).all(|k| live.get(k).is_none()));
            !live.is_null() && set_ok && rm_ok
        }
        Op::SsmPutParameter => {
            let digest = params.get("value").and_then(Value::as_str).map(value_digest);
            !live.is_null()
                && live.get("value_digest").and_then(Value::as_str) == digest.as_deref()
                && live.get("type") == params.get("type")
        }
        Op::AutoScalingSetDesiredCapacity => {
            !live.is_null() && live.get("desired_capacity") == params.get("desired_capacity")
        }
        Op::AutoScalingUpdateAutoScalingGroup => {
            !live.is_null()
                && ["min_size", "max_size", "desired_capacity"]
                    .iter()
                    .all(|k| params.get(*k).is_none_or(|v| live.get(*k) == Some(v)))
        }
    }
}

/// Where each operation carries values that views and logs show only as digest and length
/// (spec section 11; listed in docs/admission.md). A table of its own, apart from
/// [`PROFILES`]: what a value *is* (a parameter's value, an object's body, an item's
/// attributes, a policy document) decides, not how the operation is pinned or observed.
pub fn sensitive(op: Op) -> seb_target::Sensitive {
    use seb_target::Sensitive;
    match op {
        // The parameter's new value, and the current one the observation read.
        Op::SsmPutParameter => Sensitive { params: &["/value"], evidence: &[("/value", "")] },
        // The object's body (the evidence is its ETag only).
        Op::S3PutObject => Sensitive { params: &["/body"], evidence: &[] },
        // The policy document proposed and the one in force.
        Op::S3PutBucketPolicy => Sensitive { params: &["/policy"], evidence: &[("/policy", "")] },
        // Attribute values written, and every attribute of the observed item (the key's
        // values select the item and stay visible in `params.key`).
        Op::DynamoDbPutItem => Sensitive { params: &["/item/*"], evidence: &[("", "/*")] },
        Op::DynamoDbUpdateItem => Sensitive { params: &["/set/*"], evidence: &[("", "/*")] },
        Op::DynamoDbDeleteItem => Sensitive { params: &[], evidence: &[("", "/*")] },
        Op::Ec2AuthorizeSecurityGroupIngress
        | Op::Ec2RevokeSecurityGroupIngress
        | Op::S3DeleteObject
        | Op::AutoScalingSetDesiredCapacity
        | Op::AutoScalingUpdateAutoScalingGroup => Sensitive::NONE,
    }
}

/// Whether an operation needs its object to exist: deleting an S3 object or a DynamoDB item
/// that observation found absent is refused at admission. Every other operation creates or
/// updates (`PutObject`, `PutItem`, `UpdateItem`, `PutParameter` are upserts) or acts on a
/// resource whose observation fails when it is absent.
pub fn needs_existing(op: Op) -> bool {
    matches!(op, Op::S3DeleteObject | Op::DynamoDbDeleteItem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seb_core::types::{Constraint, Platform, RiskLevel};

    #[test]
    fn eleven_distinct_profiles() {
        assert_eq!(PROFILES.len(), 11);
        let actions: BTreeSet<_> = PROFILES.iter().map(|p| p.action).collect();
        assert_eq!(actions.len(), 11);
        for p in PROFILES {
            assert!(p.action.starts_with(&format!("{}:", p.service)), "{}", p.action);
            assert_eq!(profile(p.action).unwrap().op, p.op);
        }
        assert!(profile("s3:GetObject").is_err());
        // Preconditions exactly where the platform has one (spec section 9).
        for p in PROFILES {
            let none = p.precondition == Precondition::None;
            assert_eq!(
                none,
                p.service == "ec2" || p.service == "autoscaling" || p.op == Op::S3PutBucketPolicy,
                "{}",
                p.action
            );
        }
    }

    #[test]
    fn params_normalise_and_refuse() {
        let p = normalise_params(
            Op::Ec2AuthorizeSecurityGroupIngress,
            &json!({"rules": [{"protocol": "TCP", "from_port": 443, "to_port": 443, "cidr": "10.0.0.0/8"}]}),
        )
        .unwrap();
        assert_eq!(
            p,
            json!({"rules": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "10.0.0.0/8"}]})
        );
        for bad in [
            json!({"rules": []}),
            json!({"rules": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "10.0.0.1/8"}]}),
            json!({"rules": [{"protocol": "tcp", "from_port": 443, "to_port": 80, "cidr": "10.0.0.0/8"}]}),
            json!({"rules": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "10.0.0.0/8", "x": 1}]}),
            json!({"rules": [{"protocol": "gre", "from_port": 1, "to_port": 1, "cidr": "10.0.0.0/8"}]}),
            json!({"rules": [], "extra": true}),
        ] {
            assert!(normalise_params(Op::Ec2AuthorizeSecurityGroupIngress, &bad).is_err(), "{bad}");
        }
        assert!(normalise_params(Op::S3DeleteObject, &json!({"version_id": "x"})).is_err());
        assert!(
            normalise_params(
                Op::DynamoDbPutItem,
                &json!({"key": {"pk": {"S": "a"}}, "item": {"pk": {"S": "b"}}})
            )
            .is_err()
        );
        assert!(
            normalise_params(
                Op::DynamoDbPutItem,
                &json!({"key": {"pk": {"S": "a"}}, "item": {"pk": {"S": "a"}, "n": {"N": "x"}}})
            )
            .is_err()
        );
        assert!(
            normalise_params(
                Op::DynamoDbUpdateItem,
                &json!({"key": {"pk": {"S": "a"}}, "set": {"pk": {"S": "b"}}})
            )
            .is_err()
        );
        assert!(
            normalise_params(Op::SsmPutParameter, &json!({"value": "v", "type": "SecureString"}))
                .is_err()
        );
        assert!(
            normalise_params(
                Op::AutoScalingUpdateAutoScalingGroup,
                &json!({"min_size": 3, "max_size": 2})
            )
            .is_err()
        );
        assert!(
            normalise_params(Op::S3PutBucketPolicy, &json!({"policy": {"Statement": []}})).is_err()
        );
        assert_eq!(
            normalise_params(Op::SsmPutParameter, &json!({"value": "v"})).unwrap(),
            json!({"value": "v", "type": "String"})
        );
    }

    fn tref(service: &str, arn: &str) -> Value {
        json!({"account": "123456789012", "region": "us-east-1", "service": service, "arn": arn})
    }

    /// A valid target and params for each operation.
    fn valid(op: &str) -> (Value, Value) {
        let sg = tref("ec2", "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0abc12");
        let rules = json!({"rules": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "10.0.0.0/8"}]});
        let obj = tref("s3", "arn:aws:s3:::bucket-a/k.txt");
        let table = tref("dynamodb", "arn:aws:dynamodb:us-east-1:123456789012:table/orders");
        let key = json!({"pk": {"S": "a"}});
        let asg = tref(
            "autoscaling",
            "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0d2f1a2b-1111-2222-3333-444455556666:autoScalingGroupName/web",
        );
        match op {
            "ec2:AuthorizeSecurityGroupIngress" | "ec2:RevokeSecurityGroupIngress" => (sg, rules),
            "s3:PutObject" => (obj, json!({"body": "x"})),
            "s3:DeleteObject" => (obj, json!({})),
            "s3:PutBucketPolicy" => (
                tref("s3", "arn:aws:s3:::bucket-a"),
                json!({"policy": {"Version": "2012-10-17", "Statement": []}}),
            ),
            "dynamodb:PutItem" => {
                (table, json!({"key": key, "item": {"pk": {"S": "a"}, "n": {"N": "1"}}}))
            }
            "dynamodb:UpdateItem" => (table, json!({"key": key, "set": {"n": {"N": "2"}}})),
            "dynamodb:DeleteItem" => (table, json!({"key": key})),
            "ssm:PutParameter" => (
                tref("ssm", "arn:aws:ssm:us-east-1:123456789012:parameter/app/flag"),
                json!({"value": "on", "type": "String"}),
            ),
            "autoscaling:SetDesiredCapacity" => (asg, json!({"desired_capacity": 2})),
            "autoscaling:UpdateAutoScalingGroup" => (asg, json!({"max_size": 4})),
            _ => (json!({}), json!({})),
        }
    }

    fn contract(op: &str, constraints: Vec<Constraint>) -> Contract {
        let (target, params) = valid(op);
        Contract {
            platform: Platform::Aws,
            op: op.into(),
            target,
            params,
            constraints,
            risk_level: RiskLevel::L2,
        }
    }

    fn c(path: &str, check: CheckKind, value: Value) -> Constraint {
        Constraint { path: path.into(), check, value }
    }

    #[test]
    fn scope_accepts_broker_enforced_params_and_refuses_the_rest() {
        let ok = contract(
            "ec2:AuthorizeSecurityGroupIngress",
            vec![
                c("/rules/0/cidr", CheckKind::CidrWithin, json!("10.0.0.0/8")),
                c("/rules/0/from_port", CheckKind::Range, json!({"min": 1024})),
                c("/rules/0/description", CheckKind::MaxLen, json!(64)),
                c("/rules", CheckKind::MaxLen, json!(2)),
            ],
        );
        assert!(check_scope(&ok).is_ok());
        assert!(
            check_scope(&contract("s3:PutObject", vec![c("/body", CheckKind::MaxLen, json!(100))]))
                .is_ok()
        );
        assert!(
            check_scope(&contract(
                "dynamodb:PutItem",
                vec![c("/item/n/N", CheckKind::In, json!(["1", "2"]))]
            ))
            .is_ok()
        );
        for bad in [
            contract("s3:GetObject", vec![]),
            contract("s3:PutObject", vec![c("/acl", CheckKind::Eq, json!("private"))]),
            contract("s3:PutObject", vec![c("", CheckKind::Eq, json!({}))]),
            contract("s3:PutObject", vec![c("/body", CheckKind::CidrWithin, json!("10.0.0.0/8"))]),
            contract(
                "ec2:AuthorizeSecurityGroupIngress",
                vec![c("/rules/0/from_port", CheckKind::Prefix, json!("1"))],
            ),
            contract(
                "ec2:AuthorizeSecurityGroupIngress",
                vec![c("/rules/0/cidr", CheckKind::Range, json!({"min": 1}))],
            ),
            contract("dynamodb:PutItem", vec![c("/key/pk/S", CheckKind::Prefix, json!("user-"))]),
            contract("dynamodb:DeleteItem", vec![c("/key", CheckKind::Eq, json!({}))]),
            contract(
                "autoscaling:SetDesiredCapacity",
                vec![c("/desired_capacity", CheckKind::CidrWithin, json!("10.0.0.0/8"))],
            ),
        ] {
            assert!(check_scope(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scope_refuses_a_contract_that_can_never_be_valid() {
        for p in PROFILES {
            assert!(check_scope(&contract(p.action, vec![])).is_ok(), "{}", p.action);
        }
        let with_target = |op: &str, target: Value| Contract { target, ..contract(op, vec![]) };
        for (op, target) in [
            ("s3:PutObject", tref("s3", "arn:aws:s3:::bucket-a/*")),
            ("s3:PutObject", tref("s3", "arn:aws:s3:::bucket-*/k")),
            ("s3:PutBucketPolicy", tref("s3", "arn:aws:s3:::bucket-a/k")),
            ("ssm:PutParameter", tref("ssm", "arn:aws:ssm:us-east-1:123456789012:parameter/app/*")),
            ("ssm:PutParameter", tref("ssm", "arn:aws:ssm:us-east-1:*:parameter/app/flag")),
            ("ssm:PutParameter", tref("ssm", "arn:aws:ssm:us-west-2:123456789012:parameter/a")),
            (
                "dynamodb:PutItem",
                tref("dynamodb", "arn:aws:dynamodb:us-east-1:123456789012:table/?rders"),
            ),
            (
                "ec2:AuthorizeSecurityGroupIngress",
                tref("ec2", "arn:aws:ec2:us-east-1:123456789012:security-group/*"),
            ),
            ("ec2:AuthorizeSecurityGroupIngress", tref("s3", "arn:aws:s3:::bucket-a/k")),
            ("s3:PutObject", json!({"arn": "arn:aws:s3:::bucket-a/k"})),
        ] {
            let err = check_scope(&with_target(op, target.clone())).unwrap_err();
            assert!(err.starts_with("target: "), "{op} {target}: {err}");
        }
        let with_params = |op: &str, params: Value| Contract { params, ..contract(op, vec![]) };
        for (op, params) in [
            ("ssm:PutParameter", json!({"value": "v", "type": "SecureString"})),
            ("s3:PutObject", json!({"body": "x", "acl": "public-read"})),
            ("autoscaling:SetDesiredCapacity", json!({"desired_capacity": -1})),
        ] {
            let err = check_scope(&with_params(op, params.clone())).unwrap_err();
            assert!(err.starts_with("params: "), "{op} {params}: {err}");
        }
        // The type of a parameter cannot vary under a constraint (check 9 compares it with
        // the evidence's).
        let c = Constraint {
            path: "/type".into(),
            check: CheckKind::In,
            value: json!(["String", "StringList"]),
        };
        assert!(check_scope(&contract("ssm:PutParameter", vec![c])).is_err());
    }

    fn evidence(pairs: &[(&str, Value)]) -> Evidence {
        let projection: std::collections::BTreeMap<String, Value> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Evidence {
            digest: Digest::of_json(&projection).unwrap(),
            projection,
            observed_at_ms: 0,
            tolerance: Default::default(),
        }
    }

    #[test]
    fn an_existing_parameters_type_cannot_change() {
        let put = |ty: &str| Contract {
            params: json!({"value": "v", "type": ty}),
            ..contract("ssm:PutParameter", vec![])
        };
        let d = json!(value_digest("old"));
        let ev = |ty: Value| {
            evidence(&[("/value_digest", d.clone()), ("/type", ty), ("/version", json!(3))])
        };
        let err = check_evidence(&put("String"), &ev(json!("SecureString"))).unwrap_err();
        assert!(err.contains("SecureString") && err.contains("refused"), "{err}");
        assert!(check_evidence(&put("StringList"), &ev(json!("String"))).is_err());
        assert!(check_evidence(&put("String"), &ev(json!("StringList"))).is_err());
        assert!(check_evidence(&put("String"), &ev(json!(7))).is_err());
        assert!(check_evidence(&put("String"), &ev(json!("String"))).is_ok());
        assert!(check_evidence(&put("StringList"), &ev(json!("StringList"))).is_ok());
        // Absent parameter: created with the contract's type (Overwrite=false).
        assert!(check_evidence(&put("String"), &ev(Value::Null)).is_ok());
        // No `/type` in the evidence: nothing pins the type, refused.
        let unpinned = evidence(&[("/value_digest", d.clone()), ("/version", json!(3))]);
        assert!(check_evidence(&put("String"), &unpinned).is_err());
        // A type omitted in params means String.
        let default_ty =
            Contract { params: json!({"value": "v"}), ..contract("ssm:PutParameter", vec![]) };
        assert!(check_evidence(&default_ty, &ev(json!("SecureString"))).is_err());
        // Other operations have no evidence rule.
        assert!(check_evidence(&contract("s3:PutObject", vec![]), &evidence(&[])).is_ok());
    }

    #[test]
    fn ssm_values_are_digests() {
        let d = value_digest("s3cr3t");
        assert!(d.starts_with("sha256:") && d.len() == 7 + 64 && !d.contains("s3cr3t"), "{d}");
        assert_ne!(d, value_digest("s3cr3u"));
        let params = json!({"value": "s3cr3t", "type": "String"});
        let live = json!({"value_digest": d, "type": "String", "version": 2});
        assert!(applied(Op::SsmPutParameter, &live, &params));
        let other = json!({"value_digest": value_digest("x"), "type": "String", "version": 2});
        assert!(!applied(Op::SsmPutParameter, &other, &params));
        let secure = json!({"value_digest": d, "type": "SecureString", "version": 2});
        assert!(!applied(Op::SsmPutParameter, &secure, &params));
        let p = profile("ssm:PutParameter").unwrap();
        assert!(!p.default_pointers.contains(&"/value"));
        assert!(
            p.default_pointers.contains(&"/value_digest") && p.default_pointers.contains(&"/type")
        );
    }

    #[test]
    fn consequence_rules() {
        let open = consequence(
            Op::Ec2AuthorizeSecurityGroupIngress,
            &json!({"rules": [{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "0.0.0.0/0"}]}),
        );
        assert_eq!(open.blast_radius, 1.0);
        assert_eq!(open.privilege_expansion, 1.0);
        let narrow = consequence(
            Op::Ec2AuthorizeSecurityGroupIngress,
            &json!({"rules": [{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.1.2.0/24"}]}),
        );
        assert!(narrow.blast_radius < 0.5);
        let v6 = consequence(
            Op::Ec2AuthorizeSecurityGroupIngress,
            &json!({"rules": [{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "::/0"}]}),
        );
        assert_eq!(v6.blast_radius, 1.0);
        assert_eq!(consequence(Op::S3DeleteObject, &json!({})).irreversibility, 1.0);
        assert_eq!(consequence(Op::DynamoDbDeleteItem, &json!({})).irreversibility, 1.0);
        let bp = consequence(
            Op::S3PutBucketPolicy,
            &json!({"policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]}}),
        );
        assert_eq!(bp.privilege_expansion, 1.0);
        assert!(
            consequence(Op::S3PutBucketPolicy, &json!({"policy": {}})).privilege_expansion >= 0.8
        );
        for p in PROFILES {
            let c = consequence(p.op, &json!({}));
            for x in [
                c.blast_radius,
                c.privilege_expansion,
                c.data_sensitivity,
                c.irreversibility,
                c.uncertainty,
            ] {
                assert!((0.0..=1.0).contains(&x));
            }
            assert!(!c.reasons.is_empty());
            if p.irreversible {
                assert!(c.irreversibility >= 0.8 || c.privilege_expansion >= 0.8, "{}", p.action);
            }
        }
    }

    #[test]
    fn applied_predicates() {
        let rule = json!({"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"});
        let params = json!({"rules": [rule.clone()]});
        let with = json!({"ingress": [rule]});
        let without = json!({"ingress": []});
        assert!(applied(Op::Ec2AuthorizeSecurityGroupIngress, &with, &params));
        assert!(!applied(Op::Ec2AuthorizeSecurityGroupIngress, &without, &params));
        assert!(applied(Op::Ec2RevokeSecurityGroupIngress, &without, &params));
        assert!(applied(Op::S3DeleteObject, &Value::Null, &json!({})));
        assert!(!applied(Op::S3DeleteObject, &json!({"etag": "x"}), &json!({})));
        let up = json!({"key": {"pk": {"S": "a"}}, "set": {"n": {"N": "2"}}, "remove": ["old"]});
        assert!(applied(Op::DynamoDbUpdateItem, &json!({"pk": {"S": "a"}, "n": {"N": "2"}}), &up));
        assert!(!applied(
            Op::DynamoDbUpdateItem,
            &json!({"pk": {"S": "a"}, "n": {"N": "2"}, "old": {"S": "x"}}),
            &up
        ));
    }
}

#[cfg(test)]
mod sensitive_tests {
    use super::*;

    #[test]
    fn secret_values_are_marked_per_operation() {
        let s = sensitive(Op::SsmPutParameter);
        assert!(s.covers_param("/value") && !s.covers_param("/type"));
        let mut p = json!({"value": "hunter2", "type": "String"});
        s.redact_params(&mut p);
        assert_eq!(p["type"], "String");
        assert_eq!(p["value"]["length"], 7);
        assert!(sensitive(Op::S3PutObject).covers_param("/body"));
        assert!(sensitive(Op::S3PutBucketPolicy).covers_param("/policy/Statement"));
        let put = sensitive(Op::DynamoDbPutItem);
        assert!(put.covers_param("/item/secret/S") && !put.covers_param("/key/pk"));
        assert!(sensitive(Op::DynamoDbUpdateItem).covers_param("/set/a"));
        assert!(sensitive(Op::AutoScalingSetDesiredCapacity).is_empty());
        assert!(needs_existing(Op::S3DeleteObject) && !needs_existing(Op::S3PutObject));
    }
}
