//! `POST /v1/responses`: OpenAI's Responses API, routed by `model` through the same model
//! groups, limits, budgets, guardrails and router as chat completions.
//!
//! Per deployment: OpenAI and Azure OpenAI deployments get the request natively (the client's
//! body with only `model` rewritten, streams passed through event by event); any other
//! deployment gets it translated to a chat request, and the answer (or each stream chunk)
//! translated back to a Response. The translations live in `providers/responses/`; this module
//! only calls them. `GET` and `DELETE /v1/responses/{id}` read and remove the responses the
//! gateway stored for `previous_response_id` (translated ones; see docs/responses-api.md).

use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::body::read_json;
use super::error::ApiError;
use super::sse::{self, Rendered};
use super::{dropped_params_header, finish, route_headers, served_headers, Reply};
use crate::auth::Principal;
use crate::guardrails;
use crate::pipeline::{Caller, RequestContext};
use crate::providers::anthropic::request::OpenAiDialect;
use crate::providers::http::{ChunkStream, EventStream};
use crate::providers::responses::native::{self, NativeStreamTap};
use crate::providers::responses::request::{to_chat, untranslated, Invalid};
use crate::providers::responses::response::{complete, new_id};
use crate::providers::responses::store::Conversations;
use crate::providers::responses::stream::ResponsesStreamEncoder;
use crate::providers::responses::wire::{Input, InputItem, ResponseObject, ResponsesRequest};
use crate::providers::ProviderError;
use crate::router::{BoxStream, Deployment, RequestOptions};
use crate::schema::{ChatCompletion, ChatRequest, Usage};
use crate::state::AppState;
use crate::telemetry::log_scope::within;

/// The most input items one request may carry (its own and a stored conversation's together):
/// far above any real conversation, and a bound on the work a hostile body can cause.
const MAX_INPUT_ITEMS: usize = 10_000;

pub async fn create(mut ctx: RequestContext, headers: HeaderMap, body: Body) -> Response {
    let scope = ctx.log_scope();
    let result = within(scope, handle(&mut ctx, &headers, body)).await;
    finish(ctx, result)
}

/// What a stored conversation is keyed to: the caller's key (its hash), never the key itself.
fn owner(principal: &Principal) -> String {
    match principal {
        Principal::Master => "master".to_owned(),
        Principal::Open => "open".to_owned(),
        Principal::Key(resolved) => format!("key:{}", resolved.key.token),
    }
}

/// The request as each kind of deployment gets it, made at most once however many are tried.
struct Prepared<'a> {
    request: &'a ResponsesRequest,
    /// The request's `metadata`: the gateway's (tags, feature ...; read by `admit` and, as on
    /// chat, never sent upstream), echoed on a translated Response as OpenAI echoes it.
    metadata: serde_json::Map<String, serde_json::Value>,
    /// The stored conversation `previous_response_id` names, when this instance has it.
    history: Option<Arc<[InputItem]>>,
    /// For native deployments: with a stored conversation, its items go in `input` (the
    /// upstream has never seen that id); otherwise the request as it came.
    native: OnceLock<ResponsesRequest>,
    strict: OnceLock<Result<ChatRequest, Invalid>>,
    compatible: OnceLock<Result<ChatRequest, Invalid>>,
}

impl<'a> Prepared<'a> {
    fn native(&self) -> &ResponsesRequest {
        let Some(history) = &self.history else {
            return self.request;
        };
        self.native.get_or_init(|| {
            let mut expanded = self.request.clone();
            // The gateway's item ids mean nothing to the upstream, which checks the ids it
            // is sent: the items go without them.
            let mut items: Vec<InputItem> = history
                .iter()
                .cloned()
                .map(|mut item| {
                    item.id = None;
                    item
                })
                .collect();
            items.extend(self.request.input_items());
            expanded.input = Some(Input::Items(items));
            expanded.previous_response_id = None;
            expanded
        })
    }

