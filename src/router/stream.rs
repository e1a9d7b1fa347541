//! Streams and failover. A stream may move to another deployment only while nothing has reached
//! the client (DESIGN.md invariant 5), so the router reads ahead before it commits: it holds the
//! first chunks back until one carries output (text, a tool call, a finish reason or usage), all
//! within the time-to-first-token bound. An error or a timeout in that window is an ordinary
//! failed attempt, retried or fallen back like any other. Once a chunk with output is in hand,
//! the stream is committed: the held chunks go out first, then the rest as it arrives, and a
//! later failure can only end the stream with an error event.
//!
//! After the commit, [`Tracked`] keeps the deployment's books: in-flight count until the stream
//! ends or the client leaves, token usage for `tpm`, and a mid-stream failure counted against
//! the deployment (it says as much about its health as a failed request does).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use super::clock::Clock;
use super::cooldown::CooldownStore;
use super::failure::FailureKind;
use super::usage::UsageStore;
use super::Deployment;
use crate::providers::ProviderError;

/// Chunks without output (a role-only first delta, keep-alives) held back at most this many
/// before committing anyway, so a chatty upstream cannot make the router buffer without end.
const MAX_HELD: usize = 16;

pub type BoxStream<I> = Pin<Box<dyn Stream<Item = Result<I, ProviderError>> + Send>>;

/// Reads `stream` until an item for which `has_output` holds (or [`MAX_HELD`] items) and
/// returns the stream with those items put back in front. An error before that, or the stream
/// ending with nothing at all, is the attempt's failure.
pub async fn read_ahead<I: Send + 'static>(
    mut stream: BoxStream<I>,
    has_output: impl Fn(&I) -> bool,
) -> Result<BoxStream<I>, ProviderError> {
    let mut held = Vec::new();
    loop {
        match stream.next().await {
            Some(Ok(item)) => {
                let done = has_output(&item);
                held.push(item);
                if done || held.len() >= MAX_HELD {
                    break;
                }
            }
            Some(Err(error)) => return Err(error),
            None if held.is_empty() => {
                return Err(ProviderError::InvalidResponse(
                    "the stream ended before its first chunk".into(),
                ))
            }
            None => break,
        }
    }
    Ok(Box::pin(
        futures_util::stream::iter(held.into_iter().map(Ok)).chain(stream),
    ))
}

/// What a committed stream reports back to the router.
pub struct StreamBooks {
    pub deployment: Arc<Deployment>,
    pub cooldowns: Arc<dyn CooldownStore>,
    pub usage: Arc<dyn UsageStore>,
    pub clock: Clock,
}

impl Drop for StreamBooks {
    fn drop(&mut self) {
        self.deployment.stats.finish();
    }
}

/// A committed stream: forwards items and keeps the books (see the module docs). With an
/// `idle` bound, a gap longer than that between two items ends the stream with a timeout.
pub struct Tracked<I> {
    inner: BoxStream<I>,
    books: StreamBooks,
    tokens: fn(&I) -> Option<u64>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    ended: bool,
}

impl<I> Tracked<I> {
    pub fn new(
        inner: BoxStream<I>,
        books: StreamBooks,
        tokens: fn(&I) -> Option<u64>,
        idle: Option<Duration>,
    ) -> Self {
        books.deployment.stats.start();
        Tracked {
            inner,
            books,
            tokens,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            ended: false,
        }
    }

    fn failed(&mut self, error: &ProviderError) {
        let books = &self.books;
        let now = books.clock.now_ms();
        let kind = FailureKind::of(error);
        let status = match error {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        };
        books
            .deployment
            .stats
            .record_failure(error.class(), status, now, None);
        if !books.deployment.cooldown_exempt {
            let transition = books.cooldowns.record_failure(
                &books.deployment.id,
                now,
                kind,
                error.retry_after(),
            );
            if let Some(super::cooldown::Transition::Opened { until_ms }) = transition {
                crate::callbacks::raise_alert(crate::callbacks::Alert::DeploymentCooledDown {
                    model_group: books.deployment.model_name.clone(),
                    deployment: books.deployment.id.clone(),
                    cooldown: Duration::from_millis(until_ms.saturating_sub(now)),
                    error_class: Some(error.class()),
                });
            }
        }
    }
}

impl<I> Stream for Tracked<I> {
    type Item = Result<I, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(item))) => {
                if let Some((idle, sleep)) = &mut self.idle {
                    sleep.as_mut().reset(Instant::now() + *idle);
                }
                if let Some(tokens) = (self.tokens)(&item) {
                    let books = &self.books;
                    books
                        .usage
                        .add(&books.deployment.id, books.clock.now_ms(), 0, tokens);
                }
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.ended = true;
                self.failed(&error);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some((idle, sleep)) = &mut self.idle {
                    if sleep.as_mut().poll(cx).is_ready() {
                        let error = ProviderError::Timeout(*idle);
                        self.ended = true;
                        self.failed(&error);
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(values: Vec<Result<u32, ProviderError>>) -> BoxStream<u32> {
        Box::pin(futures_util::stream::iter(values))
    }

    #[tokio::test]
    async fn read_ahead_holds_until_output_and_puts_items_back() {
        let stream = read_ahead(items(vec![Ok(0), Ok(0), Ok(7), Ok(8)]), |v| *v > 0)
            .await
            .unwrap();
        let all: Vec<u32> = stream.map(|r| r.unwrap()).collect().await;
        assert_eq!(all, [0, 0, 7, 8]);
    }

    #[tokio::test]
    async fn failure_before_output_fails_the_attempt() {
        let err = read_ahead(
            items(vec![Ok(0), Err(ProviderError::Connect("reset".into()))]),
            |v| *v > 0,
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(err, ProviderError::Connect(_)));
        let err = read_ahead(items(vec![]), |v| *v > 0).await.err().unwrap();
        assert!(matches!(err, ProviderError::InvalidResponse(_)));
        // An error after output is the stream's, not the attempt's.
        let stream = read_ahead(
            items(vec![Ok(1), Err(ProviderError::Connect("reset".into()))]),
            |v| *v > 0,
        )
        .await
        .unwrap();
        let all: Vec<_> = stream.collect().await;
        assert!(all[1].is_err());
    }
}
