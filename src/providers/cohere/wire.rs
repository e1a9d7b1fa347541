//! Cohere's v2 wire types (docs.cohere.com, "Chat API (v2)", "Embed API (v2)", "Rerank API
//! (v2)"): what Switchyard reads from Cohere. Requests are written as JSON objects in
//! `request.rs`, since Cohere's chat request is close to OpenAI's.

use serde::Deserialize;
use serde_json::Value;

/// `POST /v2/chat` answer.
#[derive(Debug, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub message: AssistantMessage,
    #[serde(default)]
    pub usage: Option<CohereUsage>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AssistantMessage {
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    #[serde(default)]
    pub tool_plan: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default)]
    pub citations: Option<Value>,
}

/// `{"type": "text", "text"}` or `{"type": "thinking", "thinking"}`.
#[derive(Debug, Default, Deserialize)]
pub struct ContentBlock {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thinking: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: ToolFunction,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolFunction {
    #[serde(default)]
    pub name: Option<String>,
    /// JSON text, as in OpenAI's format.
    #[serde(default)]
    pub arguments: Option<String>,
}

/// `usage`: `tokens` (what the model saw) and `billed_units` (what is charged).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CohereUsage {
    #[serde(default)]
    pub billed_units: Option<Units>,
    #[serde(default)]
    pub tokens: Option<Units>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Units {
    #[serde(default)]
    pub input_tokens: Option<f64>,
    #[serde(default)]
    pub output_tokens: Option<f64>,
    #[serde(default)]
    pub search_units: Option<f64>,
}

/// One event of a `/v2/chat` stream (its `type` is also the SSE event name).
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub delta: Option<StreamDelta>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamDelta {
    #[serde(default)]
    pub message: Option<DeltaMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<CohereUsage>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeltaMessage {
    #[serde(default)]
    pub content: Option<ContentBlock>,
    #[serde(default)]
    pub tool_plan: Option<String>,
    /// One call (not a list) in `tool-call-start` and `tool-call-delta`.
    #[serde(default)]
    pub tool_calls: Option<ToolCall>,
}

/// `POST /v2/embed` answer.
#[derive(Debug, Deserialize)]
pub struct EmbedResponse {
    #[serde(default)]
    pub embeddings: Embeddings,
    #[serde(default)]
    pub meta: Option<Meta>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Embeddings {
    #[serde(default)]
    pub float: Vec<Vec<f64>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub billed_units: Option<Units>,
}

/// Cohere's error body: `{"message": "..."}` (some errors add an `id`).
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}
