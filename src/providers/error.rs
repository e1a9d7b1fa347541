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
