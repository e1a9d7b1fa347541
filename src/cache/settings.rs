//! What `litellm_settings.cache` / `cache_params` decide, validated (read in `config/cache.rs`).

use std::time::Duration;

use crate::config::Secret;

/// LiteLLM's in-memory default TTL (`default_in_memory_ttl`) is 10 minutes; Switchyard uses it for
/// every backend when `cache_params.ttl` is absent, so no entry lives forever by accident.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// The memory backend's default bound: 256 MiB of cached answer bytes.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Answers larger than this are not cached (one huge answer would evict hundreds of small ones).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// How long a request waits for the Redis cache before it goes upstream without it.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest TTL a request may ask for (`cache: {"ttl": N}`): 30 days.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub backend: Backend,
    /// How long an entry lives unless a request asks for another TTL.
    pub ttl: Duration,
    /// Prefix of every key (`<namespace>:<hash>`), so gateways sharing a Redis can keep apart.
    pub namespace: Option<String>,
    /// `mode: default_off`: only requests that send `cache: {"use-cache": true}` use the cache.
    pub default_off: bool,
    pub calls: CallTypes,
    /// Answers larger than this are served but not stored.
    pub max_entry_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// In this process, bounded by the bytes of its answers.
    Memory { max_bytes: u64 },
    /// Shared by every instance pointing at the same Redis.
    Redis {
        url: Secret,
        /// A lookup or store that takes longer is abandoned (and counted as an error).
        timeout: Duration,
    },
    /// In memory, exact first, then by prompt similarity (`redis-semantic` / `qdrant-semantic`).
    Semantic {
        max_bytes: u64,
        /// The model group that embeds prompts.
        embedding_model: String,
        /// Cosine similarity from which a stored answer is served (0 to 1).
        threshold: f64,
        /// Prompts the similarity index keeps (oldest out first).
        max_entries: usize,
    },
}

/// The similarity index's default bound.
pub const DEFAULT_SEMANTIC_ENTRIES: usize = 10_000;

/// Which endpoints are cached (`supported_call_types`); all four by default, as in LiteLLM
/// (whose default list names `anthropic_messages` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTypes {
    pub chat: bool,
    pub completions: bool,
    pub embeddings: bool,
    /// Anthropic's `/v1/messages`.
    pub messages: bool,
}

impl CallTypes {
    pub const ALL: CallTypes = CallTypes {
        chat: true,
        completions: true,
        embeddings: true,
        messages: true,
    };
    pub const NONE: CallTypes = CallTypes {
        chat: false,
        completions: false,
        embeddings: false,
        messages: false,
    };
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            backend: Backend::Memory {
                max_bytes: DEFAULT_MAX_BYTES,
            },
            ttl: DEFAULT_TTL,
            namespace: None,
            default_off: false,
            calls: CallTypes::ALL,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
        }
    }
}

/// A TTL in seconds (config or request), within 1 s .. 30 days.
pub fn ttl_seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 1.0 && secs <= MAX_TTL.as_secs_f64())
        .then(|| Duration::from_secs_f64(secs))
}

/// Namespaces become part of Redis keys and of a response header: short, printable, no spaces.
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() || namespace.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
    {
        return Err("may contain only letters, digits and - _ . : /".into());
    }
    Ok(())
}
