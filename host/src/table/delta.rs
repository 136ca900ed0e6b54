//! A Parquet location as a Delta Lake table: the log (`_delta_log/`) says
//! which files hold committed rows, so every engine that reads Delta —
//! Spark, Trino, Athena, DuckDB's `delta_scan`, Polars, delta-rs — reads
//! exactly the rows weir committed, never an epoch in flight or a file a
//! killed process left behind.
//!
//! The protocol (log replay, commits, checkpoints) is the official Delta
//! kernel's (`delta_kernel`). What it leaves to a writer, weir does here:
//!
//! - **Exactly-once.** Each epoch is one commit: its `add` actions, a
//!   `txn { appId, version: epoch }` action (appId = the pipeline, or
//!   `pipeline@topic.partition` in group mode) and a domain metadata entry
//!   `weir.checkpoint.<appId>` holding what recovery needs (source
//!   positions, plugin state; a state too large for the log goes to an
//!   object under `_weir/state/` written before the commit and named by
//!   it). The kernel does not refuse a `txn` version that is not newer, so
//!   before every attempt weir reads the appId's version on the snapshot it
//!   commits against: an epoch already in the log is never committed again.
//! - **Races.** A commit is a put-if-absent of the next
//!   `_delta_log/<version>.json`. The loser of a race reads the log again,
//!   checks its `txn` again and retries (weir's epochs only append, so a
//!   retry never conflicts on data).
//! - **Fencing.** A process that takes over a pipeline or a partition first
//!   *claims* it: a commit of the next `txn` version with no files, its
//!   record naming the claim (owner and version). Every later commit names
//!   the claim it was made under and is refused unless the appId's newest
//!   record names the same one: a previous owner still running (paused,
//!   cut off) is fenced at its next commit, even when its epoch numbers ran
//!   ahead of the new owner's.
//! - **Checkpoints.** Every `checkpoint-every` commits (default 100) the
//!   committer writes `<version>.checkpoint.parquet` and
//!   `_last_checkpoint`, so readers and weir do not replay every commit.
//!
//! The kernel is synchronous (its default engine runs the I/O on the tokio
//! runtime); every call into it runs on a blocking thread.

use crate::checkpoint::Checkpoint;
use crate::store::Location;
use arrow_array::StructArray;
use arrow_schema::{Schema, SchemaRef};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::{TryFromArrow, TryFromKernel};
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::expressions::Scalar;
use delta_kernel::schema::{DataType as DeltaType, StructType};
use delta_kernel::snapshot::{Snapshot, SnapshotRef};
use delta_kernel::transaction::create_table::create_table;
use delta_kernel::transaction::data_layout::DataLayout;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation, WriteState};
use delta_kernel::{FileMeta, KernelError};
use delta_kernel_default_engine::executor::TaskExecutor;
use delta_kernel_default_engine::executor::tokio::{
    TokioBackgroundExecutor, TokioMultiThreadExecutor,
};
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::stats::FileStatsAccumulator;
use delta_kernel_default_engine::{DefaultEngine, DefaultEngineBuilder, build_add_file_metadata};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use url::Url;

/// What the commits name as their writer (`commitInfo.engineInfo`).
const ENGINE_INFO: &str = concat!("weir/", env!("CARGO_PKG_VERSION"));

/// The log folder, under the table root.
pub const LOG: &str = "_delta_log";

/// A checkpoint larger than this goes to an object of its own, named by the
/// commit, rather than into the log (every reader replays the log).
const INLINE_CHECKPOINT_BYTES: usize = 64 << 10;

/// How often a commit reads the log again after losing a race before it
/// gives up (each loss means another writer committed: progress).
const COMMIT_ATTEMPTS: usize = 100;

/// Reading or writing the table failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel or the store refused; retrying cannot help.
    #[error("Delta table {table}: {action}: {reason}")]
    Table {
        /// The table's location.
        table: String,
        /// What was being done.
        action: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The store did not answer or failed transiently: back off, retry.
    #[error("Delta table {table}: {action}: {reason} (will retry; check the store is reachable)")]
    Unavailable {
        /// The table's location.
        table: String,
        /// What was being done.
        action: String,
        /// The store's message.
        reason: String,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// What a commit of weir's holds besides its files: the checkpoint of its
/// epoch (inline, or the object it was written to) and who wrote it.
#[derive(Debug, Serialize, Deserialize)]
struct EpochRecord {
    epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// The claim this commit was made under (see [`claim_id`]): a commit
    /// under any other claim than the newest record's is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<Checkpoint>,
    /// The object holding the checkpoint, relative to the table root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint_object: Option<String>,
}

/// A finished data file of an epoch, to be added by its commit.
#[derive(Debug)]
pub struct DataFile {
    /// Its path in the store.
    pub path: StorePath,
    /// Its size in bytes.
    pub size: u64,
    /// The value of each partition column (in the table's order), as text;
    /// `None` is null.
    pub partition: Vec<Option<String>>,
    /// Its statistics (row count, min/max/null counts per column).
    pub stats: StructArray,
}

/// How a commit ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed as this table version.
    Committed(u64),
    /// The appId's `txn` version in the log is already this epoch or newer:
    /// another process committed or claimed it.
    Fenced {
        /// The appId's version in the log.
        newer: u64,
    },
}

/// What the table must look like for the sink: its columns (data and
/// partition columns) and which of them are partition columns.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Every column, as the table holds it (partition columns included).
    pub schema: SchemaRef,
    /// Partition columns, in folder order.
    pub partition_columns: Vec<String>,
}

/// Where the kernel's engine runs its I/O: on weir's own runtime when that
/// has worker threads, else (a current-thread runtime, as in a test or an
/// embedding program) on a runtime of its own in a background thread, since
/// a current-thread runtime cannot be blocked on from inside.
enum Executor {
    Shared(TokioMultiThreadExecutor),
    Own(TokioBackgroundExecutor),
}

impl Executor {
    fn on(handle: tokio::runtime::Handle) -> Self {
        match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => {
                Executor::Shared(TokioMultiThreadExecutor::new(handle))
            }
            _ => Executor::Own(TokioBackgroundExecutor::new()),
        }
    }
}

impl TaskExecutor for Executor {
    type Guard<'a> = tokio::runtime::EnterGuard<'a>;

    fn block_on<T>(&self, task: T) -> T::Output
    where
        T: std::future::Future + Send + 'static,
        T::Output: Send + 'static,
    {
        match self {
            Executor::Shared(e) => e.block_on(task),
            Executor::Own(e) => e.block_on(task),
        }
    }

    fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self {
            Executor::Shared(e) => e.spawn(task),
            Executor::Own(e) => e.spawn(task),
        }
    }

    fn spawn_blocking<T, R>(
        &self,
        task: T,
    ) -> futures::future::BoxFuture<'_, delta_kernel::KernelResult<R>>
    where
        T: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self {
            Executor::Shared(e) => e.spawn_blocking(task),
            Executor::Own(e) => e.spawn_blocking(task),
        }
    }

    fn enter(&self) -> Self::Guard<'_> {
        match self {
            Executor::Shared(e) => e.enter(),
            Executor::Own(e) => e.enter(),
        }
    }
}

/// An open Delta table.
pub struct DeltaTable {
    location: Location,
    root: Url,
    engine: Arc<DefaultEngine<Executor>>,
    /// The newest snapshot read, updated incrementally.
    snapshot: Option<SnapshotRef>,
    /// The table version of this process's last commit: when the log has
    /// not moved since, the appId's version is the one it wrote.
    own_version: Option<u64>,
    /// Set once the table exists.
    write_state: Option<Arc<WriteState>>,
    layout: Option<Layout>,
    checkpoint_every: u64,
}

impl DeltaTable {
    /// Opens `location` as a Delta table (created at the first commit if it
    /// has no log yet).
    pub fn open(location: &Location, checkpoint_every: u64) -> Result<Self> {
        let root = location.root.clone();
        // The kernel addresses objects by their URL's path: for a local
        // folder that is the absolute path, so it gets a store rooted at /.
        let store: Arc<dyn ObjectStore> = if root.scheme() == "file" {
            Arc::new(object_store::local::LocalFileSystem::new())
        } else {
            location.store.clone()
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|e| Error::Table {
            table: location.display.clone(),
            action: "open".into(),
            reason: format!("no tokio runtime: {e}"),
        })?;
        let engine = DefaultEngineBuilder::new(store)
            .with_task_executor(Arc::new(Executor::on(handle)))
            .build();
        Ok(DeltaTable {
            location: location.clone(),
            root,
            engine: Arc::new(engine),
            snapshot: None,
            own_version: None,
            write_state: None,
            layout: None,
            checkpoint_every: checkpoint_every.max(1),
        })
    }

    /// The table's location as configured.
    pub fn display(&self) -> &str {
        &self.location.display
    }

    fn fail(&self, action: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Table {
            table: self.location.display.clone(),
            action: action.into(),
            reason: e.to_string(),
        }
    }

    /// A kernel error: transient I/O is an outage, the rest is final.
    fn kernel(&self, action: impl Into<String>, e: KernelError) -> Error {
        let transient = match &e {
            KernelError::ObjectStore(e) => crate::store::is_transient(e),
            KernelError::IOError(_) => true,
            _ => false,
        };
        if transient {
            Error::Unavailable {
                table: self.location.display.clone(),
                action: action.into(),
                reason: e.to_string(),
            }
        } else {
            self.fail(action, e)
        }
    }

