//! Cohere's v2 API: `cohere/<model>` and `cohere_chat/<model>` (both spellings LiteLLM
//! accepts) call `POST {api_base}/v2/chat`, streams are server-sent events, embeddings go to
//! `/v2/embed` and rerank requests to `/v2/rerank`, with the key as a bearer token.
//!
//! `request.rs` maps an OpenAI chat request to Cohere's, `response.rs` maps the answers,
//! streams and errors back, `embed.rs` does embeddings and rerank, `wire.rs` holds the types.

pub mod embed;
pub mod request;
pub mod response;
pub mod wire;

use axum::http::header::HeaderMap;

use super::params::Dropped;
use super::{
    upstream_headers, ChatStreamDecoder, HttpProvider, KeyHeader, PassthroughEndpoint,
    ProviderError, Upstream, UpstreamRequest,
};
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest, PassthroughResponse};
use wire::ChatResponse;

/// Where a Cohere deployment without `api_base` is served.
pub const DEFAULT_BASE: &str = "https://api.cohere.com";

pub struct Cohere {
    pub name: &'static str,
}

/// `{api_base}/v2/{route}`, for an `api_base` given with or without its API version.
pub fn url(base: &str, route: &str) -> String {
    let mut base = base.trim_end_matches('/');
    for suffix in ["/v2", "/v1"] {
        if let Some(root) = base.strip_suffix(suffix) {
            base = root;
            break;
        }
    }
    format!("{base}/v2/{route}")
}

impl HttpProvider for Cohere {
    fn name(&self) -> &'static str {
        self.name
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let mut dropped = Dropped::new(self.name, upstream.drop_params);
        let body = request::to_cohere(request, &upstream.model, &mut dropped)?;
        Ok(UpstreamRequest {
            url: url(&upstream.base_url, "chat"),
            headers: upstream_headers(upstream, KeyHeader::Bearer, &[])?,
            body: super::json_body(&body)?,
        })
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError> {
        let response: ChatResponse = serde_json::from_slice(body)
            .map_err(|err| ProviderError::InvalidResponse(format!("cohere response: {err}")))?;
        Ok(response::to_completion(response))
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder> {
        Box::new(response::CohereStreamDecoder::default())
    }

    fn passthrough_request(
        &self,
        upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let (route, body) = match endpoint {
            PassthroughEndpoint::Embeddings => {
                ("embed", embed::to_embed(request, &upstream.model)?)
            }
            PassthroughEndpoint::Rerank => ("rerank", embed::to_rerank(request, &upstream.model)?),
            PassthroughEndpoint::Completions => {
                return Err(ProviderError::Unsupported(format!(
                    "provider `{}` has no /v1/completions endpoint; use /v1/chat/completions",
                    self.name
                )))
            }
        };
        Ok(UpstreamRequest {
            url: url(&upstream.base_url, route),
            headers: upstream_headers(upstream, KeyHeader::Bearer, &[])?,
            body: super::json_body(&body)?,
        })
    }

    fn passthrough_response(
        &self,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
        body: &[u8],
    ) -> Result<PassthroughResponse, ProviderError> {
        match endpoint {
            PassthroughEndpoint::Rerank => embed::from_rerank(request, &request.model, body),
            _ => embed::from_embed(request, &request.model, body),
        }
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        response::parse_error(status, headers, body)
    }

    fn dropped_params(&self, _upstream: &Upstream, request: &ChatRequest) -> Vec<String> {
        let mut dropped = Dropped::new(self.name, true);
        let _ = request::check_params(request, &mut dropped);
        dropped.into_names()
    }
}

#[cfg(test)]
mod tests;
