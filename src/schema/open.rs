//! `Deserialize` for the canonical types that keep their unknown fields (`extra`), without
//! `#[serde(flatten)]`.
//!
//! Why: serde's derive cannot stream a struct that has a flattened map. It first buffers every
//! field of the object, nested values included, into its private `Content` tree, then reads the
//! typed fields back out of the tree and hands the rest to the map. On the bench's 290-byte chat
//! request that was about 9,000 instructions, a third of them for the buffering alone, on every
//! request. [`open_struct!`] writes the visitor a derive would write for a struct without the
//! map: one pass over the object, a typed field read in place, any other key read as a
//! `serde_json::Value` into `extra`. Same semantics as the derive it replaces: a missing required
//! field or a repeated typed one is an error naming it, `null` for an optional field is `None`,
//! a repeated unknown key keeps its last value, and only a JSON object is accepted.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// An object key, borrowed from the input when it has no escapes.
pub(crate) struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(Key)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// `open_struct! { Type("struct Type") { field: "wire name" [how], ... } }` implements
/// `Deserialize` for `Type`, whose other fields go to its `extra: Extra`. `how` is `required`,
/// `optional` (absent → `Default::default()`, so `None` for an `Option`) or `default EXPR`.
macro_rules! open_struct {
    ($ty:ident ($expecting:literal) { $($field:ident : $name:literal [$($how:tt)+]),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct OpenVisitor;
                impl<'de> serde::de::Visitor<'de> for OpenVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        $(let mut $field = None;)+
                        let mut extra = $crate::schema::Extra::new();
                        while let Some(key) = map.next_key_seed($crate::schema::open::Key)? {
                            match &*key {
                                $($name => {
                                    if $field.is_some() {
                                        return Err(<A::Error as serde::de::Error>::duplicate_field($name));
                                    }
                                    $field = Some(map.next_value()?);
                                })+
                                _ => {
                                    let value: serde_json::Value = map.next_value()?;
                                    extra.insert(key.into_owned(), value);
                                }
                            }
                        }
                        Ok($ty {
                            $($field: open_struct!(@finish A, $field, $name, $($how)+),)+
                            extra,
                        })
                    }
                }
                deserializer.deserialize_map(OpenVisitor)
            }
        }
    };
    (@finish $a:ident, $field:ident, $name:literal, required) => {
        match $field {
            Some(value) => value,
            None => return Err(<$a::Error as serde::de::Error>::missing_field($name)),
        }
    };
    (@finish $a:ident, $field:ident, $name:literal, optional) => {
        $field.unwrap_or_default()
    };
    (@finish $a:ident, $field:ident, $name:literal, default $default:expr) => {
        $field.unwrap_or_else(|| $default)
    };
}

pub(crate) use open_struct;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::{ChatRequest, Message, Tool};

    fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn typed_fields_in_place_and_the_rest_in_extra() {
        let r: ChatRequest = parse(
            r#"{"model":"m","seed":7,"messages":[{"role":"user","content":"hi","x-tag":{"a":[1]}}],
                "temperature":0.5,"user":null,"custom\u0020key":true}"#,
        )
        .unwrap();
        assert_eq!(r.model, "m");
        assert_eq!(r.temperature.as_ref().unwrap().to_string(), "0.5");
        assert!(r.user.is_none(), "null is None");
        assert_eq!(r.extra["seed"], 7);
        assert_eq!(r.extra["custom key"], true, "an escaped key is unescaped");
        assert_eq!(r.messages[0].extra["x-tag"], json!({"a": [1]}));
        // Written back as it came, typed and unknown fields alike.
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["seed"], 7);
        assert_eq!(back["messages"][0]["x-tag"], json!({"a": [1]}));
        assert!(back.get("user").is_none());
        // From a `Value` too (keys arrive owned).
        let again: ChatRequest = serde_json::from_value(back).unwrap();
        assert_eq!(again.extra["custom key"], true);
    }

    #[test]
    fn the_derive_s_errors() {
        let missing = parse::<ChatRequest>(r#"{"messages":[]}"#).unwrap_err();
        assert!(missing.contains("missing field `model`"), "{missing}");
        let twice = parse::<ChatRequest>(r#"{"model":"a","model":"b","messages":[]}"#).unwrap_err();
        assert!(twice.contains("duplicate field `model`"), "{twice}");
        let wrong = parse::<ChatRequest>(r#"{"model":1,"messages":[]}"#).unwrap_err();
        assert!(wrong.contains("invalid type: integer `1`"), "{wrong}");
        let role = parse::<Message>(r#"{"role":"robot","content":"x"}"#).unwrap_err();
        assert!(role.contains("unknown variant `robot`"), "{role}");
        for not_an_object in [r#"[]"#, r#""m""#, "null", "3"] {
            let err = parse::<ChatRequest>(not_an_object).unwrap_err();
            assert!(err.contains("expected struct ChatRequest"), "{err}");
        }
        assert!(
            parse::<ChatRequest>(r#"{"model":"m","messages":[],"seed":1,"seed":2}"#)
                .is_ok_and(|r| r.extra["seed"] == 2)
        );
        assert!(parse::<ChatRequest>(r#"{"model":"m","messages":[],"x":}"#).is_err());
    }

    #[test]
    fn defaults_apply_when_absent() {
        let t: Tool = parse(r#"{"function":{"name":"f","parameters":null}}"#).unwrap();
        assert_eq!(t.kind, "function");
        assert!(t.function.unwrap().parameters.is_none());
        let custom: Tool = parse(r#"{"type":"custom","custom":{"name":"g"}}"#).unwrap();
        assert_eq!(custom.kind, "custom");
        assert_eq!(custom.extra["custom"]["name"], "g");
    }
}
