//! Prometheus metrics through the `metrics` facade and its Prometheus recorder
//! (`metrics-exporter-prometheus`), installed once when the server starts and rendered by
//! `GET /metrics` (`api/health.rs`). Without a recorder (unit tests, short-lived commands) every
//! handle is a no-op.
//!
//! The request path never builds a label set: the handles of a deployment (its histograms) and
//! of a request's label combination (deployment, team, key alias, tag values) are resolved once,
//! cached, and kept across reloads; recording is then a hash of a few short strings, a read lock
//! and a few atomic adds. Failures, retries, fallbacks and cooldowns (rarer) resolve their
//! handles when they happen. What the process already counts elsewhere (the router's deployment
//! state, the spend-log writer, the rate-limit store, budgets) is copied into the recorder when
//! `/metrics` is scraped ([`publish`]), never on the request path.
//!
//! Every series is documented in docs/metrics.md.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, Label};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::Principal;
use crate::pipeline::{Finished, Outcome};
use crate::router::keyed::{FnvHasher, IdMap};
use crate::router::Deployment;

/// Histogram buckets (upper bounds, seconds) of every `switchyard_*_seconds` histogram: from
/// 50 µs (the gateway's own overhead) to 10 minutes (a long stream), roughly 1-2.5-5 per decade.
pub const BUCKETS: [f64; 22] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// LiteLLM's latency buckets (`LATENCY_BUCKETS` of its Prometheus integration), for the
/// `litellm_*` histograms, so dashboards built on LiteLLM see the same `le` values.
pub const LITELLM_BUCKETS: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 420.0,
    600.0,
];

/// Distinct values a tag label keeps by default before folding new ones into `other`.
pub const DEFAULT_MAX_LABEL_VALUES: usize = 100;

/// The value a tag label takes past its cap (and for values that are not short strings).
pub const OTHER: &str = "other";

/// The longest tag value kept as is; longer ones are `other`.
const MAX_TAG_VALUE_LEN: usize = 64;

/// What `/metrics` shows and who may read it (`switchyard_metrics:` and LiteLLM's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Keys of a request's `metadata` that label the request series (`feature` ...).
    pub tag_labels: Vec<String>,
    /// Distinct values per tag label; later values fold into `other`.
    pub max_label_values: usize,
    /// LiteLLM's metric names too (`litellm_settings.callbacks: ["prometheus"]`).
    pub litellm_names: bool,
    /// `litellm_settings.require_auth_for_metrics_endpoint`: the master key or an admin key.
    pub require_auth: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            tag_labels: Vec::new(),
            max_label_values: DEFAULT_MAX_LABEL_VALUES,
            litellm_names: false,
            require_auth: false,
        }
    }
}

/// Labels of the request series; a tag label may not reuse one.
const RESERVED_LABELS: &[&str] = &[
    "model_group",
    "deployment",
    "provider",
    "status_class",
    "team",
    "key_alias",
    "kind",
    "le",
    "reason",
    "status",
    "scope",
];

/// A tag label must be a Prometheus label name and not one of ours.
pub fn check_tag_label(label: &str) -> Result<(), String> {
    let mut chars = label.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !label.starts_with("__");
    if !valid {
        return Err(format!(
            "`{label}` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
        ));
    }
    if RESERVED_LABELS.contains(&label) {
        return Err(format!(
            "`{label}` is already a label of the request series"
        ));
    }
    Ok(())
}

/// Whether LiteLLM's names are on, for the router's events (which have no `Metrics` at hand).
static LITELLM_NAMES: AtomicBool = AtomicBool::new(false);

