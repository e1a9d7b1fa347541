//! OpenAI's `/v1/embeddings` over Ollama's `POST /api/embed`: `input` (one text or several)
//! passes as is, `dimensions`, `truncate`, `keep_alive` and `options` pass through; the answer's
//! `embeddings` become OpenAI's `data` list (as base64 when the client asked for
//! `encoding_format: "base64"`, as the OpenAI SDKs do by default), `prompt_eval_count` its
//! usage.

use serde_json::{Map, Value};

use super::wire::{EmbedRequest, EmbedResponse};
use crate::providers::translate::{invalid, openai_embeddings};
use crate::providers::ProviderError;
use crate::schema::{PassthroughRequest, PassthroughResponse};

/// Request fields Ollama's `/api/embed` takes under the same name.
const NATIVE: &[&str] = &["dimensions", "truncate", "keep_alive", "options"];

pub fn to_embed<'a>(
    request: &PassthroughRequest,
    model: &'a str,
) -> Result<EmbedRequest<'a>, ProviderError> {
    let input = match request.extra.get("input") {
        Some(Value::String(text)) => Value::from(text.as_str()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Value::Array(items.clone())
        }
        Some(_) => {
            return Err(invalid(
                "input",
                "Ollama embeds text: send a string or a list of strings (not token ids)",
            ))
        }
        None => return Err(invalid("input", "is required")),
    };
    let mut native = Map::new();
    for name in NATIVE {
        if let Some(value) = request.extra.get(*name).filter(|v| !v.is_null()) {
            native.insert((*name).into(), value.clone());
        }
    }
    Ok(EmbedRequest {
        model,
        input,
        native,
    })
}

pub fn from_embed(
    request: &PassthroughRequest,
    body: &[u8],
) -> Result<PassthroughResponse, ProviderError> {
    let response: EmbedResponse = serde_json::from_slice(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("ollama embed response: {err}")))?;
    let tokens = response.prompt_eval_count.unwrap_or(0);
    Ok(openai_embeddings(
        request,
        response.model,
        &response.embeddings,
        Some(tokens),
    ))
}