    /// Runs a kernel call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        action: &str,
        work: impl FnOnce(&DefaultEngine<Executor>) -> Result<T, KernelError> + Send + 'static,
    ) -> Result<T> {
        let engine = self.engine.clone();
        match tokio::task::spawn_blocking(move || work(&engine)).await {
            Ok(result) => result.map_err(|e| self.kernel(action, e)),
            Err(e) => Err(self.fail(action, format!("the kernel call panicked: {e}"))),
        }
    }

    /// Whether the location holds a Delta log.
    pub async fn exists(&self) -> Result<bool> {
        let log = self.location.child(LOG);
        let mut listing = self.location.store.list(Some(&log));
        match listing.try_next().await {
            Ok(first) => Ok(first.is_some()),
            Err(e) if crate::store::is_transient(&e) => Err(Error::Unavailable {
                table: self.location.display.clone(),
                action: format!("list {log}"),
                reason: e.to_string(),
            }),
            Err(e) => Err(self.fail(format!("list {log}"), e)),
        }
    }

    /// The newest snapshot of the table (read incrementally from the last
    /// one), or `None` when it has no log yet.
    async fn latest(&mut self) -> Result<Option<SnapshotRef>> {
        let previous = self.snapshot.clone();
        if previous.is_none() && !self.exists().await? {
            return Ok(None);
        }
        let root = self.root.clone();
        let snapshot = self
            .blocking("read the log", move |engine| match previous {
                Some(previous) => Snapshot::builder_from(previous).build(engine),
                None => Snapshot::builder_for(root.as_str()).build(engine),
            })
            .await
            .map_err(|e| self.corrupt_or(e))?;
        self.snapshot = Some(snapshot.clone());
        Ok(Some(snapshot))
    }

    /// A log the kernel cannot read is never rewritten: say what to do.
    fn corrupt_or(&self, e: Error) -> Error {
        match e {
            Error::Table {
                table,
                action,
                reason,
            } => Error::Table {
                table,
                action,
                reason: format!(
                    "{reason} (weir does not repair or overwrite a Delta log it cannot read: check {LOG}/ for a damaged or foreign entry, or write to a new location)"
                ),
            },
            other => other,
        }
    }

    /// Makes sure the table exists with `wanted`'s columns and partitions:
    /// creates it (version 0) when the location has no log, and otherwise
    /// refuses a table whose schema, partition columns or protocol differ
    /// from what the sink writes. Returns the layout the sink must write.
    pub async fn prepare(&mut self, wanted: &Layout) -> Result<Layout> {
        if let Some(layout) = &self.layout {
            return Ok(layout.clone());
        }
        let snapshot = match self.latest().await? {
            Some(snapshot) => snapshot,
            None => self.create(wanted).await?,
        };
        let layout = self.check(&snapshot, wanted)?;
        let write_state = self
            .blocking("prepare a write", move |engine| {
                snapshot
                    .update_table(UpdateTableOperation::StreamingUpdate, ENGINE_INFO, true)
                    .build(engine, Box::new(FileSystemCommitter::new()))?
                    .write_state()
            })
            .await
            .map_err(|e| self.unsupported(e))?;
        self.write_state = Some(write_state);
        self.layout = Some(layout.clone());
        Ok(layout)
    }

    /// The layout of an existing table, for a sink with no configured
    /// schema: `None` when the location has no log.
    pub async fn existing_layout(&mut self) -> Result<Option<Layout>> {
        let Some(snapshot) = self.latest().await? else {
            return Ok(None);
        };
        let schema = arrow_schema::Schema::try_from_kernel(snapshot.schema().as_ref())
            .map_err(|e| self.fail("read the table's schema", e))?;
        Ok(Some(Layout {
            schema: Arc::new(schema),
            partition_columns: snapshot
                .table_configuration()
                .logical_partition_columns()
                .to_vec(),
        }))
    }

    fn unsupported(&self, e: Error) -> Error {
        match e {
            Error::Table { table, reason, .. } => Error::Table {
                table,
                action: "check that weir can write the table".into(),
                reason: format!(
                    "{reason} (its protocol or table features are beyond what weir's Delta kernel {} writes: write to a new location, or to this one with a writer that supports them)",
                    "0.30.1"
                ),
            },
            other => other,
        }
    }

    async fn create(&mut self, wanted: &Layout) -> Result<SnapshotRef> {
        let schema = Arc::new(
            StructType::try_from_arrow(wanted.schema.as_ref())
                .map_err(|e| self.fail("convert the schema", e))?,
        );
        let root = self.root.clone();
        let partitions = wanted.partition_columns.clone();
        let id = commit_id();
        let marker = id.clone();
        let created = self
            .blocking("create the table", move |engine| {
                let (info, info_schema) = commit_info(&marker)?;
                let mut builder = create_table(root.as_str(), schema, ENGINE_INFO, true)
                    .with_table_properties([("delta.feature.domainMetadata", "supported")])
                    .with_commit_info(info, info_schema);
                if !partitions.is_empty() {
                    builder = builder.with_data_layout(DataLayout::partitioned(partitions));
                }
                // Another process may create it first: between our look
                // and the kernel's (already exists) or at the commit (lost
                // the race for version 0). Either way, use theirs.
                let txn = match builder.build(engine, Box::new(FileSystemCommitter::new())) {
                    Ok(txn) => txn,
                    Err(KernelError::TableAlreadyExistsAtPath(_)) => return Ok(false),
                    Err(e) => return Err(e),
                };
                Ok(matches!(txn.commit(engine)?, CommitResult::Committed(_)))
            })
            .await?;
        if created && self.is_ours(0, &id).await? {
            tracing::info!(table = %self.location.display, "Created the Delta table.");
        } else {
            tracing::info!(table = %self.location.display, "Another process created the Delta table first; using it.");
        }
        self.latest().await?.ok_or_else(|| {
            self.fail(
                "create the table",
                "the log is still empty after creating it",
            )
        })
    }

    /// Whether log entry `version` is the commit attempt `id`. A store whose
    /// conditional put is not atomic (s3s-fs 0.17 checks, then writes) can
    /// let a second writer overwrite an entry the first was told it
    /// created: reading it back turns that into a lost race, retried.
    async fn is_ours(&mut self, version: u64, id: &str) -> Result<bool> {
        let path = self.location.child(&format!("{LOG}/{version:020}.json"));
        let bytes = crate::table::get(&self.location, &path)
            .await
            .map_err(|e| Error::Unavailable {
                table: self.location.display.clone(),
                action: format!("read back {path}"),
                reason: e.reason,
            })?;
        let ours = bytes.windows(id.len()).any(|w| w == id.as_bytes());
        if !ours {
            tracing::warn!(table = %self.location.display, version, "Another writer overwrote this process's log entry (the store's conditional put is not atomic); committing again on the newer log.");
            self.snapshot = None;
            self.own_version = None;
        }
        Ok(ours)
    }

    /// After the kernel said `version` is committed: whether it is this
    /// attempt's (see [`DeltaTable::is_ours`]); if so, the newest snapshot
    /// is `after` and a checkpoint is written when due.
    async fn settle(&mut self, version: u64, id: &str, after: Option<SnapshotRef>) -> Result<bool> {
        if !self.is_ours(version, id).await? {
            return Ok(false);
        }
        if let Some(after) = after {
            self.checkpoint_if_due(version, &after).await;
            self.snapshot = Some(after);
        }
        Ok(true)
    }

    /// Every `checkpoint-every` versions, the committer of that version
    /// writes a Delta checkpoint (best effort: readers replay the JSON
    /// commits meanwhile).
    async fn checkpoint_if_due(&self, version: u64, after: &SnapshotRef) {
        if !version.is_multiple_of(self.checkpoint_every) {
            return;
        }
        let after = after.clone();
        let written = self
            .blocking("write a checkpoint", move |engine| {
                after.checkpoint(engine, None).map(|_| ())
            })
            .await;
        match written {
            Ok(()) => {
                tracing::debug!(table = %self.location.display, version, "Wrote a Delta checkpoint.")
            }
            Err(e) => {
                tracing::warn!(table = %self.location.display, version, error = %e, "Could not write the Delta checkpoint; readers replay the JSON commits meanwhile, the next one tries again.")
            }
        }
    }

    /// The table's layout, if it fits `wanted`; otherwise why not.
    fn check(&self, snapshot: &SnapshotRef, wanted: &Layout) -> Result<Layout> {
        let table = snapshot.schema();
        let partitions = snapshot
            .table_configuration()
            .logical_partition_columns()
            .to_vec();
        let mut differences = Vec::new();
        if partitions != wanted.partition_columns {
            differences.push(format!(
                "the table is partitioned by {partitions:?}, the sink by {:?}",
                wanted.partition_columns
            ));
        }
        for field in wanted.schema.fields() {
            let ours = DeltaType::try_from_arrow(field.data_type())
                .map_err(|e| self.fail("convert the schema", e))?;
            match table.field(field.name()) {
                None => differences.push(format!("column {:?} is not in the table", field.name())),
                Some(theirs) if theirs.data_type() != &ours => differences.push(format!(
                    "column {:?} is {} in the table, {} in the sink",
                    field.name(),
                    theirs.data_type(),
                    ours
                )),
                Some(theirs) if !theirs.is_nullable() && field.is_nullable() => {
                    differences.push(format!(
                        "column {:?} is NOT NULL in the table, nullable in the sink",
                        field.name()
                    ))
                }
                Some(_) => {}
            }
        }
        for theirs in table.fields() {
            if wanted.schema.field_with_name(theirs.name()).is_err() && !theirs.is_nullable() {
                differences.push(format!(
                    "the table's NOT NULL column {:?} is not in the sink's schema",
                    theirs.name()
                ));
            }
        }
        if !differences.is_empty() {
            return Err(self.fail(
                "check the table's schema",
                format!(
                    "the existing table does not fit the sink: {} (write to a new location, or make the sink's schema and partition-by match the table)",
                    differences.join("; ")
                ),
            ));
        }
        Ok(wanted.clone())
    }

    /// The statistics collector for a new data file.
    pub fn stats_collector(&self, data_schema: &Schema) -> Result<FileStatsAccumulator> {
        let write_state = self.write_state.as_ref().ok_or_else(|| {
            self.fail(
                "collect statistics",
                "the table is not prepared (a bug: prepare comes first)",
            )
        })?;
        let physical = StructType::try_from_arrow(data_schema)
            .map_err(|e| self.fail("convert the schema", e))?;
        Ok(FileStatsAccumulator::new(
            write_state.stats_columns(),
            &physical,
        ))
    }

    /// The last commit of `app_id`: its epoch and checkpoint.
    pub async fn recover(
        &mut self,
        app_id: &str,
    ) -> Result<Option<(u64, Checkpoint, Option<String>)>> {
        let Some(snapshot) = self.latest().await? else {
            return Ok(None);
        };
        self.last_commit(&snapshot, app_id).await
    }

    /// The last commit of `app_id` on `snapshot`: its epoch, checkpoint and
    /// owner.
    async fn last_commit(
        &self,
        snapshot: &SnapshotRef,
        app_id: &str,
    ) -> Result<Option<(u64, Checkpoint, Option<String>)>> {
        let Some(record) = self.record(snapshot, app_id).await? else {
            return Ok(None);
        };
        let checkpoint = match (record.checkpoint, &record.checkpoint_object) {
            (Some(checkpoint), _) => checkpoint,
            (None, Some(object)) => {
                let path = self.location.child(object);
                let bytes = crate::table::get(&self.location, &path)
                    .await
                    .map_err(|e| self.fail(format!("read {path}"), e))?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    self.fail(
                        format!("read {path}"),
                        format!("{e} (the checkpoint a commit names is damaged)"),
                    )
                })?
            }
            (None, None) => {
                return Err(self.fail(
                    format!("read {app_id}'s checkpoint"),
                    "its domain metadata names no checkpoint",
                ));
            }
        };
        Ok(Some((record.epoch, checkpoint, record.owner)))
    }

    async fn record(&self, snapshot: &SnapshotRef, app_id: &str) -> Result<Option<EpochRecord>> {
        let (snapshot, domain) = (snapshot.clone(), checkpoint_domain(app_id));
        let config = self
            .blocking("read a checkpoint", move |engine| {
                snapshot.get_domain_metadata(&domain, engine)
            })
            .await?;
        config
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    self.fail(
                        format!("read {app_id}'s checkpoint"),
                        format!("{e} (its domain metadata in the log is damaged)"),
                    )
                })
            })
            .transpose()
    }

    /// Group mode: who owns each partition of `pipeline` (from the claims).
    pub async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>> {
        let Some(snapshot) = self.latest().await? else {
            return Ok(Vec::new());
        };
        let owners = self.owner_map(&snapshot, pipeline).await?;
        Ok(owners.into_iter().collect())
    }

    async fn owner_map(
        &self,
        snapshot: &SnapshotRef,
        pipeline: &str,
    ) -> Result<BTreeMap<String, String>> {
        let (snapshot, domain) = (snapshot.clone(), owners_domain(pipeline));
        let config = self
            .blocking("read the partition owners", move |engine| {
                snapshot.get_domain_metadata(&domain, engine)
            })
            .await?;
        Ok(config
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }

    /// Commits epoch `checkpoint.epoch` of `app_id`: `files`, the `txn`
    /// and the checkpoint, in one Delta commit, unless the log holds that
    /// epoch of `app_id` (or a newer one) already, or the appId's newest
    /// record was made under another claim. `owner`: who commits and the
    /// slot of its claim (see [`claim_id`]), for fencing and for
    /// the owners board of pipeline `board` when set (group mode, a first
    /// commit that is also the claim).
    pub async fn commit(
        &mut self,
        app_id: &str,
        checkpoint: &Checkpoint,
        owner: Option<(&str, u64)>,
        files: Vec<DataFile>,
        board: Option<&str>,
    ) -> Result<Outcome> {
        self.commit_record(app_id, checkpoint, owner, files, board, false)
            .await
    }

    /// Claims `app_id` for `owner`: commits the next `txn` version with no
    /// files, carrying the last checkpoint forward, so that a previous owner
    /// still running is fenced at its next commit. `pipeline` names the
    /// owners board to update (group mode). Returns the slot claimed and the
    /// last committed checkpoint.
    pub async fn claim(
        &mut self,
        app_id: &str,
        owner: &str,
        pipeline: Option<&str>,
    ) -> Result<(u64, Option<Checkpoint>)> {
        for _ in 0..COMMIT_ATTEMPTS {
            // The checkpoint carried forward and the version claimed come
            // from one snapshot; the commit is refused if the appId's
            // version moved since (the previous owner committed once more).
            let snapshot = self.latest().await?;
            let last = match &snapshot {
                Some(s) => self.last_commit(s, app_id).await?,
                None => None,
            };
            let current = last.as_ref().map_or(0, |(epoch, _, _)| *epoch);
            let slot = current + 1;
            let carried = match &last {
                Some((_, checkpoint, _)) => Checkpoint {
                    epoch: slot,
                    ..checkpoint.clone()
                },
                None => Checkpoint {
                    pipeline: app_id.to_owned(),
                    epoch: slot,
                    ..Checkpoint::default()
                },
            };
            match self
                .commit_record(
                    app_id,
                    &carried,
                    Some((owner, slot)),
                    Vec::new(),
                    pipeline,
                    true,
                )
                .await?
            {
                Outcome::Committed(version) => {
                    tracing::debug!(table = %self.location.display, app_id, slot, version, "Claimed.");
                    return Ok((slot, last.map(|(_, c, _)| c)));
                }
                Outcome::Fenced { .. } => continue,
            }
        }
        Err(self.fail(
            format!("claim {app_id}"),
            format!(
                "another process claimed {app_id} {COMMIT_ATTEMPTS} times in a row: check that every process of the pipeline runs the same config and consumer group"
            ),
        ))
    }

    /// Without exactly-once: commits `files` as a blind append.
    pub async fn append(&mut self, files: Vec<DataFile>) -> Result<u64> {
        match self.commit_files(files, None).await? {
            Outcome::Committed(version) => Ok(version),
            Outcome::Fenced { .. } => unreachable!("an append carries no txn"),
        }
    }

    async fn commit_record(
        &mut self,
        app_id: &str,
        checkpoint: &Checkpoint,
        owner: Option<(&str, u64)>,
        files: Vec<DataFile>,
        board: Option<&str>,
        claim: bool,
    ) -> Result<Outcome> {
        let record = self.epoch_record(app_id, checkpoint, owner).await?;
        let epoch = EpochPart {
            app_id: app_id.to_owned(),
            claim,
            epoch: checkpoint.epoch,
            claim_id: record.claim.clone(),
            deferred: owner.is_some_and(|(_, slot)| slot == 0),
            record: serde_json::to_string(&record).expect("an epoch record serialises"),
            owner: owner.map(|(owner, _)| owner.to_owned()),
            board: board.map(str::to_owned),
        };
        self.commit_files(files, Some(epoch)).await
    }

    /// One Delta commit of `files` and, for an epoch, its `txn` and record:
    /// read the log, check the epoch is not in it yet, commit; on a lost
    /// race, again.
    async fn commit_files(
        &mut self,
        files: Vec<DataFile>,
        epoch: Option<EpochPart>,
    ) -> Result<Outcome> {
        let adds = self.add_rows(&files)?;
        let what = match &epoch {
            Some(e) => format!("commit epoch {} of {}", e.epoch, e.app_id),
            None => format!("append {} files", files.len()),
        };
        for _ in 0..COMMIT_ATTEMPTS {
            let snapshot = self.latest().await?.ok_or_else(|| {
                self.fail(
                    what.as_str(),
                    "the table has no log (a bug: prepare creates it first)",
                )
            })?;
            let mut domains = Vec::new();
            if let Some(e) = &epoch {
                // When the log has not moved since this process's own
                // commit, the appId's version is the one it wrote.
                if e.claim || self.own_version != Some(snapshot.version()) {
                    // The record and the `txn` are written by one commit:
                    // the record's epoch is the appId's `txn` version.
                    let last = self.record(&snapshot, &e.app_id).await?;
                    let current = last.as_ref().map_or(0, |r| r.epoch);
                    let moved = if e.claim {
                        // A claim carries the checkpoint of version
                        // epoch - 1: any other means it read a stale one.
                        current + 1 != e.epoch
                    } else {
                        // Never an epoch twice, and only under the newest
                        // claim: a previous owner whose epochs ran ahead of
                        // the new owner's is refused all the same.
                        let claimed = match (&e.claim_id, &last) {
                            (None, _) => true,
                            (Some(ours), Some(last)) => last.claim.as_ref() == Some(ours),
                            (Some(_), None) => e.deferred,
                        };
                        current >= e.epoch || !claimed
                    };
                    if moved {
                        return Ok(Outcome::Fenced { newer: current });
                    }
                }
                domains.push((checkpoint_domain(&e.app_id), e.record.clone()));
                if let (Some(pipeline), Some(owner)) = (&e.board, &e.owner) {
                    let mut map = self.owner_map(&snapshot, pipeline).await?;
                    let partition = e.app_id.rsplit_once('@').map_or(&*e.app_id, |(_, p)| p);
                    map.insert(partition.to_owned(), owner.clone());
                    domains.push((
                        owners_domain(pipeline),
                        serde_json::to_string(&map).expect("owners serialise"),
                    ));
                }
            }
            let txn_id = epoch.as_ref().map(|e| (e.app_id.clone(), e.epoch as i64));
            let adds = adds.clone();
            let id = commit_id();
            let marker = id.clone();
            let attempt = self
                .blocking(&what, move |engine| {
                    let (info, info_schema) = commit_info(&marker)?;
                    let mut builder = snapshot
                        .update_table(UpdateTableOperation::StreamingUpdate, ENGINE_INFO, true)
                        .with_commit_info(info, info_schema);
                    match txn_id {
                        Some((app, version)) => builder = builder.with_transaction_id(app, version),
                        None => builder = builder.with_blind_append(),
                    }
                    for (domain, configuration) in domains {
                        builder = builder.with_domain_metadata(domain, configuration);
                    }
                    let mut txn = builder.build(engine, Box::new(FileSystemCommitter::new()))?;
                    for add in adds {
                        txn.add_files(Box::new(ArrowEngineData::new(add)));
                    }
                    Ok(Attempt::of(txn.commit(engine)?))
                })
                .await?;
            match attempt {
                Attempt::Committed(version, after) => {
                    if !self.settle(version, &id, after).await? {
                        continue;
                    }
                    self.own_version = Some(version);
                    return Ok(Outcome::Committed(version));
                }
                Attempt::Lost(version) => {
                    tracing::debug!(table = %self.location.display, version, "Another writer committed this version first; reading the log again.");
                }
                Attempt::Gone(_) => unreachable!("only a rewrite checks its inputs"),
                Attempt::Failed(reason) => {
                    // The answer was lost, not necessarily the commit:
                    // recovery reads the log and finds out.
                    return Err(Error::Unavailable {
                        table: self.location.display.clone(),
                        action: what,
                        reason,
                    });
                }
            }
        }
        Err(self.fail(
            what,
            format!("lost the race for the next log entry {COMMIT_ATTEMPTS} times in a row"),
        ))
    }

    /// The record a commit carries; a large checkpoint is written to its own
    /// object first (a name no other commit uses) and named.
    async fn epoch_record(
        &self,
        app_id: &str,
        checkpoint: &Checkpoint,
        owner: Option<(&str, u64)>,
    ) -> Result<EpochRecord> {
        let inline = serde_json::to_vec(checkpoint).expect("a checkpoint serialises");
        let mut record = EpochRecord {
            epoch: checkpoint.epoch,
            owner: owner.map(|(owner, _)| owner.to_owned()),
            claim: owner.map(|(owner, slot)| claim_id(owner, slot)),
            checkpoint: None,
            checkpoint_object: None,
        };
        if inline.len() <= INLINE_CHECKPOINT_BYTES {
            record.checkpoint = Some(checkpoint.clone());
            return Ok(record);
        }
        let name = format!(
            "_weir/state/{}/{:020}-{}.json",
            super::manifests::scope_of(app_id),
            checkpoint.epoch,
            unique()
        );
        let path = self.location.child(&name);
        self.location
            .store
            .put(&path, inline.into())
            .await
            .map_err(|e| {
                if crate::store::is_transient(&e) {
                    Error::Unavailable {
                        table: self.location.display.clone(),
                        action: format!("write {path}"),
                        reason: e.to_string(),
                    }
                } else {
                    self.fail(format!("write {path}"), e)
                }
            })?;
        record.checkpoint_object = Some(name);
        Ok(record)
    }

    /// The `add` rows of `files`, as the kernel takes them.
    fn add_rows(&self, files: &[DataFile]) -> Result<Vec<arrow_array::RecordBatch>> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let (write_state, layout) = match (&self.write_state, &self.layout) {
            (Some(w), Some(l)) => (w, l),
            _ => {
                return Err(self.fail(
                    "commit",
                    "the table is not prepared (a bug: prepare comes first)",
                ));
            }
        };
        let now = crate::record::now_ms();
        let mut rows = Vec::with_capacity(files.len());
        for file in files {
            let mut builder = write_state.write_context_builder();
            if !layout.partition_columns.is_empty() {
                let mut values = HashMap::new();
                for (column, value) in layout.partition_columns.iter().zip(&file.partition) {
                    values.insert(
                        column.clone(),
                        self.partition_scalar(layout, column, value.as_deref())?,
                    );
                }
                builder = builder.with_partition_values(values);
            }
            let context = builder
                .build()
                .map_err(|e| self.fail(format!("add {}", file.path), e))?;
            let relative = file
                .path
                .as_ref()
                .strip_prefix(self.location.prefix.as_ref())
                .unwrap_or(file.path.as_ref())
                .trim_start_matches('/');
            let location = self
                .root
                .join(relative)
                .map_err(|e| self.fail(format!("add {}", file.path), e))?;
            let meta = DataFileMetadata::new(
                FileMeta {
                    location,
                    last_modified: now,
                    size: file.size,
                },
                file.stats.clone(),
            );
            let add = build_add_file_metadata(meta, &context)
                .map_err(|e| self.fail(format!("add {}", file.path), e))?;
            let add = ArrowEngineData::try_from_engine_data(add)
                .map_err(|e| self.fail(format!("add {}", file.path), e))?;
            rows.push(add.record_batch().clone());
        }
        Ok(rows)
    }

    /// The typed value of a partition column from its text.
    fn partition_scalar(
        &self,
        layout: &Layout,
        column: &str,
        text: Option<&str>,
    ) -> Result<Scalar> {
        partition_scalar(layout, column, text).map_err(|reason| self.fail("add a file", reason))
    }
}