/// Installs the Prometheus recorder for this process (once; later calls return `None`).
pub fn install_recorder() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix("litellm_".into()), &LITELLM_BUCKETS)
        .and_then(|b| b.set_buckets(&BUCKETS));
    let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
        Ok(handle) => handle,
        Err(err) => {
            tracing::warn!("metrics recorder not installed: {err}");
            return None;
        }
    };
    describe();
    Some(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "switchyard_requests_total",
        "Requests a deployment answered or failed, by status class."
    );
    describe_counter!(
        "switchyard_rejected_total",
        "Requests refused before a deployment was called, by reason and status."
    );
    describe_counter!(
        "switchyard_tokens_total",
        "Tokens reported by upstreams (kind: prompt or completion)."
    );
    describe_gauge!(
        "switchyard_cost_usd_total",
        "What requests cost, in US dollars (only ever grows; a gauge because it is fractional)."
    );
    describe_histogram!(
        "switchyard_request_duration_seconds",
        "Whole request latency as the gateway saw it (streams: until the last chunk)."
    );
    describe_histogram!(
        "switchyard_time_to_first_token_seconds",
        "Streams: time from the request to the first output sent to the client."
    );
    describe_histogram!(
        "switchyard_upstream_duration_seconds",
        "Non-streaming: the successful attempt's time at the upstream."
    );
    describe_histogram!(
        "switchyard_gateway_overhead_seconds",
        "Non-streaming: whole latency minus the successful attempt's upstream time."
    );
    describe_counter!(
        "switchyard_upstream_errors_total",
        "Failed attempts, by error class."
    );
    describe_counter!(
        "switchyard_retries_total",
        "Attempts that retried a failed one in the same model group."
    );
    describe_counter!(
        "switchyard_fallbacks_total",
        "Fallbacks from a failed model group to another."
    );
    describe_counter!(
        "switchyard_cooldown_transitions_total",
        "Deployments entering (opened) or leaving (closed) a cooldown."
    );
    describe_counter!(
        "switchyard_cache_hits_total",
        "Requests answered from the response cache."
    );
    describe_counter!(
        "switchyard_guardrail_decisions_total",
        "Guardrail passes over a prompt or an answer, by guardrail, mode and outcome."
    );
    describe_counter!(
        "switchyard_guardrail_detections_total",
        "What guardrails matched, by guardrail, entity kind and action (never the value)."
    );
    describe_counter!(
        "switchyard_cache_lookups_total",
        "Response cache lookups by result: hit, coalesced, miss, bypass (no-cache), error \
         (backend unreachable or slow: the request went on without the cache), store_error."
    );
    describe_counter!(
        "switchyard_rate_limit_rejections_total",
        "Requests refused by a rate limit (rpm, tpm, parallel), by the limit's scope."
    );
    describe_counter!(
        "switchyard_budget_rejections_total",
        "Requests refused by a budget, by the budget's scope."
    );
    describe_gauge!(
        "switchyard_requests_in_flight",
        "Model requests admitted and not finished yet."
    );
    describe_counter!(
        "switchyard_streams_cancelled_total",
        "Streams the client closed before the end."
    );
    // The scrape-time series (copied in by `telemetry::publish` and `Router::publish_metrics`).
    for (name, help) in [
        (
            "switchyard_log_lines_dropped_total",
            "Log lines dropped because the log writer fell behind.",
        ),
        (
            "switchyard_rate_limit_local_fallbacks_total",
            "Requests whose limits were decided per instance because Redis was unreachable.",
        ),
        (
            "switchyard_spend_rows_written_total",
            "Spend-log rows written to the database by the queue.",
        ),
        (
            "switchyard_spend_rows_spilled_total",
            "Spend-log rows appended to the spill file (queue full, or shutdown).",
        ),
        (
            "switchyard_spend_rows_replayed_total",
            "Spend-log rows written to the database from the spill file.",
        ),
        (
            "switchyard_spend_rows_dropped_total",
            "Spend-log rows lost: the queue was full and they could not be spilled.",
        ),
        (
            "switchyard_spend_spill_bad_lines_total",
            "Spill-file lines skipped on replay because they were not rows.",
        ),
        (
            "switchyard_spend_write_failures_total",
            "Spend-log batch writes that failed and were retried.",
        ),
        (
            "switchyard_deployment_cooldowns_total",
            "Times the deployment entered a cooldown.",
        ),
        (
            "switchyard_deployment_routed_total",
            "Attempts the router sent to the deployment.",
        ),
        (
            "switchyard_deployment_served_total",
            "Attempts the deployment answered (for streams: reached the first output).",
        ),
        (
            "switchyard_deployment_failures_total",
            "Attempts that failed (any error class), mid-stream failures included.",
        ),
        (
            "switchyard_deployment_fallback_served_total",
            "Requests the deployment answered after another model group had failed.",
        ),
        (
            "switchyard_route_rule_matches_total",
            "Requests each route rule sent to its model group.",
        ),
        (
            "switchyard_budget_local_fallbacks_total",
            "Requests whose budgets were reserved per instance because Redis was unreachable.",
        ),
        (
            "switchyard_budget_settle_failures_total",
            "Budget settlements Redis did not take (their cost counted on the instance).",
        ),
        (
            "switchyard_callback_events_enqueued_total",
            "Callback events handed to a destination's outbox (webhook, Langfuse, alerts).",
        ),
        (
            "switchyard_callback_events_delivered_total",
            "Callback events a destination accepted.",
        ),
        (
            "switchyard_callback_events_dropped_total",
            "Callback events given up: queue full, retries exhausted, refused, or left at shutdown.",
        ),
        (
            "switchyard_callback_post_failures_total",
            "Callback POSTs that failed (each retry counts).",
        ),
        (
            "switchyard_trace_spans_dropped_total",
            "Spans lost: export queue full, or the collector failed or did not answer.",
        ),
        (
            "switchyard_trace_spans_exported_total",
            "Spans the OTLP collector accepted.",
        ),
        ("switchyard_alerts_sent_total", "Alerts sent."),
        (
            "switchyard_alerts_deduplicated_total",
            "Alerts not sent again because the same one went out within its window.",
        ),
    ] {
        describe_counter!(name, help);
    }
    for (name, help) in [
        (
            "switchyard_rate_limit_store_up",
            "Whether the shared rate-limit store (Redis) answers (1 without one).",
        ),
        (
            "switchyard_budget_store_up",
            "Whether the shared budget store (Redis) answers (1 without one).",
        ),
        (
            "switchyard_spend_rows_queued",
            "Spend-log rows waiting in memory for the writer.",
        ),
        (
            "switchyard_spend_rows_spill_pending",
            "Spend-log rows in the spill file, not yet replayed.",
        ),
        (
            "switchyard_spend_store_up",
            "Whether the last spend-log write succeeded.",
        ),
        (
            "switchyard_deployment_state",
            "0 healthy, 1 half-open (probing), 2 cooling down, 3 failed its health check.",
        ),
        (
            "switchyard_deployment_in_flight",
            "Attempts and open streams in flight.",
        ),
        (
            "switchyard_deployment_latency_seconds",
            "Moving average of whole-request latency (0 until measured).",
        ),
        (
            "switchyard_deployment_ttft_seconds",
            "Moving average of a stream's time to first output (0 until measured).",
        ),
        (
            "switchyard_key_budget_remaining_usd",
            "What is left of the key's max_budget in its current window, US dollars.",
        ),
        (
            "switchyard_key_max_budget_usd",
            "The key's max_budget, US dollars.",
        ),
        (
            "switchyard_team_budget_remaining_usd",
            "What is left of the team's max_budget in its current window, US dollars.",
        ),
        (
            "switchyard_team_max_budget_usd",
            "The team's max_budget, US dollars.",
        ),
        (
            "switchyard_key_rate_limit_remaining_requests",
            "Requests the key may still make now under its rpm_limit.",
        ),
        (
            "switchyard_key_rate_limit_remaining_tokens",
            "Tokens the key may still use now under its tpm_limit.",
        ),
        (
            "switchyard_team_rate_limit_remaining_requests",
            "Requests the team may still make now under its rpm_limit.",
        ),
        (
            "switchyard_team_rate_limit_remaining_tokens",
            "Tokens the team may still use now under its tpm_limit.",
        ),
    ] {
        describe_gauge!(name, help);
    }
}

