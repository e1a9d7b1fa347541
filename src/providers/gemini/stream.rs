//! `streamGenerateContent?alt=sse`: every event is a partial `GenerateContentResponse`; the
//! last carries `finishReason` and the final `usageMetadata`. There is no end marker: the body
//! simply ends, so the usage chunk is emitted at the end, and a body that ends before any
//! finish reason is a cut stream.

use std::collections::HashMap;

use super::error::parse_error;
use super::response::{finish_reason, tool_call, usage};
use super::wire::{GenerateContentResponse, UsageMetadata};
use crate::providers::translate::{random_id, unix_now};
use crate::providers::{ChatStreamDecoder, ProviderError, SseEvent, StreamItem};
use crate::schema::{ChatChunk, ChunkChoice, Delta, Extra, FunctionCallDelta, Role, ToolCallDelta};

#[derive(Default)]
pub struct GeminiStreamDecoder {
    id: String,
    model: String,
    created: u64,
    /// Per candidate: role sent, tool calls so far, finished.
    candidates: HashMap<u32, CandidateState>,
    usage: Option<UsageMetadata>,
    finished: bool,
}

#[derive(Default)]
struct CandidateState {
    started: bool,
    tool_calls: u32,
}

impl GeminiStreamDecoder {
    fn chunk(&self, index: u32, delta: Delta, finish_reason: Option<&str>) -> StreamItem {
        StreamItem::Chunk(ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
                extra: Extra::new(),
            }],
            usage: None,
            extra: Extra::new(),
        })
    }
}

impl ChatStreamDecoder for GeminiStreamDecoder {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data.starts_with("{\"error\"") {
            // The HTTP status was 200; the error's own code says what failed.
            return Err(parse_error(200, &Default::default(), data.as_bytes()));
        }
        let response: GenerateContentResponse = serde_json::from_str(data)
            .map_err(|err| ProviderError::InvalidResponse(format!("gemini stream event: {err}")))?;
        if self.id.is_empty() {
            self.id = response
                .response_id
                .clone()
                .unwrap_or_else(|| random_id("chatcmpl-"));
            self.model = response.model_version.clone().unwrap_or_default();
            self.created = unix_now();
        }
        if let Some(metadata) = response.usage_metadata {
            self.usage = Some(metadata);
        }
        for (position, candidate) in response.candidates.into_iter().enumerate() {
            let index = candidate.index.unwrap_or(position as u32);
            let state = self.candidates.entry(index).or_default();
            let first = !state.started;
            state.started = true;
            if first {
                out.push(self.chunk(
                    index,
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
                if let Some(call) = tool_call(part) {
                    let state = self.candidates.entry(index).or_default();
                    let tool_index = state.tool_calls;
                    state.tool_calls += 1;
                    // Gemini sends each call whole: one piece with id, name and arguments.
                    out.push(self.chunk(
                        index,
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: tool_index,
                                id: Some(call.id),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(call.function.name),
                                    arguments: Some(call.function.arguments),
                                    extra: Extra::new(),
                                }),
                                extra: call.extra,
                            }]),
                            ..Delta::default()
                        },
                        None,
                    ));
                } else if let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) {
                    let delta = if part.thought == Some(true) {
                        let mut extra = Extra::new();
                        extra.insert("reasoning_content".into(), text.clone().into());
                        Delta {
                            extra,
                            ..Delta::default()
                        }
                    } else {
                        Delta {
                            content: Some(text.clone()),
                            ..Delta::default()
                        }
                    };
                    out.push(self.chunk(index, delta, None));
                }
            }
            if let Some(reason) = &candidate.finish_reason {
                let called = self
                    .candidates
                    .get(&index)
                    .is_some_and(|s| s.tool_calls > 0);
                self.finished = true;
                out.push(self.chunk(index, Delta::default(), Some(finish_reason(reason, called))));
            }
        }
        if response
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_some()
            && !self.finished
        {
            self.finished = true;
            out.push(self.chunk(0, Delta::default(), Some("content_filter")));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        if !self.finished {
            return Err(ProviderError::InvalidResponse(
                "the Gemini stream ended before a finish reason".into(),
            ));
        }
        if let Some(metadata) = &self.usage {
            out.push(StreamItem::Chunk(ChatChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".into(),
                created: self.created,
                model: self.model.clone(),
                choices: Vec::new(),
                usage: Some(usage(metadata)),
                extra: Extra::new(),
            }));
        }
        Ok(())
    }
}
