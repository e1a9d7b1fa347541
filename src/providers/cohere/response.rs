//! Cohere's Chat v2 answers in OpenAI's terms, its event stream as chunks, its errors.
//!
//! - `message.content` text blocks → `content`, `thinking` blocks and `tool_plan` →
//!   `reasoning_content`, `tool_calls` → `tool_calls`, `citations` kept as `citations`;
//! - `finish_reason` `COMPLETE`/`STOP_SEQUENCE` → `stop`, `MAX_TOKENS` → `length`, `TOOL_CALL`
//!   → `tool_calls`, `ERROR_TOXIC` → `content_filter`;
//! - `usage.tokens` (else `usage.billed_units`) → `usage`.
//!
//! Streams: `message-start` (id), `content-delta` (text or thinking), `tool-plan-delta`,
//! `tool-call-start` (id and name) / `tool-call-delta` (argument pieces), and `message-end`
//! (finish reason and usage), which is the end marker: a body that ends before it was cut.

use axum::http::header::HeaderMap;
use serde_json::Value;

use super::wire::{ChatResponse, CohereUsage, ErrorBody, StreamEvent};
use crate::providers::openai::{excerpt, retry_after};
use crate::providers::translate::{assistant_message, error_type, random_id, unix_now};
use crate::providers::{ChatStreamDecoder, ProviderError, SseEvent, StreamItem};
use crate::schema::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, Extra, FunctionCallDelta, Role,
    ToolCall, ToolCallDelta, Usage,
};

pub fn finish_reason(reason: Option<&str>, called_tools: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some("TOOL_CALL") => "tool_calls",
        Some("ERROR_TOXIC") => "content_filter",
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

pub fn usage(usage: &CohereUsage) -> Usage {
    let count = |f: fn(&super::wire::Units) -> Option<f64>| {
        usage
            .tokens
            .as_ref()
            .and_then(f)
            .or_else(|| usage.billed_units.as_ref().and_then(f))
            .map_or(0, |n| n.max(0.0) as u64)
    };
    let prompt_tokens = count(|u| u.input_tokens);
    let completion_tokens = count(|u| u.output_tokens);
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        extra: Extra::new(),
    }
}

pub fn to_completion(response: ChatResponse) -> ChatCompletion {
    let mut text = String::new();
    let mut reasoning = String::new();
    for block in &response.message.content {
        match block.kind.as_deref() {
            Some("thinking") => reasoning.push_str(block.thinking.as_deref().unwrap_or_default()),
            _ => text.push_str(block.text.as_deref().unwrap_or_default()),
        }
    }
    if let Some(plan) = &response.message.tool_plan {
        reasoning.push_str(plan);
    }
    let calls: Vec<ToolCall> = response
        .message
        .tool_calls
        .into_iter()
        .map(|call| {
            ToolCall::function(
                call.id.unwrap_or_else(|| random_id("call_")),
                call.function.name.unwrap_or_default(),
                call.function.arguments.unwrap_or_else(|| "{}".into()),
            )
        })
        .collect();
    let finish = finish_reason(response.finish_reason.as_deref(), !calls.is_empty());
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), reasoning.into());
    }
    if let Some(citations) = response.message.citations.filter(|c| !c.is_null()) {
        extra.insert("citations".into(), citations);
    }
    ChatCompletion {
        id: response.id.unwrap_or_else(|| random_id("chatcmpl-")),
        object: "chat.completion".into(),
        created: unix_now(),
        model: String::new(),
        usage: response.usage.as_ref().map(usage),
        choices: vec![Choice {
            index: 0,
            message: assistant_message(text, calls, extra),
            finish_reason: Some(finish.to_owned()),
            extra: Extra::new(),
        }],
        extra: Extra::new(),
    }
}

/// Reads Cohere's `{"message": "..."}` error body; anything else becomes a short excerpt.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.message)
        .ok()
        .or_else(|| excerpt(body));
    ProviderError::Status {
        status,
        message: message.unwrap_or_else(|| format!("upstream returned status {status}")),
        kind: error_type(status),
        code: None,
        param: None,
        retry_after: retry_after(headers),
    }
}

