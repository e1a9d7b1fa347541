//! Logs and metrics. Recording is a few atomic adds on the request path; rendering happens only
//! when `/metrics` is scraped. Everything here consumes the request-finished event
//! ([`request_finished`]); no handler calls a recorder directly.

mod log_writer;
mod metrics;
pub mod timeseries;

pub use log_writer::{flush as flush_logs, LOG_LINES_DROPPED};
pub use metrics::Metrics;

use crate::pipeline::Finished;
use crate::state::AppState;

/// Every consumer of the request-finished event, in one place: metrics, the dashboard's traffic
/// series (`timeseries.rs`), the spend log (a row
/// handed to a bounded queue, see `spend/`), the callbacks (a record handed to a bounded queue,
/// see `callbacks/`), then the access log
/// (target `access`, so `RUST_LOG=info,access=off` turns it off alone; formatting it costs tens
/// of microseconds of CPU, see docs/operations.md).
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
        access_line(event);
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
pub fn init_logging(json: bool, background: bool) {
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
