//! How many times to retry within a model group, and how long to wait before a retry.

use std::time::Duration;

use super::failure::FailureKind;
use crate::config::PerErrorClass;

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);
/// The longest wait a `retry-after` header can impose (the deadline usually cuts it first).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// The wait before retrying a deployment that was already tried: the upstream's `retry-after`
/// when it sent one (capped, so one header cannot park a request), otherwise exponential
/// backoff with full jitter (a random wait in `[0, min(cap, base·2^attempt)]`), and never less
/// than `router_settings.retry_after`. A retry that goes to another deployment does not wait
/// at all (LiteLLM does the same): only the failed one needed the pause.
pub fn backoff(
    attempt: u32,
    retry_after: Option<Duration>,
    min_wait: Duration,
    jitter: f64,
) -> Duration {
    let wait = match retry_after {
        Some(wait) => wait.min(RETRY_AFTER_CAP),
        None => BASE
            .saturating_mul(1u32 << attempt.min(16))
            .min(CAP)
            .mul_f64(jitter.clamp(0.0, 1.0)),
    };
    wait.max(min_wait)
}

/// Retries one model group allows after a failure of `kind`. In order of precedence: the
/// request's `num_retries`, the group's `model_group_retry_policy`, `retry_policy`, then
/// `base` (the deployment's `max_retries`, else `num_retries`). Kinds that are never retried
/// stay at 0 whatever is configured (a 400 is the request's fault).
pub fn retries_allowed(
    kind: FailureKind,
    request: Option<u32>,
    group_policy: Option<&PerErrorClass>,
    policy: &PerErrorClass,
    base: u32,
) -> u32 {
    if !kind.retryable_with_policy() {
        return 0;
    }
    let from_policy = group_policy
        .and_then(|p| kind.policy_value(p))
        .or_else(|| kind.policy_value(policy));
    match (request, from_policy) {
        (Some(n), _) if kind.retryable_by_default() => n,
        (_, Some(n)) => n,
        _ if kind.retryable_by_default() => base,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_jittered_and_honours_retry_after() {
        for attempt in 0..40 {
            for jitter in [0.0, 0.3, 0.999, 1.0] {
                let wait = backoff(attempt, None, Duration::ZERO, jitter);
                assert!(wait <= CAP);
                assert!(wait <= BASE * 2u32.pow(attempt.min(16)));
            }
        }
        // Full jitter: spread over the whole range, starting at 0.
        assert_eq!(backoff(3, None, Duration::ZERO, 0.0), Duration::ZERO);
        assert_eq!(
            backoff(3, None, Duration::ZERO, 1.0),
            Duration::from_millis(800)
        );
        assert_eq!(
            backoff(3, None, Duration::ZERO, 0.5),
            Duration::from_millis(400)
        );
        // With the thread's random jitter, 10,000 draws stay in bounds and average near half.
        let draws: Vec<Duration> = (0..10_000)
            .map(|_| backoff(2, None, Duration::ZERO, fastrand::f64()))
            .collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(400)));
        let mean = draws.iter().sum::<Duration>() / 10_000;
        assert!(
            (Duration::from_millis(185)..=Duration::from_millis(215)).contains(&mean),
            "{mean:?}"
        );
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            backoff(0, secs(2), Duration::ZERO, 0.5),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(0, secs(3600), Duration::ZERO, 0.5), RETRY_AFTER_CAP);
        // router_settings.retry_after is a floor.
        assert_eq!(
            backoff(0, None, Duration::from_secs(1), 0.5),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn precedence_of_retry_settings() {
        let policy = PerErrorClass {
            rate_limit: Some(4),
            authentication: Some(1),
            bad_request: Some(9),
            ..PerErrorClass::default()
        };
        let group = PerErrorClass {
            rate_limit: Some(2),
            ..PerErrorClass::default()
        };
        let none = PerErrorClass::default();
        use FailureKind::*;
        assert_eq!(retries_allowed(ServerError, None, None, &none, 3), 3);
        assert_eq!(retries_allowed(RateLimited, None, None, &policy, 3), 4);
        assert_eq!(
            retries_allowed(RateLimited, None, Some(&group), &policy, 3),
            2
        );
        assert_eq!(
            retries_allowed(RateLimited, Some(0), Some(&group), &policy, 3),
            0
        );
        assert_eq!(retries_allowed(Authentication, None, None, &none, 3), 0);
        assert_eq!(
            retries_allowed(Authentication, Some(5), None, &policy, 3),
            1
        );
        assert_eq!(
            retries_allowed(BadRequest, Some(5), None, &policy, 3),
            0,
            "400 is never retried"
        );
        assert_eq!(retries_allowed(ContextWindow, None, None, &policy, 3), 0);
    }
}
