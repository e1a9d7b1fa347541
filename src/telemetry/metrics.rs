//! Prometheus counters per deployment. Deployments are known at start-up, so every counter is a
//! pre-allocated atomic: recording takes no lock and allocates nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::config::Config;
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
    deployments: HashMap<String, DeploymentCounters>,
    /// Requests that never reached a deployment (bad input, auth, unknown model), by status.
    rejected: [AtomicU64; 6],
}

const REJECTED_STATUSES: [u16; 6] = [400, 401, 403, 404, 413, 429];

impl Metrics {
    pub fn new(config: &Config) -> Self {
        let deployments = config
            .deployments
            .iter()
            .map(|d| {
                (
                    d.id.clone(),
                    DeploymentCounters {
                        model_group: d.model_name.clone(),
                        provider: d.provider.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        Metrics {
            deployments,
            rejected: Default::default(),
        }
    }

    /// A request a deployment answered (or failed to): its status class and latency.
    pub fn record_response(&self, deployment: &str, status: u16, latency: std::time::Duration) {
        if let Some(c) = self.deployments.get(deployment) {
            let counter = match status {
                200..=399 => &c.success,
                400..=499 => &c.client_error,
                _ => &c.server_error,
            };
            counter.fetch_add(1, Relaxed);
            c.latency_ms_total
                .fetch_add(latency.as_millis() as u64, Relaxed);
        }
    }

    pub fn record_usage(&self, deployment: &str, usage: &Usage) {
        if let Some(c) = self.deployments.get(deployment) {
            c.prompt_tokens.fetch_add(usage.prompt_tokens, Relaxed);
            c.completion_tokens
                .fetch_add(usage.completion_tokens, Relaxed);
        }
    }

    pub fn record_stream_cancelled(&self, deployment: &str) {
        if let Some(c) = self.deployments.get(deployment) {
            c.streams_cancelled.fetch_add(1, Relaxed);
        }
    }

    pub fn record_rejected(&self, status: u16) {
        if let Some(i) = REJECTED_STATUSES.iter().position(|s| *s == status) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut ids: Vec<&String> = self.deployments.keys().collect();
        ids.sort();
        let series =
            |out: &mut String,
             name: &str,
             help: &str,
             kind: &str,
             pick: &dyn Fn(&DeploymentCounters) -> Vec<(String, u64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for id in &ids {
                    let c = &self.deployments[*id];
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
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
