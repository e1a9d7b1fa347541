//! Post-call guardrails on a streamed OpenAI answer, without buffering it: per choice (and per
//! tool call's arguments) a carry window holds back the last `hold` bytes, where `hold` is the
//! longest match any active guardrail can make (254 bytes for PII, 512 with secrets, 40 for the
//! mask tokens to restore). Everything before the window is checked and released as it arrives;
//! a match that crosses the window's edge is held until it is complete. The carry is released
//! in full when the choice finishes (`finish_reason`) or the stream ends.
//!
//! So a value split across chunks is still caught whole, the client sees the text at most
//! `hold` bytes later than without guardrails, and memory stays bounded by `hold` per choice.
//! A `BLOCK` match ends the stream with an error event (the status was sent already).

use futures_util::StreamExt;

use super::{Run, Stage, Tally};
use crate::providers::http::ChunkStream;
use crate::providers::ProviderError;
use crate::schema::{ChatChunk, FunctionCallDelta, ToolCallDelta};

/// Where a carry's text goes: a choice's content, or one tool call's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    choice: u32,
    tool: Option<u32>,
}

struct Guard {
    run: Run,
    hold: usize,
    carries: Vec<(Slot, String)>,
    /// The last chunk seen, to carry what is left when the stream ends without a finish.
    template: Option<ChatChunk>,
    tally: Tally,
    failed: bool,
    counted: bool,
}

/// The answer's chunks with the run's post-call guardrails applied (the run's pre-call pass
/// filled its vault).
pub fn chat(run: Run, chunks: ChunkStream) -> ChunkStream {
    let guard = Guard::new(run);
    Box::pin(futures_util::stream::unfold(
        (chunks, Some(guard)),
        |(mut chunks, guard)| async move {
            let mut guard = guard?;
            match chunks.next().await {
                Some(Ok(mut chunk)) => match guard.chunk(&mut chunk) {
                    Ok(()) => Some((Ok(chunk), (chunks, Some(guard)))),
                    Err(err) => Some((Err(err), (chunks, None))),
                },
                Some(Err(err)) => Some((Err(err), (chunks, Some(guard)))),
                None => {
                    let rest = guard.end();
                    rest.map(|item| (item, (chunks, None)))
                }
            }
        },
    ))
}

/// The events of a streamed `/v1/completions` answer with the run's post-call guardrails
/// applied to each choice's `text`, through the same carry window.
pub fn completions(
    run: Run,
    events: crate::providers::PassthroughStream,
) -> crate::providers::PassthroughStream {
    struct State {
        events: crate::providers::PassthroughStream,
        guard: Guard,
        template: Option<crate::schema::PassthroughResponse>,
    }
    let state = State {
        events,
        guard: Guard::new(run),
        template: None,
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut state = state?;
            match state.events.next().await {
                Some(Ok(mut event)) => {
                    let result = (|| {
                        let Some(serde_json::Value::Array(choices)) =
                            event.extra.get_mut("choices")
                        else {
                            return Ok(());
                        };
                        for choice in choices {
                            let index = choice.get("index").and_then(|i| i.as_u64()).unwrap_or(0);
                            let finished =
                                choice.get("finish_reason").is_some_and(|f| !f.is_null());
                            let slot = Slot {
                                choice: index as u32,
                                tool: None,
                            };
                            if let Some(text) = choice.get("text").and_then(|t| t.as_str()) {
                                let released = state.guard.release(slot, text, finished)?;
                                choice["text"] = released.into();
                            } else if finished {
                                let rest = state.guard.release(slot, "", true)?;
                                choice["text"] = rest.into();
                            }
                        }
                        Ok(())
                    })();
                    if state.template.is_none() {
                        let mut template = event.clone();
                        template.extra.remove("usage");
                        state.template = Some(template);
                    }
                    match result {
                        Ok(()) => Some((Ok(event), Some(state))),
                        Err(err) => Some((Err(err), None)),
                    }
                }
                Some(Err(err)) => Some((Err(err), Some(state))),
                None => {
                    // What is still held goes out in one last event.
                    let held: Vec<Slot> = state
                        .guard
                        .carries
                        .iter()
                        .filter(|(_, text)| !text.is_empty())
                        .map(|(s, _)| *s)
                        .collect();
                    let mut choices = Vec::new();
                    for slot in held {
                        match state.guard.release(slot, "", true) {
                            Ok(rest) => choices.push(serde_json::json!({
                                "index": slot.choice, "text": rest, "finish_reason": null
                            })),
                            Err(err) => return Some((Err(err), None)),
                        }
                    }
                    let mut last = state.template.take()?;
                    if choices.is_empty() {
                        return None;
                    }
                    last.extra.insert("choices".into(), choices.into());
                    Some((Ok(last), None))
                }
            }
        },
    ))
}

