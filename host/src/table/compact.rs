//! `weir compact`: merges the small committed Parquet files of each
//! partition folder into files near a target size, and swaps them in
//! atomically through the rewrite log (see [`super`]).
//!
//! Safe beside a running writer: it takes only committed files, which the
//! writer never touches again, and its merged files are invisible until the
//! one conditional put that commits the swap. Two compactions at once: the
//! second to commit finds the record slot taken, checks that none of its
//! inputs was replaced meanwhile, and commits on top — or, when one was,
//! deletes its merged files and reports the conflict. Killed at any point,
//! it leaves either the old files committed or the new ones, never both;
//! what it wrote and did not commit is deleted by a later run once the
//! retention period has passed.

use super::delta::{DataFile, DeltaTable};
use super::{
    CommittedFile, Error, Rewrites, Snapshot, error, newest_rewrites, prune_rewrites, rewrite_path,
    snapshot, write_committed_list,
};
use crate::store::Location;
use arrow_array::RecordBatch;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::expressions::ColumnName;
use delta_kernel::schema::StructType;
use delta_kernel_default_engine::stats::FileStatsAccumulator;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Name prefix of merged files.
pub const PREFIX: &str = "compact-";

/// What to compact and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// Merged files are made up to about this size (the inputs' bytes).
    #[serde(
        default = "default_target",
        deserialize_with = "crate::config::byte_size"
    )]
    pub target_size: u64,
    /// A folder is compacted once it has at least this many small files
    /// (under ¾ of the target size).
    #[serde(default = "default_min_files")]
    pub min_files: usize,
    /// Only folders under this partition, e.g. `season=2023-24`.
    #[serde(default)]
    pub partition: Option<String>,
    /// Sort each merged file's rows by this column (holds the group's rows
    /// in memory; unsorted, a merge streams one row group at a time).
    #[serde(default)]
    pub sort_by: Option<String>,
    /// Replaced files, and merged files no record commits, are deleted
    /// only after this long, so that a reader that listed them earlier
    /// still finds them.
    #[serde(
        default = "default_retention",
        deserialize_with = "crate::config::duration"
    )]
    pub retention: Duration,
    /// In a Parquet sink's `compaction` table: how often to compact, at
    /// a commit (default 10 minutes). `weir compact` compacts once.
    #[serde(default, deserialize_with = "crate::sink::optional_duration")]
    pub every: Option<Duration>,
    /// Plan and report only; change nothing.
    #[serde(skip)]
    pub dry_run: bool,
}

fn default_target() -> u64 {
    128 << 20
}

fn default_min_files() -> usize {
    5
}

fn default_retention() -> Duration {
    Duration::from_secs(3600)
}

impl Options {
    /// Whether `file` lies under `partition` (every file without one).
    fn in_scope(&self, file: &CommittedFile) -> bool {
        self.partition.as_deref().is_none_or(|p| {
            let p = p.trim_matches('/');
            file.folder.starts_with(p) && file.folder[p.len()..].starts_with('/')
        })
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target_size: default_target(),
            min_files: default_min_files(),
            partition: None,
            sort_by: None,
            retention: default_retention(),
            every: None,
            dry_run: false,
        }
    }
}

/// Files of one folder merged into one.
#[derive(Debug, Clone)]
pub struct Group {
    /// The partition folder.
    pub folder: String,
    /// The files merged, in name (epoch) order.
    pub inputs: Vec<CommittedFile>,
}

/// What a compaction did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Committed files and bytes of the folders looked at, before.
    pub files_before: usize,
    /// Bytes before.
    pub bytes_before: u64,
    /// And after.
    pub files_after: usize,
    /// Bytes after.
    pub bytes_after: u64,
    /// The merges.
    pub groups: Vec<Group>,
    /// Rows rewritten.
    pub rows: u64,
    /// Bytes read from the merged inputs.
    pub bytes_read: u64,
    /// The rewrite record that committed it (none when nothing changed).
    pub version: Option<u64>,
    /// Replaced and orphaned files deleted after their retention.
    pub deleted: usize,
    /// Time spent merging and committing.
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let merged: usize = self.groups.iter().map(|g| g.inputs.len()).sum();
        let folders = self
            .groups
            .iter()
            .map(|g| &g.folder)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let Some(version) = self.version else {
            writeln!(
                f,
                "{merged} files would be merged into {} in {folders} folders",
                self.groups.len()
            )?;
            writeln!(
                f,
                "now: {} files, {} bytes; after: {} files",
                self.files_before, self.bytes_before, self.files_after
            )?;
            if self.deleted > 0 {
                writeln!(f, "deleted {} files past their retention", self.deleted)?;
            }
            return Ok(());
        };
        writeln!(
            f,
            "{merged} files merged into {} in {folders} folders; {} rows",
            self.groups.len(),
            self.rows
        )?;
        writeln!(
            f,
            "before: {} files, {} bytes; after: {} files, {} bytes",
            self.files_before, self.bytes_before, self.files_after, self.bytes_after
        )?;
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "committed as rewrite {version} in {secs:.2} s ({:.1} MB/s read)",
            self.bytes_read as f64 / 1e6 / secs.max(1e-9)
        )?;
        if self.deleted > 0 {
            writeln!(f, "deleted {} files past their retention", self.deleted)?;
        }
        Ok(())
    }
}

