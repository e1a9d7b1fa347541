//! `POST /v1/chat/completions`.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::body::read_json;
use super::error::ApiError;
use super::{dropped_params_header, route_headers, served_headers, sse};
use crate::auth::authenticate;
use crate::router::{Deployment, RequestOptions};
use crate::schema::ChatRequest;
use crate::state::AppState;

pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authenticate(&headers, state.master_key.as_ref())?;
    let mut request: ChatRequest = read_json(&headers, body, state.max_request_bytes).await?;
    validate(&request)?;
    let options = RequestOptions::take_from(&mut request.extra)?;
    if request.is_stream() {
        let served = state
            .router
            .chat_stream(&state.http, &request, &options)
            .await?;
        let body = sse::chat_body(
            state.clone(),
            served.value,
            served.deployment.clone(),
            request.wants_stream_usage(),
        );
        let mut response = sse::response(body);
        served_headers(&mut response, &served.deployment, served.attempts);
        route_headers(&mut response, &served.report);
        dropped_params_header(&mut response, &dropped(&served.deployment, &request));
        return Ok(response);
    }
    let served = state.router.chat(&state.http, &request, &options).await?;
    if let Some(usage) = served.value.usage() {
        state.metrics.record_usage(&served.deployment.id, usage);
    }
    let body = served.value.to_json(&served.deployment.model_name);
    let mut response = (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response();
    served_headers(&mut response, &served.deployment, served.attempts);
    route_headers(&mut response, &served.report);
    dropped_params_header(&mut response, &dropped(&served.deployment, &request));
    Ok(response)
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
