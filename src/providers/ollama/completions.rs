//! OpenAI's legacy `/v1/completions` over Ollama's `POST /api/generate`, as LiteLLM's
//! `text_completion` does for `ollama/` models: `prompt` (one text) → `prompt`, `suffix`
//! passes, sampling parameters → `options` as for chat; the answer becomes a `text_completion`
//! (streamed: one per NDJSON line, the last with `finish_reason` and `usage`).

use axum::http::header::HeaderMap;
use serde_json::{json, Map, Value};

use super::response::{finish_reason, parse_error, usage};
use super::wire::Reply;
use crate::providers::translate::{invalid, random_id, unix_now};
use crate::providers::{PassthroughDecoder, ProviderError};
use crate::schema::{PassthroughRequest, PassthroughResponse};

/// OpenAI completion parameters that map to Ollama's `options` under the same name.
const OPTIONS: &[&str] = &[
    "temperature",
    "top_p",
    "seed",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
];

/// Ollama request fields a client may send through as they are.
const NATIVE: &[&str] = &[
    "suffix",
    "system",
    "images",
    "format",
    "keep_alive",
    "raw",
    "think",
];

pub fn to_generate(request: &PassthroughRequest, model: &str) -> Result<Value, ProviderError> {
    let prompt = match request.extra.get("prompt") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_owned()
        }
        _ => {
            return Err(invalid(
                "prompt",
                "Ollama completes one text: send `prompt` as a string",
            ))
        }
    };
    let mut options = match request.extra.get("options") {
        Some(Value::Object(native)) => native.clone(),
        _ => Map::new(),
    };
    for name in OPTIONS {
        if let Some(value) = request.extra.get(*name).filter(|v| !v.is_null()) {
            options.insert((*name).into(), value.clone());
        }
    }
    if let Some(max) = request.extra.get("max_tokens").filter(|v| !v.is_null()) {
        options.insert("num_predict".into(), max.clone());
    }
    match request.extra.get("stop") {
        Some(Value::String(one)) => {
            options.insert("stop".into(), json!([one]));
        }
        Some(many @ Value::Array(_)) => {
            options.insert("stop".into(), many.clone());
        }
        _ => {}
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("prompt".into(), prompt.into());
    body.insert("stream".into(), request.stream.unwrap_or(false).into());
    if !options.is_empty() {
        body.insert("options".into(), options.into());
    }
    for name in NATIVE {
        if let Some(value) = request.extra.get(*name).filter(|v| !v.is_null()) {
            body.insert((*name).into(), value.clone());
        }
    }
    Ok(Value::Object(body))
}

/// One `text_completion` object (a whole answer, or one stream event).
fn completion(
    id: &str,
    created: u64,
    reply: &Reply,
    text: &str,
    last: bool,
) -> PassthroughResponse {
    let mut extra = Map::new();
    extra.insert("id".into(), id.into());
    extra.insert("object".into(), "text_completion".into());
    extra.insert("created".into(), created.into());
    let finish = last.then(|| finish_reason(reply.done_reason.as_deref(), false));
    extra.insert(
        "choices".into(),
        json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]),
    );
    if last {
        if let Some(usage) = usage(reply) {
            extra.insert(
                "usage".into(),
                serde_json::to_value(usage).unwrap_or(Value::Null),
            );
        }
    }
    PassthroughResponse {
        model: Some(reply.model.clone()),
        extra,
    }
}

pub fn from_generate(body: &[u8]) -> Result<PassthroughResponse, ProviderError> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("ollama response: {err}")))?;
    if reply.done == Some(false) {
        return Err(ProviderError::InvalidResponse(
            "the Ollama answer is incomplete (`done: false`)".into(),
        ));
    }
    let text = reply.response.clone().unwrap_or_default();
    Ok(completion(
        &random_id("cmpl-"),
        unix_now(),
        &reply,
        &text,
        true,
    ))
}

/// The NDJSON lines of a streamed `/api/generate` as `text_completion` events; nothing after
/// the `done` line.
pub fn stream_decoder() -> PassthroughDecoder {
    let id = random_id("cmpl-");
    let created = unix_now();
    let mut done = false;
    Box::new(move |data: &str| {
        let data = data.trim();
        if done {
            return Ok(None);
        }
        if data.starts_with("{\"error\"") {
            return Err(parse_error(500, &HeaderMap::new(), data.as_bytes()));
        }
        let reply: Reply = serde_json::from_str(data)
            .map_err(|err| ProviderError::InvalidResponse(format!("ollama stream line: {err}")))?;
        done = reply.done == Some(true);
        let text = reply.response.clone().unwrap_or_default();
        Ok(Some(completion(&id, created, &reply, &text, done)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> PassthroughRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn request_maps_prompt_and_options() {
        let body = to_generate(
            &request(
                json!({"model": "x", "prompt": ["def add(a, b):"], "max_tokens": 20,
                            "temperature": 0, "stop": "\n\n", "suffix": "return c",
                            "stream": true, "user": "u"}),
            ),
            "codellama",
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"model": "codellama", "prompt": "def add(a, b):", "stream": true,
                   "suffix": "return c",
                   "options": {"temperature": 0, "num_predict": 20, "stop": ["\n\n"]}})
        );
        assert!(to_generate(&request(json!({"model": "x", "prompt": ["a", "b"]})), "m").is_err());
        assert!(to_generate(&request(json!({"model": "x", "prompt": [1, 2]})), "m").is_err());
    }

    #[test]
    fn answers_whole_and_streamed() {
        let answer = from_generate(
            br#"{"model":"m","response":"Hi there","done":true,"done_reason":"length","prompt_eval_count":3,"eval_count":2}"#,
        )
        .unwrap();
        assert_eq!(answer.extra["object"], "text_completion");
        assert_eq!(answer.extra["choices"][0]["text"], "Hi there");
        assert_eq!(answer.extra["choices"][0]["finish_reason"], "length");
        assert_eq!(answer.usage().unwrap().total_tokens, 5);
        assert!(from_generate(br#"{"response":"Hi","done":false}"#).is_err());

        let mut decode = stream_decoder();
        let first = decode(r#"{"model":"m","response":"Hi","done":false}"#)
            .unwrap()
            .unwrap();
        assert_eq!(first.extra["choices"][0]["finish_reason"], Value::Null);
        let last = decode(r#"{"model":"m","response":"","done":true,"done_reason":"stop","prompt_eval_count":1,"eval_count":1}"#)
            .unwrap()
            .unwrap();
        assert_eq!(last.extra["choices"][0]["finish_reason"], "stop");
        assert_eq!(last.extra["id"], first.extra["id"]);
        assert_eq!(last.usage().unwrap().completion_tokens, 1);
        assert!(decode(r#"{"response":"late"}"#).unwrap().is_none());

        let mut decode = stream_decoder();
        assert!(decode("{not json").is_err());
        assert!(matches!(
            decode(r#"{"error":"boom"}"#),
            Err(ProviderError::Status { .. })
        ));
    }
}
