//! AWS Bedrock's Converse API: `POST /model/{modelId}/converse` (JSON) and
//! `POST /model/{modelId}/converse-stream` (AWS's binary event-stream framing:
//! `messageStart`, `contentBlockStart`/`Delta`/`Stop`, `messageStop`, `metadata`), and
//! `POST /model/{modelId}/invoke` for the Titan and Cohere embedding models.
//!
//! Like Bedrock, the mock refuses a request that is not signed (no `Authorization:
//! AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` with an `x-amz-date`;
//! a Bedrock API key, `Authorization: Bearer ...`, is accepted too): 403
//! `MissingAuthenticationTokenException`. It does not check the signature itself (it does not
//! know the secret); the gateway's tests recompute it from the request log. Without `messages`
//! it answers 400 `ValidationException`. Errors carry `x-amzn-ErrorType` and `{"message"}`,
//! injected ones too (429 `ThrottlingException`, 503 `ServiceUnavailableException` ...). A
//! stream cut by `fail_mid_stream_after` never sends `messageStop`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::embedding::{self, EmbeddingItem};
use crate::error::ApiError;
use crate::faults;
use crate::openai::{finish, sse_response, ApiRequest};
use crate::state::{Admission, AppState};
use crate::tokens;
use crate::tools::{self, Call, Choice, Offered};

/// Bedrock's exception name for an HTTP status.
pub fn exception_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500..=599 => "InternalServerException",
        _ => "ValidationException",
    }
}

