//! Calling a model group, top to bottom:
//!
//! 1. **plan**: route rules may choose the group; the request's deadline starts.
//! 2. **groups**: the group, then its fallbacks as failures reveal them (`fallback.rs`).
//! 3. **attempts** within a group: pick a deployment (`strategy.rs`), call it under the
//!    attempt's timeout, record the outcome (`cooldown.rs`, `stats.rs`), and retry retryable
//!    failures (`retry.rs`) on another deployment at once, or on the same one after a backoff.
//! 4. **answer** under the alias of the group that served it, with a report of what happened.
//!
//! Nothing here knows a provider's wire format: the per-deployment operation is a closure.

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use super::failure::{FailureKind, FallbackKind};
use super::fallback::{fallbacks_for, FallbackQueue};
use super::request::RequestOptions;
use super::retry;
use super::rules::Facts;
use super::strategy::{NoPick, PickContext, Picked};
use super::stream::{read_ahead, BoxStream, StreamBooks, Tracked};
use super::{Deployment, ModelGroup, RouteError, Router, Unavailable, UpstreamFailure};
use crate::providers::http::{ChunkStream, HttpClient};
use crate::providers::{mock, PassthroughEndpoint, PassthroughStream, ProviderError};
use crate::schema::{ChatAnswer, ChatChunk, ChatRequest, PassthroughRequest, PassthroughResponse};

/// An answer and who gave it.
pub struct Served<T> {
    pub value: T,
    pub deployment: Arc<Deployment>,
    /// Attempts made, this one included.
    pub attempts: u32,
    pub report: RouteReport,
    /// The successful attempt's time at the upstream (for a stream: until its first output),
    /// so metrics can tell the gateway's overhead from the upstream's time.
    pub upstream_latency: std::time::Duration,
}

/// How a request was routed, for response headers, logs and error messages.
#[derive(Debug, Clone, Default)]
pub struct RouteReport {
    /// The model the client asked for, when another group answered (a route rule chose it, or
    /// a fallback served); empty otherwise.
    pub requested: String,
    /// The route rule that chose the first group, if any.
    pub rule: Option<String>,
    /// The answer came from a canary deployment.
    pub canary: bool,
    /// Retries made (attempts that followed a failure in the same group).
    pub retries: u32,
    /// Fallback groups tried.
    pub fallbacks: u32,
    /// Every attempt, and every group that could not be attempted, in order.
    pub trail: Vec<TrailEntry>,
}

