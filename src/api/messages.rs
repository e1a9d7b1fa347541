//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API, routed by
//! `model` through the same model groups as the OpenAI surface.
//!
//! Per deployment: an Anthropic deployment gets the request natively (the client's body with
//! only `model` rewritten, and its `anthropic-version` / `anthropic-beta` headers); any other
//! deployment gets it translated to the OpenAI form, and the answer (or each stream chunk)
//! translated back. The translations live in `providers/anthropic/`; this module only calls
//! them. Errors on this surface are Anthropic-shaped.

use std::pin::Pin;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::body::read_json;
use super::error::ApiError;
use super::sse::{self, Rendered};
use super::{cached, dropped_params_header, finish, route_headers, served_headers, Reply};
use crate::cache::message_stream::MessageRecorder;
use crate::cache::Pending;
use crate::guardrails;
use crate::pipeline::RequestContext;
use crate::providers::anthropic::request::{to_openai, OpenAiDialect};
use crate::providers::anthropic::response::{to_message, usage_to_openai};
use crate::providers::anthropic::stream::{MessagesStreamEncoder, NativeStreamTap};
use crate::providers::anthropic::wire::{
    MessageResponse, MessagesRequest, StreamEvent, TokenCount,
};
use crate::providers::anthropic::{ClientHeaders, MessagesEndpoint};
use crate::providers::http::{ChunkStream, EventStream};
use crate::providers::params::Dropped;
use crate::providers::ProviderError;
use crate::router::{BoxStream, Deployment, RequestOptions};
use crate::schema::{ChatRequest, Usage};
use crate::telemetry::log_scope::within;

pub async fn messages(mut ctx: RequestContext, headers: HeaderMap, body: Body) -> Response {
    let scope = ctx.log_scope();
    let result = within(scope, create(&mut ctx, &headers, body)).await;
    finish(ctx, result)
}

async fn create(
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let mut request: MessagesRequest = read_json(headers, body, ctx.max_request_bytes()).await?;
    validate(&request, MessagesEndpoint::Create)?;
    let cache_controls = crate::cache::Controls::take_from(&mut request.extra, headers)?;
    let (options, mut guard) = admit(ctx, &mut request).await?;
    let client = client_headers(headers);
    let config = ctx.config.clone();
    // Stage 5: the response cache, keyed (as for chat) on the prompt as the guardrails left
    // it, and skipped by a request with a post-call guardrail (docs/caching.md).
    let mut pending = None;
    if let Some(cache) = config.cache.as_ref().filter(|_| !guard.wants_post_call()) {
        let canonical = crate::cache::key::messages_canonical(
            &mut request,
            [
                client.version.as_ref().map(HeaderValue::as_bytes),
                client.beta.as_ref().map(HeaderValue::as_bytes),
            ],
        );
        let lookup = cache
            .lookup(
                crate::cache::Endpoint::Messages,
                &request.model,
                &canonical,
                &cache_controls,
                request.is_stream(),
                ctx.deadline,
                &*config,
            )
            .await;
        match cached::messages(ctx, lookup, request.is_stream()) {
            cached::Outcome::Answered(reply) => return Ok(reply),
            cached::Outcome::Upstream(miss) => pending = miss,
        }
    }
    let translations = Translations::new(&request);
    if request.is_stream() {
        return stream(
            ctx,
            &request,
            &options,
            &client,
            &translations,
            &guard,
            pending,
        )
        .await;
    }
    let http = ctx.http();
    let served = config
        .router
        .execute(&request.model, &options, |deployment| {
            let (request, client, translations) = (&request, &client, &translations);
            async move {
                let call = deployment.call(http, None);
                let provider = &deployment.provider;
                if let Some(native) =
                    provider.messages(call, MessagesEndpoint::Create, request, client)
                {
                    let mut message: MessageResponse = parse_native(&native.await?, "message")?;
                    message.model.clone_from(&deployment.model_name);
                    return Ok(Answer {
                        usage: Some(usage_to_openai(&message.usage)),
                        message,
                        dropped: Vec::new(),
                    });
                }
                let (chat, mut dropped) = translations.get(&deployment)?;
                let completion = provider
                    .chat(call, chat)
                    .await?
                    .into_typed()
                    .map_err(|err| {
                        ProviderError::InvalidResponse(format!("chat completion: {err}"))
                    })?;
                dropped.extend(provider.dropped_params(&deployment.upstream, chat));
                Ok(Answer::from_completion(completion, &deployment, dropped))
            }
        })
        .await?;
    ctx.served(&served);
    let mut answer = served.value;
    ctx.usage = answer.usage;
    // Stage 8: guardrails on the answer (and the prompt's masked values given back).
    if guard.wants_post_call() {
        guard.post_call_message(&mut answer.message)?;
    }
    let body: Bytes = serde_json::to_vec(&answer.message)
        .map_err(|err| {
            tracing::warn!("the answer does not serialize: {err}");
            ApiError::Internal
        })?
        .into();
    let cached = pending.is_some();
    if let Some(pending) = pending {
        pending.complete(body.clone(), &served.deployment.id);
    }
    let mut response = super::json_answer(body);
    if cached {
        cached::mark_miss(&mut response);
    }
    served_headers(&mut response, &served.deployment, served.attempts);
    route_headers(&mut response, &served.report);
    dropped_params_header(&mut response, &answer.dropped);
    Ok(Reply::Whole(response))
}

