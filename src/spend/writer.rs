//! The spend-log queue and its writer task.
//!
//! Bounds, in order of what gives way:
//! - the request path only builds the row and `try_send`s it into a bounded queue
//!   (`queue_size` rows);
//! - every `flush_interval` (at once while batches come out full, or when a push finds a full
//!   batch waiting) the writer takes up to `batch_size` rows and writes them in one
//!   transaction (`ON CONFLICT (started_at, id) DO NOTHING`: a batch retried after a commit
//!   whose answer was lost adds nothing twice, rows nor totals);
//! - while the database fails, the batch stays in memory and is retried with backoff
//!   (`MIN_BACKOFF` doubling to `MAX_BACKOFF`); the queue fills behind it;
//! - a row that finds the queue full is appended to the spill file (a short, buffered append
//!   under a lock, only in that overload); the writer replays the file when the database
//!   answers again;
//! - only a row that cannot be spilled either (no spill file configured, disk error) is
//!   dropped, counted in `switchyard_spend_rows_dropped_total` and logged.
//!
//! At shutdown the writer gets `shutdown_flush` to write what is queued; the rest is spilled.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{spill, SpendRow};
use crate::store::Store;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest an idle writer sleeps before it looks at the queue, the spill file and the
/// retention schedule.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often old rows are deleted when a retention period is set.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How the spend log is written (`switchyard_spend:` in the config, see docs/spend-logs.md).
#[derive(Debug, Clone, PartialEq)]
pub struct SpendSettings {
    pub queue_size: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Where rows go when the queue is full; `None` drops (and counts) them instead.
    pub spill_file: Option<PathBuf>,
    /// How long a shutdown waits for the database before spilling what is left.
    pub shutdown_flush: Duration,
    /// Rows older than this are deleted (`general_settings.maximum_spend_logs_retention_period`).
    pub retention: Option<Duration>,
}

/// The default spill file name, next to the config file.
pub const DEFAULT_SPILL_FILE: &str = "switchyard-spend-spill.jsonl";

impl Default for SpendSettings {
    fn default() -> Self {
        SpendSettings {
            queue_size: 10_000,
            // Two 256-row INSERTs on SQLite, eight 64-row ones on PostgreSQL.
            batch_size: 512,
            flush_interval: Duration::from_millis(500),
            spill_file: Some(PathBuf::from(DEFAULT_SPILL_FILE)),
            shutdown_flush: Duration::from_secs(5),
            retention: None,
        }
    }
}

/// What the writer did, for `/metrics` and `/health/readiness`.
#[derive(Debug, Default)]
pub struct SpendCounters {
    pub written: AtomicU64,
    pub spilled: AtomicU64,
    pub replayed: AtomicU64,
    pub dropped: AtomicU64,
    pub spill_bad_lines: AtomicU64,
    pub write_failures: AtomicU64,
    /// Rows in spill files not yet replayed (an estimate across restarts: 0 until a replay).
    pub spill_pending: AtomicI64,
    /// Whether the last write or replay succeeded.
    pub store_ok: AtomicBool,
    pub deleted_by_retention: AtomicU64,
}

pub struct SpendLog {
    tx: mpsc::Sender<SpendRow>,
    rx: Mutex<Option<mpsc::Receiver<SpendRow>>>,
    started: AtomicBool,
    /// Serialises appends to the spill file with its rename at the start of a replay.
    spill_lock: Mutex<()>,
    /// Wakes the writer before its interval when a full batch is waiting: under load the
    /// interval alone lets the queue fill (8,000 rows in 500 ms at 16,000 requests/s) and rows
    /// spill to the file, which costs far more than writing them.
    wake: tokio::sync::Notify,
    /// Whether a wake-up is pending, so a push notifies once per batch, not once per row.
    wake_sent: AtomicBool,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    pub settings: SpendSettings,
    pub counters: SpendCounters,
}

impl SpendLog {
    pub fn new(settings: SpendSettings) -> Arc<SpendLog> {
        let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
        let counters = SpendCounters::default();
        counters.store_ok.store(true, Relaxed);
        Arc::new(SpendLog {
            tx,
            rx: Mutex::new(Some(rx)),
            started: AtomicBool::new(false),
            spill_lock: Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            wake_sent: AtomicBool::new(false),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
            settings,
            counters,
        })
    }

