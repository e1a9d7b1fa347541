//! Health and metrics endpoints (unauthenticated, as in LiteLLM, so probes need no key).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// Liveness: the process answers.
pub async fn liveliness() -> Json<&'static str> {
    Json("I'm alive!")
}

/// Readiness: the gateway can serve. It has no database yet, so it is ready once it listens.
pub async fn readiness(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "healthy",
        "db": "Not connected",
        "cache": null,
        "model_groups": state.router.model_names().len(),
        "switchyard_version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
