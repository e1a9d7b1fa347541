//! What this instance observes about each deployment: requests in flight (least-busy), moving
//! averages of latency and time to first token (latency-based-routing), counters for metrics and
//! `/health`, the last error and the last health check. All atomics: recording never locks.
//!
//! These stay local even when cooldowns are shared: latency measured from here is the latency
//! this instance's clients get.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

/// Weight of the newest sample in the moving averages: about the last ten requests matter
/// (LiteLLM's latency strategy averages its last ten too).
const EWMA_ALPHA: f64 = 0.2;

/// Error classes as [`crate::providers::ProviderError::class`] names them, so the last one can
/// sit in an atomic.
const ERROR_CLASSES: &[&str] = &[
    "none",
    "rate_limited",
    "upstream_5xx",
    "upstream_4xx",
    "connect_error",
    "timeout",
    "invalid_response",
    "unsupported",
    "other",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    NotRun,
    Healthy,
    Unhealthy,
}

#[derive(Default)]
pub struct LiveStats {
    in_flight: AtomicU32,
    /// f64 bits of microseconds; 0 until the first sample.
    latency_ewma_us: AtomicU64,
    ttft_ewma_us: AtomicU64,
    /// Times the router chose this deployment.
    picks: AtomicU64,
    /// Times it served a request that had first tried another model group.
    fallback_served: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    last_error_class: AtomicU8,
    last_error_status: AtomicU16,
    last_error_at_ms: AtomicU64,
    health: AtomicU8,
    health_checked_at_ms: AtomicU64,
    /// Spend against the deployment's `max_budget` (see `router::budget`).
    pub budget: super::budget::BudgetSpend,
}

fn update_ewma(slot: &AtomicU64, sample: Duration) {
    let sample = sample.as_secs_f64() * 1e6;
    let mut current = slot.load(Relaxed);
    loop {
        let old = f64::from_bits(current);
        let new = if current == 0 {
            sample.max(1.0)
        } else {
            old + EWMA_ALPHA * (sample - old)
        };
        match slot.compare_exchange_weak(current, new.to_bits(), Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

fn read_ewma(slot: &AtomicU64) -> Option<Duration> {
    let bits = slot.load(Relaxed);
    (bits != 0).then(|| Duration::from_secs_f64(f64::from_bits(bits) / 1e6))
}

impl LiveStats {
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    pub(super) fn start(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub(super) fn finish(&self) {
        // Saturating: a stray double finish must not wrap to u32::MAX and starve the deployment.
        let _ = self
            .in_flight
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Whole-request latency (non-streaming).
    pub fn latency(&self) -> Option<Duration> {
        read_ewma(&self.latency_ewma_us)
    }

    /// Time to the first chunk (streaming).
    pub fn ttft(&self) -> Option<Duration> {
        read_ewma(&self.ttft_ewma_us)
    }

    pub(super) fn record_pick(&self) {
        self.picks.fetch_add(1, Relaxed);
    }

    pub(super) fn record_fallback_served(&self) {
        self.fallback_served.fetch_add(1, Relaxed);
    }

    pub(super) fn record_success(&self, elapsed: Duration, stream: bool) {
        self.successes.fetch_add(1, Relaxed);
        update_ewma(
            if stream {
                &self.ttft_ewma_us
            } else {
                &self.latency_ewma_us
            },
            elapsed,
        );
    }

    /// A timeout enters the averages as a sample of the time waited, so a hanging deployment
    /// looks slow to latency-based-routing instead of looking unmeasured (which looks fast).
    pub(super) fn record_failure(
        &self,
        class: &str,
        status: Option<u16>,
        now_ms: u64,
        waited: Option<(Duration, bool)>,
    ) {
        self.failures.fetch_add(1, Relaxed);
        let index = ERROR_CLASSES
            .iter()
            .position(|c| *c == class)
            .unwrap_or(ERROR_CLASSES.len() - 1);
        self.last_error_class.store(index as u8, Relaxed);
        self.last_error_status.store(status.unwrap_or(0), Relaxed);
        self.last_error_at_ms.store(now_ms, Relaxed);
        if let Some((waited, stream)) = waited {
            update_ewma(
                if stream {
                    &self.ttft_ewma_us
                } else {
                    &self.latency_ewma_us
                },
                waited,
            );
        }
    }

    pub fn successes(&self) -> u64 {
        self.successes.load(Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    pub fn picks(&self) -> u64 {
        self.picks.load(Relaxed)
    }

    pub fn fallback_served(&self) -> u64 {
        self.fallback_served.load(Relaxed)
    }

    /// The class, upstream status (if any) and time of the last failure.
    pub fn last_error(&self) -> Option<(&'static str, Option<u16>, u64)> {
        let index = self.last_error_class.load(Relaxed) as usize;
        if index == 0 {
            return None;
        }
        let status = self.last_error_status.load(Relaxed);
        Some((
            ERROR_CLASSES.get(index).copied().unwrap_or("other"),
            (status != 0).then_some(status),
            self.last_error_at_ms.load(Relaxed),
        ))
    }

    pub fn health_check(&self) -> (HealthCheck, u64) {
        let state = match self.health.load(Relaxed) {
            1 => HealthCheck::Healthy,
            2 => HealthCheck::Unhealthy,
            _ => HealthCheck::NotRun,
        };
        (state, self.health_checked_at_ms.load(Relaxed))
    }

    /// Taken out of rotation by a failed background health check.
    pub fn failed_health_check(&self) -> bool {
        self.health.load(Relaxed) == 2
    }

    pub(super) fn set_health(&self, healthy: bool, now_ms: u64) {
        self.health.store(if healthy { 1 } else { 2 }, Relaxed);
        self.health_checked_at_ms.store(now_ms, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_move_toward_samples() {
        let stats = LiveStats::default();
        assert_eq!(stats.latency(), None);
        stats.record_success(Duration::from_millis(100), false);
        assert_eq!(stats.latency(), Some(Duration::from_millis(100)));
        for _ in 0..50 {
            stats.record_success(Duration::from_millis(10), false);
        }
        let latency = stats.latency().unwrap();
        assert!(latency < Duration::from_millis(11), "{latency:?}");
        assert_eq!(stats.ttft(), None, "streams are tracked apart");
        stats.record_failure("timeout", None, 5, Some((Duration::from_secs(2), true)));
        assert_eq!(stats.ttft(), Some(Duration::from_secs(2)));
        assert_eq!(stats.last_error(), Some(("timeout", None, 5)));
        stats.finish();
        assert_eq!(stats.in_flight(), 0, "never below zero");
    }
}
