//! The canonical form of a request body, written straight into the key's BLAKE3 hasher.
//!
//! Why not canonical JSON in a buffer: serializing a typed request as JSON escapes every
//! string byte by byte and formats every number, and the buffer is then hashed again; on the
//! bench's ~400-byte chat request that was ~3.8 k instructions of a ~10 k miss. This is serde's
//! data model (the same one JSON is written from) in a binary form that is cheap to produce and
//! short (fewer 64-byte blocks for BLAKE3): a tag byte per value, strings as a varint length and
//! their raw bytes, integers as zigzag varints, floats as their bits. It is
//! injective over JSON values: every value starts with its tag, strings carry their length,
//! arrays and objects end with a byte no value starts with, so two different bodies never give
//! the same bytes. Object keys come in the order serde gives them: the typed request's fields
//! in its struct's order, unknown fields sorted (serde_json's maps are ordered), so the order a
//! client sent them in does not matter.
//!
//! Top-level fields named in `ignored` are left out (`user`, `stream`, the gateway's controls
//! ...: see `key.rs`), with no copy of the request and no change to it.

use serde::ser::{self, Impossible, Serialize};

/// Why a body could not be put in canonical form (a `Serialize` impl refused): the request then
/// skips the cache rather than share a key with a different body.
#[derive(Debug, thiserror::Error)]
#[error("not hashable: {0}")]
pub struct Unhashable(String);

impl ser::Error for Unhashable {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Unhashable(msg.to_string())
    }
}

// Tags: one byte before every value; `END` closes an array or object.
const NULL: u8 = b'n';
const TRUE: u8 = b't';
const FALSE: u8 = b'f';
const INT: u8 = b'i';
const FLOAT: u8 = b'd';
const STR: u8 = b's';
const BYTES: u8 = b'b';
const ARRAY: u8 = b'[';
const OBJECT: u8 = b'{';
const END: u8 = b'.';

/// Bytes on their way to the hasher, in runs of up to `BUF` (one `update` per run, not one per
/// token: each call has a fixed cost). A long string goes to the hasher directly, so a large
/// prompt is hashed in place by BLAKE3's wide SIMD path.
pub struct Sink<'h> {
    hasher: &'h mut blake3::Hasher,
    buf: [u8; BUF],
    len: usize,
}

const BUF: usize = 1024;
/// Strings at least this long bypass the buffer.
const DIRECT: usize = 256;

