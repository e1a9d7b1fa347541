//! An OpenAI chat request as an Ollama `/api/chat` or `/api/generate` request.
//!
//! - `temperature`, `top_p`, `seed`, `top_k`, `presence_penalty`, `frequency_penalty` →
//!   `options` under the same names; `max_completion_tokens`/`max_tokens` → `options.num_predict`;
//!   `stop` → `options.stop`;
//! - `response_format` `json_object` → `format: "json"`, `json_schema` → `format: <schema>`;
//! - `reasoning_effort` → `think` (`"low"`/`"medium"`/`"high"` for gpt-oss models, which take
//!   a level; `true`/`false` for the others);
//! - images: base64 data URLs → `images` (Ollama cannot fetch a URL itself);
//! - tools (`/api/chat` only) pass as OpenAI wrote them; `tool_choice: "none"` sends no tools;
//!   assistant `tool_calls` get their arguments as objects, `tool` messages their function's
//!   name in `tool_name`;
//! - Ollama's own fields sent by a client (`keep_alive`, `think`, `options`, `format`) pass
//!   through, `options` merged under the mapped ones.
//!
//! `/api/generate` takes one prompt: system messages become `system`, a single user turn is the
//! prompt as is, and a longer conversation is written out turn by turn (`### User:` ...) the
//! way LiteLLM's `ollama/` provider does.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::wire::{self, Message, ToolCall, ToolFunction};
use crate::providers::params::{self, Dropped};
use crate::providers::translate::{data_url, invalid, tool_arguments};
use crate::providers::ProviderError;
use crate::schema::{ChatRequest, MessageContent, Role, ToolChoice};

/// OpenAI parameters (kept in `extra`) that map to Ollama's `options` under the same name.
const OPTIONS: &[&str] = &["seed", "top_k", "presence_penalty", "frequency_penalty"];

/// Ollama request fields a client may send through as they are.
const NATIVE: &[&str] = &["keep_alive", "think"];

/// Which native API a deployment calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `ollama_chat/...`: `/api/chat`.
    Chat,
    /// `ollama/...`: `/api/generate`.
    Generate,
}

impl Api {
    pub fn provider(self) -> &'static str {
        match self {
            Api::Chat => "ollama_chat",
            Api::Generate => "ollama",
        }
    }
}

/// Checks the parameters of `request` Ollama has no equivalent for.
pub fn check_params(
    api: Api,
    request: &ChatRequest,
    dropped: &mut Dropped,
) -> Result<(), ProviderError> {
    for (name, value) in &request.extra {
        let name = name.as_str();
        if OPTIONS.contains(&name)
            || NATIVE.contains(&name)
            || matches!(name, "options" | "format" | "reasoning_effort")
            || params::is_neutral(name, value)
        {
            continue;
        }
        if params::INFORMATIONAL.contains(&name) {
            dropped.note(name);
            continue;
        }
        dropped.unsupported(name)?;
    }
    if request.n.is_some_and(|n| n > 1) {
        dropped.unsupported("n")?;
    }
    if request.user.is_some() {
        dropped.note("user");
    }
    if request.parallel_tool_calls == Some(false) {
        // Ollama decides alone how many calls a turn makes.
        dropped.unsupported("parallel_tool_calls")?;
    }
    if let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) {
        if api == Api::Generate || tools.iter().any(|tool| tool.function.is_none()) {
            dropped.unsupported("tools")?;
        }
    }
    match &request.tool_choice {
        None => {}
        Some(ToolChoice::Mode(mode)) if mode == "auto" || mode == "none" => {}
        // Ollama has no way to force a call.
        Some(_) => dropped.unsupported("tool_choice")?,
    }
    if request.messages.iter().any(|m| m.name.is_some()) {
        dropped.note("messages[].name");
    }
    Ok(())
}

/// `options`: what the client sent natively, then the mapped OpenAI parameters over it.
fn options(request: &ChatRequest) -> Map<String, Value> {
    let mut options = match request.extra.get("options") {
        Some(Value::Object(native)) => native.clone(),
        _ => Map::new(),
    };
    if let Some(temperature) = &request.temperature {
        options.insert("temperature".into(), Value::Number(temperature.clone()));
    }
    if let Some(top_p) = &request.top_p {
        options.insert("top_p".into(), Value::Number(top_p.clone()));
    }
    if let Some(max) = request.max_output_tokens() {
        options.insert("num_predict".into(), max.into());
    }
    if let Some(stop) = &request.stop {
        options.insert("stop".into(), stop.sequences().into());
    }
    for name in OPTIONS {
        if let Some(value) = request.extra.get(*name).filter(|v| !v.is_null()) {
            options.insert((*name).into(), value.clone());
        }
    }
    options
}

/// `format`: `"json"`, a JSON schema, or the client's own native `format`.
fn format(request: &ChatRequest) -> Option<Value> {
    match &request.response_format {
        Some(f) if f.kind == "json_object" => Some(Value::from("json")),
        Some(f) if f.kind == "json_schema" => Some(
            f.json_schema
                .as_ref()
                .and_then(|s| s.schema.clone())
                .unwrap_or_else(|| Value::from("json")),
        ),
        _ => request
            .extra
            .get("format")
            .filter(|v| !v.is_null())
            .cloned(),
    }
}

/// `keep_alive` and `think` as sent, and `reasoning_effort` as `think`.
fn native(request: &ChatRequest, model: &str) -> Map<String, Value> {
    let mut native = Map::new();
    if let Some(effort) = request
        .extra
        .get("reasoning_effort")
        .and_then(Value::as_str)
    {
        let think = match effort {
            "none" => Value::Bool(false),
            "low" | "medium" | "high" if model.contains("gpt-oss") => Value::from(effort),
            _ => Value::Bool(true),
        };
        native.insert("think".into(), think);
    }
    for name in NATIVE {
        if let Some(value) = request.extra.get(*name).filter(|v| !v.is_null()) {
            native.insert((*name).into(), value.clone());
        }
    }
    native
}

