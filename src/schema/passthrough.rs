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
    pub fn usage(&self) -> Option<Usage> {
        let usage = self.extra.get("usage")?;
        Usage::deserialize(usage).ok()
    }
}
