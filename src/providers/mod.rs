//! Providers: one file per provider family, each behind [`Provider`]. A provider only translates
//! (canonical request → upstream HTTP request, upstream bytes → canonical response); the HTTP
//! client (`http.rs`) sends, and the router decides where. Providers know nothing of keys,
//! budgets or routing.

pub mod anthropic;
mod azure;
pub mod bedrock;
pub mod cohere;
mod error;
pub mod eventstream;
pub mod framing;
pub mod gemini;
pub mod http;
mod mistral;
pub mod mock;
pub mod ollama;
mod openai;
mod over_http;
pub mod params;
pub mod passthrough;
pub mod responses;
pub mod sse;
#[cfg(test)]
mod testing;
pub mod translate;
pub mod vertex;

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

/// Turns one event of a streamed pass-through answer into the client's, `None` at the end.
pub type PassthroughDecoder =
    Box<dyn FnMut(&str) -> Result<Option<PassthroughResponse>, ProviderError> + Send>;

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
    /// LiteLLM's `additional_drop_params`: removed from every request before translation.
    pub additional_drop_params: Vec<String>,
    /// LiteLLM's `allowed_openai_params`: never refused; sent in the upstream body as the client
    /// wrote them.
    pub allowed_openai_params: Vec<String>,
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

    /// [`Credentials::authorize`] for a request of any method (the pass-through routes forward
    /// GETs and DELETEs too). Only credentials that sign the method (SigV4) need more than the
    /// default.
    fn authorize_method<'a>(
        &'a self,
        _method: &'a str,
        request: &'a mut UpstreamRequest,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.authorize(request)
    }
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

    /// A Responses API request sent natively (the answer's bytes as the upstream sent them),
    /// for providers that serve `/responses` (OpenAI, Azure OpenAI); `None` means: translate
    /// it to a chat request.
    fn responses<'a>(
        &'a self,
        _call: Call<'a>,
        _request: &'a responses::wire::ResponsesRequest,
    ) -> Option<BoxFuture<'a, Result<Bytes, ProviderError>>> {
        None
    }

    /// [`Provider::responses`] streamed: the upstream's events as they come.
    fn responses_stream<'a>(
        &'a self,
        _call: Call<'a>,
        _request: &'a responses::wire::ResponsesRequest,
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

/// Endpoints whose bodies pass through with only `model` rewritten (OpenAI-format upstreams),
/// or that a provider maps to its own (Ollama's and Cohere's embeddings, Cohere's rerank).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassthroughEndpoint {
    Completions,
    Embeddings,
    /// Cohere's rerank shape (`query`, `documents`, `top_n`), which vLLM, Jina and other
    /// OpenAI-compatible servers also serve at `/rerank`.
    Rerank,
}

