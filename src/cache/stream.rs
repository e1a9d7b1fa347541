//! Streams and the cache: a streamed answer is put back together into the `chat.completion` it
//! amounts to (stored once the stream ended normally), and a cached `chat.completion` is
//! replayed as chunks (a role-and-content chunk per choice, tool calls, the finish reason, then
//! the usage chunk), which the SSE renderer sends like any upstream stream, `[DONE]` included.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::providers::http::ChunkStream;
use crate::providers::ProviderError;
use crate::schema::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, Extra, FunctionCallDelta,
    ResponseMessage, Role, ToolCall, ToolCallDelta, Usage,
};

/// Builds the whole answer from the chunks of a stream.
#[derive(Default)]
pub struct Recorder {
    id: String,
    created: u64,
    model: String,
    extra: Extra,
    choices: BTreeMap<u32, RecordedChoice>,
    usage: Option<Usage>,
    /// Text seen so far, to stop recording an answer too large to store.
    bytes: usize,
}

#[derive(Default)]
struct RecordedChoice {
    content: Option<String>,
    tool_calls: BTreeMap<u32, ToolCall>,
    finish_reason: Option<String>,
    extra: Extra,
}

impl Recorder {
    /// False once the answer outgrew `limit` bytes (it is then not stored).
    pub fn record(&mut self, chunk: &ChatChunk, limit: usize) -> bool {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.created = chunk.created;
            self.model.clone_from(&chunk.model);
            for (k, v) in &chunk.extra {
                if k == "system_fingerprint" || k == "service_tier" {
                    self.extra.insert(k.clone(), v.clone());
                }
            }
        }
        if chunk.usage.is_some() {
            self.usage.clone_from(&chunk.usage);
        }
        for c in &chunk.choices {
            let choice = self.choices.entry(c.index).or_default();
            if let Some(text) = &c.delta.content {
                self.bytes += text.len();
                choice
                    .content
                    .get_or_insert_with(String::new)
                    .push_str(text);
            }
            for call in c.delta.tool_calls.iter().flatten() {
                let slot = choice.tool_calls.entry(call.index).or_insert_with(|| {
                    ToolCall::function(String::new(), String::new(), String::new())
                });
                if let Some(id) = &call.id {
                    slot.id.clone_from(id);
                }
                if let Some(f) = &call.function {
                    if let Some(name) = &f.name {
                        slot.function.name.push_str(name);
                    }
                    if let Some(args) = &f.arguments {
                        self.bytes += args.len();
                        slot.function.arguments.push_str(args);
                    }
                }
            }
            for (k, v) in &c.delta.extra {
                // Provider extensions (`reasoning_content` ...): strings concatenate.
                if let Some(text) = v.as_str() {
                    self.bytes += text.len();
                    let slot = choice
                        .extra
                        .entry(k.clone())
                        .or_insert_with(|| serde_json::Value::String(String::new()));
                    if let serde_json::Value::String(s) = slot {
                        s.push_str(text);
                    }
                }
            }
            if c.finish_reason.is_some() {
                choice.finish_reason.clone_from(&c.finish_reason);
            }
        }
        self.bytes <= limit
    }

    /// The answer, when the stream said how each choice finished (else it was cut short).
    pub fn finish(self) -> Option<ChatCompletion> {
        if self.choices.is_empty() || self.choices.values().any(|c| c.finish_reason.is_none()) {
            return None;
        }
        let choices = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                let tool_calls =
                    (!c.tool_calls.is_empty()).then(|| c.tool_calls.into_values().collect());
                Choice {
                    index,
                    message: ResponseMessage {
                        role: Role::Assistant,
                        content: c.content,
                        tool_calls,
                        extra: c.extra,
                    },
                    finish_reason: c.finish_reason,
                    extra: Extra::new(),
                }
            })
            .collect();
        Some(ChatCompletion {
            id: self.id,
            object: "chat.completion".into(),
            created: self.created,
            model: self.model,
            choices,
            usage: self.usage,
            extra: self.extra,
        })
    }
}

