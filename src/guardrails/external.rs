//! Guardrails that are someone else's service, called over HTTP before the request goes
//! upstream: LiteLLM's `generic_guardrail_api` (a webhook that allows, blocks or rewrites the
//! prompt's texts) and a Presidio analyzer/anonymizer pair (`guardrail: presidio` with
//! `presidio_analyzer_api_base`). Both are pre-call only.
//!
//! The answer of such a service is outside input: it is read with a size cap and a deadline, and
//! anything but the documented shapes is a failure of the service, handled by the guardrail's
//! fail mode (closed by default: see [`FailMode`]).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::providers::http::HttpClient;

/// The default bound on one call to the service (LiteLLM's generic API waits 30 s; a guardrail
/// sits in front of every request, so it gets less).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a service may answer: a rewrite gives back every text of the prompt, and a prompt
/// is at most the request body limit's size.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The most results an analyzer may return for one text.
const MAX_ANALYZER_RESULTS: usize = 10_000;

/// What happens when the service cannot give a verdict (unreachable, too slow, an error status,
/// an answer that is not the documented shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// The request is refused (503): a guardrail that can be switched off by making its service
    /// slow is no guardrail. LiteLLM's default (`unreachable_fallback: fail_closed`).
    Closed,
    /// The request goes on unchecked, with a warning and a counted `error_passed` decision.
    Open,
}

/// Which service, and how to call it.
#[derive(Debug)]
pub enum Service {
    /// POST `{api_base}/beta/litellm_basic_guardrail_api`.
    Generic {
        url: String,
        headers: hyper::HeaderMap,
        additional_params: Option<Value>,
    },
    /// POST `{analyzer}analyze`, then `{anonymizer}anonymize` for texts with findings.
    Presidio {
        analyzer: String,
        anonymizer: String,
        language: String,
        /// Entity type → `BLOCK` (true) or anonymize (false); empty: every entity, anonymized.
        entities: BTreeMap<String, bool>,
    },
}

#[derive(Debug)]
pub struct External {
    pub service: Service,
    pub timeout: Duration,
    pub fail_mode: FailMode,
}

/// What the service said.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Allow,
    /// Refused, with the service's reason.
    Block(String),
    /// Presidio found an entity type configured `BLOCK`.
    BlockEntity(String),
    /// The texts, rewritten (as many as were sent, in the same order).
    Rewrite(Vec<String>),
}

/// The service gave no usable verdict. Says what failed, never a URL (it may carry a token) or
/// a text of the prompt.
#[derive(Debug, PartialEq)]
pub struct Failure(pub String);

impl External {
    /// Asks the service about `texts` (the prompt's texts, in the order the request holds them),
    /// all within the guardrail's timeout (Presidio makes up to two calls per text: the bound is
    /// on the whole, not per call).
    pub async fn check(
        &self,
        http: &HttpClient,
        texts: &[String],
        model: &str,
    ) -> Result<Verdict, Failure> {
        tokio::time::timeout(self.timeout, self.ask(http, texts, model))
            .await
            .unwrap_or_else(|_| Err(Failure(format!("no verdict within {:?}", self.timeout))))
    }

