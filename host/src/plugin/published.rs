//! Published plugin locations: a plugin's `path` may be an object-store URL
//! (`s3://bucket/weir/plugins/taxi-enrich.wasm`, `file:///srv/plugins/…`)
//! that every process of a fleet reads, instead of a file on each machine.
//!
//! `weir plugin deploy` publishes a version there; processes poll it (see
//! `swap.rs`). Beside the live object, the location keeps every version
//! it has published and a history of publications, so a version can be
//! named by its digest and re-published (`weir plugin rollback`):
//!
//! ```text
//! taxi-enrich.wasm                              the live version: what processes run
//! taxi-enrich.wasm.weir/versions/<sha256>.wasm  every version published, by content digest
//! taxi-enrich.wasm.weir/history/<seq>.json      one entry per publication, in order
//! taxi-enrich.wasm.weir/decisions/<sha256>.json the fleet's rejection of a version
//! ```
//!
//! **One decision per version, for the fleet.** A process that refuses a
//! version, rolls it back on probation or rejects it as a canary records
//! that here, keyed by its digest; the first record stands. Every process
//! runs the *current* version: the live object unless the fleet rejected
//! it, else the newest published version it did not reject. So a version
//! rolled back on one process is rolled back on all of them at their next
//! poll, a process that starts later never runs it, and it is not tried
//! again until different bytes are published.
//!
//! A publication writes the version's bytes, then its history entry (a
//! conditional put: two deploys racing take consecutive numbers, neither
//! is lost), then the live object, in one put: S3 replaces an object
//! atomically and object_store's local store writes aside and renames, so
//! a process never reads half a component. A publication interrupted
//! before the last put leaves a history entry whose digest is not live;
//! `history` says so and the next deploy or rollback goes on from it.

use crate::store::{self, Location};
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Why a published location could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not name an object in a store weir can open.
    #[error("plugin location {url}: {reason}")]
    Location {
        /// The location as written.
        url: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The store answered with an error (unreachable, denied, …).
    #[error(
        "plugin location {url}: {action} failed: {reason} (check that the store is reachable and the options' credentials)"
    )]
    Store {
        /// The location.
        url: String,
        /// What weir was doing.
        action: String,
        /// The store's message.
        reason: String,
    },
    /// Nothing is published at the location yet.
    #[error(
        "plugin location {url}: nothing is published there (publish a version with `weir plugin deploy FILE --to {url}`)"
    )]
    Empty {
        /// The location.
        url: String,
    },
    /// A history entry is not what weir writes.
    #[error("plugin location {url}: history entry {entry} is damaged: {reason}")]
    History {
        /// The location.
        url: String,
        /// The entry's object.
        entry: String,
        /// The parser's message.
        reason: String,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a publication was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `weir plugin deploy`: new bytes.
    Deploy,
    /// `weir plugin rollback`: an earlier version published again.
    Rollback,
}

impl Action {
    /// `deploy` or `rollback`, as `history` shows it.
    pub fn label(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Rollback => "rollback",
        }
    }
}

/// One publication, as `history` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Entry {
    /// Its number: publications are numbered from 1, in order.
    pub seq: u64,
    /// SHA-256 of the component's bytes.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The name the plugin gives itself (`describe`).
    pub name: String,
    /// The version the plugin gives itself (`describe`).
    pub version: String,
    /// The version of its state snapshots (`describe`).
    pub state_version: u32,
    /// Deploy or rollback.
    pub action: Action,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who: `user@host` of the process that published.
    pub by: String,
}

/// A version's identity: what `describe` said and its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    /// SHA-256 of the bytes.
    pub digest: String,
    /// `describe().name`.
    pub name: String,
    /// `describe().version`.
    pub version: String,
    /// `describe().state-version`.
    pub state_version: u32,
}

/// The fleet's decision on a version: rejected, by whom and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Decision {
    /// SHA-256 of the version.
    pub digest: String,
    /// What happened (`rolled_back`, `canary_rejected`, `compile_error`, …).
    pub outcome: String,
    /// Why, in words.
    pub reason: String,
    /// The deciding process: `user@host pid N`.
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl Decision {
    /// A rejection decided by this process now.
    pub fn rejected(digest: &str, outcome: &str, reason: &str) -> Decision {
        Decision {
            digest: digest.to_owned(),
            outcome: outcome.to_owned(),
            reason: reason.to_owned(),
            by: format!("{} pid {}", who(), std::process::id()),
            at_ms: now_ms(),
        }
    }
}

