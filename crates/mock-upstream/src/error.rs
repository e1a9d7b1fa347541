//! OpenAI-shaped error responses: `{"error": {"message", "type", "param", "code"}}`.
//!
//! Every error the mock sends, injected or real, has this shape, so a gateway under test sees
//! exactly what it would see from the provider.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The `type` OpenAI uses for a status: 429 is a rate limit, 5xx a server error, and any other
/// 4xx an invalid request.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

pub fn openai_error(
    status: StatusCode,
    message: impl Into<String>,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({
        "error": {
            "message": message.into(),
            "type": error_type(status),
            "param": param,
            "code": code,
        }
    });
    (status, Json(body)).into_response()
}

/// A 400 for a request the mock cannot read.
pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Response {
    openai_error(StatusCode::BAD_REQUEST, message, param, None)
}

/// The error `fail_next` and `error_rate` inject.
pub fn injected_error(status: u16, retry_after: Option<u64>) -> Response {
    // The config only admits 400..=599, which are all valid status codes.
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = (status == StatusCode::TOO_MANY_REQUESTS).then_some("rate_limit_exceeded");
    let mut response = openai_error(
        status,
        format!("mock upstream injected error (status {})", status.as_u16()),
        None,
        code,
    );
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_maps_to_openai_type() {
        assert_eq!(error_type(StatusCode::TOO_MANY_REQUESTS), "rate_limit_error");
        assert_eq!(error_type(StatusCode::BAD_GATEWAY), "server_error");
        assert_eq!(error_type(StatusCode::UNAUTHORIZED), "invalid_request_error");
    }

    #[test]
    fn injected_error_carries_retry_after() {
        let response = injected_error(429, Some(7));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("7"))
        );
        assert!(injected_error(503, None)
            .headers()
            .get(header::RETRY_AFTER)
            .is_none());
    }
}
