//! The provider pass-through routes, as LiteLLM has them: `/openai/{*path}`,
//! `/anthropic/{*path}`, `/gemini/{*path}`, `/cohere/{*path}`, `/mistral/{*path}`,
//! `/vertex_ai/{*path}`, `/bedrock/{*path}`, any method.
//! The caller's key is checked as on every route (`Caller`); the request then goes to the
//! provider as it came (body, query, the caller's other headers) with the gateway's key in place
//! of the caller's, and the answer comes back as it arrives, error statuses included. What the
//! answer reports as usage is metered on the way through and makes the request's spend row.
//!
//! Where each provider lives and with which key: `providers/passthrough.rs`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;
use std::future::Future as _;

use super::error::ApiError;
use crate::auth::Principal;
use crate::pipeline::{Caller, Edge, Finished, Outcome, Reported, Surface};
use crate::providers::passthrough::{self as upstream, PassProvider, UsageMeter};
use crate::schema::Usage;
use crate::state::{AppState, Snapshot};

/// The routes, one prefix per provider.
pub fn routes() -> axum::Router<AppState> {
    PassProvider::ALL
        .into_iter()
        .fold(axum::Router::new(), |router, provider| {
            router.route(
                &format!("/{}/{{*path}}", provider.name()),
                any(
                    move |state: State<AppState>, caller: Caller, request: Request| {
                        handle(provider, state, caller, request)
                    },
                ),
            )
        })
}

/// Anthropic refuses a request without it; LiteLLM adds it when the caller did not.
const ANTHROPIC_VERSION: &str = "2023-06-01";

async fn handle(
    provider: PassProvider,
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let edge = parts
        .extensions
        .get::<Edge>()
        .cloned()
        .unwrap_or_else(Edge::now);
    state.metrics.request_started();
    let mut report = Report {
        state,
        config: caller.config,
        principal: caller.principal,
        provider,
        request_id: edge.request_id,
        started: edge.started,
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        requested_model: String::new(),
        stream: false,
        first_byte: None,
        budget_hold: None,
    };
    match forward(&mut report, parts, body).await {
        Ok((head, body)) => {
            let content_type = head
                .headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            report.stream = content_type.starts_with("text/event-stream");
            let meter = UsageMeter::new(content_type);
            let status = head.status;
            let idle_timeout = report.config.config.request_timeout;
            let metered = Metered {
                body: body.into_data_stream(),
                meter: Some(meter),
                report: Some(report),
                status: status.as_u16(),
                idle: Box::pin(tokio::time::sleep(idle_timeout)),
                idle_timeout,
                cut: false,
            };
            let mut response = Response::new(Body::from_stream(metered));
            *response.status_mut() = status;
            *response.headers_mut() = upstream::response_headers(&head.headers);
            response.extensions_mut().insert(Reported);
            response
        }
        Err(error) => {
            // Only a spent budget: one held by requests in flight stays a 429 to retry.
            let spent = matches!(
                error,
                ApiError::Budget(crate::policy::budget::BudgetError::Exceeded { .. })
            );
            let mut response = Surface::OpenAi.render(error);
            if spent {
                *response.status_mut() = report.config.config.budget_exceeded_status;
            }
            report.emit(response.status().as_u16(), Outcome::Failed, None, None);
            response.extensions_mut().insert(Reported);
            response
        }
    }
}

