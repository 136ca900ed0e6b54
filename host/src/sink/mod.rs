//! Sinks: where output records and dead letters go. One file per connector,
//! each behind the [`Sink`] trait.
//!
//! A sink may refuse individual records (a value that does not fit the
//! schema); it returns them as [`Rejected`] so the pipeline sends them to the
//! dead-letter sink. A sink must never drop a record silently.

pub mod fields;
pub mod kafka;
pub mod ndjson;
pub mod parquet;
pub mod postgres;
pub mod writer;

use crate::Record;
use crate::checkpoint::Checkpoint;
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
    /// A client library (sqlx, librdkafka) reported an error.
    #[error("sink {sink}: {action}: {reason} ({hint})")]
    Client {
        /// The sink.
        sink: String,
        /// What was being done.
        action: String,
        /// The library's message.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The service is unreachable or dropped the connection; the pipeline
    /// backs off, resumes from its last checkpoint and tries again.
    #[error("sink {sink}: {action}: {reason} (will retry; check the service is up and reachable)")]
    Unavailable {
        /// The sink.
        sink: String,
        /// What was being done.
        action: String,
        /// The library's message.
        reason: String,
    },
    /// Group mode: another process claimed the partition since this one
    /// did, so this commit was refused and rolled back.
    #[error(
        "sink {sink}: {partition} now belongs to another weir process (this process's claim, owner epoch {owner_epoch}, was superseded): its uncommitted work for that partition is dropped, the new owner resumes from the last commit"
    )]
    Fenced {
        /// The sink.
        sink: String,
        /// The checkpoint key of the partition, `pipeline@topic.partition`.
        partition: String,
        /// This process's owner epoch, now stale.
        owner_epoch: i64,
    },
    /// Saving a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::Error),
    /// The task driving the sinks ended before the pipeline did.
    #[error("sink writer stopped: {0}")]
    Stopped(String),
}

impl Error {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { error, .. } => matches!(
                error.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            Error::Unavailable { .. } => true,
            _ => false,
        }
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

    /// Periodic housekeeping: roll files that are due, flush buffers.
    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether everything written so far is durable (committed, uploaded,
    /// written out). Source positions are committed only when it is.
    fn is_durable(&self) -> bool;

    /// Whether records keep their key and headers here. Dead letters go to
    /// a sink that does not as envelopes (see [`envelope`]), so the reason
    /// and origin are never lost.
    fn keeps_headers(&self) -> bool {
        false
    }

    /// Flushes and finalises (closes open files). Called once, at the end.
    async fn close(&mut self) -> Result<()>;

    /// Exactly-once: the sink's commit protocol, when it stores checkpoints
    /// with its data (see [`EpochStore`]); `None` for a sink that cannot.
    fn epochs(&mut self) -> Option<&mut dyn EpochStore> {
        None
    }
}

/// Where every process of a group-mode pipeline reads who owns each of its
/// partitions (for `/readyz` and `weir status`).
#[async_trait]
pub trait Owners: Send {
    /// `(partition, owner)` of every partition checkpoint of `pipeline`,
    /// the partition as `topic.partition`.
    async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>>;
}

/// The commit protocol of an exactly-once sink: each epoch's checkpoint is
/// stored with its data, atomically, and a checkpoint key (a pipeline, or
/// in group mode one partition of it) has one owner, whose claim fences
/// every earlier one. Implemented by the PostgreSQL sink (its tables) and
/// the Parquet sink (its location's table format, [`crate::table`]).
#[async_trait]
pub trait EpochStore: Owners {
    /// From now on keep what is written uncommitted until
    /// [`EpochStore::commit`], remove what an unfinished epoch of `key`
    /// left behind, and return `key`'s last committed checkpoint.
    async fn recover(&mut self, key: &str) -> Result<Option<Checkpoint>>;

    /// Like [`EpochStore::recover`], and first takes ownership of `key`
    /// for `owner` (a new owner epoch). From then on every
    /// [`EpochStore::commit`] checks, atomically with the write, that no
    /// other process claimed `key` since, and fails with [`Error::Fenced`]
    /// if one did.
    async fn claim(&mut self, key: &str, owner: &str) -> Result<Option<Checkpoint>>;

    /// Single-process pipelines: the last claim of `key`, for refusing a
    /// second process before it writes, or keeping it as a standby. `None`
    /// when nothing claimed it yet.
    async fn holder(&mut self, key: &str) -> Result<Option<crate::owner::Holder>>;

