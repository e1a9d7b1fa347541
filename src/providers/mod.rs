//! Providers: one file per provider family, each behind [`Provider`]. A provider only translates
//! (canonical request → upstream HTTP request, upstream bytes → canonical response); the HTTP
//! client (`http.rs`) sends, and the router decides where. Providers know nothing of keys,
//! budgets or routing.

pub mod anthropic;
mod azure;
pub mod bedrock;
mod error;
pub mod eventstream;
pub mod framing;
pub mod gemini;
pub mod http;
pub mod mock;
mod openai;
mod over_http;
pub mod params;
pub mod sse;
#[cfg(test)]
mod testing;
pub mod translate;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

pub use error::ProviderError;
pub use framing::Framing;
pub use sse::{SseDecoder, SseEvent};

use crate::config::Secret;
use crate::schema::{
    ChatAnswer, ChatChunk, ChatCompletion, ChatRequest, PassthroughRequest, PassthroughResponse,
    RawCompletion,
};
use anthropic::request::OpenAiDialect;
use http::{ChunkStream, EventStream, HttpClient};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Events of a streamed `/v1/completions` answer.
pub type PassthroughStream =
    Pin<Box<dyn Stream<Item = Result<PassthroughResponse, ProviderError>> + Send>>;

/// Where and as whom a deployment calls its upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    /// The model name the upstream expects (the part after `provider/`).
    pub model: String,
    /// Sent on every request, after the provider's own headers.
    pub headers: HeaderMap,
    /// LiteLLM's `drop_params`: parameters a translating provider cannot take are dropped (and
    /// named in the `x-switchyard-dropped-params` response header) instead of failing the
    /// request with a 400.
    pub drop_params: bool,
    /// `model_info.max_tokens`: the model's output limit, used where a provider requires an
    /// output cap and the request sets none (Anthropic).
    pub max_output_tokens: Option<u64>,
    /// Credentials that sign each request or fetch a token that expires (AWS SigV4, OAuth);
    /// `None` when `api_key` is all the upstream needs.
    pub credentials: Option<Arc<dyn Credentials>>,
}

/// Credentials that are more than a static key: applied to every built request just before it
/// is sent, so they may sign the final body (SigV4) or add a bearer token they keep fresh in
/// the background (OAuth). Implementations must never put the secret in an error message.
pub trait Credentials: Send + Sync + std::fmt::Debug {
    fn authorize<'a>(
        &'a self,
        request: &'a mut UpstreamRequest,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// Everything one attempt needs besides the request: the shared client, where and as whom,
/// and how long it may take.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub http: &'a HttpClient,
    pub upstream: &'a Upstream,
    /// Bound on a whole answer, and on the silence between two stream chunks.
    pub timeout: Duration,
    /// Bound on a stream's response head.
    pub first_output_timeout: Duration,
}

/// The smallest real request that proves a deployment serves (`model_info.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    Chat,
    Passthrough(PassthroughEndpoint),
}

