//! Whether a Redis-backed store (the shared rate limiter, the shared budget ledger) is usable,
//! the one outage logic both follow: the first failed call of an outage turns the store
//! unhealthy, warns once and asks for a probe; later calls go to the local fallback at once; the
//! probe turns the store healthy again when Redis answers.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub(crate) struct RedisHealth {
    /// What falls back per instance ("rate limits", "budgets"), for the log lines.
    what: &'static str,
    healthy: AtomicBool,
    probing: AtomicBool,
    outages: AtomicU64,
}

impl RedisHealth {
    pub(crate) fn new(what: &'static str) -> Self {
        RedisHealth {
            what,
            healthy: AtomicBool::new(true),
            probing: AtomicBool::new(false),
            outages: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// How many times Redis became unreachable (each outage logged one warning).
    pub(crate) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Records a failed call: the first one of an outage warns. True when the caller must start
    /// the probe (none is running).
    pub(crate) fn mark_down(&self, failure: &dyn Display) -> bool {
        if self.healthy.swap(false, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %failure,
                "redis unreachable: {} hold per instance until it is back",
                self.what
            );
        }
        !self.probing.swap(true, Ordering::AcqRel)
    }

    /// The probe found Redis again; `fallbacks` is how many calls the local fallback answered.
    pub(crate) fn mark_up(&self, fallbacks: u64) {
        // In this order: a failure after `healthy` turns true must be able to start a new probe.
        self.probing.store(false, Ordering::Release);
        self.healthy.store(true, Ordering::Release);
        tracing::info!(
            fallbacks,
            "redis reachable again: {} are shared again",
            self.what
        );
    }
}
