//! `POST /spend/calculate`: what a request would cost (`{model, messages}`, an estimate of the
//! prompt) or did cost (`{completion_response}`, from its usage), as LiteLLM's route answers:
//! `{"cost": <dollars>}`. (The spend reports are in `spend.rs`; this one is pure pricing.)

use axum::body::Body;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::read_json;
use super::error::ApiError;
use crate::money::cost::{nanos, Tokens};
use crate::money::prices::Price;
use crate::pipeline::Caller;
use crate::schema::{ChatCompletion, Message};
use crate::state::Snapshot;

#[derive(Deserialize)]
pub struct CalculateRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    completion_response: Option<ChatCompletion>,
}

pub async fn calculate(
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: CalculateRequest =
        read_json(&headers, body, caller.config.max_request_bytes).await?;
    let (model, tokens) = match request {
        CalculateRequest {
            model: Some(model),
            messages,
            ..
        } => {
            let Some(messages) = messages else {
                return Err(ApiError::bad_request(
                    "`messages` must be provided with `model`",
                    Some("messages"),
                ));
            };
            // LiteLLM prices the prompt alone here (no completion yet).
            let prompt = crate::providers::mock::estimate_prompt_tokens(&messages);
            let tokens = Tokens {
                prompt,
                ..Tokens::default()
            };
            (model, tokens)
        }
        CalculateRequest {
            completion_response: Some(completion),
            ..
        } => {
            let Some(usage) = &completion.usage else {
                return Err(ApiError::bad_request(
                    "`completion_response` has no `usage` to price",
                    Some("completion_response"),
                ));
            };
            (completion.model.clone(), Tokens::from_usage(usage))
        }
        _ => {
            return Err(ApiError::bad_request(
                "either `model` (with `messages`) or `completion_response` must be provided",
                None,
            ))
        }
    };
    let price = price_of(&caller.config, &model)?;
    Ok(Json(json!({"cost": nanos(&price, &tokens).as_usd()})))
}

/// A model group's price (its first priced deployment's), else the price table's entry for
/// the name.
fn price_of(config: &Snapshot, model: &str) -> Result<Price, ApiError> {
    if model.is_empty() {
        return Err(ApiError::bad_request(
            "`model` must not be empty",
            Some("model"),
        ));
    }
    if let Ok(group) = config.router.group(model) {
        return group
            .deployments
            .iter()
            .find_map(|d| d.price.as_deref().cloned())
            .ok_or_else(|| {
                ApiError::bad_request(
                    format!(
                        "model group `{model}` has no price: set input_cost_per_token and \
                         output_cost_per_token (or base_model) on its deployments"
                    ),
                    Some("model"),
                )
            });
    }
    match config.config.prices.lookup_name(model) {
        Some((_, entry)) => Ok(Price::clone(&entry.price)),
        None => Err(ApiError::bad_request(
            format!(
                "model `{model}` is neither a model group of this gateway nor in its price table"
            ),
            Some("model"),
        )),
    }
}
