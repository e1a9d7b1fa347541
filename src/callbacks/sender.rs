//! The one sender every destination uses: takes items from its outbox, POSTs them in batches,
//! retries a failed POST with exponential backoff, and counts what it gives up.
//!
//! - A batch is encoded once: a retry sends the same bytes, hence the same event ids, so a
//!   receiver that accepted a POST whose answer was lost can recognise the second copy.
//! - Retried: connect errors, timeouts, 408, 429 and 5xx. Any other 4xx is a refusal that a
//!   retry would not change: the batch is dropped at once (and counted).
//! - While a batch is retried, new items wait in the outbox; when it is full the dispatcher
//!   drops (and counts) what does not fit. Nothing waits on the request path.
//! - At shutdown the sender flushes what is queued; it stops retrying (what fails then is
//!   dropped and counted) so the flush ends within its time.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::CallbackCounters;
use crate::config::Secret;
use crate::providers::http::HttpClient;

/// Turns a batch into the body of one POST.
pub type Encoder<T> = Box<dyn Fn(&[T]) -> Bytes + Send + Sync>;

/// Where and how one destination's batches go.
pub struct Target {
    /// For logs; never the URL (a Slack webhook URL is a credential).
    pub name: String,
    pub url: String,
    pub headers: HeaderMap,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub timeout: Duration,
    /// Looks at the body of a 2xx answer (Langfuse answers 207 with per-event errors).
    pub on_delivered: Option<fn(&str, &[u8])>,
}

/// Configured headers as a header map; invalid ones are left out with a warning (naming the
/// header, never its value).
pub fn header_map(headers: &[(String, Secret)], destination: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.expose()),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                map.insert(name, value);
            }
            _ => tracing::warn!(
                callback = destination,
                header = name.as_str(),
                "callback header is not a valid HTTP header; not sent"
            ),
        }
    }
    map
}

/// Drops are logged once per burst: the first drop logs, then at most one line per
/// [`DropLog::EVERY_MS`] with the count since the last line.
#[derive(Debug, Default)]
pub struct DropLog {
    last_logged_ms: AtomicI64,
    unlogged: AtomicU64,
}

impl DropLog {
    const EVERY_MS: i64 = 10_000;

    pub fn note(&self, destination: &str, dropped: u64, why: &str) {
        self.unlogged.fetch_add(dropped, Relaxed);
        let now = crate::auth::cache::now_ms();
        let last = self.last_logged_ms.load(Relaxed);
        if now - last < Self::EVERY_MS
            || self
                .last_logged_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        let dropped = self.unlogged.swap(0, Relaxed);
        tracing::warn!(
            callback = destination,
            dropped,
            "callback events dropped: {why}"
        );
    }
}

/// What one POST came to.
enum Sent {
    Delivered,
    /// Worth trying again (connect error, timeout, 408, 429, 5xx).
    Retry(String),
    /// Refused for good (another 4xx).
    Refused(u16),
}

pub async fn run<T: Send + Sync + 'static>(
    target: Target,
    encode: Encoder<T>,
    mut rx: mpsc::Receiver<T>,
    http: HttpClient,
    counters: Arc<CallbackCounters>,
    stop: CancellationToken,
) {
    let mut batch: Vec<T> = Vec::with_capacity(target.batch_size.min(1024));
    loop {
        // Waits for the first item; the outbox closes when the dispatcher ends (shutdown).
        match rx.recv().await {
            Some(item) => batch.push(item),
            None => break,
        }
        // Then fills the batch for at most the flush interval (not at all while stopping).
        let deadline = tokio::time::Instant::now() + target.flush_interval;
        while batch.len() < target.batch_size {
            while batch.len() < target.batch_size {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            if batch.len() >= target.batch_size || stop.is_cancelled() {
                break;
            }
            tokio::select! {
                biased;
                item = rx.recv() => match item {
                    Some(item) => batch.push(item),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
                () = stop.cancelled() => {}
            }
        }
        send(&target, &encode, &batch, &http, &counters, &stop).await;
        batch.clear();
    }
}

/// Sends one batch, retrying as the target says; counts it delivered or dropped.
async fn send<T>(
    target: &Target,
    encode: &Encoder<T>,
    batch: &[T],
    http: &HttpClient,
    counters: &CallbackCounters,
    stop: &CancellationToken,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    let body = encode(batch);
    let mut attempt = 0u32;
    loop {
        let outcome = match http
            .post(
                &target.url,
                target.headers.clone(),
                body.clone(),
                target.timeout,
            )
            .await
        {
            Ok((status, answer)) if (200..300).contains(&status) => {
                if let Some(inspect) = target.on_delivered {
                    inspect(&target.name, &answer);
                }
                Sent::Delivered
            }
            Ok((status, _)) if status == 408 || status == 429 || status >= 500 => {
                Sent::Retry(format!("status {status}"))
            }
            Ok((status, _)) => Sent::Refused(status),
            Err(err) => Sent::Retry(err),
        };
        match outcome {
            Sent::Delivered => {
                counters.delivered.fetch_add(n, Relaxed);
                return;
            }
            Sent::Refused(status) => {
                counters.failed_posts.fetch_add(1, Relaxed);
                counters.dropped.fetch_add(n, Relaxed);
                counters.given_up.fetch_add(n, Relaxed);
                tracing::warn!(
                    callback = target.name.as_str(),
                    status,
                    events = n,
                    "callback batch refused by the receiver; dropped (a retry would not help)"
                );
                return;
            }
            Sent::Retry(why) => {
                counters.failed_posts.fetch_add(1, Relaxed);
                if attempt >= target.max_retries || stop.is_cancelled() {
                    counters.dropped.fetch_add(n, Relaxed);
                    counters.given_up.fetch_add(n, Relaxed);
                    tracing::warn!(
                        callback = target.name.as_str(),
                        events = n,
                        attempts = attempt + 1,
                        "callback batch dropped after its retries: {why}"
                    );
                    return;
                }
                let delay = backoff(target.retry_delay, target.max_retry_delay, attempt);
                tracing::debug!(
                    callback = target.name.as_str(),
                    events = n,
                    attempt = attempt + 1,
                    delay_ms = delay.as_millis() as u64,
                    "callback POST failed, retrying: {why}"
                );
                attempt += 1;
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    // A shutdown cuts the wait short: one last try, then the batch is dropped.
                    () = stop.cancelled() => {}
                }
            }
        }
    }
}

/// `first × 2^attempt`, at most `max`, with up to 10% jitter so instances do not retry in step.
fn backoff(first: Duration, max: Duration, attempt: u32) -> Duration {
    let base = first.saturating_mul(1u32 << attempt.min(20)).min(max);
    let jitter = base.mul_f64(fastrand::f64() * 0.1);
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let at = |n| backoff(first, max, n);
        assert!(at(0) >= first && at(0) <= first.mul_f64(1.1));
        assert!(at(1) >= 2 * first && at(1) <= (2 * first).mul_f64(1.1));
        assert!(at(3) >= 8 * first);
        assert!(at(10) <= max.mul_f64(1.1));
        assert!(at(40) <= max.mul_f64(1.1));
    }
}
