//! Every mapping of this folder, against payloads shaped as the Bedrock API reference shows
//! them (`tests/fixtures/bedrock/`).

use axum::http::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::request::to_converse;
use super::response::to_completion;
use super::stream::BedrockStreamDecoder;
use super::wire::ConverseResponse;
use super::*;
use crate::providers::eventstream::{encode, encode_event};
use crate::providers::framing::FrameDecoder;
use crate::providers::params::Dropped;
use crate::providers::testing::{assemble, fixture, upstream};
use crate::providers::{ChatStreamDecoder, HttpProvider, ProviderError, StreamItem};
use crate::schema::{ChatChunk, ChatRequest};

fn chat(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn hello(extra: Value) -> ChatRequest {
    let mut body = json!({"model": "claude", "messages": [{"role": "user", "content": "Hello"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    chat(body)
}

fn translate(request: &ChatRequest) -> Result<Value, ProviderError> {
    let body = to_converse(request, &mut Dropped::new("bedrock", false))?;
    Ok(serde_json::to_value(body).unwrap())
}

fn response(name: &str) -> ConverseResponse {
    serde_json::from_str(&fixture(&format!("bedrock/{name}"))).unwrap()
}

/// Feeds event-stream bytes through the framing and `decoder`, the way `decode_chat` does.
fn run_frames(bytes: &[u8]) -> (Vec<ChatChunk>, Option<ProviderError>) {
    let mut frames = FrameDecoder::new(Framing::AwsEventStream);
    let mut events = Vec::new();
    let framing = frames
        .feed(bytes, &mut events)
        .and_then(|()| frames.finish(&mut events));
    let mut decoder = BedrockStreamDecoder::default();
    let mut chunks = Vec::new();
    let mut items = Vec::new();
    for event in events {
        let result = decoder.decode(&event, &mut items);
        for item in items.drain(..) {
            match item {
                StreamItem::Chunk(chunk) => chunks.push(chunk),
                StreamItem::Done => return (chunks, result.err()),
            }
        }
        if let Err(err) = result {
            return (chunks, Some(err));
        }
    }
    if let Err(err) = framing {
        return (
            chunks,
            Some(ProviderError::InvalidResponse(err.to_string())),
        );
    }
    let result = decoder.finish(&mut items);
    for item in items.drain(..) {
        if let StreamItem::Chunk(chunk) = item {
            chunks.push(chunk);
        }
    }
    (chunks, result.err())
}

fn stream_fixture(name: &str) -> Vec<u8> {
    let events: Vec<(String, Value)> =
        serde_json::from_str(&fixture(&format!("bedrock/{name}"))).unwrap();
    events
        .iter()
        .flat_map(|(name, payload)| encode_event(name, &payload.to_string()))
        .collect()
}

#[test]
fn request_fixture_translates_exactly() {
    let pair: Value = serde_json::from_str(&fixture("bedrock/request_from_openai.json")).unwrap();
    assert_eq!(
        translate(&chat(pair["openai"].clone())).unwrap(),
        pair["bedrock"]
    );
}

#[test]
fn urls_encode_the_model_id_whole() {
    let base = "https://bedrock-runtime.us-east-1.amazonaws.com";
    assert_eq!(
        url(base, "anthropic.claude-3-5-sonnet-20240620-v1:0", false).unwrap(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(
        url(base, "converse/us.anthropic.claude-3-5-sonnet-20240620-v1:0", true).unwrap(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert_eq!(
        url(
            &format!("{base}/"),
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
            false
        )
        .unwrap(),
        format!("{base}/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0/converse")
    );
    assert!(url(base, "invoke/anthropic.claude-v2", false).is_err());
    assert!(url(base, "converse/", false).is_err());
}

#[test]
fn headers_accept_and_bearer_key() {
    let mut up = upstream("amazon.nova-lite-v1:0");
    up.api_key = None;
    let built = Bedrock.chat_request(&up, &hello(json!({}))).unwrap();
    assert_eq!(built.headers["accept"], "application/json");
    assert_eq!(built.headers["content-type"], "application/json");
    assert!(
        built.headers.get("authorization").is_none(),
        "SigV4 signs later"
    );
    let built = Bedrock
        .chat_request(&up, &hello(json!({"stream": true})))
        .unwrap();
    assert_eq!(
        built.headers["accept"],
        "application/vnd.amazon.eventstream"
    );
    assert!(built.url.ends_with("/converse-stream"));
    // A Bedrock API key is a bearer token.
    let up = upstream("amazon.nova-lite-v1:0");
    let built = Bedrock.chat_request(&up, &hello(json!({}))).unwrap();
    assert_eq!(built.headers["authorization"], "Bearer sk-upstream-secret");
}

#[test]
fn tool_choice_variants_and_none() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let choice =
        |choice: Value| translate(&hello(json!({"tools": tools, "tool_choice": choice}))).unwrap();
    assert_eq!(
        choice(json!("required"))["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "f"}}))["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    // A function without parameters still gets the object schema Converse requires.
    assert_eq!(
        choice(json!("auto"))["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object", "properties": {}})
    );
    // `none` drops the tools: Converse has no way to forbid calling them.
    assert!(choice(json!("none")).get("toolConfig").is_none());
}

#[test]
fn unsupported_params_refused_or_dropped() {
    let err = translate(&hello(json!({"seed": 7})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`seed`"), "{err}");
    assert!(translate(&hello(json!({"n": 2}))).is_err());
    assert!(translate(&hello(json!({"response_format": {"type": "json_object"}}))).is_err());
    let mut up = upstream("m");
    up.drop_params = true;
    let request = hello(json!({"seed": 7, "store": true, "n": 1}));
    assert!(Bedrock.chat_request(&up, &request).is_ok());
    assert_eq!(Bedrock.dropped_params(&up, &request), ["seed", "store"]);
    // Native Converse fields pass through.
    let body = translate(&hello(json!({
        "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
        "additionalModelRequestFields": {"reasoning_config": {"type": "enabled"}}
    })))
    .unwrap();
    assert_eq!(body["guardrailConfig"]["guardrailIdentifier"], "g");
    assert_eq!(
        body["additionalModelRequestFields"]["reasoning_config"]["type"],
        "enabled"
    );
}

#[test]
fn images_must_be_data_urls_and_text_results_stay_text() {
    let image = |url: &str| {
        hello(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}
        ]}]}))
    };
    let err = translate(&image("https://example.com/cat.png"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("base64 data URLs"), "{err}");
    assert!(translate(&image("data:image/tiff;base64,AAAA")).is_err());
    let body = translate(&image("data:image/jpeg;base64,/9j/")).unwrap();
    assert_eq!(body["messages"][0]["content"][0]["image"]["format"], "jpeg");

    let body = translate(&chat(json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": ""}
    ], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"})))
    .unwrap();
    // Both results in one user turn; the tools stay because the history uses them.
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["messages"][2]["content"][0]["toolResult"]["content"],
        json!([{"text": "sunny"}])
    );
    assert_eq!(
        body["messages"][2]["content"][1]["toolResult"]["content"],
        json!([{"text": "(empty)"}])
    );
    assert_eq!(
        body["messages"][1]["content"][0]["toolUse"]["input"],
        json!({})
    );
    assert!(body.get("toolConfig").is_some());
    assert!(body.get("inferenceConfig").is_none());
}

#[test]
fn text_response() {
    let completion = to_completion(response("converse_response.json"));
    let choice = &completion.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("Here is a list of 3 pop songs by artists from the United Kingdom.")
    );
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = completion.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (125, 60, 185)
    );
}

#[test]
fn tool_use_response_and_cache_usage() {
    let completion = to_completion(response("converse_tool_use_response.json"));
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(calls[0].function.name, "top_song");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"sign": "WZPZ"})
    );
    let usage = completion.usage.unwrap();
    assert_eq!(usage.prompt_tokens, 475);
    assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 100);
    assert_eq!(usage.total_tokens, 545);
}

