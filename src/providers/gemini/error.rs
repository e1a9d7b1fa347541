//! Gemini's errors: `{"error": {"code", "message", "status", "details"}}` (Google's API error
//! model), sometimes wrapped in an array. `status` is a gRPC code name; `RetryInfo` in `details`
//! says how long to wait after a `RESOURCE_EXHAUSTED`.

use std::time::Duration;

use axum::http::header::HeaderMap;
use serde_json::Value;

use super::wire::ErrorEnvelope;
use crate::providers::openai::{excerpt, retry_after};
use crate::providers::ProviderError;

/// Google's status name as the OpenAI error type clients know.
fn openai_type(status: &str) -> Option<&'static str> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => "invalid_request_error",
        "UNAUTHENTICATED" => "authentication_error",
        "PERMISSION_DENIED" => "permission_error",
        "NOT_FOUND" => "not_found_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        _ => return None,
    })
}

/// `"retryDelay": "17s"` (a protobuf Duration in JSON) from a `RetryInfo` detail.
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details.iter().find_map(|detail| {
        let text = detail.get("retryDelay")?.as_str()?;
        let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
        (seconds.is_finite() && (0.0..86_400.0).contains(&seconds))
            .then(|| Duration::from_secs_f64(seconds))
    })
}

/// Reads a Gemini error body. `status` is the HTTP status; inside a stream (where it was 200)
/// the body's own `code` says what failed.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let envelope = if is_array {
        serde_json::from_slice::<Vec<ErrorEnvelope>>(body)
            .ok()
            .and_then(|all| all.into_iter().next())
    } else {
        serde_json::from_slice::<ErrorEnvelope>(body).ok()
    };
    let is_error = (400..600).contains(&status);
    match envelope {
        Some(ErrorEnvelope { error }) => {
            let status = if is_error {
                status
            } else {
                error.code.filter(|c| (400..600).contains(c)).unwrap_or(500)
            };
            ProviderError::Status {
                status,
                message: if error.message.is_empty() {
                    format!("upstream returned status {status}")
                } else {
                    error.message
                },
                kind: error
                    .status
                    .as_deref()
                    .and_then(openai_type)
                    .map(str::to_owned),
                code: error.status,
                param: None,
                retry_after: retry_after(headers).or_else(|| retry_delay(&error.details)),
            }
        }
        None => ProviderError::Status {
            status: if is_error { status } else { 500 },
            message: excerpt(body).unwrap_or_else(|| format!("upstream returned status {status}")),
            kind: None,
            code: None,
            param: None,
            retry_after: retry_after(headers),
        },
    }
}