impl<'h> Sink<'h> {
    pub fn new(hasher: &'h mut blake3::Hasher) -> Self {
        Sink {
            hasher,
            buf: [0; BUF],
            len: 0,
        }
    }

    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= DIRECT {
            self.flush();
            self.hasher.update(bytes);
            return;
        }
        if self.len + bytes.len() > BUF {
            self.flush();
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        if self.len == BUF {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn flush(&mut self) {
        if self.len > 0 {
            self.hasher.update(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// A string or byte string: its tag, its length, its bytes.
    fn blob(&mut self, tag: u8, bytes: &[u8]) {
        self.byte(tag);
        self.varint(bytes.len() as u128);
        self.write(bytes);
    }

    /// LEB128: 7 bits a byte, the high bit set on all but the last (prefix-free, so it
    /// delimits itself); one byte below 128.
    pub fn varint(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// `value` in canonical form, leaving out its top-level fields named in `ignored`.
    pub fn value<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        ignored: &[&str],
    ) -> Result<(), Unhashable> {
        value.serialize(Canonical {
            sink: self,
            ignored,
        })
    }

    pub fn finish(mut self) {
        self.flush();
    }
}

/// The serializer: `ignored` is only consulted by the outermost object.
struct Canonical<'s, 'h> {
    sink: &'s mut Sink<'h>,
    ignored: &'s [&'s str],
}

impl<'s, 'h> Canonical<'s, 'h> {
    fn nested(&mut self) -> Canonical<'_, 'h> {
        Canonical {
            sink: self.sink,
            ignored: &[],
        }
    }
}

/// An array or object being written.
pub struct Compound<'s, 'h> {
    sink: &'s mut Sink<'h>,
    ignored: &'s [&'s str],
    /// The current entry's key is ignored: drop its value.
    skip: bool,
}

impl Compound<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unhashable> {
        value.serialize(Canonical {
            sink: self.sink,
            ignored: &[],
        })
    }

    fn end(self) -> Result<(), Unhashable> {
        self.sink.byte(END);
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Unhashable> {
        if self.ignored.contains(&key) {
            return Ok(());
        }
        self.sink.blob(STR, key.as_bytes());
        self.element(value)
    }
}

impl<'s, 'h> ser::Serializer for Canonical<'s, 'h> {
    type Ok = ();
    type Error = Unhashable;
    type SerializeSeq = Compound<'s, 'h>;
    type SerializeTuple = Compound<'s, 'h>;
    type SerializeTupleStruct = Compound<'s, 'h>;
    type SerializeTupleVariant = Compound<'s, 'h>;
    type SerializeMap = Compound<'s, 'h>;
    type SerializeStruct = Compound<'s, 'h>;
    type SerializeStructVariant = Compound<'s, 'h>;

    fn serialize_bool(self, v: bool) -> Result<(), Unhashable> {
        self.sink.byte(if v { TRUE } else { FALSE });
        Ok(())
    }
    // Integers are one kind whatever their Rust type (as in JSON: `3` is `3`).
    fn serialize_i64(self, v: i64) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unhashable> {
        self.sink.byte(INT);
        // Zigzag: small magnitudes of either sign stay short.
        self.sink.varint(((v << 1) ^ (v >> 127)) as u128);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unhashable> {
        self.serialize_i128(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unhashable> {
        match i128::try_from(v) {
            Ok(v) => self.serialize_i128(v),
            Err(_) => Err(ser::Error::custom("integer out of range")),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unhashable> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unhashable> {
        self.sink.byte(FLOAT);
        self.sink.write(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Unhashable> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Unhashable> {
        self.sink.blob(STR, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unhashable> {
        self.sink.blob(BYTES, v);
        Ok(())
    }
    // As JSON writes them: `None`, `()` and a unit struct are `null`; `Some(x)` is `x`.
    fn serialize_none(self) -> Result<(), Unhashable> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unhashable> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unhashable> {
        self.sink.byte(NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unhashable> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unhashable> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unhashable> {
        value.serialize(self)
    }
    // Variants with data as JSON writes them: `{"variant": data}`.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unhashable> {
        self.sink.byte(OBJECT);
        self.sink.blob(STR, variant.as_bytes());
        value.serialize(self.nested())?;
        self.sink.byte(END);
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'s, 'h>, Unhashable> {
        self.sink.byte(ARRAY);
        Ok(Compound {
            sink: self.sink,
            ignored: &[],
            skip: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'s, 'h>, Unhashable> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'s, 'h>, Unhashable> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'s, 'h>, Unhashable> {
        self.sink.byte(OBJECT);
        self.sink.blob(STR, variant.as_bytes());
        self.sink.byte(ARRAY);
        Ok(Compound {
            sink: self.sink,
            ignored: &[],
            skip: false,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'s, 'h>, Unhashable> {
        self.sink.byte(OBJECT);
        Ok(Compound {
            sink: self.sink,
            ignored: self.ignored,
            skip: false,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'s, 'h>, Unhashable> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'s, 'h>, Unhashable> {
        self.sink.byte(OBJECT);
        self.sink.blob(STR, variant.as_bytes());
        self.sink.byte(OBJECT);
        Ok(Compound {
            sink: self.sink,
            ignored: &[],
            skip: false,
        })
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Unhashable;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unhashable> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unhashable> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Unhashable;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unhashable> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unhashable> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unhashable;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unhashable> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unhashable> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Unhashable;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unhashable> {
        self.element(value)
    }
    /// Closes the array and the one-key object around it.
    fn end(self) -> Result<(), Unhashable> {
        self.sink.byte(END);
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unhashable;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unhashable> {
        // Only the outermost object has fields to leave out, and JSON keys are strings.
        self.skip = !self.ignored.is_empty() && key.serialize(IsIgnored(self.ignored))?;
        if self.skip {
            return Ok(());
        }
        self.element(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unhashable> {
        if std::mem::take(&mut self.skip) {
            return Ok(());
        }
        self.element(value)
    }
    fn end(self) -> Result<(), Unhashable> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unhashable;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unhashable> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Unhashable> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Unhashable;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unhashable> {
        self.field(key, value)
    }
    /// Closes the fields' object and the one-key object around it.
    fn end(self) -> Result<(), Unhashable> {
        self.sink.byte(END);
        Compound::end(self)
    }
}

/// Whether a map key is one of the fields to leave out (a key that is not a string never is).
struct IsIgnored<'a>(&'a [&'a str]);

macro_rules! not_a_name {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<bool, Unhashable> { Ok(false) })*
    };
}

impl ser::Serializer for IsIgnored<'_> {
    type Ok = bool;
    type Error = Unhashable;
    type SerializeSeq = Impossible<bool, Unhashable>;
    type SerializeTuple = Impossible<bool, Unhashable>;
    type SerializeTupleStruct = Impossible<bool, Unhashable>;
    type SerializeTupleVariant = Impossible<bool, Unhashable>;
    type SerializeMap = Impossible<bool, Unhashable>;
    type SerializeStruct = Impossible<bool, Unhashable>;
    type SerializeStructVariant = Impossible<bool, Unhashable>;

    fn serialize_str(self, v: &str) -> Result<bool, Unhashable> {
        Ok(self.0.contains(&v))
    }
    not_a_name! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, Unhashable> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool, Unhashable> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Unhashable> {
        Ok(false)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unhashable> {
        Err(ser::Error::custom("a map key is not a string"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unhashable> {
        Err(ser::Error::custom("a map key is not a string"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unhashable> {
        Err(ser::Error::custom("a map key is not a string"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unhashable> {
        Err(ser::Error::custom("a map key is not a string"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unhashable> {
        Err(ser::Error::custom("a map key is not a string"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unhashable> {
        Err(ser::Error::custom("a map key is not a string"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unhashable> {
        Err(ser::Error::custom("a map key is not a string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The digest of the canonical bytes (equal bytes, equal digests).
    fn bytes(value: &Value, ignored: &[&str]) -> Vec<u8> {
        let mut hasher = blake3::Hasher::new();
        let mut sink = Sink::new(&mut hasher);
        sink.value(value, ignored).unwrap();
        sink.finish();
        hasher.finalize().as_bytes().to_vec()
    }

    #[test]
    fn structure_is_never_ambiguous() {
        // Pairs a naive concatenation of texts would confuse.
        let pairs = [
            (json!(["ab", "c"]), json!(["a", "bc"])),
            (json!([["a"], []]), json!([[], ["a"]])),
            (json!({"a": "b", "c": "d"}), json!({"a": "bc", "": "d"})),
            (json!([null]), json!([])),
            (json!(1), json!(1.0)),
            (json!(1), json!("1")),
            (json!(true), json!("t")),
            (json!({"a": [1]}), json!({"a": 1})),
            (json!([-1]), json!([1])),
            (json!([127, 128]), json!([128, 127])),
            (json!(["x".repeat(200)]), json!(["x".repeat(201)])),
        ];
        for (a, b) in pairs {
            assert_ne!(bytes(&a, &[]), bytes(&b, &[]), "{a} vs {b}");
        }
    }

    #[test]
    fn ignores_top_level_fields_only() {
        let a = json!({"user": "x", "messages": [{"user": "kept"}]});
        let b = json!({"messages": [{"user": "kept"}]});
        let c = json!({"messages": [{}]});
        assert_eq!(bytes(&a, &["user"]), bytes(&b, &["user"]));
        assert_ne!(bytes(&b, &["user"]), bytes(&c, &["user"]));
        assert_ne!(bytes(&a, &[]), bytes(&b, &[]));
    }

    #[test]
    fn long_and_short_strings_hash_as_the_same_bytes() {
        // A string long enough to bypass the buffer gives the digest of the same bytes
        // buffered: the sink's runs do not change what is hashed.
        let long = "x".repeat(5000);
        let mut direct = blake3::Hasher::new();
        let mut sink = Sink::new(&mut direct);
        sink.value(&json!([long]), &[]).unwrap();
        sink.finish();
        let mut expected = blake3::Hasher::new();
        expected.update(b"[s");
        expected.update(&[0x88, 0x27]); // 5000 as LEB128
        expected.update(long.as_bytes());
        expected.update(b".");
        assert_eq!(direct.finalize(), expected.finalize());
    }
}
