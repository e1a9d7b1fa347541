//! Stage 5 of the pipeline: the response cache (docs/caching.md).
//!
//! Exact match: a request's [`CacheKey`] is a hash of what changes its answer; an answer is
//! stored under it for a TTL, in this process ([`memory`]) or in Redis ([`redis`], shared by
//! every instance). Handlers call [`ResponseCache::lookup`] after the pre-call policy (so limits,
//! budgets and access hold for cached answers too) and before routing: a [`Lookup::Hit`] is
//! answered at once (cost 0), a [`Lookup::Miss`] goes upstream and hands its answer back with
//! [`Pending::complete`]. Concurrent identical misses are coalesced ([`coalesce`]).

pub mod canonical;
pub mod coalesce;
pub mod control;
pub mod entry;
pub mod key;
pub mod memory;
pub mod message_stream;
pub mod redis;
pub mod semantic;
pub mod settings;
pub mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

pub use control::{ControlError, Controls};
pub use entry::Entry;
pub use key::{CacheKey, Endpoint};
pub use settings::{Backend, CacheSettings};

use coalesce::{Coalescer, Leader, Role};

pub struct ResponseCache {
    settings: CacheSettings,
    store: Store,
    /// With a semantic backend: the similarity index and the embedding model group.
    semantic: Option<(semantic::SemanticIndex, String)>,
    coalescer: Arc<Coalescer>,
}

enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

/// What the cache says about one request.
pub enum Lookup {
    /// The cache does not apply (off for this endpoint, `default_off` without opt-in).
    Skip,
    /// A stored answer (or a coalesced leader's fresh one).
    Hit(Hit),
    /// Go upstream, then hand the answer to [`Pending::complete`].
    Miss(Pending),
}

pub struct Hit {
    pub entry: Arc<Entry>,
    pub key: CacheKey,
}

/// A miss on its way upstream.
pub struct Pending {
    cache: Arc<ResponseCache>,
    pub key: CacheKey,
    ttl: Duration,
    store: bool,
    /// Held while this request is the one upstream call for its key.
    leader: Option<Leader>,
    /// The prompt's scope and vector, to add the answer to the similarity index.
    similar: Option<([u8; 32], Box<[f32]>)>,
}

impl ResponseCache {
    /// `None` when the backend cannot be set up (a Redis URL that does not parse, no runtime):
    /// the gateway then serves without a cache and says so.
    pub fn new(settings: CacheSettings) -> Result<ResponseCache, String> {
        let mut semantic = None;
        let store = match &settings.backend {
            Backend::Memory { max_bytes } => Store::Memory(memory::MemoryStore::new(
                *max_bytes,
                settings.max_entry_bytes as u64,
            )),
            Backend::Semantic {
                max_bytes,
                embedding_model,
                threshold,
                max_entries,
            } => {
                semantic = Some((
                    semantic::SemanticIndex::new(*threshold, *max_entries),
                    embedding_model.clone(),
                ));
                Store::Memory(memory::MemoryStore::new(
                    *max_bytes,
                    settings.max_entry_bytes as u64,
                ))
            }
            Backend::Redis { url, timeout } => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err("the Redis cache needs a Tokio runtime".into());
                }
                Store::Redis(
                    redis::RedisStore::connect(url.expose(), *timeout)
                        .map_err(|e| format!("redis cache: {}", redact(&e.to_string())))?,
                )
            }
        };
        Ok(ResponseCache {
            settings,
            store,
            semantic,
            coalescer: Arc::new(Coalescer::default()),
        })
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    fn applies(&self, endpoint: Endpoint, controls: &Controls) -> bool {
        let calls = &self.settings.calls;
        let on = match endpoint {
            Endpoint::Chat => calls.chat,
            Endpoint::Completions => calls.completions,
            Endpoint::Embeddings => calls.embeddings,
            Endpoint::Messages => calls.messages,
        };
        on && (!self.settings.default_off || controls.use_cache)
    }

    /// Stage 5. `body` is the request as the upstream will see it (typed, or a JSON object; the
    /// fields that do not change the answer are skipped as it is hashed: [`key`]); `model` the
    /// group asked for. A follower of a coalesced key waits for the leader,
    /// never past `deadline`; streams never wait (they lead, or go alone). `embedder` embeds
    /// prompts for a semantic backend.
    #[allow(clippy::too_many_arguments)]
    pub async fn lookup<B: Serialize + Sync + ?Sized>(
        self: &Arc<Self>,
        endpoint: Endpoint,
        model: &str,
        body: &B,
        controls: &Controls,
        stream: bool,
        deadline: Option<Instant>,
        embedder: &dyn semantic::Embedder,
    ) -> Lookup {
        if !self.applies(endpoint, controls) {
            return Lookup::Skip;
        }
        let namespace = controls
            .namespace
            .as_deref()
            .or(self.settings.namespace.as_deref());
        let key = match CacheKey::new(namespace, endpoint, model, body) {
            Ok(key) => key,
            Err(err) => {
                tracing::debug!(%err, "response cache skipped");
                return Lookup::Skip;
            }
        };
        let ttl = controls.ttl.unwrap_or(self.settings.ttl);
        let store = !controls.no_store;
        if controls.no_cache {
            crate::telemetry::cache_lookup("bypass");
            return Lookup::Miss(Pending {
                cache: self.clone(),
                key,
                ttl,
                store,
                leader: None,
                similar: None,
            });
        }
        let fresh = |entry: &Entry| match controls.max_age {
            Some(max_age) => now_ms().saturating_sub(entry.stored_ms) <= max_age.as_millis() as i64,
            None => true,
        };
        match self.get(&key).await {
            Ok(Some(entry)) if fresh(&entry) => {
                crate::telemetry::cache_lookup("hit");
                return Lookup::Hit(Hit { entry, key });
            }
            Ok(_) => {}
            Err(()) => crate::telemetry::cache_lookup("error"),
        }
        let mut similar = None;
        if let (Some((index, embedding_model)), Endpoint::Chat | Endpoint::Completions) =
            (&self.semantic, endpoint)
        {
            // Only here is the body made a JSON tree: the embedding call costs far more.
            let tree: Value = serde_json::to_value(body).unwrap_or_default();
            if let Some(text) = semantic::prompt_text(&tree) {
                let embedded = match deadline {
                    Some(d) => tokio::time::timeout_at(
                        tokio::time::Instant::from_std(d),
                        embedder.embed(embedding_model, &text),
                    )
                    .await
                    .ok()
                    .flatten(),
                    None => embedder.embed(embedding_model, &text).await,
                };
                let scope = CacheKey::scope(namespace, endpoint, model, body).ok();
                match (embedded.and_then(semantic::normalize), scope) {
                    (Some(vector), Some(scope)) => {
                        if let Some((entry, similarity)) = index.search(&scope, &vector, now_ms()) {
                            if fresh(&entry) {
                                tracing::debug!(similarity, "semantic cache hit");
                                crate::telemetry::cache_lookup("semantic_hit");
                                return Lookup::Hit(Hit { entry, key });
                            }
                        }
                        similar = Some((scope, vector));
                    }
                    (None, _) => crate::telemetry::cache_lookup("embedding_error"),
                    // Not hashable: the exact key failed first (never reached).
                    (Some(_), None) => {}
                }
            }
        }
        let leader = match self.coalescer.join(&key.digest) {
            Role::Leader(leader) => Some(leader),
            Role::Follower(_) if stream => None,
            Role::Follower(rx) => {
                let deadline = deadline.map(tokio::time::Instant::from_std);
                if let Some(entry) = coalesce::wait(rx, deadline).await {
                    crate::telemetry::cache_lookup("coalesced");
                    return Lookup::Hit(Hit { entry, key });
                }
                // The leader failed or our deadline is near: go upstream alone.
                None
            }
        };
        crate::telemetry::cache_lookup("miss");
        Lookup::Miss(Pending {
            cache: self.clone(),
            key,
            ttl,
            store,
            leader,
            similar,
        })
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, ()> {
        let now = now_ms();
        match &self.store {
            Store::Memory(memory) => Ok(memory.get(&key.digest, now)),
            Store::Redis(redis) => match redis.get(&key.text(), now).await {
                Ok(entry) => Ok(entry.map(Arc::new)),
                Err(err) => {
                    tracing::debug!(%err, "response cache lookup skipped");
                    Err(())
                }
            },
        }
    }
}

