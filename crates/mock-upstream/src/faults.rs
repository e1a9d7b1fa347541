//! Fault injection, applied to every POST API request before it is answered.
//!
//! The order is fixed and documented: hang → latency → `fail_next` → `error_rate` → answer. A
//! deterministic failure (`fail_next`) wins over a random one, and a hung request never reaches
//! either.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RuntimeConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Runs the fault checks. `Ok` carries the config snapshot the answer should use; `Err` is the
/// injected error to send instead.
pub async fn gate(state: &AppState) -> Result<Arc<RuntimeConfig>, ApiError> {
    let config = wait_while_hanging(state).await;
    if config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(config.latency_ms)).await;
    }
    if state.take_fail_next() || state.roll_error(config.error_rate) {
        state.stats.injected_errors.fetch_add(1, Relaxed);
        tracing::debug!(
            status = config.error_status,
            "mock upstream injecting an error"
        );
        return Err(ApiError::injected(config.error_status, config.retry_after));
    }
    Ok(config)
}

/// With `hang` on, a request waits without answering. It waits for a config change rather than
/// forever, so switching `hang` off (or `POST /__mock/reset`) releases the requests already held;
/// a client that gives up first simply drops this future.
async fn wait_while_hanging(state: &AppState) -> Arc<RuntimeConfig> {
    loop {
        // Register for the wake-up before reading the flag, so a change made in between is
        // not missed.
        let changed = state.config_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let config = state.config();
        if !config.hang {
            return config;
        }
        changed.await;
    }
}