#[derive(Debug, Clone)]
pub enum TrailEntry {
    /// A deployment was called; `outcome` is `ok` or an error class.
    Called {
        deployment: Arc<Deployment>,
        outcome: &'static str,
    },
    /// A group was skipped without a call.
    Skipped { group: String, reason: &'static str },
}

impl RouteReport {
    /// `group/deployment=outcome, ...`: where the attempts went and how each ended.
    pub fn trail_text(&self) -> String {
        let mut text = String::new();
        for entry in &self.trail {
            if !text.is_empty() {
                text.push_str(", ");
            }
            match entry {
                TrailEntry::Called {
                    deployment,
                    outcome,
                } => {
                    text.push_str(&deployment.model_name);
                    text.push('/');
                    text.push_str(&deployment.id);
                    text.push('=');
                    text.push_str(outcome);
                }
                TrailEntry::Skipped { group, reason } => {
                    text.push_str(group);
                    text.push('=');
                    text.push_str(reason);
                }
            }
        }
        text
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The attempt is the whole answer, bounded by the deployment's `timeout`.
    Whole,
    /// The attempt opens a stream and reads to its first output, bounded by `stream_timeout`.
    Stream,
}

/// One request's route: where it starts and how long it may take.
struct Plan<'a> {
    /// The first model group (a key of the router's groups, so borrowed from the router).
    group: &'a str,
    first: &'a ModelGroup,
    options: &'a RequestOptions,
    report: RouteReport,
    deadline: Instant,
    stream: bool,
    prompt_tokens: u64,
}

enum GroupOutcome<T> {
    /// The answer, who gave it, and the successful attempt's upstream time.
    Served(T, Picked, std::time::Duration),
    Failed(ProviderError, Arc<Deployment>),
    Unavailable(NoPick),
}

impl Router {
    pub async fn chat(
        &self,
        http: &HttpClient,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Served<ChatAnswer>, RouteError> {
        let plan = self.plan(&request.model, false, options, &|| {
            mock::estimate_prompt_tokens(&request.messages)
        })?;
        let mut served = self
            .run(plan, Mode::Whole, |deployment| async move {
                let call = deployment.call(http, None);
                deployment.provider.chat(call, request).await
            })
            .await?;
        if let ChatAnswer::Typed(typed) = &mut served.value {
            typed.model.clone_from(&served.deployment.model_name);
        }
        if let Some(usage) = served.value.usage() {
            self.record_tokens(&served.deployment, usage.total_tokens);
        }
        Ok(served)
    }

    /// Opens a chat stream. Failures before its first output are retried and fall back like any
    /// request; after that, chunks flow straight through and a failure ends the stream.
    pub async fn chat_stream(
        &self,
        http: &HttpClient,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Served<ChunkStream>, RouteError> {
        let plan = self.plan(&request.model, true, options, &|| {
            mock::estimate_prompt_tokens(&request.messages)
        })?;
        let served = self
            .run_stream(
                plan,
                chunk_has_output,
                chunk_tokens,
                false,
                |deployment| async move {
                    let call = deployment.call(http, options.stream_timeout);
                    deployment.provider.chat_stream(call, request).await
                },
            )
            .await?;
        let alias = served.deployment.model_name.clone();
        Ok(Served {
            value: Box::pin(served.value.map(move |item| {
                item.map(|mut chunk| {
                    chunk.model.clone_from(&alias);
                    chunk
                })
            })),
            deployment: served.deployment,
            attempts: served.attempts,
            report: served.report,
            upstream_latency: served.upstream_latency,
        })
    }

    pub async fn passthrough(
        &self,
        http: &HttpClient,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
        options: &RequestOptions,
    ) -> Result<Served<PassthroughResponse>, RouteError> {
        let plan = self.plan(&request.model, false, options, &|| {
            passthrough_prompt_tokens(request)
        })?;
        let mut served = self
            .run(plan, Mode::Whole, |deployment| async move {
                let call = deployment.call(http, None);
                deployment
                    .provider
                    .passthrough(call, endpoint, request)
                    .await
            })
            .await?;
        served.value.model = Some(served.deployment.model_name.clone());
        if let Some(usage) = served.value.usage() {
            self.record_tokens(&served.deployment, usage.total_tokens);
        }
        Ok(served)
    }

    /// Streams `/v1/completions`: each event's JSON passes through with `model` rewritten.
    pub async fn passthrough_stream(
        &self,
        http: &HttpClient,
        endpoint: PassthroughEndpoint,
        request: &PassthroughRequest,
        options: &RequestOptions,
    ) -> Result<Served<PassthroughStream>, RouteError> {
        let plan = self.plan(&request.model, true, options, &|| {
            passthrough_prompt_tokens(request)
        })?;
        let served = self
            .run_stream(
                plan,
                |_| true,
                |event: &PassthroughResponse| event.usage().map(|u| u.total_tokens),
                false,
                |deployment| async move {
                    let call = deployment.call(http, options.stream_timeout);
                    deployment
                        .provider
                        .passthrough_stream(call, endpoint, request)
                        .await
                },
            )
            .await?;
        let alias = served.deployment.model_name.clone();
        Ok(Served {
            value: Box::pin(served.value.map(move |item| {
                item.map(|mut event| {
                    event.model = Some(alias.clone());
                    event
                })
            })),
            deployment: served.deployment,
            attempts: served.attempts,
            report: served.report,
            upstream_latency: served.upstream_latency,
        })
    }

    /// Runs `call` against the model's deployments under the router's full policy (rules,
    /// strategy, timeouts, retries, cooldowns, fallbacks), for callers with their own
    /// per-deployment operation (e.g. forwarding a provider-native request). Each attempt is
    /// bounded by the deployment's `timeout` and the request's deadline.
    pub async fn execute<'a, T, F, Fut>(
        &'a self,
        model: &str,
        options: &'a RequestOptions,
        call: F,
    ) -> Result<Served<T>, RouteError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        let plan = self.plan(model, false, options, &|| 0)?;
        self.run(plan, Mode::Whole, call).await
    }

