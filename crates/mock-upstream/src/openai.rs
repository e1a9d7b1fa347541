//! The OpenAI-compatible endpoints: chat completions, legacy completions, embeddings and models,
//! at OpenAI's paths (`/v1/...` and without `/v1`) and Azure OpenAI's
//! (`/openai/deployments/{deployment}/...`).
//!
//! Every API request goes through the same steps in [`handle`]: count/log it, run the fault
//! checks, answer, record the status.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::RuntimeConfig;
use crate::embedding::{self, EmbeddingItem};
use crate::error::ApiError;
use crate::faults;
use crate::shapes::{
    ChatCompletion, ChunkSequence, EmbeddingData, EmbeddingList, EmbeddingUsage, EmbeddingValues,
    ModelEntry, ModelList, StreamKind, TextChoice, TextCompletion, Usage, SYSTEM_FINGERPRINT,
};
use crate::state::{Admission, AppState};
use crate::stream::{SseBody, StreamGuard};
use crate::tokens::{self, PromptTokens, TextChars};
use crate::tools;

const DEFAULT_CHAT_MODEL: &str = "mock-gpt";
const DEFAULT_EMBEDDING_MODEL: &str = "mock-embedding";
/// Always listed by `/v1/models`, before the names requests have used.
const BUILTIN_MODELS: [&str; 3] = ["mock-gpt", "mock-gpt-mini", "mock-embedding"];
const DEFAULT_DIMENSIONS: u64 = 8;
const MAX_DIMENSIONS: u64 = 4096;
/// OpenAI's own limit on inputs per embeddings request.
const MAX_EMBEDDING_INPUTS: usize = 2048;
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every API handler needs from the request. The body is kept as a `Result` so that an
/// unreadable or oversized body still gets counted, logged and answered with OpenAI-shaped JSON.
pub struct ApiRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

impl<S: Send + Sync> FromRequest<S> for ApiRequest {
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Self, Infallible> {
        let (mut parts, body) = request.into_parts();
        let method = parts.method.clone();
        let uri = parts.uri.clone();
        let headers = std::mem::take(&mut parts.headers);
        // `Bytes` honours the `DefaultBodyLimit` set on the router (it lives in the extensions).
        let body = Bytes::from_request(Request::from_parts(parts, body), state).await;
        Ok(Self {
            method,
            uri,
            headers,
            body,
        })
    }
}

impl ApiRequest {
    /// Counts and (unless logging is off) logs the request.
    pub(crate) fn admit(&self, state: &AppState) -> Admission {
        let body: &[u8] = self.body.as_deref().unwrap_or_default();
        state.admit(&self.method, &self.uri, &self.headers, body)
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The body, or the error for one that could not be read (too large ...).
    pub(crate) fn body(&self) -> Result<&Bytes, ApiError> {
        self.body
            .as_ref()
            .map_err(|r| ApiError::new(r.status(), r.body_text()))
    }
}

#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

pub async fn chat_completions(State(state): State<AppState>, request: ApiRequest) -> Response {
    handle(state, Endpoint::Chat, Ok(None), request).await
}

pub async fn completions(State(state): State<AppState>, request: ApiRequest) -> Response {
    handle(state, Endpoint::Completions, Ok(None), request).await
}

pub async fn embeddings(State(state): State<AppState>, request: ApiRequest) -> Response {
    handle(state, Endpoint::Embeddings, Ok(None), request).await
}

type Deployment = Result<Path<String>, PathRejection>;

pub async fn azure_chat_completions(
    State(state): State<AppState>,
    deployment: Deployment,
    request: ApiRequest,
) -> Response {
    handle(
        state,
        Endpoint::Chat,
        deployment.map(|Path(d)| Some(d)),
        request,
    )
    .await
}

pub async fn azure_completions(
    State(state): State<AppState>,
    deployment: Deployment,
    request: ApiRequest,
) -> Response {
    let deployment = deployment.map(|Path(d)| Some(d));
    handle(state, Endpoint::Completions, deployment, request).await
}

pub async fn azure_embeddings(
    State(state): State<AppState>,
    deployment: Deployment,
    request: ApiRequest,
) -> Response {
    let deployment = deployment.map(|Path(d)| Some(d));
    handle(state, Endpoint::Embeddings, deployment, request).await
}

async fn handle(
    state: AppState,
    endpoint: Endpoint,
    deployment: Result<Option<String>, PathRejection>,
    request: ApiRequest,
) -> Response {
    let body_for_log: &[u8] = request.body.as_deref().unwrap_or_default();
    let admission = state.admit(
        &request.method,
        &request.uri,
        &request.headers,
        body_for_log,
    );
    let result = answer(&state, &admission, endpoint, deployment, request.body).await;
    finish(
        &state,
        &admission,
        result.unwrap_or_else(IntoResponse::into_response),
    )
}

async fn answer(
    state: &AppState,
    admission: &Admission,
    endpoint: Endpoint,
    deployment: Result<Option<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let deployment = deployment.map_err(|r| ApiError::bad_request(r.body_text(), None))?;
    let config = faults::gate(state).await?;
    let deployment = deployment.as_deref();
    match endpoint {
        Endpoint::Chat => chat(state, admission, config, &body, deployment),
        Endpoint::Completions => completion(state, admission, config, &body, deployment),
        Endpoint::Embeddings => embed(state, &body, deployment),
    }
}

/// Records the status in the log and stamps the request id, like OpenAI's `x-request-id`.
pub(crate) fn finish(state: &AppState, admission: &Admission, mut response: Response) -> Response {
    state.record_status(admission, response.status().as_u16());
    if let Ok(value) = HeaderValue::try_from(format!("req_mock_{}", admission.id)) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses a request body, turning failures into the 400 OpenAI would send.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request(
                format!("We could not parse the JSON body of your request: {e}"),
                None,
            )
        } else {
            ApiError::bad_request(format!("Invalid request body: {e}"), None)
        }
    })
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Only what the mock needs; every other field is accepted and ignored.
#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<MessageText>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    tools: Option<Vec<ChatTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
struct MessageText {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: TextChars,
}

