//! OpenAI's Responses API: `POST /v1/responses` (and `/responses`, and Azure OpenAI's
//! `/openai/responses?api-version=...`), whole or streamed, with OpenAI's event sequence.
//!
//! Like OpenAI, the mock refuses a request without `model` or `input` (unless it names a
//! `previous_response_id`, which the mock accepts as is: it keeps no conversations). Tool calls
//! follow the same rule as every other format (`tools.rs`): offered function tools, not
//! forbidden, and the last input item is not a `function_call_output` → the mock calls one.
//! Faults apply as on the chat endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::RuntimeConfig;
use crate::error::ApiError;
use crate::faults;
use crate::openai::{finish, parse_body, sse_response, unix_now, ApiRequest};
use crate::state::{Admission, AppState};
use crate::tokens;
use crate::tools::{self, Call, Choice, Offered};

const DEFAULT_MODEL: &str = "mock-gpt";

#[derive(Deserialize)]
struct ResponsesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

/// Characters of text: strings, `text` of parts, `content` of messages, `output` of tool
/// results.
fn text_chars(value: &Value) -> usize {
    match value {
        Value::String(text) => text.chars().count(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(map) => ["text", "content", "output"]
            .iter()
            .map(|k| map.get(*k).map_or(0, text_chars))
            .sum(),
        _ => 0,
    }
}

/// `POST /v1/responses`.
pub async fn responses(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let response = answer(&state, &admission, &request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    finish(&state, &admission, response)
}

async fn answer(
    state: &AppState,
    admission: &Admission,
    request: &ApiRequest,
) -> Result<Response, ApiError> {
    let body = request.body()?;
    let config = faults::gate(state).await?;
    let parsed: ResponsesRequest = parse_body(body)?;
    let model = parsed
        .model
        .clone()
        .ok_or_else(|| ApiError::missing("model"))?;
    if parsed.input.is_none() && parsed.previous_response_id.is_none() {
        return Err(ApiError::missing("input"));
    }
    let model = if model.is_empty() {
        DEFAULT_MODEL.to_owned()
    } else {
        model
    };
    state.note_model(&model);
    let input = parsed.input.clone().unwrap_or(Value::Null);
    let chars = text_chars(&input) + parsed.instructions.as_deref().map_or(0, str::len);
    let input_tokens = tokens::prompt_tokens(chars);
    let offered: Vec<Offered<'_>> = parsed
        .tools
        .iter()
        .flatten()
        .filter(|t| t.kind == "function")
        .filter_map(|t| {
            Some(Offered {
                name: t.name.as_deref()?,
                schema: t.parameters.as_ref(),
            })
        })
        .collect();
    let choice = match &parsed.tool_choice {
        Some(Value::String(mode)) if mode == "none" => Choice::None,
        Some(Value::Object(choice)) => match choice.get("name").and_then(Value::as_str) {
            Some(name) => Choice::Named(name),
            None => Choice::Any,
        },
        _ => Choice::Any,
    };
    let answering = input
        .as_array()
        .and_then(|items| items.last())
        .and_then(|item| item.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output");
    let call = tools::plan(&offered, choice, answering);
    let ids = Ids::new(admission);
    let (output, output_tokens) = match &call {
        Some(call) => (
            function_call_item(&ids, call, "completed"),
            tokens::estimate_tokens(call.arguments.to_string().len()).max(1),
        ),
        None => (
            message_item(&ids, &config.reply, "completed"),
            tokens::count_words(&config.reply),
        ),
    };
    let usage = json!({
        "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    });
    let done = response_object(&ids, &model, &parsed, "completed", vec![output], usage);
    if parsed.stream == Some(true) {
        let events = stream_events(&ids, &model, &parsed, &config, call.as_ref(), done);
        return Ok(sse_response(state, admission, &config, events.into_iter()));
    }
    Ok(Json(done).into_response())
}

struct Ids {
    response: String,
    message: String,
    call: String,
    call_id: String,
    created_at: u64,
}

impl Ids {
    fn new(admission: &Admission) -> Self {
        Ids {
            response: format!("resp_mock_{}", admission.id),
            message: format!("msg_mock_{}", admission.id),
            call: format!("fc_mock_{}", admission.id),
            call_id: format!("call_mock_{}", admission.id),
            created_at: unix_now(),
        }
    }
}

fn message_item(ids: &Ids, text: &str, status: &str) -> Value {
    let content = if status == "completed" {
        vec![json!({"type": "output_text", "text": text, "annotations": []})]
    } else {
        Vec::new()
    };
    json!({"type": "message", "id": ids.message, "status": status, "role": "assistant",
           "content": content})
}

fn function_call_item(ids: &Ids, call: &Call, status: &str) -> Value {
    let arguments = if status == "completed" {
        call.arguments.to_string()
    } else {
        String::new()
    };
    json!({"type": "function_call", "id": ids.call, "call_id": ids.call_id, "name": call.name,
           "arguments": arguments, "status": status})
}

fn response_object(
    ids: &Ids,
    model: &str,
    request: &ResponsesRequest,
    status: &str,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": ids.response, "object": "response", "created_at": ids.created_at,
        "status": status, "background": false, "error": null, "incomplete_details": null,
        "instructions": request.instructions, "max_output_tokens": null, "model": model,
        "output": output, "parallel_tool_calls": true,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": null, "metadata": {},
    })
}

/// OpenAI's sequence: `response.created`, `response.in_progress`, the item's `added`, its
/// deltas (one per word, or the arguments in two pieces), its `done` events,
/// `response.completed`; each with `sequence_number`.
fn stream_events(
    ids: &Ids,
    model: &str,
    request: &ResponsesRequest,
    config: &Arc<RuntimeConfig>,
    call: Option<&Call>,
    done: Value,
) -> Vec<Bytes> {
    let mut events = Vec::new();
    let mut push = |mut data: Value| {
        let kind = data["type"].as_str().unwrap_or_default().to_owned();
        data["sequence_number"] = events.len().into();
        events.push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    };
    let started = response_object(ids, model, request, "in_progress", Vec::new(), Value::Null);
    push(json!({"type": "response.created", "response": started}));
    push(json!({"type": "response.in_progress", "response": started}));
    match call {
        Some(call) => {
            push(
                json!({"type": "response.output_item.added", "output_index": 0,
                        "item": function_call_item(ids, call, "in_progress")}),
            );
            let (first, second) = tools::split_arguments(&call.arguments);
            for piece in [first, second] {
                push(json!({"type": "response.function_call_arguments.delta",
                            "item_id": ids.call, "output_index": 0, "delta": piece}));
            }
            push(
                json!({"type": "response.function_call_arguments.done", "item_id": ids.call,
                        "output_index": 0, "arguments": call.arguments.to_string()}),
            );
            push(
                json!({"type": "response.output_item.done", "output_index": 0,
                        "item": function_call_item(ids, call, "completed")}),
            );
        }
        None => {
            push(
                json!({"type": "response.output_item.added", "output_index": 0,
                        "item": message_item(ids, "", "in_progress")}),
            );
            push(
                json!({"type": "response.content_part.added", "item_id": ids.message,
                        "output_index": 0, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
            for piece in tokens::pieces(&config.reply) {
                push(
                    json!({"type": "response.output_text.delta", "item_id": ids.message,
                            "output_index": 0, "content_index": 0, "delta": piece,
                            "logprobs": []}),
                );
            }
            push(
                json!({"type": "response.output_text.done", "item_id": ids.message,
                        "output_index": 0, "content_index": 0, "text": config.reply,
                        "logprobs": []}),
            );
            push(
                json!({"type": "response.content_part.done", "item_id": ids.message,
                        "output_index": 0, "content_index": 0,
                        "part": {"type": "output_text", "text": config.reply, "annotations": []}}),
            );
            push(
                json!({"type": "response.output_item.done", "output_index": 0,
                        "item": message_item(ids, &config.reply, "completed")}),
            );
        }
    }
    push(json!({"type": "response.completed", "response": done}));
    events
}
