//! `GET /v1/models` and `GET /v1/models/{model}`: the model groups (aliases) this gateway serves.

use axum::extract::Path;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::pipeline::Caller;

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_677_610_602, "owned_by": "switchyard"})
}

pub async fn list(caller: Caller) -> Json<Value> {
    let data: Vec<Value> = caller
        .config
        .router
        .model_names()
        .iter()
        .map(|name| model_object(name))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn retrieve(caller: Caller, Path(model): Path<String>) -> Result<Json<Value>, ApiError> {
    // Aliases may contain `/` (e.g. `meta-llama/Llama-3-8B`), hence the wildcard route.
    if !caller.config.router.serves(&model) {
        return Err(ApiError::Route(crate::router::RouteError::UnknownModel(
            model,
        )));
    }
    Ok(Json(model_object(&model)))
}
