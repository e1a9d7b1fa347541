//! An OpenAI chat request as a Gemini `generateContent` request.
//!
//! - system and developer messages → `systemInstruction`;
//! - user → `user` turns, assistant → `model` turns (consecutive turns of one role merged);
//! - images → `inlineData` (data URLs) or `fileData` (http(s) URLs, which Gemini fetches);
//! - assistant `tool_calls` → `functionCall` parts (with the `thoughtSignature` they came with),
//!   `tool` messages → `functionResponse` parts named after the call they answer;
//! - sampling and limits → `generationConfig`; `response_format` → `responseMimeType` and
//!   `responseJsonSchema`; `reasoning_effort` → `thinkingConfig.thinkingBudget`;
//! - `tools` → `functionDeclarations` (with `parametersJsonSchema`, so any JSON Schema works),
//!   `tool_choice` → `toolConfig.functionCallingConfig`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateContentRequest, GenerationConfig, Part, ThinkingConfig, Tool,
    ToolConfig,
};
use crate::providers::params::{self, Dropped};
use crate::providers::translate::{content_parts, data_url, invalid, tool_arguments};
use crate::providers::ProviderError;
use crate::schema::{ChatRequest, ContentPart, Message, MessageContent, Role, ToolChoice};

/// Sampling parameters OpenAI defines that Gemini takes too.
const MAPPED_EXTRA: &[&str] = &[
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "top_k",
    "reasoning_effort",
];

/// Gemini request fields an OpenAI-format client may send through, in either spelling.
const NATIVE_FIELDS: &[(&str, &str)] = &[
    ("safety_settings", "safetySettings"),
    ("safetySettings", "safetySettings"),
    ("cached_content", "cachedContent"),
    ("cachedContent", "cachedContent"),
    ("labels", "labels"),
];

/// Where Switchyard keeps a Gemini thought signature on an OpenAI tool call:
/// `extra_content.google.thought_signature`, the field Google's own OpenAI-compatible endpoint
/// uses, so clients that keep tool calls as they got them send it back.
pub fn thought_signature(extra: &crate::schema::Extra) -> Option<&str> {
    extra
        .get("extra_content")?
        .get("google")?
        .get("thought_signature")?
        .as_str()
}