/// The merges to do in a snapshot.
pub fn plan(snapshot: &Snapshot, options: &Options) -> Vec<Group> {
    let mut folders: BTreeMap<&str, Vec<&CommittedFile>> = BTreeMap::new();
    for file in &snapshot.files {
        if options.in_scope(file) {
            folders.entry(&file.folder).or_default().push(file);
        }
    }
    let small = options.target_size / 4 * 3;
    let mut groups = Vec::new();
    for (folder, files) in folders {
        let candidates: Vec<&CommittedFile> =
            files.into_iter().filter(|f| f.size < small).collect();
        if candidates.len() < options.min_files.max(2) {
            continue;
        }
        let mut group: Vec<CommittedFile> = Vec::new();
        let mut bytes = 0;
        for file in candidates {
            if !group.is_empty() && bytes + file.size > options.target_size {
                if group.len() > 1 {
                    groups.push(Group {
                        folder: folder.to_owned(),
                        inputs: std::mem::take(&mut group),
                    });
                }
                group.clear();
                bytes = 0;
            }
            bytes += file.size;
            group.push(file.clone());
        }
        if group.len() > 1 {
            groups.push(Group {
                folder: folder.to_owned(),
                inputs: group,
            });
        }
    }
    groups
}

/// Compacts `location` once: deletes what is past its retention, merges,
/// commits, and rewrites `_weir/committed`.
pub async fn compact(location: &Location, options: &Options) -> Result<Report, Error> {
    let started = Instant::now();
    let mut table = Table::open(location).await?;
    let (before, deleted) = table.expire_and_list(location, options).await?;
    let groups = plan(&before, options);
    let in_scope = before.files.iter().filter(|f| options.in_scope(f));
    let mut report = Report {
        files_before: in_scope.clone().count(),
        bytes_before: in_scope.map(|f| f.size).sum(),
        groups: groups.clone(),
        deleted,
        ..Report::default()
    };
    report.files_after = report.files_before;
    report.bytes_after = report.bytes_before;
    if options.dry_run || groups.is_empty() {
        report.files_after -= groups.iter().map(|g| g.inputs.len() - 1).sum::<usize>();
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    let run = format!("{}-{}", crate::record::now_ms(), std::process::id());
    // Folders merge several at once: each merge is mostly round trips.
    let jobs = groups.clone().into_iter().enumerate().map(|(seq, group)| {
        let name = format!("{}{PREFIX}{run}-{:05}.parquet", group.folder, seq + 1);
        let location = location.clone();
        let sort_by = options.sort_by.clone();
        let stats = table.stats_columns();
        async move {
            let merged = merge(&location, &group, &name, sort_by.as_deref(), stats).await;
            (group, name, merged)
        }
    });
    let results: Vec<(Group, String, Result<Merged, Error>)> = futures::stream::iter(jobs)
        .buffer_unordered(MERGES_AT_ONCE)
        .collect()
        .await;
    let mut outputs: Vec<(String, Merged, String)> = Vec::new();
    let mut failed = None;
    for (group, name, merged) in results {
        match merged {
            Ok(merged) => {
                let read: u64 = group.inputs.iter().map(|f| f.size).sum();
                report.rows += merged.rows;
                report.bytes_read += read;
                report.bytes_after = report.bytes_after + merged.bytes - read;
                report.files_after -= group.inputs.len() - 1;
                outputs.push((name, merged, group.folder));
            }
            Err(e) => {
                let _ = location.store.delete(&location.child(&name)).await;
                failed.get_or_insert(e);
            }
        }
    }
    let names: Vec<String> = outputs.iter().map(|(n, _, _)| n.clone()).collect();
    if let Some(e) = failed {
        delete_all(location, names.iter().map(String::as_str)).await;
        return Err(e);
    }
    crate::crash::point("compact-after-merge");
    let inputs: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.inputs.iter().map(|f| f.name.as_str()))
        .collect();
    match table.commit(location, &before, &inputs, outputs).await {
        Ok(version) => report.version = Some(version),
        Err(e) => {
            delete_all(location, names.iter().map(String::as_str)).await;
            return Err(e);
        }
    }
    crate::crash::point("compact-after-commit");
    report.elapsed = started.elapsed();
    if let Table::Weir = table {
        prune_rewrites(location).await;
        if let Err(e) = write_committed_list(location).await {
            tracing::warn!(error = %e, "Compaction committed, but {} was not rewritten; the next commit rewrites it.", super::COMMITTED_LIST);
        }
    }
    tracing::info!(location = %location.display, groups = report.groups.len(), files = inputs.len(), rows = report.rows, version = ?report.version, "Compacted.");
    Ok(report)
}