/// The gateway controls a client may put in the body (`fallbacks`, `timeout` ..., as on the
/// OpenAI surface), and the prompt size for the router, which cannot estimate a body it does
/// not know.
async fn admit(
    ctx: &mut RequestContext,
    request: &mut MessagesRequest,
) -> Result<(RequestOptions, guardrails::Run), ApiError> {
    // LiteLLM's rule for this route: `metadata` is Anthropic's own (sent upstream; its
    // `user_id` is the end user), and the gateway's metadata (tags, feature, tier) comes as
    // `litellm_metadata`, read as `metadata` is on the OpenAI routes and never sent upstream.
    let user = request.metadata.as_ref().and_then(|m| m.user_id.clone());
    if let Some(ours) = request.extra.remove("litellm_metadata") {
        request.extra.insert("metadata".to_owned(), ours);
    }
    let prompt_tokens = estimate_tokens(request);
    ctx.max_output_tokens = request.max_tokens;
    if let Some(trace) = &ctx.trace {
        trace.note_temperature(request.temperature.as_ref().and_then(|t| t.as_f64()));
    }
    let mut options = ctx
        .admit(
            &request.model,
            request.is_stream(),
            user.as_deref(),
            &mut request.extra,
            &|| prompt_tokens,
        )
        .await?;
    options.prompt_tokens = Some(prompt_tokens);
    ctx.prompt_tokens_estimate = prompt_tokens;
    // Stage 4: guardrails on the prompt as it will be sent (count_tokens sends it too).
    let mut guard = guardrails::select(ctx, &mut request.extra)?;
    guardrails::pre_call(ctx, &mut guard, |g| g.pre_call_messages(request)).await?;
    Ok((options, guard))
}

/// A whole answer and what it cost (`None`: the upstream reported no usage; the cost is then
/// estimated).
struct Answer {
    message: MessageResponse,
    usage: Option<Usage>,
    dropped: Vec<String>,
}

impl Answer {
    fn from_completion(
        completion: crate::schema::ChatCompletion,
        deployment: &Deployment,
        dropped: Vec<String>,
    ) -> Self {
        let usage = completion.usage.clone();
        Answer {
            message: to_message(completion, &deployment.model_name),
            usage,
            dropped,
        }
    }
}

/// The OpenAI form of the request, made at most once per dialect however many deployments are
/// tried (and never for a group of Anthropic deployments).
struct Translations<'a> {
    request: &'a MessagesRequest,
    strict: OnceLock<Result<(ChatRequest, Vec<String>), ProviderError>>,
    compatible: OnceLock<Result<(ChatRequest, Vec<String>), ProviderError>>,
}

impl<'a> Translations<'a> {
    fn new(request: &'a MessagesRequest) -> Self {
        Translations {
            request,
            strict: OnceLock::new(),
            compatible: OnceLock::new(),
        }
    }

