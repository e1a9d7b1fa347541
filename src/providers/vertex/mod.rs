//! Google Vertex AI (LiteLLM's `vertex_ai/` and `vertex_ai_beta/` prefixes): Gemini and
//! Anthropic's Claude models on Google Cloud, called with an OAuth token from the deployment's
//! Google credentials (`auth.rs`).
//!
//! Every call goes to `{host}/v1/projects/{project}/locations/{location}/publishers/...`, where
//! the host is `https://{location}-aiplatform.googleapis.com` (`https://aiplatform.googleapis.com`
//! for the `global` location) unless `api_base` names another, and the rest depends on the model:
//!
//! | model | path | body |
//! |---|---|---|
//! | Gemini (`gemini-*`, and any model not below) | `publishers/google/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` | Gemini's (`providers/gemini`) |
//! | Claude (`claude-*`) | `publishers/anthropic/models/{model}:rawPredict`, `:streamRawPredict` | Anthropic's Messages (`providers/anthropic`) with `anthropic_version: vertex-2023-10-16` and no `model` |
//! | embeddings (`/v1/embeddings`, e.g. `text-embedding-004`) | `publishers/google/models/{model}:predict` | `instances: [{content}]` (`embed.rs`) |
//!
//! The translations are the Gemini and Anthropic providers' own; this module only says where
//! and as whom.

pub mod auth;
pub mod embed;

use std::sync::Arc;

use axum::http::header::{HeaderMap, HeaderName};
use serde::Serialize;

use super::anthropic::wire::{MessageResponse, MessagesRequest};
use super::anthropic::{ClientHeaders, MessagesEndpoint};
use super::gemini::wire::GenerateContentResponse;
use super::params::Dropped;
use super::{
    anthropic, gemini, upstream_headers, ChatStreamDecoder, HttpProvider, KeyHeader,
    PassthroughEndpoint, Prepared, ProviderError, Upstream, UpstreamRequest,
};
use crate::config::DeploymentConfig;
use crate::schema::{ChatCompletion, ChatRequest, PassthroughRequest, PassthroughResponse};
use auth::{GoogleCredentials, GoogleKey};

/// The `anthropic_version` Vertex AI takes in the body (instead of the header).
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";
/// LiteLLM's default location.
pub const DEFAULT_LOCATION: &str = "us-central1";

/// Which API family a Vertex model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gemini,
    Anthropic,
}

impl Kind {
    /// The family of a model name (after `vertex_ai/`): `claude-*` is Anthropic's, everything
    /// else goes to the Gemini API (Google's own models, embeddings included).
    pub fn of(model: &str) -> Kind {
        if model_id(model).starts_with("claude") {
            Kind::Anthropic
        } else {
            Kind::Gemini
        }
    }

    fn publisher(self) -> &'static str {
        match self {
            Kind::Gemini => "google",
            Kind::Anthropic => "anthropic",
        }
    }
}

/// The model id in the URL: LiteLLM's `gemini/` route marker removed
/// (`vertex_ai/gemini/gemini-2.0-flash`).
pub fn model_id(model: &str) -> &str {
    model.strip_prefix("gemini/").unwrap_or(model)
}

/// A Vertex AI provider of one model family.
pub struct Vertex {
    name: &'static str,
    kind: Kind,
}

impl Vertex {
    pub fn new(name: &'static str, kind: Kind) -> Vertex {
        Vertex { name, kind }
    }
}

