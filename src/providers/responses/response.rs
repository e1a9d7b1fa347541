//! A chat answer as a Response object, and usage both ways (a native Response's usage is
//! counted as the gateway counts chat usage).

use serde_json::{json, Value};

use super::wire::{
    IncompleteDetails, InputTokensDetails, OutputContent, OutputItem, OutputTokensDetails,
    ResponseObject, ResponseUsage,
};
use crate::schema::{ChatCompletion, Usage};

/// A new id with OpenAI's prefix (`resp_`, `msg_`, `fc_`): 48 hex digits, time-ordered like the
/// gateway's request ids, so ids of one instance never collide.
pub fn new_id(prefix: &str) -> String {
    let request_id = crate::pipeline::new_request_id();
    let mut id = String::with_capacity(prefix.len() + 49);
    id.push_str(prefix);
    id.push('_');
    id.push_str(request_id.to_str().unwrap_or("0"));
    id.push_str(&format!("{:016x}", fastrand::u64(..)));
    id
}

/// `status` and `incomplete_details` for a chat `finish_reason`: cut by the output cap is
/// `incomplete` (`max_output_tokens`), a content filter too; anything else is `completed`.
pub fn status_of(finish_reason: Option<&str>) -> (&'static str, Option<IncompleteDetails>) {
    match finish_reason {
        Some("length") => (
            "incomplete",
            Some(IncompleteDetails {
                reason: "max_output_tokens".into(),
            }),
        ),
        Some("content_filter") => (
            "incomplete",
            Some(IncompleteDetails {
                reason: "content_filter".into(),
            }),
        ),
        _ => ("completed", None),
    }
}

/// Fills `response` (made by [`ResponseObject::started`]) with a chat completion's answer.
pub fn complete(response: &mut ResponseObject, completion: &ChatCompletion) {
    let choice = completion.choices.first();
    let item_status = match choice.and_then(|c| c.finish_reason.as_deref()) {
        Some("length") | Some("content_filter") => "incomplete",
        _ => "completed",
    };
    if let Some(choice) = choice {
        let message = &choice.message;
        let text = message.content.as_deref().unwrap_or_default();
        let refusal = message.extra.get("refusal").and_then(Value::as_str);
        if !text.is_empty() || refusal.is_some() {
            let mut content = Vec::new();
            if !text.is_empty() {
                content.push(OutputContent::OutputText {
                    text: text.to_owned(),
                    annotations: Vec::new(),
                });
            }
            if let Some(refusal) = refusal {
                content.push(OutputContent::Refusal {
                    refusal: refusal.to_owned(),
                });
            }
            response.output.push(OutputItem::Message {
                id: new_id("msg"),
                status: item_status.into(),
                role: "assistant".into(),
                content,
            });
        }
        for call in message.tool_calls.iter().flatten() {
            response.output.push(OutputItem::FunctionCall {
                id: new_id("fc"),
                call_id: call.id.clone(),
                name: call.function.name.clone(),
                arguments: call.function.arguments.clone(),
                status: "completed".into(),
            });
        }
    }
    let (status, incomplete) = status_of(choice.and_then(|c| c.finish_reason.as_deref()));
    response.status = status.into();
    response.incomplete_details = incomplete;
    response.usage = completion.usage.as_ref().map(usage_from_chat);
}

/// Chat usage as a Response's: cached prompt tokens and reasoning tokens carried over.
pub fn usage_from_chat(usage: &Usage) -> ResponseUsage {
    let detail = |object: &str, field: &str| {
        usage
            .extra
            .get(object)
            .and_then(|d| d.get(field))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    ResponseUsage {
        input_tokens: usage.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: detail("prompt_tokens_details", "cached_tokens"),
        },
        output_tokens: usage.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
        },
        total_tokens: if usage.total_tokens > 0 {
            usage.total_tokens
        } else {
            usage.prompt_tokens + usage.completion_tokens
        },
    }
}

/// A Response's usage (`usage.input_tokens` ...) as the gateway's, for spend and limits.
/// `None` when the value has no usage object.
pub fn usage_to_chat(usage: &Value) -> Option<Usage> {
    let usage = usage.as_object()?;
    let number = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (number("input_tokens"), number("output_tokens"));
    let mut chat = Usage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: match number("total_tokens") {
            0 => input + output,
            total => total,
        },
        extra: Default::default(),
    };
    let cached = usage
        .get("input_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if cached > 0 {
        chat.extra.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": cached}),
        );
    }
    let reasoning = usage
        .get("output_tokens_details")
        .and_then(|d| d.get("reasoning_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if reasoning > 0 {
        chat.extra.insert(
            "completion_tokens_details".into(),
            json!({"reasoning_tokens": reasoning}),
        );
    }
    Some(chat)
}
