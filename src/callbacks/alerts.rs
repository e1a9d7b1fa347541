//! Alerts (`general_settings.alerting: ["slack"]` or `["webhook"]`): a soft budget crossed, a
//! deployment cooled down, a model group's error rate or p95 latency over its threshold, a
//! request slower than `alerting_threshold`.
//!
//! Budgets and the router raise alerts through [`raise`], a function they can call from
//! anywhere (the budget ledger and the cooldown store know nothing of the gateway's state): it
//! filters by `alert_types`, de-duplicates (one alert per type and subject per window), and
//! hands the message to the sender's outbox with a `try_send`. It never waits. The
//! request-based rules ([`Rules`]) run in the dispatcher task, over the finished requests.
//!
//! Slack gets `{"text": "..."}`; a webhook gets the same `text` (so a Slack-compatible receiver
//! works) plus `alert_type`, `level`, `timestamp` and the alert's fields. No alert carries a
//! secret: keys appear as their alias or hash, deployments by id, never their `api_base`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::sender::{self, DropLog, Encoder, Target};
use super::{CallbackCounters, DeliverySettings, Record};
use crate::config::Secret;
use crate::money::Nanos;
use crate::providers::http::HttpClient;

/// LiteLLM's alert type names, used by `alert_types`.
pub const BUDGET_ALERTS: &str = "budget_alerts";
pub const COOLDOWN_DEPLOYMENT: &str = "cooldown_deployment";
pub const OUTAGE_ALERTS: &str = "outage_alerts";
pub const LLM_TOO_SLOW: &str = "llm_too_slow";
pub const ALERT_TYPES: &[&str] = &[
    BUDGET_ALERTS,
    COOLDOWN_DEPLOYMENT,
    OUTAGE_ALERTS,
    LLM_TOO_SLOW,
];

/// Alerts waiting for the sender.
const ALERT_QUEUE: usize = 256;
/// Samples kept per model group for the window rules.
const MAX_SAMPLES: usize = 10_000;
/// How often the window rules are evaluated.
const EVALUATE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChannelKind {
    Slack,
    Webhook,
}

#[derive(Debug, Clone)]
pub struct AlertChannel {
    pub kind: AlertChannelKind,
    /// A Slack webhook URL is a credential.
    pub url: Secret,
}

/// `general_settings.alerting` and its companions; defaults in docs/callbacks.md.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub channels: Vec<AlertChannel>,
    /// `alert_types`: `None` sends every type.
    pub alert_types: Option<Vec<String>>,
    /// `alerting_threshold`: a request slower than this raises `llm_too_slow` (LiteLLM: 300 s).
    pub slow_request: Duration,
    /// The same alert (type and subject) is sent at most once per this window.
    pub dedupe_window: Duration,
    /// `budget_alert_ttl`: the window for budget alerts.
    pub budget_dedupe_window: Duration,
    /// The window the error-rate and p95 rules look at, and the requests it needs first.
    pub window: Duration,
    pub min_requests: u64,
    /// Share of requests (0..1) answered with a 5xx or failed mid-stream.
    pub error_rate: f64,
    /// `None`: no p95 rule.
    pub p95_latency: Option<Duration>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            channels: Vec::new(),
            alert_types: None,
            slow_request: Duration::from_secs(300),
            dedupe_window: Duration::from_secs(300),
            budget_dedupe_window: Duration::from_secs(300),
            window: Duration::from_secs(60),
            min_requests: 10,
            error_rate: 0.5,
            p95_latency: None,
        }
    }
}

impl AlertSettings {
    pub fn enabled(&self, alert_type: &str) -> bool {
        self.alert_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == alert_type))
    }

    /// Whether a rule reads finished requests.
    pub fn watches_requests(&self) -> bool {
        self.enabled(OUTAGE_ALERTS) || self.enabled(LLM_TOO_SLOW)
    }
}

/// Something worth telling an operator.
#[derive(Debug, Clone)]
pub enum Alert {
    SoftBudgetCrossed {
        /// `key`, `team`, `user`, `end_user`.
        scope: &'static str,
        /// A key's hash (never the key), a team, user or end-user id.
        id: String,
        spent: Nanos,
        soft_budget: Nanos,
    },
    DeploymentCooledDown {
        model_group: String,
        deployment: String,
        cooldown: Duration,
        error_class: Option<&'static str>,
    },
    ErrorRate {
        model_group: String,
        errors: u64,
        requests: u64,
        window: Duration,
        threshold: f64,
    },
    P95Latency {
        model_group: String,
        p95: Duration,
        requests: u64,
        window: Duration,
        threshold: Duration,
    },
    SlowRequest {
        model_group: String,
        request_id: String,
        latency: Duration,
        threshold: Duration,
    },
}

