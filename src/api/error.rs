//! The one place errors become HTTP responses: OpenAI-shaped JSON
//! (`{"error": {"message", "type", "param", "code"}}`) with the status of DESIGN.md invariant 3.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::providers::ProviderError;
use crate::router::{
    Deployment, NoPick, OptionsError, RouteError, RouteReport, TrailEntry, Unavailable,
    UpstreamFailure,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A bug in the gateway (a handler panicked); the message says nothing more on purpose.
    #[error("the gateway hit an internal error; the request was not completed")]
    Internal,
    /// `POST /config/reload` refused the file; the message is the one `switchyard check` prints.
    #[error("config reload refused, the previous config keeps serving: {0}")]
    Reload(String),
    #[error("{0}")]
    Forbidden(String),
    /// A management call while the database is down (keys already cached keep working).
    #[error("{0}; management calls fail until it is back, requests with cached keys keep working")]
    StoreUnavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{}", .0.message())]
    ModelAccess(crate::policy::access::Denied),
    /// A key, team, user or end-user limit (rpm, tpm, parallel requests) was reached.
    #[error("{0}")]
    RateLimited(crate::policy::limits::Denial),
    /// A key, team, user or end-user budget is spent (or reserved by requests in flight).
    #[error("{0}")]
    Budget(crate::policy::budget::BudgetError),
    /// A guardrail refused the prompt (docs/guardrails.md).
    #[error("{0}")]
    Guardrail(crate::guardrails::Blocked),
    /// An external guardrail that fails closed could not give a verdict (docs/guardrails.md).
    #[error("guardrail `{0}` could not check the request (its service failed) and fails closed; the request was not sent")]
    GuardrailUnavailable(std::sync::Arc<str>),
    /// A provider pass-through route (`/openai/*` ...) could not get an answer from its
    /// upstream. (An answer, error statuses included, is passed back as it is.)
    #[error("pass-through to {provider}: {error}")]
    PassthroughUpstream {
        provider: &'static str,
        error: Box<ProviderError>,
    },
}

impl From<crate::guardrails::Blocked> for ApiError {
    fn from(blocked: crate::guardrails::Blocked) -> Self {
        ApiError::Guardrail(blocked)
    }
}

impl From<OptionsError> for ApiError {
    fn from(err: OptionsError) -> Self {
        ApiError::BadRequest {
            message: err.to_string(),
            param: Some(err.param),
        }
    }
}