    async fn ask(
        &self,
        http: &HttpClient,
        texts: &[String],
        model: &str,
    ) -> Result<Verdict, Failure> {
        match &self.service {
            Service::Generic {
                url,
                headers,
                additional_params,
            } => {
                let mut body = json!({
                    "texts": texts,
                    "input_type": "request",
                    "model": model,
                    "request_data": {},
                });
                if let Some(params) = additional_params {
                    body["additional_provider_specific_params"] = params.clone();
                }
                let answer = self.post(http, url, headers.clone(), &body).await?;
                generic_verdict(&answer, texts.len())
            }
            Service::Presidio {
                analyzer,
                anonymizer,
                language,
                entities,
            } => {
                let mut rewritten = Vec::with_capacity(texts.len());
                let mut changed = false;
                for text in texts {
                    let mut request = json!({"text": text, "language": language});
                    if !entities.is_empty() {
                        request["entities"] = entities.keys().cloned().collect();
                    }
                    let url = format!("{analyzer}analyze");
                    let answer = self.post(http, &url, json_headers(), &request).await?;
                    let results = analyzer_results(&answer)?;
                    if let Some(blocked) = results.iter().find_map(|r| {
                        entities
                            .get(&r.entity_type)
                            .copied()
                            .unwrap_or(false)
                            .then(|| r.entity_type.clone())
                    }) {
                        return Ok(Verdict::BlockEntity(blocked));
                    }
                    if results.is_empty() {
                        rewritten.push(text.clone());
                        continue;
                    }
                    let request = json!({"text": text, "analyzer_results": answer});
                    let url = format!("{anonymizer}anonymize");
                    let answer = self.post(http, &url, json_headers(), &request).await?;
                    rewritten.push(anonymized_text(&answer)?);
                    changed = true;
                }
                Ok(if changed {
                    Verdict::Rewrite(rewritten)
                } else {
                    Verdict::Allow
                })
            }
        }
    }

    async fn post(
        &self,
        http: &HttpClient,
        url: &str,
        headers: hyper::HeaderMap,
        body: &Value,
    ) -> Result<Value, Failure> {
        let body = Bytes::from(serde_json::to_vec(body).map_err(|e| Failure(e.to_string()))?);
        let (status, answer) = http
            .post_limited(url, headers, body, self.timeout, MAX_ANSWER_BYTES)
            .await
            .map_err(Failure)?;
        if !(200..300).contains(&status) {
            return Err(Failure(format!("the service answered status {status}")));
        }
        serde_json::from_slice(&answer)
            .map_err(|e| Failure(format!("the service's answer is not JSON: {e}")))
    }
}

pub fn json_headers() -> hyper::HeaderMap {
    let mut headers = hyper::HeaderMap::new();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::ACCEPT,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers
}