/// Sends the caller's request on to the provider and returns the answer's head and its unread
/// body.
async fn forward(
    report: &mut Report,
    parts: axum::http::request::Parts,
    body: Body,
) -> Result<(axum::http::response::Parts, hyper::body::Incoming), ApiError> {
    let provider = report.provider;
    // The key's (team's, user's) budgets hold as on every model route: a spent one refuses the
    // call; what the call cost is charged when it ends. What it will cost is not known before
    // the answer, so nothing more is reserved.
    let budgets =
        crate::policy::budget::checks(&report.principal, None, crate::auth::cache::now_ms());
    if !budgets.is_empty() {
        let hold = report
            .state
            .budgets
            .reserve(&budgets, crate::money::Nanos::ZERO)
            .await
            .map_err(ApiError::Budget)?;
        report.budget_hold = Some(hold);
    }
    let limit = report.config.max_request_bytes;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    let prefix_len = provider.name().len() + 1;
    let path = parts.uri.path().get(prefix_len..).unwrap_or("/");
    report.requested_model = upstream::request_model(path, &body).unwrap_or_default();
    let query = parts.uri.query().map(|q| match provider {
        PassProvider::Gemini | PassProvider::VertexAi => upstream::query_without_key(q),
        _ => q.to_owned(),
    });
    let headers = upstream::request_headers(&parts.headers);
    let (url, (mut headers, body)) = match provider {
        PassProvider::VertexAi | PassProvider::Bedrock => {
            signed(
                report,
                provider,
                &parts.method,
                path,
                query.as_deref(),
                headers,
                body,
            )
            .await?
        }
        _ => {
            let target = upstream::target(provider, &report.config.config.deployments, &|name| {
                std::env::var(name).ok()
            });
            let url = upstream::upstream_url(&target.base_url, path, query.as_deref())
                .map_err(|err| ApiError::bad_request(err.to_string(), None))?;
            let mut headers = headers;
            if let Some((name, value)) = target
                .api_key
                .as_ref()
                .and_then(|k| provider.auth_header(k))
            {
                headers.insert(name, value);
            }
            (url, (headers, body))
        }
    };
    if provider == PassProvider::Anthropic && !headers.contains_key("anthropic-version") {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
    }
    let timeout = report.config.config.request_timeout;
    let answer = report
        .config
        .http
        .forward(parts.method, &url, headers, body, timeout)
        .await
        .map_err(|error| ApiError::PassthroughUpstream {
            provider: provider.name(),
            error: Box::new(error),
        })?;
    Ok(answer.into_parts())
}

