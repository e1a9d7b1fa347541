//! Ollama's native API, as LiteLLM maps it: `ollama_chat/<model>` calls `POST /api/chat`,
//! `ollama/<model>` calls `POST /api/generate`, and both embed with `POST /api/embed`. Streams
//! are newline-delimited JSON. Ollama needs no key; when the deployment has one (Ollama's
//! hosted service, or a proxy in front of a local server) it is sent as a bearer token.
//!
//! `request.rs` maps an OpenAI chat request to Ollama's, `response.rs` maps the answers and
//! streams back, `embed.rs` does embeddings, `completions.rs` the legacy `/v1/completions`
//! (over `/api/generate`), `wire.rs` holds the types.
//!
//! (An Ollama server also speaks OpenAI's format under `/v1`; `openai/<model>` with
//! `api_base: http://host:11434/v1` uses that instead.)

pub mod completions;
pub mod embed;
pub mod request;
pub mod response;
pub mod wire;

use axum::http::header::HeaderMap;

use super::params::Dropped;
use super::{
    upstream_headers, ChatStreamDecoder, Framing, HttpProvider, KeyHeader, PassthroughDecoder,
    PassthroughEndpoint, ProviderError, Upstream, UpstreamRequest,
};
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest, PassthroughResponse};
pub use request::Api;
use wire::Reply;

/// Where an Ollama deployment without `api_base` is served.
pub const DEFAULT_BASE: &str = "http://localhost:11434";

pub struct Ollama {
    api: Api,
}

impl Ollama {
    /// `ollama_chat/...`.
    pub fn chat() -> Self {
        Ollama { api: Api::Chat }
    }

    /// `ollama/...`.
    pub fn generate() -> Self {
        Ollama { api: Api::Generate }
    }
}

/// `{api_base}/api/{route}`, for an `api_base` given as the server (`http://host:11434`), its
/// `/api` root, or a full endpoint URL (as some LiteLLM configs write it).
pub fn url(base: &str, route: &str) -> String {
    let mut base = base.trim_end_matches('/');
    for suffix in ["/api/chat", "/api/generate", "/api/embed", "/api"] {
        if let Some(root) = base.strip_suffix(suffix) {
            base = root;
            break;
        }
    }
    format!("{base}/api/{route}")
}

impl HttpProvider for Ollama {
    fn name(&self) -> &'static str {
        self.api.provider()
    }

    fn stream_framing(&self) -> Framing {
        Framing::NdJson
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let mut dropped = Dropped::new(self.api.provider(), upstream.drop_params);
        let (route, body) = match self.api {
            Api::Chat => (
                "chat",
                super::json_body(&request::to_chat(request, &upstream.model, &mut dropped)?)?,
            ),
            Api::Generate => (
                "generate",
                super::json_body(&request::to_generate(
                    request,
                    &upstream.model,
                    &mut dropped,
                )?)?,
            ),
        };
        Ok(UpstreamRequest {
            url: url(&upstream.base_url, route),
            headers: upstream_headers(upstream, KeyHeader::Bearer, &[])?,
            body,
        })
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError> {
        let reply: Reply = serde_json::from_slice(body)
            .map_err(|err| ProviderError::InvalidResponse(format!("ollama response: {err}")))?;
        if reply.done == Some(false) {
            // One line of a stream where a whole answer was asked for: only its start.
            return Err(ProviderError::InvalidResponse(
                "the Ollama answer is incomplete (`done: false`)".into(),
            ));
        }
        Ok(response::to_completion(reply))
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder> {
        Box::new(response::OllamaStreamDecoder::default())
    }

    fn passthrough_request(
        &self,
        upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        match endpoint {
            PassthroughEndpoint::Embeddings => Ok(UpstreamRequest {
                url: url(&upstream.base_url, "embed"),
                headers: upstream_headers(upstream, KeyHeader::Bearer, &[])?,
                body: super::json_body(&embed::to_embed(request, &upstream.model)?)?,
            }),
            PassthroughEndpoint::Completions => Ok(UpstreamRequest {
                url: url(&upstream.base_url, "generate"),
                headers: upstream_headers(upstream, KeyHeader::Bearer, &[])?,
                body: super::json_body(&completions::to_generate(request, &upstream.model)?)?,
            }),
            PassthroughEndpoint::Rerank => Err(ProviderError::Unsupported(format!(
                "provider `{}` has no rerank endpoint",
                self.api.provider()
            ))),
        }
    }

    fn passthrough_response(
        &self,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
        body: &[u8],
    ) -> Result<PassthroughResponse, ProviderError> {
        match endpoint {
            PassthroughEndpoint::Completions => completions::from_generate(body),
            _ => embed::from_embed(request, body),
        }
    }

    fn passthrough_stream_decoder(&self, _endpoint: PassthroughEndpoint) -> PassthroughDecoder {
        // Only completions stream.
        completions::stream_decoder()
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        response::parse_error(status, headers, body)
    }

    fn dropped_params(&self, _upstream: &Upstream, request: &ChatRequest) -> Vec<String> {
        let mut dropped = Dropped::new(self.api.provider(), true);
        // With dropping allowed the check cannot fail; it only collects names.
        let _ = request::check_params(self.api, request, &mut dropped);
        dropped.into_names()
    }
}

#[cfg(test)]
mod tests;