/// LiteLLM's `GenericGuardrailAPIResponse`: `action` `NONE`, `BLOCKED` (with `blocked_reason`)
/// or `GUARDRAIL_INTERVENED` (with the rewritten `texts`).
fn generic_verdict(answer: &Value, sent: usize) -> Result<Verdict, Failure> {
    #[derive(Deserialize)]
    struct Answer {
        action: String,
        #[serde(default)]
        blocked_reason: Option<String>,
        #[serde(default)]
        texts: Option<Vec<String>>,
    }
    let answer: Answer = serde_json::from_value(answer.clone()).map_err(|e| {
        Failure(format!(
            "the service's answer is not a guardrail verdict: {e}"
        ))
    })?;
    match answer.action.as_str() {
        "NONE" => Ok(Verdict::Allow),
        "BLOCKED" => Ok(Verdict::Block(
            answer
                .blocked_reason
                .filter(|r| !r.trim().is_empty())
                .map(|r| r.chars().take(500).collect())
                .unwrap_or_else(|| "Content violates policy".to_owned()),
        )),
        "GUARDRAIL_INTERVENED" => match answer.texts {
            // Intervened without texts: LiteLLM keeps the texts as they were.
            None => Ok(Verdict::Allow),
            Some(texts) if texts.len() == sent => Ok(Verdict::Rewrite(texts)),
            Some(texts) => Err(Failure(format!(
                "the service rewrote {} texts of {sent}",
                texts.len()
            ))),
        },
        other => Err(Failure(format!(
            "the service's action `{}` is not NONE, BLOCKED or GUARDRAIL_INTERVENED",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct AnalyzerResult {
    entity_type: String,
}

/// Presidio's `/analyze` answer: a list of `{entity_type, start, end, score}`.
fn analyzer_results(answer: &Value) -> Result<Vec<AnalyzerResult>, Failure> {
    let results: Vec<AnalyzerResult> = serde_json::from_value(answer.clone())
        .map_err(|e| Failure(format!("the analyzer's answer is not a result list: {e}")))?;
    if results.len() > MAX_ANALYZER_RESULTS {
        return Err(Failure(format!(
            "the analyzer returned {} results",
            results.len()
        )));
    }
    Ok(results)
}

/// Presidio's `/anonymize` answer: `{text, items}`.
fn anonymized_text(answer: &Value) -> Result<String, Failure> {
    answer
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Failure("the anonymizer's answer has no `text`".to_owned()))
}

/// `http://host:port` (or a bare `host:port`, as LiteLLM accepts) → the base with one trailing
/// slash.
pub fn presidio_base(value: &str) -> String {
    let mut base = value.trim().to_owned();
    if !base.starts_with("http://") && !base.starts_with("https://") {
        base.insert_str(0, "http://");
    }
    if !base.ends_with('/') {
        base.push('/');
    }
    base
}

/// LiteLLM appends the endpoint path unless it is there.
pub fn generic_url(api_base: &str) -> String {
    const PATH: &str = "/beta/litellm_basic_guardrail_api";
    let base = api_base.trim();
    if base.ends_with(PATH) {
        base.to_owned()
    } else {
        format!("{}{PATH}", base.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_verdicts_and_hostile_answers() {
        assert_eq!(
            generic_verdict(&json!({"action": "NONE"}), 2),
            Ok(Verdict::Allow)
        );
        assert_eq!(
            generic_verdict(&json!({"action": "BLOCKED", "blocked_reason": "no"}), 2),
            Ok(Verdict::Block("no".into()))
        );
        assert_eq!(
            generic_verdict(&json!({"action": "BLOCKED"}), 2),
            Ok(Verdict::Block("Content violates policy".into()))
        );
        assert_eq!(
            generic_verdict(
                &json!({"action": "GUARDRAIL_INTERVENED", "texts": ["a", "b"]}),
                2
            ),
            Ok(Verdict::Rewrite(vec!["a".into(), "b".into()]))
        );
        // Hostile: a wrong count, a wrong type, an unknown action, not an object.
        assert!(generic_verdict(
            &json!({"action": "GUARDRAIL_INTERVENED", "texts": ["a"]}),
            2
        )
        .is_err());
        assert!(
            generic_verdict(&json!({"action": "GUARDRAIL_INTERVENED", "texts": [1]}), 1).is_err()
        );
        assert!(generic_verdict(&json!({"action": "ALLOW"}), 1).is_err());
        assert!(generic_verdict(&json!([1, 2]), 1).is_err());
        assert!(generic_verdict(&json!({"action": null}), 1).is_err());
        let long = "x".repeat(10_000);
        let Ok(Verdict::Block(reason)) =
            generic_verdict(&json!({"action": "BLOCKED", "blocked_reason": long}), 1)
        else {
            panic!()
        };
        assert_eq!(reason.len(), 500);
    }

    #[test]
    fn presidio_answers_and_hostile_ones() {
        let ok = json!([{"entity_type": "PERSON", "start": 0, "end": 4, "score": 0.9}]);
        assert_eq!(analyzer_results(&ok).unwrap()[0].entity_type, "PERSON");
        assert!(analyzer_results(&json!({"error": "x"})).is_err());
        assert!(analyzer_results(&json!([{"start": 1}])).is_err());
        assert_eq!(
            anonymized_text(&json!({"text": "<PERSON>", "items": []})).unwrap(),
            "<PERSON>"
        );
        assert!(anonymized_text(&json!({"text": 3})).is_err());
        assert!(anonymized_text(&json!("plain")).is_err());
    }

    #[test]
    fn urls_as_litellm_builds_them() {
        assert_eq!(
            generic_url("http://g:8080/"),
            "http://g:8080/beta/litellm_basic_guardrail_api"
        );
        assert_eq!(
            generic_url("http://g/beta/litellm_basic_guardrail_api"),
            "http://g/beta/litellm_basic_guardrail_api"
        );
        assert_eq!(presidio_base("analyzer:3000"), "http://analyzer:3000/");
        assert_eq!(presidio_base("https://a/"), "https://a/");
    }
}
