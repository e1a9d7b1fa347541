//! A Converse response as an OpenAI `chat.completion`: text blocks → `content`, `toolUse`
//! blocks → `tool_calls`, `reasoningContent` → `reasoning_content`, `stopReason` →
//! `finish_reason`, `usage` → `usage` (cache reads and writes counted in `prompt_tokens`, as
//! OpenAI counts cached tokens).

use serde_json::json;

use super::wire::{ConverseResponse, TokenUsage};
use crate::providers::translate::{assistant_message, random_id, unix_now};
use crate::schema::{ChatCompletion, Choice, Extra, ToolCall, Usage};

/// Converse's `stopReason` as OpenAI's `finish_reason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, and anything new: the model stopped.
        _ => "stop",
    }
}

pub fn usage(usage: &TokenUsage) -> Usage {
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
    let cache_write = usage.cache_write_input_tokens.unwrap_or(0);
    let prompt_tokens = usage.input_tokens + cache_read + cache_write;
    let mut extra = Extra::new();
    extra.insert(
        "prompt_tokens_details".into(),
        json!({ "cached_tokens": cache_read }),
    );
    if let Some(tokens) = usage.cache_read_input_tokens {
        extra.insert("cache_read_input_tokens".into(), tokens.into());
    }
    if let Some(tokens) = usage.cache_write_input_tokens {
        extra.insert("cache_creation_input_tokens".into(), tokens.into());
    }
    Usage {
        prompt_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: prompt_tokens + usage.output_tokens,
        extra,
    }
}

pub fn to_completion(response: ConverseResponse) -> ChatCompletion {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in response
        .output
        .message
        .iter()
        .flat_map(|m| m.content.iter())
    {
        if let Some(t) = &block.text {
            text.push_str(t);
        } else if let Some(tool) = &block.tool_use {
            calls.push(ToolCall::function(
                tool.tool_use_id.clone(),
                tool.name.clone(),
                tool.input.to_string(),
            ));
        } else if let Some(r) = block
            .reasoning_content
            .as_ref()
            .and_then(|r| r.reasoning_text.as_ref())
        {
            reasoning.push_str(&r.text);
        }
    }
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), reasoning.into());
    }
    let finish = finish_reason(response.stop_reason.as_deref().unwrap_or("end_turn"));
    ChatCompletion {
        id: random_id("chatcmpl-"),
        object: "chat.completion".into(),
        created: unix_now(),
        model: String::new(),
        choices: vec![Choice {
            index: 0,
            message: assistant_message(text, calls, extra),
            finish_reason: Some(finish.to_owned()),
            extra: Extra::new(),
        }],
        usage: response.usage.as_ref().map(usage),
        extra: Extra::new(),
    }
}
