//! Every mapping of this folder, against payloads from the Gemini API reference
//! (`tests/fixtures/gemini/`).

use std::time::Duration;

use axum::http::header::HeaderMap;
use serde_json::{json, Value};

use super::request::to_gemini;
use super::response::to_completion;
use super::stream::GeminiStreamDecoder;
use super::wire::GenerateContentResponse;
use super::*;
use crate::providers::params::Dropped;
use crate::providers::testing::{assemble, fixture, run, upstream};
use crate::providers::{HttpProvider, ProviderError};
use crate::schema::ChatRequest;

fn chat(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn hello(extra: Value) -> ChatRequest {
    let mut body = json!({"model": "gemini", "messages": [{"role": "user", "content": "Hello"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    chat(body)
}

fn translate(request: &ChatRequest) -> Result<Value, ProviderError> {
    let body = to_gemini(request, &mut Dropped::new("gemini", false))?;
    Ok(serde_json::to_value(body).unwrap())
}

fn response(name: &str) -> GenerateContentResponse {
    serde_json::from_str(&fixture(&format!("gemini/{name}"))).unwrap()
}

#[test]
fn request_fixture_translates_exactly() {
    let pair: Value = serde_json::from_str(&fixture("gemini/request_from_openai.json")).unwrap();
    assert_eq!(
        translate(&chat(pair["openai"].clone())).unwrap(),
        pair["gemini"]
    );
}

#[test]
fn url_and_key_header() {
    let mut up = upstream("gemini-2.5-flash");
    up.base_url = "https://generativelanguage.googleapis.com/v1beta".into();
    let built = Gemini.chat_request(&up, &hello(json!({}))).unwrap();
    assert_eq!(
        built.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(built.headers["x-goog-api-key"], "sk-upstream-secret");
    assert!(!built.url.contains("key="), "the key never goes in the URL");
    let built = Gemini
        .chat_request(&up, &hello(json!({"stream": true})))
        .unwrap();
    assert_eq!(
        built.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    up.base_url = "http://127.0.0.1:9".into();
    up.model = "models/gemini-2.0-flash".into();
    let built = Gemini.chat_request(&up, &hello(json!({}))).unwrap();
    assert_eq!(
        built.url,
        "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:generateContent"
    );
}

#[test]
fn generation_config_tool_choice_and_formats() {
    let body = translate(&hello(json!({
        "n": 2, "presence_penalty": 0.5, "frequency_penalty": 0.25, "max_completion_tokens": 50,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "reasoning_effort": "low"
    })))
    .unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({
            "maxOutputTokens": 50, "candidateCount": 2, "presencePenalty": 0.5,
            "frequencyPenalty": 0.25, "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"}, "thinkingConfig": {"thinkingBudget": 1024}
        })
    );
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    for (choice, config) in [
        (json!("auto"), json!({"mode": "AUTO"})),
        (json!("none"), json!({"mode": "NONE"})),
        (json!("required"), json!({"mode": "ANY"})),
    ] {
        let body = translate(&hello(json!({"tools": tools, "tool_choice": choice}))).unwrap();
        assert_eq!(body["toolConfig"]["functionCallingConfig"], config);
    }
    let body = translate(&hello(json!({"tools": tools}))).unwrap();
    assert!(body.get("toolConfig").is_none());
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0],
        json!({"name": "f"})
    );
    let body = translate(&hello(json!({"response_format": {"type": "json_object"}}))).unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    assert!(translate(&hello(json!({})))
        .unwrap()
        .get("generationConfig")
        .is_none());
}

#[test]
fn parameters_gemini_cannot_take() {
    for (extra, param) in [
        (json!({"logit_bias": {"1": 5}}), "logit_bias"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"parallel_tool_calls": false}), "parallel_tool_calls"),
        (json!({"x_unknown": 1}), "x_unknown"),
    ] {
        let err = translate(&hello(extra.clone())).unwrap_err().to_string();
        assert!(err.contains(&format!("`{param}`")), "{extra}: {err}");
        let mut lenient = upstream("m");
        lenient.drop_params = true;
        assert!(Gemini.chat_request(&lenient, &hello(extra.clone())).is_ok());
        assert_eq!(
            Gemini.dropped_params(&lenient, &hello(extra)),
            vec![param.to_owned()]
        );
    }
    let informational = hello(json!({"user": "u-1", "store": false, "metadata": {"a": "b"}}));
    assert!(translate(&informational).is_ok());
    assert_eq!(
        Gemini.dropped_params(&upstream("m"), &informational),
        vec!["metadata".to_owned(), "store".to_owned(), "user".to_owned()]
    );
}

#[test]
fn tool_messages_need_a_known_call() {
    let err = translate(&chat(json!({"model": "g", "messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "call_unknown", "content": "42"}
    ]})))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("messages[1].tool_call_id") && err.contains("call_unknown"),
        "{err}"
    );
    // A tool message that names its function is enough.
    assert!(translate(&chat(json!({"model": "g", "messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "c", "name": "lookup", "content": "42"}
    ]})))
    .is_ok());
}

#[test]
fn text_response_counts_thoughts_as_output() {
    let completion = to_completion(response("response_text.json"));
    assert_eq!(completion.id, "hmwKaJLCFY3Lz7IPkeTd6Q0");
    assert_eq!(completion.model, "gemini-2.5-flash");
    let choice = &completion.choices[0];
    assert!(choice
        .message
        .content
        .as_deref()
        .unwrap()
        .starts_with("AI learns patterns"));
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = completion.usage.unwrap();
    assert_eq!(usage.prompt_tokens, 8);
    assert_eq!(usage.completion_tokens, 20 + 1017);
    assert_eq!(usage.total_tokens, 1045);
    assert_eq!(
        usage.extra["completion_tokens_details"]["reasoning_tokens"],
        1017
    );
}

