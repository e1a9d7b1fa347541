//! Google OAuth for Vertex AI: an access token from the deployment's Google credentials, cached
//! and refreshed before it expires.
//!
//! Two kinds of credentials JSON are read (the files `gcloud` and the Cloud console write):
//!
//! - `type: service_account` (`client_email`, `private_key` as PKCS#8 PEM, `token_uri`): an
//!   RS256-signed JWT assertion (RFC 7523; scope `cloud-platform`, `aud` = `token_uri`, one hour)
//!   is exchanged at `token_uri` for an access token;
//! - `type: authorized_user` (`client_id`, `client_secret`, `refresh_token`; what
//!   `gcloud auth application-default login` writes): a `refresh_token` grant at `token_uri`
//!   (Google's, unless the file names another).
//!
//! The token is fetched on first use and again when it expires within [`REFRESH_BEFORE`] (or
//! within half its lifetime, for the short-lived tokens of tests), by one caller while the
//! others wait: one token request per expiry, never one per call. No secret (private key,
//! client secret, refresh token, assertion, access token) ever appears in an error or a log
//! line; `Debug` shows none.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use axum::http::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;

use crate::config::Secret;
use crate::providers::bedrock::credentials::form_encode;
use crate::providers::http::HttpClient;
use crate::providers::{BoxFuture, Credentials, ProviderError, UpstreamRequest};

/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, for credentials that name none.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A token is renewed when it expires within this (or within half its lifetime, if shorter).
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Lifetime of a JWT assertion (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a token is kept, whatever `expires_in` says (Google's last an hour).
const MAX_LIFETIME: u64 = 24 * 3600;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Google credentials, read from their JSON.
pub enum GoogleKey {
    ServiceAccount {
        client_email: String,
        private_key_id: Option<String>,
        key: Arc<RsaKeyPair>,
        token_uri: String,
        project_id: Option<String>,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: String,
        project_id: Option<String>,
    },
}

impl std::fmt::Debug for GoogleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GoogleKey::ServiceAccount {
                client_email,
                token_uri,
                ..
            } => f
                .debug_struct("ServiceAccount")
                .field("client_email", client_email)
                .field("token_uri", token_uri)
                .finish_non_exhaustive(),
            GoogleKey::AuthorizedUser {
                client_id,
                token_uri,
                ..
            } => f
                .debug_struct("AuthorizedUser")
                .field("client_id", client_id)
                .field("token_uri", token_uri)
                .finish_non_exhaustive(),
        }
    }
}

#[derive(Deserialize)]
struct RawKey {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    project_id: Option<String>,
    quota_project_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

impl GoogleKey {
    /// Reads a credentials JSON. The error says what is missing or wrong, never a value.
    pub fn from_json(text: &str) -> Result<GoogleKey, String> {
        let raw: RawKey = serde_json::from_str(text).map_err(|err| {
            format!(
                "is not a Google credentials JSON object (line {} column {})",
                err.line(),
                err.column()
            )
        })?;
        let token_uri = raw
            .token_uri
            .filter(|uri| !uri.trim().is_empty())
            .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err(format!("has a token_uri that is not a URL: `{token_uri}`"));
        }
        let required = |value: Option<String>, name: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("has no `{name}`"))
        };
        match raw.kind.as_deref() {
            Some("service_account") => {
                let pem = required(raw.private_key, "private_key")?;
                let key = key_pair_from_pem(&pem)?;
                Ok(GoogleKey::ServiceAccount {
                    client_email: required(raw.client_email, "client_email")?,
                    private_key_id: raw.private_key_id.filter(|id| !id.is_empty()),
                    key: Arc::new(key),
                    token_uri,
                    project_id: raw.project_id,
                })
            }
            Some("authorized_user") => Ok(GoogleKey::AuthorizedUser {
                client_id: required(raw.client_id, "client_id")?,
                client_secret: Secret::new(required(raw.client_secret, "client_secret")?),
                refresh_token: Secret::new(required(raw.refresh_token, "refresh_token")?),
                token_uri,
                project_id: raw.quota_project_id,
            }),
            Some(other) => Err(format!(
                "has `type: {other}`; supported: service_account, authorized_user"
            )),
            None => Err("has no `type` (service_account or authorized_user)".into()),
        }
    }

    /// The project the credentials belong to, the default when the deployment names none.
    pub fn project_id(&self) -> Option<&str> {
        match self {
            GoogleKey::ServiceAccount { project_id, .. }
            | GoogleKey::AuthorizedUser { project_id, .. } => project_id.as_deref(),
        }
    }

    pub fn token_uri(&self) -> &str {
        match self {
            GoogleKey::ServiceAccount { token_uri, .. }
            | GoogleKey::AuthorizedUser { token_uri, .. } => token_uri,
        }
    }
}

