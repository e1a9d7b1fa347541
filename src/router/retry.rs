//! How long to wait before the next attempt.

use std::time::Duration;

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

/// Exponential backoff with full jitter (a random wait in `[0, min(cap, base·2^attempt)]`), unless
/// the upstream said how long to wait, which wins (capped, so one header cannot park a request).
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(CAP * 6);
    }
    let ceiling = BASE.saturating_mul(1u32 << attempt.min(16)).min(CAP);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_honours_retry_after() {
        for attempt in 0..40 {
            let wait = backoff(attempt, None);
            assert!(wait <= CAP);
            assert!(wait <= BASE * 2u32.pow(attempt.min(16)));
        }
        assert_eq!(
            backoff(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(30)
        );
    }
}
