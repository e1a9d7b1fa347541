//! Streams, both ways: Anthropic's events as OpenAI `chat.completion.chunk`s (the decoder), and
//! OpenAI chunks as Anthropic's events (the encoder, for `/v1/messages` clients of non-Anthropic
//! models), plus the small tap that watches a natively forwarded Anthropic stream.

use std::collections::HashMap;

use serde_json::Value;

use super::error::stream_error;
use super::request::JSON_TOOL_NAME;
use super::response::{finish_reason, stop_reason, usage_to_anthropic, usage_to_openai};
use super::wire::{
    BlockDelta, ContentBlock, DeltaUsage, MessageDelta, MessageResponse, Role as ARole,
    StreamEvent, Usage as AUsage,
};
use crate::providers::translate::{random_id, unix_now};
use crate::providers::{ChatStreamDecoder, ProviderError, SseEvent, StreamItem};
use crate::schema::{
    ChatChunk, ChunkChoice, Delta, Extra, FunctionCallDelta, Role, ToolCallDelta, Usage,
};

// ------------------------------------------------------------------------------------------
// Anthropic events → OpenAI chunks
// ------------------------------------------------------------------------------------------

/// Decodes Anthropic's stream: `message_start` gives the role chunk, text and tool-input deltas
/// become content and tool-call argument chunks, `message_delta` the finish chunk followed by a
/// usage chunk, `message_stop` the end. `ping` and event types this version does not know are
/// ignored; an `error` event ends the stream with that error.
#[derive(Default)]
pub struct AnthropicStreamDecoder {
    id: String,
    model: String,
    created: u64,
    usage: AUsage,
    /// Anthropic block index → OpenAI tool-call index.
    tools: HashMap<u32, u32>,
    /// The block that carries a `response_format` answer (streamed to the client as text).
    json_block: Option<u32>,
    saw_message_delta: bool,
}

impl AnthropicStreamDecoder {
    fn chunk(&self, delta: Delta, finish_reason: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
                extra: Extra::new(),
            }],
            usage: None,
            extra: Extra::new(),
        }
    }

    fn content(&self, text: String) -> StreamItem {
        StreamItem::Chunk(self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        ))
    }

    fn tool_piece(&self, piece: ToolCallDelta) -> StreamItem {
        StreamItem::Chunk(self.chunk(
            Delta {
                tool_calls: Some(vec![piece]),
                ..Delta::default()
            },
            None,
        ))
    }
}

impl ChatStreamDecoder for AnthropicStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let parsed: StreamEvent = serde_json::from_str(data).map_err(|err| {
            ProviderError::InvalidResponse(format!("anthropic stream event: {err}"))
        })?;
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.created = unix_now();
                self.usage = message.usage;
                out.push(StreamItem::Chunk(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                )));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ContentBlock::Text { text, .. } if !text.is_empty() => out.push(self.content(text)),
                ContentBlock::ToolUse { name, .. } if name == JSON_TOOL_NAME => {
                    self.json_block = Some(index);
                }
                ContentBlock::ToolUse {
                    id, name, input, ..
                } => {
                    let tool_index = self.tools.len() as u32;
                    self.tools.insert(index, tool_index);
                    // The input normally arrives in deltas; a non-empty one here is whole.
                    let arguments = match &input {
                        Value::Object(map) if !map.is_empty() => input.to_string(),
                        _ => String::new(),
                    };
                    out.push(self.tool_piece(ToolCallDelta {
                        index: tool_index,
                        id: Some(id),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(arguments),
                            extra: Extra::new(),
                        }),
                        extra: Extra::new(),
                    }));
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => out.push(self.content(text)),
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    if self.json_block == Some(index) {
                        out.push(self.content(partial_json));
                    } else if let Some(&tool_index) = self.tools.get(&index) {
                        out.push(self.tool_piece(ToolCallDelta {
                            index: tool_index,
                            function: Some(FunctionCallDelta {
                                arguments: Some(partial_json),
                                ..FunctionCallDelta::default()
                            }),
                            ..ToolCallDelta::default()
                        }));
                    }
                }
                BlockDelta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                    let mut extra = Extra::new();
                    extra.insert("reasoning_content".into(), thinking.into());
                    out.push(StreamItem::Chunk(self.chunk(
                        Delta {
                            extra,
                            ..Delta::default()
                        },
                        None,
                    )));
                }
                _ => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                self.saw_message_delta = true;
                self.usage.output_tokens = usage.output_tokens;
                if let Some(tokens) = usage.input_tokens {
                    self.usage.input_tokens = tokens;
                }
                if usage.cache_creation_input_tokens.is_some() {
                    self.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
                }
                if usage.cache_read_input_tokens.is_some() {
                    self.usage.cache_read_input_tokens = usage.cache_read_input_tokens;
                }
                let finish = match delta.stop_reason.as_deref() {
                    Some("tool_use") if self.json_block.is_some() && self.tools.is_empty() => {
                        "stop"
                    }
                    Some(reason) => finish_reason(reason),
                    None => "stop",
                };
                out.push(StreamItem::Chunk(
                    self.chunk(Delta::default(), Some(finish)),
                ));
                let mut usage_chunk = self.chunk(Delta::default(), None);
                usage_chunk.choices.clear();
                usage_chunk.usage = Some(usage_to_openai(&self.usage));
                out.push(StreamItem::Chunk(usage_chunk));
            }
            StreamEvent::MessageStop => out.push(StreamItem::Done),
            StreamEvent::Error { error } => return Err(stream_error(&error)),
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Other(_) => {}
        }
        Ok(())
    }

    /// A stream cut before `message_stop`: complete if the final `message_delta` (stop reason
    /// and usage) had arrived, truncated otherwise.
    fn finish(&mut self, _out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        if self.saw_message_delta {
            Ok(())
        } else {
            Err(ProviderError::InvalidResponse(
                "the Anthropic stream ended before its final message_delta".into(),
            ))
        }
    }
}