    /// The chat request for `deployment`: OpenAI's own API takes `max_completion_tokens`, the
    /// others `max_tokens` (which every translating provider reads).
    fn chat(&self, deployment: &Deployment) -> Result<&ChatRequest, ProviderError> {
        if let (Some(id), None) = (&self.request.previous_response_id, &self.history) {
            return Err(bad_request(
                format!(
                    "Previous response with id '{id}' not found: it expired, was made with \
                     another key or on another gateway instance, or was never stored"
                ),
                "previous_response_id",
                Some("previous_response_not_found"),
            ));
        }
        let dialect = deployment.provider.openai_dialect(&deployment.upstream);
        let slot = match dialect {
            OpenAiDialect::Strict => &self.strict,
            OpenAiDialect::Compatible => &self.compatible,
        };
        let translated = slot.get_or_init(|| {
            let history = self.history.as_deref().unwrap_or_default();
            let mut chat = to_chat(self.request, history)?;
            if dialect == OpenAiDialect::Compatible {
                chat.max_tokens = chat.max_completion_tokens.take();
            }
            Ok(chat)
        });
        translated
            .as_ref()
            .map_err(|invalid| bad_request(invalid.message.clone(), &invalid.param, None))
    }

    /// A Response to this request, not answered yet.
    fn started(&self, alias: &str) -> ResponseObject {
        let mut response = ResponseObject::started(
            self.request,
            new_id("resp"),
            crate::providers::translate::unix_now(),
            alias,
        );
        response.metadata.clone_from(&self.metadata);
        response
    }

    /// Every item of the conversation so far, this request's input last.
    fn conversation(&self) -> Vec<InputItem> {
        let mut items = self.history.as_deref().unwrap_or_default().to_vec();
        items.extend(self.request.input_items());
        items
    }
}

/// A 400 in OpenAI's shape, raised inside an attempt (the router neither retries nor falls
/// back on it).
fn bad_request(message: String, param: &str, code: Option<&str>) -> ProviderError {
    ProviderError::Status {
        status: 400,
        message,
        kind: Some("invalid_request_error".into()),
        code: code.map(str::to_owned),
        param: Some(param.to_owned()),
        retry_after: None,
    }
}

async fn handle(
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let mut request: ResponsesRequest = read_json(headers, body, ctx.max_request_bytes()).await?;
    validate(&request)?;
    // The response cache does not apply to this surface (docs/responses-api.md): its `cache`
    // control is checked and never forwarded.
    crate::cache::Controls::take_from(&mut request.extra, headers)?;
    let metadata = request.extra.get("metadata").cloned();
    let owner = owner(&ctx.principal);
    let now_ms = crate::auth::cache::now_ms();
    let mut history: Option<Vec<InputItem>> = request
        .previous_response_id
        .as_deref()
        .and_then(|id| ctx.conversations().get(id, &owner, now_ms))
        .map(|stored| stored.items.clone());
    let items = history.as_ref().map_or(0, |h| h.len())
        + match &request.input {
            Some(Input::Items(items)) => items.len(),
            _ => 1,
        };
    if items > MAX_INPUT_ITEMS {
        return Err(ApiError::bad_request(
            format!(
                "the conversation has {items} input items; at most {MAX_INPUT_ITEMS} are allowed"
            ),
            Some("input"),
        ));
    }
    let prompt_tokens = estimate_tokens(&request, history.as_deref());
    ctx.max_output_tokens = request.max_output_tokens;
    if let Some(trace) = &ctx.trace {
        trace.note_temperature(request.temperature.as_ref().and_then(|t| t.as_f64()));
    }
    let stream = request.is_stream();
    let user = request.user.clone();
    let mut options = ctx
        .admit(
            &request.model,
            stream,
            user.as_deref(),
            &mut request.extra,
            &|| prompt_tokens,
        )
        .await?;
    options.prompt_tokens = Some(prompt_tokens);
    ctx.prompt_tokens_estimate = prompt_tokens;
    // Stage 4: guardrails on the prompt as it will be sent, whichever way it goes, the stored
    // conversation included (its answers were stored as the client got them, PII given back).
    let mut guard = guardrails::select(ctx, &mut request.extra)?;
    guardrails::pre_call(ctx, &mut guard, |g| {
        pre_call(g, &mut request)?;
        match history.as_mut() {
            Some(items) => pre_call_items(g, items),
            None => Ok(()),
        }
    })
    .await?;
    let history: Option<Arc<[InputItem]>> = history.map(Into::into);
    let prepared = Prepared {
        request: &request,
        metadata: match metadata {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        },
        history,
        native: OnceLock::new(),
        strict: OnceLock::new(),
        compatible: OnceLock::new(),
    };
    let store = (request.store != Some(false)).then(|| (ctx.conversations().clone(), owner));
    if stream {
        return stream_reply(ctx, &prepared, &options, &guard, store).await;
    }
    whole_reply(ctx, &prepared, &options, guard, store).await
}