/// The table format of the location: what lists its committed files,
/// expires what is no longer read and commits a swap.
enum Table {
    /// weir's manifests and rewrite log.
    Weir,
    /// A Delta table, with each partition folder's partition values.
    Delta(Box<DeltaTable>, HashMap<String, Vec<Option<String>>>),
}

impl Table {
    async fn open(location: &Location) -> Result<Table, Error> {
        let fail = |e: super::delta::Error| error(location, "open the Delta table", e);
        let mut delta = DeltaTable::open(location, 100).map_err(fail)?;
        if !delta.exists().await.map_err(fail)? {
            return Ok(Table::Weir);
        }
        delta.prepare_existing().await.map_err(fail)?;
        Ok(Table::Delta(Box::new(delta), HashMap::new()))
    }

    /// Deletes what is past its retention (not in a dry run), then lists
    /// the committed files; also the number of files deleted.
    async fn expire_and_list(
        &mut self,
        location: &Location,
        options: &Options,
    ) -> Result<(Snapshot, usize), Error> {
        match self {
            Table::Weir => {
                let mut before = snapshot(location).await?;
                let mut deleted = 0;
                if !options.dry_run {
                    deleted = expire(location, &mut before, options.retention).await;
                }
                Ok((before, deleted))
            }
            Table::Delta(delta, partitions) => {
                let fail = |e: super::delta::Error| error(location, "compact", e);
                let mut deleted = 0;
                if !options.dry_run {
                    deleted = delta.vacuum(options.retention).await.map_err(fail)?;
                }
                let columns = delta.partition_columns();
                let (live, _) = delta.files().await.map_err(fail)?;
                let mut files = Vec::with_capacity(live.len());
                for file in live {
                    let folder = match file.path.rfind('/') {
                        Some(end) => file.path[..=end].to_owned(),
                        None => String::new(),
                    };
                    let values = columns
                        .iter()
                        .map(|c| file.partition.get(c).cloned().flatten())
                        .collect();
                    partitions.insert(folder.clone(), values);
                    files.push(CommittedFile {
                        name: file.path,
                        folder,
                        size: file.size,
                    });
                }
                files.sort();
                let before = Snapshot {
                    files,
                    ..Snapshot::default()
                };
                Ok((before, deleted))
            }
        }
    }

    /// The columns merged files keep statistics of (Delta).
    fn stats_columns(&self) -> Option<Vec<ColumnName>> {
        match self {
            Table::Weir => None,
            Table::Delta(delta, _) => Some(delta.stats_columns()),
        }
    }

    /// Commits the swap of `inputs` for `outputs`; the new table or
    /// rewrite-log version.
    async fn commit(
        &mut self,
        location: &Location,
        before: &Snapshot,
        inputs: &[&str],
        outputs: Vec<(String, Merged, String)>,
    ) -> Result<u64, Error> {
        match self {
            Table::Weir => {
                let names: Vec<&str> = outputs.iter().map(|(n, _, _)| n.as_str()).collect();
                commit(location, &before.rewrites, inputs, &names).await
            }
            Table::Delta(delta, partitions) => {
                let mut files = Vec::with_capacity(outputs.len());
                for (name, merged, folder) in outputs {
                    let stats = merged.stats.ok_or_else(|| {
                        error(
                            location,
                            format!("merge {folder}"),
                            "no statistics were collected",
                        )
                    })?;
                    files.push(DataFile {
                        path: location.child(&name),
                        size: merged.bytes,
                        partition: partitions.get(&folder).cloned().unwrap_or_default(),
                        stats,
                    });
                }
                let inputs: Vec<String> = inputs.iter().map(|i| (*i).to_owned()).collect();
                delta
                    .rewrite(&inputs, files)
                    .await
                    .map_err(|e| error(location, "commit compaction", e))
            }
        }
    }
}

