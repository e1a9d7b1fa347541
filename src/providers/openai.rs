//! OpenAI and every server that speaks its wire format (vLLM, LM Studio, llamafile, Groq, Mistral,
//! DeepSeek, Together, Fireworks, OpenRouter, xAI, Perplexity). Requests pass through with only
//! `model` rewritten, so fields Switchyard does not know reach the upstream unchanged.

use crate::providers::anthropic::request::OpenAiDialect;
use crate::providers::{upstream_headers, KeyHeader};
use std::time::Duration;

use axum::http::header::HeaderMap;
use bytes::Bytes;
use serde::Deserialize;

use super::responses::wire::{native_body, ResponsesRequest};
use super::{
    ChatStreamDecoder, HttpProvider, PassthroughEndpoint, ProviderError, SseEvent, StreamItem,
    Upstream, UpstreamRequest,
};
use crate::schema::{
    ChatChunk, ChatCompletion, ChatRequest, PassthroughRequest, RawCompletion, WithModel,
};

pub struct OpenAiCompatible {
    pub name: &'static str,
}

impl HttpProvider for OpenAiCompatible {
    fn name(&self) -> &'static str {
        self.name
    }

    /// OpenAI itself wants `max_completion_tokens` and refuses parameters it does not define;
    /// the many servers configured as `openai/...` with their own `api_base` (vLLM, llama.cpp,
    /// Ollama ...) take `max_tokens` and `top_k`.
    fn openai_dialect(&self, upstream: &Upstream) -> OpenAiDialect {
        if self.name == "openai" && upstream.base_url.starts_with("https://api.openai.com") {
            OpenAiDialect::Strict
        } else {
            OpenAiDialect::Compatible
        }
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        Ok(UpstreamRequest {
            url: format!("{}/chat/completions", upstream.base_url),
            headers: bearer_headers(upstream)?,
            body: chat_body(upstream, request)?,
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
        Ok(UpstreamRequest {
            url: format!("{}/{}", upstream.base_url, endpoint.path()),
            headers: bearer_headers(upstream)?,
            body: super::json_body(&WithModel {
                request,
                model: &upstream.model,
            })?,
        })
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        parse_error(status, headers, body)
    }

    /// Only `openai/` deployments: OpenAI serves `/responses` (and so do the servers people
    /// point an `openai/` deployment at, vLLM among them); the other OpenAI-compatible clouds
    /// (Groq, DeepSeek, Together ...) mostly do not, and get the request as a chat request.
    fn native_responses_request(
        &self,
        upstream: &Upstream,
        request: &ResponsesRequest,
    ) -> Option<Result<UpstreamRequest, ProviderError>> {
        if self.name != "openai" {
            return None;
        }
        Some((|| {
            Ok(UpstreamRequest {
                url: format!("{}/responses", upstream.base_url),
                headers: bearer_headers(upstream)?,
                body: native_body(request, &upstream.model).map_err(|err| {
                    ProviderError::Unsupported(format!("cannot encode the request: {err}"))
                })?,
            })
        })())
    }
}

fn bearer_headers(upstream: &Upstream) -> Result<HeaderMap, ProviderError> {
    upstream_headers(upstream, KeyHeader::Bearer, &[])
}

/// The chat body for any OpenAI-shaped upstream. Streams always ask for the usage chunk so the
/// gateway can count tokens; the router hides that chunk from clients that did not ask for it.
pub(super) fn chat_body(
    upstream: &Upstream,
    request: &ChatRequest,
) -> Result<Bytes, ProviderError> {
    if request.is_stream() && !request.wants_stream_usage() {
        let mut with_usage = request.clone();
        with_usage
            .stream_options
            .get_or_insert_with(Default::default)
            .include_usage = Some(true);
        return super::json_body(&WithModel {
            request: &with_usage,
            model: &upstream.model,
        });
    }
    super::json_body(&WithModel {
        request,
        model: &upstream.model,
    })
}

pub(super) fn parse_raw_completion(body: Bytes) -> Result<RawCompletion, ProviderError> {
    RawCompletion::parse(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("chat completion: {err}")))
}

pub(super) fn parse_completion(body: &[u8]) -> Result<ChatCompletion, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("chat completion: {err}")))
}

pub(super) struct OpenAiStreamDecoder;

