//! Bedrock's errors: the HTTP status, the error's name in the `x-amzn-ErrorType` header
//! (`ValidationException:http://internal.amazon.com/...`) and `{"message": "..."}`. Inside a
//! ConverseStream (status 200) an exception arrives as an event-stream message named
//! `exception:<type>` (`throttlingException`, `modelStreamErrorException` ...).

use axum::http::header::HeaderMap;

use super::wire::ErrorBody;
use crate::providers::openai::{excerpt, retry_after};
use crate::providers::ProviderError;

/// An AWS error name (either capitalisation) as the OpenAI error type clients know, and the
/// status it implies when there was none (stream exceptions).
fn classify(name: &str) -> (Option<&'static str>, u16) {
    let lower = name.to_ascii_lowercase();
    match lower.trim_end_matches("exception") {
        "validation" => (Some("invalid_request_error"), 400),
        "accessdenied" => (Some("permission_error"), 403),
        "unrecognizedclient"
        | "expiredtoken"
        | "invalidsignature"
        | "missingauthenticationtoken"
        | "incompletesignature" => (Some("authentication_error"), 403),
        "resourcenotfound" => (Some("not_found_error"), 404),
        "throttling" | "toomanyrequests" => (Some("rate_limit_error"), 429),
        "modeltimeout" => (None, 408),
        "modelnotready" | "serviceunavailable" => (None, 503),
        "modelerror" => (None, 424),
        "modelstreamerror" => (None, 424),
        "servicequotaexceeded" => (Some("rate_limit_error"), 429),
        _ => (None, 500),
    }
}

/// Reads a Bedrock error answer.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let name = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .or_else(|| excerpt(body))
        .unwrap_or_else(|| format!("upstream returned status {status}"));
    let kind = name.as_deref().and_then(|n| classify(n).0);
    ProviderError::Status {
        status,
        message,
        kind: kind.map(str::to_owned),
        code: name,
        param: None,
        retry_after: retry_after(headers),
    }
}

/// An exception message of a ConverseStream: `exception_type` from its header, `payload` its
/// JSON body.
pub fn stream_exception(exception_type: &str, payload: &str) -> ProviderError {
    let (kind, status) = classify(exception_type);
    let message = serde_json::from_str::<ErrorBody>(payload)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| format!("Bedrock stream exception {exception_type}"));
    ProviderError::Status {
        status,
        message,
        kind: kind.map(str::to_owned),
        code: Some(exception_type.to_owned()),
        param: None,
        retry_after: None,
    }
}