/// One tag label's values seen so far: the first `cap` distinct values are kept, later ones
/// are `other`. Values are kept for the life of the process (their series are too).
struct Folder {
    label: String,
    // Capped at the configured cardinality, so a fast hash is safe against hostile values.
    seen: RwLock<HashSet<Box<str>, foldhash::fast::RandomState>>,
}

impl Folder {
    fn new(label: &str) -> Folder {
        Folder {
            label: label.to_owned(),
            seen: RwLock::default(),
        }
    }

    fn fold<'a>(&self, value: &'a str, cap: usize) -> &'a str {
        if value.len() > MAX_TAG_VALUE_LEN {
            return OTHER;
        }
        if read(&self.seen).contains(value) {
            return value;
        }
        let mut seen = write(&self.seen);
        if seen.contains(value) {
            return value;
        }
        if seen.len() >= cap {
            return OTHER;
        }
        seen.insert(value.into());
        value
    }
}

/// The settings as the recorder uses them, with the folders of their tag labels.
struct Labels {
    settings: MetricsSettings,
    folders: Vec<Arc<Folder>>,
    requested_models: Arc<Folder>,
}

/// The handles of one deployment: its latency histograms and a few counters.
struct DeploymentSeries {
    duration: Histogram,
    ttft: Histogram,
    upstream: Histogram,
    overhead: Histogram,
    streams_cancelled: Counter,
    cache_hits: Counter,
}

/// The handles of one label combination of the request series.
struct RequestSeries {
    /// What the combination is (deployment id, team, key alias, tag values ...), to tell two
    /// combinations with the same hash apart.
    parts: Box<[Box<str>]>,
    requests: [Counter; 3],
    prompt_tokens: Counter,
    completion_tokens: Counter,
    cost: Gauge,
    litellm: Option<LitellmSeries>,
}

/// LiteLLM's request-level series (its names and label names).
struct LitellmSeries {
    requests: Counter,
    spend: Gauge,
    total_tokens: Counter,
    input_tokens: Counter,
    output_tokens: Counter,
    total_latency: Histogram,
    api_latency: Histogram,
    ttft: Histogram,
    overhead: Histogram,
    deployment_total: Counter,
    deployment_success: Counter,
    /// `litellm_proxy_total_requests_metric` with `status_code="200"` (other statuses are rare
    /// enough to resolve when they happen).
    proxy_ok: Counter,
}

type SeriesMap = HashMap<u64, Vec<Arc<RequestSeries>>, BuildHasherDefault<FnvHasher>>;

