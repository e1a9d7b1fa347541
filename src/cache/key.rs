//! The exact-match cache key: a BLAKE3 hash (256 bits) over what changes the answer.
//!
//! What goes in: the endpoint, the model group asked for, and every body field the upstream
//! sees (messages, tools, sampling parameters, `response_format`, `seed`, unknown fields that
//! pass through ...), in canonical form (`canonical.rs`: the JSON value in a binary encoding,
//! written straight into the hasher; the typed request's fields in its struct's order, unknown
//! ones sorted, so the order a client sent them in does not matter). What stays out: `user`,
//! `metadata`, `stream`, `stream_options`, `model` (the group is hashed on its own) and the
//! gateway's own controls (`cache`; `timeout`, `fallbacks` ... are taken out before): they
//! change who asked or how the answer travels, not the answer. A streamed and a whole request
//! for the same prompt share an entry.
//!
//! The key as shown (`x-litellm-cache-key`, Redis) is `<namespace>:<64 hex digits>`, or the hex
//! digits alone without a namespace. Format `v3` (the first bytes hashed): keys made by earlier
//! versions, over canonical JSON text, are never looked up again and expire with their TTL. The
//! namespace is hashed too, so the digest alone tells two keys apart: the memory store and the
//! coalescing map key on it (32 bytes, no text).
//!
//! Why BLAKE3 and not SHA-256: the key decides which caller's answer another caller is served,
//! so it must be collision-resistant (a non-cryptographic hash would let one caller craft a
//! request that collides with another's). Both are; on this request path BLAKE3's SIMD code
//! costs about a third of SHA-256's where the CPU has no SHA extensions (docs/caching.md).

use serde::Serialize;

use super::canonical::{Sink, Unhashable};

/// Which endpoint a key is for: the same body on two endpoints never shares an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    /// Anthropic's `/v1/messages`: its own entries, since its answers have another wire shape
    /// than chat's for the same model group and prompt.
    Messages,
}

impl Endpoint {
    fn tag(self) -> &'static [u8] {
        match self {
            Endpoint::Chat => b"chat",
            Endpoint::Completions => b"completions",
            Endpoint::Embeddings => b"embeddings",
            Endpoint::Messages => b"messages",
        }
    }
}

/// Body fields that do not change the answer.
const IGNORED: &[&str] = &[
    "user",
    "metadata",
    "stream",
    "stream_options",
    "cache",
    "model",
];
/// The same plus the prompt: what must match for a semantic hit besides a similar prompt.
const SCOPE_IGNORED: &[&str] = &[
    "user",
    "metadata",
    "stream",
    "stream_options",
    "cache",
    "model",
    "messages",
    "prompt",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Covers the namespace too: equal digests, equal keys.
    pub digest: [u8; 32],
    namespace: Option<Box<str>>,
}

impl CacheKey {
    /// `body` is the request as the upstream would get it: a JSON object, or a typed request
    /// (with no copy: its ignored fields are skipped as it is written into the hasher). Fails
    /// only if a `Serialize` impl refuses: the request then skips the cache.
    pub fn new<B: Serialize + ?Sized>(
        namespace: Option<&str>,
        endpoint: Endpoint,
        model: &str,
        body: &B,
    ) -> Result<CacheKey, Unhashable> {
        Ok(CacheKey {
            digest: digest(namespace, endpoint, model, body, IGNORED)?,
            namespace: namespace.map(Into::into),
        })
    }

    /// `<namespace>:<hex>`: the Redis key's tail and the response header's value (made only
    /// when one of them needs it).
    pub fn text(&self) -> String {
        let hex = hex(&self.digest);
        match &self.namespace {
            Some(ns) => format!("{ns}:{hex}"),
            None => hex,
        }
    }

    /// What a semantic hit must share with the request: everything but the prompt.
    pub fn scope<B: Serialize + ?Sized>(
        namespace: Option<&str>,
        endpoint: Endpoint,
        model: &str,
        body: &B,
    ) -> Result<[u8; 32], Unhashable> {
        digest(namespace, endpoint, model, body, SCOPE_IGNORED)
    }
}

/// Hashes a key's digest for the in-process maps (the memory store, the coalescer) by taking
/// 8 of its bytes. The digest is BLAKE3's output: already uniform, and no caller can steer it
/// without a preimage, so hashing it again (foldhash cost ~120 instructions a lookup, four
/// lookups a miss) buys neither spread nor protection from flooding.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestHash;

impl std::hash::BuildHasher for DigestHash {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// A `[u8; 32]` digest arrives as one write (after its length, below); anything else
    /// still gets every byte folded in, so the hasher stays correct if the key type changes.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
            if bytes.len() == 32 {
                // The digest: its first 8 bytes are as good as all 32.
                break;
            }
        }
    }

    /// Slices are prefixed with their length: the same for every digest, so left out.
    fn write_usize(&mut self, _: usize) {}
}

