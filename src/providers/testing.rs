//! Helpers for the providers' unit tests: fixtures, a stream runner that behaves like
//! `http::decode_chat`, and an accumulator that turns chunks back into one answer.

use std::collections::BTreeMap;

use axum::http::header::HeaderMap;

use super::{ChatStreamDecoder, ProviderError, SseDecoder, SseEvent, StreamItem, Upstream};
use crate::schema::{ChatChunk, Usage};

/// A file under `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_owned() + path;
    std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("fixture {full}: {err}"))
}

pub fn upstream(model: &str) -> Upstream {
    Upstream {
        base_url: "https://upstream.example/v1".into(),
        api_key: Some(crate::config::Secret::new("sk-upstream-secret".into())),
        api_version: None,
        model: model.into(),
        headers: HeaderMap::new(),
        drop_params: false,
        additional_drop_params: Vec::new(),
        allowed_openai_params: Vec::new(),
        max_output_tokens: None,
        credentials: None,
    }
}

pub fn sse_events(text: &str) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    decoder.feed(text.as_bytes(), &mut events).unwrap();
    decoder.finish(&mut events).unwrap();
    events
}

/// Feeds a whole SSE body to `decoder` the way `decode_chat` does: chunks until the end
/// marker, the decoder's `finish` when the body ends without one, and the first error.
pub fn run(
    decoder: &mut dyn ChatStreamDecoder,
    body: &str,
) -> (Vec<ChatChunk>, Option<ProviderError>) {
    let mut chunks = Vec::new();
    let mut items = Vec::new();
    for event in sse_events(body) {
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
    for item in items.drain(..) {
        if let StreamItem::Chunk(chunk) = item {
            chunks.push(chunk);
        }
    }
    (chunks, result.err())
}

/// What a client assembling the stream ends up with (choice 0).
#[derive(Debug, Default)]
pub struct Assembled {
    pub role_first: bool,
    pub content: String,
    pub reasoning: String,
    /// index → (id, name, arguments)
    pub tool_calls: BTreeMap<u32, (String, String, String)>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

pub fn assemble(chunks: &[ChatChunk]) -> Assembled {
    let mut out = Assembled::default();
    for (position, chunk) in chunks.iter().enumerate() {
        if let Some(usage) = &chunk.usage {
            out.usage = Some(usage.clone());
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if position == 0 && choice.delta.role.is_some() {
                out.role_first = true;
            }
            if let Some(text) = &choice.delta.content {
                out.content.push_str(text);
            }
            if let Some(text) = choice
                .delta
                .extra
                .get("reasoning_content")
                .and_then(|v| v.as_str())
            {
                out.reasoning.push_str(text);
            }
            for piece in choice.delta.tool_calls.iter().flatten() {
                let entry = out.tool_calls.entry(piece.index).or_default();
                if let Some(id) = &piece.id {
                    entry.0.clone_from(id);
                }
                if let Some(function) = &piece.function {
                    if let Some(name) = &function.name {
                        entry.1.clone_from(name);
                    }
                    if let Some(arguments) = &function.arguments {
                        entry.2.push_str(arguments);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                out.finish_reason.clone_from(&choice.finish_reason);
            }
        }
    }
    out
}
