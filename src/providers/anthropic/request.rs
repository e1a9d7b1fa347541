//! Requests, both ways: an OpenAI chat request as an Anthropic Messages request (a client of
//! `/v1/chat/completions` reaching Claude), and an Anthropic Messages request as an OpenAI chat
//! request (a client of `/v1/messages` reaching any other model).
//!
//! What does not map is handled by [`Dropped`]: refused with a 400 naming it, or, with
//! `drop_params`, dropped and reported. Nothing is dropped silently.

use serde_json::{Map, Value};

use super::wire::{
    Content, ContentBlock, InputMessage, MessagesRequest, Metadata, Role as ARole, Source,
    SystemPrompt, Thinking, ToolChoice as AToolChoice, ToolDefinition,
};
use crate::providers::params::{self, Dropped};
use crate::providers::translate::{data_url, invalid, tool_arguments};
use crate::providers::{ProviderError, Upstream};
use crate::schema::{
    ChatRequest, ContentPart, Extra, FunctionDefinition, ImageUrl, Message, MessageContent,
    NamedToolChoice, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice,
};

/// Used when neither the request nor `model_info.max_tokens` sets an output cap: Anthropic
/// requires `max_tokens`, OpenAI does not. 4096 is what every current Claude model can produce
/// and what LiteLLM uses; a longer answer ends with `finish_reason: "length"`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The tool a `response_format` becomes on Anthropic (which has no JSON mode): the model is made
/// to call it, and its input is handed back to the client as the message text. The name is
/// LiteLLM's, so prompts and logs read the same; a client tool of this name is refused when a
/// `response_format` is set.
pub const JSON_TOOL_NAME: &str = "json_tool_call";

/// Top-level Anthropic fields an OpenAI-format client may send through (as with LiteLLM):
/// forwarded to Anthropic as they are.
const NATIVE_FIELDS: &[&str] = &[
    "top_k",
    "thinking",
    "container",
    "mcp_servers",
    "context_management",
];

/// `reasoning_effort` as a thinking budget (tokens), the mapping LiteLLM uses.
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        _ => None, // "none", "minimal": no extended thinking
    }
}

// ------------------------------------------------------------------------------------------
// OpenAI → Anthropic
// ------------------------------------------------------------------------------------------

/// Checks the parameters of `request` that have no Anthropic equivalent (see
/// [`crate::providers::params`]).
pub fn check_params(request: &ChatRequest, dropped: &mut Dropped) -> Result<(), ProviderError> {
    if request.n.is_some_and(|n| n > 1) {
        dropped.unsupported("n")?;
    }
    for (name, value) in &request.extra {
        let name = name.as_str();
        if NATIVE_FIELDS.contains(&name) || name == "reasoning_effort" {
            continue;
        }
        if params::is_neutral(name, value) {
            continue;
        }
        if params::INFORMATIONAL.contains(&name) {
            dropped.note(name);
            continue;
        }
        dropped.unsupported(name)?;
    }
    if let Some(tools) = &request.tools {
        if tools.iter().any(|tool| tool.function.is_none()) {
            dropped.unsupported("tools")?;
        }
    }
    if let Some(stop) = &request.stop {
        // Anthropic refuses stop sequences that are only whitespace ("\n" is a common one).
        if stop.sequences().iter().any(|s| s.trim().is_empty()) {
            dropped.unsupported("stop")?;
        }
    }
    if request.messages.iter().any(|m| m.name.is_some()) {
        dropped.note("messages[].name");
    }
    Ok(())
}

