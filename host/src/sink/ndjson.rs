//! Newline-delimited JSON to a local file or stdout.
//!
//! Plain mode writes each record's value as one line. Envelope mode (the
//! dead-letter default) writes `{"timestamp_ms", "key", "headers", "value"}`
//! so that headers such as `weir.reason` survive; a value that is not UTF-8
//! is written as `value_bytes`, an array of numbers, never mangled.

use super::{Error, Rejected, Result, Sink, envelope};
use crate::Record;
use async_trait::async_trait;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

/// `type = "ndjson"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NdjsonConfig {
    /// Output file, or `-` for stdout. Parent folders are created.
    pub path: PathBuf,
    /// Write the whole record (key, headers, timestamp) rather than the value.
    #[serde(default)]
    pub envelope: bool,
    /// Empty the file at start instead of appending to it.
    #[serde(default)]
    pub truncate: bool,
}

/// The sink.
pub struct NdjsonSink {
    name: String,
    out: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    envelope: bool,
    /// Written since the last flush.
    dirty: bool,
}

impl NdjsonSink {
    /// Opens (creating or appending to) the file, or stdout for `-`.
    pub async fn open(config: &NdjsonConfig, path: &Path) -> Result<Self> {
        let name = format!("ndjson {}", path.display());
        let out: Box<dyn AsyncWrite + Send + Unpin> = if path.as_os_str() == "-" {
            Box::new(tokio::io::stdout())
        } else {
            let io = |action: &str, error| Error::Io {
                sink: name.clone(),
                action: action.into(),
                error,
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| io("create folder", e))?;
            }
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(!config.truncate)
                .truncate(config.truncate)
                .open(path)
                .await
                .map_err(|e| io("open", e))?;
            Box::new(file)
        };
        Ok(NdjsonSink {
            name,
            out: BufWriter::with_capacity(1 << 20, out),
            envelope: config.envelope,
            dirty: false,
        })
    }
}

#[async_trait]
impl Sink for NdjsonSink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn write(&mut self, records: Vec<Record>) -> Result<Vec<Rejected>> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.value.len() + 1).sum());
        for record in &records {
            if self.envelope {
                serde_json::to_writer(&mut buf, &envelope(record))
                    .expect("a JSON value serialises");
            } else {
                buf.extend_from_slice(&record.value);
            }
            buf.push(b'\n');
        }
        self.out.write_all(&buf).await.map_err(|error| Error::Io {
            sink: self.name.clone(),
            action: "write".into(),
            error,
        })?;
        self.dirty = true;
        Ok(Vec::new())
    }

    async fn flush(&mut self) -> Result<()> {
        self.out.flush().await.map_err(|error| Error::Io {
            sink: self.name.clone(),
            action: "flush".into(),
            error,
        })?;
        self.dirty = false;
        Ok(())
    }

    /// Flushed to the operating system (not fsynced).
    fn is_durable(&self) -> bool {
        !self.dirty
    }

    fn keeps_headers(&self) -> bool {
        self.envelope
    }

    async fn close(&mut self) -> Result<()> {
        self.flush().await
    }
}