/// Stage 4 on a stored conversation's items.
fn pre_call_items(
    g: &mut guardrails::Run,
    items: &mut Vec<InputItem>,
) -> Result<(), guardrails::Blocked> {
    let Ok(mut value) = serde_json::to_value(&*items) else {
        return Ok(());
    };
    let result = g.pre_call_json(&mut value);
    if let Ok(masked) = serde_json::from_value(value) {
        *items = masked;
    }
    result
}

/// Stage 4 on the input and instructions, as JSON (native deployments get them as they are).
fn pre_call(
    g: &mut guardrails::Run,
    request: &mut ResponsesRequest,
) -> Result<(), guardrails::Blocked> {
    if let Some(input) = request.input.take() {
        let mut value = serde_json::to_value(&input).unwrap_or(serde_json::Value::Null);
        let result = g.pre_call_json(&mut value);
        request.input = Some(serde_json::from_value(value).unwrap_or(input));
        result?;
    }
    if let Some(instructions) = request.instructions.take() {
        let mut value = serde_json::Value::String(instructions);
        let result = g.pre_call_json(&mut value);
        request.instructions = value.as_str().map(str::to_owned);
        result?;
    }
    Ok(())
}

enum Answer {
    Native {
        body: Bytes,
        usage: Option<Usage>,
    },
    Translated {
        completion: ChatCompletion,
        dropped: Vec<String>,
    },
}

async fn whole_reply(
    ctx: &mut RequestContext,
    prepared: &Prepared<'_>,
    options: &RequestOptions,
    mut guard: guardrails::Run,
    store: Option<(Arc<Conversations>, String)>,
) -> Result<Reply, ApiError> {
    let config = ctx.config.clone();
    let http = ctx.http();
    // A post-call guardrail reads chat answers: with one, every deployment is translated.
    let native_allowed = !guard.wants_post_call();
    let request = prepared.request;
    let served = config
        .router
        .execute(&request.model, options, |deployment| async move {
            let call = deployment.call(http, None);
            let provider = &deployment.provider;
            if native_allowed {
                if let Some(native) = provider.responses(call, prepared.native()) {
                    let (body, usage) = native::whole(&native.await?, &deployment.model_name)?;
                    return Ok(Answer::Native { body, usage });
                }
            }
            let chat = prepared.chat(&deployment)?;
            let completion = provider
                .chat(call, chat)
                .await?
                .into_typed()
                .map_err(|err| ProviderError::InvalidResponse(format!("chat completion: {err}")))?;
            let mut dropped = untranslated(request);
            dropped.extend(provider.dropped_params(&deployment.upstream, chat));
            Ok(Answer::Translated {
                completion,
                dropped,
            })
        })
        .await?;
    ctx.served(&served);
    let (body, dropped) = match served.value {
        Answer::Native { body, usage } => {
            ctx.usage = usage;
            (body, Vec::new())
        }
        Answer::Translated {
            mut completion,
            dropped,
        } => {
            ctx.usage = completion.usage.clone();
            // Stage 8: guardrails on the answer (and the prompt's masked values given back).
            if guard.wants_post_call() {
                guard.post_call_chat(&mut completion)?;
            }
            if let Some(trace) = ctx.trace.as_ref().filter(|t| t.sampled) {
                trace.note_answer(&crate::schema::ChatAnswer::Typed(completion.clone()));
            }
            let mut response = prepared.started(&served.deployment.model_name);
            complete(&mut response, &completion);
            let body: Bytes = serde_json::to_vec(&response)
                .map_err(|err| {
                    tracing::warn!("the response does not serialize: {err}");
                    ApiError::Internal
                })?
                .into();
            if let Some((conversations, owner)) = store {
                let mut items = prepared.conversation();
                items.extend(response.output.iter().map(|item| item.to_input()));
                conversations.put(&owner, items, response, crate::auth::cache::now_ms());
            }
            (body, dropped)
        }
    };
    let mut response = super::json_answer(body);
    served_headers(&mut response, &served.deployment, served.attempts);
    route_headers(&mut response, &served.report);
    dropped_params_header(&mut response, &dropped);
    Ok(Reply::Whole(response))
}

/// One piece of a stream on its way to the client: rendered events (if any), the usage they
/// reported, and whether they carry model output (the router may fail over until then).
struct Frame {
    bytes: Option<Bytes>,
    usage: Option<Usage>,
    output: bool,
}

