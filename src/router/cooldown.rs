//! Cooldowns (LiteLLM's name for a circuit breaker). A deployment that fails more than
//! `allowed_fails` times within a minute, or answers 429, is skipped for `cooldown_time` (a 429's
//! `retry-after` when it sent one). After that it is half-open: exactly one request may try it
//! (the probe). The probe's success closes the breaker; its failure opens it again.
//!
//! ```text
//!            failures > allowed_fails, or a 429
//!   Closed ─────────────────────────────────────▶ Open (until now + cooldown)
//!     ▲                                             │ time passes
//!     │ probe succeeds                              ▼
//!     └──────────────────────────────────────── HalfOpen ── probe fails ──▶ Open
//! ```
//!
//! The state sits behind [`CooldownStore`] (DESIGN.md invariant 7). [`LocalCooldowns`] keeps it
//! in this process: every read on the request path is one or two atomic loads, and only a
//! failure takes a (short, never awaited) lock. A shared implementation (Redis) keeps the same
//! synchronous interface by answering reads from a local mirror and publishing failures and
//! transitions in the background, which is why no method is `async` and why timestamps are
//! Unix milliseconds (see `clock.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use super::failure::FailureKind;
use super::keyed::ByDeployment;
use crate::config::PerErrorClass;

/// Failures are counted per minute, as LiteLLM does.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// A probe that has given no verdict for this long is presumed lost; another request may probe.
const PROBE_TTL_MS: u64 = 60_000;
/// The longest cooldown a `retry-after` can ask for.
const MAX_COOLDOWN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct CooldownPolicy {
    pub allowed_fails: u32,
    /// Per error class, overriding `allowed_fails` (LiteLLM's `allowed_fails_policy`).
    pub per_class: PerErrorClass,
    pub cooldown: Duration,
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// The cooldown is over and no probe is out: the next request may probe.
    HalfOpen,
    /// The cooldown is over but another request's probe is still out.
    Probing,
    CoolingDown {
        until_ms: u64,
        /// Opened by a 429: the deployment is rate limited, not broken.
        rate_limited: bool,
    },
}

/// A change of state, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { until_ms: u64 },
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownSnapshot {
    pub availability: Availability,
    /// Failures counted in the current window.
    pub recent_failures: u32,
    /// How many times the breaker opened since start-up.
    pub cooldowns: u64,
}

/// Cooldown state of every deployment, by the deployment's stable id.
pub trait CooldownStore: Send + Sync {
    fn availability(&self, deployment: &str, now_ms: u64) -> Availability;
    /// Claims the half-open probe; `false` when another request holds it.
    fn try_claim_probe(&self, deployment: &str, now_ms: u64) -> bool;
    /// Gives back a probe whose attempt ended without a verdict (the client went away).
    fn release_probe(&self, deployment: &str);
    fn record_success(&self, deployment: &str, now_ms: u64) -> Option<Transition>;
    fn record_failure(
        &self,
        deployment: &str,
        now_ms: u64,
        kind: FailureKind,
        retry_after: Option<Duration>,
    ) -> Option<Transition>;
    fn snapshot(&self, deployment: &str, now_ms: u64) -> CooldownSnapshot;
    /// A reload changed the settings: applies to every deployment from now on.
    fn set_policy(&self, policy: CooldownPolicy);
    /// A reload removed deployments: forget the state of every id `keep` refuses.
    fn retain(&self, keep: &dyn Fn(&str) -> bool);
}

/// The in-process [`CooldownStore`].
pub struct LocalCooldowns {
    policy: RwLock<CooldownPolicy>,
    breakers: ByDeployment<Breaker>,
}

#[derive(Default)]
struct Breaker {
    /// 0 while closed; otherwise the end of the cooldown (half-open from then on).
    open_until: AtomicU64,
    rate_limited: AtomicBool,
    /// When the half-open probe was claimed; 0 when none is out.
    probe_claimed_at: AtomicU64,
    window: Mutex<FailureWindow>,
    opened_total: AtomicU64,
}