/// An RSA key from a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues) or
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub fn key_pair_from_pem(pem: &str) -> Result<RsaKeyPair, String> {
    // JSON written by hand sometimes keeps `\n` as two characters.
    let pem = pem.replace("\\n", "\n");
    let pkcs1 = pem.contains("BEGIN RSA PRIVATE KEY");
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "has a private_key that is not a PEM key (bad base64)".to_owned())?;
    let parsed = if pkcs1 {
        RsaKeyPair::from_der(&der)
    } else {
        RsaKeyPair::from_pkcs8(&der)
    };
    parsed.map_err(|why| format!("has a private_key that is not a usable RSA key ({why})"))
}

/// The signed JWT assertion of a service account (RFC 7523), issued at `now` (Unix seconds).
pub fn assertion(
    client_email: &str,
    private_key_id: Option<&str>,
    key: &RsaKeyPair,
    audience: &str,
    now: u64,
) -> Result<String, ProviderError> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = private_key_id {
        header["kid"] = kid.into();
    }
    let claims = serde_json::json!({
        "iss": client_email,
        "scope": SCOPE,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| ProviderError::Unsupported("cannot sign the Google OAuth assertion".to_owned()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// An access token and when to renew it.
struct AccessToken {
    /// `Bearer ...`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// How long a failed token fetch answers the callers that come after it.
const FAILED_FETCH_HOLD: Duration = Duration::from_secs(1);

/// The current token of one set of credentials, shared by every deployment (and every config
/// reload) that uses them: N deployments of one service account make one token request.
#[derive(Default)]
struct TokenCache {
    cached: ArcSwapOption<AccessToken>,
    /// Held by the one caller that fetches a token; holds the last failed fetch (when it ended,
    /// and its error), so the callers that waited on it get its answer instead of each asking
    /// the token endpoint again in turn.
    refreshing: tokio::sync::Mutex<Option<(Instant, ProviderError)>>,
}

/// The cache of the credentials with this fingerprint, created on first use and dropped with
/// the last deployment that uses it.
fn shared_cache(fingerprint: String) -> Arc<TokenCache> {
    use std::collections::HashMap;
    use std::sync::{Mutex, Weak};
    static CACHES: OnceLock<Mutex<HashMap<String, Weak<TokenCache>>>> = OnceLock::new();
    let mut caches = CACHES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    caches.retain(|_, cache| cache.strong_count() > 0);
    if let Some(cache) = caches.get(&fingerprint).and_then(Weak::upgrade) {
        return cache;
    }
    let cache = Arc::new(TokenCache::default());
    caches.insert(fingerprint, Arc::downgrade(&cache));
    cache
}

/// Who the credentials are, without any secret in the clear: the same account, key and token
/// endpoint give the same fingerprint.
fn fingerprint(key: &GoogleKey) -> String {
    match key {
        GoogleKey::ServiceAccount {
            client_email,
            key,
            token_uri,
            ..
        } => format!(
            "sa|{client_email}|{token_uri}|{}",
            blake3::hash(key.public().as_ref()).to_hex()
        ),
        GoogleKey::AuthorizedUser {
            client_id,
            refresh_token,
            token_uri,
            ..
        } => format!(
            "au|{client_id}|{token_uri}|{}",
            blake3::hash(refresh_token.expose().as_bytes()).to_hex()
        ),
    }
}

/// OAuth credentials of one Vertex AI deployment: a bearer token on every request.
pub struct GoogleCredentials {
    key: GoogleKey,
    /// Where the credentials came from (a file path, `inline`), for logs and errors.
    origin: String,
    cache: Arc<TokenCache>,
}

impl std::fmt::Debug for GoogleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleCredentials")
            .field("key", &self.key)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl GoogleCredentials {
    pub fn new(key: GoogleKey, origin: String) -> GoogleCredentials {
        let cache = shared_cache(fingerprint(&key));
        GoogleCredentials { key, origin, cache }
    }

    pub fn key(&self) -> &GoogleKey {
        &self.key
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `Authorization: Bearer ...` with a token valid now, fetched when needed.
    pub async fn bearer(&self) -> Result<HeaderValue, ProviderError> {
        let fresh = |token: &Option<Arc<AccessToken>>| {
            token
                .as_ref()
                .filter(|t| Instant::now() < t.refresh_at)
                .map(|t| t.header.clone())
        };
        if let Some(header) = fresh(&self.cache.cached.load_full()) {
            return Ok(header);
        }
        // An async mutex held across the token call on purpose: callers arriving meanwhile wait
        // for its token instead of asking for their own.
        let waited_from = Instant::now();
        let mut refreshing = self.cache.refreshing.lock().await;
        let current = self.cache.cached.load_full();
        if let Some(header) = fresh(&current) {
            return Ok(header);
        }
        let still_valid = |current: &Option<Arc<AccessToken>>| {
            current
                .as_ref()
                .filter(|t| Instant::now() < t.expires_at)
                .map(|t| t.header.clone())
        };
        // A fetch that failed while this caller waited for the lock, or less than
        // `FAILED_FETCH_HOLD` ago, is its answer too: a token endpoint that refuses is asked
        // again at most about once a second, not once per request.
        if let Some((failed_at, err)) = refreshing.as_ref() {
            if *failed_at >= waited_from || failed_at.elapsed() < FAILED_FETCH_HOLD {
                return still_valid(&current).ok_or_else(|| err.clone());
            }
        }
        match self.fetch().await {
            Ok(token) => {
                let header = token.header.clone();
                self.cache.cached.store(Some(Arc::new(token)));
                *refreshing = None;
                Ok(header)
            }
            Err(err) => {
                *refreshing = Some((Instant::now(), err.clone()));
                match still_valid(&current) {
                    Some(header) => {
                        tracing::warn!(error = %err, credentials = %self.origin, "refreshing the Google access token failed; the current one is still valid");
                        Ok(header)
                    }
                    None => Err(err),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<AccessToken, ProviderError> {
        let started = Instant::now();
        let (body, secrets): (String, Vec<String>) = match &self.key {
            GoogleKey::ServiceAccount {
                client_email,
                private_key_id,
                key,
                token_uri,
                ..
            } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let jwt = assertion(client_email, private_key_id.as_deref(), key, token_uri, now)?;
                (
                    format!(
                        "grant_type={}&assertion={}",
                        form_encode(JWT_BEARER),
                        form_encode(&jwt)
                    ),
                    vec![jwt],
                )
            }
            GoogleKey::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                ..
            } => (
                format!(
                    "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                    form_encode(client_id),
                    form_encode(client_secret.expose()),
                    form_encode(refresh_token.expose())
                ),
                vec![
                    client_secret.expose().to_owned(),
                    refresh_token.expose().to_owned(),
                ],
            ),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let uri = self.key.token_uri();
        let (status, answer) = token_client()?
            .post_limited(uri, headers, body.into(), TOKEN_TIMEOUT, 64 * 1024)
            .await
            .map_err(|why| ProviderError::Connect(format!("Google OAuth token endpoint: {why}")))?;
        let answer: TokenAnswer = serde_json::from_slice(&answer).unwrap_or_default();
        // An endpoint may echo what it was sent, raw or form-encoded.
        let secrets: Vec<String> = secrets
            .into_iter()
            .flat_map(|secret| [form_encode(&secret), secret])
            .filter(|secret| secret.len() >= 8)
            .collect();
        let scrub = |text: String| {
            secrets
                .iter()
                .fold(text, |text, secret| text.replace(secret.as_str(), "****"))
        };
        if !(200..300).contains(&status) {
            let what = [answer.error.as_deref(), answer.error_description.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let what = if what.is_empty() {
                format!("status {status}")
            } else {
                scrub(what)
            };
            return Err(token_error(
                if (400..500).contains(&status) {
                    401
                } else {
                    503
                },
                format!(
                    "the token endpoint refused the credentials from {}: {what}",
                    self.origin
                ),
            ));
        }
        let token = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                token_error(
                    503,
                    "the token endpoint answered without an access_token".into(),
                )
            })?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            token_error(
                503,
                "the token endpoint answered an unusable access_token".into(),
            )
        })?;
        header.set_sensitive(true);
        // Bounded: a hostile or broken endpoint's `expires_in` must not overflow the clock.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600).min(MAX_LIFETIME));
        let margin = REFRESH_BEFORE.min(lifetime / 2);
        tracing::debug!(credentials = %self.origin, expires_in = lifetime.as_secs(), "fetched a Google access token");
        Ok(AccessToken {
            header,
            refresh_at: started + lifetime - margin,
            expires_at: started + lifetime,
        })
    }
}

#[derive(Default, Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

fn token_error(status: u16, message: String) -> ProviderError {
    ProviderError::Status {
        status,
        message: format!("Google OAuth: {message}"),
        kind: Some("authentication_error".into()),
        code: None,
        param: None,
        retry_after: None,
    }
}

fn token_client() -> Result<&'static HttpClient, ProviderError> {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = HttpClient::new().map_err(|e| {
        ProviderError::Connect(format!("cannot build the Google OAuth client: {e}"))
    })?;
    Ok(CLIENT.get_or_init(|| client))
}

impl Credentials for GoogleCredentials {
    fn authorize<'a>(
        &'a self,
        request: &'a mut UpstreamRequest,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let bearer = self.bearer().await?;
            request.headers.insert(AUTHORIZATION, bearer);
            Ok(())
        })
    }
}