/// Post-call guardrails on a native Anthropic stream, event by event: `text_delta` and
/// `input_json_delta` pieces go through the same carry window, keyed by content block; what a
/// block still holds goes out as one more delta just before its `content_block_stop`.
pub struct AnthropicEvents {
    guard: Guard,
    /// Blocks carrying tool input (`input_json_delta`), so their rest goes out as JSON.
    json_blocks: Vec<u64>,
}

impl AnthropicEvents {
    pub fn new(run: Run) -> Self {
        AnthropicEvents {
            guard: Guard::new(run),
            json_blocks: Vec::new(),
        }
    }

    /// One event (`name`, JSON `data`) in, the events to send out (usually the same one).
    pub fn event(
        &mut self,
        name: String,
        data: String,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        match name.as_str() {
            "content_block_delta" => {
                let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&data) else {
                    return Ok(vec![(name, data)]);
                };
                let index = value.get("index").and_then(|i| i.as_u64()).unwrap_or(0);
                let slot = Slot {
                    choice: index as u32,
                    tool: None,
                };
                let Some(delta) = value.get_mut("delta") else {
                    return Ok(vec![(name, data)]);
                };
                let field = match delta.get("type").and_then(|t| t.as_str()) {
                    Some("text_delta") => "text",
                    Some("input_json_delta") => {
                        if !self.json_blocks.contains(&index) {
                            self.json_blocks.push(index);
                        }
                        "partial_json"
                    }
                    _ => return Ok(vec![(name, data)]),
                };
                let Some(piece) = delta.get(field).and_then(|t| t.as_str()) else {
                    return Ok(vec![(name, data)]);
                };
                let released = self.guard.release(slot, piece, false)?;
                delta[field] = released.into();
                Ok(vec![(name, value.to_string())])
            }
            "content_block_stop" => {
                let index = serde_json::from_str::<serde_json::Value>(&data)
                    .ok()
                    .and_then(|v| v.get("index").and_then(|i| i.as_u64()))
                    .unwrap_or(0);
                let slot = Slot {
                    choice: index as u32,
                    tool: None,
                };
                let rest = self.guard.release(slot, "", true)?;
                if rest.is_empty() {
                    return Ok(vec![(name, data)]);
                }
                let delta = if self.json_blocks.contains(&index) {
                    serde_json::json!({"type": "input_json_delta", "partial_json": rest})
                } else {
                    serde_json::json!({"type": "text_delta", "text": rest})
                };
                let extra = serde_json::json!({"type": "content_block_delta", "index": index, "delta": delta});
                Ok(vec![
                    ("content_block_delta".to_owned(), extra.to_string()),
                    (name, data),
                ])
            }
            _ => Ok(vec![(name, data)]),
        }
    }
}

impl Guard {
    fn new(run: Run) -> Self {
        Guard {
            hold: run.hold_bytes(),
            run,
            carries: Vec::new(),
            template: None,
            tally: Tally::default(),
            failed: false,
            counted: false,
        }
    }

    fn carry(&mut self, slot: Slot) -> &mut String {
        let at = match self.carries.iter().position(|(s, _)| *s == slot) {
            Some(at) => at,
            None => {
                self.carries.push((slot, String::new()));
                self.carries.len() - 1
            }
        };
        &mut self.carries[at].1
    }