#[derive(Default)]
struct FailureWindow {
    started_ms: u64,
    total: u32,
    by_kind: [u32; FailureKind::COUNT],
}

impl LocalCooldowns {
    pub fn new(policy: CooldownPolicy) -> Self {
        LocalCooldowns {
            policy: RwLock::new(policy),
            breakers: ByDeployment::default(),
        }
    }

    fn open(
        &self,
        breaker: &Breaker,
        now_ms: u64,
        cooldown: Duration,
        rate_limited: bool,
    ) -> Transition {
        let until_ms = now_ms + cooldown.min(MAX_COOLDOWN).as_millis().max(1) as u64;
        breaker.rate_limited.store(rate_limited, Ordering::Relaxed);
        breaker.probe_claimed_at.store(0, Ordering::Relaxed);
        breaker.open_until.store(until_ms, Ordering::Release);
        breaker.opened_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut window) = breaker.window.lock() {
            *window = FailureWindow {
                started_ms: now_ms,
                ..FailureWindow::default()
            };
        }
        Transition::Opened { until_ms }
    }
}

impl CooldownStore for LocalCooldowns {
    fn availability(&self, deployment: &str, now_ms: u64) -> Availability {
        self.breakers
            .read(deployment, |breaker| breaker_availability(breaker, now_ms))
            .unwrap_or(Availability::Available)
    }

