//! The export side: which collector and protocol (the standard `OTEL_*` variables), and a
//! bounded batcher on a Tokio task that sends batches of encoded spans to the collector.
//!
//! A request only ever `try_send`s its spans (already encoded, see `otlp.rs`) into a bounded
//! queue; a full queue drops the span and counts it. The batcher wakes on a short timer rather
//! than per span (a wake-up per send would cost a context switch per request, as the log writer
//! found), exports when a batch is full or the schedule delay has passed, and counts every span
//! of a failed or timed-out export as dropped. A dead collector therefore costs counters and a
//! rate-limited log line, never a request's time.
//!
//! The bytes are sent here too: OTLP/HTTP as one `POST` through hyper with the gateway's rustls
//! stack, OTLP/gRPC as one unary call through tonic with a codec that passes the bytes as they
//! are. (`opentelemetry-otlp` would want the SDK's `SpanData`, which is what cost the most.)

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::uri::PathAndQuery;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::otlp::{self, Spans};
use super::propagation::Sampler;
use super::{PIPELINE, SPANS_DROPPED, SPANS_EXPORTED};

/// How often the batcher looks at the queue (at most; the schedule delay, if shorter).
const TICK: Duration = Duration::from_millis(100);
/// Failed exports are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(30);
/// The OTLP/gRPC method.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    HttpProtobuf,
    Grpc,
}

/// Where traces go and how they are batched, from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub transport: Transport,
    /// The endpoint as configured (for the start-up log).
    pub endpoint: Option<String>,
    /// Where exports go: for OTLP/HTTP the signal-specific endpoint as given, else the generic
    /// one with `/v1/traces` appended, else `http://localhost:4318/v1/traces`; for gRPC the
    /// endpoint, else `http://localhost:4317`.
    pub url: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (which win):
    /// `key=value` pairs, comma-separated, values percent-decoded.
    pub headers: Vec<(String, String)>,
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
        let traces_endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let generic_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let endpoint = traces_endpoint.clone().or_else(|| generic_endpoint.clone());
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
        let url = match transport {
            Transport::HttpProtobuf => traces_endpoint.unwrap_or_else(|| {
                let base = generic_endpoint
                    .as_deref()
                    .unwrap_or("http://localhost:4318");
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }),
            Transport::Grpc => endpoint
                .clone()
                .unwrap_or_else(|| "http://localhost:4317".to_owned()),
        };
        let mut headers = parse_headers(var("OTEL_EXPORTER_OTLP_HEADERS").as_deref());
        for (key, value) in parse_headers(var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").as_deref()) {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            headers.push((key, value));
        }
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
            url,
            headers,
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

