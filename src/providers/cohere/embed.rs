//! OpenAI's `/v1/embeddings` over Cohere's `POST /v2/embed`, and Cohere-shaped rerank requests
//! over `POST /v2/rerank`.
//!
//! Embeddings: `input` → `texts`, `dimensions` → `output_dimension`; Cohere's `input_type`
//! (required by its v3+ models; `search_document` when the client sends none, as LiteLLM does)
//! and `truncate` pass through; `embedding_types` is always `["float"]`. The answer's
//! `embeddings.float` become OpenAI's `data` list (base64 when the client asked for it),
//! `meta.billed_units.input_tokens` the usage.
//!
//! Rerank: the request is already Cohere's shape (`query`, `documents`, `top_n`,
//! `max_tokens_per_doc`); documents given as `{"text": ...}` objects (Cohere v1's form) are sent
//! as their text. v2 no longer returns documents, so `return_documents: true` is answered by the
//! gateway: each result gets `document: {"text": ...}` from the request.

use serde_json::{json, Map, Value};

use super::wire::EmbedResponse;
use crate::providers::translate::{invalid, openai_embeddings};
use crate::providers::ProviderError;
use crate::schema::{PassthroughRequest, PassthroughResponse};

pub fn to_embed(request: &PassthroughRequest, model: &str) -> Result<Value, ProviderError> {
    let texts = match request.extra.get("input") {
        Some(Value::String(text)) => vec![Value::from(text.as_str())],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        Some(_) => {
            return Err(invalid(
                "input",
                "Cohere embeds text: send a string or a list of strings (not token ids)",
            ))
        }
        None => return Err(invalid("input", "is required")),
    };
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("texts".into(), texts.into());
    body.insert(
        "input_type".into(),
        request
            .extra
            .get("input_type")
            .cloned()
            .unwrap_or_else(|| "search_document".into()),
    );
    body.insert("embedding_types".into(), json!(["float"]));
    if let Some(dimensions) = request.extra.get("dimensions").filter(|v| !v.is_null()) {
        body.insert("output_dimension".into(), dimensions.clone());
    }
    if let Some(truncate) = request.extra.get("truncate").filter(|v| !v.is_null()) {
        body.insert("truncate".into(), truncate.clone());
    }
    Ok(Value::Object(body))
}

pub fn from_embed(
    request: &PassthroughRequest,
    model: &str,
    body: &[u8],
) -> Result<PassthroughResponse, ProviderError> {
    let response: EmbedResponse = serde_json::from_slice(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("cohere embed response: {err}")))?;
    let tokens = response
        .meta
        .and_then(|m| m.billed_units)
        .and_then(|u| u.input_tokens)
        .map_or(0, |n| n.max(0.0) as u64);
    Ok(openai_embeddings(
        request,
        Some(model.to_owned()),
        &response.embeddings.float,
        Some(tokens),
    ))
}

/// A document of a rerank request as text: a string, the `text` of an object, or the object
/// as JSON (Cohere v2 takes strings only).
fn document_text(document: &Value) -> String {
    match document {
        Value::String(text) => text.clone(),
        Value::Object(map) => match map.get("text") {
            Some(Value::String(text)) => text.clone(),
            _ => document.to_string(),
        },
        other => other.to_string(),
    }
}

/// The request's documents, checked.
fn documents(request: &PassthroughRequest) -> Result<&Vec<Value>, ProviderError> {
    match request.extra.get("documents") {
        Some(Value::Array(documents)) => Ok(documents),
        _ => Err(invalid("documents", "must be a list")),
    }
}

pub fn to_rerank(request: &PassthroughRequest, model: &str) -> Result<Value, ProviderError> {
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    for name in ["query", "top_n", "max_tokens_per_doc"] {
        if let Some(value) = request.extra.get(name).filter(|v| !v.is_null()) {
            body.insert(name.into(), value.clone());
        }
    }
    let documents: Vec<Value> = documents(request)?
        .iter()
        .map(|d| Value::from(document_text(d)))
        .collect();
    body.insert("documents".into(), documents.into());
    Ok(Value::Object(body))
}

/// Cohere's rerank answer as it came, plus the documents when the client asked for them.
pub fn from_rerank(
    request: &PassthroughRequest,
    model: &str,
    body: &[u8],
) -> Result<PassthroughResponse, ProviderError> {
    let mut response: PassthroughResponse = serde_json::from_slice(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("cohere rerank response: {err}")))?;
    if !matches!(response.extra.get("results"), Some(Value::Array(_))) {
        return Err(ProviderError::InvalidResponse(
            "cohere rerank response: no `results` list".into(),
        ));
    }
    if request.extra.get("return_documents") == Some(&Value::Bool(true)) {
        let documents = documents(request)?;
        if let Some(Value::Array(results)) = response.extra.get_mut("results") {
            for result in results.iter_mut() {
                let document = result
                    .get("index")
                    .and_then(Value::as_u64)
                    .and_then(|i| documents.get(i as usize));
                if let (Some(document), Value::Object(result)) = (document, result) {
                    result.insert("document".into(), json!({"text": document_text(document)}));
                }
            }
        }
    }
    response.model = Some(model.to_owned());
    Ok(response)
}
