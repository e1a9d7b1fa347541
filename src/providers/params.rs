//! What a translating provider does with OpenAI request parameters it has no equivalent for.
//!
//! Three kinds, decided per provider:
//!
//! - **mapped**: translated (the provider's own module does that);
//! - **unsupported**: a parameter that changes what the model generates (`seed`, `logit_bias`,
//!   `n > 1` ...). Silently ignoring it would change the answer, so the request fails with a 400
//!   naming it, unless `drop_params` is on (LiteLLM's setting), in which case it is dropped and
//!   named in the `x-switchyard-dropped-params` response header;
//! - **informational**: metadata the provider has no place for (`store`, `service_tier` ...):
//!   always dropped, and named in the header.
//!
//! Parameters sent with their neutral value (`n: 1`, `logprobs: false`, `presence_penalty: 0`)
//! are no-ops and are neither refused nor reported.
//!
//! Two per-deployment lists (LiteLLM's `litellm_params`) apply before any provider translates:
//! `additional_drop_params` are always removed (and named in the header), and
//! `allowed_openai_params` are never refused: they are taken out of the request the provider
//! sees and written into the upstream body as the client sent them ([`DeploymentParams`]). A
//! request may name more in its own `allowed_openai_params` body field (LiteLLM's per-request
//! form): they add to the deployment's, and the field itself is never sent upstream.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{ProviderError, Upstream};
use crate::schema::ChatRequest;

/// The response header that names what translation dropped.
pub const DROPPED_PARAMS_HEADER: &str = "x-switchyard-dropped-params";

/// Parameters OpenAI defines that only describe the request (no effect on the generated text).
pub const INFORMATIONAL: &[&str] = &[
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "prompt_cache_retention",
];

/// Collects what a translation dropped, or refuses the request when dropping is not allowed.
pub struct Dropped {
    provider: &'static str,
    allow: bool,
    names: Vec<String>,
}

impl Dropped {
    pub fn new(provider: &'static str, allow: bool) -> Self {
        Dropped {
            provider,
            allow,
            names: Vec::new(),
        }
    }

    /// A parameter that would change the answer: an error unless dropping is allowed.
    pub fn unsupported(&mut self, name: &str) -> Result<(), ProviderError> {
        if self.allow {
            self.note(name);
            Ok(())
        } else {
            Err(ProviderError::Unsupported(format!(
                "`{name}` is not supported by provider `{}`; remove it, or set `litellm_settings.drop_params: true` to drop such parameters",
                self.provider
            )))
        }
    }

    /// A parameter with no effect on the answer: always dropped, and reported.
    pub fn note(&mut self, name: &str) {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_owned());
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn into_names(self) -> Vec<String> {
        self.names
    }
}

/// The value is the parameter's default: sending it changes nothing.
pub fn is_neutral(name: &str, value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(false) => matches!(name, "logprobs" | "parallel_tool_calls"),
        Value::Number(n) => match name {
            "presence_penalty" | "frequency_penalty" | "top_logprobs" => n.as_f64() == Some(0.0),
            "n" => n.as_u64() == Some(1),
            _ => false,
        },
        Value::Object(map) => map.is_empty() && name == "logit_bias",
        Value::Array(items) => {
            name == "modalities" && items.iter().all(|m| m.as_str() == Some("text"))
        }
        Value::Bool(true) | Value::String(_) => false,
    }
}

/// The request body field that names parameters to send as written, for this request.
pub const REQUEST_ALLOWED: &str = "allowed_openai_params";

/// Fields a deployment's lists can never remove: without them there is no request.
const ESSENTIAL: &[&str] = &["model", "messages"];

/// A chat request with a deployment's `additional_drop_params` and `allowed_openai_params`
/// applied: what the provider translates, what was dropped, and what goes into the body as is.
pub struct DeploymentParams<'a> {
    pub request: Cow<'a, ChatRequest>,
    pub dropped: Vec<String>,
    pub allowed: Vec<(String, Value)>,
}