pub struct Metrics {
    handle: OnceLock<PrometheusHandle>,
    labels: RwLock<Arc<Labels>>,
    deployments: RwLock<IdMap<Arc<DeploymentSeries>>>,
    series: RwLock<SeriesMap>,
    in_flight: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            handle: OnceLock::new(),
            labels: RwLock::new(Arc::new(Labels {
                settings: MetricsSettings::default(),
                folders: Vec::new(),
                requested_models: Arc::new(Folder::new("requested_model")),
            })),
            deployments: RwLock::default(),
            series: RwLock::default(),
            in_flight: AtomicI64::new(0),
        }
    }

    /// Installs the process's Prometheus recorder and keeps its handle for `/metrics`, and drains
    /// histogram samples every few seconds so an unscraped gateway does not pile them up.
    /// Call before the first request (handles resolved earlier stay no-ops).
    pub fn install_recorder(&self) {
        let Some(handle) = install_recorder() else {
            return;
        };
        let upkeep = handle.clone();
        if self.handle.set(handle).is_ok() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
        }
    }

    /// The recorder's handle, if one is installed.
    pub fn handle(&self) -> Option<&PrometheusHandle> {
        self.handle.get()
    }

    /// Takes the settings of a new config. A change of tag labels or of LiteLLM's names starts
    /// new request series (the old ones stay, frozen); folders of labels kept stay as they are.
    pub fn configure(&self, settings: &MetricsSettings) {
        LITELLM_NAMES.store(settings.litellm_names, Relaxed);
        let mut labels = write(&self.labels);
        if labels.settings == *settings {
            return;
        }
        let folders = settings
            .tag_labels
            .iter()
            .map(|label| {
                labels
                    .folders
                    .iter()
                    .find(|f| f.label == *label)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Folder::new(label)))
            })
            .collect();
        let series_change = labels.settings.tag_labels != settings.tag_labels
            || labels.settings.litellm_names != settings.litellm_names;
        *labels = Arc::new(Labels {
            settings: settings.clone(),
            folders,
            requested_models: labels.requested_models.clone(),
        });
        if series_change {
            write(&self.series).clear();
        }
    }

    pub fn settings(&self) -> MetricsSettings {
        read(&self.labels).settings.clone()
    }

    /// A model request was admitted (its finished event brings the count down again).
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub fn request_ended(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Counts a finished request: by the deployment that answered, or as refused before
    /// routing when none did.
    pub fn record(&self, event: &Finished<'_>) {
        let Some(deployment) = event.deployment else {
            if event.status >= 400 {
                self.record_rejected(event);
            }
            return;
        };
        let latency = event.latency.as_secs_f64();
        let d = self.deployment_series(deployment);
        d.duration.record(latency);
        if let Some(ttft) = event.time_to_first_token {
            d.ttft.record(ttft.as_secs_f64());
        }
        let upstream = event.upstream_latency.filter(|_| !event.stream);
        if let Some(upstream) = upstream {
            d.upstream.record(upstream.as_secs_f64());
            d.overhead
                .record(event.latency.saturating_sub(upstream).as_secs_f64());
        }
        if event.stream && event.outcome == Outcome::Abandoned {
            d.streams_cancelled.increment(1);
        }
        if event.cache_hit {
            d.cache_hits.increment(1);
        }

        let labels = read(&self.labels);
        let series = self.request_series(&labels, deployment, event);
        series.requests[status_class_index(event.status)].increment(1);
        if let Some(usage) = event.usage {
            series.prompt_tokens.increment(usage.prompt_tokens);
            series.completion_tokens.increment(usage.completion_tokens);
        }
        // Money is integer nanodollars everywhere else; dollars only here, at the edge.
        let usd = event.cost.map_or(0.0, |c| c.total.as_usd());
        if usd != 0.0 {
            series.cost.increment(usd);
        }
        if let Some(litellm) = &series.litellm {
            litellm.requests.increment(1);
            litellm.deployment_total.increment(1);
            if event.status < 400 {
                litellm.deployment_success.increment(1);
            }
            if usd != 0.0 {
                litellm.spend.increment(usd);
            }
            if let Some(usage) = event.usage {
                litellm.total_tokens.increment(usage.total_tokens);
                litellm.input_tokens.increment(usage.prompt_tokens);
                litellm.output_tokens.increment(usage.completion_tokens);
            }
            litellm.total_latency.record(latency);
            if let Some(ttft) = event.time_to_first_token {
                litellm.ttft.record(ttft.as_secs_f64());
            }
            if let Some(upstream) = upstream {
                litellm.api_latency.record(upstream.as_secs_f64());
                litellm
                    .overhead
                    .record(event.latency.saturating_sub(upstream).as_secs_f64());
            }
            if event.status == 200 {
                litellm.proxy_ok.increment(1);
            } else {
                self.litellm_proxy_requests(&labels, event);
            }
        }
    }

    fn deployment_series(&self, deployment: &Deployment) -> Arc<DeploymentSeries> {
        if let Some(series) = read(&self.deployments).get(deployment.id.as_str()) {
            return series.clone();
        }
        let mut map = write(&self.deployments);
        map.entry(Arc::from(deployment.id.as_str()))
            .or_insert_with(|| {
                let labels = deployment_labels(deployment);
                Arc::new(DeploymentSeries {
                    duration: histogram!("switchyard_request_duration_seconds", labels.clone()),
                    ttft: histogram!("switchyard_time_to_first_token_seconds", labels.clone()),
                    upstream: histogram!("switchyard_upstream_duration_seconds", labels.clone()),
                    overhead: histogram!("switchyard_gateway_overhead_seconds", labels.clone()),
                    streams_cancelled: counter!(
                        "switchyard_streams_cancelled_total",
                        labels.clone()
                    ),
                    cache_hits: counter!("switchyard_cache_hits_total", labels),
                })
            })
            .clone()
    }

    fn request_series(
        &self,
        labels: &Labels,
        deployment: &Deployment,
        event: &Finished<'_>,
    ) -> Arc<RequestSeries> {
        let principal = event.principal;
        let team = principal
            .and_then(Principal::team)
            .map_or("", |t| t.team_id.as_str());
        // `Principal::label` without formatting it: a key without an alias is `key:` and 8
        // digits of its hash, put together only when the combination is new.
        let (key_prefix, key_alias) = match principal {
            None => ("", ""),
            Some(Principal::Master) => ("", "master_key"),
            Some(Principal::Open) => ("", "open"),
            Some(Principal::Key(resolved)) => match &resolved.key.key_alias {
                Some(alias) => ("", alias.as_str()),
                None => {
                    let token = resolved.key.token.as_str();
                    ("key:", token.get(..8).unwrap_or(token))
                }
            },
        };
        let cap = labels.settings.max_label_values;
        // The parts that make a combination, borrowed: nothing is allocated when it is known.
        let mut parts: [&str; 5] = [deployment.id.as_str(), team, key_prefix, key_alias, ""];
        if labels.settings.litellm_names {
            parts[4] = labels
                .requested_models
                .fold(event.requested_model, cap.max(DEFAULT_MAX_LABEL_VALUES));
        }
        let tag = |folder: &Folder| match event.metadata.and_then(|m| m.get(&folder.label)) {
            None | Some(serde_json::Value::Null) => "",
            Some(serde_json::Value::String(value)) => folder.fold(value, cap),
            Some(_) => OTHER,
        };
        // On the stack for up to eight tag labels (a config rarely has more than two).
        let mut inline = [""; 8];
        let spilled: Vec<&str>;
        let tags: &[&str] = if labels.folders.len() <= inline.len() {
            for (slot, folder) in inline.iter_mut().zip(&labels.folders) {
                *slot = tag(folder);
            }
            &inline[..labels.folders.len()]
        } else {
            spilled = labels.folders.iter().map(|f| tag(f)).collect();
            &spilled
        };
        let all = || parts.iter().chain(tags.iter()).copied();
        let mut hasher = FnvHasher::default();
        for part in all() {
            part.hash(&mut hasher);
        }
        let hash = hasher.finish();
        let same = |series: &&Arc<RequestSeries>| {
            series.parts.len() == parts.len() + tags.len()
                && series.parts.iter().map(|p| &**p).eq(all())
        };
        if let Some(found) = read(&self.series)
            .get(&hash)
            .and_then(|v| v.iter().find(same))
        {
            return found.clone();
        }
        let mut map = write(&self.series);
        let bucket = map.entry(hash).or_default();
        if let Some(found) = bucket.iter().find(same) {
            return found.clone();
        }
        let series = Arc::new(self.new_request_series(
            labels,
            deployment,
            event,
            all().map(Box::from).collect(),
            tags,
        ));
        bucket.push(series.clone());
        series
    }

    fn new_request_series(
        &self,
        labels: &Labels,
        deployment: &Deployment,
        event: &Finished<'_>,
        parts: Box<[Box<str>]>,
        tags: &[&str],
    ) -> RequestSeries {
        let mut base = deployment_labels(deployment);
        base.push(Label::new("team", parts[1].to_string()));
        base.push(Label::new("key_alias", format!("{}{}", parts[2], parts[3])));
        for (folder, value) in labels.folders.iter().zip(tags) {
            base.push(Label::new(folder.label.clone(), (*value).to_owned()));
        }
        let with = |name: &'static str, value: &'static str| {
            let mut labels = base.clone();
            labels.push(Label::new(name, value));
            labels
        };
        let litellm = labels
            .settings
            .litellm_names
            .then(|| litellm_series(deployment, event, &parts[4]));
        RequestSeries {
            requests: ["2xx", "4xx", "5xx"]
                .map(|class| counter!("switchyard_requests_total", with("status_class", class))),
            prompt_tokens: counter!("switchyard_tokens_total", with("kind", "prompt")),
            completion_tokens: counter!("switchyard_tokens_total", with("kind", "completion")),
            cost: gauge!("switchyard_cost_usd_total", base.clone()),
            litellm,
            parts,
        }
    }

    fn record_rejected(&self, event: &Finished<'_>) {
        let rejection = event.rejection.unwrap_or(Rejection {
            reason: reason_of_status(event.status),
            scope: None,
        });
        counter!(
            "switchyard_rejected_total",
            "reason" => rejection.reason,
            "status" => status_label(event.status)
        )
        .increment(1);
        match (rejection.reason, rejection.scope) {
            ("rate_limit", Some(scope)) => {
                counter!("switchyard_rate_limit_rejections_total", "scope" => scope).increment(1);
            }
            ("budget", Some(scope)) => {
                counter!("switchyard_budget_rejections_total", "scope" => scope).increment(1);
            }
            _ => {}
        }
        let labels = read(&self.labels).clone();
        if labels.settings.litellm_names {
            let mut key = principal_labels(event.principal);
            key.push(Label::new("exception_status", status_label(event.status)));
            key.push(Label::new("exception_class", rejection.reason));
            counter!("litellm_proxy_failed_requests_metric_total", key).increment(1);
            self.litellm_proxy_requests(&labels, event);
        }
    }

    /// `litellm_proxy_total_requests_metric` (every request LiteLLM's proxy would count, by
    /// status code) and `litellm_proxy_failed_requests_metric` for routed failures.
    fn litellm_proxy_requests(&self, labels: &Labels, event: &Finished<'_>) {
        let mut key = principal_labels(event.principal);
        let requested = labels.requested_models.fold(
            event.requested_model,
            labels
                .settings
                .max_label_values
                .max(DEFAULT_MAX_LABEL_VALUES),
        );
        key.push(Label::new("requested_model", requested.to_owned()));
        if event.deployment.is_some() && event.status >= 400 {
            let mut failed = key.clone();
            failed.push(Label::new("exception_status", status_label(event.status)));
            failed.push(Label::new(
                "exception_class",
                if event.status >= 500 {
                    "upstream"
                } else {
                    "client"
                },
            ));
            counter!("litellm_proxy_failed_requests_metric_total", failed).increment(1);
        }
        key.push(Label::new("status_code", status_label(event.status)));
        counter!("litellm_proxy_total_requests_metric_total", key).increment(1);
    }

    /// The scrape-time series: copies what the process counts elsewhere into the recorder.
    pub fn publish_in_flight(&self) {
        gauge!("switchyard_requests_in_flight").set(self.in_flight.load(Relaxed).max(0) as f64);
    }
}

