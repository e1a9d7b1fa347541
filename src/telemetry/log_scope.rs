//! Which request a log line belongs to: every line logged while a handler serves a request
//! (a failed attempt, a fallback, a soft-budget alert) carries the request's id and caller.
//!
//! A `tracing` span per request would do this too, but with the `fmt` subscriber and an
//! `EnvFilter` a span costs an allocation and a formatted copy of its fields when created, and
//! two filter-map lookups under a lock on every poll of the handler: several percent of a request
//! that logs nothing. Here the handler's future runs inside a task-local [`Scope`] (a pointer
//! swap per poll), and only a line that is actually written looks it up and appends it:
//! ` request_id=… caller=…` at the end of a text line, `"request_id":…,"caller":…` as the last
//! fields of a JSON line.
//!
//! A stream's body is polled by the connection after the handler returned: lines logged from it
//! name the request themselves (`api/sse.rs`).

use std::fmt::{self, Write as _};
use std::future::Future;

use axum::http::HeaderValue;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::auth::Principal;

/// The request a handler is serving, as its log lines name it.
#[derive(Clone)]
pub struct Scope {
    pub request_id: HeaderValue,
    pub caller: Principal,
}

tokio::task_local! {
    static CURRENT: Scope;
}

/// Runs `future` with `scope` as the current request of its log lines.
pub fn within<F: Future>(scope: Scope, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(scope, future)
}

/// How a line is laid out, so the request can be added in the right place.
#[derive(Clone, Copy)]
enum Layout {
    Text,
    Json,
}

/// An event formatter that formats with `inner`, then adds the current request (if any).
pub struct Tagged<E> {
    inner: E,
    layout: Layout,
}

impl<E> Tagged<E> {
    pub fn text(inner: E) -> Self {
        Tagged {
            inner,
            layout: Layout::Text,
        }
    }

    pub fn json(inner: E) -> Self {
        Tagged {
            inner,
            layout: Layout::Json,
        }
    }
}

impl<S, N, E> FormatEvent<S, N> for Tagged<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Ok(scope) = CURRENT.try_with(Scope::clone) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&tag(&line, &scope, self.layout))
    }
}

/// `line` with the request added: before the newline (text) or the closing brace (JSON).
fn tag(line: &str, scope: &Scope, layout: Layout) -> String {
    let request_id = scope.request_id.to_str().unwrap_or("");
    let caller = scope.caller.label();
    let body = line.strip_suffix('\n').unwrap_or(line);
    let mut out = String::with_capacity(line.len() + 64);
    match layout {
        Layout::Json => match body.strip_suffix('}') {
            Some(object) => {
                out.push_str(object);
                if !object.trim_end().ends_with('{') {
                    out.push(',');
                }
                let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
                let _ = write!(
                    out,
                    "\"request_id\":{},\"caller\":{}}}",
                    quote(request_id),
                    quote(&caller)
                );
            }
            None => out.push_str(body),
        },
        Layout::Text => {
            let _ = write!(out, "{body} request_id={request_id} caller={caller:?}");
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            request_id: HeaderValue::from_static("req-1"),
            caller: Principal::Master,
        }
    }

    #[test]
    fn json_lines_get_two_more_fields_and_stay_json() {
        let line = "{\"level\":\"WARN\",\"message\":\"all attempts failed\"}\n";
        let tagged = tag(line, &scope(), Layout::Json);
        let value: serde_json::Value = serde_json::from_str(&tagged).unwrap();
        assert_eq!(value["request_id"], "req-1");
        assert_eq!(value["caller"], "master_key");
        assert_eq!(value["message"], "all attempts failed");
        assert!(tagged.ends_with("}\n"));
        let empty = tag("{}\n", &scope(), Layout::Json);
        assert!(
            serde_json::from_str::<serde_json::Value>(&empty).is_ok(),
            "{empty}"
        );
    }

    #[test]
    fn text_lines_end_with_the_request() {
        let tagged = tag("WARN all attempts failed\n", &scope(), Layout::Text);
        assert_eq!(
            tagged,
            "WARN all attempts failed request_id=req-1 caller=\"master_key\"\n"
        );
    }

    #[test]
    fn a_line_that_is_not_an_object_is_left_alone() {
        assert_eq!(tag("garbage", &scope(), Layout::Json), "garbage\n");
    }
}
