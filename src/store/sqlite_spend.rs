//! The SQLite spend-log writer: a connection of its own, driven through SQLite's C API (the
//! `libsqlite3-sys` that sqlx already builds and links; no second copy of SQLite).
//!
//! Why not sqlx here: every request writes a row, and through sqlx a row cost about 20,000
//! instructions on the embedded default — a quarter of a cache hit. Most of it was not SQLite's
//! own work but the way values reach it: each of a row's 24 values was boxed into an argument
//! list, sent to the connection's worker thread, copied into memory SQLite allocates
//! (`SQLITE_TRANSIENT`) and freed again after the step. Here the values are bound in place
//! (`SQLITE_STATIC`: SQLite reads them during the step, while the rows are borrowed) and the
//! statements are prepared once per connection. Measured in bench/README.md ("The cache hit").
//!
//! Semantics are those of the shared spend SQL (`spend_sql.rs`), unchanged: the INSERTs of fixed
//! sizes ([`chunks`]), `ON CONFLICT (started_at, id) DO NOTHING`, and when a statement inserted
//! fewer rows than it had (a retried batch, a replayed spill file) the transaction is rolled back
//! and written again one row at a time, so only the rows that were new add to the totals.
//!
//! Every `unsafe` block below is a call into SQLite with a connection or statement this module
//! opened and has not closed, and (for binds) pointers to values that outlive the step that
//! reads them: bindings are cleared before the rows' borrow ends.

