//! `POST /v1/chat/completions`.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;

use super::body::read_json;
use super::error::ApiError;
use super::{dropped_params_header, finish, route_headers, served_headers, sse, Reply};
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
    guardrails::pre_call(ctx, &mut guard, |g| g.pre_call_chat(&mut request.messages))?;
    let messages = &request.messages;
    let config = ctx.config.clone();
    if request.is_stream() {
        let served = config
            .router
            .chat_stream(ctx.http(), &request, &options)
            .await?;
        ctx.served(&served);
        // Only a stream cut short lacks usage, and then its body is gone: estimate now.
        ctx.prompt_tokens_estimate = crate::providers::mock::estimate_prompt_tokens(messages);
        // Stage 8 on a stream: checked as it passes, with a bounded carry window.
        let chunks = if guard.wants_post_call() {
            guardrails::stream::chat(guard, served.value)
        } else {
            served.value
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
    let mut response = super::json_answer(body);
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