fn error_response(error: &ApiError, name: Option<&str>) -> Response {
    let name = name.unwrap_or_else(|| exception_name(error.status()));
    let mut response = (error.status(), Json(json!({"message": error.message()}))).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    error.add_retry_after(&mut response);
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest {
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Vec<Value>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    #[serde(default)]
    tools: Vec<ToolEntry>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolEntry {
    tool_spec: ToolSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec {
    name: String,
    #[serde(default)]
    input_schema: Option<Value>,
}

fn text_chars(blocks: &[Value]) -> usize {
    blocks
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .map(|t| t.chars().count())
        .sum()
}

/// A SigV4 `Authorization` header as AWS parses it, or a Bedrock API key.
fn is_signed(request: &ApiRequest) -> bool {
    let headers = request.headers();
    let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if authorization.starts_with("Bearer ") && authorization.len() > 7 {
        return true;
    }
    authorization.starts_with("AWS4-HMAC-SHA256 Credential=")
        && authorization.contains("/bedrock/aws4_request")
        && authorization.contains("SignedHeaders=")
        && authorization.contains("Signature=")
        && headers.contains_key("x-amz-date")
}

/// `POST /model/{modelId}/{converse|converse-stream}`.
pub async fn converse(
    State(state): State<AppState>,
    target: Result<Path<(String, String)>, PathRejection>,
    request: ApiRequest,
) -> Response {
    let admission = request.admit(&state);
    let response = match answer(&state, &admission, target, &request).await {
        Ok(response) => response,
        Err((error, name)) => error_response(&error, name),
    };
    finish(&state, &admission, response)
}

type Failure = (ApiError, Option<&'static str>);

async fn answer(
    state: &AppState,
    admission: &Admission,
    target: Result<Path<(String, String)>, PathRejection>,
    request: &ApiRequest,
) -> Result<Response, Failure> {
    let body = request.body().map_err(|e| (e, None))?;
    let Path((model, method)) =
        target.map_err(|r| (ApiError::bad_request(r.body_text(), None), None))?;
    let stream = match method.as_str() {
        "converse" => false,
        "converse-stream" => true,
        "invoke" => {
            if !is_signed(request) {
                return Err((
                    ApiError::new(StatusCode::FORBIDDEN, "Missing Authentication Token"),
                    Some("MissingAuthenticationTokenException"),
                ));
            }
            faults::gate(state).await.map_err(|e| (e, None))?;
            return invoke_embeddings(state, &model, body);
        }
        other => {
            return Err((
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Operation {other} is not served by the mock upstream"),
                ),
                Some("UnknownOperationException"),
            ))
        }
    };
    if !is_signed(request) {
        return Err((
            ApiError::new(StatusCode::FORBIDDEN, "Missing Authentication Token"),
            Some("MissingAuthenticationTokenException"),
        ));
    }
    let config = faults::gate(state).await.map_err(|e| (e, None))?;
    let parsed: ConverseRequest = crate::openai::parse_body(body).map_err(|e| (e, None))?;
    let messages = parsed.messages.filter(|m| !m.is_empty()).ok_or_else(|| {
        (
            ApiError::bad_request(
                "1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null",
                None,
            ),
            None,
        )
    })?;
    state.note_model(&model);
    let chars = text_chars(&parsed.system)
        + messages
            .iter()
            .map(|m| text_chars(&m.content))
            .sum::<usize>();
    let prompt_tokens = tokens::prompt_tokens(chars);

    let tool_config = parsed.tool_config.as_ref();
    let offered: Vec<Offered<'_>> = tool_config
        .iter()
        .flat_map(|c| c.tools.iter())
        .map(|t| Offered {
            name: &t.tool_spec.name,
            schema: t
                .tool_spec
                .input_schema
                .as_ref()
                .and_then(|s| s.get("json")),
        })
        .collect();
    let named = tool_config
        .and_then(|c| c.tool_choice.as_ref())
        .and_then(|c| c.get("tool"))
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str);
    let choice = match named {
        Some(name) => Choice::Named(name),
        None => Choice::Any,
    };
    let answering = messages
        .last()
        .is_some_and(|m| m.content.iter().any(|b| b.get("toolResult").is_some()));
    let call = tools::plan(&offered, choice, answering);

    let tool_use_id = format!("tooluse_mock{}", admission.id);
    let answer = Answer::new(&config.reply, call.as_ref(), &tool_use_id, prompt_tokens);
    if !stream {
        return Ok(Json(answer.whole).into_response());
    }
    let frames: Vec<Bytes> = answer
        .events
        .iter()
        .map(|(name, payload)| Bytes::from(encode_event(name, &payload.to_string())))
        .collect();
    let mut response = sse_response(state, admission, &config, frames.into_iter());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    Ok(response)
}

/// `POST /model/{modelId}/invoke` for the embedding models: Titan's `{"inputText"}` (one text;
/// `dimensions` 256/512/1024 on v2) and Cohere's `{"texts", "input_type"}` (at most 96 texts;
/// `input_type` required), answered in each family's own shape with the mock's deterministic
/// vectors. Other models' invoke bodies are not served.
fn invoke_embeddings(state: &AppState, model: &str, body: &[u8]) -> Result<Response, Failure> {
    let invalid = |message: &str| (ApiError::bad_request(message, None), None);
    let parsed: Value = crate::openai::parse_body(body).map_err(|e| (e, None))?;
    let id = model.rsplit('/').next().unwrap_or(model);
    state.note_model(model);
    if id.contains("amazon.titan-embed") {
        let text = parsed
            .get("inputText")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid("Malformed input request: required key [inputText] not found")
            })?;
        let dimensions = match parsed.get("dimensions") {
            None => 1024,
            Some(d) if id.contains("text-v2") => match d.as_u64() {
                Some(n @ (256 | 512 | 1024)) => n as usize,
                _ => {
                    return Err(invalid(
                        "Malformed input request: dimensions must be 256, 512 or 1024",
                    ))
                }
            },
            Some(_) => {
                return Err(invalid(
                    "Malformed input request: extraneous key [dimensions] is not permitted",
                ))
            }
        };
        let item = EmbeddingItem::Text(text);
        let vector = embedding::embed(item, dimensions);
        return Ok(Json(json!({
            "embedding": vector,
            "embeddingsByType": {"float": vector},
            "inputTextTokenCount": item.tokens(),
        }))
        .into_response());
    }
    if id.contains("cohere.embed") {
        let texts: Vec<&str> = parsed
            .get("texts")
            .and_then(Value::as_array)
            .map(|texts| texts.iter().filter_map(Value::as_str).collect())
            .ok_or_else(|| invalid("Malformed input request: required key [texts] not found"))?;
        if texts.len() > 96 {
            return Err(invalid("Malformed input request: expected maxLength: 96"));
        }
        if parsed.get("input_type").and_then(Value::as_str).is_none() {
            return Err(invalid(
                "Malformed input request: required key [input_type] not found",
            ));
        }
        let vectors: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| embedding::embed(EmbeddingItem::Text(t), 1024))
            .collect();
        return Ok(Json(json!({
            "embeddings": vectors,
            "id": "mock-cohere-embed",
            "response_type": "embeddings_floats",
            "texts": texts,
        }))
        .into_response());
    }
    Err((
        ApiError::bad_request(
            format!("The mock upstream has no invoke body for model {id}"),
            None,
        ),
        None,
    ))
}

