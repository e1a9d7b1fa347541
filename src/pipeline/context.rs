//! The request context: made once at the edge, read by every stage, and the one place the
//! request-finished event is emitted from. It is an axum extractor that authenticates, so a
//! handler that takes it cannot forget to check the caller, and a handler that does not take it
//! never reaches a model.
//!
//! The context owns the event: a non-streaming answer emits it in [`RequestContext::respond`];
//! a stream carries the context in its body and emits when the stream ends, fails or is
//! dropped because the client left. Dropping a context that has not emitted (the handler's
//! future cancelled, a panic) emits too, so every admitted request is reported exactly once.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::finished::{Finished, Outcome};
use super::{Edge, Surface};
use crate::api::error::{AnthropicError, ApiError};
use crate::auth::{authenticate, Principal};
use crate::money::Nanos;
use crate::providers::http::HttpClient;
use crate::router::{Deployment, RequestOptions, Router, Served};
use crate::schema::{Extra, Usage};
use crate::state::{AppState, Snapshot};

pub struct RequestContext {
    pub request_id: HeaderValue,
    pub started: Instant,
    pub principal: Principal,
    pub surface: Surface,
    /// The configuration this request runs on from start to end, even if a reload swaps it.
    pub config: Arc<Snapshot>,
    /// The model group the client asked for.
    pub requested_model: String,
    pub end_user: Option<String>,
    /// The request's `metadata` (`feature`, `tags` ...).
    pub metadata: Option<Map<String, Value>>,
    pub stream: bool,
    /// When the router gives up: `timeout` from the body, else the configured deadline.
    pub deadline: Option<Instant>,
    /// Filled as the request goes: who answered, what it cost, when output started.
    pub served: Option<(Arc<Deployment>, u32)>,
    pub usage: Option<Usage>,
    pub first_output: Option<Instant>,
    pub cache_hit: bool,
    /// What the request cost, once known (set where usage is known; see `money`).
    pub cost: Option<crate::money::Cost>,
    /// The prompt's token estimate, for a cost when no usage is reported (set by handlers
    /// where it is cheap, or when usage is missing).
    pub prompt_tokens_estimate: u64,
    /// Bytes of answer sent (a stream's events, a whole body), for the same estimate.
    pub output_bytes: u64,
    /// The rate limits this request took (released and reconciled when it finishes).
    pub admission: Option<crate::policy::enforce::Admission>,
    /// The request's `max_tokens` (set by the surface before `admit`), for its worst-case cost.
    pub max_output_tokens: Option<u64>,
    /// The successful attempt's time at the upstream (from the router).
    pub upstream_latency: Option<std::time::Duration>,
    /// Why the request was refused before a deployment answered (for metrics).
    rejection: Option<crate::telemetry::Rejection>,
    /// What the request reserved on its budgets (settled with its cost when it finishes).
    budget_hold: Option<crate::policy::budget::Reservation>,
    /// Every log line of the request's stages is inside it, so a warning names its request.
    /// The request's OpenTelemetry trace, when traces are on (see `telemetry::traces`).
    pub trace: Option<Arc<crate::telemetry::traces::RequestTrace>>,
    method: Method,
    path: Box<str>,
    state: AppState,
    emitted: bool,
}

/// The authenticated caller and the configuration the request runs on: the extractor of every
/// route that needs a key but calls no model (`/v1/models`, `/health`, admin routes).
pub struct Caller {
    pub principal: Principal,
    pub config: Arc<Snapshot>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let config = state.snapshot();
        let now_ms = crate::auth::cache::now_ms();
        match authenticate(
            &parts.headers,
            config.master_key.as_ref(),
            &state.identities,
            now_ms,
        ) {
            Ok(principal) => {
                if let Some(key) = principal.key() {
                    if !route_allowed(&key.allowed_routes, parts.uri.path()) {
                        return Err(Surface::of_path(parts.uri.path()).render(
                            ApiError::Forbidden(format!(
                                "this key may not call {}; its allowed_routes are {:?}",
                                parts.uri.path(),
                                key.allowed_routes
                            )),
                        ));
                    }
                }
                Ok(Caller { principal, config })
            }
            Err(err) => Err(Surface::of_path(parts.uri.path()).render(ApiError::from(err))),
        }
    }
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Caller { principal, config } = Caller::from_request_parts(parts, state).await?;
        let edge = parts
            .extensions
            .get::<Edge>()
            .cloned()
            .unwrap_or_else(Edge::now);
        // Brought down again when the finished event is emitted (exactly once).
        state.metrics.request_started();
        Ok(RequestContext {
            request_id: edge.request_id,
            started: edge.started,
            principal,
            surface: Surface::of_path(parts.uri.path()),
            config,
            requested_model: String::new(),
            end_user: None,
            metadata: None,
            stream: false,
            deadline: None,
            served: None,
            usage: None,
            first_output: None,
            cache_hit: false,
            cost: None,
            prompt_tokens_estimate: 0,
            output_bytes: 0,
            admission: None,
            max_output_tokens: None,
            upstream_latency: None,
            rejection: None,
            budget_hold: None,
            trace: crate::telemetry::traces::start_request(&parts.headers),
            method: parts.method.clone(),
            path: parts.uri.path().into(),
            state: state.clone(),
            emitted: false,
        })
    }
}