impl PassthroughEndpoint {
    pub fn path(self) -> &'static str {
        match self {
            PassthroughEndpoint::Completions => "completions",
            PassthroughEndpoint::Embeddings => "embeddings",
            PassthroughEndpoint::Rerank => "rerank",
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

    /// How many inputs one embeddings call of this upstream takes, when it limits them (Titan
    /// on Bedrock embeds one text a call): a longer `input` list is sent as several calls and
    /// their answers joined (`over_http.rs`). `None`: any number.
    fn embeddings_per_call(&self, _upstream: &Upstream) -> Option<usize> {
        None
    }

    /// Reads a pass-through answer. OpenAI-format upstreams' bodies are kept as sent (only
    /// `model` is rewritten later); providers with their own embeddings format translate theirs.
    fn passthrough_response(
        &self,
        endpoint: PassthroughEndpoint,
        _request: &PassthroughRequest,
        body: &[u8],
    ) -> Result<PassthroughResponse, ProviderError> {
        serde_json::from_slice::<PassthroughResponse>(body).map_err(|err| {
            ProviderError::InvalidResponse(format!("{} response: {err}", endpoint.path()))
        })
    }

    /// Reads the events of a streamed pass-through answer (`/v1/completions`), each to an
    /// event for the client or `None` at the end marker. OpenAI-format upstreams' events pass as
    /// they are; others translate theirs (the decoder may keep state across events).
    fn passthrough_stream_decoder(&self, _endpoint: PassthroughEndpoint) -> PassthroughDecoder {
        Box::new(|data: &str| {
            if data.trim() == "[DONE]" {
                return Ok(None);
            }
            serde_json::from_str::<PassthroughResponse>(data)
                .map(Some)
                .map_err(|err| ProviderError::InvalidResponse(format!("stream event: {err}")))
        })
    }

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

    /// A request to the upstream's own Responses API (`/responses`), for providers that serve
    /// it: the client's body with `model` rewritten. `None` for providers that need it
    /// translated to a chat request.
    fn native_responses_request(
        &self,
        _upstream: &Upstream,
        _request: &responses::wire::ResponsesRequest,
    ) -> Option<Result<UpstreamRequest, ProviderError>> {
        None
    }
}

/// What the registry knows about a provider prefix.
pub struct ProviderSpec {
    pub provider: Arc<dyn Provider>,
    /// Used when the deployment sets no `api_base`.
    pub default_base: Option<&'static str>,
    /// Environment variables read, in order, when the deployment sets no `api_key` (LiteLLM's
    /// names for the provider; the first one set wins).
    pub key_env: &'static [&'static str],
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
    /// The whole base URL, `api_base` already taken into account: wins over both (Vertex AI,
    /// where `api_base` is a host and the project's path follows it).
    pub base_url: Option<String>,
    pub credentials: Option<Arc<dyn Credentials>>,
    /// The provider for this deployment when it depends on the model (Vertex AI serves Gemini
    /// and Claude, each in its own format); `None` keeps the registry's.
    pub provider: Option<Arc<dyn Provider>>,
}