// ------------------------------------------------------------------------------------------
// OpenAI chunks → Anthropic events
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text,
    /// A tool_use block, for this OpenAI tool-call index.
    Tool(u32),
}

/// Turns OpenAI chunks into Anthropic's event sequence: `message_start`, for each text run or
/// tool call a `content_block_start` / `content_block_delta`s / `content_block_stop`, then at
/// the end `message_delta` (stop reason and usage) and `message_stop`.
///
/// Anthropic blocks are strictly sequential, so a tool call's argument pieces must follow its
/// start without another block in between. OpenAI-compatible servers send them that way; a
/// piece for a call whose block was already closed cannot be placed and is logged and skipped.
pub struct MessagesStreamEncoder {
    model: String,
    started: bool,
    next_index: u32,
    open: Option<(OpenBlock, u32)>,
    /// OpenAI tool-call index → Anthropic block index, for calls already started.
    tools: HashMap<u32, u32>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl MessagesStreamEncoder {
    /// `model` is the name the client sees (the alias it asked for).
    pub fn new(model: impl Into<String>) -> Self {
        MessagesStreamEncoder {
            model: model.into(),
            started: false,
            next_index: 0,
            open: None,
            tools: HashMap::new(),
            finish_reason: None,
            usage: None,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = if id.is_empty() {
            random_id("msg_")
        } else {
            id.to_owned()
        };
        out.push(StreamEvent::MessageStart {
            message: MessageResponse {
                id,
                kind: "message".into(),
                role: ARole::Assistant,
                model: self.model.clone(),
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                // The input count comes with the last chunk; message_delta restates it.
                usage: AUsage {
                    input_tokens: 0,
                    output_tokens: 0,
                    ..AUsage::default()
                },
                extra: Extra::new(),
            },
        });
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(StreamEvent::ContentBlockStop { index });
        }
    }

    fn open(&mut self, kind: OpenBlock, block: ContentBlock, out: &mut Vec<StreamEvent>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((kind, index));
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        });
        index
    }

    /// The events for one chunk.
    pub fn push(&mut self, chunk: &ChatChunk, out: &mut Vec<StreamEvent>) {
        self.start(&chunk.id, out);
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some((OpenBlock::Text, index)) => index,
                _ => self.open(OpenBlock::Text, ContentBlock::text(""), out),
            };
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta {
                    text: text.to_owned(),
                },
            });
        }
        for piece in choice.delta.tool_calls.iter().flatten() {
            let function = piece.function.as_ref();
            let starts = piece.id.is_some() || function.is_some_and(|f| f.name.is_some());
            let index = match (self.tools.get(&piece.index), self.open) {
                (Some(&index), Some((OpenBlock::Tool(open), _))) if open == piece.index => index,
                (None, _) if starts => {
                    let block = ContentBlock::ToolUse {
                        id: piece.id.clone().unwrap_or_else(|| random_id("toolu_")),
                        name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                        input: Value::Object(serde_json::Map::new()),
                        extra: Extra::new(),
                    };
                    let index = self.open(OpenBlock::Tool(piece.index), block, out);
                    self.tools.insert(piece.index, index);
                    index
                }
                _ => {
                    tracing::warn!(
                        tool_index = piece.index,
                        "tool-call piece arrived after its block was closed (or before it started); skipped"
                    );
                    continue;
                }
            };
            if let Some(arguments) = function
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                out.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta {
                        partial_json: arguments.to_owned(),
                    },
                });
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
    }

    /// The closing events, once the chunk stream ended normally.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.start("", out);
        self.close(out);
        let usage = self
            .usage
            .as_ref()
            .map(usage_to_anthropic)
            .unwrap_or_default();
        out.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason(self.finish_reason.as_deref()).to_owned()),
                stop_sequence: None,
                extra: Extra::new(),
            },
            usage: DeltaUsage {
                input_tokens: Some(usage.input_tokens),
                cache_creation_input_tokens: usage.cache_creation_input_tokens,
                cache_read_input_tokens: usage.cache_read_input_tokens,
                output_tokens: usage.output_tokens,
                extra: Extra::new(),
            },
        });
        out.push(StreamEvent::MessageStop);
    }

    /// The usage the chunks reported, in OpenAI's terms.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

