//! Anthropic's Messages API (`POST {api_base}/messages`, `x-api-key`, `anthropic-version`).
//!
//! Everything between OpenAI's format and Anthropic's lives in this folder, both directions:
//! `request.rs` (chat request ⇄ messages request), `response.rs` (completion ⇄ message, stop
//! reasons, usage), `stream.rs` (events ⇄ chunks), `error.rs`, and `wire.rs` (the types). The
//! gateway's own `/v1/messages` surface (`api/messages.rs`) only calls these functions.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;
pub mod wire;

use crate::providers::{upstream_headers, KeyHeader};
use axum::http::header::{HeaderMap, HeaderName, HeaderValue};

use super::params::Dropped;
use super::{
    ChatStreamDecoder, HttpProvider, PassthroughEndpoint, ProviderError, Upstream, UpstreamRequest,
};
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest};
use wire::{MessageResponse, MessagesBody, MessagesRequest};

/// The API version sent when the client did not choose one (the only GA version).
pub const API_VERSION: &str = "2023-06-01";

/// Which Messages API operation a native request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagesEndpoint {
    Create,
    CountTokens,
}

/// The headers of a `/v1/messages` client that a native forward passes on: the API version and
/// beta features it was written against.
#[derive(Debug, Clone, Default)]
pub struct ClientHeaders {
    pub version: Option<HeaderValue>,
    pub beta: Option<HeaderValue>,
}

pub struct Anthropic;

/// `{api_base}/messages`, for an `api_base` ending in `/v1` (the default) or not (LiteLLM's
/// configs often say `https://api.anthropic.com`).
fn url(base: &str, endpoint: MessagesEndpoint) -> String {
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/messages").unwrap_or(base);
    let operation = match endpoint {
        MessagesEndpoint::Create => "messages",
        MessagesEndpoint::CountTokens => "messages/count_tokens",
    };
    if base.ends_with("/v1") {
        format!("{base}/{operation}")
    } else {
        format!("{base}/v1/{operation}")
    }
}

fn headers(
    upstream: &Upstream,
    client: Option<&ClientHeaders>,
) -> Result<HeaderMap, ProviderError> {
    let version = client
        .and_then(|c| c.version.clone())
        .unwrap_or_else(|| HeaderValue::from_static(API_VERSION));
    let mut provider_headers = vec![(HeaderName::from_static("anthropic-version"), version)];
    if let Some(beta) = client.and_then(|c| c.beta.clone()) {
        provider_headers.push((HeaderName::from_static("anthropic-beta"), beta));
    }
    let key_header = KeyHeader::Named(HeaderName::from_static("x-api-key"));
    upstream_headers(upstream, key_header, &provider_headers)
}

impl HttpProvider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let mut dropped = Dropped::new("anthropic", upstream.drop_params);
        let messages = request::to_anthropic(request, upstream, &mut dropped)?;
        if !dropped.names().is_empty() {
            tracing::debug!(dropped = ?dropped.names(), "parameters dropped for anthropic");
        }
        Ok(UpstreamRequest {
            url: url(&upstream.base_url, MessagesEndpoint::Create),
            headers: headers(upstream, None)?,
            body: super::json_body(&MessagesBody {
                model: &upstream.model,
                request: &messages,
            })?,
        })
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError> {
        let message: MessageResponse = serde_json::from_slice(body)
            .map_err(|err| ProviderError::InvalidResponse(format!("anthropic message: {err}")))?;
        Ok(response::to_completion(message))
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder> {
        Box::new(stream::AnthropicStreamDecoder::default())
    }

    fn passthrough_request(
        &self,
        _upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        _request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        Err(super::no_endpoint("anthropic", endpoint))
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        error::parse_error(status, headers, body)
    }

    fn dropped_params(&self, _upstream: &Upstream, request: &ChatRequest) -> Vec<String> {
        let mut dropped = Dropped::new("anthropic", true);
        // With dropping allowed the check cannot fail; it only collects names.
        let _ = request::check_params(request, &mut dropped);
        dropped.into_names()
    }

    fn native_messages_request(
        &self,
        upstream: &Upstream,
        endpoint: MessagesEndpoint,
        request: &MessagesRequest,
        client: &ClientHeaders,
    ) -> Option<Result<UpstreamRequest, ProviderError>> {
        let build = || {
            Ok(UpstreamRequest {
                url: url(&upstream.base_url, endpoint),
                headers: headers(upstream, Some(client))?,
                body: super::json_body(&MessagesBody {
                    model: &upstream.model,
                    request,
                })?,
            })
        };
        Some(build())
    }
}

#[cfg(test)]
mod tests;
