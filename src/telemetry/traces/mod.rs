//! OpenTelemetry traces: one SERVER span per model request, one CLIENT span per upstream
//! attempt, exported over OTLP (HTTP/protobuf or gRPC). See docs/tracing.md for what is
//! exported and how to configure it.
//!
//! ## How spans are made, and why this way
//!
//! Spans are **built after the fact** from the request-finished event ([`Finished`]) and the
//! attempt records the router leaves on the request's [`RequestTrace`], with explicit start and
//! end times, and written straight into OTLP protobuf (`otlp.rs`, a hand-written encoder: the
//! SDK's `SpanData` and `opentelemetry-otlp`'s conversion and prost encoding cost four times as
//! much). No `tracing` layer (tracing-opentelemetry), no SDK tracer and no SDK exporter:
//!
//! - everything a span says (usage, cost, deployment, status) is only known at the end, where
//!   the finished event already gathers it; a live span would be filled field by field;
//! - with tracing off, a request pays one `OnceLock` load, `Option` checks, and a task-local
//!   lookup per upstream call (a `tracing` layer would see every span and event of every
//!   request);
//! - the SDK's `BatchSpanProcessor` runs exports on its own thread under
//!   `futures_executor::block_on`, where the async HTTP (hyper) and gRPC (tonic) clients have no
//!   Tokio reactor, and it keeps its dropped-span count to itself. The batcher here
//!   (`export.rs`) is the same idea (bounded queue, batches, a schedule delay, the `OTEL_BSP_*`
//!   variables) on a Tokio task, and counts every span it loses in [`SPANS_DROPPED`].
//!
//! What happens per request when tracing is on: at the edge, the caller's `traceparent` is read
//! and the sampling decision made ([`start_request`]); each attempt gets a span id, and its
//! upstream request a `traceparent` naming it (a task-local read by the HTTP client, so no
//! provider signature changes); at the end, the spans are built and queued with `try_send`
//! (never waiting). Unsampled requests still propagate the trace context, with the sampled flag
//! off, and record nothing.
//!
//! The pipeline is process-wide (a `OnceLock`, like the log writer): it is chosen at start from
//! the environment and `litellm_settings.callbacks`; a config reload does not turn it on or off.

mod export;
mod otlp;
pub mod propagation;
mod spans;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanId, TraceId};

pub use export::{init, shutdown, Settings};
pub use spans::DeploymentAttributes;

use crate::pipeline::Finished;
use crate::providers::ProviderError;
use crate::router::Deployment;
use crate::schema::ChatAnswer;
use propagation::{new_span_id, new_trace_id, Parent, Sampler};

/// Spans lost: the queue was full, or the collector refused or never answered an export.
pub static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Spans the collector accepted.
pub static SPANS_EXPORTED: AtomicU64 = AtomicU64::new(0);

/// The running pipeline; set once by [`init`].
static PIPELINE: OnceLock<export::Pipeline> = OnceLock::new();

/// Sets traces up from the environment and the config's callbacks (see [`Settings::from_env`]),
/// logging what was decided. Runs once, inside the runtime, before the first request.
pub fn start(config_asks: bool) {
    let Some(settings) = Settings::from_env(config_asks, &|name| std::env::var(name).ok()) else {
        if config_asks {
            tracing::info!("the otel callback is listed but OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none turn traces off");
        }
        return;
    };
    match init(&settings) {
        Ok(()) => tracing::info!(
            transport = ?settings.transport,
            endpoint = settings.endpoint.as_deref().unwrap_or("(default)"),
            sampler = ?settings.sampler,
            "OpenTelemetry traces on"
        ),
        Err(err) => tracing::warn!("OpenTelemetry traces off: cannot build the exporter: {err}"),
    }
}

/// Whether traces are being exported (decided once at start).
pub fn enabled() -> bool {
    PIPELINE.get().is_some()
}

/// What one request's trace knows: its ids, the caller's context, the sampling decision, and
/// (when sampled) the attempts and answer details the spans are built from at the end.
#[derive(Debug)]
pub struct RequestTrace {
    pub trace_id: TraceId,
    /// The request (SERVER) span.
    pub span_id: SpanId,
    /// The caller's span, when it sent a valid `traceparent`.
    pub parent: Option<SpanId>,
    pub sampled: bool,
    /// The caller's `tracestate`, passed on upstream and exported.
    pub tracestate: Option<HeaderValue>,
    pub started: SystemTime,
    details: Mutex<Details>,
}

#[derive(Debug, Default)]
struct Details {
    attempts: Attempts,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
    /// The model the upstream says answered (a slice of its answer).
    response_model: Option<bytes::Bytes>,
    finish_reasons: spans::Reasons,
}

/// A request's attempts: the first kept in place (most requests make one, and then nothing is
/// allocated for it), the rest in a list.
#[derive(Debug, Default)]
struct Attempts {
    first: Option<AttemptRecord>,
    more: Vec<AttemptRecord>,
}

