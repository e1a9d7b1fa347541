//! Every mapping of this folder, against payloads from Anthropic's API reference
//! (`tests/fixtures/anthropic/`).

use axum::http::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::request::{to_anthropic, to_openai, OpenAiDialect, DEFAULT_MAX_TOKENS, JSON_TOOL_NAME};
use super::response::{to_completion, to_message};
use super::stream::{AnthropicStreamDecoder, MessagesStreamEncoder, NativeStreamTap};
use super::wire::{
    BlockDelta, ContentBlock, MessageResponse, MessagesBody, MessagesRequest, StreamEvent,
};
use super::*;
use crate::providers::params::Dropped;
use crate::providers::testing::{assemble, fixture, run, sse_events, upstream};
use crate::providers::{HttpProvider, ProviderError};
use crate::schema::{ChatChunk, ChatCompletion, ChatRequest, MessageContent, Role};

fn chat(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn translate(request: &ChatRequest) -> Result<Value, ProviderError> {
    let mut dropped = Dropped::new("anthropic", false);
    let up = upstream("claude-sonnet-4-5-20250929");
    let messages = to_anthropic(request, &up, &mut dropped)?;
    Ok(serde_json::to_value(MessagesBody {
        model: &up.model,
        request: &messages,
    })
    .unwrap())
}

fn hello(extra: Value) -> ChatRequest {
    let mut body = json!({"model": "claude", "messages": [{"role": "user", "content": "Hello"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    chat(body)
}

// ------------------------------------------------------------------ OpenAI → Anthropic requests

#[test]
fn request_fixture_translates_exactly() {
    let pair: Value = serde_json::from_str(&fixture("anthropic/request_from_openai.json")).unwrap();
    let body = translate(&chat(pair["openai"].clone())).unwrap();
    assert_eq!(body, pair["anthropic"]);
}

#[test]
fn url_headers_and_key() {
    let built = Anthropic
        .chat_request(&upstream("claude-haiku-4-5"), &hello(json!({})))
        .unwrap();
    assert_eq!(built.url, "https://upstream.example/v1/messages");
    assert_eq!(built.headers["x-api-key"], "sk-upstream-secret");
    assert_eq!(built.headers["anthropic-version"], API_VERSION);
    assert!(built.headers.get("authorization").is_none());
    let mut up = upstream("m");
    up.base_url = "https://api.anthropic.com".into();
    let built = Anthropic.chat_request(&up, &hello(json!({}))).unwrap();
    assert_eq!(built.url, "https://api.anthropic.com/v1/messages");
}

#[test]
fn max_tokens_comes_from_request_then_model_info_then_default() {
    let up = upstream("m");
    let mut dropped = Dropped::new("anthropic", false);
    let from_default = to_anthropic(&hello(json!({})), &up, &mut dropped).unwrap();
    assert_eq!(from_default.max_tokens, Some(DEFAULT_MAX_TOKENS));
    let mut with_info = upstream("m");
    with_info.max_output_tokens = Some(64_000);
    let from_info = to_anthropic(&hello(json!({})), &with_info, &mut dropped).unwrap();
    assert_eq!(from_info.max_tokens, Some(64_000));
    let from_request =
        to_anthropic(&hello(json!({"max_tokens": 77})), &with_info, &mut dropped).unwrap();
    assert_eq!(from_request.max_tokens, Some(77));
    let newer_name_wins = to_anthropic(
        &hello(json!({"max_tokens": 77, "max_completion_tokens": 88})),
        &up,
        &mut dropped,
    )
    .unwrap();
    assert_eq!(newer_name_wins.max_tokens, Some(88));
}

#[test]
fn consecutive_messages_of_one_role_merge_and_empty_ones_vanish() {
    let body = translate(&chat(json!({"model": "c", "messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": ""},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "four"},
        {"role": "assistant", "content": [{"type": "text", "text": "five"}]}
    ]})))
    .unwrap();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
                {"type": "text", "text": "three"}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "four"},
                {"type": "text", "text": "five"}
            ]}
        ])
    );
    assert!(body.get("system").is_none());
}

#[test]
fn tool_results_come_first_in_their_user_message() {
    // A user message that already holds text receives a tool result: Anthropic wants the
    // results first.
    let body = translate(&chat(json!({"model": "c", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "user", "content": "note"},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "done"}]}
    ]})))
    .unwrap();
    assert_eq!(
        body["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
    );
    assert_eq!(
        body["messages"][2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "done"}]},
            {"type": "text", "text": "note"}
        ])
    );
}