impl RequestContext {
    pub fn router(&self) -> &Router {
        &self.config.router
    }

    /// The request as its log lines name it (see `telemetry::log_scope`).
    pub fn log_scope(&self) -> crate::telemetry::log_scope::Scope {
        crate::telemetry::log_scope::Scope {
            request_id: self.request_id.clone(),
            caller: self.principal.clone(),
        }
    }

    /// The stored Responses conversations (`previous_response_id`).
    pub fn conversations(&self) -> &Arc<crate::providers::responses::store::Conversations> {
        &self.state.conversations
    }

    pub fn max_request_bytes(&self) -> usize {
        self.config.max_request_bytes
    }

    /// The shared upstream client.
    pub fn http(&self) -> &HttpClient {
        &self.config.http
    }

    /// Cancelled when a shutdown's drain time is over.
    pub fn streams_cut(&self) -> CancellationToken {
        self.state.streams_cut.clone()
    }

    /// Stages 2 and 3 for a parsed body: reads the gateway controls out of the body's unknown
    /// fields, records what the request is (model, end user, metadata), runs the prepare stage
    /// and the pre-call policy. What it returns steers the router.
    /// `prompt_tokens` estimates the prompt, for token limits; it runs only when one applies.
    pub async fn admit(
        &mut self,
        model: &str,
        stream: bool,
        end_user: Option<&str>,
        extra: &mut Extra,
        prompt_tokens: &(dyn Fn() -> u64 + Sync),
    ) -> Result<RequestOptions, ApiError> {
        let mut options = RequestOptions::take_from(extra)?;
        if let Some(trace) = &self.trace {
            trace.note_max_tokens(self.max_output_tokens);
            options.trace = Some(trace.clone());
        }
        model.clone_into(&mut self.requested_model);
        self.stream = stream;
        self.end_user = end_user.filter(|u| !u.is_empty()).map(str::to_owned);
        self.metadata.clone_from(&options.metadata);
        let timeout = options
            .timeout
            .unwrap_or(self.config.router.settings().deadline);
        self.deadline = Some(self.started + timeout);
        // Prepare: prompt templates render here (issue 15).
        let end_user = match &self.end_user {
            Some(id) if self.state.identities.has_end_users() => self.state.identities.end_user(id),
            _ => None,
        };
        crate::policy::pre_call(
            &self.principal,
            end_user.as_deref(),
            &self.config.router,
            model,
            &mut options,
        )?;
        self.admission = crate::policy::enforce::admit(
            self.state.limiter.as_ref(),
            &self.principal,
            end_user.as_ref(),
            model,
            prompt_tokens,
        )
        .await
        .map_err(ApiError::RateLimited)?;
        let now_ms = crate::auth::cache::now_ms();
        let budgets = crate::policy::budget::checks(&self.principal, end_user.as_deref(), now_ms);
        if !budgets.is_empty() {
            let worst = self.worst_case_cost(model, prompt_tokens);
            let hold = self
                .state
                .budgets
                .reserve(&budgets, worst)
                .await
                .map_err(ApiError::Budget)?;
            self.budget_hold = Some(hold);
        }
        Ok(options)
    }