/// The typed value of partition column `column` from its text (`None`:
/// null), or why it does not fit the column's type.
pub fn partition_scalar(
    layout: &Layout,
    column: &str,
    text: Option<&str>,
) -> Result<Scalar, String> {
    let field = layout
        .schema
        .field_with_name(column)
        .map_err(|_| format!("partition column {column:?} is not in the schema"))?;
    let delta = DeltaType::try_from_arrow(field.data_type()).map_err(|e| e.to_string())?;
    match (text, &delta) {
        (None, _) => Ok(Scalar::Null(delta)),
        (Some(text), DeltaType::Primitive(primitive)) => primitive
            .parse_scalar(text)
            .map_err(|e| format!("partition column {column:?}: {text:?} is not a {delta}: {e}")),
        (Some(_), _) => Err(format!(
            "partition column {column:?} must have a primitive type, not {delta}"
        )),
    }
}

/// The epoch part of a commit: its `txn` and record, and for a claim in
/// group mode the owners board to update.
struct EpochPart {
    app_id: String,
    /// A claim: it carries the checkpoint of `txn` version `epoch - 1`.
    claim: bool,
    /// The claim the commit is made under (none: not fenced).
    claim_id: Option<String>,
    /// Made under a claim deferred until the table existed: the appId must
    /// have no record yet, or one of this claim.
    deferred: bool,
    epoch: u64,
    record: String,
    owner: Option<String>,
    board: Option<String>,
}

