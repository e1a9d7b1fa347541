//! The Responses API's types (`POST /v1/responses`), as OpenAI's API reference and its Python
//! SDK (`openai/types/responses/`) define them. Typed where the gateway reads or translates a
//! field; everything else kept in `extra` so a native forward sends what the client sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::schema::Extra;

/// `POST /v1/responses` request body.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponsesRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResponsesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The input as items (a string input is one user message).
    pub fn input_items(&self) -> Vec<InputItem> {
        match &self.input {
            None => Vec::new(),
            Some(Input::Text(text)) => vec![InputItem::user_text(text.clone())],
            Some(Input::Items(items)) => items.clone(),
        }
    }
}

/// `input`: a string, or a list of items.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_seq(deserializer, "a string or a list of input items").map(
            |either| match either {
                Ok(text) => Input::Text(text),
                Err(items) => Input::Items(items),
            },
        )
    }
}

/// One input item. One flat struct rather than an enum over `type`: a message may come without
/// `type` (the SDK's `EasyInputMessage`), and an item of a type the gateway does not translate
/// must still reach a native upstream unchanged. The translation checks each type's fields.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct InputItem {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ItemContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// A `function_call_output`'s output: a string, or a list of content parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl InputItem {
    pub fn user_text(text: String) -> InputItem {
        InputItem {
            kind: Some("message".into()),
            role: Some("user".into()),
            content: Some(ItemContent::Text(text)),
            ..InputItem::default()
        }
    }

    /// The item's type: `message` when it has none.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("message")
    }
}

/// A message's content: a string, or a list of parts.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ItemContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for ItemContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_seq(deserializer, "a string or a list of content parts").map(
            |either| match either {
                Ok(text) => ItemContent::Text(text),
                Err(parts) => ItemContent::Parts(parts),
            },
        )
    }
}

/// A string or a list, read by the JSON type (`#[serde(untagged)]` would say only "data did
/// not match any variant", and lose the path of an error inside the list).
fn string_or_seq<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
) -> Result<Result<String, Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Visitor<T>(&'static str, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
        type Value = Result<String, Vec<T>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Ok(text.to_owned()))
        }

        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Ok(text))
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Err)
        }
    }
    deserializer.deserialize_any(Visitor(expecting, std::marker::PhantomData))
}

/// A content part: `input_text`, `input_image`, `input_file`, or (in an assistant message sent
/// back) `output_text` / `refusal`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One entry of `tools`. Function tools are flat (`{type, name, description, parameters,
/// strict}`), unlike chat's `{type, function: {...}}`; built-in tools (`web_search` ...) keep
/// their fields in `extra`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `text`: the output format (`{"format": {"type": "text" | "json_object" | "json_schema",
/// ...}}`) and `verbosity`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TextConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `text.format`. A JSON schema's fields are flat here (`name`, `schema`, `strict`), unlike
/// chat's `response_format.json_schema`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TextFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The request with `model` replaced, for a native upstream: every field as the client sent
/// it (typed fields are written back exactly; unknown ones come from `extra`).
pub fn native_body(request: &ResponsesRequest, model: &str) -> Result<bytes::Bytes, String> {
    let mut value = serde_json::to_value(request).map_err(|e| e.to_string())?;
    if let Value::Object(map) = &mut value {
        map.insert("model".into(), Value::String(model.to_owned()));
    }
    serde_json::to_vec(&value)
        .map(bytes::Bytes::from)
        .map_err(|e| e.to_string())
}

// ------------------------------------------------------------------------------------------
// The Response object
// ------------------------------------------------------------------------------------------

/// A Response object (`"object": "response"`), as the gateway builds it for a translated
/// answer. Fields the SDK requires are always written (`null` where OpenAI writes `null`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponseObject {
    pub id: String,
    pub object: String,
    pub created_at: u64,
    pub status: String,
    pub background: bool,
    pub error: Option<Value>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub reasoning: Value,
    pub store: bool,
    pub temperature: Option<Number>,
    pub text: Value,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub top_p: Option<Number>,
    pub truncation: String,
    pub usage: Option<ResponseUsage>,
    pub user: Option<String>,
    pub metadata: Map<String, Value>,
}

impl ResponseObject {
    /// A response to `request`, with no output yet (`status: in_progress`): the request's
    /// settings echoed as OpenAI echoes them.
    pub fn started(request: &ResponsesRequest, id: String, created_at: u64, model: &str) -> Self {
        let tools = request
            .tools
            .iter()
            .flatten()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        let text = match &request.text {
            Some(text) => {
                let mut value = serde_json::to_value(text).unwrap_or(Value::Null);
                if value.get("format").is_none() {
                    value["format"] = serde_json::json!({"type": "text"});
                }
                value
            }
            None => serde_json::json!({"format": {"type": "text"}}),
        };
        ResponseObject {
            id,
            object: "response".into(),
            created_at,
            status: "in_progress".into(),
            background: false,
            error: None,
            incomplete_details: None,
            instructions: request.instructions.clone(),
            max_output_tokens: request.max_output_tokens,
            model: model.to_owned(),
            output: Vec::new(),
            parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
            previous_response_id: request.previous_response_id.clone(),
            reasoning: serde_json::json!({"effort": null, "summary": null}),
            store: request.store.unwrap_or(true),
            temperature: request.temperature.clone(),
            text,
            tool_choice: request
                .tool_choice
                .clone()
                .unwrap_or_else(|| Value::String("auto".into())),
            tools,
            top_p: request.top_p.clone(),
            truncation: "disabled".into(),
            usage: None,
            user: request.user.clone(),
            metadata: Map::new(),
        }
    }

    /// The text of every `output_text` part, joined (the SDK's `output_text`).
    pub fn output_text(&self) -> String {
        let mut text = String::new();
        for item in &self.output {
            if let OutputItem::Message { content, .. } = item {
                for part in content {
                    if let OutputContent::OutputText { text: t, .. } = part {
                        text.push_str(t);
                    }
                }
            }
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct IncompleteDetails {
    pub reason: String,
}

/// An output item the gateway produces: an assistant message or a function call.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        id: String,
        status: String,
        role: String,
        content: Vec<OutputContent>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: String,
    },
}

impl OutputItem {
    /// The item as an input item, for the next turn of a stored conversation.
    pub fn to_input(&self) -> InputItem {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }
}

/// A part of an output message.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    OutputText {
        text: String,
        annotations: Vec<Value>,
    },
    Refusal {
        refusal: String,
    },
}

/// `usage` of a Response.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ResponseUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: InputTokensDetails,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub output_tokens_details: OutputTokensDetails,
    #[serde(default)]
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct InputTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct OutputTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}
