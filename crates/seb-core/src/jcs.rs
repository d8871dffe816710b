//! A direct RFC 8785 (JCS) writer for `serde::Serialize` types.
//!
//! The value is serialised once, straight into the output buffer: scalars and arrays in
//! place; an object's members are written after each other as they come, then put in order
//! (by the UTF-16 code units of their names, RFC 8785 section 3.2.3) with one copy of the
//! object's bytes. Numbers are printed as ECMAScript prints the double (3.2.2.3), strings
//! with the escapes of 3.2.2.2. Non-finite numbers and non-string map keys are refused.
//!
//! [`crate::json::canonical`] uses it; `tests/properties.rs` checks it byte for byte against
//! an independent implementation on arbitrary JSON, and `tests/vectors.rs` against the
//! RFC's own examples.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

/// Largest integer magnitude printed as plain digits (an exact double).
const MAX_EXACT: u64 = (1 << 53) - 1;

/// Why a value has no canonical form.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// The canonical bytes of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(512);
    value.serialize(&mut Writer { out: &mut out })?;
    Ok(out)
}

/// Serialises into `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// Order of RFC 8785 section 3.2.3: by UTF-16 code units. UTF-8 byte order is code point
/// order, which agrees with it unless a name holds a character at or above U+E000 (UTF-8
/// lead byte 0xEE or higher), where supplementary characters (surrogate pairs) sort first.
fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let plain = |s: &str| s.bytes().all(|c| c < 0xEE);
    if plain(a) && plain(b) { a.cmp(b) } else { a.encode_utf16().cmp(b.encode_utf16()) }
}

/// A JSON string with RFC 8785's escapes: `\"`, `\\`, `\b \f \n \r \t`, other controls as
/// `\u00xx` (lowercase hex), everything else (including `/`, DEL and non-ASCII) as is.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            let hex = |n: u8| HEX.get(usize::from(n & 0xf)).copied().unwrap_or(b'0');
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(c >> 4), hex(c)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// Digits of an integer of at most 2^53 − 1 in magnitude; a larger one as its double.
fn write_int(out: &mut Vec<u8>, negative: bool, magnitude: u64) -> Result<(), Error> {
    if magnitude > MAX_EXACT {
        // As ECMAScript prints the (rounded) double, like any RFC 8785 implementation.
        #[allow(clippy::cast_precision_loss)]
        let f = if negative { -(magnitude as f64) } else { magnitude as f64 };
        return write_f64(out, f);
    }
    let mut buf = [0u8; 20];
    let mut n = magnitude;
    let mut at = buf.len();
    while at > 0 {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            // A digit: `n % 10` is below 10.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative && magnitude != 0 {
        out.push(b'-');
    }
    out.extend_from_slice(buf.get(at..).unwrap_or_default());
    Ok(())
}

fn write_f64(out: &mut Vec<u8>, f: f64) -> Result<(), Error> {
    if !f.is_finite() {
        return Err(Error(format!("{f} has no JSON form")));
    }
    out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
    Ok(())
}

