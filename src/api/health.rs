//! Health and metrics endpoints (unauthenticated, as in LiteLLM, so probes need no key).

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

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

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = state.metrics.render();
    {
        use std::fmt::Write as _;
        let _ = writeln!(
            body,
            "# HELP switchyard_rate_limit_store_up Whether the shared rate-limit store (Redis) answers (1 without one).\n# TYPE switchyard_rate_limit_store_up gauge\nswitchyard_rate_limit_store_up {}\n# HELP switchyard_rate_limit_local_fallbacks_total Requests whose limits were decided per instance because Redis was unreachable.\n# TYPE switchyard_rate_limit_local_fallbacks_total counter\nswitchyard_rate_limit_local_fallbacks_total {}",
            u8::from(state.limiter.healthy()),
            state.limiter.fallbacks()
        );
        let _ = writeln!(
            body,
            "# HELP switchyard_budget_store_up Whether the shared budget store (Redis) answers (1 without one).\n# TYPE switchyard_budget_store_up gauge\nswitchyard_budget_store_up {}\n# HELP switchyard_budget_local_fallbacks_total Requests whose budgets were reserved per instance because Redis was unreachable.\n# TYPE switchyard_budget_local_fallbacks_total counter\nswitchyard_budget_local_fallbacks_total {}\n# HELP switchyard_budget_settle_failures_total Budget settlements Redis did not take (their cost counted on the instance).\n# TYPE switchyard_budget_settle_failures_total counter\nswitchyard_budget_settle_failures_total {}",
            u8::from(state.budgets.healthy()),
            state.budgets.fallbacks(),
            state.budgets.settle_failures()
        );
    }
    render_spend_metrics(&state, &mut body);
    state.snapshot().router.render_metrics(&mut body);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
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

fn render_spend_metrics(state: &AppState, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let c = &state.spend.counters;
    let series: [(&str, &str, &str, u64); 9] = [
        (
            "switchyard_spend_rows_queued",
            "Spend-log rows waiting in memory for the writer.",
            "gauge",
            state.spend.queued() as u64,
        ),
        (
            "switchyard_spend_rows_spill_pending",
            "Spend-log rows in the spill file, not yet replayed.",
            "gauge",
            c.spill_pending.load(Relaxed).max(0) as u64,
        ),
        (
            "switchyard_spend_rows_written_total",
            "Spend-log rows written to the database by the queue.",
            "counter",
            c.written.load(Relaxed),
        ),
        (
            "switchyard_spend_rows_spilled_total",
            "Spend-log rows appended to the spill file (queue full, or shutdown).",
            "counter",
            c.spilled.load(Relaxed),
        ),
        (
            "switchyard_spend_rows_replayed_total",
            "Spend-log rows written to the database from the spill file.",
            "counter",
            c.replayed.load(Relaxed),
        ),
        (
            "switchyard_spend_rows_dropped_total",
            "Spend-log rows lost: the queue was full and they could not be spilled.",
            "counter",
            c.dropped.load(Relaxed),
        ),
        (
            "switchyard_spend_spill_bad_lines_total",
            "Spill-file lines skipped on replay because they were not rows.",
            "counter",
            c.spill_bad_lines.load(Relaxed),
        ),
        (
            "switchyard_spend_write_failures_total",
            "Spend-log batch writes that failed and were retried.",
            "counter",
            c.write_failures.load(Relaxed),
        ),
        (
            "switchyard_spend_store_up",
            "Whether the last spend-log write succeeded.",
            "gauge",
            u64::from(c.store_ok.load(Relaxed)),
        ),
    ];
    for (name, help, kind, value) in series {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
