//! Guardrails: stage 4 (pre-call, on the prompt as it will be sent upstream) and stage 8
//! (post-call, on the answer, whole or streamed) of the pipeline. Configured with LiteLLM's
//! top-level `guardrails:` list; every kind but the external ones is built in and runs in process:
//!
//! | `litellm_params.guardrail` | what | file |
//! |---|---|---|
//! | `pii` (also `presidio`) | e-mails, phones, cards, IBANs, SSNs, IPs (+ secrets if listed) | `pii.rs` |
//! | `secrets` (also `hide-secrets`, `secret_detection`) | API keys, JWTs, private keys | `secrets.rs` |
//! | `litellm_content_filter` | banned keywords and regexes | `content_filter.rs` |
//! | `prompt_injection` (also `detect_prompt_injection`) | scored injection phrasings | `injection.rs` |
//! | `max_prompt_tokens` | a prompt over a size in (estimated) tokens | here |
//! | `generic_guardrail_api`, `presidio` with `presidio_analyzer_api_base` | a service over HTTP | `external.rs` |
//!
//! Each kind implements [`Guardrail`]: it only *finds* (byte ranges, a label, an action); this
//! module decides (block wins, overlaps resolved), rewrites the text (mask, redact), keeps the
//! per-request vault that un-masks the answer (`output_parse_pii`), and counts every decision.
//! `stream.rs` applies the same on streamed answers with a bounded carry window.

mod content_filter;
mod external;
mod injection;
mod pii;
mod secrets;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::schema::Extra;

/// What one guardrail kind does: find what it guards against in a text.
pub trait Guardrail: Send + Sync {
    /// Appends every match in `text` (byte ranges on char boundaries, any order, may overlap).
    fn scan(&self, text: &str, hits: &mut Vec<Hit>);
    /// The longest match it can make: a stream holds back this many bytes so that a match split
    /// across chunks is still caught whole.
    fn max_match_bytes(&self) -> usize;
}

/// One match.
#[derive(Debug, Clone)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub label: Label,
    pub action: Action,
}

/// What was matched: an entity kind, a configured keyword or a named pattern. Never the value.
#[derive(Debug, Clone)]
pub enum Label {
    Entity(Entity),
    /// Why the keyword is banned (`keyword 'x' detected (…)`): config text, not user text.
    Keyword(Arc<str>),
    Pattern(Arc<str>),
    /// A prompt-injection score at or over the threshold.
    Injection {
        score: f64,
        threshold: f64,
    },
}

impl Label {
    /// The placeholder of an irreversible redaction (LiteLLM's: `<EMAIL_ADDRESS>`,
    /// `[KEYWORD_REDACTED]`, `[EMPLOYEE_ID_REDACTED]`).
    fn redaction(&self) -> String {
        match self {
            Label::Entity(entity) => format!("<{}>", entity.name()),
            Label::Keyword(_) => "[KEYWORD_REDACTED]".to_owned(),
            Label::Pattern(name) => format!("[{}_REDACTED]", name.to_ascii_uppercase()),
            Label::Injection { .. } => "[PROMPT_INJECTION]".to_owned(),
        }
    }

    /// A bounded metric label.
    fn metric(&self) -> String {
        match self {
            Label::Entity(entity) => entity.name().to_owned(),
            Label::Keyword(_) => "KEYWORD".to_owned(),
            Label::Pattern(name) => name.to_string(),
            Label::Injection { .. } => "PROMPT_INJECTION".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replaced by a numbered token (`<EMAIL_ADDRESS_1>`) the answer can be un-masked from.
    Mask,
    /// Replaced by the kind's placeholder, for good.
    Redact,
    /// The request (or the rest of the stream) is refused.
    Block,
}

impl Action {
    fn parse(text: &str) -> Option<Action> {
        match text.trim().to_ascii_uppercase().as_str() {
            "MASK" => Some(Action::Mask),
            "REDACT" => Some(Action::Redact),
            "BLOCK" => Some(Action::Block),
            _ => None,
        }
    }
}

/// The entities the built-in detectors find, by Presidio's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    EmailAddress,
    PhoneNumber,
    CreditCard,
    IbanCode,
    UsSsn,
    IpAddress,
    ApiKey,
    AwsAccessKey,
    GithubToken,
    SlackToken,
    GoogleApiKey,
    Jwt,
    PrivateKey,
}

impl Entity {
    const ALL: [Entity; 13] = [
        Entity::EmailAddress,
        Entity::PhoneNumber,
        Entity::CreditCard,
        Entity::IbanCode,
        Entity::UsSsn,
        Entity::IpAddress,
        Entity::ApiKey,
        Entity::AwsAccessKey,
        Entity::GithubToken,
        Entity::SlackToken,
        Entity::GoogleApiKey,
        Entity::Jwt,
        Entity::PrivateKey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Entity::EmailAddress => "EMAIL_ADDRESS",
            Entity::PhoneNumber => "PHONE_NUMBER",
            Entity::CreditCard => "CREDIT_CARD",
            Entity::IbanCode => "IBAN_CODE",
            Entity::UsSsn => "US_SSN",
            Entity::IpAddress => "IP_ADDRESS",
            Entity::ApiKey => "API_KEY",
            Entity::AwsAccessKey => "AWS_ACCESS_KEY",
            Entity::GithubToken => "GITHUB_TOKEN",
            Entity::SlackToken => "SLACK_TOKEN",
            Entity::GoogleApiKey => "GOOGLE_API_KEY",
            Entity::Jwt => "JWT",
            Entity::PrivateKey => "PRIVATE_KEY",
        }
    }

    fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    fn is_secret(self) -> bool {
        matches!(
            self,
            Entity::ApiKey
                | Entity::AwsAccessKey
                | Entity::GithubToken
                | Entity::SlackToken
                | Entity::GoogleApiKey
                | Entity::Jwt
                | Entity::PrivateKey
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Config

/// One entry of the top-level `guardrails:` list, as LiteLLM writes it.
#[derive(Debug, Deserialize)]
pub struct RawGuardrail {
    pub guardrail_name: String,
    pub litellm_params: RawGuardrailParams,
    #[serde(flatten)]
    pub extra: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
pub struct RawGuardrailParams {
    pub guardrail: String,
    #[serde(default)]
    pub mode: Option<OneOrMany>,
    #[serde(default)]
    pub default_on: Option<bool>,
    /// `pii`: Presidio's entity names → `MASK`, `REDACT` or `BLOCK`.
    #[serde(default)]
    pub pii_entities_config: Option<BTreeMap<String, String>>,
    /// `pii`: un-mask the answer for the caller.
    #[serde(default)]
    pub output_parse_pii: Option<bool>,
    /// `secrets`: `REDACT` (default) or `BLOCK` for every kind…
    #[serde(default)]
    pub action: Option<String>,
    /// …and per kind.
    #[serde(default)]
    pub secret_entities_config: Option<BTreeMap<String, String>>,
    /// `prompt_injection`: the score at which a prompt is refused.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `litellm_content_filter`.
    #[serde(default)]
    pub blocked_words: Option<Vec<content_filter::RawBlockedWord>>,
    #[serde(default)]
    pub patterns: Option<Vec<content_filter::RawPattern>>,
    /// `max_prompt_tokens`: the most (estimated) tokens a prompt may have.
    #[serde(default)]
    pub max_prompt_tokens: Option<u64>,
    /// `generic_guardrail_api`: the service (`/beta/litellm_basic_guardrail_api` is appended).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Sent as `x-api-key`, as LiteLLM does.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub additional_provider_specific_params: Option<Value>,
    /// External guardrails: seconds to wait for the service.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// `fail_closed` (default) or `fail_open` when the service is unreachable or too slow.
    #[serde(default)]
    pub unreachable_fallback: Option<String>,
    /// `false`: any failure of the service (not only unreachability) lets the request through.
    #[serde(default)]
    pub fail_on_error: Option<bool>,
    /// `presidio`: a real Presidio instead of the built-in detector.
    #[serde(default)]
    pub presidio_analyzer_api_base: Option<String>,
    #[serde(default)]
    pub presidio_anonymizer_api_base: Option<String>,
    #[serde(default)]
    pub presidio_language: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, IgnoredAny>,
}

impl RawGuardrailParams {
    /// The values that may be `os.environ/NAME` references (URLs and credentials), with their
    /// key, for the config loader to resolve.
    pub fn resolvable_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut out: Vec<(String, &mut String)> = Vec::new();
        for (key, value) in [
            ("api_base", self.api_base.as_mut()),
            ("api_key", self.api_key.as_mut()),
            (
                "presidio_analyzer_api_base",
                self.presidio_analyzer_api_base.as_mut(),
            ),
            (
                "presidio_anonymizer_api_base",
                self.presidio_anonymizer_api_base.as_mut(),
            ),
        ] {
            if let Some(value) = value {
                out.push((key.to_owned(), value));
            }
        }
        for (name, value) in self.headers.iter_mut().flatten() {
            out.push((format!("headers.{name}"), value));
        }
        out
    }
}

/// `mode: pre_call` or `mode: [pre_call, post_call]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// A guardrail ready to run.
pub struct Configured {
    pub name: Arc<str>,
    /// `pii`, `secrets` or `content_filter` (a metric label).
    pub kind: &'static str,
    pub pre_call: bool,
    pub post_call: bool,
    pub default_on: bool,
    pub output_parse_pii: bool,
    guardrail: Box<dyn Guardrail>,
    /// `max_prompt_tokens`: the limit.
    max_prompt_tokens: Option<u64>,
    /// An external service, asked after the built-in guardrails.
    external: Option<external::External>,
}

/// The scanner of a guardrail that does not scan texts itself (size limit, external service).
struct NoScan;

impl Guardrail for NoScan {
    fn scan(&self, _text: &str, _hits: &mut Vec<Hit>) {}
    fn max_match_bytes(&self) -> usize {
        0
    }
}

/// Every configured guardrail (part of the config snapshot: a reload swaps it whole).
#[derive(Clone, Default)]
pub struct Guardrails(Arc<[Arc<Configured>]>);

impl std::fmt::Debug for Guardrails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|g| (&*g.name, g.kind)))
            .finish()
    }
}

