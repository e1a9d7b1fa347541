//! Calling a model group: pick a deployment, call it (in-process mock or HTTP through its
//! provider), retry retryable failures with backoff on another deployment when there is one, and
//! present the answer under the alias the client asked for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use super::{retry, Backend, Deployment, ModelGroup, RouteError, Router};
use crate::providers::http::{decode_chat, ChunkStream, HttpClient};
use crate::providers::{mock, PassthroughEndpoint, ProviderError};
use crate::schema::{ChatCompletion, ChatRequest, Extra, PassthroughRequest, PassthroughResponse};

/// An answer and who gave it.
pub struct Served<T> {
    pub value: T,
    pub deployment: Arc<Deployment>,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// Events of a streamed `/v1/completions` answer, model already rewritten to the alias.
pub type PassthroughStream =
    Pin<Box<dyn Stream<Item = Result<PassthroughResponse, ProviderError>> + Send>>;

impl Router {
    pub async fn chat(
        &self,
        http: &HttpClient,
        request: &ChatRequest,
    ) -> Result<Served<ChatCompletion>, RouteError> {
        let group = self.group(&request.model)?;
        let mut served = self
            .with_retries(group, |deployment| async move {
                match &deployment.backend {
                    Backend::Mock(reply) => Ok(mock::chat(request, reply)),
                    Backend::Http(provider) => {
                        let upstream_request =
                            provider.chat_request(&deployment.upstream, request)?;
                        let body = http
                            .send(
                                provider.as_ref(),
                                &deployment.upstream,
                                upstream_request,
                                deployment.timeout,
                            )
                            .await?;
                        provider.chat_response(&body)
                    }
                }
            })
            .await?;
        served.value.model.clone_from(&group.name);
        Ok(served)
    }

    /// Opens a chat stream. Failures before the stream opened are retried like any request; once
    /// it is open, chunks flow straight through and a failure ends it.
    pub async fn chat_stream(
        &self,
        http: &HttpClient,
        request: &ChatRequest,
    ) -> Result<Served<ChunkStream>, RouteError> {
        let group = self.group(&request.model)?;
        let served = self
            .with_retries(group, |deployment| async move {
                match &deployment.backend {
                    Backend::Mock(reply) => {
                        let chunks = mock::chat_chunks(request, reply);
                        Ok(
                            Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
                                as ChunkStream,
                        )
                    }
                    Backend::Http(provider) => {
                        let upstream_request =
                            provider.chat_request(&deployment.upstream, request)?;
                        let events = http
                            .open_stream(
                                provider.as_ref(),
                                &deployment.upstream,
                                upstream_request,
                                deployment.stream_timeout,
                                deployment.timeout,
                            )
                            .await?;
                        Ok(decode_chat(events, provider.chat_stream_decoder()))
                    }
                }
            })
            .await?;
        let alias = group.name.clone();
        Ok(Served {
            value: Box::pin(served.value.map(move |item| {
                item.map(|mut chunk| {
                    chunk.model.clone_from(&alias);
                    chunk
                })
            })),
            deployment: served.deployment,
            attempts: served.attempts,
        })
    }

