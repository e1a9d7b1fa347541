//! OpenAI-shaped error responses: `{"error": {"message", "type", "param", "code"}}`.
//!
//! Every error the mock sends, injected or real, is an [`ApiError`] rendered here, so a gateway
//! under test sees exactly the shape it would see from the provider.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
    retry_after: Option<u64>,
}

/// The `type` OpenAI uses for a status: 429 is a rate limit, 5xx a server error, and any other
/// 4xx an invalid request.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// A 400 for a request the mock cannot read, naming the offending parameter if known.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            param,
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    pub fn missing(param: &'static str) -> Self {
        Self::bad_request(
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    }

    /// The error `fail_next` and `error_rate` inject.
    pub fn injected(status: u16, retry_after: Option<u64>) -> Self {
        // The config only admits 400..=599, which are all valid status codes.
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            code: (status == StatusCode::TOO_MANY_REQUESTS).then_some("rate_limit_exceeded"),
            retry_after,
            ..Self::new(
                status,
                format!("mock upstream injected error (status {})", status.as_u16()),
            )
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Puts the `retry-after` header (if any) on a response rendered in another provider's
    /// error shape.
    pub fn add_retry_after(&self, response: &mut Response) {
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
}

/// Typed rather than `json!` so the fields come out in OpenAI's order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: error_type(self.status),
                param: self.param,
                code: self.code,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_maps_to_openai_type() {
        assert_eq!(
            error_type(StatusCode::TOO_MANY_REQUESTS),
            "rate_limit_error"
        );
        assert_eq!(error_type(StatusCode::BAD_GATEWAY), "server_error");
        assert_eq!(
            error_type(StatusCode::UNAUTHORIZED),
            "invalid_request_error"
        );
    }

    #[test]
    fn injected_error_carries_retry_after() {
        let response = ApiError::injected(429, Some(7)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("7"))
        );
        let response = ApiError::injected(503, None).into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
