//! Every mapping of this folder, against payloads shaped as Ollama's API reference shows them
//! (`tests/fixtures/ollama/`).

use axum::http::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};

use super::request::{to_chat, to_generate};
use super::response::OllamaStreamDecoder;
use super::*;
use crate::providers::framing::FrameDecoder;
use crate::providers::params::Dropped;
use crate::providers::testing::{assemble, fixture, upstream};
use crate::providers::{ChatStreamDecoder, HttpProvider, ProviderError, StreamItem};
use crate::schema::{ChatChunk, ChatRequest, PassthroughRequest};

fn chat(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn hello(extra: Value) -> ChatRequest {
    let mut body = json!({"model": "local", "messages": [{"role": "user", "content": "Hello"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    chat(body)
}

fn to_chat_json(request: &ChatRequest) -> Result<Value, ProviderError> {
    let body = to_chat(request, "llama3.2", &mut Dropped::new("ollama_chat", false))?;
    Ok(serde_json::to_value(body).unwrap())
}

/// Feeds an NDJSON body, cut in small pieces, through the real framing and `decoder`, the way
/// `http::decode_chat` does.
fn run_ndjson(body: &str) -> (Vec<ChatChunk>, Option<ProviderError>) {
    let mut framing = FrameDecoder::new(Framing::NdJson);
    let mut decoder = OllamaStreamDecoder::default();
    let mut events = Vec::new();
    for piece in body.as_bytes().chunks(7) {
        framing.feed(piece, &mut events).unwrap();
    }
    framing.finish(&mut events).unwrap();
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
    let result = decoder.finish(&mut items);
    (chunks, result.err())
}

#[test]
fn urls_from_any_form_of_api_base() {
    assert_eq!(
        url("http://localhost:11434", "chat"),
        "http://localhost:11434/api/chat"
    );
    assert_eq!(url("http://h:1/", "embed"), "http://h:1/api/embed");
    assert_eq!(url("http://h:1/api", "generate"), "http://h:1/api/generate");
    assert_eq!(url("http://h:1/api/chat", "embed"), "http://h:1/api/embed");
    assert_eq!(
        url("https://proxy.example/ollama/api/generate/", "chat"),
        "https://proxy.example/ollama/api/chat"
    );
}

#[test]
fn chat_request_maps_options_format_and_messages() {
    let request = chat(json!({
        "model": "local",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]}
        ],
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": "END", "seed": 7,
        "top_k": 20, "frequency_penalty": 0.5,
        "response_format": {"type": "json_object"},
        "keep_alive": "5m", "options": {"num_ctx": 8192, "temperature": 1.5},
        "stream": true, "stream_options": {"include_usage": true}
    }));
    let body = to_chat_json(&request).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "llama3.2",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is in this picture?", "images": ["iVBORw0KGgo="]}
            ],
            "stream": true,
            "format": "json",
            "options": {"num_ctx": 8192, "temperature": 0.2, "top_p": 0.9, "num_predict": 64,
                        "stop": ["END"], "seed": 7, "top_k": 20, "frequency_penalty": 0.5},
            "keep_alive": "5m"
        })
    );
    // A JSON schema is Ollama's structured output; max_completion_tokens wins over max_tokens.
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let body = to_chat_json(&hello(json!({
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        "max_tokens": 5, "max_completion_tokens": 9
    })))
    .unwrap();
    assert_eq!(body["format"], schema);
    assert_eq!(body["options"], json!({"num_predict": 9}));
    assert_eq!(
        body["stream"], false,
        "always sent: Ollama streams by default"
    );
}