impl From<crate::cache::ControlError> for ApiError {
    fn from(err: crate::cache::ControlError) -> Self {
        ApiError::BadRequest {
            message: err.to_string(),
            param: Some(err.param),
        }
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// The deployment the last attempt went to, and how many attempts were made, when the
    /// router got that far.
    pub fn served_by(&self) -> Option<(Arc<Deployment>, u32)> {
        let ApiError::Route(route) = self else {
            return None;
        };
        let report = route.report()?;
        let attempts = report
            .trail
            .iter()
            .filter(|entry| matches!(entry, TrailEntry::Called { .. }))
            .count() as u32;
        report.trail.iter().rev().find_map(|entry| match entry {
            TrailEntry::Called { deployment, .. } => Some((deployment.clone(), attempts)),
            TrailEntry::Skipped { .. } => None,
        })
    }

    /// Why the request was refused, for metrics (`switchyard_rejected_total{reason}`).
    pub fn rejection(&self) -> crate::telemetry::Rejection {
        let (reason, scope) = match self {
            ApiError::BadRequest { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::Route(RouteError::InvalidOptions { .. }) => ("bad_request", None),
            ApiError::Auth(_) => ("auth", None),
            ApiError::PayloadTooLarge { .. } => ("too_large", None),
            ApiError::NoRoute { .. } | ApiError::NotFound(_) => ("not_found", None),
            ApiError::Route(RouteError::UnknownModel(_)) => ("unknown_model", None),
            ApiError::Forbidden(_) | ApiError::ModelAccess(_) => ("forbidden", None),
            ApiError::RateLimited(denial) => ("rate_limit", Some(denial.scope.as_str())),
            ApiError::Budget(
                crate::policy::budget::BudgetError::Exceeded { scope, .. }
                | crate::policy::budget::BudgetError::Reserved { scope, .. },
            ) => ("budget", Some(scope.as_str())),
            ApiError::Route(RouteError::Unavailable(_)) => ("unavailable", None),
            ApiError::Route(RouteError::Upstream(_)) | ApiError::PassthroughUpstream { .. } => {
                ("upstream", None)
            }
            ApiError::Internal => ("internal", None),
            ApiError::Guardrail(_) => ("guardrail", None),
            ApiError::GuardrailUnavailable(_) => ("guardrail_unavailable", None),
            ApiError::Reload(_) | ApiError::StoreUnavailable(_) => ("other", None),
        };
        crate::telemetry::Rejection { reason, scope }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoRoute { .. } | ApiError::Route(RouteError::UnknownModel(_)) => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Reload(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::StoreUnavailable(_) | ApiError::GuardrailUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::ModelAccess(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Budget(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Guardrail(_) => StatusCode::BAD_REQUEST,
            ApiError::Route(RouteError::InvalidOptions { .. }) => StatusCode::BAD_REQUEST,
            ApiError::Route(RouteError::Upstream(failure)) => upstream_status(&failure.error),
            ApiError::PassthroughUpstream { error, .. } => upstream_status(error),
            ApiError::Route(RouteError::Unavailable(unavailable)) => match unavailable.reason {
                NoPick::CoolingDown {
                    rate_limited: true, ..
                }
                | NoPick::OverLimits { .. }
                | NoPick::OverBudget { .. } => StatusCode::TOO_MANY_REQUESTS,
                NoPick::ContextWindow { .. } => StatusCode::BAD_REQUEST,
                NoPick::CoolingDown { .. } | NoPick::AllTried => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// The JSON body's `error` object.
    pub fn body(&self) -> serde_json::Value {
        // LiteLLM's shape for a guardrail's `HTTPException(400, detail={"error": ...})`: the
        // message, `code` "400", and the detail with the guardrail's name and mode under
        // `provider_specific_fields`.
        if let ApiError::Guardrail(blocked) = self {
            return json!({ "error": {
                "message": blocked.message,
                "type": "invalid_request_error",
                "param": null,
                "code": "400",
                "provider_specific_fields": {
                    "error": blocked.message,
                    "guardrail_name": &*blocked.guardrail,
                    "guardrail_mode": blocked.mode,
                },
            } });
        }
        let (message, kind, param, code) = match self {
            ApiError::BadRequest { message, param } => (
                message.clone(),
                "invalid_request_error",
                param.clone(),
                None,
            ),
            ApiError::Auth(err) => (
                err.to_string(),
                "invalid_request_error",
                None,
                Some("invalid_api_key".to_owned()),
            ),
            ApiError::PayloadTooLarge { .. } => (
                self.to_string(),
                "invalid_request_error",
                None,
                Some("request_too_large".to_owned()),
            ),
            ApiError::NoRoute { .. } => (
                self.to_string(),
                "invalid_request_error",
                None,
                Some("unknown_url".to_owned()),
            ),
            ApiError::MethodNotAllowed { .. } => {
                (self.to_string(), "invalid_request_error", None, None)
            }
            ApiError::Internal => (self.to_string(), "internal_server_error", None, None),
            ApiError::Reload(_) => (
                self.to_string(),
                "invalid_request_error",
                None,
                Some("invalid_config".to_owned()),
            ),
            ApiError::Forbidden(message) => (
                message.clone(),
                "permission_error",
                None,
                Some("forbidden".to_owned()),
            ),
            ApiError::StoreUnavailable(_) => (
                self.to_string(),
                "service_unavailable_error",
                None,
                Some("database_unavailable".to_owned()),
            ),
            ApiError::RateLimited(_) => (
                self.to_string(),
                "rate_limit_error",
                None,
                Some("rate_limit_exceeded".to_owned()),
            ),
            // Rendered above with its detail.
            ApiError::Guardrail(blocked) => (
                blocked.message.clone(),
                "invalid_request_error",
                None,
                Some("400".to_owned()),
            ),
            ApiError::GuardrailUnavailable(_) => (
                self.to_string(),
                "service_unavailable_error",
                None,
                Some("guardrail_unavailable".to_owned()),
            ),
            // LiteLLM's type, which scripts match on.
            ApiError::Budget(_) => (
                self.to_string(),
                "budget_exceeded",
                None,
                Some("budget_exceeded".to_owned()),
            ),
            ApiError::ModelAccess(denied) => (
                denied.message(),
                denied.kind,
                Some("model".to_owned()),
                Some("403".to_owned()),
            ),
            ApiError::NotFound(message) => (
                message.clone(),
                "invalid_request_error",
                None,
                Some("not_found".to_owned()),
            ),
            ApiError::Route(RouteError::UnknownModel(model)) => (
                format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                Some("model".to_owned()),
                Some("model_not_found".to_owned()),
            ),
            ApiError::Route(RouteError::InvalidOptions { param, message }) => (
                format!("`{param}` {message}"),
                "invalid_request_error",
                Some(param.clone()),
                None,
            ),
            ApiError::Route(RouteError::Upstream(failure)) => {
                let group = match failure.report.fallbacks {
                    0 => format!("model group `{}`", failure.group),
                    n => format!(
                        "model group `{}` and {n} fallback group(s), last `{}`,",
                        failure.group,
                        last_group(&failure.report).unwrap_or(&failure.group)
                    ),
                };
                upstream_body(&group, failure.attempts, &failure.error)
            }
            ApiError::Route(RouteError::Unavailable(unavailable)) => unavailable_body(unavailable),
            ApiError::PassthroughUpstream { provider, error } => {
                upstream_body(&format!("the {provider} pass-through"), 1, error)
            }
        };
        json!({ "error": { "message": message, "type": kind, "param": param, "code": code } })
    }
}

/// 4xx from the upstream is the client's problem and keeps its status; a failing upstream is a
/// 502, a slow one a 504.
/// Upstream 4xx answers that are the client's doing keep their status. 401/403/404/407 are not:
/// they mean the gateway's own provider key, access or deployment is wrong, and passing them on
/// would make an SDK tell the client that *its* key is invalid.
pub(crate) fn is_client_fault(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 404 | 407)
}

fn upstream_status(error: &ProviderError) -> StatusCode {
    match error {
        ProviderError::Status { status, .. } if is_client_fault(*status) => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        ProviderError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        ProviderError::Unsupported(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn upstream_body(
    group: &str,
    attempts: u32,
    error: &ProviderError,
) -> (String, &'static str, Option<String>, Option<String>) {
    match error {
        // The upstream's own words, type and code for client errors: SDKs and apps branch on them
        // (context length exceeded, content policy ...).
        ProviderError::Status { status, message, kind, code, param, .. } if is_client_fault(*status) => (
            message.clone(),
            leak_type(kind.as_deref(), *status),
            param.clone(),
            code.clone(),
        ),
        ProviderError::Status { status, message, .. } => (
            format!("upstream error from {group} (last error: {}, status {status}, {attempts} attempt(s)): {message}", error.class()),
            "upstream_error",
            None,
            Some("upstream_error".to_owned()),
        ),
        ProviderError::Timeout(after) => (
            format!("upstream of {group} did not answer within {:.1}s ({attempts} attempt(s))", after.as_secs_f64()),
            "timeout_error",
            None,
            Some("upstream_timeout".to_owned()),
        ),
        ProviderError::Unsupported(message) => (message.clone(), "invalid_request_error", None, None),
        other => (
            format!("upstream error from {group} ({attempts} attempt(s)): {other}"),
            "upstream_error",
            None,
            Some(other.class().to_owned()),
        ),
    }
}

/// The group of the last deployment called.
fn last_group(report: &RouteReport) -> Option<&str> {
    report.trail.iter().rev().find_map(|entry| match entry {
        TrailEntry::Called { deployment, .. } => Some(deployment.model_name.as_str()),
        TrailEntry::Skipped { .. } => None,
    })
}

fn unavailable_body(
    unavailable: &Unavailable,
) -> (String, &'static str, Option<String>, Option<String>) {
    let group = &unavailable.group;
    let retry_in = unavailable.retry_after().map_or(String::new(), |wait| {
        format!("; retry in {:.1}s", wait.as_secs_f64())
    });
    match unavailable.reason {
        NoPick::CoolingDown {
            rate_limited,
            deployments,
            ..
        } => (
            format!(
                "No deployment of model group `{group}` is available: {deployments} deployment(s) are cooling down after {}{retry_in}",
                if rate_limited { "rate limit errors (429)" } else { "failures" }
            ),
            if rate_limited { "rate_limit_error" } else { "service_unavailable_error" },
            None,
            Some("deployments_cooling_down".to_owned()),
        ),
        NoPick::OverLimits { .. } => (
            format!(
                "Every deployment of model group `{group}` is at its rpm/tpm limit for this minute{retry_in}"
            ),
            "rate_limit_error",
            None,
            Some("rate_limit_exceeded".to_owned()),
        ),
        NoPick::OverBudget { .. } => (
            format!(
                "Every deployment of model group `{group}` has spent its max_budget for this period{retry_in}"
            ),
            "budget_exceeded",
            None,
            Some("deployment_budget_exceeded".to_owned()),
        ),
        NoPick::ContextWindow {
            prompt_tokens,
            largest,
        } => (
            format!(
                "The prompt (about {prompt_tokens} tokens) does not fit the context window of any deployment of model group `{group}` (the largest takes {largest} tokens)"
            ),
            "invalid_request_error",
            Some("messages".to_owned()),
            Some("context_length_exceeded".to_owned()),
        ),
        NoPick::AllTried => (
            format!("No deployment of model group `{group}` is available"),
            "service_unavailable_error",
            None,
            Some("no_available_deployment".to_owned()),
        ),
    }
}

/// Keeps a known OpenAI error type, otherwise derives one from the status.
fn leak_type(kind: Option<&str>, status: u16) -> &'static str {
    match (kind, status) {
        (Some("rate_limit_error"), _) | (_, 429) => "rate_limit_error",
        (Some("authentication_error"), _) => "authentication_error",
        (Some("permission_error"), _) | (_, 403) => "permission_error",
        (Some("not_found_error"), _) => "not_found_error",
        _ => "invalid_request_error",
    }
}

/// The error types of Anthropic's API; an upstream error of one of these keeps its type on
/// the Anthropic surface.
const ANTHROPIC_TYPES: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
];

impl ApiError {
    /// The error as Anthropic's API shapes it, for the `/v1/messages` surface:
    /// `{"type": "error", "error": {"type", "message"}}`. Same status and message as the
    /// OpenAI shape; the type is Anthropic's (the upstream's own, when it sent an Anthropic
    /// one, e.g. `overloaded_error`).
    pub fn anthropic_body(&self) -> serde_json::Value {
        let openai = self.body();
        let message = openai["error"]["message"].clone();
        let kind = match self {
            ApiError::Route(RouteError::Upstream(failure)) => match &failure.error {
                ProviderError::Status {
                    kind: Some(kind), ..
                } => ANTHROPIC_TYPES
                    .iter()
                    .copied()
                    .find(|t| *t == kind.as_str()),
                ProviderError::Timeout(_) => Some("timeout_error"),
                _ => None,
            },
            _ => None,
        }
        .unwrap_or_else(|| crate::providers::anthropic::error::type_of(self.status().as_u16()));
        json!({ "type": "error", "error": { "type": kind, "message": message } })
    }

    fn render(self, body: serde_json::Value) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let ApiError::RateLimited(denial) = &self {
            headers.insert("retry-after", HeaderValue::from(denial.retry_after_secs()));
            headers.insert(
                "retry-after-ms",
                HeaderValue::from(denial.retry_after.as_millis() as u64),
            );
            crate::policy::enforce::quota_headers(&denial.quotas, headers);
            return response;
        }
        if let ApiError::Budget(crate::policy::budget::BudgetError::Reserved { .. }) = &self {
            // Requests in flight hold the rest of the budget: one of them finishing frees it.
            headers.insert("retry-after", HeaderValue::from_static("1"));
            return response;
        }
        let (group, attempts, retry_after, report) = match &self {
            ApiError::Route(RouteError::Upstream(failure)) => {
                let UpstreamFailure {
                    group,
                    attempts,
                    deployment,
                    error,
                    report,
                } = failure.as_ref();
                if let Ok(value) = HeaderValue::from_str(deployment) {
                    headers.insert(super::MODEL_ID_HEADER, value);
                }
                (group, *attempts, error.retry_after(), report)
            }
            ApiError::Route(RouteError::Unavailable(unavailable)) => {
                let attempts = unavailable
                    .report
                    .trail
                    .iter()
                    .filter(|e| matches!(e, TrailEntry::Called { .. }))
                    .count() as u32;
                (
                    &unavailable.group,
                    attempts,
                    unavailable.retry_after(),
                    &unavailable.report,
                )
            }
            _ => return response,
        };
        if let Ok(value) = HeaderValue::from_str(group) {
            headers.insert(super::MODEL_GROUP_HEADER, value);
        }
        headers.insert(super::ATTEMPTS_HEADER, HeaderValue::from(attempts));
        if let Some(wait) = retry_after {
            // Whole seconds, rounded up: a client must not come back before the wait is over.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert("retry-after", HeaderValue::from(secs.max(1)));
            headers.insert("retry-after-ms", HeaderValue::from(wait.as_millis() as u64));
        }
        if !report.trail.is_empty() {
            if let Ok(trail) = HeaderValue::from_str(&report.trail_text()) {
                headers.insert(super::ATTEMPT_TRAIL_HEADER, trail);
            }
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        self.render(body)
    }
}

/// An [`ApiError`] on the Anthropic surface: same status and headers, Anthropic's JSON shape.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl<E: Into<ApiError>> From<E> for AnthropicError {
    fn from(error: E) -> Self {
        AnthropicError(error.into())
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let body = self.0.anthropic_body();
        self.0.render(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn upstream(error: ProviderError) -> ApiError {
        ApiError::Route(RouteError::upstream("g", 2, "d", error))
    }

    #[test]
    fn statuses_follow_the_invariant() {
        let status = |status: u16| {
            upstream(ProviderError::Status {
                status,
                message: "m".into(),
                kind: None,
                code: None,
                param: None,
                retry_after: None,
            })
            .status()
            .as_u16()
        };
        assert_eq!(status(400), 400);
        assert_eq!(status(429), 429);
        assert_eq!(status(500), 502);
        assert_eq!(status(503), 502);
        assert_eq!(
            upstream(ProviderError::Timeout(Duration::from_secs(1))).status(),
            504
        );
        assert_eq!(upstream(ProviderError::Connect("x".into())).status(), 502);
        assert_eq!(
            ApiError::Route(RouteError::UnknownModel("x".into())).status(),
            404
        );
        let anthropic = upstream(ProviderError::Status {
            status: 529,
            message: "Overloaded".into(),
            kind: Some("overloaded_error".into()),
            code: None,
            param: None,
            retry_after: None,
        });
        assert_eq!(anthropic.status(), 502);
        assert_eq!(
            anthropic.anthropic_body()["error"]["type"],
            "overloaded_error"
        );
        assert_eq!(anthropic.anthropic_body()["type"], "error");
        assert_eq!(
            ApiError::Route(RouteError::UnknownModel("x".into())).anthropic_body()["error"]["type"],
            "not_found_error"
        );
        assert_eq!(
            upstream(ProviderError::Timeout(Duration::from_secs(1))).anthropic_body()["error"]
                ["type"],
            "timeout_error"
        );
        assert_eq!(
            upstream(ProviderError::Connect("x".into())).anthropic_body()["error"]["type"],
            "api_error"
        );
        let body = ApiError::bad_request("bad", Some("messages")).body();
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"].as_object().unwrap().contains_key("code"));
    }
}
