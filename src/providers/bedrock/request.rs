//! An OpenAI chat request as a Bedrock Converse request.
//!
//! - system and developer messages → `system` blocks;
//! - user → `user` turns, assistant → `assistant` turns; consecutive turns of one role are
//!   merged (Converse wants the roles to alternate), and tool results join the user turn;
//! - images → `image` blocks from base64 data URLs (Converse takes bytes, not links);
//! - assistant `tool_calls` → `toolUse` blocks, `tool` messages → `toolResult` blocks (a JSON
//!   object result as `json`, anything else as `text`);
//! - `max_tokens`/`max_completion_tokens`, `temperature`, `top_p`, `stop` → `inferenceConfig`;
//!   `top_k` → `additionalModelRequestFields` (Anthropic's and most models' name for it);
//! - `tools` → `toolConfig.tools[].toolSpec`, `tool_choice` → `toolConfig.toolChoice`
//!   (`auto`/`required`/a named function; `none` drops the tools, which Converse cannot
//!   forbid otherwise).
//!
//! Converse fields sent in their own spelling (`guardrailConfig`, `performanceConfig`,
//! `additionalModelRequestFields`, `requestMetadata`, `promptVariables`) pass through.

use serde_json::{json, Value};

use super::wire::{
    ContentBlock, ConverseRequest, ImageBlock, ImageSource, InferenceConfig, InputSchema, Message,
    SystemBlock, Tool, ToolConfig, ToolResult, ToolResultContent, ToolSpec, ToolUse,
};
use crate::providers::params::{self, Dropped};
use crate::providers::translate::{content_parts, data_url, invalid, tool_arguments};
use crate::providers::ProviderError;
use crate::schema::{ChatRequest, Message as ChatMessage, MessageContent, Role, ToolChoice};

/// Converse request fields an OpenAI-format client may send through.
const NATIVE_FIELDS: &[&str] = &[
    "guardrailConfig",
    "performanceConfig",
    "additionalModelRequestFields",
    "requestMetadata",
    "promptVariables",
];

/// OpenAI parameters mapped somewhere else than a typed field.
const MAPPED_EXTRA: &[&str] = &["top_k"];