#[test]
fn tool_ids_from_other_providers_are_made_valid_consistently() {
    let body = translate(&chat(json!({"model": "c", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "call:1/a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call:1/a", "content": "ok"}
    ]})))
    .unwrap();
    assert_eq!(body["messages"][1]["content"][0]["id"], "call_1_a");
    assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "call_1_a");
}

#[test]
fn tool_choice_every_form() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let choice = |choice: Value, parallel: Option<bool>| {
        let mut extra = json!({"tools": tools, "tool_choice": choice});
        if let Some(p) = parallel {
            extra["parallel_tool_calls"] = p.into();
        }
        translate(&hello(extra)).unwrap()["tool_choice"].clone()
    };
    assert_eq!(choice(json!("auto"), None), json!({"type": "auto"}));
    assert_eq!(choice(json!("none"), None), json!({"type": "none"}));
    assert_eq!(choice(json!("required"), None), json!({"type": "any"}));
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "f"}}), None),
        json!({"type": "tool", "name": "f"})
    );
    assert_eq!(
        choice(json!("required"), Some(false)),
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(choice(json!("none"), Some(false)), json!({"type": "none"}));
    // No tools: no tool_choice either (Anthropic refuses one without tools).
    let body = translate(&hello(json!({"tool_choice": "auto"}))).unwrap();
    assert!(body.get("tool_choice").is_none() && body.get("tools").is_none());
    // parallel_tool_calls alone still reaches Anthropic.
    let body = translate(&hello(
        json!({"tools": tools, "parallel_tool_calls": false}),
    ))
    .unwrap();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    // A tool without parameters gets an empty object schema.
    let body = translate(&hello(
        json!({"tools": [{"type": "function", "function": {"name": "ping"}}]}),
    ))
    .unwrap();
    assert_eq!(
        body["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
}

#[test]
fn response_format_becomes_a_forced_tool() {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let body = translate(&hello(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}}))).unwrap();
    assert_eq!(body["tools"][0]["name"], JSON_TOOL_NAME);
    assert_eq!(body["tools"][0]["input_schema"], schema);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": JSON_TOOL_NAME})
    );
    let body = translate(&hello(json!({"response_format": {"type": "json_object"}}))).unwrap();
    assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
    let body = translate(&hello(json!({"response_format": {"type": "text"}}))).unwrap();
    assert!(body.get("tools").is_none());
    // With client tools, the model must call one of them or answer in JSON.
    let body = translate(&hello(json!({
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}]
    })))
    .unwrap();
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    assert_eq!(body["tools"].as_array().unwrap().len(), 2);
    let clash = translate(&hello(json!({
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": JSON_TOOL_NAME}}]
    })));
    assert!(clash.unwrap_err().to_string().contains("reserved"));
    // The answer comes back as text.
    let message: MessageResponse =
        serde_json::from_str(&fixture("anthropic/message_json_tool.json")).unwrap();
    let completion = to_completion(message);
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    assert!(choice.message.tool_calls.is_none());
    let answer: Value = serde_json::from_str(choice.message.content.as_deref().unwrap()).unwrap();
    assert_eq!(answer["temperature"], 58);
}

#[test]
fn parameters_anthropic_cannot_take_are_refused_or_dropped() {
    for (extra, param) in [
        (json!({"seed": 7}), "seed"),
        (json!({"presence_penalty": 0.5}), "presence_penalty"),
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"stop": "\n"}), "stop"),
        (json!({"x_vendor_flag": true}), "x_vendor_flag"),
        (
            json!({"tools": [{"type": "custom", "custom": {"name": "g"}}]}),
            "tools",
        ),
    ] {
        let err = translate(&hello(extra.clone())).unwrap_err();
        assert!(
            matches!(&err, ProviderError::Unsupported(m) if m.contains(&format!("`{param}`"))),
            "{extra}: {err}"
        );
        let mut lenient = upstream("m");
        lenient.drop_params = true;
        let built = Anthropic.chat_request(&lenient, &hello(extra.clone()));
        assert!(built.is_ok(), "{extra} with drop_params");
        assert!(
            Anthropic
                .dropped_params(&lenient, &hello(extra.clone()))
                .contains(&param.to_owned()),
            "{extra}"
        );
    }
    // Neutral values change nothing and are neither refused nor reported.
    let neutral =
        hello(json!({"n": 1, "logprobs": false, "presence_penalty": 0, "frequency_penalty": 0.0}));
    assert!(translate(&neutral).is_ok());
    assert!(Anthropic
        .dropped_params(&upstream("m"), &neutral)
        .is_empty());
    // Informational ones are dropped and reported even without drop_params.
    let informational = hello(json!({"store": true, "service_tier": "default"}));
    let body = translate(&informational).unwrap();
    assert!(body.get("store").is_none() && body.get("service_tier").is_none());
    assert_eq!(
        Anthropic.dropped_params(&upstream("m"), &informational),
        vec!["service_tier".to_owned(), "store".to_owned()]
    );
    // Anthropic-native extras pass; reasoning_effort becomes thinking.
    let body = translate(&hello(
        json!({"top_k": 5, "reasoning_effort": "medium", "max_tokens": 1000}),
    ))
    .unwrap();
    assert_eq!(body["top_k"], 5);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        body["max_tokens"], 3048,
        "room for the answer on top of the budget"
    );
    let body = translate(&hello(
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}, "reasoning_effort": "high"}),
    ))
    .unwrap();
    assert_eq!(
        body["thinking"]["budget_tokens"], 1024,
        "explicit thinking wins"
    );
}

