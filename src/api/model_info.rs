//! `GET /model/info` (`/v1/model/info`) and `GET /model_group/info`: what the gateway serves,
//! in LiteLLM's shapes, so LiteLLM's tooling (its UI, `litellm-proxy` CLI, scripts) can list it.
//!
//! `litellm_params` is built from the typed deployment config field by field, never copied from
//! the file: a key (`api_key`, `aws_*`, `vertex_credentials`, extra headers) has no way in, where
//! LiteLLM strips a known list from the raw dict. A virtual key sees only the model groups it may
//! use (the same rule as a request: `policy/access.rs`); the master key sees all.

use std::collections::BTreeSet;

use axum::extract::Query;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::DeploymentConfig;
use crate::pipeline::Caller;

/// Prices are held in pico-dollars per token; LiteLLM shows dollars.
fn usd(pico: u64) -> f64 {
    pico as f64 / 1e12
}

#[derive(Debug, Default, Deserialize)]
pub struct InfoQuery {
    /// Only the deployment with this id (`model_info.id`).
    litellm_model_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct GroupQuery {
    /// Only this model group.
    model_group: Option<String>,
}

fn may_use(caller: &Caller, group: &str) -> bool {
    crate::policy::access::check(&caller.principal, None, &caller.config.router, group).is_ok()
}

/// One deployment as LiteLLM's `/model/info` shows it.
fn deployment_info(deployment: &DeploymentConfig) -> Value {
    let mut params = Map::new();
    params.insert(
        "model".into(),
        json!(format!(
            "{}/{}",
            deployment.provider, deployment.upstream_model
        )),
    );
    let mut put = |name: &str, value: Value| {
        if !value.is_null() {
            params.insert(name.into(), value);
        }
    };
    put(
        "api_base",
        json!(deployment.api_base.as_deref().map(public_base)),
    );
    put("api_version", json!(deployment.api_version));
    put(
        "timeout",
        json!(deployment.timeout.map(|t| t.as_secs_f64())),
    );
    put(
        "stream_timeout",
        json!(deployment.stream_timeout.map(|t| t.as_secs_f64())),
    );
    put("max_retries", json!(deployment.max_retries));
    put("rpm", json!(deployment.rpm));
    put("tpm", json!(deployment.tpm));
    put("weight", json!(deployment.weight));
    put("order", json!(deployment.order));
    put("region_name", json!(deployment.region));
    // Where a Vertex deployment runs; its credentials are never shown.
    put("vertex_project", json!(deployment.vertex.project));
    put("vertex_location", json!(deployment.vertex.location));
    put("mock_response", json!(deployment.mock_response));
    let price = deployment.price.as_deref();
    let info = &deployment.info;
    let max_tokens = info
        .max_tokens
        .or_else(|| price.and_then(|p| p.max_output_tokens));
    let max_input_tokens = info
        .max_input_tokens
        .or_else(|| price.and_then(|p| p.max_input_tokens));
    json!({
        "model_name": deployment.model_name,
        "litellm_params": params,
        "model_info": {
            "id": deployment.id,
            "db_model": false,
            "key": deployment.price_entry
                .clone()
                .unwrap_or_else(|| deployment.upstream_model.clone()),
            "litellm_provider": deployment.provider,
            "mode": info.mode.as_deref().unwrap_or("chat"),
            "max_tokens": max_tokens,
            "max_input_tokens": max_input_tokens,
            "max_output_tokens": max_tokens,
            "input_cost_per_token": price.map(|p| usd(p.input_per_token)),
            "output_cost_per_token": price.map(|p| usd(p.output_per_token)),
            "cache_read_input_token_cost": price.and_then(|p| p.cache_read_per_token).map(usd),
            "cache_creation_input_token_cost":
                price.and_then(|p| p.cache_creation_per_token).map(usd),
            "access_groups": info.access_groups,
        },
    })
}

/// An `api_base` without anything that could be a credential: user info and the query string
/// (some servers take `?key=` or a signature there) are cut.
fn public_base(base: &str) -> String {
    let base = base.split(['?', '#']).next().unwrap_or(base);
    match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => format!("{scheme}://{host}"),
            _ => base.to_owned(),
        },
        None => base.to_owned(),
    }
}

/// `GET /model/info`, `/v1/model/info`: every deployment the caller may use.
pub async fn model_info(caller: Caller, Query(query): Query<InfoQuery>) -> Json<Value> {
    let data: Vec<Value> = caller
        .config
        .config
        .deployments
        .iter()
        .filter(|d| {
            query
                .litellm_model_id
                .as_deref()
                .is_none_or(|id| d.id == id)
        })
        .filter(|d| may_use(&caller, &d.model_name))
        .map(deployment_info)
        .collect();
    Json(json!({ "data": data }))
}