    /// The most this request can cost: its prompt estimate plus `max_tokens` (else
    /// [`DEFAULT_OUTPUT_ALLOWANCE`](crate::policy::budget::DEFAULT_OUTPUT_ALLOWANCE)) at the
    /// priciest deployment of its group. Zero when no deployment of the group has a price.
    fn worst_case_cost(&self, model: &str, prompt_tokens: &(dyn Fn() -> u64 + Sync)) -> Nanos {
        let Ok(group) = self.config.router.group(model) else {
            return Nanos::ZERO;
        };
        let per_token = group
            .deployments
            .iter()
            .map(|d| d.cost_per_token)
            .filter(|p| p.is_finite())
            .fold(0.0_f64, f64::max);
        if per_token <= 0.0 {
            return Nanos::ZERO;
        }
        let output = self
            .max_output_tokens
            .unwrap_or(crate::policy::budget::DEFAULT_OUTPUT_ALLOWANCE);
        let tokens = prompt_tokens().saturating_add(output);
        Nanos::from_usd(tokens as f64 * per_token)
    }

    /// Records which deployment answered.
    pub fn served<T>(&mut self, served: &Served<T>) {
        self.served = Some((served.deployment.clone(), served.attempts));
        self.upstream_latency = Some(served.upstream_latency);
    }

    /// The end of a non-streaming request (or of a stream that failed before it started):
    /// renders the answer or the error, and emits the finished event.
    pub fn respond(mut self, result: Result<Response, ApiError>) -> Response {
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                if let Some(report) = error.served_by() {
                    self.served.get_or_insert(report);
                }
                if self.served.is_none() {
                    self.rejection = Some(error.rejection());
                }
                // Only a spent budget: one held by requests in flight stays a 429 to retry.
                let budget = matches!(
                    error,
                    ApiError::Budget(crate::policy::budget::BudgetError::Exceeded { .. })
                );
                let mut response = self.surface.render(error);
                if budget {
                    *response.status_mut() = self.config.config.budget_exceeded_status;
                }
                response
            }
        };
        if let Some(admission) = &self.admission {
            admission.headers(response.headers_mut());
        }
        let status = response.status().as_u16();
        if status < 400 && self.served.is_some() {
            use axum::body::HttpBody as _;
            if self.usage.is_none() {
                self.output_bytes = response.body().size_hint().exact().unwrap_or(0);
            }
            let cost = self.settle_cost();
            cost_headers(response.headers_mut(), cost.total);
        }
        let outcome = if status < 400 {
            Outcome::Answered
        } else {
            Outcome::Failed
        };
        self.emit(status, outcome);
        response.extensions_mut().insert(Reported);
        response
    }

    /// Marks a streaming response: the context now travels in its body and emits from there.
    pub fn stream_response(&self, response: &mut Response) {
        if let Some(admission) = &self.admission {
            admission.headers(response.headers_mut());
        }
        response.extensions_mut().insert(Reported);
    }

    /// Output reached the client (first call counts: time to first token).
    pub fn output_sent(&mut self) {
        if self.first_output.is_none() {
            self.first_output = Some(Instant::now());
        }
    }

    /// What the request cost: the served deployment's price times the usage reported, else an
    /// estimate; computed once, then kept.
    pub fn settle_cost(&mut self) -> crate::money::Cost {
        if let Some(cost) = self.cost {
            return cost;
        }
        let price = self
            .served
            .as_ref()
            .and_then(|(deployment, _)| deployment.price.as_deref());
        let cost = crate::money::cost::of_request(
            price,
            self.usage.as_ref(),
            self.prompt_tokens_estimate,
            self.output_bytes,
        );
        self.cost = Some(cost);
        cost
    }

    /// Emits the finished event, once.
    pub fn emit(&mut self, status: u16, outcome: Outcome) {
        if self.emitted {
            return;
        }
        self.emitted = true;
        // The limits are released here (parallel slots) and reconciled with what the provider
        // reported (tokens); with no usage, the reservation stands.
        if let Some(admission) = self.admission.take() {
            if let Some(usage) = &self.usage {
                admission.reconcile(self.state.limiter.as_ref(), usage.total_tokens);
            }
        }
        // A stream's cost is known when it ends (or is cut, or abandoned): whatever reached the
        // client was paid for. A request that failed before any answer costs nothing.
        if self.cost.is_none()
            && self.served.is_some()
            && (status < 400 || self.usage.is_some() || self.output_bytes > 0)
        {
            self.settle_cost();
        }
        // Budgets: the reservation becomes what the request cost (nothing, if it failed
        // before a cost was known).
        if let Some(hold) = self.budget_hold.take() {
            let cost = self.cost.map_or(Nanos::ZERO, |c| c.total);
            self.state.budgets.settle(hold, cost);
        }
        if let (Some((deployment, _)), Some(cost)) = (&self.served, &self.cost) {
            if let Some(budget) = deployment.budget {
                let now = crate::auth::cache::now_ms();
                deployment
                    .stats
                    .budget
                    .add(budget.window(now).0, cost.total);
            }
        }
        let latency = self.started.elapsed();
        let event = Finished {
            request_id: self.request_id.to_str().unwrap_or(""),
            method: self.method.as_str(),
            path: &self.path,
            principal: Some(&self.principal),
            surface: self.surface,
            requested_model: &self.requested_model,
            deployment: self.served.as_ref().map(|(d, _)| d),
            passthrough_provider: None,
            attempts: self.served.as_ref().map_or(0, |(_, attempts)| *attempts),
            usage: self.usage.as_ref(),
            status,
            outcome,
            stream: self.stream,
            latency,
            time_to_first_token: self
                .first_output
                .map(|at| at.saturating_duration_since(self.started)),
            end_user: self.end_user.as_deref(),
            metadata: self.metadata.as_ref(),
            cache_hit: self.cache_hit,
            cost: self.cost,
            trace: self.trace.as_deref(),
            upstream_latency: self.upstream_latency,
            rejection: self.rejection,
        };
        crate::telemetry::request_finished(&self.state, &event);
        self.state.metrics.request_ended();
    }
}