/// The provider registry: one line per provider prefix. Default bases and key variables are
/// LiteLLM's (`get_llm_provider_logic.py` and each provider's config), so a LiteLLM config
/// that relies on them works unchanged.
pub fn lookup(prefix: &str) -> Option<ProviderSpec> {
    let spec = |provider: Arc<dyn Provider>,
                default_base: Option<&'static str>,
                key_env: &'static [&'static str]| ProviderSpec {
        provider,
        default_base,
        key_env,
        prepare: None,
    };
    let openai = |name: &'static str,
                  default_base: Option<&'static str>,
                  key_env: &'static [&'static str]| {
        spec(
            Arc::new(openai::OpenAiCompatible { name }),
            default_base,
            key_env,
        )
    };
    Some(match prefix {
        "openai" => openai(
            "openai",
            Some("https://api.openai.com/v1"),
            &["OPENAI_API_KEY"],
        ),
        // LiteLLM's name for OpenAI's legacy completions models (`gpt-3.5-turbo-instruct`).
        "text-completion-openai" => openai(
            "text-completion-openai",
            Some("https://api.openai.com/v1"),
            &["OPENAI_API_KEY"],
        ),
        "custom_openai" => openai("custom_openai", None, &[]),
        "hosted_vllm" => openai("hosted_vllm", None, &["HOSTED_VLLM_API_KEY"]),
        "lm_studio" => openai(
            "lm_studio",
            Some("http://localhost:1234/v1"),
            &["LM_STUDIO_API_KEY"],
        ),
        "llamafile" => openai("llamafile", Some("http://127.0.0.1:8080/v1"), &[]),
        "groq" => openai(
            "groq",
            Some("https://api.groq.com/openai/v1"),
            &["GROQ_API_KEY"],
        ),
        "mistral" => spec(
            Arc::new(mistral::Mistral { name: "mistral" }),
            Some("https://api.mistral.ai/v1"),
            &["MISTRAL_API_KEY"],
        ),
        "codestral" => spec(
            Arc::new(mistral::Mistral { name: "codestral" }),
            Some("https://codestral.mistral.ai/v1"),
            &["CODESTRAL_API_KEY"],
        ),
        // LiteLLM's default: the beta base, which serves everything `/v1` does.
        "deepseek" => openai(
            "deepseek",
            Some("https://api.deepseek.com/beta"),
            &["DEEPSEEK_API_KEY"],
        ),
        "together_ai" => openai(
            "together_ai",
            Some("https://api.together.ai/v1"),
            &[
                "TOGETHER_API_KEY",
                "TOGETHER_AI_API_KEY",
                "TOGETHERAI_API_KEY",
            ],
        ),
        "fireworks_ai" => openai(
            "fireworks_ai",
            Some("https://api.fireworks.ai/inference/v1"),
            &[
                "FIREWORKS_API_KEY",
                "FIREWORKS_AI_API_KEY",
                "FIREWORKSAI_API_KEY",
                "FIREWORKS_AI_TOKEN",
            ],
        ),
        "openrouter" => openai(
            "openrouter",
            Some("https://openrouter.ai/api/v1"),
            &["OPENROUTER_API_KEY", "OR_API_KEY"],
        ),
        "xai" => openai("xai", Some("https://api.x.ai/v1"), &["XAI_API_KEY"]),
        "perplexity" => openai(
            "perplexity",
            Some("https://api.perplexity.ai"),
            &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        ),
        "cerebras" => openai(
            "cerebras",
            Some("https://api.cerebras.ai/v1"),
            &["CEREBRAS_API_KEY"],
        ),
        "deepinfra" => openai(
            "deepinfra",
            Some("https://api.deepinfra.com/v1/openai"),
            &["DEEPINFRA_API_KEY"],
        ),
        "azure" => spec(Arc::new(azure::Azure), None, &["AZURE_API_KEY"]),
        "anthropic" => spec(
            Arc::new(anthropic::Anthropic),
            Some("https://api.anthropic.com/v1"),
            &["ANTHROPIC_API_KEY"],
        ),
        "gemini" => spec(
            Arc::new(gemini::Gemini),
            Some("https://generativelanguage.googleapis.com/v1beta"),
            &["GEMINI_API_KEY"],
        ),
        "cohere" => spec(
            Arc::new(cohere::Cohere { name: "cohere" }),
            Some(cohere::DEFAULT_BASE),
            &["COHERE_API_KEY"],
        ),
        "cohere_chat" => spec(
            Arc::new(cohere::Cohere {
                name: "cohere_chat",
            }),
            Some(cohere::DEFAULT_BASE),
            &["COHERE_API_KEY"],
        ),
        "ollama" => spec(
            Arc::new(ollama::Ollama::generate()),
            Some(ollama::DEFAULT_BASE),
            &["OLLAMA_API_KEY"],
        ),
        "ollama_chat" => spec(
            Arc::new(ollama::Ollama::chat()),
            Some(ollama::DEFAULT_BASE),
            &["OLLAMA_API_KEY"],
        ),
        "bedrock" => ProviderSpec {
            provider: Arc::new(bedrock::Bedrock),
            default_base: None,
            // Bedrock API keys (bearer tokens) instead of SigV4, when set.
            key_env: &["AWS_BEARER_TOKEN_BEDROCK"],
            prepare: Some(bedrock::prepare),
        },
        "vertex_ai" => ProviderSpec {
            provider: Arc::new(vertex::Vertex::new("vertex_ai", vertex::Kind::Gemini)),
            default_base: None,
            key_env: &[],
            prepare: Some(vertex::prepare),
        },
        // LiteLLM's spelling for Vertex's beta API (`v1beta1`).
        "vertex_ai_beta" => ProviderSpec {
            provider: Arc::new(vertex::Vertex::new("vertex_ai_beta", vertex::Kind::Gemini)),
            default_base: None,
            key_env: &[],
            prepare: Some(vertex::prepare),
        },
        _ => return None,
    })
}