async fn delete_all(location: &Location, names: impl Iterator<Item = &str>) {
    for name in names {
        if let Err(e) = location.store.delete(&location.child(name)).await {
            tracing::warn!(file = name, error = %e, "Could not delete an uncommitted merged file; a later compaction deletes it after the retention period.");
        }
    }
}

/// Merges running at once (each reads ahead at most READ_AHEAD_BYTES).
const MERGES_AT_ONCE: usize = 4;

/// Bytes of input files a merge reads ahead, and at most how many files.
const READ_AHEAD_BYTES: u64 = 64 << 20;
const MAX_READS: u64 = 16;

struct Merged {
    rows: u64,
    bytes: u64,
    /// Delta: the merged file's statistics.
    stats: Option<arrow_array::StructArray>,
}

/// Reads a group's files in order and writes them as one file `name`
/// (complete, uploaded, not yet committed).
async fn merge(
    location: &Location,
    group: &Group,
    name: &str,
    sort_by: Option<&str>,
    stats_columns: Option<Vec<ColumnName>>,
) -> Result<Merged, Error> {
    let path = location.child(name);
    let fail = |action: String, e: &dyn std::fmt::Display| error(location, action, e);
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut stats: Option<FileStatsAccumulator> = None;
    let mut schema = None;
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut rows_in = 0u64;
    // Inputs are small (under ¾ of the target): each is read whole, several
    // at once (an object store's latency, not its bandwidth, bounds reading
    // many small files), at most READ_AHEAD_BYTES of them, in order.
    let largest = group
        .inputs
        .iter()
        .map(|f| f.size)
        .max()
        .unwrap_or(1)
        .max(1);
    let in_flight = (READ_AHEAD_BYTES / largest).clamp(1, MAX_READS) as usize;
    let paths: Vec<StorePath> = group
        .inputs
        .iter()
        .map(|f| location.child(&f.name))
        .collect();
    let mut reads = futures::stream::iter(paths)
        .map(|path| {
            let location = location.clone();
            async move { super::get(&location, &path).await }
        })
        .buffered(in_flight);
    for input in &group.inputs {
        let bytes = reads.next().await.expect("one read per input")?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| fail(format!("read {}", input.name), &e))?;
        rows_in += builder.metadata().file_metadata().num_rows() as u64;
        let file_schema = builder.schema().clone();
        match &schema {
            None => {
                schema = Some(file_schema.clone());
                if let Some(columns) = &stats_columns {
                    let physical = StructType::try_from_arrow(file_schema.as_ref())
                        .map_err(|e| fail(format!("read {}", input.name), &e))?;
                    stats = Some(FileStatsAccumulator::new(columns, &physical));
                }
            }
            Some(first) if first.fields() != file_schema.fields() => {
                return Err(fail(
                    format!("merge {}", group.folder),
                    &format!(
                        "{} has another schema than {} ({:?} vs {:?}); fix the writer's schema, or compact with --partition to skip this folder",
                        input.name,
                        group.inputs[0].name,
                        file_schema.fields(),
                        first.fields()
                    ),
                ));
            }
            Some(_) => {}
        }
        let batches = builder
            .build()
            .map_err(|e| fail(format!("read {}", input.name), &e))?;
        for batch in batches {
            let batch = batch.map_err(|e| fail(format!("read {}", input.name), &e))?;
            if sort_by.is_some() {
                held.push(batch);
                continue;
            }
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(open_writer(location, &path, &file_schema)?),
            };
            w.write(&batch)
                .await
                .map_err(|e| fail(format!("write {name}"), &e))?;
            if let Some(stats) = &mut stats {
                stats
                    .merge(&batch)
                    .map_err(|e| fail(format!("statistics of {name}"), &e))?;
            }
        }
    }
    let schema = schema.expect("a group has at least two files");
    if let Some(column) = sort_by {
        let all = arrow_select::concat::concat_batches(&schema, &held)
            .map_err(|e| fail(format!("merge {}", group.folder), &e))?;
        drop(held);
        let sorted = sort(&all, column).map_err(|e| fail(format!("sort by {column}"), &e))?;
        let w = writer.insert(open_writer(location, &path, &schema)?);
        w.write(&sorted)
            .await
            .map_err(|e| fail(format!("write {name}"), &e))?;
        if let Some(stats) = &mut stats {
            stats
                .merge(&sorted)
                .map_err(|e| fail(format!("statistics of {name}"), &e))?;
        }
    }
    let writer = match writer {
        Some(w) => w,
        None => open_writer(location, &path, &schema)?,
    };
    let written = writer
        .close()
        .await
        .map_err(|e| fail(format!("complete {name}"), &e))?;
    let rows_out = written.file_metadata().num_rows() as u64;
    if rows_out != rows_in {
        let _ = location.store.delete(&path).await;
        return Err(fail(
            format!("merge {}", group.folder),
            &format!("wrote {rows_out} rows of {rows_in}; nothing was committed"),
        ));
    }
    let bytes = location
        .store
        .head(&path)
        .await
        .map_err(|e| fail(format!("read {name}"), &e))?
        .size;
    let stats = stats
        .map(|s| s.finish())
        .transpose()
        .map_err(|e| fail(format!("statistics of {name}"), &e))?
        .flatten();
    Ok(Merged {
        rows: rows_out,
        bytes,
        stats,
    })
}