    /// Commits everything written since the last commit together with
    /// `checkpoint`, atomically. May defer (return `false`: nothing
    /// committed yet, the next call covers this epoch too), e.g. to avoid
    /// small files, unless `force` is set.
    async fn commit(&mut self, checkpoint: &Checkpoint, force: bool) -> Result<bool>;
}

/// The commit protocol of `sink`, or the error of a sink that has none.
pub(crate) fn epoch_store(sink: &mut dyn Sink) -> Result<&mut dyn EpochStore> {
    let name = sink.describe();
    sink.epochs().ok_or_else(|| no_exactly_once(&name))
}

/// The error of a sink asked to commit an epoch it cannot hold.
pub(crate) fn no_exactly_once(sink: &str) -> Error {
    Error::Format {
        sink: sink.to_owned(),
        action: "commit an epoch".into(),
        reason:
            "this sink cannot store a checkpoint with its data; set delivery = \"at-least-once\""
                .into(),
    }
}

/// `sink = { type = "...", ... }` or `dead-letter = { ... }` in a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Parquet files in a local folder.
    Parquet(parquet::ParquetConfig),
    /// Newline-delimited JSON to a file, or to stdout with `path = "-"`.
    Ndjson(ndjson::NdjsonConfig),
    /// Rows in a PostgreSQL table, by COPY.
    Postgres(postgres::PostgresConfig),
    /// Records on a Kafka topic.
    Kafka(kafka::KafkaSinkConfig),
}

impl SinkConfig {
    /// Where group mode reads who owns each partition: the sink's
    /// checkpoint store, opened to read (connecting on first use). `None`
    /// for a sink that keeps no owners.
    pub(crate) fn owners_board(&self, base_dir: &std::path::Path) -> Option<Box<dyn Owners>> {
        match self {
            SinkConfig::Postgres(c) => {
                postgres::OwnerBoard::open(c).map(|board| Box::new(board) as Box<dyn Owners>)
            }
            SinkConfig::Parquet(c) => parquet::ParquetSink::open(c, base_dir)
                .ok()
                .map(|sink| Box::new(sink) as Box<dyn Owners>),
            _ => None,
        }
    }

    /// The `type` as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Parquet(_) => "parquet",
            SinkConfig::Ndjson(_) => "ndjson",
            SinkConfig::Postgres(_) => "postgres",
            SinkConfig::Kafka(_) => "kafka",
        }
    }

    /// Whether this sink can commit a checkpoint with its data (exactly-once),
    /// and why — the reason `weir validate` prints.
    pub fn exactly_once(&self) -> std::result::Result<&'static str, &'static str> {
        match self {
            SinkConfig::Postgres(_) => {
                Ok("rows and checkpoint commit in one PostgreSQL transaction")
            }
            SinkConfig::Parquet(_) => Ok(
                "each epoch is one Delta log commit naming its files and checkpoint (or, with table = \"weir\", an epoch manifest written after them)",
            ),
            SinkConfig::Ndjson(_) => Err(
                "an NDJSON file has no transactions: a crash repeats the records of the last epoch",
            ),
            SinkConfig::Kafka(_) => Err(
                "broker transactions are not used: a crash repeats the records of the last epoch, each with the same weir.id header for deduplication",
            ),
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
            SinkConfig::Parquet(c) => {
                Ok(Box::new(parquet::ParquetSink::open(c, &config.base_dir)?))
            }
            SinkConfig::Postgres(c) => Ok(Box::new(postgres::PostgresSink::open(c).await?)),
            SinkConfig::Kafka(c) => Ok(Box::new(kafka::KafkaSink::open(c)?)),
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

/// The envelope form of a record, for sinks that cannot carry headers:
/// `{"reason", "stage", "source", "timestamp_ms", "key", "headers", "value"}`
/// (`value_bytes`, an array of numbers, when the value is not UTF-8).
/// `reason`, `stage` and `source` repeat the `weir.*` headers at the top
/// level so that a table or file can have them as columns.
pub fn envelope(record: &Record) -> serde_json::Value {
    use serde_json::{Map, Value};
    let text = |bytes: &[u8]| Value::from(String::from_utf8_lossy(bytes).into_owned());
    let mut obj = Map::new();
    for (field, header) in [
        ("reason", crate::record::headers::REASON),
        ("stage", crate::record::headers::STAGE),
        ("source", crate::record::headers::SOURCE),
    ] {
        if let Some(h) = record.headers.iter().rev().find(|h| h.name == header) {
            obj.insert(field.into(), text(&h.value));
        }
    }
    obj.insert("timestamp_ms".into(), record.timestamp_ms.into());
    obj.insert(
        "key".into(),
        record.key.as_deref().map_or(Value::Null, text),
    );
    let headers: Map<String, Value> = record
        .headers
        .iter()
        .map(|h| (h.name.clone(), text(&h.value)))
        .collect();
    obj.insert("headers".into(), headers.into());
    match std::str::from_utf8(&record.value) {
        Ok(value) => obj.insert("value".into(), value.into()),
        Err(_) => obj.insert("value_bytes".into(), record.value.clone().into()),
    };
    Value::Object(obj)
}

/// Serde helper for optional durations such as `rollover-interval = "10s"`.
pub(crate) fn optional_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    crate::config::duration(d).map(Some)
}
