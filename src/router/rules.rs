//! Dynamic model selection: `switchyard_routing.route_rules` choose the model group from facts
//! of the request (prompt length, the caller's tier and tags, `metadata.feature`, other metadata
//! keys, streaming). Rules are tried in config order; the first whose model matches and whose
//! conditions all hold decides. The rule's name goes back to the client in
//! `x-switchyard-route-rule` and into `/metrics`.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::Value;

use super::request::RequestOptions;
use crate::config::RouteRuleConfig;

pub struct Rule {
    pub config: RouteRuleConfig,
    matched: AtomicU64,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn matched(&self) -> u64 {
        self.matched.load(Relaxed)
    }
}

/// The request facts rules test. Prompt tokens are estimated only if a rule asks for them.
pub struct Facts<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub options: &'a RequestOptions,
    pub prompt_tokens: &'a dyn Fn() -> u64,
}

#[derive(Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    pub fn new(configs: &[RouteRuleConfig]) -> Self {
        Rules {
            rules: configs
                .iter()
                .map(|config| Rule {
                    config: config.clone(),
                    matched: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// Names clients may ask for that exist only as a rule's `model` (like `auto`).
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|r| r.config.model.as_str())
            .filter(|m| *m != "*")
    }

    /// The first matching rule, counted.
    pub fn choose(&self, facts: &Facts<'_>) -> Option<&Rule> {
        let tokens = OnceCell::new();
        let rule = self
            .rules
            .iter()
            .find(|rule| matches(&rule.config, facts, &tokens))?;
        rule.matched.fetch_add(1, Relaxed);
        Some(rule)
    }
}

fn matches(rule: &RouteRuleConfig, facts: &Facts<'_>, tokens: &OnceCell<u64>) -> bool {
    if rule.model != "*" && rule.model != facts.model {
        return false;
    }
    let options = facts.options;
    if rule.stream.is_some_and(|stream| stream != facts.stream) {
        return false;
    }
    let any_of = |allowed: &[String], value: Option<&str>| {
        allowed.is_empty() || value.is_some_and(|v| allowed.iter().any(|a| a == v))
    };
    if !any_of(&rule.tier, options.tier.as_deref())
        || !any_of(&rule.feature, options.feature.as_deref())
    {
        return false;
    }
    if !rule.tags.iter().all(|tag| options.tags.contains(tag)) {
        return false;
    }
    for (key, allowed) in &rule.metadata {
        let value = options.metadata.as_ref().and_then(|m| m.get(key));
        let text = match value {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        if !any_of(allowed, text.as_deref()) {
            return false;
        }
    }
    if rule.min_prompt_tokens.is_some() || rule.max_prompt_tokens.is_some() {
        let prompt = *tokens.get_or_init(|| (facts.prompt_tokens)());
        if rule.min_prompt_tokens.is_some_and(|min| prompt < min)
            || rule.max_prompt_tokens.is_some_and(|max| prompt > max)
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, route_to: &str) -> RouteRuleConfig {
        RouteRuleConfig {
            name: name.into(),
            model: "auto".into(),
            route_to: route_to.into(),
            min_prompt_tokens: None,
            max_prompt_tokens: None,
            tier: Vec::new(),
            tags: Vec::new(),
            feature: Vec::new(),
            stream: None,
            metadata: Vec::new(),
        }
    }

    fn choose<'a>(rules: &'a Rules, options: &RequestOptions, tokens: u64) -> Option<&'a str> {
        let count = std::cell::Cell::new(0);
        let estimate = || {
            count.set(count.get() + 1);
            tokens
        };
        let chosen = rules
            .choose(&Facts {
                model: "auto",
                stream: false,
                options,
                prompt_tokens: &estimate,
            })
            .map(|r| r.config.route_to.as_str());
        assert!(count.get() <= 1, "estimated once at most");
        chosen
    }

    #[test]
    fn first_matching_rule_wins() {
        let long = RouteRuleConfig {
            min_prompt_tokens: Some(1000),
            ..rule("long", "long-context")
        };
        let free_short = RouteRuleConfig {
            tier: vec!["free".into()],
            max_prompt_tokens: Some(200),
            ..rule("free-short", "cheap")
        };
        let summaries = RouteRuleConfig {
            feature: vec!["summarize".into()],
            tags: vec!["batch".into()],
            ..rule("batch-summaries", "cheap")
        };
        let eu = RouteRuleConfig {
            metadata: vec![("team".into(), vec!["eu-sales".into()])],
            ..rule("eu-team", "eu-model")
        };
        let fallback = rule("default", "standard");
        let rules = Rules::new(&[long, free_short, summaries, eu, fallback]);

        let free = RequestOptions {
            tier: Some("free".into()),
            ..RequestOptions::default()
        };
        assert_eq!(choose(&rules, &free, 50), Some("cheap"));
        assert_eq!(choose(&rules, &free, 5000), Some("long-context"));
        assert_eq!(choose(&rules, &free, 500), Some("standard"));
        let batch = RequestOptions {
            feature: Some("summarize".into()),
            tags: vec!["batch".into(), "nightly".into()],
            ..RequestOptions::default()
        };
        assert_eq!(choose(&rules, &batch, 500), Some("cheap"));
        let team = RequestOptions {
            metadata: serde_json::json!({"team": "eu-sales"}).as_object().cloned(),
            ..RequestOptions::default()
        };
        assert_eq!(choose(&rules, &team, 500), Some("eu-model"));
        assert_eq!(rules.iter().next().unwrap().matched(), 1);
        // Another model name matches nothing.
        let none = rules.choose(&Facts {
            model: "gpt-4o",
            stream: false,
            options: &free,
            prompt_tokens: &|| 1,
        });
        assert!(none.is_none());
    }
}
