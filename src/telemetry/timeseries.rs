//! The live traffic numbers of the dashboard (`GET /ui/api/traffic`): per model group and per
//! deployment, requests, errors and a latency histogram in time buckets, kept in this process.
//!
//! Each series holds two rings: 60 one-minute buckets (the last hour) and 288 five-minute
//! buckets (the last day). A bucket is a count, an error count and a latency histogram of
//! [`LATENCY_BUCKETS`] fixed log-spaced bins, so p50/p95/p99 are computed when read, never kept
//! per request. A series is `SERIES_BYTES` (about 91 KiB) allocated once, when its group or
//! deployment is first seen; recording is a read-locked map lookup (no allocation) and a short
//! mutex-held add into the current bucket. A model group gets a series when one of its
//! deployments is first tried; requests naming a model no deployment has served here (an unknown
//! model, say) count under `other`, so hostile model names cannot grow memory. At most
//! [`MAX_SERIES`] series exist (config reloads could add groups forever); past that, `other`.
//!
//! An error is a request answered with a status of 500 or more (upstream errors 502/504, no
//! deployment available 503, internal 500) or a stream that failed after it started. Refusals
//! of the client's own making (400, 401, 403, 404, 429) are counted as requests, not errors.
//!
//! The numbers are per instance: a fleet aggregates through Prometheus (`/metrics`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::pipeline::{Finished, Outcome};

/// Bins of the latency histogram: bin `i` holds latencies up to `FIRST_BOUND_US * GROWTH^i`
/// (100 µs ... about 25 minutes); the last bin takes everything above.
pub const LATENCY_BUCKETS: usize = 64;
const FIRST_BOUND_US: f64 = 100.0;
const GROWTH: f64 = 1.3;

const MINUTE_MS: u64 = 60_000;
const HOUR_BUCKETS: usize = 60;
const DAY_BUCKET_MS: u64 = 5 * MINUTE_MS;
const DAY_BUCKETS: usize = 288;

/// Series (model groups plus deployments) kept at most; later names fold into [`OTHER`].
pub const MAX_SERIES: usize = 512;
pub const OTHER: &str = "other";

/// Memory of one series (both rings), allocated once.
pub const SERIES_BYTES: usize = std::mem::size_of::<Rings>();
const _: () = assert!(SERIES_BYTES < 100 * 1024, "a series grew past 100 KiB");

#[derive(Clone, Copy)]
struct Bucket {
    /// Which minute (or five minutes) since the Unix epoch this bucket holds; a bucket whose
    /// stamp is not the one asked for is stale and reads as empty.
    stamp: u32,
    requests: u32,
    errors: u32,
    latency: [u32; LATENCY_BUCKETS],
}

const EMPTY: Bucket = Bucket {
    stamp: u32::MAX,
    requests: 0,
    errors: 0,
    latency: [0; LATENCY_BUCKETS],
};

impl Bucket {
    fn add(&mut self, stamp: u32, error: bool, bin: usize) {
        if self.stamp != stamp {
            *self = Bucket { stamp, ..EMPTY };
        }
        self.requests = self.requests.saturating_add(1);
        self.errors = self.errors.saturating_add(u32::from(error));
        self.latency[bin] = self.latency[bin].saturating_add(1);
    }
}

struct Rings {
    hour: [Bucket; HOUR_BUCKETS],
    day: [Bucket; DAY_BUCKETS],
}

/// One model group's or one deployment's buckets.
struct Series {
    /// The model group a deployment belongs to (empty for a group's own series).
    group: Box<str>,
    provider: Box<str>,
    rings: Mutex<Box<Rings>>,
}

impl Series {
    fn new(group: &str, provider: &str) -> Series {
        Series {
            group: group.into(),
            provider: provider.into(),
            rings: Mutex::new(Box::new(Rings {
                hour: [EMPTY; HOUR_BUCKETS],
                day: [EMPTY; DAY_BUCKETS],
            })),
        }
    }

    fn record(&self, at_ms: u64, error: bool, bin: usize) {
        let minute = at_ms / MINUTE_MS;
        let five = at_ms / DAY_BUCKET_MS;
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.hour[minute as usize % HOUR_BUCKETS].add(minute as u32, error, bin);
        rings.day[five as usize % DAY_BUCKETS].add(five as u32, error, bin);
    }
}

/// The bin of a latency in microseconds.
pub fn latency_bin(micros: u64) -> usize {
    if micros as f64 <= FIRST_BOUND_US {
        return 0;
    }
    let bin = ((micros as f64 / FIRST_BOUND_US).ln() / GROWTH.ln()).ceil() as usize;
    bin.min(LATENCY_BUCKETS - 1)
}

