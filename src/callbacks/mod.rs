//! Callbacks and alerts: LiteLLM's `success_callback` / `failure_callback` / `callbacks`
//! (a generic JSON webhook, Langfuse) and `general_settings.alerting` (Slack or a webhook).
//! See docs/callbacks.md.
//!
//! The request path does one thing: [`Callbacks::on_finished`] turns the finished event into a
//! [`Record`] and `try_send`s it into a bounded queue; a full queue drops the record and counts
//! it. Everything else runs in background tasks:
//!
//! ```text
//! request finished ──try_send──▶ queue ──▶ dispatcher ──▶ one outbox per destination ──▶ sender
//!                                              │            (webhook, langfuse)          (batch, POST,
//!                                              └─▶ alert rules (error rate, p95, slow)    retry)
//! budgets, cooldowns ──raise──▶ alert hub (filter, de-duplicate) ──▶ alert outbox ──▶ sender
//! ```
//!
//! One sender ([`sender`]) does batching, retries with exponential backoff and drop counting for
//! every destination; the destinations differ only in how a batch is encoded (`webhook.rs`,
//! `langfuse.rs`, `alerts.rs`).

mod alerts;
mod langfuse;
mod record;
mod sender;
mod webhook;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use alerts::{
    raise as raise_alert, Alert, AlertChannel, AlertChannelKind, AlertSettings, ALERT_TYPES,
};
pub use record::Record;

use crate::config::Secret;
use crate::pipeline::Finished;
use crate::providers::http::HttpClient;

/// How often the dispatcher looks at the queue. It polls instead of waiting in `recv`, so a
/// push from the request path never has to wake a task (as the spend writer does).
const DISPATCH_TICK: Duration = Duration::from_millis(50);

/// How batches reach every destination (`switchyard_callbacks:` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    /// Records that may wait between the request path and the dispatcher, and per destination.
    pub queue_size: usize,
    /// Records per POST at most.
    pub batch_size: usize,
    /// How long a destination waits to fill a batch before it sends what it has.
    pub flush_interval: Duration,
    /// Retries of a failed POST (connect error, timeout, 408, 429, 5xx) before the batch is
    /// dropped.
    pub max_retries: u32,
    /// The first retry's delay; it doubles per retry up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// One POST's time limit.
    pub timeout: Duration,
    /// How long a shutdown waits for what is queued to be delivered.
    pub shutdown_flush: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            queue_size: 10_000,
            // LiteLLM's DEFAULT_BATCH_SIZE.
            batch_size: 512,
            flush_interval: Duration::from_secs(1),
            max_retries: 5,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            shutdown_flush: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// LiteLLM's generic API logger: `StandardLoggingPayload`-shaped events.
    Webhook(LogFormat),
    /// Langfuse's public ingestion API.
    Langfuse,
}

/// LiteLLM's `log_format` of a generic API callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// A batch is one JSON array (the default).
    JsonArray,
    /// A batch is one event per line.
    Ndjson,
    /// One event per POST.
    Single,
}

/// Where finished requests are sent.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The callback's name in the config (`generic_api`, `langfuse`, a `callback_settings` key).
    pub name: String,
    pub kind: DestinationKind,
    /// Not a [`Secret`], but never logged either: only `name` is.
    pub url: String,
    /// Sent with every POST (an `Authorization` header is typical, hence secrets).
    pub headers: Vec<(String, Secret)>,
    pub on_success: bool,
    pub on_failure: bool,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub timeout: Duration,
}

/// Everything the config says about callbacks and alerts.
#[derive(Debug, Clone, Default)]
pub struct CallbackSettings {
    pub destinations: Vec<Destination>,
    pub alerting: Option<AlertSettings>,
    pub delivery: DeliverySettings,
}