/// The Anthropic request for an OpenAI chat request. `upstream` supplies the model name and
/// the `max_tokens` default.
pub fn to_anthropic(
    request: &ChatRequest,
    upstream: &Upstream,
    dropped: &mut Dropped,
) -> Result<MessagesRequest, ProviderError> {
    check_params(request, dropped)?;
    let mut system = Vec::new();
    let mut messages: Vec<InputMessage> = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.iter().enumerate() {
        let at = format!("messages[{index}]");
        match message.role {
            Role::System | Role::Developer => system.extend(system_blocks(message, &at)?),
            Role::User => {
                let mut blocks = user_blocks(message.content.as_ref(), &at)?;
                apply_message_cache_control(message, &mut blocks);
                push_blocks(&mut messages, ARole::User, blocks);
            }
            Role::Assistant => {
                let mut blocks = assistant_blocks(message, &at)?;
                apply_message_cache_control(message, &mut blocks);
                push_blocks(&mut messages, ARole::Assistant, blocks);
            }
            Role::Tool => {
                let block = tool_result_block(message, &at)?;
                push_blocks(&mut messages, ARole::User, vec![block]);
            }
            Role::Function => {
                // The pre-tools function-calling protocol: no call ids to pair results with.
                dropped.unsupported("messages[].role: function")?;
            }
        }
    }
    for message in &mut messages {
        compact(message);
    }

    let mut out = MessagesRequest::new(upstream.model.clone(), messages);
    out.system = match system.as_slice() {
        [] => None,
        [ContentBlock::Text { text, extra }] if extra.is_empty() => {
            Some(SystemPrompt::Text(text.clone()))
        }
        _ => Some(SystemPrompt::Blocks(system)),
    };
    out.stream = request.is_stream().then_some(true);
    out.temperature.clone_from(&request.temperature);
    out.top_p.clone_from(&request.top_p);
    if let Some(stop) = &request.stop {
        let sequences: Vec<String> = stop
            .sequences()
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        if !sequences.is_empty() {
            out.stop_sequences = Some(sequences);
        }
    }
    if let Some(user) = &request.user {
        out.metadata = Some(Metadata {
            user_id: Some(user.clone()),
            extra: Extra::new(),
        });
    }
    for (name, value) in &request.extra {
        if NATIVE_FIELDS.contains(&name.as_str()) {
            out.extra.insert(name.clone(), value.clone());
        }
    }

    let mut max_tokens = request
        .max_output_tokens()
        .or(upstream.max_output_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    if !out.extra.contains_key("thinking") {
        let effort = request
            .extra
            .get("reasoning_effort")
            .and_then(Value::as_str);
        if let Some(budget) = effort.and_then(thinking_budget) {
            // Anthropic requires the budget to be below max_tokens; keep the room the client
            // asked for on top of the thinking.
            if max_tokens <= budget {
                max_tokens += budget;
            }
            out.thinking = Some(Thinking {
                kind: "enabled".into(),
                budget_tokens: Some(budget),
                extra: Extra::new(),
            });
        }
    }
    out.max_tokens = Some(max_tokens);

    let (tools, tool_choice) = tools_and_choice(request)?;
    out.tools = tools;
    out.tool_choice = tool_choice;
    Ok(out)
}

fn text_of_part(part: &ContentPart) -> Option<&str> {
    (part.kind == "text").then(|| part.text.as_deref().unwrap_or(""))
}

/// The part's `cache_control` (Anthropic's prompt caching marker, which OpenAI-format clients
/// put on content parts), carried over to the block.
fn cache_control_of(extra: &Extra) -> Extra {
    let mut out = Extra::new();
    if let Some(value) = extra.get("cache_control") {
        out.insert("cache_control".into(), value.clone());
    }
    out
}

fn apply_message_cache_control(message: &Message, blocks: &mut [ContentBlock]) {
    let Some(value) = message.extra.get("cache_control") else {
        return;
    };
    if let Some(
        ContentBlock::Text { extra, .. }
        | ContentBlock::Image { extra, .. }
        | ContentBlock::Document { extra, .. }
        | ContentBlock::ToolUse { extra, .. }
        | ContentBlock::ToolResult { extra, .. },
    ) = blocks.last_mut()
    {
        extra.insert("cache_control".into(), value.clone());
    }
}

fn system_blocks(message: &Message, at: &str) -> Result<Vec<ContentBlock>, ProviderError> {
    let mut blocks = Vec::new();
    match &message.content {
        None => {}
        Some(MessageContent::Text(text)) if !text.trim().is_empty() => {
            blocks.push(ContentBlock::text(text.clone()));
        }
        Some(MessageContent::Text(_)) => {}
        Some(MessageContent::Parts(parts)) => {
            for (index, part) in parts.iter().enumerate() {
                let Some(text) = text_of_part(part) else {
                    return Err(invalid(
                        &format!("{at}.content[{index}]"),
                        "system messages can only contain text on Anthropic",
                    ));
                };
                if !text.trim().is_empty() {
                    blocks.push(ContentBlock::Text {
                        text: text.to_owned(),
                        extra: cache_control_of(&part.extra),
                    });
                }
            }
        }
    }
    apply_message_cache_control(message, &mut blocks);
    Ok(blocks)
}

fn user_blocks(
    content: Option<&MessageContent>,
    at: &str,
) -> Result<Vec<ContentBlock>, ProviderError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) if text.trim().is_empty() => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(vec![ContentBlock::text(text.clone())]),
        Some(MessageContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (index, part) in parts.iter().enumerate() {
                let at = format!("{at}.content[{index}]");
                if let Some(block) = part_block(part, &at)? {
                    blocks.push(block);
                }
            }
            Ok(blocks)
        }
    }
}

