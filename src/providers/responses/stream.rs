//! Chat stream chunks as Responses stream events, in the order OpenAI sends them and the SDK's
//! stream accumulator expects:
//!
//! ```text
//! response.created, response.in_progress
//! per message:   response.output_item.added, response.content_part.added,
//!                response.output_text.delta ..., response.output_text.done,
//!                response.content_part.done, response.output_item.done
//! per tool call: response.output_item.added, response.function_call_arguments.delta ...,
//!                response.function_call_arguments.done, response.output_item.done
//! response.completed (or response.incomplete when cut by the output cap)
//! ```
//!
//! Every event carries `sequence_number`, counted in a shared counter so that a failure the
//! SSE layer reports after the last event gets the next number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use super::response::{new_id, status_of, usage_from_chat};
use super::wire::{OutputContent, OutputItem, ResponseObject};
use crate::schema::{ChatChunk, Usage};

struct OpenMessage {
    output_index: usize,
    id: String,
    text: String,
}

struct OpenCall {
    /// The chat stream's `tool_calls[].index`.
    chat_index: u32,
    output_index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

pub struct ResponsesStreamEncoder {
    response: ResponseObject,
    seq: Arc<AtomicU64>,
    message: Option<OpenMessage>,
    calls: Vec<OpenCall>,
    /// Items closed so far, with their output index.
    done_items: Vec<(usize, OutputItem)>,
    next_index: usize,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl ResponsesStreamEncoder {
    /// `response` is the Response as [`ResponseObject::started`] made it.
    pub fn new(response: ResponseObject, seq: Arc<AtomicU64>) -> Self {
        ResponsesStreamEncoder {
            response,
            seq,
            message: None,
            calls: Vec::new(),
            done_items: Vec::new(),
            next_index: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, out: &mut Vec<Bytes>) {
        let response = self.response_value();
        out.push(self.event("response.created", json!({"response": response})));
        out.push(self.event("response.in_progress", json!({"response": response})));
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    pub fn push(&mut self, chunk: &ChatChunk, out: &mut Vec<Bytes>) {
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.first() else {
            return;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            if self.message.is_none() {
                self.open_message(out);
            }
            if let Some(message) = self.message.as_mut() {
                message.text.push_str(text);
                let (item_id, output_index) = (message.id.clone(), message.output_index);
                out.push(self.event(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                           "delta": text, "logprobs": []}),
                ));
            }
        }
        for delta in choice.delta.tool_calls.iter().flatten() {
            let function = delta.function.as_ref();
            let position = self.calls.iter().position(|c| c.chat_index == delta.index);
            let position = match position {
                Some(position) => position,
                None => {
                    // A tool call ends the text before it (as Claude streams them).
                    self.close_message(out);
                    let call = OpenCall {
                        chat_index: delta.index,
                        output_index: self.take_index(),
                        id: new_id("fc"),
                        call_id: delta.id.clone().unwrap_or_else(|| new_id("call")),
                        name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                        arguments: String::new(),
                    };
                    let item = json!({"type": "function_call", "id": call.id,
                        "call_id": call.call_id, "name": call.name, "arguments": "",
                        "status": "in_progress"});
                    let output_index = call.output_index;
                    self.calls.push(call);
                    out.push(self.event(
                        "response.output_item.added",
                        json!({"output_index": output_index, "item": item}),
                    ));
                    self.calls.len() - 1
                }
            };
            if let Some(arguments) = function
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                let call = &mut self.calls[position];
                call.arguments.push_str(arguments);
                let (item_id, output_index) = (call.id.clone(), call.output_index);
                out.push(self.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": output_index, "delta": arguments}),
                ));
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
    }

    /// Closes every open item and ends the stream with `response.completed` (or
    /// `response.incomplete`). Returns the whole Response, as the last event carries it.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> ResponseObject {
        self.close_message(out);
        let status = match self.finish_reason.as_deref() {
            Some("length") | Some("content_filter") => "incomplete",
            _ => "completed",
        };
        for call in std::mem::take(&mut self.calls) {
            out.push(self.event(
                "response.function_call_arguments.done",
                json!({"item_id": call.id, "output_index": call.output_index,
                       "arguments": call.arguments}),
            ));
            let item = OutputItem::FunctionCall {
                id: call.id,
                call_id: call.call_id,
                name: call.name,
                arguments: call.arguments,
                status: "completed".into(),
            };
            out.push(self.event(
                "response.output_item.done",
                json!({"output_index": call.output_index, "item": item}),
            ));
            self.done_items.push((call.output_index, item));
        }
        self.done_items.sort_by_key(|(index, _)| *index);
        self.response.output = self.done_items.drain(..).map(|(_, item)| item).collect();
        if status == "incomplete" {
            for item in &mut self.response.output {
                if let OutputItem::Message { status, .. } = item {
                    *status = "incomplete".into();
                }
            }
        }
        let (status, incomplete) = status_of(self.finish_reason.as_deref());
        self.response.status = status.into();
        self.response.incomplete_details = incomplete;
        self.response.usage = self.usage.as_ref().map(usage_from_chat);
        let name = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let response = self.response_value();
        out.push(self.event(name, json!({"response": response})));
        self.response.clone()
    }

