//! A small hand-written protobuf writer for OTLP traces (`ExportTraceServiceRequest`,
//! opentelemetry-proto `trace/v1`, a stable format).
//!
//! Why not `opentelemetry-otlp`: turning the SDK's `SpanData` into the generated prost types
//! and encoding those cost ~45,000 instructions per sampled request, more than the rest of
//! tracing together. Here a span is written straight from the gateway's own records into one
//! buffer: attribute keys are `&'static str`, values are borrowed, nothing is cloned, and every
//! nested length is computed before it is written (no second pass, no temporary buffer).
//!
//! A request's spans are encoded once, when it finishes, into one buffer ([`Spans`]), each
//! already framed as an entry of `ScopeSpans.spans`, so the request queues one item; the
//! batcher puts a batch of them into one request ([`export_request`]) in a buffer it reuses.
//! Attributes that never change for a deployment are encoded once ([`Attributes`]) and copied
//! into each span as they are.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

// Field numbers of opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_TRACE_STATE: u32 = 3;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START: u32 = 7;
const SPAN_END: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_STATUS: u32 = 15;
const SPAN_FLAGS: u32 = 16;
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const ANY_STRING: u32 = 1;
const ANY_BOOL: u32 = 2;
const ANY_INT: u32 = 3;
const ANY_DOUBLE: u32 = 4;
const ANY_ARRAY: u32 = 5;
const ARRAY_VALUES: u32 = 1;
const SCOPE_NAME: u32 = 1;
const SCOPE_VERSION: u32 = 2;
const RESOURCE_ATTRIBUTES: u32 = 1;

/// `SpanFlags`: the low byte is the W3C trace flags (sampled); the two bits after it say
/// whether the parent is known to be remote, and whether it is.
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server = 2,
    Client = 3,
}

#[inline(always)]
fn varint_len(value: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    ((64 - (value | 1).leading_zeros()) as usize).div_ceil(7)
}

#[inline]
fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

#[inline]
fn put_tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

#[inline(always)]
fn tag_len(field: u32) -> usize {
    varint_len(u64::from(field) << 3)
}

/// The size of a length-delimited field holding `len` bytes.
#[inline(always)]
fn framed_len(field: u32, len: usize) -> usize {
    tag_len(field) + varint_len(len as u64) + len
}

#[inline]
fn put_header(buf: &mut Vec<u8>, field: u32, len: usize) {
    put_tag(buf, field, LEN);
    put_varint(buf, len as u64);
}

#[inline]
fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_header(buf, field, bytes.len());
    buf.extend_from_slice(bytes);
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// An attribute's value, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    Strs(&'a [Cow<'a, str>]),
}

impl Value<'_> {
    /// The size of the `AnyValue` message.
    #[inline(always)]
    fn any_len(&self) -> usize {
        match self {
            Value::Str(s) => framed_len(ANY_STRING, s.len()),
            Value::Int(i) => tag_len(ANY_INT) + varint_len(*i as u64),
            Value::Double(_) => tag_len(ANY_DOUBLE) + 8,
            Value::Bool(_) => tag_len(ANY_BOOL) + 1,
            Value::Strs(list) => framed_len(ANY_ARRAY, array_len(list)),
        }
    }

    fn put_any(&self, buf: &mut Vec<u8>) {
        match self {
            // A oneof member is written even when empty, so "" stays a string value.
            Value::Str(s) => put_bytes(buf, ANY_STRING, s.as_bytes()),
            Value::Int(i) => {
                put_tag(buf, ANY_INT, VARINT);
                put_varint(buf, *i as u64);
            }
            Value::Double(d) => {
                put_tag(buf, ANY_DOUBLE, FIXED64);
                buf.extend_from_slice(&d.to_le_bytes());
            }
            Value::Bool(b) => {
                put_tag(buf, ANY_BOOL, VARINT);
                buf.push(u8::from(*b));
            }
            Value::Strs(list) => {
                put_header(buf, ANY_ARRAY, array_len(list));
                for s in *list {
                    let s: &str = s;
                    put_header(buf, ARRAY_VALUES, framed_len(ANY_STRING, s.len()));
                    put_bytes(buf, ANY_STRING, s.as_bytes());
                }
            }
        }
    }
}

