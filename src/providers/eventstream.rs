//! AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's
//! ConverseStream sends it. Each message is:
//!
//! ```text
//! total length (u32) | headers length (u32) | prelude CRC-32 (u32)
//! headers ... | payload ... | message CRC-32 (u32)
//! ```
//!
//! all big-endian, the CRCs over the preceding bytes. A header is a name (u8 length + UTF-8),
//! a type byte, and a value whose size the type gives. The decoder is fed whatever chunks the
//! network delivers and buffers at most one message, which may not be larger than
//! [`MAX_MESSAGE_BYTES`] (AWS's own limit is 16 MiB): a hostile length is refused before
//! anything is buffered for it. Both CRCs are checked.
//!
//! Each message becomes one [`SseEvent`]: an `event` message is named by its `:event-type`
//! header, an `exception` message `exception:<:exception-type>`, an `error` message
//! `error:<:error-code>` (with `:error-message` as its data); the payload (JSON) is the data.

use super::sse::{SseError, SseEvent};

/// Upper bound on one message (prelude, headers, payload and CRC): AWS's documented maximum.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Upper bound on one message's headers: AWS's documented maximum.
pub const MAX_HEADER_BYTES: usize = 128 * 1024;

const PRELUDE_BYTES: usize = 12;
/// Prelude and the trailing message CRC.
const MIN_MESSAGE_BYTES: usize = PRELUDE_BYTES + 4;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fn frame_error(why: &'static str) -> SseError {
    SseError::EventStream(why)
}

#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buffer: Vec<u8>,
}

impl EventStreamDecoder {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = bytes;
        loop {
            // Take only what completes the prelude, then the message: the buffer never holds
            // more than one message.
            if self.buffer.len() < PRELUDE_BYTES {
                let want = PRELUDE_BYTES - self.buffer.len();
                let take = want.min(rest.len());
                self.buffer.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if self.buffer.len() < PRELUDE_BYTES {
                    return Ok(());
                }
                check_prelude(&self.buffer)?;
            }
            let total = read_u32(&self.buffer, 0) as usize;
            let want = total - self.buffer.len();
            let take = want.min(rest.len());
            if self.buffer.capacity() < total {
                self.buffer.reserve_exact(total - self.buffer.len());
            }
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() < total {
                return Ok(());
            }
            out.push(decode_message(&self.buffer)?);
            self.buffer.clear();
            if rest.is_empty() {
                // Do not keep a huge message's allocation for the rest of the stream.
                if self.buffer.capacity() > 64 * 1024 {
                    self.buffer = Vec::new();
                }
                return Ok(());
            }
        }
    }

    pub fn finish(&mut self, _out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(frame_error("the stream ended inside a message"))
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the prelude's CRC and lengths before anything is buffered for the message.
fn check_prelude(prelude: &[u8]) -> Result<(), SseError> {
    if CRC32.checksum(&prelude[..8]) != read_u32(prelude, 8) {
        return Err(frame_error("prelude CRC mismatch"));
    }
    let total = read_u32(prelude, 0) as usize;
    let headers = read_u32(prelude, 4) as usize;
    if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&total) {
        return Err(frame_error("message length out of bounds"));
    }
    if headers > MAX_HEADER_BYTES || headers > total - MIN_MESSAGE_BYTES {
        return Err(frame_error("headers length out of bounds"));
    }
    Ok(())
}

fn decode_message(message: &[u8]) -> Result<SseEvent, SseError> {
    let total = message.len();
    if CRC32.checksum(&message[..total - 4]) != read_u32(message, total - 4) {
        return Err(frame_error("message CRC mismatch"));
    }
    let headers_len = read_u32(message, 4) as usize;
    let headers = &message[PRELUDE_BYTES..PRELUDE_BYTES + headers_len];
    let payload = &message[PRELUDE_BYTES + headers_len..total - 4];

    let mut message_type = None;
    let mut event_type = None;
    let mut exception_type = None;
    let mut error_code = None;
    let mut error_message = None;
    let mut rest = headers;
    while !rest.is_empty() {
        let (name, value, tail) = header(rest)?;
        rest = tail;
        let slot = match name {
            ":message-type" => &mut message_type,
            ":event-type" => &mut event_type,
            ":exception-type" => &mut exception_type,
            ":error-code" => &mut error_code,
            ":error-message" => &mut error_message,
            _ => continue,
        };
        *slot = value;
    }
    let payload = std::str::from_utf8(payload).map_err(|_| SseError::InvalidUtf8)?;
    let missing = |what| frame_error(what);
    Ok(match message_type.unwrap_or("event") {
        "event" => SseEvent {
            event: Some(
                event_type
                    .ok_or_else(|| missing("an event without :event-type"))?
                    .to_owned(),
            ),
            data: payload.to_owned(),
        },
        "exception" => SseEvent {
            event: Some(format!(
                "exception:{}",
                exception_type.ok_or_else(|| missing("an exception without :exception-type"))?
            )),
            data: payload.to_owned(),
        },
        "error" => SseEvent {
            event: Some(format!("error:{}", error_code.unwrap_or("UnknownError"))),
            data: error_message.unwrap_or_default().to_owned(),
        },
        _ => return Err(frame_error("unknown :message-type")),
    })
}