    fn take_index(&mut self) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    fn open_message(&mut self, out: &mut Vec<Bytes>) {
        let message = OpenMessage {
            output_index: self.take_index(),
            id: new_id("msg"),
            text: String::new(),
        };
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": message.output_index, "item": {"type": "message",
                   "id": message.id, "status": "in_progress", "role": "assistant",
                   "content": []}}),
        ));
        out.push(self.event(
            "response.content_part.added",
            json!({"item_id": message.id, "output_index": message.output_index,
                   "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": []}}),
        ));
        self.message = Some(message);
    }

    fn close_message(&mut self, out: &mut Vec<Bytes>) {
        let Some(message) = self.message.take() else {
            return;
        };
        let part = OutputContent::OutputText {
            text: message.text.clone(),
            annotations: Vec::new(),
        };
        out.push(self.event(
            "response.output_text.done",
            json!({"item_id": message.id, "output_index": message.output_index,
                   "content_index": 0, "text": message.text, "logprobs": []}),
        ));
        out.push(self.event(
            "response.content_part.done",
            json!({"item_id": message.id, "output_index": message.output_index,
                   "content_index": 0, "part": part}),
        ));
        let item = OutputItem::Message {
            id: message.id,
            status: "completed".into(),
            role: "assistant".into(),
            content: vec![part],
        };
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": message.output_index, "item": item}),
        ));
        self.done_items.push((message.output_index, item));
    }

    fn response_value(&self) -> Value {
        serde_json::to_value(&self.response).unwrap_or(Value::Null)
    }

    fn event(&self, kind: &str, mut body: Value) -> Bytes {
        let sequence = self.seq.fetch_add(1, Ordering::Relaxed);
        if let Value::Object(map) = &mut body {
            map.insert("type".into(), Value::String(kind.to_owned()));
            map.insert("sequence_number".into(), sequence.into());
        }
        frame(kind, &body)
    }
}

/// One event: `event: <type>` then `data: <json>`, as OpenAI frames them.
pub fn frame(kind: &str, body: &Value) -> Bytes {
    let mut buf = BytesMut::with_capacity(kind.len() + 256);
    buf.put_slice(b"event: ");
    buf.put_slice(kind.as_bytes());
    buf.put_slice(b"\ndata: ");
    let mut writer = buf.writer();
    // Serializing a JSON value into memory cannot fail.
    let _ = serde_json::to_writer(&mut writer, body);
    let mut buf = writer.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// The `error` event a stream ends with when its upstream fails after the first event.
pub fn error_event(sequence: u64, code: Option<&str>, message: &str) -> Bytes {
    frame(
        "error",
        &json!({"type": "error", "code": code, "message": message, "param": null,
                "sequence_number": sequence}),
    )
}
