//! The in-process backend: `quick_cache` (S3-FIFO eviction, weighted by answer bytes).
//!
//! Why quick_cache rather than moka: it is two small dependencies (`equivalent`, and `hashbrown`,
//! already in the tree) against moka's dozen (crossbeam, parking_lot, tagptr, uuid ...), and its
//! lookups are a sharded read lock and a hash probe. What moka adds — per-entry expiry timers,
//! eviction listeners, an async API — the cache does not need: an entry carries its own expiry
//! and an expired entry found by a lookup is removed then (or evicted by newer ones).

use std::sync::Arc;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::Weighter;

use super::entry::Entry;

#[derive(Clone)]
struct Stored {
    entry: Arc<Entry>,
    expires_ms: i64,
}

#[derive(Clone)]
struct ByBytes;

/// A key's digest (it covers the namespace: see `key.rs`).
type Digest = [u8; 32];

impl Weighter<Digest, Stored> for ByBytes {
    fn weight(&self, key: &Digest, value: &Stored) -> u64 {
        value.entry.weight() + key.len() as u64
    }
}

/// The keys are digests already: hashed by their first bytes (`key::DigestHash`), not
/// again by SipHash or foldhash.
type Hasher = super::key::DigestHash;

pub struct MemoryStore {
    entries: Cache<Digest, Stored, ByBytes, Hasher>,
}

/// The answer size the item estimate assumes (it only sizes the hash tables up front).
const TYPICAL_ENTRY_BYTES: u64 = 4096;

/// quick_cache's options for a cache of `max_bytes` whose entries may weigh up to
/// `largest_entry` bytes. quick_cache splits its capacity between shards (four per CPU by
/// default) and refuses, silently, an entry heavier than about one shard's share: on a 64-core
/// machine a 256 MiB cache would keep no answer over 1 MiB. Fewer shards here, so each holds at
/// least four of the largest entries.
pub fn options(items: usize, max_bytes: u64, largest_entry: u64) -> quick_cache::Options {
    let by_cpu = std::thread::available_parallelism().map_or(4, |n| n.get() * 4);
    let by_size = (max_bytes / largest_entry.saturating_mul(4).max(1)).max(1) as usize;
    quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(items)
        .weight_capacity(max_bytes)
        .shards(by_cpu.min(by_size).max(1))
        .build()
        .expect("both capacities are set")
}

impl MemoryStore {
    pub fn new(max_bytes: u64, max_entry_bytes: u64) -> Self {
        let items = (max_bytes / TYPICAL_ENTRY_BYTES).clamp(16, 1 << 20) as usize;
        MemoryStore {
            entries: Cache::with_options(
                options(items, max_bytes, max_entry_bytes),
                ByBytes,
                Hasher::default(),
                DefaultLifecycle::default(),
            ),
        }
    }

    pub fn get(&self, key: &Digest, now_ms: i64) -> Option<Arc<Entry>> {
        let stored = self.entries.get(key)?;
        if stored.expires_ms <= now_ms {
            self.entries.remove(key);
            return None;
        }
        Some(stored.entry)
    }

    pub fn put(&self, key: Digest, entry: Arc<Entry>, expires_ms: i64) {
        self.entries.insert(key, Stored { entry, expires_ms });
    }

    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(size: usize) -> Arc<Entry> {
        Arc::new(Entry::new(Bytes::from(vec![b'x'; size]), "d".into(), 0))
    }

    #[test]
    fn expires_and_stays_within_its_bytes() {
        let store = MemoryStore::new(64 * 1024, 16 * 1024);
        let key = |i: u32| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k
        };
        store.put(key(u32::MAX), entry(10), 1_000);
        assert!(store.get(&key(u32::MAX), 999).is_some());
        assert!(store.get(&key(u32::MAX), 1_000).is_none());
        assert!(
            store.get(&key(u32::MAX), 0).is_none(),
            "an expired entry is removed"
        );
        for i in 0..1_000 {
            store.put(key(i), entry(1_000), i64::MAX);
        }
        assert!(store.weight() <= 64 * 1024, "{}", store.weight());
        assert!(store.get(&key(999), 0).is_some(), "the newest entries stay");
    }

    #[test]
    fn an_entry_as_large_as_allowed_is_kept_whatever_the_cpu_count() {
        // quick_cache's default shards (four per CPU) would split 256 KiB into shards too
        // small for a 60 KiB answer on a machine with more than four CPUs.
        let store = MemoryStore::new(256 * 1024, 64 * 1024);
        store.put([7; 32], entry(60 * 1024), i64::MAX);
        assert!(store.get(&[7; 32], 0).is_some());
    }
}