    pub async fn passthrough(
        &self,
        http: &HttpClient,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<Served<PassthroughResponse>, RouteError> {
        let group = self.group(&request.model)?;
        let mut served = self
            .with_retries(group, |deployment| async move {
                match &deployment.backend {
                    Backend::Mock(reply) => Ok(mock_passthrough(endpoint, request, reply)),
                    Backend::Http(provider) => {
                        let upstream_request = provider.passthrough_request(
                            &deployment.upstream,
                            endpoint,
                            request,
                        )?;
                        let body = http
                            .send(
                                provider.as_ref(),
                                &deployment.upstream,
                                upstream_request,
                                deployment.timeout,
                            )
                            .await?;
                        serde_json::from_slice::<PassthroughResponse>(&body).map_err(|err| {
                            ProviderError::InvalidResponse(format!(
                                "{} response: {err}",
                                endpoint.path()
                            ))
                        })
                    }
                }
            })
            .await?;
        served.value.model = Some(group.name.clone());
        Ok(served)
    }

    /// Streams `/v1/completions`: each event's JSON passes through with `model` rewritten.
    pub async fn passthrough_stream(
        &self,
        http: &HttpClient,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
    ) -> Result<Served<PassthroughStream>, RouteError> {
        let group = self.group(&request.model)?;
        let served = self
            .with_retries(group, |deployment| async move {
                match &deployment.backend {
                    Backend::Mock(reply) => {
                        let whole = mock_passthrough(endpoint, request, reply);
                        Ok(Box::pin(futures_util::stream::iter([Ok(whole)])) as PassthroughStream)
                    }
                    Backend::Http(provider) => {
                        let upstream_request = provider.passthrough_request(
                            &deployment.upstream,
                            endpoint,
                            request,
                        )?;
                        let events = http
                            .open_stream(
                                provider.as_ref(),
                                &deployment.upstream,
                                upstream_request,
                                deployment.stream_timeout,
                                deployment.timeout,
                            )
                            .await?;
                        let parsed = events
                            .take_while(|event| {
                                let done = matches!(event, Ok(e) if e.data.trim() == "[DONE]");
                                std::future::ready(!done)
                            })
                            .map(|event| {
                                let event = event?;
                                serde_json::from_str::<PassthroughResponse>(&event.data).map_err(
                                    |err| {
                                        ProviderError::InvalidResponse(format!(
                                            "stream event: {err}"
                                        ))
                                    },
                                )
                            });
                        Ok(Box::pin(parsed) as PassthroughStream)
                    }
                }
            })
            .await?;
        let alias = group.name.clone();
        Ok(Served {
            value: Box::pin(served.value.map(move |item| {
                item.map(|mut event| {
                    event.model = Some(alias.clone());
                    event
                })
            })),
            deployment: served.deployment,
            attempts: served.attempts,
        })
    }

    /// Runs `call` against the group's deployments with the router's retry policy, for callers
    /// that need their own per-deployment operation (e.g. forwarding a provider-native request).
    pub async fn execute<'a, T, F, Fut>(&'a self, model: &str, call: F) -> Result<Served<T>, RouteError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        let group = self.group(model)?;
        self.with_retries(group, call).await
    }

    /// The attempt loop. The number of attempts is `1 + max_retries` of the deployment picked
    /// first (or `num_retries` from the router settings); a non-retryable failure ends it at once.
    async fn with_retries<'a, T, F, Fut>(
        &self,
        group: &'a ModelGroup,
        mut call: F,
    ) -> Result<Served<T>, RouteError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        let mut avoid: Option<String> = None;
        let mut max_attempts = None;
        let mut attempt = 0u32;
        loop {
            let deployment = group.pick(avoid.as_deref()).clone();
            let max_attempts = *max_attempts
                .get_or_insert_with(|| 1 + deployment.max_retries.unwrap_or(self.num_retries));
            attempt += 1;
            match call(deployment.clone()).await {
                Ok(value) => {
                    return Ok(Served {
                        value,
                        deployment,
                        attempts: attempt,
                    })
                }
                Err(error) => {
                    tracing::warn!(
                        model_group = %group.name,
                        deployment = %deployment.id,
                        attempt,
                        error_class = error.class(),
                        "upstream call failed: {error}"
                    );
                    if !error.is_retryable() || attempt >= max_attempts {
                        return Err(RouteError::upstream(
                            &group.name,
                            attempt,
                            &deployment.id,
                            error,
                        ));
                    }
                    tokio::time::sleep(retry::backoff(attempt - 1, error.retry_after())).await;
                    avoid = Some(deployment.id.clone());
                }
            }
        }
    }
}

/// What a `mock_response` deployment answers on `/v1/completions` and `/v1/embeddings`.
fn mock_passthrough(
    endpoint: PassthroughEndpoint,
    request: &PassthroughRequest,
    reply: &str,
) -> PassthroughResponse {
    let body = match endpoint {
        PassthroughEndpoint::Completions => {
            let prompt_len = request
                .extra
                .get("prompt")
                .map_or(0, |p| p.to_string().len()) as u64;
            let prompt_tokens = prompt_len.div_ceil(4).max(1);
            let completion_tokens = mock::estimate_text_tokens(reply);
            json!({
                "id": format!("cmpl-mock-{:016x}", fastrand::u64(..)),
                "object": "text_completion",
                "created": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                "choices": [{"index": 0, "text": reply, "logprobs": null, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens
                }
            })
        }
        PassthroughEndpoint::Embeddings => {
            let inputs: Vec<String> = match request.extra.get("input") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    })
                    .collect(),
                Some(Value::String(text)) => vec![text.clone()],
                Some(other) => vec![other.to_string()],
                None => Vec::new(),
            };
            let tokens: u64 = inputs
                .iter()
                .map(|i| (i.len() as u64).div_ceil(4).max(1))
                .sum();
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(index, input)| json!({"object": "embedding", "index": index, "embedding": mock::embedding(input)}))
                .collect();
            json!({"object": "list", "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        }
    };
    match serde_json::from_value::<PassthroughResponse>(body) {
        Ok(response) => response,
        Err(_) => PassthroughResponse {
            model: None,
            extra: Extra::new(),
        },
    }
}
