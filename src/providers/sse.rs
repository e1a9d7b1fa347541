//! An incremental Server-Sent Events decoder (the WHATWG event-stream format), fed with whatever
//! byte chunks the network delivers. Upstream streams are outside input: lines may be split across
//! chunks, use `\n`, `\r\n` or `\r`, carry comments, or be hostile (huge, not UTF-8).

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
    #[error("stream is not valid UTF-8")]
    InvalidUtf8,
}

/// Upper bound on one buffered line, so a stream without newlines cannot grow memory unbounded.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

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
}