impl Attempts {
    fn push(&mut self, attempt: AttemptRecord) {
        if self.first.is_none() {
            self.first = Some(attempt);
        } else {
            self.more.push(attempt);
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn iter(&self) -> impl Iterator<Item = &AttemptRecord> {
        self.first.iter().chain(&self.more)
    }
}

/// One upstream attempt, as the router saw it.
#[derive(Debug)]
pub struct AttemptRecord {
    pub span_id: SpanId,
    pub deployment: Arc<Deployment>,
    /// 1 for the request's first attempt, across groups.
    pub number: u32,
    /// Retries before this one within its model group.
    pub retry: u32,
    /// Why the router left the first model group, for attempts in a fallback group.
    pub fallback_reason: Option<&'static str>,
    pub started: SystemTime,
    pub ended: SystemTime,
    /// The failure's class (`upstream_5xx`, `timeout` ...) and upstream status, if it failed.
    pub error: Option<(&'static str, Option<u16>)>,
}

/// An attempt under way: its span id, and the `traceparent` its upstream request carries.
pub struct AttemptSpan {
    span_id: SpanId,
    started: SystemTime,
    headers: UpstreamContext,
}

/// The headers one attempt's upstream request gets.
#[derive(Clone)]
struct UpstreamContext {
    traceparent: HeaderValue,
    tracestate: Option<HeaderValue>,
}

tokio::task_local! {
    /// Set around an attempt's future; read by the HTTP client when it builds the request.
    static UPSTREAM: UpstreamContext;
}

const TRACEPARENT: HeaderName = HeaderName::from_static(propagation::TRACEPARENT);
const TRACESTATE: HeaderName = HeaderName::from_static(propagation::TRACESTATE);

/// Adds the current attempt's `traceparent` (and the caller's `tracestate`) to an upstream
/// request; nothing outside an attempt or with tracing off.
pub fn inject(headers: &mut HeaderMap) {
    let _ = UPSTREAM.try_with(|context| {
        headers.insert(TRACEPARENT, context.traceparent.clone());
        if let Some(state) = &context.tracestate {
            headers.insert(TRACESTATE, state.clone());
        }
    });
}

/// A request's trace, when tracing is on: continues the caller's trace (its `traceparent`)
/// or starts one, and makes the sampling decision.
pub fn start_request(headers: &HeaderMap) -> Option<Arc<RequestTrace>> {
    let pipeline = PIPELINE.get()?;
    Some(Arc::new(RequestTrace::start(headers, pipeline.sampler)))
}

impl RequestTrace {
    fn start(headers: &HeaderMap, sampler: Sampler) -> RequestTrace {
        let (parent, tracestate): (Option<Parent>, _) = propagation::from_headers(headers);
        let trace_id = parent.map_or_else(new_trace_id, |p| p.trace_id);
        RequestTrace {
            trace_id,
            span_id: new_span_id(),
            parent: parent.map(|p| p.span_id),
            sampled: sampler.sample(trace_id, parent.as_ref()),
            tracestate,
            started: SystemTime::now(),
            details: Mutex::default(),
        }
    }

    /// A new attempt span, child of the request span.
    pub fn begin_attempt(&self) -> AttemptSpan {
        let span_id = new_span_id();
        AttemptSpan {
            span_id,
            started: SystemTime::now(),
            headers: UpstreamContext {
                traceparent: propagation::traceparent(self.trace_id, span_id, self.sampled),
                tracestate: self.tracestate.clone(),
            },
        }
    }

    /// Records how an attempt ended (sampled requests only: the others export nothing).
    pub fn end_attempt(
        &self,
        span: AttemptSpan,
        deployment: &Arc<Deployment>,
        number: u32,
        retry: u32,
        fallback_reason: Option<&'static str>,
        error: Option<&ProviderError>,
    ) {
        if !self.sampled {
            return;
        }
        let record = AttemptRecord {
            span_id: span.span_id,
            deployment: deployment.clone(),
            number,
            retry,
            fallback_reason,
            started: span.started,
            ended: SystemTime::now(),
            error: error.map(|e| {
                let status = match e {
                    ProviderError::Status { status, .. } => Some(*status),
                    _ => None,
                };
                (e.class(), status)
            }),
        };
        if let Ok(mut details) = self.details.lock() {
            details.attempts.push(record);
        }
    }

    /// The request's `temperature` (the finished event does not carry it).
    pub fn note_temperature(&self, temperature: Option<f64>) {
        if !self.sampled || temperature.is_none() {
            return;
        }
        if let Ok(mut details) = self.details.lock() {
            details.temperature = temperature;
        }
    }

    /// The request's `max_tokens` (set by every surface before admission).
    pub fn note_max_tokens(&self, max_tokens: Option<u64>) {
        if !self.sampled || max_tokens.is_none() {
            return;
        }
        if let Ok(mut details) = self.details.lock() {
            details.max_tokens = max_tokens;
        }
    }

    /// The model that answered and why it stopped, from a whole chat answer. A raw (OpenAI
    /// bytes) answer is read once more for just these fields, and only when sampled.
    pub fn note_answer(&self, answer: &ChatAnswer) {
        if !self.sampled {
            return;
        }
        let (model, reasons) = spans::answer_details(answer);
        if let Ok(mut details) = self.details.lock() {
            details.response_model = model;
            details.finish_reasons = reasons;
        }
    }

    /// A stream chunk's finish reason (chunks with one are few: one per choice).
    pub fn note_finish_reason(&self, reason: &str) {
        if !self.sampled {
            return;
        }
        if let Ok(mut details) = self.details.lock() {
            details.finish_reasons.add(reason);
        }
    }
}

impl AttemptSpan {
    /// Runs an attempt's future with this span's `traceparent` set for its upstream request.
    pub async fn scope<F: std::future::Future>(&self, future: F) -> F::Output {
        UPSTREAM.scope(self.headers.clone(), future).await
    }
}

/// The finished-event consumer: builds and queues the request's spans (sampled requests only).
pub fn request_finished(event: &Finished<'_>) {
    let (Some(trace), Some(pipeline)) = (event.trace, PIPELINE.get()) else {
        return;
    };
    if !trace.sampled {
        return;
    }
    let details = match trace.details.lock() {
        Ok(mut details) => std::mem::take(&mut *details),
        Err(_) => return,
    };
    let spans = 1 + details.attempts.len();
    if !pipeline.has_room(spans) {
        SPANS_DROPPED.fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    pipeline.push(spans::build(event, trace, &details));
}
