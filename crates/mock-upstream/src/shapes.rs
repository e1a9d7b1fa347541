//! The OpenAI response bodies the mock sends, and the exact sequence of SSE events of a stream.
//!
//! Field order and presence follow OpenAI's own responses (`logprobs: null`, `refusal: null`,
//! `usage: null` on every chunk when usage was requested), so clients that are strict about the
//! shape accept the mock as they accept the real thing.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::config::RuntimeConfig;
use crate::tokens;

pub const SYSTEM_FINGERPRINT: &str = "fp_switchyard_mock";
const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

#[derive(Serialize)]
pub struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    pub choices: [ChatChoice<'a>; 1],
    pub usage: Usage,
}

#[derive(Serialize)]
pub struct ChatChoice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: &'static str,
}

#[derive(Serialize)]
pub struct AssistantMessage<'a> {
    pub role: &'static str,
    pub content: &'a str,
    pub refusal: Option<()>,
}

impl<'a> ChatCompletion<'a> {
    pub fn new(id: &'a str, created: u64, model: &'a str, reply: &'a str, usage: Usage) -> Self {
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: [ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: reply,
                    refusal: None,
                },
                logprobs: None,
                finish_reason: "stop",
            }],
            usage,
        }
    }
}

#[derive(Serialize)]
pub struct TextCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    pub choices: &'a [TextChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
pub struct TextChoice<'a> {
    pub text: &'a str,
    pub index: u32,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
pub struct ChatChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    pub choices: &'a [ChunkChoice<'a>],
    /// Absent unless `stream_options.include_usage`; then `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
pub struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

#[derive(Serialize)]
pub struct EmbeddingList<'a> {
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: &'a str,
    pub usage: EmbeddingUsage,
}

#[derive(Serialize)]
pub struct EmbeddingData {
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingValues,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum EmbeddingValues {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

#[derive(Serialize)]
pub struct ModelList<'a> {
    pub object: &'static str,
    pub data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
pub struct ModelEntry<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

/// Which endpoint a stream answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamKind {
    /// `chat.completion.chunk`: role chunk, one content chunk per word, finish chunk.
    Chat,
    /// `text_completion`: one text chunk per word, finish chunk.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Role,
    Content,
    Finish,
    Usage,
    Done,
    End,
}

/// The SSE events of one streamed answer, produced one at a time as the body is polled.
///
/// Chat: `{delta:{role,content:""}}`, one `{delta:{content:word}}` per word of the reply,
/// `{delta:{}, finish_reason:"stop"}`, then (with `include_usage`) `{choices:[], usage}`, then
/// `[DONE]`. Text completions are the same without the role chunk.
pub struct ChunkSequence {
    kind: StreamKind,
    id: String,
    created: u64,
    model: String,
    config: Arc<RuntimeConfig>,
    include_usage: bool,
    usage: Usage,
    phase: Phase,
    /// Byte offset of the next reply piece.
    position: usize,
    remaining: usize,
}

impl ChunkSequence {
    pub fn new(
        kind: StreamKind,
        id: String,
        created: u64,
        model: String,
        config: Arc<RuntimeConfig>,
        include_usage: bool,
        usage: Usage,
    ) -> Self {
        let role_chunk = usize::from(kind == StreamKind::Chat);
        let remaining = role_chunk
            + tokens::pieces(&config.reply).count()
            + 1 // finish
            + usize::from(include_usage)
            + 1; // [DONE]
        Self {
            kind,
            id,
            created,
            model,
            config,
            include_usage,
            usage,
            phase: match kind {
                StreamKind::Chat => Phase::Role,
                StreamKind::Text => Phase::Content,
            },
            position: 0,
            remaining,
        }
    }

    /// `usage` on a regular chunk: absent, or `null` when the final usage chunk will follow.
    fn usage_placeholder(&self) -> Option<Option<Usage>> {
        self.include_usage.then_some(None)
    }

    fn chat_event(&self, delta: Delta<'_>, finish_reason: Option<&'static str>) -> Bytes {
        sse_event(&ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: &[ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: self.usage_placeholder(),
        })
    }

    fn text_event(&self, text: &str, finish_reason: Option<&'static str>) -> Bytes {
        sse_event(&TextCompletion {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: &[TextChoice {
                text,
                index: 0,
                logprobs: None,
                finish_reason,
            }],
            usage: self.usage_placeholder(),
        })
    }

    fn usage_event(&self) -> Bytes {
        match self.kind {
            StreamKind::Chat => sse_event(&ChatChunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                system_fingerprint: SYSTEM_FINGERPRINT,
                choices: &[],
                usage: Some(Some(self.usage)),
            }),
            StreamKind::Text => sse_event(&TextCompletion {
                id: &self.id,
                object: "text_completion",
                created: self.created,
                model: &self.model,
                system_fingerprint: SYSTEM_FINGERPRINT,
                choices: &[],
                usage: Some(Some(self.usage)),
            }),
        }
    }
}