#[test]
fn content_edge_cases() {
    // A PDF sent as a file part becomes a document block.
    let body = translate(&chat(json!({"model": "c", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}},
        {"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}}
    ]}]})))
    .unwrap();
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}},
            {"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}}
        ])
    );
    for (url, needle) in [
        ("data:image/png,rawbytes", "base64"),
        ("ftp://example.com/a.png", "http"),
        ("data:image/png;base64", "`,`"),
    ] {
        let err = translate(&chat(
            json!({"model": "c", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}
            ]}]}),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("messages[0].content[0].image_url.url") && err.contains(needle),
            "{err}"
        );
    }
    let err = translate(&chat(json!({"model": "c", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}
    ]})))
    .unwrap_err()
    .to_string();
    assert!(err.contains("tool_calls[0].function.arguments"), "{err}");
    // Message-level cache_control marks the message's last block.
    let body = translate(&chat(json!({"model": "c", "messages": [
        {"role": "user", "content": "long document", "cache_control": {"type": "ephemeral"}}
    ]})))
    .unwrap();
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"type": "text", "text": "long document", "cache_control": {"type": "ephemeral"}}])
    );
}

#[test]
fn thinking_blocks_go_back_first_and_verbatim() {
    let block = json!({"type": "thinking", "thinking": "t", "signature": "sig=="});
    let body = translate(&chat(json!({"model": "c", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "thinking_blocks": [block],
         "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "r"}
    ]})))
    .unwrap();
    assert_eq!(body["messages"][1]["content"][0], block);
    assert_eq!(
        body["messages"][1]["content"][1],
        json!({"type": "text", "text": "a"})
    );
}

// ------------------------------------------------------------------ Anthropic → OpenAI responses

fn message(name: &str) -> MessageResponse {
    serde_json::from_str(&fixture(&format!("anthropic/{name}"))).unwrap()
}

#[test]
fn text_message_with_cache_usage() {
    let completion = to_completion(message("message_text.json"));
    assert_eq!(completion.id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(completion.object, "chat.completion");
    let choice = &completion.choices[0];
    assert_eq!(choice.message.role, Role::Assistant);
    assert_eq!(
        choice.message.content.as_deref(),
        Some("Hi! My name is Claude.")
    );
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = completion.usage.unwrap();
    // 2095 uncached + 2051 written to the cache.
    assert_eq!(usage.prompt_tokens, 2095 + 2051);
    assert_eq!(usage.completion_tokens, 503);
    assert_eq!(usage.total_tokens, 2095 + 2051 + 503);
    assert_eq!(usage.extra["cache_creation_input_tokens"], 2051);
    assert_eq!(usage.extra["cache_read_input_tokens"], 0);
    assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 0);
}

#[test]
fn parallel_tool_calls_and_cache_reads() {
    let completion = to_completion(message("message_tool_use.json"));
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        choice.message.content.as_deref(),
        Some("I'll check the weather in both cities.")
    );
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name, "get_weather");
    let args: Value = serde_json::from_str(&calls[1].function.arguments).unwrap();
    assert_eq!(args, json!({"location": "New York, NY", "unit": "celsius"}));
    let usage = completion.usage.unwrap();
    assert_eq!(usage.prompt_tokens, 472 + 1024);
    assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 1024);
}

