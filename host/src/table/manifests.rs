//! weir's own table format (`table = "weir"`): one manifest chain per
//! checkpoint key under `_weir/<key>/`, each manifest
//! `epoch-<epoch, 20 digits>.json` a committed epoch (its checkpoint and
//! the part files it added), written with a conditional put, so a slot is
//! taken once and a second writer of the same epoch is refused. In group
//! mode a manifest also names its owner and every slot claimed in the chain
//! (claims commit no files). [`super::snapshot`] reads the chains' newest
//! manifests to decide which part files count.
//!
//! This is the store-level protocol only: the Parquet sink
//! ([`crate::sink::parquet`]) decides what to commit and when.

use super::{Claim, Committed, EpochFiles, EpochLog, Holding, LogError};
use crate::checkpoint::Checkpoint;
use crate::store::Location;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions};

/// Manifests kept besides the newest (older ones are deleted).
const KEPT: usize = 10;

/// A committed epoch: its checkpoint and the files it added. In group
/// mode also who wrote it, and every slot claimed so far in this chain.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Manifest {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) claims: Vec<u64>,
}

/// Why a manifest chain could not be read or written.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The store failed (transient or not, as the store's error says).
    Store {
        action: String,
        error: object_store::Error,
    },
    /// A manifest is damaged.
    Damaged { action: String, reason: String },
}

/// What a conditional put of a manifest found.
pub(crate) enum Put {
    Written,
    /// The slot exists already (another process wrote it).
    Taken(StorePath),
}

/// The epoch number of an exactly-once part file name, and in group mode
/// its partition (`part-<epoch>-<seq>[-<topic>.<partition>].parquet`).
pub(crate) fn part_epoch(name: &str) -> Option<(u64, Option<&str>)> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (digits, rest) = rest.split_at_checked(10)?;
    let rest = rest.strip_prefix('-')?;
    let (seq, scope) = match rest.split_once('-') {
        Some((seq, scope)) => (seq, Some(scope)),
        None => (rest, None),
    };
    let numeric = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    (numeric(digits) && numeric(seq) && scope.is_none_or(|s| !s.is_empty()))
        .then(|| Some((digits.parse().ok()?, scope)))?
}

