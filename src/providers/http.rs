//! The one pooled HTTP client every provider's requests go through, and the plumbing from an
//! upstream response (whole or streamed) to canonical values.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::{Method, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::framing::{FrameDecoder, Framing};
use super::{
    scrub, ChatStreamDecoder, HttpProvider, ProviderError, SseEvent, StreamItem, Upstream,
    UpstreamRequest,
};
use crate::config::{ConfigError, TlsSettings};
use crate::schema::ChatChunk;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Upstream response bodies larger than this are refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Error bodies are only read this far: they are shown to humans, not parsed for data.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Canonical chunks of an upstream stream; ends after the upstream's end marker or an error.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The shared upstream client: hyper's pooled client with rustls, used directly. (A higher-level
/// client re-parsed every URL twice and wrapped each call in layers the gateway does not need; the
/// benchmark showed a quarter of the gateway's instructions there.)
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    uris: Arc<UriCache>,
}

/// Parsed upstream URIs by their text: the set of upstream URLs is fixed by the config, so each
/// is parsed once.
#[derive(Default)]
struct UriCache(RwLock<HashMap<String, Uri>>);

/// More distinct URLs than this means something generates them per request; stop caching.
const MAX_CACHED_URIS: usize = 4096;

impl UriCache {
    fn get(&self, text: &str) -> Result<Uri, ProviderError> {
        if let Some(uri) = self.0.read().ok().and_then(|map| map.get(text).cloned()) {
            return Ok(uri);
        }
        let uri: Uri = text
            .parse()
            .map_err(|err| ProviderError::Unsupported(format!("invalid upstream URL: {err}")))?;
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(ProviderError::Unsupported(
                "invalid upstream URL: it needs a scheme and a host".into(),
            ));
        }
        if let Ok(mut map) = self.0.write() {
            if map.len() < MAX_CACHED_URIS {
                map.insert(text.to_owned(), uri.clone());
            }
        }
        Ok(uri)
    }
}