/// The size of an `ArrayValue` of strings.
fn array_len(list: &[Cow<'_, str>]) -> usize {
    list.iter()
        .map(|s| framed_len(ARRAY_VALUES, framed_len(ANY_STRING, s.len())))
        .sum()
}

/// Writes a `KeyValue` as field `field` of the enclosing message. Inlined: at a call site the
/// field, the key (a literal) and the kind of value are constants, so most lengths and headers
/// are computed by the compiler and the key is copied without a `memcpy` call. The headers in
/// front of the key and of the value are put together on the stack and appended with a copy
/// of fixed size (see [`Head::put`]), so a string attribute makes one `memcpy` call (its
/// value), not four.
#[inline(always)]
fn put_key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: Value<'_>) {
    // The common case, a short string: every length is one byte and every tag is known, so
    // the attribute is four fixed-size copies and the value's.
    if let Value::Str(s) = value {
        if field < 16 && key.len() < 60 && s.len() < 60 {
            let any = 2 + s.len();
            let len = 2 + key.len() + 2 + any;
            buf.reserve(2 + len);
            buf.extend_from_slice(&[
                ((field << 3) as u8) | LEN,
                len as u8,
                ((KEY_VALUE_KEY << 3) as u8) | LEN,
                key.len() as u8,
            ]);
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(&[
                ((KEY_VALUE_VALUE << 3) as u8) | LEN,
                any as u8,
                ((ANY_STRING << 3) as u8) | LEN,
                s.len() as u8,
            ]);
            buf.extend_from_slice(s.as_bytes());
            return;
        }
    }
    let any = value.any_len();
    let len = framed_len(KEY_VALUE_KEY, key.len()) + framed_len(KEY_VALUE_VALUE, any);
    buf.reserve(framed_len(field, len) + 2 * Head::SIZE);
    let mut head = Head::default();
    head.header(field, len);
    head.header(KEY_VALUE_KEY, key.len());
    head.put(buf);
    buf.extend_from_slice(key.as_bytes());
    let mut head = Head::default();
    head.header(KEY_VALUE_VALUE, any);
    match value {
        // A oneof member is written even when empty, so "" stays a string value.
        Value::Str(s) => {
            head.header(ANY_STRING, s.len());
            head.put(buf);
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Int(i) => {
            head.varint(u64::from(ANY_INT << 3) | u64::from(VARINT));
            head.varint(i as u64);
            head.put(buf);
        }
        Value::Bool(b) => {
            head.varint(u64::from(ANY_BOOL << 3) | u64::from(VARINT));
            head.varint(u64::from(b));
            head.put(buf);
        }
        other => {
            head.put(buf);
            other.put_any(buf);
        }
    }
}

/// Up to three headers (tag and length varints) assembled before one copy.
struct Head {
    buf: [u8; Head::SIZE],
    len: usize,
}

impl Default for Head {
    #[inline(always)]
    fn default() -> Self {
        Head {
            buf: [0; Head::SIZE],
            len: 0,
        }
    }
}

impl Head {
    /// Three headers of a one-byte tag and a length up to 2^35 (five bytes) fit.
    const SIZE: usize = 32;

    #[inline]
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf[self.len] = (value as u8) | 0x80;
            self.len += 1;
            value >>= 7;
        }
        self.buf[self.len] = value as u8;
        self.len += 1;
    }

    #[inline]
    fn header(&mut self, field: u32, len: usize) {
        self.varint((u64::from(field) << 3) | u64::from(LEN));
        self.varint(len as u64);
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends the headers: all [`Head::SIZE`] bytes (a copy of constant size, two vector
    /// moves instead of a `memcpy` call), then the length cut back to what was written.
    #[inline(always)]
    fn put(&self, buf: &mut Vec<u8>) {
        let at = buf.len();
        buf.extend_from_slice(&self.buf);
        buf.truncate(at + self.len);
    }
}

/// What identifies a span and when it ran.
pub struct SpanHead<'a> {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's `tracestate`, as it came.
    pub trace_state: &'a str,
    pub parent_span_id: Option<[u8; 8]>,
    pub parent_is_remote: bool,
    /// Concatenated: a name is often `"{operation} {model}"`, and this saves formatting it.
    pub name: &'a [&'a str],
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
}

/// One request's spans, each framed as an entry of `ScopeSpans.spans`, in one buffer: what
/// the request queues for export (one queue item, one allocation, however many spans).
#[derive(Debug, Default)]
pub struct Spans {
    buf: Vec<u8>,
    count: u32,
}

/// Room left in front of a span for its frame: the `spans` tag and a length of up to 2^14,
/// what a span takes unless a caller sent a very long `tracestate` or model name.
const FRAME: usize = 3;
/// `ScopeSpans.spans`.
const SCOPE_SPANS_SPANS: u32 = 2;