/// `key=value,key2=value2` (the W3C baggage format the OTLP spec uses for headers), values
/// percent-decoded; malformed pairs are skipped.
fn parse_headers(text: Option<&str>) -> Vec<(String, String)> {
    let Some(text) = text else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_owned(), percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The running pipeline: the queue's sending end and the sampler.
pub(super) struct Pipeline {
    /// One item per request: its spans, encoded and framed.
    tx: mpsc::Sender<Spans>,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`, in spans ([`QUEUED`] counts them).
    max_queue: usize,
    pub(super) sampler: Sampler,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Pipeline {
    /// Whether the queue has room for `spans` more now. A request whose spans would be dropped
    /// does not build them: under a load the exporter cannot keep up with, the cost of tracing
    /// falls instead of being spent on spans that are thrown away.
    pub(super) fn has_room(&self, spans: usize) -> bool {
        QUEUED.load(Relaxed) + spans <= self.max_queue
    }

    /// Queues a request's spans, or counts them dropped; never waits.
    pub(super) fn push(&self, spans: Spans) {
        let count = spans.count() as usize;
        QUEUED.fetch_add(count, Relaxed);
        if self.tx.try_send(spans).is_err() {
            QUEUED.fetch_sub(count, Relaxed);
            SPANS_DROPPED.fetch_add(count as u64, Relaxed);
        }
    }
}

/// Spans in the queue (the channel counts requests; the limit is in spans, as the
/// `OTEL_BSP_*` variables say). Checked before a request builds its spans, so concurrent
/// requests can overshoot it by a few: it bounds memory, it is not an exact count.
static QUEUED: AtomicUsize = AtomicUsize::new(0);

/// Starts the sender and the batcher (inside the Tokio runtime). A sender that cannot be built
/// (a malformed endpoint or header) leaves traces off, with the reason returned for the log.
pub fn init(settings: &Settings) -> Result<(), String> {
    let sender = Sender::new(settings)?;
    let (tx, rx) = mpsc::channel(settings.max_queue);
    QUEUED.store(0, Relaxed);
    let stop = CancellationToken::new();
    let batch = Batch {
        resource: otlp::resource(&resource_attributes(&|name| std::env::var(name).ok())),
        scope: otlp::scope("switchyard", env!("CARGO_PKG_VERSION")),
    };
    let task = tokio::spawn(run(sender, batch, rx, settings.clone(), stop.clone()));
    let pipeline = Pipeline {
        tx,
        max_queue: settings.max_queue,
        sampler: settings.sampler,
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

/// The resource: `OTEL_RESOURCE_ATTRIBUTES`, with `service.name` from `OTEL_SERVICE_NAME`, else
/// from those attributes, else `switchyard`.
fn resource_attributes(env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut attributes = parse_headers(env("OTEL_RESOURCE_ATTRIBUTES").as_deref());
    let service = env("OTEL_SERVICE_NAME")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let has_name = attributes.iter().any(|(k, _)| k == "service.name");
    if service.is_some() || !has_name {
        attributes.retain(|(k, _)| k != "service.name");
        let name = service.unwrap_or_else(|| "switchyard".to_owned());
        attributes.insert(0, ("service.name".to_owned(), name));
    }
    attributes
}

/// What every export request repeats, encoded once.
struct Batch {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Sends one encoded `ExportTraceServiceRequest`.
enum Sender {
    /// OTLP/HTTP: the async hyper client over the gateway's own rustls (ring) stack; `https://`
    /// collectors are checked against the system roots, `http://` ones are plain.
    Http {
        client: Box<Client<Connector, Full<Bytes>>>,
        uri: Uri,
        headers: HeaderMap,
    },
    /// OTLP/gRPC: tonic's generic client with a pass-through codec.
    Grpc {
        client: Box<tonic::client::Grpc<tonic::transport::Channel>>,
        metadata: tonic::metadata::MetadataMap,
    },
}

impl Sender {
    fn new(settings: &Settings) -> Result<Sender, String> {
        match settings.transport {
            Transport::HttpProtobuf => {
                let uri: Uri = settings
                    .url
                    .parse()
                    .map_err(|err| format!("traces endpoint `{}`: {err}", settings.url))?;
                let mut headers = HeaderMap::new();
                for (key, value) in &settings.headers {
                    let name = HeaderName::from_bytes(key.as_bytes())
                        .map_err(|err| format!("OTLP header `{key}`: {err}"))?;
                    let value = HeaderValue::from_str(value)
                        .map_err(|err| format!("OTLP header `{key}`: {err}"))?;
                    headers.insert(name, value);
                }
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                let tls =
                    crate::providers::http::tls_config(&crate::config::TlsSettings::default())
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
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_timer(TokioTimer::new())
                    .build(connector);
                Ok(Sender::Http {
                    client: Box::new(client),
                    uri,
                    headers,
                })
            }
            Transport::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(settings.url.clone())
                    .map_err(|err| format!("traces endpoint `{}`: {err}", settings.url))?
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(settings.export_timeout)
                    .connect_lazy();
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (key, value) in &settings.headers {
                    let name = tonic::metadata::MetadataKey::from_bytes(
                        key.to_ascii_lowercase().as_bytes(),
                    )
                    .map_err(|err| format!("OTLP header `{key}`: {err}"))?;
                    let value = value
                        .parse()
                        .map_err(|err| format!("OTLP header `{key}`: {err}"))?;
                    metadata.insert(name, value);
                }
                Ok(Sender::Grpc {
                    client: Box::new(tonic::client::Grpc::new(channel)),
                    metadata,
                })
            }
        }
    }

    async fn send(&mut self, body: Bytes) -> Result<(), String> {
        match self {
            Sender::Http {
                client,
                uri,
                headers,
            } => {
                let mut request = Request::new(Full::new(body));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers.clone();
                let response = client.request(request).await.map_err(|err| {
                    let mut message = err.to_string();
                    let mut source = std::error::Error::source(&err);
                    while let Some(inner) = source {
                        message = format!("{message}: {inner}");
                        source = inner.source();
                    }
                    message
                })?;
                let status = response.status();
                // Read to the end so the connection goes back to the pool.
                let answer = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|err| err.to_string())?
                    .to_bytes();
                if status.is_success() {
                    Ok(())
                } else {
                    let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]);
                    Err(format!("the collector answered {status}: {text}"))
                }
            }
            Sender::Grpc { client, metadata } => {
                client
                    .ready()
                    .await
                    .map_err(|err| format!("cannot reach the collector: {err}"))?;
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                client
                    .unary(request, PathAndQuery::from_static(GRPC_EXPORT), RawCodec)
                    .await
                    .map(|_| ())
                    .map_err(|status| status.to_string())
            }
        }
    }
}