impl ChatStreamDecoder for OpenAiStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            out.push(StreamItem::Done);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        // Some servers report a failure inside an open stream as `data: {"error": {...}}`.
        if data.starts_with("{\"error\"") {
            return Err(parse_error(500, &HeaderMap::new(), data.as_bytes()));
        }
        let chunk: ChatChunk = serde_json::from_str(data)
            .map_err(|err| ProviderError::InvalidResponse(format!("stream chunk: {err}")))?;
        out.push(StreamItem::Chunk(chunk));
        Ok(())
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    param: Option<String>,
}

/// Reads an OpenAI-style error body; anything else becomes a short, printable excerpt.
pub(super) fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let retry_after = retry_after(headers);
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope { error }) => ProviderError::Status {
            status,
            message: error
                .message
                .unwrap_or_else(|| format!("upstream returned status {status}")),
            kind: error.kind,
            code: error.code.and_then(|c| match c {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }),
            param: error.param,
            retry_after,
        },
        Err(_) => ProviderError::Status {
            status,
            message: excerpt(body).unwrap_or_else(|| format!("upstream returned status {status}")),
            kind: None,
            code: None,
            param: None,
            retry_after,
        },
    }
}

/// `retry-after-ms` (OpenAI's precise form) or `retry-after` in seconds.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let duration = read("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| read("retry-after"))?;
    (0.0..86_400.0)
        .contains(&duration)
        .then(|| Duration::from_secs_f64(duration))
}

/// The first 300 characters of a non-JSON error body, control characters removed.
pub(super) fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(300)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::{HeaderValue, AUTHORIZATION};

    fn upstream() -> Upstream {
        Upstream {
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: Some(crate::config::Secret::new("sk-upstream".into())),
            api_version: None,
            model: "gpt-4o-mini".into(),
            headers: HeaderMap::new(),
            drop_params: false,
            additional_drop_params: Vec::new(),
            allowed_openai_params: Vec::new(),
            max_output_tokens: None,
            credentials: None,
        }
    }

    #[test]
    fn request_rewrites_model_and_keeps_unknown_fields() {
        let req: ChatRequest =
            serde_json::from_str(r#"{"model":"alias","messages":[{"role":"user","content":"hi"}],"seed":3,"foo":{"bar":[1]}}"#)
                .unwrap();
        let built = OpenAiCompatible { name: "openai" }
            .chat_request(&upstream(), &req)
            .unwrap();
        assert_eq!(built.url, "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(built.headers[AUTHORIZATION], "Bearer sk-upstream");
        let body: serde_json::Value = serde_json::from_slice(&built.body).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["seed"], 3);
        assert_eq!(body["foo"]["bar"][0], 1);
    }

    #[test]
    fn streams_always_ask_for_usage() {
        let req: ChatRequest =
            serde_json::from_str(r#"{"model":"a","messages":[],"stream":true}"#).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&chat_body(&upstream(), &req).unwrap()).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn error_bodies_of_any_shape() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        match parse_error(429, &headers, br#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#) {
            ProviderError::Status { status, message, kind, code, retry_after, .. } => {
                assert_eq!((status, message.as_str()), (429, "slow down"));
                assert_eq!(kind.as_deref(), Some("rate_limit_error"));
                assert_eq!(code.as_deref(), Some("rate_limit_exceeded"));
                assert_eq!(retry_after, Some(Duration::from_secs(2)));
            }
            other => panic!("{other:?}"),
        }
        match parse_error(502, &HeaderMap::new(), b"<html>\n\x00Bad Gateway</html>") {
            ProviderError::Status { message, .. } => {
                assert_eq!(message, "<html>Bad Gateway</html>")
            }
            other => panic!("{other:?}"),
        }
        match parse_error(500, &HeaderMap::new(), b"") {
            ProviderError::Status { message, .. } => assert!(message.contains("500")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stream_decoder_handles_done_errors_and_garbage() {
        let mut decoder = OpenAiStreamDecoder;
        let mut out = Vec::new();
        let event = |data: &str| SseEvent {
            event: None,
            data: data.into(),
        };
        decoder
            .decode(&event(r#"{"id":"1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#), &mut out)
            .unwrap();
        decoder.decode(&event("[DONE]"), &mut out).unwrap();
        assert!(matches!(out[0], StreamItem::Chunk(_)));
        assert!(matches!(out[1], StreamItem::Done));
        assert!(decoder.decode(&event("{not json"), &mut out).is_err());
        assert!(matches!(
            decoder.decode(&event(r#"{"error":{"message":"boom"}}"#), &mut out),
            Err(ProviderError::Status { .. })
        ));
    }
}
