//! What `previous_response_id` refers to, for deployments that do not keep conversations
//! themselves (every translated one): each stored response's whole conversation (its input
//! items after the earlier turns', then its output items) and the Response object itself.
//!
//! In memory, per instance, bounded both ways: entries expire [`TTL_MS`] after they were
//! stored, and the store holds at most [`MAX_BYTES`] of them and [`MAX_ENTRIES`] (S3-FIFO
//! eviction by `quick_cache`, as the response cache's memory backend). A conversation is only visible to
//! the key that made it. Behind a load balancer, a follow-up turn must reach the same instance
//! (sticky sessions) or get a 400 naming the id: see docs/responses-api.md.

use std::sync::Arc;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::Weighter;

use super::wire::{InputItem, ResponseObject};

/// How long a stored response can be continued: one hour.
pub const TTL_MS: i64 = 60 * 60 * 1000;

/// What the store holds at most, counted as the JSON size of its entries: 64 MiB.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// How many responses the store holds at most, however small.
pub const MAX_ENTRIES: u64 = 10_000;

/// One stored response.
pub struct Stored {
    /// Who made it (a key's hash, or `master` / `open`): only they can continue or read it.
    pub owner: String,
    /// The whole conversation up to and including this response's output.
    pub items: Vec<InputItem>,
    pub response: ResponseObject,
    bytes: u64,
    expires_ms: i64,
}

/// An entry weighs its bytes, and at least `max_bytes / max_entries`: so the store's byte
/// bound is also a bound on its count.
#[derive(Clone)]
struct ByBytes {
    min_weight: u64,
}

impl Weighter<String, Arc<Stored>> for ByBytes {
    fn weight(&self, key: &String, value: &Arc<Stored>) -> u64 {
        (value.bytes + key.len() as u64).max(self.min_weight)
    }
}

pub struct Conversations {
    entries: Cache<String, Arc<Stored>, ByBytes, foldhash::fast::RandomState>,
    ttl_ms: i64,
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations::new(MAX_BYTES, MAX_ENTRIES, TTL_MS)
    }
}

impl Conversations {
    pub fn new(max_bytes: u64, max_entries: u64, ttl_ms: i64) -> Self {
        let max_entries = max_entries.max(1);
        Conversations {
            // A conversation may be as large as an eighth of the store and still be kept.
            entries: Cache::with_options(
                crate::cache::memory::options(
                    max_entries.min(1 << 20) as usize,
                    max_bytes,
                    max_bytes / 32,
                ),
                ByBytes {
                    min_weight: max_bytes / max_entries,
                },
                foldhash::fast::RandomState::default(),
                DefaultLifecycle::default(),
            ),
            ttl_ms,
        }
    }

    /// Stores `response` with its conversation; one larger than about an eighth of the store is
    /// not kept (its next turn is then told the id is unknown).
    pub fn put(&self, owner: &str, items: Vec<InputItem>, response: ResponseObject, now_ms: i64) {
        let bytes = serde_json::to_vec(&items).map_or(0, |b| b.len())
            + serde_json::to_vec(&response).map_or(0, |b| b.len());
        let id = response.id.clone();
        let stored = Stored {
            owner: owner.to_owned(),
            items,
            response,
            bytes: bytes as u64,
            expires_ms: now_ms.saturating_add(self.ttl_ms),
        };
        self.entries.insert(id, Arc::new(stored));
    }

    /// The stored response `id`, if it exists, has not expired and belongs to `owner`.
    pub fn get(&self, id: &str, owner: &str, now_ms: i64) -> Option<Arc<Stored>> {
        let stored = self.entries.get(id)?;
        if stored.expires_ms <= now_ms {
            self.entries.remove(id);
            return None;
        }
        (stored.owner == owner).then_some(stored)
    }

    /// Removes `id` if `owner` may see it; says whether it did.
    pub fn remove(&self, id: &str, owner: &str, now_ms: i64) -> bool {
        if self.get(id, owner, now_ms).is_none() {
            return false;
        }
        self.entries.remove(id).is_some()
    }

    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::responses::wire::ResponsesRequest;

    fn response(id: &str) -> ResponseObject {
        let request: ResponsesRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "input": "hi"})).unwrap();
        ResponseObject::started(&request, id.to_owned(), 1, "m")
    }

    #[test]
    fn expires_belongs_to_its_owner_and_stays_bounded() {
        let store = Conversations::new(64 * 1024, 1_000, 1_000);
        store.put(
            "k1",
            vec![InputItem::user_text("hi".into())],
            response("resp_1"),
            0,
        );
        assert_eq!(store.get("resp_1", "k1", 999).unwrap().items.len(), 1);
        assert!(store.get("resp_1", "k2", 999).is_none(), "another key's");
        assert!(!store.remove("resp_1", "k2", 999));
        assert!(store.get("resp_1", "k1", 1_000).is_none(), "expired");
        for i in 0..1_000 {
            let text = "x".repeat(1_000);
            store.put(
                "k1",
                vec![InputItem::user_text(text)],
                response(&format!("resp_{i}")),
                0,
            );
        }
        assert!(store.weight() <= 64 * 1024, "{}", store.weight());
        assert!(store.get("resp_999", "k1", 1).is_some(), "the newest stay");
        assert!(store.remove("resp_999", "k1", 1));
        assert!(store.get("resp_999", "k1", 1).is_none());
    }

    #[test]
    fn the_count_is_bounded_too() {
        let store = Conversations::new(1 << 20, 10, 1_000);
        for i in 0..100 {
            store.put(
                "k",
                vec![InputItem::user_text("hi".into())],
                response(&format!("resp_{i}")),
                0,
            );
        }
        let kept = (0..100)
            .filter(|i| store.get(&format!("resp_{i}"), "k", 1).is_some())
            .count();
        assert!(kept <= 10, "{kept}");
        assert!(store.get("resp_99", "k", 1).is_some());
    }
}