/// A tonic codec that sends bytes as they are and ignores the answer's body
/// (`ExportTraceServiceResponse`, whose partial-success report nothing here acts on).
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

async fn run(
    mut sender: Sender,
    framing: Batch,
    mut rx: mpsc::Receiver<Spans>,
    settings: Settings,
    stop: CancellationToken,
) {
    let tick = settings.schedule_delay.min(TICK);
    // Requests' spans; `spans` counts what they hold (the batch size is in spans).
    let mut batch: Vec<Spans> = Vec::with_capacity(settings.max_batch);
    let mut spans = 0usize;
    // One buffer for every export request; `Bytes` hands it to the client and gives it back
    // when the client is done with it (`try_into_mut`), else a new one is made.
    let mut buffer: Vec<u8> = Vec::new();
    let mut last_export = Instant::now();
    let mut last_log: Option<Instant> = None;
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(tick) => false,
            () = stop.cancelled() => true,
        };
        loop {
            while spans < settings.max_batch {
                match rx.try_recv() {
                    Ok(request) => {
                        let count = request.count() as usize;
                        QUEUED.fetch_sub(count, Relaxed);
                        spans += count;
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            let due = spans >= settings.max_batch
                || (!batch.is_empty()
                    && (stopping || last_export.elapsed() >= settings.schedule_delay));
            if !due {
                break;
            }
            let count = spans as u64;
            otlp::export_request(&mut buffer, &framing.resource, &framing.scope, &batch);
            batch.clear();
            spans = 0;
            let body = Bytes::from(std::mem::take(&mut buffer));
            // The clients have their own timeouts; this bound holds even if they do not.
            let bound = settings.export_timeout;
            let result = tokio::time::timeout(bound, sender.send(body.clone())).await;
            if let Ok(reused) = body.try_into_mut() {
                buffer = reused.into();
            }
            last_export = Instant::now();
            let error = match result {
                Ok(Ok(())) => {
                    SPANS_EXPORTED.fetch_add(count, Relaxed);
                    continue;
                }
                Ok(Err(err)) => err,
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
        assert_eq!(traces_only.url, "http://c/v1/traces");
        assert_eq!(by_config.url, "http://localhost:4318/v1/traces");
        assert_eq!(by_env.url, "http://collector:4317");
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

    #[test]
    fn urls_headers_and_the_resource_follow_the_spec() {
        let settings = Settings::from_env(
            false,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "api-key=a%20b%2Cc, x-team = 7 ,broken,=x",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "API-KEY=traces%"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.url, "http://collector:4318/v1/traces");
        assert_eq!(
            settings.headers,
            [
                ("x-team".to_owned(), "7".to_owned()),
                ("API-KEY".to_owned(), "traces%".to_owned())
            ]
        );
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            resource_attributes(&env(&[])),
            pairs(&[("service.name", "switchyard")])
        );
        assert_eq!(
            resource_attributes(&env(&[(
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=edge"
            )])),
            pairs(&[("deployment.environment", "prod"), ("service.name", "edge")])
        );
        assert_eq!(
            resource_attributes(&env(&[
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=edge,region=eu"),
                ("OTEL_SERVICE_NAME", "gw")
            ])),
            pairs(&[("service.name", "gw"), ("region", "eu")])
        );
    }
}
