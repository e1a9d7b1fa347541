//! Anthropic's Messages API: `POST /v1/messages` (whole or streamed) and
//! `POST /v1/messages/count_tokens`, with Anthropic's headers, event sequence and error shape.
//!
//! Like Anthropic, the mock refuses a request without `anthropic-version` (400) or without a key
//! (`x-api-key` or `authorization`, 401), and without `max_tokens` or `messages` (400). Faults
//! (`fail_next`, `error_rate`, `hang`, `latency_ms`, `chunk_delay_ms`,
//! `fail_mid_stream_after`) apply as on the OpenAI endpoints; injected errors use Anthropic's
//! shape and types (`overloaded_error` for 529, `rate_limit_error` for 429 ...).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::RuntimeConfig;
use crate::error::ApiError;
use crate::faults;
use crate::openai::{finish, sse_response, ApiRequest};
use crate::state::{Admission, AppState};
use crate::tokens;
use crate::tools::{self, Call, Choice, Offered};

const DEFAULT_MODEL: &str = "mock-claude";

/// Anthropic's error type for a status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An [`ApiError`] in Anthropic's shape: `{"type":"error","error":{"type","message"},"request_id"}`.
fn error_response(error: &ApiError, admission: &Admission) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": error_type(error.status()), "message": error.message()},
        "request_id": format!("req_mock_{}", admission.id),
    });
    let mut response = (error.status(), Json(body)).into_response();
    error.add_retry_after(&mut response);
    response
}

#[derive(Deserialize)]
struct MessagesRequest {
    #[serde(default)]
    model: Option<String>,
    /// Vertex AI's version field (Anthropic's API takes it as a header).
    #[serde(default)]
    anthropic_version: Option<String>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<ToolChoice>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
}

#[derive(Deserialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
}

/// Characters of text: strings, the `text` of blocks, and the content of tool results.
fn text_chars(value: &Value) -> usize {
    match value {
        Value::String(text) => text.chars().count(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(map) => {
            map.get("text").map_or(0, text_chars) + map.get("content").map_or(0, text_chars)
        }
        _ => 0,
    }
}

fn is_tool_result_turn(message: &Message) -> bool {
    message.role == "user"
        && message.content.as_array().is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        })
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
struct MessageBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Value>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: Usage,
}

/// Checks the headers Anthropic requires.
fn check_headers(request: &ApiRequest) -> Result<(), ApiError> {
    let headers = request.headers();
    if !headers.contains_key("x-api-key") && !headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "x-api-key header is required",
        ));
    }
    if !headers.contains_key("anthropic-version") {
        return Err(ApiError::bad_request(
            "anthropic-version: header is required",
            None,
        ));
    }
    Ok(())
}

/// `POST /v1/messages`.
pub async fn messages(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let response = match answer(&state, &admission, &request, None).await {
        Ok(response) => response,
        Err(error) => error_response(&error, &admission),
    };
    finish(&state, &admission, response)
}

/// Vertex AI's `rawPredict`/`streamRawPredict` for `model` (its caller checked the bearer
/// token): the body must carry `anthropic_version: vertex-2023-10-16` and no `model`.
pub async fn vertex_raw_predict(
    state: &AppState,
    admission: &Admission,
    request: &ApiRequest,
    model: &str,
) -> Response {
    match answer(state, admission, request, Some(model)).await {
        Ok(response) => response,
        Err(error) => error_response(&error, admission),
    }
}

async fn answer(
    state: &AppState,
    admission: &Admission,
    request: &ApiRequest,
    vertex_model: Option<&str>,
) -> Result<Response, ApiError> {
    let body = request.body()?;
    if vertex_model.is_none() {
        check_headers(request)?;
    }
    let config = faults::gate(state).await?;
    let parsed: MessagesRequest = crate::openai::parse_body(body)?;
    if let Some(model) = vertex_model {
        if parsed.anthropic_version.as_deref() != Some("vertex-2023-10-16") {
            return Err(ApiError::bad_request(
                "anthropic_version: Field required (Vertex AI takes `vertex-2023-10-16` in the body)",
                Some("anthropic_version"),
            ));
        }
        if parsed.model.is_some() {
            return Err(ApiError::bad_request(
                "model: Extra inputs are not permitted (on Vertex AI the model is in the URL)",
                Some("model"),
            ));
        }
        return answer_parsed(state, admission, parsed, model.to_owned(), &config);
    }
    let model = parsed
        .model
        .clone()
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    answer_parsed(state, admission, parsed, model, &config)
}