/// One header: its name, its value when it is a string, and the bytes after it.
fn header(bytes: &[u8]) -> Result<(&str, Option<&str>, &[u8]), SseError> {
    let truncated = || frame_error("truncated header");
    let (&name_len, rest) = bytes.split_first().ok_or_else(truncated)?;
    let name_len = name_len as usize;
    if rest.len() < name_len + 1 {
        return Err(truncated());
    }
    let name = std::str::from_utf8(&rest[..name_len]).map_err(|_| SseError::InvalidUtf8)?;
    let kind = rest[name_len];
    let rest = &rest[name_len + 1..];
    let fixed_size = match kind {
        0 | 1 => Some(0),
        2 => Some(1),
        3 => Some(2),
        4 => Some(4),
        5 | 8 => Some(8),
        9 => Some(16),
        6 | 7 => None,
        _ => return Err(frame_error("unknown header type")),
    };
    if let Some(size) = fixed_size {
        if rest.len() < size {
            return Err(truncated());
        }
        return Ok((name, None, &rest[size..]));
    }
    if rest.len() < 2 {
        return Err(truncated());
    }
    let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    if rest.len() < 2 + len {
        return Err(truncated());
    }
    let value = &rest[2..2 + len];
    let value = if kind == 7 {
        Some(std::str::from_utf8(value).map_err(|_| SseError::InvalidUtf8)?)
    } else {
        None
    };
    let rest = &rest[2 + len..];
    Ok((name, value, rest))
}