/// Why a request was refused before a deployment answered it (and whose limit, for rate limits
/// and budgets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// `auth`, `bad_request`, `forbidden`, `not_found`, `unknown_model`, `too_large`,
    /// `rate_limit`, `budget`, `unavailable`, `internal`, `other`.
    pub reason: &'static str,
    /// The scope of a rate limit or budget (`key`, `team`, `user`, `end_user` ...).
    pub scope: Option<&'static str>,
}

/// A refusal's reason when only its status is known (the edge reports those).
fn reason_of_status(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "bad_request",
        401 => "auth",
        403 => "forbidden",
        404 => "not_found",
        413 => "too_large",
        429 => "rate_limit",
        499 => "abandoned",
        500..=599 => "internal",
        _ => "other",
    }
}

fn status_class_index(status: u16) -> usize {
    match status {
        0..=399 => 0,
        400..=499 => 1,
        _ => 2,
    }
}

/// A status as a label value, without allocating for the usual ones.
fn status_label(status: u16) -> metrics::SharedString {
    let known: &'static str = match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        422 => "422",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return metrics::SharedString::from(other.to_string()),
    };
    metrics::SharedString::const_str(known)
}

fn deployment_labels(deployment: &Deployment) -> Vec<Label> {
    vec![
        Label::new("model_group", deployment.model_name.clone()),
        Label::new("deployment", deployment.id.clone()),
        Label::new("provider", deployment.provider_name.clone()),
    ]
}

