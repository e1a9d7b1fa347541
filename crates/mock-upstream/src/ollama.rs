//! Ollama's native API: `POST /api/chat`, `/api/generate` (one JSON object, or a stream of
//! newline-delimited JSON objects ending with a `done: true` line that carries `done_reason` and
//! the token counts) and `/api/embed`, with Ollama's error shape `{"error": "..."}`.
//!
//! Like Ollama, `stream` defaults to true when the request leaves it out, and no key is needed.
//! Tool calls follow the mock's usual rule (`tools.rs`) on `/api/chat`; Ollama sends each call
//! whole, with its arguments as an object. A stream cut by `fail_mid_stream_after` never sends
//! its `done` line.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::embedding::{self, EmbeddingItem};
use crate::error::ApiError;
use crate::faults;
use crate::openai::{finish, parse_body, sse_response, ApiRequest};
use crate::state::{Admission, AppState};
use crate::tokens;
use crate::tools::{self, Choice, Offered};

/// Ollama's embedding models vary; the mock's vectors have this many values.
const EMBEDDING_DIMENSIONS: usize = 8;
const CREATED_AT: &str = "2026-01-01T00:00:00.000000Z";

fn error_response(error: &ApiError) -> Response {
    let mut response = (error.status(), Json(json!({"error": error.message()}))).into_response();
    error.add_retry_after(&mut response);
    response
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Chat,
    Generate,
}

#[derive(Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Vec<Tool>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    function: Option<Function>,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
}

pub async fn chat(State(state): State<AppState>, request: ApiRequest) -> Response {
    handle(state, Api::Chat, request).await
}

pub async fn generate(State(state): State<AppState>, request: ApiRequest) -> Response {
    handle(state, Api::Generate, request).await
}

async fn handle(state: AppState, api: Api, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let response = match answer(&state, &admission, api, &request).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    finish(&state, &admission, response)
}

async fn answer(
    state: &AppState,
    admission: &Admission,
    api: Api,
    request: &ApiRequest,
) -> Result<Response, ApiError> {
    let body = request.body()?;
    let config = faults::gate(state).await?;
    let parsed: GenerateRequest = parse_body(body)?;
    let model = parsed
        .model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("model is required", None))?;
    state.note_model(&model);
    let chars = match api {
        Api::Chat => {
            let messages = parsed
                .messages
                .as_ref()
                .ok_or_else(|| ApiError::bad_request("messages is required", None))?;
            messages
                .iter()
                .filter_map(|m| m.content.as_ref())
                .map(|c| c.chars().count())
                .sum()
        }
        Api::Generate => {
            parsed.prompt.as_deref().map_or(0, |p| p.chars().count())
                + parsed.system.as_deref().map_or(0, |s| s.chars().count())
        }
    };
    let prompt_tokens = tokens::prompt_tokens(chars);
    let offered: Vec<Offered<'_>> = parsed
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .map(|f| Offered {
            name: &f.name,
            schema: f.parameters.as_ref(),
        })
        .collect();
    let answering = parsed
        .messages
        .as_ref()
        .and_then(|m| m.last())
        .is_some_and(|m| m.role == "tool");
    let call = match api {
        Api::Chat => tools::plan(&offered, Choice::Any, answering),
        Api::Generate => None,
    };

    let line = |text: &str, done: Option<(u64, &str)>| {
        let mut line = match api {
            Api::Chat => json!({"model": model, "created_at": CREATED_AT,
                                "message": {"role": "assistant", "content": text}}),
            Api::Generate => json!({"model": model, "created_at": CREATED_AT, "response": text}),
        };
        match done {
            Some((eval_count, reason)) => {
                line["done"] = true.into();
                line["done_reason"] = reason.into();
                line["total_duration"] = 1_000_000.into();
                line["prompt_eval_count"] = prompt_tokens.into();
                line["eval_count"] = eval_count.into();
            }
            None => line["done"] = false.into(),
        }
        line
    };
    let (whole, pieces) = match &call {
        Some(call) => {
            let tokens = tokens::estimate_tokens(call.arguments.to_string().len()).max(1);
            let mut whole = line("", Some((tokens, "stop")));
            whole["message"]["tool_calls"] =
                json!([{"function": {"index": 0, "name": call.name, "arguments": call.arguments}}]);
            let mut first = line("", None);
            first["message"]["tool_calls"] = whole["message"]["tool_calls"].clone();
            (whole, vec![first, line("", Some((tokens, "stop")))])
        }
        None => {
            let tokens = tokens::count_words(&config.reply);
            let mut pieces: Vec<Value> = tokens::pieces(&config.reply)
                .map(|word| line(word, None))
                .collect();
            pieces.push(line("", Some((tokens, "stop"))));
            (line(&config.reply, Some((tokens, "stop"))), pieces)
        }
    };
    if !parsed.stream.unwrap_or(true) {
        return Ok(Json(whole).into_response());
    }
    let events: Vec<Bytes> = pieces
        .iter()
        .map(|piece| Bytes::from(format!("{piece}\n")))
        .collect();
    let mut response = sse_response(state, admission, &config, events.into_iter());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct EmbedRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

/// `POST /api/embed`.
pub async fn embed(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let response = match embed_answer(&state, &request).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    finish(&state, &admission, response)
}

async fn embed_answer(state: &AppState, request: &ApiRequest) -> Result<Response, ApiError> {
    let body = request.body()?;
    faults::gate(state).await?;
    let parsed: EmbedRequest = parse_body(body)?;
    let model = parsed
        .model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("model is required", None))?;
    state.note_model(&model);
    let texts: Vec<String> = match parsed.input {
        Some(Input::One(text)) => vec![text],
        Some(Input::Many(texts)) => texts,
        None => return Err(ApiError::bad_request("input is required", None)),
    };
    let dimensions = parsed
        .dimensions
        .filter(|d| (1..=4096).contains(d))
        .unwrap_or(EMBEDDING_DIMENSIONS);
    let embeddings: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embedding::embed(EmbeddingItem::Text(t), dimensions))
        .collect();
    let tokens: u64 = texts.iter().map(|t| EmbeddingItem::Text(t).tokens()).sum();
    Ok(Json(json!({
        "model": model,
        "embeddings": embeddings,
        "total_duration": 1_000_000,
        "load_duration": 1000,
        "prompt_eval_count": tokens,
    }))
    .into_response())
}
