//! The committed content of a Parquet location, as every reader should see
//! it, and its compaction.
//!
//! A location holds part files from one or more manifest chains (see
//! [`crate::sink::parquet`]), compacted files, and files written without
//! exactly-once. Which of them hold committed rows is decided by:
//!
//! - a part file `part-<epoch>-<seq>[-<partition>].parquet`: its chain's
//!   newest manifest ([`manifests`]) commits it (epoch at most the manifest's, not a
//!   claimed slot);
//! - a compacted file `compact-….parquet`: the newest rewrite record,
//!   `_weir/_compaction/rewrite-<version, 20 digits>.json`, lists it as
//!   live;
//! - any other `.parquet` file is complete, hence committed;
//! - and none that the newest rewrite record lists as replaced.
//!
//! A compaction writes its merged files first (invisible: no record lists
//! them), then commits the swap in one conditional put of the next rewrite
//! record — replaced files out, merged files in. Replaced files stay in
//! place for a retention period, so a reader that listed before the swap
//! still finds every file it listed; orphans of a compaction killed before
//! its commit are deleted after the same period.
//!
//! For readers that are not weir, `_weir/committed` lists the committed
//! files (paths relative to the location, one per line); the Parquet sink
//! rewrites it after each commit that added files and a compaction after
//! its swap. `weir files <location>` prints the same list, computed afresh.

pub mod compact;
pub mod delta;
pub(crate) mod manifests;

use crate::checkpoint::Checkpoint;
use crate::store::Location;
use futures::TryStreamExt;
use manifests::{Manifest, manifest_epoch, part_epoch, scope_of};
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Reading or changing a location's committed files failed.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {action}: {reason}")]
pub struct Error {
    /// The location.
    pub location: String,
    /// What was being done.
    pub action: String,
    /// Why it failed and what to do.
    pub reason: String,
}

pub(crate) fn error(
    location: &Location,
    action: impl Into<String>,
    reason: impl ToString,
) -> Error {
    Error {
        location: location.display.clone(),
        action: action.into(),
        reason: reason.to_string(),
    }
}

/// A failure of an [`EpochLog`].
#[derive(Debug)]
pub(crate) enum LogError {
    /// The store did not answer or failed transiently: back off, retry.
    Unavailable { action: String, reason: String },
    /// Retrying cannot help; the reason says what to do.
    Failed { action: String, reason: String },
}

impl From<delta::Error> for LogError {
    fn from(e: delta::Error) -> Self {
        match e {
            delta::Error::Unavailable { action, reason, .. } => {
                LogError::Unavailable { action, reason }
            }
            delta::Error::Table { action, reason, .. } => LogError::Failed { action, reason },
        }
    }
}

impl From<manifests::Failure> for LogError {
    fn from(failure: manifests::Failure) -> Self {
        match failure {
            manifests::Failure::Store { action, error } if crate::store::is_transient(&error) => {
                LogError::Unavailable {
                    action,
                    reason: error.to_string(),
                }
            }
            manifests::Failure::Store { action, error } => LogError::Failed {
                action,
                reason: error.to_string(),
            },
            manifests::Failure::Damaged { action, reason } => LogError::Failed { action, reason },
        }
    }
}

/// A claim of a checkpoint key (see [`EpochLog::claim`]).
pub(crate) struct Claim {
    /// The epoch number the claim took; epochs written under it come
    /// after it.
    pub slot: u64,
    /// Every slot claimed so far in the key's log (epochs that hold no
    /// files), this one included.
    pub claims: Vec<u64>,
    /// The last committed checkpoint, carried forward, its epoch the slot.
    pub checkpoint: Checkpoint,
}

/// Who commits an epoch: the owner and the claim it commits under.
pub(crate) struct Holding<'a> {
    pub owner: &'a str,
    pub slot: u64,
    pub claims: &'a [u64],
}

/// The files an epoch wrote.
pub(crate) struct EpochFiles {
    /// Every file, its store path.
    pub paths: Vec<String>,
    /// The same with what a table that keeps statistics adds to its log
    /// (Delta; empty for weir's manifests).
    pub added: Vec<delta::DataFile>,
}

/// How [`EpochLog::commit`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The epoch is in the log.
    Yes,
    /// The log holds this epoch of the key already, or a newer claim:
    /// another process committed or claimed it. Nothing was committed.
    Refused {
        /// What the log holds, for the error.
        newer: String,
    },
}

/// The epoch log of a Parquet location's table format: where each epoch of
/// a checkpoint key (a pipeline, or in group mode a partition) is committed
/// atomically with its files and checkpoint, and where a claim fences
/// every earlier owner of the key. Implemented by weir's manifest chains
/// ([`manifests::Chains`]) and a Delta table ([`delta::DeltaTable`]); the
/// Parquet sink writes the files and commits through it.
#[async_trait::async_trait]
pub(crate) trait EpochLog: Send {
    /// The last committed checkpoint of `key` (its epoch included).
    async fn last(&mut self, key: &str) -> Result<Option<Checkpoint>, LogError>;