fn frame_has_output(frame: &Frame) -> bool {
    frame.output
}

fn frame_tokens(frame: &Frame) -> Option<u64> {
    frame.usage.as_ref().map(|u| u.total_tokens)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while this lock is held; a poisoned one still holds a usable value.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the attempt that ended up serving set up: the counter its events are numbered with,
/// and what translation dropped.
#[derive(Default)]
struct Attempt {
    seq: Option<Arc<AtomicU64>>,
    dropped: Vec<String>,
}

async fn stream_reply(
    ctx: &mut RequestContext,
    prepared: &Prepared<'_>,
    options: &RequestOptions,
    guard: &guardrails::Run,
    store: Option<(Arc<Conversations>, String)>,
) -> Result<Reply, ApiError> {
    let config = ctx.config.clone();
    let http = ctx.http();
    let attempt = Mutex::new(Attempt::default());
    let native_allowed = !guard.wants_post_call();
    let request = prepared.request;
    let served = config
        .router
        .execute_stream(
            &request.model,
            options,
            frame_has_output,
            frame_tokens,
            |deployment| {
                let (attempt, store) = (&attempt, store.clone());
                async move {
                    let alias = deployment.model_name.clone();
                    let call = deployment.call(http, options.stream_timeout);
                    let provider = &deployment.provider;
                    let seq = Arc::new(AtomicU64::new(0));
                    if native_allowed {
                        if let Some(native) = provider.responses_stream(call, prepared.native()) {
                            let events = native.await?;
                            *lock(attempt) = Attempt {
                                seq: Some(seq.clone()),
                                dropped: Vec::new(),
                            };
                            return Ok(native_frames(events, NativeStreamTap::new(alias, seq)));
                        }
                    }
                    let chat = prepared.chat(&deployment)?;
                    let mut dropped = untranslated(request);
                    dropped.extend(provider.dropped_params(&deployment.upstream, chat));
                    let mut chunks = provider.chat_stream(call, chat).await?;
                    // Stage 8 on a translated stream.
                    if guard.wants_post_call() {
                        chunks = guardrails::stream::chat(guard.clone(), chunks);
                    }
                    *lock(attempt) = Attempt {
                        seq: Some(seq.clone()),
                        dropped,
                    };
                    let response = prepared.started(&alias);
                    let encoder = ResponsesStreamEncoder::new(response, seq);
                    let on_done = store.map(|(conversations, owner)| {
                        let items = prepared.conversation();
                        Box::new(move |response: ResponseObject| {
                            let mut items = items;
                            items.extend(response.output.iter().map(|item| item.to_input()));
                            conversations.put(
                                &owner,
                                items,
                                response,
                                crate::auth::cache::now_ms(),
                            );
                        }) as OnDone
                    });
                    Ok(translated_frames(chunks, encoder, on_done))
                }
            },
        )
        .await?;
    ctx.served(&served);
    let Attempt { seq, dropped } = std::mem::take(&mut *lock(&attempt));
    let frames: Pin<Box<dyn Stream<Item = Rendered> + Send>> = Box::pin(
        served
            .value
            .map(|item| item.map(|frame| (frame.bytes, frame.usage))),
    );
    let mut stream = sse::responses_stream(frames, seq.unwrap_or_default());
    served_headers(&mut stream.response, &served.deployment, served.attempts);
    route_headers(&mut stream.response, &served.report);
    dropped_params_header(&mut stream.response, &dropped);
    Ok(Reply::Stream(stream))
}

/// Called with the whole Response when a translated stream completes (it is stored then).
type OnDone = Box<dyn FnOnce(ResponseObject) + Send>;

/// Chat chunks rendered as Responses events, opened with `response.created` and closed with
/// `response.completed` when the chunks end normally.
fn translated_frames(
    chunks: ChunkStream,
    encoder: ResponsesStreamEncoder,
    on_done: Option<OnDone>,
) -> BoxStream<Frame> {
    struct State {
        chunks: ChunkStream,
        encoder: ResponsesStreamEncoder,
        out: Vec<Bytes>,
        started: bool,
        done: bool,
        on_done: Option<OnDone>,
    }
    let state = State {
        chunks,
        encoder,
        out: Vec::new(),
        started: false,
        done: false,
        on_done,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            if state.done {
                return None;
            }
            if !state.started {
                state.started = true;
                state.encoder.start(&mut state.out);
            }
            let (usage, output) = match state.chunks.next().await {
                Some(Ok(chunk)) => {
                    state.encoder.push(&chunk, &mut state.out);
                    (chunk.usage.clone(), chunk.has_output())
                }
                Some(Err(err)) => {
                    state.done = true;
                    return Some((Err(err), state));
                }
                None => {
                    state.done = true;
                    let response = state.encoder.finish(&mut state.out);
                    if let Some(on_done) = state.on_done.take() {
                        on_done(response);
                    }
                    (state.encoder.usage().cloned(), true)
                }
            };
            let bytes = join(&mut state.out);
            Some((
                Ok(Frame {
                    bytes,
                    usage,
                    output,
                }),
                state,
            ))
        },
    ))
}

