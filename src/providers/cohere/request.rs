//! An OpenAI chat request as a Cohere Chat v2 request (`POST /v2/chat`). Cohere's v2 messages
//! are close to OpenAI's (roles `system`/`user`/`assistant`/`tool`, tool calls with JSON-text
//! arguments, `tool_call_id` on results), so mostly the parameters are renamed:
//!
//! - `max_completion_tokens`/`max_tokens` → `max_tokens`, `top_p` → `p`, `top_k` → `k`,
//!   `stop` → `stop_sequences`; `temperature`, `seed`, `frequency_penalty`,
//!   `presence_penalty` keep their names;
//! - `response_format` `json_object` → `{"type": "json_object"}`, `json_schema` → the same with
//!   `json_schema: <schema>`;
//! - `tool_choice` `required` → `REQUIRED`, `none` → `NONE`, a named function → `REQUIRED`
//!   with only that tool offered; `auto` is Cohere's default;
//! - Cohere's own fields (`documents`, `citation_options`, `safety_mode`, `strict_tools`,
//!   `thinking`, `priority`) pass through.

use serde_json::{json, Map, Value};

use crate::providers::params::{self, Dropped};
use crate::providers::translate::invalid;
use crate::providers::ProviderError;
use crate::schema::{ChatRequest, MessageContent, Role, ToolChoice};

/// OpenAI parameters (kept in `extra`) Cohere takes under another name or the same one.
const MAPPED_EXTRA: &[(&str, &str)] = &[
    ("seed", "seed"),
    ("top_k", "k"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
];

/// Cohere request fields a client may send through as they are.
const NATIVE: &[&str] = &[
    "documents",
    "citation_options",
    "safety_mode",
    "strict_tools",
    "thinking",
    "priority",
];

pub fn check_params(request: &ChatRequest, dropped: &mut Dropped) -> Result<(), ProviderError> {
    for (name, value) in &request.extra {
        let name = name.as_str();
        if MAPPED_EXTRA.iter().any(|(from, _)| *from == name)
            || NATIVE.contains(&name)
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
        dropped.unsupported("parallel_tool_calls")?;
    }
    if let Some(tools) = &request.tools {
        if tools.iter().any(|tool| tool.function.is_none()) {
            dropped.unsupported("tools")?;
        }
    }
    if request.messages.iter().any(|m| m.name.is_some()) {
        dropped.note("messages[].name");
    }
    Ok(())
}

/// A message's content as Cohere takes it: a string, or text and image parts.
fn content(
    content: Option<&MessageContent>,
    at: &str,
    images: bool,
) -> Result<Value, ProviderError> {
    match content {
        None => Ok(Value::from("")),
        Some(MessageContent::Text(text)) => Ok(Value::from(text.as_str())),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (index, part) in parts.iter().enumerate() {
                match part.kind.as_str() {
                    "text" => out.push(
                        json!({"type": "text", "text": part.text.as_deref().unwrap_or_default()}),
                    ),
                    "image_url" if images => {
                        let url =
                            part.image_url
                                .as_ref()
                                .map(|i| i.url.as_str())
                                .ok_or_else(|| {
                                    invalid(
                                        &format!("{at}.content[{index}]"),
                                        "an image part needs `image_url.url`",
                                    )
                                })?;
                        out.push(json!({"type": "image_url", "image_url": {"url": url}}));
                    }
                    other => {
                        return Err(invalid(
                            &format!("{at}.content[{index}]"),
                            format!("content parts of type `{other}` are not supported here"),
                        ))
                    }
                }
            }
            Ok(Value::Array(out))
        }
    }
}

