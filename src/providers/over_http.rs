//! How a provider reached over HTTP runs each operation of [`Provider`]: build the upstream
//! request with the provider's translation ([`HttpProvider`]), let its credentials sign it,
//! send it through the shared client, and decode the answer. Every provider but the in-process
//! mock is an [`HttpProvider`] and gets these operations from the blanket impl below, so the
//! build → authorize → send → decode sequence exists once.

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;

use super::anthropic::wire::MessagesRequest;
use super::anthropic::{ClientHeaders, MessagesEndpoint};
use super::http::{decode_chat, ChunkStream, EventStream};
use super::responses::wire::ResponsesRequest;
use super::{
    BoxFuture, Call, HealthCheck, HttpProvider, PassthroughEndpoint, PassthroughStream, Provider,
    ProviderError, UpstreamRequest,
};
use crate::providers::anthropic::request::OpenAiDialect;
use crate::providers::params::DeploymentParams;
use crate::schema::{ChatAnswer, ChatRequest, PassthroughRequest, PassthroughResponse};

/// Lets the deployment's credentials sign or stamp a built request (a no-op for static keys,
/// which the provider already put in the headers).
async fn authorize(
    call: &Call<'_>,
    mut request: UpstreamRequest,
) -> Result<UpstreamRequest, ProviderError> {
    if let Some(credentials) = &call.upstream.credentials {
        credentials.authorize(&mut request).await?;
    }
    Ok(request)
}

/// The upstream chat request: the deployment's parameter lists applied, the provider's
/// translation, then the allowed parameters written into the body.
fn chat_request(
    provider: &dyn HttpProvider,
    upstream: &super::Upstream,
    request: &ChatRequest,
) -> Result<UpstreamRequest, ProviderError> {
    let params = DeploymentParams::apply(upstream, request)?;
    let mut built = provider.chat_request(upstream, &params.request)?;
    built.body = params.complete_body(built.body)?;
    Ok(built)
}

/// A completions, embeddings or rerank request without the deployment's
/// `additional_drop_params` (its body is all `extra` but `model` and `stream`).
fn without_dropped<'a>(
    upstream: &super::Upstream,
    request: &'a PassthroughRequest,
) -> std::borrow::Cow<'a, PassthroughRequest> {
    if !upstream
        .additional_drop_params
        .iter()
        .any(|name| request.extra.contains_key(name))
    {
        return std::borrow::Cow::Borrowed(request);
    }
    let mut trimmed = request.clone();
    for name in &upstream.additional_drop_params {
        trimmed.extra.remove(name);
    }
    std::borrow::Cow::Owned(trimmed)
}

/// Calls an embeddings request's parts may have in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Inputs one embeddings request may hold when it is split into calls (OpenAI's limit).
const MAX_EMBEDDING_INPUTS: usize = 2048;

/// An embeddings request whose `input` list is longer than the upstream takes in one call, as
/// one request per `limit` inputs, in order; `None` when one call takes it.
fn split_inputs(
    request: &PassthroughRequest,
    limit: usize,
) -> Result<Option<Vec<PassthroughRequest>>, ProviderError> {
    let Some(serde_json::Value::Array(inputs)) = request.extra.get("input") else {
        return Ok(None);
    };
    if inputs.len() <= limit.max(1) {
        return Ok(None);
    }
    // OpenAI's own bound: one request cannot become more upstream calls than this.
    if inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(crate::providers::translate::invalid(
            "input",
            format!("at most {MAX_EMBEDDING_INPUTS} inputs a request"),
        ));
    }
    // Every part shares the other fields; the inputs are not copied into each.
    let mut shared = request.extra.clone();
    shared.remove("input");
    Ok(Some(
        inputs
            .chunks(limit.max(1))
            .map(|chunk| {
                let mut extra = shared.clone();
                extra.insert("input".into(), chunk.to_vec().into());
                PassthroughRequest {
                    model: request.model.clone(),
                    stream: request.stream,
                    extra,
                }
            })
            .collect(),
    ))
}

/// Sends the parts (a few at a time, in batches), then joins their OpenAI-format answers into one: the
/// vectors in input order, numbered from 0, and the token counts added (no `usage` when a part
/// reported none, so the gateway estimates the whole). Any part failing fails the request, so
/// the router retries or falls back with all of it.
async fn embed_in_parts(
    provider: &dyn HttpProvider,
    call: &Call<'_>,
    parts: Vec<PassthroughRequest>,
) -> Result<PassthroughResponse, ProviderError> {
    let mut answers = Vec::with_capacity(parts.len());
    for batch in parts.chunks(PARTS_IN_FLIGHT) {
        let sent = batch.iter().map(|part| embed_part(provider, call, part));
        answers.extend(futures_util::future::try_join_all(sent).await?);
    }
    let mut data = Vec::new();
    let mut tokens = Some(0u64);
    let mut model = None;
    for answer in answers {
        tokens = tokens
            .zip(answer.usage())
            .map(|(sum, u)| sum + u.prompt_tokens);
        model = model.or(answer.model);
        let Some(serde_json::Value::Array(items)) = answer.extra.get("data") else {
            return Err(ProviderError::InvalidResponse(
                "embeddings response: no `data` list".into(),
            ));
        };
        for item in items {
            let mut item = item.clone();
            item["index"] = data.len().into();
            data.push(item);
        }
    }
    let mut extra = serde_json::Map::new();
    extra.insert("object".into(), "list".into());
    extra.insert("data".into(), data.into());
    if let Some(tokens) = tokens {
        extra.insert(
            "usage".into(),
            json!({"prompt_tokens": tokens, "total_tokens": tokens}),
        );
    }
    Ok(PassthroughResponse { model, extra })
}

