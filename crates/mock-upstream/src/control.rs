//! The control endpoint under `/__mock/`: read and change the config at runtime, read the request
//! log and the counters, reset everything. Control requests are not counted, logged or faulted.

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;

use crate::config::ConfigPatch;
use crate::error::ApiError;
use crate::state::{AppState, StatsView};

/// `GET /__mock/config`.
pub async fn get_config(State(state): State<AppState>) -> Response {
    state.config_response()
}

/// `POST /__mock/config`: merge a partial config; answers with the config now in force.
pub async fn patch_config(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return ApiError::new(rejection.status(), rejection.body_text()).into_response();
        }
    };
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => {
            return ApiError::bad_request(format!("invalid config patch: {e}"), None)
                .into_response()
        }
    };
    if let Err(e) = patch.validate() {
        return ApiError::bad_request(e.message, Some(e.field)).into_response();
    }
    state.apply_patch(&patch);
    state.config_response()
}

/// `GET /__mock/requests`: the request log, oldest first.
pub async fn get_requests(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.log.to_json(),
    )
        .into_response()
}

/// `DELETE /__mock/requests`.
pub async fn clear_requests(State(state): State<AppState>) -> StatusCode {
    state.log.clear();
    StatusCode::NO_CONTENT
}

/// `GET /__mock/stats`.
pub async fn get_stats(State(state): State<AppState>) -> Json<StatsView> {
    Json(state.stats.view())
}

/// `POST /__mock/reset`: start-up config, empty log, zeroed counters; answers with the config.
pub async fn reset(State(state): State<AppState>) -> Response {
    state.reset();
    state.config_response()
}
