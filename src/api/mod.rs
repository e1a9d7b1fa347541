//! HTTP routes. Handlers parse, call the router, render (the pipeline's stages, in the order
//! `pipeline/mod.rs` lists them); the edge middleware here stamps every response with its
//! request id and reports requests that never reached a model.

mod activity;
mod admin;
mod body;
mod cached;
mod chat;
mod cost;
pub mod error;
mod health;
pub mod management;
mod messages;
mod model_info;
mod models;
mod passthrough;
mod provider_passthrough;
mod responses;
pub mod spend;
mod sse;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use crate::pipeline::{new_request_id, Edge, Finished, Outcome, Reported, RequestContext, Surface};
use crate::router::{Deployment, RouteReport};
use crate::state::AppState;
use error::ApiError;

pub fn routes(state: AppState) -> axum::Router {
    // The model API at `/v1/...` and at the root, as OpenAI clients and LiteLLM use both. Each
    // path is a route of its own rather than a nested `/v1` router: nesting rewrote every
    // request's URI to strip the prefix (a new `Uri` per request, measured in bench/README.md).
    let api = [
        ("/chat/completions", post(chat::chat_completions)),
        ("/completions", post(passthrough::completions)),
        ("/embeddings", post(passthrough::embeddings)),
        ("/rerank", post(passthrough::rerank)),
        ("/messages", post(messages::messages)),
        ("/messages/count_tokens", post(messages::count_tokens)),
        ("/responses", post(responses::create)),
        (
            "/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        ),
        ("/models", get(models::list)),
        ("/models/{*model}", get(models::retrieve)),
    ];
    api.into_iter()
        .fold(axum::Router::new(), |router, (path, method)| {
            router
                .route(&format!("/v1{path}"), method.clone())
                .route(path, method)
        })
        // Cohere's own path, which LiteLLM serves too.
        .route("/v2/rerank", post(passthrough::rerank))
        .route("/model/info", get(model_info::model_info))
        .route("/v1/model/info", get(model_info::model_info))
        .route("/model_group/info", get(model_info::model_group_info))
        .route("/health", get(health::deployments))
        .route("/health/liveliness", get(health::liveliness))
        .route("/health/liveness", get(health::liveliness))
        .route("/health/readiness", get(health::readiness))
        .route("/metrics", get(health::metrics))
        .route("/config/reload", post(admin::reload_config))
        .route("/spend/calculate", post(cost::calculate))
        .route("/spend/logs", get(spend::logs))
        .route("/spend/tags", get(spend::tags))
        .route("/spend/keys", get(spend::keys))
        .route("/spend/users", get(spend::users))
        .route("/global/spend/report", get(spend::global_report))
        .route("/user/daily/activity", get(activity::user))
        .route("/team/daily/activity", get(activity::team))
        .merge(management::routes())
        .merge(provider_passthrough::routes())
        .merge(crate::ui::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge))
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

/// Header names of the response metadata, documented in docs/http-api.md.
pub const MODEL_ID_HEADER: &str = "x-switchyard-model-id";
pub const MODEL_GROUP_HEADER: &str = "x-switchyard-model-group";
pub const ATTEMPTS_HEADER: &str = "x-switchyard-attempts";
pub const ATTEMPT_TRAIL_HEADER: &str = "x-switchyard-attempt-trail";
pub const ROUTE_RULE_HEADER: &str = "x-switchyard-route-rule";
pub const CANARY_HEADER: &str = "x-switchyard-canary";
pub const REQUESTED_MODEL_HEADER: &str = "x-switchyard-requested-model";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How many headers a model answer usually carries (its content type, the served-by set, the
/// request id, the six `x-ratelimit-*` of a limited key, the two cost headers, two more): its
/// map is made at this size once instead of growing (and rehashing) on the way out.
pub(crate) const ANSWER_HEADERS: usize = 16;

/// A whole JSON answer, its header map sized for what the pipeline adds.
pub(crate) fn json_answer(body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    *headers = axum::http::HeaderMap::with_capacity(ANSWER_HEADERS);
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

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

/// Stage 1 of every request: echoes a sane `x-request-id` or makes one, starts the clock, and
/// turns a panic below into an OpenAI-shaped 500 (the gateway keeps serving). Requests the
/// pipeline did not report (no model was asked for: `/health`, `/v1/models`, a bad key, an
/// unknown path) get their finished event here.
async fn edge(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|v| v.len() <= 128 && v.to_str().is_ok_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(new_request_id);
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    request.extensions_mut().insert(Edge {
        request_id: request_id.clone(),
        started,
    });
    let mut response = match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                request_id = request_id.to_str().unwrap_or(""),
                path = uri.path(),
                "handler panicked: {message}"
            );
            Surface::of_path(uri.path()).render(ApiError::Internal)
        }
    };
    if response.extensions().get::<Reported>().is_none() {
        let event = Finished {
            request_id: request_id.to_str().unwrap_or(""),
            method: method.as_str(),
            path: uri.path(),
            principal: None,
            surface: Surface::of_path(uri.path()),
            requested_model: "",
            deployment: None,
            passthrough_provider: None,
            attempts: 0,
            usage: None,
            status: response.status().as_u16(),
            outcome: if response.status().is_success() {
                Outcome::Answered
            } else {
                Outcome::Failed
            },
            stream: false,
            latency: started.elapsed(),
            time_to_first_token: None,
            end_user: None,
            metadata: None,
            cache_hit: false,
            cost: None,
            trace: None,
            upstream_latency: None,
            rejection: None,
        };
        crate::telemetry::request_finished(&state, &event);
    }
    const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

/// The end of a model request: a whole answer or an error is rendered and reported now; a
/// stream takes the context into its body, which reports when the stream is over.
pub(crate) fn finish(ctx: RequestContext, result: Result<Reply, ApiError>) -> Response {
    match result {
        Ok(Reply::Stream(stream)) => stream.into_response(ctx),
        Ok(Reply::Whole(response)) => ctx.respond(Ok(response)),
        Err(error) => ctx.respond(Err(error)),
    }
}

/// What a handler produced.
pub(crate) enum Reply {
    Whole(Response),
    Stream(sse::StreamReply),
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn boom() -> &'static str {
        panic!("a bug in a handler")
    }

    /// A panic in a handler is an OpenAI-shaped 500 with the request id, and the server keeps
    /// answering.
    #[tokio::test]
    async fn a_panicking_handler_is_a_500_and_the_gateway_keeps_serving() {
        let loaded = crate::config::parse(
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, mock_response: hi}\n",
            &|_| None,
        )
        .unwrap();
        let state = AppState::build(loaded.config, None).unwrap();
        let app = axum::Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(state.clone(), edge))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        for _ in 0..2 {
            let response = client.get(format!("{url}/boom")).send().await.unwrap();
            assert_eq!(response.status(), 500);
            assert!(response.headers().contains_key(REQUEST_ID_HEADER));
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "internal_server_error");
            assert!(!body["error"]["message"].as_str().unwrap().contains("a bug"));
            let ok = client.get(format!("{url}/ok")).send().await.unwrap();
            assert_eq!(ok.text().await.unwrap(), "ok");
        }
    }
}
