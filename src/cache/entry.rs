//! One cached answer: the JSON body a client got, who answered it, and when.

use std::sync::Arc;

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The whole answer as sent (a `chat.completion`, `text_completion` or embeddings `list`).
    pub body: Bytes,
    /// The id of the deployment that answered (for headers and metric labels on a hit).
    pub deployment: Arc<str>,
    /// When it was stored (ms since the epoch), for `s-maxage` / `max-age`.
    pub stored_ms: i64,
}

const MAGIC: &[u8] = b"SY1\n";

impl Entry {
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
        Some(Entry {
            body: Bytes::copy_from_slice(body),
            deployment: deployment.into(),
            stored_ms,
        })
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
        let entry = Entry {
            body: Bytes::from_static(b"{\"a\":\"x\ny\"}"),
            deployment: "dep-1".into(),
            stored_ms: 1_764_000_000_000,
        };
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
}