#[test]
fn stop_reasons() {
    use super::response::finish_reason;
    for (bedrock, openai) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ] {
        assert_eq!(finish_reason(bedrock), openai, "{bedrock}");
    }
}

#[test]
fn stream_with_text_and_a_tool_call() {
    let (chunks, error) = run_frames(&stream_fixture("converse_stream_tool_use.json"));
    assert!(error.is_none(), "{error:?}");
    let assembled = assemble(&chunks);
    assert!(assembled.role_first);
    assert_eq!(assembled.content, "Let me check.");
    assert_eq!(
        assembled.tool_calls[&0],
        (
            "tooluse_Uu1iD1ZzQmK4RD8nYz9tUg".to_owned(),
            "top_song".to_owned(),
            "{\"sign\": \"WZPZ\"}".to_owned()
        )
    );
    assert_eq!(assembled.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(assembled.usage.unwrap().total_tokens, 445);
    let ids: std::collections::BTreeSet<&str> = chunks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one id for the whole stream");
}

#[test]
fn stream_exception_cut_and_garbage() {
    let mut bytes = encode_event("messageStart", r#"{"role":"assistant"}"#);
    bytes.extend(encode(
        &[
            (":message-type", "exception"),
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
        ],
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    ));
    let (_, error) = run_frames(&bytes);
    match error {
        Some(ProviderError::Status { status, kind, .. }) => {
            assert_eq!(status, 429);
            assert_eq!(kind.as_deref(), Some("rate_limit_error"));
        }
        other => panic!("{other:?}"),
    }

    let cut = encode_event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
    );
    let (chunks, error) = run_frames(&cut);
    assert_eq!(assemble(&chunks).content, "Hi");
    assert!(error.unwrap().to_string().contains("messageStop"));

    let (_, error) = run_frames(&encode_event("messageStop", "not json"));
    assert!(matches!(error, Some(ProviderError::InvalidResponse(_))));
    let (_, error) = run_frames(&encode_event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":"{"}}}"#,
    ));
    assert!(matches!(error, Some(ProviderError::InvalidResponse(_))));
}

#[test]
fn errors_read_the_aws_error_type() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_static(
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        ),
    );
    let err = Bedrock.error_response(
        400,
        &headers,
        br#"{"message":"Input is too long for requested model."}"#,
    );
    match &err {
        ProviderError::Status {
            status,
            message,
            kind,
            code,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(message, "Input is too long for requested model.");
            assert_eq!(kind.as_deref(), Some("invalid_request_error"));
            assert_eq!(code.as_deref(), Some("ValidationException"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_context_window_exceeded());

    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_static("ThrottlingException"),
    );
    headers.insert("retry-after", HeaderValue::from_static("3"));
    let err = Bedrock.error_response(429, &headers, br#"{"Message":"Rate exceeded"}"#);
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(3)));
    assert!(err.to_string().contains("Rate exceeded"));

    let err = Bedrock.error_response(503, &HeaderMap::new(), b"<html>busy</html>");
    assert!(err.is_retryable());
}