#[derive(Deserialize)]
struct ChatTool {
    #[serde(default)]
    function: Option<ChatFunction>,
}

#[derive(Deserialize)]
struct ChatFunction {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
}

/// The tool call the mock makes for a chat request (see `tools.rs` for the rule).
fn plan_tool_call(request: &ChatRequest, messages: &[MessageText]) -> Option<tools::Call> {
    let offered: Vec<tools::Offered<'_>> = request
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.function.as_ref())
        .map(|f| tools::Offered {
            name: &f.name,
            schema: f.parameters.as_ref(),
        })
        .collect();
    let choice = match &request.tool_choice {
        Some(Value::String(mode)) if mode == "none" => tools::Choice::None,
        Some(Value::Object(choice)) => match choice
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => tools::Choice::Named(name),
            None => tools::Choice::Any,
        },
        _ => tools::Choice::Any,
    };
    let answering = messages.last().and_then(|m| m.role.as_deref()) == Some("tool");
    tools::plan(&offered, choice, answering)
}

/// A tool call as OpenAI answers it: `content: null`, `tool_calls`, `finish_reason:
/// "tool_calls"`; streamed as the call's first piece (id, name, empty arguments), the
/// arguments in two pieces, the finish chunk, the usage chunk if asked, `[DONE]`.
fn tool_call_answer(
    state: &AppState,
    admission: &Admission,
    config: &RuntimeConfig,
    request: &ChatRequest,
    model: &str,
    call: &tools::Call,
    prompt_tokens: u64,
) -> Response {
    let id = format!("chatcmpl-mock-{}", admission.id);
    let call_id = format!("call_mock_{}", admission.id);
    let created = unix_now();
    let arguments = call.arguments.to_string();
    let usage = Usage::new(
        prompt_tokens,
        tokens::estimate_tokens(arguments.len()).max(1),
    );
    if request.stream != Some(true) {
        return Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": call_id, "type": "function",
                                "function": {"name": call.name, "arguments": arguments}}],
                "refusal": null}, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": usage,
        }))
        .into_response();
    }
    let include_usage = request
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        crate::shapes::sse_event(&chunk)
    };
    let (first, second) = tools::split_arguments(&call.arguments);
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id,
               "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
        None,
    )];
    for piece in [first, second] {
        events.push(chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        ));
    }
    events.push(chunk(json!({}), Some("tool_calls")));
    if include_usage {
        events.push(crate::shapes::sse_event(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [], "usage": usage,
        })));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    sse_response(state, admission, config, events.into_iter())
}

