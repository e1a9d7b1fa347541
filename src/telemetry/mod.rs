//! Logs, metrics and traces. Recording is a few atomic adds on the request path; rendering happens only
//! when `/metrics` is scraped. Everything here consumes the request-finished event
//! ([`request_finished`]) and the router's per-attempt events; no handler calls a recorder
//! directly.

mod access_json;
mod log_writer;
mod metrics;
pub mod timeseries;
pub mod traces;

pub use log_writer::{flush as flush_logs, LOG_LINES_DROPPED};
pub use metrics::{
    attempt_failed, cache_lookup, check_tag_label, cooldown_transition, fallback_finished,
    fell_back, litellm_names, retried, Metrics, MetricsSettings, Rejection, BUCKETS,
};

use crate::pipeline::Finished;
use crate::state::AppState;

/// Every consumer of the request-finished event, in one place: metrics, the dashboard's traffic
/// series (`timeseries.rs`), the spend log (a row
/// handed to a bounded queue, see `spend/`), the callbacks (a record handed to a bounded queue,
/// see `callbacks/`), traces (when on), then the access log
/// (target `access`, so `RUST_LOG=info,access=off` turns it off alone; formatting it costs tens
/// of microseconds of CPU, see docs/operations.md), then traces (spans queued to the exporter).
pub fn request_finished(state: &AppState, event: &Finished<'_>) {
    state.metrics.record(event);
    state
        .traffic
        .record(event, crate::auth::cache::now_ms() as u64);
    if let Some(row) = crate::spend::SpendRow::from_event(event, crate::auth::cache::now_ms()) {
        state.spend.push(row);
    }
    state.callbacks.on_finished(event);
    if tracing::enabled!(target: "access", tracing::Level::INFO) {
        if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
            log_writer::send(access_json::line(event, std::time::SystemTime::now()));
        } else {
            access_line(event);
        }
    }
    if event.trace.is_some() {
        traces::request_finished(event);
    }
}

/// The `/metrics` body: what the process counts outside the recorder is copied in first (the
/// router's deployment state, the spend-log writer, the rate-limit store, budgets), then the
/// recorder renders everything. Empty without a recorder (only `serve` installs one).
pub fn render_metrics(state: &AppState) -> String {
    let Some(handle) = state.metrics.handle() else {
        return String::new();
    };
    publish(state);
    handle.render()
}

fn publish(state: &AppState) {
    use ::metrics::{counter, gauge};
    use std::sync::atomic::Ordering::Relaxed;
    state.metrics.publish_in_flight();
    counter!("switchyard_log_lines_dropped_total").absolute(LOG_LINES_DROPPED.load(Relaxed));
    gauge!("switchyard_rate_limit_store_up").set(f64::from(u8::from(state.limiter.healthy())));
    counter!("switchyard_rate_limit_local_fallbacks_total").absolute(state.limiter.fallbacks());
    gauge!("switchyard_budget_store_up").set(f64::from(u8::from(state.budgets.healthy())));
    counter!("switchyard_budget_local_fallbacks_total").absolute(state.budgets.fallbacks());
    counter!("switchyard_budget_settle_failures_total").absolute(state.budgets.settle_failures());
    counter!("switchyard_trace_spans_dropped_total").absolute(traces::SPANS_DROPPED.load(Relaxed));
    counter!("switchyard_trace_spans_exported_total")
        .absolute(traces::SPANS_EXPORTED.load(Relaxed));
    let cb = &state.callbacks.counters;
    counter!("switchyard_callback_events_enqueued_total").absolute(cb.enqueued.load(Relaxed));
    counter!("switchyard_callback_events_delivered_total").absolute(cb.delivered.load(Relaxed));
    counter!("switchyard_callback_events_dropped_total").absolute(cb.dropped.load(Relaxed));
    counter!("switchyard_callback_post_failures_total").absolute(cb.failed_posts.load(Relaxed));
    counter!("switchyard_alerts_sent_total").absolute(cb.alerts_sent.load(Relaxed));
    counter!("switchyard_alerts_deduplicated_total").absolute(cb.alerts_deduplicated.load(Relaxed));
    let c = &state.spend.counters;
    gauge!("switchyard_spend_rows_queued").set(state.spend.queued() as f64);
    gauge!("switchyard_spend_rows_spill_pending").set(c.spill_pending.load(Relaxed).max(0) as f64);
    counter!("switchyard_spend_rows_written_total").absolute(c.written.load(Relaxed));
    counter!("switchyard_spend_rows_spilled_total").absolute(c.spilled.load(Relaxed));
    counter!("switchyard_spend_rows_replayed_total").absolute(c.replayed.load(Relaxed));
    counter!("switchyard_spend_rows_dropped_total").absolute(c.dropped.load(Relaxed));
    counter!("switchyard_spend_spill_bad_lines_total").absolute(c.spill_bad_lines.load(Relaxed));
    counter!("switchyard_spend_write_failures_total").absolute(c.write_failures.load(Relaxed));
    gauge!("switchyard_spend_store_up").set(f64::from(u8::from(c.store_ok.load(Relaxed))));
    state.snapshot().router.publish_metrics();
    publish_budgets(state);
}

