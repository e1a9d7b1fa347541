//! Azure OpenAI: the OpenAI wire format at a per-deployment URL
//! (`{api_base}/openai/deployments/{deployment}/chat/completions?api-version=...`), authenticated
//! with an `api-key` header instead of a bearer token.

use crate::providers::{upstream_headers, KeyHeader};
use axum::http::header::{HeaderMap, HeaderName};
use bytes::Bytes;

use super::anthropic::request::OpenAiDialect;
use super::openai::{
    chat_body, parse_completion, parse_error, parse_raw_completion, OpenAiStreamDecoder,
};
use super::responses::wire::{native_body, ResponsesRequest};
use super::translate::encode_path_segment;
use super::{
    ChatStreamDecoder, HttpProvider, PassthroughEndpoint, ProviderError, Upstream, UpstreamRequest,
};
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest, RawCompletion, WithModel};

/// Used when a deployment sets no `api_version`: the latest GA data-plane version.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Used for `/openai/responses` when a deployment sets no `api_version`: the first version
/// with the Responses API (the chat default above predates it).
pub const RESPONSES_API_VERSION: &str = "2025-04-01-preview";

pub struct Azure;

impl Azure {
    fn url(upstream: &Upstream, operation: &str) -> String {
        let version = upstream
            .api_version
            .as_deref()
            .unwrap_or(DEFAULT_API_VERSION);
        format!(
            "{}/openai/deployments/{}/{operation}?api-version={}",
            upstream.base_url,
            encode_path_segment(&upstream.model, b""),
            encode_path_segment(version, b"")
        )
    }

    fn headers(upstream: &Upstream) -> Result<HeaderMap, ProviderError> {
        upstream_headers(
            upstream,
            KeyHeader::Named(HeaderName::from_static("api-key")),
            &[],
        )
    }
}

impl HttpProvider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    /// Azure OpenAI is OpenAI's API: `max_completion_tokens`, no parameters it does not define.
    fn openai_dialect(&self, _upstream: &Upstream) -> OpenAiDialect {
        OpenAiDialect::Strict
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        Ok(UpstreamRequest {
            url: Self::url(upstream, "chat/completions"),
            headers: Self::headers(upstream)?,
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
        if endpoint == PassthroughEndpoint::Rerank {
            return Err(ProviderError::Unsupported(
                "Azure OpenAI has no rerank endpoint".into(),
            ));
        }
        Ok(UpstreamRequest {
            url: Self::url(upstream, endpoint.path()),
            headers: Self::headers(upstream)?,
            body: super::json_body(&WithModel {
                request,
                model: &upstream.model,
            })?,
        })
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        parse_error(status, headers, body)
    }

    /// Azure's Responses API is per resource, not per deployment:
    /// `{api_base}/openai/responses?api-version=...`, the deployment named by `model`.
    fn native_responses_request(
        &self,
        upstream: &Upstream,
        request: &ResponsesRequest,
    ) -> Option<Result<UpstreamRequest, ProviderError>> {
        let version = upstream
            .api_version
            .as_deref()
            .unwrap_or(RESPONSES_API_VERSION);
        Some((|| {
            Ok(UpstreamRequest {
                url: format!(
                    "{}/openai/responses?api-version={}",
                    upstream.base_url,
                    encode_path_segment(version, b"")
                ),
                headers: Self::headers(upstream)?,
                body: native_body(request, &upstream.model).map_err(|err| {
                    ProviderError::Unsupported(format!("cannot encode the request: {err}"))
                })?,
            })
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_url_and_api_key_header() {
        let upstream = Upstream {
            base_url: "https://example-resource.openai.azure.com".into(),
            api_key: Some(crate::config::Secret::new("azure-key".into())),
            api_version: Some("2024-06-01".into()),
            model: "my gpt/4o".into(),
            headers: HeaderMap::new(),
            drop_params: false,
            additional_drop_params: Vec::new(),
            allowed_openai_params: Vec::new(),
            max_output_tokens: None,
            credentials: None,
        };
        let req: ChatRequest = serde_json::from_str(r#"{"model":"alias","messages":[]}"#).unwrap();
        let built = Azure.chat_request(&upstream, &req).unwrap();
        assert_eq!(
            built.url,
            "https://example-resource.openai.azure.com/openai/deployments/my%20gpt%2F4o/chat/completions?api-version=2024-06-01"
        );
        assert_eq!(built.headers["api-key"], "azure-key");
        assert!(built.headers.get("authorization").is_none());
    }
}