impl Guardrails {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds the list; problems are errors naming the entry (`guardrails[1].litellm_params…`),
    /// keys not implemented are warnings.
    pub fn from_raw(
        raw: Vec<RawGuardrail>,
        warn: &mut dyn FnMut(String),
    ) -> Result<Guardrails, (String, String)> {
        let mut list: Vec<Arc<Configured>> = Vec::with_capacity(raw.len());
        for (i, entry) in raw.into_iter().enumerate() {
            let at = format!("guardrails[{i}]");
            let mut params = entry.litellm_params;
            for key in entry.extra.keys() {
                warn(format!(
                    "config key `{at}.{key}` is not supported and is ignored"
                ));
            }
            let name = entry.guardrail_name.trim().to_owned();
            if name.is_empty() {
                return Err((format!("{at}.guardrail_name"), "must not be empty".into()));
            }
            if list.iter().any(|g| *g.name == *name) {
                return Err((
                    format!("{at}.guardrail_name"),
                    format!("`{name}` is used by an earlier guardrail"),
                ));
            }
            let p = format!("{at}.litellm_params");
            let (mut pre_call, mut post_call) = (false, false);
            let modes = params
                .mode
                .take()
                .map(OneOrMany::into_vec)
                .unwrap_or_else(|| vec!["pre_call".to_owned()]);
            for mode in &modes {
                match mode.as_str() {
                    "pre_call" => pre_call = true,
                    // LiteLLM runs it beside the call and cancels the answer; here it runs
                    // before the call (no upstream cost for a refused prompt).
                    "during_call" => pre_call = true,
                    "post_call" => post_call = true,
                    // Switchyard never logs prompts or answers, so there is nothing to mask.
                    "logging_only" => warn(format!(
                        "{p}.mode: `logging_only` does nothing here: prompts and answers are never logged"
                    )),
                    other => {
                        return Err((
                            format!("{p}.mode"),
                            format!("`{other}` is not a mode: use pre_call, during_call or post_call"),
                        ))
                    }
                }
            }
            let mut known_keys: Vec<&str> = Vec::new();
            let mut max_prompt_tokens = None;
            let mut external_service = None;
            let (kind, guardrail): (&'static str, Box<dyn Guardrail>) = match params
                .guardrail
                .as_str()
            {
                "presidio" if params.presidio_analyzer_api_base.is_some() => {
                    known_keys.extend([
                        "pii_entities_config",
                        "presidio_anonymizer_api_base",
                        "presidio_language",
                        "timeout",
                        "unreachable_fallback",
                        "fail_on_error",
                    ]);
                    let Some(anonymizer) = &params.presidio_anonymizer_api_base else {
                        return Err((
                            format!("{p}.presidio_anonymizer_api_base"),
                            "is required with presidio_analyzer_api_base".into(),
                        ));
                    };
                    let mut entities = BTreeMap::new();
                    for (name, action) in params.pii_entities_config.iter().flatten() {
                        let block = match Action::parse(action) {
                            Some(Action::Block) => true,
                            Some(_) => false,
                            None => {
                                return Err((
                                    format!("{p}.pii_entities_config.{name}"),
                                    format!("must be MASK, REDACT or BLOCK, got `{action}`"),
                                ))
                            }
                        };
                        entities.insert(name.clone(), block);
                    }
                    let service = external::Service::Presidio {
                        analyzer: external::presidio_base(
                            params.presidio_analyzer_api_base.as_deref().unwrap_or_default(),
                        ),
                        anonymizer: external::presidio_base(anonymizer),
                        language: params.presidio_language.clone().unwrap_or_else(|| "en".into()),
                        entities,
                    };
                    external_service = Some(external_guardrail(&params, &p, service, warn)?);
                    ("presidio", Box::new(NoScan))
                }
                "generic_guardrail_api" => {
                    known_keys.extend([
                        "api_key",
                        "headers",
                        "additional_provider_specific_params",
                        "timeout",
                        "unreachable_fallback",
                        "fail_on_error",
                    ]);
                    let Some(api_base) = params.api_base.as_deref().filter(|b| !b.trim().is_empty())
                    else {
                        return Err((format!("{p}.api_base"), "is required".into()));
                    };
                    let mut headers = external::json_headers();
                    let mut set = |name: &str, value: &str| -> Result<(), (String, String)> {
                        let bad = || (format!("{p}.headers"), format!("`{name}` is not a valid HTTP header"));
                        let name = hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
                        let value = hyper::header::HeaderValue::from_str(value).map_err(|_| bad())?;
                        headers.insert(name, value);
                        Ok(())
                    };
                    for (name, value) in params.headers.iter().flatten() {
                        set(name, value)?;
                    }
                    if let Some(key) = &params.api_key {
                        set("x-api-key", key)?;
                    }
                    let service = external::Service::Generic {
                        url: external::generic_url(api_base),
                        headers,
                        additional_params: params.additional_provider_specific_params.clone(),
                    };
                    external_service = Some(external_guardrail(&params, &p, service, warn)?);
                    ("generic_guardrail_api", Box::new(NoScan))
                }
                "max_prompt_tokens" => {
                    known_keys.push("max_prompt_tokens");
                    let Some(limit) = params.max_prompt_tokens.filter(|n| *n > 0) else {
                        return Err((
                            format!("{p}.max_prompt_tokens"),
                            "is required and must be over 0".into(),
                        ));
                    };
                    max_prompt_tokens = Some(limit);
                    ("max_prompt_tokens", Box::new(NoScan))
                }
                "pii" | "presidio" => {
                    if params.guardrail == "presidio" {
                        warn(format!(
                            "{p}.guardrail: `presidio` without `presidio_analyzer_api_base` runs Switchyard's built-in PII detector; no Presidio server is called"
                        ));
                    }
                    known_keys.extend(["pii_entities_config", "output_parse_pii"]);
                    let actions = match &params.pii_entities_config {
                        None => [
                            Entity::EmailAddress,
                            Entity::PhoneNumber,
                            Entity::CreditCard,
                            Entity::IbanCode,
                            Entity::UsSsn,
                            Entity::IpAddress,
                        ]
                        .into_iter()
                        .map(|e| (e, Action::Mask))
                        .collect(),
                        Some(config) => entity_actions(config, &format!("{p}.pii_entities_config"), warn)?,
                    };
                    ("pii", Box::new(pii::Pii::new(actions)))
                }
                "secrets" | "hide-secrets" | "hide_secrets" | "secret_detection" => {
                    known_keys.extend(["action", "secret_entities_config"]);
                    let action = match &params.action {
                        None => Action::Redact,
                        Some(text) => match Action::parse(text) {
                            Some(Action::Mask) | Some(Action::Redact) => Action::Redact,
                            Some(Action::Block) => Action::Block,
                            None => {
                                return Err((
                                    format!("{p}.action"),
                                    format!("must be REDACT or BLOCK, got `{text}`"),
                                ))
                            }
                        },
                    };
                    let per_entity = match &params.secret_entities_config {
                        None => Vec::new(),
                        Some(config) => entity_actions(config, &format!("{p}.secret_entities_config"), warn)?,
                    };
                    ("secrets", Box::new(secrets::Secrets { action, per_entity }))
                }
                "litellm_content_filter" | "content_filter" => {
                    known_keys.extend(["blocked_words", "patterns"]);
                    let filter = content_filter::ContentFilter::new(
                        params.blocked_words.unwrap_or_default(),
                        params.patterns.unwrap_or_default(),
                    )
                    .map_err(|e| (p.clone(), e))?;
                    ("content_filter", Box::new(filter))
                }
                "prompt_injection" | "detect_prompt_injection" => {
                    known_keys.push("threshold");
                    let threshold = params.threshold.unwrap_or(injection::DEFAULT_THRESHOLD);
                    let guard = injection::Injection::new(threshold)
                        .map_err(|e| (format!("{p}.threshold"), e))?;
                    ("prompt_injection", Box::new(guard))
                }
                other => {
                    return Err((
                        format!("{p}.guardrail"),
                        format!(
                            "`{other}` needs a service Switchyard does not call; the guardrails are pii, secrets, litellm_content_filter, prompt_injection, max_prompt_tokens, generic_guardrail_api and presidio (docs/guardrails.md)"
                        ),
                    ))
                }
            };
            // Keys of another kind, set here by mistake, would silently do nothing.
            if (external_service.is_some() || max_prompt_tokens.is_some()) && post_call {
                return Err((
                    format!("{p}.mode"),
                    format!("`{}` runs pre_call only", params.guardrail),
                ));
            }
            let set: [(&str, bool); 17] = [
                ("max_prompt_tokens", params.max_prompt_tokens.is_some()),
                ("api_key", params.api_key.is_some()),
                ("headers", params.headers.is_some()),
                (
                    "additional_provider_specific_params",
                    params.additional_provider_specific_params.is_some(),
                ),
                ("timeout", params.timeout.is_some()),
                (
                    "unreachable_fallback",
                    params.unreachable_fallback.is_some(),
                ),
                ("fail_on_error", params.fail_on_error.is_some()),
                (
                    "presidio_anonymizer_api_base",
                    params.presidio_anonymizer_api_base.is_some(),
                ),
                ("presidio_language", params.presidio_language.is_some()),
                ("threshold", params.threshold.is_some()),
                ("pii_entities_config", params.pii_entities_config.is_some()),
                ("output_parse_pii", params.output_parse_pii.is_some()),
                ("action", params.action.is_some()),
                (
                    "secret_entities_config",
                    params.secret_entities_config.is_some(),
                ),
                ("blocked_words", false),
                ("patterns", false),
                (
                    "api_base",
                    params.api_base.is_some() && params.guardrail != "generic_guardrail_api",
                ),
            ];
            for (key, is_set) in set {
                if is_set && !known_keys.contains(&key) {
                    warn(format!(
                        "{p}.{key} does nothing for guardrail `{}`",
                        params.guardrail
                    ));
                }
            }
            for key in params.extra.keys() {
                warn(format!(
                    "config key `{p}.{key}` is not supported and is ignored"
                ));
            }
            list.push(Arc::new(Configured {
                name: name.into(),
                kind,
                pre_call,
                post_call,
                default_on: params.default_on.unwrap_or(false),
                output_parse_pii: params.output_parse_pii.unwrap_or(false),
                guardrail,
                max_prompt_tokens,
                external: external_service,
            }));
        }
        Ok(Guardrails(list.into()))
    }

    fn get(&self, name: &str) -> Option<&Arc<Configured>> {
        self.0.iter().find(|g| &*g.name == name)
    }
}

/// The parts every external guardrail shares: the bound on a call and the fail mode.
fn external_guardrail(
    params: &RawGuardrailParams,
    at: &str,
    service: external::Service,
    warn: &mut dyn FnMut(String),
) -> Result<external::External, (String, String)> {
    let timeout = match params.timeout {
        None => external::DEFAULT_TIMEOUT,
        Some(seconds) if seconds > 0.0 && seconds <= 600.0 => {
            std::time::Duration::from_secs_f64(seconds)
        }
        Some(seconds) => {
            return Err((
                format!("{at}.timeout"),
                format!("must be over 0 and at most 600 seconds, got {seconds}"),
            ))
        }
    };
    let unreachable_open = match params.unreachable_fallback.as_deref() {
        None | Some("fail_closed") => false,
        Some("fail_open") => true,
        Some(other) => {
            return Err((
                format!("{at}.unreachable_fallback"),
                format!("must be fail_closed or fail_open, got `{other}`"),
            ))
        }
    };
    if params.fail_on_error == Some(false) && !unreachable_open {
        warn(format!(
            "{at}.fail_on_error: false lets every request through when the service fails (fail open)"
        ));
    }
    // One switch here: any failure (unreachable, slow, an error status, a malformed answer) is
    // handled alike, since a gateway cannot tell a broken service from an unreachable one.
    let fail_mode = if unreachable_open || params.fail_on_error == Some(false) {
        external::FailMode::Open
    } else {
        external::FailMode::Closed
    };
    Ok(external::External {
        service,
        timeout,
        fail_mode,
    })
}

fn entity_actions(
    config: &BTreeMap<String, String>,
    at: &str,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<(Entity, Action)>, (String, String)> {
    let mut actions = Vec::new();
    for (name, action) in config {
        let Some(action) = Action::parse(action) else {
            return Err((
                format!("{at}.{name}"),
                format!("must be MASK, REDACT or BLOCK, got `{action}`"),
            ));
        };
        match Entity::from_name(name) {
            Some(entity) => actions.push((entity, action)),
            // Presidio has ~50 entity types (PERSON, LOCATION …) that need an NER model.
            None => warn(format!(
                "{at}.{name}: no built-in detector for this entity; it is not looked for"
            )),
        }
    }
    Ok(actions)
}

// ---------------------------------------------------------------------------------------------
// The pipeline's stages 4 and 8, as handlers call them

/// Stage 4, first half: the request's guardrails (after `admit`, which read its metadata).
pub fn select(
    ctx: &crate::pipeline::RequestContext,
    extra: &mut Extra,
) -> Result<Run, crate::api::error::ApiError> {
    Ok(Run::select(
        &ctx.config.config.guardrails,
        extra,
        ctx.metadata.as_ref(),
        &ctx.principal,
    )?)
}

/// Stage 4, second half: `check` walks the prompt's texts through the run (rewriting them in
/// place): the built-in guardrails, then the size limit, then (walking again to collect the
/// texts, and once more to write back a rewrite) the external services. What ran and what it did
/// goes on the request's metadata (spend log, callbacks).
pub async fn pre_call(
    ctx: &mut crate::pipeline::RequestContext,
    run: &mut Run,
    mut check: impl FnMut(&mut Run) -> Result<(), Blocked>,
) -> Result<(), crate::api::error::ApiError> {
    if run.is_empty() {
        return Ok(());
    }
    run.prompt_chars = 0;
    let result = match check(run).and_then(|()| run.check_prompt_size()) {
        Ok(()) => {
            let model = ctx.requested_model.clone();
            run.external(ctx.http(), &model, &mut check).await
        }
        Err(blocked) => Err(blocked.into()),
    };
    run.describe(&mut ctx.metadata);
    result
}

// ---------------------------------------------------------------------------------------------
// A request's guardrails

/// A refusal: rendered as LiteLLM renders a guardrail's `HTTPException(400)` (api/error.rs).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Blocked {
    pub guardrail: Arc<str>,
    pub mode: &'static str,
    pub message: String,
}

/// Which stage a pass is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    PreCall,
    PostCall,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::PreCall => "pre_call",
            Stage::PostCall => "post_call",
        }
    }
}

