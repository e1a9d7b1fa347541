//! Endpoints Switchyard forwards nearly verbatim (`/v1/completions`, `/v1/embeddings`): only the
//! model is read (to route) and rewritten (to the deployment's upstream model name).

use serde::{Deserialize, Serialize};

use super::{Extra, Usage};

/// A request body of which the gateway reads `model` and `stream` and keeps everything else.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PassthroughRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A response body of which the gateway rewrites `model` and keeps everything else, `usage`
/// included, exactly as the upstream sent it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PassthroughResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl PassthroughResponse {
    /// The token usage, when the upstream reported one (embeddings report no completion tokens).
    /// Rerank servers (vLLM, Jina) report only `total_tokens`: those are input tokens.
    pub fn usage(&self) -> Option<Usage> {
        let usage = self.extra.get("usage")?;
        let mut usage = Usage::deserialize(usage).ok()?;
        if usage.prompt_tokens == 0 && usage.completion_tokens == 0 {
            usage.prompt_tokens = usage.total_tokens;
        }
        Some(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_embeddings_and_rerank_answers() {
        let answer = |usage: serde_json::Value| PassthroughResponse {
            model: None,
            extra: [("usage".to_owned(), usage)].into_iter().collect(),
        };
        let embeddings = answer(serde_json::json!({"prompt_tokens": 5, "total_tokens": 5}));
        assert_eq!(embeddings.usage().unwrap().prompt_tokens, 5);
        let rerank = answer(serde_json::json!({"total_tokens": 7}));
        let usage = rerank.usage().unwrap();
        assert_eq!((usage.prompt_tokens, usage.total_tokens), (7, 7));
        assert!(answer(serde_json::json!("none")).usage().is_none());
    }
}