    /// Takes `key` for `owner`, in the log, so that a previous owner's
    /// next commit is refused.
    async fn claim(&mut self, key: &str, owner: &str) -> Result<Claim, LogError>;

    /// Commits epoch `checkpoint.epoch` of `key` with `files`, refused
    /// unless `holding` (when given) is still the key's newest claim and
    /// the epoch is not in the log yet.
    async fn commit(
        &mut self,
        key: &str,
        checkpoint: &Checkpoint,
        holding: Option<Holding<'_>>,
        files: EpochFiles,
    ) -> Result<Committed, LogError>;

    /// Group mode: `(partition, owner)` for every partition of `pipeline`.
    async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>, LogError>;
}

/// The folder of rewrite records, under the location.
const REWRITES: &str = "_weir/_compaction";

/// The committed-file list for readers that are not weir.
pub const COMMITTED_LIST: &str = "_weir/committed";

/// Rewrite records kept besides the newest.
const REWRITES_KEPT: usize = 10;

/// A rewrite record: the state of every compaction so far. Only the newest
/// one is read; each carries the whole state forward.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rewrites {
    /// Counts up from 1 with each record.
    pub version: u64,
    /// Compacted files that hold committed rows (relative paths).
    pub live: BTreeSet<String>,
    /// Replaced files not yet deleted, with when they were replaced
    /// (epoch milliseconds): no reader takes them any more.
    pub replaced: BTreeMap<String, i64>,
}

/// One committed file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommittedFile {
    /// Path relative to the location, e.g. `season=2023-24/part-….parquet`.
    pub name: String,
    /// Its partition folder (`""` or `<k>=<v>/…/`).
    pub folder: String,
    /// Bytes.
    pub size: u64,
}

/// The committed files of a location at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sorted by name.
    pub files: Vec<CommittedFile>,
    /// The newest rewrite record (version 0: no compaction yet).
    pub rewrites: Rewrites,
    /// Every `.parquet` file under the location that is not committed,
    /// with its last-modified time (ms): uncommitted epochs, orphans.
    pub uncommitted: Vec<(String, i64)>,
}

/// A chain's newest manifest, as far as committing files goes.
struct Head {
    epoch: u64,
    claims: Vec<u64>,
}

/// How often [`snapshot`] lists again when a compaction committed while it
/// listed.
const SNAPSHOT_ATTEMPTS: usize = 10;

impl Location {
    /// `path` relative to the prefix.
    pub(crate) fn relative(&self, path: &StorePath) -> String {
        let prefix = self.prefix.as_ref();
        let full = path.as_ref();
        let rest = full.strip_prefix(prefix).unwrap_or(full);
        rest.trim_start_matches('/').to_owned()
    }
}

/// The newest record of the rewrite log, with its path.
pub(crate) async fn newest_rewrites(location: &Location) -> Result<Rewrites, Error> {
    let mut newest: Option<(u64, StorePath)> = None;
    let mut listing = location.store.list(Some(&location.child(REWRITES)));
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| error(location, "list rewrite records", e))?
    {
        let name = meta.location.filename().unwrap_or_default();
        if let Some(version) = name
            .strip_prefix("rewrite-")
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u64>().ok())
            && newest.as_ref().is_none_or(|(v, _)| version > *v)
        {
            newest = Some((version, meta.location));
        }
    }
    let Some((_, path)) = newest else {
        return Ok(Rewrites::default());
    };
    let bytes = get(location, &path).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            location,
            format!("read {path}"),
            format!("{e}: the rewrite record is damaged; restore it from a backup, or move it away to fall back to the previous record"),
        )
    })
}

pub(crate) async fn get(location: &Location, path: &StorePath) -> Result<bytes::Bytes, Error> {
    let got = location
        .store
        .get(path)
        .await
        .map_err(|e| error(location, format!("read {path}"), e))?;
    got.bytes()
        .await
        .map_err(|e| error(location, format!("read {path}"), e))
}

/// The newest manifest of every chain under `_weir/`, by chain name.
async fn chain_heads(location: &Location) -> Result<BTreeMap<String, Head>, Error> {
    let weir = location.child("_weir");
    let chains = location
        .store
        .list_with_delimiter(Some(&weir))
        .await
        .map_err(|e| error(location, "list manifest chains", e))?;
    let mut heads = BTreeMap::new();
    for chain in chains.common_prefixes {
        let Some(name) = chain.filename().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('_') {
            continue;
        }
        let mut newest: Option<(u64, StorePath)> = None;
        let mut listing = location.store.list(Some(&chain));
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| error(location, format!("list manifests of {name}"), e))?
        {
            if let Some(epoch) = manifest_epoch(meta.location.filename().unwrap_or_default())
                && newest.as_ref().is_none_or(|(e, _)| epoch > *e)
            {
                newest = Some((epoch, meta.location));
            }
        }
        let Some((_, path)) = newest else { continue };
        let manifest: Manifest = serde_json::from_slice(&get(location, &path).await?)
            .map_err(|e| error(location, format!("read {path}"), e))?;
        heads.insert(
            name,
            Head {
                epoch: manifest.checkpoint.epoch,
                claims: manifest.claims,
            },
        );
    }
    Ok(heads)
}

