//! Chat completions: request, response and stream chunk.

use serde::{Deserialize, Serialize};

use super::Extra;

/// `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub role: Role,
    /// `null` is legal for assistant messages that only carry tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message content: a plain string, or an array of typed parts (text, image_url, input_audio ...).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// Characters of text content, used for rough token estimates.
    pub fn text_len(&self) -> usize {
        match self {
            MessageContent::Text(text) => text.len(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_ref())
                .map(String::len)
                .sum(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
    #[serde(flatten)]
    pub extra: Extra,
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON-encoded arguments, as a string (OpenAI's convention).
    #[serde(default)]
    pub arguments: String,
}

/// Token usage as OpenAI reports it; details (cached tokens, reasoning tokens) stay in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A non-streaming `chat.completion` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default = "chat_completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn chat_completion_object() -> String {
    "chat.completion".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: ResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponseMessage {
    #[serde(default = "assistant_role")]
    pub role: Role,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn assistant_role() -> Role {
    Role::Assistant
}

/// One `chat.completion.chunk` of a stream.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default = "chunk_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    /// Always serialized (as `null` until the last chunk): strict clients expect the key.
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Writes `request` as JSON with `model` replaced by the upstream's model name, without cloning
/// the request (it may be sent again to another deployment).
pub struct WithModel<'a, T> {
    pub request: &'a T,
    pub model: &'a str,
}

impl serde::Serialize for WithModel<'_, ChatRequest> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let req = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", &req.messages)?;
        if let Some(stream) = req.stream {
            map.serialize_entry("stream", &stream)?;
        }
        if let Some(options) = &req.stream_options {
            map.serialize_entry("stream_options", options)?;
        }
        for (key, value) in &req.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl serde::Serialize for WithModel<'_, super::PassthroughRequest> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let req = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        if let Some(stream) = req.stream {
            map.serialize_entry("stream", &stream)?;
        }
        for (key, value) in &req.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_round_trip() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi","x_msg":1}],"seed":7,"logit_bias":{"50256":-100}}"#;
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["seed"], 7);
        assert_eq!(back["logit_bias"]["50256"], -100);
        assert_eq!(back["messages"][0]["x_msg"], 1);
        assert!(back.get("stream").is_none(), "absent fields stay absent");
    }

    #[test]
    fn content_parts_and_null_content() {
        let body = r#"{"model":"m","messages":[
            {"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url","image_url":{"url":"data:x"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}]}"#;
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.messages[0].content.as_ref().unwrap().text_len(), 3);
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(
            back["messages"][0]["content"][1]["image_url"]["url"],
            "data:x"
        );
        assert_eq!(back["messages"][1]["tool_calls"][0]["id"], "c1");
    }

    #[test]
    fn chunk_keeps_finish_reason_key() {
        let chunk: ChatChunk = serde_json::from_str(
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null,"logprobs":null}]}"#,
        )
        .unwrap();
        let back = serde_json::to_value(&chunk).unwrap();
        assert!(back["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("finish_reason"));
        assert!(back["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("logprobs"));
    }
}