/// LiteLLM's caller labels: `hashed_api_key` (the key's SHA-256, as LiteLLM stores it; never
/// the key), `api_key_alias`, `team`, `team_alias`, `user`.
fn principal_labels(principal: Option<&Principal>) -> Vec<Label> {
    let key = principal.and_then(Principal::key);
    let team = principal.and_then(Principal::team);
    let text = |value: Option<&String>| value.cloned().unwrap_or_default();
    vec![
        Label::new("hashed_api_key", text(key.map(|k| &k.token))),
        Label::new(
            "api_key_alias",
            text(key.and_then(|k| k.key_alias.as_ref())),
        ),
        Label::new("team", text(team.map(|t| &t.team_id))),
        Label::new("team_alias", text(team.and_then(|t| t.team_alias.as_ref()))),
        Label::new(
            "user",
            text(principal.and_then(Principal::user).map(|u| &u.user_id)),
        ),
    ]
}

fn litellm_series(deployment: &Deployment, event: &Finished<'_>, requested: &str) -> LitellmSeries {
    let mut caller = principal_labels(event.principal);
    caller.push(Label::new("requested_model", requested.to_owned()));
    let mut proxy_ok = caller.clone();
    proxy_ok.push(Label::new("status_code", "200"));
    caller.push(Label::new("model_id", deployment.id.clone()));
    caller.push(Label::new("api_provider", deployment.provider_name.clone()));
    // v1 name (`model`): the request series; v2 (`litellm_model_name`): the deployment series.
    let mut v1 = caller.clone();
    v1.push(Label::new("model", deployment.upstream.model.clone()));
    let mut latency = v1.clone();
    latency.push(Label::new("model_group", deployment.model_name.clone()));
    let mut per_deployment = caller;
    per_deployment.push(Label::new("model_group", deployment.model_name.clone()));
    per_deployment.push(Label::new(
        "litellm_model_name",
        deployment.upstream.model.clone(),
    ));
    per_deployment.push(Label::new("api_base", deployment.public_base()));
    LitellmSeries {
        requests: counter!("litellm_requests_metric_total", v1.clone()),
        spend: gauge!("litellm_spend_metric_total", v1.clone()),
        total_tokens: counter!("litellm_total_tokens_metric_total", v1.clone()),
        input_tokens: counter!("litellm_input_tokens_metric_total", v1.clone()),
        output_tokens: counter!("litellm_output_tokens_metric_total", v1),
        total_latency: histogram!("litellm_request_total_latency_metric", latency.clone()),
        api_latency: histogram!("litellm_llm_api_latency_metric", latency.clone()),
        ttft: histogram!(
            "litellm_llm_api_time_to_first_token_metric",
            latency.clone()
        ),
        overhead: histogram!("litellm_overhead_latency_metric", latency),
        deployment_total: counter!(
            "litellm_deployment_total_requests_total",
            per_deployment.clone()
        ),
        deployment_success: counter!("litellm_deployment_success_responses_total", per_deployment),
        proxy_ok: counter!("litellm_proxy_total_requests_metric_total", proxy_ok),
    }
}

