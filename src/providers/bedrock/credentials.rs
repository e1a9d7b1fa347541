//! Where a Bedrock deployment's AWS credentials come from, and keeping temporary ones fresh.
//!
//! The chain, first match wins (the AWS SDKs' order, with LiteLLM's `litellm_params` first):
//!
//! 1. `aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`) in `litellm_params`;
//! 2. `aws_role_name` + `aws_web_identity_token` in `litellm_params` (web identity);
//! 3. `aws_profile_name`: that profile of the shared files (it must exist);
//! 4. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) in the environment;
//! 5. the `AWS_PROFILE` (else `default`) profile of `~/.aws/credentials` and `~/.aws/config`
//!    (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`): static keys, or `role_arn` +
//!    `web_identity_token_file`;
//! 6. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS's IRSA): STS
//!    `AssumeRoleWithWebIdentity`.
//!
//! The region: `aws_region_name`, `AWS_REGION`, `AWS_REGION_NAME`, `AWS_DEFAULT_REGION`, the
//! profile's `region`, else `us-west-2` (LiteLLM's default).
//!
//! Web-identity credentials are temporary: they are fetched on first use and again when they
//! expire within [`REFRESH_BEFORE`], by one caller while the others wait (one STS call per
//! expiry, not one per request). If a refresh fails while the old ones are still valid, those
//! are used. The STS endpoint is `aws_sts_endpoint`, `AWS_ENDPOINT_URL_STS`,
//! `AWS_ENDPOINT_URL`, else `https://sts.{region}.amazonaws.com` (tests point it at a mock).
//!
//! No secret (key, session token, web identity token) ever appears in an error or a log line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use axum::http::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};

use super::sigv4::{sign_request, Scope};
use crate::config::{AwsParams, Secret};
use crate::providers::http::HttpClient;
use crate::providers::{BoxFuture, Credentials, ProviderError, UpstreamRequest};

/// Temporary credentials are renewed when they expire within this.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
const DEFAULT_REGION: &str = "us-west-2";
const STS_TIMEOUT: Duration = Duration::from_secs(10);

/// One set of AWS keys. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    pub expires_at: Option<SystemTime>,
}

#[derive(Debug, Clone)]
enum Token {
    File(PathBuf),
    Inline(Secret),
}

/// `AssumeRoleWithWebIdentity` parameters.
#[derive(Debug, Clone)]
struct WebIdentity {
    role_arn: String,
    session_name: String,
    token: Token,
    sts_endpoint: String,
}

#[derive(Debug, Clone)]
enum Source {
    Static(Arc<AwsKeys>),
    WebIdentity(WebIdentity),
}

/// SigV4 credentials of one deployment, applied to each request just before it is sent.
#[derive(Debug)]
pub struct SigV4Credentials {
    region: String,
    service: &'static str,
    source: Source,
    /// Which link of the chain the credentials came from, for the start-up log.
    origin: &'static str,
    cached: ArcSwapOption<AwsKeys>,
    /// Held by the one caller that refreshes.
    refreshing: tokio::sync::Mutex<()>,
    refresh_before: Duration,
}

impl SigV4Credentials {
    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn origin(&self) -> &'static str {
        self.origin
    }

    /// Keys valid now, fetched or refreshed when needed.
    pub async fn keys(&self) -> Result<Arc<AwsKeys>, ProviderError> {
        let web = match &self.source {
            Source::Static(keys) => return Ok(keys.clone()),
            Source::WebIdentity(web) => web,
        };
        let fresh = |keys: &Option<Arc<AwsKeys>>| {
            keys.as_ref()
                .filter(|k| valid_for(k, self.refresh_before))
                .cloned()
        };
        if let Some(keys) = fresh(&self.cached.load_full()) {
            return Ok(keys);
        }
        // An async mutex, held across the STS call on purpose: the callers that arrive
        // meanwhile wait for its result instead of calling STS too.
        let _refreshing = self.refreshing.lock().await;
        let current = self.cached.load_full();
        if let Some(keys) = fresh(&current) {
            return Ok(keys);
        }
        match assume_role(web).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.cached.store(Some(keys.clone()));
                Ok(keys)
            }
            Err(err) => match current {
                Some(keys) if valid_for(&keys, Duration::ZERO) => {
                    tracing::warn!(error = %err, "refreshing AWS credentials failed; the current ones are still valid");
                    Ok(keys)
                }
                _ => Err(err),
            },
        }
    }
}

