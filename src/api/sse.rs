//! Rendering streams as server-sent events. Each upstream chunk is written as soon as it arrives;
//! a failure mid-stream becomes an OpenAI-style error event; a client that goes away drops the
//! body, which drops the upstream response and so cancels the upstream request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use tokio_util::sync::WaitForCancellationFutureOwned;

use super::error::ApiError;
use crate::money::prices::Price;
use crate::pipeline::{Outcome, RequestContext};
use crate::providers::http::ChunkStream;
use crate::providers::ProviderError;
use crate::router::{PassthroughStream, RouteError};
use crate::schema::Usage;

pub fn response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    *headers = axum::http::HeaderMap::with_capacity(super::ANSWER_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies in front of the gateway not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A stream on its way out: the response head (status and headers already set) and the events
/// of its body. [`StreamReply::into_response`] joins them with the request's context.
pub struct StreamReply {
    pub response: Response,
    events: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
    dialect: Dialect,
}

impl StreamReply {
    /// The response, its body carrying `ctx`: usage and time to first token are recorded as
    /// events pass, and the finished event fires when the stream ends, fails, is cut by a
    /// shutdown, or is dropped because the client left.
    pub fn into_response(self, ctx: RequestContext) -> Response {
        let mut response = self.response;
        ctx.stream_response(&mut response);
        let cut = Box::pin(ctx.streams_cut().cancelled_owned());
        *response.body_mut() = Body::from_stream(SseBody {
            events: self.events,
            ctx,
            cut,
            ended: false,
            dialect: self.dialect,
        });
        response
    }
}

fn reply(events: Pin<Box<dyn Stream<Item = Rendered> + Send>>, dialect: Dialect) -> StreamReply {
    StreamReply {
        response: response(Body::empty()),
        events,
        dialect,
    }
}

/// A chat stream as SSE. The usage-only chunk is hidden from clients that did not ask for it
/// (the gateway always asks the upstream, to count tokens); for those that did, its `usage`
/// carries the request's `cost` in dollars when the deployment has a price (LiteLLM's
/// `include_cost_in_streaming_usage` shape).
pub fn chat_stream(
    chunks: ChunkStream,
    include_usage: bool,
    price: Option<Arc<Price>>,
    trace: Option<Arc<crate::telemetry::traces::RequestTrace>>,
) -> StreamReply {
    let events = chunks.filter_map(move |item| {
        std::future::ready(match item {
            Ok(mut chunk) => {
                if let Some(trace) = &trace {
                    for reason in chunk
                        .choices
                        .iter()
                        .filter_map(|c| c.finish_reason.as_deref())
                    {
                        trace.note_finish_reason(reason);
                    }
                }
                let usage = chunk.usage.clone();
                if !include_usage {
                    chunk.usage = None;
                } else if let (Some(shown), Some(price)) = (chunk.usage.as_mut(), &price) {
                    let tokens = crate::money::cost::Tokens::from_usage(shown);
                    let cost = crate::money::cost::nanos(price, &tokens).as_usd();
                    shown.extra.insert("cost".into(), cost.into());
                }
                let hidden = !include_usage && chunk.choices.is_empty() && usage.is_some();
                Some(Ok((
                    if hidden {
                        None
                    } else {
                        Some(data_event(&chunk))
                    },
                    usage,
                )))
            }
            Err(err) => Some(Err(err)),
        })
    });
    reply(Box::pin(events), Dialect::OpenAi)
}

/// A stream for the Anthropic surface: frames already rendered as Anthropic events (see
/// [`anthropic_event`]); a failure becomes an `error` event, and there is no `[DONE]`.
pub fn anthropic_stream(frames: Pin<Box<dyn Stream<Item = Rendered> + Send>>) -> StreamReply {
    reply(frames, Dialect::Anthropic)
}

/// A stream for the Responses surface: frames already rendered as Responses events (see
/// `providers/responses/stream.rs`); no `[DONE]`, and a failure is an `error` event numbered
/// with `seq`, the counter the events were numbered with.
pub fn responses_stream(
    frames: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
    seq: Arc<AtomicU64>,
) -> StreamReply {
    reply(frames, Dialect::Responses(seq))
}

/// One Anthropic event: `event: <type>` then `data: <json>` (Anthropic's SDKs skip events
/// without a name).
pub fn anthropic_event(event: &crate::providers::anthropic::wire::StreamEvent) -> Bytes {
    let mut buf = BytesMut::with_capacity(192);
    buf.put_slice(b"event: ");
    buf.put_slice(event.name().as_bytes());
    buf.put_slice(b"\ndata: ");
    let mut writer = buf.writer();
    // Serializing our own types into memory cannot fail.
    let _ = serde_json::to_writer(&mut writer, event);
    let mut buf = writer.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// An event forwarded as it came (`data` may span lines; each gets its own `data:`).
pub fn anthropic_frame(name: &str, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(name.len() + data.len() + 24);
    if !name.is_empty() {
        buf.put_slice(b"event: ");
        buf.put_slice(name.as_bytes());
        buf.put_slice(b"\n");
    }
    for line in data.split('\n') {
        buf.put_slice(b"data: ");
        buf.put_slice(line.as_bytes());
        buf.put_slice(b"\n");
    }
    buf.put_slice(b"\n");
    buf.freeze()
}

/// A streamed `/v1/completions` answer as SSE.
pub fn passthrough_stream(events: PassthroughStream) -> StreamReply {
    let events = events.map(|item| {
        item.map(|event| {
            let usage = event.usage();
            (Some(data_event(&event)), usage)
        })
    });
    reply(Box::pin(events), Dialect::OpenAi)
}

/// A rendered event (or `None` for one the client does not see) and the usage it reported.
pub type Rendered = Result<(Option<Bytes>, Option<Usage>), ProviderError>;

/// How the stream ends and how a failure is told, per API surface.
#[derive(Clone)]
enum Dialect {
    /// `data: [DONE]` at the end; a failure is an OpenAI error object in a `data:` event.
    OpenAi,
    /// The events themselves end the stream (`message_stop`); a failure is an `error` event.
    Anthropic,
    /// The events end the stream (`response.completed`); a failure is an `error` event
    /// numbered after the last event sent (the counter the events were numbered with).
    Responses(Arc<AtomicU64>),
}

/// The body stream: forwards rendered events, appends `[DONE]` or an error event, and keeps the
/// request's context up to date until it reports the request finished.
struct SseBody {
    events: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
    ctx: RequestContext,
    /// Resolves when a shutdown's drain time is over.
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
    dialect: Dialect,
}

impl SseBody {
    /// Ends the stream with an error event in this surface's shape.
    fn fail(&mut self, error: ProviderError, outcome: Outcome) -> Bytes {
        self.ended = true;
        let (group, id) = match &self.ctx.served {
            Some((deployment, _)) => (deployment.model_name.as_str(), deployment.id.as_str()),
            None => ("", ""),
        };
        tracing::warn!(
            request_id = self.ctx.request_id.to_str().unwrap_or(""),
            deployment = %id,
            "stream ended early: {error}"
        );
        let api_error = ApiError::Route(RouteError::upstream(group, 1, id, error));
        let event = match &self.dialect {
            Dialect::OpenAi => data_event(&api_error.body()),
            Dialect::Anthropic => anthropic_frame("error", &api_error.anthropic_body().to_string()),
            Dialect::Responses(seq) => {
                let body = api_error.body();
                let error = &body["error"];
                crate::providers::responses::stream::error_event(
                    seq.fetch_add(1, Ordering::Relaxed),
                    error["code"].as_str().or(error["type"].as_str()),
                    error["message"].as_str().unwrap_or("the upstream failed"),
                )
            }
        };
        self.ctx.emit(200, outcome);
        event
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.events.poll_next_unpin(cx) {
                Poll::Pending => {
                    if self.cut.as_mut().poll(cx).is_ready() {
                        let error = ProviderError::Connect(
                            "the gateway is shutting down and its drain time is over".into(),
                        );
                        let event = self.fail(error, Outcome::StreamFailed);
                        return Poll::Ready(Some(Ok(event)));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok((event, usage)))) => {
                    if usage.is_some() {
                        self.ctx.usage = usage;
                    }
                    if let Some(event) = event {
                        self.ctx.output_bytes += event.len() as u64;
                        self.ctx.output_sent();
                        return Poll::Ready(Some(Ok(event)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    let event = self.fail(error, Outcome::StreamFailed);
                    return Poll::Ready(Some(Ok(event)));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    self.ctx.emit(200, Outcome::Answered);
                    return Poll::Ready(match self.dialect {
                        Dialect::OpenAi => Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))),
                        Dialect::Anthropic | Dialect::Responses(_) => None,
                    });
                }
            }
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if !self.ended {
            tracing::info!(
                request_id = self.ctx.request_id.to_str().unwrap_or(""),
                "client closed the stream early; upstream request cancelled"
            );
            // The context reports the request as abandoned, with the usage seen so far.
        }
    }
}

fn data_event(value: &impl serde::Serialize) -> Bytes {
    let mut buf = BytesMut::with_capacity(256).writer();
    buf.get_mut().put_slice(b"data: ");
    // Serializing our own types into memory cannot fail.
    let _ = serde_json::to_writer(&mut buf, value);
    let mut buf = buf.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}