#[test]
fn thinking_and_empty_answers() {
    let completion = to_completion(message("message_thinking.json"));
    let choice = &completion.choices[0];
    assert_eq!(choice.message.content.as_deref(), Some("27 × 453 = 12,231"));
    assert!(choice.message.extra["reasoning_content"]
        .as_str()
        .unwrap()
        .contains("12231"));
    let original = message("message_thinking.json");
    let ContentBlock::Thinking { signature, .. } = &original.content[0] else {
        panic!("fixture starts with thinking")
    };
    assert_eq!(
        choice.message.extra["thinking_blocks"][0]["signature"],
        signature.as_str()
    );
    let empty = to_completion(message("message_max_tokens_empty.json"));
    assert_eq!(empty.choices[0].message.content.as_deref(), Some(""));
    assert_eq!(empty.choices[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(empty.usage.unwrap().prompt_tokens, 12);
}

#[test]
fn stop_reasons() {
    use super::response::{finish_reason, stop_reason};
    for (anthropic, openai) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ] {
        assert_eq!(finish_reason(anthropic), openai, "{anthropic}");
    }
    assert_eq!(stop_reason(Some("stop")), "end_turn");
    assert_eq!(stop_reason(Some("length")), "max_tokens");
    assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
    assert_eq!(stop_reason(Some("content_filter")), "refusal");
    assert_eq!(stop_reason(None), "end_turn");
}

// ------------------------------------------------------------------ Anthropic stream → chunks

fn decode(name: &str) -> (Vec<ChatChunk>, Option<ProviderError>) {
    let mut decoder = AnthropicStreamDecoder::default();
    run(&mut decoder, &fixture(&format!("anthropic/{name}")))
}

#[test]
fn text_stream() {
    let (chunks, error) = decode("stream_text.sse");
    assert!(error.is_none(), "{error:?}");
    let answer = assemble(&chunks);
    assert!(answer.role_first);
    assert_eq!(answer.content, "Hello!");
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    let usage = answer.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (25, 15));
    // The usage chunk is its own chunk with no choices, after the finish chunk.
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty() && last.usage.is_some());
    assert!(chunks
        .iter()
        .all(|c| c.id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"));
    assert!(chunks.iter().all(|c| c.object == "chat.completion.chunk"));
}

#[test]
fn tool_use_stream_with_argument_deltas() {
    let (chunks, error) = decode("stream_tool_use.sse");
    assert!(error.is_none(), "{error:?}");
    let answer = assemble(&chunks);
    assert_eq!(
        answer.content,
        "Okay, let's check the weather for San Francisco, CA:"
    );
    assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(answer.tool_calls.len(), 2);
    let (id, name, arguments) = &answer.tool_calls[&0];
    assert_eq!(
        (id.as_str(), name.as_str()),
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    let (_, name, arguments) = &answer.tool_calls[&1];
    assert_eq!(name, "get_time");
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"timezone": "America/Los_Angeles"})
    );
    // Argument pieces are streamed as they come, not buffered.
    let pieces = chunks
        .iter()
        .filter(|c| {
            c.choices.first().is_some_and(|ch| {
                ch.delta
                    .tool_calls
                    .as_ref()
                    .is_some_and(|t| t[0].id.is_none())
            })
        })
        .count();
    assert_eq!(pieces, 8);
}

#[test]
fn a_stream_without_message_stop() {
    // Cut after the final message_delta: the answer is complete.
    let (chunks, error) = decode("stream_no_message_stop.sse");
    assert!(error.is_none(), "{error:?}");
    let answer = assemble(&chunks);
    assert_eq!(answer.content, "Cached");
    assert_eq!(answer.finish_reason.as_deref(), Some("length"));
    let usage = answer.usage.unwrap();
    assert_eq!(usage.prompt_tokens, 8 + 4096);
    assert_eq!(usage.extra["cache_read_input_tokens"], 4096);
    // Cut mid-answer: the client gets what came, then an error.
    let (chunks, error) = decode("stream_truncated.sse");
    assert_eq!(assemble(&chunks).content, "Half a sent");
    assert!(matches!(error, Some(ProviderError::InvalidResponse(m)) if m.contains("ended before")));
}

#[test]
fn unknown_events_and_deltas_are_ignored() {
    let (chunks, error) = decode("stream_unknown_events.sse");
    assert!(error.is_none(), "{error:?}");
    let answer = assemble(&chunks);
    assert_eq!(answer.content, "Still here.");
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
}

#[test]
fn error_event_in_a_stream() {
    let (chunks, error) = decode("stream_error_overloaded.sse");
    assert_eq!(assemble(&chunks).content, "Once upon");
    let error = error.unwrap();
    assert!(error.is_retryable());
    assert!(
        matches!(&error, ProviderError::Status { status: 529, kind: Some(k), .. } if k == "overloaded_error")
    );
}

