//! Values a platform profile marks sensitive (spec section 11: "values a profile marks
//! sensitive appear in views and logs as digest and length").
//!
//! A profile names, per operation, where its params and its evidence projection carry such
//! values ([`Sensitive`]); [`redact`] replaces each of them by `{"digest", "length"}` so that
//! whoever reads a view can check a value they already know, and learns nothing else. The
//! certificate itself, and the contract digest, keep the exact values.

use seb_core::digest::Digest;
use serde_json::{Value, json};

/// Where an operation carries sensitive values. Patterns are RFC 6901 pointers in which a
/// `*` segment matches any one object key or array index (no `~` escapes); `""` is the whole
/// value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sensitive {
    /// Patterns into `params` (the proposal's and the contract's).
    pub params: &'static [&'static str],
    /// `(projection pointer, pattern into that pointer's value)` pairs of the evidence.
    pub evidence: &'static [(&'static str, &'static str)],
}

impl Sensitive {
    /// Nothing is sensitive.
    pub const NONE: Sensitive = Sensitive { params: &[], evidence: &[] };

    /// Whether nothing is marked.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.evidence.is_empty()
    }

    /// Whether a constraint (or any) `path` into params lies at or below a sensitive location.
    pub fn covers_param(&self, path: &str) -> bool {
        self.params.iter().any(|p| covers(p, path))
    }

    /// Redact every sensitive location of `params` in place.
    pub fn redact_params(&self, params: &mut Value) {
        for p in self.params {
            redact(params, p);
        }
    }

    /// Redact every sensitive location of an evidence projection in place.
    pub fn redact_evidence(&self, projection: &mut std::collections::BTreeMap<String, Value>) {
        for (key, pattern) in self.evidence {
            if let Some(v) = projection.get_mut(*key) {
                redact(v, pattern);
            }
        }
    }
}

fn segments(pattern: &str) -> Vec<&str> {
    if pattern.is_empty() { Vec::new() } else { pattern.split('/').skip(1).collect() }
}

/// `{"digest": <sha256 of the value>, "length": <bytes>}`: of the UTF-8 bytes for a string,
/// of the canonical JSON otherwise.
pub fn digest_and_length(v: &Value) -> Value {
    let bytes = match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => {
            seb_core::json::canonical(other).unwrap_or_else(|_| other.to_string().into_bytes())
        }
    };
    json!({ "digest": Digest::of_bytes(&bytes), "length": bytes.len() })
}

/// Replace every value matched by `pattern` (see [`Sensitive`]) with [`digest_and_length`].
/// Absent and `null` values stay as they are.
pub fn redact(value: &mut Value, pattern: &str) {
    walk(value, &segments(pattern));
}

fn walk(v: &mut Value, segs: &[&str]) {
    if v.is_null() {
        return;
    }
    match segs.split_first() {
        None => *v = digest_and_length(v),
        Some((s, rest)) => match v {
            Value::Object(m) if *s == "*" => m.values_mut().for_each(|x| walk(x, rest)),
            Value::Object(m) => {
                if let Some(x) = m.get_mut(*s) {
                    walk(x, rest);
                }
            }
            Value::Array(a) if *s == "*" => a.iter_mut().for_each(|x| walk(x, rest)),
            Value::Array(a) => {
                if let Some(x) = s.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    walk(x, rest);
                }
            }
            _ => {}
        },
    }
}

/// Whether `path` lies at or below a location `pattern` matches.
fn covers(pattern: &str, path: &str) -> bool {
    let (p, q) = (segments(pattern), segments(path));
    p.len() <= q.len() && p.iter().zip(q.iter()).all(|(a, b)| *a == "*" || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_exactly_the_marked_values() {
        let mut v = json!({"value": "s3cret", "type": "String", "item": {"a": {"S": "x"}, "b": {"N": "1"}}});
        redact(&mut v, "/value");
        redact(&mut v, "/item/*");
        redact(&mut v, "/missing/*");
        assert_eq!(v["type"], "String");
        assert_eq!(v["value"]["length"], 6);
        assert_eq!(v["value"]["digest"], json!(Digest::of_bytes(b"s3cret")));
        assert_eq!(v["item"]["a"]["length"], 9); // {"S":"x"}
        assert!(!v.to_string().contains("s3cret"));
        let mut whole = json!({"Statement": []});
        redact(&mut whole, "");
        assert_eq!(whole["length"], 16);
        let mut null = Value::Null;
        redact(&mut null, "");
        assert!(null.is_null());
        let mut arr = json!([{"k": "a"}, {"k": "b"}]);
        redact(&mut arr, "/1/k");
        assert_eq!(arr[0]["k"], "a");
        assert_eq!(arr[1]["k"]["length"], 1);
    }

    #[test]
    fn covers_paths_at_or_below_a_pattern() {
        let s = Sensitive { params: &["/item/*", "/value"], evidence: &[("", "/*")] };
        assert!(s.covers_param("/value"));
        assert!(s.covers_param("/item/a/S"));
        assert!(!s.covers_param("/item"));
        assert!(!s.covers_param("/type"));
        let mut projection: std::collections::BTreeMap<String, Value> =
            [(String::new(), json!({"a": {"S": "x"}}))].into_iter().collect();
        s.redact_evidence(&mut projection);
        assert_eq!(projection[""]["a"]["length"], 9);
        assert!(Sensitive::NONE.is_empty() && !s.is_empty());
    }
}