/// The upper bound of bin `i`, in milliseconds.
fn bin_upper_ms(i: usize) -> f64 {
    FIRST_BOUND_US * GROWTH.powi(i as i32) / 1000.0
}

/// The `q` quantile of a histogram, in milliseconds: the geometric middle of the bin it falls in
/// (so within about ±14% of the true value). `None` for an empty histogram.
fn quantile_ms(hist: &[u64; LATENCY_BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let upper = bin_upper_ms(i);
            let lower = if i == 0 {
                upper / 2.0
            } else {
                bin_upper_ms(i - 1)
            };
            return Some(((lower * upper).sqrt() * 1000.0).round() / 1000.0);
        }
    }
    None
}

/// Which window a read covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
}

impl Window {
    pub fn parse(text: &str) -> Option<Window> {
        match text {
            "1h" | "hour" => Some(Window::Hour),
            "1d" | "24h" | "day" => Some(Window::Day),
            _ => None,
        }
    }

    fn bucket_ms(self) -> u64 {
        match self {
            Window::Hour => MINUTE_MS,
            Window::Day => DAY_BUCKET_MS,
        }
    }

    fn buckets(self) -> usize {
        match self {
            Window::Hour => HOUR_BUCKETS,
            Window::Day => DAY_BUCKETS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "1d",
        }
    }
}

/// One point of a chart: a bucket's numbers.
#[derive(Debug, Serialize)]
pub struct Point {
    /// The bucket's start, Unix milliseconds.
    pub t: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A series over a window: the totals, then one point per bucket (oldest first).
#[derive(Debug, Serialize)]
pub struct SeriesReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Requests per second over the whole window.
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub points: Vec<Point>,
}

#[derive(Debug, Serialize)]
pub struct TrafficReport {
    pub window: &'static str,
    pub bucket_seconds: u64,
    /// The end of the window (now), Unix milliseconds.
    pub now_ms: u64,
    pub scope: &'static str,
    pub model_groups: Vec<SeriesReport>,
    pub deployments: Vec<SeriesReport>,
}

/// The traffic of this instance, fed by the request-finished event.
#[derive(Default)]
pub struct Traffic {
    groups: RwLock<HashMap<Box<str>, Arc<Series>>>,
    deployments: RwLock<HashMap<Box<str>, Arc<Series>>>,
}

impl Traffic {
    pub fn new() -> Traffic {
        Traffic::default()
    }

    /// Records a finished model request (one that named a model or reached a deployment);
    /// everything else (`/health`, the UI, an unknown path) is not traffic of a model group.
    pub fn record(&self, event: &Finished<'_>, at_ms: u64) {
        if event.deployment.is_none() && event.requested_model.is_empty() {
            return;
        }
        let error = event.status >= 500 || event.outcome == Outcome::StreamFailed;
        let bin = latency_bin(event.latency.as_micros() as u64);
        let add = |series: &Series| series.record(at_ms, error, bin);
        match event.deployment {
            Some(deployment) => self.with_series(&self.groups, &deployment.model_name, "", "", add),
            // A name no deployment has served may be anything a client typed: it gets no
            // series of its own (its requests count under `other`) until a deployment of that
            // group answers or fails here.
            None => {
                let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
                if let Some(series) = groups.get(event.requested_model) {
                    add(series);
                } else {
                    drop(groups);
                    self.with_series(&self.groups, OTHER, "", "", add);
                }
            }
        }
        if let Some(deployment) = event.deployment {
            self.with_series(
                &self.deployments,
                &deployment.id,
                &deployment.model_name,
                &deployment.provider_name,
                add,
            );
        }
    }