async fn embed_part(
    provider: &dyn HttpProvider,
    call: &Call<'_>,
    part: &PassthroughRequest,
) -> Result<PassthroughResponse, ProviderError> {
    let built =
        provider.passthrough_request(call.upstream, PassthroughEndpoint::Embeddings, part)?;
    let body = send(provider, call, built).await?;
    provider.passthrough_response(PassthroughEndpoint::Embeddings, part, &body)
}

async fn send(
    provider: &dyn HttpProvider,
    call: &Call<'_>,
    request: UpstreamRequest,
) -> Result<Bytes, ProviderError> {
    let request = authorize(call, request).await?;
    call.http
        .send(provider, call.upstream, request, call.timeout)
        .await
}

async fn open(
    provider: &dyn HttpProvider,
    call: &Call<'_>,
    request: UpstreamRequest,
) -> Result<EventStream, ProviderError> {
    let request = authorize(call, request).await?;
    call.http
        .open_stream(
            provider,
            call.upstream,
            request,
            provider.stream_framing(),
            call.first_output_timeout,
            call.timeout,
        )
        .await
}

impl<P: HttpProvider> Provider for P {
    fn name(&self) -> &'static str {
        HttpProvider::name(self)
    }

    fn chat<'a>(
        &'a self,
        call: Call<'a>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatAnswer, ProviderError>> {
        Box::pin(async move {
            let upstream_request = chat_request(self, call.upstream, request)?;
            let body = send(self, &call, upstream_request).await?;
            // OpenAI-format upstreams' bytes pass through (only `model` changes); other
            // providers are translated.
            match self.chat_response_raw(body.clone()) {
                Some(raw) => raw.map(ChatAnswer::Raw),
                None => self.chat_response(&body).map(ChatAnswer::Typed),
            }
        })
    }

    fn chat_stream<'a>(
        &'a self,
        call: Call<'a>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>> {
        Box::pin(async move {
            let upstream_request = chat_request(self, call.upstream, request)?;
            let events = open(self, &call, upstream_request).await?;
            Ok(decode_chat(events, self.chat_stream_decoder()))
        })
    }

    fn passthrough<'a>(
        &'a self,
        call: Call<'a>,
        endpoint: PassthroughEndpoint,
        request: &'a PassthroughRequest,
    ) -> BoxFuture<'a, Result<PassthroughResponse, ProviderError>> {
        Box::pin(async move {
            let request = &*without_dropped(call.upstream, request);
            if endpoint == PassthroughEndpoint::Embeddings {
                if let Some(limit) = self.embeddings_per_call(call.upstream) {
                    if let Some(parts) = split_inputs(request, limit)? {
                        return embed_in_parts(self, &call, parts).await;
                    }
                }
            }
            let upstream_request = self.passthrough_request(call.upstream, endpoint, request)?;
            let body = send(self, &call, upstream_request).await?;
            self.passthrough_response(endpoint, request, &body)
        })
    }

    fn passthrough_stream<'a>(
        &'a self,
        call: Call<'a>,
        endpoint: PassthroughEndpoint,
        request: &'a PassthroughRequest,
    ) -> BoxFuture<'a, Result<PassthroughStream, ProviderError>> {
        Box::pin(async move {
            let request = &*without_dropped(call.upstream, request);
            let upstream_request = self.passthrough_request(call.upstream, endpoint, request)?;
            let events = open(self, &call, upstream_request).await?;
            // Until the end marker (or an error, which ends the stream after it is passed on).
            let mut decode = self.passthrough_stream_decoder(endpoint);
            let parsed = events
                .map(move |event| match event {
                    Ok(event) => decode(&event.data).transpose(),
                    Err(err) => Some(Err(err)),
                })
                .take_while(|item| std::future::ready(item.is_some()))
                .filter_map(std::future::ready);
            Ok(Box::pin(parsed) as PassthroughStream)
        })
    }

    fn messages<'a>(
        &'a self,
        call: Call<'a>,
        endpoint: MessagesEndpoint,
        request: &'a MessagesRequest,
        client: &'a ClientHeaders,
    ) -> Option<BoxFuture<'a, Result<Bytes, ProviderError>>> {
        let native = self.native_messages_request(call.upstream, endpoint, request, client)?;
        Some(Box::pin(async move { send(self, &call, native?).await }))
    }

    fn messages_stream<'a>(
        &'a self,
        call: Call<'a>,
        request: &'a MessagesRequest,
        client: &'a ClientHeaders,
    ) -> Option<BoxFuture<'a, Result<EventStream, ProviderError>>> {
        let native =
            self.native_messages_request(call.upstream, MessagesEndpoint::Create, request, client)?;
        Some(Box::pin(async move { open(self, &call, native?).await }))
    }

    fn responses<'a>(
        &'a self,
        call: Call<'a>,
        request: &'a ResponsesRequest,
    ) -> Option<BoxFuture<'a, Result<Bytes, ProviderError>>> {
        let native = self.native_responses_request(call.upstream, request)?;
        Some(Box::pin(async move { send(self, &call, native?).await }))
    }

    fn responses_stream<'a>(
        &'a self,
        call: Call<'a>,
        request: &'a ResponsesRequest,
    ) -> Option<BoxFuture<'a, Result<EventStream, ProviderError>>> {
        let native = self.native_responses_request(call.upstream, request)?;
        Some(Box::pin(async move { open(self, &call, native?).await }))
    }

    fn dropped_params(&self, upstream: &super::Upstream, request: &ChatRequest) -> Vec<String> {
        match DeploymentParams::apply(upstream, request) {
            Ok(params) => {
                let mut names = params.dropped;
                for name in HttpProvider::dropped_params(self, upstream, &params.request) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                names
            }
            Err(_) => HttpProvider::dropped_params(self, upstream, request),
        }
    }

    fn openai_dialect(&self, upstream: &super::Upstream) -> OpenAiDialect {
        HttpProvider::openai_dialect(self, upstream)
    }

    fn health_check<'a>(
        &'a self,
        call: Call<'a>,
        check: HealthCheck,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            match check {
                HealthCheck::Chat => {
                    let request: ChatRequest = serde_json::from_value(json!({
                        "model": "",
                        "messages": [{"role": "user", "content": "ping"}],
                        "max_tokens": 1
                    }))
                    .map_err(|e| ProviderError::Unsupported(e.to_string()))?;
                    let built = self.chat_request(call.upstream, &request)?;
                    let body = send(self, &call, built).await?;
                    self.chat_response(&body)?;
                }
                HealthCheck::Passthrough(endpoint) => {
                    let body = match endpoint {
                        PassthroughEndpoint::Embeddings => json!({"model": "", "input": "ping"}),
                        PassthroughEndpoint::Rerank => {
                            json!({"model": "", "query": "ping", "documents": ["ping"]})
                        }
                        PassthroughEndpoint::Completions => {
                            json!({"model": "", "prompt": "ping", "max_tokens": 1})
                        }
                    };
                    let request: PassthroughRequest = serde_json::from_value(body)
                        .map_err(|e| ProviderError::Unsupported(e.to_string()))?;
                    let built = self.passthrough_request(call.upstream, endpoint, &request)?;
                    send(self, &call, built).await?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::http::{HeaderMap, HeaderValue};
    use axum::routing::post;

    use super::*;
    use crate::providers::{lookup, Credentials};

    /// Stamps a header the way a signer or a token source would, after the request is built.
    #[derive(Debug)]
    struct Stamp;

    impl Credentials for Stamp {
        fn authorize<'a>(
            &'a self,
            request: &'a mut UpstreamRequest,
        ) -> BoxFuture<'a, Result<(), ProviderError>> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                let signature = format!("signed:{}", request.body.len());
                request.headers.insert(
                    "x-signature",
                    HeaderValue::from_str(&signature).map_err(|e| {
                        ProviderError::Unsupported(format!("signature header: {e}"))
                    })?,
                );
                Ok(())
            })
        }
    }

    /// An upstream that answers with the signature header it received as the reply text.
    async fn echo_signature(headers: HeaderMap) -> axum::Json<serde_json::Value> {
        let signature = headers
            .get("x-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unsigned")
            .to_owned();
        axum::Json(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": signature},
                         "finish_reason": "stop"}]
        }))
    }

    fn call<'a>(
        http: &'a crate::providers::http::HttpClient,
        upstream: &'a crate::providers::Upstream,
    ) -> Call<'a> {
        Call {
            http,
            upstream,
            timeout: Duration::from_secs(5),
            first_output_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn credentials_sign_the_final_request_before_it_is_sent() {
        let app = axum::Router::new().route("/v1/chat/completions", post(echo_signature));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let provider = lookup("openai").unwrap().provider;
        let http = crate::providers::http::HttpClient::new().unwrap();
        let mut upstream = crate::providers::testing::upstream("m");
        upstream.base_url = base;
        let request: ChatRequest = serde_json::from_value(
            json!({"model": "alias", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        let plain = provider
            .chat(call(&http, &upstream), &request)
            .await
            .unwrap();
        let text = |answer: ChatAnswer| {
            answer.into_typed().unwrap().choices[0]
                .message
                .content
                .clone()
        };
        assert_eq!(text(plain).as_deref(), Some("unsigned"));

        upstream.credentials = Some(Arc::new(Stamp));
        let signed = provider
            .chat(call(&http, &upstream), &request)
            .await
            .unwrap();
        let signature = text(signed).unwrap();
        assert!(signature.starts_with("signed:"), "{signature}");
        assert_ne!(signature, "signed:0", "signed over the final body");
    }
}
