//! Google's Gemini API (AI Studio): `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (server-sent events with `?alt=sse`, else one JSON array), also
//! under `/v1/models/...`, with Google's error shape.
//!
//! Like Gemini, the mock refuses a request without a key (`x-goog-api-key` header or `key`
//! query parameter: 403) and without `contents` (400). Faults apply as on the other endpoints;
//! injected errors use Google's shape (`RESOURCE_EXHAUSTED` for 429, `UNAVAILABLE` for 503 ...).
//! A stream cut by `fail_mid_stream_after` never sends its last event, the one with
//! `finishReason`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::faults;
use crate::openai::{finish, sse_response, ApiRequest};
use crate::state::{Admission, AppState};
use crate::tokens;
use crate::tools::{self, Call, Choice, Offered};

/// Google's status name for an HTTP status.
pub fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

fn error_response(error: &ApiError) -> Response {
    let body = json!({"error": {
        "code": error.status().as_u16(),
        "message": error.message(),
        "status": status_name(error.status()),
    }});
    let mut response = (error.status(), Json(body)).into_response();
    error.add_retry_after(&mut response);
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    #[serde(default)]
    contents: Option<Vec<Content>>,
    #[serde(default)]
    system_instruction: Option<Content>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

#[derive(Deserialize, Default)]
struct Content {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool {
    #[serde(default)]
    function_declarations: Vec<Declaration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Declaration {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    parameters_json_schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    #[serde(default)]
    function_calling_config: Option<CallingConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallingConfig {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    allowed_function_names: Option<Vec<String>>,
}

fn text_chars(parts: &[Value]) -> usize {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .map(|t| t.chars().count())
        .sum()
}

/// `POST .../models/{model}:{method}`.
pub async fn generate(
    State(state): State<AppState>,
    target: Result<Path<String>, PathRejection>,
    request: ApiRequest,
) -> Response {
    let admission = request.admit(&state);
    let target = target
        .map(|Path(target)| target)
        .map_err(|r| ApiError::bad_request(r.body_text(), None));
    let response = match answer(&state, &admission, target, &request, Auth::ApiKey).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    finish(&state, &admission, response)
}

/// How a Gemini request proves who it is: an API key (Gemini API), or a bearer token the
/// caller (Vertex AI) already checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    ApiKey,
    Checked,
}

pub fn google_error(error: &ApiError) -> Response {
    error_response(error)
}

/// Answers `{model}:{method}` (`generateContent`, `streamGenerateContent`).
pub async fn answer(
    state: &AppState,
    admission: &Admission,
    target: Result<String, ApiError>,
    request: &ApiRequest,
    auth: Auth,
) -> Result<Response, ApiError> {
    let body = request.body()?;
    let target = target?;
    let (model, method) = target.rsplit_once(':').ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("models/{target} has no method"),
        )
    })?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Method {other} is not served by the mock upstream"),
            ))
        }
    };
    let query = request.uri().query().unwrap_or("");
    let key_in_query = query.split('&').any(|pair| pair.starts_with("key="));
    if auth == Auth::ApiKey && !request.headers().contains_key("x-goog-api-key") && !key_in_query {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        ));
    }
    let config = faults::gate(state).await?;
    let parsed: GenerateRequest = crate::openai::parse_body(body)?;
    let contents = parsed.contents.filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "* GenerateContentRequest.contents: contents is not specified",
            None,
        )
    })?;
    state.note_model(model);
    let chars = parsed
        .system_instruction
        .as_ref()
        .map_or(0, |s| text_chars(&s.parts))
        + contents.iter().map(|c| text_chars(&c.parts)).sum::<usize>();
    let prompt_tokens = tokens::prompt_tokens(chars);

    let declarations: Vec<&Declaration> = parsed
        .tools
        .iter()
        .flatten()
        .flat_map(|t| t.function_declarations.iter())
        .collect();
    let offered: Vec<Offered<'_>> = declarations
        .iter()
        .map(|d| Offered {
            name: &d.name,
            schema: d.parameters_json_schema.as_ref().or(d.parameters.as_ref()),
        })
        .collect();
    let calling = parsed
        .tool_config
        .as_ref()
        .and_then(|c| c.function_calling_config.as_ref());
    let choice = match calling {
        Some(c) if c.mode.as_deref() == Some("NONE") => Choice::None,
        Some(c) => match c.allowed_function_names.as_deref() {
            Some([name, ..]) => Choice::Named(name),
            _ => Choice::Any,
        },
        None => Choice::Any,
    };
    let answering = contents
        .last()
        .is_some_and(|c| c.parts.iter().any(|p| p.get("functionResponse").is_some()));
    let call = tools::plan(&offered, choice, answering);

    let response_id = format!("mock-{}", admission.id);
    let chunks = chunks(
        &response_id,
        model,
        &config.reply,
        call.as_ref(),
        prompt_tokens,
    );
    if !stream {
        let whole = chunks.whole;
        return Ok(Json(whole).into_response());
    }
    if query.split('&').any(|pair| pair == "alt=sse") {
        let events: Vec<Bytes> = chunks
            .pieces
            .iter()
            .map(|piece| Bytes::from(format!("data: {piece}\r\n\r\n")))
            .collect();
        return Ok(sse_response(state, admission, &config, events.into_iter()));
    }
    // Without `alt=sse`, Gemini streams one JSON array of the same objects.
    let mut response = Json(Value::Array(chunks.pieces)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

struct Answer {
    whole: Value,
    pieces: Vec<Value>,
}

/// The whole answer and its stream pieces: one piece per word of the reply (the last with
/// `finishReason` and the final usage), or one piece with the function call.
fn chunks(id: &str, model: &str, reply: &str, call: Option<&Call>, prompt_tokens: u64) -> Answer {
    let response = |parts: Value, finish: Option<&str>, candidates_tokens: Option<u64>| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(reason) = finish {
            candidate["finishReason"] = reason.into();
        }
        let usage = match candidates_tokens {
            Some(tokens) => {
                json!({"promptTokenCount": prompt_tokens, "candidatesTokenCount": tokens,
                                   "totalTokenCount": prompt_tokens + tokens})
            }
            None => json!({"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}),
        };
        json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": id})
    };
    match call {
        Some(call) => {
            let tokens = tokens::estimate_tokens(call.arguments.to_string().len()).max(1);
            let whole = response(
                json!([{"functionCall": {"name": call.name, "args": call.arguments}}]),
                Some("STOP"),
                Some(tokens),
            );
            Answer {
                pieces: vec![whole.clone()],
                whole,
            }
        }
        None => {
            let tokens = tokens::count_words(reply);
            let whole = response(json!([{"text": reply}]), Some("STOP"), Some(tokens));
            let words: Vec<&str> = tokens::pieces(reply).collect();
            let mut pieces: Vec<Value> = words
                .iter()
                .enumerate()
                .map(|(i, word)| {
                    let last = i + 1 == words.len();
                    response(
                        json!([{"text": word}]),
                        last.then_some("STOP"),
                        last.then_some(tokens),
                    )
                })
                .collect();
            if pieces.is_empty() {
                pieces.push(response(json!([{"text": ""}]), Some("STOP"), Some(0)));
            }
            Answer { whole, pieces }
        }
    }
}