/// One OpenAI content part as an Anthropic block (`None` for a text part that is empty or only
/// whitespace, which Anthropic refuses: "text content blocks must contain non-whitespace
/// text").
fn part_block(part: &ContentPart, at: &str) -> Result<Option<ContentBlock>, ProviderError> {
    let extra = cache_control_of(&part.extra);
    match part.kind.as_str() {
        "text" => {
            let text = part.text.clone().unwrap_or_default();
            Ok((!text.trim().is_empty()).then_some(ContentBlock::Text { text, extra }))
        }
        "image_url" => {
            let Some(image) = &part.image_url else {
                return Err(invalid(at, "an image_url part needs `image_url.url`"));
            };
            let source = url_source(&image.url, &format!("{at}.image_url.url"))?;
            let is_pdf = source.media_type.as_deref() == Some("application/pdf");
            Ok(Some(if is_pdf {
                ContentBlock::Document { source, extra }
            } else {
                ContentBlock::Image { source, extra }
            }))
        }
        "file" => {
            let data = part
                .extra
                .get("file")
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(
                        at,
                        "only files sent inline (`file.file_data` as a data URL) can be translated",
                    )
                })?;
            let source = url_source(data, &format!("{at}.file.file_data"))?;
            Ok(Some(ContentBlock::Document { source, extra }))
        }
        other => Err(invalid(
            at,
            format!("content parts of type `{other}` cannot be sent to Anthropic"),
        )),
    }
}

/// An `http(s)` URL or a base64 `data:` URL as an Anthropic source.
fn url_source(url: &str, at: &str) -> Result<Source, ProviderError> {
    if let Some((media_type, data)) = data_url(url, at)? {
        return Ok(Source {
            kind: "base64".into(),
            media_type: Some(media_type.to_owned()),
            data: Some(data.to_owned()),
            url: None,
            extra: Extra::new(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Source {
            kind: "url".into(),
            media_type: None,
            data: None,
            url: Some(url.to_owned()),
            extra: Extra::new(),
        });
    }
    Err(invalid(at, "must be an http(s) URL or a base64 data URL"))
}

fn assistant_blocks(message: &Message, at: &str) -> Result<Vec<ContentBlock>, ProviderError> {
    let mut blocks = Vec::new();
    // Thinking blocks from an earlier Claude answer go back first and verbatim: Anthropic
    // checks their signatures when a tool call follows thinking.
    if let Some(Value::Array(thinking)) = message.extra.get("thinking_blocks") {
        for block in thinking {
            if let Ok(block) = serde_json::from_value::<ContentBlock>(block.clone()) {
                blocks.push(block);
            }
        }
    }
    match &message.content {
        None => {}
        Some(MessageContent::Text(text)) if !text.trim().is_empty() => {
            blocks.push(ContentBlock::text(text.clone()));
        }
        Some(MessageContent::Text(_)) => {}
        Some(MessageContent::Parts(parts)) => {
            for (index, part) in parts.iter().enumerate() {
                match text_of_part(part) {
                    Some(text) if text.trim().is_empty() => {}
                    Some(text) => blocks.push(ContentBlock::Text {
                        text: text.to_owned(),
                        extra: cache_control_of(&part.extra),
                    }),
                    // OpenAI's `refusal` parts are the model's own words.
                    None if part.kind == "refusal" => {
                        if let Some(Value::String(text)) = part.extra.get("refusal") {
                            blocks.push(ContentBlock::text(text.clone()));
                        }
                    }
                    None => {
                        return Err(invalid(
                            &format!("{at}.content[{index}]"),
                            "assistant messages can only contain text on Anthropic",
                        ))
                    }
                }
            }
        }
    }
    for (index, call) in message.tool_calls.iter().flatten().enumerate() {
        let input = tool_arguments(
            &call.function.arguments,
            &format!("{at}.tool_calls[{index}].function.arguments"),
        )?;
        blocks.push(ContentBlock::ToolUse {
            id: tool_id(&call.id),
            name: call.function.name.clone(),
            input,
            extra: Extra::new(),
        });
    }
    Ok(blocks)
}

/// Anthropic tool ids match `^[a-zA-Z0-9_-]+$`; ids from other providers may not. The same
/// replacement applies to the call and its result, so they still pair up.
pub fn tool_id(id: &str) -> String {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return id.to_owned();
    }
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "toolu_missing".to_owned()
    } else {
        cleaned
    }
}

