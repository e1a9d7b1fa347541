//! An OpenAI-shaped chat completion kept as the upstream's own bytes. When an OpenAI-compatible
//! upstream answers an OpenAI-format client, nothing needs translating: the gateway only has to
//! read `usage` and put the alias in `model`. Splicing the alias into the original bytes keeps
//! every field exactly as the upstream wrote it (key order, number formatting, fields Switchyard
//! has never heard of) and skips building and re-encoding a tree of the whole answer.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ChatCompletion, Usage};

#[derive(Debug, Clone)]
pub struct RawCompletion {
    body: Bytes,
    /// Where the `model` value (quotes included) sits in `body`, if the upstream sent one.
    model: Option<Range<usize>>,
    /// The token counts only (details such as cached tokens stay in the body).
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    usage: Option<UsageNumbers>,
    /// Required: a body without `choices` is not a chat completion.
    #[allow(dead_code)]
    choices: IgnoredAny,
}

/// The counts the gateway reads; details stay in the bytes (no map is built for them).
#[derive(Deserialize)]
struct UsageNumbers {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

impl RawCompletion {
    /// Validates the body as JSON with the shape of a chat completion (the whole document is
    /// checked, but only `model` and `usage` are materialised).
    pub fn parse(body: Bytes) -> Result<Self, serde_json::Error> {
        let peek: Peek<'_> = serde_json::from_slice(&body)?;
        let model = peek.model.map(|raw| {
            let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            start..start + raw.get().len()
        });
        let usage = peek.usage.map(|u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            extra: Default::default(),
        });
        Ok(RawCompletion { body, model, usage })
    }

    /// The body with `model` set to `alias`.
    pub fn with_model(&self, alias: &str) -> Bytes {
        let quoted = serde_json::to_string(alias).unwrap_or_else(|_| "\"\"".to_owned());
        let mut out = BytesMut::with_capacity(self.body.len() + quoted.len() + 12);
        match &self.model {
            Some(span) => {
                out.put_slice(&self.body[..span.start]);
                out.put_slice(quoted.as_bytes());
                out.put_slice(&self.body[span.end..]);
            }
            None => {
                // No `model` key: add one right after the opening brace.
                let open = self.body.iter().position(|b| *b == b'{').unwrap_or(0);
                out.put_slice(&self.body[..=open]);
                out.put_slice(b"\"model\":");
                out.put_slice(quoted.as_bytes());
                let rest = &self.body[open + 1..];
                let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
                if !empty {
                    out.put_u8(b',');
                }
                out.put_slice(rest);
            }
        }
        out.freeze()
    }

    /// The canonical form, for callers that translate the answer further.
    pub fn to_typed(&self) -> Result<ChatCompletion, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn splices_the_alias_and_keeps_everything_else_byte_for_byte() {
        let body = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"hi \"model\": x"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}},"service_tier":"default","system_fingerprint":"fp_1","temperature":1.0}"#;
        let raw = RawCompletion::parse(Bytes::from(body)).unwrap();
        assert_eq!(raw.usage.as_ref().unwrap().total_tokens, 7);
        let out = raw.with_model("my \"alias\"");
        let expected = body.replace(
            r#""model":"gpt-4o-2024-08-06""#,
            r#""model":"my \"alias\"""#,
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        assert_eq!(
            raw.to_typed().unwrap().choices[0]
                .message
                .content
                .as_deref(),
            Some("hi \"model\": x")
        );
    }

    #[test]
    fn adds_a_missing_model() {
        let raw = RawCompletion::parse(Bytes::from_static(br#" {"choices":[]}"#)).unwrap();
        let out: Value = serde_json::from_slice(&raw.with_model("a")).unwrap();
        assert_eq!(out["model"], "a");
        assert_eq!(out["choices"], serde_json::json!([]));
    }

    #[test]
    fn refuses_what_is_not_a_completion() {
        for body in [
            &b"{}"[..],
            b"[]",
            b"{\"choices\":[]",
            b"\xff",
            b"{\"choices\":[],\"model\":5}x",
        ] {
            assert!(
                RawCompletion::parse(Bytes::copy_from_slice(body)).is_err(),
                "{body:?}"
            );
        }
    }
}

/// A chat answer as the router hands it over: the upstream's bytes when they are already OpenAI
/// JSON, else the canonical form (translated providers, in-process mocks).
#[derive(Debug, Clone)]
pub enum ChatAnswer {
    Raw(RawCompletion),
    Typed(ChatCompletion),
}

impl RawCompletion {
    /// The upstream's bytes, as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The `model` the upstream sent, when it is a plain JSON string (no escapes).
    pub fn upstream_model(&self) -> Option<&str> {
        let raw = self.body.get(self.model.clone()?)?;
        let text = std::str::from_utf8(raw).ok()?;
        let inner = text.strip_prefix('"')?.strip_suffix('"')?;
        (!inner.contains('\\')).then_some(inner)
    }

    /// The `model` the upstream sent, as [`upstream_model`](Self::upstream_model) reads it but
    /// not checked for UTF-8 yet: a slice of the body, shared, not copied.
    pub fn upstream_model_bytes(&self) -> Option<Bytes> {
        let raw = self.body.get(self.model.clone()?)?;
        let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        (!inner.contains(&b'\\')).then(|| self.body.slice_ref(inner))
    }
}

impl ChatAnswer {
    /// The answer as typed values (a raw answer is parsed now).
    pub fn into_typed(self) -> Result<ChatCompletion, serde_json::Error> {
        match self {
            ChatAnswer::Raw(raw) => serde_json::from_slice(&raw.body),
            ChatAnswer::Typed(typed) => Ok(typed),
        }
    }

    pub fn usage(&self) -> Option<&Usage> {
        match self {
            ChatAnswer::Raw(raw) => raw.usage.as_ref(),
            ChatAnswer::Typed(typed) => typed.usage.as_ref(),
        }
    }

    /// The OpenAI JSON body a client receives, with `model` set to `alias`.
    pub fn to_json(&self, alias: &str) -> Bytes {
        match self {
            ChatAnswer::Raw(raw) => raw.with_model(alias),
            ChatAnswer::Typed(typed) if typed.model == alias => to_bytes(typed),
            ChatAnswer::Typed(typed) => {
                let mut renamed = typed.clone();
                renamed.model = alias.to_owned();
                to_bytes(&renamed)
            }
        }
    }
}

fn to_bytes(completion: &ChatCompletion) -> Bytes {
    let mut out = BytesMut::with_capacity(512).writer();
    // Serializing our own types into memory cannot fail.
    let _ = serde_json::to_writer(&mut out, completion);
    out.into_inner().freeze()
}