impl Spans {
    pub fn with_capacity(bytes: usize) -> Spans {
        Spans {
            buf: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// How many spans it holds.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Starts a span: its identity and times are written now, its attributes next, and
    /// [`SpanWriter::finish`] closes and frames it.
    pub fn span(&mut self, head: &SpanHead<'_>) -> SpanWriter<'_> {
        let buf = &mut self.buf;
        let start = buf.len();
        buf.extend_from_slice(&[0; FRAME]);
        put_bytes(buf, SPAN_TRACE_ID, &head.trace_id);
        put_bytes(buf, SPAN_SPAN_ID, &head.span_id);
        if !head.trace_state.is_empty() {
            put_bytes(buf, SPAN_TRACE_STATE, head.trace_state.as_bytes());
        }
        if let Some(parent) = head.parent_span_id {
            put_bytes(buf, SPAN_PARENT_SPAN_ID, &parent);
        }
        let name_len = head.name.iter().map(|part| part.len()).sum();
        put_header(buf, SPAN_NAME, name_len);
        for part in head.name {
            buf.extend_from_slice(part.as_bytes());
        }
        let mut flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE;
        if head.parent_is_remote {
            flags |= FLAG_IS_REMOTE;
        }
        // Kind, start, end and flags: 22 bytes of fixed layout, one copy.
        let mut fixed = [0u8; 22];
        fixed[0] = ((SPAN_KIND << 3) as u8) | VARINT;
        fixed[1] = head.kind as u8;
        fixed[2] = ((SPAN_START << 3) as u8) | FIXED64;
        fixed[3..11].copy_from_slice(&unix_nanos(head.start).to_le_bytes());
        fixed[11] = ((SPAN_END << 3) as u8) | FIXED64;
        fixed[12..20].copy_from_slice(&unix_nanos(head.end).to_le_bytes());
        // Field 16 takes a two-byte tag.
        fixed[20] = (((SPAN_FLAGS << 3) as u8) | FIXED32) | 0x80;
        fixed[21] = (SPAN_FLAGS >> 4) as u8;
        buf.extend_from_slice(&fixed);
        buf.extend_from_slice(&flags.to_le_bytes());
        SpanWriter { spans: self, start }
    }
}

/// One span's `Span` message, written field by field into its request's [`Spans`].
pub struct SpanWriter<'a> {
    spans: &'a mut Spans,
    /// Where this span's frame starts.
    start: usize,
}

impl SpanWriter<'_> {
    #[inline(always)]
    pub fn attribute(&mut self, key: &str, value: Value<'_>) {
        put_key_value(&mut self.spans.buf, SPAN_ATTRIBUTES, key, value);
    }

    #[inline(always)]
    pub fn str(&mut self, key: &str, value: &str) {
        self.attribute(key, Value::Str(value));
    }

    /// An integer attribute (OTLP's are signed 64-bit; larger values saturate).
    #[inline(always)]
    pub fn int(&mut self, key: &str, value: u64) {
        self.attribute(key, Value::Int(i64::try_from(value).unwrap_or(i64::MAX)));
    }

    /// Attributes encoded beforehand ([`Attributes`]), copied in as they are.
    pub fn encoded(&mut self, attributes: &[u8]) {
        self.spans.buf.extend_from_slice(attributes);
    }

    /// Ends the span with its status (unset, or an error with its message) and frames it.
    pub fn finish(self, error: Option<&str>) {
        let buf = &mut self.spans.buf;
        match error {
            None => put_header(buf, SPAN_STATUS, 0),
            Some(message) => {
                let len = framed_len(STATUS_MESSAGE, message.len()) + tag_len(STATUS_CODE) + 1;
                put_header(buf, SPAN_STATUS, len);
                put_bytes(buf, STATUS_MESSAGE, message.as_bytes());
                put_tag(buf, STATUS_CODE, VARINT);
                buf.push(2); // STATUS_CODE_ERROR
            }
        }
        // The frame: the span's length is known now. A frame shorter than the room left for it
        // (a span under 128 bytes) moves the span down; a longer one moves it up.
        let body = self.start + FRAME;
        let mut head = Head::default();
        head.header(SCOPE_SPANS_SPANS, buf.len() - body);
        let frame = head.bytes();
        if frame.len() < FRAME {
            buf.copy_within(body.., self.start + frame.len());
            buf.truncate(buf.len() - (FRAME - frame.len()));
        } else if frame.len() > FRAME {
            // Over 16 KiB (a very long model name or attribute): make room.
            let extra = frame.len() - FRAME;
            buf.splice(body..body, std::iter::repeat_n(0, extra));
        }
        buf[self.start..self.start + frame.len()].copy_from_slice(frame);
        self.spans.count += 1;
    }
}

/// Span attributes encoded once, for attributes that do not change from request to request
/// (those of a deployment): copied into a span with [`SpanWriter::encoded`].
#[derive(Default)]
pub struct Attributes {
    buf: Vec<u8>,
}

impl Attributes {
    pub fn str(&mut self, key: &str, value: &str) {
        put_key_value(&mut self.buf, SPAN_ATTRIBUTES, key, Value::Str(value));
    }