/// The regional host of a location (`global` has none in its name).
/// A Google Cloud project id or location as they may be written into a URL: letters, digits,
/// `-`, `_`, `.`.
pub fn valid_gcp_name(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub fn location_host(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// `{host}/{version}/projects/{project}/locations/{location}`: the host is `api_base` when set
/// (a version it ends with is kept, not doubled), else the location's.
pub fn project_base(
    api_base: Option<&str>,
    version: &str,
    project: &str,
    location: &str,
) -> String {
    let host = match api_base {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => location_host(location),
    };
    let versioned = ["/v1", "/v1beta1"].iter().any(|v| host.ends_with(v));
    let prefix = if versioned {
        host
    } else {
        format!("{host}/{version}")
    };
    format!("{prefix}/projects/{project}/locations/{location}")
}

/// `{base}/publishers/{publisher}/models/{model}:{method}`.
pub fn url(base: &str, kind: Kind, model: &str, method: &str) -> String {
    // `@` stays: Claude's versions are written `claude-3-5-sonnet-v2@20241022`.
    let encoded = crate::providers::translate::encode_path_segment(model_id(model), b"@");
    format!(
        "{}/publishers/{}/models/{encoded}:{method}",
        base.trim_end_matches('/'),
        kind.publisher()
    )
}

fn chat_method(kind: Kind, stream: bool) -> &'static str {
    match (kind, stream) {
        (Kind::Gemini, false) => "generateContent",
        (Kind::Gemini, true) => "streamGenerateContent?alt=sse",
        (Kind::Anthropic, false) => "rawPredict",
        (Kind::Anthropic, true) => "streamRawPredict",
    }
}

/// The headers of a Vertex call: a deployment `api_key` (Vertex's express mode) goes in
/// `x-goog-api-key`; with credentials, the bearer token is added just before sending.
fn headers(upstream: &Upstream) -> Result<HeaderMap, ProviderError> {
    let key_header = KeyHeader::Named(HeaderName::from_static("x-goog-api-key"));
    upstream_headers(upstream, key_header, &[])
}

/// An Anthropic Messages body as Vertex takes it: no `model` (it is in the URL), the API
/// version in the body.
#[derive(Serialize)]
struct VertexMessages<'a> {
    anthropic_version: &'static str,
    #[serde(flatten)]
    request: &'a MessagesRequest,
}

/// Where the credentials JSON comes from, first match wins (LiteLLM's order):
/// `vertex_credentials`, `VERTEXAI_CREDENTIALS`, then Google's `GOOGLE_APPLICATION_CREDENTIALS`
/// (a file path). Each is a path to a JSON file or the JSON itself.
fn credentials_source(
    deployment: &DeploymentConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, &'static str)> {
    let non_empty = |v: String| (!v.trim().is_empty()).then_some(v);
    if let Some(value) = &deployment.vertex.credentials {
        return Some((value.expose().to_owned(), "vertex_credentials"));
    }
    if let Some(value) = env("VERTEXAI_CREDENTIALS").and_then(non_empty) {
        return Some((value, "VERTEXAI_CREDENTIALS"));
    }
    env("GOOGLE_APPLICATION_CREDENTIALS")
        .and_then(non_empty)
        .map(|path| (path, "GOOGLE_APPLICATION_CREDENTIALS"))
}

/// Reads credentials given as a path or as inline JSON. The error names where they came from
/// and what is wrong, never their content.
pub fn load_credentials(value: &str, from: &str) -> Result<GoogleCredentials, String> {
    let trimmed = value.trim();
    if trimmed.starts_with('{') {
        let key = GoogleKey::from_json(trimmed).map_err(|why| format!("{from} {why}"))?;
        return Ok(GoogleCredentials::new(key, format!("{from} (inline JSON)")));
    }
    // Only a value that looks like a path is echoed: anything else may be a secret pasted in
    // another form (base64 of a credentials JSON is a single line).
    let looks_like_path = trimmed.contains('/') || trimmed.ends_with(".json");
    let shown = if looks_like_path && trimmed.len() < 512 && !trimmed.contains('\n') {
        format!("`{trimmed}`")
    } else {
        "(the value)".to_owned()
    };
    let text = std::fs::read_to_string(trimmed).map_err(|err| {
        format!("{from}: cannot read the credentials file {shown}: {err} (give a path to a Google credentials JSON file, or the JSON itself)")
    })?;
    let key = GoogleKey::from_json(&text)
        .map_err(|why| format!("{from}: the credentials file {shown} {why}"))?;
    Ok(GoogleCredentials::new(key, trimmed.to_owned()))
}