impl Attempt {
    /// What the kernel's commit result means here.
    fn of(result: CommitResult) -> Attempt {
        match result {
            CommitResult::Committed(done) => {
                Attempt::Committed(done.commit_version(), done.post_commit_snapshot().cloned())
            }
            CommitResult::Conflicted(lost) => Attempt::Lost(lost.conflict_version()),
            CommitResult::Retryable(failed) => Attempt::Failed(failed.error.to_string()),
        }
    }
}

enum Attempt {
    Committed(u64, Option<SnapshotRef>),
    Lost(u64),
    Failed(String),
    /// Compaction: this many inputs are no longer in the table.
    Gone(usize),
}

/// Names one claim of an appId: who claimed it, and the `txn` version it
/// claimed (0: deferred until the table existed, see the Parquet sink).
pub fn claim_id(owner: &str, slot: u64) -> String {
    format!("{owner}#{slot}")
}

fn checkpoint_domain(app_id: &str) -> String {
    format!("weir.checkpoint.{app_id}")
}

fn owners_domain(pipeline: &str) -> String {
    format!("weir.owners.{pipeline}")
}

/// A name no other process picks: the time and the process id.
fn unique() -> String {
    format!("{}-{}", crate::record::now_ms(), std::process::id())
}

/// A name for one commit attempt that no other attempt anywhere has: the
/// time, the process and a counter.
fn commit_id() -> String {
    static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", unique())
}

