//! Logs, metrics and traces. Recording is a few atomic adds on the request path; rendering happens only
//! when `/metrics` is scraped. Everything here consumes the request-finished event
//! ([`request_finished`]) and the router's per-attempt events; no handler calls a recorder
//! directly.

mod access_json;
pub mod log_scope;
mod log_writer;
mod metrics;
pub mod timeseries;
pub mod traces;

pub use log_writer::{flush as flush_logs, LOG_LINES_DROPPED};
pub use metrics::{
    attempt_failed, cache_lookup, check_tag_label, cooldown_transition, fallback_finished,
    fell_back, guardrail_decision, guardrail_detection, litellm_names, retried, GuardrailDecisions,
    Metrics, MetricsSettings, Rejection, BUCKETS,
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
pub async fn render_metrics(state: &AppState) -> String {
    let Some(handle) = state.metrics.handle() else {
        return String::new();
    };
    publish(state);
    publish_headroom(state).await;
    handle.render()
}

/// Most keys and teams whose rate-limit headroom one scrape reads.
const HEADROOM_SUBJECTS: usize = 1000;

/// Checks per limiter call when reading headroom (one Redis script call each).
const HEADROOM_BATCH: usize = 64;

/// Rate-limit headroom of every key and team with an `rpm_limit` or `tpm_limit` (at most
/// [`HEADROOM_SUBJECTS`]): what is left of each limit right now, read from the limiter that
/// enforces it (the shared Redis buckets when scaled out) by a zero-cost check, so a scrape
/// takes nothing. While the shared store is down the gauges keep their last values rather than
/// report one instance's fallback buckets.
async fn publish_headroom(state: &AppState) {
    use crate::policy::limits::{Check, Kind, Scope};
    use ::metrics::gauge;
    if !state.limiter.healthy() {
        return;
    }
    let (keys, teams) = state.identities.rate_limited(HEADROOM_SUBJECTS);
    if keys.is_empty() && teams.is_empty() {
        return;
    }
    // (labels, check) for every limit; a label set names its subject as the budget gauges do.
    let mut limits: Vec<(Vec<(&'static str, String)>, Check<'_>)> = Vec::new();
    let mut add =
        |labels: Vec<(&'static str, String)>, scope, id, rpm: Option<u64>, tpm: Option<u64>| {
            if let Some(rpm) = rpm {
                let mut check = Check::requests(scope, id, rpm);
                check.cost = 0;
                limits.push((labels.clone(), check));
            }
            if let Some(tpm) = tpm {
                limits.push((labels, Check::tokens(scope, id, tpm, 0)));
            }
        };
    for key in &keys {
        let label = key
            .key_alias
            .clone()
            .unwrap_or_else(|| format!("key:{}", &key.token[..8.min(key.token.len())]));
        add(
            vec![("key_alias", label)],
            Scope::Key,
            &key.token,
            key.rpm_limit,
            key.tpm_limit,
        );
    }
    for team in &teams {
        let labels = vec![
            ("team", team.team_id.clone()),
            ("team_alias", team.team_alias.clone().unwrap_or_default()),
        ];
        add(
            labels,
            Scope::Team,
            &team.team_id,
            team.rpm_limit,
            team.tpm_limit,
        );
    }
    for batch in limits.chunks(HEADROOM_BATCH) {
        let checks: Vec<Check<'_>> = batch.iter().map(|(_, check)| *check).collect();
        let Ok(grant) = state.limiter.acquire(&checks, &[]).await else {
            continue;
        };
        for ((labels, check), quota) in batch.iter().zip(&grant.quotas) {
            let name = match (check.scope, check.kind) {
                (Scope::Key, Kind::Requests) => "switchyard_key_rate_limit_remaining_requests",
                (Scope::Key, _) => "switchyard_key_rate_limit_remaining_tokens",
                (_, Kind::Requests) => "switchyard_team_rate_limit_remaining_requests",
                _ => "switchyard_team_rate_limit_remaining_tokens",
            };
            gauge!(name, labels.as_slice()).set(quota.remaining as f64);
        }
    }
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

pub fn init_logging(json_logs: bool, background: bool) {
    JSON_LOGS.store(json_logs, std::sync::atomic::Ordering::Relaxed);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let text = || log_scope::Tagged::text(tracing_subscriber::fmt::format().with_target(false));
    let json = || {
        log_scope::Tagged::json(
            tracing_subscriber::fmt::format()
                .with_target(false)
                .json()
                .flatten_event(true),
        )
    };
    // A second init (tests) fails harmlessly, hence the ignored results.
    match (
        background.then(log_writer::ChannelWriter::spawn).flatten(),
        json_logs,
    ) {
        (Some(writer), true) => {
            let _ = builder
                .with_writer(writer)
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(json())
                .try_init();
        }
        (Some(writer), false) => {
            let _ = builder
                .with_writer(writer)
                .with_ansi(false)
                .event_format(text())
                .try_init();
        }
        (None, true) => {
            let _ = builder
                .with_writer(std::io::stderr)
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(json())
                .try_init();
        }
        (None, false) => {
            let _ = builder
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .event_format(text())
                .try_init();
        }
    }
}