impl Alert {
    pub fn alert_type(&self) -> &'static str {
        match self {
            Alert::SoftBudgetCrossed { .. } => BUDGET_ALERTS,
            Alert::DeploymentCooledDown { .. } => COOLDOWN_DEPLOYMENT,
            Alert::ErrorRate { .. } => OUTAGE_ALERTS,
            Alert::P95Latency { .. } | Alert::SlowRequest { .. } => LLM_TOO_SLOW,
        }
    }

    /// Alerts with the same key are the same alert, for de-duplication.
    fn dedupe_key(&self) -> String {
        match self {
            Alert::SoftBudgetCrossed { scope, id, .. } => format!("soft_budget:{scope}:{id}"),
            Alert::DeploymentCooledDown { deployment, .. } => format!("cooldown:{deployment}"),
            Alert::ErrorRate { model_group, .. } => format!("error_rate:{model_group}"),
            Alert::P95Latency { model_group, .. } => format!("p95:{model_group}"),
            Alert::SlowRequest { model_group, .. } => format!("slow:{model_group}"),
        }
    }

    fn level(&self) -> &'static str {
        match self {
            Alert::ErrorRate { .. } | Alert::DeploymentCooledDown { .. } => "High",
            _ => "Medium",
        }
    }

    /// The message people read.
    pub fn text(&self) -> String {
        match self {
            Alert::SoftBudgetCrossed {
                scope,
                id,
                spent,
                soft_budget,
            } => format!(
                "Soft budget crossed: {scope} `{id}` has spent ${spent}, over its soft budget of ${soft_budget}"
            ),
            Alert::DeploymentCooledDown {
                model_group,
                deployment,
                cooldown,
                error_class,
            } => format!(
                "Deployment cooled down: `{deployment}` of model group `{model_group}` is skipped for {:.0} s{}",
                cooldown.as_secs_f64(),
                error_class.map_or(String::new(), |c| format!(" after {c} errors"))
            ),
            Alert::ErrorRate {
                model_group,
                errors,
                requests,
                window,
                threshold,
            } => format!(
                "High error rate: model group `{model_group}` failed {errors} of {requests} requests ({:.0}%) in the last {} s (threshold {:.0}%)",
                *errors as f64 * 100.0 / (*requests).max(1) as f64,
                window.as_secs(),
                threshold * 100.0
            ),
            Alert::P95Latency {
                model_group,
                p95,
                requests,
                window,
                threshold,
            } => format!(
                "Slow model group: `{model_group}` p95 latency {:.2} s over {requests} requests in the last {} s (threshold {:.2} s)",
                p95.as_secs_f64(),
                window.as_secs(),
                threshold.as_secs_f64()
            ),
            Alert::SlowRequest {
                model_group,
                request_id,
                latency,
                threshold,
            } => format!(
                "Responses are slow: request `{request_id}` to `{model_group}` took {:.2} s > alerting threshold {:.2} s",
                latency.as_secs_f64(),
                threshold.as_secs_f64()
            ),
        }
    }

    fn fields(&self) -> Value {
        match self {
            Alert::SoftBudgetCrossed {
                scope,
                id,
                spent,
                soft_budget,
            } => {
                json!({"scope": scope, "id": id, "spend": spent.as_usd(), "soft_budget": soft_budget.as_usd()})
            }
            Alert::DeploymentCooledDown {
                model_group,
                deployment,
                cooldown,
                error_class,
            } => {
                json!({"model_group": model_group, "model_id": deployment, "cooldown_seconds": cooldown.as_secs_f64(), "error_class": error_class})
            }
            Alert::ErrorRate {
                model_group,
                errors,
                requests,
                window,
                threshold,
            } => {
                json!({"model_group": model_group, "errors": errors, "requests": requests, "window_seconds": window.as_secs(), "threshold": threshold})
            }
            Alert::P95Latency {
                model_group,
                p95,
                requests,
                window,
                threshold,
            } => {
                json!({"model_group": model_group, "p95_seconds": p95.as_secs_f64(), "requests": requests, "window_seconds": window.as_secs(), "threshold_seconds": threshold.as_secs_f64()})
            }
            Alert::SlowRequest {
                model_group,
                request_id,
                latency,
                threshold,
            } => {
                json!({"model_group": model_group, "request_id": request_id, "latency_seconds": latency.as_secs_f64(), "threshold_seconds": threshold.as_secs_f64()})
            }
        }
    }
}

