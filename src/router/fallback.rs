//! Which model groups to try when a group has failed, with LiteLLM's semantics:
//!
//! - a context-window failure uses `context_window_fallbacks` for the group, and a content-policy
//!   failure `content_policy_fallbacks`; without an entry for the group they use `fallbacks`;
//! - `fallbacks` looks for the group's own entry, then the `*` entry, then `default_fallbacks`;
//! - a request's own `fallbacks` list replaces the configured one for the group it asked for;
//!   `disable_fallbacks: true` turns fallbacks off for the request;
//! - a request the upstream refused as invalid (a plain 400) does not fall back;
//! - a fallback group that fails falls back in turn (depth first, as LiteLLM recurses), each
//!   group at most once, at most `max_fallbacks` groups in all.

use std::collections::VecDeque;

use super::failure::FallbackKind;
use super::request::RequestOptions;
use crate::config::{FallbackRules, FallbackSettings};

fn lookup<'a>(rules: &'a FallbackRules, group: &str) -> Option<&'a [String]> {
    rules
        .iter()
        .find(|(from, _)| from == group)
        .or_else(|| rules.iter().find(|(from, _)| from == "*"))
        .map(|(_, to)| to.as_slice())
}

/// The groups to try after `group` failed with a failure of `kind`, in order.
pub fn fallbacks_for<'a>(
    settings: &'a FallbackSettings,
    options: &'a RequestOptions,
    group: &str,
    requested: &str,
    kind: FallbackKind,
) -> &'a [String] {
    if options.disable_fallbacks {
        return &[];
    }
    let special = match kind {
        FallbackKind::None => return &[],
        FallbackKind::Generic => None,
        FallbackKind::ContextWindow => lookup(&settings.context_window, group),
        FallbackKind::ContentPolicy => lookup(&settings.content_policy, group),
    };
    if let Some(list) = special {
        return list;
    }
    if group == requested {
        if let Some(list) = &options.fallbacks {
            return list;
        }
    }
    lookup(&settings.generic, group).unwrap_or(&settings.default)
}

/// The order in which model groups are tried: the requested group first, then fallbacks as
/// failures reveal them. Names are borrowed from the config and the request, and nothing is
/// allocated until a fallback is needed: the first try costs no more than without fallbacks.
pub struct FallbackQueue<'a> {
    first: Option<&'a str>,
    first_name: &'a str,
    pending: VecDeque<&'a str>,
    fallbacks_tried: Vec<&'a str>,
    max_fallbacks: usize,
}

impl<'a> FallbackQueue<'a> {
    pub fn new(first: &'a str, max_fallbacks: u32) -> Self {
        FallbackQueue {
            first: Some(first),
            first_name: first,
            pending: VecDeque::new(),
            fallbacks_tried: Vec::new(),
            max_fallbacks: max_fallbacks as usize,
        }
    }

    /// The next group to try, or `None` when the chain is exhausted.
    pub fn next_group(&mut self) -> Option<&'a str> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.fallbacks_tried.len() >= self.max_fallbacks {
            return None;
        }
        let group = self.pending.pop_front()?;
        self.fallbacks_tried.push(group);
        Some(group)
    }

    /// Queues `groups` to be tried right after the current one (depth first), skipping groups
    /// already tried or queued.
    pub fn push_front(&mut self, groups: &'a [String]) {
        for group in groups.iter().rev() {
            let group = group.as_str();
            if group == self.first_name || self.fallbacks_tried.contains(&group) {
                continue;
            }
            self.pending.retain(|g| *g != group);
            self.pending.push_front(group);
        }
    }

    /// Fallback groups tried so far (the first group excluded).
    pub fn fallbacks_tried(&self) -> u32 {
        self.fallbacks_tried.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FallbackSettings {
        FallbackSettings {
            generic: vec![
                ("a".into(), vec!["b".into(), "c".into()]),
                ("*".into(), vec!["z".into()]),
            ],
            context_window: vec![("a".into(), vec!["long".into()])],
            content_policy: vec![],
            default: vec!["d".into()],
            max_fallbacks: 5,
        }
    }

    #[test]
    fn litellm_lookup_order() {
        let s = settings();
        let none = RequestOptions::default();
        assert_eq!(
            fallbacks_for(&s, &none, "a", "a", FallbackKind::Generic),
            ["b", "c"]
        );
        assert_eq!(
            fallbacks_for(&s, &none, "q", "q", FallbackKind::Generic),
            ["z"],
            "`*` entry"
        );
        assert_eq!(
            fallbacks_for(&s, &none, "a", "a", FallbackKind::ContextWindow),
            ["long"]
        );
        assert_eq!(
            fallbacks_for(&s, &none, "a", "a", FallbackKind::ContentPolicy),
            ["b", "c"],
            "no content-policy entry: the generic list"
        );
        assert!(fallbacks_for(&s, &none, "a", "a", FallbackKind::None).is_empty());
        let mut no_star = settings();
        no_star.generic.pop();
        assert_eq!(
            fallbacks_for(&no_star, &none, "q", "q", FallbackKind::Generic),
            ["d"]
        );

        let per_request = RequestOptions {
            fallbacks: Some(vec!["x".into()]),
            ..RequestOptions::default()
        };
        assert_eq!(
            fallbacks_for(&s, &per_request, "a", "a", FallbackKind::Generic),
            ["x"]
        );
        assert_eq!(
            fallbacks_for(&s, &per_request, "b", "a", FallbackKind::Generic),
            ["z"],
            "a fallback group's own fallbacks come from config"
        );
        let disabled = RequestOptions {
            disable_fallbacks: true,
            ..RequestOptions::default()
        };
        assert!(fallbacks_for(&s, &disabled, "a", "a", FallbackKind::Generic).is_empty());
    }

    #[test]
    fn queue_is_depth_first_deduplicated_and_bounded() {
        let (first, second, third) = (
            ["b".to_owned(), "c".to_owned(), "a".to_owned()],
            ["x".to_owned(), "c".to_owned()],
            ["y".to_owned()],
        );
        let mut queue = FallbackQueue::new("a", 3);
        assert_eq!(queue.next_group(), Some("a"));
        queue.push_front(&first);
        assert_eq!(queue.next_group(), Some("b"));
        queue.push_front(&second);
        assert_eq!(queue.next_group(), Some("x"));
        assert_eq!(queue.next_group(), Some("c"));
        assert_eq!(queue.fallbacks_tried(), 3);
        queue.push_front(&third);
        assert_eq!(queue.next_group(), None, "max_fallbacks reached");
    }
}
