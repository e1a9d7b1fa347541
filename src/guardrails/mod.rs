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

mod config;
mod content_filter;
mod external;
mod injection;
mod pii;
mod run;
mod secrets;
pub mod stream;

pub use config::*;
pub use run::*;

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
