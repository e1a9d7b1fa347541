//! One request's guardrails ([`Run`]): which ones apply, and stages 4 and 8 as the handlers
//! call them (rewrites, the un-masking vault, the decisions counted).

use super::*;

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
    pub(super) fn name(self) -> &'static str {
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
    pub(super) originals: HashMap<String, String>,
    pub(super) tokens: HashMap<(Entity, String), String>,
    pub(super) counts: HashMap<Entity, u32>,
}

impl Vault {
    pub(super) fn token(&mut self, entity: Entity, original: &str) -> String {
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

    pub(super) fn original(&self, token: &str) -> Option<&str> {
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
    pub(super) active: Vec<Arc<Configured>>,
    pub vault: Vault,
    /// Per active guardrail: what its pre-call pass did (for the finished event).
    pub(super) outcomes: Vec<&'static str>,
    /// What a walk over the prompt does with each text.
    pub(super) phase: Phase,
    /// The characters of the prompt's texts as the built-in guardrails left them.
    pub(super) prompt_chars: u64,
}

/// A walk over the prompt's texts: the built-in guardrails, or (for external ones) collecting
/// the texts, or writing back the service's rewrite in the same order.
#[derive(Clone, Default)]
pub(super) enum Phase {
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

    pub(super) fn has(&self, stage: Stage) -> bool {
        self.active.iter().any(|g| match stage {
            Stage::PreCall => g.pre_call,
            Stage::PostCall => g.post_call,
        })
    }

    pub(super) fn unmasks(&self) -> bool {
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

    pub(super) fn blocks(
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

    pub(super) fn json(
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
    pub(super) fn pass(
        &mut self,
        stage: Stage,
        text: &mut String,
        tally: &mut Tally,
    ) -> Result<(), Blocked> {
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
    pub(super) fn check_prompt_size(&mut self) -> Result<(), Blocked> {
        let tokens = self.prompt_chars.div_ceil(4);
        for (index, guardrail) in self.active.iter().enumerate() {
            let Some(limit) = guardrail.max_prompt_tokens.filter(|_| guardrail.pre_call) else {
                continue;
            };
            let over = tokens > limit;
            let outcome = if over { "blocked" } else { "passed" };
            guardrail
                .decisions
                .count(&guardrail.name, "pre_call", outcome);
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
    pub(super) async fn external(
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
                    guardrail.decisions.count(name, "pre_call", "blocked");
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
                        guardrail.decisions.count(name, "pre_call", "unavailable");
                        return Err(crate::api::error::ApiError::GuardrailUnavailable(
                            name.clone(),
                        ));
                    }
                },
            };
            self.outcomes[index] = outcome;
            guardrail.decisions.count(name, "pre_call", outcome);
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
    pub(super) fn rewrite(
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
    pub(super) fn count(&self, stage: Stage, tally: &Tally, blocked: Option<&Blocked>) {
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
            guardrail
                .decisions
                .count(&guardrail.name, stage.name(), outcome);
            for (_, label, action) in acted {
                crate::telemetry::guardrail_detection(&guardrail.name, label, action);
            }
        }
    }

    /// The most bytes a stream must hold back.
    pub(super) fn hold_bytes(&self) -> usize {
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
pub(super) struct Tally {
    pub(super) by: Vec<(usize, String, &'static str)>,
}

impl Tally {
    pub(super) fn note(&mut self, index: usize, label: &Label, action: Action) {
        let action = match action {
            Action::Mask => "masked",
            Action::Redact => "redacted",
            Action::Block => "blocked",
        };
        self.by.push((index, label.metric(), action));
    }
}

pub(super) fn blocked(guardrail: &Configured, stage: Stage, label: &Label) -> Blocked {
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
pub(super) fn tokens(text: &str, vault: &Vault, out: &mut Vec<(usize, usize, String)>) {
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
pub(super) fn names(value: &Value) -> Result<Vec<&str>, Blocked> {
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