#[test]
fn chat_request_tools_and_tool_results() {
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let request = chat(json!({
        "model": "local",
        "tools": tools,
        "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "assistant", "content": null, "reasoning_content": "Look it up.",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "22C"}
        ]
    }));
    let body = to_chat_json(&request).unwrap();
    assert_eq!(body["tools"], tools);
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": "", "thinking": "Look it up.",
               "tool_calls": [{"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "tool", "content": "22C", "tool_name": "get_weather"})
    );
    // `none` means: offer no tools.
    let mut none = request.clone();
    none.tool_choice = Some(crate::schema::ToolChoice::Mode("none".into()));
    assert!(to_chat_json(&none).unwrap().get("tools").is_none());
    // Ollama cannot be forced to call; that is refused unless drop_params.
    let mut forced = request.clone();
    forced.tool_choice = Some(crate::schema::ToolChoice::Mode("required".into()));
    let err = to_chat_json(&forced).unwrap_err().to_string();
    assert!(
        err.contains("tool_choice") && err.contains("drop_params"),
        "{err}"
    );
    let mut dropped = Dropped::new("ollama_chat", true);
    assert!(to_chat(&forced, "m", &mut dropped).is_ok());
    assert_eq!(dropped.names(), ["tool_choice"]);
}

#[test]
fn unsupported_parameters_are_refused_or_dropped() {
    let request = hello(
        json!({"logit_bias": {"42": 10}, "n": 2, "store": true, "user": "u1",
                               "presence_penalty": 0, "reasoning_effort": "high"}),
    );
    let err = to_chat_json(&request).unwrap_err().to_string();
    assert!(err.contains("logit_bias"), "{err}");
    let provider = Ollama::chat();
    let mut lenient = upstream("llama3.2");
    lenient.drop_params = true;
    let built = provider.chat_request(&lenient, &request).unwrap();
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    assert_eq!(body["think"], true, "a model without levels thinks or not");
    assert!(body.get("logit_bias").is_none());
    let names = HttpProvider::dropped_params(&provider, &lenient, &request);
    assert_eq!(names, ["logit_bias", "store", "n", "user"]);
    // gpt-oss takes a thinking level.
    let body = serde_json::to_value(
        to_chat(
            &hello(json!({"reasoning_effort": "low"})),
            "gpt-oss:20b",
            &mut Dropped::new("ollama_chat", false),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(body["think"], "low");
}

#[test]
fn images_must_be_inline() {
    let request = chat(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
    );
    let err = to_chat_json(&request).unwrap_err().to_string();
    assert!(
        err.contains("messages[0].content[0]") && err.contains("base64"),
        "{err}"
    );
}

#[test]
fn generate_request_is_one_prompt() {
    let mut dropped = Dropped::new("ollama", false);
    let single = to_generate(
        &chat(json!({"model": "m", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Why is the sky blue?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}],
            "max_tokens": 10, "response_format": {"type": "json_object"}})),
        "llama3.2",
        &mut dropped,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(single).unwrap(),
        json!({"model": "llama3.2", "prompt": "Why is the sky blue?", "system": "Be brief.",
               "images": ["/9j/4AAQ"], "stream": false, "format": "json",
               "options": {"num_predict": 10}})
    );
    let turns = to_generate(
        &chat(json!({"model": "m", "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"}]})),
        "llama3.2",
        &mut dropped,
    )
    .unwrap();
    assert_eq!(
        turns.prompt,
        "### User:\nHi\n\n### Assistant:\nHello!\n\n### User:\nBye\n\n"
    );
    // /api/generate has no tools.
    let with_tools = hello(json!({"tools": [{"type": "function", "function": {"name": "f"}}]}));
    let err = to_generate(&with_tools, "m", &mut dropped)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`tools`") && err.contains("`ollama`"), "{err}");
}

#[test]
fn key_is_a_bearer_token_only_when_configured() {
    let provider = Ollama::chat();
    let mut with_key = upstream("llama3.2");
    with_key.base_url = "http://127.0.0.1:11434".into();
    let built = provider.chat_request(&with_key, &hello(json!({}))).unwrap();
    assert_eq!(built.url, "http://127.0.0.1:11434/api/chat");
    assert_eq!(built.headers[AUTHORIZATION], "Bearer sk-upstream-secret");
    with_key.api_key = None;
    let built = Ollama::generate()
        .chat_request(&with_key, &hello(json!({})))
        .unwrap();
    assert_eq!(built.url, "http://127.0.0.1:11434/api/generate");
    assert!(built.headers.get(AUTHORIZATION).is_none());
}