#[test]
fn json_tool_streams_as_text() {
    let body = [
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}"#,
        r#"event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"json_tool_call","input":{}}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\": "}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":5}}"#,
        r#"event: message_stop
data: {"type":"message_stop"}"#,
    ]
    .join("\n\n");
    let mut decoder = AnthropicStreamDecoder::default();
    let (chunks, error) = run(&mut decoder, &body);
    assert!(error.is_none());
    let answer = assemble(&chunks);
    assert_eq!(answer.content, r#"{"a": 1}"#);
    assert!(answer.tool_calls.is_empty());
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
}

// ------------------------------------------------------------------ errors

#[test]
fn errors_keep_type_status_and_retryability() {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("12"));
    match Anthropic.error_response(
        429,
        &headers,
        fixture("anthropic/error_rate_limit.json").as_bytes(),
    ) {
        error @ ProviderError::Status { .. } => {
            assert!(error.is_retryable());
            assert_eq!(
                error.retry_after(),
                Some(std::time::Duration::from_secs(12))
            );
            let ProviderError::Status { kind, message, .. } = error else {
                unreachable!()
            };
            assert_eq!(kind.as_deref(), Some("rate_limit_error"));
            assert!(message.starts_with("This request would exceed the rate limit"));
        }
        other => panic!("{other:?}"),
    }
    let overloaded = Anthropic.error_response(
        529,
        &HeaderMap::new(),
        fixture("anthropic/error_overloaded.json").as_bytes(),
    );
    assert!(overloaded.is_retryable());
    assert_eq!(overloaded.class(), "upstream_5xx");
    let invalid = Anthropic.error_response(
        400,
        &HeaderMap::new(),
        fixture("anthropic/error_invalid_request.json").as_bytes(),
    );
    assert!(!invalid.is_retryable());
    assert!(
        matches!(&invalid, ProviderError::Status { kind: Some(k), message, .. }
        if k == "invalid_request_error" && message.contains("roles must alternate"))
    );
    assert!(matches!(
        Anthropic.error_response(502, &HeaderMap::new(), b"<html>bad gateway</html>"),
        ProviderError::Status { status: 502, message, .. } if message.contains("bad gateway")
    ));
    assert_eq!(error::type_of(529), "overloaded_error");
    assert_eq!(error::type_of(502), "api_error");
    assert_eq!(error::type_of(404), "not_found_error");
    assert_eq!(error::status_of("overloaded_error"), 529);
}

// ------------------------------------------------------------------ Anthropic → OpenAI requests

fn claude_code() -> MessagesRequest {
    serde_json::from_str(&fixture("anthropic/request_claude_code.json")).unwrap()
}

#[test]
fn anthropic_request_as_openai() {
    let mut dropped = Dropped::new("openai", false);
    let request = to_openai(&claude_code(), OpenAiDialect::Compatible, &mut dropped).unwrap();
    assert_eq!(request.model, "claude-sonnet-4-5");
    assert_eq!(request.max_tokens, Some(32000));
    assert_eq!(
        request.user.as_deref(),
        Some("user_2f8a_account__session_77c1")
    );
    assert!(request.is_stream() && request.wants_stream_usage());
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": [
                {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                {"type": "text", "text": "Use the tools available to you to assist the user."}
            ]},
            {"role": "user", "content": "What is in package.json?"},
            {"role": "assistant", "content": "I'll read the file.", "tool_calls": [
                {"id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "type": "function",
                 "function": {"name": "Read", "arguments": "{\"file_path\":\"/repo/package.json\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "content": "{\"name\": \"demo\"}"},
            {"role": "user", "content": "Summarise it."}
        ])
    );
    assert_eq!(body["tools"][0]["function"]["name"], "Read");
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["required"],
        json!(["file_path"])
    );
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["temperature"], 1);
    assert_eq!(dropped.names(), ["cache_control"]);
    // OpenAI proper takes max_completion_tokens.
    let mut dropped = Dropped::new("openai", false);
    let strict = to_openai(&claude_code(), OpenAiDialect::Strict, &mut dropped).unwrap();
    assert_eq!(
        (strict.max_tokens, strict.max_completion_tokens),
        (None, Some(32000))
    );
}

