//! The one pooled HTTP client every provider's requests go through, and the plumbing from an
//! upstream response (whole or streamed) to canonical values.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;

use super::{
    scrub, ChatStreamDecoder, Provider, ProviderError, SseDecoder, SseEvent, StreamItem, Upstream,
    UpstreamRequest,
};
use crate::schema::ChatChunk;

/// Upstream response bodies larger than this are refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Error bodies are only read this far: they are shown to humans, not parsed for data.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Canonical chunks of an upstream stream; ends after the upstream's end marker or an error.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(512)
            .connect_timeout(Duration::from_secs(10))
            // Redirects on a POST to an API are a misconfiguration, not something to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HttpClient { client })
    }

    /// Sends a request and reads the whole answer, all within `timeout`. Non-2xx answers become
    /// [`ProviderError::Status`] via the provider's error parser.
    pub async fn send(
        &self,
        provider: &dyn Provider,
        upstream: &Upstream,
        request: UpstreamRequest,
        timeout: Duration,
    ) -> Result<Bytes, ProviderError> {
        let call = async {
            let response = self.start(request).await?;
            let status = response.status();
            if !status.is_success() {
                return Err(error_from(provider, upstream, response).await);
            }
            read_limited(response, MAX_RESPONSE_BYTES).await
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(ProviderError::Timeout(timeout)))
    }

    /// Opens a stream: waits at most `first_byte_timeout` for the response head, then yields
    /// server-sent events as they arrive, failing when no bytes arrive for `idle_timeout`.
    pub async fn open_stream(
        &self,
        provider: &dyn Provider,
        upstream: &Upstream,
        request: UpstreamRequest,
        first_byte_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let head = async {
            let response = self.start(request).await?;
            if !response.status().is_success() {
                return Err(error_from(provider, upstream, response).await);
            }
            Ok(response)
        };
        let response = tokio::time::timeout(first_byte_timeout, head)
            .await
            .unwrap_or(Err(ProviderError::Timeout(first_byte_timeout)))?;
        Ok(sse_events(response, idle_timeout))
    }

    async fn start(&self, request: UpstreamRequest) -> Result<reqwest::Response, ProviderError> {
        self.client
            .post(&request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await
            .map_err(|err| ProviderError::Connect(describe(&err)))
    }
}

async fn error_from(
    provider: &dyn Provider,
    upstream: &Upstream,
    response: reqwest::Response,
) -> ProviderError {
    let status = response.status().as_u16();
    let headers: HeaderMap = response.headers().clone();
    let body = read_limited(response, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    match provider.error_response(status, &headers, &body) {
        ProviderError::Status {
            status,
            message,
            kind,
            code,
            param,
            retry_after,
        } => ProviderError::Status {
            status,
            message: scrub(&message, upstream.api_key.as_ref()),
            kind,
            code,
            param,
            retry_after,
        },
        other => other,
    }
}

/// Reads a body up to `limit` bytes (an error body is simply cut there).
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, ProviderError> {
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    if limit == MAX_ERROR_BYTES {
                        body.extend_from_slice(&chunk[..limit - body.len()]);
                        return Ok(body.freeze());
                    }
                    return Err(ProviderError::InvalidResponse(format!(
                        "response larger than {limit} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(err) => return Err(ProviderError::Connect(describe(&err))),
        }
    }
}

/// Server-sent events of an upstream response; ends at the end of the body or after an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>;

struct EventState {
    response: reqwest::Response,
    sse: SseDecoder,
    /// Decoded but not yet yielded; an error is queued after the events that preceded it.
    pending: VecDeque<Result<SseEvent, ProviderError>>,
    scratch: Vec<SseEvent>,
    finished: bool,
    idle_timeout: Duration,
}

fn sse_events(response: reqwest::Response, idle_timeout: Duration) -> EventStream {
    let state = EventState {
        response,
        sse: SseDecoder::new(),
        pending: VecDeque::new(),
        scratch: Vec::new(),
        finished: false,
        idle_timeout,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(item) = state.pending.pop_front() {
                    return Some((item, state));
                }
                if state.finished {
                    return None;
                }
                let step =
                    match tokio::time::timeout(state.idle_timeout, state.response.chunk()).await {
                        Err(_) => Err(ProviderError::Timeout(state.idle_timeout)),
                        Ok(Err(err)) => Err(ProviderError::Connect(format!(
                            "stream interrupted: {}",
                            describe(&err)
                        ))),
                        Ok(Ok(Some(bytes))) => state
                            .sse
                            .feed(&bytes, &mut state.scratch)
                            .map_err(|err| ProviderError::InvalidResponse(err.to_string())),
                        Ok(Ok(None)) => {
                            state.finished = true;
                            state
                                .sse
                                .finish(&mut state.scratch)
                                .map_err(|err| ProviderError::InvalidResponse(err.to_string()))
                        }
                    };
                state.pending.extend(state.scratch.drain(..).map(Ok));
                if let Err(err) = step {
                    state.pending.push_back(Err(err));
                    state.finished = true;
                }
            }
        },
    ))
}

/// Turns upstream events into canonical chunks with the provider's decoder. The stream ends at
/// the provider's end marker, at the end of the body (some servers omit the marker), or after the
/// first error.
pub fn decode_chat(events: EventStream, decoder: Box<dyn ChatStreamDecoder>) -> ChunkStream {
    struct State {
        events: EventStream,
        decoder: Box<dyn ChatStreamDecoder>,
        pending: VecDeque<Result<ChatChunk, ProviderError>>,
        items: Vec<StreamItem>,
        finished: bool,
    }
    let state = State {
        events,
        decoder,
        pending: VecDeque::new(),
        items: Vec::new(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(item) = state.pending.pop_front() {
                    return Some((item, state));
                }
                if state.finished {
                    return None;
                }
                let event = match state.events.next().await {
                    None => return None,
                    Some(Err(err)) => {
                        state.finished = true;
                        return Some((Err(err), state));
                    }
                    Some(Ok(event)) => event,
                };
                let decoded = state.decoder.decode(&event, &mut state.items);
                for item in state.items.drain(..) {
                    match item {
                        StreamItem::Chunk(chunk) if !state.finished => {
                            state.pending.push_back(Ok(chunk))
                        }
                        StreamItem::Chunk(_) => {} // nothing counts after the end marker
                        StreamItem::Done => state.finished = true,
                    }
                }
                if let Err(err) = decoded {
                    if !state.finished {
                        state.pending.push_back(Err(err));
                    }
                    state.finished = true;
                }
            }
        },
    ))
}

/// A one-line description of a transport error, without the URL's query (which could carry a key).
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if err.is_connect() {
        "connection failed".to_owned()
    } else if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_body() || err.is_decode() {
        "error reading the response body".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