/// The hub of a running gateway, for [`raise`]. One per process (the server installs it).
static HUB: RwLock<Option<Arc<Hub>>> = RwLock::new(None);

/// Raises an alert: filtered, de-duplicated and queued for sending; never waits. Without
/// `general_settings.alerting` it does nothing.
pub fn raise(alert: Alert) {
    let hub = HUB.read().ok().and_then(|hub| hub.clone());
    if let Some(hub) = hub {
        hub.raise(alert);
    }
}

/// Alerts raised after a shutdown began go nowhere.
pub(super) fn uninstall() {
    if let Ok(mut hub) = HUB.write() {
        *hub = None;
    }
}

/// A message ready for the channels.
struct Message {
    text: String,
    alert_type: &'static str,
    level: &'static str,
    fields: Value,
    at: f64,
}

pub(super) struct Hub {
    settings: AlertSettings,
    /// When each alert (by its de-duplication key) was last sent.
    sent: Mutex<HashMap<String, Instant>>,
    outboxes: Vec<(&'static str, mpsc::Sender<Arc<Message>>)>,
    counters: Arc<CallbackCounters>,
    drops: Arc<DropLog>,
}

impl Hub {
    /// Starts one sender per channel and installs the hub for [`raise`].
    pub(super) fn start(
        settings: AlertSettings,
        delivery: &DeliverySettings,
        http: HttpClient,
        counters: Arc<CallbackCounters>,
        drops: Arc<DropLog>,
        stop: CancellationToken,
    ) -> (Arc<Hub>, JoinHandle<()>) {
        let mut outboxes = Vec::new();
        let mut senders = Vec::new();
        for channel in &settings.channels {
            let (tx, rx) = mpsc::channel::<Arc<Message>>(ALERT_QUEUE);
            let name = match channel.kind {
                AlertChannelKind::Slack => "alerting:slack",
                AlertChannelKind::Webhook => "alerting:webhook",
            };
            let target = Target {
                name: name.to_owned(),
                url: channel.url.expose().to_owned(),
                headers: sender::header_map(&[], name),
                batch_size: 1,
                flush_interval: Duration::ZERO,
                max_retries: delivery.max_retries,
                retry_delay: delivery.retry_delay,
                max_retry_delay: delivery.max_retry_delay,
                timeout: delivery.timeout,
                on_delivered: None,
            };
            let encode: Encoder<Arc<Message>> = match channel.kind {
                AlertChannelKind::Slack => Box::new(|batch: &[Arc<Message>]| {
                    let text = batch.first().map_or("", |m| m.text.as_str());
                    Bytes::from(serde_json::to_vec(&json!({ "text": text })).unwrap_or_default())
                }),
                AlertChannelKind::Webhook => Box::new(|batch: &[Arc<Message>]| {
                    let body = batch.first().map_or(Value::Null, |m| {
                        json!({
                            "text": m.text,
                            "alert_type": m.alert_type,
                            "level": m.level,
                            "timestamp": m.at,
                            "fields": m.fields,
                        })
                    });
                    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
                }),
            };
            senders.push(tokio::spawn(sender::run(
                target,
                encode,
                rx,
                http.clone(),
                counters.clone(),
                stop.clone(),
            )));
            outboxes.push((name, tx));
        }
        let hub = Arc::new(Hub {
            settings,
            sent: Mutex::new(HashMap::new()),
            outboxes,
            counters,
            drops,
        });
        if let Ok(mut installed) = HUB.write() {
            *installed = Some(hub.clone());
        }
        // The outboxes close when the hub is gone (uninstalled at shutdown, and the dispatcher
        // done with it); the senders then flush and end.
        let task = tokio::spawn(async move {
            for sender in senders {
                let _ = sender.await;
            }
        });
        (hub, task)
    }

