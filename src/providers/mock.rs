//! LiteLLM's `mock_response`: a deployment (or a single request) that answers in-process, in the
//! right shape, streaming too, with no network and no key. It makes the quick start work offline
//! and lets people test their application against the gateway for free.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::http::ChunkStream;
use super::{
    BoxFuture, Call, HealthCheck, PassthroughEndpoint, PassthroughStream, Provider, ProviderError,
};
use crate::schema::{
    ChatAnswer, ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Delta, Extra, Message,
    PassthroughRequest, PassthroughResponse, ResponseMessage, Role, Usage,
};

/// The provider name of `mock_response` deployments.
pub const NAME: &str = "mock_response";

/// A `mock_response` deployment: answers every operation in-process with its reply text.
pub struct MockProvider {
    reply: String,
}

impl MockProvider {
    pub fn new(reply: String) -> Self {
        MockProvider { reply }
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Provider for MockProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn chat<'a>(
        &'a self,
        _call: Call<'a>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatAnswer, ProviderError>> {
        ready(Ok(ChatAnswer::Typed(chat(request, &self.reply))))
    }

    fn chat_stream<'a>(
        &'a self,
        _call: Call<'a>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>> {
        let chunks = chat_chunks(request, &self.reply);
        ready(Ok(
            Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok))) as ChunkStream,
        ))
    }

    fn passthrough<'a>(
        &'a self,
        _call: Call<'a>,
        endpoint: PassthroughEndpoint,
        request: &'a PassthroughRequest,
    ) -> BoxFuture<'a, Result<PassthroughResponse, ProviderError>> {
        ready(Ok(passthrough(endpoint, request, &self.reply)))
    }

    fn passthrough_stream<'a>(
        &'a self,
        _call: Call<'a>,
        endpoint: PassthroughEndpoint,
        request: &'a PassthroughRequest,
    ) -> BoxFuture<'a, Result<PassthroughStream, ProviderError>> {
        let whole = passthrough(endpoint, request, &self.reply);
        ready(Ok(
            Box::pin(futures_util::stream::iter([Ok(whole)])) as PassthroughStream
        ))
    }

    fn health_check<'a>(
        &'a self,
        _call: Call<'a>,
        _check: HealthCheck,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        ready(Ok(()))
    }
}

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

/// What a `mock_response` deployment answers on `/v1/completions` and `/v1/embeddings`.
pub fn passthrough(
    endpoint: PassthroughEndpoint,
    request: &PassthroughRequest,
    reply: &str,
) -> PassthroughResponse {
    let body = match endpoint {
        PassthroughEndpoint::Completions => {
            let prompt_len = request
                .extra
                .get("prompt")
                .map_or(0, |p| p.to_string().len()) as u64;
            let prompt_tokens = prompt_len.div_ceil(4).max(1);
            let completion_tokens = estimate_text_tokens(reply);
            json!({
                "id": format!("cmpl-mock-{:016x}", fastrand::u64(..)),
                "object": "text_completion",
                "created": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                "choices": [{"index": 0, "text": reply, "logprobs": null, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens
                }
            })
        }
        PassthroughEndpoint::Embeddings => {
            let inputs: Vec<String> = match request.extra.get("input") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    })
                    .collect(),
                Some(Value::String(text)) => vec![text.clone()],
                Some(other) => vec![other.to_string()],
                None => Vec::new(),
            };
            let tokens: u64 = inputs
                .iter()
                .map(|i| (i.len() as u64).div_ceil(4).max(1))
                .sum();
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(index, input)| json!({"object": "embedding", "index": index, "embedding": embedding(input)}))
                .collect();
            json!({"object": "list", "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        }
        PassthroughEndpoint::Rerank => {
            // Documents in the order given, scores falling: deterministic and well-formed.
            let count = request
                .extra
                .get("documents")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let top_n = request
                .extra
                .get("top_n")
                .and_then(Value::as_u64)
                .map_or(count, |n| (n as usize).min(count));
            let results: Vec<Value> = (0..top_n)
                .map(|index| json!({"index": index, "relevance_score": 1.0 / (index as f64 + 1.0)}))
                .collect();
            json!({"id": format!("rerank-mock-{:016x}", fastrand::u64(..)), "results": results,
                   "meta": {"billed_units": {"search_units": 1}}})
        }
    };
    match serde_json::from_value::<PassthroughResponse>(body) {
        Ok(response) => response,
        Err(_) => PassthroughResponse {
            model: None,
            extra: Extra::new(),
        },
    }
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
