//! `POST /v1/completions` and `POST /v1/embeddings`: routed by `model`, forwarded with only the
//! model rewritten.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::read_json;
use super::error::ApiError;
use super::{route_headers, served_headers, sse};
use crate::auth::authenticate;
use crate::providers::PassthroughEndpoint;
use crate::router::RequestOptions;
use crate::schema::PassthroughRequest;
use crate::state::AppState;

pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    handle(state, headers, body, PassthroughEndpoint::Completions).await
}

pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    handle(state, headers, body, PassthroughEndpoint::Embeddings).await
}

async fn handle(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    endpoint: PassthroughEndpoint,
) -> Result<Response, ApiError> {
    authenticate(&headers, state.master_key.as_ref())?;
    let mut request: PassthroughRequest =
        read_json(&headers, body, state.max_request_bytes).await?;
    if request.model.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`model` must not be empty",
            Some("model"),
        ));
    }
    let required = match endpoint {
        PassthroughEndpoint::Completions => "prompt",
        PassthroughEndpoint::Embeddings => "input",
    };
    if !request.extra.contains_key(required) {
        return Err(ApiError::bad_request(
            format!("invalid request: `{required}`: missing field `{required}`"),
            Some(required),
        ));
    }
    let options = RequestOptions::take_from(&mut request.extra)?;
    // Only completions stream; embeddings have no streaming form.
    if endpoint == PassthroughEndpoint::Completions && request.stream == Some(true) {
        let served = state
            .router
            .passthrough_stream(&state.http, endpoint, &request, &options)
            .await?;
        let body = sse::passthrough_body(state.clone(), served.value, served.deployment.clone());
        let mut response = sse::response(body);
        served_headers(&mut response, &served.deployment, served.attempts);
        route_headers(&mut response, &served.report);
        return Ok(response);
    }
    let served = state
        .router
        .passthrough(&state.http, endpoint, &request, &options)
        .await?;
    if let Some(usage) = served.value.usage() {
        state.metrics.record_usage(&served.deployment.id, &usage);
    }
    let mut response = Json(served.value).into_response();
    served_headers(&mut response, &served.deployment, served.attempts);
    route_headers(&mut response, &served.report);
    Ok(response)
}