    /// Runs `add` on the series `name` (made on first sight, or `other` past the cap).
    fn with_series(
        &self,
        map: &RwLock<HashMap<Box<str>, Arc<Series>>>,
        name: &str,
        group: &str,
        provider: &str,
        add: impl Fn(&Series),
    ) {
        if let Some(series) = map.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return add(series);
        }
        add(&self.series(map, name, group, provider));
    }

    fn series(
        &self,
        map: &RwLock<HashMap<Box<str>, Arc<Series>>>,
        name: &str,
        group: &str,
        provider: &str,
    ) -> Arc<Series> {
        if let Some(series) = map.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return series.clone();
        }
        let total = self.len();
        let mut map = map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = map.get(name) {
            return series.clone();
        }
        let (name, group, provider) = if total >= MAX_SERIES {
            (OTHER, "", "")
        } else {
            (name, group, provider)
        };
        map.entry(name.into())
            .or_insert_with(|| Arc::new(Series::new(group, provider)))
            .clone()
    }

    fn len(&self) -> usize {
        self.groups.read().map_or(0, |m| m.len()) + self.deployments.read().map_or(0, |m| m.len())
    }

    /// The window ending at `now_ms`, every series with at least one request in it.
    pub fn report(&self, window: Window, now_ms: u64) -> TrafficReport {
        let read = |map: &RwLock<HashMap<Box<str>, Arc<Series>>>, deployments: bool| {
            let map = map.read().unwrap_or_else(|e| e.into_inner());
            let mut out: Vec<SeriesReport> = map
                .iter()
                .map(|(name, series)| {
                    let mut report = series_report(series, window, now_ms);
                    report.name = name.to_string();
                    if deployments {
                        report.model_group = Some(series.group.to_string());
                        report.provider = Some(series.provider.to_string());
                    }
                    report
                })
                .filter(|r| r.requests > 0)
                .collect();
            out.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.name.cmp(&b.name)));
            out
        };
        TrafficReport {
            window: window.name(),
            bucket_seconds: window.bucket_ms() / 1000,
            now_ms,
            scope: "this instance",
            model_groups: read(&self.groups, false),
            deployments: read(&self.deployments, true),
        }
    }
}