/// The text and the base64 images of one message's content.
fn content(
    content: Option<&MessageContent>,
    at: &str,
    images_allowed: bool,
) -> Result<(String, Vec<String>), ProviderError> {
    let mut text = String::new();
    let mut images = Vec::new();
    match content {
        None => {}
        Some(MessageContent::Text(t)) => text.push_str(t),
        Some(MessageContent::Parts(parts)) => {
            for (index, part) in parts.iter().enumerate() {
                let at = format!("{at}.content[{index}]");
                match part.kind.as_str() {
                    "text" => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(part.text.as_deref().unwrap_or_default());
                    }
                    "image_url" if images_allowed => {
                        let url = part
                            .image_url
                            .as_ref()
                            .map(|i| i.url.as_str())
                            .ok_or_else(|| invalid(&at, "an image part needs `image_url.url`"))?;
                        match data_url(url, &at)? {
                            Some((_, data)) => images.push(data.to_owned()),
                            None => {
                                return Err(invalid(
                                    &at,
                                    "Ollama takes images inline: send a base64 data URL (`data:image/png;base64,...`)",
                                ))
                            }
                        }
                    }
                    other => {
                        return Err(invalid(
                            &at,
                            format!("content parts of type `{other}` are not supported here"),
                        ))
                    }
                }
            }
        }
    }
    Ok((text, images))
}

/// The messages of an `/api/chat` request.
fn messages(request: &ChatRequest) -> Result<Vec<Message>, ProviderError> {
    // Ollama answers a tool call by function name; OpenAI by call id.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.iter().enumerate() {
        let at = format!("messages[{index}]");
        let (text, images) = content(message.content.as_ref(), &at, message.role == Role::User)?;
        let mut converted = Message {
            role: "user",
            content: text,
            images,
            tool_calls: Vec::new(),
            tool_name: None,
            thinking: None,
        };
        match message.role {
            Role::System | Role::Developer => converted.role = "system",
            Role::User => {}
            Role::Assistant => {
                converted.role = "assistant";
                converted.thinking = message
                    .extra
                    .get("reasoning_content")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                for (call_index, call) in message.tool_calls.iter().flatten().enumerate() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                    converted.tool_calls.push(ToolCall {
                        id: (!call.id.is_empty()).then(|| call.id.clone()),
                        function: ToolFunction {
                            name: call.function.name.clone(),
                            arguments: tool_arguments(
                                &call.function.arguments,
                                &format!("{at}.tool_calls[{call_index}].function.arguments"),
                            )?,
                        },
                    });
                }
            }
            Role::Tool => {
                converted.role = "tool";
                converted.tool_name = message
                    .tool_call_id
                    .as_deref()
                    .and_then(|id| call_names.get(id))
                    .map(|name| (*name).to_owned());
            }
            Role::Function => {
                converted.role = "tool";
                converted.tool_name.clone_from(&message.name);
            }
        }
        out.push(converted);
    }
    Ok(out)
}

pub fn to_chat<'a>(
    request: &ChatRequest,
    model: &'a str,
    dropped: &mut Dropped,
) -> Result<wire::ChatRequest<'a>, ProviderError> {
    check_params(Api::Chat, request, dropped)?;
    let no_tools = matches!(&request.tool_choice, Some(ToolChoice::Mode(m)) if m == "none");
    let tools = request
        .tools
        .as_ref()
        .filter(|tools| !tools.is_empty() && !no_tools)
        .map(|tools| {
            tools
                .iter()
                .filter(|tool| tool.function.is_some())
                .map(|tool| serde_json::to_value(tool).unwrap_or(Value::Null))
                .collect::<Vec<Value>>()
        });
    Ok(wire::ChatRequest {
        model,
        messages: messages(request)?,
        stream: request.is_stream(),
        format: format(request),
        options: options(request),
        tools,
        native: native(request, model),
    })
}

pub fn to_generate<'a>(
    request: &ChatRequest,
    model: &'a str,
    dropped: &mut Dropped,
) -> Result<wire::GenerateRequest<'a>, ProviderError> {
    check_params(Api::Generate, request, dropped)?;
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&str, String)> = Vec::new();
    let mut images = Vec::new();
    for (index, message) in request.messages.iter().enumerate() {
        let at = format!("messages[{index}]");
        let (mut text, message_images) =
            content(message.content.as_ref(), &at, message.role == Role::User)?;
        images.extend(message_images);
        let label = match message.role {
            Role::System | Role::Developer => {
                system.push(text);
                continue;
            }
            Role::User => "User",
            Role::Assistant => {
                for call in message.tool_calls.iter().flatten() {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(
                        &serde_json::json!({"name": call.function.name,
                                            "arguments": call.function.arguments})
                        .to_string(),
                    );
                }
                "Assistant"
            }
            Role::Tool | Role::Function => "Tool",
        };
        turns.push((label, text));
    }
    let prompt = match turns.as_slice() {
        [("User", only)] => only.clone(),
        _ => turns
            .iter()
            .map(|(label, text)| format!("### {label}:\n{text}\n\n"))
            .collect(),
    };
    Ok(wire::GenerateRequest {
        model,
        prompt,
        system: (!system.is_empty()).then(|| system.join("\n")),
        images,
        stream: request.is_stream(),
        format: format(request),
        options: options(request),
        native: native(request, model),
    })
}
