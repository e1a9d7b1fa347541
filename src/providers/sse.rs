//! An incremental Server-Sent Events decoder (the WHATWG event-stream format), fed with whatever
//! byte chunks the network delivers. Upstream streams are outside input: lines may be split across
//! chunks, use `\n`, `\r\n` or `\r`, carry comments, or be hostile (huge, not UTF-8).
//!
//! Memory is bounded twice: one line may hold at most [`MAX_LINE_BYTES`] (8 MiB), and one event's
//! data, however many `data:` lines it is split into, at most [`MAX_EVENT_BYTES`] (16 MiB). Real
//! chunks are far smaller (a streamed image is a few MiB of base64); a stream past either bound is
//! an upstream error, not a reason to grow memory without limit.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any (Anthropic names its events; OpenAI does not).
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("stream line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("stream event has more than {0} bytes of data")]
    EventTooLarge(usize),
    #[error("stream is not valid UTF-8")]
    InvalidUtf8,
    /// A malformed AWS event-stream message (bad CRC, impossible length ...).
    #[error("invalid AWS event-stream message: {0}")]
    EventStream(&'static str),
}

/// Upper bound on one buffered line, so a stream without newlines cannot grow memory unbounded.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;
/// Upper bound on the data of one event (its `data:` lines joined by `\n`), so many lines without
/// the blank line that ends an event cannot grow memory unbounded either. Twice a line, so one
/// maximal line still fits in an event.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`; a `\n` starting the next one belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and appends every completed event to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(pos);
            self.push_line_bytes(head)?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
            self.line = line;
            self.line.clear();
            if tail[0] == b'\r' {
                match tail.get(1) {
                    Some(b'\n') => rest = &tail[2..],
                    Some(_) => rest = &tail[1..],
                    None => {
                        self.after_cr = true;
                        rest = &tail[1..];
                    }
                }
            } else {
                rest = &tail[1..];
            }
        }
        self.push_line_bytes(rest)
    }

    /// Called at end of stream: an event not yet terminated by a blank line is dispatched, as
    /// many servers omit the final blank line.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(SseError::LineTooLong(MAX_LINE_BYTES));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                let added = value.len() + usize::from(self.has_data);
                if self.data.len() + added > MAX_EVENT_BYTES {
                    return Err(SseError::EventTooLarge(MAX_EVENT_BYTES));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields do not matter to a proxy
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Result<Vec<SseEvent>, SseError> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            decoder.feed(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn same_events_whatever_the_split() {
        let input = b"data: {\"a\":1}\n\n: keep-alive\r\n\r\nevent: message_start\r\ndata: x\r\ndata: y\r\n\r\ndata:z\r\rdata: [DONE]\n\n";
        let expected = vec![
            SseEvent {
                event: None,
                data: "{\"a\":1}".into(),
            },
            SseEvent {
                event: Some("message_start".into()),
                data: "x\ny".into(),
            },
            SseEvent {
                event: None,
                data: "z".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for piece in 1..input.len() {
            assert_eq!(
                decode_in_pieces(input, piece).unwrap(),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn unterminated_last_event_is_dispatched() {
        assert_eq!(
            decode_in_pieces(b"data: last", 4).unwrap(),
            vec![SseEvent {
                event: None,
                data: "last".into()
            }]
        );
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert_eq!(
            decode_in_pieces(b"data: \xff\xfe\n\n", 3),
            Err(SseError::InvalidUtf8)
        );
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        let big = vec![b'a'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..9 {
            result = decoder.feed(&big, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::LineTooLong(MAX_LINE_BYTES)));
        // Blank lines and fields without data dispatch nothing.
        assert!(decode_in_pieces(b"\n\n\nevent: x\n\nid: 3\n\n", 2)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn many_data_lines_without_a_blank_line_are_bounded() {
        // Each line is small; the event they build is not.
        let line = format!("data: {}\n", "a".repeat(1023));
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        let mut result = Ok(());
        let mut fed = 0;
        while result.is_ok() && fed <= 2 * MAX_EVENT_BYTES {
            result = decoder.feed(line.as_bytes(), &mut out);
            fed += line.len();
        }
        assert_eq!(result, Err(SseError::EventTooLarge(MAX_EVENT_BYTES)));
        assert!(out.is_empty());
        assert!(
            fed < MAX_EVENT_BYTES + MAX_EVENT_BYTES / 2,
            "stopped at the bound, after {fed} bytes"
        );
        // The message the client sees names the bound.
        assert_eq!(
            result.unwrap_err().to_string(),
            "stream event has more than 16777216 bytes of data"
        );
    }

    #[test]
    fn an_event_of_exactly_the_bound_passes_and_one_byte_more_fails() {
        const MIB: usize = 1024 * 1024;
        // 15 lines of 1 MiB, then one that brings the data (newlines included) to the bound.
        let event = |last: usize| {
            let mut input = Vec::new();
            for _ in 0..15 {
                input.extend_from_slice(b"data: ");
                input.extend(std::iter::repeat_n(b'x', MIB));
                input.push(b'\n');
            }
            input.extend_from_slice(b"data: ");
            input.extend(std::iter::repeat_n(b'y', last));
            input.extend_from_slice(b"\n\ndata: next\n\n");
            input
        };
        let exact = MAX_EVENT_BYTES - 15 * MIB - 15;
        let events = decode_in_pieces(&event(exact), 64 * 1024).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data.len(), MAX_EVENT_BYTES);
        assert_eq!(events[1].data, "next", "the decoder carries on after it");
        assert_eq!(
            decode_in_pieces(&event(exact + 1), 64 * 1024),
            Err(SseError::EventTooLarge(MAX_EVENT_BYTES))
        );
    }
}