    /// Adds `piece` to the slot's carry and returns what may be released now.
    fn release(
        &mut self,
        slot: Slot,
        piece: &str,
        finished: bool,
    ) -> Result<String, ProviderError> {
        let mut carry = std::mem::take(self.carry(slot));
        carry.push_str(piece);
        let mut upto = if finished {
            carry.len()
        } else {
            carry.len().saturating_sub(self.hold)
        };
        while !carry.is_char_boundary(upto) {
            upto -= 1;
        }
        if upto == 0 {
            *self.carry(slot) = carry;
            return Ok(String::new());
        }
        let (rewritten, covered) = self
            .run
            .rewrite(Stage::PostCall, &carry, upto, &mut self.tally)
            .map_err(|blocked| {
                self.failed = true;
                ProviderError::Status {
                    status: 400,
                    message: blocked.message,
                    kind: Some("invalid_request_error".into()),
                    code: Some("400".into()),
                    param: None,
                    retry_after: None,
                }
            })?;
        let out = rewritten.unwrap_or_else(|| carry[..covered].to_owned());
        carry.drain(..covered);
        *self.carry(slot) = carry;
        Ok(out)
    }

    fn chunk(&mut self, chunk: &mut ChatChunk) -> Result<(), ProviderError> {
        for i in 0..chunk.choices.len() {
            let index = chunk.choices[i].index;
            let finished = chunk.choices[i].finish_reason.is_some();
            let content = chunk.choices[i].delta.content.take();
            let slot = Slot {
                choice: index,
                tool: None,
            };
            let released = match content {
                Some(text) => Some(self.release(slot, &text, finished)?),
                None if finished => Some(self.release(slot, "", true)?).filter(|s| !s.is_empty()),
                None => None,
            };
            chunk.choices[i].delta.content = released;
            let mut calls = chunk.choices[i].delta.tool_calls.take().unwrap_or_default();
            for call in &mut calls {
                let slot = Slot {
                    choice: index,
                    tool: Some(call.index),
                };
                if let Some(function) = &mut call.function {
                    if let Some(arguments) = function.arguments.take() {
                        function.arguments = Some(self.release(slot, &arguments, finished)?);
                    }
                }
            }
            if finished {
                // Tool calls whose arguments are still held: their rest goes out now.
                let held: Vec<u32> = self
                    .carries
                    .iter()
                    .filter(|(s, text)| s.choice == index && s.tool.is_some() && !text.is_empty())
                    .filter_map(|(s, _)| s.tool)
                    .collect();
                for tool in held {
                    let rest = self.release(
                        Slot {
                            choice: index,
                            tool: Some(tool),
                        },
                        "",
                        true,
                    )?;
                    match calls.iter_mut().find(|c| c.index == tool) {
                        Some(call) => {
                            let function = call.function.get_or_insert_with(Default::default);
                            function
                                .arguments
                                .get_or_insert_with(String::new)
                                .push_str(&rest);
                        }
                        None => calls.push(ToolCallDelta {
                            index: tool,
                            function: Some(FunctionCallDelta {
                                arguments: Some(rest),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    }
                }
            }
            if !calls.is_empty() {
                chunk.choices[i].delta.tool_calls = Some(calls);
            }
        }
        if self.template.is_none() && !chunk.choices.is_empty() {
            let mut template = chunk.clone();
            template.usage = None;
            self.template = Some(template);
        }
        Ok(())
    }

    /// The stream ended: whatever is still held goes out in one last chunk, and the pass is
    /// counted.
    fn end(mut self) -> Option<Result<ChatChunk, ProviderError>> {
        let mut last = self.template.take().map(|mut t| {
            t.choices.clear();
            t
        });
        let held: Vec<Slot> = self
            .carries
            .iter()
            .filter(|(_, text)| !text.is_empty())
            .map(|(s, _)| *s)
            .collect();
        let mut item = None;
        for slot in held {
            match self.release(slot, "", true) {
                Ok(rest) => {
                    if let Some(chunk) = &mut last {
                        let choice = match chunk.choices.iter().position(|c| c.index == slot.choice)
                        {
                            Some(at) => &mut chunk.choices[at],
                            None => {
                                chunk.choices.push(crate::schema::ChunkChoice {
                                    index: slot.choice,
                                    delta: Default::default(),
                                    finish_reason: None,
                                    extra: Default::default(),
                                });
                                chunk.choices.last_mut().expect("just pushed")
                            }
                        };
                        match slot.tool {
                            None => choice.delta.content = Some(rest),
                            Some(tool) => {
                                choice.delta.tool_calls.get_or_insert_with(Vec::new).push(
                                    ToolCallDelta {
                                        index: tool,
                                        function: Some(FunctionCallDelta {
                                            arguments: Some(rest),
                                            ..Default::default()
                                        }),
                                        ..Default::default()
                                    },
                                )
                            }
                        }
                    }
                }
                Err(err) => {
                    item = Some(Err(err));
                    break;
                }
            }
        }
        self.count();
        if item.is_some() {
            return item;
        }
        last.filter(|c| !c.choices.is_empty()).map(Ok)
    }

    fn count(&mut self) {
        if self.counted {
            return;
        }
        self.counted = true;
        let tally = std::mem::take(&mut self.tally);
        let blocked = self.failed.then(|| super::Blocked {
            guardrail: tally
                .by
                .iter()
                .rev()
                .find(|(.., action)| *action == "blocked")
                .map(|(i, ..)| self.run.active[*i].name.clone())
                .unwrap_or_else(|| "".into()),
            mode: "post_call",
            message: String::new(),
        });
        self.run.count(Stage::PostCall, &tally, blocked.as_ref());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A stream cut short (client gone, upstream failure, a block) is still counted, once.
        self.count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ChunkChoice, Delta};

    fn chunk(content: Option<&str>, finish: Option<&str>) -> ChatChunk {
        let delta = Delta {
            content: content.map(str::to_owned),
            ..Default::default()
        };
        serde_json::from_value(serde_json::json!({
            "id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [serde_json::to_value(ChunkChoice {
                index: 0, delta, finish_reason: finish.map(str::to_owned), extra: Default::default()
            }).unwrap()]
        }))
        .unwrap()
    }

    fn guardrails() -> super::super::Guardrails {
        let raw = serde_saphyr::from_str(
            "- guardrail_name: out\n  litellm_params: {guardrail: pii, mode: post_call, default_on: true}\n",
        )
        .unwrap();
        super::super::Guardrails::from_raw(raw, &mut |_| {}).unwrap()
    }

    async fn through(pieces: &[&str]) -> String {
        let g = guardrails();
        let run = Run::select(
            &g,
            &mut Default::default(),
            None,
            &crate::auth::Principal::Master,
        )
        .unwrap();
        let mut chunks: Vec<Result<ChatChunk, ProviderError>> =
            pieces.iter().map(|p| Ok(chunk(Some(p), None))).collect();
        chunks.push(Ok(chunk(None, Some("stop"))));
        let guarded = chat(run, Box::pin(futures_util::stream::iter(chunks)));
        let out: Vec<_> = guarded.collect().await;
        out.into_iter()
            .map(|c| {
                c.unwrap().choices[0]
                    .delta
                    .content
                    .clone()
                    .unwrap_or_default()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_value_split_across_chunks_is_caught() {
        let text = through(&[
            "call me at +1 41",
            "5 555 01",
            "32 or mail jo",
            "hn@exam",
            "ple.com",
            " ok",
        ])
        .await;
        assert_eq!(text, "call me at <PHONE_NUMBER> or mail <EMAIL_ADDRESS> ok");
    }

    #[tokio::test]
    async fn one_byte_chunks_and_unicode() {
        let text = "naïve ✓ 4111 1111 1111 1111 «a@bc.de»";
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(
            through(&refs).await,
            "naïve ✓ <CREDIT_CARD> «<EMAIL_ADDRESS>»"
        );
    }

    #[tokio::test]
    async fn long_text_is_released_before_the_end() {
        let long = "word ".repeat(200);
        let g = guardrails();
        let run = Run::select(
            &g,
            &mut Default::default(),
            None,
            &crate::auth::Principal::Master,
        )
        .unwrap();
        let chunks = vec![Ok(chunk(Some(&long), None)), Ok(chunk(None, Some("stop")))];
        let mut guarded = chat(run, Box::pin(futures_util::stream::iter(chunks)));
        let first = guarded.next().await.unwrap().unwrap();
        let released = first.choices[0].delta.content.clone().unwrap();
        assert_eq!(released.len(), long.len() - 254);
        let last = guarded.next().await.unwrap().unwrap();
        assert_eq!(last.choices[0].delta.content.as_deref().unwrap().len(), 254);
    }
}