    pub fn into_bytes(self) -> Box<[u8]> {
        self.buf.into_boxed_slice()
    }
}

/// A `Resource` message with these string attributes (encoded once, at start).
pub fn resource(attributes: &[(String, String)]) -> Vec<u8> {
    let mut buf = Vec::new();
    for (key, value) in attributes {
        put_key_value(&mut buf, RESOURCE_ATTRIBUTES, key, Value::Str(value));
    }
    buf
}

/// An `InstrumentationScope` message (encoded once, at start).
pub fn scope(name: &str, version: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    put_bytes(&mut buf, SCOPE_NAME, name.as_bytes());
    put_bytes(&mut buf, SCOPE_VERSION, version.as_bytes());
    buf
}

/// Writes an `ExportTraceServiceRequest` with one resource and one scope holding the spans of
/// `requests` into `buf`, replacing what it held.
pub fn export_request(buf: &mut Vec<u8>, resource: &[u8], scope: &[u8], requests: &[Spans]) {
    const RESOURCE_SPANS: u32 = 1; // of ExportTraceServiceRequest
    const RESOURCE: u32 = 1; // of ResourceSpans
    const SCOPE_SPANS: u32 = 2; // of ResourceSpans
    const SCOPE: u32 = 1; // of ScopeSpans
    let scope_spans =
        framed_len(SCOPE, scope.len()) + requests.iter().map(|r| r.buf.len()).sum::<usize>();
    let resource_spans =
        framed_len(RESOURCE, resource.len()) + framed_len(SCOPE_SPANS, scope_spans);
    let size = framed_len(RESOURCE_SPANS, resource_spans);
    buf.clear();
    if buf.capacity() < size {
        // A new buffer rather than `reserve`, which would copy the old one's bytes over.
        *buf = Vec::with_capacity(size);
    }
    put_header(buf, RESOURCE_SPANS, resource_spans);
    put_bytes(buf, RESOURCE, resource);
    put_header(buf, SCOPE_SPANS, scope_spans);
    put_bytes(buf, SCOPE, scope);
    for request in requests {
        buf.extend_from_slice(&request.buf);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn s(value: &str) -> any_value::Value {
        any_value::Value::StringValue(value.to_owned())
    }

    #[test]
    fn varint_lengths_match_what_is_written() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
        }
    }