    /// Hands a row to the writer; never waits. Before [`SpendLog::start`] (a gateway built in
    /// code, without a writer) there is no spend log and the row is not kept.
    pub fn push(&self, row: SpendRow) {
        if !self.started.load(Relaxed) {
            return;
        }
        match self.tx.try_send(row) {
            Ok(()) => {
                if self.queued() >= self.settings.batch_size.max(1)
                    && !self.wake_sent.swap(true, Relaxed)
                {
                    self.wake.notify_one();
                }
            }
            Err(TrySendError::Full(row) | TrySendError::Closed(row)) => {
                self.spill(std::slice::from_ref(&row));
            }
        }
    }

    /// Rows waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Appends rows to the spill file; counts them dropped when that fails too.
    fn spill(&self, rows: &[SpendRow]) {
        if rows.is_empty() {
            return;
        }
        let n = rows.len() as u64;
        let result = match &self.settings.spill_file {
            None => Err(std::io::Error::other("no spill file is configured")),
            Some(path) => {
                let _guard = self.spill_lock.lock().unwrap_or_else(|e| e.into_inner());
                let result = spill::append(path, rows);
                if result.is_ok() {
                    // Counted under the lock, so a replay that finds no file may reset it.
                    self.counters.spilled.fetch_add(n, Relaxed);
                    self.counters.spill_pending.fetch_add(n as i64, Relaxed);
                }
                result
            }
        };
        match result {
            Ok(()) => {}
            Err(err) => {
                self.counters.dropped.fetch_add(n, Relaxed);
                tracing::error!(
                    rows = n,
                    "spend-log rows dropped: the queue is full and they cannot be spilled: {err}"
                );
            }
        }
    }

    /// Starts the writer task (once).
    pub fn start(self: &Arc<Self>, store: Arc<dyn Store>) {
        let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        self.started.store(true, Relaxed);
        let handle = tokio::spawn(run(self.clone(), store, rx));
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Stops the writer: what is queued is written within `shutdown_flush`, the rest spilled.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let handle = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            // The writer bounds its own flush; this is a guard against a stuck task.
            let _ = tokio::time::timeout(
                self.settings.shutdown_flush + Duration::from_secs(2),
                handle,
            )
            .await;
        }
    }
}

