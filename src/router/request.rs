//! Per-request controls of the router. Clients send them in the request body, as LiteLLM's
//! clients do (`fallbacks`, `timeout`, `num_retries`, `metadata` ...); they steer the gateway and
//! are removed before the body goes upstream, in one place: [`RequestOptions::take_from`].

use std::time::Duration;

use serde_json::{Map, Value};

use crate::schema::Extra;

/// Body fields that are gateway controls, never forwarded.
pub const CONTROL_FIELDS: &[&str] = &[
    "timeout",
    "stream_timeout",
    "num_retries",
    "fallbacks",
    "disable_fallbacks",
    "mock_testing_fallbacks",
    "metadata",
];

/// The most retries one request may ask for; the deadline bounds them further.
const MAX_REQUEST_RETRIES: u64 = 20;

#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Total budget of this request: every attempt, backoff and fallback fits in it.
    pub timeout: Option<Duration>,
    /// Bound on the time to the first chunk of a stream, per attempt.
    pub stream_timeout: Option<Duration>,
    /// Retries per model group, instead of the configured ones.
    pub num_retries: Option<u32>,
    /// Model groups to fall back to, in order, instead of the configured `fallbacks`.
    pub fallbacks: Option<Vec<String>>,
    pub disable_fallbacks: bool,
    /// LiteLLM's test switch: the first model group fails without calling its upstream, so the
    /// fallback path can be tried on purpose.
    pub mock_testing_fallbacks: bool,
    /// The caller's tier (free, pro ...), for route rules. From the request's `metadata.tier`
    /// for now; virtual keys will set it from the key's metadata.
    pub tier: Option<String>,
    pub tags: Vec<String>,
    /// What the request is for (`metadata.feature`), for route rules.
    pub feature: Option<String>,
    /// Preferred deployment region (`metadata.region`).
    pub region: Option<String>,
    /// The whole `metadata` object, for route rules that test other keys.
    pub metadata: Option<Map<String, Value>>,
    /// Estimated prompt tokens, when the caller knows better than the router's estimate (or
    /// the router cannot estimate, as for provider-native bodies).
    pub prompt_tokens: Option<u64>,
    /// The request's trace: each attempt records a span on it and sends its `traceparent`.
    pub trace: Option<std::sync::Arc<crate::telemetry::traces::RequestTrace>>,
}

/// A control field with the wrong shape: a 400 naming the field.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{param}` {message}")]
pub struct OptionsError {
    pub param: String,
    pub message: String,
}

fn error(param: &str, message: impl Into<String>) -> OptionsError {
    OptionsError {
        param: param.to_owned(),
        message: message.into(),
    }
}

fn seconds(value: &Value, param: &str) -> Result<Duration, OptionsError> {
    match value.as_f64() {
        Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(error(param, "must be a positive number of seconds")),
    }
}

impl RequestOptions {
    /// Removes the control fields from a request body's unknown fields and reads them.
    pub fn take_from(extra: &mut Extra) -> Result<Self, OptionsError> {
        let mut options = RequestOptions::default();
        if !CONTROL_FIELDS
            .iter()
            .any(|field| extra.contains_key(*field))
        {
            return Ok(options);
        }
        if let Some(value) = extra.remove("timeout") {
            options.timeout = Some(seconds(&value, "timeout")?);
        }
        if let Some(value) = extra.remove("stream_timeout") {
            options.stream_timeout = Some(seconds(&value, "stream_timeout")?);
        }
        if let Some(value) = extra.remove("num_retries") {
            match value.as_u64() {
                Some(n) if n <= MAX_REQUEST_RETRIES => options.num_retries = Some(n as u32),
                _ => {
                    return Err(error(
                        "num_retries",
                        format!("must be a whole number from 0 to {MAX_REQUEST_RETRIES}"),
                    ))
                }
            }
        }
        if let Some(value) = extra.remove("fallbacks") {
            options.fallbacks = Some(fallbacks(value)?);
        }
        for (field, slot) in [
            ("disable_fallbacks", &mut options.disable_fallbacks),
            (
                "mock_testing_fallbacks",
                &mut options.mock_testing_fallbacks,
            ),
        ] {
            if let Some(value) = extra.remove(field) {
                *slot = value
                    .as_bool()
                    .ok_or_else(|| error(field, "must be true or false"))?;
            }
        }
        if let Some(value) = extra.remove("metadata") {
            match value {
                Value::Null => {}
                Value::Object(map) => options.read_metadata(map)?,
                _ => return Err(error("metadata", "must be an object")),
            }
        }
        Ok(options)
    }