fn join(out: &mut Vec<Bytes>) -> Option<Bytes> {
    match out.len() {
        0 => None,
        1 => out.pop(),
        _ => {
            let mut joined = bytes::BytesMut::new();
            for piece in out.drain(..) {
                joined.extend_from_slice(&piece);
            }
            Some(joined.freeze())
        }
    }
}

/// A native stream forwarded event by event (each with the alias as `model` where a Response
/// is carried); a body that ends before its terminal event ends with an error event.
fn native_frames(events: EventStream, tap: NativeStreamTap) -> BoxStream<Frame> {
    struct State {
        events: EventStream,
        tap: NativeStreamTap,
        done: bool,
    }
    let state = State {
        events,
        tap,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if state.done {
                    return None;
                }
                let item = match state.events.next().await {
                    Some(Ok(event)) => match state.tap.event(&event) {
                        Ok(Some(passed)) => Ok(Frame {
                            bytes: Some(passed.bytes),
                            usage: passed.usage,
                            output: passed.output,
                        }),
                        Ok(None) => continue,
                        Err(err) => {
                            state.done = true;
                            Err(err)
                        }
                    },
                    Some(Err(err)) => {
                        state.done = true;
                        Err(err)
                    }
                    None => {
                        state.done = true;
                        match state.tap.finish() {
                            Ok(()) => return None,
                            Err(err) => Err(err),
                        }
                    }
                };
                return Some((item, state));
            }
        },
    ))
}

/// ceil(characters / 4) over the instructions, the input and the stored conversation.
fn estimate_tokens(request: &ResponsesRequest, history: Option<&[InputItem]>) -> u64 {
    let mut chars = request.instructions.as_ref().map_or(0, String::len);
    if let Some(input) = &request.input {
        chars += serde_json::to_string(input).map_or(0, |s| s.len());
    }
    if let Some(history) = history {
        chars += serde_json::to_string(history).map_or(0, |s| s.len());
    }
    for tool in request.tools.iter().flatten() {
        chars += serde_json::to_string(tool).map_or(0, |s| s.len());
    }
    (chars as u64).div_ceil(4).max(1)
}

/// What serde cannot express, with OpenAI's wording where it has one.
fn validate(request: &ResponsesRequest) -> Result<(), ApiError> {
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`model` must not be empty",
            Some("model"),
        ));
    }
    match &request.input {
        None if request.previous_response_id.is_none() => Err(ApiError::bad_request(
            "Missing required parameter: 'input'.",
            Some("input"),
        )),
        Some(Input::Items(items)) if items.is_empty() && request.previous_response_id.is_none() => {
            Err(ApiError::bad_request(
                "`input` must contain at least one item",
                Some("input"),
            ))
        }
        _ => Ok(()),
    }
}

/// `GET /v1/responses/{id}`: a response this gateway stored (translated deployments), for the
/// key that made it.
pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let now_ms = crate::auth::cache::now_ms();
    match state
        .conversations
        .get(&id, &owner(&caller.principal), now_ms)
    {
        Some(stored) => Json(&stored.response).into_response(),
        None => not_found(&id),
    }
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let now_ms = crate::auth::cache::now_ms();
    if state
        .conversations
        .remove(&id, &owner(&caller.principal), now_ms)
    {
        Json(serde_json::json!({"id": id, "object": "response.deleted", "deleted": true}))
            .into_response()
    } else {
        not_found(&id)
    }
}

fn not_found(id: &str) -> Response {
    crate::pipeline::Surface::OpenAi.render(ApiError::NotFound(format!(
        "Response with id '{id}' not found."
    )))
}