    /// The request for `deployment`, and what translation dropped.
    fn get(&self, deployment: &Deployment) -> Result<(&ChatRequest, Vec<String>), ProviderError> {
        let dialect = deployment.provider.openai_dialect(&deployment.upstream);
        let slot = match dialect {
            OpenAiDialect::Strict => &self.strict,
            OpenAiDialect::Compatible => &self.compatible,
        };
        let drop_params = deployment.upstream.drop_params;
        let translated = slot.get_or_init(|| {
            let mut dropped = Dropped::new(deployment.provider.name(), drop_params);
            let chat = to_openai(self.request, dialect, &mut dropped)?;
            Ok((chat, dropped.into_names()))
        });
        match translated {
            Ok((chat, dropped)) => Ok((chat, dropped.clone())),
            Err(err) => Err(err.clone()),
        }
    }
}

/// One piece of an Anthropic stream on its way to the client: rendered events (if any), the
/// usage they reported, and whether they carry model output (the router may still fail over
/// to another deployment until the first piece that does).
struct Frame {
    bytes: Option<Bytes>,
    usage: Option<Usage>,
    output: bool,
    /// The whole answer, on the last frame of a stream recorded for the cache (one that ended
    /// with `message_stop`).
    recorded: Option<Box<MessageResponse>>,
}

/// Puts a stream's answer together for the cache, while it fits in `limit` bytes.
struct Recording {
    recorder: MessageRecorder,
    limit: usize,
}

impl Recording {
    fn new(limit: Option<usize>) -> Option<Recording> {
        limit.map(|limit| Recording {
            recorder: MessageRecorder::default(),
            limit,
        })
    }
}