use std::ffi::{c_int, CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::Mutex;
use std::time::Duration;

use libsqlite3_sys as ffi;

use super::spend_sql::{chunks, insert_sql, CHUNK_SIZES, SQLITE_INSERT_CHUNK};
use super::StoreError;
use crate::spend::SpendRow;

/// Values a spend row binds, in the INSERT's column order.
const PER_ROW: usize = 25;

pub(super) struct SpendWriter {
    connection: Mutex<Option<Connection>>,
}

impl SpendWriter {
    /// Opens the database file (already created and migrated by the pool).
    pub(super) fn open(path: &Path, busy_timeout: Duration) -> Result<SpendWriter, StoreError> {
        Ok(SpendWriter {
            connection: Mutex::new(Some(Connection::open(path, busy_timeout)?)),
        })
    }

    /// Writes `rows` (skipping those already there) and adds the new ones' cost to the totals,
    /// in one transaction; returns how many were new. Blocks on SQLite: called through
    /// [`blocking`].
    pub(super) fn write(&self, rows: &[SpendRow]) -> Result<u64, StoreError> {
        let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let connection = guard
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("the spend-log connection is closed".into()))?;
        connection.write(rows)
    }

    pub(super) fn close(&self) {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// Runs blocking work from async code: on a multi-threaded runtime the worker hands its other
/// tasks to another thread first (as sqlx's own worker thread kept SQLite off the request path);
/// elsewhere (a single-threaded test runtime) it just runs.
pub(super) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

struct Connection {
    db: *mut ffi::sqlite3,
    /// The INSERT of each size of [`CHUNK_SIZES`] up to [`SQLITE_INSERT_CHUNK`], in that order.
    inserts: Vec<Statement>,
    totals: Statement,
    begin: Statement,
    commit: Statement,
    rollback: Statement,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX ("multi-thread" mode: usable from
// any thread, one thread at a time) and only used behind `SpendWriter`'s mutex.
unsafe impl Send for Connection {}

struct Statement(*mut ffi::sqlite3_stmt);

impl Connection {
    fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
        let name = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
            StoreError::Unavailable(format!("{}: a NUL byte in the path", path.display()))
        })?;
        let mut db = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX;
        // SAFETY: `name` is a NUL-terminated string; `db` receives the handle (closed on error).
        let rc = unsafe { ffi::sqlite3_open_v2(name.as_ptr(), &mut db, flags, ptr::null()) };
        if rc != ffi::SQLITE_OK {
            let message = if db.is_null() {
                format!("error code {rc}")
            } else {
                let message = error_message(db);
                // SAFETY: a handle sqlite3_open_v2 returned, closed once.
                unsafe { ffi::sqlite3_close(db) };
                message
            };
            return Err(StoreError::Unavailable(format!(
                "cannot open the SQLite database {} for spend logs: {message}",
                path.display()
            )));
        }
        let mut connection = Connection {
            db,
            inserts: Vec::new(),
            totals: Statement(ptr::null_mut()),
            begin: Statement(ptr::null_mut()),
            commit: Statement(ptr::null_mut()),
            rollback: Statement(ptr::null_mut()),
        };
        let millis = c_int::try_from(busy_timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_busy_timeout(db, millis) };
        // In WAL mode (the pool set it; it is kept in the file) NORMAL loses no committed
        // transaction on a process crash, as for the pool's connections.
        connection.execute("PRAGMA synchronous = NORMAL")?;
        connection.execute("PRAGMA foreign_keys = ON")?;
        for &size in CHUNK_SIZES.iter().filter(|&&n| n <= SQLITE_INSERT_CHUNK) {
            let statement = connection.prepare(&insert_sql(size, false, "", false))?;
            connection.inserts.push(statement);
        }
        connection.totals = connection.prepare(
            "INSERT INTO switchyard_spend_totals (kind, id, spend_nanos) VALUES (?, ?, ?) \
             ON CONFLICT (kind, id) DO UPDATE \
             SET spend_nanos = switchyard_spend_totals.spend_nanos + excluded.spend_nanos",
        )?;
        // IMMEDIATE: the write lock is taken (or waited for) at the start, never upgraded.
        connection.begin = connection.prepare("BEGIN IMMEDIATE")?;
        connection.commit = connection.prepare("COMMIT")?;
        connection.rollback = connection.prepare("ROLLBACK")?;
        Ok(connection)
    }

    fn execute(&self, sql: &str) -> Result<(), StoreError> {
        let statement = self.prepare(sql)?;
        self.run(&statement)
    }

    fn prepare(&self, sql: &str) -> Result<Statement, StoreError> {
        let mut statement = ptr::null_mut();
        let len = c_int::try_from(sql.len())
            .map_err(|_| StoreError::Unavailable("spend-log statement too long".into()))?;
        // SAFETY: `sql` is valid for `len` bytes (no NUL needed with a length); the statement
        // is owned by the returned `Statement` and finalized when it drops.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error("prepare"));
        }
        Ok(Statement(statement))
    }

    /// Steps a statement that returns no rows to its end, then resets it (bindings kept).
    fn run(&self, statement: &Statement) -> Result<(), StoreError> {
        // SAFETY: a statement prepared on this connection, not finalized.
        let rc = unsafe { ffi::sqlite3_step(statement.0) };
        let result = if rc == ffi::SQLITE_DONE {
            Ok(())
        } else {
            Err(self.error("write"))
        };
        // SAFETY: as above.
        unsafe { ffi::sqlite3_reset(statement.0) };
        result
    }

    fn write(&mut self, rows: &[SpendRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        // Bound by reference, so made before binding and kept until the rows are written.
        let metadata: Vec<Option<String>> = rows.iter().map(SpendRow::metadata_json).collect();
        self.run(&self.begin)?;
        let written = self.write_in_transaction(rows, &metadata);
        let ended = match written {
            Ok(_) => self.run(&self.commit),
            Err(_) => self.run(&self.rollback),
        };
        // Nothing may keep pointers into `rows` or `metadata` past this call.
        for statement in self.inserts.iter().chain([&self.totals]) {
            // SAFETY: a statement of this connection.
            unsafe { ffi::sqlite3_clear_bindings(statement.0) };
        }
        if written.is_ok() {
            if let Err(err) = ended {
                // A failed COMMIT leaves the transaction open: end it.
                let _ = self.run(&self.rollback);
                return Err(err);
            }
        }
        written
    }

    fn write_in_transaction(
        &self,
        rows: &[SpendRow],
        metadata: &[Option<String>],
    ) -> Result<u64, StoreError> {
        let mut all_new = true;
        let mut offset = 0;
        for chunk in chunks(rows, SQLITE_INSERT_CHUNK) {
            let statement = self.insert_of(chunk.len());
            for (i, row) in chunk.iter().enumerate() {
                self.bind_row(statement, i, row, metadata[offset + i].as_deref())?;
            }
            self.run(statement)?;
            offset += chunk.len();
            if self.changes() != chunk.len() as u64 {
                all_new = false;
                break;
            }
        }
        let new_rows: Vec<&SpendRow> = if all_new {
            rows.iter().collect()
        } else {
            // Some rows were there already: start again, one row per statement, so each
            // statement's count says whether its row was new (a row listed twice in the
            // batch is inserted, and counted, once).
            self.run(&self.rollback)?;
            self.run(&self.begin)?;
            let one = self.insert_of(1);
            let mut new_rows = Vec::new();
            for (row, metadata) in rows.iter().zip(metadata) {
                self.bind_row(one, 0, row, metadata.as_deref())?;
                self.run(one)?;
                if self.changes() == 1 {
                    new_rows.push(row);
                }
            }
            new_rows
        };
        for ((owner, id), nanos) in crate::spend::totals(new_rows.iter().copied()) {
            let totals = &self.totals;
            self.bind_text(totals, 1, owner.name())?;
            self.bind_text(totals, 2, id)?;
            self.bind_int(totals, 3, nanos)?;
            self.run(totals)?;
        }
        Ok(new_rows.len() as u64)
    }

    fn insert_of(&self, rows: usize) -> &Statement {
        let index = CHUNK_SIZES
            .iter()
            .filter(|&&n| n <= SQLITE_INSERT_CHUNK)
            .position(|&n| n == rows)
            .expect("chunks() only makes sizes of CHUNK_SIZES");
        &self.inserts[index]
    }

    /// Binds row number `i` of a multi-row INSERT, in the column order of `COLUMNS`.
    fn bind_row(
        &self,
        statement: &Statement,
        i: usize,
        row: &SpendRow,
        metadata: Option<&str>,
    ) -> Result<(), StoreError> {
        let first = (i * PER_ROW + 1) as c_int;
        let text = |n: c_int, value: &str| self.bind_text(statement, first + n, value);
        let opt = |n: c_int, value: Option<&str>| match value {
            Some(value) => self.bind_text(statement, first + n, value),
            None => self.bind_null(statement, first + n),
        };
        let int = |n: c_int, value: i64| self.bind_int(statement, first + n, value);
        text(0, &row.id)?;
        text(1, &row.request_id)?;
        int(2, row.started_at)?;
        text(3, &row.api_key)?;
        opt(4, row.key_alias.as_deref())?;
        opt(5, row.team_id.as_deref())?;
        opt(6, row.user_id.as_deref())?;
        opt(7, row.end_user.as_deref())?;
        text(8, &row.requested_model)?;
        opt(9, row.model_group.as_deref())?;
        opt(10, row.deployment_id.as_deref())?;
        opt(11, row.provider.as_deref())?;
        int(12, row.prompt_tokens)?;
        int(13, row.completion_tokens)?;
        int(14, row.cached_tokens)?;
        int(15, row.cost_nanos)?;
        text(16, &row.cost_source)?;
        int(17, row.latency_ms)?;
        match row.ttft_ms {
            Some(ms) => int(18, ms)?,
            None => self.bind_null(statement, first + 18)?,
        }
        int(19, row.status)?;
        text(20, &row.outcome)?;
        int(21, i64::from(row.stream))?;
        int(22, i64::from(row.cache_hit))?;
        opt(23, row.call_type.as_deref())?;
        opt(24, metadata)
    }

    /// Binds `value` without a copy: the caller keeps it alive until the bindings are cleared.
    fn bind_text(&self, statement: &Statement, n: c_int, value: &str) -> Result<(), StoreError> {
        // SAFETY: `value` is valid UTF-8 of this length, and outlives the statement's use of it
        // (see `write`: bindings are cleared before the borrow of the rows ends).
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                statement.0,
                n,
                value.as_ptr().cast(),
                value.len() as u64,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        self.check_bind(rc)
    }

    fn bind_int(&self, statement: &Statement, n: c_int, value: i64) -> Result<(), StoreError> {
        // SAFETY: a statement of this connection.
        let rc = unsafe { ffi::sqlite3_bind_int64(statement.0, n, value) };
        self.check_bind(rc)
    }

    fn bind_null(&self, statement: &Statement, n: c_int) -> Result<(), StoreError> {
        // SAFETY: a statement of this connection.
        let rc = unsafe { ffi::sqlite3_bind_null(statement.0, n) };
        self.check_bind(rc)
    }

    fn check_bind(&self, rc: c_int) -> Result<(), StoreError> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error("bind"))
        }
    }

    /// Rows the last statement inserted.
    fn changes(&self) -> u64 {
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_changes64(self.db) }.max(0) as u64
    }

    fn error(&self, what: &str) -> StoreError {
        StoreError::Unavailable(format!("spend log {what}: {}", error_message(self.db)))
    }
}

fn error_message(db: *mut ffi::sqlite3) -> String {
    // SAFETY: an open handle; the message is copied before any other call on it.
    unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned()
}

impl Drop for Connection {
    fn drop(&mut self) {
        let statements = self.inserts.drain(..).chain([
            std::mem::replace(&mut self.totals, Statement(ptr::null_mut())),
            std::mem::replace(&mut self.begin, Statement(ptr::null_mut())),
            std::mem::replace(&mut self.commit, Statement(ptr::null_mut())),
            std::mem::replace(&mut self.rollback, Statement(ptr::null_mut())),
        ]);
        for statement in statements {
            drop(statement);
        }
        // SAFETY: every statement is finalized; the handle is closed once.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: finalizing a null statement is a no-op; otherwise finalized once.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}
