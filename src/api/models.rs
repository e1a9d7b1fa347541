//! `GET /v1/models` and `GET /v1/models/{model}`: the model groups (aliases) this gateway serves.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::auth::authenticate;
use crate::state::AppState;

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_677_610_602, "owned_by": "switchyard"})
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authenticate(&headers, state.master_key.as_ref())?;
    let data: Vec<Value> = state
        .router
        .model_names()
        .iter()
        .map(|name| model_object(name))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

pub async fn retrieve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&headers, state.master_key.as_ref())?;
    // Aliases may contain `/` (e.g. `meta-llama/Llama-3-8B`), hence the wildcard route.
    if !state.router.serves(&model) {
        return Err(ApiError::Route(crate::router::RouteError::UnknownModel(
            model,
        )));
    }
    Ok(Json(model_object(&model)))
}
