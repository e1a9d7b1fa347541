//! The request log behind `GET /__mock/requests`: a bounded ring of what the mock was sent, so a
//! test can assert on exactly what the gateway forwarded (headers, body, path, query).
//!
//! Entries are pushed with their id assigned under the same lock, so the ring is always sorted by
//! id and an entry can be found again (to fill in its status or stream outcome) by binary search.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    pub id: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Every header, lower-case name to value (repeated headers joined with ", "). This is a test
    /// tool: the keys sent to it are fake, and seeing them is the point.
    pub headers: BTreeMap<String, String>,
    /// The body as sent when it is JSON (kept verbatim, key order included), else `null`.
    pub body: Option<Box<RawValue>>,
    /// The request asked for a stream (`"stream": true`).
    pub stream: bool,
    /// The client went away before the stream finished.
    pub stream_cancelled: bool,
    /// The mock cut the stream on purpose (`fail_mid_stream_after`).
    pub stream_aborted: bool,
    /// The response status; 0 while no response has been produced (hanging, waiting out
    /// `latency_ms`, or the client left before the answer).
    pub status: u16,
}

impl LogEntry {
    /// A new entry; its `id` is assigned by [`RequestLog::push`].
    pub fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut header_map: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            header_map
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let body: Option<Box<RawValue>> = serde_json::from_slice(body).ok();
        // Gemini and Bedrock say "stream" in the method, not the body.
        let stream = body.as_deref().is_some_and(asks_for_stream)
            || uri.path().ends_with(":streamGenerateContent")
            || uri.path().ends_with("/converse-stream");
        Self {
            id: 0,
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: header_map,
            body,
            stream,
            stream_cancelled: false,
            stream_aborted: false,
            status: 0,
        }
    }
}

/// `"stream": true` at the top level of a JSON body.
fn asks_for_stream(body: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct StreamFlag {
        #[serde(default)]
        stream: Option<serde_json::Value>,
    }
    serde_json::from_str::<StreamFlag>(body.get())
        .is_ok_and(|flag| flag.stream == Some(serde_json::Value::Bool(true)))
}

pub struct RequestLog {
    capacity: usize,
    entries: Mutex<VecDeque<LogEntry>>,
}

impl RequestLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            // Grows on demand: a large --max-log should not cost memory until it is used.
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// `--max-log 0` turns logging off entirely (benchmarks).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<LogEntry>> {
        // Nothing panics while holding this lock, but a poisoned log is still a usable log.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `entry` under the next id (`next_id` is called under the lock, so the ring stays
    /// sorted by id). The entry is built by the caller, outside the lock: parsing the body is the
    /// expensive part and should not serialise concurrent requests. Returns the id.
    pub fn push(&self, next_id: impl FnOnce() -> u64, mut entry: LogEntry) -> u64 {
        let mut entries = self.lock();
        let id = next_id();
        entry.id = id;
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
        id
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut LogEntry)) {
        let mut entries = self.lock();
        if let Ok(index) = entries.binary_search_by_key(&id, |entry| entry.id) {
            change(&mut entries[index]);
        }
    }

    pub fn set_status(&self, id: u64, status: u16) {
        self.update(id, |entry| entry.status = status);
    }

    pub fn mark_cancelled(&self, id: u64) {
        self.update(id, |entry| entry.stream_cancelled = true);
    }

    pub fn mark_aborted(&self, id: u64) {
        self.update(id, |entry| entry.stream_aborted = true);
    }

    /// The log as JSON, oldest first. Serialised under the lock: cheaper than cloning every
    /// entry, and it is a test-time call.
    pub fn to_json(&self) -> Vec<u8> {
        let entries = self.lock();
        serde_json::to_vec(&*entries).unwrap_or_else(|_| b"[]".to_vec())
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::Value;

    fn entry() -> LogEntry {
        LogEntry::new(
            &Method::POST,
            &Uri::from_static("/x"),
            &HeaderMap::new(),
            b"",
        )
    }

    #[test]
    fn keeps_the_newest_entries_up_to_capacity() {
        let log = RequestLog::new(2);
        let mut next = 0;
        for _ in 0..3 {
            log.push(
                || {
                    next += 1;
                    next
                },
                entry(),
            );
        }
        let json: Value = serde_json::from_slice(&log.to_json()).expect("json");
        let ids: Vec<u64> = json
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|e| e["id"].as_u64())
            .collect();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn updates_find_their_entry_and_ignore_evicted_ones() {
        let log = RequestLog::new(5);
        let id = log.push(|| 7, entry());
        log.set_status(id, 200);
        log.mark_cancelled(id);
        log.set_status(99, 500);
        let json: Value = serde_json::from_slice(&log.to_json()).expect("json");
        assert_eq!(json[0]["status"], 200);
        assert_eq!(json[0]["stream_cancelled"], true);
        assert_eq!(json[0]["stream_aborted"], false);
    }

    #[test]
    fn records_headers_body_and_query() {
        let mut headers = HeaderMap::new();
        headers.insert("Authorization", HeaderValue::from_static("Bearer sk-fake"));
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        let uri = Uri::from_static("/openai/deployments/d/chat/completions?api-version=2024-10-21");
        let e = LogEntry::new(&Method::POST, &uri, &headers, br#"{"stream":true}"#);
        assert_eq!(e.headers["authorization"], "Bearer sk-fake");
        assert_eq!(e.headers["x-tag"], "a, b");
        assert_eq!(e.query.as_deref(), Some("api-version=2024-10-21"));
        assert_eq!(e.path, "/openai/deployments/d/chat/completions");
        assert!(e.stream);
        let not_json = LogEntry::new(&Method::POST, &uri, &headers, b"{nope");
        assert!(not_json.body.is_none());
        // The body is kept as sent, not re-ordered.
        let ordered = LogEntry::new(
            &Method::POST,
            &uri,
            &headers,
            br#"{"z":1,"a":{"y":2,"b":3}}"#,
        );
        assert_eq!(
            ordered.body.as_deref().map(RawValue::get),
            Some(r#"{"z":1,"a":{"y":2,"b":3}}"#)
        );
        assert!(!ordered.stream);
        assert!(!not_json.stream);
    }
}