/// Checks the parameters of `request` that have no Converse equivalent.
pub fn check_params(request: &ChatRequest, dropped: &mut Dropped) -> Result<(), ProviderError> {
    for (name, value) in &request.extra {
        let name = name.as_str();
        if NATIVE_FIELDS.contains(&name) || MAPPED_EXTRA.contains(&name) {
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
    if request.n.is_some_and(|n| n > 1) {
        dropped.unsupported("n")?;
    }
    if request.parallel_tool_calls == Some(false) {
        dropped.unsupported("parallel_tool_calls")?;
    }
    if let Some(format) = &request.response_format {
        if format.kind != "text" {
            dropped.unsupported("response_format")?;
        }
    }
    if let Some(tools) = &request.tools {
        if tools.iter().any(|tool| tool.function.is_none()) {
            dropped.unsupported("tools")?;
        }
    }
    if request.user.is_some() {
        dropped.note("user");
    }
    if request.messages.iter().any(|m| m.name.is_some()) {
        dropped.note("messages[].name");
    }
    Ok(())
}

pub fn to_converse(
    request: &ChatRequest,
    dropped: &mut Dropped,
) -> Result<ConverseRequest, ProviderError> {
    check_params(request, dropped)?;
    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.iter().enumerate() {
        let at = format!("messages[{index}]");
        match message.role {
            Role::System | Role::Developer => {
                for block in blocks(message.content.as_ref(), &at, false)? {
                    if let Some(text) = block.text {
                        system.push(SystemBlock { text });
                    }
                }
            }
            Role::User => push(
                &mut messages,
                "user",
                blocks(message.content.as_ref(), &at, true)?,
            ),
            Role::Assistant => {
                let mut out = blocks(message.content.as_ref(), &at, false)?;
                for (call_index, call) in message.tool_calls.iter().flatten().enumerate() {
                    let input = tool_arguments(
                        &call.function.arguments,
                        &format!("{at}.tool_calls[{call_index}].function.arguments"),
                    )?;
                    out.push(ContentBlock {
                        tool_use: Some(ToolUse {
                            tool_use_id: call.id.clone(),
                            name: call.function.name.clone(),
                            input,
                        }),
                        ..ContentBlock::default()
                    });
                }
                push(&mut messages, "assistant", out);
            }
            Role::Tool => {
                let id = message.tool_call_id.clone().ok_or_else(|| {
                    invalid(
                        &format!("{at}.tool_call_id"),
                        "is required for a tool message",
                    )
                })?;
                let block = ContentBlock {
                    tool_result: Some(ToolResult {
                        tool_use_id: id,
                        content: vec![tool_result_content(message)],
                        status: None,
                    }),
                    ..ContentBlock::default()
                };
                push(&mut messages, "user", vec![block]);
            }
            Role::Function => dropped.unsupported("messages[].role: function")?,
        }
    }

    let mut out = ConverseRequest {
        messages,
        system,
        ..ConverseRequest::default()
    };
    let inference = InferenceConfig {
        max_tokens: request.max_output_tokens(),
        temperature: request.temperature.clone(),
        top_p: request.top_p.clone(),
        stop_sequences: request
            .stop
            .as_ref()
            .map(|s| s.sequences())
            .filter(|s| !s.is_empty()),
    };
    if inference.max_tokens.is_some()
        || inference.temperature.is_some()
        || inference.top_p.is_some()
        || inference.stop_sequences.is_some()
    {
        out.inference_config = Some(inference);
    }
    if let Some(top_k) = request.extra.get("top_k").filter(|v| v.is_number()) {
        out.additional_model_request_fields
            .insert("top_k".into(), top_k.clone());
    }

    let forbids_tools =
        matches!(&request.tool_choice, Some(ToolChoice::Mode(mode)) if mode == "none");
    let tools: Vec<Tool> = request
        .tools
        .iter()
        .flatten()
        .filter_map(|tool| tool.function.as_ref())
        .map(|function| Tool {
            tool_spec: ToolSpec {
                name: function.name.clone(),
                description: function.description.clone(),
                input_schema: InputSchema {
                    json: function
                        .parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                },
            },
        })
        .collect();
    // Converse refuses a conversation with tool blocks unless `toolConfig` is there, so tools
    // stay when earlier turns used them, even under `tool_choice: none` (then with no choice).
    let history_uses_tools = out
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .any(|b| b.tool_use.is_some() || b.tool_result.is_some());
    if !tools.is_empty() && (!forbids_tools || history_uses_tools) {
        let tool_choice = match &request.tool_choice {
            None => None,
            Some(ToolChoice::Mode(mode)) => match mode.as_str() {
                "required" => Some(json!({"any": {}})),
                "auto" => Some(json!({"auto": {}})),
                _ => None,
            },
            Some(ToolChoice::Named(named)) => named
                .function
                .as_ref()
                .map(|f| json!({"tool": {"name": f.name}})),
        };
        out.tool_config = Some(ToolConfig { tools, tool_choice });
    }
    for field in NATIVE_FIELDS {
        if let Some(value) = request.extra.get(*field) {
            if *field == "additionalModelRequestFields" {
                if let Value::Object(fields) = value {
                    out.additional_model_request_fields
                        .extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            } else {
                out.extra.insert((*field).to_owned(), value.clone());
            }
        }
    }
    Ok(out)
}

/// Appends blocks as a turn of `role`, merged into the previous turn when it has the same role.
fn push(messages: &mut Vec<Message>, role: &str, content: Vec<ContentBlock>) {
    if content.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(content),
        _ => messages.push(Message {
            role: role.to_owned(),
            content,
        }),
    }
}

fn blocks(
    content: Option<&MessageContent>,
    at: &str,
    allow_images: bool,
) -> Result<Vec<ContentBlock>, ProviderError> {
    let media: &[&str] = if allow_images { &["image_url"] } else { &[] };
    content_parts(
        content,
        at,
        "Bedrock",
        media,
        |t| ContentBlock::text(t),
        |item, at| {
            let url = item
                .image_url
                .as_ref()
                .map(|i| i.url.as_str())
                .ok_or_else(|| invalid(at, "needs an image URL"))?;
            image_block(url, at)
        },
    )
}

fn image_block(url: &str, at: &str) -> Result<ContentBlock, ProviderError> {
    let (media_type, data) = data_url(url, at)?.ok_or_else(|| {
        invalid(
            at,
            "Bedrock takes images as base64 data URLs (`data:image/png;base64,...`), not links",
        )
    })?;
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(invalid(
                at,
                format!("image type `{other}` is not one Bedrock takes (png, jpeg, gif, webp)"),
            ))
        }
    };
    Ok(ContentBlock {
        image: Some(ImageBlock {
            format: format.to_owned(),
            source: ImageSource {
                bytes: data.to_owned(),
            },
        }),
        ..ContentBlock::default()
    })
}

/// A tool message as a result block: a JSON object result as `json`, anything else as text.
fn tool_result_content(message: &ChatMessage) -> ToolResultContent {
    let text = match &message.content {
        None => String::new(),
        Some(MessageContent::Text(text)) => text.clone(),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join(""),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(value @ Value::Object(_)) => ToolResultContent {
            text: None,
            json: Some(value),
        },
        _ => ToolResultContent {
            // Converse refuses an empty text; say so instead.
            text: Some(if text.is_empty() {
                "(empty)".to_owned()
            } else {
                text
            }),
            json: None,
        },
    }
}
