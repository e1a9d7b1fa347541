//! A Gemini `generateContent` response as an OpenAI `chat.completion`: candidates → choices,
//! text parts → `content`, thought parts → `reasoning_content`, `functionCall` parts →
//! `tool_calls`, `finishReason` → `finish_reason` (safety blocks → `content_filter`),
//! `usageMetadata` → `usage`.

use serde_json::json;

use super::wire::{Candidate, GenerateContentResponse, Part, UsageMetadata};
use crate::providers::translate::{assistant_message, random_id, unix_now};
use crate::schema::{ChatCompletion, Choice, Extra, ResponseMessage, Role, ToolCall, Usage};

/// Gemini's `finishReason` as OpenAI's `finish_reason`. `called_tools`: the candidate contains
/// function calls (Gemini says `STOP` for those too).
pub fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if called_tools => "tool_calls",
        // STOP, and the rest (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL ...): the model stopped.
        _ => "stop",
    }
}

/// `usageMetadata` in OpenAI's terms: thinking tokens are output tokens (OpenAI counts
/// reasoning in `completion_tokens`), with the details kept under OpenAI's names.
pub fn usage(metadata: &UsageMetadata) -> Usage {
    let thoughts = metadata.thoughts_token_count.unwrap_or(0);
    let completion_tokens = metadata.candidates_token_count + thoughts;
    let mut extra = Extra::new();
    extra.insert(
        "prompt_tokens_details".into(),
        json!({ "cached_tokens": metadata.cached_content_token_count.unwrap_or(0) }),
    );
    extra.insert(
        "completion_tokens_details".into(),
        json!({ "reasoning_tokens": thoughts }),
    );
    let total = if metadata.total_token_count > 0 {
        metadata.total_token_count
    } else {
        metadata.prompt_token_count + completion_tokens
    };
    Usage {
        prompt_tokens: metadata.prompt_token_count,
        completion_tokens,
        total_tokens: total,
        extra,
    }
}

/// A function-call part as an OpenAI tool call; its thought signature rides along in
/// `extra_content.google.thought_signature`.
pub fn tool_call(part: &Part) -> Option<ToolCall> {
    let call = part.function_call.as_ref()?;
    let arguments = call
        .args
        .as_ref()
        .map_or_else(|| "{}".to_owned(), ToString::to_string);
    let mut tool_call = ToolCall::function(
        call.id.clone().unwrap_or_else(|| random_id("call_")),
        call.name.clone(),
        arguments,
    );
    if let Some(signature) = &part.thought_signature {
        tool_call.extra.insert(
            "extra_content".into(),
            json!({ "google": { "thought_signature": signature } }),
        );
    }
    Some(tool_call)
}

fn choice(position: usize, candidate: Candidate) -> Choice {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
        if let Some(call) = tool_call(part) {
            calls.push(call);
        } else if let Some(t) = &part.text {
            if part.thought == Some(true) {
                reasoning.push_str(t);
            } else {
                text.push_str(t);
            }
        }
    }
    let finish = finish_reason(
        candidate.finish_reason.as_deref().unwrap_or("STOP"),
        !calls.is_empty(),
    );
    let mut extra = Extra::new();
    if !reasoning.is_empty() {
        extra.insert("reasoning_content".into(), reasoning.into());
    }
    Choice {
        index: candidate.index.unwrap_or(position as u32),
        message: assistant_message(text, calls, extra),
        finish_reason: Some(finish.to_owned()),
        extra: Extra::new(),
    }
}

pub fn to_completion(response: GenerateContentResponse) -> ChatCompletion {
    let mut choices: Vec<Choice> = response
        .candidates
        .into_iter()
        .enumerate()
        .map(|(position, candidate)| choice(position, candidate))
        .collect();
    // A blocked prompt has no candidates: answer with an empty, filtered choice rather than
    // none, so clients that read `choices[0]` see why.
    if choices.is_empty() {
        let blocked = response
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_some();
        choices.push(Choice {
            index: 0,
            message: ResponseMessage {
                role: Role::Assistant,
                content: Some(String::new()),
                tool_calls: None,
                extra: Extra::new(),
            },
            finish_reason: Some(if blocked { "content_filter" } else { "stop" }.to_owned()),
            extra: Extra::new(),
        });
    }
    ChatCompletion {
        id: response
            .response_id
            .unwrap_or_else(|| random_id("chatcmpl-")),
        object: "chat.completion".into(),
        created: unix_now(),
        model: response.model_version.unwrap_or_default(),
        choices,
        usage: response.usage_metadata.as_ref().map(usage),
        extra: Extra::new(),
    }
}