/// Records `event`; gives up the recording for good when it cannot be stored.
fn record_event(recording: &mut Option<Recording>, event: &StreamEvent) {
    if let Some(r) = recording {
        if !r.recorder.record(event, r.limit) {
            *recording = None;
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while this lock is held; a poisoned one still holds a usable list.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn frame_has_output(frame: &Frame) -> bool {
    frame.output
}

fn frame_tokens(frame: &Frame) -> Option<u64> {
    frame.usage.as_ref().map(|u| u.total_tokens)
}

async fn stream(
    ctx: &mut RequestContext,
    request: &MessagesRequest,
    options: &RequestOptions,
    client: &ClientHeaders,
    translations: &Translations<'_>,
    guard: &guardrails::Run,
    pending: Option<Pending>,
) -> Result<Reply, ApiError> {
    // Each attempt records its stream when the answer is to be cached; the served one hands it
    // to the cache at its end.
    let record = pending.as_ref().map(Pending::max_entry_bytes);
    // What translation dropped for the attempt that ended up serving (the last one).
    let dropped = std::sync::Mutex::new(Vec::new());
    let config = ctx.config.clone();
    let http = ctx.http();
    let served = config
        .router
        .execute_stream(
            &request.model,
            options,
            frame_has_output,
            frame_tokens,
            |deployment| {
                let dropped = &dropped;
                async move {
                    let alias = deployment.model_name.clone();
                    let call = deployment.call(http, options.stream_timeout);
                    let provider = &deployment.provider;
                    if let Some(native) = provider.messages_stream(call, request, client) {
                        let events = native.await?;
                        lock(dropped).clear();
                        // Stage 8 on a native stream, event by event.
                        let guarded = guard
                            .wants_post_call()
                            .then(|| guardrails::stream::AnthropicEvents::new(guard.clone()));
                        return Ok(native_frames(events, alias, guarded, record));
                    }
                    let (chat, mut names) = translations.get(&deployment)?;
                    names.extend(provider.dropped_params(&deployment.upstream, chat));
                    *lock(dropped) = names;
                    let mut chunks = provider.chat_stream(call, chat).await?;
                    // Stage 8 on a translated stream (native Anthropic streams: see
                    // docs/guardrails.md).
                    if guard.wants_post_call() {
                        chunks = guardrails::stream::chat(guard.clone(), chunks);
                    }
                    Ok(translated_frames(chunks, alias, record))
                }
            },
        )
        .await?;
    ctx.served(&served);
    let dropped = std::mem::take(&mut *lock(&dropped));
    let cached = pending.is_some();
    let mut pending = pending;
    let deployment = served.deployment.id.clone();
    let frames: Pin<Box<dyn Stream<Item = Rendered> + Send>> =
        Box::pin(served.value.map(move |item| {
            item.map(|frame| {
                if let Some(message) = frame.recorded {
                    if let (Some(pending), Ok(body)) =
                        (pending.take(), serde_json::to_vec(&message))
                    {
                        pending.complete(body.into(), &deployment);
                    }
                }
                (frame.bytes, frame.usage)
            })
        }));
    let mut stream = sse::anthropic_stream(frames);
    if cached {
        cached::mark_miss(&mut stream.response);
    }
    served_headers(&mut stream.response, &served.deployment, served.attempts);
    route_headers(&mut stream.response, &served.report);
    dropped_params_header(&mut stream.response, &dropped);
    Ok(Reply::Stream(stream))
}

/// OpenAI chunks rendered as Anthropic events, closed with `message_delta` / `message_stop`
/// when the chunks end normally.
fn translated_frames(
    chunks: ChunkStream,
    alias: String,
    record: Option<usize>,
) -> BoxStream<Frame> {
    struct State {
        chunks: ChunkStream,
        encoder: MessagesStreamEncoder,
        events: Vec<StreamEvent>,
        recording: Option<Recording>,
        done: bool,
    }
    let state = State {
        chunks,
        encoder: MessagesStreamEncoder::new(alias),
        events: Vec::new(),
        recording: Recording::new(record),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            if state.done {
                return None;
            }
            let (usage, output) = match state.chunks.next().await {
                Some(Ok(chunk)) => {
                    state.encoder.push(&chunk, &mut state.events);
                    let output = chunk.has_output();
                    (chunk.usage, output)
                }
                Some(Err(err)) => {
                    state.done = true;
                    return Some((Err(err), state));
                }
                None => {
                    state.done = true;
                    state.encoder.finish(&mut state.events);
                    (state.encoder.usage().cloned(), true)
                }
            };
            for event in &state.events {
                record_event(&mut state.recording, event);
            }
            let recorded = match state.done {
                true => state
                    .recording
                    .take()
                    .and_then(|r| r.recorder.finish())
                    .map(Box::new),
                false => None,
            };
            let frame = Frame {
                bytes: render(&mut state.events),
                usage,
                output,
                recorded,
            };
            Some((Ok(frame), state))
        },
    ))
}

fn render(events: &mut Vec<StreamEvent>) -> Option<Bytes> {
    if events.is_empty() {
        return None;
    }
    let mut out = BytesMut::new();
    for event in events.drain(..) {
        out.extend_from_slice(&sse::anthropic_event(&event));
    }
    Some(out.freeze())
}

/// An Anthropic stream forwarded event by event, with the alias in `message_start`; a body
/// that ends before `message_stop` ends with an error event.
fn native_frames(
    events: EventStream,
    alias: String,
    guarded: Option<guardrails::stream::AnthropicEvents>,
    record: Option<usize>,
) -> BoxStream<Frame> {
    struct State {
        events: EventStream,
        tap: NativeStreamTap,
        guarded: Option<guardrails::stream::AnthropicEvents>,
        recording: Option<Recording>,
        done: bool,
    }
    let state = State {
        events,
        tap: NativeStreamTap::new(alias),
        guarded,
        recording: Recording::new(record),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            if state.done {
                return None;
            }
            let item = match state.events.next().await {
                Some(Ok(event)) => match state.tap.event(&event) {
                    Ok((name, data)) => {
                        let usage = (name == "message_delta").then(|| state.tap.usage());
                        let output = matches!(
                            name.as_str(),
                            "content_block_delta" | "message_delta" | "message_stop"
                        );
                        // Parsed again only when recorded: the event as the client sees it
                        // (with its alias). One that does not parse ends the recording.
                        if state.recording.is_some() {
                            match serde_json::from_str::<StreamEvent>(&data) {
                                Ok(event) => record_event(&mut state.recording, &event),
                                Err(_) => state.recording = None,
                            }
                        }
                        let bytes = match &mut state.guarded {
                            None => Ok(sse::anthropic_frame(&name, &data)),
                            Some(guarded) => guarded.event(name, data).map(|events| {
                                let mut out = BytesMut::new();
                                for (name, data) in events {
                                    out.extend_from_slice(&sse::anthropic_frame(&name, &data));
                                }
                                out.freeze()
                            }),
                        };
                        match bytes {
                            Ok(bytes) => Ok(Frame {
                                bytes: Some(bytes),
                                usage,
                                output,
                                recorded: None,
                            }),
                            Err(err) => {
                                state.done = true;
                                Err(err)
                            }
                        }
                    }
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
                        Ok(()) => {
                            // A last, empty frame hands the recorded answer over.
                            let recorded = state
                                .recording
                                .take()
                                .and_then(|r| r.recorder.finish())
                                .map(Box::new)?;
                            Ok(Frame {
                                bytes: None,
                                usage: None,
                                output: true,
                                recorded: Some(recorded),
                            })
                        }
                        Err(err) => Err(err),
                    }
                }
            };
            Some((item, state))
        },
    ))
}