fn tool_result_block(message: &Message, at: &str) -> Result<ContentBlock, ProviderError> {
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        invalid(
            &format!("{at}.tool_call_id"),
            "is required for tool messages",
        )
    })?;
    let content = match &message.content {
        None => None,
        Some(MessageContent::Text(text)) if text.is_empty() => None,
        Some(MessageContent::Text(text)) => Some(Content::Text(text.clone())),
        Some(MessageContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (index, part) in parts.iter().enumerate() {
                if let Some(block) = part_block(part, &format!("{at}.content[{index}]"))? {
                    blocks.push(block);
                }
            }
            (!blocks.is_empty()).then_some(Content::Blocks(blocks))
        }
    };
    Ok(ContentBlock::ToolResult {
        tool_use_id: tool_id(id),
        content,
        is_error: None,
        extra: Extra::new(),
    })
}

/// Appends blocks as Anthropic wants them: consecutive messages of one role become one message
/// (Anthropic requires alternation), and in a user message the tool results come first.
fn push_blocks(messages: &mut Vec<InputMessage>, role: ARole, blocks: Vec<ContentBlock>) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(InputMessage {
            role: last_role,
            content: Content::Blocks(existing),
            ..
        }) if *last_role == role => {
            for block in blocks {
                if matches!(block, ContentBlock::ToolResult { .. }) {
                    let at = existing
                        .iter()
                        .take_while(|b| matches!(b, ContentBlock::ToolResult { .. }))
                        .count();
                    existing.insert(at, block);
                } else {
                    existing.push(block);
                }
            }
        }
        _ => messages.push(InputMessage {
            role,
            content: Content::Blocks(blocks),
            extra: Extra::new(),
        }),
    }
}

/// A message that is one plain text block is sent as a string, as people write it.
fn compact(message: &mut InputMessage) {
    if let Content::Blocks(blocks) = &mut message.content {
        if let [ContentBlock::Text { text, extra }] = blocks.as_mut_slice() {
            if extra.is_empty() {
                message.content = Content::Text(std::mem::take(text));
            }
        }
    }
}

type ToolsAndChoice = (Option<Vec<ToolDefinition>>, Option<AToolChoice>);

