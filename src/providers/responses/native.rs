//! A native Responses answer on its way back: `model` set to the client's alias (as every
//! surface answers with the model the client asked for), usage read for spend, and a stream
//! checked to end with its terminal event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::response::usage_to_chat;
use crate::providers::{ProviderError, SseEvent};
use crate::schema::Usage;

/// A whole native answer: its bytes with `model` rewritten, and its usage.
pub fn whole(body: &[u8], alias: &str) -> Result<(Bytes, Option<Usage>), ProviderError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|err| ProviderError::InvalidResponse(format!("response: {err}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(ProviderError::InvalidResponse(
            "response: not a JSON object".into(),
        ));
    };
    object.insert("model".into(), Value::String(alias.to_owned()));
    let usage = object.get("usage").and_then(usage_to_chat);
    let bytes = serde_json::to_vec(&value)
        .map_err(|err| ProviderError::InvalidResponse(format!("response: {err}")))?;
    Ok((bytes.into(), usage))
}

/// Events whose `response` object is the whole Response (its `model` is rewritten).
const LIFECYCLE: &[&str] = &[
    "response.created",
    "response.queued",
    "response.in_progress",
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Events that end a stream.
const TERMINAL: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Reads a native stream event by event.
pub struct NativeStreamTap {
    alias: String,
    /// Events passed so far: the next `sequence_number` (OpenAI numbers them from 0).
    seq: Arc<AtomicU64>,
    ended: bool,
}

/// One event on its way to the client.
pub struct Passed {
    pub bytes: Bytes,
    pub usage: Option<Usage>,
    /// Model output (or the end): the router may no longer fail over after it.
    pub output: bool,
}

impl NativeStreamTap {
    pub fn new(alias: String, seq: Arc<AtomicU64>) -> Self {
        NativeStreamTap {
            alias,
            seq,
            ended: false,
        }
    }

    pub fn event(&mut self, event: &SseEvent) -> Result<Option<Passed>, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(None);
        }
        // The type is in `data` (and usually in `event:` too).
        let mut value: Value = serde_json::from_str(data)
            .map_err(|err| ProviderError::InvalidResponse(format!("stream event: {err}")))?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default()
            .to_owned();
        self.seq.fetch_add(1, Ordering::Relaxed);
        let mut usage = None;
        if LIFECYCLE.contains(&kind.as_str()) {
            if let Some(response) = value.get_mut("response").and_then(Value::as_object_mut) {
                response.insert("model".into(), Value::String(self.alias.clone()));
                usage = response.get("usage").and_then(usage_to_chat);
            }
        }
        let bytes = super::stream::frame(&kind, &value);
        if TERMINAL.contains(&kind.as_str()) || kind == "error" {
            self.ended = true;
        }
        let output = !matches!(
            kind.as_str(),
            "response.created" | "response.queued" | "response.in_progress"
        );
        Ok(Some(Passed {
            bytes,
            usage,
            output,
        }))
    }

    /// The upstream body ended: an error unless a terminal event came first.
    pub fn finish(&self) -> Result<(), ProviderError> {
        if self.ended {
            Ok(())
        } else {
            Err(ProviderError::InvalidResponse(
                "the Responses stream ended before response.completed".into(),
            ))
        }
    }
}