    fn try_claim_probe(&self, deployment: &str, now_ms: u64) -> bool {
        self.breakers
            .read(deployment, |breaker| {
                let claimed = breaker.probe_claimed_at.load(Ordering::Acquire);
                if claimed != 0 && now_ms.saturating_sub(claimed) < PROBE_TTL_MS {
                    return false;
                }
                breaker
                    .probe_claimed_at
                    .compare_exchange(claimed, now_ms.max(1), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
            .unwrap_or(true)
    }

    fn release_probe(&self, deployment: &str) {
        self.breakers.read(deployment, |breaker| {
            breaker.probe_claimed_at.store(0, Ordering::Release)
        });
    }

    fn record_success(&self, deployment: &str, now_ms: u64) -> Option<Transition> {
        self.breakers
            .read(deployment, |breaker| {
                let until_ms = breaker.open_until.load(Ordering::Acquire);
                // A success while still cooling down comes from a request sent before the
                // cooldown began; it does not end the cooldown. Only a success after it does
                // (the probe).
                if until_ms == 0 || now_ms < until_ms {
                    return None;
                }
                if breaker
                    .open_until
                    .compare_exchange(until_ms, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return None;
                }
                breaker.probe_claimed_at.store(0, Ordering::Release);
                Some(Transition::Closed)
            })
            .flatten()
    }

    fn record_failure(
        &self,
        deployment: &str,
        now_ms: u64,
        kind: FailureKind,
        retry_after: Option<Duration>,
    ) -> Option<Transition> {
        let policy = self
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if policy.disabled || !kind.counts_against_deployment() {
            return None;
        }
        self.breakers.write(deployment, |breaker| {
            self.count_failure(breaker, &policy, now_ms, kind, retry_after)
        })
    }

    fn snapshot(&self, deployment: &str, now_ms: u64) -> CooldownSnapshot {
        let availability = self.availability(deployment, now_ms);
        self.breakers
            .read(deployment, |breaker| {
                let recent_failures = breaker.window.lock().map_or(0, |w| {
                    if now_ms.saturating_sub(w.started_ms) < FAILURE_WINDOW.as_millis() as u64 {
                        w.total
                    } else {
                        0
                    }
                });
                CooldownSnapshot {
                    availability,
                    recent_failures,
                    cooldowns: breaker.opened_total.load(Ordering::Relaxed),
                }
            })
            .unwrap_or(CooldownSnapshot {
                availability,
                recent_failures: 0,
                cooldowns: 0,
            })
    }

    fn set_policy(&self, policy: CooldownPolicy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = policy;
    }

    fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.breakers.retain(keep);
    }
}

fn breaker_availability(breaker: &Breaker, now_ms: u64) -> Availability {
    let until_ms = breaker.open_until.load(Ordering::Acquire);
    if until_ms == 0 {
        return Availability::Available;
    }
    if now_ms < until_ms {
        return Availability::CoolingDown {
            until_ms,
            rate_limited: breaker.rate_limited.load(Ordering::Relaxed),
        };
    }
    let claimed = breaker.probe_claimed_at.load(Ordering::Acquire);
    if claimed != 0 && now_ms.saturating_sub(claimed) < PROBE_TTL_MS {
        Availability::Probing
    } else {
        Availability::HalfOpen
    }
}

impl LocalCooldowns {
    fn count_failure(
        &self,
        breaker: &Breaker,
        policy: &CooldownPolicy,
        now_ms: u64,
        kind: FailureKind,
        retry_after: Option<Duration>,
    ) -> Option<Transition> {
        let rate_limited = kind == FailureKind::RateLimited;
        let cooldown = match retry_after {
            Some(wait) if rate_limited && !wait.is_zero() => wait,
            _ => policy.cooldown,
        };
        let until_ms = breaker.open_until.load(Ordering::Acquire);
        if until_ms != 0 {
            if now_ms >= until_ms {
                // Half-open: the probe (or a late request) failed.
                return Some(self.open(breaker, now_ms, cooldown, rate_limited));
            }
            return None; // already cooling down
        }
        let class_limit = kind.policy_value(&policy.per_class);
        if rate_limited && class_limit.is_none() {
            return Some(self.open(breaker, now_ms, cooldown, true));
        }
        let trip = {
            let Ok(mut window) = breaker.window.lock() else {
                return None;
            };
            if now_ms.saturating_sub(window.started_ms) >= FAILURE_WINDOW.as_millis() as u64 {
                *window = FailureWindow {
                    started_ms: now_ms,
                    ..FailureWindow::default()
                };
            }
            window.total += 1;
            window.by_kind[kind.index()] += 1;
            match class_limit {
                Some(limit) => window.by_kind[kind.index()] > limit,
                None => window.total > policy.allowed_fails,
            }
        };
        trip.then(|| self.open(breaker, now_ms, cooldown, rate_limited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(allowed_fails: u32) -> LocalCooldowns {
        LocalCooldowns::new(CooldownPolicy {
            allowed_fails,
            per_class: PerErrorClass::default(),
            cooldown: Duration::from_secs(5),
            disabled: false,
        })
    }

    const T0: u64 = 1_000_000;

    #[test]
    fn allowed_fails_then_cooldown_then_single_probe_then_closed() {
        let s = store(2);
        for i in 0..2 {
            assert_eq!(
                s.record_failure("d0", T0 + i, FailureKind::ServerError, None),
                None
            );
            assert_eq!(s.availability("d0", T0 + i), Availability::Available);
        }
        // The third failure within the minute exceeds allowed_fails = 2.
        assert_eq!(
            s.record_failure("d0", T0 + 10, FailureKind::ServerError, None),
            Some(Transition::Opened {
                until_ms: T0 + 10 + 5_000
            })
        );
        assert_eq!(
            s.availability("d0", T0 + 11),
            Availability::CoolingDown {
                until_ms: T0 + 5_010,
                rate_limited: false
            }
        );
        assert_eq!(
            s.availability("d1", T0 + 11),
            Availability::Available,
            "others unaffected"
        );
        // Cooldown over: half-open, and only one request gets the probe.
        let later = T0 + 5_010;
        assert_eq!(s.availability("d0", later), Availability::HalfOpen);
        assert!(s.try_claim_probe("d0", later));
        assert!(!s.try_claim_probe("d0", later + 1));
        assert_eq!(s.availability("d0", later + 1), Availability::Probing);
        // The probe succeeds: closed again.
        assert_eq!(s.record_success("d0", later + 2), Some(Transition::Closed));
        assert_eq!(s.availability("d0", later + 3), Availability::Available);
        assert_eq!(s.snapshot("d0", later + 3).cooldowns, 1);
    }

    #[test]
    fn failed_probe_reopens_and_released_probe_can_be_retaken() {
        let s = store(0);
        assert!(matches!(
            s.record_failure("d0", T0, FailureKind::Timeout, None),
            Some(Transition::Opened { .. })
        ));
        let later = T0 + 5_000;
        assert!(s.try_claim_probe("d0", later));
        s.release_probe("d0");
        assert!(
            s.try_claim_probe("d0", later + 1),
            "a cancelled probe frees the slot"
        );
        assert_eq!(
            s.record_failure("d0", later + 2, FailureKind::ServerError, None),
            Some(Transition::Opened {
                until_ms: later + 2 + 5_000
            })
        );
        assert!(matches!(
            s.availability("d0", later + 3),
            Availability::CoolingDown { .. }
        ));
        // A lost probe expires.
        let much_later = later + 5_002;
        assert!(s.try_claim_probe("d0", much_later));
        assert!(s.try_claim_probe("d0", much_later + PROBE_TTL_MS));
    }

    #[test]
    fn rate_limit_cools_down_at_once_for_retry_after() {
        let s = store(3);
        assert_eq!(
            s.record_failure(
                "d0",
                T0,
                FailureKind::RateLimited,
                Some(Duration::from_secs(2))
            ),
            Some(Transition::Opened {
                until_ms: T0 + 2_000
            })
        );
        assert_eq!(
            s.availability("d0", T0 + 1),
            Availability::CoolingDown {
                until_ms: T0 + 2_000,
                rate_limited: true
            }
        );
        // Without retry-after, cooldown_time applies; a huge retry-after is capped.
        assert_eq!(
            s.record_failure(
                "d1",
                T0,
                FailureKind::RateLimited,
                Some(Duration::from_secs(86_400))
            ),
            Some(Transition::Opened {
                until_ms: T0 + MAX_COOLDOWN.as_millis() as u64
            })
        );
    }

    #[test]
    fn request_errors_never_count_and_old_failures_expire() {
        let s = store(1);
        for kind in [
            FailureKind::BadRequest,
            FailureKind::ContextWindow,
            FailureKind::Conflict,
        ] {
            for i in 0..10 {
                assert_eq!(s.record_failure("d0", T0 + i, kind, None), None);
            }
        }
        assert_eq!(
            s.record_failure("d0", T0, FailureKind::ServerError, None),
            None
        );
        // A minute later the window starts over, so this is failure 1 again, not 2.
        let next_minute = T0 + FAILURE_WINDOW.as_millis() as u64;
        assert_eq!(
            s.record_failure("d0", next_minute, FailureKind::ServerError, None),
            None
        );
        assert!(s
            .record_failure("d0", next_minute + 1, FailureKind::ServerError, None)
            .is_some());
    }

    #[test]
    fn per_class_policy_and_disabled() {
        let mut policy = CooldownPolicy {
            allowed_fails: 0,
            per_class: PerErrorClass {
                rate_limit: Some(2),
                ..PerErrorClass::default()
            },
            cooldown: Duration::from_secs(5),
            disabled: false,
        };
        let s = LocalCooldowns::new(policy.clone());
        assert_eq!(
            s.record_failure("d0", T0, FailureKind::RateLimited, None),
            None
        );
        assert_eq!(
            s.record_failure("d0", T0, FailureKind::RateLimited, None),
            None
        );
        assert!(s
            .record_failure("d0", T0, FailureKind::RateLimited, None)
            .is_some());
        policy.disabled = true;
        let s = LocalCooldowns::new(policy);
        assert_eq!(
            s.record_failure("d0", T0, FailureKind::RateLimited, None),
            None
        );
        assert_eq!(s.availability("d0", T0), Availability::Available);
    }

    #[test]
    fn success_during_cooldown_does_not_close() {
        let s = store(0);
        s.record_failure("d0", T0, FailureKind::ServerError, None);
        assert_eq!(s.record_success("d0", T0 + 1), None);
        assert!(matches!(
            s.availability("d0", T0 + 2),
            Availability::CoolingDown { .. }
        ));
    }
}
