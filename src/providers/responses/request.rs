//! A Responses request as a chat request, for every deployment that does not speak the
//! Responses API itself (Anthropic, Gemini, Bedrock, Ollama, the mock ...): the router then
//! sends it through that provider's own chat translation.
//!
//! What has no chat equivalent (built-in tools, file inputs, item references) is refused with
//! a 400 that names it; nothing is dropped silently. `reasoning` items of an earlier turn are
//! the exception: they carry no text a chat model can read, and are skipped.

use serde_json::Value;

use super::wire::{ContentPart as RPart, InputItem, ItemContent, ResponsesRequest, TextFormat};
use crate::schema::{
    ChatRequest, ContentPart, Extra, FunctionDefinition, FunctionName, JsonSchemaFormat, Message,
    MessageContent, NamedToolChoice, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};

/// Why a request cannot be translated: a message for a 400, and the parameter at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub message: String,
    pub param: String,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        param: param.into(),
    }
}

/// The chat request for `request`, with `history` (the stored items of the response named by
/// `previous_response_id`) before its own input. `instructions` become the system message; they
/// are not carried over from the earlier turn, as OpenAI does not carry them either.
pub fn to_chat(request: &ResponsesRequest, history: &[InputItem]) -> Result<ChatRequest, Invalid> {
    let mut messages = Vec::new();
    if let Some(instructions) = request.instructions.as_deref().filter(|s| !s.is_empty()) {
        messages.push(Message::text(Role::System, instructions));
    }
    let own = request.input_items();
    for (at, item) in history
        .iter()
        .map(|item| ("previous_response_id".to_owned(), item))
        .chain(
            own.iter()
                .enumerate()
                .map(|(i, item)| (input_at(request, i), item)),
        )
    {
        push_item(&mut messages, item, &at)?;
    }
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(invalid("input", "`input` must contain at least one item"));
    }
    let mut chat = ChatRequest::new(request.model.clone(), messages);
    chat.stream = request.stream;
    chat.max_completion_tokens = request.max_output_tokens;
    chat.temperature = request.temperature.clone();
    chat.top_p = request.top_p.clone();
    chat.user = request.user.clone();
    chat.parallel_tool_calls = request.parallel_tool_calls;
    if let Some(tools) = &request.tools {
        chat.tools = Some(
            tools
                .iter()
                .enumerate()
                .map(|(i, tool)| function_tool(tool, i))
                .collect::<Result<_, _>>()?,
        );
    }
    if let Some(choice) = &request.tool_choice {
        chat.tool_choice = Some(tool_choice(choice)?);
    }
    if let Some(format) = request.text.as_ref().and_then(|t| t.format.as_ref()) {
        chat.response_format = response_format(format)?;
    }
    if let Some(effort) = request
        .extra
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
    {
        chat.extra
            .insert("reasoning_effort".into(), Value::String(effort.to_owned()));
    }
    Ok(chat)
}

fn input_at(request: &ResponsesRequest, index: usize) -> String {
    match request.input {
        Some(super::wire::Input::Items(_)) => format!("input[{index}]"),
        _ => "input".to_owned(),
    }
}

fn push_item(messages: &mut Vec<Message>, item: &InputItem, at: &str) -> Result<(), Invalid> {
    match item.kind() {
        "message" => {
            let role = match item.role.as_deref() {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("system") => Role::System,
                Some("developer") => Role::Developer,
                Some(other) => {
                    return Err(invalid(
                        format!("{at}.role"),
                        format!(
                            "unknown role `{other}`: expected user, assistant, system or developer"
                        ),
                    ))
                }
                None => return Err(invalid(format!("{at}.role"), "a message needs a `role`")),
            };
            let Some(content) = &item.content else {
                return Err(invalid(
                    format!("{at}.content"),
                    "a message needs `content`",
                ));
            };
            let content = message_content(content, role, &format!("{at}.content"))?;
            // An assistant message right after another one (a text then its tool calls, as
            // `output` lists them) is one chat message.
            messages.push(Message::new(role, Some(content)));
        }
        "function_call" => {
            let call_id = required(&item.call_id, at, "call_id")?;
            let name = required(&item.name, at, "name")?;
            let arguments = item.arguments.clone().unwrap_or_default();
            let call = ToolCall::function(call_id, name, arguments);
            match messages.last_mut() {
                Some(last)
                    if last.role == Role::Assistant
                        && matches!(
                            last.content.as_ref(),
                            None | Some(MessageContent::Text(_))
                        ) =>
                {
                    last.tool_calls.get_or_insert_with(Vec::new).push(call);
                }
                _ => {
                    let mut message = Message::new(Role::Assistant, None);
                    message.tool_calls = Some(vec![call]);
                    messages.push(message);
                }
            }
        }
        "function_call_output" => {
            let call_id = required(&item.call_id, at, "call_id")?;
            let output = match &item.output {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for (i, part) in parts.iter().enumerate() {
                        match part.get("text").and_then(Value::as_str) {
                            Some(t) => text.push_str(t),
                            None => {
                                return Err(invalid(
                                    format!("{at}.output[{i}]"),
                                    "only text parts can be sent to this model",
                                ))
                            }
                        }
                    }
                    text
                }
                Some(_) => {
                    return Err(invalid(
                        format!("{at}.output"),
                        "`output` must be a string or a list of content parts",
                    ))
                }
                None => return Err(invalid(format!("{at}.output"), "`output` is required")),
            };
            let mut message = Message::text(Role::Tool, output);
            message.tool_call_id = Some(call_id.to_owned());
            messages.push(message);
        }
        // Reasoning of an earlier turn: opaque (often encrypted) to any other model.
        "reasoning" => {}
        other => {
            return Err(invalid(
                format!("{at}.type"),
                format!(
                    "input items of type `{other}` are not supported for this model: \
                     use message, function_call or function_call_output"
                ),
            ))
        }
    }
    Ok(())
}

