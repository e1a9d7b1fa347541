//! AWS Bedrock through the Converse API: `POST {endpoint}/model/{modelId}/converse`, and
//! `/converse-stream` for streams (AWS's binary event-stream framing, `eventstream.rs`), signed
//! with SigV4 (service `bedrock`) by the deployment's credentials just before each request is
//! sent, or sent with a Bedrock API key (`Authorization: Bearer`) when the deployment has one
//! (`api_key`, or `AWS_BEARER_TOKEN_BEDROCK`).
//!
//! Model names are LiteLLM's: `bedrock/<modelId>` and `bedrock/converse/<modelId>`, where the
//! model id may be a cross-region inference profile (`us.anthropic.claude-...`) or an ARN; it
//! is percent-encoded whole into the path (`:` and `/` included).
//!
//! `request.rs` maps an OpenAI chat request to Converse, `response.rs` and `stream.rs` map the
//! answers back, `error.rs` reads AWS's errors, `wire.rs` holds the types, `credentials.rs`
//! finds and refreshes the AWS credentials, `sigv4.rs` signs.

pub mod credentials;
pub mod embed;
pub mod error;
pub mod request;
pub mod response;
pub mod sigv4;
pub mod stream;
pub mod wire;

use std::sync::Arc;

use axum::http::header::{HeaderMap, HeaderValue, ACCEPT};

use super::params::Dropped;
use super::{
    upstream_headers, ChatStreamDecoder, Framing, HttpProvider, KeyHeader, PassthroughEndpoint,
    Prepared, ProviderError, Upstream, UpstreamRequest,
};
use crate::config::DeploymentConfig;
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest, PassthroughResponse};
use wire::ConverseResponse;

pub struct Bedrock;

/// SigV4's name for the Bedrock runtime.
pub const SIGNING_NAME: &str = "bedrock";

/// The Bedrock model id of a deployment's model name: `converse/` (LiteLLM's route marker)
/// removed.
pub fn model_id(model: &str) -> Result<&str, ProviderError> {
    let id = model.strip_prefix("converse/").unwrap_or(model);
    if let Some(route) = ["invoke/", "converse_like/", "llama/", "nova/"]
        .iter()
        .find(|route| id.starts_with(**route))
    {
        return Err(ProviderError::Unsupported(format!(
            "Bedrock route `{}` is not supported; use `bedrock/<modelId>` or `bedrock/converse/<modelId>` (the Converse API)",
            route.trim_end_matches('/')
        )));
    }
    if id.is_empty() {
        return Err(ProviderError::Unsupported(
            "the Bedrock model id is empty".into(),
        ));
    }
    Ok(id)
}

/// `{base}/model/{modelId}/converse[-stream]`, the model id percent-encoded whole (`:` →
/// `%3A`, `/` → `%2F`), as the AWS SDKs send it.
pub fn url(base: &str, model: &str, stream: bool) -> Result<String, ProviderError> {
    let method = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    model_url(base, model, method)
}

/// `{base}/model/{modelId}/{method}` (`invoke` for the embedding models' own bodies).
pub fn model_url(base: &str, model: &str, method: &str) -> Result<String, ProviderError> {
    let id = model_id(model)?;
    let encoded = super::translate::encode_path_segment(id, b"");
    Ok(format!(
        "{}/model/{encoded}/{method}",
        base.trim_end_matches('/')
    ))
}

/// The deployment's endpoint and SigV4 credentials ([`super::ProviderSpec::prepare`]).
pub fn prepare(
    deployment: &DeploymentConfig,
    has_api_key: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Prepared, String> {
    model_id(&deployment.upstream_model).map_err(|e| e.to_string())?;
    let aws = &deployment.aws;
    let region = credentials::region(aws, env);
    let default_base = aws
        .bedrock_runtime_endpoint
        .clone()
        .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
    if has_api_key {
        return Ok(Prepared {
            default_base: Some(default_base),
            credentials: None,
            ..Prepared::default()
        });
    }
    let credentials = credentials::resolve(aws, SIGNING_NAME, env)?;
    tracing::info!(
        deployment = %deployment.id,
        region = credentials.region(),
        source = credentials.origin(),
        "Bedrock deployment signs with AWS credentials"
    );
    Ok(Prepared {
        default_base: Some(default_base),
        credentials: Some(Arc::new(credentials)),
        ..Prepared::default()
    })
}

impl HttpProvider for Bedrock {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn stream_framing(&self) -> Framing {
        Framing::AwsEventStream
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let mut dropped = Dropped::new("bedrock", upstream.drop_params);
        let body = request::to_converse(request, &mut dropped)?;
        let stream = request.is_stream();
        let accept = if stream {
            "application/vnd.amazon.eventstream"
        } else {
            "application/json"
        };
        let mut headers = upstream_headers(upstream, KeyHeader::Bearer, &[])?;
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static(accept));
        Ok(UpstreamRequest {
            url: url(&upstream.base_url, &upstream.model, stream)?,
            headers,
            body: super::json_body(&body)?,
        })
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError> {
        let response: ConverseResponse = serde_json::from_slice(body)
            .map_err(|err| ProviderError::InvalidResponse(format!("bedrock response: {err}")))?;
        Ok(response::to_completion(response))
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder> {
        Box::new(stream::BedrockStreamDecoder::default())
    }

    fn passthrough_request(
        &self,
        upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let family = embed::Family::of(model_id(&upstream.model)?);
        let (PassthroughEndpoint::Embeddings, Some(family)) = (endpoint, family) else {
            return Err(super::no_endpoint("bedrock", endpoint));
        };
        let texts = embed::inputs(request)?;
        let mut headers = upstream_headers(upstream, KeyHeader::Bearer, &[])?;
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("application/json"));
        Ok(UpstreamRequest {
            url: model_url(&upstream.base_url, &upstream.model, "invoke")?,
            headers,
            body: super::json_body(&embed::to_invoke(family, request, &texts)?)?,
        })
    }

    fn embeddings_per_call(&self, upstream: &Upstream) -> Option<usize> {
        let family = embed::Family::of(model_id(&upstream.model).ok()?)?;
        Some(embed::batch_limit(family))
    }

    fn passthrough_response(
        &self,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
        body: &[u8],
    ) -> Result<PassthroughResponse, ProviderError> {
        // Only embeddings get here: `passthrough_request` refuses the rest.
        debug_assert_eq!(endpoint, PassthroughEndpoint::Embeddings);
        let (vectors, tokens) = embed::from_invoke(body)?;
        Ok(super::translate::openai_embeddings(
            request,
            Some(request.model.clone()),
            vectors,
            tokens,
        ))
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        error::parse_error(status, headers, body)
    }

    fn dropped_params(&self, _upstream: &Upstream, request: &ChatRequest) -> Vec<String> {
        let mut dropped = Dropped::new("bedrock", true);
        let _ = request::check_params(request, &mut dropped);
        dropped.into_names()
    }
}

#[cfg(test)]
mod tests;