// The router's per-attempt events. They happen on failures (rare), so their handles are
// resolved when they happen.

/// An attempt failed with `error_class` (`ProviderError::class`), upstream status if any.
pub fn attempt_failed(deployment: &Deployment, error_class: &'static str, status: Option<u16>) {
    let mut labels = deployment_labels(deployment);
    labels.push(Label::new("error_class", error_class));
    counter!("switchyard_upstream_errors_total", labels).increment(1);
    if LITELLM_NAMES.load(Relaxed) {
        let labels = vec![
            Label::new("model_group", deployment.model_name.clone()),
            Label::new("litellm_model_name", deployment.upstream.model.clone()),
            Label::new("model_id", deployment.id.clone()),
            Label::new("api_base", deployment.public_base()),
            Label::new("api_provider", deployment.provider_name.clone()),
            Label::new("exception_status", status.map_or("".into(), status_label)),
            Label::new("exception_class", error_class),
        ];
        counter!("litellm_deployment_failure_responses_total", labels).increment(1);
    }
}

/// A guardrail ran on a request's prompt (`mode` `pre_call`) or answer (`post_call`):
/// `outcome` is `passed`, `masked` (something was masked or redacted) or `blocked`.
/// Guardrails count through their own [`GuardrailDecisions`] (no registry lookup per request).
pub fn guardrail_decision(guardrail: &str, mode: &'static str, outcome: &'static str) {
    decision_counter(guardrail, mode, outcome).increment(1);
}

/// The `switchyard_guardrail_decisions_total` series of one configured guardrail, each resolved
/// on its first use (after the recorder is installed: server.rs) and kept with the guardrail.
///
/// Why: the counter was looked up in the registry by an owned label set on every request a
/// guardrail ran on (~1.5 k instructions with the name copied); a handle is an atomic add. A
/// reload makes new guardrails, whose handles resolve to the same series.
#[derive(Default)]
pub struct GuardrailDecisions {
    handles: [OnceLock<Counter>; DECISION_MODES.len() * DECISION_OUTCOMES.len()],
}

const DECISION_MODES: [&str; 2] = ["pre_call", "post_call"];
const DECISION_OUTCOMES: [&str; 6] = [
    "passed",
    "masked",
    "blocked",
    "rewritten",
    "error_passed",
    "unavailable",
];

impl GuardrailDecisions {
    /// As [`guardrail_decision`], for the guardrail named `guardrail` that owns `self`.
    pub fn count(&self, guardrail: &str, mode: &'static str, outcome: &'static str) {
        let mode_index = DECISION_MODES.iter().position(|m| *m == mode);
        let outcome_index = DECISION_OUTCOMES.iter().position(|o| *o == outcome);
        match (mode_index, outcome_index) {
            (Some(m), Some(o)) => self.handles[m * DECISION_OUTCOMES.len() + o]
                .get_or_init(|| decision_counter(guardrail, mode, outcome))
                .increment(1),
            _ => guardrail_decision(guardrail, mode, outcome),
        }
    }
}

fn decision_counter(guardrail: &str, mode: &'static str, outcome: &'static str) -> Counter {
    counter!(
        "switchyard_guardrail_decisions_total",
        "guardrail" => guardrail.to_owned(),
        "mode" => mode,
        "outcome" => outcome
    )
}