/// `POST /v1/messages/count_tokens`: Anthropic's own count for Anthropic deployments; for
/// others an estimate (4 characters a token over the text, as the mock and the router
/// estimate), since their tokenizers are not Anthropic's anyway.
pub async fn count_tokens(mut ctx: RequestContext, headers: HeaderMap, body: Body) -> Response {
    let scope = ctx.log_scope();
    let result = within(scope, count(&mut ctx, &headers, body)).await;
    finish(ctx, result)
}

async fn count(
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let mut request: MessagesRequest = read_json(headers, body, ctx.max_request_bytes()).await?;
    validate(&request, MessagesEndpoint::CountTokens)?;
    // The `cache` object is the gateway's: checked, never forwarded (nothing to cache here).
    crate::cache::Controls::take_from(&mut request.extra, headers)?;
    let (options, _) = admit(ctx, &mut request).await?;
    let client = client_headers(headers);
    let config = ctx.config.clone();
    let http = ctx.http();
    let served = config
        .router
        .execute(&request.model, &options, |deployment| {
            let (request, client) = (&request, &client);
            async move {
                let call = deployment.call(http, None);
                match deployment.provider.messages(
                    call,
                    MessagesEndpoint::CountTokens,
                    request,
                    client,
                ) {
                    Some(native) => parse_native(&native.await?, "token count"),
                    None => Ok(TokenCount {
                        input_tokens: estimate_tokens(request),
                        extra: Default::default(),
                    }),
                }
            }
        })
        .await?;
    ctx.served(&served);
    let mut response = Json(served.value).into_response();
    served_headers(&mut response, &served.deployment, served.attempts);
    route_headers(&mut response, &served.report);
    Ok(Reply::Whole(response))
}

/// A native Messages API answer.
fn parse_native<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("anthropic {what}: {err}")))
}

/// ceil(characters / 4) over the system prompt, the messages and the tool definitions.
fn estimate_tokens(request: &MessagesRequest) -> u64 {
    let mut chars = 0usize;
    if let Some(system) = &request.system {
        chars += serde_json::to_string(system).map_or(0, |s| s.len());
    }
    for message in &request.messages {
        chars += serde_json::to_string(&message.content).map_or(0, |s| s.len());
    }
    for tool in request.tools.iter().flatten() {
        chars += serde_json::to_string(tool).map_or(0, |s| s.len());
    }
    (chars as u64).div_ceil(4).max(1)
}

fn client_headers(headers: &HeaderMap) -> ClientHeaders {
    let pick = |name: &str| -> Option<HeaderValue> { headers.get(name).cloned() };
    ClientHeaders {
        version: pick("anthropic-version"),
        beta: pick("anthropic-beta"),
    }
}

/// What Anthropic checks before anything else, with its wording.
fn validate(request: &MessagesRequest, endpoint: MessagesEndpoint) -> Result<(), ApiError> {
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "model: Field required",
            Some("model"),
        ));
    }
    if endpoint == MessagesEndpoint::Create && request.max_tokens.is_none() {
        return Err(ApiError::bad_request(
            "max_tokens: Field required",
            Some("max_tokens"),
        ));
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages: at least one message is required",
            Some("messages"),
        ));
    }
    Ok(())
}
