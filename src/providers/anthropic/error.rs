//! Anthropic's errors: `{"type": "error", "error": {"type": ..., "message": ...}}` with a status
//! per type (400 invalid_request_error, 401 authentication_error, 402 billing_error,
//! 403 permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error,
//! 500 api_error, 504 timeout_error, 529 overloaded_error).

use axum::http::header::HeaderMap;

use super::wire::{ErrorBody, ErrorEnvelope};
use crate::providers::openai::{excerpt, retry_after};
use crate::providers::ProviderError;

/// The status Anthropic uses for an error type (for errors that arrive inside a stream, after
/// the 200). Unknown types count as a server error.
pub fn status_of(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The error type Anthropic uses for a status (for errors Switchyard renders on its own
/// Anthropic surface).
pub fn type_of(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Reads an Anthropic error response. `kind` keeps Anthropic's type, so a `/v1/messages` client
/// sees it unchanged and the OpenAI surface can name it; 529 (overloaded) stays a 5xx, which the
/// router retries.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let retry_after = retry_after(headers);
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => ProviderError::Status {
            status,
            message: if envelope.error.message.is_empty() {
                format!("upstream returned status {status}")
            } else {
                envelope.error.message
            },
            kind: (!envelope.error.kind.is_empty()).then_some(envelope.error.kind),
            code: None,
            param: None,
            retry_after,
        },
        Err(_) => ProviderError::Status {
            status,
            message: excerpt(body).unwrap_or_else(|| format!("upstream returned status {status}")),
            kind: None,
            code: None,
            param: None,
            retry_after,
        },
    }
}

/// An `error` event inside a stream (e.g. `overloaded_error` after the 200).
pub fn stream_error(error: &ErrorBody) -> ProviderError {
    ProviderError::Status {
        status: status_of(&error.kind),
        message: error.message.clone(),
        kind: Some(error.kind.clone()),
        code: None,
        param: None,
        retry_after: None,
    }
}
