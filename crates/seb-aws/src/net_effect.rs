//! Net effect of AWS operations (SEB-SPEC 5.2, documented in `docs/admission.md`).
//!
//! | op | field | kind | before (evidence) → after |
//! |---|---|---|---|
//! | `ec2:AuthorizeSecurityGroupIngress` | `ingress` | additive | `/ingress` rules → plus the params' rules (by protocol, ports, CIDR) |
//! | `ec2:RevokeSecurityGroupIngress` | `ingress` | additive | `/ingress` rules → minus the params' rules |
//! | `s3:PutBucketPolicy` | `statements` | additive | `/policy` Statement list → the params' Statement list |
//! | `autoscaling:SetDesiredCapacity` | `desired_capacity` | numeric | `/desired_capacity` → params |
//! | `autoscaling:UpdateAutoScalingGroup` | `min_size`, `max_size`, `desired_capacity` | numeric | each one the params name |
//! | `s3:DeleteObject`, `dynamodb:DeleteItem` | — | delete | |
//! | `s3:PutObject`, `dynamodb:PutItem` | — | create when the evidence shows it absent | |
//!
//! The net change is scored by the operation's own rules on the end state: the union of the
//! added ingress rules as one `AuthorizeSecurityGroupIngress` (whose rule scores the address
//! and port coverage of all its rules together, so `0.0.0.0/1` + `128.0.0.0/1` is
//! `0.0.0.0/0`), the union of added statements as one bucket policy, the capacities' end
//! values as one `UpdateAutoScalingGroup`, any delete as the service's delete.

use std::collections::BTreeMap;

use seb_target::net_effect::object_key;
use seb_target::{Change, ConsequenceFactors, FieldChange, NetScope};
use serde_json::{Value, json};

use crate::profiles::{self, Op, normalise_rule, rule_identity};

fn rule_key(r: &Value) -> Value {
    let (p, f, t, c) = rule_identity(r);
    json!({"protocol": p, "from_port": f, "to_port": t, "cidr": c})
}

fn rules_of(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| normalise_rule(r).map(|n| rule_key(&n)).unwrap_or_else(|_| rule_key(r)))
                .collect()
        })
        .unwrap_or_default()
}

fn statements(policy: Option<&Value>) -> Vec<Value> {
    match policy.and_then(|p| p.get("Statement")) {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    }
}

/// What `op` changes (see the module documentation).
pub fn change(
    op: &str,
    target: &Value,
    params: &Value,
    evidence: &BTreeMap<String, Value>,
) -> Change {
    let mut c = Change::of(object_key(target));
    let Ok(p) = profiles::profile(op) else { return c };
    let params = profiles::normalise_params(p.op, params).unwrap_or_else(|_| params.clone());
    let ev = |k: &str| evidence.get(k).filter(|v| !v.is_null());
    match p.op {
        Op::Ec2AuthorizeSecurityGroupIngress | Op::Ec2RevokeSecurityGroupIngress => {
            let before = rules_of(ev("/ingress"));
            let named = rules_of(params.get("rules"));
            let after: Vec<Value> = if p.op == Op::Ec2AuthorizeSecurityGroupIngress {
                before.iter().chain(named.iter()).cloned().collect()
            } else {
                before.iter().filter(|r| !named.contains(r)).cloned().collect()
            };
            c.fields.insert("ingress".into(), FieldChange::additive(&before, &after));
        }
        Op::S3PutBucketPolicy => {
            let before = statements(ev("/policy"));
            let after = statements(params.get("policy"));
            c.fields.insert("statements".into(), FieldChange::additive(&before, &after));
            if ev("/policy").is_none() {
                c.creates = 1;
            }
        }
        Op::AutoScalingSetDesiredCapacity | Op::AutoScalingUpdateAutoScalingGroup => {
            for k in ["desired_capacity", "min_size", "max_size"] {
                if let Some(a) = params.get(k).and_then(Value::as_i64) {
                    let b = ev(&format!("/{k}")).and_then(Value::as_i64);
                    c.fields.insert(k.into(), FieldChange::numeric(b, Some(a)));
                }
            }
        }
        Op::S3DeleteObject | Op::DynamoDbDeleteItem => c.deletes = 1,
        Op::S3PutObject => {
            if ev("/etag").is_none() {
                c.creates = 1;
            }
        }
        Op::DynamoDbPutItem => {
            if ev("").is_none_or(|v| v.as_object().is_some_and(serde_json::Map::is_empty)) {
                c.creates = 1;
            }
        }
        Op::DynamoDbUpdateItem | Op::SsmPutParameter => {}
    }
    c
}

