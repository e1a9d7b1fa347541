//! How a call to an upstream can fail, in terms the router (retry or not) and the API layer
//! (which status to answer) both understand.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The upstream answered with an error status. `message` is the upstream's own message with
    /// the deployment's key removed.
    #[error("upstream returned {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The upstream's error `type`, when it sent one.
        kind: Option<String>,
        code: Option<String>,
        param: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error("cannot reach upstream: {0}")]
    Connect(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream sent an invalid response: {0}")]
    InvalidResponse(String),
    #[error("{0}")]
    Unsupported(String),
}

impl ProviderError {
    /// Failures worth another attempt: connection trouble, timeouts, 408/409/429 and 5xx.
    /// A 400 means the request itself is wrong and is never retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => {
                matches!(status, 408 | 409 | 429) || *status >= 500
            }
            ProviderError::Connect(_) | ProviderError::Timeout(_) => true,
            ProviderError::InvalidResponse(_) | ProviderError::Unsupported(_) => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The prompt does not fit the model's context window. OpenAI says so with the code
    /// `context_length_exceeded`; other providers only in words, so their usual phrasings are
    /// matched too (Anthropic: "prompt is too long"; Gemini: "exceeds the maximum number of
    /// tokens"). Only client errors qualify: a 5xx is never the prompt's length.
    pub fn is_context_window_exceeded(&self) -> bool {
        let ProviderError::Status {
            status,
            message,
            code,
            ..
        } = self
        else {
            return false;
        };
        if !(400..500).contains(status) || *status == 429 {
            return false;
        }
        if code.as_deref() == Some("context_length_exceeded") {
            return true;
        }
        let message = message.to_ascii_lowercase();
        [
            "context_length_exceeded",
            "maximum context length",
            "context length",
            "context window",
            "prompt is too long",
            "too many tokens",
            "exceeds the maximum number of tokens",
            "input is too long",
        ]
        .iter()
        .any(|phrase| message.contains(phrase))
    }

    /// The upstream refused the content (OpenAI `content_policy_violation`, Azure
    /// `content_filter`).
    pub fn is_content_policy(&self) -> bool {
        let ProviderError::Status {
            status,
            message,
            code,
            kind,
            ..
        } = self
        else {
            return false;
        };
        if !(400..500).contains(status) {
            return false;
        }
        let flagged = |value: &Option<String>| {
            matches!(
                value.as_deref(),
                Some(
                    "content_filter"
                        | "content_policy_violation"
                        | "content_policy_violation_error"
                )
            )
        };
        if flagged(code) || flagged(kind) {
            return true;
        }
        let message = message.to_ascii_lowercase();
        message.contains("content management policy") || message.contains("content policy")
    }

    /// A short class name for logs, metrics and the final error message.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::Status { status: 429, .. } => "rate_limited",
            ProviderError::Status { status, .. } if *status >= 500 => "upstream_5xx",
            ProviderError::Status { .. } => "upstream_4xx",
            ProviderError::Connect(_) => "connect_error",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::InvalidResponse(_) => "invalid_response",
            ProviderError::Unsupported(_) => "unsupported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str, code: Option<&str>) -> ProviderError {
        ProviderError::Status {
            status,
            message: message.into(),
            kind: None,
            code: code.map(str::to_owned),
            param: None,
            retry_after: None,
        }
    }

    #[test]
    fn context_window_and_content_policy_are_recognised() {
        assert!(status(400, "x", Some("context_length_exceeded")).is_context_window_exceeded());
        assert!(status(
            400,
            "This model's maximum context length is 8192 tokens",
            None
        )
        .is_context_window_exceeded());
        assert!(status(400, "prompt is too long: 210000 tokens", None).is_context_window_exceeded());
        assert!(!status(500, "maximum context length", None).is_context_window_exceeded());
        assert!(!status(400, "bad temperature", None).is_context_window_exceeded());
        assert!(status(400, "x", Some("content_filter")).is_content_policy());
        assert!(status(400, "x", Some("content_policy_violation")).is_content_policy());
        assert!(!status(400, "x", None).is_content_policy());
        assert!(!ProviderError::Timeout(Duration::from_secs(1)).is_content_policy());
    }
}
