//! Sinks: where output records and dead letters go. One file per connector,
//! each behind the [`Sink`] trait.
//!
//! A sink may refuse individual records (a value that does not fit the
//! schema); it returns them as [`Rejected`] so the pipeline sends them to the
//! dead-letter sink. A sink must never drop a record silently.

pub mod ndjson;
pub mod parquet;
pub mod writer;

use crate::Record;
use async_trait::async_trait;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A record the sink refused, with the reason.
#[derive(Debug)]
pub struct Rejected {
    /// The record as the sink received it.
    pub record: Record,
    /// Why, e.g. which column did not fit.
    pub reason: String,
}

/// Writing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File-system I/O failed.
    #[error("sink {sink}: {action}: {error} (check the path, free space and permissions)")]
    Io {
        /// The sink, as [`Sink::describe`] says.
        sink: String,
        /// What was being done.
        action: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The Parquet/Arrow writer failed.
    #[error("sink {sink}: {action}: {reason}")]
    Format {
        /// The sink.
        sink: String,
        /// What was being done.
        action: String,
        /// The writer's message.
        reason: String,
    },
    /// The task driving the sinks ended before the pipeline did.
    #[error("sink writer stopped: {0}")]
    Stopped(String),
}

impl Error {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Io { error, .. } if matches!(error.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut))
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A destination for records.
#[async_trait]
pub trait Sink: Send {
    /// Names the sink for logs, e.g. `parquet out/taxi`.
    fn describe(&self) -> String;

    /// Writes records; returns those it refused.
    async fn write(&mut self, records: Vec<Record>) -> Result<Vec<Rejected>>;

    /// Makes everything written so far durable.
    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Flushes and finalises (closes open files). Called once, at the end.
    async fn close(&mut self) -> Result<()>;
}

/// `sink = { type = "...", ... }` or `dead-letter = { ... }` in a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Parquet files in a local folder.
    Parquet(parquet::ParquetConfig),
    /// Newline-delimited JSON to a file, or to stdout with `path = "-"`.
    Ndjson(ndjson::NdjsonConfig),
}

impl SinkConfig {
    /// The `type` as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Parquet(_) => "parquet",
            SinkConfig::Ndjson(_) => "ndjson",
        }
    }

    /// The default dead-letter sink of a pipeline: an NDJSON envelope file.
    pub fn default_dead_letter(pipeline: &str) -> SinkConfig {
        SinkConfig::Ndjson(ndjson::NdjsonConfig {
            path: PathBuf::from(format!("dead-letter/{pipeline}.ndjson")),
            envelope: true,
            truncate: false,
        })
    }

    /// Opens the sink; relative paths start at `config`'s folder.
    pub async fn build(&self, config: &crate::config::Config) -> Result<Box<dyn Sink>> {
        match self {
            SinkConfig::Parquet(c) => Ok(Box::new(parquet::ParquetSink::open(
                c,
                &config.resolve(&c.path),
            )?)),
            SinkConfig::Ndjson(c) => {
                let path = if c.path.as_os_str() == "-" {
                    c.path.clone()
                } else {
                    config.resolve(&c.path)
                };
                Ok(Box::new(ndjson::NdjsonSink::open(c, &path).await?))
            }
        }
    }
}

/// Serde helper for optional durations such as `rollover-interval = "10s"`.
pub(crate) fn optional_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    crate::config::duration(d).map(Some)
}