    #[test]
    fn an_export_request_decodes_with_opentelemetry_proto() {
        let long = "x".repeat(100_000);
        let non_ascii = "模型 \u{1F680} naïve \"quoted\" \\ \n\0";
        let reasons: Vec<Cow<'_, str>> =
            vec!["stop".into(), "".into(), non_ascii.to_owned().into()];
        let start = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let end = start + Duration::from_millis(1500);

        let mut spans = Spans::default();
        let mut server = spans.span(&SpanHead {
            trace_id: [0x4b; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            trace_state: "vendor=opaque",
            parent_span_id: Some([0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
            parent_is_remote: true,
            name: &["chat ", non_ascii],
            kind: Kind::Server,
            start,
            end,
        });
        server.str("long", &long);
        server.str("non_ascii", non_ascii);
        server.str("", "");
        server.int("tokens", 42);
        server.int("huge", u64::MAX);
        server.attribute("negative", Value::Int(-7));
        server.attribute("temperature", Value::Double(0.7));
        server.attribute("cache_hit", Value::Bool(false));
        server.attribute("stream", Value::Bool(true));
        server.attribute("reasons", Value::Strs(&reasons));
        server.attribute("none", Value::Strs(&[]));
        let mut fixed = Attributes::default();
        fixed.str("encoded", "once");
        server.encoded(&fixed.into_bytes());
        server.finish(Some(&long));

        let mut other = Spans::default();
        other
            .span(&SpanHead {
                trace_id: [0x4b; 16],
                span_id: [9; 8],
                trace_state: "",
                parent_span_id: None,
                parent_is_remote: false,
                name: &[],
                kind: Kind::Client,
                start,
                end: start,
            })
            .finish(None);
        assert_eq!((spans.count(), other.count()), (1, 1));

        let resource = resource(&[("service.name".to_owned(), non_ascii.to_owned())]);
        let scope = scope("switchyard", "1.2.3");
        let mut buf = vec![0xff; 3]; // leftovers from a previous batch are replaced
        export_request(&mut buf, &resource, &scope, &[spans, other]);
        let decoded = ExportTraceServiceRequest::decode(buf.as_slice()).unwrap();

        let start_nanos = 1_765_000_000_123_456_789;
        let expected = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s(non_ascii))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "switchyard".to_owned(),
                        version: "1.2.3".to_owned(),
                        ..Default::default()
                    }),
                    spans: vec![
                        Span {
                            trace_id: vec![0x4b; 16],
                            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                            trace_state: "vendor=opaque".to_owned(),
                            parent_span_id: vec![0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
                            flags: 0x301,
                            name: format!("chat {non_ascii}"),
                            kind: 2,
                            start_time_unix_nano: start_nanos,
                            end_time_unix_nano: start_nanos + 1_500_000_000,
                            attributes: vec![
                                kv("long", s(&long)),
                                kv("non_ascii", s(non_ascii)),
                                kv("", s("")),
                                kv("tokens", any_value::Value::IntValue(42)),
                                kv("huge", any_value::Value::IntValue(i64::MAX)),
                                kv("negative", any_value::Value::IntValue(-7)),
                                kv("temperature", any_value::Value::DoubleValue(0.7)),
                                kv("cache_hit", any_value::Value::BoolValue(false)),
                                kv("stream", any_value::Value::BoolValue(true)),
                                kv(
                                    "reasons",
                                    any_value::Value::ArrayValue(ArrayValue {
                                        values: reasons
                                            .iter()
                                            .map(|r| AnyValue { value: Some(s(r)) })
                                            .collect(),
                                    }),
                                ),
                                kv(
                                    "none",
                                    any_value::Value::ArrayValue(ArrayValue { values: vec![] }),
                                ),
                                kv("encoded", s("once")),
                            ],
                            status: Some(Status {
                                message: long.clone(),
                                code: status::StatusCode::Error as i32,
                            }),
                            ..Default::default()
                        },
                        Span {
                            trace_id: vec![0x4b; 16],
                            span_id: vec![9; 8],
                            flags: 0x101,
                            kind: 3,
                            start_time_unix_nano: start_nanos,
                            end_time_unix_nano: start_nanos,
                            status: Some(Status::default()),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(decoded, expected);
    }

    #[test]
    fn spans_of_every_frame_size_are_framed_right() {
        // Frames of 2, 3, 4 and 5 bytes, one after the other in one buffer.
        let sizes = [0, 500, 20_000, 3 << 20];
        let mut spans = Spans::default();
        for (i, size) in sizes.iter().enumerate() {
            let mut span = spans.span(&SpanHead {
                trace_id: [1; 16],
                span_id: [i as u8 + 1; 8],
                trace_state: "",
                parent_span_id: None,
                parent_is_remote: false,
                name: &["n"],
                kind: Kind::Server,
                start: UNIX_EPOCH,
                end: UNIX_EPOCH,
            });
            if *size > 0 {
                span.str("v", &"y".repeat(*size));
            }
            span.finish(None);
        }
        assert_eq!(spans.count(), 4);
        let mut buf = Vec::new();
        export_request(&mut buf, &resource(&[]), &scope("s", "1"), &[spans]);
        let decoded = ExportTraceServiceRequest::decode(buf.as_slice()).unwrap();
        let decoded = &decoded.resource_spans[0].scope_spans[0].spans;
        assert_eq!(decoded.len(), 4);
        for (i, (span, size)) in decoded.iter().zip(sizes).enumerate() {
            assert_eq!(span.span_id, vec![i as u8 + 1; 8]);
            assert_eq!(span.name, "n");
            if size > 0 {
                assert_eq!(span.attributes, vec![kv("v", s(&"y".repeat(size)))]);
            } else {
                assert!(span.attributes.is_empty());
            }
        }
    }
}
