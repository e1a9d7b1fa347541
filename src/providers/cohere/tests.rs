//! Every mapping of this folder, against payloads from Cohere's v2 API reference
//! (`tests/fixtures/cohere/`).

use axum::http::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};

use super::request::to_cohere;
use super::*;
use crate::providers::params::Dropped;
use crate::providers::testing::{assemble, fixture, run, upstream};
use crate::providers::{HttpProvider, ProviderError};
use crate::schema::{ChatRequest, PassthroughRequest};

fn chat(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn translate(request: &ChatRequest) -> Result<Value, ProviderError> {
    to_cohere(
        request,
        "command-a-03-2025",
        &mut Dropped::new("cohere", false),
    )
}

fn provider() -> Cohere {
    Cohere { name: "cohere" }
}

#[test]
fn urls_and_key() {
    assert_eq!(
        url("https://api.cohere.com", "chat"),
        "https://api.cohere.com/v2/chat"
    );
    assert_eq!(
        url("https://api.cohere.ai/v1/", "embed"),
        "https://api.cohere.ai/v2/embed"
    );
    assert_eq!(url("http://h:1/v2", "rerank"), "http://h:1/v2/rerank");
    let built = provider()
        .chat_request(
            &upstream("command-a-03-2025"),
            &chat(json!({"model": "c", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .unwrap();
    assert_eq!(built.url, "https://upstream.example/v2/chat");
    assert_eq!(built.headers[AUTHORIZATION], "Bearer sk-upstream-secret");
}

#[test]
fn chat_request_renames_parameters() {
    let request = chat(json!({
        "model": "c",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
        ],
        "max_tokens": 100, "temperature": 0.3, "top_p": 0.8, "top_k": 40, "stop": "END",
        "seed": 5, "frequency_penalty": 0.1, "presence_penalty": 0.2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "documents": [{"id": "d1", "data": {"text": "doc"}}],
        "stream": true, "stream_options": {"include_usage": true}
    }));
    assert_eq!(
        translate(&request).unwrap(),
        json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
            ],
            "stream": true, "max_tokens": 100, "temperature": 0.3, "p": 0.8, "k": 40,
            "stop_sequences": ["END"], "seed": 5, "frequency_penalty": 0.1, "presence_penalty": 0.2,
            "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
            "documents": [{"id": "d1", "data": {"text": "doc"}}]
        })
    );
}

#[test]
fn chat_request_tools_and_results() {
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    ]);
    let request = chat(json!({
        "model": "c", "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "reasoning_content": "I will look.",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "22C"}
        ]
    }));
    let body = translate(&request).unwrap();
    assert_eq!(body["tool_choice"], "REQUIRED");
    assert_eq!(
        body["tools"],
        json!([tools[1]]),
        "a named choice offers only that tool"
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "tool_plan": "I will look.",
               "tool_calls": [{"id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "22C"})
    );
    let mut none = request.clone();
    none.tool_choice = Some(crate::schema::ToolChoice::Mode("none".into()));
    assert_eq!(translate(&none).unwrap()["tool_choice"], "NONE");
}

#[test]
fn unsupported_parameters() {
    let request = chat(
        json!({"model": "c", "messages": [{"role": "user", "content": "hi"}],
                              "logit_bias": {"1": 2}, "n": 3, "store": true}),
    );
    let err = translate(&request).unwrap_err().to_string();
    assert!(
        err.contains("logit_bias") && err.contains("`cohere`"),
        "{err}"
    );
    let names = HttpProvider::dropped_params(&provider(), &upstream("c"), &request);
    assert_eq!(names, ["logit_bias", "store", "n"]);
}

#[test]
fn chat_response_text_and_usage() {
    let answer = provider()
        .chat_response(fixture("cohere/chat_response.json").as_bytes())
        .unwrap();
    assert_eq!(answer.id, "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
    let choice = &answer.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("LLMs stand for Large Language Models.")
    );
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = answer.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (71, 418));
}

#[test]
fn chat_response_tool_calls() {
    let answer = provider()
        .chat_response(fixture("cohere/chat_response_tools.json").as_bytes())
        .unwrap();
    let choice = &answer.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.content, None);
    assert_eq!(
        choice.message.extra["reasoning_content"],
        "I will look up the weather in Toronto."
    );
    let call = &choice.message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.id, "get_weather_1byjy32y4hvq");
    assert_eq!(call.function.arguments, "{\"location\":\"Toronto\"}");
}

#[test]
fn streams() {
    let mut decoder = provider().chat_stream_decoder();
    let (chunks, err) = run(decoder.as_mut(), &fixture("cohere/chat_stream.sse"));
    assert!(err.is_none(), "{err:?}");
    let assembled = assemble(&chunks);
    assert!(assembled.role_first);
    assert_eq!(assembled.content, "Hello there");
    assert_eq!(assembled.finish_reason.as_deref(), Some("stop"));
    assert_eq!(assembled.usage.unwrap().prompt_tokens, 69);
    assert_eq!(chunks[0].id, "29f14a5a-11de-4cae-9800-25e4747408ea");

    let mut decoder = provider().chat_stream_decoder();
    let (chunks, err) = run(decoder.as_mut(), &fixture("cohere/chat_stream_tools.sse"));
    assert!(err.is_none(), "{err:?}");
    let assembled = assemble(&chunks);
    assert_eq!(assembled.reasoning, "I will check the weather.");
    assert_eq!(assembled.finish_reason.as_deref(), Some("tool_calls"));
    let (id, name, arguments) = &assembled.tool_calls[&0];
    assert_eq!(id, "get_weather_nsz5zm3w56q3");
    assert_eq!(name, "get_weather");
    let arguments: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(arguments, json!({"location": "Toronto"}));
}