/// One match of a guardrail: the entity kind (`EMAIL_ADDRESS`, `KEYWORD`, a pattern's name from
/// config) and what was done (`masked`, `redacted`, `blocked`). Never the matched value.
pub fn guardrail_detection(guardrail: &str, entity: &str, action: &'static str) {
    counter!(
        "switchyard_guardrail_detections_total",
        "guardrail" => guardrail.to_owned(),
        "entity" => entity.to_owned(),
        "action" => action
    )
    .increment(1);
}

/// A response cache lookup (or store) ended with `result` (see docs/caching.md).
///
/// On every cached request: the handles of the known results are resolved once (a registry
/// lookup per request was ~1 k instructions), after the recorder is installed (server.rs).
pub fn cache_lookup(result: &'static str) {
    const RESULTS: [&str; 8] = [
        "hit",
        "miss",
        "coalesced",
        "bypass",
        "error",
        "store_error",
        "semantic_hit",
        "embedding_error",
    ];
    static HANDLES: [OnceLock<metrics::Counter>; RESULTS.len()] =
        [const { OnceLock::new() }; RESULTS.len()];
    let resolve = || counter!("switchyard_cache_lookups_total", "result" => result);
    match RESULTS.iter().position(|known| *known == result) {
        Some(i) => HANDLES[i].get_or_init(resolve).increment(1),
        None => resolve().increment(1),
    }
}

/// A failed attempt is retried within its model group.
pub fn retried(group: &str) {
    counter!("switchyard_retries_total", "model_group" => group.to_owned()).increment(1);
}

/// A model group failed and `to` is tried next.
pub fn fell_back(from: &str, to: &str) {
    counter!(
        "switchyard_fallbacks_total",
        "from" => from.to_owned(),
        "to" => to.to_owned()
    )
    .increment(1);
}

/// A fallback group answered (`succeeded`) or the chain ended without an answer.
pub fn fallback_finished(requested: &str, fallback: &str, succeeded: bool) {
    if LITELLM_NAMES.load(Relaxed) {
        let name = if succeeded {
            "litellm_deployment_successful_fallbacks_total"
        } else {
            "litellm_deployment_failed_fallbacks_total"
        };
        counter!(
            name,
            "requested_model" => requested.to_owned(),
            "fallback_model" => fallback.to_owned()
        )
        .increment(1);
    }
}

/// A deployment entered (`opened`) or left (`closed`) a cooldown.
pub fn cooldown_transition(deployment: &Deployment, opened: bool, status: Option<u16>) {
    let mut labels = deployment_labels(deployment);
    labels.push(Label::new(
        "transition",
        if opened { "opened" } else { "closed" },
    ));
    counter!("switchyard_cooldown_transitions_total", labels).increment(1);
    if opened && LITELLM_NAMES.load(Relaxed) {
        let labels = vec![
            Label::new("litellm_model_name", deployment.upstream.model.clone()),
            Label::new("model_id", deployment.id.clone()),
            Label::new("api_base", deployment.public_base()),
            Label::new("api_provider", deployment.provider_name.clone()),
            Label::new("exception_status", status.map_or("".into(), status_label)),
        ];
        counter!("litellm_deployment_cooled_down_total", labels).increment(1);
    }
}

/// Whether LiteLLM's names are on (for scrape-time series outside this module).
pub fn litellm_names() -> bool {
    LITELLM_NAMES.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_the_first_values_then_says_other() {
        let folder = Folder::new("feature");
        assert_eq!(folder.fold("a", 2), "a");
        assert_eq!(folder.fold("b", 2), "b");
        assert_eq!(folder.fold("c", 2), OTHER);
        assert_eq!(folder.fold("a", 2), "a", "known values stay");
        assert_eq!(folder.fold(&"x".repeat(100), 50), OTHER, "long values fold");
    }

    #[test]
    fn tag_labels_are_checked() {
        assert!(check_tag_label("feature").is_ok());
        assert!(check_tag_label("team").is_err());
        assert!(check_tag_label("9x").is_err());
        assert!(check_tag_label("__x").is_err());
        assert!(check_tag_label("a-b").is_err());
    }

    #[test]
    fn buckets_are_sorted_and_span_microseconds_to_minutes() {
        assert!(BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(BUCKETS[0] <= 0.000_05 && BUCKETS[BUCKETS.len() - 1] >= 600.0);
        assert_eq!(status_class_index(201), 0);
        assert_eq!(status_class_index(499), 1);
        assert_eq!(status_class_index(502), 2);
    }

    #[test]
    fn recording_without_a_recorder_is_harmless() {
        let metrics = Metrics::new();
        metrics.configure(&MetricsSettings {
            tag_labels: vec!["feature".into()],
            litellm_names: true,
            ..MetricsSettings::default()
        });
        metrics.request_started();
        metrics.request_ended();
        metrics.publish_in_flight();
        assert!(metrics.handle().is_none());
    }
}
