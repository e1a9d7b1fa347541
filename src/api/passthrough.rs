//! `POST /v1/completions`, `POST /v1/embeddings` and `POST /v1/rerank` (also `/rerank` and
//! `/v2/rerank`, in Cohere's request shape): routed by `model`, forwarded with only the model
//! rewritten to OpenAI-format upstreams, mapped by the providers that have their own format.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::read_json;
use super::error::ApiError;
use super::{cached, finish, route_headers, served_headers, sse, Reply};
use crate::guardrails;
use crate::pipeline::RequestContext;
use crate::providers::PassthroughEndpoint;
use crate::schema::PassthroughRequest;
use crate::telemetry::log_scope::within;

pub async fn completions(ctx: RequestContext, headers: HeaderMap, body: Body) -> Response {
    handle(ctx, headers, body, PassthroughEndpoint::Completions).await
}

pub async fn embeddings(ctx: RequestContext, headers: HeaderMap, body: Body) -> Response {
    handle(ctx, headers, body, PassthroughEndpoint::Embeddings).await
}

pub async fn rerank(ctx: RequestContext, headers: HeaderMap, body: Body) -> Response {
    handle(ctx, headers, body, PassthroughEndpoint::Rerank).await
}

async fn handle(
    mut ctx: RequestContext,
    headers: HeaderMap,
    body: Body,
    endpoint: PassthroughEndpoint,
) -> Response {
    let scope = ctx.log_scope();
    let result = within(scope, serve(&mut ctx, &headers, body, endpoint)).await;
    finish(ctx, result)
}

async fn serve(
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
    endpoint: PassthroughEndpoint,
) -> Result<Reply, ApiError> {
    let mut request: PassthroughRequest = read_json(headers, body, ctx.max_request_bytes()).await?;
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`model` must not be empty",
            Some("model"),
        ));
    }
    let cache_controls = crate::cache::Controls::take_from(&mut request.extra, headers)?;
    let required = match endpoint {
        PassthroughEndpoint::Completions => "prompt",
        PassthroughEndpoint::Embeddings => "input",
        PassthroughEndpoint::Rerank => "query",
    };
    if !request.extra.contains_key(required) {
        return Err(ApiError::bad_request(
            format!("invalid request: `{required}`: missing field `{required}`"),
            Some(required),
        ));
    }
    if endpoint == PassthroughEndpoint::Rerank {
        check_rerank(&request)?;
    }
    // Only completions stream; embeddings have no streaming form.
    let stream = endpoint == PassthroughEndpoint::Completions && request.stream == Some(true);
    let user = request
        .extra
        .get("user")
        .and_then(|u| u.as_str())
        .map(str::to_owned);
    let prompt_tokens = crate::router::passthrough_prompt_tokens(&request);
    ctx.max_output_tokens = request
        .extra
        .get("max_tokens")
        .and_then(serde_json::Value::as_u64);
    let options = ctx
        .admit(
            &request.model,
            stream,
            user.as_deref(),
            &mut request.extra,
            &|| prompt_tokens,
        )
        .await?;
    ctx.prompt_tokens_estimate = prompt_tokens;
    // Stage 4: guardrails on the prompt (`prompt` or `input`) as it will be sent.
    let mut guard = guardrails::select(ctx, &mut request.extra)?;
    guardrails::pre_call(ctx, &mut guard, |g| match request.extra.get_mut(required) {
        Some(prompt) => g.pre_call_json(prompt),
        None => Ok(()),
    })
    .await?;
    let config = ctx.config.clone();
    // Stage 5: the response cache (streamed completions skip it, and so does a request with a
    // post-call guardrail: see docs/caching.md).
    let mut pending = None;
    let cache_kind = match endpoint {
        PassthroughEndpoint::Completions => Some(crate::cache::Endpoint::Completions),
        PassthroughEndpoint::Embeddings => Some(crate::cache::Endpoint::Embeddings),
        // Not cached (yet): docs/caching.md lists what is.
        PassthroughEndpoint::Rerank => None,
    };
    if let (Some(cache), Some(kind), false) =
        (&config.cache, cache_kind, stream || guard.wants_post_call())
    {
        let lookup = cache
            .lookup(
                kind,
                &request.model,
                &request,
                &cache_controls,
                false,
                ctx.deadline,
                &*config,
            )
            .await;
        match cached::passthrough(ctx, lookup) {
            cached::Outcome::Answered(reply) => return Ok(reply),
            cached::Outcome::Upstream(miss) => pending = miss,
        }
    }
    if stream {
        let served = config
            .router
            .passthrough_stream(ctx.http(), endpoint, &request, &options)
            .await?;
        ctx.served(&served);
        // Stage 8 on a stream: checked as it passes, with a bounded carry window.
        let events = if guard.wants_post_call() {
            guardrails::stream::completions(guard, served.value)
        } else {
            served.value
        };
        let mut stream = sse::passthrough_stream(events);
        served_headers(&mut stream.response, &served.deployment, served.attempts);
        route_headers(&mut stream.response, &served.report);
        return Ok(Reply::Stream(stream));
    }
    let mut served = config
        .router
        .passthrough(ctx.http(), endpoint, &request, &options)
        .await?;
    ctx.served(&served);
    ctx.usage = served.value.usage();
    // Stage 8 on a completion's text (an embedding is numbers: nothing to check).
    if endpoint == PassthroughEndpoint::Completions && guard.wants_post_call() {
        guard.post_call_completion(&mut served.value.extra)?;
    }
    let mut response = match pending {
        Some(pending) => {
            let body = bytes::Bytes::from(serde_json::to_vec(&served.value).unwrap_or_default());
            pending.complete(body.clone(), &served.deployment.id);
            let mut response = super::json_answer(body);
            cached::mark_miss(&mut response);
            response
        }
        None => Json(served.value).into_response(),
    };
    served_headers(&mut response, &served.deployment, served.attempts);
    route_headers(&mut response, &served.report);
    Ok(Reply::Whole(response))
}

/// Cohere's rerank request, checked before it is routed: a text `query` and a list of
/// `documents` (strings, or objects with a `text`), `top_n` a positive integer.
fn check_rerank(request: &PassthroughRequest) -> Result<(), ApiError> {
    if !request.extra.get("query").is_some_and(|q| q.is_string()) {
        return Err(ApiError::bad_request(
            "invalid request: `query` must be a string",
            Some("query"),
        ));
    }
    match request.extra.get("documents") {
        Some(serde_json::Value::Array(documents)) if !documents.is_empty() => {}
        _ => {
            return Err(ApiError::bad_request(
                "invalid request: `documents` must be a non-empty list",
                Some("documents"),
            ))
        }
    }
    if let Some(top_n) = request.extra.get("top_n").filter(|v| !v.is_null()) {
        if top_n.as_u64().is_none_or(|n| n == 0) {
            return Err(ApiError::bad_request(
                "invalid request: `top_n` must be a positive integer",
                Some("top_n"),
            ));
        }
    }
    Ok(())
}