fn messages(request: &ChatRequest) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.iter().enumerate() {
        let at = format!("messages[{index}]");
        let converted = match message.role {
            Role::System | Role::Developer => {
                json!({"role": "system", "content": content(message.content.as_ref(), &at, false)?})
            }
            Role::User => {
                json!({"role": "user", "content": content(message.content.as_ref(), &at, true)?})
            }
            Role::Assistant => {
                let mut assistant = Map::new();
                assistant.insert("role".into(), "assistant".into());
                let text = content(message.content.as_ref(), &at, false)?;
                let empty = text.as_str() == Some("") || text.as_array().is_some_and(Vec::is_empty);
                if !empty {
                    assistant.insert("content".into(), text);
                }
                if let Some(calls) = message.tool_calls.as_ref().filter(|c| !c.is_empty()) {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|call| {
                            json!({"id": call.id, "type": "function",
                                   "function": {"name": call.function.name,
                                                "arguments": call.function.arguments}})
                        })
                        .collect();
                    assistant.insert("tool_calls".into(), calls.into());
                    // Cohere keeps the model's plan for a call; an answer sent back through
                    // the OpenAI format carries it as `reasoning_content`.
                    if let Some(plan) = message
                        .extra
                        .get("reasoning_content")
                        .and_then(Value::as_str)
                    {
                        assistant.insert("tool_plan".into(), plan.into());
                    }
                }
                Value::Object(assistant)
            }
            Role::Tool | Role::Function => {
                let call_id = message
                    .tool_call_id
                    .clone()
                    .or_else(|| message.name.clone())
                    .ok_or_else(|| invalid(&at, "a tool message needs `tool_call_id`"))?;
                json!({"role": "tool", "tool_call_id": call_id,
                       "content": content(message.content.as_ref(), &at, false)?})
            }
        };
        out.push(converted);
    }
    Ok(out)
}

pub fn to_cohere(
    request: &ChatRequest,
    model: &str,
    dropped: &mut Dropped,
) -> Result<Value, ProviderError> {
    check_params(request, dropped)?;
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), messages(request)?.into());
    body.insert("stream".into(), request.is_stream().into());
    if let Some(max) = request.max_output_tokens() {
        body.insert("max_tokens".into(), max.into());
    }
    if let Some(temperature) = &request.temperature {
        body.insert("temperature".into(), Value::Number(temperature.clone()));
    }
    if let Some(top_p) = &request.top_p {
        body.insert("p".into(), Value::Number(top_p.clone()));
    }
    if let Some(stop) = &request.stop {
        body.insert("stop_sequences".into(), stop.sequences().into());
    }
    for (from, to) in MAPPED_EXTRA {
        if let Some(value) = request.extra.get(*from).filter(|v| !v.is_null()) {
            body.insert((*to).into(), value.clone());
        }
    }
    match &request.response_format {
        Some(f) if f.kind == "json_object" => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(f) if f.kind == "json_schema" => {
            let mut format = json!({"type": "json_object"});
            if let Some(schema) = f.json_schema.as_ref().and_then(|s| s.schema.clone()) {
                format["json_schema"] = schema;
            }
            body.insert("response_format".into(), format);
        }
        _ => {}
    }
    let mut only: Option<&str> = None;
    match &request.tool_choice {
        Some(ToolChoice::Mode(mode)) if mode == "required" => {
            body.insert("tool_choice".into(), "REQUIRED".into());
        }
        Some(ToolChoice::Mode(mode)) if mode == "none" => {
            body.insert("tool_choice".into(), "NONE".into());
        }
        Some(ToolChoice::Named(named)) => {
            only = named.function.as_ref().map(|f| f.name.as_str());
            body.insert("tool_choice".into(), "REQUIRED".into());
        }
        _ => {}
    }
    if let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) {
        let tools: Vec<Value> = tools
            .iter()
            .filter(|tool| {
                tool.function
                    .as_ref()
                    .is_some_and(|f| only.is_none_or(|name| f.name == name))
            })
            .map(|tool| json!({"type": "function", "function": tool.function}))
            .collect();
        body.insert("tools".into(), tools.into());
    }
    for name in NATIVE {
        if let Some(value) = request.extra.get(*name).filter(|v| !v.is_null()) {
            body.insert((*name).into(), value.clone());
        }
    }
    Ok(Value::Object(body))
}