/// A provider as the router sees it: the operations one attempt can run against one deployment.
/// Every provider is one; those reached over HTTP implement [`HttpProvider`] (their wire
/// format) and get these operations from `over_http.rs`, the in-process mock implements them
/// directly. The router and the API surfaces call deployments only through this trait.
pub trait Provider: Send + Sync + 'static {
    /// The provider prefix as written in config (`openai`, `azure` ..., `mock_response`).
    fn name(&self) -> &'static str;

    fn chat<'a>(
        &'a self,
        call: Call<'a>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatAnswer, ProviderError>>;

    /// Opens a chat stream: resolves once the response head arrived.
    fn chat_stream<'a>(
        &'a self,
        call: Call<'a>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>>;

    fn passthrough<'a>(
        &'a self,
        call: Call<'a>,
        endpoint: PassthroughEndpoint,
        request: &'a PassthroughRequest,
    ) -> BoxFuture<'a, Result<PassthroughResponse, ProviderError>>;

    fn passthrough_stream<'a>(
        &'a self,
        call: Call<'a>,
        endpoint: PassthroughEndpoint,
        request: &'a PassthroughRequest,
    ) -> BoxFuture<'a, Result<PassthroughStream, ProviderError>>;

    /// An Anthropic Messages request sent natively (the answer's bytes as the upstream sent
    /// them), for providers that speak that API; `None` means: translate it to a chat request.
    fn messages<'a>(
        &'a self,
        _call: Call<'a>,
        _endpoint: anthropic::MessagesEndpoint,
        _request: &'a anthropic::wire::MessagesRequest,
        _client: &'a anthropic::ClientHeaders,
    ) -> Option<BoxFuture<'a, Result<Bytes, ProviderError>>> {
        None
    }

    /// [`Provider::messages`] streamed: the upstream's events as they come.
    fn messages_stream<'a>(
        &'a self,
        _call: Call<'a>,
        _request: &'a anthropic::wire::MessagesRequest,
        _client: &'a anthropic::ClientHeaders,
    ) -> Option<BoxFuture<'a, Result<EventStream, ProviderError>>> {
        None
    }

    /// The parameters of `request` that translation drops, for the
    /// `x-switchyard-dropped-params` response header.
    fn dropped_params(&self, _upstream: &Upstream, _request: &ChatRequest) -> Vec<String> {
        Vec::new()
    }

    /// Which OpenAI dialect a translated request should be written in.
    fn openai_dialect(&self, _upstream: &Upstream) -> OpenAiDialect {
        OpenAiDialect::Compatible
    }

    fn health_check<'a>(
        &'a self,
        call: Call<'a>,
        check: HealthCheck,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// Endpoints whose bodies pass through with only `model` rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassthroughEndpoint {
    Completions,
    Embeddings,
}

impl PassthroughEndpoint {
    pub fn path(self) -> &'static str {
        match self {
            PassthroughEndpoint::Completions => "completions",
            PassthroughEndpoint::Embeddings => "embeddings",
        }
    }
}

/// A fully built upstream HTTP request (always a JSON POST).
#[derive(Debug)]
pub struct UpstreamRequest {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What one decoded stream event means.
#[derive(Debug)]
pub enum StreamItem {
    Chunk(ChatChunk),
    /// The upstream signalled the normal end (`[DONE]`, `message_stop` ...).
    Done,
}

/// Turns one upstream's stream events into canonical chunks. Stateful because some providers
/// spread one logical chunk over several events.
pub trait ChatStreamDecoder: Send {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError>;

