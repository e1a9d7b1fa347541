//! The state every handler shares: the current config snapshot, the counters behind
//! `/__mock/stats`, the request log and the random source for error injection.
//!
//! Hot-path rules: counters are atomics; the config is an `Arc` swapped under a short
//! `std::sync::Mutex` that is never held across an `.await`; with `--max-log 0` a request touches
//! nothing but counters (and the small set of model names, for `/v1/models`).

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::{ConfigPatch, ConfigView, RuntimeConfig};
use crate::log::{LogEntry, RequestLog};

/// `/v1/models` lists the model names requests used; this bounds that list so a load test with
/// random model names cannot grow it without limit.
const MAX_MODELS_SEEN: usize = 64;

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    pub streams_cancelled: AtomicU64,
    pub streams_completed: AtomicU64,
    pub streams_aborted: AtomicU64,
    pub injected_errors: AtomicU64,
    /// Requests to the OAuth token endpoint (`/token`).
    pub token_requests: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct StatsView {
    pub requests: u64,
    pub in_flight: u64,
    pub streams_cancelled: u64,
    pub streams_completed: u64,
    pub streams_aborted: u64,
    pub injected_errors: u64,
    pub token_requests: u64,
}

impl Stats {
    pub fn view(&self) -> StatsView {
        StatsView {
            requests: self.requests.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            streams_cancelled: self.streams_cancelled.load(Relaxed),
            streams_completed: self.streams_completed.load(Relaxed),
            streams_aborted: self.streams_aborted.load(Relaxed),
            injected_errors: self.injected_errors.load(Relaxed),
            token_requests: self.token_requests.load(Relaxed),
        }
    }

    /// Zeroes the totals. `in_flight` is a gauge of requests still running, not a total, so it
    /// is left alone (zeroing it would make it underflow when they finish).
    fn reset(&self) {
        for counter in [
            &self.requests,
            &self.streams_cancelled,
            &self.streams_completed,
            &self.streams_aborted,
            &self.injected_errors,
            &self.token_requests,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

pub struct Shared {
    startup: RuntimeConfig,
    seed: Option<u64>,
    config: Mutex<Arc<RuntimeConfig>>,
    /// Woken on every config change, so hanging requests can re-check `hang`.
    pub config_changed: Notify,
    /// Deterministic failures: the next `fail_next` requests fail. Decremented by requests.
    pub fail_next: AtomicU64,
    pub stats: Stats,
    pub log: RequestLog,
    /// Never reset, so a stream still running across a reset cannot update a newer log entry
    /// that happens to reuse its id.
    next_id: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    models_seen: Mutex<Vec<String>>,
    /// Vertex AI's OAuth token endpoint.
    pub tokens: crate::vertex::TokenIssuer,
}

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; if something ever did, the data is still fine.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_rng(seed: Option<u64>) -> fastrand::Rng {
    match seed {
        Some(seed) => fastrand::Rng::with_seed(seed),
        None => fastrand::Rng::new(),
    }
}

/// Keeps `stats.in_flight` honest: incremented on creation, decremented when dropped, whether the
/// request finished or the client went away mid-way.
pub struct InFlight(AppState);

impl InFlight {
    pub fn new(state: &AppState) -> Self {
        state.stats.in_flight.fetch_add(1, Relaxed);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Relaxed);
    }
}

/// One admitted API request: its id (used in response ids and the log) and whether it is logged.
pub struct Admission {
    pub id: u64,
    pub logged: bool,
    _in_flight: InFlight,
}

impl AppState {
    #[cfg(test)]
    pub fn new(startup: RuntimeConfig, seed: Option<u64>, max_log: usize) -> Self {
        Self::with_tokens(
            startup,
            seed,
            max_log,
            crate::vertex::TokenIssuer::new(None, 3600),
        )
    }

    pub fn with_tokens(
        startup: RuntimeConfig,
        seed: Option<u64>,
        max_log: usize,
        tokens: crate::vertex::TokenIssuer,
    ) -> Self {
        Self(Arc::new(Shared {
            config: Mutex::new(Arc::new(startup.clone())),
            startup,
            seed,
            config_changed: Notify::new(),
            fail_next: AtomicU64::new(0),
            stats: Stats::default(),
            log: RequestLog::new(max_log),
            next_id: AtomicU64::new(0),
            rng: Mutex::new(new_rng(seed)),
            models_seen: Mutex::new(Vec::new()),
            tokens,
        }))
    }

    /// The current configuration snapshot.
    pub fn config(&self) -> Arc<RuntimeConfig> {
        Arc::clone(&lock(&self.config))
    }

    /// The config as `GET /__mock/config` shows it.
    pub fn config_response(&self) -> Response {
        let config = self.config();
        Json(ConfigView {
            config: &config,
            fail_next: self.fail_next.load(Relaxed),
        })
        .into_response()
    }

    /// Merges a validated patch and wakes anything waiting on a config change.
    pub fn apply_patch(&self, patch: &ConfigPatch) {
        {
            let mut current = lock(&self.config);
            let mut next = RuntimeConfig::clone(&current);
            patch.apply_to(&mut next);
            *current = Arc::new(next);
        }
        if let Some(count) = patch.fail_next() {
            self.fail_next.store(count, Relaxed);
        }
        self.config_changed.notify_waiters();
    }

    /// Back to the start-up configuration with empty log and zeroed totals. The random source
    /// is re-seeded too, so a seeded run is reproducible again from here.
    pub fn reset(&self) {
        *lock(&self.config) = Arc::new(self.startup.clone());
        self.fail_next.store(0, Relaxed);
        self.stats.reset();
        self.log.clear();
        lock(&self.models_seen).clear();
        *lock(&self.rng) = new_rng(self.seed);
        self.config_changed.notify_waiters();
    }

    /// Counts (and, unless logging is off, logs) an API request.
    pub fn admit(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Admission {
        self.stats.requests.fetch_add(1, Relaxed);
        let in_flight = InFlight::new(self);
        let next_id = || self.next_id.fetch_add(1, Relaxed) + 1;
        if self.log.enabled() {
            let entry = LogEntry::new(method, uri, headers, body);
            let id = self.log.push(next_id, entry);
            Admission {
                id,
                logged: true,
                _in_flight: in_flight,
            }
        } else {
            Admission {
                id: next_id(),
                logged: false,
                _in_flight: in_flight,
            }
        }
    }

    pub fn record_status(&self, admission: &Admission, status: u16) {
        if admission.logged {
            self.log.set_status(admission.id, status);
        }
    }

    /// Takes one deterministic failure if any are left.
    pub fn take_fail_next(&self) -> bool {
        // Fast path: a plain load, so the common "no failures queued" case never writes.
        self.fail_next.load(Relaxed) > 0
            && self
                .fail_next
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok()
    }

    /// True with probability `rate`. Requests draw from one generator in arrival order, so a
    /// seeded mock gives the same sequence of outcomes to the same sequence of requests.
    pub fn roll_error(&self, rate: f64) -> bool {
        rate > 0.0 && lock(&self.rng).f64() < rate
    }

    pub fn note_model(&self, model: &str) {
        let mut seen = lock(&self.models_seen);
        if seen.len() < MAX_MODELS_SEEN && !seen.iter().any(|m| m == model) {
            seen.push(model.to_owned());
        }
    }

    pub fn models_seen(&self) -> Vec<String> {
        lock(&self.models_seen).clone()
    }
}
