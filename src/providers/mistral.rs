//! Mistral's API (`mistral/...`, and `codestral/...` on codestral.mistral.ai): OpenAI's wire
//! format with a few differences, mapped as LiteLLM maps them:
//!
//! - `seed` is `random_seed`; `tool_choice: "required"` is `"any"`;
//! - Mistral refuses fields it does not define (a 422), so OpenAI parameters it has no
//!   equivalent for (`logit_bias`, `logprobs`, `top_logprobs`, `modalities`, `audio`,
//!   `web_search_options`) fail the request with a 400 unless `drop_params` is on, and request
//!   metadata (`user`, `store`, `metadata`, `service_tier` ...) is always left out;
//! - Mistral's own fields (`safe_prompt`, `random_seed`, `prediction`, `prompt_mode` ...) and any
//!   other field a client sends pass through, as to every OpenAI-compatible upstream;
//! - streams report usage in their last chunk on their own: `stream_options` is not sent.
//!
//! Answers, streams and errors are OpenAI's and pass through as the other OpenAI-compatible
//! providers' do.

use axum::http::header::HeaderMap;
use bytes::Bytes;
use serde_json::Value;

use super::openai::{parse_completion, parse_error, parse_raw_completion, OpenAiStreamDecoder};
use super::params::{self, Dropped};
use super::{
    upstream_headers, ChatStreamDecoder, HttpProvider, KeyHeader, PassthroughEndpoint,
    ProviderError, Upstream, UpstreamRequest,
};
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest, RawCompletion, WithModel};

/// OpenAI parameters that change the answer and that Mistral does not take.
const UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "modalities",
    "audio",
    "web_search_options",
];

/// OpenAI request metadata Mistral has no field for (it accepts `prompt_cache_key`).
const INFORMATIONAL: &[&str] = &[
    "user",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "prompt_cache_retention",
];

pub struct Mistral {
    pub name: &'static str,
}

/// Checks what Mistral cannot take; returns the names to leave out of the body.
fn check_params(
    request: &Value,
    dropped: &mut Dropped,
) -> Result<Vec<&'static str>, ProviderError> {
    let mut remove = Vec::new();
    for name in UNSUPPORTED {
        if let Some(value) = request.get(*name) {
            if !params::is_neutral(name, value) {
                dropped.unsupported(name)?;
            }
            remove.push(*name);
        }
    }
    for name in INFORMATIONAL {
        if request.get(*name).is_some_and(|v| !v.is_null()) {
            dropped.note(name);
            remove.push(*name);
        }
    }
    Ok(remove)
}

/// The chat body in Mistral's dialect.
pub fn chat_body(
    upstream: &Upstream,
    request: &ChatRequest,
    dropped: &mut Dropped,
) -> Result<Value, ProviderError> {
    let mut body = serde_json::to_value(WithModel {
        request,
        model: &upstream.model,
    })
    .map_err(|err| ProviderError::Unsupported(format!("cannot encode the request: {err}")))?;
    for name in check_params(&body, dropped)? {
        if let Some(fields) = body.as_object_mut() {
            fields.remove(name);
        }
    }
    let Some(fields) = body.as_object_mut() else {
        return Err(ProviderError::Unsupported(
            "the request is not an object".into(),
        ));
    };
    if let Some(seed) = fields.remove("seed") {
        if !seed.is_null() {
            fields.entry("random_seed").or_insert(seed);
        }
    }
    if fields.get("tool_choice").and_then(Value::as_str) == Some("required") {
        fields.insert("tool_choice".into(), "any".into());
    }
    fields.remove("stream_options");
    Ok(body)
}

impl HttpProvider for Mistral {
    fn name(&self) -> &'static str {
        self.name
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let mut dropped = Dropped::new(self.name, upstream.drop_params);
        let body = chat_body(upstream, request, &mut dropped)?;
        Ok(UpstreamRequest {
            url: format!("{}/chat/completions", upstream.base_url),
            headers: upstream_headers(upstream, KeyHeader::Bearer, &[])?,
            body: super::json_body(&body)?,
        })
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError> {
        parse_completion(body)
    }

    fn chat_response_raw(&self, body: Bytes) -> Option<Result<RawCompletion, ProviderError>> {
        Some(parse_raw_completion(body))
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder> {
        Box::new(OpenAiStreamDecoder)
    }

    fn passthrough_request(
        &self,
        upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        if endpoint != PassthroughEndpoint::Embeddings {
            return Err(super::no_endpoint(self.name, endpoint));
        }
        Ok(UpstreamRequest {
            url: format!("{}/embeddings", upstream.base_url),
            headers: upstream_headers(upstream, KeyHeader::Bearer, &[])?,
            body: super::json_body(&WithModel {
                request,
                model: &upstream.model,
            })?,
        })
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        parse_error(status, headers, body)
    }

    fn dropped_params(&self, upstream: &Upstream, request: &ChatRequest) -> Vec<String> {
        let mut dropped = Dropped::new(self.name, true);
        if let Ok(body) = serde_json::to_value(WithModel {
            request,
            model: &upstream.model,
        }) {
            let _ = check_params(&body, &mut dropped);
        }
        dropped.into_names()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::testing::upstream;

    fn chat(value: Value) -> ChatRequest {
        serde_json::from_value(value).unwrap()
    }

    fn body(request: &ChatRequest, drop: bool) -> Result<Value, ProviderError> {
        let mut up = upstream("mistral-large-latest");
        up.drop_params = drop;
        let built = Mistral { name: "mistral" }.chat_request(&up, request)?;
        Ok(serde_json::from_slice(&built.body).unwrap())
    }

    #[test]
    fn seed_tool_choice_and_native_fields() {
        let request = chat(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "seed": 7, "safe_prompt": true, "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
            "prediction": {"type": "content", "content": "x"}
        }));
        let sent = body(&request, false).unwrap();
        assert_eq!(sent["model"], "mistral-large-latest");
        assert_eq!(sent["random_seed"], 7);
        assert!(sent.get("seed").is_none());
        assert_eq!(sent["safe_prompt"], true);
        assert_eq!(sent["tool_choice"], "any");
        assert_eq!(sent["prediction"]["content"], "x");
        assert!(sent.get("stream_options").is_none());
        assert!(sent.get("user").is_none(), "metadata is always left out");
        let names =
            HttpProvider::dropped_params(&Mistral { name: "mistral" }, &upstream("m"), &request);
        assert_eq!(names, ["user"]);
    }

    #[test]
    fn unsupported_parameters_follow_drop_params() {
        let request = chat(json!({"model": "m", "messages": [], "logit_bias": {"1": 5},
                                  "logprobs": false}));
        let err = body(&request, false).unwrap_err().to_string();
        assert!(
            err.contains("`logit_bias`") && err.contains("`mistral`"),
            "{err}"
        );
        let sent = body(&request, true).unwrap();
        assert!(sent.get("logit_bias").is_none());
        assert!(
            sent.get("logprobs").is_none(),
            "a neutral value is left out quietly"
        );
        let names =
            HttpProvider::dropped_params(&Mistral { name: "mistral" }, &upstream("m"), &request);
        assert_eq!(names, ["logit_bias"]);
        // An explicit random_seed wins over a mapped seed.
        let both = chat(json!({"model": "m", "messages": [], "seed": 1, "random_seed": 2}));
        assert_eq!(body(&both, false).unwrap()["random_seed"], 2);
    }
}
