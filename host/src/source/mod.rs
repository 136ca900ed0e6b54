//! Sources: where a pipeline's records come from. One file per connector,
//! each behind the [`Source`] trait.
//!
//! A source never interprets record values: it hands bytes to the plugins
//! together with where each record came from, for dead letters and, later,
//! checkpoints.

pub mod file;

use crate::Record;
use crate::config::Config;
use async_trait::async_trait;
use serde::Deserialize;
use std::path::PathBuf;

/// Where one record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a text file.
    Line(u64),
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
    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>>;

    /// Describes a position for a dead letter, e.g. `data/x.ndjson:17`.
    fn locate(&self, position: Position) -> String {
        match position {
            Position::Line(line) => format!("{}:{line}", self.describe()),
            Position::None => self.describe(),
        }
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
}

impl SourceConfig {
    /// The `type` as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File { .. } => "file",
            SourceConfig::Stdin => "stdin",
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
        }
    }

    /// Opens the source.
    pub async fn build(&self, config: &Config) -> Result<Box<dyn Source>> {
        match self {
            SourceConfig::File { path } => Ok(Box::new(
                file::LineSource::open(&config.resolve(path)).await?,
            )),
            SourceConfig::Stdin => Ok(Box::new(file::LineSource::stdin())),
        }
    }
}