impl CallbackSettings {
    /// One line for `switchyard check`: names and event kinds, never a URL or a header.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .destinations
            .iter()
            .map(|d| {
                let events = match (d.on_success, d.on_failure) {
                    (true, true) => "success+failure",
                    (true, false) => "success",
                    (false, true) => "failure",
                    (false, false) => "no events",
                };
                format!("{} ({events})", d.name)
            })
            .collect();
        if parts.is_empty() {
            parts.push("none".into());
        }
        let alerting = match &self.alerting {
            None => "off".to_owned(),
            Some(a) if a.channels.is_empty() => "log only".to_owned(),
            Some(a) => a
                .channels
                .iter()
                .map(|c| match c.kind {
                    AlertChannelKind::Slack => "slack",
                    AlertChannelKind::Webhook => "webhook",
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        format!("callbacks: {}; alerting: {alerting}", parts.join(", "))
    }

    /// Whether anything consumes finished requests.
    fn wants_records(&self) -> bool {
        !self.destinations.is_empty()
            || self
                .alerting
                .as_ref()
                .is_some_and(AlertSettings::watches_requests)
    }
}

/// What the callbacks did since start, for `/metrics` and the logs.
#[derive(Debug, Default)]
pub struct CallbackCounters {
    /// Records handed to a destination's outbox (a record sent to two destinations counts 2).
    pub enqueued: AtomicU64,
    /// Records a destination accepted (a 2xx answer to the POST that carried them).
    pub delivered: AtomicU64,
    /// Records given up: queue full, retries exhausted, refused by the receiver (a 4xx other
    /// than 408/429), or still queued when a shutdown's flush time ran out.
    pub dropped: AtomicU64,
    /// Of `dropped`, those that had reached an outbox (given up by a sender): what was
    /// enqueued and is neither delivered nor given up is still on its way.
    pub given_up: AtomicU64,
    /// POSTs that failed (each retry counts).
    pub failed_posts: AtomicU64,
    /// Alerts sent, and alerts not sent again because the same one went out within its window.
    pub alerts_sent: AtomicU64,
    pub alerts_deduplicated: AtomicU64,
}

/// The callbacks of a gateway: made with the state, started by the server.
pub struct Callbacks {
    settings: CallbackSettings,
    tx: mpsc::Sender<Arc<Record>>,
    rx: Mutex<Option<mpsc::Receiver<Arc<Record>>>>,
    started: AtomicBool,
    wants_records: bool,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pub counters: Arc<CallbackCounters>,
    drops: Arc<sender::DropLog>,
}

impl Callbacks {
    pub fn new(settings: CallbackSettings) -> Arc<Callbacks> {
        let (tx, rx) = mpsc::channel(settings.delivery.queue_size.max(1));
        Arc::new(Callbacks {
            wants_records: settings.wants_records(),
            settings,
            tx,
            rx: Mutex::new(Some(rx)),
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            counters: Arc::default(),
            drops: Arc::default(),
        })
    }

    /// The request path's part: one record into the queue, never a wait. Before
    /// [`Callbacks::start`], or with nothing configured, it does nothing.
    pub fn on_finished(&self, event: &Finished<'_>) {
        if !self.wants_records || !self.started.load(Relaxed) {
            return;
        }
        let Some(record) = Record::from_event(event) else {
            return;
        };
        if self.tx.try_send(Arc::new(record)).is_err() {
            self.counters.dropped.fetch_add(1, Relaxed);
            self.drops.note("queue", 1, "the callback queue is full");
        }
    }

    /// Starts the dispatcher, one sender per destination and the alert hub (once).
    pub fn start(self: &Arc<Self>, http: HttpClient) {
        if self.settings.destinations.is_empty() && self.settings.alerting.is_none() {
            return;
        }
        let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut tasks = Vec::new();
        let delivery = &self.settings.delivery;
        let mut outboxes = Vec::new();
        for destination in &self.settings.destinations {
            let (tx, rx) = mpsc::channel::<Arc<Record>>(delivery.queue_size.max(1));
            let batch_size = match destination.kind {
                DestinationKind::Webhook(LogFormat::Single) => 1,
                _ => delivery.batch_size.max(1),
            };
            let target = sender::Target {
                name: destination.name.clone(),
                url: destination.url.clone(),
                headers: sender::header_map(&destination.headers, &destination.name),
                batch_size,
                flush_interval: delivery.flush_interval,
                max_retries: destination.max_retries,
                retry_delay: destination.retry_delay,
                max_retry_delay: delivery.max_retry_delay,
                timeout: destination.timeout,
                on_delivered: match destination.kind {
                    DestinationKind::Langfuse => Some(langfuse::report_rejected),
                    DestinationKind::Webhook(_) => None,
                },
            };
            let encode: sender::Encoder<Arc<Record>> = match destination.kind {
                DestinationKind::Webhook(LogFormat::JsonArray) => Box::new(webhook::encode),
                DestinationKind::Webhook(LogFormat::Ndjson) => Box::new(webhook::encode_ndjson),
                DestinationKind::Webhook(LogFormat::Single) => Box::new(webhook::encode_single),
                DestinationKind::Langfuse => Box::new(langfuse::encode),
            };
            tasks.push(tokio::spawn(sender::run(
                target,
                encode,
                rx,
                http.clone(),
                self.counters.clone(),
                self.stop.clone(),
            )));
            outboxes.push(Outbox {
                name: destination.name.clone(),
                on_success: destination.on_success,
                on_failure: destination.on_failure,
                tx,
            });
        }
        let hub = self.settings.alerting.as_ref().map(|settings| {
            let (hub, task) = alerts::Hub::start(
                settings.clone(),
                delivery,
                http.clone(),
                self.counters.clone(),
                self.drops.clone(),
                self.stop.clone(),
            );
            tasks.push(task);
            hub
        });
        // Without a consumer of finished requests (alerts from budgets and cooldowns only),
        // there is nothing to dispatch; dropping the hub here leaves it to `raise`.
        if self.wants_records {
            tasks.push(tokio::spawn(dispatch(
                rx,
                outboxes,
                hub,
                self.counters.clone(),
                self.drops.clone(),
                self.stop.clone(),
            )));
        }
        *self.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        self.started.store(true, Relaxed);
        if !self.settings.destinations.is_empty() {
            let names: Vec<&str> = self
                .settings
                .destinations
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            tracing::info!(callbacks = ?names, "callbacks started");
        }
    }

    /// Delivers what is queued within `shutdown_flush`; what is left is counted as dropped.
    pub async fn shutdown(&self) {
        self.started.store(false, Relaxed);
        self.stop.cancel();
        alerts::uninstall();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = tokio::time::Instant::now()
            + self.settings.delivery.shutdown_flush
            + Duration::from_millis(200);
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        let counters = &self.counters;
        let settled = counters.delivered.load(Relaxed) + counters.given_up.load(Relaxed);
        let lost = counters.enqueued.load(Relaxed).saturating_sub(settled);
        if lost > 0 {
            counters.dropped.fetch_add(lost, Relaxed);
            counters.given_up.fetch_add(lost, Relaxed);
        }
        let dropped = counters.dropped.load(Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped_total = dropped,
                delivered_total = counters.delivered.load(Relaxed),
                "callback events dropped since start"
            );
        }
    }
}

/// One destination as the dispatcher sees it.
struct Outbox {
    name: String,
    on_success: bool,
    on_failure: bool,
    tx: mpsc::Sender<Arc<Record>>,
}

/// Moves records from the request path's queue to each destination's outbox and to the alert
/// rules. At shutdown it hands over what is left and closes the outboxes, which ends the
/// senders once they have flushed.
async fn dispatch(
    mut rx: mpsc::Receiver<Arc<Record>>,
    outboxes: Vec<Outbox>,
    hub: Option<Arc<alerts::Hub>>,
    counters: Arc<CallbackCounters>,
    drops: Arc<sender::DropLog>,
    stop: CancellationToken,
) {
    let mut rules = hub.as_ref().map(|hub| alerts::Rules::new(hub.clone()));
    loop {
        let stopping = tokio::select! {
            biased;
            () = stop.cancelled() => true,
            () = tokio::time::sleep(DISPATCH_TICK) => false,
        };
        while let Ok(record) = rx.try_recv() {
            for outbox in &outboxes {
                let wanted = if record.success {
                    outbox.on_success
                } else {
                    outbox.on_failure
                };
                if !wanted {
                    continue;
                }
                match outbox.tx.try_send(record.clone()) {
                    Ok(()) => {
                        counters.enqueued.fetch_add(1, Relaxed);
                    }
                    Err(_) => {
                        counters.dropped.fetch_add(1, Relaxed);
                        drops.note(&outbox.name, 1, "its queue is full");
                    }
                }
            }
            if let Some(rules) = &mut rules {
                rules.observe(&record);
            }
        }
        if let Some(rules) = &mut rules {
            rules.evaluate(std::time::Instant::now());
        }
        if stopping {
            break;
        }
    }
}
