//! `guardrail: litellm_content_filter`: banned keywords (`blocked_words`) and regexes
//! (`patterns` of `pattern_type: regex`) from config, each `BLOCK` or `MASK`; `pattern_type:
//! prebuilt` names map onto the built-in detectors of `pii.rs` and `secrets.rs`.
//!
//! Keywords are matched case-insensitively on word boundaries, all of them by one automaton
//! (the `regex` crate compiles an alternation of literals to Aho-Corasick), so a hundred words
//! cost about what one does.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use super::{Action, Entity, Guardrail, Hit, Label};

/// A user regex can match anything; a stream holds back this many bytes for one (documented).
pub const MAX_PATTERN_BYTES: usize = 256;

#[derive(Debug, Deserialize)]
pub struct RawBlockedWord {
    pub keyword: String,
    pub action: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawPattern {
    pub pattern_type: String,
    #[serde(default)]
    pub pattern_name: Option<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
}

pub struct ContentFilter {
    keywords: Option<Regex>,
    /// Lower-cased keyword → what to do and why.
    keyword_actions: HashMap<String, (Action, Arc<str>)>,
    longest_keyword: usize,
    patterns: Vec<(Regex, Arc<str>, Action)>,
    prebuilt: Vec<(Entity, Arc<str>, Action)>,
}

/// `BLOCK` or `MASK` (the content filter's `MASK` is irreversible: `[KEYWORD_REDACTED]`).
fn action(text: &str) -> Result<Action, String> {
    match text.to_ascii_uppercase().as_str() {
        "BLOCK" => Ok(Action::Block),
        "MASK" | "REDACT" => Ok(Action::Redact),
        other => Err(format!("action must be BLOCK or MASK, got `{other}`")),
    }
}

/// LiteLLM's prebuilt pattern names that a built-in detector covers.
fn prebuilt(name: &str) -> Option<Entity> {
    Some(match name {
        "us_ssn" | "us_ssn_no_dash" => Entity::UsSsn,
        "email" => Entity::EmailAddress,
        "us_phone" => Entity::PhoneNumber,
        "visa" | "mastercard" | "amex" | "discover" | "credit_card" => Entity::CreditCard,
        "aws_access_key" => Entity::AwsAccessKey,
        "github_token" => Entity::GithubToken,
        "slack_token" => Entity::SlackToken,
        "openai_api_key" | "anthropic_api_key" | "generic_api_key" => Entity::ApiKey,
        "gemini_api_key" => Entity::GoogleApiKey,
        "ipv4" | "ipv6" => Entity::IpAddress,
        "iban" => Entity::IbanCode,
        _ => return None,
    })
}

impl ContentFilter {
    pub fn new(words: Vec<RawBlockedWord>, patterns: Vec<RawPattern>) -> Result<Self, String> {
        let mut keyword_actions = HashMap::new();
        let mut alternatives = Vec::new();
        let mut longest_keyword = 0;
        for (i, word) in words.into_iter().enumerate() {
            let keyword = word.keyword.trim().to_lowercase();
            if keyword.is_empty() {
                return Err(format!("blocked_words[{i}].keyword is empty"));
            }
            let action = action(&word.action).map_err(|e| format!("blocked_words[{i}]: {e}"))?;
            let why: Arc<str> = match &word.description {
                Some(d) => format!("keyword '{}' detected ({d})", word.keyword.trim()).into(),
                None => format!("keyword '{}' detected", word.keyword.trim()).into(),
            };
            longest_keyword = longest_keyword.max(keyword.len());
            alternatives.push(regex::escape(&keyword));
            keyword_actions.insert(keyword, (action, why));
        }
        // Longest first, so `credit card number` wins over `credit card`.
        alternatives.sort_by_key(|a| std::cmp::Reverse(a.len()));
        let keywords = if alternatives.is_empty() {
            None
        } else {
            let source = format!(r"(?i)\b(?:{})\b", alternatives.join("|"));
            Some(
                regex::RegexBuilder::new(&source)
                    .size_limit(64 << 20)
                    .build()
                    .map_err(|e| format!("blocked_words: {e}"))?,
            )
        };
        let mut compiled = Vec::new();
        let mut prebuilt_entities = Vec::new();
        for (i, pattern) in patterns.into_iter().enumerate() {
            let at = format!("patterns[{i}]");
            let act = action(&pattern.action).map_err(|e| format!("{at}: {e}"))?;
            match pattern.pattern_type.as_str() {
                "regex" => {
                    let source = pattern
                        .pattern
                        .as_deref()
                        .ok_or_else(|| format!("{at}: `pattern` is required for a regex"))?;
                    // The `regex` crate runs in linear time: a user pattern cannot backtrack
                    // catastrophically on a hostile prompt.
                    let regex = regex::RegexBuilder::new(source)
                        .size_limit(16 << 20)
                        .build()
                        .map_err(|e| format!("{at}.pattern: {e}"))?;
                    let name = pattern
                        .name
                        .or(pattern.pattern_name)
                        .unwrap_or_else(|| format!("pattern_{i}"));
                    compiled.push((regex, name.into(), act));
                }
                "prebuilt" => {
                    let name = pattern.pattern_name.ok_or_else(|| {
                        format!("{at}: `pattern_name` is required for a prebuilt pattern")
                    })?;
                    let entity = prebuilt(&name).ok_or_else(|| {
                        format!("{at}.pattern_name: `{name}` is not a built-in pattern here (see docs/guardrails.md for the list)")
                    })?;
                    prebuilt_entities.push((entity, name.into(), act));
                }
                other => {
                    return Err(format!(
                        "{at}.pattern_type must be `prebuilt` or `regex`, got `{other}`"
                    ))
                }
            }
        }
        Ok(ContentFilter {
            keywords,
            keyword_actions,
            longest_keyword,
            patterns: compiled,
            prebuilt: prebuilt_entities,
        })
    }
}

impl Guardrail for ContentFilter {
    fn scan(&self, text: &str, hits: &mut Vec<Hit>) {
        if let Some(keywords) = &self.keywords {
            for found in keywords.find_iter(text) {
                let key = found.as_str().to_lowercase();
                if let Some((action, why)) = self.keyword_actions.get(&key) {
                    hits.push(Hit {
                        start: found.start(),
                        end: found.end(),
                        label: Label::Keyword(why.clone()),
                        action: *action,
                    });
                }
            }
        }
        for (regex, name, action) in &self.patterns {
            for found in regex.find_iter(text).filter(|m| !m.is_empty()) {
                hits.push(Hit {
                    start: found.start(),
                    end: found.end(),
                    label: Label::Pattern(name.clone()),
                    action: *action,
                });
            }
        }
        if !self.prebuilt.is_empty() {
            let mut found = Vec::new();
            super::pii::find(text, &mut found);
            super::secrets::find(text, &mut found);
            for (start, end, entity) in found {
                if let Some((_, name, action)) = self.prebuilt.iter().find(|(e, ..)| *e == entity) {
                    hits.push(Hit {
                        start,
                        end,
                        label: Label::Pattern(name.clone()),
                        action: *action,
                    });
                }
            }
        }
    }

