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
use super::{
    BoxFuture, Call, HealthCheck, HttpProvider, PassthroughEndpoint, PassthroughStream, Provider,
    ProviderError, UpstreamRequest,
};
use crate::providers::anthropic::request::OpenAiDialect;
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
            let upstream_request = self.chat_request(call.upstream, request)?;
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
            let upstream_request = self.chat_request(call.upstream, request)?;
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
            let upstream_request = self.passthrough_request(call.upstream, endpoint, request)?;
            let body = send(self, &call, upstream_request).await?;
            serde_json::from_slice::<PassthroughResponse>(&body).map_err(|err| {
                ProviderError::InvalidResponse(format!("{} response: {err}", endpoint.path()))
            })
        })
    }

    fn passthrough_stream<'a>(
        &'a self,
        call: Call<'a>,
        endpoint: PassthroughEndpoint,
        request: &'a PassthroughRequest,
    ) -> BoxFuture<'a, Result<PassthroughStream, ProviderError>> {
        Box::pin(async move {
            let upstream_request = self.passthrough_request(call.upstream, endpoint, request)?;
            let events = open(self, &call, upstream_request).await?;
            let parsed = events
                .take_while(|event| {
                    let done = matches!(event, Ok(e) if e.data.trim() == "[DONE]");
                    std::future::ready(!done)
                })
                .map(|event| {
                    let event = event?;
                    serde_json::from_str::<PassthroughResponse>(&event.data).map_err(|err| {
                        ProviderError::InvalidResponse(format!("stream event: {err}"))
                    })
                });
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

    fn dropped_params(&self, upstream: &super::Upstream, request: &ChatRequest) -> Vec<String> {
        HttpProvider::dropped_params(self, upstream, request)
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