#[test]
fn chat_response_text_and_usage() {
    let answer = Ollama::chat()
        .chat_response(fixture("ollama/chat_response.json").as_bytes())
        .unwrap();
    assert_eq!(answer.model, "llama3.2");
    let choice = &answer.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("Hello! How are you today?")
    );
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = answer.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (26, 298, 324)
    );
}

#[test]
fn chat_response_tool_calls() {
    let answer = Ollama::chat()
        .chat_response(fixture("ollama/chat_response_tools.json").as_bytes())
        .unwrap();
    let choice = &answer.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.content, None);
    let call = &choice.message.tool_calls.as_ref().unwrap()[0];
    assert!(call.id.starts_with("call_"));
    assert_eq!(call.function.name, "get_current_weather");
    let arguments: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert_eq!(
        arguments,
        json!({"format": "celsius", "location": "Paris, FR"})
    );
}

#[test]
fn generate_response_and_length_stop() {
    let answer = Ollama::generate()
        .chat_response(fixture("ollama/generate_response.json").as_bytes())
        .unwrap();
    let choice = &answer.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("The sky is blue because it is the color of the sky.")
    );
    assert_eq!(choice.finish_reason.as_deref(), Some("length"));
    assert_eq!(answer.usage.unwrap().completion_tokens, 290);
}

#[test]
fn chat_stream_text() {
    let (chunks, err) = run_ndjson(&fixture("ollama/chat_stream.ndjson"));
    assert!(err.is_none(), "{err:?}");
    let assembled = assemble(&chunks);
    assert!(assembled.role_first);
    assert_eq!(assembled.content, "The sky");
    assert_eq!(assembled.finish_reason.as_deref(), Some("stop"));
    let usage = assembled.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (26, 282));
    assert!(chunks.iter().all(|c| c.id == chunks[0].id));
}

