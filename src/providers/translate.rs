//! Small pieces every translating provider (Anthropic, Gemini) needs the same way.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::ProviderError;
use crate::schema::{Extra, ResponseMessage, Role, ToolCall};

/// The assistant's message of a translated answer: `content` is `null` when the model only
/// called tools (OpenAI's shape), and `tool_calls` is absent when it called none.
pub fn assistant_message(text: String, calls: Vec<ToolCall>, extra: Extra) -> ResponseMessage {
    ResponseMessage {
        role: Role::Assistant,
        content: if text.is_empty() && !calls.is_empty() {
            None
        } else {
            Some(text)
        },
        tool_calls: (!calls.is_empty()).then_some(calls),
        extra,
    }
}

/// The OpenAI error `type` of an upstream status, for providers whose error bodies carry none.
pub fn error_type(status: u16) -> Option<String> {
    Some(
        match status {
            400 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            _ => return None,
        }
        .to_owned(),
    )
}

/// A request the provider cannot express, naming where (`messages[2].content[0]`).
pub fn invalid(at: &str, message: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unsupported(format!("`{at}`: {message}"))
}

/// OpenAI carries tool-call arguments as JSON text; Anthropic and Gemini want the object.
/// Empty text is an empty object.
pub fn tool_arguments(arguments: &str, at: &str) -> Result<Value, ProviderError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(invalid(at, "must be a JSON object")),
        Err(err) => Err(invalid(at, format!("is not valid JSON ({err})"))),
    }
}

/// `(media type, base64 data)` of a `data:<type>;base64,<data>` URL; `None` for any other URL.
pub fn data_url<'a>(url: &'a str, at: &str) -> Result<Option<(&'a str, &'a str)>, ProviderError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(None);
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| invalid(at, "a data URL needs a `,` before its data"))?;
    let media_type = meta
        .strip_suffix(";base64")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            invalid(
                at,
                "only base64 data URLs (`data:<type>;base64,...`) are supported",
            )
        })?;
    Ok(Some((media_type, data)))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `prefix` and 24 random hex digits: ids for answers and tool calls the provider did not name.
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}{:024x}", fastrand::u128(..) >> 32)
}

/// Little-endian `f32` bytes in standard base64: OpenAI's `encoding_format: "base64"` for
/// embeddings (what its SDKs ask for by default), for providers that answer with numbers.
pub fn base64_f32(values: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A chat message's content as a translating provider's parts, in order: text and `refusal`
/// parts become `text(..)` (empty ones are left out: Converse and Gemini refuse them), a part
/// whose type `media_kinds` names goes to `media(part, path)`, any other part is a 400 naming
/// its path and `provider`. `path` is the message's (`messages[2]`).
pub fn content_parts<T>(
    content: Option<&crate::schema::MessageContent>,
    path: &str,
    provider: &str,
    media_kinds: &[&str],
    mut text: impl FnMut(&str) -> T,
    mut media: impl FnMut(&crate::schema::ContentPart, &str) -> Result<T, ProviderError>,
) -> Result<Vec<T>, ProviderError> {
    use crate::schema::MessageContent;
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(t)) if t.is_empty() => Ok(Vec::new()),
        Some(MessageContent::Text(t)) => Ok(vec![text(t)]),
        Some(MessageContent::Parts(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let at = format!("{path}.content[{index}]");
                match item.kind.as_str() {
                    "text" => {
                        if let Some(t) = item.text.as_deref().filter(|t| !t.is_empty()) {
                            out.push(text(t));
                        }
                    }
                    "refusal" => {
                        if let Some(Value::String(t)) = item.extra.get("refusal") {
                            out.push(text(t));
                        }
                    }
                    kind if media_kinds.contains(&kind) => out.push(media(item, &at)?),
                    other => {
                        return Err(invalid(
                            &at,
                            format!(
                                "content parts of type `{other}` cannot be sent to {provider} here"
                            ),
                        ))
                    }
                }
            }
            Ok(out)
        }
    }
}

/// `segment` percent-encoded for one URL path segment: RFC 3986's unreserved characters and
/// those in `keep` stay, every other byte is `%XX` (a model id's `/` and `:` included). Written
/// without `format!` per byte: it runs on every request of the providers that put a model id in
/// the path.
pub fn encode_path_segment(segment: &str, keep: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(segment.len() + 8);
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || keep.contains(&byte)
        {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 15)] as char);
        }
    }
    out
}

/// OpenAI's embeddings answer from a provider's vectors: `data` in input order, numbered from 0
/// (each vector base64-encoded when the client asked with `encoding_format: base64`), and
/// `usage` when the provider counted the input tokens (else the gateway estimates the cost).
pub fn openai_embeddings<V: AsRef<[f64]>>(
    request: &crate::schema::PassthroughRequest,
    model: Option<String>,
    vectors: impl IntoIterator<Item = V>,
    tokens: Option<u64>,
) -> crate::schema::PassthroughResponse {
    use serde_json::{json, Value};
    let base64 = request.extra.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let vector = vector.as_ref();
            let embedding = if base64 {
                let floats: Vec<f32> = vector.iter().map(|v| *v as f32).collect();
                Value::from(base64_f32(&floats))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let mut extra = serde_json::Map::new();
    extra.insert("object".into(), "list".into());
    extra.insert("data".into(), data.into());
    if let Some(tokens) = tokens {
        extra.insert(
            "usage".into(),
            json!({"prompt_tokens": tokens, "total_tokens": tokens}),
        );
    }
    crate::schema::PassthroughResponse { model, extra }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_only_unreserved_bytes() {
        assert_eq!(
            encode_path_segment("us.anthropic.claude-3-5:0/x y", b""),
            "us.anthropic.claude-3-5%3A0%2Fx%20y"
        );
        assert_eq!(encode_path_segment("claude@2024", b"@"), "claude@2024");
        assert_eq!(encode_path_segment("é", b""), "%C3%A9");
    }

    #[test]
    fn arguments_and_data_urls() {
        assert_eq!(tool_arguments(" ", "a").unwrap(), serde_json::json!({}));
        assert!(tool_arguments("[1]", "a")
            .unwrap_err()
            .to_string()
            .contains("`a`"));
        assert!(tool_arguments("{", "a").is_err());
        assert_eq!(
            data_url("data:image/png;base64,AAA", "u").unwrap(),
            Some(("image/png", "AAA"))
        );
        assert_eq!(data_url("https://x/y.png", "u").unwrap(), None);
        assert!(data_url("data:image/png,raw", "u").is_err());
        assert!(data_url("data:;base64,AAA", "u").is_err());
        assert_eq!(random_id("call_").len(), 5 + 24);
        // 1.0f32 is 00 00 80 3f.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 1.0]), "AACAPwAAgD8=");
        assert_eq!(base64_f32(&[]), "");
    }
}