impl Pending {
    /// The answer came back whole: followers get it now; it is stored (memory at once, Redis
    /// from a spawned task) unless the request said `no-store` or it is too large.
    pub fn complete(self, body: Bytes, deployment: &str) {
        let Pending {
            cache,
            key,
            ttl,
            store,
            leader,
            similar,
        } = self;
        // Nobody to hand it to and nowhere to keep it (a follower joining now goes upstream
        // itself, as after a failed leader).
        if !store && !leader.as_ref().is_some_and(Leader::followed) {
            return;
        }
        let entry = Arc::new(Entry::new(body, deployment.into(), now_ms()));
        if let Some(leader) = &leader {
            leader.answer(entry.clone());
        }
        if !store || entry.body.len() > cache.settings.max_entry_bytes {
            return;
        }
        let expires = entry.stored_ms + ttl.as_millis() as i64;
        if let (Some((index, _)), Some((scope, vector))) = (&cache.semantic, similar) {
            index.insert(scope, vector, entry.clone(), expires);
        }
        match &cache.store {
            Store::Memory(memory) => memory.put(key.digest, entry, expires),
            Store::Redis(_) => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                runtime.spawn(async move {
                    if let Store::Redis(redis) = &cache.store {
                        if let Err(err) = redis.put(&key.text(), &entry, ttl).await {
                            crate::telemetry::cache_lookup("store_error");
                            tracing::debug!(%err, "response cache store skipped");
                        }
                    }
                    // The leader (if any) lets its key go once the answer is stored.
                    drop(leader);
                });
            }
        }
    }

    /// The largest answer that is stored.
    pub fn max_entry_bytes(&self) -> usize {
        self.cache.settings.max_entry_bytes
    }
}

pub fn now_ms() -> i64 {
    crate::auth::cache::now_ms()
}

/// A Redis error may quote the URL; never its password.
fn redact(message: &str) -> String {
    match (message.find("://"), message.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &message[..scheme], &message[at..])
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redis_errors_never_carry_a_password() {
        let redacted = redact("invalid URL redis://:hunter2@cache.internal:6379/0");
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("@cache.internal:6379"));
        assert_eq!(redact("connection refused"), "connection refused");
        assert_eq!(redact("a@b before ://"), "a@b before ://");
    }
}