#[test]
fn chat_stream_thinking_and_tool_calls() {
    let (chunks, err) = run_ndjson(&fixture("ollama/chat_stream_tools.ndjson"));
    assert!(err.is_none(), "{err:?}");
    let assembled = assemble(&chunks);
    assert_eq!(assembled.reasoning, "The user wants the weather.");
    assert_eq!(assembled.finish_reason.as_deref(), Some("tool_calls"));
    let (id, name, arguments) = &assembled.tool_calls[&0];
    assert!(id.starts_with("call_"));
    assert_eq!(name, "get_weather");
    assert_eq!(arguments, r#"{"city":"Toronto"}"#);
}

#[test]
fn generate_stream() {
    let (chunks, err) = run_ndjson(&fixture("ollama/generate_stream.ndjson"));
    assert!(err.is_none(), "{err:?}");
    let assembled = assemble(&chunks);
    assert_eq!(assembled.content, "The sky");
    assert_eq!(assembled.usage.unwrap().completion_tokens, 2);
}

#[test]
fn hostile_streams_fail_cleanly() {
    let (chunks, err) = run_ndjson(&fixture("ollama/stream_truncated.ndjson"));
    assert_eq!(assemble(&chunks).content, "The");
    assert!(
        matches!(err, Some(ProviderError::InvalidResponse(ref m)) if m.contains("done")),
        "{err:?}"
    );
    let (_, err) = run_ndjson(&fixture("ollama/stream_error.ndjson"));
    match err {
        Some(ProviderError::Status {
            status, message, ..
        }) => {
            assert_eq!(status, 500);
            assert!(message.contains("unexpected EOF"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for garbage in [
        "{not json\n",
        "[1,2,3]\n",
        "\"done\"\n",
        "{\"done\": \"yes\"}\n",
        "{\"message\": {\"tool_calls\": [{\"function\": 5}]}}\n",
    ] {
        let (_, err) = run_ndjson(garbage);
        assert!(
            matches!(err, Some(ProviderError::InvalidResponse(_))),
            "{garbage}: {err:?}"
        );
    }
    // An empty body is a cut stream, not an empty answer.
    assert!(run_ndjson("").1.is_some());
    // Lines after `done` are ignored, not appended.
    let (chunks, err) =
        run_ndjson("{\"response\":\"a\",\"done\":true}\n{\"response\":\"b\",\"done\":false}\n");
    assert!(err.is_none());
    assert_eq!(assemble(&chunks).content, "a");
}

#[test]
fn errors() {
    match Ollama::chat().error_response(
        404,
        &HeaderMap::new(),
        fixture("ollama/error_not_found.json").as_bytes(),
    ) {
        ProviderError::Status {
            status,
            message,
            kind,
            ..
        } => {
            assert_eq!(status, 404);
            assert_eq!(message, "model 'llama9' not found");
            assert_eq!(kind.as_deref(), Some("not_found_error"));
        }
        other => panic!("{other:?}"),
    }
    match Ollama::chat().error_response(502, &HeaderMap::new(), b"<html>bad gateway</html>") {
        ProviderError::Status { message, .. } => assert_eq!(message, "<html>bad gateway</html>"),
        other => panic!("{other:?}"),
    }
}

fn embeddings_request(value: Value) -> PassthroughRequest {
    serde_json::from_value(value).unwrap()
}

#[test]
fn embeddings_request_and_response() {
    let provider = Ollama::chat();
    let mut up = upstream("all-minilm");
    up.base_url = "http://h:11434".into();
    let request = embeddings_request(
        json!({"model": "emb", "input": ["Why is the sky blue?", "Why is the grass green?"],
               "dimensions": 5, "user": "u"}),
    );
    let built = provider
        .passthrough_request(&up, PassthroughEndpoint::Embeddings, &request)
        .unwrap();
    assert_eq!(built.url, "http://h:11434/api/embed");
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "all-minilm", "input": ["Why is the sky blue?", "Why is the grass green?"],
               "dimensions": 5})
    );
    let answer = provider
        .passthrough_response(
            PassthroughEndpoint::Embeddings,
            &request,
            fixture("ollama/embed_response.json").as_bytes(),
        )
        .unwrap();
    let value = serde_json::to_value(&answer).unwrap();
    assert_eq!(value["object"], "list");
    assert_eq!(value["data"][1]["index"], 1);
    assert_eq!(value["data"][0]["embedding"][0], 0.010071029);
    assert_eq!(answer.usage().unwrap().prompt_tokens, 8);

    let base64 =
        embeddings_request(json!({"model": "emb", "input": "x", "encoding_format": "base64"}));
    let answer = provider
        .passthrough_response(
            PassthroughEndpoint::Embeddings,
            &base64,
            br#"{"model":"m","embeddings":[[1.0,1.0]],"prompt_eval_count":1}"#,
        )
        .unwrap();
    assert_eq!(answer.extra["data"][0]["embedding"], "AACAPwAAgD8=");

    let tokens = embeddings_request(json!({"model": "emb", "input": [[1, 2, 3]]}));
    assert!(provider
        .passthrough_request(&up, PassthroughEndpoint::Embeddings, &tokens)
        .is_err());
    assert!(provider
        .passthrough_request(&up, PassthroughEndpoint::Rerank, &request)
        .is_err());
    assert!(provider
        .passthrough_response(
            PassthroughEndpoint::Embeddings,
            &request,
            b"{\"embeddings\": 3}"
        )
        .is_err());
    // A streamed line where a whole answer was expected is not an answer.
    assert!(provider
        .chat_response(br#"{"message":{"content":"Hi"},"done":false}"#)
        .is_err());
}
