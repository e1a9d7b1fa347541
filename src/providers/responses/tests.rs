//! The mappings on fixtures from OpenAI's API reference (`POST /v1/responses` examples).

use serde_json::{json, Value};

use super::request::to_chat;
use super::response::{complete, usage_to_chat};
use super::stream::ResponsesStreamEncoder;
use super::wire::{InputItem, ResponseObject, ResponsesRequest};
use crate::schema::{ChatChunk, ChatCompletion, MessageContent, Role, ToolChoice};

fn request(body: Value) -> ResponsesRequest {
    serde_json::from_value(body).unwrap()
}

#[test]
fn text_input_and_instructions() {
    // API reference: "Text input" with instructions.
    let req = request(json!({
        "model": "gpt-4.1",
        "instructions": "You are a coding assistant that talks like a pirate.",
        "input": "Tell me a three sentence bedtime story about a unicorn.",
        "max_output_tokens": 100,
        "temperature": 0.7,
        "top_p": 1,
        "user": "u-1",
        "parallel_tool_calls": false
    }));
    let chat = to_chat(&req, &[]).unwrap();
    assert_eq!(chat.messages.len(), 2);
    assert_eq!(chat.messages[0].role, Role::System);
    assert_eq!(chat.messages[1].role, Role::User);
    assert!(
        matches!(&chat.messages[1].content, Some(MessageContent::Text(t)) if t.starts_with("Tell me"))
    );
    assert_eq!(chat.max_completion_tokens, Some(100));
    assert_eq!(chat.temperature.unwrap().to_string(), "0.7");
    assert_eq!(chat.top_p.unwrap().to_string(), "1");
    assert_eq!(chat.user.as_deref(), Some("u-1"));
    assert_eq!(chat.parallel_tool_calls, Some(false));
}

#[test]
fn image_input_items() {
    // API reference: "Image input".
    let req = request(json!({
        "model": "gpt-4.1",
        "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is in this image?"},
            {"type": "input_image", "image_url": "https://upload.wikimedia.org/x.jpg", "detail": "low"}
        ]}]
    }));
    let chat = to_chat(&req, &[]).unwrap();
    let Some(MessageContent::Parts(parts)) = &chat.messages[0].content else {
        panic!("{:?}", chat.messages[0].content)
    };
    assert_eq!(parts[0].text.as_deref(), Some("what is in this image?"));
    let image = parts[1].image_url.as_ref().unwrap();
    assert_eq!(image.url, "https://upload.wikimedia.org/x.jpg");
    assert_eq!(image.detail.as_deref(), Some("low"));
}

#[test]
fn function_tools_calls_and_outputs() {
    // API reference: "Functions", then the function call and its output sent back.
    let req = request(json!({
        "model": "gpt-4.1",
        "tools": [{
            "type": "function",
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                           "required": ["location"]},
            "strict": true
        }],
        "tool_choice": {"type": "function", "name": "get_current_weather"},
        "input": [
            {"role": "user", "content": "What is the weather like in Boston today?"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_abc", "name": "get_current_weather",
             "arguments": "{\"location\":\"Boston, MA\"}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_abc", "output": "{\"temp\": 21}"}
        ]
    }));
    let chat = to_chat(&req, &[]).unwrap();
    let tool = chat.tools.as_ref().unwrap()[0].function.as_ref().unwrap();
    assert_eq!(tool.name, "get_current_weather");
    assert_eq!(tool.strict, Some(true));
    assert_eq!(tool.parameters.as_ref().unwrap()["required"][0], "location");
    assert!(
        matches!(&chat.tool_choice, Some(ToolChoice::Named(n)) if n.function.as_ref().unwrap().name == "get_current_weather")
    );
    assert_eq!(chat.messages.len(), 3);
    let call = &chat.messages[1].tool_calls.as_ref().unwrap()[0];
    assert_eq!(chat.messages[1].role, Role::Assistant);
    assert!(chat.messages[1].content.is_none());
    assert_eq!(call.id, "call_abc");
    assert_eq!(call.function.arguments, "{\"location\":\"Boston, MA\"}");
    assert_eq!(chat.messages[2].role, Role::Tool);
    assert_eq!(chat.messages[2].tool_call_id.as_deref(), Some("call_abc"));
}