impl Iterator for ChunkSequence {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let event = loop {
            match self.phase {
                Phase::Role => {
                    self.phase = Phase::Content;
                    break self.chat_event(
                        Delta {
                            role: Some("assistant"),
                            content: Some(""),
                        },
                        None,
                    );
                }
                Phase::Content => {
                    let reply = &self.config.reply;
                    if self.position >= reply.len() {
                        self.phase = Phase::Finish;
                        continue;
                    }
                    let start = self.position;
                    let end = tokens::piece_end(reply, start);
                    self.position = end;
                    let piece = &reply[start..end];
                    break match self.kind {
                        StreamKind::Chat => self.chat_event(
                            Delta {
                                role: None,
                                content: Some(piece),
                            },
                            None,
                        ),
                        StreamKind::Text => self.text_event(piece, None),
                    };
                }
                Phase::Finish => {
                    self.phase = if self.include_usage {
                        Phase::Usage
                    } else {
                        Phase::Done
                    };
                    break match self.kind {
                        StreamKind::Chat => self.chat_event(Delta::default(), Some("stop")),
                        StreamKind::Text => self.text_event("", Some("stop")),
                    };
                }
                Phase::Usage => {
                    self.phase = Phase::Done;
                    break self.usage_event();
                }
                Phase::Done => {
                    self.phase = Phase::End;
                    break Bytes::from_static(DONE_EVENT);
                }
                Phase::End => return None,
            }
        };
        self.remaining = self.remaining.saturating_sub(1);
        Some(event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ChunkSequence {}

/// `data: <json>\n\n`.
pub fn sse_event<T: Serialize>(value: &T) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut buf, value).is_err() {
        // Unreachable for these plain structs; an empty object keeps the stream well-formed.
        buf.truncate(6);
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn config(reply: &str) -> Arc<RuntimeConfig> {
        Arc::new(RuntimeConfig {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            retry_after: None,
            hang: false,
            chunk_delay_ms: 0,
            fail_mid_stream_after: None,
            reply: reply.into(),
        })
    }

    fn events(kind: StreamKind, reply: &str, include_usage: bool) -> Vec<Value> {
        let sequence = ChunkSequence::new(
            kind,
            "chatcmpl-mock-1".into(),
            1_700_000_000,
            "mock-gpt".into(),
            config(reply),
            include_usage,
            Usage::new(3, tokens::count_words(reply)),
        );
        let announced = sequence.len();
        let raw: Vec<Bytes> = sequence.collect();
        assert_eq!(raw.len(), announced, "len() must match the events produced");
        let last = raw.last().expect("at least [DONE]");
        assert_eq!(&last[..], DONE_EVENT);
        raw[..raw.len() - 1]
            .iter()
            .map(|event| {
                let text = std::str::from_utf8(event).expect("utf-8");
                let json = text
                    .strip_prefix("data: ")
                    .and_then(|t| t.strip_suffix("\n\n"))
                    .expect("data: ...\\n\\n framing");
                serde_json::from_str(json).expect("chunk is JSON")
            })
            .collect()
    }

    #[test]
    fn chat_stream_sequence_without_usage() {
        let chunks = events(StreamKind::Chat, "Hello mock world", false);
        assert_eq!(chunks.len(), 1 + 3 + 1);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
        let text: String = chunks[1..4]
            .iter()
            .map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .expect("content")
            })
            .collect();
        assert_eq!(text, "Hello mock world");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello ");
        let finish = &chunks[4];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish["choices"][0]["delta"], serde_json::json!({}));
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], "chatcmpl-mock-1");
            assert_eq!(chunk["created"], 1_700_000_000);
            assert_eq!(chunk["model"], "mock-gpt");
            assert!(chunk.get("usage").is_none());
        }
    }

    #[test]
    fn chat_stream_sequence_with_usage() {
        let chunks = events(StreamKind::Chat, "Hello mock world", true);
        assert_eq!(chunks.len(), 1 + 3 + 1 + 1);
        for chunk in &chunks[..5] {
            assert_eq!(chunk["usage"], Value::Null);
            assert!(chunk.get("usage").is_some());
        }
        let usage_chunk = &chunks[5];
        assert_eq!(usage_chunk["choices"], serde_json::json!([]));
        assert_eq!(
            usage_chunk["usage"],
            serde_json::json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
        );
    }

    #[test]
    fn text_stream_sequence() {
        let chunks = events(StreamKind::Text, "a b", true);
        assert_eq!(chunks.len(), 2 + 1 + 1);
        assert_eq!(chunks[0]["object"], "text_completion");
        assert_eq!(chunks[0]["choices"][0]["text"], "a ");
        assert_eq!(chunks[1]["choices"][0]["text"], "b");
        assert_eq!(chunks[2]["choices"][0]["text"], "");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[3]["usage"]["completion_tokens"], 2);
    }

    #[test]
    fn empty_reply_still_finishes() {
        let chunks = events(StreamKind::Chat, "", false);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn chat_completion_shape() {
        let json = serde_json::to_value(ChatCompletion::new(
            "chatcmpl-mock-9",
            1,
            "m",
            "hi there",
            Usage::new(2, 2),
        ))
        .expect("serializes");
        assert_eq!(json["object"], "chat.completion");
        assert_eq!(json["choices"][0]["message"]["role"], "assistant");
        assert_eq!(json["choices"][0]["message"]["content"], "hi there");
        assert_eq!(json["choices"][0]["finish_reason"], "stop");
        assert_eq!(json["usage"]["total_tokens"], 4);
        assert_eq!(json["system_fingerprint"], SYSTEM_FINGERPRINT);
    }
}
