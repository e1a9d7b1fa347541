//! HTTP routes. Handlers parse, call the router, render; the request-id middleware here stamps
//! every response and writes the access log.

mod body;
mod chat;
pub mod error;
mod health;
mod messages;
mod models;
mod passthrough;
mod sse;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use crate::router::{Deployment, RouteReport};
use crate::state::AppState;
use error::ApiError;

pub fn routes(state: AppState) -> axum::Router {
    let api = axum::Router::new()
        .route("/chat/completions", post(chat::chat_completions))
        .route("/completions", post(passthrough::completions))
        .route("/embeddings", post(passthrough::embeddings))
        .route("/messages", post(messages::messages))
        .route("/messages/count_tokens", post(messages::count_tokens))
        .route("/models", get(models::list))
        .route("/models/{*model}", get(models::retrieve));
    axum::Router::new()
        .nest("/v1", api.clone())
        .merge(api)
        .route("/health", get(health::deployments))
        .route("/health/liveliness", get(health::liveliness))
        .route("/health/liveness", get(health::liveliness))
        .route("/health/readiness", get(health::readiness))
        .route("/metrics", get(health::metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            stamp_and_log,
        ))
        // Bodies are bounded by `read_json` with the configured limit instead.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// Which deployment answered; handlers put it in the response extensions.
#[derive(Clone)]
pub struct ServedBy {
    pub deployment: Arc<Deployment>,
    pub attempts: u32,
}

/// Header names of the response metadata, documented in docs/http-api.md.
pub const MODEL_ID_HEADER: &str = "x-switchyard-model-id";
pub const MODEL_GROUP_HEADER: &str = "x-switchyard-model-group";
pub const ATTEMPTS_HEADER: &str = "x-switchyard-attempts";
pub const ATTEMPT_TRAIL_HEADER: &str = "x-switchyard-attempt-trail";
pub const ROUTE_RULE_HEADER: &str = "x-switchyard-route-rule";
pub const CANARY_HEADER: &str = "x-switchyard-canary";
pub const REQUESTED_MODEL_HEADER: &str = "x-switchyard-requested-model";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub(crate) fn served_headers(response: &mut Response, deployment: &Arc<Deployment>, attempts: u32) {
    const MODEL_ID: HeaderName = HeaderName::from_static(MODEL_ID_HEADER);
    // LiteLLM's name for the same thing, so existing dashboards and clients keep working.
    const LITELLM_MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
    const MODEL_GROUP: HeaderName = HeaderName::from_static(MODEL_GROUP_HEADER);
    const ATTEMPTS: HeaderName = HeaderName::from_static(ATTEMPTS_HEADER);
    let headers = response.headers_mut();
    headers.insert(MODEL_ID, deployment.id_header.clone());
    headers.insert(LITELLM_MODEL_ID, deployment.id_header.clone());
    headers.insert(MODEL_GROUP, deployment.group_header.clone());
    headers.insert(ATTEMPTS, HeaderValue::from(attempts));
    response.extensions_mut().insert(ServedBy {
        deployment: deployment.clone(),
        attempts,
    });
}

/// What the router did beyond the plain case: the route rule that chose the group, a canary
/// answer, retries and fallbacks (with LiteLLM's header names too) and, when more than one
/// attempt was made, where each went and how it ended. A first-try answer gets none of these.
pub(crate) fn route_headers(response: &mut Response, report: &RouteReport) {
    let headers = response.headers_mut();
    if let Some(rule) = report
        .rule
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        headers.insert(ROUTE_RULE_HEADER, rule);
    }
    if report.canary {
        headers.insert(CANARY_HEADER, HeaderValue::from_static("true"));
    }
    if report.retries > 0 {
        headers.insert(
            "x-litellm-attempted-retries",
            HeaderValue::from(report.retries),
        );
    }
    if report.fallbacks > 0 {
        headers.insert(
            "x-litellm-attempted-fallbacks",
            HeaderValue::from(report.fallbacks),
        );
    }
    if !report.requested.is_empty() {
        if let Ok(requested) = HeaderValue::from_str(&report.requested) {
            headers.insert(REQUESTED_MODEL_HEADER, requested);
        }
    }
    if report.trail.len() > 1 {
        if let Ok(trail) = HeaderValue::from_str(&report.trail_text()) {
            headers.insert(ATTEMPT_TRAIL_HEADER, trail);
        }
    }
}

/// Names what translation dropped (`x-switchyard-dropped-params: seed, logit_bias`), when it
/// dropped anything. See `providers/params.rs` for what is dropped and when.
pub(crate) fn dropped_params_header(response: &mut Response, dropped: &[String]) {
    if dropped.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&dropped.join(", ")) {
        response
            .headers_mut()
            .insert(crate::providers::params::DROPPED_PARAMS_HEADER, value);
    }
}

/// Echoes a sane `x-request-id` or makes one, and logs one line per request.
async fn stamp_and_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|v| v.len() <= 128 && v.to_str().is_ok_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(new_request_id);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let served = response.extensions_mut().remove::<ServedBy>();
    match &served {
        Some(served) => state
            .metrics
            .record_response(&served.deployment.id, status, elapsed),
        None if status >= 400 => state.metrics.record_rejected(status),
        None => {}
    }
    // Target `access`, so `RUST_LOG=info,access=off` keeps every other line but this one (it
    // costs tens of microseconds of CPU per request to format; see docs/operations.md).
    tracing::info!(
        target: "access",
        request_id = request_id.to_str().unwrap_or(""),
        %method,
        path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        model_group = served.as_ref().map(|s| s.deployment.model_name.as_str()),
        deployment = served.as_ref().map(|s| s.deployment.id.as_str()),
        attempts = served.as_ref().map(|s| s.attempts),
        "request"
    );
    const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

/// 32 random hex digits.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    let bits = fastrand::u128(..);
    for (i, digit) in id.iter_mut().enumerate() {
        *digit = HEX[((bits >> (i * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