/// Encodes one message with string headers: the mock upstream's and the tests' side.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut header_bytes = Vec::new();
    for (name, value) in headers {
        header_bytes.push(name.len() as u8);
        header_bytes.extend_from_slice(name.as_bytes());
        header_bytes.push(7);
        header_bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        header_bytes.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE_BYTES + header_bytes.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(header_bytes.len() as u32).to_be_bytes());
    let prelude_crc = CRC32.checksum(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(payload);
    let crc = CRC32.checksum(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An `event` message, as Bedrock sends them.
pub fn encode_event(event_type: &str, payload: &str) -> Vec<u8> {
    encode(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut decoder = EventStreamDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out)
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(name.into()),
            data: data.into(),
        }
    }

    /// The encoder (and so the CRCs the decoder checks) against bytes AWS published:
    /// awslabs/aws-c-event-stream's `empty_message` test vector (no headers, no payload).
    #[test]
    fn encodes_like_the_aws_reference() {
        let empty = encode(&[], b"");
        assert_eq!(
            empty,
            [0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff]
        );
    }

    #[test]
    fn messages_split_anywhere_decode() {
        let mut stream = encode_event("messageStart", r#"{"role":"assistant"}"#);
        stream.extend(encode_event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ));
        let expected = vec![
            event("messageStart", r#"{"role":"assistant"}"#),
            event(
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
            ),
        ];
        assert_eq!(decode(&[&stream]).unwrap(), expected);
        for split in 1..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(decode(&[a, b]).unwrap(), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode(&bytes).unwrap(), expected);
    }

    #[test]
    fn exceptions_and_errors_are_named() {
        let exception = encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"slow down"}"#,
        );
        let error = encode(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            b"",
        );
        assert_eq!(
            decode(&[&exception, &error]).unwrap(),
            vec![
                event(
                    "exception:throttlingException",
                    r#"{"message":"slow down"}"#
                ),
                event("error:InternalFailure", "boom"),
            ]
        );
    }

    #[test]
    fn other_header_types_are_skipped() {
        // bool, byte, short, int, long, bytes, timestamp, uuid, then the string we need.
        let mut headers = Vec::new();
        let mut push = |name: &str, kind: u8, value: &[u8]| {
            headers.push(name.len() as u8);
            headers.extend_from_slice(name.as_bytes());
            headers.push(kind);
            headers.extend_from_slice(value);
        };
        push("t", 0, &[]);
        push("f", 1, &[]);
        push("b", 2, &[7]);
        push("s", 3, &[0, 7]);
        push("i", 4, &[0, 0, 0, 7]);
        push("l", 5, &[0; 8]);
        push("a", 6, &[0, 2, 1, 2]);
        push("ts", 8, &[0; 8]);
        push("u", 9, &[0; 16]);
        push(":event-type", 7, &[0, 4, b'p', b'i', b'n', b'g']);
        let total = 12 + headers.len() + 2 + 4;
        let mut message = Vec::new();
        message.extend_from_slice(&(total as u32).to_be_bytes());
        message.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        message.extend_from_slice(&CRC32.checksum(&message).to_be_bytes());
        message.extend_from_slice(&headers);
        message.extend_from_slice(b"{}");
        message.extend_from_slice(&CRC32.checksum(&message).to_be_bytes());
        assert_eq!(decode(&[&message]).unwrap(), vec![event("ping", "{}")]);
    }

    #[test]
    fn hostile_input_fails_cleanly() {
        let good = encode_event("messageStop", r#"{"stopReason":"end_turn"}"#);

        let mut bad_prelude = good.clone();
        bad_prelude[9] ^= 0xff;
        assert_eq!(
            decode(&[&bad_prelude]),
            Err(SseError::EventStream("prelude CRC mismatch"))
        );

        let mut bad_message = good.clone();
        let last = bad_message.len() - 6;
        bad_message[last] ^= 0x01;
        assert_eq!(
            decode(&[&bad_message]),
            Err(SseError::EventStream("message CRC mismatch"))
        );

        assert_eq!(
            decode(&[&good[..good.len() - 1]]),
            Err(SseError::EventStream("the stream ended inside a message"))
        );
        assert_eq!(
            decode(&[&good[..5]]),
            Err(SseError::EventStream("the stream ended inside a message"))
        );

        // A prelude claiming 4 GiB (with a valid CRC): refused before anything is buffered.
        let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        huge.extend_from_slice(&CRC32.checksum(&huge).to_be_bytes());
        let mut decoder = EventStreamDecoder::default();
        assert_eq!(
            decoder.feed(&huge, &mut Vec::new()),
            Err(SseError::EventStream("message length out of bounds"))
        );
        assert!(decoder.buffer.capacity() < 1024);

        // Headers longer than the message, and a too-short total.
        for (total, headers) in [(32u32, 100u32), (8, 0), (200_000, 150_000)] {
            let mut prelude = total.to_be_bytes().to_vec();
            prelude.extend_from_slice(&headers.to_be_bytes());
            prelude.extend_from_slice(&CRC32.checksum(&prelude).to_be_bytes());
            assert!(decode(&[&prelude]).is_err(), "{total} {headers}");
        }

        // A header whose value runs past the headers, with correct CRCs.
        let mut message = Vec::new();
        let headers = [3u8, b'a', b'b', b'c', 7, 0, 50, b'x'];
        let total = 12 + headers.len() + 4;
        message.extend_from_slice(&(total as u32).to_be_bytes());
        message.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        message.extend_from_slice(&CRC32.checksum(&message).to_be_bytes());
        message.extend_from_slice(&headers);
        message.extend_from_slice(&CRC32.checksum(&message).to_be_bytes());
        assert_eq!(
            decode(&[&message]),
            Err(SseError::EventStream("truncated header"))
        );

        // Not UTF-8, and an event without a type.
        let binary = encode(&[(":event-type", "x")], &[0xff, 0xfe]);
        assert_eq!(decode(&[&binary]), Err(SseError::InvalidUtf8));
        let untyped = encode(&[(":message-type", "event")], b"{}");
        assert!(decode(&[&untyped]).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let good = encode_event("contentBlockDelta", r#"{"delta":{"text":"x"}}"#);
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            let cut = rng.usize(..=bytes.len());
            let _ = decode(&[&bytes[..cut]]);
            let noise: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            let _ = decode(&[&noise]);
        }
    }
}