#[test]
fn anthropic_only_features_are_refused_or_dropped() {
    let mut request = claude_code();
    request.thinking = Some(wire::Thinking {
        kind: "enabled".into(),
        budget_tokens: Some(1024),
        extra: Default::default(),
    });
    request.top_k = Some(5.into());
    request.tools.as_mut().unwrap().push(
        serde_json::from_value(json!({"type": "web_search_20250305", "name": "web_search"}))
            .unwrap(),
    );
    let err = to_openai(
        &request,
        OpenAiDialect::Strict,
        &mut Dropped::new("openai", false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`top_k`"), "{err}");
    let mut dropped = Dropped::new("openai", true);
    let translated = to_openai(&request, OpenAiDialect::Strict, &mut dropped).unwrap();
    assert_eq!(translated.tools.as_ref().unwrap().len(), 1);
    assert_eq!(
        dropped.names(),
        [
            "cache_control",
            "top_k",
            "thinking",
            "tools[web_search] (web_search_20250305)"
        ]
    );
    // Compatible servers get top_k.
    let mut dropped = Dropped::new("vllm", true);
    let compatible = to_openai(&request, OpenAiDialect::Compatible, &mut dropped).unwrap();
    assert_eq!(compatible.extra["top_k"], 5);
}

#[test]
fn anthropic_images_tool_errors_and_choices() {
    let request: MessagesRequest = serde_json::from_value(json!({
        "model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "Compare"}
        ]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["###"]
    }))
    .unwrap();
    let out = to_openai(
        &request,
        OpenAiDialect::Compatible,
        &mut Dropped::new("x", false),
    )
    .unwrap();
    let Some(MessageContent::Parts(parts)) = &out.messages[0].content else {
        panic!()
    };
    assert_eq!(
        parts[0].image_url.as_ref().unwrap().url,
        "data:image/jpeg;base64,/9j/4AAQ"
    );
    assert_eq!(
        parts[1].image_url.as_ref().unwrap().url,
        "https://example.com/cat.png"
    );
    let body = serde_json::to_value(&out).unwrap();
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["stop"], json!(["###"]));
}

#[test]
fn openai_completion_as_anthropic_message() {
    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me look.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                           {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]},
            "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 64}}
    }))
    .unwrap();
    let message = serde_json::to_value(to_message(completion, "my-alias")).unwrap();
    assert_eq!(
        message,
        json!({
            "id": "chatcmpl-abc", "type": "message", "role": "assistant", "model": "my-alias",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {"_raw_arguments": "not json"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 36, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 64, "output_tokens": 20}
        })
    );
}

// ------------------------------------------------------------------ OpenAI chunks → Anthropic events

fn chunk(value: Value) -> ChatChunk {
    serde_json::from_value(value).unwrap()
}

