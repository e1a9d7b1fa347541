//! Log lines leave the request path through a bounded channel: a request formats its line into a
//! buffer and hands it over; one background thread writes batches to stderr. A full channel drops
//! the line and counts it (`switchyard_log_lines_dropped_total`) instead of making requests wait
//! on a slow terminal, pipe or disk.
//!
//! The writer wakes on a timer rather than per line: a receiver blocked in `recv` must be woken by
//! every send (a futex call and a context switch per request, which measured several times the
//! cost of formatting the line). Polling every few milliseconds makes a send a plain queue push.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines dropped because the writer thread fell behind.
pub static LOG_LINES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines that may wait for the writer thread.
const CAPACITY: usize = 16 * 1024;

/// How often the writer thread looks for lines.
const INTERVAL: Duration = Duration::from_millis(20);

/// The receiving end, shared by the writer thread and [`flush`].
static PENDING: OnceLock<Mutex<Receiver<Vec<u8>>>> = OnceLock::new();

/// The sending end, for lines formatted outside `tracing` (the JSON access line).
static SENDER: OnceLock<SyncSender<Vec<u8>>> = OnceLock::new();

/// Hands a whole line to the writer thread (dropped and counted when it is behind); straight to
/// stderr when there is no writer thread.
pub fn send(line: Vec<u8>) {
    match SENDER.get() {
        Some(tx) => {
            if tx.try_send(line).is_err() {
                LOG_LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            let _ = io::stderr().write_all(&line);
        }
    }
}

pub struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
}

impl ChannelWriter {
    /// Starts the writer thread; falls back to `None` if no thread can be started.
    pub fn spawn() -> Option<Self> {
        let (tx, rx) = sync_channel::<Vec<u8>>(CAPACITY);
        PENDING.set(Mutex::new(rx)).ok()?;
        let _ = SENDER.set(tx.clone());
        std::thread::Builder::new()
            .name("switchyard-log".into())
            .spawn(|| loop {
                std::thread::sleep(INTERVAL);
                flush();
            })
            .ok()?;
        Some(ChannelWriter { tx })
    }
}

/// Writes every waiting line to stderr (one system call per batch). The server calls it once more
/// at shutdown so the last lines are not lost.
pub fn flush() {
    let Some(pending) = PENDING.get() else {
        return;
    };
    let Ok(rx) = pending.lock() else {
        return;
    };
    let mut out = BufWriter::with_capacity(64 * 1024, io::stderr());
    while let Ok(line) = rx.try_recv() {
        let _ = out.write_all(&line);
    }
    let _ = out.flush();
}

/// One event's bytes; sent when the formatter is done with it.
pub struct Line<'a> {
    buf: Vec<u8>,
    tx: &'a SyncSender<Vec<u8>>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() && self.tx.try_send(std::mem::take(&mut self.buf)).is_err() {
            LOG_LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<'a> MakeWriter<'a> for ChannelWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            buf: Vec::with_capacity(256),
            tx: &self.tx,
        }
    }
}
