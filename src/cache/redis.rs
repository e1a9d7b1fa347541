//! The shared backend: one Redis for every instance. Keys are `switchyard:cache:<key>` (the key
//! carries the namespace), values an encoded [`Entry`], with a `PX` expiry (Redis drops them).
//!
//! Redis down or slow never fails a request: a call waits at most the configured timeout
//! (100 ms by default), then the request goes on without the cache (a lookup is a miss, a store
//! is dropped) and the failure is counted (`switchyard_cache_lookups_total{result="error"}`).
//! After a failure the cache is skipped for one second, so an outage costs each request nothing
//! instead of one timeout; the first call after that second finds out whether Redis is back.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands as _;

use super::entry::Entry;

const KEY_PREFIX: &str = "switchyard:cache:";
/// How long the cache is skipped after Redis failed.
const BACKOFF_MS: i64 = 1_000;

pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    /// Skip Redis until then (ms since the epoch); 0 when healthy.
    down_until: AtomicI64,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisCacheError {
    #[error("redis cache is skipped after a recent failure")]
    Backoff,
    #[error("redis cache call timed out")]
    Timeout,
    #[error("redis cache call failed: {0}")]
    Redis(#[from] redis::RedisError),
}

impl RedisStore {
    /// Connects lazily: an unreachable Redis at start is a skipped cache, not a failed start.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore {
            conn,
            timeout,
            down_until: AtomicI64::new(0),
        })
    }

    fn available(&self, now_ms: i64) -> Result<(), RedisCacheError> {
        if self.down_until.load(Ordering::Relaxed) > now_ms {
            return Err(RedisCacheError::Backoff);
        }
        Ok(())
    }

    fn failed(&self, now_ms: i64, error: &RedisCacheError) {
        let previous = self.down_until.swap(now_ms + BACKOFF_MS, Ordering::Relaxed);
        if previous == 0 {
            tracing::warn!(%error, "response cache: redis unusable; requests skip the cache until it is back");
        }
    }

    fn succeeded(&self) {
        if self.down_until.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("response cache: redis reachable again");
        }
    }

    pub async fn get(&self, key: &str, now_ms: i64) -> Result<Option<Entry>, RedisCacheError> {
        self.available(now_ms)?;
        let mut conn = self.conn.clone();
        let full = format!("{KEY_PREFIX}{key}");
        let call = async move { conn.get::<_, Option<Vec<u8>>>(full).await };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Ok(value.and_then(|bytes| Entry::decode(&bytes)))
            }
            Ok(Err(err)) => {
                let err = RedisCacheError::Redis(err);
                self.failed(now_ms, &err);
                Err(err)
            }
            Err(_) => {
                let err = RedisCacheError::Timeout;
                self.failed(now_ms, &err);
                Err(err)
            }
        }
    }

    pub async fn put(
        &self,
        key: &str,
        entry: &Entry,
        ttl: Duration,
    ) -> Result<(), RedisCacheError> {
        let now_ms = entry.stored_ms;
        self.available(now_ms)?;
        let mut conn = self.conn.clone();
        let full = format!("{KEY_PREFIX}{key}");
        let value = entry.encode();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let call = async move {
            redis::cmd("SET")
                .arg(full)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(())) => {
                self.succeeded();
                Ok(())
            }
            Ok(Err(err)) => {
                let err = RedisCacheError::Redis(err);
                self.failed(now_ms, &err);
                Err(err)
            }
            Err(_) => {
                let err = RedisCacheError::Timeout;
                self.failed(now_ms, &err);
                Err(err)
            }
        }
    }
}