fn valid_for(keys: &AwsKeys, margin: Duration) -> bool {
    keys.expires_at
        .is_none_or(|at| SystemTime::now() + margin < at)
}

impl Credentials for SigV4Credentials {
    fn authorize<'a>(
        &'a self,
        request: &'a mut UpstreamRequest,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.authorize_method("POST", request)
    }

    fn authorize_method<'a>(
        &'a self,
        method: &'a str,
        request: &'a mut UpstreamRequest,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let keys = self.keys().await?;
            let scope = Scope {
                region: &self.region,
                service: self.service,
                time: SystemTime::now(),
            };
            sign_request(
                method,
                &request.url,
                &mut request.headers,
                &request.body,
                &keys,
                &scope,
            )
        })
    }
}

/// Resolves the chain for one deployment at start-up. Nothing is fetched yet (web identity
/// calls STS on first use). The error names what to set; it never holds a secret.
pub fn resolve(
    params: &AwsParams,
    service: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SigV4Credentials, String> {
    let profile_name = params
        .profile_name
        .clone()
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let profile = Profile::load(&profile_name, env);
    let region = params
        .region_name
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_REGION_NAME"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| profile.get("region"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let sts_endpoint = params
        .sts_endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_STS"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    let session_name = params
        .session_name
        .clone()
        .or_else(|| env("AWS_ROLE_SESSION_NAME"))
        .unwrap_or_else(|| "switchyard".to_owned());
    let web = |role_arn: String, token: Token| {
        Source::WebIdentity(WebIdentity {
            role_arn,
            session_name: session_name.clone(),
            token,
            sts_endpoint: sts_endpoint.trim_end_matches('/').to_owned(),
        })
    };
    let keys = |id: String, secret: Secret, token: Option<Secret>| {
        Source::Static(Arc::new(AwsKeys {
            access_key_id: id,
            secret_access_key: secret,
            session_token: token,
            expires_at: None,
        }))
    };

    let (source, origin) = if let (Some(id), Some(secret)) =
        (&params.access_key_id, &params.secret_access_key)
    {
        (
            keys(
                id.expose().to_owned(),
                secret.clone(),
                params.session_token.clone(),
            ),
            "litellm_params",
        )
    } else if params.access_key_id.is_some() || params.secret_access_key.is_some() {
        return Err("aws_access_key_id and aws_secret_access_key must be set together".to_owned());
    } else if let (Some(role), Some(token)) = (&params.role_name, &params.web_identity_token) {
        (
            web(role.clone(), Token::Inline(token.clone())),
            "litellm_params web identity",
        )
    } else if let Some(name) = &params.profile_name {
        let source = profile
            .source(&web, &keys)
            .ok_or_else(|| format!("AWS profile `{name}` was not found in the shared credentials or config file, or holds no keys"))?;
        (source, "profile")
    } else if let (Some(id), Some(secret)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        (
            keys(
                id,
                Secret::new(secret),
                env("AWS_SESSION_TOKEN").map(Secret::new),
            ),
            "environment",
        )
    } else if let Some(source) = profile.source(&web, &keys) {
        (source, "profile")
    } else if let (Some(file), Some(role)) =
        (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
    {
        (
            web(role, Token::File(PathBuf::from(file))),
            "environment web identity",
        )
    } else {
        return Err("no AWS credentials found: set aws_access_key_id and aws_secret_access_key (or aws_profile_name) in litellm_params, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, a profile in ~/.aws/credentials, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN".to_owned());
    };
    Ok(SigV4Credentials {
        region,
        service,
        source,
        origin,
        cached: ArcSwapOption::empty(),
        refreshing: tokio::sync::Mutex::new(()),
        refresh_before: REFRESH_BEFORE,
    })
}

/// The region of `params`' chain without resolving credentials (for the endpoint URL).
pub fn region(params: &AwsParams, env: &dyn Fn(&str) -> Option<String>) -> String {
    let profile_name = params
        .profile_name
        .clone()
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    params
        .region_name
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_REGION_NAME"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| Profile::load(&profile_name, env).get("region"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// One profile's keys from the shared credentials file and the shared config file (the
/// credentials file wins for a key set in both).
#[derive(Default)]
struct Profile(HashMap<String, String>);

impl Profile {
    fn load(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Profile {
        let home = env("HOME").map(PathBuf::from);
        let path = |var: &str, file: &str| {
            env(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(file)))
        };
        let read = |path: Option<PathBuf>| path.and_then(|p| std::fs::read_to_string(p).ok());
        let mut values = HashMap::new();
        if let Some(text) = read(path("AWS_CONFIG_FILE", "config")) {
            let section = if name == "default" {
                ini_section(&text, "default").or_else(|| ini_section(&text, "profile default"))
            } else {
                ini_section(&text, &format!("profile {name}"))
            };
            values.extend(section.unwrap_or_default());
        }
        if let Some(text) = read(path("AWS_SHARED_CREDENTIALS_FILE", "credentials")) {
            values.extend(ini_section(&text, name).unwrap_or_default());
        }
        Profile(values)
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|v| !v.is_empty()).cloned()
    }

    fn source(
        &self,
        web: &dyn Fn(String, Token) -> Source,
        keys: &dyn Fn(String, Secret, Option<Secret>) -> Source,
    ) -> Option<Source> {
        if let (Some(id), Some(secret)) = (
            self.get("aws_access_key_id"),
            self.get("aws_secret_access_key"),
        ) {
            return Some(keys(
                id,
                Secret::new(secret),
                self.get("aws_session_token").map(Secret::new),
            ));
        }
        if let (Some(role), Some(file)) =
            (self.get("role_arn"), self.get("web_identity_token_file"))
        {
            return Some(web(role, Token::File(PathBuf::from(file))));
        }
        None
    }
}

/// The `key = value` lines of `[section]` in an INI file (`#` and `;` comments).
fn ini_section(text: &str, section: &str) -> Option<HashMap<String, String>> {
    let mut found = None;
    let mut current: Option<bool> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let matches = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            current = Some(matches);
            if matches {
                found.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        if current == Some(true) {
            if let (Some(map), Some((key, value))) = (found.as_mut(), line.split_once('=')) {
                let map: &mut HashMap<String, String> = map;
                map.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
    }
    found
}

fn sts_client() -> Result<&'static HttpClient, ProviderError> {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = HttpClient::new()
        .map_err(|e| ProviderError::Connect(format!("cannot build the AWS STS client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// `application/x-www-form-urlencoded` value encoding.
pub(crate) fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>...</tag>` in an XML document (STS answers in XML).
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

/// `2026-12-07T19:00:00Z` (fractions allowed) as a time.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let time = time.split('.').next()?;
    let mut time = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(seconds)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

async fn assume_role(web: &WebIdentity) -> Result<AwsKeys, ProviderError> {
    let failed = |status: u16, message: String| ProviderError::Status {
        status,
        message: format!("AWS STS AssumeRoleWithWebIdentity failed: {message}"),
        kind: Some("authentication_error".into()),
        code: None,
        param: None,
        retry_after: None,
    };
    let token = match &web.token {
        Token::Inline(token) => token.expose().trim().to_owned(),
        Token::File(path) => std::fs::read_to_string(path)
            .map_err(|e| {
                failed(
                    401,
                    format!(
                        "cannot read the web identity token file {}: {e}",
                        path.display()
                    ),
                )
            })?
            .trim()
            .to_owned(),
    };
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(&web.role_arn),
        form_encode(&web.session_name),
        form_encode(&token)
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/xml"));
    let url = format!("{}/", web.sts_endpoint);
    let (status, answer) = sts_client()?
        .post_limited(&url, headers, body.into(), STS_TIMEOUT, 64 * 1024)
        .await
        .map_err(|why| ProviderError::Connect(format!("AWS STS: {why}")))?;
    let text = String::from_utf8_lossy(&answer);
    let scrub = |s: &str| {
        if token.len() >= 8 {
            s.replace(&token, "****")
        } else {
            s.to_owned()
        }
    };
    if !(200..300).contains(&status) {
        let code = xml_text(&text, "Code").unwrap_or("unknown error");
        let message = xml_text(&text, "Message").unwrap_or("");
        let status = if (400..500).contains(&status) {
            401
        } else {
            503
        };
        return Err(failed(status, scrub(&format!("{code}: {message}"))));
    }
    let field = |tag: &str| {
        xml_text(&text, tag)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| failed(503, format!("the answer has no {tag}")))
    };
    let expiration = field("Expiration")?;
    Ok(AwsKeys {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expires_at: Some(
            parse_timestamp(&expiration)
                .ok_or_else(|| failed(503, format!("unreadable Expiration `{expiration}`")))?,
        ),
    })
}

#[cfg(test)]
mod tests;