/// The `commitInfo` fields weir adds: `weirCommit`, the attempt's id, by
/// which it recognises its own log entry when it reads it back.
fn commit_info(
    id: &str,
) -> Result<
    (
        Box<dyn delta_kernel::EngineData>,
        delta_kernel::schema::SchemaRef,
    ),
    KernelError,
> {
    let schema = Arc::new(Schema::new(vec![arrow_schema::Field::new(
        "weirCommit",
        arrow_schema::DataType::Utf8,
        false,
    )]));
    let batch = arrow_array::RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(arrow_array::StringArray::from(vec![id]))],
    )
    .map_err(|e| KernelError::generic(e.to_string()))?;
    let kernel = StructType::try_from_arrow(schema.as_ref())
        .map_err(|e| KernelError::generic(e.to_string()))?;
    Ok((Box::new(ArrowEngineData::new(batch)), Arc::new(kernel)))
}

/// `schema` with every timestamp zoned "UTC" (weir's configured
/// `timestamp` is zoned "+00:00", the same instant, which the Delta
/// kernel does not take).
pub fn utc_timestamps(schema: &SchemaRef) -> SchemaRef {
    use arrow_schema::DataType;
    let fields: Vec<arrow_schema::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, Some(zone)) if zone.as_ref() == "+00:00" => Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(*unit, Some("UTC".into()))),
            ),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The Delta schema field for a `date` partition column that comes from
