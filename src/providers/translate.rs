//! Small pieces every translating provider (Anthropic, Gemini) needs the same way.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::ProviderError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