/// The namespace and the model are length-prefixed and the body's canonical form delimits
/// itself (`canonical.rs`), so no two different inputs give the same bytes to hash. All of it
/// goes through one buffer: a small request is one `update` of the hasher.
fn digest<B: Serialize + ?Sized>(
    namespace: Option<&str>,
    endpoint: Endpoint,
    model: &str,
    body: &B,
    ignored: &[&str],
) -> Result<[u8; 32], Unhashable> {
    let mut hasher = blake3::Hasher::new();
    let mut sink = Sink::new(&mut hasher);
    sink.write(b"switchyard-cache-v3\0");
    sink.write(endpoint.tag());
    sink.write(b"\0");
    match namespace {
        Some(ns) => {
            sink.varint(ns.len() as u128 + 1);
            sink.write(ns.as_bytes());
        }
        None => sink.varint(0),
    }
    sink.varint(model.len() as u128);
    sink.write(model.as_bytes());
    sink.value(body, ignored)?;
    sink.finish();
    Ok(*hasher.finalize().as_bytes())
}

/// A Messages request in canonical form, from its typed fields: `stream` and `metadata`
/// (Anthropic's `user_id`, and the gateway's tags) are left out; `cache` and the other gateway
/// controls are already gone from its unknown fields. `model` is not serialized (the key has
/// it). The client's `anthropic-version` and `anthropic-beta` headers follow, since they are
/// forwarded to an Anthropic deployment and a beta can change the answer (JSON never holds a
/// raw NUL byte and header values cannot, so the separators are unambiguous).
pub fn messages_canonical(
    request: &mut crate::providers::anthropic::wire::MessagesRequest,
    headers: [Option<&[u8]>; 2],
) -> Canonical {
    let stream = request.stream.take();
    let metadata = request.metadata.take();
    let mut out = Vec::with_capacity(512);
    let _ = serde_json::to_writer(&mut out, &*request);
    request.stream = stream;
    request.metadata = metadata;
    for header in headers {
        out.push(0);
        if let Some(value) = header {
            out.extend_from_slice(value);
        }
    }
    Canonical(out)
}

/// Bytes already in canonical form, hashed as one blob: a bare `Vec<u8>` would serialize as a
/// sequence of numbers, one serializer call a byte.
#[derive(Debug, PartialEq, Eq)]
pub struct Canonical(pub Vec<u8>);

impl Serialize for Canonical {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn key(body: Value) -> String {
        CacheKey::new(None, Endpoint::Chat, "gpt", &body)
            .unwrap()
            .text()
    }

