//! Anthropic Messages streams and the cache, as [`stream`](super::stream) is for chat: a
//! streamed answer is put back together into the `message` it amounts to (stored once the
//! stream ended with `message_stop`), and a cached `message` is replayed as the events a stream
//! of it would have had (`message_start`, per block `content_block_start` / one delta /
//! `content_block_stop`, `message_delta` with the stop reason and usage, `message_stop`).
//!
//! Both directions work on Anthropic's events whichever deployment answered: a native
//! Anthropic stream is recorded from the events it forwards, a translated one from the events
//! the translation made, so one stored form (the whole `message` JSON) serves whole and stream
//! requests alike.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::providers::anthropic::wire::{
    BlockDelta, ContentBlock, DeltaUsage, MessageDelta, MessageResponse, StreamEvent,
};
use crate::schema::Extra;

/// Builds the whole `message` from the events of a stream.
#[derive(Default)]
pub struct MessageRecorder {
    message: Option<MessageResponse>,
    /// Tool input JSON arriving in pieces, per block index, until the block stops.
    partial: BTreeMap<u32, String>,
    stopped: bool,
    /// Text seen so far, to stop recording an answer too large to store.
    bytes: usize,
}

impl MessageRecorder {
    /// False once the answer cannot be stored: it outgrew `limit` bytes, the stream failed, or
    /// an event came that this recorder could not put back into the message faithfully (a
    /// delta of a kind it does not know, a block out of order). Storing a half-understood
    /// answer would serve it wrong to every later caller; not storing only costs a miss.
    pub fn record(&mut self, event: &StreamEvent, limit: usize) -> bool {
        let ok = match event {
            StreamEvent::MessageStart { message } => {
                self.message = Some(message.clone());
                true
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match &mut self.message {
                Some(message) if *index as usize == message.content.len() => {
                    message.content.push(content_block.clone());
                    true
                }
                _ => false,
            },
            StreamEvent::ContentBlockDelta { index, delta } => self.delta(*index, delta),
            StreamEvent::ContentBlockStop { index } => self.stop_block(*index),
            StreamEvent::MessageDelta { delta, usage } => match &mut self.message {
                Some(message) => {
                    message.stop_reason.clone_from(&delta.stop_reason);
                    message.stop_sequence.clone_from(&delta.stop_sequence);
                    for (k, v) in &delta.extra {
                        message.extra.insert(k.clone(), v.clone());
                    }
                    let total = &mut message.usage;
                    total.output_tokens = usage.output_tokens;
                    if let Some(tokens) = usage.input_tokens {
                        total.input_tokens = tokens;
                    }
                    if usage.cache_creation_input_tokens.is_some() {
                        total.cache_creation_input_tokens = usage.cache_creation_input_tokens;
                    }
                    if usage.cache_read_input_tokens.is_some() {
                        total.cache_read_input_tokens = usage.cache_read_input_tokens;
                    }
                    for (k, v) in &usage.extra {
                        total.extra.insert(k.clone(), v.clone());
                    }
                    true
                }
                None => false,
            },
            StreamEvent::MessageStop => {
                self.stopped = true;
                true
            }
            StreamEvent::Ping | StreamEvent::Other(_) => true,
            StreamEvent::Error { .. } => false,
        };
        ok && self.bytes <= limit
    }

    fn delta(&mut self, index: u32, delta: &BlockDelta) -> bool {
        let Some(block) = self
            .message
            .as_mut()
            .and_then(|m| m.content.get_mut(index as usize))
        else {
            return false;
        };
        match (block, delta) {
            (ContentBlock::Text { text, .. }, BlockDelta::TextDelta { text: piece }) => {
                self.bytes += piece.len();
                text.push_str(piece);
            }
            (
                ContentBlock::Thinking { thinking, .. },
                BlockDelta::ThinkingDelta { thinking: t },
            ) => {
                self.bytes += t.len();
                thinking.push_str(t);
            }
            (
                ContentBlock::Thinking { signature, .. },
                BlockDelta::SignatureDelta { signature: s },
            ) => {
                self.bytes += s.len();
                signature.push_str(s);
            }
            (
                ContentBlock::ToolUse { .. } | ContentBlock::Other(Value::Object(_)),
                BlockDelta::InputJsonDelta { partial_json },
            ) => {
                self.bytes += partial_json.len();
                self.partial
                    .entry(index)
                    .or_default()
                    .push_str(partial_json);
            }
            // A citation of a text block (web search, documents): kept with the block.
            (ContentBlock::Text { extra, .. }, BlockDelta::Other(value))
                if value.get("type").and_then(Value::as_str) == Some("citations_delta") =>
            {
                let Some(citation) = value.get("citation") else {
                    return false;
                };
                self.bytes += citation.to_string().len();
                let citations = extra
                    .entry("citations")
                    .or_insert_with(|| Value::Array(Vec::new()));
                match citations {
                    Value::Array(list) => list.push(citation.clone()),
                    other => *other = Value::Array(vec![citation.clone()]),
                }
            }
            _ => return false,
        }
        true
    }

    fn stop_block(&mut self, index: u32) -> bool {
        let Some(json) = self.partial.remove(&index) else {
            return true;
        };
        let Some(block) = self
            .message
            .as_mut()
            .and_then(|m| m.content.get_mut(index as usize))
        else {
            return false;
        };
        let Ok(parsed) = serde_json::from_str::<Value>(&json) else {
            return false;
        };
        match block {
            ContentBlock::ToolUse { input, .. } => *input = parsed,
            ContentBlock::Other(Value::Object(map)) => {
                map.insert("input".into(), parsed);
            }
            _ => return false,
        }
        true
    }

    /// The answer, when the stream reached `message_stop` with every block closed (else it
    /// was cut short).
    pub fn finish(self) -> Option<MessageResponse> {
        let message = self.message?;
        (self.stopped && self.partial.is_empty() && message.stop_reason.is_some())
            .then_some(message)
    }
}

/// The events a stream of `message` would have had. Each block comes whole in one delta (text,
/// tool input as JSON text, thinking then its signature); blocks without a delta form (redacted
/// thinking, server tool results) come whole in their `content_block_start`, as Anthropic
/// sends them.
pub fn replay(message: &MessageResponse) -> Vec<StreamEvent> {
    let mut events = Vec::with_capacity(message.content.len() * 3 + 3);
    let mut start_usage = message.usage.clone();
    start_usage.output_tokens = 0;
    events.push(StreamEvent::MessageStart {
        message: MessageResponse {
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: start_usage,
            ..message.clone()
        },
    });
    for (index, block) in message.content.iter().enumerate() {
        let index = index as u32;
        let (start, deltas) = match block {
            ContentBlock::Text { text, extra } => (
                ContentBlock::Text {
                    text: String::new(),
                    extra: extra.clone(),
                },
                vec![BlockDelta::TextDelta { text: text.clone() }],
            ),
            ContentBlock::ToolUse {
                id,
                name,
                input,
                extra,
            } => {
                let empty = matches!(input, Value::Object(map) if map.is_empty());
                (
                    ContentBlock::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                        input: Value::Object(serde_json::Map::new()),
                        extra: extra.clone(),
                    },
                    if empty {
                        Vec::new()
                    } else {
                        vec![BlockDelta::InputJsonDelta {
                            partial_json: input.to_string(),
                        }]
                    },
                )
            }
            ContentBlock::Thinking {
                thinking,
                signature,
                extra,
            } => {
                let mut deltas = vec![BlockDelta::ThinkingDelta {
                    thinking: thinking.clone(),
                }];
                if !signature.is_empty() {
                    deltas.push(BlockDelta::SignatureDelta {
                        signature: signature.clone(),
                    });
                }
                (
                    ContentBlock::Thinking {
                        thinking: String::new(),
                        signature: String::new(),
                        extra: extra.clone(),
                    },
                    deltas,
                )
            }
            other => (other.clone(), Vec::new()),
        };
        events.push(StreamEvent::ContentBlockStart {
            index,
            content_block: start,
        });
        for delta in deltas {
            events.push(StreamEvent::ContentBlockDelta { index, delta });
        }
        events.push(StreamEvent::ContentBlockStop { index });
    }
    let usage = &message.usage;
    events.push(StreamEvent::MessageDelta {
        delta: MessageDelta {
            // A stored answer always has one (see `MessageRecorder::finish`); an entry from
            // elsewhere without it ended its turn normally.
            stop_reason: message
                .stop_reason
                .clone()
                .or_else(|| Some("end_turn".into())),
            stop_sequence: message.stop_sequence.clone(),
            extra: Extra::new(),
        },
        usage: DeltaUsage {
            input_tokens: Some(usage.input_tokens),
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            output_tokens: usage.output_tokens,
            extra: usage.extra.clone(),
        },
    });
    events.push(StreamEvent::MessageStop);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message() -> MessageResponse {
        serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "sig=="},
                {"type": "text", "text": "It is sunny."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 3, "output_tokens": 7,
                      "server_tool_use": {"web_search_requests": 1}}
        }))
        .unwrap()
    }

    #[test]
    fn replayed_events_record_back_to_the_same_message() {
        let events = replay(&message());
        assert_eq!(events.first().unwrap().name(), "message_start");
        assert_eq!(events[events.len() - 2].name(), "message_delta");
        assert_eq!(events.last().unwrap().name(), "message_stop");
        // Through the wire form and back, as a client (or the recorder of a native stream)
        // reads them.
        let mut recorder = MessageRecorder::default();
        for event in &events {
            let wire: StreamEvent =
                serde_json::from_str(&serde_json::to_string(event).unwrap()).unwrap();
            assert!(recorder.record(&wire, 1 << 20), "{event:?}");
        }
        let back = recorder.finish().unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(message()).unwrap()
        );
    }

    #[test]
    fn records_citations_and_pieces_of_tool_input() {
        let events: Vec<StreamEvent> = [
            json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "c", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "x"}}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "ping"}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 9}}),
            json!({"type": "message_stop"}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let mut recorder = MessageRecorder::default();
        for event in &events {
            assert!(recorder.record(event, 1 << 20), "{event:?}");
        }
        let message = serde_json::to_value(recorder.finish().unwrap()).unwrap();
        assert_eq!(message["content"][0]["text"], "Hi");
        assert_eq!(message["content"][0]["citations"][0]["cited_text"], "x");
        assert_eq!(message["content"][1]["input"], json!({"a": 1}));
        assert_eq!(message["usage"]["input_tokens"], 5);
        assert_eq!(message["usage"]["output_tokens"], 9);
        assert_eq!(message["stop_reason"], "end_turn");
    }

    #[test]
    fn a_stream_cut_short_failed_too_large_or_not_understood_is_not_recorded() {
        let events = replay(&message());
        // Cut before message_stop.
        let mut recorder = MessageRecorder::default();
        for event in &events[..events.len() - 1] {
            recorder.record(event, 1 << 20);
        }
        assert!(recorder.finish().is_none());
        // Over the limit.
        let mut recorder = MessageRecorder::default();
        assert!(events.iter().any(|e| !recorder.record(e, 4)));
        // An error event, a delta of an unknown kind, a block out of order.
        for hostile in [
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "future_delta", "x": 1}}),
            json!({"type": "content_block_start", "index": 5, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 9, "delta": {"type": "text_delta", "text": "x"}}),
        ] {
            let mut recorder = MessageRecorder::default();
            recorder.record(&events[0], 1 << 20);
            recorder.record(&events[1], 1 << 20);
            let event: StreamEvent = serde_json::from_value(hostile.clone()).unwrap();
            assert!(!recorder.record(&event, 1 << 20), "{hostile}");
        }
        // Tool input that is not JSON.
        let mut recorder = MessageRecorder::default();
        for event in [
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "content": []}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}}),
        ] {
            assert!(recorder.record(&serde_json::from_value(event).unwrap(), 1 << 20));
        }
        let stop: StreamEvent =
            serde_json::from_value(json!({"type": "content_block_stop", "index": 0})).unwrap();
        assert!(!recorder.record(&stop, 1 << 20));
    }
}