fn open_writer(
    location: &Location,
    path: &StorePath,
    schema: &arrow_schema::SchemaRef,
) -> Result<AsyncArrowWriter<BufWriter>, Error> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let object = BufWriter::new(location.store.clone(), path.clone());
    AsyncArrowWriter::try_new(object, schema.clone(), Some(props))
        .map_err(|e| error(location, format!("open {path}"), e))
}

/// The rows of `batch` ordered by `column` (nulls last, stable).
fn sort(batch: &RecordBatch, column: &str) -> Result<RecordBatch, String> {
    let key = batch
        .column_by_name(column)
        .ok_or_else(|| format!("there is no column {column:?}"))?;
    let options = arrow_schema::SortOptions {
        descending: false,
        nulls_first: false,
    };
    let indices =
        arrow_ord::sort::sort_to_indices(key, Some(options), None).map_err(|e| e.to_string())?;
    arrow_select::take::take_record_batch(batch, &indices).map_err(|e| e.to_string())
}

/// Commits the swap: the next rewrite record, put only if its slot is free.
/// When another compaction committed first, commits on top of it unless
/// it replaced one of `inputs`.
async fn commit(
    location: &Location,
    base: &Rewrites,
    inputs: &[&str],
    outputs: &[&str],
) -> Result<u64, Error> {
    let mut newest = base.clone();
    for _ in 0..10 {
        if newest.version != base.version {
            let gone: Vec<&&str> = inputs
                .iter()
                .filter(|i| {
                    newest.replaced.contains_key(**i)
                        || (i.rsplit('/').next().is_some_and(|f| f.starts_with(PREFIX))
                            && !newest.live.contains(**i))
                })
                .collect();
            if !gone.is_empty() {
                return Err(error(
                    location,
                    "commit compaction",
                    format!(
                        "another compaction replaced {} of its input files (e.g. {}) first; nothing was changed, run it again",
                        gone.len(),
                        gone[0]
                    ),
                ));
            }
        }
        let now = crate::record::now_ms();
        let mut next = newest.clone();
        next.version += 1;
        for input in inputs {
            next.live.remove(*input);
            next.replaced.insert((*input).to_owned(), now);
        }
        next.live.extend(outputs.iter().map(|o| (*o).to_owned()));
        match put_rewrites(location, &next).await {
            Ok(()) => return Ok(next.version),
            Err(object_store::Error::AlreadyExists { .. }) => {
                newest = newest_rewrites(location).await?;
            }
            Err(e) => return Err(error(location, "commit compaction", e)),
        }
    }
    Err(error(
        location,
        "commit compaction",
        "other compactions took the next rewrite record 10 times in a row; run one compaction at a time",
    ))
}

/// Writes rewrite record `next.version`, only if that slot is free.
async fn put_rewrites(location: &Location, next: &Rewrites) -> object_store::Result<()> {
    let body = serde_json::to_vec_pretty(next).expect("a rewrite record serialises");
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let path = rewrite_path(location, next.version);
    location.store.put_opts(&path, body.into(), create).await?;
    Ok(())
}

