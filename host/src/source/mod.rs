//! Sources: where a pipeline's records come from. One file per connector,
//! each behind the [`Source`] trait.
//!
//! A source never interprets record values: it hands bytes to the plugins
//! together with where each record came from, for dead letters and, later,
//! checkpoints.
//!
//! Sources that can resume (Kafka, object stores, files) say how far they
//! have been read as a [`Mark`], which goes into each checkpoint; on start
//! the pipeline hands the checkpoint's mark to [`Source::resume`].

pub mod file;
pub mod kafka;
pub mod object;

use crate::Record;
use crate::config::Config;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How far a source has been read: for each partition of the input (a
/// Kafka `topic/partition`, an object's path) the next position to read.
/// Keyed per partition so that checkpoints can be too.
pub type Mark = BTreeMap<String, i64>;

/// Where one record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a text file.
    Line(u64),
    /// A Kafka record: index into the source's topics, partition, offset.
    Kafka {
        /// Index of the topic in the source's configuration.
        topic: u16,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
    /// A row of an object: index into the source's files, 1-based row.
    Row {
        /// Index of the object in the order the source read them.
        file: u32,
        /// 1-based row (or line) in that object.
        row: u64,
    },
    /// Not traceable to one input record (e.g. produced by a plugin).
    None,
}

/// A batch as read from a source: records and, index for index, where each
/// came from.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// The records.
    pub records: Vec<Record>,
    /// Where each record came from; same length as `records`.
    pub positions: Vec<Position>,
    /// Records the source read but cannot hand to plugins (a Kafka
    /// tombstone), with where they came from and why: they go to the dead
    /// letters. Their positions count as read.
    pub refused: Vec<(Position, Record, String)>,
}

/// Reading failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or stream could not be read.
    #[error("source {source_name}: {action}: {error} ({hint})")]
    Io {
        /// The source, as [`Source::describe`] says.
        source_name: String,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        error: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// A client library (librdkafka, object_store) reported an error.
    #[error("source {source_name}: {action}: {reason} ({hint})")]
    Client {
        /// The source.
        source_name: String,
        /// What was being done.
        action: String,
        /// The library's message.
        reason: String,
        /// What to do about it.
        hint: &'static str,
        /// Whether a later attempt may succeed.
        retryable: bool,
    },
}

impl Error {
    /// Whether retrying later may succeed (the pipeline backs off) or not
    /// (the pipeline stops with this error).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { error, .. } => matches!(
                error.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            Error::Client { retryable, .. } => *retryable,
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A source of records.
#[async_trait]
pub trait Source: Send {
    /// Names the source for logs and dead letters, e.g. `file data/x.ndjson`.
    fn describe(&self) -> String;

    /// Reads up to `max` records. `Ok(None)` means a bounded input has ended.
    /// An unbounded source returns (possibly empty) batches within a bounded
    /// time, so the pipeline can tick plugins and flush sinks while idle.
    /// A stop may cancel the read: what it took is then dropped, so
    /// [`Source::mark`] must move only when a batch is returned (a mark that
    /// covered dropped records would let the next checkpoint skip them).
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>>;

    /// Describes a position for a dead letter, e.g. `file /srv/data/x.ndjson:17`.
    fn locate(&self, position: Position) -> String {
        match position {
            Position::Line(line) => format!("{}:{line}", self.describe()),
            _ => self.describe(),
        }
    }

    /// How far the source has been read, covering every record returned so
    /// far. Empty for sources that cannot resume (files, stdin).
    fn mark(&self) -> Mark {
        Mark::new()
    }

    /// Continue after `positions` (from a checkpoint) instead of the
    /// configured start. Partitions not named start as configured. Called
    /// once, before the first read; later marks include `positions`.
    async fn resume(&mut self, positions: &Mark) -> Result<()> {
        if !positions.is_empty() {
            tracing::warn!(source = %self.describe(), "This source cannot resume; reading from its start.");
        }
        Ok(())
    }

    /// A checkpoint covering everything up to `mark` is committed: tell
    /// the source's own bookkeeping (Kafka: the consumer group's offsets,
    /// for monitoring; they are never where a restart resumes).
    async fn commit(&mut self, mark: &Mark) -> Result<()> {
        let _ = mark;
        Ok(())
    }

    /// The pipeline is stopping and `mark` (if any) was its last commit:
    /// make sure it reached its destination before the source is dropped.
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    /// Records not yet read, per partition, where the source knows.
    fn lag(&self) -> Vec<(String, i64)> {
        Vec::new()
    }
}

/// `source = { type = "...", ... }` in a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Newline-delimited JSON from a local file: one record per line.
    File {
        /// The file.
        path: PathBuf,
    },
    /// Newline-delimited JSON from standard input.
    Stdin,
    /// A Kafka consumer in a consumer group.
    Kafka(kafka::KafkaConfig),
    /// Parquet, NDJSON or CSV objects under a prefix of an object store.
    ObjectStore(object::ObjectStoreConfig),
}

impl SourceConfig {
    /// The `type` as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File { .. } => "file",
            SourceConfig::Stdin => "stdin",
            SourceConfig::Kafka(_) => "kafka",
            SourceConfig::ObjectStore(_) => "object-store",
        }
    }

    /// Problems found without reading data: `(key, message)`.
    pub fn check(&self, config: &Config) -> Vec<(&'static str, String)> {
        match self {
            SourceConfig::File { path } => {
                let resolved = config.resolve(path);
                if resolved.is_file() {
                    vec![]
                } else {
                    vec![(
                        "path",
                        format!("{} does not exist or is not a file", resolved.display()),
                    )]
                }
            }
            SourceConfig::Stdin => vec![],
            SourceConfig::Kafka(c) => c.check(),
            SourceConfig::ObjectStore(_) => vec![],
        }
    }

    /// Opens the source.
    pub async fn build(&self, config: &Config) -> Result<Box<dyn Source>> {
        match self {
            SourceConfig::File { path } => Ok(Box::new(
                file::LineSource::open(&config.resolve(path)).await?,
            )),
            SourceConfig::Stdin => Ok(Box::new(file::LineSource::stdin())),
            SourceConfig::Kafka(c) => Ok(Box::new(kafka::KafkaSource::open(c)?)),
            SourceConfig::ObjectStore(c) => Ok(Box::new(
                object::ObjectSource::open(c, &config.base_dir).await?,
            )),
        }
    }
}