/// Checks the parameters of `request` that have no Gemini equivalent.
pub fn check_params(request: &ChatRequest, dropped: &mut Dropped) -> Result<(), ProviderError> {
    for (name, value) in &request.extra {
        let name = name.as_str();
        if MAPPED_EXTRA.contains(&name) || NATIVE_FIELDS.iter().any(|(from, _)| *from == name) {
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
    if request.parallel_tool_calls == Some(false) {
        // Gemini decides alone whether to call several functions at once.
        dropped.unsupported("parallel_tool_calls")?;
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

pub fn to_gemini(
    request: &ChatRequest,
    dropped: &mut Dropped,
) -> Result<GenerateContentRequest, ProviderError> {
    check_params(request, dropped)?;
    // Gemini answers a function call by name; OpenAI by call id.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut system: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.iter().enumerate() {
        let at = format!("messages[{index}]");
        match message.role {
            Role::System | Role::Developer => {
                system.extend(parts(message.content.as_ref(), &at, false)?);
            }
            Role::User => push(
                &mut contents,
                "user",
                parts(message.content.as_ref(), &at, true)?,
            ),
            Role::Assistant => {
                let mut out = parts(message.content.as_ref(), &at, false)?;
                for (call_index, call) in message.tool_calls.iter().flatten().enumerate() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                    let args = tool_arguments(
                        &call.function.arguments,
                        &format!("{at}.tool_calls[{call_index}].function.arguments"),
                    )?;
                    out.push(Part {
                        function_call: Some(FunctionCall {
                            id: None,
                            name: call.function.name.clone(),
                            args: Some(args),
                        }),
                        thought_signature: thought_signature(&call.extra).map(str::to_owned),
                        ..Part::default()
                    });
                }
                push(&mut contents, "model", out);
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                let name = call_names
                    .get(id)
                    .copied()
                    .or(message.name.as_deref())
                    .ok_or_else(|| {
                        invalid(
                            &format!("{at}.tool_call_id"),
                            format!("`{id}` does not answer a tool call of an earlier assistant message"),
                        )
                    })?;
                let part = Part {
                    function_response: Some(FunctionResponse {
                        id: None,
                        name: name.to_owned(),
                        response: function_response(message),
                    }),
                    ..Part::default()
                };
                push(&mut contents, "user", vec![part]);
            }
            Role::Function => dropped.unsupported("messages[].role: function")?,
        }
    }

    let mut out = GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        ..GenerateContentRequest::default()
    };
    out.generation_config = generation_config(request);

    let declarations: Vec<FunctionDeclaration> = request
        .tools
        .iter()
        .flatten()
        .filter_map(|tool| tool.function.as_ref())
        .map(|function| FunctionDeclaration {
            name: function.name.clone(),
            description: function.description.clone(),
            parameters_json_schema: function.parameters.clone(),
        })
        .collect();
    if !declarations.is_empty() {
        out.tools = Some(vec![Tool {
            function_declarations: Some(declarations),
            extra: Default::default(),
        }]);
        out.tool_config = request.tool_choice.as_ref().map(|choice| {
            let (mode, names) = match choice {
                ToolChoice::Mode(mode) => (
                    match mode.as_str() {
                        "none" => "NONE",
                        "required" => "ANY",
                        _ => "AUTO",
                    },
                    None,
                ),
                ToolChoice::Named(named) => match &named.function {
                    Some(function) => ("ANY", Some(vec![function.name.clone()])),
                    None => ("AUTO", None),
                },
            };
            ToolConfig {
                function_calling_config: FunctionCallingConfig {
                    mode: mode.into(),
                    allowed_function_names: names,
                },
            }
        });
    }
    for (from, to) in NATIVE_FIELDS {
        if let Some(value) = request.extra.get(*from) {
            out.extra.insert((*to).to_owned(), value.clone());
        }
    }
    Ok(out)
}

fn generation_config(request: &ChatRequest) -> Option<GenerationConfig> {
    let number = |name: &str| match request.extra.get(name) {
        Some(Value::Number(n)) => Some(n.clone()),
        _ => None,
    };
    let mut config = GenerationConfig {
        temperature: request.temperature.clone(),
        top_p: request.top_p.clone(),
        top_k: number("top_k"),
        max_output_tokens: request.max_output_tokens(),
        stop_sequences: request.stop.as_ref().map(|s| s.sequences()),
        candidate_count: request.n.filter(|n| *n > 1),
        presence_penalty: number("presence_penalty"),
        frequency_penalty: number("frequency_penalty"),
        seed: number("seed"),
        ..GenerationConfig::default()
    };
    if let Some(format) = &request.response_format {
        match format.kind.as_str() {
            "json_schema" => {
                config.response_mime_type = Some("application/json".into());
                config.response_json_schema =
                    format.json_schema.as_ref().and_then(|s| s.schema.clone());
            }
            "json_object" => config.response_mime_type = Some("application/json".into()),
            _ => {}
        }
    }
    if let Some(effort) = request
        .extra
        .get("reasoning_effort")
        .and_then(Value::as_str)
    {
        // Gemini's documented budgets for its 2.5 models; "minimal"/"none" turn thinking off
        // where the model allows it.
        let budget = match effort {
            "low" => Some(1024),
            "medium" => Some(8192),
            "high" => Some(24576),
            "minimal" | "none" => Some(0),
            _ => None,
        };
        config.thinking_config = budget.map(|thinking_budget| ThinkingConfig { thinking_budget });
    }
    let empty = serde_json::to_value(&config)
        .ok()
        .and_then(|v| v.as_object().map(Map::is_empty))
        .unwrap_or(false);
    (!empty).then_some(config)
}

/// Appends parts as a turn of `role`, merged into the previous turn when it has the same role
/// (parallel function responses must arrive in one turn).
fn push(contents: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => contents.push(Content {
            role: Some(role.to_owned()),
            parts,
        }),
    }
}

fn parts(
    content: Option<&MessageContent>,
    at: &str,
    allow_media: bool,
) -> Result<Vec<Part>, ProviderError> {
    let media: &[&str] = if allow_media {
        &["image_url", "file"]
    } else {
        &[]
    };
    content_parts(content, at, "Gemini", media, |t| Part::text(t), media_part)
}

fn media_part(item: &ContentPart, at: &str) -> Result<Part, ProviderError> {
    let url = match item.kind.as_str() {
        "image_url" => item.image_url.as_ref().map(|i| i.url.as_str()),
        _ => item
            .extra
            .get("file")
            .and_then(|f| f.get("file_data"))
            .and_then(Value::as_str),
    }
    .ok_or_else(|| invalid(at, "needs an image URL or inline file data"))?;
    if let Some((mime_type, data)) = data_url(url, at)? {
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: mime_type.to_owned(),
                data: data.to_owned(),
            }),
            ..Part::default()
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Part {
            file_data: Some(FileData {
                mime_type: mime_from_extension(url).map(str::to_owned),
                file_uri: url.to_owned(),
            }),
            ..Part::default()
        });
    }
    Err(invalid(at, "must be an http(s) URL or a base64 data URL"))
}

fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let extension = path.rsplit_once('.').map(|(_, ext)| ext.to_owned())?;
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// A tool message as a function response, which must be an object: a JSON object result is
/// sent as it is, anything else as `{"content": <text>}`.
fn function_response(message: &Message) -> Value {
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
        Ok(value @ Value::Object(_)) => value,
        _ => serde_json::json!({ "content": text }),
    }
}