impl<'a, 'b> ser::Serializer for &'a mut Writer<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a, 'b>;
    type SerializeTuple = Seq<'a, 'b>;
    type SerializeTupleStruct = Seq<'a, 'b>;
    type SerializeTupleVariant = Seq<'a, 'b>;
    type SerializeMap = Object<'a, 'b>;
    type SerializeStruct = Object<'a, 'b>;
    type SerializeStructVariant = Object<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_int(self.out, v < 0, v.unsigned_abs())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        match u64::try_from(v.unsigned_abs()) {
            Ok(m) => write_int(self.out, v < 0, m),
            #[allow(clippy::cast_precision_loss)]
            Err(_) => write_f64(self.out, v as f64),
        }
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_int(self.out, false, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        match u64::try_from(v) {
            Ok(m) => write_int(self.out, false, m),
            #[allow(clippy::cast_precision_loss)]
            Err(_) => write_f64(self.out, v as f64),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        write_f64(self.out, v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        write_f64(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        // As serde_json: an array of numbers.
        let mut seq = ser::Serializer::serialize_seq(self, Some(v.len()))?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        // `{"variant": value}`: one member, already in order.
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a, 'b>, Error> {
        self.out.push(b'[');
        Ok(Seq { w: self, first: true, variant: false })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Seq<'a, 'b>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Seq { w: self, first: true, variant: true })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Object<'a, 'b>, Error> {
        let start = self.out.len();
        Ok(Object {
            w: self,
            start,
            members: Vec::with_capacity(len.unwrap_or(8)),
            key: None,
            variant: false,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Object<'a, 'b>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Object<'a, 'b>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        let mut o = self.serialize_map(Some(len))?;
        o.variant = true;
        Ok(o)
    }
}

/// An array being written.
#[derive(Debug)]
pub struct Seq<'a, 'b> {
    w: &'a mut Writer<'b>,
    first: bool,
    /// Inside `{"variant":[`: close with `]}`.
    variant: bool,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("len", &self.out.len()).finish()
    }
}

impl Seq<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        value.serialize(&mut *self.w)
    }
    fn close(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(if self.variant { b"]}" } else { b"]" });
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTuple for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// An object being written: each member's value goes to the buffer as it comes (its
/// name kept aside), then [`Object::close`] rewrites the object's bytes in order.
#[derive(Debug)]
pub struct Object<'a, 'b> {
    w: &'a mut Writer<'b>,
    /// Where the object's member values start in the buffer.
    start: usize,
    /// Name and the value's byte range, in arrival order.
    members: Vec<(Cow<'static, str>, usize, usize)>,
    /// The name of the member whose value comes next (maps).
    key: Option<Cow<'static, str>>,
    /// Inside `{"variant":`: close with one more `}`.
    variant: bool,
}

impl Object<'_, '_> {
    fn member<T: Serialize + ?Sized>(
        &mut self,
        name: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Error> {
        let from = self.w.out.len();
        value.serialize(&mut *self.w)?;
        self.members.push((name, from, self.w.out.len()));
        Ok(())
    }

    fn close(mut self) -> Result<(), Error> {
        self.members.sort_unstable_by(|a, b| utf16_cmp(&a.0, &b.0));
        if self.members.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
            return Err(Error("duplicate member name".into()));
        }
        let values = self.w.out.split_off(self.start);
        let out = &mut *self.w.out;
        out.reserve(values.len() + self.members.len() * 16 + 2);
        out.push(b'{');
        for (i, (name, from, to)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, name);
            out.push(b':');
            let at = |n: usize| n.saturating_sub(self.start);
            out.extend_from_slice(values.get(at(*from)..at(*to)).unwrap_or_default());
        }
        out.push(b'}');
        if self.variant {
            out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeyName)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let name = self.key.take().ok_or_else(|| Error("map value without a key".into()))?;
        self.member(name, value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStruct for Object<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Object<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// A map key as a member name: strings (and, as serde_json does, chars and integers).
struct KeyName;

fn key_err() -> Error {
    Error("a map key must be a string".into())
}

impl ser::Serializer for KeyName {
    type Ok = Cow<'static, str>;
    type Error = Error;
    type SerializeSeq = Impossible<Cow<'static, str>, Error>;
    type SerializeTuple = Impossible<Cow<'static, str>, Error>;
    type SerializeTupleStruct = Impossible<Cow<'static, str>, Error>;
    type SerializeTupleVariant = Impossible<Cow<'static, str>, Error>;
    type SerializeMap = Impossible<Cow<'static, str>, Error>;
    type SerializeStruct = Impossible<Cow<'static, str>, Error>;
    type SerializeStructVariant = Impossible<Cow<'static, str>, Error>;

    fn serialize_str(self, v: &str) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn serialize_char(self, v: char) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Self::Ok, Error> {
        Ok(Cow::Borrowed(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Error> {
        value.serialize(self)
    }
    fn serialize_bool(self, _v: bool) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_i8(self, v: i8) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_i16(self, v: i16) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_i32(self, v: i32) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_i64(self, v: i64) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_u8(self, v: u8) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_u16(self, v: u16) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_u32(self, v: u32) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_u64(self, v: u64) -> Result<Self::Ok, Error> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn serialize_f32(self, _v: f32) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_f64(self, _v: f64) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_none(self) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_unit(self) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Self::Ok, Error> {
        Err(key_err())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_err())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_err())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_err())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_err())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_err())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_err())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(v: &serde_json::Value) -> String {
        String::from_utf8(to_vec(v).unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn members_are_ordered_by_utf16_code_units() {
        // U+FB33 (BMP, above U+E000) sorts after U+1F600 (a surrogate pair) in UTF-16.
        assert_eq!(
            c(&json!({"\u{fb33}": 1, "\u{1f600}": 2, "b": 3, "a": {"d": [], "c": null}})),
            "{\"a\":{\"c\":null,\"d\":[]},\"b\":3,\"\u{1f600}\":2,\"\u{fb33}\":1}"
        );
    }

    #[test]
    fn strings_numbers_and_refusals() {
        assert_eq!(
            c(&json!("a\"\\\u{8}\u{c}\n\r\t\u{1}\u{7f}/é")),
            "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0001\u{7f}/é\""
        );
        assert_eq!(
            c(&json!([0, -1, 9007199254740991_u64, 1e21, 0.000001, -0.0, 1.5])),
            "[0,-1,9007199254740991,1e+21,0.000001,0,1.5]"
        );
        assert!(to_vec(&f64::NAN).is_err());
        assert!(to_vec(&f64::INFINITY).is_err());
        let mut m = std::collections::BTreeMap::new();
        m.insert(vec![1u8], 1);
        assert!(to_vec(&m).is_err(), "non-string key");
    }
}
