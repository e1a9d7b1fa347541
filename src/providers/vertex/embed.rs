//! OpenAI's `/v1/embeddings` over Vertex AI's `:predict` for Google's text embedding models
//! (`text-embedding-004`, `text-embedding-005`, `text-multilingual-embedding-002`,
//! `gemini-embedding-001` ...).
//!
//! Request: each `input` string becomes an instance `{"content": ...}` (with LiteLLM's
//! `task_type` and `title` when given); `dimensions` becomes `parameters.outputDimensionality`.
//! Answer: `predictions[i].embeddings.values` become OpenAI's `data` (base64 when the client
//! asked for it), the sum of `statistics.token_count` the usage.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::providers::translate::{invalid, openai_embeddings};
use crate::providers::ProviderError;
use crate::schema::{PassthroughRequest, PassthroughResponse};

pub fn to_predict(request: &PassthroughRequest) -> Result<Value, ProviderError> {
    let texts: Vec<&str> = match request.extra.get("input") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(
                    "input",
                    "Vertex AI embeds text: send a string or a list of strings (not token ids)",
                )
            })?,
        Some(_) => {
            return Err(invalid(
                "input",
                "Vertex AI embeds text: send a string or a non-empty list of strings",
            ))
        }
        None => return Err(invalid("input", "is required")),
    };
    let task_type = request.extra.get("task_type").filter(|v| !v.is_null());
    let title = request.extra.get("title").filter(|v| !v.is_null());
    let instances: Vec<Value> = texts
        .into_iter()
        .map(|text| {
            let mut instance = Map::new();
            instance.insert("content".into(), text.into());
            if let Some(task_type) = task_type {
                instance.insert("task_type".into(), task_type.clone());
            }
            if let Some(title) = title {
                instance.insert("title".into(), title.clone());
            }
            Value::Object(instance)
        })
        .collect();
    let mut body = Map::new();
    body.insert("instances".into(), instances.into());
    if let Some(dimensions) = request.extra.get("dimensions").filter(|v| !v.is_null()) {
        body.insert(
            "parameters".into(),
            json!({"outputDimensionality": dimensions}),
        );
    }
    Ok(Value::Object(body))
}

#[derive(Deserialize)]
struct PredictResponse {
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: Embeddings,
}

#[derive(Deserialize)]
struct Embeddings {
    values: Vec<f64>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    token_count: Option<f64>,
}

pub fn from_predict(
    request: &PassthroughRequest,
    model: &str,
    body: &[u8],
) -> Result<PassthroughResponse, ProviderError> {
    let response: PredictResponse = serde_json::from_slice(body).map_err(|err| {
        ProviderError::InvalidResponse(format!("vertex embeddings response: {err}"))
    })?;
    let tokens = response
        .predictions
        .iter()
        .filter_map(|p| p.embeddings.statistics.as_ref()?.token_count)
        .map(|n| n.max(0.0) as u64)
        .sum();
    Ok(openai_embeddings(
        request,
        Some(model.to_owned()),
        response.predictions.iter().map(|p| &p.embeddings.values),
        Some(tokens),
    ))
}