fn tools_and_choice(request: &ChatRequest) -> Result<ToolsAndChoice, ProviderError> {
    let mut tools: Vec<ToolDefinition> = request
        .tools
        .iter()
        .flatten()
        .filter_map(|tool| tool.function.as_ref().map(|f| (tool, f)))
        .map(|(tool, function)| ToolDefinition {
            name: function.name.clone(),
            kind: None,
            description: function.description.clone(),
            input_schema: Some(
                function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            ),
            extra: cache_control_of(&tool.extra),
        })
        .collect();

    let mut choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "none" => AToolChoice::of("none"),
            "required" => AToolChoice::of("any"),
            _ => AToolChoice::of("auto"),
        }),
        Some(ToolChoice::Named(NamedToolChoice {
            function: Some(function),
            ..
        })) => Some(AToolChoice {
            name: Some(function.name.clone()),
            ..AToolChoice::of("tool")
        }),
        Some(ToolChoice::Named(_)) => Some(AToolChoice::of("auto")),
    };

    if let Some(schema) = json_output_schema(request) {
        if tools.iter().any(|t| t.name == JSON_TOOL_NAME) {
            return Err(invalid(
                "tools",
                format!("the tool name `{JSON_TOOL_NAME}` is reserved for `response_format` on Anthropic"),
            ));
        }
        let description = request
            .response_format
            .as_ref()
            .and_then(|f| f.json_schema.as_ref())
            .and_then(|s| s.description.clone())
            .unwrap_or_else(|| {
                "Respond with the final answer as JSON matching this schema.".into()
            });
        let had_tools = !tools.is_empty();
        tools.push(ToolDefinition {
            name: JSON_TOOL_NAME.into(),
            kind: None,
            description: Some(description),
            input_schema: Some(schema),
            extra: Extra::new(),
        });
        let forced = AToolChoice {
            name: Some(JSON_TOOL_NAME.into()),
            ..AToolChoice::of("tool")
        };
        choice = match choice {
            // With client tools the model may call one of them or answer in JSON, but it must
            // not answer in free text.
            Some(c) if had_tools && c.kind == "auto" => Some(AToolChoice::of("any")),
            None if had_tools => Some(AToolChoice::of("any")),
            Some(c) if had_tools && c.kind != "none" => Some(c),
            _ => Some(forced),
        };
    }

    if tools.is_empty() {
        return Ok((None, None));
    }
    if request.parallel_tool_calls == Some(false) {
        let choice = choice.get_or_insert_with(|| AToolChoice::of("auto"));
        if choice.kind != "none" {
            choice.disable_parallel_tool_use = Some(true);
        }
    }
    Ok((Some(tools), choice))
}

/// The schema a `response_format` asks for: `json_schema` as given, `json_object` as any
/// object; `None` for plain text.
fn json_output_schema(request: &ChatRequest) -> Option<Value> {
    let format = request.response_format.as_ref()?;
    match format.kind.as_str() {
        "json_schema" => Some(
            format
                .json_schema
                .as_ref()
                .and_then(|s| s.schema.clone())
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
        ),
        "json_object" => Some(serde_json::json!({"type": "object"})),
        _ => None,
    }
}

// ------------------------------------------------------------------------------------------
// Anthropic → OpenAI
// ------------------------------------------------------------------------------------------

/// How strictly the OpenAI request must stick to OpenAI's own parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAiDialect {
    /// OpenAI and Azure OpenAI: `max_completion_tokens` (the only cap reasoning models take),
    /// and no parameters OpenAI does not define (it refuses unknown ones).
    Strict,
    /// Everything else that speaks the format (vLLM, Groq, Gemini through Switchyard ...):
    /// `max_tokens`, and `top_k` passed along, as most of them accept it.
    Compatible,
}