/// The partition part of a group-mode checkpoint key, as it appears in
/// part file names: `taxi@trips.3` → `trips.3`.
pub(crate) fn scope_of(key: &str) -> String {
    let partition = key.rsplit_once('@').map_or(key, |(_, p)| p);
    partition
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The epoch of a manifest file name.
pub(crate) fn manifest_epoch(name: &str) -> Option<u64> {
    name.strip_prefix("epoch-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// `_weir/<key>/`: the chain of `key`, and where its lease lives.
pub(crate) fn folder(location: &Location, key: &str) -> StorePath {
    location.child(&format!("_weir/{key}"))
}

/// The manifests of `key`'s chain, oldest first.
async fn names(location: &Location, key: &str) -> Result<Vec<(u64, StorePath)>, Failure> {
    let mut manifests: Vec<(u64, StorePath)> = location
        .store
        .list(Some(&folder(location, key)))
        .try_filter_map(|meta| async move {
            Ok(manifest_epoch(meta.location.filename().unwrap_or_default())
                .map(|epoch| (epoch, meta.location)))
        })
        .try_collect()
        .await
        .map_err(|error| Failure::Store {
            action: "list manifests".into(),
            error,
        })?;
    manifests.sort();
    Ok(manifests)
}

/// The newest manifest of `key`'s chain.
pub(crate) async fn newest(location: &Location, key: &str) -> Result<Option<Manifest>, Failure> {
    let manifests = names(location, key).await?;
    let Some((_, newest)) = manifests.last() else {
        return Ok(None);
    };
    let action = format!("read {newest}");
    let read = async { location.store.get(newest).await?.bytes().await };
    let bytes = read.await.map_err(|error| Failure::Store {
        action: action.clone(),
        error,
    })?;
    let manifest = serde_json::from_slice(&bytes).map_err(|e| Failure::Damaged {
        action,
        reason: format!(
            "{e} (move the manifest away only if you know its epoch's files are complete)"
        ),
    })?;
    Ok(Some(manifest))
}

/// Writes `manifest` into its slot of `key`'s chain, only if that slot is
/// free (a conditional put).
pub(crate) async fn put(
    location: &Location,
    key: &str,
    manifest: &Manifest,
) -> Result<Put, Failure> {
    let path = folder(location, key).join(format!("epoch-{:020}.json", manifest.checkpoint.epoch));
    let body = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match location.store.put_opts(&path, body.into(), create).await {
        Ok(_) => Ok(Put::Written),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::Taken(path)),
        Err(error) => Err(Failure::Store {
            action: format!("write {path}"),
            error,
        }),
    }
}

/// Deletes all but the newest manifests of `key` (best effort: a leftover
/// is harmless, only the newest is read).
pub(crate) async fn prune(location: &Location, key: &str) {
    let Ok(manifests) = names(location, key).await else {
        return;
    };
    let excess = manifests.len().saturating_sub(KEPT);
    for (_, path) in &manifests[..excess] {
        if let Err(e) = location.store.delete(path).await {
            tracing::debug!(%path, error = %e, "Could not delete an old manifest.");
        }
    }
}

/// Group mode: `(partition, owner)` for every partition chain of
/// `pipeline`, as its newest manifest names the process that wrote it.
pub(crate) async fn owners(
    location: &Location,
    pipeline: &str,
) -> Result<Vec<(String, String)>, Failure> {
    let prefix = format!("{pipeline}@");
    let chains = location
        .store
        .list_with_delimiter(Some(&location.child("_weir")))
        .await
        .map_err(|error| Failure::Store {
            action: "list manifest chains".into(),
            error,
        })?;
    let mut owners = Vec::new();
    for chain in chains.common_prefixes {
        let Some(partition) = chain.filename().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let partition = partition.to_owned();
        if let Some(owner) = newest(location, &format!("{prefix}{partition}"))
            .await?
            .and_then(|m| m.owner)
        {
            owners.push((partition, owner));
        }
    }
    owners.sort();
    Ok(owners)
}

/// How often a claim reads the manifest chain again when its slot was
/// taken before it gives up.
const CLAIM_ATTEMPTS: usize = 10;

/// The manifest chains of a location, as an [`EpochLog`].
pub(crate) struct Chains {
    pub(crate) location: Location,
}

#[async_trait::async_trait]
impl EpochLog for Chains {
    async fn last(&mut self, key: &str) -> Result<Option<Checkpoint>, LogError> {
        Ok(newest(&self.location, key).await?.map(|m| m.checkpoint))
    }

    /// Writes the chain's next slot as a manifest with no files that
    /// carries the last checkpoint forward and adds the slot to the
    /// chain's claims; reads the chain again when another process took the
    /// slot first.
    async fn claim(&mut self, key: &str, owner: &str) -> Result<Claim, LogError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let newest = newest(&self.location, key).await?;
            let slot = newest.as_ref().map_or(0, |m| m.checkpoint.epoch) + 1;
            let (checkpoint, mut claims) = match newest {
                Some(m) => (m.checkpoint, m.claims),
                // Nothing committed yet: the claim holds no position.
                None => (
                    Checkpoint {
                        pipeline: key.to_owned(),
                        ..Checkpoint::default()
                    },
                    Vec::new(),
                ),
            };
            claims.push(slot);
            let manifest = Manifest {
                checkpoint: Checkpoint {
                    epoch: slot,
                    ..checkpoint
                },
                files: Vec::new(),
                owner: Some(owner.to_owned()),
                claims: claims.clone(),
            };
            match put(&self.location, key, &manifest).await? {
                Put::Written => {
                    return Ok(Claim {
                        slot,
                        claims,
                        checkpoint: manifest.checkpoint,
                    });
                }
                // The previous owner committed, or another process claimed,
                // since the chain was read: read it again.
                Put::Taken(path) => {
                    tracing::debug!(location = %self.location.display, partition = key, %path, "The next manifest slot was taken while claiming; reading the chain again.");
                }
            }
        }
        Err(LogError::Failed {
            action: format!("claim {key}"),
            reason: format!(
                "another process wrote {key}'s next manifest {CLAIM_ATTEMPTS} times in a row: several processes own this partition at once; check that every process of the pipeline runs the same config and consumer group"
            ),
        })
    }

    /// One conditional put of the epoch's manifest: refused when its slot
    /// is taken (a newer claim, or another process's commit).
    async fn commit(
        &mut self,
        key: &str,
        checkpoint: &Checkpoint,
        holding: Option<Holding<'_>>,
        files: EpochFiles,
    ) -> Result<Committed, LogError> {
        let manifest = Manifest {
            checkpoint: checkpoint.clone(),
            files: files.paths,
            owner: holding.as_ref().map(|h| h.owner.to_owned()),
            claims: holding.map(|h| h.claims.to_vec()).unwrap_or_default(),
        };
        match put(&self.location, key, &manifest).await? {
            Put::Written => {
                prune(&self.location, key).await;
                Ok(Committed::Yes)
            }
            Put::Taken(path) => Ok(Committed::Refused {
                newer: format!("{path} exists"),
            }),
        }
    }

    async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>, LogError> {
        Ok(owners(&self.location, pipeline).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_file_names_give_their_epoch_and_in_group_mode_their_partition() {
        assert_eq!(
            part_epoch("part-0000000042-00003.parquet"),
            Some((42, None))
        );
        assert_eq!(
            part_epoch("part-0000000042-00003-group-logs.7.parquet"),
            Some((42, Some("group-logs.7")))
        );
        for other in [
            "part-1733241234567-00001.parquet",
            "part-0000000042-.parquet",
            "part-0000000042-00003-.parquet",
            "part-00000000x2-00003.parquet",
            "part-0000000042-00003.json",
        ] {
            assert_eq!(part_epoch(other), None, "{other}");
        }
        assert_eq!(scope_of("logs@group-logs.7"), "group-logs.7");
        assert_eq!(scope_of("p@we/ird topic.1"), "we_ird_topic.1");
        assert_eq!(manifest_epoch("epoch-00000000000000000042.json"), Some(42));
        assert_eq!(manifest_epoch("lease.json"), None);
    }
}
