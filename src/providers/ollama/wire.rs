//! Ollama's native wire types (`docs/api.md` of ollama/ollama): the `/api/chat` and
//! `/api/generate` requests, the answer (one object, or one per NDJSON line of a stream), and
//! `/api/embed`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /api/chat`.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Message>,
    /// Always sent: Ollama streams when it is absent.
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// Native fields a client sent through (`keep_alive`, `think`).
    #[serde(flatten)]
    pub native: Map<String, Value>,
}

/// `POST /api/generate`.
#[derive(Debug, Serialize)]
pub struct GenerateRequest<'a> {
    pub model: &'a str,
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
    #[serde(flatten)]
    pub native: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
    /// Base64 image data, without a `data:` prefix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` message: the function whose result this is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCall {
    /// Recent Ollama versions name their calls; older ones do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub function: ToolFunction,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolFunction {
    pub name: String,
    /// An object (Ollama parses the model's JSON); kept as sent.
    #[serde(default)]
    pub arguments: Value,
}

/// An `/api/chat` or `/api/generate` answer, or one line of their streams. The final one has
/// `done: true`, `done_reason` and the token counts.
#[derive(Debug, Default, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub model: String,
    /// `/api/chat`.
    #[serde(default)]
    pub message: Option<ReplyMessage>,
    /// `/api/generate`.
    #[serde(default)]
    pub response: Option<String>,
    /// `/api/generate` of a thinking model.
    #[serde(default)]
    pub thinking: Option<String>,
    /// `false` on every streamed line but the last; a whole answer says `true`.
    #[serde(default)]
    pub done: Option<bool>,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReplyMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
}

/// `POST /api/embed`.
#[derive(Debug, Serialize)]
pub struct EmbedRequest<'a> {
    pub model: &'a str,
    pub input: Value,
    #[serde(flatten)]
    pub native: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct EmbedResponse {
    #[serde(default)]
    pub model: Option<String>,
    pub embeddings: Vec<Vec<f64>>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
}

/// `{"error": "..."}`, as an error body or a line of a stream.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: Value,
}