/// The OpenAI chat request for an Anthropic Messages request. `model` stays the alias the
/// client asked for; the provider writes the deployment's model name.
pub fn to_openai(
    request: &MessagesRequest,
    dialect: OpenAiDialect,
    dropped: &mut Dropped,
) -> Result<ChatRequest, ProviderError> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    match &request.system {
        None => {}
        Some(SystemPrompt::Text(text)) if !text.is_empty() => {
            messages.push(Message::text(Role::System, text.clone()));
        }
        Some(SystemPrompt::Text(_)) => {}
        Some(SystemPrompt::Blocks(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for block in blocks {
                match block {
                    ContentBlock::Text { text, extra } => {
                        note_cache_control(extra, dropped);
                        parts.push(ContentPart::text(text.clone()));
                    }
                    other => dropped.unsupported(&format!("system[].{}", other.kind()))?,
                }
            }
            if let Some(message) = text_message(Role::System, parts) {
                messages.push(message);
            }
        }
    }

    for message in &request.messages {
        match message.role {
            ARole::User => user_messages(&message.content, &mut messages, dropped)?,
            ARole::Assistant => {
                if let Some(m) = assistant_message(&message.content, dropped)? {
                    messages.push(m);
                }
            }
        }
    }

    let mut out = ChatRequest::new(request.model.clone(), messages);
    match dialect {
        OpenAiDialect::Strict => out.max_completion_tokens = request.max_tokens,
        OpenAiDialect::Compatible => out.max_tokens = request.max_tokens,
    }
    out.temperature.clone_from(&request.temperature);
    out.top_p.clone_from(&request.top_p);
    if let Some(top_k) = &request.top_k {
        match dialect {
            OpenAiDialect::Strict => dropped.unsupported("top_k")?,
            OpenAiDialect::Compatible => {
                out.extra
                    .insert("top_k".into(), Value::Number(top_k.clone()));
            }
        }
    }
    if let Some(sequences) = &request.stop_sequences {
        if !sequences.is_empty() {
            out.stop = Some(Stop::Many(sequences.clone()));
        }
    }
    if request.is_stream() {
        out.stream = Some(true);
        out.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Extra::new(),
        });
    }
    if let Some(metadata) = &request.metadata {
        out.user.clone_from(&metadata.user_id);
        if !metadata.extra.is_empty() {
            dropped.note("metadata");
        }
    }
    if let Some(thinking) = &request.thinking {
        if thinking.kind != "disabled" {
            dropped.unsupported("thinking")?;
        }
    }

    let mut tools = Vec::new();
    for tool in request.tools.iter().flatten() {
        if !tool.is_client_tool() {
            dropped.unsupported(&format!(
                "tools[{}] ({})",
                tool.name,
                tool.kind.as_deref().unwrap_or("")
            ))?;
            continue;
        }
        note_cache_control(&tool.extra, dropped);
        tools.push(Tool {
            kind: "function".into(),
            function: Some(FunctionDefinition {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: Some(
                    tool.input_schema
                        .clone()
                        .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
                ),
                strict: None,
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        });
    }
    if !tools.is_empty() {
        out.tools = Some(tools);
        if let Some(choice) = &request.tool_choice {
            out.tool_choice = Some(match (choice.kind.as_str(), &choice.name) {
                ("any", _) => ToolChoice::Mode("required".into()),
                ("none", _) => ToolChoice::Mode("none".into()),
                ("tool", Some(name)) => ToolChoice::Named(NamedToolChoice {
                    kind: "function".into(),
                    function: Some(crate::schema::FunctionName {
                        name: name.clone(),
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                }),
                _ => ToolChoice::Mode("auto".into()),
            });
            if choice.disable_parallel_tool_use == Some(true) && choice.kind != "none" {
                out.parallel_tool_calls = Some(false);
            }
        }
    }

    for name in request.extra.keys() {
        if name == "service_tier" {
            dropped.note(name);
        } else {
            dropped.unsupported(name)?;
        }
    }
    Ok(out)
}

fn note_cache_control(extra: &Extra, dropped: &mut Dropped) {
    if extra.contains_key("cache_control") {
        dropped.note("cache_control");
    }
}

/// A message of text parts: one part becomes a plain string.
fn text_message(role: Role, mut parts: Vec<ContentPart>) -> Option<Message> {
    match parts.len() {
        0 => None,
        1 if parts[0].kind == "text" => {
            let text = parts.pop()?.text.unwrap_or_default();
            Some(Message::text(role, text))
        }
        _ => Some(Message::new(role, Some(MessageContent::Parts(parts)))),
    }
}

fn source_url(source: &Source) -> Option<String> {
    match source.kind.as_str() {
        "base64" => Some(format!(
            "data:{};base64,{}",
            source
                .media_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
            source.data.as_deref().unwrap_or("")
        )),
        "url" => source.url.clone(),
        _ => None,
    }
}

/// One OpenAI part for an Anthropic user-side block (text, image, PDF document).
fn block_part(
    block: &ContentBlock,
    dropped: &mut Dropped,
) -> Result<Option<ContentPart>, ProviderError> {
    Ok(match block {
        ContentBlock::Text { text, extra } => {
            note_cache_control(extra, dropped);
            Some(ContentPart::text(text.clone()))
        }
        ContentBlock::Image { source, extra } => {
            note_cache_control(extra, dropped);
            match source_url(source) {
                Some(url) => Some(ContentPart {
                    kind: "image_url".into(),
                    text: None,
                    image_url: Some(ImageUrl {
                        url,
                        detail: None,
                        extra: Extra::new(),
                    }),
                    extra: Extra::new(),
                }),
                None => {
                    dropped.unsupported(&format!("content.image.source.{}", source.kind))?;
                    None
                }
            }
        }
        ContentBlock::Document { source, extra } if source.kind == "base64" => {
            note_cache_control(extra, dropped);
            let mut file = Map::new();
            file.insert("filename".into(), "document.pdf".into());
            file.insert(
                "file_data".into(),
                source_url(source).unwrap_or_default().into(),
            );
            let mut part_extra = Extra::new();
            part_extra.insert("file".into(), Value::Object(file));
            Some(ContentPart {
                kind: "file".into(),
                text: None,
                image_url: None,
                extra: part_extra,
            })
        }
        other => {
            dropped.unsupported(&format!("content.{}", other.kind()))?;
            None
        }
    })
}

/// A user turn: its tool results become `tool` messages (first, as OpenAI wants them right
/// after the assistant's calls), the rest one `user` message.
fn user_messages(
    content: &Content,
    out: &mut Vec<Message>,
    dropped: &mut Dropped,
) -> Result<(), ProviderError> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(Message::text(Role::User, text.clone()));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                extra,
                ..
            } => {
                note_cache_control(extra, dropped);
                let content = match content {
                    None => MessageContent::Text(String::new()),
                    Some(Content::Text(text)) => MessageContent::Text(text.clone()),
                    Some(Content::Blocks(blocks)) => {
                        let mut texts = Vec::with_capacity(blocks.len());
                        for block in blocks {
                            match block {
                                ContentBlock::Text { text, .. } => {
                                    texts.push(ContentPart::text(text.clone()))
                                }
                                // OpenAI tool messages carry text only.
                                other => dropped.unsupported(&format!(
                                    "tool_result.content.{}",
                                    other.kind()
                                ))?,
                            }
                        }
                        match texts.len() {
                            1 => MessageContent::Text(
                                texts.pop().and_then(|p| p.text).unwrap_or_default(),
                            ),
                            _ => MessageContent::Parts(texts),
                        }
                    }
                };
                let mut message = Message::new(Role::Tool, Some(content));
                message.tool_call_id = Some(tool_use_id.clone());
                out.push(message);
            }
            other => {
                if let Some(part) = block_part(other, dropped)? {
                    parts.push(part);
                }
            }
        }
    }
    if let Some(message) = text_message(Role::User, parts) {
        out.push(message);
    }
    Ok(())
}

fn assistant_message(
    content: &Content,
    dropped: &mut Dropped,
) -> Result<Option<Message>, ProviderError> {
    let blocks = match content {
        Content::Text(text) => return Ok(Some(Message::text(Role::Assistant, text.clone()))),
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text { text, extra } => {
                note_cache_control(extra, dropped);
                parts.push(ContentPart::text(text.clone()));
            }
            ContentBlock::ToolUse {
                id, name, input, ..
            } => {
                calls.push(ToolCall::function(
                    id.clone(),
                    name.clone(),
                    input.to_string(),
                ));
            }
            // Claude's reasoning from an earlier turn: history only a Claude model can read.
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {
                dropped.note("content.thinking");
            }
            other => dropped.unsupported(&format!("content.{}", other.kind()))?,
        }
    }
    let mut message = match text_message(Role::Assistant, parts) {
        Some(message) => message,
        None if calls.is_empty() => return Ok(None),
        None => Message::new(Role::Assistant, None),
    };
    if !calls.is_empty() {
        message.tool_calls = Some(calls);
    }
    Ok(Some(message))
}