    fn read_metadata(&mut self, map: Map<String, Value>) -> Result<(), OptionsError> {
        let text = |key: &str| -> Result<Option<String>, OptionsError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(error(&format!("metadata.{key}"), "must be a string")),
            }
        };
        self.tier = text("tier")?;
        self.feature = text("feature")?;
        self.region = text("region")?;
        match map.get("tags") {
            None | Some(Value::Null) => {}
            Some(Value::Array(tags)) => {
                for tag in tags {
                    let tag = tag
                        .as_str()
                        .ok_or_else(|| error("metadata.tags", "must be a list of strings"))?;
                    self.tags.push(tag.to_owned());
                }
            }
            Some(_) => return Err(error("metadata.tags", "must be a list of strings")),
        }
        self.metadata = Some(map);
        Ok(())
    }
}

/// `["gpt-4o-mini", {"model": "claude"}]`. LiteLLM also accepts objects that override other
/// call parameters (keys, bases); a client must not be able to redirect the gateway's
/// credentials, so only `model` is accepted.
fn fallbacks(value: Value) -> Result<Vec<String>, OptionsError> {
    let Value::Array(items) = value else {
        return Err(error("fallbacks", "must be a list of model names"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(model) if !model.is_empty() => Ok(model),
            Value::Object(object) if object.len() == 1 => match object.get("model") {
                Some(Value::String(model)) if !model.is_empty() => Ok(model.clone()),
                _ => Err(error(
                    &format!("fallbacks[{i}]"),
                    "must be a model name or {\"model\": name}",
                )),
            },
            Value::Object(_) => Err(error(
                &format!("fallbacks[{i}]"),
                "may only set `model`: other parameters cannot be changed per fallback",
            )),
            _ => Err(error(&format!("fallbacks[{i}]"), "must be a model name")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extra(value: Value) -> Extra {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn controls_are_read_and_removed() {
        let mut body = extra(json!({
            "temperature": 0.2,
            "timeout": 2.5,
            "num_retries": 1,
            "fallbacks": ["b", {"model": "c"}],
            "metadata": {"tier": "free", "tags": ["batch"], "feature": "summarize", "region": "eu", "x": 1},
            "user": "u-1"
        }));
        let options = RequestOptions::take_from(&mut body).unwrap();
        assert_eq!(options.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(options.num_retries, Some(1));
        assert_eq!(
            options.fallbacks.as_deref(),
            Some(&["b".to_owned(), "c".to_owned()][..])
        );
        assert_eq!(options.tier.as_deref(), Some("free"));
        assert_eq!(options.tags, ["batch"]);
        assert_eq!(options.feature.as_deref(), Some("summarize"));
        assert_eq!(options.region.as_deref(), Some("eu"));
        assert_eq!(options.metadata.unwrap()["x"], 1);
        let keys: Vec<&str> = body.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 2);
        assert!(
            keys.contains(&"temperature") && keys.contains(&"user"),
            "{keys:?}"
        );
    }

    #[test]
    fn bad_controls_name_the_field() {
        for (body, param) in [
            (json!({"timeout": -1}), "timeout"),
            (json!({"timeout": "soon"}), "timeout"),
            (json!({"num_retries": 1000}), "num_retries"),
            (json!({"fallbacks": "b"}), "fallbacks"),
            (
                json!({"fallbacks": [{"model": "b", "api_key": "sk"}]}),
                "fallbacks[0]",
            ),
            (json!({"metadata": {"tags": "x"}}), "metadata.tags"),
            (json!({"metadata": 3}), "metadata"),
            (json!({"disable_fallbacks": "yes"}), "disable_fallbacks"),
        ] {
            let err = RequestOptions::take_from(&mut extra(body.clone())).unwrap_err();
            assert_eq!(err.param, param, "{body}");
        }
    }

    #[test]
    fn bodies_without_controls_are_untouched() {
        let mut body = extra(json!({"seed": 1}));
        let options = RequestOptions::take_from(&mut body).unwrap();
        assert!(options.timeout.is_none() && options.fallbacks.is_none());
        assert_eq!(body.len(), 1);
    }
}
