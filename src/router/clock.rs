//! One clock for cooldowns, usage windows and health: milliseconds that never go backwards
//! (read from `Instant`), anchored to the Unix epoch at start-up so that a shared store can
//! compare them across instances.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix_ms: u64,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
            start_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// The clock's reading at `at`, for callers that already read the time.
    pub fn ms_at(&self, at: Instant) -> u64 {
        self.start_unix_ms + at.saturating_duration_since(self.start).as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