#[derive(Default)]
pub struct CohereStreamDecoder {
    id: String,
    created: u64,
    /// Cohere's tool-call index → ours (dense, in order of appearance).
    tool_calls: Vec<u32>,
    started: bool,
    done: bool,
}

impl CohereStreamDecoder {
    fn chunk(&self, delta: Delta, finish_reason: Option<&str>) -> StreamItem {
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

    fn start(&mut self, id: Option<String>, out: &mut Vec<StreamItem>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = id.unwrap_or_else(|| random_id("chatcmpl-"));
        self.created = unix_now();
        out.push(self.chunk(
            Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        ));
    }

    fn tool_index(&mut self, cohere_index: u32) -> u32 {
        match self.tool_calls.iter().position(|i| *i == cohere_index) {
            Some(position) => position as u32,
            None => {
                self.tool_calls.push(cohere_index);
                (self.tool_calls.len() - 1) as u32
            }
        }
    }

    fn reasoning(&self, text: String) -> StreamItem {
        let mut extra = Extra::new();
        extra.insert("reasoning_content".into(), Value::from(text));
        self.chunk(
            Delta {
                extra,
                ..Delta::default()
            },
            None,
        )
    }
}

impl ChatStreamDecoder for CohereStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        let data = event.data.trim();
        if data.is_empty() || self.done {
            return Ok(());
        }
        let parsed: StreamEvent = serde_json::from_str(data)
            .map_err(|err| ProviderError::InvalidResponse(format!("cohere stream event: {err}")))?;
        let message = parsed.delta.as_ref().and_then(|d| d.message.as_ref());
        match parsed.kind.as_str() {
            "message-start" => self.start(parsed.id, out),
            "content-delta" => {
                self.start(None, out);
                if let Some(block) = message.and_then(|m| m.content.as_ref()) {
                    if let Some(thinking) = block.thinking.clone().filter(|t| !t.is_empty()) {
                        out.push(self.reasoning(thinking));
                    }
                    if let Some(text) = block.text.clone().filter(|t| !t.is_empty()) {
                        out.push(self.chunk(
                            Delta {
                                content: Some(text),
                                ..Delta::default()
                            },
                            None,
                        ));
                    }
                }
            }
            "tool-plan-delta" => {
                self.start(None, out);
                if let Some(plan) = message.and_then(|m| m.tool_plan.clone()) {
                    out.push(self.reasoning(plan));
                }
            }
            "tool-call-start" | "tool-call-delta" => {
                self.start(None, out);
                let starting = parsed.kind == "tool-call-start";
                let index = self.tool_index(parsed.index.unwrap_or(0));
                let call = message.and_then(|m| m.tool_calls.as_ref());
                let piece = ToolCallDelta {
                    index,
                    id: if starting {
                        Some(
                            call.and_then(|c| c.id.clone())
                                .unwrap_or_else(|| random_id("call_")),
                        )
                    } else {
                        None
                    },
                    kind: starting.then(|| "function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: if starting {
                            call.and_then(|c| c.function.name.clone())
                        } else {
                            None
                        },
                        arguments: call.and_then(|c| c.function.arguments.clone()),
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                };
                out.push(self.chunk(
                    Delta {
                        tool_calls: Some(vec![piece]),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            "message-end" => {
                self.start(None, out);
                self.done = true;
                let delta = parsed.delta.unwrap_or_default();
                let finish =
                    finish_reason(delta.finish_reason.as_deref(), !self.tool_calls.is_empty());
                out.push(self.chunk(Delta::default(), Some(finish)));
                if let Some(reported) = &delta.usage {
                    out.push(StreamItem::Chunk(ChatChunk {
                        id: self.id.clone(),
                        object: "chat.completion.chunk".into(),
                        created: self.created,
                        model: String::new(),
                        choices: Vec::new(),
                        usage: Some(usage(reported)),
                        extra: Extra::new(),
                    }));
                }
                out.push(StreamItem::Done);
            }
            // content-start/-end, tool-call-end, citation-start/-end, debug: nothing to say.
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        if self.done {
            Ok(())
        } else {
            Err(ProviderError::InvalidResponse(
                "the Cohere stream ended before `message-end`".into(),
            ))
        }
    }
}
