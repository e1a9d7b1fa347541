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

impl MemoryStore {
    pub fn new(max_bytes: u64) -> Self {
        let items = (max_bytes / TYPICAL_ENTRY_BYTES).clamp(16, 1 << 20) as usize;
        MemoryStore {
            entries: Cache::with(
                items,
                max_bytes,
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
        let store = MemoryStore::new(64 * 1024);
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
}