#[test]
fn assistant_text_then_calls_is_one_message_and_history_comes_first() {
    let history = vec![
        InputItem::user_text("hi".into()),
        serde_json::from_value(
            json!({"type": "message", "id": "msg_1", "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "let me check", "annotations": []}]}),
        )
        .unwrap(),
        serde_json::from_value(
            json!({"type": "function_call", "id": "fc_1", "call_id": "c1",
            "name": "f", "arguments": "{}", "status": "completed"}),
        )
        .unwrap(),
    ];
    let req = request(json!({"model": "m", "previous_response_id": "resp_1",
        "input": [{"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "42"}]}]}));
    let chat = to_chat(&req, &history).unwrap();
    assert_eq!(chat.messages.len(), 3, "{:?}", chat.messages);
    assert!(
        matches!(&chat.messages[1].content, Some(MessageContent::Text(t)) if t == "let me check")
    );
    assert_eq!(chat.messages[1].tool_calls.as_ref().unwrap()[0].id, "c1");
    assert!(matches!(&chat.messages[2].content, Some(MessageContent::Text(t)) if t == "42"));
}

#[test]
fn text_format_json_schema_and_reasoning() {
    let req = request(json!({"model": "m", "input": "x",
        "text": {"format": {"type": "json_schema", "name": "event", "strict": true,
                            "schema": {"type": "object"}}},
        "reasoning": {"effort": "low"}}));
    let chat = to_chat(&req, &[]).unwrap();
    let format = chat.response_format.unwrap();
    assert_eq!(format.kind, "json_schema");
    let schema = format.json_schema.unwrap();
    assert_eq!(schema.name.as_deref(), Some("event"));
    assert_eq!(schema.strict, Some(true));
    assert_eq!(chat.extra["reasoning_effort"], "low");
    let text = request(json!({"model": "m", "input": "x", "text": {"format": {"type": "text"}}}));
    assert!(to_chat(&text, &[]).unwrap().response_format.is_none());
}

#[test]
fn what_cannot_be_translated_is_a_400_naming_it() {
    let cases = [
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "web_search_preview"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
            "input[0].content[0].image_url",
        ),
    ];
    for (body, param) in cases {
        let err = to_chat(&request(body.clone()), &[]).unwrap_err();
        assert_eq!(err.param, param, "{body}: {}", err.message);
    }
}

#[test]
fn hostile_shapes_fail_to_parse() {
    for body in [
        json!({"model": "m", "input": 3}),
        json!({"model": "m", "input": [3]}),
        json!({"model": "m", "input": "x", "tools": [{"name": "no type"}]}),
        json!({"model": "m", "input": "x", "max_output_tokens": -1}),
        json!({"model": ["m"], "input": "x"}),
    ] {
        assert!(
            serde_json::from_value::<ResponsesRequest>(body.clone()).is_err(),
            "{body}"
        );
    }
}

fn completion(body: Value) -> ChatCompletion {
    serde_json::from_value(body).unwrap()
}

#[test]
fn chat_answer_as_a_response() {
    let req = request(
        json!({"model": "claude", "input": "hi", "instructions": "be brief",
        "metadata": {"k": "v"}, "max_output_tokens": 50}),
    );
    let mut response = ResponseObject::started(&req, "resp_1".into(), 1_741_476_542, "claude");
    // The surface echoes the metadata it read (it is the gateway's, not in `extra` any more).
    response.metadata.insert("k".into(), "v".into());
    complete(
        &mut response,
        &completion(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "claude-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!",
                "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 36, "completion_tokens": 87, "total_tokens": 123,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 2}}
        })),
    );
    let value = serde_json::to_value(&response).unwrap();
    assert_eq!(value["object"], "response");
    assert_eq!(value["status"], "completed");
    assert_eq!(value["model"], "claude");
    assert_eq!(value["instructions"], "be brief");
    assert_eq!(value["metadata"]["k"], "v");
    assert_eq!(value["incomplete_details"], Value::Null);
    assert_eq!(value["output"][0]["type"], "message");
    assert_eq!(value["output"][0]["role"], "assistant");
    assert!(value["output"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("msg_"));
    assert_eq!(
        value["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Hello!", "annotations": []})
    );
    assert_eq!(value["output"][1]["type"], "function_call");
    assert_eq!(value["output"][1]["call_id"], "toolu_1");
    assert_eq!(value["output"][1]["name"], "get_weather");
    assert_eq!(value["output"][1]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(
        value["usage"],
        json!({"input_tokens": 36, "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 123})
    );
    assert_eq!(response.output_text(), "Hello!");
    // The items the next turn sends back.
    let next = response.output[1].to_input();
    assert_eq!(next.kind(), "function_call");
    assert_eq!(next.call_id.as_deref(), Some("toolu_1"));
}

#[test]
fn cut_by_length_is_incomplete() {
    let req = request(json!({"model": "m", "input": "hi"}));
    let mut response = ResponseObject::started(&req, "resp_1".into(), 1, "m");
    complete(
        &mut response,
        &completion(json!({"choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Once upon"}, "finish_reason": "length"}]})),
    );
    assert_eq!(response.status, "incomplete");
    assert_eq!(
        response.incomplete_details.unwrap().reason,
        "max_output_tokens"
    );
}

#[test]
fn native_usage_counts_as_chat_usage() {
    // API reference: the Response object's usage.
    let usage = usage_to_chat(&json!({"input_tokens": 36, "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123})).unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (36, 87, 123)
    );
    assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 10);
    assert!(usage_to_chat(&json!(null)).is_none());
}

fn events(frames: &[bytes::Bytes]) -> Vec<Value> {
    frames
        .iter()
        .flat_map(|f| {
            std::str::from_utf8(f)
                .unwrap()
                .split("\n\n")
                .filter(|e| !e.is_empty())
                .map(|e| {
                    let (name, data) = e.split_once('\n').unwrap();
                    let value: Value =
                        serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                    assert_eq!(name.strip_prefix("event: ").unwrap(), value["type"]);
                    value
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn chunk(body: Value) -> ChatChunk {
    serde_json::from_value(body).unwrap()
}

#[test]
fn stream_events_in_the_order_the_sdk_expects() {
    let req = request(json!({"model": "m", "input": "hi", "stream": true}));
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut encoder = ResponsesStreamEncoder::new(
        ResponseObject::started(&req, "resp_1".into(), 1, "m"),
        seq.clone(),
    );
    let mut out = Vec::new();
    encoder.start(&mut out);
    for body in [
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "f", "arguments": ""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}),
    ] {
        encoder.push(&chunk(body), &mut out);
    }
    let done = encoder.finish(&mut out);
    let events = events(&out);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i as u64);
    }
    assert_eq!(
        seq.load(std::sync::atomic::Ordering::Relaxed),
        events.len() as u64
    );
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["id"], "resp_1");
    assert_eq!(events[6]["text"], "Hello");
    assert_eq!(events[9]["output_index"], 1);
    assert_eq!(events[9]["item"]["call_id"], "call_1");
    assert_eq!(events[12]["arguments"], "{\"a\":1}");
    let last = &events[14]["response"];
    assert_eq!(last["status"], "completed");
    assert_eq!(last["usage"]["total_tokens"], 12);
    assert_eq!(last["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(last["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(done.output.len(), 2);
}

#[test]
fn a_stream_cut_by_length_ends_incomplete() {
    let req = request(json!({"model": "m", "input": "hi"}));
    let mut encoder = ResponsesStreamEncoder::new(
        ResponseObject::started(&req, "resp_1".into(), 1, "m"),
        Default::default(),
    );
    let mut out = Vec::new();
    encoder.start(&mut out);
    encoder.push(&chunk(json!({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "length"}]})), &mut out);
    encoder.finish(&mut out);
    let events = events(&out);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[test]
fn native_body_rewrites_only_the_model() {
    let body = json!({"model": "alias", "input": [{"role": "user", "content": "hi", "x": 1}],
        "temperature": 1, "include": ["reasoning.encrypted_content"], "store": false,
        "tools": [{"type": "web_search_preview", "search_context_size": "low"}]});
    let req = request(body.clone());
    let sent: Value =
        serde_json::from_slice(&super::wire::native_body(&req, "gpt-4.1").unwrap()).unwrap();
    let mut expected = body;
    expected["model"] = "gpt-4.1".into();
    assert_eq!(sent, expected);
}

#[test]
fn native_stream_tap_rewrites_the_model_reads_usage_and_requires_the_end() {
    use super::native::NativeStreamTap;
    use crate::providers::SseEvent;
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tap = NativeStreamTap::new("alias".into(), seq.clone());
    let event = |data: Value| SseEvent {
        event: Some(data["type"].as_str().unwrap().to_owned()),
        data: data.to_string(),
    };
    let created = tap
        .event(&event(
            json!({"type": "response.created", "sequence_number": 0,
        "response": {"id": "resp_x", "model": "gpt-4.1-2025", "output": []}}),
        ))
        .unwrap()
        .unwrap();
    assert!(!created.output);
    assert!(std::str::from_utf8(&created.bytes)
        .unwrap()
        .contains("\"model\":\"alias\""));
    assert!(tap.finish().is_err(), "cut before response.completed");
    let done = tap
        .event(&event(
            json!({"type": "response.completed", "sequence_number": 1,
        "response": {"id": "resp_x", "model": "gpt-4.1-2025", "output": [],
                     "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}}),
        ))
        .unwrap()
        .unwrap();
    assert!(done.output);
    assert_eq!(done.usage.unwrap().total_tokens, 7);
    assert!(tap.finish().is_ok());
    assert_eq!(seq.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert!(tap
        .event(&SseEvent {
            event: None,
            data: "{nope".into()
        })
        .is_err());
}

#[test]
fn wrong_types_say_what_was_expected() {
    let err =
        serde_json::from_value::<ResponsesRequest>(json!({"model": "m", "input": 3})).unwrap_err();
    assert!(
        err.to_string()
            .contains("a string or a list of input items"),
        "{err}"
    );
    let err = serde_json::from_value::<ResponsesRequest>(
        json!({"model": "m", "input": [{"role": "user", "content": {"text": "x"}}]}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("a string or a list of content parts"),
        "{err}"
    );
}

#[test]
fn openai_only_fields_are_named_as_dropped() {
    let req = request(
        json!({"model": "m", "input": "x", "include": ["reasoning.encrypted_content"],
        "truncation": "auto", "service_tier": null, "seed": 1}),
    );
    let mut dropped = super::request::untranslated(&req);
    dropped.sort();
    assert_eq!(dropped, ["include", "seed", "truncation"]);
}

// ------------------------------------------------------------------------------------------
// Fixtures: the API reference's Response object and a stream of its events
// (`tests/fixtures/openai_responses/`).
// ------------------------------------------------------------------------------------------

const RESPONSE_TEXT: &str =
    include_str!("../../../tests/fixtures/openai_responses/response_text.json");
const STREAM_TEXT: &str = include_str!("../../../tests/fixtures/openai_responses/stream_text.sse");

#[test]
fn a_native_answer_gets_the_alias_and_counts_its_usage() {
    let (body, usage) = super::native::whole(RESPONSE_TEXT.as_bytes(), "gpt").unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    let mut expected: Value = serde_json::from_str(RESPONSE_TEXT).unwrap();
    expected["model"] = "gpt".into();
    assert_eq!(body, expected, "only `model` changes");
    let usage = usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (36, 87, 123)
    );
    assert!(super::native::whole(b"[1]", "gpt").is_err());
    assert!(super::native::whole(b"<html>", "gpt").is_err());
}

#[test]
fn a_native_stream_passes_event_by_event() {
    use super::native::NativeStreamTap;
    let mut decoder = crate::providers::SseDecoder::new();
    let mut events = Vec::new();
    decoder.feed(STREAM_TEXT.as_bytes(), &mut events).unwrap();
    let mut tap = NativeStreamTap::new("gpt".into(), Default::default());
    let mut usage = None;
    let mut passed = Vec::new();
    for event in &events {
        if let Some(p) = tap.event(event).unwrap() {
            usage = p.usage.or(usage);
            passed.push(p.bytes);
        }
    }
    tap.finish().unwrap();
    let out = self::events(&passed);
    let original: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(out.len(), original.len());
    for (sent, came) in out.iter().zip(&original) {
        let mut came = came.clone();
        if let Some(response) = came.get_mut("response") {
            response["model"] = "gpt".into();
        }
        assert_eq!(sent, &came);
    }
    assert_eq!(usage.unwrap().total_tokens, 39);
}

/// A translated Response has the reference's fields, and no field the reference lacks.
#[test]
fn a_translated_response_has_the_reference_shape() {
    let reference: Value = serde_json::from_str(RESPONSE_TEXT).unwrap();
    let req = request(json!({"model": "claude", "input": "Tell me a story"}));
    let mut response = ResponseObject::started(&req, "resp_1".into(), 1, "claude");
    complete(
        &mut response,
        &completion(json!({"choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Once"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})),
    );
    let ours = serde_json::to_value(&response).unwrap();
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&ours), keys(&reference));
    assert_eq!(keys(&ours["output"][0]), keys(&reference["output"][0]));
    assert_eq!(
        keys(&ours["output"][0]["content"][0]),
        keys(&reference["output"][0]["content"][0])
    );
    assert_eq!(keys(&ours["usage"]), keys(&reference["usage"]));
    assert_eq!(ours["reasoning"], reference["reasoning"]);
    assert_eq!(ours["text"], reference["text"]);
}