/// The rustls client config for `tls`, with ring as the crypto provider (the only one built in;
/// given explicitly, so no process-wide default has to be installed first).
pub(crate) fn tls_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| ConfigError::Invalid {
            location: "upstream TLS".into(),
            message: err.to_string(),
        })?;
    if !tls.verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(error = %err, "while loading the system's root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system root certificates rustls cannot use");
    }
    if added == 0 {
        tracing::info!(
            "no root certificates in the system store: using the Mozilla roots built into switchyard"
        );
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(bundle) = &tls.ca_bundle {
        for cert in bundle.read()? {
            roots.add(cert).map_err(|err| ConfigError::Invalid {
                location: bundle.key.clone(),
                message: format!(
                    "CA bundle `{}` holds an unusable certificate: {err}",
                    bundle.path.display()
                ),
            })?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `ssl_verify: false`: any certificate, any name. Handshake signatures are still checked, so the
/// connection is encrypted to whoever holds the certificate's key, just not authenticated.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An upstream response head with its body still to read.
type UpstreamResponse = hyper::Response<Incoming>;

impl HttpClient {
    /// A client with the default TLS settings: certificates verified against the system's roots.
    pub fn new() -> Result<Self, std::io::Error> {
        Self::with_tls(&TlsSettings::default())
            .map_err(|err| std::io::Error::other(err.to_string()))
    }

    /// A client that checks upstream certificates as `tls` says: against the system's root store
    /// (or the Mozilla roots built into the binary when the system has none, e.g. a scratch
    /// container) plus `tls.ca_bundle`, or not at all when `tls.verify` is false. An unreadable
    /// CA bundle is an error naming the config key it came from.
    pub fn with_tls(tls: &TlsSettings) -> Result<Self, ConfigError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(tls)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(512)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HttpClient {
            client,
            uris: Arc::default(),
        })
    }

    /// Sends a request and reads the whole answer, all within `timeout`. Non-2xx answers become
    /// [`ProviderError::Status`] via the provider's error parser.
    pub async fn send(
        &self,
        provider: &dyn HttpProvider,
        upstream: &Upstream,
        request: UpstreamRequest,
        timeout: Duration,
    ) -> Result<Bytes, ProviderError> {
        let call = async {
            let response = self.start(request).await?;
            if !response.status().is_success() {
                return Err(error_from(provider, upstream, response).await);
            }
            read_limited(response.into_body(), MAX_RESPONSE_BYTES).await
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(ProviderError::Timeout(timeout)))
    }

    /// Opens a stream: waits at most `first_byte_timeout` for the response head, then yields
    /// events (decoded with `framing`) as they arrive, failing when no bytes arrive for
    /// `idle_timeout`.
    pub async fn open_stream(
        &self,
        provider: &dyn HttpProvider,
        upstream: &Upstream,
        request: UpstreamRequest,
        framing: Framing,
        first_byte_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let head = async {
            let response = self.start(request).await?;
            if !response.status().is_success() {
                return Err(error_from(provider, upstream, response).await);
            }
            Ok(response)
        };
        let response = tokio::time::timeout(first_byte_timeout, head)
            .await
            .unwrap_or(Err(ProviderError::Timeout(first_byte_timeout)))?;
        Ok(events(response.into_body(), framing, idle_timeout))
    }

    /// POSTs `body` and returns the answer's status and (at most 64 KiB of) its body, all
    /// within `timeout`: the gateway's own outbound calls (callbacks, alerts). The error is a
    /// description of what failed, without the URL (a webhook URL may be a credential).
    pub async fn post(
        &self,
        url: &str,
        headers: hyper::HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(u16, Bytes), String> {
        self.post_limited(url, headers, body, timeout, MAX_ERROR_BYTES)
            .await
    }

    /// [`HttpClient::post`] for an answer the caller needs whole (an external guardrail's
    /// verdict): an answer over `limit` bytes is an error (at 64 KiB, it is cut instead).
    pub async fn post_limited(
        &self,
        url: &str,
        headers: hyper::HeaderMap,
        body: Bytes,
        timeout: Duration,
        limit: usize,
    ) -> Result<(u16, Bytes), String> {
        let call = async {
            let response = self
                .start(UpstreamRequest {
                    url: url.to_owned(),
                    headers,
                    body,
                })
                .await
                .map_err(|err| match err {
                    ProviderError::Connect(why) => format!("connect error: {why}"),
                    ProviderError::Unsupported(why) => why,
                    other => other.class().to_owned(),
                })?;
            let status = response.status().as_u16();
            let body = read_limited(response.into_body(), limit).await;
            match body {
                Ok(body) => Ok((status, body)),
                Err(_) if limit == MAX_ERROR_BYTES => Ok((status, Bytes::new())),
                Err(ProviderError::InvalidResponse(why)) => Err(why),
                Err(other) => Err(other.class().to_owned()),
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }

    /// Sends a request as the caller made it (any method, the body as is) and returns the
    /// answer's head within `head_timeout`, its body unread: the provider pass-through routes
    /// forward it as it arrives. The URL is parsed here, not cached: pass-through URLs are as
    /// many as callers make.
    pub async fn forward(
        &self,
        method: Method,
        url: &str,
        headers: hyper::HeaderMap,
        body: Bytes,
        head_timeout: Duration,
    ) -> Result<UpstreamResponse, ProviderError> {
        let uri: Uri = url
            .parse()
            .map_err(|err| ProviderError::Unsupported(format!("invalid upstream URL: {err}")))?;
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(ProviderError::Unsupported(
                "invalid upstream URL: it needs a scheme and a host".into(),
            ));
        }
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        if let Some(map) = builder.headers_mut() {
            *map = headers;
            crate::telemetry::traces::inject(map);
        }
        let request = builder.body(Full::new(body)).map_err(|err| {
            ProviderError::Unsupported(format!("cannot build the upstream request: {err}"))
        })?;
        match tokio::time::timeout(head_timeout, self.client.request(request)).await {
            Ok(answer) => answer.map_err(|err| ProviderError::Connect(describe(&err))),
            Err(_) => Err(ProviderError::Timeout(head_timeout)),
        }
    }

    async fn start(&self, request: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        let uri = self.uris.get(&request.url)?;
        let mut builder = hyper::Request::builder().method(Method::POST).uri(uri);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
            // The attempt's `traceparent`, when traces are on (after signing: not signed).
            crate::telemetry::traces::inject(headers);
        }
        let upstream_request = builder.body(Full::new(request.body)).map_err(|err| {
            ProviderError::Unsupported(format!("cannot build the upstream request: {err}"))
        })?;
        self.client
            .request(upstream_request)
            .await
            .map_err(|err| ProviderError::Connect(describe(&err)))
    }
}

async fn error_from(
    provider: &dyn HttpProvider,
    upstream: &Upstream,
    response: UpstreamResponse,
) -> ProviderError {
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let body = read_limited(body, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    match provider.error_response(status, &parts.headers, &body) {
        ProviderError::Status {
            status,
            message,
            kind,
            code,
            param,
            retry_after,
        } => ProviderError::Status {
            status,
            message: scrub(&message, upstream.api_key.as_ref()),
            kind,
            code,
            param,
            retry_after,
        },
        other => other,
    }
}

/// The next data frame of a body (trailers are skipped); `None` at the end.
async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, hyper::Error> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Reads a body up to `limit` bytes (an error body is simply cut there).
async fn read_limited(mut incoming: Incoming, limit: usize) -> Result<Bytes, ProviderError> {
    let mut body = BytesMut::new();
    loop {
        match next_chunk(&mut incoming).await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    if limit == MAX_ERROR_BYTES {
                        body.extend_from_slice(&chunk[..limit - body.len()]);
                        return Ok(body.freeze());
                    }
                    return Err(ProviderError::InvalidResponse(format!(
                        "response larger than {limit} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(err) => return Err(ProviderError::Connect(describe(&err))),
        }
    }
}

/// Events of an upstream response; ends at the end of the body or after an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>;

struct EventState {
    body: Incoming,
    frames: FrameDecoder,
    /// Decoded but not yet yielded; an error is queued after the events that preceded it.
    pending: VecDeque<Result<SseEvent, ProviderError>>,
    scratch: Vec<SseEvent>,
    finished: bool,
    idle_timeout: Duration,
}

fn events(body: Incoming, framing: Framing, idle_timeout: Duration) -> EventStream {
    let state = EventState {
        body,
        frames: FrameDecoder::new(framing),
        pending: VecDeque::new(),
        scratch: Vec::new(),
        finished: false,
        idle_timeout,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(item) = state.pending.pop_front() {
                    return Some((item, state));
                }
                if state.finished {
                    return None;
                }
                let step =
                    match tokio::time::timeout(state.idle_timeout, next_chunk(&mut state.body))
                        .await
                    {
                        Err(_) => Err(ProviderError::Timeout(state.idle_timeout)),
                        Ok(Err(err)) => Err(ProviderError::Connect(format!(
                            "stream interrupted: {}",
                            describe(&err)
                        ))),
                        Ok(Ok(Some(bytes))) => state
                            .frames
                            .feed(&bytes, &mut state.scratch)
                            .map_err(|err| ProviderError::InvalidResponse(err.to_string())),
                        Ok(Ok(None)) => {
                            state.finished = true;
                            state
                                .frames
                                .finish(&mut state.scratch)
                                .map_err(|err| ProviderError::InvalidResponse(err.to_string()))
                        }
                    };
                state.pending.extend(state.scratch.drain(..).map(Ok));
                if let Err(err) = step {
                    state.pending.push_back(Err(err));
                    state.finished = true;
                }
            }
        },
    ))
}

/// Turns upstream events into canonical chunks with the provider's decoder. The stream ends at
/// the provider's end marker, at the end of the body (some servers omit the marker), or after the
/// first error.
pub fn decode_chat(events: EventStream, decoder: Box<dyn ChatStreamDecoder>) -> ChunkStream {
    struct State {
        events: EventStream,
        decoder: Box<dyn ChatStreamDecoder>,
        pending: VecDeque<Result<ChatChunk, ProviderError>>,
        items: Vec<StreamItem>,
        finished: bool,
    }
    let state = State {
        events,
        decoder,
        pending: VecDeque::new(),
        items: Vec::new(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(item) = state.pending.pop_front() {
                    return Some((item, state));
                }
                if state.finished {
                    return None;
                }
                let event = match state.events.next().await {
                    // The body ended without the end marker: the decoder says whether that
                    // is a complete answer (and may add what it held back) or a cut stream.
                    None => {
                        state.finished = true;
                        let finished = state.decoder.finish(&mut state.items);
                        for item in state.items.drain(..) {
                            if let StreamItem::Chunk(chunk) = item {
                                state.pending.push_back(Ok(chunk));
                            }
                        }
                        if let Err(err) = finished {
                            state.pending.push_back(Err(err));
                        }
                        continue;
                    }
                    Some(Err(err)) => {
                        state.finished = true;
                        return Some((Err(err), state));
                    }
                    Some(Ok(event)) => event,
                };
                let decoded = state.decoder.decode(&event, &mut state.items);
                for item in state.items.drain(..) {
                    match item {
                        StreamItem::Chunk(chunk) if !state.finished => {
                            state.pending.push_back(Ok(chunk))
                        }
                        StreamItem::Chunk(_) => {} // nothing counts after the end marker
                        StreamItem::Done => state.finished = true,
                    }
                }
                if let Err(err) = decoded {
                    if !state.finished {
                        state.pending.push_back(Err(err));
                    }
                    state.finished = true;
                }
            }
        },
    ))
}