    fn raise(&self, alert: Alert) {
        let alert_type = alert.alert_type();
        if !self.settings.enabled(alert_type) {
            return;
        }
        let window = if alert_type == BUDGET_ALERTS {
            self.settings.budget_dedupe_window
        } else {
            self.settings.dedupe_window
        };
        let now = Instant::now();
        {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            let key = alert.dedupe_key();
            if sent
                .get(&key)
                .is_some_and(|at| now.saturating_duration_since(*at) < window)
            {
                self.counters.alerts_deduplicated.fetch_add(1, Relaxed);
                return;
            }
            if sent.len() > 10_000 {
                sent.retain(|_, at| now.saturating_duration_since(*at) < window);
            }
            sent.insert(key, now);
        }
        let text = alert.text();
        // The log line stays, whatever the channels do.
        tracing::warn!(target: "alert", alert = alert_type, "{text}");
        let message = Arc::new(Message {
            text,
            alert_type,
            level: alert.level(),
            fields: alert.fields(),
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        });
        self.counters.alerts_sent.fetch_add(1, Relaxed);
        for (name, tx) in &self.outboxes {
            match tx.try_send(message.clone()) {
                Ok(()) => {
                    self.counters.enqueued.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    self.counters.dropped.fetch_add(1, Relaxed);
                    self.drops.note(name, 1, "the alert queue is full");
                }
            }
        }
    }
}

/// The alert rules over finished requests: a slow request at once; error rate and p95 latency
/// per model group over the last `window`, once it holds `min_requests`.
pub(super) struct Rules {
    hub: Arc<Hub>,
    groups: HashMap<String, VecDeque<Sample>>,
    last_evaluated: Option<Instant>,
}

struct Sample {
    at: Instant,
    latency: Duration,
    failed: bool,
}

impl Rules {
    pub(super) fn new(hub: Arc<Hub>) -> Rules {
        Rules {
            hub,
            groups: HashMap::new(),
            last_evaluated: None,
        }
    }

    pub(super) fn observe(&mut self, record: &Record) {
        // Only requests a deployment served (or failed): refusals (401, 429 budgets) say
        // nothing about a model group's health.
        let Some(group) = &record.model_group else {
            return;
        };
        let settings = &self.hub.settings;
        if record.latency > settings.slow_request && settings.enabled(LLM_TOO_SLOW) {
            self.hub.raise(Alert::SlowRequest {
                model_group: group.clone(),
                request_id: record.request_id.clone(),
                latency: record.latency,
                threshold: settings.slow_request,
            });
        }
        let samples = self.groups.entry(group.clone()).or_default();
        if samples.len() >= MAX_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at: Instant::now(),
            latency: record.latency,
            failed: record.status >= 500
                || matches!(record.outcome, crate::pipeline::Outcome::StreamFailed),
        });
    }

    pub(super) fn evaluate(&mut self, now: Instant) {
        if self
            .last_evaluated
            .is_some_and(|at| now.saturating_duration_since(at) < EVALUATE_EVERY)
        {
            return;
        }
        self.last_evaluated = Some(now);
        let settings = self.hub.settings.clone();
        let mut alerts = Vec::new();
        self.groups.retain(|group, samples| {
            while samples
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > settings.window)
            {
                samples.pop_front();
            }
            let requests = samples.len() as u64;
            if requests == 0 {
                return false;
            }
            if requests < settings.min_requests.max(1) {
                return true;
            }
            let errors = samples.iter().filter(|s| s.failed).count() as u64;
            if settings.enabled(OUTAGE_ALERTS)
                && errors as f64 >= settings.error_rate * requests as f64
            {
                alerts.push(Alert::ErrorRate {
                    model_group: group.clone(),
                    errors,
                    requests,
                    window: settings.window,
                    threshold: settings.error_rate,
                });
            }
            if let Some(threshold) = settings
                .p95_latency
                .filter(|_| settings.enabled(LLM_TOO_SLOW))
            {
                let p95 = p95(samples.iter().map(|s| s.latency).collect());
                if p95 > threshold {
                    alerts.push(Alert::P95Latency {
                        model_group: group.clone(),
                        p95,
                        requests,
                        window: settings.window,
                        threshold,
                    });
                }
            }
            true
        });
        for alert in alerts {
            self.hub.raise(alert);
        }
    }
}