#[test]
fn hostile_streams_fail_cleanly() {
    let mut decoder = provider().chat_stream_decoder();
    let (chunks, err) = run(decoder.as_mut(), &fixture("cohere/stream_truncated.sse"));
    assert_eq!(assemble(&chunks).content, "Hel");
    assert!(
        matches!(err, Some(ProviderError::InvalidResponse(ref m)) if m.contains("message-end")),
        "{err:?}"
    );
    for garbage in [
        "data: {not json\n\n",
        "data: {\"no_type\": 1}\n\n",
        "data: [1]\n\n",
        "data: {\"type\": \"content-delta\", \"delta\": {\"message\": {\"content\": 5}}}\n\n",
    ] {
        let mut decoder = provider().chat_stream_decoder();
        let (_, err) = run(decoder.as_mut(), garbage);
        assert!(
            matches!(err, Some(ProviderError::InvalidResponse(_))),
            "{garbage}: {err:?}"
        );
    }
    // Unknown event types are skipped; nothing follows message-end.
    let mut decoder = provider().chat_stream_decoder();
    let (chunks, err) = run(
        decoder.as_mut(),
        "data: {\"type\": \"debug\"}\n\ndata: {\"type\": \"message-end\", \"delta\": {}}\n\ndata: {\"type\": \"content-delta\", \"delta\": {\"message\": {\"content\": {\"text\": \"late\"}}}}\n\n",
    );
    assert!(err.is_none(), "{err:?}");
    assert_eq!(assemble(&chunks).content, "");
}

#[test]
fn errors() {
    match provider().error_response(
        401,
        &HeaderMap::new(),
        fixture("cohere/error_unauthorized.json").as_bytes(),
    ) {
        ProviderError::Status {
            status,
            message,
            kind,
            ..
        } => {
            assert_eq!((status, message.as_str()), (401, "invalid api token"));
            assert_eq!(kind.as_deref(), Some("authentication_error"));
        }
        other => panic!("{other:?}"),
    }
}

fn passthrough(value: Value) -> PassthroughRequest {
    serde_json::from_value(value).unwrap()
}

#[test]
fn embeddings() {
    let request =
        passthrough(json!({"model": "embed", "input": ["hello", "goodbye"], "dimensions": 256}));
    let built = provider()
        .passthrough_request(
            &upstream("embed-v4.0"),
            PassthroughEndpoint::Embeddings,
            &request,
        )
        .unwrap();
    assert_eq!(built.url, "https://upstream.example/v2/embed");
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_document",
               "embedding_types": ["float"], "output_dimension": 256})
    );
    let answer = provider()
        .passthrough_response(
            PassthroughEndpoint::Embeddings,
            &request,
            fixture("cohere/embed_response.json").as_bytes(),
        )
        .unwrap();
    assert_eq!(answer.extra["data"][1]["embedding"][0], -0.027252197);
    assert_eq!(answer.usage().unwrap().prompt_tokens, 2);
    let tokens = passthrough(json!({"model": "embed", "input": [[1, 2]]}));
    assert!(provider()
        .passthrough_request(&upstream("e"), PassthroughEndpoint::Embeddings, &tokens)
        .is_err());
}

#[test]
fn rerank() {
    let request = passthrough(json!({
        "model": "rerank", "query": "What is the capital of the United States?",
        "documents": ["Carson City is the capital city of the American state of Nevada.",
                      {"text": "Washington, D.C. is the capital of the United States."}],
        "top_n": 2, "return_documents": true
    }));
    let built = provider()
        .passthrough_request(
            &upstream("rerank-v3.5"),
            PassthroughEndpoint::Rerank,
            &request,
        )
        .unwrap();
    assert_eq!(built.url, "https://upstream.example/v2/rerank");
    let body: Value = serde_json::from_slice(&built.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "rerank-v3.5", "query": "What is the capital of the United States?",
               "top_n": 2,
               "documents": ["Carson City is the capital city of the American state of Nevada.",
                             "Washington, D.C. is the capital of the United States."]})
    );
    let answer = provider()
        .passthrough_response(
            PassthroughEndpoint::Rerank,
            &request,
            br#"{"id":"r","results":[{"index":1,"relevance_score":0.9},{"index":0,"relevance_score":0.1}],"meta":{"billed_units":{"search_units":1}}}"#,
        )
        .unwrap();
    assert_eq!(
        answer.extra["results"][0]["document"],
        json!({"text": "Washington, D.C. is the capital of the United States."})
    );
    let plain = passthrough(json!({"model": "rerank", "query": "q", "documents": ["a"]}));
    let answer = provider()
        .passthrough_response(
            PassthroughEndpoint::Rerank,
            &plain,
            fixture("cohere/rerank_response.json").as_bytes(),
        )
        .unwrap();
    assert!(answer.extra["results"][0].get("document").is_none());
    assert_eq!(answer.extra["meta"]["billed_units"]["search_units"], 1);
    assert!(provider()
        .passthrough_response(PassthroughEndpoint::Rerank, &plain, b"{\"results\": 1}")
        .is_err());
}