/// A one-line description of a transport error and its causes (URIs are never included, so a key
/// in a query string cannot leak).
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The TLS test upstream, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/tls/mod.rs"]
mod tls_upstream;

#[cfg(test)]
mod tests {
    use super::tls_upstream;
    use super::*;
    use crate::config::CaBundle;

    async fn call(client: &HttpClient, base: &str) -> Result<String, ProviderError> {
        let request = UpstreamRequest {
            url: format!("{base}/v1/chat/completions"),
            headers: hyper::HeaderMap::new(),
            body: Bytes::from_static(br#"{"model":"m","messages":[]}"#),
        };
        let response = client.start(request).await?;
        let body = read_limited(response.into_body(), MAX_RESPONSE_BYTES).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn upstream_certificates_are_checked_as_configured() {
        let dir = std::env::temp_dir().join(format!("switchyard-http-tls-{}", std::process::id()));
        let ca = tls_upstream::TestCa::new(&dir);
        let base = ca.serve().await;

        // Default: the system's roots do not know the internal CA.
        let err = call(&HttpClient::new().unwrap(), &base).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Connect(m) if m.contains("certificate")),
            "{err}"
        );

        // The CA bundle is trusted in addition to the system's roots.
        let with_ca = TlsSettings {
            verify: true,
            ca_bundle: Some(CaBundle {
                path: ca.ca_pem_path.clone(),
                key: "litellm_settings.ssl_verify".into(),
            }),
        };
        let body = call(&HttpClient::with_tls(&with_ca).unwrap(), &base)
            .await
            .unwrap();
        assert!(body.contains(tls_upstream::REPLY), "{body}");

        // ssl_verify: false accepts the certificate without any CA.
        let unverified = TlsSettings {
            verify: false,
            ca_bundle: None,
        };
        let body = call(&HttpClient::with_tls(&unverified).unwrap(), &base)
            .await
            .unwrap();
        assert!(body.contains(tls_upstream::REPLY), "{body}");

        // A bundle that cannot be read names its key.
        let missing = TlsSettings {
            verify: true,
            ca_bundle: Some(CaBundle {
                path: dir.join("missing.pem"),
                key: "SSL_CERT_FILE (environment)".into(),
            }),
        };
        let err = HttpClient::with_tls(&missing).err().unwrap().to_string();
        assert!(
            err.contains("SSL_CERT_FILE") && err.contains("missing.pem"),
            "{err}"
        );
    }
}
