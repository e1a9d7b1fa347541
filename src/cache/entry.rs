//! One cached answer: the JSON body a client got, who answered it, and when.

use std::sync::{Arc, OnceLock};

use axum::http::HeaderValue;
use bytes::Bytes;

use super::CacheKey;
use crate::schema::Usage;

#[derive(Debug, Clone)]
pub struct Entry {
    /// The whole answer as sent (a `chat.completion`, `text_completion` or embeddings `list`).
    pub body: Bytes,
    /// The id of the deployment that answered (for headers and metric labels on a hit).
    pub deployment: Arc<str>,
    /// When it was stored (ms since the epoch), for `s-maxage` / `max-age`.
    pub stored_ms: i64,
    /// What a hit needs from the body and its key, worked out by the first hit and kept: an
    /// entry in memory answers many hits, and reading the usage back out of the body cost a
    /// hit more than a third of its own handling (bench/README.md).
    memo: Memo,
}

#[derive(Debug, Clone, Default)]
struct Memo {
    usage: OnceLock<Option<Usage>>,
    /// The first hit's key (digest) and its header value.
    key_header: OnceLock<([u8; 32], Option<HeaderValue>)>,
}

/// Equal answers, whatever the first hit has worked out yet.
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.body == other.body
            && self.deployment == other.deployment
            && self.stored_ms == other.stored_ms
    }
}

const MAGIC: &[u8] = b"SY1\n";

impl Entry {
    pub fn new(body: Bytes, deployment: Arc<str>, stored_ms: i64) -> Entry {
        Entry {
            body,
            deployment,
            stored_ms,
            memo: Memo::default(),
        }
    }

    /// The answer's usage, read from the body by `read` on the first call (each endpoint's
    /// answer has its own shape) and kept for the entry's later hits.
    pub fn usage(&self, read: impl FnOnce(&Bytes) -> Option<Usage>) -> Option<Usage> {
        self.memo.usage.get_or_init(|| read(&self.body)).clone()
    }

    /// The `x-litellm-cache-key` header value of `key`, kept from the first hit: an entry is
    /// stored under one key, but a semantic hit or a coalesced follower may reach it under
    /// another, which gets its own value.
    pub fn key_header(&self, key: &CacheKey) -> Option<HeaderValue> {
        let make = || HeaderValue::from_str(&key.text()).ok();
        let (digest, value) = self.memo.key_header.get_or_init(|| (key.digest, make()));
        if *digest == key.digest {
            value.clone()
        } else {
            make()
        }
    }

    /// `SY1\n<stored_ms>\n<deployment id>\n<body>`: what Redis holds.
    pub fn encode(&self) -> Vec<u8> {
        let id = if self.deployment.contains('\n') {
            ""
        } else {
            &self.deployment
        };
        let stored = self.stored_ms.to_string();
        let mut out =
            Vec::with_capacity(MAGIC.len() + stored.len() + id.len() + 2 + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(stored.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    /// What [`Entry::encode`] wrote; anything else (another writer, a corrupted value) is `None`,
    /// which the cache treats as a miss.
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let newline = rest.iter().position(|b| *b == b'\n')?;
        let stored_ms = std::str::from_utf8(&rest[..newline]).ok()?.parse().ok()?;
        let rest = &rest[newline + 1..];
        let newline = rest.iter().position(|b| *b == b'\n')?;
        let deployment = std::str::from_utf8(&rest[..newline]).ok()?;
        let body = &rest[newline + 1..];
        // Only a JSON object is ever stored.
        if body.first() != Some(&b'{') {
            return None;
        }
        Some(Entry::new(
            Bytes::copy_from_slice(body),
            deployment.into(),
            stored_ms,
        ))
    }

    /// Bytes this entry takes in memory (roughly), for the memory bound.
    pub fn weight(&self) -> u64 {
        (self.body.len() + self.deployment.len() + 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_values() {
        let entry = Entry::new(
            Bytes::from_static(b"{\"a\":\"x\ny\"}"),
            "dep-1".into(),
            1_764_000_000_000,
        );
        assert_eq!(Entry::decode(&entry.encode()), Some(entry));
        for hostile in [
            &b""[..],
            b"SY1\n",
            b"SY1\nabc\nd\n{}",
            b"SY1\n12\nd",
            b"SY1\n12\nd\nnot json",
            b"SY2\n12\nd\n{}",
            b"\xff\xfe",
        ] {
            assert_eq!(Entry::decode(hostile), None, "{hostile:?}");
        }
    }

    /// A hit reads the usage once per entry, and a key other than the first hit's gets its
    /// own header value.
    #[test]
    fn the_first_hit_works_out_usage_and_key_header_for_the_rest() {
        use std::cell::Cell;
        let entry = Entry::new(Bytes::from_static(b"{}"), "d".into(), 0);
        let reads = Cell::new(0);
        let read = |_: &Bytes| {
            reads.set(reads.get() + 1);
            Some(Usage {
                prompt_tokens: 3,
                ..Usage::default()
            })
        };
        for _ in 0..3 {
            assert_eq!(entry.usage(read).map(|u| u.prompt_tokens), Some(3));
        }
        assert_eq!(reads.get(), 1);
        let key = |prompt: &str| {
            let body = serde_json::json!({"messages": [{"role": "user", "content": prompt}]});
            CacheKey::new(None, super::super::Endpoint::Chat, "m", &body).unwrap()
        };
        let (first, other) = (key("a"), key("b"));
        for _ in 0..2 {
            let header = entry.key_header(&first).unwrap();
            assert_eq!(header.to_str().unwrap(), first.text());
        }
        let header = entry.key_header(&other).unwrap();
        assert_eq!(header.to_str().unwrap(), other.text());
        assert_ne!(first.text(), other.text());
    }
}