/// `GET /model_group/info`: one entry per model group the caller may use, its deployments'
/// facts merged as LiteLLM merges them (the largest limits, the highest prices, every provider).
pub async fn model_group_info(caller: Caller, Query(query): Query<GroupQuery>) -> Json<Value> {
    let mut groups: Vec<&str> = Vec::new();
    for deployment in &caller.config.config.deployments {
        let name = deployment.model_name.as_str();
        if !groups.contains(&name) {
            groups.push(name);
        }
    }
    let data: Vec<Value> = groups
        .into_iter()
        .filter(|g| query.model_group.as_deref().is_none_or(|want| want == *g))
        .filter(|g| may_use(&caller, g))
        .map(|group| {
            let members: Vec<&DeploymentConfig> = caller
                .config
                .config
                .deployments
                .iter()
                .filter(|d| d.model_name == group)
                .collect();
            group_info(group, &members)
        })
        .collect();
    Json(json!({ "data": data }))
}

fn group_info(group: &str, members: &[&DeploymentConfig]) -> Value {
    let providers: BTreeSet<&str> = members.iter().map(|d| d.provider.as_str()).collect();
    let max =
        |f: &dyn Fn(&DeploymentConfig) -> Option<u64>| members.iter().filter_map(|d| f(d)).max();
    let max_input = max(&|d| {
        d.info
            .max_input_tokens
            .or_else(|| d.price.as_ref().and_then(|p| p.max_input_tokens))
    });
    let max_output = max(&|d| {
        d.info
            .max_tokens
            .or_else(|| d.price.as_ref().and_then(|p| p.max_output_tokens))
    });
    let input_cost = max(&|d| d.price.as_ref().map(|p| p.input_per_token)).map(usd);
    let output_cost = max(&|d| d.price.as_ref().map(|p| p.output_per_token)).map(usd);
    let sum = |f: &dyn Fn(&DeploymentConfig) -> Option<u64>| -> Option<u64> {
        let values: Vec<u64> = members.iter().filter_map(|d| f(d)).collect();
        (!values.is_empty()).then(|| values.iter().sum())
    };
    let mode = members
        .iter()
        .find_map(|d| d.info.mode.clone())
        .unwrap_or_else(|| "chat".to_owned());
    let chat = mode == "chat";
    json!({
        "model_group": group,
        "providers": providers,
        "max_input_tokens": max_input,
        "max_output_tokens": max_output,
        "input_cost_per_token": input_cost,
        "output_cost_per_token": output_cost,
        "mode": mode,
        "tpm": sum(&|d| d.tpm),
        "rpm": sum(&|d| d.rpm),
        // What the gateway itself carries for a chat group on every provider it translates to:
        // tools (parallel too, where the provider has them). Vision and the rest depend on the
        // model, which the price table does not record, so they say false as LiteLLM's default.
        "supports_function_calling": chat,
        "supports_parallel_function_calling": chat,
        "supports_vision": false,
        "supports_web_search": false,
        "supports_reasoning": false,
        "supported_openai_params": if chat { supported_chat_params() } else { Vec::new() },
    })
}

fn supported_chat_params() -> Vec<&'static str> {
    vec![
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "presence_penalty",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_loses_its_credentials() {
        assert_eq!(
            public_base("https://user:pw@example.com/v1?key=abc"),
            "https://example.com/v1"
        );
        assert_eq!(public_base("http://h:1/v1"), "http://h:1/v1");
        assert_eq!(public_base("h/v1#frag"), "h/v1");
    }

    #[test]
    fn no_secret_reaches_the_deployment_info() {
        let loaded = crate::config::parse(
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: sk-secret-1\n      api_base: http://u:sk-secret-2@h/v1\n      extra_headers: {x-token: sk-secret-3}\n      aws_secret_access_key: sk-secret-4\n      vertex_credentials: sk-secret-5\n",
            &|_| None,
        )
        .unwrap();
        let info = deployment_info(&loaded.config.deployments[0]);
        let text = info.to_string();
        assert!(!text.contains("sk-secret"), "{text}");
        assert_eq!(info["litellm_params"]["model"], "openai/gpt-4o");
        assert_eq!(info["litellm_params"]["api_base"], "http://h/v1");
        assert_eq!(info["model_info"]["mode"], "chat");
    }
}