/// `partition-by-date` (it is in no record, only in the folder).
pub fn date_partition_field() -> arrow_schema::Field {
    arrow_schema::Field::new("date", arrow_schema::DataType::Date32, true)
}

/// A file of the table's current snapshot.
#[derive(Debug, Clone)]
pub struct LiveFile {
    /// Its path relative to the table root, as the log names it.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Its partition values by column (`None`: null).
    pub partition: BTreeMap<String, Option<String>>,
}

/// Each epoch one Delta commit (its `add` actions, `txn` and checkpoint
/// record); a claim a commit of the next `txn` version with no files.
#[async_trait::async_trait]
impl super::EpochLog for DeltaTable {
    async fn last(&mut self, key: &str) -> Result<Option<Checkpoint>, super::LogError> {
        Ok(self
            .recover(key)
            .await?
            .map(|(_, checkpoint, _)| checkpoint))
    }

    async fn claim(&mut self, key: &str, owner: &str) -> Result<super::Claim, super::LogError> {
        // Group mode: the claim also names the owner on the pipeline's board.
        let board = key
            .rsplit_once('@')
            .map(|(pipeline, _)| pipeline.to_owned());
        let (slot, last) = self.claim(key, owner, board.as_deref()).await?;
        let checkpoint = match last {
            Some(last) => Checkpoint {
                epoch: slot,
                ..last
            },
            None => Checkpoint {
                pipeline: key.to_owned(),
                epoch: slot,
                ..Checkpoint::default()
            },
        };
        Ok(super::Claim {
            slot,
            claims: vec![slot],
            checkpoint,
        })
    }

    async fn commit(
        &mut self,
        key: &str,
        checkpoint: &Checkpoint,
        holding: Option<super::Holding<'_>>,
        files: super::EpochFiles,
    ) -> Result<super::Committed, super::LogError> {
        // A claim deferred until the table existed (slot 0: no table when
        // the key was taken): this commit also names the partition's owner.
        let deferred = holding.as_ref().is_some_and(|h| h.slot == 0);
        let board = key
            .rsplit_once('@')
            .filter(|_| deferred)
            .map(|(pipeline, _)| pipeline.to_owned());
        let holder = holding.map(|h| (h.owner, h.slot));
        match self
            .commit(key, checkpoint, holder, files.added, board.as_deref())
            .await?
        {
            Outcome::Committed(version) => {
                tracing::debug!(table = %self.location.display, app_id = key, epoch = checkpoint.epoch, version, "Epoch committed.");
                Ok(super::Committed::Yes)
            }
            Outcome::Fenced { newer } => Ok(super::Committed::Refused {
                newer: format!("the Delta log holds epoch {newer} of {key} already"),
            }),
        }
    }

    async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>, super::LogError> {
        Ok(self.owners(pipeline).await?)
    }
}