fn required<'a>(value: &'a Option<String>, at: &str, field: &str) -> Result<&'a str, Invalid> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(format!("{at}.{field}"), format!("`{field}` is required")))
}

fn message_content(content: &ItemContent, role: Role, at: &str) -> Result<MessageContent, Invalid> {
    let parts = match content {
        ItemContent::Text(text) => return Ok(MessageContent::Text(text.clone())),
        ItemContent::Parts(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        out.push(content_part(part, &format!("{at}[{i}]"))?);
    }
    // Only users send images; every other role's content is its text, as most providers
    // take nothing else there.
    if role != Role::User || out.iter().all(|p| p.kind == "text") {
        let mut text = String::new();
        for (i, part) in out.iter().enumerate() {
            match &part.text {
                Some(t) => text.push_str(t),
                None => {
                    return Err(invalid(
                        format!("{at}[{i}]"),
                        "only text parts are allowed in this message",
                    ))
                }
            }
        }
        if role != Role::User || out.len() == 1 {
            return Ok(MessageContent::Text(text));
        }
    }
    Ok(MessageContent::Parts(out))
}

fn content_part(part: &RPart, at: &str) -> Result<ContentPart, Invalid> {
    match part.kind.as_str() {
        "input_text" | "output_text" | "text" => {
            Ok(ContentPart::text(part.text.clone().ok_or_else(|| {
                invalid(format!("{at}.text"), "`text` is required")
            })?))
        }
        "refusal" => Ok(ContentPart::text(part.refusal.clone().unwrap_or_default())),
        "input_image" => {
            let Some(url) = &part.image_url else {
                return Err(invalid(
                    format!("{at}.image_url"),
                    "only images given by `image_url` (a URL or a data: URL) can be sent to \
                     this model; `file_id` needs an OpenAI deployment",
                ));
            };
            let mut image = ContentPart::image(url.clone());
            if let (Some(detail), Some(image_url)) = (&part.detail, image.image_url.as_mut()) {
                if detail != "auto" {
                    image_url.detail = Some(detail.clone());
                }
            }
            Ok(image)
        }
        other => Err(invalid(
            format!("{at}.type"),
            format!(
                "content parts of type `{other}` are not supported for this model: use \
                 input_text or input_image"
            ),
        )),
    }
}

fn function_tool(tool: &super::wire::Tool, index: usize) -> Result<Tool, Invalid> {
    let at = format!("tools[{index}]");
    if tool.kind != "function" {
        return Err(invalid(
            format!("{at}.type"),
            format!(
                "tools of type `{}` are not supported for this model: only function tools \
                 are (built-in tools need an OpenAI deployment)",
                tool.kind
            ),
        ));
    }
    let name = tool
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid(format!("{at}.name"), "a function tool needs a `name`"))?;
    Ok(Tool {
        kind: "function".into(),
        function: Some(FunctionDefinition {
            name,
            description: tool.description.clone(),
            parameters: tool.parameters.clone(),
            strict: tool.strict,
            extra: Extra::new(),
        }),
        extra: Extra::new(),
    })
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, Invalid> {
    match choice {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Ok(ToolChoice::Mode(mode.clone()))
        }
        Value::Object(object) if object.get("type").and_then(Value::as_str) == Some("function") => {
            let name = object
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "`name` is required"))?;
            Ok(ToolChoice::Named(NamedToolChoice {
                kind: "function".into(),
                function: Some(FunctionName {
                    name: name.to_owned(),
                    extra: Extra::new(),
                }),
                extra: Extra::new(),
            }))
        }
        _ => Err(invalid(
            "tool_choice",
            "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \
             \"name\": ...} for this model",
        )),
    }
}

fn response_format(format: &TextFormat) -> Result<Option<ResponseFormat>, Invalid> {
    let format = match format.kind.as_str() {
        "text" => return Ok(None),
        "json_object" => ResponseFormat {
            kind: "json_object".into(),
            json_schema: None,
            extra: Extra::new(),
        },
        "json_schema" => ResponseFormat {
            kind: "json_schema".into(),
            json_schema: Some(JsonSchemaFormat {
                name: format.name.clone(),
                description: format.description.clone(),
                schema: format.schema.clone(),
                strict: format.strict,
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        },
        other => {
            return Err(invalid(
                "text.format.type",
                format!("unknown format `{other}`: expected text, json_object or json_schema"),
            ))
        }
    };
    Ok(Some(format))
}

/// The request fields the translation leaves out, for the dropped-params header: every field
/// it does not map (OpenAI-side features such as `include`, `truncation`, `service_tier`, and
/// any field it does not know). The gateway's own fields (`metadata`, `fallbacks` ...) are
/// already gone when this runs.
pub fn untranslated(request: &ResponsesRequest) -> Vec<String> {
    request
        .extra
        .iter()
        .filter(|(name, value)| name.as_str() != "reasoning" && !value.is_null())
        .map(|(name, _)| name.clone())
        .collect()
}
