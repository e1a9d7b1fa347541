//! `POST /v1/chat/completions`.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;

use super::body::read_json;
use super::error::ApiError;
use super::{cached, dropped_params_header, finish, route_headers, served_headers, sse, Reply};
use crate::guardrails;
use crate::pipeline::RequestContext;
use crate::router::Deployment;
use crate::schema::{ChatAnswer, ChatRequest};
use crate::telemetry::log_scope::within;

pub async fn chat_completions(mut ctx: RequestContext, headers: HeaderMap, body: Body) -> Response {
    let scope = ctx.log_scope();
    let result = within(scope, handle(&mut ctx, &headers, body)).await;
    finish(ctx, result)
}

async fn handle(
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let mut request: ChatRequest = read_json(headers, body, ctx.max_request_bytes()).await?;
    validate(&request)?;
    let cache_controls = crate::cache::Controls::take_from(&mut request.extra, headers)?;
    ctx.max_output_tokens = request.max_completion_tokens.or(request.max_tokens);
    if let Some(trace) = &ctx.trace {
        trace.note_temperature(request.temperature.as_ref().and_then(|t| t.as_f64()));
    }
    let messages = &request.messages;
    let options = ctx
        .admit(
            &request.model,
            request.is_stream(),
            request.user.as_deref(),
            &mut request.extra,
            &|| crate::providers::mock::estimate_prompt_tokens(messages),
        )
        .await?;
    // Stage 4: guardrails on the prompt as it will be sent (masked values never leave).
    let mut guard = guardrails::select(ctx, &mut request.extra)?;
    guardrails::pre_call(ctx, &mut guard, |g| g.pre_call_chat(&mut request.messages)).await?;
    let config = ctx.config.clone();
    // Stage 5: the response cache, keyed on the prompt as the guardrails left it. A request
    // with a post-call guardrail neither reads nor fills it: an entry holds the answer as the
    // upstream gave it, and un-masking is per caller (docs/caching.md).
    let mut pending = None;
    if let Some(cache) = config.cache.as_ref().filter(|_| !guard.wants_post_call()) {
        let lookup = cache
            .lookup(
                crate::cache::Endpoint::Chat,
                &request.model,
                &request,
                &cache_controls,
                request.is_stream(),
                ctx.deadline,
                &*config,
            )
            .await;
        match cached::chat(
            ctx,
            lookup,
            request.is_stream(),
            request.wants_stream_usage(),
        ) {
            cached::Outcome::Answered(reply) => return Ok(reply),
            cached::Outcome::Upstream(miss) => pending = miss,
        }
    }
    let messages = &request.messages;
    if request.is_stream() {
        let served = config
            .router
            .chat_stream(ctx.http(), &request, &options)
            .await?;
        ctx.served(&served);
        // Only a stream cut short lacks usage, and then its body is gone: estimate now.
        ctx.prompt_tokens_estimate = crate::providers::mock::estimate_prompt_tokens(messages);
        let cached = pending.is_some();
        let chunks = if guard.wants_post_call() {
            // Stage 8 on a stream: checked as it passes, with a bounded carry window.
            guardrails::stream::chat(guard, served.value)
        } else {
            match pending {
                // Stored once the stream ended normally (see cache/stream.rs).
                Some(pending) => {
                    let limit = pending.max_entry_bytes();
                    let deployment = served.deployment.id.clone();
                    let recording =
                        crate::cache::stream::Recording::new(served.value, limit, move |answer| {
                            if let Ok(body) = serde_json::to_vec(&answer) {
                                pending.complete(body.into(), &deployment);
                            }
                        });
                    Box::pin(recording) as crate::providers::http::ChunkStream
                }
                None => served.value,
            }
        };
        let mut stream = sse::chat_stream(
            chunks,
            request.wants_stream_usage(),
            served.deployment.price.clone(),
            ctx.trace.clone().filter(|t| t.sampled),
        );
        served_headers(&mut stream.response, &served.deployment, served.attempts);
        route_headers(&mut stream.response, &served.report);
        dropped_params_header(&mut stream.response, &dropped(&served.deployment, &request));
        if cached {
            cached::mark_miss(&mut stream.response);
        }
        return Ok(Reply::Stream(stream));
    }
    let mut served = config.router.chat(ctx.http(), &request, &options).await?;
    ctx.served(&served);
    ctx.usage = served.value.usage().cloned();
    // Stage 8: guardrails on the answer (and the prompt's masked values given back).
    if guard.wants_post_call() {
        // A raw answer's bytes are shared (`Bytes`): the clone is cheap for it.
        let mut typed = served.value.clone().into_typed().map_err(|err| {
            tracing::warn!("guardrails: the answer is not a chat completion: {err}");
            ApiError::Internal
        })?;
        guard.post_call_chat(&mut typed)?;
        served.value = ChatAnswer::Typed(typed);
    }
    if let Some(trace) = &ctx.trace {
        trace.note_answer(&served.value);
    }
    if ctx.usage.is_none() {
        ctx.prompt_tokens_estimate = crate::providers::mock::estimate_prompt_tokens(messages);
    }
    let body = served.value.to_json(&served.deployment.model_name);
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
    dropped_params_header(&mut response, &dropped(&served.deployment, &request));
    Ok(Reply::Whole(response))
}

/// What the deployment's provider dropped from the request in translation.
fn dropped(deployment: &Deployment, request: &ChatRequest) -> Vec<String> {
    deployment
        .provider
        .dropped_params(&deployment.upstream, request)
}

/// What serde cannot express: OpenAI rejects these too, with the same wording.
fn validate(request: &ChatRequest) -> Result<(), ApiError> {
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`model` must not be empty",
            Some("model"),
        ));
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` must contain at least one message",
            Some("messages"),
        ));
    }
    Ok(())
}
