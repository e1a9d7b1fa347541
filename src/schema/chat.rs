//! Chat completions: request, response and stream chunk.

use serde::{Deserialize, Serialize};

use super::open::open_struct;
use super::Extra;

/// `POST /v1/chat/completions` request body.
///
/// The fields translation needs are typed; everything else stays in `extra`. A typed field that
/// is absent (or `null`, which OpenAI treats the same) is not written back, so the OpenAI
/// pass-through sends what the client sent. Sampling numbers are kept as JSON numbers, not
/// `f64`, so `1` stays `1` and is not rewritten as `1.0`.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatRequest {
    /// A request with only `model` and `messages` set.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            stream: None,
            stream_options: None,
            max_tokens: None,
            max_completion_tokens: None,
            temperature: None,
            top_p: None,
            n: None,
            stop: None,
            user: None,
            tools: None,
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            extra: Extra::new(),
        }
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The output cap the client asked for: `max_completion_tokens` (OpenAI's current name)
    /// wins over the older `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(one) => vec![one.clone()],
            Stop::Many(many) => many.clone(),
        }
    }
}

/// One entry of `tools`. Only function tools are typed; other kinds (`custom` ...) keep their
/// fields in `extra`.
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDefinition>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_choice`: `"none"`, `"auto"`, `"required"`, or an object naming a function.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, Serialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionName>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionName {
    pub name: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response_format`: `{"type": "text" | "json_object"}` or `{"type": "json_schema", ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Serialize)]
pub struct JsonSchemaFormat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

impl Message {
    /// A message with only `role` and `content`.
    pub fn new(role: Role, content: Option<MessageContent>) -> Self {
        Message {
            role,
            content,
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Extra::new(),
        }
    }

    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message::new(role, Some(MessageContent::Text(text.into())))
    }
}

/// Message content: a plain string, or an array of typed parts (text, image_url, input_audio ...).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// By the JSON type, read once: `#[serde(untagged)]` would buffer every message's content into
/// an intermediate tree and copy each string twice before trying the variants in turn.
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MessageContent;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(text.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(text))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<MessageContent, A::Error> {
                let parts = Vec::<ContentPart>::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(MessageContent::Parts(parts))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart {
            kind: "text".into(),
            text: Some(text.into()),
            image_url: None,
            extra: Extra::new(),
        }
    }

    pub fn image(url: impl Into<String>) -> Self {
        ContentPart {
            kind: "image_url".into(),
            text: None,
            image_url: Some(ImageUrl {
                url: url.into(),
                detail: None,
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        }
    }
}

/// An image: an `http(s)` URL or a `data:` URL with the bytes inline.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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
    #[serde(flatten)]
    pub extra: Extra,
}

impl ToolCall {
    pub fn function(id: impl Into<String>, name: impl Into<String>, arguments: String) -> Self {
        ToolCall {
            id: id.into(),
            kind: function_type(),
            function: FunctionCall {
                name: name.into(),
                arguments,
                extra: Extra::new(),
            },
            extra: Extra::new(),
        }
    }
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

impl ChatChunk {
    /// Whether the client can see something in this chunk. The first chunk of most upstreams
    /// only says `role: assistant`; the router holds such chunks back until one has output, so
    /// a stream that dies right after its role chunk can still fail over. Unknown delta fields
    /// count (`reasoning_content` and other provider extensions are output too).
    pub fn has_output(&self) -> bool {
        self.usage.is_some()
            || self.choices.iter().any(|choice| {
                choice.finish_reason.is_some()
                    || choice
                        .delta
                        .content
                        .as_deref()
                        .is_some_and(|c| !c.is_empty())
                    || choice.delta.tool_calls.is_some()
                    || choice
                        .delta
                        .extra
                        .values()
                        .any(|v| !(v.is_null() || v.as_str() == Some("")))
            })
    }
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
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A piece of a streamed tool call: the first piece of a call carries `id`, `type` and the
/// function's `name`; later pieces carry only more `arguments` text for the same `index`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
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
        // Every typed field, so none is lost on the way to an OpenAI-compatible upstream.
        macro_rules! optional {
            ($($field:ident),*) => {$(
                if let Some(value) = &req.$field {
                    map.serialize_entry(stringify!($field), value)?;
                }
            )*};
        }
        optional!(
            max_tokens,
            max_completion_tokens,
            temperature,
            top_p,
            n,
            stop,
            user,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format
        );
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

    /// Parses `body` as a chat request and writes it back the way the OpenAI pass-through does.
    fn forwarded(body: &str) -> serde_json::Value {
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        serde_json::to_value(WithModel {
            request: &req,
            model: "upstream-model",
        })
        .unwrap()
    }

