//! Google Vertex AI: an OAuth token endpoint and the model paths that need its tokens.
//!
//! - `POST /token` (form-encoded, as Google's `https://oauth2.googleapis.com/token`): the
//!   `urn:ietf:params:oauth:grant-type:jwt-bearer` grant with a service account's RS256 JWT
//!   `assertion` (header `alg: RS256`; claims `iss`, `scope` with `cloud-platform`, `aud` ending
//!   in `/token`, `iat`/`exp` at most an hour apart and valid now; the signature checked against
//!   `--vertex-public-key` when given), or the `refresh_token` grant (`client_id`,
//!   `client_secret`, `refresh_token`). It answers `{access_token, expires_in, token_type}` with
//!   `expires_in` = `--token-expires-in`, and `{error, error_description}` (400) otherwise.
//!   Every token request counts in `/__mock/stats` (`token_requests`).
//! - `POST /v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{method}`
//!   (and `/v1beta1/...`): `google` serves `generateContent`, `streamGenerateContent` and
//!   `predict` (embeddings), `anthropic` serves `rawPredict` and `streamRawPredict` (Anthropic's
//!   Messages with `anthropic_version: vertex-2023-10-16` in the body, no `model`). Each needs
//!   `Authorization: Bearer` with a token this mock issued and that has not expired (else 401
//!   `UNAUTHENTICATED`), or an `x-goog-api-key` (Vertex's express mode).

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::embedding::{embed, EmbeddingItem};
use crate::error::ApiError;
use crate::openai::{finish, ApiRequest};
use crate::state::AppState;

/// The token endpoint's settings and the tokens it issued.
pub struct TokenIssuer {
    /// The service account's public key (PKCS#1 `RSAPublicKey` DER) that assertions must be
    /// signed with; `None` checks the claims only.
    public_key: Option<Vec<u8>>,
    expires_in: u64,
    issued: Mutex<HashMap<String, Instant>>,
    next: AtomicU64,
}

impl TokenIssuer {
    pub fn new(public_key: Option<Vec<u8>>, expires_in: u64) -> TokenIssuer {
        TokenIssuer {
            public_key,
            expires_in,
            issued: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    /// Reads a PEM public key: `BEGIN RSA PUBLIC KEY` (PKCS#1) or `BEGIN PUBLIC KEY` (SPKI, from
    /// which the PKCS#1 key is taken).
    pub fn read_public_key(path: &FsPath) -> std::io::Result<Vec<u8>> {
        let invalid =
            |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
        let pem = std::fs::read_to_string(path)?;
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("-----"))
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| invalid("the public key is not PEM"))?;
        if pem.contains("BEGIN RSA PUBLIC KEY") {
            return Ok(der);
        }
        // SPKI: SEQUENCE { AlgorithmIdentifier, BIT STRING { RSAPublicKey } }; the RSA key is
        // the BIT STRING's content after its unused-bits byte.
        let marker = der
            .windows(2)
            .rposition(|w| w == [0x03, 0x82] || w == [0x03, 0x81])
            .ok_or_else(|| invalid("the public key is neither PKCS#1 nor SPKI"))?;
        let skip = if der[marker + 1] == 0x82 { 4 } else { 3 };
        Ok(der[marker + skip + 1..].to_vec())
    }

    fn issue(&self) -> String {
        let n = self.next.fetch_add(1, Relaxed) + 1;
        let token = format!("ya29.mock-{n}-{:016x}", fastrand::u64(..));
        let until = Instant::now() + Duration::from_secs(self.expires_in);
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, at| *at > Instant::now());
        issued.insert(token.clone(), until);
        token
    }

    fn valid(&self, token: &str) -> bool {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued
            .get(token)
            .is_some_and(|until| *until > Instant::now())
    }
}

fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /token`.
pub async fn token(State(state): State<AppState>, request: ApiRequest) -> Response {
    let admission = request.admit(&state);
    state.stats.token_requests.fetch_add(1, Relaxed);
    let response = token_answer(&state, &request);
    finish(&state, &admission, response)
}

fn token_answer(state: &AppState, request: &ApiRequest) -> Response {
    let Ok(body) = request.body() else {
        return token_error("invalid_request", "unreadable body");
    };
    let form: HashMap<String, String> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (form_decode(k), form_decode(v)))
        .collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    match field("grant_type") {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            if let Err(why) =
                check_assertion(field("assertion"), state.tokens.public_key.as_deref())
            {
                return token_error("invalid_grant", &why);
            }
        }
        "refresh_token" => {
            if ["client_id", "client_secret", "refresh_token"]
                .iter()
                .any(|name| field(name).is_empty())
            {
                return token_error(
                    "invalid_request",
                    "client_id, client_secret and refresh_token are required",
                );
            }
        }
        "" => return token_error("invalid_request", "grant_type is required"),
        other => {
            return token_error(
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            )
        }
    }
    let token = state.tokens.issue();
    Json(json!({
        "access_token": token,
        "expires_in": state.tokens.expires_in,
        "token_type": "Bearer",
    }))
    .into_response()
}

fn check_assertion(assertion: &str, public_key: Option<&[u8]>) -> Result<(), String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe (not three parts)".into());
    };
    let decode = |part: &str, what: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| format!("Invalid JWT: the {what} is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| format!("Invalid JWT: the {what} is not JSON"))
    };
    let header = decode(header, "header")?;
    let claims = decode(claims, "claims")?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT: alg must be RS256".into());
    }
    if !claims["iss"].as_str().is_some_and(|iss| iss.contains('@')) {
        return Err("Invalid JWT: iss must be the service account's email".into());
    }
    if !claims["scope"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|s| s == "https://www.googleapis.com/auth/cloud-platform")
    }) {
        return Err(
            "Invalid JWT: scope must include https://www.googleapis.com/auth/cloud-platform".into(),
        );
    }
    if !claims["aud"]
        .as_str()
        .is_some_and(|aud| aud.ends_with("/token"))
    {
        return Err("Invalid JWT: aud must be the token endpoint".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("Invalid JWT: iat and exp are required".into());
    };
    if exp <= iat || exp - iat > 3600 || iat > now + 60 || exp < now {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.".into());
    }
    if let Some(key) = public_key {
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "Invalid JWT Signature.".to_owned())?;
        let signed = &assertion[..assertion.rfind('.').unwrap_or(0)];
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    }
    Ok(())
}

/// The parts of a model path the mock reads (any project and location are served).
#[derive(Deserialize)]
pub struct ModelPath {
    publisher: String,
    target: String,
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
    )
}

/// `POST /{version}/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{method}`.
pub async fn model(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    request: ApiRequest,
) -> Response {
    let admission = request.admit(&state);
    let authorized = match request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        Some(token) => state.tokens.valid(token),
        None => request.headers().contains_key("x-goog-api-key"),
    };
    let response = if !authorized {
        crate::gemini::google_error(&unauthenticated())
    } else {
        let (model, method) = path
            .target
            .rsplit_once(':')
            .unwrap_or((path.target.as_str(), ""));
        match (path.publisher.as_str(), method) {
            ("google", "generateContent" | "streamGenerateContent") => {
                match crate::gemini::answer(
                    &state,
                    &admission,
                    Ok(path.target.clone()),
                    &request,
                    crate::gemini::Auth::Checked,
                )
                .await
                {
                    Ok(response) => response,
                    Err(error) => crate::gemini::google_error(&error),
                }
            }
            ("google", "predict") => match predict(&state, &request).await {
                Ok(response) => response,
                Err(error) => crate::gemini::google_error(&error),
            },
            ("anthropic", "rawPredict" | "streamRawPredict") => {
                crate::anthropic::vertex_raw_predict(&state, &admission, &request, model).await
            }
            (publisher, method) => crate::gemini::google_error(&ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Publisher model `publishers/{publisher}/models/{model}` has no method `{method}` in the mock upstream"),
            )),
        }
    };
    finish(&state, &admission, response)
}

#[derive(Deserialize)]
struct PredictRequest {
    instances: Option<Vec<Instance>>,
    #[serde(default)]
    parameters: Option<PredictParameters>,
}

#[derive(Deserialize)]
struct Instance {
    content: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PredictParameters {
    output_dimensionality: Option<usize>,
}

/// Embeddings: one prediction per instance, with Vertex's `statistics.token_count`.
async fn predict(state: &AppState, request: &ApiRequest) -> Result<Response, ApiError> {
    let body = request.body()?;
    crate::faults::gate(state).await?;
    let parsed: PredictRequest = crate::openai::parse_body(body)?;
    let instances = parsed.instances.filter(|i| !i.is_empty()).ok_or_else(|| {
        ApiError::bad_request("instances: at least one instance is required", None)
    })?;
    let dimensions = parsed
        .parameters
        .and_then(|p| p.output_dimensionality)
        .unwrap_or(768)
        .clamp(1, 3072);
    let mut predictions = Vec::with_capacity(instances.len());
    for instance in &instances {
        let content = instance
            .content
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("instances[].content is required", None))?;
        let item = EmbeddingItem::Text(content);
        predictions.push(json!({"embeddings": {
            "values": embed(item, dimensions),
            "statistics": {"token_count": item.tokens(), "truncated": false},
        }}));
    }
    Ok(
        Json(json!({"predictions": predictions, "metadata": {"billableCharacterCount": 0}}))
            .into_response(),
    )
}