/// Deletes replaced files, and merged files no record commits, that are
/// older than `retention` (as `state` lists them); records the replaced
/// ones as gone, in the store and in `state.rewrites`. The number of files
/// deleted (best effort: what could not be deleted waits for the next run).
async fn expire(location: &Location, state: &mut Snapshot, retention: Duration) -> usize {
    let now = crate::record::now_ms();
    let cutoff = now - retention.as_millis() as i64;
    let orphans: Vec<&str> = state
        .uncommitted
        .iter()
        .filter(|(name, modified)| {
            *modified <= cutoff
                && name
                    .rsplit('/')
                    .next()
                    .is_some_and(|f| f.starts_with(PREFIX))
                && !state.rewrites.replaced.contains_key(name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let expired: Vec<&str> = state
        .rewrites
        .replaced
        .iter()
        .filter(|(_, at)| **at <= cutoff)
        .map(|(name, _)| name.as_str())
        .collect();
    // Several deletes at once: each is a round trip.
    let doomed: Vec<String> = expired
        .iter()
        .chain(&orphans)
        .map(|n| (*n).to_owned())
        .collect();
    let deletes = doomed.into_iter().map(|name| {
        let location = location.clone();
        async move {
            match location.store.delete(&location.child(&name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Some(name),
                Err(e) => {
                    tracing::warn!(file = name, error = %e, "Could not delete an expired file; the next compaction tries again.");
                    None
                }
            }
        }
    });
    let gone: Vec<String> = futures::stream::iter(deletes)
        .buffer_unordered(MAX_READS as usize)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let gone: std::collections::HashSet<&str> = gone.iter().map(String::as_str).collect();
    let forgotten: Vec<&str> = expired
        .iter()
        .filter(|n| gone.contains(**n))
        .copied()
        .collect();
    if !forgotten.is_empty() {
        // Best effort: a record still naming deleted files only makes
        // readers skip files that are not there.
        let mut next = state.rewrites.clone();
        next.version += 1;
        for name in &forgotten {
            next.replaced.remove(*name);
        }
        match put_rewrites(location, &next).await {
            Ok(()) => state.rewrites = next,
            Err(e) => {
                tracing::debug!(error = %e, "Deleted files stay named in the rewrite record until the next compaction.");
            }
        }
    }
    gone.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(folder: &str, n: u32, size: u64) -> CommittedFile {
        CommittedFile {
            name: format!("{folder}part-{n:010}-00001.parquet"),
            folder: folder.to_owned(),
            size,
        }
    }

    fn snapshot(files: Vec<CommittedFile>) -> Snapshot {
        Snapshot {
            files,
            ..Snapshot::default()
        }
    }

    #[test]
    fn small_files_of_one_folder_are_packed_up_to_the_target_in_epoch_order() {
        let a = "season=2023-24/game_date=2023-10-24/";
        let mut files: Vec<CommittedFile> = (1..=6).map(|n| file(a, n, 40)).collect();
        // A big file is left alone; another folder has too few small files.
        files.push(file(a, 7, 90));
        files.push(file("season=2023-24/game_date=2023-10-25/", 1, 10));
        let options = Options {
            target_size: 100,
            min_files: 2,
            ..Options::default()
        };
        let groups = plan(&snapshot(files), &options);
        let shapes: Vec<(usize, u64)> = groups
            .iter()
            .map(|g| (g.inputs.len(), g.inputs.iter().map(|f| f.size).sum()))
            .collect();
        assert_eq!(shapes, [(2, 80), (2, 80), (2, 80)]);
        assert!(groups.iter().all(|g| g.folder == a));
        assert!(groups[0].inputs[0].name < groups[1].inputs[0].name);
    }

    #[test]
    fn folders_below_min_files_or_outside_the_partition_are_not_compacted() {
        let files = vec![
            file("season=2022-23/", 1, 1),
            file("season=2022-23/", 2, 1),
            file("season=2023-24/", 1, 1),
            file("season=2023-24/", 2, 1),
            file("season=2023-24/", 3, 1),
        ];
        let options = |min_files, partition: Option<&str>| Options {
            min_files,
            partition: partition.map(str::to_owned),
            ..Options::default()
        };
        assert_eq!(plan(&snapshot(files.clone()), &options(3, None)).len(), 1);
        assert!(plan(&snapshot(files.clone()), &options(4, None)).is_empty());
        let only = plan(&snapshot(files), &options(2, Some("season=2022-23")));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].folder, "season=2022-23/");
    }
}