/// Whether a part file of `epoch` (in group mode of partition `scope`) is
/// committed by the chains' heads; an error when several chains could own
/// it.
fn part_committed(
    heads: &BTreeMap<String, Head>,
    epoch: u64,
    scope: Option<&str>,
    name: &str,
) -> Result<bool, String> {
    let owners: Vec<(&String, &Head)> = heads
        .iter()
        .filter(|(chain, _)| match scope {
            Some(scope) => chain.contains('@') && scope_of(chain) == scope,
            None => !chain.contains('@'),
        })
        .collect();
    match owners.as_slice() {
        [] => Ok(false),
        [(_, head)] => Ok(epoch <= head.epoch && !head.claims.contains(&epoch)),
        several => Err(format!(
            "{name} could belong to the manifest chains {}: give each pipeline its own location",
            several
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The committed files of `location` now: reads the rewrite log and every
/// chain's newest manifest, lists, and lists again if a compaction
/// committed meanwhile.
pub async fn snapshot(location: &Location) -> Result<Snapshot, Error> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let rewrites = newest_rewrites(location).await?;
        let heads = chain_heads(location).await?;
        let mut files = Vec::new();
        let mut uncommitted = Vec::new();
        let mut listing = location.store.list(Some(&location.prefix));
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| error(location, "list files", e))?
        {
            let name = location.relative(&meta.location);
            let Some(filename) = meta.location.filename() else {
                continue;
            };
            if !filename.ends_with(".parquet")
                || name
                    .split('/')
                    .any(|part| part.starts_with('_') || part.starts_with('.'))
            {
                continue;
            }
            let committed = if let Some((epoch, scope)) = part_epoch(filename) {
                part_committed(&heads, epoch, scope, &name)
                    .map_err(|reason| error(location, "read committed files", reason))?
            } else if filename.starts_with(compact::PREFIX) {
                rewrites.live.contains(&name)
            } else {
                true
            };
            if committed && !rewrites.replaced.contains_key(&name) {
                let folder = name[..name.len() - filename.len()].to_owned();
                files.push(CommittedFile {
                    name,
                    folder,
                    size: meta.size,
                });
            } else if !committed {
                uncommitted.push((name, meta.last_modified.timestamp_millis()));
            }
        }
        if newest_rewrites(location).await?.version == rewrites.version {
            files.sort();
            return Ok(Snapshot {
                files,
                rewrites,
                uncommitted,
            });
        }
    }
    Err(error(
        location,
        "read committed files",
        format!("compactions committed {SNAPSHOT_ATTEMPTS} times while listing; try again"),
    ))
}

/// Writes `_weir/committed` from a snapshot taken now (one atomic put).
pub async fn write_committed_list(location: &Location) -> Result<Snapshot, Error> {
    let snapshot = snapshot(location).await?;
    let mut body = String::new();
    for file in &snapshot.files {
        body.push_str(&file.name);
        body.push('\n');
    }
    location
        .store
        .put(&location.child(COMMITTED_LIST), body.into_bytes().into())
        .await
        .map_err(|e| error(location, format!("write {COMMITTED_LIST}"), e))?;
    Ok(snapshot)
}

/// Deletes all but the newest rewrite records (best effort).
async fn prune_rewrites(location: &Location) {
    let Ok(mut records) = location
        .store
        .list(Some(&location.child(REWRITES)))
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await
    else {
        return;
    };
    records.sort();
    let excess = records.len().saturating_sub(REWRITES_KEPT + 1);
    for path in &records[..excess] {
        if let Err(e) = location.store.delete(path).await {
            tracing::debug!(%path, error = %e, "Could not delete an old rewrite record.");
        }
    }
}

/// The path of rewrite record `version`.
fn rewrite_path(location: &Location, version: u64) -> StorePath {
    location.child(&format!("{REWRITES}/rewrite-{version:020}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_file_is_committed_by_its_own_chain_up_to_its_newest_epoch_except_claimed_slots() {
        let head = |epoch, claims: &[u64]| Head {
            epoch,
            claims: claims.to_vec(),
        };
        let heads = BTreeMap::from([
            ("shots@shot_charts.0".to_owned(), head(7, &[3])),
            ("shots@shot_charts.1".to_owned(), head(2, &[])),
        ]);
        let check = |epoch, scope| part_committed(&heads, epoch, scope, "f");
        assert_eq!(check(7, Some("shot_charts.0")), Ok(true));
        assert_eq!(check(8, Some("shot_charts.0")), Ok(false));
        assert_eq!(check(3, Some("shot_charts.0")), Ok(false));
        assert_eq!(check(3, Some("shot_charts.1")), Ok(false));
        assert_eq!(check(1, Some("other.0")), Ok(false));
        // No unscoped chain: an unscoped part file is not committed.
        assert_eq!(check(1, None), Ok(false));
        let two = BTreeMap::from([
            ("a".to_owned(), head(1, &[])),
            ("b".to_owned(), head(1, &[])),
        ]);
        assert!(
            part_committed(&two, 1, None, "f")
                .unwrap_err()
                .contains("a, b")
        );
    }
}