/// The URL, headers and body of a Vertex AI or Bedrock pass-through request, authorized with a
/// configured deployment's credentials: a Google OAuth token, or a SigV4 signature over the
/// final method, URL, headers and body.
async fn signed(
    report: &Report,
    provider: PassProvider,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<(String, (axum::http::HeaderMap, Bytes)), ApiError> {
    // Deployments marked `use_in_pass_through` lend their credentials first (LiteLLM registers
    // only those); without any marked one of the provider, every one of it may.
    let configs = &report.config.config.deployments;
    let marked = |id: &str| configs.iter().any(|c| c.id == id && c.use_in_pass_through);
    let usable = |d: &&std::sync::Arc<crate::router::Deployment>| {
        !d.is_mock()
            && provider
                .config_prefixes()
                .contains(&d.provider_name.as_str())
    };
    let all = report.config.router.deployments();
    let any_marked = all.iter().filter(usable).any(|d| marked(&d.id));
    let deployments: Vec<(&str, &crate::providers::Upstream)> = all
        .iter()
        .filter(usable)
        .filter(|d| !any_marked || marked(&d.id))
        .map(|d| (d.provider_name.as_str(), &d.upstream))
        .collect();
    let target = match provider {
        PassProvider::VertexAi => upstream::vertex_target(&deployments, path),
        _ => upstream::bedrock_target(&deployments),
    }
    .ok_or_else(|| {
        ApiError::bad_request(
            format!(
                "/{} needs a `{}` deployment in model_list: its credentials sign the request",
                provider.name(),
                provider.name()
            ),
            None,
        )
    })?;
    let url = upstream::upstream_url(&target.base_url, path, query)
        .map_err(|err| ApiError::bad_request(err.to_string(), None))?;
    let mut request = crate::providers::UpstreamRequest { url, headers, body };
    let failed = |error| ApiError::PassthroughUpstream {
        provider: provider.name(),
        error: Box::new(error),
    };
    match (&target.credentials, &target.api_key) {
        (Some(credentials), _) => credentials
            .authorize_method(method.as_str(), &mut request)
            .await
            .map_err(failed)?,
        (None, Some(key)) => {
            let (name, value) = match provider {
                PassProvider::VertexAi => ("x-goog-api-key", key.expose().to_owned()),
                _ => ("authorization", format!("Bearer {}", key.expose())),
            };
            if let Ok(mut value) = HeaderValue::from_str(&value) {
                value.set_sensitive(true);
                request
                    .headers
                    .insert(axum::http::HeaderName::from_static(name), value);
            }
        }
        (None, None) => {}
    }
    Ok((request.url, (request.headers, request.body)))
}

/// What the request's finished event needs, carried to the end of the answer's body.
struct Report {
    state: AppState,
    config: Arc<Snapshot>,
    principal: Principal,
    provider: PassProvider,
    request_id: HeaderValue,
    started: Instant,
    method: Method,
    path: String,
    requested_model: String,
    stream: bool,
    first_byte: Option<Duration>,
    budget_hold: Option<crate::policy::budget::Reservation>,
}

impl Report {
    /// Emits the request's finished event: its spend row, metrics and access log line.
    fn emit(mut self, status: u16, outcome: Outcome, usage: Option<Usage>, model: Option<String>) {
        let model = if self.requested_model.is_empty() {
            model.unwrap_or_default()
        } else {
            self.requested_model.clone()
        };
        // Priced only when the answer said what it used; a model the price table does not know
        // is recorded as unpriced.
        let cost = usage.as_ref().map(|usage| {
            let price = self
                .config
                .config
                .prices
                .lookup(self.provider.name(), &model)
                .map(|(_, entry)| entry.price.clone());
            crate::money::cost::of_request(price.as_deref(), Some(usage), 0, 0)
        });
        if let Some(hold) = self.budget_hold.take() {
            let charged = cost.map_or(crate::money::Nanos::ZERO, |c| c.total);
            self.state.budgets.settle(hold, charged);
        }
        let event = Finished {
            request_id: self.request_id.to_str().unwrap_or(""),
            method: self.method.as_str(),
            path: &self.path,
            principal: Some(&self.principal),
            surface: Surface::OpenAi,
            requested_model: &model,
            deployment: None,
            passthrough_provider: Some(self.provider.name()),
            attempts: 1,
            usage: usage.as_ref(),
            status,
            outcome,
            stream: self.stream,
            latency: self.started.elapsed(),
            time_to_first_token: self.first_byte,
            end_user: None,
            metadata: None,
            cache_hit: false,
            cost,
            trace: None,
            upstream_latency: self.first_byte,
            rejection: None,
        };
        crate::telemetry::request_finished(&self.state, &event);
        self.state.metrics.request_ended();
    }
}

/// The upstream's body on its way to the caller, chunk by chunk as it arrives (never
/// buffered), read for usage on the way; when it ends, fails, goes quiet for longer than the
/// request timeout, or the caller goes away, the request is reported once.
struct Metered {
    body: http_body_util::BodyDataStream<hyper::body::Incoming>,
    meter: Option<UsageMeter>,
    report: Option<Report>,
    status: u16,
    /// Fires when the upstream has sent nothing for `idle_timeout`: the body is then cut
    /// rather than holding the caller's connection forever.
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_timeout: Duration,
    /// The body was cut for silence: it is over.
    cut: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Metered {
    fn finish(&mut self, outcome: Outcome) {
        let (Some(report), Some(meter)) = (self.report.take(), self.meter.take()) else {
            return;
        };
        let (usage, model) = meter.finish();
        let outcome = match outcome {
            Outcome::Answered if self.status >= 400 => Outcome::Failed,
            other => other,
        };
        report.emit(self.status, outcome, usage, model);
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.cut {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.body).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                let deadline = tokio::time::Instant::now() + this.idle_timeout;
                this.idle.as_mut().reset(deadline);
                if let Some(report) = this.report.as_mut() {
                    if report.first_byte.is_none() {
                        report.first_byte = Some(report.started.elapsed());
                    }
                }
                if let Some(meter) = this.meter.as_mut() {
                    meter.feed(&bytes);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish(Outcome::StreamFailed);
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.finish(Outcome::Answered);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.report.is_some() && this.idle.as_mut().poll(cx).is_ready() {
                    this.finish(Outcome::StreamFailed);
                    this.cut = true;
                    let quiet = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the upstream sent nothing within the request timeout",
                    );
                    return Poll::Ready(Some(Err(quiet.into())));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.finish(Outcome::Abandoned);
    }
}
