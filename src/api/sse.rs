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
    Body::from_stream(SseBody::new(state, deployment, Box::pin(events)))
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
    Body::from_stream(SseBody::new(state, deployment, Box::pin(events)))
}

type Rendered = Result<(Option<Bytes>, Option<Usage>), ProviderError>;

/// The body stream: forwards rendered events, appends `[DONE]` or an error event, and on drop
/// records usage and whether the client left early.
struct SseBody {
    events: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
    state: AppState,
    deployment: Arc<Deployment>,
    usage: Option<Usage>,
    ended: bool,
}

impl SseBody {
    fn new(
        state: AppState,
        deployment: Arc<Deployment>,
        events: Pin<Box<dyn Stream<Item = Rendered> + Send>>,
    ) -> Self {
        SseBody {
            events,
            state,
            deployment,
            usage: None,
            ended: false,
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
                    return Poll::Ready(Some(Ok(data_event(&api_error.body()))));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(Some(Ok(Bytes::from_static(b"data: [DONE]\n\n"))));
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
