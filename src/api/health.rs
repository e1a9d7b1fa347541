//! Health and metrics endpoints (unauthenticated, as in LiteLLM, so probes need no key).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::pipeline::Caller;
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn liveliness() -> Json<&'static str> {
    Json("I'm alive!")
}

/// Readiness: the gateway can serve. A database that is down degrades management calls, not
/// serving (keys come from the cache), so it is reported but does not make the gateway unready.
pub async fn readiness(State(state): State<AppState>) -> Json<Value> {
    let db = if state
        .store_healthy
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        "connected"
    } else {
        "unreachable"
    };
    Json(json!({
        "status": "healthy",
        "db": db,
        "db_kind": state.store.kind(),
        // Unreachable Redis: limits hold per instance until it is back.
        "rate_limits": if state.limiter.healthy() { "ok" } else { "redis unreachable: per-instance" },
        // The same for budgets: each instance admits against its own ledger until Redis is back.
        "budgets": if state.budgets.healthy() { "ok" } else { "redis unreachable: per-instance" },
        "cache": null,
        // A database that fails only delays spend logs: rows wait in the queue or spill file.
        "spend_logs": spend_status(&state),
        "model_groups": state.snapshot().router.model_names().len(),
        "switchyard_version": env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(serde::Deserialize)]
pub struct HealthQuery {
    model: Option<String>,
}

/// `GET /health`: every deployment's routing state (healthy, cooling down, half-open, failed
/// its health check) with its recent numbers. It reads what the router already knows and calls
/// no upstream, so it is cheap to poll. Like LiteLLM's `/health`, it needs a key: it names the
/// upstreams (never their keys).
pub async fn deployments(caller: Caller, Query(query): Query<HealthQuery>) -> Json<Value> {
    Json(caller.config.router.health_report(query.model.as_deref()))
}

/// `GET /metrics`: Prometheus text (docs/metrics.md). Open by default, as in LiteLLM; with
/// `litellm_settings.require_auth_for_metrics_endpoint: true` it needs the master key or an
/// admin key (401 without a valid key, 403 with a key that is not an admin's).
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = state.snapshot();
    if config.config.metrics.require_auth {
        let now_ms = crate::auth::cache::now_ms();
        match crate::auth::authenticate(
            &headers,
            config.master_key.as_ref(),
            &state.identities,
            now_ms,
        ) {
            Ok(principal) if principal.is_admin() => {}
            Ok(_) => {
                return ApiError::Forbidden("/metrics needs the master key or an admin key".into())
                    .into_response()
            }
            Err(err) => return ApiError::from(err).into_response(),
        }
    }
    let body = crate::telemetry::render_metrics(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn spend_status(state: &AppState) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &state.spend.counters;
    json!({
        "writer": if c.store_ok.load(Relaxed) { "ok" } else { "database failing: rows queued or spilled" },
        "queued": state.spend.queued(),
        "spill_pending": c.spill_pending.load(Relaxed),
        "written": c.written.load(Relaxed),
        "spilled": c.spilled.load(Relaxed),
        "replayed": c.replayed.load(Relaxed),
        "dropped": c.dropped.load(Relaxed),
    })
}