/// The nearest-rank 95th percentile.
fn p95(mut latencies: Vec<Duration>) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64) * 0.95).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(settings: AlertSettings) -> (Arc<Hub>, mpsc::Receiver<Arc<Message>>) {
        let (tx, rx) = mpsc::channel(16);
        let hub = Arc::new(Hub {
            settings,
            sent: Mutex::new(HashMap::new()),
            outboxes: vec![("test", tx)],
            counters: Arc::default(),
            drops: Arc::default(),
        });
        (hub, rx)
    }

    fn cooled(deployment: &str) -> Alert {
        Alert::DeploymentCooledDown {
            model_group: "g".into(),
            deployment: deployment.into(),
            cooldown: Duration::from_secs(5),
            error_class: Some("upstream_error"),
        }
    }

    #[test]
    fn the_same_alert_is_sent_once_per_window() {
        let (hub, mut rx) = hub(AlertSettings::default());
        hub.raise(cooled("a"));
        hub.raise(cooled("a"));
        hub.raise(cooled("b"));
        let texts: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].contains("`a`") && texts[1].contains("`b`"));
        assert_eq!(hub.counters.alerts_deduplicated.load(Relaxed), 1);
    }

    #[test]
    fn alert_types_filter_what_is_sent() {
        let (hub, mut rx) = hub(AlertSettings {
            alert_types: Some(vec![BUDGET_ALERTS.into()]),
            ..AlertSettings::default()
        });
        hub.raise(cooled("a"));
        assert!(rx.try_recv().is_err());
        hub.raise(Alert::SoftBudgetCrossed {
            scope: "key",
            id: "abc".into(),
            spent: Nanos(2_000_000_000),
            soft_budget: Nanos(1_000_000_000),
        });
        let message = rx.try_recv().unwrap();
        assert_eq!(message.alert_type, BUDGET_ALERTS);
        assert!(message.text.contains("$2"), "{}", message.text);
    }

    fn record(group: &str, status: u16, latency_ms: u64) -> Record {
        Record::sample(group, status, latency_ms)
    }

    fn drain(rx: &mut mpsc::Receiver<Arc<Message>>) -> Vec<Arc<Message>> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_group_failing_over_the_threshold_raises_one_outage_alert() {
        let (hub, mut rx) = hub(AlertSettings {
            min_requests: 10,
            error_rate: 0.5,
            p95_latency: None,
            ..AlertSettings::default()
        });
        let mut rules = Rules::new(hub);
        let now = Instant::now();
        // Too few requests: no verdict yet.
        for _ in 0..9 {
            rules.observe(&record("g", 502, 10));
        }
        rules.evaluate(now);
        assert!(drain(&mut rx).is_empty());
        for _ in 0..3 {
            rules.observe(&record("g", 200, 10));
        }
        rules.observe(&record("healthy", 200, 10));
        rules.evaluate(now + EVALUATE_EVERY);
        let alerts = drain(&mut rx);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].alert_type, OUTAGE_ALERTS);
        assert!(
            alerts[0].text.contains("failed 9 of 12"),
            "{}",
            alerts[0].text
        );
        // Still failing a second later: the same alert is not sent again within the window.
        rules.observe(&record("g", 502, 10));
        rules.evaluate(now + 2 * EVALUATE_EVERY);
        assert!(drain(&mut rx).is_empty());
        // Refusals before routing (no model group) say nothing about a group.
        let mut refused = record("g", 401, 10);
        refused.model_group = None;
        rules.observe(&refused);
    }

    #[test]
    fn slow_requests_and_a_slow_p95_raise_llm_too_slow() {
        let (hub, mut rx) = hub(AlertSettings {
            min_requests: 5,
            slow_request: Duration::from_secs(2),
            p95_latency: Some(Duration::from_millis(500)),
            ..AlertSettings::default()
        });
        let mut rules = Rules::new(hub);
        rules.observe(&record("g", 200, 2500));
        let slow = drain(&mut rx);
        assert_eq!(slow.len(), 1);
        assert!(
            slow[0].text.starts_with("Responses are slow"),
            "{}",
            slow[0].text
        );
        for _ in 0..5 {
            rules.observe(&record("g", 200, 900));
        }
        rules.evaluate(Instant::now());
        let p95 = drain(&mut rx);
        assert_eq!(p95.len(), 1);
        assert_eq!(p95[0].alert_type, LLM_TOO_SLOW);
        assert!(
            p95[0].text.contains("p95 latency 2.50 s"),
            "{}",
            p95[0].text
        );
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        assert_eq!(p95(ms(&[5])), Duration::from_millis(5));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(p95(ms(&hundred)), Duration::from_millis(95));
        assert_eq!(p95(Vec::new()), Duration::ZERO);
    }
}
