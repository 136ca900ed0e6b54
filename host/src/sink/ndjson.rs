//! Newline-delimited JSON to a local file or stdout.
//!
//! Plain mode writes each record's value as one line. Envelope mode (the
//! dead-letter default) writes `{"timestamp_ms", "key", "headers", "value"}`
//! so that headers such as `weir.reason` survive; a value that is not UTF-8
//! is written as `value_bytes`, an array of numbers, never mangled.

use super::{Error, Rejected, Result, Sink};
use crate::Record;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};
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
        })
    }
}

/// The envelope form of a record.
pub fn envelope(record: &Record) -> Value {
    let mut obj = Map::new();
    obj.insert("timestamp_ms".into(), record.timestamp_ms.into());
    obj.insert(
        "key".into(),
        record.key.as_ref().map_or(Value::Null, |k| {
            String::from_utf8_lossy(k).into_owned().into()
        }),
    );
    let headers: Map<String, Value> = record
        .headers
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                String::from_utf8_lossy(&h.value).into_owned().into(),
            )
        })
        .collect();
    obj.insert("headers".into(), headers.into());
    match std::str::from_utf8(&record.value) {
        Ok(text) => obj.insert("value".into(), text.into()),
        Err(_) => obj.insert("value_bytes".into(), record.value.clone().into()),
    };
    Value::Object(obj)
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
        Ok(Vec::new())
    }

    async fn flush(&mut self) -> Result<()> {
        self.out.flush().await.map_err(|error| Error::Io {
            sink: self.name.clone(),
            action: "flush".into(),
            error,
        })
    }

    async fn close(&mut self) -> Result<()> {
        self.flush().await
    }
}