impl Drop for RequestContext {
    fn drop(&mut self) {
        if !self.emitted {
            if std::thread::panicking() {
                self.emit(500, Outcome::Panicked);
            } else {
                // The handler's future was dropped: the client closed the connection first.
                self.emit(499, Outcome::Abandoned);
            }
        }
    }
}

/// LiteLLM's `allowed_routes`: exact paths (with or without `/v1`), a trailing `*` for a prefix,
/// and the named sets `llm_api_routes`, `info_routes` and `management_routes`. Empty allows all.
fn route_allowed(allowed: &[String], path: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let bare = path.strip_prefix("/v1").unwrap_or(path);
    const LLM: &[&str] = &[
        "/chat/completions",
        "/completions",
        "/embeddings",
        "/rerank",
        "/v2/rerank",
        "/messages",
        "/messages/count_tokens",
        "/responses",
        "/models",
    ];
    const INFO: &[&str] = &[
        "/key/info",
        "/user/info",
        "/team/info",
        "/models",
        "/health",
    ];
    allowed.iter().any(|entry| match entry.as_str() {
        "llm_api_routes" => {
            LLM.contains(&bare) || bare.starts_with("/models/") || bare.starts_with("/responses/")
        }
        "info_routes" => INFO.contains(&bare),
        "management_routes" => ["/key/", "/team/", "/user/", "/customer/", "/end_user/"]
            .iter()
            .any(|p| bare.starts_with(p)),
        pattern => {
            let pattern = pattern.strip_prefix("/v1").unwrap_or(pattern);
            match pattern.strip_suffix('*') {
                Some(prefix) => bare.starts_with(prefix),
                None => bare == pattern,
            }
        }
    })
}

/// LiteLLM's and Switchyard's cost headers, exact decimal dollars.
pub const LITELLM_COST_HEADER: &str = "x-litellm-response-cost";
pub const COST_HEADER: &str = "x-switchyard-response-cost";

fn cost_headers(headers: &mut axum::http::HeaderMap, total: crate::money::Nanos) {
    const LITELLM: axum::http::HeaderName =
        axum::http::HeaderName::from_static(LITELLM_COST_HEADER);
    const OURS: axum::http::HeaderName = axum::http::HeaderName::from_static(COST_HEADER);
    let value = total.header_value();
    headers.insert(LITELLM, value.clone());
    headers.insert(OURS, value);
}

/// On a response whose finished event the pipeline emits (or will, from a stream body): the
/// edge middleware then does not report the request itself.
#[derive(Clone, Copy)]
pub struct Reported;

impl Surface {
    /// The error as this surface's clients expect it.
    pub fn render(self, error: ApiError) -> Response {
        match self {
            Surface::OpenAi => error.into_response(),
            Surface::Anthropic => AnthropicError(error).into_response(),
        }
    }
}
