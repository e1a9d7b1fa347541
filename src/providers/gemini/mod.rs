//! Google's Gemini API (AI Studio): `POST {api_base}/models/{model}:generateContent`, and
//! `:streamGenerateContent?alt=sse` for streams, with the key in the `x-goog-api-key` header
//! (never in the URL, where it would end up in logs).
//!
//! `request.rs` maps an OpenAI chat request to Gemini's, `response.rs` and `stream.rs` map the
//! answers back, `error.rs` reads Google's error body, `wire.rs` holds the types.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;
pub mod wire;

use crate::providers::{upstream_headers, KeyHeader};
use axum::http::header::{HeaderMap, HeaderName};

use super::params::Dropped;
use super::{
    ChatStreamDecoder, HttpProvider, PassthroughEndpoint, ProviderError, Upstream, UpstreamRequest,
};
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest};
use wire::GenerateContentResponse;

pub struct Gemini;

/// `{api_base}/models/{model}:{method}`, for an `api_base` ending in an API version (the
/// default `.../v1beta`) or not (then `/v1beta` is added).
fn url(base: &str, model: &str, stream: bool) -> String {
    let base = base.trim_end_matches('/');
    let model = model.strip_prefix("models/").unwrap_or(model);
    let mut encoded = String::with_capacity(model.len());
    for byte in model.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let versioned =
        base.ends_with("/v1beta") || base.ends_with("/v1") || base.ends_with("/v1alpha");
    let prefix = if versioned {
        base.to_owned()
    } else {
        format!("{base}/v1beta")
    };
    if stream {
        format!("{prefix}/models/{encoded}:streamGenerateContent?alt=sse")
    } else {
        format!("{prefix}/models/{encoded}:generateContent")
    }
}

fn headers(upstream: &Upstream) -> Result<HeaderMap, ProviderError> {
    let key_header = KeyHeader::Named(HeaderName::from_static("x-goog-api-key"));
    upstream_headers(upstream, key_header, &[])
}

impl HttpProvider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let mut dropped = Dropped::new("gemini", upstream.drop_params);
        let body = request::to_gemini(request, &mut dropped)?;
        Ok(UpstreamRequest {
            url: url(&upstream.base_url, &upstream.model, request.is_stream()),
            headers: headers(upstream)?,
            body: super::json_body(&body)?,
        })
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError> {
        let response: GenerateContentResponse = serde_json::from_slice(body)
            .map_err(|err| ProviderError::InvalidResponse(format!("gemini response: {err}")))?;
        Ok(response::to_completion(response))
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder> {
        Box::new(stream::GeminiStreamDecoder::default())
    }

    fn passthrough_request(
        &self,
        _upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        _request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        Err(super::no_endpoint("gemini", endpoint))
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        error::parse_error(status, headers, body)
    }

    fn dropped_params(&self, _upstream: &Upstream, request: &ChatRequest) -> Vec<String> {
        let mut dropped = Dropped::new("gemini", true);
        // With dropping allowed the check cannot fail; it only collects names.
        let _ = request::check_params(request, &mut dropped);
        dropped.into_names()
    }
}

#[cfg(test)]
mod tests;
