//! Ollama's answers in OpenAI's terms: `/api/chat` and `/api/generate` replies as a
//! `chat.completion`, their NDJSON streams as `chat.completion.chunk`s, `{"error": ...}` bodies
//! as [`ProviderError`]s.
//!
//! - `message.content` (chat) or `response` (generate) → `content`; `thinking` →
//!   `reasoning_content`;
//! - `message.tool_calls` → `tool_calls` (arguments as JSON text, an id made up when Ollama
//!   sent none);
//! - `done_reason` → `finish_reason` (`length` stays, anything else is `stop`; `tool_calls`
//!   when the answer called a tool);
//! - `prompt_eval_count`/`eval_count` → `usage`.

use axum::http::header::HeaderMap;
use serde_json::Value;

use super::wire::{ErrorBody, Reply, ToolCall as OllamaToolCall};
use crate::providers::openai::{excerpt, retry_after};
use crate::providers::translate::{assistant_message, error_type, random_id, unix_now};
use crate::providers::{ChatStreamDecoder, ProviderError, SseEvent, StreamItem};
use crate::schema::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, Extra, FunctionCallDelta, Role,
    ToolCall, ToolCallDelta, Usage,
};

/// `done_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(done_reason: Option<&str>, called_tools: bool) -> &'static str {
    match done_reason {
        _ if called_tools => "tool_calls",
        Some("length") => "length",
        // `stop`, and `load`/`unload` (a reply with no generation at all).
        _ => "stop",
    }
}

pub fn usage(reply: &Reply) -> Option<Usage> {
    if reply.prompt_eval_count.is_none() && reply.eval_count.is_none() {
        return None;
    }
    let prompt_tokens = reply.prompt_eval_count.unwrap_or(0);
    let completion_tokens = reply.eval_count.unwrap_or(0);
    Some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        extra: Extra::new(),
    })
}

pub fn tool_call(call: OllamaToolCall) -> ToolCall {
    let arguments = match call.function.arguments {
        // Some Ollama versions (and models) send the arguments as JSON text already.
        Value::String(text) => text,
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    };
    ToolCall::function(
        call.id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| random_id("call_")),
        call.function.name,
        arguments,
    )
}

/// The text, the thinking and the tool calls of one reply (chat or generate).
fn parts(reply: &mut Reply) -> (String, Option<String>, Vec<OllamaToolCall>) {
    match reply.message.take() {
        Some(message) => (
            message.content.unwrap_or_default(),
            message.thinking.filter(|t| !t.is_empty()),
            message.tool_calls,
        ),
        None => (
            reply.response.take().unwrap_or_default(),
            reply.thinking.take().filter(|t| !t.is_empty()),
            Vec::new(),
        ),
    }
}

pub fn to_completion(mut reply: Reply) -> ChatCompletion {
    let (text, thinking, calls) = parts(&mut reply);
    let calls: Vec<ToolCall> = calls.into_iter().map(tool_call).collect();
    let finish = finish_reason(reply.done_reason.as_deref(), !calls.is_empty());
    let mut extra = Extra::new();
    if let Some(thinking) = thinking {
        extra.insert("reasoning_content".into(), thinking.into());
    }
    ChatCompletion {
        id: random_id("chatcmpl-"),
        object: "chat.completion".into(),
        created: unix_now(),
        model: std::mem::take(&mut reply.model),
        usage: usage(&reply),
        choices: vec![Choice {
            index: 0,
            message: assistant_message(text, calls, extra),
            finish_reason: Some(finish.to_owned()),
            extra: Extra::new(),
        }],
        extra: Extra::new(),
    }
}

/// Reads Ollama's `{"error": "..."}` body; anything else becomes a short excerpt.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: Value::String(text),
        }) => Some(text),
        Ok(ErrorBody { error }) => error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| Some(error.to_string())),
        Err(_) => excerpt(body),
    };
    ProviderError::Status {
        status,
        message: message.unwrap_or_else(|| format!("upstream returned status {status}")),
        kind: error_type(status),
        code: None,
        param: None,
        retry_after: retry_after(headers),
    }
}

/// An NDJSON stream of replies: the text as it comes, tool calls whole (Ollama sends each call
/// complete), and on the `done` line the finish reason and the usage. A body that ends before
/// `done` was cut.
#[derive(Default)]
pub struct OllamaStreamDecoder {
    id: String,
    model: String,
    created: u64,
    tool_calls: u32,
    done: bool,
}

impl OllamaStreamDecoder {
    fn chunk(&self, delta: Delta, finish_reason: Option<&str>) -> StreamItem {
        StreamItem::Chunk(ChatChunk {
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
        })
    }
}

impl ChatStreamDecoder for OllamaStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if self.done {
            // Nothing may follow the `done` line.
            return Ok(());
        }
        if data.starts_with("{\"error\"") {
            // The status was 200 when the stream opened; the failure came later.
            return Err(parse_error(500, &HeaderMap::new(), data.as_bytes()));
        }
        let mut reply: Reply = serde_json::from_str(data)
            .map_err(|err| ProviderError::InvalidResponse(format!("ollama stream line: {err}")))?;
        if self.id.is_empty() {
            self.id = random_id("chatcmpl-");
            self.model.clone_from(&reply.model);
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
        let (text, thinking, calls) = parts(&mut reply);
        if let Some(thinking) = thinking {
            let mut extra = Extra::new();
            extra.insert("reasoning_content".into(), thinking.into());
            out.push(self.chunk(
                Delta {
                    extra,
                    ..Delta::default()
                },
                None,
            ));
        }
        if !text.is_empty() {
            out.push(self.chunk(
                Delta {
                    content: Some(text),
                    ..Delta::default()
                },
                None,
            ));
        }
        for call in calls {
            let call = tool_call(call);
            let index = self.tool_calls;
            self.tool_calls += 1;
            out.push(self.chunk(
                Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index,
                        id: Some(call.id),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(call.function.name),
                            arguments: Some(call.function.arguments),
                            extra: Extra::new(),
                        }),
                        extra: Extra::new(),
                    }]),
                    ..Delta::default()
                },
                None,
            ));
        }
        if reply.done == Some(true) {
            self.done = true;
            let finish = finish_reason(reply.done_reason.as_deref(), self.tool_calls > 0);
            out.push(self.chunk(Delta::default(), Some(finish)));
            if let Some(usage) = usage(&reply) {
                out.push(StreamItem::Chunk(ChatChunk {
                    id: self.id.clone(),
                    object: "chat.completion.chunk".into(),
                    created: self.created,
                    model: self.model.clone(),
                    choices: Vec::new(),
                    usage: Some(usage),
                    extra: Extra::new(),
                }));
            }
            out.push(StreamItem::Done);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        if self.done {
            Ok(())
        } else {
            Err(ProviderError::InvalidResponse(
                "the Ollama stream ended before its `done` line".into(),
            ))
        }
    }
}
