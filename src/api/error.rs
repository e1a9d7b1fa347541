//! The one place errors become HTTP responses: OpenAI-shaped JSON
//! (`{"error": {"message", "type", "param", "code"}}`) with the status of DESIGN.md invariant 3.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::providers::ProviderError;
use crate::router::{RouteError, UpstreamFailure};

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
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
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
            ApiError::Route(RouteError::Upstream(failure)) => upstream_status(&failure.error),
        }
    }

    /// The JSON body's `error` object.
    pub fn body(&self) -> serde_json::Value {
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
            ApiError::Route(RouteError::UnknownModel(model)) => (
                format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                Some("model".to_owned()),
                Some("model_not_found".to_owned()),
            ),
            ApiError::Route(RouteError::Upstream(failure)) => {
                upstream_body(&failure.group, failure.attempts, &failure.error)
            }
        };
        json!({ "error": { "message": message, "type": kind, "param": param, "code": code } })
    }
}

/// 4xx from the upstream is the client's problem and keeps its status; a failing upstream is a
/// 502, a slow one a 504.
fn upstream_status(error: &ProviderError) -> StatusCode {
    match error {
        ProviderError::Status { status, .. } if (400..500).contains(status) => {
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
        ProviderError::Status { status, message, kind, code, param, .. } if (400..500).contains(status) => (
            message.clone(),
            leak_type(kind.as_deref(), *status),
            param.clone(),
            code.clone(),
        ),
        ProviderError::Status { status, message, .. } => (
            format!("upstream error from model group `{group}` (status {status}, {attempts} attempt(s)): {message}"),
            "upstream_error",
            None,
            Some("upstream_error".to_owned()),
        ),
        ProviderError::Timeout(after) => (
            format!("upstream of model group `{group}` did not answer within {:.1}s ({attempts} attempt(s))", after.as_secs_f64()),
            "timeout_error",
            None,
            Some("upstream_timeout".to_owned()),
        ),
        ProviderError::Unsupported(message) => (message.clone(), "invalid_request_error", None, None),
        other => (
            format!("upstream error from model group `{group}` ({attempts} attempt(s)): {other}"),
            "upstream_error",
            None,
            Some(other.class().to_owned()),
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if let ApiError::Route(RouteError::Upstream(failure)) = &self {
            let UpstreamFailure {
                attempts,
                deployment,
                error,
                ..
            } = failure.as_ref();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(deployment) {
                headers.insert("x-switchyard-model-id", value);
            }
            headers.insert("x-switchyard-attempts", HeaderValue::from(*attempts));
            if let Some(wait) = error.retry_after() {
                headers.insert("retry-after", HeaderValue::from(wait.as_secs().max(1)));
            }
        }
        response
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
        let body = ApiError::bad_request("bad", Some("messages")).body();
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"].as_object().unwrap().contains_key("code"));
    }
}