/// The masked values of one request: token → original, for un-masking its answer. Maps both
/// ways, so a prompt with thousands of values stays linear.
#[derive(Debug, Default, Clone)]
pub struct Vault {
    originals: HashMap<String, String>,
    tokens: HashMap<(Entity, String), String>,
    counts: HashMap<Entity, u32>,
}

impl Vault {
    fn token(&mut self, entity: Entity, original: &str) -> String {
        if let Some(token) = self.tokens.get(&(entity, original.to_owned())) {
            return token.clone();
        }
        let n = self.counts.entry(entity).or_insert(0);
        *n += 1;
        let token = format!("<{}_{n}>", entity.name());
        self.originals.insert(token.clone(), original.to_owned());
        self.tokens
            .insert((entity, original.to_owned()), token.clone());
        token
    }

    fn original(&self, token: &str) -> Option<&str> {
        self.originals.get(token).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }
}

/// The longest mask token (`<GOOGLE_API_KEY_4294967295>` fits).
const MAX_TOKEN_BYTES: usize = 40;

/// The guardrails one request runs, and what they did (cloned per attempt of a stream, so
/// each attempt's answer is checked from its start).
#[derive(Clone)]
pub struct Run {
    active: Vec<Arc<Configured>>,
    pub vault: Vault,
    /// Per active guardrail: what its pre-call pass did (for the finished event).
    outcomes: Vec<&'static str>,
    /// What a walk over the prompt does with each text.
    phase: Phase,
    /// The characters of the prompt's texts as the built-in guardrails left them.
    prompt_chars: u64,
}

/// A walk over the prompt's texts: the built-in guardrails, or (for external ones) collecting
/// the texts, or writing back the service's rewrite in the same order.
#[derive(Clone, Default)]
enum Phase {
    #[default]
    BuiltIn,
    Collect(Vec<String>),
    Apply(std::vec::IntoIter<String>),
}

impl Run {
    /// No guardrail (the common case: costs nothing).
    pub fn none() -> Run {
        Run {
            active: Vec::new(),
            vault: Vault::default(),
            outcomes: Vec::new(),
            phase: Phase::BuiltIn,
            prompt_chars: 0,
        }
    }