/// Checks Anthropic's event grammar and rebuilds the message the way the SDK does.
fn replay(events: &[StreamEvent]) -> MessageResponse {
    let mut message = match &events[0] {
        StreamEvent::MessageStart { message } => message.clone(),
        other => panic!("first event {other:?}"),
    };
    let mut open: Option<u32> = None;
    let mut json = std::collections::HashMap::<u32, String>::new();
    for event in &events[1..] {
        match event {
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                assert!(open.is_none(), "block {index} started inside another");
                assert_eq!(
                    *index as usize,
                    message.content.len(),
                    "indexes are sequential"
                );
                open = Some(*index);
                message.content.push(content_block.clone());
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                assert_eq!(open, Some(*index), "delta outside its block");
                match (delta, &mut message.content[*index as usize]) {
                    (BlockDelta::TextDelta { text }, ContentBlock::Text { text: t, .. }) => {
                        t.push_str(text)
                    }
                    (BlockDelta::InputJsonDelta { partial_json }, ContentBlock::ToolUse { .. }) => {
                        json.entry(*index).or_default().push_str(partial_json)
                    }
                    other => panic!("mismatched delta {other:?}"),
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                assert_eq!(open.take(), Some(*index));
                if let Some(text) = json.get(index) {
                    if let ContentBlock::ToolUse { input, .. } =
                        &mut message.content[*index as usize]
                    {
                        *input = serde_json::from_str(text).unwrap();
                    }
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                assert!(open.is_none());
                message.stop_reason.clone_from(&delta.stop_reason);
                message.usage.output_tokens = usage.output_tokens;
                message.usage.input_tokens =
                    usage.input_tokens.unwrap_or(message.usage.input_tokens);
            }
            StreamEvent::MessageStop => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(events.last(), Some(StreamEvent::MessageStop)));
    message
}

#[test]
fn openai_chunks_as_anthropic_events() {
    let base = json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"});
    let with = |choices: Value, usage: Value| {
        let mut c = base.clone();
        c["choices"] = choices;
        c["usage"] = usage;
        chunk(c)
    };
    let chunks = [
        with(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"content": "Checking"}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"content": " both."}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            Value::Null,
        ),
        with(
            json!([]),
            json!({"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80}),
        ),
    ];
    let mut encoder = MessagesStreamEncoder::new("my-alias");
    let mut events = Vec::new();
    for c in &chunks {
        encoder.push(c, &mut events);
    }
    encoder.finish(&mut events);
    let message = replay(&events);
    assert_eq!(message.model, "my-alias");
    assert_eq!(message.id, "chatcmpl-9");
    assert_eq!(message.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(
        (message.usage.input_tokens, message.usage.output_tokens),
        (50, 30)
    );
    let blocks = serde_json::to_value(&message.content).unwrap();
    assert_eq!(
        blocks,
        json!([
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"city": "Rome"}}
        ])
    );
    // An empty stream is still a well-formed message.
    let mut encoder = MessagesStreamEncoder::new("m");
    let mut events = Vec::new();
    encoder.finish(&mut events);
    let message = replay(&events);
    assert!(message.content.is_empty());
    assert_eq!(message.stop_reason.as_deref(), Some("end_turn"));
}

#[test]
fn native_stream_tap_rewrites_the_model_and_counts() {
    let mut tap = NativeStreamTap::new("alias");
    let mut forwarded = Vec::new();
    for event in sse_events(&fixture("anthropic/stream_text.sse")) {
        forwarded.push(tap.event(&event).unwrap());
    }
    assert_eq!(forwarded[0].0, "message_start");
    let start: Value = serde_json::from_str(&forwarded[0].1).unwrap();
    assert_eq!(start["message"]["model"], "alias");
    assert_eq!(
        start["message"]["id"],
        "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
    );
    assert_eq!(
        forwarded[2],
        ("ping".to_owned(), r#"{"type": "ping"}"#.to_owned())
    );
    assert!(tap.finish().is_ok());
    let usage = tap.usage();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (25, 15));

    let mut tap = NativeStreamTap::new("alias");
    for event in sse_events(&fixture("anthropic/stream_truncated.sse")) {
        tap.event(&event).unwrap();
    }
    assert!(tap.finish().is_err());
    let mut tap = NativeStreamTap::new("alias");
    let results: Vec<_> = sse_events(&fixture("anthropic/stream_error_overloaded.sse"))
        .iter()
        .map(|e| tap.event(e))
        .collect();
    assert!(matches!(
        results.last(),
        Some(Err(ProviderError::Status { status: 529, .. }))
    ));
}

#[test]
fn native_request_forwards_the_body_and_client_headers() {
    let request = claude_code();
    let client = ClientHeaders {
        version: Some(HeaderValue::from_static("2023-06-01")),
        beta: Some(HeaderValue::from_static("interleaved-thinking-2025-05-14")),
    };
    let built = Anthropic
        .native_messages_request(
            &upstream("claude-sonnet-4-5-20250929"),
            MessagesEndpoint::Create,
            &request,
            &client,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        built.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14"
    );
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    let mut expected: Value =
        serde_json::from_str(&fixture("anthropic/request_claude_code.json")).unwrap();
    expected["model"] = "claude-sonnet-4-5-20250929".into();
    assert_eq!(body, expected);
    let count = Anthropic
        .native_messages_request(
            &upstream("m"),
            MessagesEndpoint::CountTokens,
            &request,
            &ClientHeaders::default(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        count.url,
        "https://upstream.example/v1/messages/count_tokens"
    );
    assert_eq!(count.headers["anthropic-version"], API_VERSION);
}

// ------------------------------------------------------------------ property: OpenAI → Anthropic → OpenAI

mod round_trip {
    use proptest::prelude::*;

    use super::*;
    use crate::schema::{ContentPart, Message, ToolCall};

    /// One piece of a conversation, independent of how messages are split or merged: what the
    /// round trip must keep.
    #[derive(Debug, Clone, PartialEq)]
    enum Atom {
        Text(Role, String),
        Call {
            id: String,
            name: String,
            arguments: Value,
        },
        Result {
            id: String,
            text: String,
        },
    }

    fn texts(content: &Option<MessageContent>) -> Vec<String> {
        match content {
            None => Vec::new(),
            Some(MessageContent::Text(text)) => vec![text.clone()],
            Some(MessageContent::Parts(parts)) => {
                parts.iter().filter_map(|p| p.text.clone()).collect()
            }
        }
    }

    /// (system texts, conversation atoms). System messages are hoisted into Anthropic's
    /// `system`, so they are compared on their own.
    fn atoms(messages: &[Message]) -> (Vec<String>, Vec<Atom>) {
        let mut system = Vec::new();
        let mut atoms = Vec::new();
        for message in messages {
            match message.role {
                Role::System | Role::Developer => system.extend(texts(&message.content)),
                Role::Tool => atoms.push(Atom::Result {
                    id: message.tool_call_id.clone().unwrap_or_default(),
                    text: texts(&message.content).concat(),
                }),
                role => {
                    for text in texts(&message.content) {
                        atoms.push(Atom::Text(role, text));
                    }
                    for call in message.tool_calls.iter().flatten() {
                        atoms.push(Atom::Call {
                            id: call.id.clone(),
                            name: call.function.name.clone(),
                            arguments: serde_json::from_str(&call.function.arguments).unwrap(),
                        });
                    }
                }
            }
        }
        (system, atoms)
    }

    /// Text with something besides whitespace (whitespace-only blocks are not sent: Anthropic
    /// refuses them).
    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9.,!?'\"é✓][a-zA-Z0-9 .,!?'\"é✓]{0,23}"
    }

    fn content() -> impl Strategy<Value = MessageContent> {
        prop_oneof![
            text().prop_map(MessageContent::Text),
            prop::collection::vec(text(), 1..4).prop_map(|t| MessageContent::Parts(
                t.into_iter().map(ContentPart::text).collect()
            )),
        ]
    }

    #[derive(Debug, Clone)]
    enum Turn {
        System(MessageContent),
        User(MessageContent),
        Assistant(MessageContent),
        /// Optional text, then calls (id, name, argument value) each answered by a tool message.
        Tools(Option<String>, Vec<(String, String, String, String)>),
    }

    fn turn() -> impl Strategy<Value = Turn> {
        let call = (
            "[a-zA-Z0-9_-]{1,16}",
            "[a-z_]{1,10}",
            "[a-z0-9 ]{0,8}",
            text(),
        );
        prop_oneof![
            content().prop_map(Turn::System),
            content().prop_map(Turn::User),
            content().prop_map(Turn::Assistant),
            (prop::option::of(text()), prop::collection::vec(call, 1..4))
                .prop_map(|(t, calls)| Turn::Tools(t, calls)),
        ]
    }

    fn conversation(turns: Vec<Turn>) -> Vec<Message> {
        let mut messages = Vec::new();
        let mut used = std::collections::HashSet::new();
        for turn in turns {
            match turn {
                Turn::System(c) => messages.push(Message::new(Role::System, Some(c))),
                Turn::User(c) => messages.push(Message::new(Role::User, Some(c))),
                Turn::Assistant(c) => messages.push(Message::new(Role::Assistant, Some(c))),
                Turn::Tools(text, calls) => {
                    // Call ids are unique within a conversation, as providers make them.
                    let calls: Vec<_> = calls
                        .into_iter()
                        .filter(|(id, ..)| used.insert(id.clone()))
                        .collect();
                    if calls.is_empty() {
                        continue;
                    }
                    let mut assistant =
                        Message::new(Role::Assistant, text.map(MessageContent::Text));
                    assistant.tool_calls = Some(
                        calls
                            .iter()
                            .map(|(id, name, value, _)| {
                                ToolCall::function(id, name, json!({"arg": value}).to_string())
                            })
                            .collect(),
                    );
                    messages.push(assistant);
                    for (id, _, _, result) in calls {
                        let mut tool = Message::text(Role::Tool, result);
                        tool.tool_call_id = Some(id);
                        messages.push(tool);
                    }
                }
            }
        }
        messages
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn roles_text_and_tool_call_ids_survive(turns in prop::collection::vec(turn(), 1..10)) {
            let messages = conversation(turns);
            let original = ChatRequest::new("alias", messages);
            let mut dropped = Dropped::new("anthropic", false);
            let anthropic = to_anthropic(&original, &upstream("claude"), &mut dropped).unwrap();
            // Through the wire format, as a /v1/messages client would send it.
            let wire = serde_json::to_value(MessagesBody { model: "alias", request: &anthropic }).unwrap();
            let anthropic: MessagesRequest = serde_json::from_value(wire).unwrap();
            let back = to_openai(&anthropic, OpenAiDialect::Compatible, &mut dropped).unwrap();
            prop_assert!(dropped.names().is_empty(), "dropped {:?}", dropped.names());
            prop_assert_eq!(atoms(&original.messages), atoms(&back.messages));
        }
    }
}
