//! Cohere's v2 API: `POST /v2/chat` (a response, or server-sent events named `message-start`,
//! `content-delta`, `tool-call-start` ... `message-end`), `/v2/embed` and `/v2/rerank`, with
//! Cohere's error shape `{"message": "..."}`. Also the rerank endpoint OpenAI-compatible servers
//! (vLLM, Jina, Infinity) serve at `/v1/rerank` and `/rerank`, in the same request shape.
//!
//! Like Cohere, `/v2/...` needs a bearer key (401 without). Rerank is deterministic: a
//! document's score is the share of the query's words it contains, ties in the order given.
//! A stream cut by `fail_mid_stream_after` never sends `message-end`.

use axum::extract::State;
use axum::http::StatusCode;
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

const EMBEDDING_DIMENSIONS: usize = 8;

fn error_response(error: &ApiError) -> Response {
    let mut response = (error.status(), Json(json!({"message": error.message()}))).into_response();
    error.add_retry_after(&mut response);
    response
}

fn require_key(request: &ApiRequest) -> Result<(), ApiError> {
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if bearer {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no api key supplied",
        ))
    }
}

/// Logs the outcome of a handler and renders its error in Cohere's shape.
fn done(state: &AppState, admission: &Admission, result: Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(|error| error_response(&error));
    finish(state, admission, response)
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    tool_choice: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Option<Value>,
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

fn text_chars(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(text)) => text.chars().count(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|t| t.chars().count())
            .sum(),
        _ => 0,
    }
}

/// `POST /v2/chat`.
pub async fn chat(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let result = chat_answer(&state, &admission, &request).await;
    done(&state, &admission, result)
}

async fn chat_answer(
    state: &AppState,
    admission: &Admission,
    request: &ApiRequest,
) -> Result<Response, ApiError> {
    let body = request.body()?;
    require_key(request)?;
    let config = faults::gate(state).await?;
    let parsed: ChatRequest = parse_body(body)?;
    let model = parsed
        .model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("invalid request: model must be specified", None))?;
    let messages = parsed.messages.filter(|m| !m.is_empty()).ok_or_else(|| {
        ApiError::bad_request("invalid request: messages must not be empty", None)
    })?;
    state.note_model(&model);
    let prompt_tokens = tokens::prompt_tokens(
        messages
            .iter()
            .map(|m| text_chars(m.content.as_ref()))
            .sum(),
    );
    let offered: Vec<Offered<'_>> = parsed
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .map(|f| Offered {
            name: &f.name,
            schema: f.parameters.as_ref(),
        })
        .collect();
    let choice = match parsed.tool_choice.as_deref() {
        Some("NONE") => Choice::None,
        _ => Choice::Any,
    };
    let answering = messages.last().is_some_and(|m| m.role == "tool");
    let call = tools::plan(&offered, choice, answering);
    let id = format!("mock-{}", admission.id);
    let usage = |output: u64| {
        json!({"billed_units": {"input_tokens": prompt_tokens, "output_tokens": output},
               "tokens": {"input_tokens": prompt_tokens, "output_tokens": output}})
    };
    let event = |value: Value| {
        let kind = value["type"].as_str().unwrap_or_default().to_owned();
        Bytes::from(format!("event: {kind}\ndata: {value}\n\n"))
    };
    match call {
        Some(call) => {
            let output = tokens::estimate_tokens(call.arguments.to_string().len()).max(1);
            let call_id = format!("call_mock_{}", admission.id);
            let plan = format!("I will call {}.", call.name);
            if !parsed.stream {
                return Ok(Json(json!({
                    "id": id, "finish_reason": "TOOL_CALL",
                    "message": {"role": "assistant", "tool_plan": plan,
                                "tool_calls": [{"id": call_id, "type": "function",
                                                "function": {"name": call.name,
                                                             "arguments": call.arguments.to_string()}}]},
                    "usage": usage(output)
                }))
                .into_response());
            }
            let (first, second) = tools::split_arguments(&call.arguments);
            let events = vec![
                event(json!({"type": "message-start", "id": id,
                             "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}}})),
                event(
                    json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": plan}}}),
                ),
                event(json!({"type": "tool-call-start", "index": 0,
                             "delta": {"message": {"tool_calls": {"id": call_id, "type": "function",
                                                                  "function": {"name": call.name, "arguments": ""}}}}})),
                event(json!({"type": "tool-call-delta", "index": 0,
                             "delta": {"message": {"tool_calls": {"function": {"arguments": first}}}}})),
                event(json!({"type": "tool-call-delta", "index": 0,
                             "delta": {"message": {"tool_calls": {"function": {"arguments": second}}}}})),
                event(json!({"type": "tool-call-end", "index": 0})),
                event(json!({"type": "message-end",
                             "delta": {"finish_reason": "TOOL_CALL", "usage": usage(output)}})),
            ];
            Ok(sse_response(state, admission, &config, events.into_iter()))
        }
        None => {
            let output = tokens::count_words(&config.reply);
            if !parsed.stream {
                return Ok(Json(json!({
                    "id": id, "finish_reason": "COMPLETE",
                    "message": {"role": "assistant",
                                "content": [{"type": "text", "text": config.reply}]},
                    "usage": usage(output)
                }))
                .into_response());
            }
            let mut events = vec![
                event(json!({"type": "message-start", "id": id,
                             "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})),
                event(json!({"type": "content-start", "index": 0,
                             "delta": {"message": {"content": {"type": "text", "text": ""}}}})),
            ];
            for word in tokens::pieces(&config.reply) {
                events.push(event(json!({"type": "content-delta", "index": 0,
                                         "delta": {"message": {"content": {"text": word}}}})));
            }
            events.push(event(json!({"type": "content-end", "index": 0})));
            events.push(event(json!({"type": "message-end",
                                     "delta": {"finish_reason": "COMPLETE", "usage": usage(output)}})));
            Ok(sse_response(state, admission, &config, events.into_iter()))
        }
    }
}

#[derive(Deserialize)]
struct EmbedRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    texts: Option<Vec<String>>,
    #[serde(default)]
    input_type: Option<String>,
    #[serde(default)]
    output_dimension: Option<usize>,
}

/// `POST /v2/embed`.
pub async fn embed(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let result = embed_answer(&state, &admission, &request).await;
    done(&state, &admission, result)
}

async fn embed_answer(
    state: &AppState,
    admission: &Admission,
    request: &ApiRequest,
) -> Result<Response, ApiError> {
    let body = request.body()?;
    require_key(request)?;
    faults::gate(state).await?;
    let parsed: EmbedRequest = parse_body(body)?;
    let model = parsed
        .model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("invalid request: model must be specified", None))?;
    if parsed.input_type.is_none() {
        return Err(ApiError::bad_request(
            "invalid request: valid input_type must be provided with the provided model",
            None,
        ));
    }
    let texts = parsed.texts.unwrap_or_default();
    state.note_model(&model);
    let dimensions = parsed
        .output_dimension
        .filter(|d| (1..=4096).contains(d))
        .unwrap_or(EMBEDDING_DIMENSIONS);
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| embedding::embed(EmbeddingItem::Text(t), dimensions))
        .collect();
    let tokens: u64 = texts.iter().map(|t| EmbeddingItem::Text(t).tokens()).sum();
    Ok(Json(json!({
        "id": format!("mock-{}", admission.id),
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type",
    }))
    .into_response())
}

#[derive(Deserialize)]
struct RerankRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    documents: Option<Vec<Value>>,
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default)]
    return_documents: Option<bool>,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// `POST /v2/rerank` (Cohere: a key is required, documents never returned).
