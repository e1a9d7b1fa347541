//! The top-level `guardrails:` list as LiteLLM writes it, checked and turned into the
//! configured guardrails ([`Guardrails`]) once per config load.

use super::*;

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
    pub(super) fn into_vec(self) -> Vec<String> {
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
    pub(super) guardrail: Box<dyn Guardrail>,
    /// `max_prompt_tokens`: the limit.
    pub(super) max_prompt_tokens: Option<u64>,
    /// An external service, asked after the built-in guardrails.
    pub(super) external: Option<external::External>,
    /// Its decision counters, resolved once.
    pub(super) decisions: crate::telemetry::GuardrailDecisions,
}

/// The scanner of a guardrail that does not scan texts itself (size limit, external service).
pub(super) struct NoScan;

impl Guardrail for NoScan {
    fn scan(&self, _text: &str, _hits: &mut Vec<Hit>) {}
    fn max_match_bytes(&self) -> usize {
        0
    }
}

/// Every configured guardrail (part of the config snapshot: a reload swaps it whole).
#[derive(Clone, Default)]
pub struct Guardrails(pub(super) Arc<[Arc<Configured>]>);

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
                decisions: Default::default(),
            }));
        }
        Ok(Guardrails(list.into()))
    }

    pub(super) fn get(&self, name: &str) -> Option<&Arc<Configured>> {
        self.0.iter().find(|g| &*g.name == name)
    }
}

/// The parts every external guardrail shares: the bound on a call and the fail mode.
pub(super) fn external_guardrail(
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

pub(super) fn entity_actions(
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