fn answer_parsed(
    state: &AppState,
    admission: &Admission,
    parsed: MessagesRequest,
    model: String,
    config: &std::sync::Arc<crate::config::RuntimeConfig>,
) -> Result<Response, ApiError> {
    let messages = parsed
        .messages
        .ok_or_else(|| ApiError::bad_request("messages: Field required", Some("messages")))?;
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages: at least one message is required",
            Some("messages"),
        ));
    }
    if parsed.max_tokens.is_none() {
        return Err(ApiError::bad_request(
            "max_tokens: Field required",
            Some("max_tokens"),
        ));
    }
    state.note_model(&model);
    let chars = parsed.system.as_ref().map_or(0, text_chars)
        + messages
            .iter()
            .map(|m| text_chars(&m.content))
            .sum::<usize>();
    let input_tokens = tokens::prompt_tokens(chars);
    let offered: Vec<Offered<'_>> = parsed
        .tools
        .iter()
        .flatten()
        .filter(|t| matches!(t.kind.as_deref(), None | Some("custom")))
        .map(|t| Offered {
            name: &t.name,
            schema: t.input_schema.as_ref(),
        })
        .collect();
    let choice = match &parsed.tool_choice {
        Some(ToolChoice { kind, .. }) if kind == "none" => Choice::None,
        Some(ToolChoice {
            kind,
            name: Some(name),
        }) if kind == "tool" => Choice::Named(name),
        _ => Choice::Any,
    };
    let call = tools::plan(
        &offered,
        choice,
        messages.last().is_some_and(is_tool_result_turn),
    );
    let id = format!("msg_mock_{}", admission.id);
    if parsed.stream == Some(true) {
        let events = stream_events(&id, &model, config, call.as_ref(), input_tokens);
        return Ok(sse_response(state, admission, config, events.into_iter()));
    }
    let (content, stop_reason, output_tokens) = match &call {
        Some(call) => (
            vec![
                json!({"type": "tool_use", "id": tool_id(admission), "name": call.name, "input": call.arguments}),
            ],
            "tool_use",
            tool_tokens(call),
        ),
        None => (
            vec![json!({"type": "text", "text": config.reply})],
            "end_turn",
            tokens::count_words(&config.reply),
        ),
    };
    Ok(Json(MessageBody {
        id: &id,
        kind: "message",
        role: "assistant",
        model: &model,
        content,
        stop_reason: Some(stop_reason),
        stop_sequence: None,
        usage: Usage {
            input_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens,
        },
    })
    .into_response())
}

fn tool_id(admission: &Admission) -> String {
    format!("toolu_mock_{}", admission.id)
}

fn tool_tokens(call: &Call) -> u64 {
    tokens::estimate_tokens(call.arguments.to_string().len()).max(1)
}

fn event(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// Anthropic's sequence: `message_start`, `content_block_start`, `ping`, the deltas (one per
/// word, or the tool input in two pieces), `content_block_stop`, `message_delta` with the stop
/// reason and output tokens, `message_stop`.
fn stream_events(
    id: &str,
    model: &str,
    config: &Arc<RuntimeConfig>,
    call: Option<&Call>,
    input_tokens: u64,
) -> Vec<Bytes> {
    let mut events = vec![event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1}
        }}),
    )];
    let (stop_reason, output_tokens) = match call {
        Some(call) => {
            let tool_id = id.replace("msg_mock_", "toolu_mock_");
            events.push(event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "tool_use", "id": tool_id, "name": call.name, "input": {}}}),
            ));
            events.push(event("ping", &json!({"type": "ping"})));
            let (first, second) = tools::split_arguments(&call.arguments);
            for piece in [first, second] {
                events.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
            ("tool_use", tool_tokens(call))
        }
        None => {
            events.push(event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}),
            ));
            events.push(event("ping", &json!({"type": "ping"})));
            for piece in tokens::pieces(&config.reply) {
                events.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": piece}}),
                ));
            }
            ("end_turn", tokens::count_words(&config.reply))
        }
    };
    events.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": output_tokens}}),
    ));
    events.push(event("message_stop", &json!({"type": "message_stop"})));
    events
}

/// `POST /v1/messages/count_tokens`: the same 4-characters-a-token estimate as `usage`.
pub async fn count_tokens(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let result = async {
        let body = request.body()?;
        check_headers(&request)?;
        faults::gate(&state).await?;
        let parsed: MessagesRequest = crate::openai::parse_body(body)?;
        let messages = parsed
            .messages
            .ok_or_else(|| ApiError::bad_request("messages: Field required", Some("messages")))?;
        let chars = parsed.system.as_ref().map_or(0, text_chars)
            + messages
                .iter()
                .map(|m| text_chars(&m.content))
                .sum::<usize>();
        Ok::<_, ApiError>(
            Json(json!({"input_tokens": tokens::prompt_tokens(chars)})).into_response(),
        )
    }
    .await;
    let response = result.unwrap_or_else(|error| error_response(&error, &admission));
    finish(&state, &admission, response)
}