impl DeltaTable {
    /// The files of the newest snapshot (what every reader reads now), and
    /// that snapshot's version; empty when there is no log yet.
    pub async fn files(&mut self) -> Result<(Vec<LiveFile>, Option<u64>)> {
        let Some(snapshot) = self.latest().await? else {
            return Ok((Vec::new(), None));
        };
        let version = snapshot.version();
        let files = self
            .blocking("list the table's files", move |engine| {
                let scan = snapshot.scan_builder().build()?;
                let mut files: Vec<LiveFile> = Vec::new();
                for metadata in scan.scan_metadata(engine)? {
                    files = metadata?.visit_scan_files(files, |files, file| {
                        files.push(LiveFile {
                            path: file.path,
                            size: file.size.max(0) as u64,
                            partition: file
                                .partition_values
                                .into_iter()
                                .map(|(k, v)| (k, Some(v)))
                                .collect(),
                        })
                    })?;
                }
                Ok(files)
            })
            .await?;
        let partitions = self
            .snapshot
            .as_ref()
            .map(|s| s.table_configuration().logical_partition_columns().to_vec())
            .unwrap_or_default();
        let mut files: Vec<LiveFile> = files
            .into_iter()
            .map(|mut f| {
                // A null partition value is absent from the scan's map.
                for column in &partitions {
                    f.partition.entry(column.clone()).or_insert(None);
                }
                f
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((files, Some(version)))
    }

    /// The table's partition columns, in folder order (once prepared).
    pub fn partition_columns(&self) -> Vec<String> {
        self.layout
            .as_ref()
            .map(|l| l.partition_columns.clone())
            .unwrap_or_default()
    }

    /// The columns the table keeps statistics of, for files written
    /// outside the sink (compaction).
    pub fn stats_columns(&self) -> Vec<delta_kernel::expressions::ColumnName> {
        self.write_state
            .as_ref()
            .map(|w| w.stats_columns().to_vec())
            .unwrap_or_default()
    }

    /// Prepares the table for files written outside the sink (compaction):
    /// its existing layout, as is.
    pub async fn prepare_existing(&mut self) -> Result<Layout> {
        let layout = self
            .existing_layout()
            .await?
            .ok_or_else(|| self.fail("open", "the location has no Delta log (no table yet)"))?;
        self.prepare(&layout).await
    }

    /// Compaction's commit: `inputs` (paths as [`DeltaTable::files`] gives
    /// them) removed and `outputs` added with `dataChange = false`, in one
    /// commit. A writer's appends committed meanwhile do not conflict (the
    /// commit is retried on the newer log); an input another compaction
    /// removed first does: nothing is committed and the error says so.
    pub async fn rewrite(&mut self, inputs: &[String], outputs: Vec<DataFile>) -> Result<u64> {
        let adds = self.add_rows(&outputs)?;
        let wanted: std::collections::HashSet<String> = inputs.iter().cloned().collect();
        for _ in 0..COMMIT_ATTEMPTS {
            let snapshot = self
                .latest()
                .await?
                .ok_or_else(|| self.fail("commit compaction", "the location has no Delta log"))?;
            let (adds, wanted) = (adds.clone(), wanted.clone());
            let id = commit_id();
            let marker = id.clone();
            let attempt = self
                .blocking("commit compaction", move |engine| {
                    let (info, info_schema) = commit_info(&marker)?;
                    let scan = snapshot.clone().scan_builder().build()?;
                    let mut removes = Vec::new();
                    let mut found = 0;
                    for metadata in scan.scan_metadata(engine)? {
                        let (data, selected) = metadata?.scan_files.into_parts();
                        let data = ArrowEngineData::try_from_engine_data(data)?;
                        let batch = data.record_batch().clone();
                        let paths = batch
                            .column_by_name("path")
                            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>())
                            .ok_or_else(|| KernelError::generic("scan rows have no path column"))?;
                        let selection: Vec<bool> = (0..batch.num_rows())
                            .map(|i| {
                                selected.get(i).copied().unwrap_or(true)
                                    && wanted.contains(paths.value(i))
                            })
                            .collect();
                        let hits = selection.iter().filter(|s| **s).count();
                        if hits > 0 {
                            found += hits;
                            removes.push(delta_kernel::engine_data::FilteredEngineData::try_new(
                                Box::new(ArrowEngineData::new(batch)),
                                selection,
                            )?);
                        }
                    }
                    if found != wanted.len() {
                        return Ok(Attempt::Gone(wanted.len() - found));
                    }
                    let mut txn = snapshot
                        .update_table(UpdateTableOperation::Optimize, ENGINE_INFO, false)
                        .with_commit_info(info, info_schema)
                        .build(engine, Box::new(FileSystemCommitter::new()))?;
                    for remove in removes {
                        txn.remove_files(remove);
                    }
                    for add in adds {
                        txn.add_files(Box::new(ArrowEngineData::new(add)));
                    }
                    Ok(Attempt::of(txn.commit(engine)?))
                })
                .await?;
            match attempt {
                Attempt::Committed(version, after) => {
                    if !self.settle(version, &id, after).await? {
                        continue;
                    }
                    return Ok(version);
                }
                Attempt::Lost(_) => continue,
                Attempt::Gone(count) => {
                    return Err(self.fail(
                        "commit compaction",
                        format!("another compaction removed {count} of its input files first; nothing was changed, run it again"),
                    ));
                }
                Attempt::Failed(reason) => {
                    return Err(Error::Unavailable {
                        table: self.location.display.clone(),
                        action: "commit compaction".into(),
                        reason,
                    });
                }
            }
        }
        Err(self.fail(
            "commit compaction",
            format!("lost the race for the next log entry {COMMIT_ATTEMPTS} times in a row"),
        ))
    }

    /// When each file was removed (its `remove` action's
    /// `deletionTimestamp`, else its commit's time), from the JSON commits
    /// written at `since` (ms) or later: a file is removed after it was
    /// written, so a commit older than the oldest file asked about cannot
    /// remove it. The commits are read 16 at a time (a small GET costs a
    /// round trip; there can be thousands).
    async fn removed_at(&self, since: i64) -> Result<HashMap<String, i64>> {
        let log = self.location.child(LOG);
        let commits: Vec<object_store::ObjectMeta> = self
            .location
            .store
            .list(Some(&log))
            .try_filter(|m| {
                futures::future::ready(
                    m.location.filename().is_some_and(|n| n.ends_with(".json"))
                        && m.last_modified.timestamp_millis() >= since,
                )
            })
            .try_collect()
            .await
            .map_err(|e| self.fail(format!("list {log}"), e))?;
        let reads = commits.into_iter().map(|commit| async move {
            let bytes = crate::table::get(&self.location, &commit.location)
                .await
                .map_err(|e| self.fail(format!("read {}", commit.location), e))?;
            Ok::<_, Error>((commit, bytes))
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(16);
        let mut removed = HashMap::new();
        while let Some((commit, bytes)) = reads.try_next().await? {
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                #[derive(Deserialize)]
                struct Action {
                    remove: Option<Remove>,
                }
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Remove {
                    path: String,
                    deletion_timestamp: Option<i64>,
                }
                let action: Action = serde_json::from_slice(line).map_err(|e| {
                    self.fail(
                        format!("read {}", commit.location),
                        format!("{e} (a damaged log entry: weir does not repair it)"),
                    )
                })?;
                if let Some(remove) = action.remove {
                    let at = remove
                        .deletion_timestamp
                        .unwrap_or(commit.last_modified.timestamp_millis());
                    removed.insert(remove.path, at);
                }
            }
        }
        Ok(removed)
    }

    /// Vacuum: deletes the data files the newest snapshot does not name —
    /// removed by a compaction, or orphans (an epoch a killed process never
    /// committed, a fenced or losing writer's files) — once `retention` has
    /// passed since their removal (or, for orphans, since they were
    /// written), so readers of older versions and writers still uploading
    /// find their files. Returns how many were deleted (best effort: one
    /// that cannot be deleted waits for the next vacuum).
    pub async fn vacuum(&mut self, retention: std::time::Duration) -> Result<usize> {
        let (live, _) = self.files().await?;
        let live: std::collections::HashSet<String> = live.into_iter().map(|f| f.path).collect();
        let cutoff = crate::record::now_ms() - retention.as_millis() as i64;
        let all: Vec<object_store::ObjectMeta> = self
            .location
            .store
            .list(Some(&self.location.prefix))
            .try_collect()
            .await
            .map_err(|e| self.fail("list files", e))?;
        // Data files no snapshot names, written before the cutoff (one
        // written later is within its retention whenever it was removed).
        let candidates: Vec<(String, object_store::ObjectMeta)> = all
            .into_iter()
            .filter_map(|meta| {
                let name = self.location.relative(&meta.location);
                let hidden = name
                    .split('/')
                    .any(|part| part.starts_with('_') || part.starts_with('.'));
                let candidate = !hidden
                    && name.ends_with(".parquet")
                    && !live.contains(&name)
                    && meta.last_modified.timestamp_millis() <= cutoff;
                candidate.then_some((name, meta))
            })
            .collect();
        let Some(oldest) = candidates
            .iter()
            .map(|(_, meta)| meta.last_modified.timestamp_millis())
            .min()
        else {
            return Ok(0);
        };
        let removed = self.removed_at(oldest).await?;
        let mut deleted = 0;
        for (name, meta) in candidates {
            let since = removed
                .get(&name)
                .copied()
                .unwrap_or(meta.last_modified.timestamp_millis());
            if since > cutoff {
                continue;
            }
            match self.location.store.delete(&meta.location).await {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(file = %meta.location, error = %e, "Could not delete a file no snapshot names; the next vacuum tries again.")
                }
            }
        }
        Ok(deleted)
    }
}