/// The net change scored by the operations' own rules (see the module documentation).
pub fn net_consequence(target: &Value, net: &Change) -> Option<ConsequenceFactors> {
    let mut out: Option<ConsequenceFactors> = None;
    let mut add = |f: ConsequenceFactors| {
        out = Some(match out.take() {
            Some(o) => o.max(&f),
            None => f,
        });
    };
    let ingress = net.added("ingress");
    if !ingress.is_empty() {
        add(profiles::consequence(
            Op::Ec2AuthorizeSecurityGroupIngress,
            &json!({"rules": ingress}),
        ));
    }
    let stmts = net.added("statements");
    if !stmts.is_empty() {
        let doc = json!({"policy": {"Version": "2012-10-17", "Statement": stmts}});
        add(profiles::consequence(Op::S3PutBucketPolicy, &doc));
    }
    let mut caps = serde_json::Map::new();
    for k in ["desired_capacity", "min_size", "max_size"] {
        if let Some(a) = net.after(k) {
            caps.insert(k.into(), json!(a));
        }
    }
    if !caps.is_empty() {
        add(profiles::consequence(Op::AutoScalingUpdateAutoScalingGroup, &Value::Object(caps)));
    }
    if net.deletes > 0 {
        let op = match target.get("service").and_then(Value::as_str) {
            Some("dynamodb") => Op::DynamoDbDeleteItem,
            _ => Op::S3DeleteObject,
        };
        add(profiles::consequence(op, &json!({})));
    }
    out
}

/// `aws|object|<arn>`, `aws|namespace|<account>/<region>/<service>`,
/// `aws|account_service|<account>/<service>`.
pub fn scope_key(target: &Value, scope: NetScope) -> String {
    let s = |k: &str| target.get(k).and_then(Value::as_str).unwrap_or("");
    match scope {
        NetScope::Object if !s("arn").is_empty() => format!("aws|object|{}", s("arn")),
        NetScope::Object => format!("aws|object|{}", object_key(target)),
        NetScope::Namespace => {
            format!("aws|namespace|{}/{}/{}", s("account"), s("region"), s("service"))
        }
        NetScope::AccountService => {
            format!("aws|account_service|{}/{}", s("account"), s("service"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seb_target::net_effect::net;

    fn sg() -> Value {
        json!({"account": "123456789012", "region": "us-east-1", "service": "ec2",
               "arn": "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1"})
    }
    fn rule(cidr: &str, from: i64, to: i64) -> Value {
        json!({"protocol": "tcp", "from_port": from, "to_port": to, "cidr": cidr})
    }

    #[test]
    fn split_cidrs_and_ports_score_as_their_union() {
        let auth = "ec2:AuthorizeSecurityGroupIngress";
        let empty: BTreeMap<String, Value> = [("/ingress".to_owned(), json!([]))].into();
        let a = change(auth, &sg(), &json!({"rules": [rule("0.0.0.0/1", 443, 443)]}), &empty);
        let after_a: BTreeMap<String, Value> =
            [("/ingress".to_owned(), json!([rule("0.0.0.0/1", 443, 443)]))].into();
        let b = change(auth, &sg(), &json!({"rules": [rule("128.0.0.0/1", 443, 443)]}), &after_a);
        assert_eq!(b.added("ingress"), [rule("128.0.0.0/1", 443, 443)]);
        let n = net(&[a, b]);
        let f = net_consequence(&sg(), &n).unwrap();
        let whole = profiles::consequence(
            Op::Ec2AuthorizeSecurityGroupIngress,
            &json!({"rules": [rule("0.0.0.0/0", 443, 443)]}),
        );
        assert_eq!(
            (f.blast_radius, f.privilege_expansion),
            (whole.blast_radius, whole.privilege_expansion)
        );
        // Port halves: all ports opened together.
        let p1 = change(auth, &sg(), &json!({"rules": [rule("10.0.0.0/24", 0, 32767)]}), &empty);
        let p2 =
            change(auth, &sg(), &json!({"rules": [rule("10.0.0.0/24", 32768, 65535)]}), &empty);
        let f = net_consequence(&sg(), &net(&[p1, p2])).unwrap();
        assert_eq!(f.privilege_expansion, 1.0);
    }

    #[test]
    fn capacity_nets_and_deletes() {
        let asg = json!({"account": "1", "region": "r", "service": "autoscaling", "arn": "arn:x"});
        let ev = |d: i64| -> BTreeMap<String, Value> {
            [("/desired_capacity".to_owned(), json!(d))].into()
        };
        let steps: Vec<Change> = (2..12)
            .map(|d| {
                change(
                    "autoscaling:SetDesiredCapacity",
                    &asg,
                    &json!({"desired_capacity": d + 1}),
                    &ev(d),
                )
            })
            .collect();
        let n = net(&steps);
        assert_eq!(n.fields["desired_capacity"], FieldChange::numeric(Some(2), Some(12)));
        let d = change(
            "s3:DeleteObject",
            &json!({"service": "s3", "arn": "arn:aws:s3:::b/k"}),
            &json!({}),
            &BTreeMap::new(),
        );
        assert_eq!(d.deletes, 1);
        assert_eq!(net_consequence(&json!({"service": "s3"}), &d).unwrap().irreversibility, 1.0);
    }

    #[test]
    fn scope_keys() {
        assert_eq!(
            scope_key(&sg(), NetScope::Object),
            "aws|object|arn:aws:ec2:us-east-1:123456789012:security-group/sg-1"
        );
        assert_eq!(
            scope_key(&sg(), NetScope::AccountService),
            "aws|account_service|123456789012/ec2"
        );
        assert_eq!(
            scope_key(&sg(), NetScope::Namespace),
            "aws|namespace|123456789012/us-east-1/ec2"
        );
    }
}
