//! The export side: which collector and protocol (the standard `OTEL_*` variables), and a
//! bounded batcher on a Tokio task that hands batches to the OTLP exporter.
//!
//! A request only ever `try_send`s its spans into a bounded queue; a full queue drops the span
//! and counts it. The batcher wakes on a short timer rather than per span (a wake-up per send
//! would cost a context switch per request, as the log writer found), exports when a batch is
//! full or the schedule delay has passed, and counts every span of a failed or timed-out export
//! as dropped. A dead collector therefore costs counters and a rate-limited log line, never a
//! request's time.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::propagation::Sampler;
use super::{PIPELINE, SPANS_DROPPED, SPANS_EXPORTED};

/// How often the batcher looks at the queue (at most; the schedule delay, if shorter).
const TICK: Duration = Duration::from_millis(100);
/// Failed exports are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    HttpProtobuf,
    Grpc,
}

/// Where traces go and how they are batched, from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub transport: Transport,
    /// The endpoint as configured (for the start-up log); the exporter resolves it itself.
    pub endpoint: Option<String>,
    pub sampler: Sampler,
    /// `OTEL_BSP_MAX_QUEUE_SIZE` (2048).
    pub max_queue: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512).
    pub max_batch: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY`, ms (5000).
    pub schedule_delay: Duration,
    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT`, ms (10000).
    pub export_timeout: Duration,
}

impl Settings {
    /// Traces are on when `litellm_settings` lists the `otel` callback (`config_asks`) or a
    /// traces endpoint is set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), unless `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`.
    pub fn from_env(config_asks: bool, env: &dyn Fn(&str) -> Option<String>) -> Option<Settings> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        if var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none")) {
            return None;
        }
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
        if !config_asks && endpoint.is_none() {
            return None;
        }
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let transport = match protocol.as_deref() {
            None | Some("http/protobuf") => Transport::HttpProtobuf,
            Some("grpc") => Transport::Grpc,
            Some(other) => {
                tracing::warn!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported (http/protobuf or grpc); using http/protobuf"
                );
                Transport::HttpProtobuf
            }
        };
        let number = |name: &str, default: u64| {
            var(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048).clamp(1, 1 << 20) as usize;
        let max_batch =
            (number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512) as usize).clamp(1, max_queue);
        let timeout_ms = var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(10_000);
        Some(Settings {
            transport,
            endpoint,
            sampler: Sampler::from_env(
                var("OTEL_TRACES_SAMPLER").as_deref(),
                var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            ),
            max_queue,
            max_batch,
            schedule_delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000).max(1)),
            export_timeout: Duration::from_millis(timeout_ms.max(1)),
        })
    }
}

/// The running pipeline: the queue's sending end and what every span shares.
pub(super) struct Pipeline {
    tx: mpsc::Sender<SpanData>,
    pub(super) sampler: Sampler,
    pub(super) scope: InstrumentationScope,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Pipeline {
    /// Queues a span, or counts it dropped; never waits.
    pub(super) fn push(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            SPANS_DROPPED.fetch_add(1, Relaxed);
        }
    }
}

/// Starts the exporter and the batcher (inside the Tokio runtime). An exporter that cannot be
/// built (a malformed endpoint) leaves traces off, with the reason returned for the log.
pub fn init(settings: &Settings) -> Result<(), String> {
    let exporter = match settings.transport {
        Transport::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_protocol(Protocol::Grpc)
            .build(),
        Transport::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(http_client(settings.export_timeout)?)
            .build(),
    };
    let mut exporter = exporter.map_err(|err| err.to_string())?;
    exporter.set_resource(&resource());
    let (tx, rx) = mpsc::channel(settings.max_queue);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(exporter, rx, settings.clone(), stop.clone()));
    let pipeline = Pipeline {
        tx,
        sampler: settings.sampler,
        scope: InstrumentationScope::builder("switchyard")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
        stop,
        task: Mutex::new(Some(task)),
    };
    PIPELINE
        .set(pipeline)
        .map_err(|_| "traces are already set up".to_owned())
}

/// Exports what is queued, within `limit`; spans still queued after it are lost (and counted).
pub async fn shutdown(limit: Duration) {
    let Some(pipeline) = PIPELINE.get() else {
        return;
    };
    pipeline.stop.cancel();
    let task = pipeline.task.lock().ok().and_then(|mut t| t.take());
    if let Some(task) = task {
        if tokio::time::timeout(limit, task).await.is_err() {
            tracing::warn!("trace export still running at shutdown; the spans left are lost");
        }
    }
}

/// `service.name` from `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`), else `switchyard`.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name("switchyard").build()
    }
}

/// The async hyper client over the gateway's own rustls (ring) stack: `https://` collectors are
/// checked against the system roots, `http://` ones are plain.
fn http_client(
    timeout: Duration,
) -> Result<opentelemetry_http::hyper::HyperClient<Connector>, String> {
    let tls = crate::providers::http::tls_config(&crate::config::TlsSettings::default())
        .map_err(|err| err.to_string())?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(opentelemetry_http::hyper::HyperClient::new(
        connector, timeout, None,
    ))
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

async fn run(
    exporter: SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    settings: Settings,
    stop: CancellationToken,
) {
    let tick = settings.schedule_delay.min(TICK);
    let mut batch = Vec::with_capacity(settings.max_batch);
    let mut last_export = Instant::now();
    let mut last_log: Option<Instant> = None;
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(tick) => false,
            () = stop.cancelled() => true,
        };
        loop {
            while batch.len() < settings.max_batch {
                match rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            let due = batch.len() >= settings.max_batch
                || (!batch.is_empty()
                    && (stopping || last_export.elapsed() >= settings.schedule_delay));
            if !due {
                break;
            }
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(settings.max_batch));
            let count = spans.len() as u64;
            // The exporter has its own timeout; this bound holds even if it does not.
            let bound = settings.export_timeout + Duration::from_secs(1);
            let result = tokio::time::timeout(bound, exporter.export(spans)).await;
            last_export = Instant::now();
            let error = match result {
                Ok(Ok(())) => {
                    SPANS_EXPORTED.fetch_add(count, Relaxed);
                    continue;
                }
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no answer within {bound:?}"),
            };
            let dropped = SPANS_DROPPED.fetch_add(count, Relaxed) + count;
            if last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                last_log = Some(Instant::now());
                tracing::warn!(
                    spans = count,
                    spans_dropped_total = dropped,
                    "trace export failed, spans dropped: {error}"
                );
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn on_by_endpoint_or_callback_off_by_sdk_switches() {
        assert!(Settings::from_env(false, &env(&[])).is_none());
        let by_config = Settings::from_env(true, &env(&[])).unwrap();
        assert_eq!(by_config.transport, Transport::HttpProtobuf);
        assert_eq!(by_config.max_queue, 2048);
        assert_eq!(by_config.schedule_delay, Duration::from_secs(5));
        let by_env = Settings::from_env(
            false,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
            ]),
        )
        .unwrap();
        assert_eq!(by_env.transport, Transport::Grpc);
        assert_eq!(by_env.endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(by_env.schedule_delay, Duration::from_millis(200));
        assert_eq!(by_env.export_timeout, Duration::from_millis(1500));
        let traces_only = Settings::from_env(
            false,
            &env(&[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ]),
        )
        .unwrap();
        assert_eq!(traces_only.transport, Transport::HttpProtobuf);
        assert!(Settings::from_env(true, &env(&[("OTEL_SDK_DISABLED", "true")])).is_none());
        assert!(Settings::from_env(
            true,
            &env(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c")
            ])
        )
        .is_none());
    }
}
