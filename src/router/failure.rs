//! What a failed attempt means to the router: retry it, hold it against the deployment, fall back,
//! or give up. One table, so retries, cooldowns and fallbacks never disagree about an error.
//!
//! | kind | examples | retried | counts toward a cooldown | falls back |
//! |---|---|---|---|---|
//! | `BadRequest` | 400, 413, 422 | never | no | no: the request itself is wrong |
//! | `ContextWindow` | `context_length_exceeded` | never | no | `context_window_fallbacks`, else `fallbacks` |
//! | `ContentPolicy` | `content_filter` | never | no | `content_policy_fallbacks`, else `fallbacks` |
//! | `Unsupported` | this provider cannot express the request | never | no | `fallbacks` |
//! | `Authentication` | 401, 403 | only with a retry policy | yes | `fallbacks` |
//! | `NotFound` | 404 | never | yes | `fallbacks` |
//! | `RateLimited` | 429 | yes | cools down at once | `fallbacks` |
//! | `Timeout` | our timeout, 408 | yes | yes | `fallbacks` |
//! | `Conflict` | 409 | yes | no | `fallbacks` |
//! | `ServerError` | 5xx, connection errors | yes | yes | `fallbacks` |
//! | `BadResponse` | a 200 we cannot parse | never | yes | `fallbacks` |

use crate::config::PerErrorClass;
use crate::providers::ProviderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    BadRequest,
    ContextWindow,
    ContentPolicy,
    Unsupported,
    Authentication,
    NotFound,
    RateLimited,
    Timeout,
    Conflict,
    ServerError,
    BadResponse,
}

/// Which fallback list a failure consults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackKind {
    None,
    Generic,
    ContextWindow,
    ContentPolicy,
}

impl FailureKind {
    pub const COUNT: usize = 11;

    pub fn of(error: &ProviderError) -> FailureKind {
        match error {
            ProviderError::Status { status, .. } => {
                if error.is_context_window_exceeded() {
                    FailureKind::ContextWindow
                } else if error.is_content_policy() {
                    FailureKind::ContentPolicy
                } else {
                    match status {
                        401 | 403 => FailureKind::Authentication,
                        404 => FailureKind::NotFound,
                        408 => FailureKind::Timeout,
                        409 => FailureKind::Conflict,
                        429 => FailureKind::RateLimited,
                        500.. => FailureKind::ServerError,
                        _ => FailureKind::BadRequest,
                    }
                }
            }
            ProviderError::Connect(_) => FailureKind::ServerError,
            ProviderError::Timeout(_) => FailureKind::Timeout,
            ProviderError::InvalidResponse(_) => FailureKind::BadResponse,
            ProviderError::Unsupported(_) => FailureKind::Unsupported,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Retried without any policy saying so.
    pub fn retryable_by_default(self) -> bool {
        matches!(
            self,
            FailureKind::RateLimited
                | FailureKind::Timeout
                | FailureKind::Conflict
                | FailureKind::ServerError
        )
    }

    /// A retry policy may turn retries on for this kind (LiteLLM's `AuthenticationErrorRetries`
    /// ...). Requests the upstream refused as invalid stay unretried whatever the policy says.
    pub fn retryable_with_policy(self) -> bool {
        self.retryable_by_default() || self == FailureKind::Authentication
    }

    /// The failure says something about the deployment's health (not the request's).
    pub fn counts_against_deployment(self) -> bool {
        matches!(
            self,
            FailureKind::Authentication
                | FailureKind::NotFound
                | FailureKind::RateLimited
                | FailureKind::Timeout
                | FailureKind::ServerError
                | FailureKind::BadResponse
        )
    }

    pub fn fallback(self) -> FallbackKind {
        match self {
            FailureKind::BadRequest => FallbackKind::None,
            FailureKind::ContextWindow => FallbackKind::ContextWindow,
            FailureKind::ContentPolicy => FallbackKind::ContentPolicy,
            _ => FallbackKind::Generic,
        }
    }

    /// The value a LiteLLM per-error-class policy (`retry_policy`, `allowed_fails_policy`) sets
    /// for this kind, if any.
    pub fn policy_value(self, policy: &PerErrorClass) -> Option<u32> {
        match self {
            FailureKind::BadRequest => policy.bad_request,
            FailureKind::Authentication => policy.authentication,
            FailureKind::Timeout => policy.timeout,
            FailureKind::RateLimited => policy.rate_limit,
            FailureKind::ContentPolicy => policy.content_policy,
            FailureKind::ServerError => policy.internal_server,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(status: u16) -> ProviderError {
        ProviderError::Status {
            status,
            message: "m".into(),
            kind: None,
            code: None,
            param: None,
            retry_after: None,
        }
    }

    #[test]
    fn the_table_holds() {
        let bad = FailureKind::of(&status(400));
        assert_eq!(bad, FailureKind::BadRequest);
        assert!(!bad.retryable_with_policy() && !bad.counts_against_deployment());
        assert_eq!(bad.fallback(), FallbackKind::None);
        for retryable in [408, 409, 429, 500, 502, 503, 529] {
            assert!(
                FailureKind::of(&status(retryable)).retryable_by_default(),
                "{retryable}"
            );
        }
        assert!(FailureKind::of(&ProviderError::Connect("x".into())).retryable_by_default());
        assert!(
            FailureKind::of(&ProviderError::Timeout(Duration::from_secs(1))).retryable_by_default()
        );
        assert!(!FailureKind::of(&status(401)).retryable_by_default());
        assert!(FailureKind::of(&status(401)).retryable_with_policy());
        assert!(FailureKind::of(&status(404)).counts_against_deployment());
        assert!(!FailureKind::of(&status(409)).counts_against_deployment());
        let cw = ProviderError::Status {
            status: 400,
            message: "m".into(),
            kind: None,
            code: Some("context_length_exceeded".into()),
            param: None,
            retry_after: None,
        };
        assert_eq!(FailureKind::of(&cw).fallback(), FallbackKind::ContextWindow);
        assert_eq!(
            FailureKind::of(&ProviderError::Unsupported("x".into())).fallback(),
            FallbackKind::Generic
        );
    }
}