pub async fn rerank_v2(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let result = match require_key(&request) {
        Ok(()) => rerank_answer(&state, &admission, &request, true).await,
        Err(error) => Err(error),
    };
    done(&state, &admission, result)
}

/// `POST /v1/rerank` and `/rerank` (vLLM, Jina: documents returned when asked, `usage`).
pub async fn rerank_compatible(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    let result = rerank_answer(&state, &admission, &request, false).await;
    done(&state, &admission, result)
}

async fn rerank_answer(
    state: &AppState,
    admission: &Admission,
    request: &ApiRequest,
    cohere: bool,
) -> Result<Response, ApiError> {
    let body = request.body()?;
    faults::gate(state).await?;
    let parsed: RerankRequest = parse_body(body)?;
    let model = parsed.model.unwrap_or_default();
    state.note_model(&model);
    let query = parsed
        .query
        .ok_or_else(|| ApiError::bad_request("invalid request: query must be specified", None))?;
    let documents = parsed.documents.unwrap_or_default();
    let texts: Vec<String> = documents
        .iter()
        .map(|d| match d {
            Value::String(text) => text.clone(),
            other => other
                .get("text")
                .and_then(Value::as_str)
                .map_or_else(|| other.to_string(), str::to_owned),
        })
        .collect();
    let query_words = words(&query);
    let mut scored: Vec<(usize, f64)> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let doc_words = words(text);
            let hits = query_words.iter().filter(|w| doc_words.contains(w)).count();
            (index, hits as f64 / query_words.len().max(1) as f64)
        })
        .collect();
    // Stable: equal scores keep the order given.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(parsed.top_n.unwrap_or(texts.len()));
    let with_documents = !cohere && parsed.return_documents == Some(true);
    let results: Vec<Value> = scored
        .iter()
        .map(|(index, score)| {
            let mut result = json!({"index": index, "relevance_score": score});
            if with_documents {
                result["document"] = json!({"text": texts[*index]});
            }
            result
        })
        .collect();
    let chars: usize =
        query.chars().count() + texts.iter().map(|t| t.chars().count()).sum::<usize>();
    let mut answer = json!({
        "id": format!("mock-{}", admission.id),
        "results": results,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    });
    if !cohere {
        answer["model"] = model.into();
        answer["usage"] = json!({"total_tokens": tokens::prompt_tokens(chars)});
    }
    Ok(Json(answer).into_response())
}