// ------------------------------------------------------------------------------------------
// Native Anthropic streams
// ------------------------------------------------------------------------------------------

/// Watches an Anthropic stream that is forwarded as it is: shows the client its alias in
/// `message_start`, and collects the usage and whether `message_stop` came.
pub struct NativeStreamTap {
    model: String,
    usage: AUsage,
    stopped: bool,
}

impl NativeStreamTap {
    pub fn new(model: impl Into<String>) -> Self {
        NativeStreamTap {
            model: model.into(),
            usage: AUsage::default(),
            stopped: false,
        }
    }

    /// The data to forward for `event` (unchanged but for `message_start`'s model), and the
    /// event name. An `error` event becomes the error.
    pub fn event(&mut self, event: &SseEvent) -> Result<(String, String), ProviderError> {
        let name = event.event.clone().unwrap_or_default();
        let data = event.data.trim();
        let kind = if name.is_empty() {
            serde_json::from_str::<Value>(data)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default()
        } else {
            name
        };
        match kind.as_str() {
            "message_start" => {
                let mut value: Value = serde_json::from_str(data).map_err(|err| {
                    ProviderError::InvalidResponse(format!("anthropic message_start: {err}"))
                })?;
                if let Some(message) = value.get_mut("message") {
                    if let Some(usage) = message.get("usage") {
                        self.usage = serde_json::from_value(usage.clone()).unwrap_or_default();
                    }
                    message["model"] = Value::String(self.model.clone());
                }
                Ok((kind, value.to_string()))
            }
            "message_delta" => {
                if let Ok(StreamEvent::MessageDelta { usage, .. }) = serde_json::from_str(data) {
                    self.usage.output_tokens = usage.output_tokens;
                    if let Some(tokens) = usage.input_tokens {
                        self.usage.input_tokens = tokens;
                    }
                    if usage.cache_creation_input_tokens.is_some() {
                        self.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
                    }
                    if usage.cache_read_input_tokens.is_some() {
                        self.usage.cache_read_input_tokens = usage.cache_read_input_tokens;
                    }
                }
                Ok((kind, data.to_owned()))
            }
            "message_stop" => {
                self.stopped = true;
                Ok((kind, data.to_owned()))
            }
            "error" => match serde_json::from_str::<StreamEvent>(data) {
                Ok(StreamEvent::Error { error }) => Err(stream_error(&error)),
                _ => Err(ProviderError::InvalidResponse(format!(
                    "anthropic error event: {data}"
                ))),
            },
            _ => Ok((kind, data.to_owned())),
        }
    }

    /// The usage so far, in OpenAI's terms (for metrics and spend).
    pub fn usage(&self) -> Usage {
        usage_to_openai(&self.usage)
    }

    /// Called at the end of the upstream body: an error if `message_stop` never came.
    pub fn finish(&self) -> Result<(), ProviderError> {
        if self.stopped {
            Ok(())
        } else {
            Err(ProviderError::InvalidResponse(
                "the Anthropic stream ended before message_stop".into(),
            ))
        }
    }
}