fn pick_model(requested: Option<String>, deployment: Option<&str>, default: &str) -> String {
    requested
        .or_else(|| deployment.map(str::to_owned))
        .unwrap_or_else(|| default.to_owned())
}

fn chat(
    state: &AppState,
    admission: &Admission,
    config: Arc<RuntimeConfig>,
    body: &[u8],
    deployment: Option<&str>,
) -> Result<Response, ApiError> {
    let mut request: ChatRequest = parse_body(body)?;
    let messages = request
        .messages
        .take()
        .ok_or_else(|| ApiError::missing("messages"))?;
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "'messages' must contain at least one message.",
            Some("messages"),
        ));
    }
    let model = pick_model(request.model.clone(), deployment, DEFAULT_CHAT_MODEL);
    state.note_model(&model);
    let chars: usize = messages.iter().map(|m| m.content.0).sum();
    if let Some(call) = plan_tool_call(&request, &messages) {
        let prompt_tokens = tokens::prompt_tokens(chars);
        return Ok(tool_call_answer(
            state,
            admission,
            &config,
            &request,
            &model,
            &call,
            prompt_tokens,
        ));
    }
    let usage = Usage::new(
        tokens::prompt_tokens(chars),
        tokens::count_words(&config.reply),
    );
    let id = format!("chatcmpl-mock-{}", admission.id);
    let created = unix_now();
    if request.stream == Some(true) {
        let include_usage = wants_usage(request.stream_options);
        let events = ChunkSequence::new(
            StreamKind::Chat,
            id,
            created,
            model,
            Arc::clone(&config),
            include_usage,
            usage,
        );
        return Ok(sse_response(state, admission, &config, events));
    }
    Ok(Json(ChatCompletion::new(
        &id,
        created,
        &model,
        &config.reply,
        usage,
    ))
    .into_response())
}

fn wants_usage(options: Option<StreamOptions>) -> bool {
    options.and_then(|o| o.include_usage).unwrap_or(false)
}

/// A `text/event-stream` answer over pre-framed events, with the stream faults applied.
pub(crate) fn sse_response<E>(
    state: &AppState,
    admission: &Admission,
    config: &RuntimeConfig,
    events: E,
) -> Response
where
    E: ExactSizeIterator<Item = Bytes> + Unpin + Send + 'static,
{
    let guard = StreamGuard::new(state, admission.logged.then_some(admission.id));
    let body = SseBody::new(
        events,
        Duration::from_millis(config.chunk_delay_ms),
        config.fail_mid_stream_after,
        guard,
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<PromptTokens>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

fn completion(
    state: &AppState,
    admission: &Admission,
    config: Arc<RuntimeConfig>,
    body: &[u8],
    deployment: Option<&str>,
) -> Result<Response, ApiError> {
    let request: CompletionRequest = parse_body(body)?;
    let PromptTokens(prompt_tokens) = request.prompt.ok_or_else(|| ApiError::missing("prompt"))?;
    let model = pick_model(request.model, deployment, DEFAULT_CHAT_MODEL);
    state.note_model(&model);
    let usage = Usage::new(prompt_tokens.max(1), tokens::count_words(&config.reply));
    let id = format!("cmpl-mock-{}", admission.id);
    let created = unix_now();
    if request.stream == Some(true) {
        let include_usage = wants_usage(request.stream_options);
        let events = ChunkSequence::new(
            StreamKind::Text,
            id,
            created,
            model,
            Arc::clone(&config),
            include_usage,
            usage,
        );
        return Ok(sse_response(state, admission, &config, events));
    }
    Ok(Json(TextCompletion {
        id: &id,
        object: "text_completion",
        created,
        model: &model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices: &[TextChoice {
            text: &config.reply,
            index: 0,
            logprobs: None,
            finish_reason: Some("stop"),
        }],
        usage: Some(Some(usage)),
    })
    .into_response())
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<EmbeddingInput>,
    #[serde(default)]
    dimensions: Option<u64>,
    #[serde(default)]
    encoding_format: Option<String>,
}

/// The four shapes OpenAI accepts for `input`.
#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

impl EmbeddingInput {
    fn items(&self) -> Vec<EmbeddingItem<'_>> {
        match self {
            EmbeddingInput::Text(text) => vec![EmbeddingItem::Text(text)],
            EmbeddingInput::Texts(texts) => texts.iter().map(|t| EmbeddingItem::Text(t)).collect(),
            EmbeddingInput::Tokens(ids) => vec![EmbeddingItem::Tokens(ids)],
            EmbeddingInput::TokenLists(lists) => {
                lists.iter().map(|l| EmbeddingItem::Tokens(l)).collect()
            }
        }
    }
}

fn embed(state: &AppState, body: &[u8], deployment: Option<&str>) -> Result<Response, ApiError> {
    let request: EmbeddingRequest = parse_body(body)?;
    let input = request.input.ok_or_else(|| ApiError::missing("input"))?;
    let items = input.items();
    if items.is_empty() || items.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::bad_request(
            format!("'input' must contain between 1 and {MAX_EMBEDDING_INPUTS} items."),
            Some("input"),
        ));
    }
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(ApiError::bad_request(
            format!("'dimensions' must be between 1 and {MAX_DIMENSIONS}, got {dimensions}."),
            Some("dimensions"),
        ));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("'encoding_format' must be 'float' or 'base64', got '{other}'."),
                Some("encoding_format"),
            ))
        }
    };
    let model = pick_model(request.model, deployment, DEFAULT_EMBEDDING_MODEL);
    state.note_model(&model);
    // `dimensions` is at most MAX_DIMENSIONS, so this conversion cannot truncate.
    let dimensions = usize::try_from(dimensions).unwrap_or(DEFAULT_DIMENSIONS as usize);
    let prompt_tokens = items.iter().map(EmbeddingItem::tokens).sum();
    let data = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let vector = embedding::embed(*item, dimensions);
            EmbeddingData {
                object: "embedding",
                index,
                embedding: if base64 {
                    EmbeddingValues::Base64(embedding::to_base64(&vector))
                } else {
                    EmbeddingValues::Float(vector)
                },
            }
        })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model: &model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
    .into_response())
}

