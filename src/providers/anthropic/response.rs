//! Responses, both ways: an Anthropic `message` as an OpenAI `chat.completion`, and an OpenAI
//! `chat.completion` as an Anthropic `message`; plus the stop reasons and token counts.

use serde_json::{json, Value};

use super::request::JSON_TOOL_NAME;
use super::wire::{ContentBlock, MessageResponse, Role as ARole, Usage as AUsage};
use crate::providers::translate::unix_now;
use crate::schema::{ChatCompletion, Choice, Extra, ResponseMessage, Role, ToolCall, Usage};

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer: the turn ended normally.
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage in OpenAI's terms. OpenAI's `prompt_tokens` include cached tokens, while
/// Anthropic's `input_tokens` exclude both cache reads and cache writes, so those are added
/// back; the cache counts are kept in `prompt_tokens_details.cached_tokens` (reads, OpenAI's
/// name) and under Anthropic's own names (LiteLLM does the same), so cost can be computed.
pub fn usage_to_openai(usage: &AUsage) -> Usage {
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
    let cache_creation = usage.cache_creation_input_tokens.unwrap_or(0);
    let prompt_tokens = usage.input_tokens + cache_read + cache_creation;
    let mut extra = Extra::new();
    extra.insert(
        "prompt_tokens_details".into(),
        json!({ "cached_tokens": cache_read }),
    );
    if let Some(tokens) = usage.cache_creation_input_tokens {
        extra.insert("cache_creation_input_tokens".into(), tokens.into());
    }
    if let Some(tokens) = usage.cache_read_input_tokens {
        extra.insert("cache_read_input_tokens".into(), tokens.into());
    }
    Usage {
        prompt_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: prompt_tokens + usage.output_tokens,
        extra,
    }
}

fn extra_u64(extra: &Extra, key: &str) -> Option<u64> {
    extra.get(key).and_then(Value::as_u64)
}

/// OpenAI usage in Anthropic's terms (the inverse of [`usage_to_openai`]).
pub fn usage_to_anthropic(usage: &Usage) -> AUsage {
    let cache_read = extra_u64(&usage.extra, "cache_read_input_tokens").or_else(|| {
        usage
            .extra
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
    });
    let cache_creation = extra_u64(&usage.extra, "cache_creation_input_tokens");
    let input_tokens = usage
        .prompt_tokens
        .saturating_sub(cache_read.unwrap_or(0))
        .saturating_sub(cache_creation.unwrap_or(0));
    AUsage {
        input_tokens,
        cache_creation_input_tokens: Some(cache_creation.unwrap_or(0)),
        cache_read_input_tokens: Some(cache_read.unwrap_or(0)),
        output_tokens: usage.completion_tokens,
        extra: Extra::new(),
    }
}

/// An Anthropic `message` as an OpenAI `chat.completion`.
///
/// Text blocks become `content` (concatenated), `tool_use` blocks `tool_calls` (their input as
/// JSON text), the `response_format` tool's input the content itself. Thinking is returned as
/// `reasoning_content`, and the thinking blocks verbatim as `thinking_blocks` so a client can
/// send them back with its next turn (LiteLLM's convention).
pub fn to_completion(message: MessageResponse) -> ChatCompletion {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut calls = Vec::new();
    let mut json_answer = false;
    for block in message.content {
        match block {
            ContentBlock::Text { text: t, .. } => text.push_str(&t),
            ContentBlock::ToolUse { name, input, .. } if name == JSON_TOOL_NAME => {
                text.push_str(&input.to_string());
                json_answer = true;
            }
            ContentBlock::ToolUse {
                id, name, input, ..
            } => {
                calls.push(ToolCall::function(id, name, input.to_string()));
            }
            block @ (ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. }) => {
                if let ContentBlock::Thinking { thinking, .. } = &block {
                    reasoning.push_str(thinking);
                }
                if let Ok(value) = serde_json::to_value(&block) {
                    thinking_blocks.push(value);
                }
            }
            // Server tool blocks (web search ...) have no OpenAI form.
            _ => {}
        }
    }
    let finish = match message.stop_reason.as_deref() {
        Some("tool_use") if json_answer && calls.is_empty() => "stop",
        Some(reason) => finish_reason(reason),
        None => "stop",
    };
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), reasoning.into());
    }
    if !thinking_blocks.is_empty() {
        extra.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(text)
    };
    ChatCompletion {
        id: message.id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: message.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: Role::Assistant,
                content,
                tool_calls: (!calls.is_empty()).then_some(calls),
                extra,
            },
            finish_reason: Some(finish.to_owned()),
            extra: Extra::new(),
        }],
        usage: Some(usage_to_openai(&message.usage)),
        extra: Extra::new(),
    }
}

/// Tool-call arguments as the object Anthropic clients expect. Arguments that are not a JSON
/// object (a model's malformed output) are kept as a string under `_raw_arguments` rather than
/// lost.
pub fn arguments_to_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({ "_raw_arguments": arguments }),
    }
}

/// An OpenAI `chat.completion` (first choice) as an Anthropic `message`, under `model`.
pub fn to_message(completion: ChatCompletion, model: &str) -> MessageResponse {
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(choice) = completion.choices.into_iter().next() {
        finish = choice.finish_reason;
        let message = choice.message;
        if let Some(text) = message.content.filter(|t| !t.is_empty()) {
            content.push(ContentBlock::text(text));
        }
        for call in message.tool_calls.into_iter().flatten() {
            content.push(ContentBlock::ToolUse {
                input: arguments_to_input(&call.function.arguments),
                id: call.id,
                name: call.function.name,
                extra: Extra::new(),
            });
        }
    }
    MessageResponse {
        id: completion.id,
        kind: "message".into(),
        role: ARole::Assistant,
        model: model.to_owned(),
        content,
        stop_reason: Some(stop_reason(finish.as_deref()).to_owned()),
        stop_sequence: None,
        usage: completion
            .usage
            .as_ref()
            .map(usage_to_anthropic)
            .unwrap_or_default(),
        extra: Extra::new(),
    }
}
