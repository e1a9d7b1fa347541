//! The spill file: rows the queue had no room for, one JSON object per line, appended; replayed
//! into the store when it answers. A crash can leave a half-written last line, and the file is
//! on a disk anyone may edit, so reading it never trusts a line: what does not parse as a row
//! is skipped and counted.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::SpendRow;

/// Lines longer than this are not rows (a row is well under a kilobyte unless its metadata is
/// large); they are skipped without being held in memory whole.
const MAX_LINE: usize = 1024 * 1024;

/// The rows of a spill file and how many lines were not rows.
#[derive(Debug, Default)]
pub struct SpillRead {
    pub rows: Vec<SpendRow>,
    pub bad_lines: u64,
}

/// Reads every row of a spill file; unreadable lines (truncated, garbage, not UTF-8, too long)
/// are counted in `bad_lines`. Only a file that cannot be opened or read is an error.
pub fn read_spill(path: &Path) -> io::Result<SpillRead> {
    let mut reader = SpillReader::open(path)?;
    let mut out = SpillRead::default();
    loop {
        let rows = reader.next_rows(1024)?;
        if rows.is_empty() {
            break;
        }
        out.rows.extend(rows);
    }
    out.bad_lines = reader.bad_lines;
    Ok(out)
}

/// Reads a spill file a few rows at a time, so a replay holds one batch in memory, not the
/// file.
pub struct SpillReader {
    reader: BufReader<File>,
    line: Vec<u8>,
    done: bool,
    /// Lines so far that were not rows.
    pub bad_lines: u64,
}

impl SpillReader {
    pub fn open(path: &Path) -> io::Result<SpillReader> {
        Ok(SpillReader {
            reader: BufReader::new(File::open(path)?),
            line: Vec::new(),
            done: false,
            bad_lines: 0,
        })
    }

    /// Up to `max` next rows; empty at the end of the file.
    pub fn next_rows(&mut self, max: usize) -> io::Result<Vec<SpendRow>> {
        let mut rows = Vec::new();
        while !self.done && rows.len() < max.max(1) {
            self.line.clear();
            let (complete, too_long) = read_line(&mut self.reader, &mut self.line)?;
            if !complete {
                self.done = true;
            }
            if self.line.iter().all(u8::is_ascii_whitespace) && !too_long {
                continue;
            }
            match (too_long, serde_json::from_slice::<SpendRow>(&self.line)) {
                (false, Ok(row)) => rows.push(row),
                _ => self.bad_lines += 1,
            }
        }
        Ok(rows)
    }
}

/// One line into `line` (without its `\n`), keeping at most `MAX_LINE` bytes. Returns whether a
/// newline ended it and whether it was cut.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<(bool, bool)> {
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((false, too_long));
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (&buf[..at], Some(at + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > MAX_LINE {
            too_long = true;
        } else {
            line.extend_from_slice(chunk);
        }
        let used = found.unwrap_or(buf.len());
        reader.consume(used);
        if found.is_some() {
            return Ok((true, too_long));
        }
    }
}

/// Appends rows to the spill file (created if missing), one line each.
pub(super) fn append(path: &Path, rows: &[SpendRow]) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut out = BufWriter::new(file);
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// The file a replay works on: the spill file is renamed to it first, so rows spilled during a
/// replay go to a new spill file and are not lost when the replayed one is removed.
pub(super) fn replaying(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".replaying");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> SpendRow {
        SpendRow {
            id: id.into(),
            request_id: "r".into(),
            started_at: 1,
            api_key: "k".into(),
            key_alias: None,
            team_id: Some("t".into()),
            user_id: None,
            end_user: None,
            requested_model: "m".into(),
            model_group: None,
            deployment_id: None,
            provider: None,
            prompt_tokens: 1,
            completion_tokens: 2,
            cached_tokens: 0,
            cost_nanos: 3,
            cost_source: "none".into(),
            latency_ms: 4,
            ttft_ms: None,
            status: 200,
            outcome: "answered".into(),
            stream: false,
            cache_hit: false,
            call_type: None,
            metadata: None,
        }
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sy-spill-{name}-{:x}.jsonl", fastrand::u64(..)))
    }

    #[test]
    fn rows_round_trip() {
        let path = temp("round");
        append(&path, &[row("a"), row("b")]).unwrap();
        append(&path, &[row("c")]).unwrap();
        let read = read_spill(&path).unwrap();
        assert_eq!(read.bad_lines, 0);
        let ids: Vec<_> = read.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn hostile_content_is_skipped_and_counted() {
        let path = temp("hostile");
        append(&path, &[row("a")]).unwrap();
        let good = serde_json::to_string(&row("b")).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"garbage\n");
        bytes.extend_from_slice(b"{\"id\": 5}\n");
        bytes.extend_from_slice(b"\xff\xfe\x00 not utf8\n");
        bytes.extend_from_slice(b"\n   \n");
        bytes.extend_from_slice(b"[1,2,3]\n");
        bytes.extend_from_slice(&vec![b'x'; MAX_LINE + 10]);
        bytes.push(b'\n');
        bytes.extend_from_slice(good.as_bytes());
        bytes.push(b'\n');
        // A crash mid-write: the last line is cut.
        bytes.extend_from_slice(&good.as_bytes()[..good.len() / 2]);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&bytes).unwrap();
        drop(file);
        let read = read_spill(&path).unwrap();
        let ids: Vec<_> = read.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(read.bad_lines, 6);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_reader_gives_rows_a_batch_at_a_time() {
        let path = temp("batches");
        let rows: Vec<SpendRow> = (0..5).map(|i| row(&format!("r{i}"))).collect();
        append(&path, &rows).unwrap();
        let mut reader = SpillReader::open(&path).unwrap();
        assert_eq!(reader.next_rows(2).unwrap().len(), 2);
        assert_eq!(reader.next_rows(2).unwrap().len(), 2);
        assert_eq!(reader.next_rows(2).unwrap().len(), 1);
        assert!(reader.next_rows(2).unwrap().is_empty());
        assert_eq!(reader.bad_lines, 0);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn an_empty_or_missing_file() {
        let path = temp("empty");
        File::create(&path).unwrap();
        let read = read_spill(&path).unwrap();
        assert!(read.rows.is_empty());
        assert_eq!(read.bad_lines, 0);
        let _ = std::fs::remove_file(&path);
        assert!(read_spill(&path).is_err());
    }
}