    #[test]
    fn ignores_who_asked_and_how_the_answer_travels() {
        let base = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2});
        let mut other = base.clone();
        other["user"] = json!("alice");
        other["metadata"] = json!({"tags": ["a"]});
        other["stream"] = json!(true);
        other["stream_options"] = json!({"include_usage": true});
        other["cache"] = json!({"ttl": 5});
        assert_eq!(key(base), key(other));
    }

    #[test]
    fn changes_with_what_changes_the_answer() {
        let base = json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0.2});
        let mut t = base.clone();
        t["temperature"] = json!(0.3);
        let mut m = base.clone();
        m["messages"][0]["content"] = json!("hi!");
        let mut tools = base.clone();
        tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        let mut format = base.clone();
        format["response_format"] = json!({"type": "json_object"});
        let keys = [key(base.clone()), key(t), key(m), key(tools), key(format)];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(
            CacheKey::new(None, Endpoint::Chat, "a", &base)
                .unwrap()
                .text(),
            CacheKey::new(None, Endpoint::Chat, "b", &base)
                .unwrap()
                .text()
        );
        assert_ne!(
            CacheKey::new(None, Endpoint::Chat, "a", &base)
                .unwrap()
                .text(),
            CacheKey::new(None, Endpoint::Completions, "a", &base)
                .unwrap()
                .text()
        );
        // The namespace is in the digest, and a namespace never reads as part of the model.
        let digests = [
            CacheKey::new(None, Endpoint::Chat, "a", &base)
                .unwrap()
                .digest,
            CacheKey::new(Some(""), Endpoint::Chat, "a", &base)
                .unwrap()
                .digest,
            CacheKey::new(Some("t"), Endpoint::Chat, "a", &base)
                .unwrap()
                .digest,
            CacheKey::new(Some("u"), Endpoint::Chat, "a", &base)
                .unwrap()
                .digest,
        ];
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_typed_chat_form_ignores_the_same_fields() {
        let parse = |v: Value| -> crate::schema::ChatRequest { serde_json::from_value(v).unwrap() };
        let typed = |r: &crate::schema::ChatRequest| {
            CacheKey::new(None, Endpoint::Chat, "m", r).unwrap().digest
        };
        let a = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "seed": 3}),
        );
        let b = parse(
            json!({"seed": 3, "user": "u", "stream": true, "stream_options": {"include_usage": true}, "temperature": 0.5, "messages": [{"role": "user", "content": "hi"}], "model": "m", "metadata": {"a": 1}, "cache": {"ttl": 5}}),
        );
        assert_eq!(typed(&a), typed(&b));
        let c = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.6, "seed": 3}),
        );
        assert_ne!(typed(&a), typed(&c));
        let d = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "seed": 4}),
        );
        assert_ne!(typed(&a), typed(&d), "an unknown field is in the key");
        let e = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}], "temperature": 0.5, "seed": 3}),
        );
        assert_ne!(typed(&a), typed(&e));
    }

    #[test]
    fn long_prompts_are_keyed_whole() {
        // Strings past the sink's buffer go to the hasher directly: a change at the end of a
        // long prompt still changes the key.
        let long = "word ".repeat(10_000);
        let a = json!({"messages": [{"role": "user", "content": format!("{long}a")}]});
        let b = json!({"messages": [{"role": "user", "content": format!("{long}b")}]});
        assert_ne!(key(a.clone()), key(b));
        assert_eq!(key(a.clone()), key(a));
    }

    #[test]
    fn the_messages_form_ignores_stream_and_metadata_but_not_system_or_headers() {
        use crate::providers::anthropic::wire::MessagesRequest;
        let parse = |v: Value| -> MessagesRequest { serde_json::from_value(v).unwrap() };
        let base = json!({"model": "c", "max_tokens": 64, "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]});
        let mut a = parse(base.clone());
        let mut same = base.clone();
        same["stream"] = json!(true);
        same["metadata"] = json!({"user_id": "u-1"});
        let mut b = parse(same);
        let none = [None, None];
        assert_eq!(
            messages_canonical(&mut a, none),
            messages_canonical(&mut b, none)
        );
        assert_eq!(b.stream, Some(true), "restored");
        assert!(b.metadata.is_some(), "restored");
        for (field, value) in [
            ("system", json!("Be verbose.")),
            ("max_tokens", json!(65)),
            ("stop_sequences", json!(["END"])),
            (
                "thinking",
                json!({"type": "enabled", "budget_tokens": 1024}),
            ),
            ("tool_choice", json!({"type": "any"})),
            ("top_k", json!(5)),
        ] {
            let mut other = base.clone();
            other[field] = value;
            assert_ne!(
                messages_canonical(&mut a, none),
                messages_canonical(&mut parse(other), none),
                "{field}"
            );
        }
        assert_ne!(
            messages_canonical(&mut a, none),
            messages_canonical(&mut a, [None, Some(b"output-128k-2025-02-19")])
        );
        assert_ne!(
            messages_canonical(&mut a, [Some(b"x"), None]),
            messages_canonical(&mut a, [None, Some(b"x")])
        );
        let canonical = messages_canonical(&mut a, none);
        assert_ne!(
            CacheKey::new(None, Endpoint::Chat, "c", &canonical).unwrap(),
            CacheKey::new(None, Endpoint::Messages, "c", &canonical).unwrap()
        );
    }

    #[test]
    fn digests_hash_to_their_first_bytes() {
        use std::hash::BuildHasher;
        let a = CacheKey::new(None, Endpoint::Chat, "a", &json!({"x": 1})).unwrap();
        let b = CacheKey::new(None, Endpoint::Chat, "b", &json!({"x": 1})).unwrap();
        let hash = |d: &[u8; 32]| DigestHash.hash_one(d);
        assert_eq!(hash(&a.digest), hash(&a.digest));
        assert_ne!(hash(&a.digest), hash(&b.digest));
        assert_eq!(
            hash(&a.digest),
            u64::from_le_bytes(a.digest[..8].try_into().unwrap())
        );
        // Not a digest: every byte counts.
        assert_ne!(
            DigestHash.hash_one("abcdefgh1"),
            DigestHash.hash_one("abcdefgh2")
        );
    }

    #[test]
    fn key_order_does_not_matter_and_namespace_prefixes() {
        let a: Value =
            serde_json::from_str(r#"{"temperature":1,"messages":[],"top_p":0.5}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"top_p":0.5,"messages":[],"temperature":1}"#).unwrap();
        assert_eq!(key(a.clone()), key(b));
        let namespaced = CacheKey::new(Some("team-a"), Endpoint::Chat, "gpt", &a)
            .unwrap()
            .text();
        assert!(namespaced.starts_with("team-a:"));
        assert_eq!(namespaced.len(), "team-a:".len() + 64);
    }
}