impl<'a> DeploymentParams<'a> {
    pub fn apply(
        upstream: &Upstream,
        request: &'a ChatRequest,
    ) -> Result<DeploymentParams<'a>, ProviderError> {
        let asked = request.extra.get(REQUEST_ALLOWED);
        if upstream.additional_drop_params.is_empty()
            && upstream.allowed_openai_params.is_empty()
            && asked.is_none()
        {
            return Ok(DeploymentParams {
                request: Cow::Borrowed(request),
                dropped: Vec::new(),
                allowed: Vec::new(),
            });
        }
        let encode_error =
            |err: serde_json::Error| ProviderError::Unsupported(format!("request: {err}"));
        let Value::Object(mut fields) = serde_json::to_value(request).map_err(encode_error)? else {
            return Err(ProviderError::Unsupported("request: not an object".into()));
        };
        let mut dropped = Vec::new();
        for name in &upstream.additional_drop_params {
            if !ESSENTIAL.contains(&name.as_str()) && fields.remove(name).is_some() {
                dropped.push(name.clone());
            }
        }
        // The request's own list (LiteLLM's per-request `allowed_openai_params`) adds to the
        // deployment's; it is the gateway's, never sent upstream.
        let asked = match fields.remove(REQUEST_ALLOWED) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(names)) => names
                .into_iter()
                .map(|name| match name {
                    Value::String(name) => Ok(name),
                    _ => Err(ProviderError::Unsupported(format!(
                        "`{REQUEST_ALLOWED}` must be a list of parameter names"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(ProviderError::Unsupported(format!(
                    "`{REQUEST_ALLOWED}` must be a list of parameter names"
                )))
            }
        };
        let mut allowed = Vec::new();
        for name in upstream.allowed_openai_params.iter().chain(&asked) {
            if ESSENTIAL.contains(&name.as_str()) || allowed.iter().any(|(n, _)| n == name) {
                continue;
            }
            if let Some(value) = fields.remove(name) {
                allowed.push((name.clone(), value));
            }
        }
        let request = serde_json::from_value(Value::Object(fields)).map_err(encode_error)?;
        Ok(DeploymentParams {
            request: Cow::Owned(request),
            dropped,
            allowed,
        })
    }

    /// `body` (a built upstream JSON body) with the allowed parameters added where the
    /// translation did not already set them.
    pub fn complete_body(&self, body: Bytes) -> Result<Bytes, ProviderError> {
        if self.allowed.is_empty() {
            return Ok(body);
        }
        let mut fields: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|err| ProviderError::Unsupported(format!("request body: {err}")))?;
        for (name, value) in &self.allowed {
            fields.entry(name.clone()).or_insert_with(|| value.clone());
        }
        serde_json::to_vec(&fields)
            .map(Bytes::from)
            .map_err(|err| ProviderError::Unsupported(format!("request body: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_unless_allowed_and_reports_once() {
        let mut strict = Dropped::new("anthropic", false);
        let err = strict.unsupported("seed").unwrap_err().to_string();
        assert!(
            err.contains("`seed`") && err.contains("drop_params"),
            "{err}"
        );
        let mut lenient = Dropped::new("anthropic", true);
        lenient.unsupported("seed").unwrap();
        lenient.unsupported("seed").unwrap();
        lenient.note("store");
        assert_eq!(lenient.names(), ["seed", "store"]);
    }

    #[test]
    fn deployment_lists_drop_and_allow() {
        let mut upstream = crate::providers::testing::upstream("m");
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "a", "messages": [], "temperature": 0.5, "logit_bias": {"1": 2},
            "user": "u", "seed": 3
        }))
        .unwrap();
        let plain = DeploymentParams::apply(&upstream, &request).unwrap();
        assert!(matches!(plain.request, Cow::Borrowed(_)));
        upstream.additional_drop_params = vec![
            "temperature".into(),
            "user".into(),
            "messages".into(),
            "absent".into(),
        ];
        upstream.allowed_openai_params = vec!["logit_bias".into()];
        let applied = DeploymentParams::apply(&upstream, &request).unwrap();
        assert_eq!(applied.dropped, ["temperature", "user"]);
        assert!(applied.request.temperature.is_none() && applied.request.user.is_none());
        assert!(!applied.request.extra.contains_key("logit_bias"));
        assert_eq!(applied.request.extra["seed"], 3);
        let body = applied
            .complete_body(Bytes::from_static(br#"{"model":"m","seed":3}"#))
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"model": "m", "seed": 3, "logit_bias": {"1": 2}})
        );
    }

    #[test]
    fn a_request_allows_more_and_its_list_stays_here() {
        let upstream = crate::providers::testing::upstream("m");
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "a", "messages": [], "logit_bias": {"1": 2}, "seed": 3,
            "allowed_openai_params": ["logit_bias", "messages", "absent"]
        }))
        .unwrap();
        let applied = DeploymentParams::apply(&upstream, &request).unwrap();
        assert!(!applied.request.extra.contains_key("allowed_openai_params"));
        assert!(!applied.request.extra.contains_key("logit_bias"));
        assert_eq!(
            applied.allowed,
            [("logit_bias".to_owned(), json!({"1": 2}))]
        );
        for bad in [json!("logit_bias"), json!([1]), json!({"a": 1})] {
            let request: ChatRequest = serde_json::from_value(
                json!({"model": "a", "messages": [], "allowed_openai_params": bad}),
            )
            .unwrap();
            let err = DeploymentParams::apply(&upstream, &request)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("allowed_openai_params"), "{err}");
        }
    }

    #[test]
    fn neutral_values() {
        assert!(is_neutral("n", &json!(1)));
        assert!(!is_neutral("n", &json!(2)));
        assert!(is_neutral("presence_penalty", &json!(0)));
        assert!(is_neutral("presence_penalty", &json!(0.0)));
        assert!(!is_neutral("presence_penalty", &json!(0.5)));
        assert!(is_neutral("logprobs", &json!(false)));
        assert!(is_neutral("logit_bias", &json!({})));
        assert!(is_neutral("modalities", &json!(["text"])));
        assert!(!is_neutral("modalities", &json!(["text", "audio"])));
        assert!(is_neutral("seed", &json!(null)));
        assert!(!is_neutral("seed", &json!(7)));
    }
}
