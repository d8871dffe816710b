//! Constraint checks and the match rule (spec section 3).

use std::net::IpAddr;

use serde_json::Value;

use crate::json::{is_valid_pointer, split_pointer};
use crate::types::{CheckKind, Constraint};

/// Evaluate one check of `value` against the constraint argument `arg`.
pub fn check(kind: CheckKind, arg: &Value, value: &Value) -> Result<(), String> {
    match kind {
        CheckKind::Eq => {
            if value == arg {
                Ok(())
            } else {
                Err("value differs from the required one".into())
            }
        }
        CheckKind::In => match arg {
            Value::Array(allowed) if allowed.contains(value) => Ok(()),
            Value::Array(_) => Err("value is not in the allowed set".into()),
            _ => Err("`in` constraint argument is not an array".into()),
        },
        CheckKind::Range => {
            let x = value.as_f64().ok_or("value is not a number")?;
            let obj = arg.as_object().ok_or("`range` argument is not an object")?;
            if obj.keys().any(|k| k != "min" && k != "max") || obj.is_empty() {
                return Err("`range` argument takes only `min` and `max`".into());
            }
            if let Some(min) = obj.get("min") {
                let min = min.as_f64().ok_or("`range` min is not a number")?;
                if x < min {
                    return Err(format!("value {x} is below the minimum {min}"));
                }
            }
            if let Some(max) = obj.get("max") {
                let max = max.as_f64().ok_or("`range` max is not a number")?;
                if x > max {
                    return Err(format!("value {x} is above the maximum {max}"));
                }
            }
            Ok(())
        }
        CheckKind::Prefix => {
            let p = arg.as_str().ok_or("`prefix` argument is not a string")?;
            let s = value.as_str().ok_or("value is not a string")?;
            if s.starts_with(p) { Ok(()) } else { Err("value lacks the required prefix".into()) }
        }
        CheckKind::MaxLen => {
            let max = arg.as_u64().ok_or("`max_len` argument is not a non-negative integer")?;
            let len = match value {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                _ => return Err("value is neither a string nor an array".into()),
            } as u64;
            if len <= max { Ok(()) } else { Err(format!("length {len} exceeds {max}")) }
        }
        CheckKind::CidrWithin => {
            let outer = parse_cidr(arg.as_str().ok_or("`cidr_within` argument is not a string")?)
                .ok_or("`cidr_within` argument is not a CIDR")?;
            let inner = parse_cidr(value.as_str().ok_or("value is not a string")?)
                .ok_or("value is not an IP address or CIDR")?;
            if cidr_within(inner, outer) {
                Ok(())
            } else {
                Err("address range is outside the allowed CIDR".into())
            }
        }
    }
}

/// Parse `a.b.c.d/n`, an IPv6 CIDR, or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => {
            if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (a, Some(l.parse::<u8>().ok()?))
        }
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

fn cidr_within(inner: (IpAddr, u8), outer: (IpAddr, u8)) -> bool {
    match (inner.0, outer.0) {
        (IpAddr::V4(i), IpAddr::V4(o)) => {
            inner.1 >= outer.1 && prefix_eq(&i.octets(), &o.octets(), outer.1)
        }
        (IpAddr::V6(i), IpAddr::V6(o)) => {
            inner.1 >= outer.1 && prefix_eq(&i.octets(), &o.octets(), outer.1)
        }
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let mut remaining = u32::from(bits);
    for (x, y) in a.iter().zip(b) {
        if remaining == 0 {
            return true;
        }
        let take = remaining.min(8);
        let mask: u8 = if take == 8 { 0xff } else { !(0xffu8 >> take) };
        if (x & mask) != (y & mask) {
            return false;
        }
        remaining -= take;
    }
    remaining == 0
}

/// Validate constraints themselves: pointers well formed, arguments of the right shape.
pub fn validate(constraints: &[Constraint]) -> Result<(), String> {
    for c in constraints {
        if !is_valid_pointer(&c.path) || c.path.is_empty() {
            return Err(format!("constraint path `{}` is not a JSON pointer into params", c.path));
        }
        let arg_ok = match c.check {
            CheckKind::Eq => true,
            CheckKind::In => c.value.is_array(),
            CheckKind::Range => c.value.is_object(),
            CheckKind::Prefix => c.value.is_string(),
            CheckKind::MaxLen => c.value.is_u64(),
            CheckKind::CidrWithin => c.value.as_str().and_then(parse_cidr).is_some(),
        };
        if !arg_ok {
            return Err(format!("constraint on `{}` has an argument of the wrong shape", c.path));
        }
    }
    Ok(())
}

/// The params part of the match rule: equal everywhere no constraint names; where a
/// constraint names a location, the request's value must pass the check.
pub fn params_match(
    contract: &Value,
    constraints: &[Constraint],
    request: &Value,
) -> Result<(), String> {
    validate(constraints)?;
    let mut req = request.clone();
    for c in constraints {
        let Some(v) = request.pointer(&c.path) else {
            return Err(format!("parameter `{}` is missing", c.path));
        };
        check(c.check, &c.value, v).map_err(|e| format!("parameter `{}`: {e}", c.path))?;
        // Neutralise the constrained location so the remaining comparison is exact.
        match contract.pointer(&c.path) {
            Some(cv) => {
                if let Some(slot) = req.pointer_mut(&c.path) {
                    *slot = cv.clone();
                }
            }
            None => {
                let (parent, key) = split_pointer(&c.path)
                    .ok_or_else(|| format!("constraint path `{}` is invalid", c.path))?;
                match req.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key);
                    }
                    _ => {
                        return Err(format!(
                            "parameter `{}` is not in the contract and cannot be added",
                            c.path
                        ));
                    }
                }
            }
        }
    }
    if &req == contract {
        Ok(())
    } else {
        Err(first_difference(contract, &req, String::new())
            .map(|p| format!("params differ from the contract at `{p}`"))
            .unwrap_or_else(|| "params differ from the contract".into()))
    }
}