/// What a process of the fleet runs: the live version, unless the fleet
/// rejected it.
#[derive(Debug)]
pub struct Current {
    /// SHA-256 of `bytes`.
    pub digest: String,
    /// The component.
    pub bytes: Vec<u8>,
    /// The fleet's rejection of the live version, when `bytes` are an
    /// earlier version because of it.
    pub live_rejected: Option<Decision>,
}

/// How the live object and the decisions looked when last read: a change
/// of this means another version may be current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(String);

/// A published plugin location.
#[derive(Debug, Clone)]
pub struct Published {
    url: String,
    folder: Location,
    file: String,
}

/// Whether a configured plugin `path` names an object-store location
/// rather than a local file.
pub fn is_url(path: &str) -> bool {
    ["s3://", "s3a://", "file://", "memory://"]
        .iter()
        .any(|scheme| path.starts_with(scheme))
}

impl Published {
    /// Opens the location `url` (its folder is opened like a sink's
    /// location, with the same `options`).
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Published> {
        let fail = |reason: String| Error::Location {
            url: url.to_owned(),
            reason,
        };
        let (folder, file) = url
            .rsplit_once('/')
            .filter(|(folder, file)| !file.is_empty() && !folder.ends_with('/'))
            .ok_or_else(|| {
                fail("name the component object, e.g. s3://bucket/plugins/taxi-enrich.wasm".into())
            })?;
        let folder = store::open(folder, options, Path::new("/")).map_err(|e| fail(e.reason))?;
        Ok(Published {
            url: url.to_owned(),
            folder,
            file: file.to_owned(),
        })
    }