/// `GET /v1/models`: the built-in names plus every model name requests have used so far.
pub async fn list_models(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = state.admit(&request.method, &request.uri, &request.headers, b"");
    let seen = state.models_seen();
    let created = unix_now();
    let mut ids: Vec<&str> = BUILTIN_MODELS.to_vec();
    for model in &seen {
        if !ids.contains(&model.as_str()) {
            ids.push(model);
        }
    }
    let data = ids.into_iter().map(|id| model_entry(id, created)).collect();
    let response = Json(ModelList {
        object: "list",
        data,
    })
    .into_response();
    finish(&state, &admission, response)
}

/// `GET /v1/models/{model}`: the mock serves any model name, so every model exists.
pub async fn get_model(
    State(state): State<AppState>,
    model: Result<Path<String>, PathRejection>,
    request: ApiRequest,
) -> Response {
    let admission = state.admit(&request.method, &request.uri, &request.headers, b"");
    let response = match model {
        Ok(Path(model)) => Json(model_entry(&model, unix_now())).into_response(),
        Err(rejection) => ApiError::bad_request(rejection.body_text(), None).into_response(),
    };
    finish(&state, &admission, response)
}

fn model_entry(id: &str, created: u64) -> ModelEntry<'_> {
    ModelEntry {
        id,
        object: "model",
        created,
        owned_by: "switchyard-mock",
    }
}

/// Anything else: OpenAI's 404, and (outside `/__mock`) logged, so a test can see which wrong
/// path a gateway called.
pub async fn unknown_route(State(state): State<AppState>, request: ApiRequest) -> Response {
    let response = ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "Unknown request URL: {} {}. The mock upstream serves /v1/chat/completions, \
             /v1/completions, /v1/embeddings, /v1/models, /v1/messages and \
             /v1beta/models/{{model}}:generateContent.",
            request.method,
            request.uri.path()
        ),
    )
    .with_code("unknown_url")
    .into_response();
    log_unrouted(&state, request, response)
}

/// A known path with the wrong method.
pub async fn method_not_allowed(State(state): State<AppState>, request: ApiRequest) -> Response {
    let response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "Method {} is not allowed on {}.",
            request.method,
            request.uri.path()
        ),
    )
    .with_code("method_not_allowed")
    .into_response();
    log_unrouted(&state, request, response)
}

fn log_unrouted(state: &AppState, request: ApiRequest, response: Response) -> Response {
    if request.uri.path().starts_with("/__mock") {
        return response;
    }
    let body: &[u8] = request.body.as_deref().unwrap_or_default();
    let admission = state.admit(&request.method, &request.uri, &request.headers, body);
    finish(state, &admission, response)
}