struct Answer {
    whole: Value,
    events: Vec<(&'static str, Value)>,
}

impl Answer {
    /// The whole answer and its stream events: the reply word by word, or one tool call
    /// whose input arrives in two pieces.
    fn new(reply: &str, call: Option<&Call>, tool_use_id: &str, prompt_tokens: u64) -> Answer {
        let usage = |output: u64| {
            json!({"inputTokens": prompt_tokens, "outputTokens": output,
                   "totalTokens": prompt_tokens + output})
        };
        let mut events = vec![("messageStart", json!({"role": "assistant"}))];
        let (content, stop, output) = match call {
            Some(call) => {
                let output = tokens::estimate_tokens(call.arguments.to_string().len()).max(1);
                let (first, second) = tools::split_arguments(&call.arguments);
                events.push((
                    "contentBlockStart",
                    json!({"contentBlockIndex": 0, "start": {"toolUse": {
                        "toolUseId": tool_use_id, "name": call.name}}}),
                ));
                for piece in [first, second] {
                    events.push((
                        "contentBlockDelta",
                        json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}),
                    ));
                }
                (
                    json!([{"toolUse": {"toolUseId": tool_use_id, "name": call.name,
                                        "input": call.arguments}}]),
                    "tool_use",
                    output,
                )
            }
            None => {
                for word in tokens::pieces(reply) {
                    events.push((
                        "contentBlockDelta",
                        json!({"contentBlockIndex": 0, "delta": {"text": word}}),
                    ));
                }
                (
                    json!([{"text": reply}]),
                    "end_turn",
                    tokens::count_words(reply),
                )
            }
        };
        events.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
        events.push(("messageStop", json!({"stopReason": stop})));
        events.push((
            "metadata",
            json!({"usage": usage(output), "metrics": {"latencyMs": 1}}),
        ));
        Answer {
            whole: json!({
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop,
                "usage": usage(output),
                "metrics": {"latencyMs": 1}
            }),
            events,
        }
    }
}

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// One event-stream message: prelude (lengths and their CRC), string headers, payload, CRC.
fn encode_event(event_type: &str, payload: &str) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ] {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = CRC32.checksum(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(payload.as_bytes());
    let crc = CRC32.checksum(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_the_aws_layout() {
        let frame = encode_event("messageStop", "{}");
        let total = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(total, frame.len());
        let prelude_crc = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
        assert_eq!(prelude_crc, CRC32.checksum(&frame[..8]));
        let crc = u32::from_be_bytes(frame[total - 4..].try_into().unwrap());
        assert_eq!(crc, CRC32.checksum(&frame[..total - 4]));
    }

    #[test]
    fn answers_text_or_one_tool_call() {
        let answer = Answer::new("Hello there", None, "t", 5);
        assert_eq!(answer.whole["stopReason"], "end_turn");
        assert_eq!(answer.events.first().unwrap().0, "messageStart");
        assert_eq!(answer.events.last().unwrap().0, "metadata");
        let call = Call {
            name: "f".into(),
            arguments: json!({"q": "mock"}),
        };
        let answer = Answer::new("x", Some(&call), "tooluse_1", 5);
        assert_eq!(answer.whole["stopReason"], "tool_use");
        assert_eq!(
            answer.whole["output"]["message"]["content"][0]["toolUse"]["input"],
            json!({"q": "mock"})
        );
    }
}