/// Remaining budget and max budget of every key and team with a `max_budget`: the budget
/// ledger's spend in the current window (as this process knows it) against the record's
/// `max_budget`. Labels name a key by its alias (else `key:` and 8 digits of its hash, as
/// `Principal::label` does), never by the key.
fn publish_budgets(state: &AppState) {
    use crate::auth::cache::Lookup;
    use crate::policy::limits::Scope;
    use ::metrics::gauge;
    let litellm = litellm_names();
    for (scope, id, extra, _) in state.identities.budgeted() {
        let Some(max) = extra
            .get("max_budget")
            .and_then(serde_json::Value::as_f64)
            .filter(|m| *m >= 0.0)
        else {
            continue;
        };
        // With Redis, the local ledger follows the spend logs (seeded every 5 s): close enough for a gauge.
        let remaining = max - state.budgets.local().spent(scope, &id).as_usd();
        match scope {
            Scope::Key => {
                let alias = match state.identities.key(&id) {
                    Lookup::Found(resolved) => resolved.key.key_alias.clone(),
                    _ => continue,
                };
                let label = alias
                    .clone()
                    .unwrap_or_else(|| format!("key:{}", &id[..8.min(id.len())]));
                gauge!("switchyard_key_budget_remaining_usd", "key_alias" => label.clone())
                    .set(remaining);
                gauge!("switchyard_key_max_budget_usd", "key_alias" => label).set(max);
                if litellm {
                    let alias = alias.unwrap_or_default();
                    gauge!(
                        "litellm_remaining_api_key_budget_metric",
                        "hashed_api_key" => id.clone(),
                        "api_key_alias" => alias.clone()
                    )
                    .set(remaining);
                    gauge!(
                        "litellm_api_key_max_budget_metric",
                        "hashed_api_key" => id.clone(),
                        "api_key_alias" => alias
                    )
                    .set(max);
                }
            }
            Scope::Team => {
                let Some(team) = state.identities.team(&id) else {
                    continue;
                };
                let alias = team.team_alias.clone().unwrap_or_default();
                gauge!(
                    "switchyard_team_budget_remaining_usd",
                    "team" => id.clone(),
                    "team_alias" => alias.clone()
                )
                .set(remaining);
                gauge!(
                    "switchyard_team_max_budget_usd",
                    "team" => id.clone(),
                    "team_alias" => alias.clone()
                )
                .set(max);
                if litellm {
                    gauge!(
                        "litellm_remaining_team_budget_metric",
                        "team" => id.clone(),
                        "team_alias" => alias.clone()
                    )
                    .set(remaining);
                    gauge!(
                        "litellm_team_max_budget_metric",
                        "team" => id.clone(),
                        "team_alias" => alias
                    )
                    .set(max);
                }
            }
            _ => {}
        }
    }
}

fn access_line(event: &Finished<'_>) {
    let deployment = event.deployment;
    tracing::info!(
        target: "access",
        request_id = event.request_id,
        method = event.method,
        path = event.path,
        status = event.status,
        outcome = event.outcome.name(),
        latency_ms = event.latency.as_secs_f64() * 1000.0,
        ttft_ms = event.time_to_first_token.map(|t| t.as_secs_f64() * 1000.0),
        caller = event.principal.map(|p| p.label()).as_deref(),
        surface = event.surface.name(),
        requested_model = (!event.requested_model.is_empty()).then_some(event.requested_model),
        model_group = deployment.map(|d| d.model_name.as_str()),
        deployment = deployment.map(|d| d.id.as_str()),
        provider = deployment.map(|d| d.provider_name.as_str()),
        attempts = deployment.map(|_| event.attempts),
        stream = event.stream,
        prompt_tokens = event.usage.map(|u| u.prompt_tokens),
        completion_tokens = event.usage.map(|u| u.completion_tokens),
        cost = event.cost.map(|c| tracing::field::display(c.total)),
        cost_source = event.cost.map(|c| c.source.name()),
        end_user = event.end_user,
        feature = event
            .metadata
            .and_then(|m| m.get("feature"))
            .and_then(|v| v.as_str()),
        cache_hit = event.cache_hit,
        "request"
    );
}

/// Text logs by default, JSON lines with `--json-logs`; the level comes from `RUST_LOG`
/// (default `info`). Logs go to stderr so stdout stays for the `listening on` line. `background`
/// hands lines to a writer thread (the server); the short-lived commands write directly.
/// Logs are JSON lines (`--json-logs`): the access line is then written by `access_json`.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn init_logging(json: bool, background: bool) {
    JSON_LOGS.store(json, std::sync::atomic::Ordering::Relaxed);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false);
    // A second init (tests) fails harmlessly, hence the ignored results.
    match (
        background.then(log_writer::ChannelWriter::spawn).flatten(),
        json,
    ) {
        (Some(writer), true) => {
            let _ = builder
                .with_writer(writer)
                .json()
                .flatten_event(true)
                .try_init();
        }
        (Some(writer), false) => {
            let _ = builder.with_writer(writer).try_init();
        }
        (None, true) => {
            let _ = builder
                .with_writer(std::io::stderr)
                .json()
                .flatten_event(true)
                .try_init();
        }
        (None, false) => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
}