async fn run(log: Arc<SpendLog>, store: Arc<dyn Store>, mut rx: mpsc::Receiver<SpendRow>) {
    let batch_size = log.settings.batch_size.max(1);
    let mut batch: Vec<SpendRow> = Vec::with_capacity(batch_size);
    let mut backoff = MIN_BACKOFF;
    // Spill files left by an earlier run are replayed first.
    let mut look_at_spill = true;
    let mut last_retention: Option<Instant> = None;
    let mut warned_at: Option<Instant> = None;
    // Whether the last batch was full: more rows are probably waiting, so the next one is
    // taken at once instead of after the interval.
    let mut full = false;
    loop {
        if batch.is_empty() {
            // The writer wakes on a timer, not per row: a receiver waiting in `recv` is woken
            // by every send, a task wake-up (and often a thread unpark) per request; polling
            // keeps a send a plain queue push (as the log writer does, `telemetry/log_writer.rs`).
            if !full {
                tokio::select! {
                    biased;
                    () = log.stop.cancelled() => break,
                    () = log.wake.notified() => {}
                    () = tokio::time::sleep(log.settings.flush_interval.min(IDLE_TICK)) => {}
                }
            }
            // Cleared before taking rows: a push that fills the next batch wakes us again.
            log.wake_sent.store(false, Relaxed);
            while batch.len() < batch_size {
                match rx.try_recv() {
                    Ok(row) => batch.push(row),
                    Err(_) => break,
                }
            }
            full = batch.len() == batch_size;
        }
        if !batch.is_empty() {
            match store.write_spend(&batch).await {
                Ok(_) => {
                    log.counters.written.fetch_add(batch.len() as u64, Relaxed);
                    log.counters.store_ok.store(true, Relaxed);
                    batch.clear();
                    backoff = MIN_BACKOFF;
                }
                Err(err) => {
                    log.counters.write_failures.fetch_add(1, Relaxed);
                    log.counters.store_ok.store(false, Relaxed);
                    if warned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        warned_at = Some(Instant::now());
                        tracing::warn!(
                            rows = batch.len(),
                            queued = log.queued(),
                            "spend-log batch not written, retrying: {err}"
                        );
                    }
                    tokio::select! {
                        () = log.stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        if look_at_spill || log.counters.spill_pending.load(Relaxed) > 0 {
            match replay(&log, store.as_ref(), batch_size).await {
                Ok(()) => look_at_spill = false,
                Err(err) => {
                    log.counters.store_ok.store(false, Relaxed);
                    if warned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        warned_at = Some(Instant::now());
                        tracing::warn!("spend-log spill file not replayed yet: {err}");
                    }
                    tokio::select! {
                        () = log.stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if let Some(retention) = log.settings.retention {
            if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                last_retention = Some(Instant::now());
                let cutoff = crate::auth::cache::now_ms()
                    - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                match store.delete_spend_before(cutoff).await {
                    Ok(n) => {
                        log.counters.deleted_by_retention.fetch_add(n, Relaxed);
                        if n > 0 {
                            tracing::info!(rows = n, "old spend-log rows deleted (retention)");
                        }
                    }
                    Err(err) => {
                        // Tried again at the next round.
                        last_retention = None;
                        tracing::warn!("spend-log retention not applied: {err}");
                    }
                }
            }
        }
    }
    final_flush(&log, store.as_ref(), batch, rx).await;
}

/// At shutdown: what is queued gets `shutdown_flush` to reach the database; the rest is
/// spilled.
async fn final_flush(
    log: &SpendLog,
    store: &dyn Store,
    mut rows: Vec<SpendRow>,
    mut rx: mpsc::Receiver<SpendRow>,
) {
    rx.close();
    while let Ok(row) = rx.try_recv() {
        rows.push(row);
    }
    let batch_size = log.settings.batch_size.max(1);
    let deadline = tokio::time::Instant::now() + log.settings.shutdown_flush;
    let mut written = 0;
    while written < rows.len() {
        let end = (written + batch_size).min(rows.len());
        match tokio::time::timeout_at(deadline, store.write_spend(&rows[written..end])).await {
            Ok(Ok(_)) => {
                log.counters
                    .written
                    .fetch_add((end - written) as u64, Relaxed);
                written = end;
            }
            _ => break,
        }
    }
    if written < rows.len() {
        tracing::warn!(
            rows = rows.len() - written,
            "spend-log rows not written at shutdown: spilled for the next start"
        );
        log.spill(&rows[written..]);
    }
}

/// Writes the spill file's rows to the store, then removes it. The file is renamed first, so
/// rows spilled meanwhile start a new file; a replay cut short is resumed from the renamed file
/// (rows written twice are ignored by their ids).
async fn replay(log: &SpendLog, store: &dyn Store, batch_size: usize) -> Result<(), String> {
    let Some(path) = &log.settings.spill_file else {
        return Ok(());
    };
    let replaying = spill::replaying(path);
    if !replaying.exists() {
        let _guard = log.spill_lock.lock().unwrap_or_else(|e| e.into_inner());
        if !path.exists() {
            log.counters.spill_pending.store(0, Relaxed);
            return Ok(());
        }
        std::fs::rename(path, &replaying)
            .map_err(|e| format!("cannot rename {}: {e}", path.display()))?;
    }
    let mut reader = spill::SpillReader::open(&replaying)
        .map_err(|e| format!("cannot read {}: {e}", replaying.display()))?;
    let mut replayed = 0u64;
    loop {
        if log.stop.is_cancelled() {
            // The queue's final flush comes first; the rest of the file is resumed at the
            // next start.
            return Err("shutting down".into());
        }
        let rows = reader
            .next_rows(batch_size)
            .map_err(|e| format!("cannot read {}: {e}", replaying.display()))?;
        if rows.is_empty() {
            break;
        }
        // Counts rows new to the database: a replay resumed after an interruption skips (and
        // does not count again) what it already wrote.
        let new = store.write_spend(&rows).await.map_err(|e| e.to_string())?;
        replayed += rows.len() as u64;
        log.counters.replayed.fetch_add(new, Relaxed);
    }
    std::fs::remove_file(&replaying)
        .map_err(|e| format!("cannot remove {}: {e}", replaying.display()))?;
    log.counters.store_ok.store(true, Relaxed);
    let bad_lines = reader.bad_lines;
    if bad_lines > 0 {
        log.counters.spill_bad_lines.fetch_add(bad_lines, Relaxed);
        tracing::warn!(
            bad_lines,
            "spend-log spill file had lines that are not rows; skipped"
        );
    }
    let done = (replayed + bad_lines) as i64;
    let _ = log
        .counters
        .spill_pending
        .fetch_update(Relaxed, Relaxed, |n| Some((n - done).max(0)));
    if replayed > 0 {
        tracing::info!(rows = replayed, "spend-log spill file replayed");
    }
    Ok(())
}
