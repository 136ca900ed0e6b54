//! Newline-delimited records from a local file or standard input.
//!
//! Each non-empty line is one record: the line's bytes (without the line
//! break) are the value; the timestamp is the host clock at read time.
//! Blank lines are skipped, but line numbers stay true for dead letters.

use super::{Error, Mark, Position, Result, Source, SourceBatch};
use crate::Record;
use async_trait::async_trait;
use std::path::Path;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

/// Reads lines from any buffered reader.
pub struct LineSource {
    name: String,
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    line: u64,
    done: bool,
    /// Files resume: lines up to here were read in an earlier run.
    resumable: bool,
    skip_to: u64,
}

impl LineSource {
    /// Opens a file.
    pub async fn open(path: &Path) -> Result<Self> {
        // The absolute path names the source in checkpoints, so a restart
        // from another working directory still recognises it.
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let name = format!("file {}", absolute.display());
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|error| Error::Io {
                source_name: name.clone(),
                action: "open",
                error,
                hint: "check source.path",
            })?;
        Ok(LineSource {
            name,
            reader: Box::new(BufReader::with_capacity(1 << 20, file)),
            line: 0,
            done: false,
            resumable: true,
            skip_to: 0,
        })
    }

    /// Reads standard input.
    pub fn stdin() -> Self {
        LineSource {
            name: "stdin".into(),
            reader: Box::new(BufReader::with_capacity(1 << 20, tokio::io::stdin())),
            line: 0,
            done: false,
            resumable: false,
            skip_to: 0,
        }
    }
}

#[async_trait]
impl Source for LineSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn mark(&self) -> Mark {
        if self.resumable {
            Mark::from([(self.name.clone(), self.line.max(self.skip_to) as i64)])
        } else {
            Mark::new()
        }
    }

    async fn resume(&mut self, positions: &Mark) -> Result<()> {
        if let Some(line) = positions.get(&self.name) {
            self.skip_to = (*line).max(0) as u64;
        }
        Ok(())
    }

    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>> {
        if self.done {
            return Ok(None);
        }
        let now_ms = crate::record::now_ms();
        let mut batch = SourceBatch::default();
        while batch.records.len() < max {
            let mut value = Vec::with_capacity(512);
            let n = self
                .reader
                .read_until(b'\n', &mut value)
                .await
                .map_err(|error| Error::Io {
                    source_name: self.name.clone(),
                    action: "read",
                    error,
                    hint: "check the file is readable and not truncated while weir reads it",
                })?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line += 1;
            if self.line <= self.skip_to {
                continue;
            }
            while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                value.pop();
            }
            if value.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            batch.records.push(Record {
                key: None,
                value,
                timestamp_ms: now_ms,
                headers: Vec::new(),
            });
            batch.positions.push(Position::Line(self.line));
        }
        if batch.records.is_empty() && self.done {
            Ok(None)
        } else {
            Ok(Some(batch))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_in_batches_skipping_blanks_with_true_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        std::fs::write(&path, "{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}").unwrap();
        let mut source = LineSource::open(&path).await.unwrap();
        let first = source.next_batch(2).await.unwrap().unwrap();
        assert_eq!(first.records.len(), 2);
        assert_eq!(first.records[1].value, b"{\"a\":2}");
        assert_eq!(first.positions, [Position::Line(1), Position::Line(3)]);
        let second = source.next_batch(2).await.unwrap().unwrap();
        assert_eq!(second.positions, [Position::Line(4)]);
        assert!(source.next_batch(2).await.unwrap().is_none());
    }
}