/// The deployment's project, location, base URL, credentials and provider
/// ([`super::ProviderSpec::prepare`]).
pub fn prepare(
    deployment: &DeploymentConfig,
    has_api_key: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Prepared, String> {
    let (name, version) = match deployment.provider.as_str() {
        "vertex_ai_beta" => ("vertex_ai_beta", "v1beta1"),
        _ => ("vertex_ai", "v1"),
    };
    let model = &deployment.upstream_model;
    let id = model_id(model);
    if id.is_empty() {
        return Err("the Vertex AI model name is empty".into());
    }
    // LiteLLM's other Vertex routes: Model Garden partners (`meta/llama-...`, `mistral-...` via
    // OpenAI-compatible endpoints) and numeric endpoint ids of deployed models.
    if id.contains('/') || id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Vertex AI model `{id}` is not supported: only Google's models (`vertex_ai/gemini-...`, embeddings) and Claude (`vertex_ai/claude-...`) are"
        ));
    }
    let non_empty = |v: String| (!v.trim().is_empty()).then_some(v);
    let credentials = match credentials_source(deployment, env) {
        Some((value, from)) => Some(load_credentials(&value, from)?),
        None if has_api_key => None,
        None => {
            return Err("Vertex AI needs Google credentials: set `vertex_credentials` (the path to a service-account JSON file, or the JSON itself) or GOOGLE_APPLICATION_CREDENTIALS".into())
        }
    };
    let project = deployment
        .vertex
        .project
        .clone()
        .or_else(|| env("VERTEXAI_PROJECT").and_then(non_empty))
        .or_else(|| env("VERTEX_PROJECT").and_then(non_empty))
        .or_else(|| {
            credentials
                .as_ref()
                .and_then(|c| c.key().project_id().map(str::to_owned))
        })
        .or_else(|| env("GOOGLE_CLOUD_PROJECT").and_then(non_empty))
        .ok_or("Vertex AI needs a project: set `vertex_project` or VERTEXAI_PROJECT")?;
    let location = deployment
        .vertex
        .location
        .clone()
        .or_else(|| env("VERTEXAI_LOCATION").and_then(non_empty))
        .or_else(|| env("VERTEX_LOCATION").and_then(non_empty))
        .unwrap_or_else(|| DEFAULT_LOCATION.to_owned());
    for (what, value) in [("vertex_project", &project), ("vertex_location", &location)] {
        if !valid_gcp_name(value) {
            return Err(format!("{what} `{value}` is not a valid Google Cloud name"));
        }
    }
    if let Some(credentials) = &credentials {
        tracing::info!(
            deployment = %deployment.id,
            project = %project,
            location = %location,
            credentials = credentials.origin(),
            "Vertex AI deployment calls with Google OAuth credentials"
        );
    }
    let credentials: Option<Arc<dyn super::Credentials>> = match credentials {
        Some(c) => Some(Arc::new(c)),
        None => None,
    };
    Ok(Prepared {
        default_base: None,
        base_url: Some(project_base(
            deployment.api_base.as_deref(),
            version,
            &project,
            &location,
        )),
        credentials,
        provider: Some(Arc::new(Vertex::new(name, Kind::of(model)))),
    })
}

/// The host (scheme and authority, and any path prefix of `api_base`) of a deployment's
/// project base, for the `/vertex_ai/*` pass-through route.
pub fn host_of(project_base: &str) -> &str {
    let Some(at) = project_base.rfind("/projects/") else {
        return project_base;
    };
    let head = &project_base[..at];
    head.strip_suffix("/v1")
        .or_else(|| head.strip_suffix("/v1beta1"))
        .unwrap_or(head)
}

