//! The built-in dashboard at `/ui`: three static files compiled into the binary (plain HTML,
//! JS and CSS; no build step, nothing fetched from elsewhere) and the one JSON API of its own,
//! `GET /ui/api/traffic`. Everything else it shows comes from the gateway's public JSON APIs
//! (`/health`, `/global/spend/report`, `/key/list`, `/team/list`), called with the key the
//! operator typed into its login form, so whatever it shows can also be scripted.
//!
//! The static files need no key (they hold no data); every API they call does. See
//! docs/dashboard.md.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;

use crate::api::error::ApiError;
use crate::auth::Role;
use crate::pipeline::Caller;
use crate::state::AppState;
use crate::telemetry::timeseries::{TrafficReport, Window};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// The page may load only its own files and call only this origin: no inline script, no
/// third-party anything, and it may not be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
        .route("/ui/api/traffic", get(traffic))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /ui/api/traffic?window=1h|1d`: requests, errors, error rate, requests per second and
/// p50/p95/p99 latency per model group and per deployment of this instance, with one point per
/// minute (`1h`) or per five minutes (`1d`). Master key, `proxy_admin` and
/// `proxy_admin_viewer` only.
async fn traffic(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TrafficReport>, ApiError> {
    if caller.principal.role() < Role::Viewer {
        return Err(ApiError::Forbidden(
            "only the master key, proxy_admin or proxy_admin_viewer users may read the dashboard's traffic".into(),
        ));
    }
    let window = match query.get("window").map(String::as_str) {
        None | Some("") => Window::Hour,
        Some(text) => Window::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                format!("`window` must be 1h or 1d, got `{text}`"),
                Some("window"),
            )
        })?,
    };
    let now_ms = crate::auth::cache::now_ms().max(0) as u64;
    Ok(Json(state.traffic.report(window, now_ms)))
}
