//! How an upstream frames a stream, and the decoder for each framing. Every framing yields the
//! same [`SseEvent`] (an optional name and a text payload), so a provider's stream decoder
//! does not care how the bytes were cut: server-sent events (OpenAI, Anthropic, Gemini),
//! newline-delimited JSON (Ollama's native API), and AWS's binary event stream (Bedrock's
//! ConverseStream; `eventstream.rs`).

use super::eventstream::EventStreamDecoder;
use super::sse::{SseDecoder, SseError, SseEvent, MAX_LINE_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// `text/event-stream`.
    #[default]
    Sse,
    /// One JSON value per line (`application/x-ndjson`); blank lines are skipped.
    NdJson,
    /// `application/vnd.amazon.eventstream`: binary messages with CRCs; each message is one
    /// event named by its `:event-type` header.
    AwsEventStream,
}

/// A decoder for one stream, fed with whatever byte chunks the network delivers.
#[derive(Debug)]
pub enum FrameDecoder {
    Sse(SseDecoder),
    NdJson(NdJsonDecoder),
    AwsEventStream(EventStreamDecoder),
}

impl FrameDecoder {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Sse => FrameDecoder::Sse(SseDecoder::new()),
            Framing::NdJson => FrameDecoder::NdJson(NdJsonDecoder::default()),
            Framing::AwsEventStream => FrameDecoder::AwsEventStream(EventStreamDecoder::default()),
        }
    }

    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        match self {
            FrameDecoder::Sse(decoder) => decoder.feed(bytes, out),
            FrameDecoder::NdJson(decoder) => decoder.feed(bytes, out),
            FrameDecoder::AwsEventStream(decoder) => decoder.feed(bytes, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        match self {
            FrameDecoder::Sse(decoder) => decoder.finish(out),
            FrameDecoder::NdJson(decoder) => decoder.finish(out),
            FrameDecoder::AwsEventStream(decoder) => decoder.finish(out),
        }
    }
}

/// Newline-delimited JSON: each non-blank line is one event's data. A line is bounded like an
/// SSE line, so a stream without newlines cannot grow memory without end.
#[derive(Debug, Default)]
pub struct NdJsonDecoder {
    line: Vec<u8>,
}

impl NdJsonDecoder {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.push(&rest[..pos])?;
            self.emit(out)?;
            rest = &rest[pos + 1..];
        }
        self.push(rest)
    }

    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.emit(out)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(SseError::LineTooLong(MAX_LINE_BYTES));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn emit(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        let text = std::str::from_utf8(&line).map_err(|_| SseError::InvalidUtf8)?;
        let text = text.trim();
        if !text.is_empty() {
            out.push(SseEvent {
                event: None,
                data: text.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(framing: Framing, chunks: &[&[u8]]) -> Result<Vec<String>, SseError> {
        let mut decoder = FrameDecoder::new(framing);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out.into_iter().map(|e| e.data).collect())
    }

    #[test]
    fn ndjson_lines_split_anywhere_and_last_line_without_newline() {
        let events = decode(
            Framing::NdJson,
            &[b"{\"a\":1}\r\n\n{\"b\"", b":2}\n", b"{\"c\":3}"],
        )
        .unwrap();
        assert_eq!(events, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[test]
    fn ndjson_hostile_input_is_refused_not_buffered() {
        let huge = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(
            decode(Framing::NdJson, &[&huge]),
            Err(SseError::LineTooLong(MAX_LINE_BYTES))
        );
        assert_eq!(
            decode(Framing::NdJson, &[b"\xff\xfe\n"]),
            Err(SseError::InvalidUtf8)
        );
    }

    #[test]
    fn aws_event_stream_framing_names_events() {
        let mut decoder = FrameDecoder::new(Framing::AwsEventStream);
        let mut out = Vec::new();
        let message = crate::providers::eventstream::encode_event("messageStop", "{}");
        decoder.feed(&message, &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        assert_eq!(out[0].event.as_deref(), Some("messageStop"));
        assert_eq!(out[0].data, "{}");
    }

    #[test]
    fn sse_framing_is_the_sse_decoder() {
        let events = decode(Framing::Sse, &[b"data: {\"a\":1}\n\n", b"data: [DONE]\n\n"]).unwrap();
        assert_eq!(events, ["{\"a\":1}", "[DONE]"]);
    }
}