impl HttpProvider for Vertex {
    fn name(&self) -> &'static str {
        self.name
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        let stream = request.is_stream();
        let url = url(
            &upstream.base_url,
            self.kind,
            &upstream.model,
            chat_method(self.kind, stream),
        );
        let body = match self.kind {
            Kind::Gemini => {
                let mut dropped = Dropped::new(self.name, upstream.drop_params);
                super::json_body(&gemini::request::to_gemini(request, &mut dropped)?)?
            }
            Kind::Anthropic => {
                let mut dropped = Dropped::new(self.name, upstream.drop_params);
                let messages = anthropic::request::to_anthropic(request, upstream, &mut dropped)?;
                super::json_body(&VertexMessages {
                    anthropic_version: ANTHROPIC_VERSION,
                    request: &messages,
                })?
            }
        };
        Ok(UpstreamRequest {
            url,
            headers: headers(upstream)?,
            body,
        })
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError> {
        match self.kind {
            Kind::Gemini => {
                let response: GenerateContentResponse =
                    serde_json::from_slice(body).map_err(|err| {
                        ProviderError::InvalidResponse(format!("vertex gemini response: {err}"))
                    })?;
                Ok(gemini::response::to_completion(response))
            }
            Kind::Anthropic => {
                let message: MessageResponse = serde_json::from_slice(body).map_err(|err| {
                    ProviderError::InvalidResponse(format!("vertex anthropic message: {err}"))
                })?;
                Ok(anthropic::response::to_completion(message))
            }
        }
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder> {
        match self.kind {
            Kind::Gemini => Box::new(gemini::stream::GeminiStreamDecoder::default()),
            Kind::Anthropic => Box::new(anthropic::stream::AnthropicStreamDecoder::default()),
        }
    }

    fn passthrough_request(
        &self,
        upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError> {
        if endpoint != PassthroughEndpoint::Embeddings || self.kind != Kind::Gemini {
            return Err(super::no_endpoint(self.name, endpoint));
        }
        Ok(UpstreamRequest {
            url: url(&upstream.base_url, Kind::Gemini, &upstream.model, "predict"),
            headers: headers(upstream)?,
            body: super::json_body(&embed::to_predict(request)?)?,
        })
    }

    fn passthrough_response(
        &self,
        _endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
        body: &[u8],
    ) -> Result<PassthroughResponse, ProviderError> {
        embed::from_predict(request, &request.model, body)
    }

    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        // Claude's own errors are Anthropic's shape; Google's front end (auth, quota, routing)
        // answers in Google's.
        let anthropic_shaped = self.kind == Kind::Anthropic
            && serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("error"));
        if anthropic_shaped {
            anthropic::error::parse_error(status, headers, body)
        } else {
            gemini::error::parse_error(status, headers, body)
        }
    }

    fn dropped_params(&self, _upstream: &Upstream, request: &ChatRequest) -> Vec<String> {
        let mut dropped = Dropped::new(self.name, true);
        // With dropping allowed the checks cannot fail; they only collect names.
        let _ = match self.kind {
            Kind::Gemini => gemini::request::check_params(request, &mut dropped),
            Kind::Anthropic => anthropic::request::check_params(request, &mut dropped),
        };
        dropped.into_names()
    }

    /// Claude on Vertex takes a `/v1/messages` body natively (with Vertex's version in it).
    fn native_messages_request(
        &self,
        upstream: &Upstream,
        endpoint: MessagesEndpoint,
        request: &MessagesRequest,
        _client: &ClientHeaders,
    ) -> Option<Result<UpstreamRequest, ProviderError>> {
        if self.kind != Kind::Anthropic || endpoint != MessagesEndpoint::Create {
            return None;
        }
        let build = || {
            let stream = request.stream == Some(true);
            Ok(UpstreamRequest {
                url: url(
                    &upstream.base_url,
                    self.kind,
                    &upstream.model,
                    chat_method(self.kind, stream),
                ),
                headers: headers(upstream)?,
                body: super::json_body(&VertexMessages {
                    anthropic_version: ANTHROPIC_VERSION,
                    request,
                })?,
            })
        };
        Some(build())
    }
}

#[cfg(test)]
mod tests;