    /// Called when the upstream body ended without the provider's end marker: may add final
    /// chunks, or say the stream was cut short.
    fn finish(&mut self, _out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A provider reached over HTTP, as its wire format: how to build its requests and read its
/// answers. It only translates; `over_http.rs` sends.
pub trait HttpProvider: Send + Sync + 'static {
    /// The provider prefix as written in config (`openai`, `azure` ...).
    fn name(&self) -> &'static str;

    /// How the upstream frames a stream (server-sent events unless it says otherwise).
    fn stream_framing(&self) -> Framing {
        Framing::Sse
    }

    /// Which OpenAI dialect a request translated from another API should be written in.
    fn openai_dialect(&self, _upstream: &Upstream) -> OpenAiDialect {
        OpenAiDialect::Compatible
    }

    fn chat_request(
        &self,
        upstream: &Upstream,
        request: &ChatRequest,
    ) -> Result<UpstreamRequest, ProviderError>;

    fn chat_response(&self, body: &[u8]) -> Result<ChatCompletion, ProviderError>;

    /// For upstreams that already answer in the OpenAI format: the answer kept as the upstream's
    /// bytes, so an OpenAI-format client gets it with only `model` changed. `None` means the
    /// answer must be translated with [`Provider::chat_response`].
    fn chat_response_raw(&self, _body: Bytes) -> Option<Result<RawCompletion, ProviderError>> {
        None
    }

    fn chat_stream_decoder(&self) -> Box<dyn ChatStreamDecoder>;

    fn passthrough_request(
        &self,
        upstream: &Upstream,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<UpstreamRequest, ProviderError>;

    /// Reads an upstream error body into a [`ProviderError::Status`].
    fn error_response(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError;

    /// The parameters of `request` that [`Provider::chat_request`] drops in translation, for
    /// the `x-switchyard-dropped-params` response header. Pass-through providers drop nothing.
    fn dropped_params(&self, _upstream: &Upstream, _request: &ChatRequest) -> Vec<String> {
        Vec::new()
    }

    /// A request in Anthropic's own Messages format, for providers that speak it: the body of
    /// a `/v1/messages` client forwarded natively (no lossy round trip through the OpenAI
    /// form). `None` for providers that need it translated.
    fn native_messages_request(
        &self,
        _upstream: &Upstream,
        _endpoint: anthropic::MessagesEndpoint,
        _request: &anthropic::wire::MessagesRequest,
        _client: &anthropic::ClientHeaders,
    ) -> Option<Result<UpstreamRequest, ProviderError>> {
        None
    }
}

/// What the registry knows about a provider prefix.
pub struct ProviderSpec {
    pub provider: Arc<dyn Provider>,
    /// Used when the deployment sets no `api_base`.
    pub default_base: Option<&'static str>,
    /// Environment variable read when the deployment sets no `api_key` (LiteLLM's convention).
    pub key_env: Option<&'static str>,
    /// Builds what a deployment needs beyond a static key, once at start-up: credentials that
    /// sign each request, and a default base URL that depends on them (Bedrock's region).
    pub prepare: Option<Prepare>,
}

/// See [`ProviderSpec::prepare`]. `has_api_key`: the deployment has a key (config or
/// `key_env`). The error is a message for the config error, without any secret.
pub type Prepare = fn(
    deployment: &crate::config::DeploymentConfig,
    has_api_key: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Prepared, String>;

/// What [`Prepare`] built.
#[derive(Default)]
pub struct Prepared {
    pub default_base: Option<String>,
    pub credentials: Option<Arc<dyn Credentials>>,
}

/// The provider registry: one line per provider prefix.
pub fn lookup(prefix: &str) -> Option<ProviderSpec> {
    let openai = |name, default_base, key_env| ProviderSpec {
        provider: Arc::new(openai::OpenAiCompatible { name }),
        default_base,
        key_env,
        prepare: None,
    };
    Some(match prefix {
        "openai" => openai(
            "openai",
            Some("https://api.openai.com/v1"),
            Some("OPENAI_API_KEY"),
        ),
        "custom_openai" => openai("custom_openai", None, None),
        "hosted_vllm" => openai("hosted_vllm", None, Some("HOSTED_VLLM_API_KEY")),
        "lm_studio" => openai(
            "lm_studio",
            Some("http://localhost:1234/v1"),
            Some("LM_STUDIO_API_KEY"),
        ),
        "llamafile" => openai("llamafile", Some("http://127.0.0.1:8080/v1"), None),
        "groq" => openai(
            "groq",
            Some("https://api.groq.com/openai/v1"),
            Some("GROQ_API_KEY"),
        ),
        "mistral" => openai(
            "mistral",
            Some("https://api.mistral.ai/v1"),
            Some("MISTRAL_API_KEY"),
        ),
        "deepseek" => openai(
            "deepseek",
            Some("https://api.deepseek.com/v1"),
            Some("DEEPSEEK_API_KEY"),
        ),
        "together_ai" => openai(
            "together_ai",
            Some("https://api.together.xyz/v1"),
            Some("TOGETHERAI_API_KEY"),
        ),
        "fireworks_ai" => openai(
            "fireworks_ai",
            Some("https://api.fireworks.ai/inference/v1"),
            Some("FIREWORKS_AI_API_KEY"),
        ),
        "openrouter" => openai(
            "openrouter",
            Some("https://openrouter.ai/api/v1"),
            Some("OPENROUTER_API_KEY"),
        ),
        "xai" => openai("xai", Some("https://api.x.ai/v1"), Some("XAI_API_KEY")),
        "perplexity" => openai(
            "perplexity",
            Some("https://api.perplexity.ai"),
            Some("PERPLEXITYAI_API_KEY"),
        ),
        "azure" => ProviderSpec {
            provider: Arc::new(azure::Azure),
            default_base: None,
            key_env: Some("AZURE_API_KEY"),
            prepare: None,
        },
        "anthropic" => ProviderSpec {
            provider: Arc::new(anthropic::Anthropic),
            default_base: Some("https://api.anthropic.com/v1"),
            key_env: Some("ANTHROPIC_API_KEY"),
            prepare: None,
        },
        "gemini" => ProviderSpec {
            provider: Arc::new(gemini::Gemini),
            default_base: Some("https://generativelanguage.googleapis.com/v1beta"),
            key_env: Some("GEMINI_API_KEY"),
            prepare: None,
        },
        "bedrock" => ProviderSpec {
            provider: Arc::new(bedrock::Bedrock),
            default_base: None,
            // Bedrock API keys (bearer tokens) instead of SigV4, when set.
            key_env: Some("AWS_BEARER_TOKEN_BEDROCK"),
            prepare: Some(bedrock::prepare),
        },
        _ => return None,
    })
}

/// Where a provider expects the deployment's key.
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer KEY` (OpenAI and compatible servers).
    Bearer,
    /// The raw key in a header of its own (`api-key`, `x-api-key`, `x-goog-api-key`).
    Named(HeaderName),
}

/// The headers of every upstream call: JSON content type, the key where the provider wants it,
/// then `provider_headers`, then the deployment's `extra_headers` (last, so config can override).
pub(crate) fn upstream_headers(
    upstream: &Upstream,
    key_header: KeyHeader,
    provider_headers: &[(HeaderName, HeaderValue)],
) -> Result<HeaderMap, ProviderError> {
    // Room for what is added later too (`traceparent`, `tracestate`, and the `host` and
    // `content-length` hyper adds): a map that grows rehashes every header it holds.
    let mut headers = HeaderMap::with_capacity(6 + provider_headers.len() + upstream.headers.len());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = &upstream.api_key {
        let (name, value) = match key_header {
            KeyHeader::Bearer => {
                let mut bearer = BytesMut::with_capacity(7 + key.expose().len());
                bearer.extend_from_slice(b"Bearer ");
                bearer.extend_from_slice(key.expose().as_bytes());
                (
                    AUTHORIZATION,
                    HeaderValue::from_maybe_shared(bearer.freeze()),
                )
            }
            KeyHeader::Named(name) => (name, HeaderValue::try_from(key.expose())),
        };
        let mut value = value.map_err(|_| {
            ProviderError::Unsupported(
                "the deployment's api_key is not a valid header value".into(),
            )
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    for (name, value) in provider_headers {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &upstream.headers {
        headers.insert(name.clone(), value.clone());
    }
    Ok(headers)
}

/// Every prefix [`lookup`] knows, for error messages.
pub const KNOWN_PREFIXES: &[&str] = &[
    "openai",
    "custom_openai",
    "hosted_vllm",
    "lm_studio",
    "llamafile",
    "groq",
    "mistral",
    "deepseek",
    "together_ai",
    "fireworks_ai",
    "openrouter",
    "xai",
    "perplexity",
    "azure",
    "anthropic",
    "gemini",
    "bedrock",
];

/// Replaces every occurrence of the deployment's key in an upstream message: some providers
/// echo the key they were given in their error text.
pub(crate) fn scrub(message: &str, upstream_key: Option<&Secret>) -> String {
    match upstream_key {
        Some(key) if key.expose().len() >= 4 && message.contains(key.expose()) => {
            message.replace(key.expose(), "****")
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_prefix_resolves() {
        for prefix in KNOWN_PREFIXES {
            let spec = lookup(prefix).unwrap();
            assert_eq!(spec.provider.name(), *prefix);
        }
        assert!(lookup("nope").is_none());
    }
}
