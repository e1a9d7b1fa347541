//! Routes that change the gateway itself (master key only).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::pipeline::Caller;
use crate::reload::{reload, ReloadError};
use crate::state::AppState;

/// `POST /config/reload`: re-reads the config file and swaps it in (see `reload.rs`). Answers
/// what changed, or a 400 with the message `switchyard check` would print.
pub async fn reload_config(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    if !caller.principal.is_admin() {
        return Err(ApiError::Forbidden(
            "only the master key may reload the config".into(),
        ));
    }
    match reload(&state).await {
        Ok(changes) => Ok(Json(json!({"status": "reloaded", "changes": changes}))),
        Err(err @ ReloadError::NoFile) => Err(ApiError::Reload(err.to_string())),
        Err(ReloadError::Invalid(err)) => Err(ApiError::Reload(err.to_string())),
    }
}