    #[test]
    fn typed_fields_round_trip_exactly() {
        let body = serde_json::json!({
            "model": "alias",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low", "x_img": 1}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}", "x_fn": 2}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "max_tokens": 100,
            "max_completion_tokens": 200,
            "temperature": 1,
            "top_p": 0.95,
            "n": 1,
            "stop": ["\n\n", "END"],
            "user": "u-1",
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}},
                {"type": "custom", "custom": {"name": "grammar_tool", "format": {"type": "text"}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": true}},
            "seed": 3
        });
        let mut expected = body.clone();
        expected["model"] = "upstream-model".into();
        // `content: null` is written as absent (Message::content), which OpenAI reads the same.
        expected["messages"][1]
            .as_object_mut()
            .unwrap()
            .remove("content");
        assert_eq!(forwarded(&body.to_string()), expected);
        // `1` stays an integer and `0.95` keeps its digits.
        let text =
            serde_json::to_string(&serde_json::from_str::<ChatRequest>(&body.to_string()).unwrap())
                .unwrap();
        assert!(text.contains(r#""temperature":1,"#), "{text}");
        assert!(text.contains(r#""top_p":0.95"#), "{text}");
    }

    #[test]
    fn absent_stays_absent_and_null_is_absent() {
        let out = forwarded(r#"{"model":"a","messages":[]}"#);
        assert_eq!(
            out,
            serde_json::json!({"model": "upstream-model", "messages": []})
        );
        let out = forwarded(
            r#"{"model":"a","messages":[],"max_tokens":null,"stop":null,"tools":null,"x":null}"#,
        );
        // Typed fields sent as null mean "not set" (OpenAI's reading); unknown ones pass as sent.
        assert_eq!(
            out,
            serde_json::json!({"model": "upstream-model", "messages": [], "x": null})
        );
    }

    #[test]
    fn tool_choice_and_stop_shapes() {
        for choice in [r#""auto""#, r#""none""#, r#""required""#] {
            let req: ChatRequest = serde_json::from_str(&format!(
                r#"{{"model":"a","messages":[],"tool_choice":{choice}}}"#
            ))
            .unwrap();
            assert!(matches!(req.tool_choice, Some(ToolChoice::Mode(_))));
        }
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"a","messages":[],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto"}},"stop":"x"}"#,
        )
        .unwrap();
        match &req.tool_choice {
            Some(ToolChoice::Named(named)) => {
                assert_eq!(named.kind, "allowed_tools");
                assert!(named.function.is_none());
                assert!(named.extra.contains_key("allowed_tools"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(req.stop.as_ref().unwrap().sequences(), vec!["x".to_owned()]);
        assert_eq!(req.max_output_tokens(), None);
    }

    #[test]
    fn streamed_tool_call_pieces_round_trip() {
        let raw = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#;
        let chunk: ChatChunk = serde_json::from_str(raw).unwrap();
        let calls = chunk.choices[0].delta.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].index, 1);
        assert_eq!(calls[0].id.as_deref(), Some("call_1"));
        let back = serde_json::to_value(&chunk).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(raw).unwrap()
        );
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

    #[test]
    fn chunk_output_counts_unknown_delta_fields() {
        let chunk = |delta: &str| -> ChatChunk {
            serde_json::from_str(&format!(
                r#"{{"id":"c","choices":[{{"index":0,"delta":{delta}}}]}}"#
            ))
            .unwrap()
        };
        assert!(!chunk(r#"{"role":"assistant","content":""}"#).has_output());
        assert!(!chunk(r#"{"role":"assistant","reasoning_content":null}"#).has_output());
        assert!(chunk(r#"{"reasoning_content":"thinking"}"#).has_output());
        assert!(chunk(r#"{"content":"Hi"}"#).has_output());
    }
}

// The types above keep unknown fields in `extra`; `open.rs` says why they are not derived.
open_struct! {
    ChatRequest("struct ChatRequest") {
        model: "model" [required],
        messages: "messages" [required],
        stream: "stream" [optional],
        stream_options: "stream_options" [optional],
        max_tokens: "max_tokens" [optional],
        max_completion_tokens: "max_completion_tokens" [optional],
        temperature: "temperature" [optional],
        top_p: "top_p" [optional],
        n: "n" [optional],
        stop: "stop" [optional],
        user: "user" [optional],
        tools: "tools" [optional],
        tool_choice: "tool_choice" [optional],
        parallel_tool_calls: "parallel_tool_calls" [optional],
        response_format: "response_format" [optional],
}
}

open_struct! {
    Message("struct Message") {
        role: "role" [required],
        content: "content" [optional],
        name: "name" [optional],
        tool_calls: "tool_calls" [optional],
        tool_call_id: "tool_call_id" [optional],
}
}

open_struct! {
    Tool("struct Tool") {
        kind: "type" [default function_type()],
        function: "function" [optional],
}
}

open_struct! {
    FunctionDefinition("struct FunctionDefinition") {
        name: "name" [required],
        description: "description" [optional],
        parameters: "parameters" [optional],
        strict: "strict" [optional],
}
}

open_struct! {
    NamedToolChoice("struct NamedToolChoice") {
        kind: "type" [default function_type()],
        function: "function" [optional],
}
}

open_struct! {
    FunctionName("struct FunctionName") {
        name: "name" [required],
}
}

open_struct! {
    ResponseFormat("struct ResponseFormat") {
        kind: "type" [required],
        json_schema: "json_schema" [optional],
}
}

open_struct! {
    JsonSchemaFormat("struct JsonSchemaFormat") {
        name: "name" [optional],
        description: "description" [optional],
        schema: "schema" [optional],
        strict: "strict" [optional],
}
}

open_struct! {
    StreamOptions("struct StreamOptions") {
        include_usage: "include_usage" [optional],
}
}