#[test]
fn parallel_function_calls_keep_their_thought_signature() {
    let completion = to_completion(response("response_function_call.json"));
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.content, None);
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].id.starts_with("call_") && calls[0].id != calls[1].id);
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].function.arguments).unwrap(),
        json!({"location": "New York, NY"})
    );
    assert_eq!(
        calls[0].extra["extra_content"]["google"]["thought_signature"],
        "CiQBVKhc7wOQ5wRqYk2Z0pS1ivKgUQzs1ZI3yXYfVYDlTp6yXtwKZwFUqFzv1ifE0Xn"
    );
    assert!(calls[1].extra.is_empty());
    assert_eq!(
        completion.usage.unwrap().extra["prompt_tokens_details"]["cached_tokens"],
        64
    );
    // Sent back, the signature returns to its part.
    let back = translate(&chat(json!({"model": "g", "messages": [
        {"role": "user", "content": "q"},
        serde_json::to_value(&choice.message).unwrap(),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "1"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "2"}
    ]})))
    .unwrap();
    assert_eq!(
        back["contents"][1]["parts"][0]["thoughtSignature"],
        "CiQBVKhc7wOQ5wRqYk2Z0pS1ivKgUQzs1ZI3yXYfVYDlTp6yXtwKZwFUqFzv1ifE0Xn"
    );
    assert_eq!(back["contents"][2]["parts"].as_array().unwrap().len(), 2);
}

#[test]
fn safety_blocks_are_content_filtered() {
    let completion = to_completion(response("response_safety.json"));
    assert_eq!(
        completion.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(completion.choices[0].message.content.as_deref(), Some(""));
    let blocked = to_completion(response("response_prompt_blocked.json"));
    assert_eq!(blocked.choices.len(), 1);
    assert_eq!(
        blocked.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(blocked.usage.unwrap().prompt_tokens, 9);
    for (reason, expected) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ] {
        assert_eq!(response::finish_reason(reason, false), expected, "{reason}");
    }
}

#[test]
fn candidates_become_choices() {
    let completion = to_completion(response("response_two_candidates.json"));
    assert_eq!(completion.choices.len(), 2);
    assert_eq!(completion.choices[1].index, 1);
    assert_eq!(
        completion.choices[1].finish_reason.as_deref(),
        Some("length")
    );
}

#[test]
fn text_stream_ends_with_usage() {
    let mut decoder = GeminiStreamDecoder::default();
    let (chunks, error) = run(&mut decoder, &fixture("gemini/stream_text.sse"));
    assert!(error.is_none(), "{error:?}");
    let answer = assemble(&chunks);
    assert!(answer.role_first);
    assert_eq!(
        answer.content,
        "The quick brown fox jumps over the lazy dog."
    );
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    let usage = answer.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (9, 32, 41)
    );
    assert!(chunks.last().unwrap().choices.is_empty());
    assert!(chunks.iter().all(|c| c.id == "tTCwacuEBMvnitYP06qsgQY"));
}

#[test]
fn function_call_stream() {
    let mut decoder = GeminiStreamDecoder::default();
    let (chunks, error) = run(&mut decoder, &fixture("gemini/stream_function_call.sse"));
    assert!(error.is_none(), "{error:?}");
    let answer = assemble(&chunks);
    assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(answer.tool_calls.len(), 2);
    assert_eq!(answer.tool_calls[&0].1, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&answer.tool_calls[&1].2).unwrap(),
        json!({"location": "Tokyo"})
    );
}

#[test]
fn a_cut_stream_is_an_error() {
    let mut decoder = GeminiStreamDecoder::default();
    let (chunks, error) = run(&mut decoder, &fixture("gemini/stream_truncated.sse"));
    assert_eq!(assemble(&chunks).content, "Once upon a");
    assert!(matches!(error, Some(ProviderError::InvalidResponse(_))));
    let mut decoder = GeminiStreamDecoder::default();
    let (_, error) = run(
        &mut decoder,
        "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\n\n",
    );
    let error = error.unwrap();
    assert!(error.is_retryable());
    assert!(matches!(error, ProviderError::Status { status: 503, .. }));
}

#[test]
fn errors_keep_status_type_and_retry_delay() {
    let rate = Gemini.error_response(
        429,
        &HeaderMap::new(),
        fixture("gemini/error_rate_limited.json").as_bytes(),
    );
    assert!(rate.is_retryable());
    assert_eq!(rate.retry_after(), Some(Duration::from_secs(17)));
    assert!(
        matches!(&rate, ProviderError::Status { kind: Some(k), code: Some(c), .. }
        if k == "rate_limit_error" && c == "RESOURCE_EXHAUSTED")
    );
    let key = Gemini.error_response(
        400,
        &HeaderMap::new(),
        fixture("gemini/error_invalid_key.json").as_bytes(),
    );
    assert!(!key.is_retryable());
    assert!(
        matches!(&key, ProviderError::Status { message, .. } if message.starts_with("API key not valid"))
    );
    let array = format!("[{}]", fixture("gemini/error_invalid_key.json"));
    assert!(matches!(
        Gemini.error_response(400, &HeaderMap::new(), array.as_bytes()),
        ProviderError::Status { kind: Some(k), .. } if k == "invalid_request_error"
    ));
}
