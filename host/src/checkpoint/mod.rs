//! Checkpoints: what a pipeline needs to resume exactly where it stopped.
//!
//! A pipeline runs in epochs. At the end of each it takes a [`Checkpoint`]:
//! the next position of every source partition, every plugin's state
//! (`snapshot`), and the epoch number. Where the sink can store that
//! checkpoint atomically with the epoch's data (PostgreSQL: one
//! transaction; Parquet on an object store: an epoch manifest), delivery is
//! exactly-once: a restart reads the checkpoint from the sink, seeks the
//! source to it and restores the plugins, so the rows of an epoch are
//! either all there with their checkpoint or not there at all.
//!
//! Other sinks (NDJSON files, Kafka without transactions) are flushed and
//! then the checkpoint is saved to a [`CheckpointStore`] — a local file
//! written atomically ([`file::FileStore`]). A crash between the two
//! replays the epoch: at-least-once.
//!
//! Positions are keyed per source partition (`topic/partition` for Kafka,
//! the object's path for object stores) so that a later scale-out across
//! processes only moves keys.

pub mod file;

use crate::source::Mark;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One plugin's state as its `snapshot` wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginState {
    /// The `state-version` the plugin reported when it wrote `bytes`.
    pub version: u32,
    /// The snapshot, hex-encoded in JSON.
    #[serde(with = "hex_text")]
    pub bytes: Vec<u8>,
}

/// Everything needed to resume a pipeline after its epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Checkpoint {
    /// The pipeline's name.
    pub pipeline: String,
    /// The source it read, as the source describes itself: a checkpoint of
    /// another source (the topic was renamed) is not resumed from.
    #[serde(default)]
    pub source: String,
    /// Epochs count up from 1; 0 is "nothing committed yet".
    pub epoch: u64,
    /// Per source partition, the next position to read.
    pub positions: Mark,
    /// Per plugin (its name in `[plugins.*]`), its state.
    pub state: BTreeMap<String, PluginState>,
}

/// How a pipeline delivers records to its sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Each record's effect is in the sink exactly once, across crashes.
    ExactlyOnce,
    /// Nothing is lost; a crash may repeat the records of the last epoch.
    AtLeastOnce,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Delivery::ExactlyOnce => "exactly-once",
            Delivery::AtLeastOnce => "at-least-once",
        })
    }
}

/// A checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File-system I/O failed.
    #[error(
        "checkpoint {path}: {action}: {error} (check the folder exists, is writable and has free space)"
    )]
    Io {
        /// The file.
        path: String,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A stored checkpoint is not readable.
    #[error(
        "checkpoint {path}: {reason} (move the file away to start this pipeline from its source's start position)"
    )]
    Corrupt {
        /// Where it is stored.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where at-least-once pipelines keep their checkpoints.
#[async_trait]
pub trait CheckpointStore: Send {
    /// Names the store for logs.
    fn describe(&self) -> String;
    /// The last saved checkpoint, if any.
    async fn load(&mut self) -> Result<Option<Checkpoint>>;
    /// Replaces the stored checkpoint; durable when this returns.
    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<()>;
}

/// Plugin state as hex text in JSON checkpoints (readable, diffable).
mod hex_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_through_json_with_state_as_hex() {
        let checkpoint = Checkpoint {
            pipeline: "taxi".into(),
            source: "kafka trips".into(),
            epoch: 7,
            positions: Mark::from([("trips/0".to_owned(), 42), ("trips/1".to_owned(), 0)]),
            state: BTreeMap::from([(
                "window".to_owned(),
                PluginState {
                    version: 2,
                    bytes: vec![0, 1, 0xab, 0xff],
                },
            )]),
        };
        let text = serde_json::to_string(&checkpoint).unwrap();
        assert!(text.contains("\"0001abff\""), "{text}");
        assert_eq!(
            serde_json::from_str::<Checkpoint>(&text).unwrap(),
            checkpoint
        );
        for bad in ["\"0g\"", "\"abc\""] {
            let text = text.replace("\"0001abff\"", bad);
            assert!(serde_json::from_str::<Checkpoint>(&text).is_err(), "{bad}");
        }
    }
}
