//! Logs and metrics. Recording is a few atomic adds on the request path; rendering happens only
//! when `/metrics` is scraped.

mod metrics;

pub use metrics::Metrics;

/// Text logs by default, JSON lines with `--json-logs`; the level comes from `RUST_LOG`
/// (default `info`). Logs go to stderr so stdout stays for the `listening on` line.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    // A second init (tests) is harmless.
    let _ = result;
}
