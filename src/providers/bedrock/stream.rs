//! ConverseStream events (AWS event-stream messages, named by `:event-type`) as OpenAI chunks:
//!
//! - `messageStart` → the role chunk;
//! - `contentBlockStart` with `toolUse` → a tool-call chunk with its id and name;
//! - `contentBlockDelta` → text, tool arguments (`toolUse.input`, JSON text in pieces) or
//!   `reasoning_content`;
//! - `messageStop` → the finish chunk;
//! - `metadata` (the last event) → the usage chunk, and the end;
//! - an `exception:<type>` or `error:<code>` message → an upstream error.
//!
//! A body that ends before `messageStop` is a cut stream.

use std::collections::HashMap;

use super::error::stream_exception;
use super::response::{finish_reason, usage};
use super::wire::{ContentBlockDelta, ContentBlockStart, MessageStop, StreamMetadata};
use crate::providers::translate::{random_id, unix_now};
use crate::providers::{ChatStreamDecoder, ProviderError, SseEvent, StreamItem};
use crate::schema::{ChatChunk, ChunkChoice, Delta, Extra, FunctionCallDelta, Role, ToolCallDelta};

#[derive(Default)]
pub struct BedrockStreamDecoder {
    id: String,
    created: u64,
    started: bool,
    /// Content block index → OpenAI tool call index.
    tool_blocks: HashMap<u32, u32>,
    stopped: bool,
}

fn parse<'a, T: serde::Deserialize<'a>>(name: &str, data: &'a str) -> Result<T, ProviderError> {
    serde_json::from_str(data)
        .map_err(|err| ProviderError::InvalidResponse(format!("bedrock `{name}` event: {err}")))
}

impl BedrockStreamDecoder {
    fn chunk(&mut self, delta: Delta, finish_reason: Option<&str>) -> StreamItem {
        self.ensure_id();
        StreamItem::Chunk(ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: String::new(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
                extra: Extra::new(),
            }],
            usage: None,
            extra: Extra::new(),
        })
    }

    fn ensure_id(&mut self) {
        if self.id.is_empty() {
            self.id = random_id("chatcmpl-");
            self.created = unix_now();
        }
    }

    fn start(&mut self, out: &mut Vec<StreamItem>) {
        if !self.started {
            self.started = true;
            let role = self.chunk(
                Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            );
            out.push(role);
        }
    }

    fn tool_delta(
        &mut self,
        tool_index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) -> StreamItem {
        self.chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: tool_index,
                    kind: id.is_some().then(|| "function".to_owned()),
                    id,
                    function: Some(FunctionCallDelta {
                        name,
                        arguments: Some(arguments),
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                }]),
                ..Delta::default()
            },
            None,
        )
    }
}

impl ChatStreamDecoder for BedrockStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        let name = event.event.as_deref().unwrap_or("");
        let data = event.data.as_str();
        if let Some(kind) = name.strip_prefix("exception:") {
            return Err(stream_exception(kind, data));
        }
        if let Some(code) = name.strip_prefix("error:") {
            return Err(ProviderError::Status {
                status: 500,
                message: format!("Bedrock stream error {code}: {data}"),
                kind: None,
                code: Some(code.to_owned()),
                param: None,
                retry_after: None,
            });
        }
        match name {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                let start: ContentBlockStart = parse(name, data)?;
                self.start(out);
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let tool_index = self.tool_blocks.len() as u32;
                    self.tool_blocks
                        .insert(start.content_block_index, tool_index);
                    let item = self.tool_delta(
                        tool_index,
                        Some(tool.tool_use_id),
                        Some(tool.name),
                        String::new(),
                    );
                    out.push(item);
                }
            }
            "contentBlockDelta" => {
                let delta: ContentBlockDelta = parse(name, data)?;
                self.start(out);
                if let Some(text) = delta.delta.text.filter(|t| !t.is_empty()) {
                    let item = self.chunk(
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                        None,
                    );
                    out.push(item);
                } else if let Some(tool) = delta.delta.tool_use {
                    let tool_index = self
                        .tool_blocks
                        .get(&delta.content_block_index)
                        .copied()
                        .ok_or_else(|| {
                            ProviderError::InvalidResponse(
                                "bedrock stream: tool input for a block that did not start a tool"
                                    .into(),
                            )
                        })?;
                    let item = self.tool_delta(tool_index, None, None, tool.input);
                    out.push(item);
                } else if let Some(text) = delta
                    .delta
                    .reasoning_content
                    .and_then(|r| r.text)
                    .filter(|t| !t.is_empty())
                {
                    let mut extra = Extra::new();
                    extra.insert("reasoning_content".into(), text.into());
                    let item = self.chunk(
                        Delta {
                            extra,
                            ..Delta::default()
                        },
                        None,
                    );
                    out.push(item);
                }
            }
            "messageStop" => {
                let stop: MessageStop = parse(name, data)?;
                self.start(out);
                self.stopped = true;
                let reason = finish_reason(stop.stop_reason.as_deref().unwrap_or("end_turn"));
                let item = self.chunk(Delta::default(), Some(reason));
                out.push(item);
            }
            "metadata" => {
                let metadata: StreamMetadata = parse(name, data)?;
                if let Some(tokens) = metadata.usage {
                    self.ensure_id();
                    out.push(StreamItem::Chunk(ChatChunk {
                        id: self.id.clone(),
                        object: "chat.completion.chunk".into(),
                        created: self.created,
                        model: String::new(),
                        choices: Vec::new(),
                        usage: Some(usage(&tokens)),
                        extra: Extra::new(),
                    }));
                }
                if self.stopped {
                    out.push(StreamItem::Done);
                }
            }
            // contentBlockStop, and events added later: nothing to say.
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        if self.stopped {
            Ok(())
        } else {
            Err(ProviderError::InvalidResponse(
                "the Bedrock stream ended before messageStop".into(),
            ))
        }
    }
}
