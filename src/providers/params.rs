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

use serde_json::Value;

use super::ProviderError;

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