    /// The request's guardrails: those `default_on`, those its key or team lists in
    /// `metadata.guardrails`, and those it asks for (`guardrails: [...]` in the body or in
    /// `metadata`; taken out of the body so the upstream never sees it).
    pub fn select(
        configured: &Guardrails,
        extra: &mut Extra,
        metadata: Option<&Map<String, Value>>,
        principal: &crate::auth::Principal,
    ) -> Result<Run, Blocked> {
        let from_body = extra.remove("guardrails");
        let from_metadata = metadata.and_then(|m| m.get("guardrails"));
        let from_key = principal.key().and_then(|k| k.metadata.get("guardrails"));
        let from_team = principal.team().and_then(|t| t.metadata.get("guardrails"));
        if configured.is_empty()
            && from_body.is_none()
            && from_metadata.is_none()
            && from_key.is_none()
            && from_team.is_none()
        {
            return Ok(Run::none());
        }
        let mut active: Vec<Arc<Configured>> = configured
            .0
            .iter()
            .filter(|g| g.default_on)
            .cloned()
            .collect();
        for list in [from_body.as_ref(), from_metadata, from_key, from_team]
            .into_iter()
            .flatten()
        {
            for name in names(list)? {
                let Some(guardrail) = configured.get(name) else {
                    return Err(Blocked {
                        guardrail: name.into(),
                        mode: "pre_call",
                        message: format!(
                            "guardrail `{}` is not configured on this gateway",
                            name.chars().take(100).collect::<String>()
                        ),
                    });
                };
                if !active.iter().any(|g| Arc::ptr_eq(g, guardrail)) {
                    active.push(guardrail.clone());
                }
            }
        }
        let outcomes = vec!["passed"; active.len()];
        Ok(Run {
            active,
            vault: Vault::default(),
            outcomes,
            phase: Phase::BuiltIn,
            prompt_chars: 0,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    fn has(&self, stage: Stage) -> bool {
        self.active.iter().any(|g| match stage {
            Stage::PreCall => g.pre_call,
            Stage::PostCall => g.post_call,
        })
    }

    fn unmasks(&self) -> bool {
        !self.vault.is_empty() && self.active.iter().any(|g| g.output_parse_pii)
    }

    /// Whether the answer needs a post-call pass (guardrails or un-masking).
    pub fn wants_post_call(&self) -> bool {
        self.has(Stage::PostCall) || self.unmasks()
    }

    /// What ran and what each did, for the request's metadata (`applied_guardrails`,
    /// `guardrail_decisions`): names and outcomes only, never a matched value.
    pub fn describe(&self, metadata: &mut Option<Map<String, Value>>) {
        if self.active.is_empty() {
            return;
        }
        let metadata = metadata.get_or_insert_with(Map::new);
        metadata.insert(
            "applied_guardrails".into(),
            self.active.iter().map(|g| Value::from(&*g.name)).collect(),
        );
        let decisions: Map<String, Value> = self
            .active
            .iter()
            .zip(&self.outcomes)
            .map(|(g, outcome)| (g.name.to_string(), Value::from(*outcome)))
            .collect();
        metadata.insert("guardrail_decisions".into(), decisions.into());
    }

    /// Stage 4 on one text of the prompt.
    pub fn pre_call_text(&mut self, text: &mut String) -> Result<(), Blocked> {
        let mut tally = Tally::default();
        let result = self.pass(Stage::PreCall, text, &mut tally);
        self.count(Stage::PreCall, &tally, result.as_ref().err());
        result
    }

    /// Stage 4 on an OpenAI chat prompt: message text, content parts, tool-call arguments.
    pub fn pre_call_chat(
        &mut self,
        messages: &mut [crate::schema::Message],
    ) -> Result<(), Blocked> {
        if !self.has(Stage::PreCall) {
            return Ok(());
        }
        let mut tally = Tally::default();
        let result = (|| {
            for message in messages.iter_mut() {
                match &mut message.content {
                    Some(crate::schema::MessageContent::Text(text)) => {
                        self.pass(Stage::PreCall, text, &mut tally)?
                    }
                    Some(crate::schema::MessageContent::Parts(parts)) => {
                        for text in parts.iter_mut().filter_map(|p| p.text.as_mut()) {
                            self.pass(Stage::PreCall, text, &mut tally)?;
                        }
                    }
                    None => {}
                }
                for call in message.tool_calls.iter_mut().flatten() {
                    self.pass(Stage::PreCall, &mut call.function.arguments, &mut tally)?;
                }
            }
            Ok(())
        })();
        self.count(Stage::PreCall, &tally, result.as_ref().err());
        result
    }

    /// Stage 4 on every string inside a JSON value (a completion `prompt`, an embedding
    /// `input`, an Anthropic tool's `input`).
    pub fn pre_call_json(&mut self, value: &mut Value) -> Result<(), Blocked> {
        if !self.has(Stage::PreCall) {
            return Ok(());
        }
        let mut tally = Tally::default();
        let result = self.json(Stage::PreCall, value, &mut tally, 0);
        self.count(Stage::PreCall, &tally, result.as_ref().err());
        result
    }

    /// Stage 4 on an Anthropic Messages prompt: `system`, text blocks, tool results and tool
    /// inputs.
    pub fn pre_call_messages(
        &mut self,
        request: &mut crate::providers::anthropic::wire::MessagesRequest,
    ) -> Result<(), Blocked> {
        use crate::providers::anthropic::wire::{Content, SystemPrompt};
        if !self.has(Stage::PreCall) {
            return Ok(());
        }
        let mut tally = Tally::default();
        let result = (|| {
            match &mut request.system {
                Some(SystemPrompt::Text(text)) => self.pass(Stage::PreCall, text, &mut tally)?,
                Some(SystemPrompt::Blocks(blocks)) => self.blocks(blocks, &mut tally)?,
                None => {}
            }
            for message in &mut request.messages {
                match &mut message.content {
                    Content::Text(text) => self.pass(Stage::PreCall, text, &mut tally)?,
                    Content::Blocks(blocks) => self.blocks(blocks, &mut tally)?,
                }
            }
            Ok(())
        })();
        self.count(Stage::PreCall, &tally, result.as_ref().err());
        result
    }

    fn blocks(
        &mut self,
        blocks: &mut [crate::providers::anthropic::wire::ContentBlock],
        tally: &mut Tally,
    ) -> Result<(), Blocked> {
        use crate::providers::anthropic::wire::{Content, ContentBlock};
        for block in blocks {
            match block {
                ContentBlock::Text { text, .. } => self.pass(Stage::PreCall, text, tally)?,
                ContentBlock::ToolUse { input, .. } => {
                    self.json(Stage::PreCall, input, tally, 0)?
                }
                ContentBlock::ToolResult {
                    content: Some(content),
                    ..
                } => match content {
                    Content::Text(text) => self.pass(Stage::PreCall, text, tally)?,
                    Content::Blocks(inner) => self.blocks(inner, tally)?,
                },
                _ => {}
            }
        }
        Ok(())
    }

    fn json(
        &mut self,
        stage: Stage,
        value: &mut Value,
        tally: &mut Tally,
        depth: usize,
    ) -> Result<(), Blocked> {
        // serde_json refuses nesting deeper than 128 when parsing; this is a second fence.
        if depth > 256 {
            return Ok(());
        }
        match value {
            Value::String(text) => self.pass(stage, text, tally),
            Value::Array(items) => items
                .iter_mut()
                .try_for_each(|v| self.json(stage, v, tally, depth + 1)),
            Value::Object(map) => map
                .values_mut()
                .try_for_each(|v| self.json(stage, v, tally, depth + 1)),
            _ => Ok(()),
        }
    }

    /// Stage 8 on a whole OpenAI answer: content and tool-call arguments of every choice.
    pub fn post_call_chat(
        &mut self,
        answer: &mut crate::schema::ChatCompletion,
    ) -> Result<(), Blocked> {
        let mut tally = Tally::default();
        let result = (|| {
            for choice in &mut answer.choices {
                if let Some(text) = &mut choice.message.content {
                    self.pass(Stage::PostCall, text, &mut tally)?;
                }
                for call in choice.message.tool_calls.iter_mut().flatten() {
                    self.pass(Stage::PostCall, &mut call.function.arguments, &mut tally)?;
                }
            }
            Ok(())
        })();
        self.count(Stage::PostCall, &tally, result.as_ref().err());
        result
    }

    /// Stage 8 on a whole completions answer (`choices[].text`).
    pub fn post_call_completion(&mut self, body: &mut Extra) -> Result<(), Blocked> {
        let mut tally = Tally::default();
        let result = (|| {
            let Some(Value::Array(choices)) = body.get_mut("choices") else {
                return Ok(());
            };
            for choice in choices {
                if let Some(Value::String(text)) = choice.get_mut("text") {
                    self.pass(Stage::PostCall, text, &mut tally)?;
                }
            }
            Ok(())
        })();
        self.count(Stage::PostCall, &tally, result.as_ref().err());
        result
    }

    /// Stage 8 on a whole Anthropic answer: text blocks and tool inputs.
    pub fn post_call_message(
        &mut self,
        message: &mut crate::providers::anthropic::wire::MessageResponse,
    ) -> Result<(), Blocked> {
        use crate::providers::anthropic::wire::ContentBlock;
        let mut tally = Tally::default();
        let result = (|| {
            for block in &mut message.content {
                match block {
                    ContentBlock::Text { text, .. } => {
                        self.pass(Stage::PostCall, text, &mut tally)?
                    }
                    ContentBlock::ToolUse { input, .. } => {
                        self.json(Stage::PostCall, input, &mut tally, 0)?
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        self.count(Stage::PostCall, &tally, result.as_ref().err());
        result
    }

    /// One text through every guardrail of the stage (and, post-call, the un-masking).
    fn pass(&mut self, stage: Stage, text: &mut String, tally: &mut Tally) -> Result<(), Blocked> {
        if text.is_empty() {
            return Ok(());
        }
        if stage == Stage::PreCall {
            match &mut self.phase {
                Phase::BuiltIn => {}
                Phase::Collect(texts) => {
                    texts.push(text.clone());
                    return Ok(());
                }
                Phase::Apply(rewritten) => {
                    if let Some(rewritten) = rewritten.next() {
                        *text = rewritten;
                    }
                    return Ok(());
                }
            }
        }
        let (rewritten, _) = self.rewrite(stage, text, text.len(), tally)?;
        if let Some(rewritten) = rewritten {
            *text = rewritten;
        }
        if stage == Stage::PreCall {
            self.prompt_chars += text.chars().count() as u64;
        }
        Ok(())
    }

    /// `max_prompt_tokens`: the prompt's size estimated as the router estimates it (4
    /// characters a token, `providers::mock::estimate_prompt_tokens`), over every text the
    /// guardrails see (tool-call arguments included).
    fn check_prompt_size(&mut self) -> Result<(), Blocked> {
        let tokens = self.prompt_chars.div_ceil(4);
        for (index, guardrail) in self.active.iter().enumerate() {
            let Some(limit) = guardrail.max_prompt_tokens.filter(|_| guardrail.pre_call) else {
                continue;
            };
            let over = tokens > limit;
            let outcome = if over { "blocked" } else { "passed" };
            crate::telemetry::guardrail_decision(&guardrail.name, "pre_call", outcome);
            if over {
                self.outcomes[index] = "blocked";
                return Err(Blocked {
                    guardrail: guardrail.name.clone(),
                    mode: "pre_call",
                    message: format!(
                        "Prompt too long: about {tokens} tokens, over the {limit} allowed by Guardrail: {}.",
                        guardrail.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// The external services, in the order the run lists them, each on the texts as the one
    /// before left them; a rewrite is written back once, at the end.
    async fn external(
        &mut self,
        http: &crate::providers::http::HttpClient,
        model: &str,
        check: &mut impl FnMut(&mut Run) -> Result<(), Blocked>,
    ) -> Result<(), crate::api::error::ApiError> {
        let services: Vec<usize> = (0..self.active.len())
            .filter(|&i| self.active[i].pre_call && self.active[i].external.is_some())
            .collect();
        if services.is_empty() {
            return Ok(());
        }
        self.phase = Phase::Collect(Vec::new());
        let walked = check(self);
        let Phase::Collect(mut texts) = std::mem::take(&mut self.phase) else {
            return Ok(());
        };
        walked?;
        let mut changed = false;
        for index in services {
            let guardrail = self.active[index].clone();
            let Some(service) = &guardrail.external else {
                continue;
            };
            let name = &guardrail.name;
            let outcome = match service.check(http, &texts, model).await {
                Ok(external::Verdict::Allow) => "passed",
                Ok(external::Verdict::Rewrite(rewritten)) => {
                    changed |= rewritten != texts;
                    texts = rewritten;
                    "rewritten"
                }
                Ok(verdict @ (external::Verdict::Block(_) | external::Verdict::BlockEntity(_))) => {
                    self.outcomes[index] = "blocked";
                    crate::telemetry::guardrail_decision(name, "pre_call", "blocked");
                    let message = match verdict {
                        external::Verdict::BlockEntity(entity) => format!(
                            "Blocked entity detected: {entity} by Guardrail: {name}. This entity is not allowed to be used in this request."
                        ),
                        external::Verdict::Block(reason) => {
                            format!("Blocked by Guardrail: {name}: {reason}")
                        }
                        _ => String::new(),
                    };
                    return Err(Blocked {
                        guardrail: name.clone(),
                        mode: "pre_call",
                        message,
                    }
                    .into());
                }
                Err(external::Failure(why)) => match service.fail_mode {
                    external::FailMode::Open => {
                        tracing::warn!(guardrail = %name, "guardrail service failed, the request goes on unchecked (fail_open): {why}");
                        "error_passed"
                    }
                    external::FailMode::Closed => {
                        tracing::warn!(guardrail = %name, "guardrail service failed, the request is refused (fail_closed): {why}");
                        self.outcomes[index] = "unavailable";
                        crate::telemetry::guardrail_decision(name, "pre_call", "unavailable");
                        return Err(crate::api::error::ApiError::GuardrailUnavailable(
                            name.clone(),
                        ));
                    }
                },
            };
            self.outcomes[index] = outcome;
            crate::telemetry::guardrail_decision(name, "pre_call", outcome);
        }
        if changed {
            self.phase = Phase::Apply(texts.into_iter());
            let walked = check(self);
            self.phase = Phase::BuiltIn;
            walked?;
        }
        Ok(())
    }

    /// The matches of every guardrail of `stage` in `text` (and, post-call, the mask tokens to
    /// restore), block first; then `text[..upto]` rewritten, unless a match crosses `upto`, in
    /// which case the text is rewritten up to that match's start. Returns the rewritten prefix
    /// (`None`: unchanged) and how many bytes of `text` it covers.
    fn rewrite(
        &mut self,
        stage: Stage,
        text: &str,
        upto: usize,
        tally: &mut Tally,
    ) -> Result<(Option<String>, usize), Blocked> {
        let mut hits: Vec<(usize, Hit)> = Vec::new();
        let mut scratch = Vec::new();
        for (index, guardrail) in self.active.iter().enumerate() {
            let runs = match stage {
                Stage::PreCall => guardrail.pre_call,
                Stage::PostCall => guardrail.post_call,
            };
            if !runs {
                continue;
            }
            scratch.clear();
            guardrail.guardrail.scan(text, &mut scratch);
            hits.extend(scratch.drain(..).map(|h| (index, h)));
        }
        let mut restores = Vec::new();
        if stage == Stage::PostCall && self.unmasks() {
            tokens(text, &self.vault, &mut restores);
        }
        if hits.is_empty() && restores.is_empty() {
            return Ok((None, upto));
        }
        // A block anywhere before the cut refuses the whole text.
        if let Some((index, hit)) = hits
            .iter()
            .filter(|(_, h)| h.action == Action::Block && h.start < upto)
            .min_by_key(|(_, h)| h.start)
        {
            let guardrail = &self.active[*index];
            tally.note(*index, &hit.label, Action::Block);
            if stage == Stage::PreCall {
                self.outcomes[*index] = "blocked";
            }
            return Err(blocked(guardrail, stage, &hit.label));
        }
        // Earliest first, the longest of those starting together; overlapping later ones drop.
        enum Edit {
            /// A guardrail's match (by the guardrail at this index of the run).
            Hit(usize, Hit),
            /// A mask token to give its value back.
            Restore(String),
        }
        let mut spans: Vec<(usize, usize, Edit)> = hits
            .into_iter()
            .map(|(i, h)| (h.start, h.end, Edit::Hit(i, h)))
            .chain(
                restores
                    .into_iter()
                    .map(|(s, e, o)| (s, e, Edit::Restore(o))),
            )
            .collect();
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut cut = upto;
        let mut out = String::with_capacity(text.len() + 16);
        let mut at = 0;
        for (start, end, edit) in spans {
            if start < at {
                continue;
            }
            if start >= cut {
                break;
            }
            if end > cut {
                // Crosses the cut: wait for the rest of it.
                cut = start;
                break;
            }
            out.push_str(&text[at..start]);
            match edit {
                Edit::Restore(original) => out.push_str(&original),
                Edit::Hit(index, hit) => {
                    let action = match (hit.action, &hit.label, stage) {
                        (Action::Mask, Label::Entity(entity), Stage::PreCall) => {
                            out.push_str(&self.vault.token(*entity, &text[start..end]));
                            Action::Mask
                        }
                        // An answer's own values cannot be given back: masked for good.
                        _ => {
                            out.push_str(&hit.label.redaction());
                            Action::Redact
                        }
                    };
                    tally.note(index, &hit.label, action);
                    if stage == Stage::PreCall {
                        self.outcomes[index] = "masked";
                    }
                }
            }
            at = end;
        }
        out.push_str(&text[at..cut]);
        Ok((Some(out), cut))
    }

    /// Counts what a pass did: one decision per guardrail that ran, one detection per match.
    fn count(&self, stage: Stage, tally: &Tally, blocked: Option<&Blocked>) {
        if !matches!(self.phase, Phase::BuiltIn) {
            return;
        }
        for (index, guardrail) in self.active.iter().enumerate() {
            if guardrail.max_prompt_tokens.is_some() || guardrail.external.is_some() {
                // Counted where they decide.
                continue;
            }
            let runs = match stage {
                Stage::PreCall => guardrail.pre_call,
                Stage::PostCall => guardrail.post_call,
            };
            let acted = tally.by.iter().filter(|(i, ..)| *i == index);
            let outcome = if blocked.is_some_and(|b| b.guardrail == guardrail.name) {
                "blocked"
            } else if acted.clone().next().is_some() {
                "masked"
            } else if runs {
                "passed"
            } else {
                continue;
            };
            crate::telemetry::guardrail_decision(&guardrail.name, stage.name(), outcome);
            for (_, label, action) in acted {
                crate::telemetry::guardrail_detection(&guardrail.name, label, action);
            }
        }
    }

    /// The most bytes a stream must hold back.
    fn hold_bytes(&self) -> usize {
        self.active
            .iter()
            .filter(|g| g.post_call)
            .map(|g| g.guardrail.max_match_bytes())
            .max()
            .unwrap_or(0)
            .max(if self.unmasks() { MAX_TOKEN_BYTES } else { 0 })
    }
}

/// What one pass matched, per guardrail (index into the run's list).
#[derive(Default)]
struct Tally {
    by: Vec<(usize, String, &'static str)>,
}

impl Tally {
    fn note(&mut self, index: usize, label: &Label, action: Action) {
        let action = match action {
            Action::Mask => "masked",
            Action::Redact => "redacted",
            Action::Block => "blocked",
        };
        self.by.push((index, label.metric(), action));
    }
}

fn blocked(guardrail: &Configured, stage: Stage, label: &Label) -> Blocked {
    let name = &guardrail.name;
    let message = match label {
        Label::Entity(entity) => format!(
            "Blocked entity detected: {} by Guardrail: {name}. This entity is not allowed to be used in this request.",
            entity.name()
        ),
        Label::Keyword(why) => format!("Content blocked: {why}"),
        Label::Pattern(pattern) => format!("Content blocked: {pattern} pattern detected"),
        // LiteLLM's words, and the score (never the text).
        Label::Injection { score, threshold } => format!(
            "Rejected message. This is a prompt injection attack. (score {score} ≥ threshold {threshold}, guardrail {name})"
        ),
    };
    Blocked {
        guardrail: name.clone(),
        mode: stage.name(),
        message,
    }
}

/// The vault's tokens in `text`: (start, end, original).
fn tokens(text: &str, vault: &Vault, out: &mut Vec<(usize, usize, String)>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(offset) = memchr::memchr(b'<', &bytes[from..]) {
        let start = from + offset;
        let window = &bytes[start..bytes.len().min(start + MAX_TOKEN_BYTES)];
        match memchr::memchr(b'>', window) {
            Some(close) => {
                let end = start + close + 1;
                if let Some(original) = vault.original(&text[start..end]) {
                    out.push((start, end, original.to_owned()));
                    from = end;
                } else {
                    from = start + 1;
                }
            }
            None => from = start + 1,
        }
    }
}

/// The guardrail names of a request's (or key's) `guardrails`: a list of names, or LiteLLM's
/// map form (`{"name": {...settings}}`, the keys).
fn names(value: &Value) -> Result<Vec<&str>, Blocked> {
    let bad = || Blocked {
        guardrail: "".into(),
        mode: "pre_call",
        message: "`guardrails` must be a list of guardrail names".into(),
    };
    match value {
        Value::Array(items) => items.iter().map(|v| v.as_str().ok_or_else(bad)).collect(),
        Value::Object(map) => Ok(map.keys().map(String::as_str).collect()),
        Value::String(one) => Ok(vec![one.as_str()]),
        Value::Null => Ok(Vec::new()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Guardrails {
        let raw: Vec<RawGuardrail> = serde_saphyr::from_str(yaml).unwrap();
        Guardrails::from_raw(raw, &mut |w| panic!("unexpected warning: {w}")).unwrap()
    }

    fn run(guardrails: &Guardrails, asked: &[&str]) -> Run {
        let mut extra = Extra::new();
        extra.insert("guardrails".into(), asked.iter().copied().collect());
        Run::select(
            guardrails,
            &mut extra,
            None,
            &crate::auth::Principal::Master,
        )
        .unwrap()
    }

    const PII: &str = r#"
- guardrail_name: pii-mask
  litellm_params:
    guardrail: pii
    mode: [pre_call, post_call]
    default_on: true
    output_parse_pii: true
    pii_entities_config: {EMAIL_ADDRESS: MASK, PHONE_NUMBER: REDACT, CREDIT_CARD: BLOCK}
- guardrail_name: no-secrets
  litellm_params:
    guardrail: secrets
    mode: pre_call
"#;

    #[test]
    fn masks_redacts_and_unmasks() {
        let guardrails = load(PII);
        let mut run = run(&guardrails, &[]);
        let mut text =
            "mail a@example.com or b@example.org, again a@example.com, call +1 415 555 0132"
                .to_owned();
        run.pre_call_text(&mut text).unwrap();
        assert_eq!(
            text,
            "mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>, again <EMAIL_ADDRESS_1>, call <PHONE_NUMBER>"
        );
        // The answer: tokens restored, the answer's own PII masked for good.
        let mut answer = "I wrote to <EMAIL_ADDRESS_2> and cc'd boss@corp.example.com".to_owned();
        let mut tally = Tally::default();
        run.pass(Stage::PostCall, &mut answer, &mut tally).unwrap();
        assert_eq!(answer, "I wrote to b@example.org and cc'd <EMAIL_ADDRESS>");
    }

    #[test]
    fn block_wins_and_names_the_entity_never_the_value() {
        let guardrails = load(PII);
        let mut run = run(&guardrails, &[]);
        let mut text = "a@example.com pays with 4111 1111 1111 1111".to_owned();
        let err = run.pre_call_text(&mut text).unwrap_err();
        assert_eq!(&*err.guardrail, "pii-mask");
        assert!(err.message.contains("CREDIT_CARD"), "{}", err.message);
        assert!(!err.message.contains("4111"));
    }

    #[test]
    fn opt_in_by_name_and_unknown_names_refused() {
        let guardrails = load(PII);
        let mut text = "key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx".to_owned();
        run(&guardrails, &[]).pre_call_text(&mut text).unwrap();
        assert!(text.contains("sk-proj"), "not on by default");
        run(&guardrails, &["no-secrets"])
            .pre_call_text(&mut text)
            .unwrap();
        assert_eq!(text, "key <API_KEY>");
        let mut extra = Extra::new();
        extra.insert("guardrails".into(), serde_json::json!(["nope"]));
        let err = Run::select(
            &guardrails,
            &mut extra,
            None,
            &crate::auth::Principal::Master,
        )
        .err()
        .unwrap();
        assert!(err.message.contains("`nope` is not configured"));
        assert!(!extra.contains_key("guardrails"), "never sent upstream");
    }

    #[test]
    fn a_match_crossing_the_cut_is_held_back() {
        let guardrails = load(PII);
        let mut run = run(&guardrails, &[]);
        let text = "write to someone@example.com please";
        let mut tally = Tally::default();
        // The cut falls inside the address: only what is before it is released.
        let (out, covered) = run.rewrite(Stage::PostCall, text, 15, &mut tally).unwrap();
        assert_eq!(covered, 9);
        assert_eq!(out.as_deref(), Some("write to "));
    }

    fn config_error(yaml: &str) -> (String, String) {
        let raw: Vec<RawGuardrail> = serde_saphyr::from_str(yaml).unwrap();
        Guardrails::from_raw(raw, &mut |_| {}).err().unwrap()
    }

    #[test]
    fn external_and_size_config_errors_name_the_key() {
        let at = |yaml: &str| config_error(yaml).0;
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: generic_guardrail_api}\n"),
            "guardrails[0].litellm_params.api_base"
        );
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: generic_guardrail_api, api_base: 'http://g', mode: post_call}\n"),
            "guardrails[0].litellm_params.mode"
        );
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: generic_guardrail_api, api_base: 'http://g', timeout: 0}\n"),
            "guardrails[0].litellm_params.timeout"
        );
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: generic_guardrail_api, api_base: 'http://g', unreachable_fallback: maybe}\n"),
            "guardrails[0].litellm_params.unreachable_fallback"
        );
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: generic_guardrail_api, api_base: 'http://g', headers: {'bad header': v}}\n"),
            "guardrails[0].litellm_params.headers"
        );
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: presidio, presidio_analyzer_api_base: 'http://a'}\n"),
            "guardrails[0].litellm_params.presidio_anonymizer_api_base"
        );
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: max_prompt_tokens}\n"),
            "guardrails[0].litellm_params.max_prompt_tokens"
        );
        assert_eq!(
            at("- guardrail_name: x\n  litellm_params: {guardrail: max_prompt_tokens, max_prompt_tokens: 0}\n"),
            "guardrails[0].litellm_params.max_prompt_tokens"
        );
        // A key of another kind warns rather than silently doing nothing.
        let raw: Vec<RawGuardrail> = serde_saphyr::from_str(
            "- guardrail_name: x\n  litellm_params: {guardrail: pii, api_base: 'http://g', timeout: 2}\n",
        )
        .unwrap();
        let mut warnings = Vec::new();
        Guardrails::from_raw(raw, &mut |w| warnings.push(w)).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("api_base does nothing")));
    }

    #[test]
    fn max_prompt_tokens_counts_every_text_at_four_characters_a_token() {
        let guardrails = load(
            "- guardrail_name: size\n  litellm_params: {guardrail: max_prompt_tokens, max_prompt_tokens: 3, default_on: true}\n",
        );
        let mut run = run(&guardrails, &[]);
        let mut value = serde_json::json!(["abcdef", "ghijkl"]);
        run.pre_call_json(&mut value).unwrap();
        assert!(
            run.check_prompt_size().is_ok(),
            "12 characters are 3 tokens"
        );
        let mut run = super::tests::run(&guardrails, &[]);
        let mut value = serde_json::json!(["abcdef", "ghijklm"]);
        run.pre_call_json(&mut value).unwrap();
        let err = run.check_prompt_size().unwrap_err();
        assert_eq!(&*err.guardrail, "size");
        assert!(err.message.contains("about 4 tokens"), "{}", err.message);
    }

    #[test]
    fn config_errors_name_the_entry() {
        let raw: Vec<RawGuardrail> = serde_saphyr::from_str(
            "- guardrail_name: x\n  litellm_params: {guardrail: lakera_v2, mode: pre_call}\n",
        )
        .unwrap();
        let (at, message) = Guardrails::from_raw(raw, &mut |_| {}).err().unwrap();
        assert_eq!(at, "guardrails[0].litellm_params.guardrail");
        assert!(message.contains("lakera_v2"));
        let raw: Vec<RawGuardrail> = serde_saphyr::from_str(
            "- guardrail_name: x\n  litellm_params: {guardrail: pii, pii_entities_config: {PERSON: MASK, EMAIL_ADDRESS: ERASE}}\n",
        )
        .unwrap();
        let (at, _) = Guardrails::from_raw(raw, &mut |_| {}).err().unwrap();
        assert_eq!(
            at,
            "guardrails[0].litellm_params.pii_entities_config.EMAIL_ADDRESS"
        );
        let raw: Vec<RawGuardrail> = serde_saphyr::from_str(
            "- guardrail_name: x\n  litellm_params: {guardrail: pii, mode: pre_call, pii_entities_config: {PERSON: MASK}}\n",
        )
        .unwrap();
        let mut warnings = Vec::new();
        Guardrails::from_raw(raw, &mut |w| warnings.push(w)).unwrap();
        assert!(warnings[0].contains("PERSON"), "{warnings:?}");
    }
}