    /// The location as written.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn live(&self) -> StorePath {
        self.folder.child(&self.file)
    }

    fn meta(&self, rest: &str) -> StorePath {
        self.folder.child(&format!("{}.weir/{rest}", self.file))
    }

    fn store_error(&self, action: &str) -> impl FnOnce(object_store::Error) -> Error + '_ {
        let action = action.to_owned();
        move |e| Error::Store {
            url: self.url.clone(),
            action,
            reason: e.to_string(),
        }
    }

    /// How the live object and the fleet's decisions look now (one `HEAD`,
    /// one `LIST`); `None` when nothing is published.
    pub async fn stamp(&self) -> Result<Option<Stamp>> {
        let meta = match self.folder.store.head(&self.live()).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error("reading the live version's metadata")(e)),
        };
        let decided = self.decided().await?;
        Ok(Some(Stamp(format!(
            "{}|{}|{}|{}",
            meta.e_tag.unwrap_or_default(),
            meta.last_modified.timestamp_micros(),
            meta.size,
            decided
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(",")
        ))))
    }

    /// The objects of the decisions, sorted.
    async fn decided(&self) -> Result<Vec<StorePath>> {
        use futures::TryStreamExt;
        let mut listed: Vec<StorePath> = self
            .folder
            .store
            .list(Some(&self.meta("decisions")))
            .map_ok(|o| o.location)
            .try_collect()
            .await
            .map_err(self.store_error("listing the fleet's decisions"))?;
        listed.retain(|p| p.as_ref().ends_with(".json"));
        listed.sort();
        Ok(listed)
    }

    /// The fleet's decisions, by digest.
    pub async fn decisions(&self) -> Result<BTreeMap<String, Decision>> {
        let mut decisions = BTreeMap::new();
        for path in self.decided().await? {
            let bytes = self
                .folder
                .store
                .get(&path)
                .await
                .map_err(self.store_error("reading a decision"))?
                .bytes()
                .await
                .map_err(self.store_error("reading a decision"))?;
            let decision: Decision =
                serde_json::from_slice(&bytes).map_err(|e| Error::History {
                    url: self.url.clone(),
                    entry: path.to_string(),
                    reason: e.to_string(),
                })?;
            decisions.insert(decision.digest.clone(), decision);
        }
        Ok(decisions)
    }

    /// Records the fleet's rejection of a version; a version already
    /// decided keeps its first decision (returned).
    pub async fn reject(&self, decision: &Decision) -> Result<Option<Decision>> {
        let path = self.meta(&format!("decisions/{}.json", decision.digest));
        let body = serde_json::to_vec_pretty(decision).expect("a decision serialises");
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.folder.store.put_opts(&path, body.into(), create).await {
            Ok(_) => Ok(None),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Ok(self.decisions().await?.remove(&decision.digest))
            }
            Err(e) => Err(self.store_error("recording the fleet's decision")(e)),
        }
    }

    /// The version every process of the fleet runs: the live one, unless
    /// the fleet rejected it; then the newest published version it did
    /// not reject.
    pub async fn current(&self) -> Result<Current> {
        let bytes = self.fetch().await?;
        let digest = super::cache::ComponentCache::content_hash(&bytes);
        let decisions = self.decisions().await?;
        let Some(rejected) = decisions.get(&digest) else {
            return Ok(Current {
                digest,
                bytes,
                live_rejected: None,
            });
        };
        let history = self.history().await?;
        let Some(good) = fleet_runs(&history, &decisions) else {
            return Err(Error::Location {
                url: self.url.clone(),
                reason: format!(
                    "the fleet rejected the live version ({}: {}) and every version published before it; deploy a fixed version with `weir plugin deploy FILE --to {}`",
                    rejected.outcome, rejected.reason, self.url
                ),
            });
        };
        Ok(Current {
            digest: good.digest.clone(),
            bytes: self.version(&good.digest).await?,
            live_rejected: Some(rejected.clone()),
        })
    }

    /// The live version's bytes and how the object looked when read.
    pub async fn fetch(&self) -> Result<Vec<u8>> {
        let got = match self.folder.store.get(&self.live()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Empty {
                    url: self.url.clone(),
                });
            }
            Err(e) => return Err(self.store_error("reading the live version")(e)),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(self.store_error("reading the live version"))?;
        Ok(bytes.to_vec())
    }

    /// The bytes of a version published earlier, by digest.
    pub async fn version(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.meta(&format!("versions/{digest}.wasm"));
        match self.folder.store.get(&path).await {
            Ok(got) => Ok(got
                .bytes()
                .await
                .map_err(self.store_error("reading a published version"))?
                .to_vec()),
            Err(object_store::Error::NotFound { .. }) => Err(Error::Location {
                url: self.url.clone(),
                reason: format!(
                    "version {digest} was never published here (`weir plugin history {}` lists the versions)",
                    self.url
                ),
            }),
            Err(e) => Err(self.store_error("reading a published version")(e)),
        }
    }

    /// Every publication, oldest first.
    pub async fn history(&self) -> Result<Vec<Entry>> {
        use futures::TryStreamExt;
        let prefix = self.meta("history");
        let mut listed: Vec<_> = self
            .folder
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(self.store_error("listing the history"))?;
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        let mut entries = Vec::with_capacity(listed.len());
        for object in listed {
            if !object.location.as_ref().ends_with(".json") {
                continue;
            }
            let bytes = self
                .folder
                .store
                .get(&object.location)
                .await
                .map_err(self.store_error("reading the history"))?
                .bytes()
                .await
                .map_err(self.store_error("reading the history"))?;
            let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| Error::History {
                url: self.url.clone(),
                entry: object.location.to_string(),
                reason: e.to_string(),
            })?;
            entries.push(entry);
        }
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    /// Publishes `bytes` (already validated) as the live version: the
    /// version's object, its history entry, then the live object.
    pub async fn publish(&self, bytes: &[u8], info: &VersionInfo, action: Action) -> Result<Entry> {
        let version = self.meta(&format!("versions/{}.wasm", info.digest));
        self.folder
            .store
            .put(&version, bytes.to_vec().into())
            .await
            .map_err(self.store_error("writing the version"))?;
        let mut seq = self.history().await?.last().map_or(0, |e| e.seq) + 1;
        let entry = loop {
            let entry = Entry {
                seq,
                digest: info.digest.clone(),
                size: bytes.len() as u64,
                name: info.name.clone(),
                version: info.version.clone(),
                state_version: info.state_version,
                action,
                at_ms: now_ms(),
                by: who(),
            };
            let body = serde_json::to_vec_pretty(&entry).expect("an entry serialises");
            let create = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            let path = self.meta(&format!("history/{seq:010}.json"));
            match self.folder.store.put_opts(&path, body.into(), create).await {
                Ok(_) => break entry,
                // Another publication took this number: take the next.
                Err(object_store::Error::AlreadyExists { .. }) => seq += 1,
                Err(e) => return Err(self.store_error("writing the history")(e)),
            }
        };
        self.folder
            .store
            .put(&self.live(), bytes.to_vec().into())
            .await
            .map_err(self.store_error("writing the live version"))?;
        Ok(entry)
    }

    /// The digest of the live version, read from its bytes; `None` when
    /// nothing is published.
    pub async fn live_digest(&self) -> Result<Option<String>> {
        match self.fetch().await {
            Ok(bytes) => Ok(Some(super::cache::ComponentCache::content_hash(&bytes))),
            Err(Error::Empty { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The version the fleet runs when it rejected the live one: the newest
/// publication it did not reject.
pub fn fleet_runs<'a>(
    history: &'a [Entry],
    decisions: &BTreeMap<String, Decision>,
) -> Option<&'a Entry> {
    history
        .iter()
        .rev()
        .find(|e| !decisions.contains_key(&e.digest))
}

/// The version a rollback publishes: the newest publication before the
/// live one whose bytes differ from it (and are not `refused`).
pub fn previous_good<'a>(
    history: &'a [Entry],
    live: &str,
    refused: &dyn Fn(&str) -> bool,
) -> Option<&'a Entry> {
    // The newest publication of the live bytes; rollback goes to before it.
    let from = history.iter().rposition(|e| e.digest == live)?;
    history[..from]
        .iter()
        .rev()
        .find(|e| e.digest != live && !refused(&e.digest))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `user@host`, for history entries.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// Runs `work` (store I/O) to completion from synchronous code, whether or
/// not a tokio runtime is running on this thread: on a thread of its own
/// with a runtime of its own, as plugin loading is rare and synchronous.
pub fn block_on<T: Send>(work: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for plugin I/O")
                    .block_on(work)
            })
            .join()
            .expect("plugin I/O thread panicked")
    })
}