    fn max_match_bytes(&self) -> usize {
        let mut max = self.longest_keyword + 1;
        if !self.patterns.is_empty() {
            max = max.max(MAX_PATTERN_BYTES);
        }
        if !self.prebuilt.is_empty() {
            max = max.max(super::secrets::MAX_SECRET_BYTES);
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(keyword: &str, action: &str) -> RawBlockedWord {
        RawBlockedWord {
            keyword: keyword.into(),
            action: action.into(),
            description: None,
        }
    }

    fn hits(filter: &ContentFilter, text: &str) -> Vec<(String, Action)> {
        let mut out = Vec::new();
        filter.scan(text, &mut out);
        out.into_iter()
            .map(|h| (text[h.start..h.end].to_owned(), h.action))
            .collect()
    }

    #[test]
    fn keywords_on_word_boundaries_any_case() {
        let filter = ContentFilter::new(
            vec![word("Project Falcon", "BLOCK"), word("darn", "MASK")],
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            hits(&filter, "About project FALCON: darn it"),
            vec![
                ("project FALCON".into(), Action::Block),
                ("darn".into(), Action::Redact)
            ]
        );
        // Inside other words: not a match.
        assert!(hits(&filter, "darned falconry, projected").is_empty());
    }

    #[test]
    fn regex_and_prebuilt_patterns() {
        let filter = ContentFilter::new(
            Vec::new(),
            vec![
                RawPattern {
                    pattern_type: "regex".into(),
                    pattern_name: None,
                    pattern: Some(r"\bEMP-\d{6}\b".into()),
                    name: Some("employee_id".into()),
                    action: "MASK".into(),
                },
                RawPattern {
                    pattern_type: "prebuilt".into(),
                    pattern_name: Some("us_ssn".into()),
                    pattern: None,
                    name: None,
                    action: "BLOCK".into(),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            hits(&filter, "EMP-123456 has 123-45-6789"),
            vec![
                ("EMP-123456".into(), Action::Redact),
                ("123-45-6789".into(), Action::Block)
            ]
        );
    }

    #[test]
    fn bad_config_is_an_error_naming_the_entry() {
        let bad_regex = RawPattern {
            pattern_type: "regex".into(),
            pattern_name: None,
            pattern: Some("(unclosed".into()),
            name: None,
            action: "BLOCK".into(),
        };
        assert!(ContentFilter::new(Vec::new(), vec![bad_regex])
            .err()
            .unwrap()
            .starts_with("patterns[0].pattern"));
        assert!(ContentFilter::new(vec![word("x", "LOG")], Vec::new())
            .err()
            .unwrap()
            .contains("BLOCK or MASK"));
    }

    #[test]
    fn hostile_text_is_linear() {
        let filter = ContentFilter::new(
            vec![word("secret", "BLOCK")],
            vec![RawPattern {
                pattern_type: "regex".into(),
                pattern_name: None,
                pattern: Some(r"(a+)+b".into()),
                name: None,
                action: "BLOCK".into(),
            }],
        )
        .unwrap();
        let text = "a".repeat(200_000);
        let started = std::time::Instant::now();
        assert!(hits(&filter, &text).is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
