//! The streaming response body: yields SSE events one at a time (with `chunk_delay_ms` between
//! them), can cut the connection on purpose (`fail_mid_stream_after`), and notices when the client
//! goes away before the end.
//!
//! Client disconnects are detected by dropping: hyper drops the body when the connection dies,
//! and a guard inside the body that has not been told "finished" counts a cancelled stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::state::{AppState, InFlight};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Running,
    Completed,
    Aborted,
}

/// Records how a stream ended: completed, aborted by the mock, or (if dropped while still
/// running) cancelled by the client. Also keeps the request counted as in flight until then.
pub struct StreamGuard {
    state: AppState,
    log_id: Option<u64>,
    outcome: Outcome,
    _in_flight: InFlight,
}

impl StreamGuard {
    pub fn new(state: &AppState, log_id: Option<u64>) -> Self {
        Self {
            state: state.clone(),
            log_id,
            outcome: Outcome::Running,
            _in_flight: InFlight::new(state),
        }
    }

    fn complete(&mut self) {
        if self.outcome == Outcome::Running {
            self.outcome = Outcome::Completed;
            self.state.stats.streams_completed.fetch_add(1, Relaxed);
        }
    }

    fn abort(&mut self) {
        if self.outcome == Outcome::Running {
            self.outcome = Outcome::Aborted;
            self.state.stats.streams_aborted.fetch_add(1, Relaxed);
            if let Some(id) = self.log_id {
                self.state.log.mark_aborted(id);
            }
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.outcome == Outcome::Running {
            self.state.stats.streams_cancelled.fetch_add(1, Relaxed);
            if let Some(id) = self.log_id {
                self.state.log.mark_cancelled(id);
            }
            tracing::debug!(log_id = ?self.log_id, "client cancelled a mock stream");
        }
    }
}

/// An SSE body over a sequence of pre-framed events.
pub struct SseBody<E> {
    events: E,
    emitted: usize,
    /// Cut the connection once this many events were sent.
    abort_at: Option<usize>,
    /// The abort is delayed by one poll so that hyper flushes the events already written before
    /// it sees the error (an error drops hyper's unflushed buffer with the connection).
    abort_primed: bool,
    finished: bool,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    sleeping: bool,
    guard: StreamGuard,
}

impl<E: ExactSizeIterator<Item = Bytes>> SseBody<E> {
    /// `fail_after`: abort after that many events. It is capped so that `[DONE]` is never sent:
    /// a stream told to fail always fails, however short the reply.
    pub fn new(events: E, delay: Duration, fail_after: Option<u64>, guard: StreamGuard) -> Self {
        let last_before_done = events.len().saturating_sub(1);
        let abort_at = fail_after.map(|n| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(last_before_done)
        });
        Self {
            events,
            emitted: 0,
            abort_at,
            abort_primed: false,
            finished: false,
            delay,
            sleep: None,
            sleeping: false,
            guard,
        }
    }

    fn start_delay(&mut self) {
        let deadline = Instant::now() + self.delay;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.sleeping = true;
    }
}

impl<E: ExactSizeIterator<Item = Bytes> + Unpin> Stream for SseBody<E> {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if this.sleeping {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
            }
            this.sleeping = false;
        }
        if this.abort_at == Some(this.emitted) {
            if !this.abort_primed {
                this.abort_primed = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.finished = true;
            this.guard.abort();
            return Poll::Ready(Some(Err(io::Error::other(
                "mock upstream: injected mid-stream failure (fail_mid_stream_after)",
            ))));
        }
        match this.events.next() {
            Some(event) => {
                this.emitted += 1;
                if this.events.len() == 0 {
                    // The last event ([DONE]) is out: from the mock's side the stream is done.
                    this.guard.complete();
                } else if !this.delay.is_zero() {
                    this.start_delay();
                }
                Poll::Ready(Some(Ok(event)))
            }
            None => {
                this.finished = true;
                this.guard.complete();
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeConfig;
    use futures_util::StreamExt;

    fn state() -> AppState {
        AppState::new(
            RuntimeConfig {
                latency_ms: 0,
                error_rate: 0.0,
                error_status: 500,
                retry_after: None,
                hang: false,
                chunk_delay_ms: 0,
                fail_mid_stream_after: None,
                reply: String::new(),
            },
            None,
            0,
        )
    }

    fn events(n: usize) -> std::vec::IntoIter<Bytes> {
        (0..n)
            .map(|i| Bytes::from(format!("data: {i}\n\n")))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[tokio::test]
    async fn completes_and_counts() {
        let state = state();
        let body = SseBody::new(
            events(3),
            Duration::ZERO,
            None,
            StreamGuard::new(&state, None),
        );
        let items: Vec<_> = body.collect().await;
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(Result::is_ok));
        let stats = state.stats.view();
        assert_eq!(
            (
                stats.streams_completed,
                stats.streams_cancelled,
                stats.in_flight
            ),
            (1, 0, 0)
        );
    }

    #[tokio::test]
    async fn dropped_early_counts_as_cancelled() {
        let state = state();
        let mut body = SseBody::new(
            events(3),
            Duration::ZERO,
            None,
            StreamGuard::new(&state, None),
        );
        assert!(body.next().await.is_some());
        assert_eq!(state.stats.view().in_flight, 1);
        drop(body);
        let stats = state.stats.view();
        assert_eq!(
            (
                stats.streams_completed,
                stats.streams_cancelled,
                stats.in_flight
            ),
            (0, 1, 0)
        );
    }

    #[tokio::test]
    async fn fails_after_n_events_and_never_sends_the_last() {
        let state = state();
        for (fail_after, expected_ok) in [(0, 0), (2, 2), (99, 4)] {
            let body = SseBody::new(
                events(5),
                Duration::ZERO,
                Some(fail_after),
                StreamGuard::new(&state, None),
            );
            let items: Vec<_> = body.collect().await;
            assert_eq!(items.len(), expected_ok + 1, "fail_after {fail_after}");
            assert!(items[..expected_ok].iter().all(Result::is_ok));
            assert!(items[expected_ok].is_err());
        }
        let stats = state.stats.view();
        assert_eq!((stats.streams_aborted, stats.streams_cancelled), (3, 0));
    }

    #[tokio::test]
    async fn waits_between_chunks() {
        let state = state();
        let start = Instant::now();
        let body = SseBody::new(
            events(4),
            Duration::from_millis(50),
            None,
            StreamGuard::new(&state, None),
        );
        let _: Vec<_> = body.collect().await;
        // Three gaps between four events; none before the first.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    }
}
