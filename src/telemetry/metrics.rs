//! Prometheus counters per deployment, keyed by the deployment's stable id. A deployment's
//! counters are made on its first request (a reload may add deployments) and kept across
//! reloads; recording is a read lock and a few atomic adds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use crate::pipeline::{Finished, Outcome};
use crate::router::keyed::IdMap;
use crate::router::Deployment;
use crate::schema::Usage;

#[derive(Default)]
struct DeploymentCounters {
    model_group: String,
    provider: String,
    success: AtomicU64,
    client_error: AtomicU64,
    server_error: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    streams_cancelled: AtomicU64,
    latency_ms_total: AtomicU64,
}

pub struct Metrics {
    deployments: RwLock<IdMap<DeploymentCounters>>,
    /// Requests that never reached a deployment (bad input, auth, unknown model), by status.
    rejected: [AtomicU64; 6],
}

const REJECTED_STATUSES: [u16; 6] = [400, 401, 403, 404, 413, 429];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            deployments: RwLock::default(),
            rejected: Default::default(),
        }
    }

    /// Counts a finished request: by the deployment that answered, or as rejected before
    /// routing when none did.
    pub fn record(&self, event: &Finished<'_>) {
        let Some(deployment) = event.deployment else {
            if event.status >= 400 {
                self.record_rejected(event.status);
            }
            return;
        };
        self.with(deployment, |c| {
            let counter = match event.status {
                200..=399 => &c.success,
                400..=499 => &c.client_error,
                _ => &c.server_error,
            };
            counter.fetch_add(1, Relaxed);
            c.latency_ms_total
                .fetch_add(event.latency.as_millis() as u64, Relaxed);
            if let Some(usage) = event.usage {
                record_usage(c, usage);
            }
            if event.stream && event.outcome == Outcome::Abandoned {
                c.streams_cancelled.fetch_add(1, Relaxed);
            }
        });
    }

    fn with(&self, deployment: &Deployment, f: impl FnOnce(&DeploymentCounters)) {
        {
            let map = self.deployments.read().unwrap_or_else(|e| e.into_inner());
            if let Some(counters) = map.get(deployment.id.as_str()) {
                return f(counters);
            }
        }
        let mut map = self.deployments.write().unwrap_or_else(|e| e.into_inner());
        let counters = map
            .entry(Arc::from(deployment.id.as_str()))
            .or_insert_with(|| DeploymentCounters {
                model_group: deployment.model_name.clone(),
                provider: deployment.provider_name.clone(),
                ..Default::default()
            });
        f(counters);
    }

    pub fn record_rejected(&self, status: u16) {
        if let Some(i) = REJECTED_STATUSES.iter().position(|s| *s == status) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let deployments = self.deployments.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<&Arc<str>> = deployments.keys().collect();
        ids.sort();
        let series =
            |out: &mut String,
             name: &str,
             help: &str,
             kind: &str,
             pick: &dyn Fn(&DeploymentCounters) -> Vec<(String, u64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for id in &ids {
                    let c = &deployments[*id];
                    for (extra_labels, value) in pick(c) {
                        let _ = writeln!(
                        out,
                        "{name}{{model_group=\"{}\",deployment=\"{}\",provider=\"{}\"{extra_labels}}} {value}",
                        escape(&c.model_group),
                        escape(id),
                        escape(&c.provider)
                    );
                    }
                }
            };
        series(
            &mut out,
            "switchyard_requests_total",
            "Requests answered by a deployment, by status class.",
            "counter",
            &|c| {
                vec![
                    (",status_class=\"2xx\"".into(), c.success.load(Relaxed)),
                    (",status_class=\"4xx\"".into(), c.client_error.load(Relaxed)),
                    (",status_class=\"5xx\"".into(), c.server_error.load(Relaxed)),
                ]
            },
        );
        series(
            &mut out,
            "switchyard_tokens_total",
            "Tokens reported by upstreams.",
            "counter",
            &|c| {
                vec![
                    (",kind=\"prompt\"".into(), c.prompt_tokens.load(Relaxed)),
                    (
                        ",kind=\"completion\"".into(),
                        c.completion_tokens.load(Relaxed),
                    ),
                ]
            },
        );
        series(
            &mut out,
            "switchyard_streams_cancelled_total",
            "Streams the client closed before the end.",
            "counter",
            &|c| vec![(String::new(), c.streams_cancelled.load(Relaxed))],
        );
        series(
            &mut out,
            "switchyard_request_latency_ms_total",
            "Sum of request latencies in milliseconds.",
            "counter",
            &|c| vec![(String::new(), c.latency_ms_total.load(Relaxed))],
        );
        let _ = writeln!(
            out,
            "# HELP switchyard_rejected_total Requests refused before routing, by status.\n# TYPE switchyard_rejected_total counter"
        );
        for (status, counter) in REJECTED_STATUSES.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "switchyard_rejected_total{{status=\"{status}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchyard_log_lines_dropped_total Log lines dropped because the log writer fell behind.\n# TYPE switchyard_log_lines_dropped_total counter\nswitchyard_log_lines_dropped_total {}",
            super::LOG_LINES_DROPPED.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP switchyard_trace_spans_dropped_total Spans lost: export queue full, or the collector failed or did not answer.\n# TYPE switchyard_trace_spans_dropped_total counter\nswitchyard_trace_spans_dropped_total {}\n# HELP switchyard_trace_spans_exported_total Spans the OTLP collector accepted.\n# TYPE switchyard_trace_spans_exported_total counter\nswitchyard_trace_spans_exported_total {}",
            super::traces::SPANS_DROPPED.load(Relaxed),
            super::traces::SPANS_EXPORTED.load(Relaxed)
        );
        out
    }
}

fn record_usage(c: &DeploymentCounters, usage: &Usage) {
    c.prompt_tokens.fetch_add(usage.prompt_tokens, Relaxed);
    c.completion_tokens
        .fetch_add(usage.completion_tokens, Relaxed);
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