/// Pointer of the first location where two values differ.
pub fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, p) {
                            return Some(d);
                        }
                    }
                    None => return Some(p),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(v, w, format!("{at}/{i}")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{at}/{}", x.len().min(y.len())))
        }
        _ => (a != b).then_some(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(path: &str, check: CheckKind, value: Value) -> Constraint {
        Constraint { path: path.into(), check, value }
    }

    #[test]
    fn every_check_accepts_and_refuses() {
        assert!(check(CheckKind::Eq, &json!(3), &json!(3)).is_ok());
        assert!(check(CheckKind::Eq, &json!(3), &json!(4)).is_err());
        assert!(check(CheckKind::In, &json!(["a", "b"]), &json!("b")).is_ok());
        assert!(check(CheckKind::In, &json!(["a", "b"]), &json!("c")).is_err());
        assert!(check(CheckKind::Range, &json!({"min": 1, "max": 5}), &json!(5)).is_ok());
        assert!(check(CheckKind::Range, &json!({"min": 1, "max": 5}), &json!(6)).is_err());
        assert!(check(CheckKind::Range, &json!({"min": 1}), &json!(0)).is_err());
        assert!(check(CheckKind::Range, &json!({"min": 1}), &json!("7")).is_err());
        assert!(check(CheckKind::Prefix, &json!("team-a/"), &json!("team-a/x")).is_ok());
        assert!(check(CheckKind::Prefix, &json!("team-a/"), &json!("team-b/x")).is_err());
        assert!(check(CheckKind::MaxLen, &json!(3), &json!("abc")).is_ok());
        assert!(check(CheckKind::MaxLen, &json!(3), &json!("abcd")).is_err());
        assert!(check(CheckKind::MaxLen, &json!(1), &json!([1, 2])).is_err());
        assert!(check(CheckKind::CidrWithin, &json!("10.0.0.0/8"), &json!("10.1.2.0/24")).is_ok());
        assert!(check(CheckKind::CidrWithin, &json!("10.0.0.0/8"), &json!("10.1.2.3")).is_ok());
        assert!(check(CheckKind::CidrWithin, &json!("10.0.0.0/8"), &json!("0.0.0.0/0")).is_err());
        assert!(check(CheckKind::CidrWithin, &json!("10.0.0.0/8"), &json!("11.0.0.0/24")).is_err());
        assert!(check(CheckKind::CidrWithin, &json!("10.0.0.0/8"), &json!("::1/128")).is_err());
        assert!(check(CheckKind::CidrWithin, &json!("fd00::/8"), &json!("fd12::/64")).is_ok());
        assert!(check(CheckKind::CidrWithin, &json!("10.0.0.0/8"), &json!("10.0.0.0/33")).is_err());
    }

    #[test]
    fn match_rule_exact_without_constraints() {
        let p = json!({"replicas": 3, "labels": {"a": "b"}});
        assert!(params_match(&p, &[], &p).is_ok());
        let e = params_match(&p, &[], &json!({"replicas": 3, "labels": {"a": "c"}})).unwrap_err();
        assert!(e.contains("/labels/a"), "{e}");
        assert!(
            params_match(&p, &[], &json!({"replicas": 3, "labels": {"a": "b"}, "x": 1})).is_err()
        );
    }

    #[test]
    fn match_rule_with_constraints_only_relaxes_named_locations() {
        let contract = json!({"replicas": 3, "image": "nginx:1"});
        let cons = [c("/replicas", CheckKind::Range, json!({"min": 1, "max": 5}))];
        assert!(
            params_match(&contract, &cons, &json!({"replicas": 5, "image": "nginx:1"})).is_ok()
        );
        assert!(
            params_match(&contract, &cons, &json!({"replicas": 6, "image": "nginx:1"})).is_err()
        );
        // A constraint on one field does not relax its neighbours (parameter smuggling).
        assert!(
            params_match(&contract, &cons, &json!({"replicas": 4, "image": "evil:1"})).is_err()
        );
        assert!(params_match(&contract, &cons, &json!({"image": "nginx:1"})).is_err());
    }
}