/// A request body as JSON. Encoding a wire type fails only on a bug (a map with non-string
/// keys), reported as a request the provider cannot take.
pub(crate) fn json_body(value: &impl serde::Serialize) -> Result<Bytes, ProviderError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| ProviderError::Unsupported(format!("cannot encode the request: {err}")))
}

/// What a provider answers for a `/v1/...` endpoint it does not have.
pub(crate) fn no_endpoint(provider: &str, endpoint: PassthroughEndpoint) -> ProviderError {
    ProviderError::Unsupported(format!(
        "provider `{provider}` has no /v1/{} endpoint",
        endpoint.path()
    ))
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
    "text-completion-openai",
    "custom_openai",
    "hosted_vllm",
    "lm_studio",
    "llamafile",
    "groq",
    "mistral",
    "codestral",
    "deepseek",
    "together_ai",
    "fireworks_ai",
    "openrouter",
    "xai",
    "perplexity",
    "cerebras",
    "deepinfra",
    "azure",
    "anthropic",
    "gemini",
    "cohere",
    "cohere_chat",
    "ollama",
    "ollama_chat",
    "bedrock",
    "vertex_ai",
    "vertex_ai_beta",
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

    /// Base URL and key variables of the OpenAI-compatible clouds, as LiteLLM has them.
    #[test]
    fn clouds_resolve_to_litellm_bases_and_keys() {
        let expected: &[(&str, Option<&str>, &[&str])] = &[
            (
                "openai",
                Some("https://api.openai.com/v1"),
                &["OPENAI_API_KEY"],
            ),
            (
                "text-completion-openai",
                Some("https://api.openai.com/v1"),
                &["OPENAI_API_KEY"],
            ),
            (
                "groq",
                Some("https://api.groq.com/openai/v1"),
                &["GROQ_API_KEY"],
            ),
            (
                "mistral",
                Some("https://api.mistral.ai/v1"),
                &["MISTRAL_API_KEY"],
            ),
            (
                "codestral",
                Some("https://codestral.mistral.ai/v1"),
                &["CODESTRAL_API_KEY"],
            ),
            (
                "deepseek",
                Some("https://api.deepseek.com/beta"),
                &["DEEPSEEK_API_KEY"],
            ),
            (
                "together_ai",
                Some("https://api.together.ai/v1"),
                &[
                    "TOGETHER_API_KEY",
                    "TOGETHER_AI_API_KEY",
                    "TOGETHERAI_API_KEY",
                ],
            ),
            (
                "fireworks_ai",
                Some("https://api.fireworks.ai/inference/v1"),
                &[
                    "FIREWORKS_API_KEY",
                    "FIREWORKS_AI_API_KEY",
                    "FIREWORKSAI_API_KEY",
                    "FIREWORKS_AI_TOKEN",
                ],
            ),
            (
                "openrouter",
                Some("https://openrouter.ai/api/v1"),
                &["OPENROUTER_API_KEY", "OR_API_KEY"],
            ),
            ("xai", Some("https://api.x.ai/v1"), &["XAI_API_KEY"]),
            (
                "perplexity",
                Some("https://api.perplexity.ai"),
                &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
            ),
            (
                "cerebras",
                Some("https://api.cerebras.ai/v1"),
                &["CEREBRAS_API_KEY"],
            ),
            (
                "deepinfra",
                Some("https://api.deepinfra.com/v1/openai"),
                &["DEEPINFRA_API_KEY"],
            ),
            ("hosted_vllm", None, &["HOSTED_VLLM_API_KEY"]),
            (
                "cohere",
                Some("https://api.cohere.com"),
                &["COHERE_API_KEY"],
            ),
            (
                "ollama_chat",
                Some("http://localhost:11434"),
                &["OLLAMA_API_KEY"],
            ),
        ];
        for (prefix, base, keys) in expected {
            let spec = lookup(prefix).unwrap();
            assert_eq!(spec.default_base, *base, "{prefix}");
            assert_eq!(spec.key_env, *keys, "{prefix}");
        }
    }
}