/// How often processes look for a new published version by default.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, digest: &str) -> Entry {
        Entry {
            seq,
            digest: digest.into(),
            size: 1,
            name: "p".into(),
            version: seq.to_string(),
            state_version: 1,
            action: Action::Deploy,
            at_ms: 0,
            by: "t".into(),
        }
    }

    #[test]
    fn rollback_goes_to_the_newest_other_version_before_the_live_one_skipping_refused_ones() {
        let history = [entry(1, "a"), entry(2, "b"), entry(3, "c"), entry(4, "c")];
        let none = |_: &str| false;
        assert_eq!(previous_good(&history, "c", &none).unwrap().digest, "b");
        let b_refused = |d: &str| d == "b";
        assert_eq!(
            previous_good(&history, "c", &b_refused).unwrap().digest,
            "a"
        );
        assert!(previous_good(&history, "a", &none).is_none());
        assert!(previous_good(&history, "zzz", &none).is_none());
    }

    #[test]
    fn only_object_store_schemes_are_urls() {
        assert!(is_url("s3://b/p/x.wasm") && is_url("file:///srv/x.wasm"));
        assert!(!is_url("plugins/dist/x.wasm") && !is_url("/abs/x.wasm"));
    }

    #[test]
    fn a_location_must_name_an_object() {
        let err = Published::open("memory://t/", &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string().contains("name the component object"),
            "{err}"
        );
    }

    #[test]
    fn publications_are_numbered_in_order_and_the_live_object_is_the_last() {
        let p =
            Published::open("memory://published-test/plugins/x.wasm", &BTreeMap::new()).unwrap();
        block_on(async {
            assert!(p.stamp().await.unwrap().is_none());
            assert!(matches!(p.fetch().await, Err(Error::Empty { .. })));
            let info = |d: &str| VersionInfo {
                digest: d.into(),
                name: "x".into(),
                version: "1".into(),
                state_version: 1,
            };
            p.publish(b"one", &info("d1"), Action::Deploy)
                .await
                .unwrap();
            let first = p.stamp().await.unwrap();
            p.publish(b"two", &info("d2"), Action::Deploy)
                .await
                .unwrap();
            assert_ne!(p.stamp().await.unwrap(), first);
            let history = p.history().await.unwrap();
            assert_eq!(
                history
                    .iter()
                    .map(|e| (e.seq, e.digest.as_str()))
                    .collect::<Vec<_>>(),
                [(1, "d1"), (2, "d2")]
            );
            assert_eq!(p.fetch().await.unwrap(), b"two");
            assert_eq!(p.version("d1").await.unwrap(), b"one");
        });
    }
}
