//! LiteLLM's `mock_response`: a deployment (or a single request) that answers in-process, in the
//! right shape, streaming too, with no network and no key. It makes the quick start work offline
//! and lets people test their application against the gateway for free.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::schema::{
    ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Delta, Extra, Message,
    ResponseMessage, Role, Usage,
};

/// A rough token count (4 characters a token, as OpenAI's rule of thumb); the mock has no tokenizer.
pub fn estimate_prompt_tokens(messages: &[Message]) -> u64 {
    let chars: usize = messages
        .iter()
        .map(|m| m.content.as_ref().map_or(0, |c| c.text_len()))
        .sum();
    (chars as u64).div_ceil(4).max(1)
}

pub fn estimate_text_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn usage(request: &ChatRequest, reply: &str) -> Usage {
    let prompt_tokens = estimate_prompt_tokens(&request.messages);
    let completion_tokens = estimate_text_tokens(reply);
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        extra: Extra::new(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn completion_id() -> String {
    format!("chatcmpl-mock-{:016x}", fastrand::u64(..))
}

pub fn chat(request: &ChatRequest, reply: &str) -> ChatCompletion {
    ChatCompletion {
        id: completion_id(),
        object: "chat.completion".into(),
        created: now(),
        model: request.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: Role::Assistant,
                content: Some(reply.to_owned()),
                tool_calls: None,
                extra: Extra::new(),
            },
            finish_reason: Some("stop".into()),
            extra: Extra::new(),
        }],
        usage: Some(usage(request, reply)),
        extra: Extra::new(),
    }
}

/// The chunks OpenAI would send: a role chunk, one chunk per word, a finish chunk, and a usage
/// chunk with no choices (the router drops it when the client did not ask for usage).
pub fn chat_chunks(request: &ChatRequest, reply: &str) -> Vec<ChatChunk> {
    let id = completion_id();
    let created = now();
    let chunk = |delta: Delta, finish_reason: Option<&str>| ChatChunk {
        id: id.clone(),
        object: "chat.completion.chunk".into(),
        created,
        model: request.model.clone(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish_reason.map(str::to_owned),
            extra: Extra::new(),
        }],
        usage: None,
        extra: Extra::new(),
    };
    let mut chunks = vec![chunk(
        Delta {
            role: Some(Role::Assistant),
            content: Some(String::new()),
            ..Delta::default()
        },
        None,
    )];
    for word in reply.split_inclusive(' ') {
        chunks.push(chunk(
            Delta {
                content: Some(word.to_owned()),
                ..Delta::default()
            },
            None,
        ));
    }
    chunks.push(chunk(Delta::default(), Some("stop")));
    let mut usage_chunk = chunk(Delta::default(), None);
    usage_chunk.choices.clear();
    usage_chunk.usage = Some(usage(request, reply));
    chunks.push(usage_chunk);
    chunks
}

/// A deterministic embedding for offline use: 8 dimensions derived from the input's bytes.
pub fn embedding(input: &str) -> Vec<f32> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut vector = Vec::with_capacity(8);
    for i in 0..8u8 {
        for byte in input.bytes().chain(std::iter::once(i)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        vector.push(((hash >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0);
    }
    let norm = vector
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    vector.iter().map(|v| v / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ChatRequest {
        serde_json::from_str(
            r#"{"model":"alias","messages":[{"role":"user","content":"12345678"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn chunks_concatenate_to_the_reply() {
        let chunks = chat_chunks(&request(), "Hello there, friend.");
        let text: String = chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .filter_map(|c| c.delta.content.clone())
            .collect();
        assert_eq!(text, "Hello there, friend.");
        let last = chunks.last().unwrap();
        assert!(last.choices.is_empty());
        assert_eq!(last.usage.as_ref().unwrap().prompt_tokens, 2);
        assert_eq!(last.usage.as_ref().unwrap().completion_tokens, 3);
    }

    #[test]
    fn embedding_is_deterministic_and_normalised() {
        assert_eq!(embedding("a"), embedding("a"));
        assert_ne!(embedding("a"), embedding("b"));
        let norm: f32 = embedding("abc").iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
