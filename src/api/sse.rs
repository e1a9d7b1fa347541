//! Rendering streams as server-sent events. Each upstream chunk is written as soon as it arrives;
//! a failure mid-stream becomes an OpenAI-style error event; a client that goes away drops the
//! body, which drops the upstream response and so cancels the upstream request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::error::ApiError;
use crate::providers::http::ChunkStream;
use crate::providers::ProviderError;
use crate::router::{Deployment, PassthroughStream, RouteError};
use crate::schema::Usage;
use crate::state::AppState;

pub fn response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies in front of the gateway not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A chat stream as SSE. Usage from the final chunk is recorded; the usage-only chunk is hidden
/// from clients that did not ask for it (the gateway always asks the upstream).
pub fn chat_body(
    state: AppState,
    chunks: ChunkStream,
    deployment: Arc<Deployment>,
    include_usage: bool,
) -> Body {
    let events = chunks.filter_map(move |item| {
        std::future::ready(match item {
            Ok(mut chunk) => {
                let usage = chunk.usage.clone();
                if !include_usage {
                    chunk.usage = None;
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
    Body::from_stream(SseBody::new(
        state,
        deployment,
        Box::pin(events),
        Dialect::OpenAi,
    ))
}

/// A stream for the Anthropic surface: frames already rendered as Anthropic events (see
/// [`anthropic_event`]); a failure becomes an `error` event, and there is no `[DONE]`.
pub fn anthropic_body(
    state: AppState,
    frames: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
    deployment: Arc<Deployment>,
) -> Body {
    Body::from_stream(SseBody::new(state, deployment, frames, Dialect::Anthropic))
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
pub fn passthrough_body(
    state: AppState,
    events: PassthroughStream,
    deployment: Arc<Deployment>,
) -> Body {
    let events = events.map(|item| {
        item.map(|event| {
            let usage = event.usage();
            (Some(data_event(&event)), usage)
        })
    });
    Body::from_stream(SseBody::new(
        state,
        deployment,
        Box::pin(events),
        Dialect::OpenAi,
    ))
}

/// A rendered event (or `None` for one the client does not see) and the usage it reported.
pub type Rendered = Result<(Option<Bytes>, Option<Usage>), ProviderError>;

/// How the stream ends and how a failure is told, per API surface.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `data: [DONE]` at the end; a failure is an OpenAI error object in a `data:` event.
    OpenAi,
    /// The events themselves end the stream (`message_stop`); a failure is an `error` event.
    Anthropic,
}

/// The body stream: forwards rendered events, appends `[DONE]` or an error event, and on drop
/// records usage and whether the client left early.
struct SseBody {
    events: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
    state: AppState,
    deployment: Arc<Deployment>,
    usage: Option<Usage>,
    ended: bool,
    dialect: Dialect,
}

impl SseBody {
    fn new(
        state: AppState,
        deployment: Arc<Deployment>,
        events: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
        dialect: Dialect,
    ) -> Self {
        SseBody {
            events,
            state,
            deployment,
            usage: None,
            ended: false,
            dialect,
        }
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
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok((event, usage)))) => {
                    if usage.is_some() {
                        self.usage = usage;
                    }
                    if let Some(event) = event {
                        return Poll::Ready(Some(Ok(event)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    self.ended = true;
                    tracing::warn!(deployment = %self.deployment.id, "upstream stream failed: {error}");
                    let api_error = ApiError::Route(RouteError::upstream(
                        &self.deployment.model_name,
                        1,
                        &self.deployment.id,
                        error,
                    ));
                    return Poll::Ready(Some(Ok(match self.dialect {
                        Dialect::OpenAi => data_event(&api_error.body()),
                        Dialect::Anthropic => {
                            anthropic_frame("error", &api_error.anthropic_body().to_string())
                        }
                    })));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(match self.dialect {
                        Dialect::OpenAi => Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))),
                        Dialect::Anthropic => None,
                    });
                }
            }
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(usage) = &self.usage {
            self.state.metrics.record_usage(&self.deployment.id, usage);
        }
        if !self.ended {
            self.state
                .metrics
                .record_stream_cancelled(&self.deployment.id);
            tracing::info!(deployment = %self.deployment.id, "client closed the stream early; upstream request cancelled");
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
