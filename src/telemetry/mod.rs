//! Logs and metrics. Recording is a few atomic adds on the request path; rendering happens only
//! when `/metrics` is scraped.

mod log_writer;
mod metrics;

pub use log_writer::{flush as flush_logs, LOG_LINES_DROPPED};
pub use metrics::Metrics;

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
