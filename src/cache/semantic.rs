//! The semantic cache (LiteLLM's `type: redis-semantic` / `qdrant-semantic`, here an in-process
//! index): a request whose exact key misses is embedded (its messages' text, with the configured
//! embedding model group) and answered from the most similar stored answer whose cosine
//! similarity reaches `similarity_threshold`, among entries of the same scope (endpoint, model
//! group, namespace and every other parameter: only the prompt may differ).
//!
//! The index is a bounded FIFO of unit vectors scanned linearly: at 10 000 entries of 1 536
//! dimensions a search is ~15 M multiply-adds (a few ms on one core). The embedding call costs
//! far more: it is made on every exact miss (docs/caching.md says when that pays).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::entry::Entry;

/// Asks an embedding model for a vector (implemented by the gateway's snapshot: the router).
pub trait Embedder: Sync {
    fn embed<'a>(
        &'a self,
        model: &'a str,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<Vec<f32>>> + Send + 'a>>;
}

struct Item {
    scope: [u8; 32],
    vector: Box<[f32]>,
    entry: Arc<Entry>,
    expires_ms: i64,
}

pub struct SemanticIndex {
    items: RwLock<VecDeque<Item>>,
    max_entries: usize,
    threshold: f32,
}

impl SemanticIndex {
    pub fn new(threshold: f64, max_entries: usize) -> Self {
        SemanticIndex {
            items: RwLock::new(VecDeque::new()),
            max_entries: max_entries.max(1),
            threshold: threshold as f32,
        }
    }

    /// The most similar live entry of `scope` at or above the threshold, and its similarity.
    pub fn search(
        &self,
        scope: &[u8; 32],
        vector: &[f32],
        now_ms: i64,
    ) -> Option<(Arc<Entry>, f32)> {
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .filter(|i| {
                i.scope == *scope && i.expires_ms > now_ms && i.vector.len() == vector.len()
            })
            .map(|i| (i, dot(&i.vector, vector)))
            .filter(|(_, similarity)| *similarity >= self.threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, similarity)| (i.entry.clone(), similarity))
    }

    pub fn insert(&self, scope: [u8; 32], vector: Box<[f32]>, entry: Arc<Entry>, expires_ms: i64) {
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        while items.len() >= self.max_entries {
            items.pop_front();
        }
        items.push_back(Item {
            scope,
            vector,
            entry,
            expires_ms,
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.items.read().unwrap().len()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to length 1 (cosine similarity is then a dot product); `None` for a zero,
/// empty or non-finite vector.
pub fn normalize(mut v: Vec<f32>) -> Option<Box<[f32]>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if v.is_empty() || !norm.is_finite() || norm == 0.0 {
        return None;
    }
    for x in &mut v {
        *x /= norm;
    }
    Some(v.into_boxed_slice())
}

/// The text a request's answer depends on: its messages' text (string contents and the text
/// of content parts, one message per line), or a completions `prompt` string.
pub fn prompt_text(body: &Value) -> Option<String> {
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        let mut text = String::new();
        for message in messages {
            match message.get("content") {
                Some(Value::String(s)) => text.push_str(s),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        if let Some(t) = part.get("text").and_then(Value::as_str) {
                            text.push_str(t);
                        }
                    }
                }
                _ => {}
            }
            text.push('\n');
        }
        return Some(text.trim_end_matches('\n').to_owned()).filter(|t| !t.is_empty());
    }
    body.get("prompt")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|t| !t.is_empty())
}

/// The vector of an embeddings answer (`data[0].embedding`, floats).
pub fn first_embedding(answer: &Value) -> Option<Vec<f32>> {
    answer
        .get("data")?
        .get(0)?
        .get("embedding")?
        .as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn entry(tag: &'static str) -> Arc<Entry> {
        Arc::new(Entry::new(
            Bytes::from_static(tag.as_bytes()),
            "d".into(),
            0,
        ))
    }

    fn angle(degrees: f32) -> Box<[f32]> {
        let r = degrees.to_radians();
        normalize(vec![r.cos(), r.sin()]).unwrap()
    }

    #[test]
    fn finds_the_closest_entry_of_the_scope_above_the_threshold() {
        let index = SemanticIndex::new(0.95, 3);
        index.insert([1; 32], angle(0.0), entry("zero"), i64::MAX);
        index.insert([1; 32], angle(40.0), entry("forty"), i64::MAX);
        index.insert([2; 32], angle(10.0), entry("other scope"), i64::MAX);
        let (hit, similarity) = index.search(&[1; 32], &angle(10.0), 0).unwrap();
        assert_eq!(hit.body, "zero");
        assert!((similarity - 10f32.to_radians().cos()).abs() < 1e-5);
        assert!(
            index.search(&[1; 32], &angle(20.0), 0).is_none(),
            "cos 20° < 0.95"
        );
        assert!(
            index.search(&[1; 32], &angle(0.0), i64::MAX).is_none(),
            "expired"
        );
        index.insert([1; 32], angle(90.0), entry("ninety"), i64::MAX);
        assert_eq!(index.len(), 3, "bounded: the oldest went");
        assert!(index.search(&[1; 32], &angle(1.0), 0).is_none());
    }

    #[test]
    fn hostile_vectors_and_bodies() {
        assert!(normalize(vec![]).is_none());
        assert!(normalize(vec![0.0, 0.0]).is_none());
        assert!(normalize(vec![f32::NAN, 1.0]).is_none());
        assert!(
            normalize(vec![f32::MAX, f32::MAX]).is_none(),
            "overflowing norm"
        );
        assert_eq!(
            first_embedding(&json!({"data": [{"embedding": "AAAA"}]})),
            None
        );
        assert_eq!(
            first_embedding(&json!({"data": [{"embedding": [1, "x"]}]})),
            None
        );
        assert_eq!(first_embedding(&json!({"data": []})), None);
        assert_eq!(
            first_embedding(&json!({"data": [{"embedding": [1, 2.5]}]})),
            Some(vec![1.0, 2.5])
        );
        assert_eq!(prompt_text(&json!({"messages": [{"role": "user"}]})), None);
        assert_eq!(
            prompt_text(
                &json!({"messages": [{"content": "a"}, {"content": [{"type": "text", "text": "b"}, {"type": "image_url"}]}]})
            ),
            Some("a\nb".into())
        );
        assert_eq!(prompt_text(&json!({"prompt": ["tokens"]})), None);
        // Different dimensions never compare.
        let index = SemanticIndex::new(0.5, 10);
        index.insert([0; 32], angle(0.0), entry("2d"), i64::MAX);
        assert!(index
            .search(&[0; 32], &normalize(vec![1.0, 0.0, 0.0]).unwrap(), 0)
            .is_none());
    }
}