    /// [`Router::execute`] for streams: `call` opens a stream, the router reads ahead until an
    /// item for which `has_output` holds (failing over before that, bounded by `stream_timeout`),
    /// then hands the stream over, counting `tokens` of each item toward the deployment's `tpm`
    /// and ending it with a timeout when it stays silent longer than the deployment's `timeout`.
    pub async fn execute_stream<'a, I, F, Fut>(
        &'a self,
        model: &str,
        options: &'a RequestOptions,
        has_output: fn(&I) -> bool,
        tokens: fn(&I) -> Option<u64>,
        call: F,
    ) -> Result<Served<BoxStream<I>>, RouteError>
    where
        I: Send + 'static,
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<BoxStream<I>, ProviderError>> + 'a,
    {
        let plan = self.plan(model, true, options, &|| 0)?;
        self.run_stream(plan, has_output, tokens, true, call).await
    }

    async fn run_stream<'a, I, F, Fut>(
        &'a self,
        plan: Plan<'a>,
        has_output: fn(&I) -> bool,
        tokens: fn(&I) -> Option<u64>,
        own_idle_bound: bool,
        mut call: F,
    ) -> Result<Served<BoxStream<I>>, RouteError>
    where
        I: Send + 'static,
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<BoxStream<I>, ProviderError>> + 'a,
    {
        let served = self
            .run(plan, Mode::Stream, |deployment| {
                let opening = call(deployment);
                async move { read_ahead(opening.await?, has_output).await }
            })
            .await?;
        let books = StreamBooks {
            deployment: served.deployment.clone(),
            cooldowns: self.cooldowns.clone(),
            usage: self.usage.clone(),
            clock: self.clock,
        };
        // Streams from this module's own providers already stop on silence (`HttpClient`);
        // streams from `execute_stream` callers get the same bound here.
        let idle = own_idle_bound.then_some(served.deployment.timeout);
        Ok(Served {
            value: Box::pin(Tracked::new(served.value, books, tokens, idle)),
            deployment: served.deployment,
            attempts: served.attempts,
            report: served.report,
            upstream_latency: served.upstream_latency,
        })
    }

    /// Step 1: the first model group (a route rule may choose it), the deadline, the facts.
    fn plan<'a>(
        &'a self,
        model: &str,
        stream: bool,
        options: &'a RequestOptions,
        estimate_tokens: &dyn Fn() -> u64,
    ) -> Result<Plan<'a>, RouteError> {
        let deadline = Instant::now() + options.timeout.unwrap_or(self.settings.deadline);
        let tokens = std::cell::OnceCell::new();
        let prompt_tokens =
            || *tokens.get_or_init(|| options.prompt_tokens.unwrap_or_else(estimate_tokens));
        let rule = if self.rules.is_empty() {
            None
        } else {
            self.rules.choose(&Facts {
                model,
                stream,
                options,
                prompt_tokens: &prompt_tokens,
            })
        };
        let target = rule.map_or(model, |rule| rule.config.route_to.as_str());
        let Some((group, first)) = self.groups.get_key_value(target) else {
            return Err(RouteError::UnknownModel(model.to_owned()));
        };
        Ok(Plan {
            group,
            first,
            options,
            report: RouteReport {
                // Only needed when the answer comes from another group: a rule's choice now, a
                // fallback's later (then it is the first group itself).
                requested: if rule.is_some() {
                    model.to_owned()
                } else {
                    String::new()
                },
                rule: rule.map(|r| r.name().to_owned()),
                ..RouteReport::default()
            },
            deadline,
            stream,
            prompt_tokens: if self.needs_prompt_tokens {
                prompt_tokens()
            } else {
                0
            },
        })
    }

    /// Step 2: the group, then fallbacks, until one answers or the chain or the deadline ends.
    async fn run<'a, T, F, Fut>(
        &'a self,
        mut plan: Plan<'a>,
        mode: Mode,
        mut call: F,
    ) -> Result<Served<T>, RouteError>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        let mut queue = FallbackQueue::new(plan.group, self.settings.fallbacks.max_fallbacks);
        let mut attempts = 0u32;
        let mut last_error: Option<(ProviderError, Arc<Deployment>)> = None;
        let mut last_unavailable: Option<(&str, NoPick)> = None;
        // The group whose failure led to the next one (for the fallback metrics).
        let mut previous: &str = plan.group;
        while let Some(name) = queue.next_group() {
            let first = std::ptr::eq(name, plan.group);
            if !first {
                crate::telemetry::fell_back(previous, name);
            }
            previous = name;
            let group = if first {
                plan.first
            } else if let Some(group) = self.groups.get(name) {
                group
            } else {
                continue;
            };
            // The first group starts with the whole deadline; later ones only with what is left.
            if !first && Instant::now() >= plan.deadline {
                plan.report.trail.push(TrailEntry::Skipped {
                    group: name.to_owned(),
                    reason: "deadline",
                });
                break;
            }
            let fallback_kind = match self
                .try_group(group, &mut plan, mode, &mut call, &mut attempts)
                .await
            {
                GroupOutcome::Served(value, picked, upstream_latency) => {
                    let mut report = plan.report;
                    if !first {
                        picked.deployment.stats.record_fallback_served();
                        crate::telemetry::fallback_finished(plan.group, name, true);
                        if report.requested.is_empty() {
                            report.requested = plan.group.to_owned();
                        }
                    }
                    report.canary = picked.canary;
                    report.fallbacks = queue.fallbacks_tried();
                    return Ok(Served {
                        value,
                        deployment: picked.deployment,
                        attempts,
                        report,
                        upstream_latency,
                    });
                }
                GroupOutcome::Failed(error, deployment) => {
                    let kind = FailureKind::of(&error);
                    // "Cannot express this request" from a fallback must not hide the real
                    // upstream error that started the chain.
                    if kind != FailureKind::Unsupported || last_error.is_none() {
                        last_error = Some((error, deployment));
                    }
                    kind.fallback()
                }
                GroupOutcome::Unavailable(reason) => {
                    plan.report.trail.push(TrailEntry::Skipped {
                        group: name.to_owned(),
                        reason: reason.name(),
                    });
                    let kind = match reason {
                        NoPick::ContextWindow { .. } => FallbackKind::ContextWindow,
                        _ => FallbackKind::Generic,
                    };
                    last_unavailable = Some((name, reason));
                    kind
                }
            };
            queue.push_front(fallbacks_for(
                &self.settings.fallbacks,
                plan.options,
                name,
                plan.group,
                fallback_kind,
            ));
        }
        let mut report = plan.report;
        report.fallbacks = queue.fallbacks_tried();
        if report.fallbacks > 0 {
            crate::telemetry::fallback_finished(plan.group, previous, false);
        }
        tracing::warn!(
            model_group = %plan.group,
            attempts,
            fallbacks = report.fallbacks,
            trail = %report.trail_text(),
            "every attempt failed"
        );
        Err(match (last_error, last_unavailable) {
            (Some((error, deployment)), _) => RouteError::Upstream(Box::new(UpstreamFailure {
                group: plan.group.to_owned(),
                attempts,
                deployment: deployment.id.clone(),
                error,
                report,
            })),
            (None, Some((group, reason))) => RouteError::Unavailable(Box::new(Unavailable {
                group: group.to_owned(),
                reason,
                now_ms: self.clock.now_ms(),
                report,
            })),
            (None, None) => RouteError::Unavailable(Box::new(Unavailable {
                group: plan.group.to_owned(),
                reason: NoPick::AllTried,
                now_ms: self.clock.now_ms(),
                report,
            })),
        })
    }

    /// Step 3: attempts within one group, with retries.
    async fn try_group<'a, T, F, Fut>(
        &'a self,
        group: &'a ModelGroup,
        plan: &mut Plan<'a>,
        mode: Mode,
        call: &mut F,
        attempts: &mut u32,
    ) -> GroupOutcome<T>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        if plan.options.mock_testing_fallbacks && group.name == plan.group {
            *attempts += 1;
            let deployment = group.deployments[0].clone();
            plan.report.trail.push(TrailEntry::Called {
                deployment: deployment.clone(),
                outcome: "mock_testing_fallbacks",
            });
            let error = ProviderError::Status {
                status: 500,
                message: format!(
                    "mock_testing_fallbacks: simulated failure of model group `{}`",
                    group.name
                ),
                kind: Some("server_error".into()),
                code: None,
                param: None,
                retry_after: None,
            };
            return GroupOutcome::Failed(error, deployment);
        }
        let mut rng = fastrand::Rng::new();
        let mut tried: Vec<Arc<Deployment>> = Vec::new();
        let mut retries_used = 0u32;
        let mut base_retries = None;
        let mut last: Option<(ProviderError, Arc<Deployment>)> = None;
        loop {
            let mut now = Instant::now();
            let picked = match self.pick_for_attempt(group, plan, &tried, &mut rng, now) {
                Ok(picked) => picked,
                Err(reason) => {
                    let Some((error, deployment)) = last else {
                        return GroupOutcome::Unavailable(reason);
                    };
                    // Only deployments this request already tried are left: wait the backoff
                    // (or the upstream's retry-after) before trying one again, if the deadline
                    // leaves room for it.
                    let wait = retry::backoff(
                        retries_used - 1,
                        error.retry_after(),
                        self.settings.retry_after,
                        rng.f64(),
                    );
                    if now + wait >= plan.deadline {
                        return GroupOutcome::Failed(error, deployment);
                    }
                    tokio::time::sleep(wait).await;
                    now = Instant::now();
                    match self.pick_for_attempt(group, plan, &[], &mut rng, now) {
                        Ok(picked) => picked,
                        Err(_) => return GroupOutcome::Failed(error, deployment),
                    }
                }
            };
            let base = *base_retries
                .get_or_insert_with(|| picked.deployment.max_retries.unwrap_or(self.num_retries));
            *attempts += 1;
            let deployment = picked.deployment.clone();
            // Not boxed: the provider's operation already is (the `Provider` trait returns a
            // boxed future), so what moves through the attempt and timeout layers is small.
            let operation = call(deployment.clone());
            match self.attempt(&picked, plan, mode, operation, now).await {
                Ok(value) => {
                    // A first-try answer needs no trail (and allocates none).
                    if !plan.report.trail.is_empty() {
                        plan.report.trail.push(TrailEntry::Called {
                            deployment,
                            outcome: "ok",
                        });
                    }
                    return GroupOutcome::Served(value, picked, now.elapsed());
                }
                Err(error) => {
                    plan.report.trail.push(TrailEntry::Called {
                        deployment: deployment.clone(),
                        outcome: error.class(),
                    });
                    let kind = FailureKind::of(&error);
                    let allowed = retry::retries_allowed(
                        kind,
                        plan.options.num_retries,
                        self.settings.model_group_retry_policy.get(&group.name),
                        &self.settings.retry_policy,
                        base,
                    );
                    if !tried.iter().any(|d| Arc::ptr_eq(d, &deployment)) {
                        tried.push(deployment.clone());
                    }
                    if retries_used >= allowed || Instant::now() >= plan.deadline {
                        return GroupOutcome::Failed(error, deployment);
                    }
                    retries_used += 1;
                    plan.report.retries += 1;
                    crate::telemetry::retried(&group.name);
                    last = Some((error, deployment));
                }
            }
        }
    }

    fn pick_for_attempt(
        &self,
        group: &ModelGroup,
        plan: &Plan<'_>,
        exclude: &[Arc<Deployment>],
        rng: &mut fastrand::Rng,
        now: Instant,
    ) -> Result<Picked, NoPick> {
        let now_ms = self.clock.ms_at(now.into_std());
        let picked = self.selector.pick(
            group,
            self.cooldowns.as_ref(),
            self.usage.as_ref(),
            &PickContext {
                now_ms,
                stream: plan.stream,
                region: plan.options.region.as_deref(),
                prompt_tokens: plan.prompt_tokens,
                exclude,
            },
            rng,
        )?;
        picked.deployment.stats.record_pick();
        self.usage.add(&picked.deployment.id, now_ms, 1, 0);
        Ok(picked)
    }

    /// One call to one deployment, under the attempt's timeout, with its outcome recorded.
    async fn attempt<T>(
        &self,
        picked: &Picked,
        plan: &Plan<'_>,
        mode: Mode,
        call: impl Future<Output = Result<T, ProviderError>>,
        started: Instant,
    ) -> Result<T, ProviderError> {
        let deployment = &picked.deployment;
        let bound = match mode {
            Mode::Whole => deployment.timeout,
            Mode::Stream => plan
                .options
                .stream_timeout
                .unwrap_or(deployment.stream_timeout),
        };
        let limit = bound.min(plan.deadline.saturating_duration_since(started));
        let mut guard = AttemptGuard {
            router: self,
            deployment,
            probe: picked.probe,
            settled: false,
        };
        deployment.stats.start();
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout(limit)),
        };
        // A timeout cut short by the request's deadline says little about the deployment.
        let cut_by_deadline = limit < bound && matches!(result, Err(ProviderError::Timeout(_)));
        guard.settled = true;
        deployment.stats.finish();
        let finished = Instant::now();
        let elapsed = finished - started;
        let now_ms = self.clock.ms_at(finished.into_std());
        let stream = mode == Mode::Stream;
        match &result {
            Ok(_) => {
                deployment.stats.record_success(elapsed, stream);
                if let Some(transition) = self.cooldowns.record_success(&deployment.id, now_ms) {
                    self.log_transition(deployment, transition, None);
                }
            }
            Err(error) => {
                let kind = FailureKind::of(error);
                let status = match error {
                    ProviderError::Status { status, .. } => Some(*status),
                    _ => None,
                };
                let waited =
                    matches!(error, ProviderError::Timeout(_)).then_some((elapsed, stream));
                deployment
                    .stats
                    .record_failure(error.class(), status, now_ms, waited);
                crate::telemetry::attempt_failed(deployment, error.class(), status);
                tracing::warn!(
                    model_group = %deployment.model_name,
                    deployment = %deployment.id,
                    error_class = error.class(),
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    "upstream call failed: {error}"
                );
                let transition = if deployment.cooldown_exempt || cut_by_deadline {
                    None
                } else {
                    self.cooldowns
                        .record_failure(&deployment.id, now_ms, kind, error.retry_after())
                };
                if let Some(transition) = transition {
                    self.log_transition(deployment, transition, Some(error));
                } else if picked.probe {
                    // A failure that does not count (a 400) says nothing about the
                    // deployment; give the probe back for the next request.
                    self.cooldowns.release_probe(&deployment.id);
                }
            }
        }
        result
    }

    fn record_tokens(&self, deployment: &Deployment, tokens: u64) {
        self.usage
            .add(&deployment.id, self.clock.now_ms(), 0, tokens);
    }
}

/// Undoes an attempt's bookkeeping when its future is dropped before it settled (the client
/// went away): the in-flight count goes down and a probe is given back.
struct AttemptGuard<'a> {
    router: &'a Router,
    deployment: &'a Deployment,
    probe: bool,
    settled: bool,
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.deployment.stats.finish();
            if self.probe {
                self.router.cooldowns.release_probe(&self.deployment.id);
            }
        }
    }
}

fn chunk_has_output(chunk: &ChatChunk) -> bool {
    chunk.has_output()
}

fn chunk_tokens(chunk: &ChatChunk) -> Option<u64> {
    chunk.usage.as_ref().map(|u| u.total_tokens)
}

/// ceil(characters / 4) of `prompt` or `input`.
pub fn passthrough_prompt_tokens(request: &PassthroughRequest) -> u64 {
    let chars = match request
        .extra
        .get("prompt")
        .or_else(|| request.extra.get("input"))
    {
        Some(Value::String(text)) => text.len(),
        Some(Value::Array(items)) => items.iter().map(|i| i.as_str().map_or(4, str::len)).sum(),
        _ => 0,
    };
    (chars as u64).div_ceil(4)
}