/// A stream that records its chunks and hands the whole answer to `done` when it ends
/// normally (not on an error, not when dropped early).
pub struct Recording<F: FnOnce(ChatCompletion) + Send + Unpin> {
    inner: ChunkStream,
    recorder: Option<Recorder>,
    limit: usize,
    done: Option<F>,
}

impl<F: FnOnce(ChatCompletion) + Send + Unpin> Recording<F> {
    pub fn new(inner: ChunkStream, limit: usize, done: F) -> Self {
        Recording {
            inner,
            recorder: Some(Recorder::default()),
            limit,
            done: Some(done),
        }
    }
}

impl<F: FnOnce(ChatCompletion) + Send + Unpin> Stream for Recording<F> {
    type Item = Result<ChatChunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                let limit = this.limit;
                if let Some(recorder) = &mut this.recorder {
                    if !recorder.record(chunk, limit) {
                        this.recorder = None;
                    }
                }
            }
            Some(Err(_)) => this.recorder = None,
            None => {
                if let (Some(recorder), Some(done)) = (this.recorder.take(), this.done.take()) {
                    if let Some(answer) = recorder.finish() {
                        done(answer);
                    }
                }
            }
        }
        Poll::Ready(item)
    }
}

/// The chunks a stream of `answer` would have had (the usage chunk last, `choices: []`).
pub fn replay(answer: ChatCompletion) -> Vec<ChatChunk> {
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatChunk {
        id: answer.id.clone(),
        object: "chat.completion.chunk".into(),
        created: answer.created,
        model: answer.model.clone(),
        choices,
        usage,
        extra: answer.extra.clone(),
    };
    let mut chunks = Vec::with_capacity(answer.choices.len() * 2 + 1);
    for choice in &answer.choices {
        let tool_calls = choice.message.tool_calls.as_ref().map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(i, call)| ToolCallDelta {
                    index: i as u32,
                    id: Some(call.id.clone()),
                    kind: Some(call.kind.clone()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(call.function.arguments.clone()),
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                })
                .collect()
        });
        chunks.push(chunk(
            vec![ChunkChoice {
                index: choice.index,
                delta: Delta {
                    role: Some(Role::Assistant),
                    content: choice.message.content.clone(),
                    tool_calls,
                    extra: choice.message.extra.clone(),
                },
                finish_reason: None,
                extra: Extra::new(),
            }],
            None,
        ));
        chunks.push(chunk(
            vec![ChunkChoice {
                index: choice.index,
                delta: Delta::default(),
                finish_reason: choice.finish_reason.clone().or_else(|| Some("stop".into())),
                extra: Extra::new(),
            }],
            None,
        ));
    }
    if let Some(usage) = &answer.usage {
        chunks.push(chunk(Vec::new(), Some(usage.clone())));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> ChatCompletion {
        serde_json::from_value(serde_json::json!({
            "id": "c1", "object": "chat.completion", "created": 7, "model": "m",
            "system_fingerprint": "fp",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
                ]}, "finish_reason": "tool_calls"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
        .unwrap()
    }

    #[test]
    fn replayed_chunks_record_back_to_the_same_answer() {
        let chunks = replay(answer());
        assert!(chunks.last().unwrap().choices.is_empty());
        let mut recorder = Recorder::default();
        for chunk in &chunks {
            assert!(recorder.record(chunk, 1 << 20));
        }
        let back = recorder.finish().unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(answer()).unwrap()
        );
    }

    #[test]
    fn a_stream_cut_short_or_too_large_is_not_recorded() {
        let chunks = replay(answer());
        let mut recorder = Recorder::default();
        recorder.record(&chunks[0], 1 << 20);
        assert!(recorder.finish().is_none(), "no finish_reason: cut short");
        let mut recorder = Recorder::default();
        assert!(!recorder.record(&chunks[0], 4), "over the limit");
    }
}