fn series_report(series: &Series, window: Window, now_ms: u64) -> SeriesReport {
    let width = window.bucket_ms();
    let count = window.buckets();
    let current = now_ms / width;
    // Copy the ring out so the lock is held only for a memcpy.
    let buckets: Vec<Bucket> = {
        let rings = series.rings.lock().unwrap_or_else(|e| e.into_inner());
        match window {
            Window::Hour => rings.hour.to_vec(),
            Window::Day => rings.day.to_vec(),
        }
    };
    let mut total = [0u64; LATENCY_BUCKETS];
    let (mut requests, mut errors) = (0u64, 0u64);
    let mut points = Vec::with_capacity(count);
    for stamp in (current + 1).saturating_sub(count as u64)..=current {
        let bucket = &buckets[stamp as usize % count];
        let mut hist = [0u64; LATENCY_BUCKETS];
        let (mut n, mut e) = (0, 0);
        if u64::from(bucket.stamp) == stamp {
            n = u64::from(bucket.requests);
            e = u64::from(bucket.errors);
            for (i, v) in bucket.latency.iter().enumerate() {
                hist[i] = u64::from(*v);
                total[i] += u64::from(*v);
            }
        }
        requests += n;
        errors += e;
        points.push(Point {
            t: stamp * width,
            requests: n,
            errors: e,
            p50_ms: quantile_ms(&hist, 0.50),
            p95_ms: quantile_ms(&hist, 0.95),
            p99_ms: quantile_ms(&hist, 0.99),
        });
    }
    SeriesReport {
        name: String::new(),
        model_group: None,
        provider: None,
        requests,
        errors,
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        rps: requests as f64 / (width * count as u64 / 1000) as f64,
        p50_ms: quantile_ms(&total, 0.50),
        p95_ms: quantile_ms(&total, 0.95),
        p99_ms: quantile_ms(&total, 0.99),
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_grow_by_the_factor_and_end_in_an_overflow_bin() {
        assert_eq!(latency_bin(0), 0);
        assert_eq!(latency_bin(100), 0);
        assert_eq!(latency_bin(101), 1);
        assert_eq!(latency_bin(130), 1);
        assert_eq!(latency_bin(131), 2);
        assert_eq!(latency_bin(u64::MAX / 2), LATENCY_BUCKETS - 1);
        // Every latency falls in a bin whose bounds hold it.
        for micros in [150u64, 1_000, 12_345, 250_000, 3_000_000, 60_000_000] {
            let bin = latency_bin(micros);
            let ms = micros as f64 / 1000.0;
            assert!(ms <= bin_upper_ms(bin) * 1.000_001, "{micros} in {bin}");
            assert!(ms > bin_upper_ms(bin - 1), "{micros} in {bin}");
        }
    }

    #[test]
    fn quantiles_are_within_the_bin_width() {
        let mut hist = [0u64; LATENCY_BUCKETS];
        // 90 requests of 10 ms, 10 of 1 s.
        hist[latency_bin(10_000)] += 90;
        hist[latency_bin(1_000_000)] += 10;
        let p50 = quantile_ms(&hist, 0.5).unwrap();
        let p95 = quantile_ms(&hist, 0.95).unwrap();
        assert!((8.5..=11.5).contains(&p50), "{p50}");
        assert!((850.0..=1150.0).contains(&p95), "{p95}");
        assert_eq!(quantile_ms(&[0; LATENCY_BUCKETS], 0.5), None);
    }

    #[test]
    fn the_rings_keep_an_hour_and_a_day_and_forget_older_buckets() {
        let series = Series::new("", "");
        let start = 1_800_000_000_000u64; // a multiple of five minutes
        series.record(start, false, 10);
        series.record(start + 1, true, 10);
        series.record(start + MINUTE_MS, false, 20);
        let hour = series_report(&series, Window::Hour, start + MINUTE_MS);
        assert_eq!((hour.requests, hour.errors), (3, 1));
        assert_eq!(hour.points.len(), HOUR_BUCKETS);
        assert_eq!(hour.points[HOUR_BUCKETS - 2].requests, 2);
        assert_eq!(hour.points[HOUR_BUCKETS - 1].requests, 1);
        assert!((hour.error_rate - 1.0 / 3.0).abs() < 1e-9);
        // Two hours on, the hour is empty and the day still holds them (in one 5-minute bucket).
        let later = start + 120 * MINUTE_MS;
        assert_eq!(series_report(&series, Window::Hour, later).requests, 0);
        let day = series_report(&series, Window::Day, later);
        assert_eq!((day.requests, day.errors), (3, 1));
        assert_eq!(day.points.len(), DAY_BUCKETS);
        // A write in a bucket's next turn of the ring starts it afresh.
        series.record(start + 60 * MINUTE_MS, false, 1);
        let hour = series_report(&series, Window::Hour, start + 60 * MINUTE_MS);
        assert_eq!(hour.requests, 2, "the first minute's bucket was reused");
        assert_eq!(
            series_report(&series, Window::Day, start + 25 * 60 * MINUTE_MS).requests,
            0
        );
    }

    fn event(model: &str, status: u16, outcome: Outcome) -> Finished<'_> {
        Finished {
            request_id: "r",
            method: "POST",
            path: "/v1/chat/completions",
            principal: None,
            surface: crate::pipeline::Surface::OpenAi,
            requested_model: model,
            deployment: None,
            passthrough_provider: None,
            attempts: 0,
            usage: None,
            status,
            outcome,
            stream: false,
            latency: std::time::Duration::from_millis(5),
            time_to_first_token: None,
            end_user: None,
            metadata: None,
            cache_hit: false,
            cost: None,
            upstream_latency: None,
            rejection: None,
            trace: None,
        }
    }

    #[test]
    fn errors_are_5xx_and_failed_streams_and_unserved_names_count_under_other() {
        let traffic = Traffic::new();
        let now = 1_800_000_000_000u64;
        traffic.record(&event("m", 200, Outcome::Answered), now);
        traffic.record(&event("m", 429, Outcome::Failed), now);
        traffic.record(&event("m", 502, Outcome::Failed), now);
        traffic.record(&event("m", 200, Outcome::StreamFailed), now);
        traffic.record(&event("", 401, Outcome::Failed), now);
        let report = traffic.report(Window::Hour, now);
        assert_eq!(report.model_groups.len(), 1);
        let m = &report.model_groups[0];
        assert_eq!((m.name.as_str(), m.requests, m.errors), (OTHER, 4, 2));
        // Once a deployment of the group was tried, its refusals count under its name.
        traffic.with_series(&traffic.groups, "m", "", "", |s| s.record(now, false, 0));
        traffic.record(&event("m", 429, Outcome::Failed), now);
        let report = traffic.report(Window::Hour, now);
        let m = report.model_groups.iter().find(|g| g.name == "m").unwrap();
        assert_eq!((m.requests, m.errors), (2, 0));
        assert!(report.deployments.is_empty());
    }

    #[test]
    fn names_past_the_cap_fold_into_other() {
        let traffic = Traffic::new();
        let now = 1_800_000_000_000u64;
        let names: Vec<String> = (0..MAX_SERIES + 50)
            .map(|i| format!("random-{i}"))
            .collect();
        for name in &names {
            traffic.with_series(&traffic.groups, name, "", "", |s| s.record(now, false, 0));
        }
        // Unknown names never make a series.
        traffic.record(&event("no-such-model", 404, Outcome::Failed), now);
        let report = traffic.report(Window::Day, now);
        assert_eq!(report.model_groups.len(), MAX_SERIES + 1);
        let other = report
            .model_groups
            .iter()
            .find(|g| g.name == OTHER)
            .unwrap();
        assert_eq!(other.requests, 51);
    }

    #[test]
    fn a_series_is_a_fixed_size() {
        // Documented in docs/dashboard.md: about 91 KiB per model group or deployment.
        assert_eq!(
            SERIES_BYTES,
            (HOUR_BUCKETS + DAY_BUCKETS) * (12 + 4 * LATENCY_BUCKETS)
        );
    }
}
