//! Strict JSON: the only way untrusted bytes become values in SEB.
//!
//! Spec section 2: parsers reject duplicate object keys, unknown fields in signed structures
//! (done by `#[serde(deny_unknown_fields)]` on every signed type), bodies over a configured
//! size, and integers outside the range that survives RFC 8785 canonicalisation (I-JSON safe
//! integers, |n| ≤ 2^53 − 1). Canonical bytes are RFC 8785 (JCS).

use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Default maximum body size (64 KiB, spec section 2).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// Largest integer magnitude that RFC 8785 (IEEE 754 doubles) represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Maximum nesting depth accepted from untrusted input.
pub const MAX_DEPTH: usize = 64;

/// Why bytes were refused as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The body is larger than the configured limit.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The bytes are not JSON, or hold a duplicate key, an unsafe integer or too deep nesting.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// The JSON is well formed but does not have the expected shape (unknown or missing field).
    #[error("invalid structure: {0}")]
    Shape(String),
    /// The value could not be put in canonical form (for example a non-finite number).
    #[error("cannot canonicalise: {0}")]
    Canonical(String),
}

/// Parse untrusted bytes into a [`Value`], rejecting oversize bodies, duplicate keys, unsafe
/// integers and nesting deeper than [`MAX_DEPTH`].
pub fn parse_value(bytes: &[u8], limit: usize) -> Result<Value, JsonError> {
    if bytes.len() > limit {
        return Err(JsonError::TooLarge { size: bytes.len(), limit });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| JsonError::Malformed(e.to_string()))?;
    de.end().map_err(|e| JsonError::Malformed(e.to_string()))?;
    Ok(value)
}

/// Parse untrusted bytes strictly into `T` (which should use `deny_unknown_fields`).
pub fn parse<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, JsonError> {
    from_value(parse_value(bytes, limit)?)
}

/// Convert an already strictly parsed value into `T`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, JsonError> {
    serde_json::from_value(value).map_err(|e| JsonError::Shape(e.to_string()))
}

/// RFC 8785 canonical bytes of any serialisable value, written directly by
/// [`crate::jcs`] (no intermediate tree, no generic canonicaliser).
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    crate::jcs::to_vec(value).map_err(|e| JsonError::Canonical(e.to_string()))
}

/// Serialise to a [`Value`]; fails only for maps with non-string keys or non-finite floats.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, JsonError> {
    serde_json::to_value(value).map_err(|e| JsonError::Canonical(e.to_string()))
}

struct StrictValue {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn check_depth<E: de::Error>(depth: usize) -> Result<(), E> {
    if depth >= MAX_DEPTH {
        return Err(E::custom(format_args!("nesting deeper than {MAX_DEPTH}")));
    }
    Ok(())
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(E::custom(format_args!("integer `{v}` is outside ±(2^53 − 1)")));
        }
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        if v > MAX_SAFE_INTEGER {
            return Err(E::custom(format_args!("integer `{v}` is outside ±(2^53 − 1)")));
        }
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json hands integers beyond u64/i64 over as floats; any magnitude past 2^53
        // cannot round-trip through RFC 8785 exactly, so it is refused whatever its spelling.
        if v.abs() > MAX_SAFE_INTEGER as f64 {
            return Err(E::custom(format_args!("number `{v}` is outside ±(2^53 − 1)")));
        }
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        check_depth(self.depth)?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue { depth: self.depth + 1 })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        check_depth(self.depth)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let v = map.next_value_seed(StrictValue { depth: self.depth + 1 })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Read the value at an RFC 6901 JSON pointer.
pub fn pointer<'a>(value: &'a Value, ptr: &str) -> Option<&'a Value> {
    value.pointer(ptr)
}

/// Split an RFC 6901 pointer into its parent pointer and unescaped last token.
pub fn split_pointer(ptr: &str) -> Option<(&str, String)> {
    let idx = ptr.rfind('/')?;
    let (parent, last) = ptr.split_at(idx);
    let token = last.get(1..)?.replace("~1", "/").replace("~0", "~");
    Some((parent, token))
}

/// Whether a string is a syntactically valid RFC 6901 pointer.
pub fn is_valid_pointer(ptr: &str) -> bool {
    if ptr.is_empty() {
        return true;
    }
    if !ptr.starts_with('/') {
        return false;
    }
    let mut chars = ptr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        assert!(parse_value(br#"{"a":1,"a":2}"#, 1024).is_err());
        assert!(parse_value(br#"{"x":{"a":1,"b":{"c":1,"c":1}}}"#, 1024).is_err());
        assert!(parse_value(br#"[{"a":1},{"a":1}]"#, 1024).is_ok());
    }

    #[test]
    fn unsafe_integers_are_rejected() {
        assert!(parse_value(b"9007199254740991", 64).is_ok());
        assert!(parse_value(b"9007199254740992", 64).is_err());
        assert!(parse_value(b"-9007199254740992", 64).is_err());
        assert!(parse_value(b"18446744073709551616", 64).is_err());
    }

    #[test]
    fn oversize_and_trailing_bytes_are_rejected() {
        assert_eq!(parse_value(b"[1,2,3]", 3), Err(JsonError::TooLarge { size: 7, limit: 3 }));
        assert!(parse_value(b"{} {}", 64).is_err());
        assert!(parse_value(b"{} ", 64).is_ok());
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse_value(deep.as_bytes(), 4096).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_value(ok.as_bytes(), 4096).is_ok());
    }

    #[test]
    fn pointers() {
        assert!(is_valid_pointer(""));
        assert!(is_valid_pointer("/a~0b/c~1d/0"));
        assert!(!is_valid_pointer("a"));
        assert!(!is_valid_pointer("/a~2"));
        assert_eq!(split_pointer("/a/b~1c"), Some(("/a", "b/c".to_owned())));
        assert_eq!(split_pointer(""), None);
    }
}
