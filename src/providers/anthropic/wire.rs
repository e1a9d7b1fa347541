//! Anthropic's Messages API on the wire: the request, the response, the stream events and the
//! error body, as documented in Anthropic's API reference.
//!
//! The same types serve both directions: Switchyard sends them to Anthropic (translating an
//! OpenAI request) and receives them from clients on its own `/v1/messages`. Every object keeps
//! the fields it does not type in `extra`, and content blocks of kinds Switchyard does not
//! translate (server tools, search results, documents ...) are kept whole, so a request forwarded
//! natively reaches Anthropic exactly as the client wrote it.

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::schema::Extra;

/// `POST /v1/messages` (and `/v1/messages/count_tokens`, which takes the same fields without
/// `max_tokens`) request body.
///
/// `model` is not serialized: the body always goes out through [`MessagesBody`], which writes
/// the deployment's model name without cloning the request.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MessagesRequest {
    #[serde(skip_serializing)]
    pub model: String,
    pub messages: Vec<InputMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessagesRequest {
    pub fn new(model: impl Into<String>, messages: Vec<InputMessage>) -> Self {
        MessagesRequest {
            model: model.into(),
            messages,
            max_tokens: None,
            system: None,
            stop_sequences: None,
            stream: None,
            temperature: None,
            top_p: None,
            top_k: None,
            metadata: None,
            tools: None,
            tool_choice: None,
            thinking: None,
            extra: Extra::new(),
        }
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// A request body as sent upstream: `model` first, then every other field of the request.
#[derive(Serialize)]
pub struct MessagesBody<'a> {
    pub model: &'a str,
    #[serde(flatten)]
    pub request: &'a MessagesRequest,
}

/// `system`: a string, or text blocks (which may carry `cache_control`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct InputMessage {
    pub role: Role,
    pub content: Content,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message content: a string (one text block), or blocks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl Content {
    /// The content as blocks (a string is one text block).
    pub fn into_blocks(self) -> Vec<ContentBlock> {
        match self {
            Content::Text(text) => vec![ContentBlock::text(text)],
            Content::Blocks(blocks) => blocks,
        }
    }
}

/// One content block. The kinds Switchyard translates are typed; any other kind is kept as the
/// JSON it came as (`Other`), so it survives a native round trip untouched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
        #[serde(flatten)]
        extra: Extra,
    },
    Image {
        source: Source,
        #[serde(flatten)]
        extra: Extra,
    },
    Document {
        source: Source,
        #[serde(flatten)]
        extra: Extra,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default = "empty_object")]
        input: Value,
        #[serde(flatten)]
        extra: Extra,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        #[serde(flatten)]
        extra: Extra,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
        #[serde(flatten)]
        extra: Extra,
    },
    RedactedThinking {
        data: String,
        #[serde(flatten)]
        extra: Extra,
    },
    #[serde(untagged)]
    Other(Value),
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text {
            text: text.into(),
            extra: Extra::new(),
        }
    }

    /// The block's `type`.
    pub fn kind(&self) -> &str {
        match self {
            ContentBlock::Text { .. } => "text",
            ContentBlock::Image { .. } => "image",
            ContentBlock::Document { .. } => "document",
            ContentBlock::ToolUse { .. } => "tool_use",
            ContentBlock::ToolResult { .. } => "tool_result",
            ContentBlock::Thinking { .. } => "thinking",
            ContentBlock::RedactedThinking { .. } => "redacted_thinking",
            ContentBlock::Other(value) => value.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

/// Where an image's or document's bytes are: `base64` (with `media_type` and `data`), `url`, or
/// `file` (a Files API id).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Source {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool the model may call. Client tools have an `input_schema` and no `type` (or
/// `"custom"`); Anthropic's server tools (`web_search_20250305`, `bash_20250124` ...) have a
/// versioned `type` and no schema.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolDefinition {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ToolDefinition {
    /// A tool the client runs (as opposed to one Anthropic runs).
    pub fn is_client_tool(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

/// `tool_choice`: `auto`, `any`, `tool` (with `name`) or `none`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ToolChoice {
    pub fn of(kind: &str) -> Self {
        ToolChoice {
            kind: kind.to_owned(),
            name: None,
            disable_parallel_tool_use: None,
            extra: Extra::new(),
        }
    }
}

/// Extended thinking: `{"type": "enabled", "budget_tokens": N}` or `{"type": "disabled"}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Thinking {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `message` response (and the skeleton a stream's `message_start` carries).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MessageResponse {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant")]
    pub role: Role,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Always written (as `null` while unknown), as Anthropic does.
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(flatten)]
    pub extra: Extra,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant() -> Role {
    Role::Assistant
}

/// Token counts. `input_tokens` excludes the tokens read from or written to the prompt cache,
/// which are counted separately.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One event of a streamed answer. The SSE `event:` name equals `type`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: MessageResponse,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: DeltaUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
    /// An event type this version does not know: ignored, as Anthropic's versioning policy
    /// asks of clients.
    #[serde(untagged)]
    Other(Value),
}

impl StreamEvent {
    /// The SSE event name.
    pub fn name(&self) -> &str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Other(value) => value.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(untagged)]
    Other(Value),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Usage on `message_delta`: cumulative totals; `output_tokens` always, the input counts when
/// Anthropic restates them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DeltaUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `{"type": "error", "error": {"type": ..., "message": ...}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ErrorEnvelope {
    #[serde(rename = "type", default = "error_type")]
    pub kind: String,
    pub error: ErrorBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn error_type() -> String {
    "error".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ErrorBody {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// `POST /v1/messages/count_tokens` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TokenCount {
    pub input_tokens: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_blocks_and_fields_survive_a_round_trip() {
        let body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Find it", "citations": null},
                    {"type": "search_result", "source": "https://example.com", "title": "t", "content": [{"type": "text", "text": "x"}]},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}], "is_error": false}
                ]}
            ],
            "tools": [
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "temperature": 1,
            "metadata": {"user_id": "u-1"},
            "service_tier": "auto"
        });
        let request: MessagesRequest = serde_json::from_value(body.clone()).unwrap();
        assert!(matches!(
            &request.messages[1].content,
            Content::Blocks(blocks) if blocks[1].kind() == "server_tool_use"
        ));
        let back = serde_json::to_value(MessagesBody {
            model: "claude-sonnet-4-5",
            request: &request,
        })
        .unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn unknown_stream_events_and_deltas_are_kept_not_fatal() {
        let event: StreamEvent =
            serde_json::from_str(r#"{"type":"content_block_future","index":0}"#).unwrap();
        assert_eq!(event.name(), "content_block_future");
        let event: StreamEvent = serde_json::from_str(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"type":"char_location"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            event,
            StreamEvent::ContentBlockDelta {
                delta: BlockDelta::Other(_),
                ..
            }
        ));
    }
}
