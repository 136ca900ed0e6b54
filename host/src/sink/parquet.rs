//! Parquet files on any object store (S3, a local folder, in-memory),
//! rolled by rows, size and time, optionally Hive-partitioned.
//!
//! The Arrow schema comes from `schema` in the configuration, or is
//! inferred from the first batch; either way it is then enforced: a record
//! with a field the schema does not have, or a value of another type, is
//! refused (and dead-lettered) rather than silently dropped or coerced.
//!
//! A file becomes visible only when it is complete: on S3 the upload
//! (multipart once it passes 10 MB) is completed at close; on a local
//! folder object_store writes a staging file and renames it. A reader
//! listing `*.parquet` never sees a partial file.
//!
//! Table formats: the sink writes and finishes the files; recovery, claims
//! and epoch commits go through the location's epoch log (`table::EpochLog`).
//! With `table = "delta"` (the default for a new location) the location is
//! a Delta Lake table and each epoch is one Delta commit (see
//! [`crate::table::delta`]): its files, a `txn` and the checkpoint; claims
//! and fencing go through the log too. What follows describes weir's own
//! format, `table = "weir"` (`table::manifests`); the file naming
//! is shared.
//!
//! Memory: one file is open per partition folder written to, holding its
//! open row group and upload buffer; at `max-open-files` (4) opening one
//! more finishes the least recently written, so records spread over
//! hundreds of folders (seed 002's game days) do not hold hundreds of
//! writers.
//!
//! Exactly-once (the default): files are named after the epoch they belong
//! to, `part-<epoch, 10 digits>-<seq>.parquet`. An epoch commits when its
//! manifest `_weir/<pipeline>/epoch-<epoch, 20 digits>.json` — the
//! checkpoint plus the epoch's files — is written (a conditional put: it
//! must not exist yet). So a file is committed exactly when its epoch
//! number is at most the highest manifest's. On recovery, files of later
//! (uncommitted) epochs are deleted before anything is written, and the
//! replay writes them again under the same names.
//!
//! Group mode (a Kafka source with `assignment` other than `"all"`): each
//! source partition has its own chain of manifests,
//! `_weir/<pipeline>@<topic>.<partition>/`, and its part files carry the
//! partition in their name, `part-<epoch>-<seq>-<topic>.<partition>.parquet`.
//! A process that is given a partition *claims* it by writing the next
//! manifest of that chain itself — a conditional put, with no files, its
//! owner named — before it writes anything. Every commit is a conditional
//! put of the next slot too, so a previous owner that is still running
//! (paused, cut off) fails to commit its epoch: its slot is taken. It is
//! fenced; it deletes the files it uploaded for that epoch and drops the
//! partition. A claimed slot's epoch holds no committed file: the newest
//! manifest lists every claimed slot under `claims`, so a reader takes a
//! partition's part file as committed when its epoch is at most the
//! newest manifest's and not among its `claims`.
//!
//! One process (every other pipeline) claims its chain the same way when
//! it starts, so a process that ran it before and still runs is fenced, and
//! writes `_weir/<pipeline>/lease.json` (owner, time) at most every 2 s at
//! its commits: a second process reads it and is refused before it writes,
//! or waits as a standby (see [`crate::owner::Holder`]).
//!
//! Small files: an epoch commits only when an open file is due to roll
//! (`max-rows-per-file`, `max-file-size`, `rollover-interval`) or the
//! pipeline stops; without `rollover-interval`, every checkpoint commits.
//! A longer interval gives bigger files but later visibility and a longer
//! replay after a crash. Compaction merges committed small files afterwards
//! (`compaction` here, or `weir compact`; see [`crate::table`]), and after
//! each commit that added files the sink rewrites `_weir/committed`, the
//! committed-file list for readers that are not weir.

use super::{EpochStore, Error, Owners, Rejected, Result, Sink};
use crate::Record;
use crate::checkpoint::Checkpoint;
use crate::store::Location;
use crate::table::delta::{DataFile, DeltaTable, Layout};
use crate::table::manifests::{self, part_epoch, scope_of};
use crate::table::{Committed, EpochFiles, EpochLog, Holding, LogError};
use arrow_array::RecordBatch;
use arrow_json::reader::{ReaderBuilder, infer_json_schema_from_iterator};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use delta_kernel_default_engine::stats::FileStatsAccumulator;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `type = "parquet"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ParquetConfig {
    /// Output location: a local folder (created if missing, relative to
    /// the configuration file) or a URL, `s3://bucket/prefix`, `file:///dir`.
    pub path: PathBuf,
    /// Object-store options (S3 endpoint, credentials, …); see the README.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Columns, in order; inferred from the first batch when absent.
    #[serde(default)]
    pub schema: Vec<Column>,
    /// Hive-style partition folders `<field>=<value>/` from a field, or
    /// nested from several (`["season", "game_date"]`), in that order.
    #[serde(default, deserialize_with = "one_or_many")]
    pub partition_by: Vec<String>,
    /// Partition folder `date=YYYY-MM-DD/` from a timestamp field, or
    /// from the time of writing with `"processing-time"`.
    pub partition_by_date: Option<String>,
    /// Start a new file after this many rows.
    #[serde(default = "default_max_rows")]
    pub max_rows_per_file: u64,
    /// Start a new file after about this many bytes, e.g. `"128MiB"`.
    #[serde(
        default = "default_max_bytes",
        deserialize_with = "crate::config::byte_size"
    )]
    pub max_file_size: u64,
    /// Start a new file after this long, e.g. `"10s"`; none by default.
    #[serde(default, deserialize_with = "super::optional_duration")]
    pub rollover_interval: Option<Duration>,
    /// Files open at once (one per partition folder written to): opening
    /// one more finishes the least recently written. Each open file holds
    /// its row group and upload buffer in memory, so this bounds the sink's
    /// memory however many folders the records spread over.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// `zstd` (default), `snappy` or `none`.
    #[serde(default)]
    pub compression: Codec,
    /// Rows per row group. The open row group is held in memory, so this
    /// bounds the sink's memory; readers skip data by row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Rewrite `_weir/committed` (the committed files, for readers that
    /// are not weir) after each commit that added files.
    #[serde(default = "yes")]
    pub committed_list: bool,
    /// Compact small committed files while writing (`every`, and the
    /// options of `weir compact`).
    pub compaction: Option<crate::table::compact::Options>,
    /// The table format: `"delta"` (a Delta Lake table, readable by every
    /// engine that reads Delta) or `"weir"` (weir's own epoch manifests).
    /// By default a location that already holds weir manifests and no
    /// Delta log stays `"weir"`; every other location is `"delta"`.
    pub table: Option<TableFormat>,
    /// Delta: write a log checkpoint every this many commits.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
}

/// How a Parquet location records which files hold committed rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableFormat {
    /// A Delta Lake table (`_delta_log/`).
    Delta,
    /// weir's epoch manifests (`_weir/`), readable by weir and through
    /// `_weir/committed`.
    Weir,
}

fn default_checkpoint_every() -> u64 {
    100
}

/// `"field"` or `["field", …]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(field) => vec![field],
        OneOrMany::Many(fields) => fields,
    })
}

fn default_row_group_rows() -> usize {
    65_536
}

fn default_max_open_files() -> usize {
    4
}

fn default_max_rows() -> u64 {
    1_000_000
}

fn default_max_bytes() -> u64 {
    128 << 20
}

/// One column of a configured schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Column {
    /// Field name in the records and column name in the file.
    pub name: String,
    /// `string`, `int32`, `int64`, `float32`, `float64`, `boolean`, `date`
    /// or `timestamp` (microseconds, UTC).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the field may be missing or null.
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

impl Column {
    fn arrow_type(&self) -> std::result::Result<DataType, String> {
        Ok(match self.data_type.as_str() {
            "string" | "utf8" => DataType::Utf8,
            "int32" => DataType::Int32,
            "int64" => DataType::Int64,
            "float32" => DataType::Float32,
            "float64" | "double" => DataType::Float64,
            "boolean" | "bool" => DataType::Boolean,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            other => {
                return Err(format!(
                    "column {}: unknown type {other:?} (use string, int32, int64, float32, float64, boolean, date or timestamp)",
                    self.name
                ));
            }
        })
    }
}

/// The Arrow schema of `schema = [...]`.
pub fn configured_schema(columns: &[Column]) -> std::result::Result<SchemaRef, String> {
    let fields = columns
        .iter()
        .map(|c| Ok(Field::new(&c.name, c.arrow_type()?, c.nullable)))
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Compression codec of the column chunks.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    /// Zstandard, level 3.
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// No compression.
    None,
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    path: StorePath,
    rows: u64,
    opened: Instant,
    /// The sink's write count at this file's last write (for finishing
    /// the least recently written one).
    touched: u64,
    /// Delta: the file's statistics so far, and its partition values.
    stats: Option<FileStatsAccumulator>,
    partition: Vec<Option<String>>,
}

/// The Delta side of a sink writing a Delta table.
struct Delta {
    table: DeltaTable,
    /// Once prepared: the table's layout, and which columns of the record
    /// schema a data file holds (partition columns live in the log only).
    layout: Option<Layout>,
    data_columns: Vec<usize>,
    data_schema: Option<SchemaRef>,
}

/// The sink.
pub struct ParquetSink {
    location: Location,
    config: ParquetConfig,
    schema: Option<SchemaRef>,
    /// Open files by partition folder (`""` when not partitioned).
    files: HashMap<String, OpenFile>,
    run_id: u64,
    seq: u32,
    /// Writes so far, the clock of [`OpenFile::touched`].
    writes: u64,
    /// Exactly-once: the pipeline, and the files finished in the epoch
    /// not yet committed.
    epochs: Option<Epochs>,
    /// When this sink opened or last started a scheduled compaction.
    compacted: Instant,
    /// The table format, once known (the default needs a look at the
    /// location); with Delta, the table.
    format: Option<TableFormat>,
    delta: Option<Delta>,
    /// weir's manifest chains, the epoch log when the format is `"weir"`.
    chains: manifests::Chains,
}

struct Epochs {
    /// The pipeline, or in group mode the partition's checkpoint key.
    pipeline: String,
    /// This process's claim of the chain (always, unless opened by
    /// [`Sink::recover`] alone).
    claimed: Option<Claimed>,
    /// Number in the names of files written now: last committed + 1.
    pending: u64,
    finished: Vec<String>,
    /// Delta: the finished files with what their `add` actions need.
    added: Vec<DataFile>,
    /// Rows written since the last commit.
    rows: u64,
    /// The last committed checkpoint, to skip empty manifests when idle.
    last: Option<Checkpoint>,
}

/// This sink's claim of a manifest chain.
struct Claimed {
    /// Group mode: the partition in part file names (`topic.partition`).
    scope: Option<String>,
    owner: String,
    /// The slot of this process's claim manifest.
    slot: u64,
    /// Every slot claimed so far in the chain (epochs with no files).
    claims: Vec<u64>,
    /// One process: when the lease file was last written.
    leased: Option<Instant>,
}

/// How often a single-process pipeline's sink rewrites its lease file
/// (at most; at its commits), which tells a second process it still runs.
const LEASE_RENEWAL: Duration = Duration::from_secs(2);

/// `_weir/<pipeline>/lease.json`: who holds a single-process pipeline.
#[derive(serde::Serialize, serde::Deserialize)]
struct Lease {
    owner: String,
    /// When it was written, epoch milliseconds of the writer's clock.
    renewed_ms: i64,
}

impl ParquetSink {
    /// Opens the location; files are created on first write.
    pub fn open(config: &ParquetConfig, base_dir: &std::path::Path) -> Result<Self> {
        let location =
            crate::store::open(&config.path.to_string_lossy(), &config.options, base_dir).map_err(
                |e| Error::Format {
                    sink: format!("parquet {}", config.path.display()),
                    action: "open".into(),
                    reason: e.reason,
                },
            )?;
        let schema = if config.schema.is_empty() {
            None
        } else {
            Some(
                configured_schema(&config.schema).map_err(|reason| Error::Format {
                    sink: format!("parquet {}", config.path.display()),
                    action: "read schema".into(),
                    reason,
                })?,
            )
        };
        Ok(ParquetSink {
            location: location.clone(),
            config: config.clone(),
            schema,
            files: HashMap::new(),
            run_id: crate::record::now_ms() as u64,
            seq: 0,
            writes: 0,
            epochs: None,
            compacted: Instant::now(),
            format: config.table,
            delta: None,
            chains: manifests::Chains { location },
        })
    }

    /// The table format: as configured, else `weir` for a location that
    /// holds weir manifests and no Delta log, else `delta`. With Delta, the
    /// table is opened.
    async fn format(&mut self) -> Result<TableFormat> {
        if let Some(format) = self.format
            && (format == TableFormat::Weir || self.delta.is_some())
        {
            return Ok(format);
        }
        let table = DeltaTable::open(&self.location, self.config.checkpoint_every)
            .map_err(|e| self.log_error(e.into()))?;
        let format = match self.format {
            Some(format) => format,
            None => {
                let delta = table.exists().await.map_err(|e| self.log_error(e.into()))?;
                let mut manifests = self
                    .location
                    .store
                    .list(Some(&self.location.child("_weir")));
                let weir = manifests
                    .try_next()
                    .await
                    .map_err(|e| self.store_error("list _weir/".into(), e))?
                    .is_some();
                if weir && !delta {
                    tracing::info!(sink = %self.describe(), "The location holds weir manifests and no Delta log: writing weir manifests (set table = \"weir\" to say so; see the README, Table formats).");
                    TableFormat::Weir
                } else {
                    TableFormat::Delta
                }
            }
        };
        if format == TableFormat::Delta {
            self.delta = Some(Delta {
                table,
                layout: None,
                data_columns: Vec::new(),
                data_schema: None,
            });
        }
        self.format = Some(format);
        Ok(format)
    }

    /// Delta: the layout the sink writes, from the record schema.
    fn wanted_layout(&self, schema: &SchemaRef) -> Layout {
        let mut fields: Vec<arrow_schema::FieldRef> = schema.fields().iter().cloned().collect();
        let mut partition_columns = Vec::new();
        if self.config.partition_by_date.is_some() {
            fields.push(Arc::new(crate::table::delta::date_partition_field()));
            partition_columns.push("date".to_owned());
        }
        partition_columns.extend(self.config.partition_by.iter().cloned());
        Layout {
            schema: Arc::new(Schema::new(fields)),
            partition_columns,
        }
    }

    /// Delta: creates or checks the table for `schema` (the records'),
    /// once.
    async fn prepare_delta(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.delta.as_ref().is_none_or(|d| d.layout.is_some()) {
            return Ok(());
        }
        // Delta spells a UTC timestamp's zone "UTC".
        let schema = &crate::table::delta::utc_timestamps(schema);
        self.schema = Some(schema.clone());
        let wanted = self.wanted_layout(schema);
        let delta = self.delta.as_mut().expect("checked above");
        let layout = match delta.table.prepare(&wanted).await {
            Ok(layout) => layout,
            Err(e) => return Err(self.log_error(e.into())),
        };
        let data_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| !layout.partition_columns.contains(schema.field(i).name()))
            .collect();
        let data_schema = Arc::new(
            schema
                .project(&data_columns)
                .map_err(|e| self.format_error("project the data columns", e))?,
        );
        let delta = self.delta.as_mut().expect("checked above");
        delta.layout = Some(layout);
        delta.data_columns = data_columns;
        delta.data_schema = Some(data_schema);
        Ok(())
    }

    /// Delta with no configured schema: the existing table's, if any (the
    /// records' columns: the table's less a `partition-by-date` column).
    async fn schema_from_table(&mut self) -> Result<()> {
        if self.schema.is_some() {
            return Ok(());
        }
        let Some(delta) = self.delta.as_mut() else {
            return Ok(());
        };
        let layout = match delta.table.existing_layout().await {
            Ok(layout) => layout,
            Err(e) => return Err(self.log_error(e.into())),
        };
        if let Some(layout) = layout {
            let by_date = self.config.partition_by_date.is_some();
            let fields: Vec<arrow_schema::FieldRef> = layout
                .schema
                .fields()
                .iter()
                .filter(|f| !(by_date && f.name() == "date"))
                .cloned()
                .collect();
            let schema = Arc::new(Schema::new(fields));
            self.schema = Some(schema.clone());
            self.prepare_delta(&schema).await?;
        }
        Ok(())
    }

    fn format_error(&self, action: &str, e: impl std::fmt::Display) -> Error {
        Error::Format {
            sink: self.describe(),
            action: action.into(),
            reason: e.to_string(),
        }
    }

    fn infer_schema(&self, records: &[Record]) -> Result<SchemaRef> {
        let values = records
            .iter()
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.value).ok());
        let schema = infer_json_schema_from_iterator(values.map(Ok))
            .map_err(|e| self.format_error("infer schema", e))?;
        Ok(Arc::new(schema))
    }

    /// Decodes records into one batch, or per record to find the ones that
    /// do not fit.
    fn decode(
        &self,
        schema: &SchemaRef,
        records: Vec<Record>,
    ) -> Result<(Vec<RecordBatch>, Vec<Rejected>)> {
        let capacity = records.len().max(1);
        let decode = |values: &mut dyn Iterator<Item = &[u8]>| -> std::result::Result<Option<RecordBatch>, String> {
            let mut decoder = ReaderBuilder::new(schema.clone())
                .with_strict_mode(true)
                .with_batch_size(capacity)
                .build_decoder()
                .map_err(|e| e.to_string())?;
            for value in values {
                // Each value must be exactly one complete object, so that a
                // truncated record can never merge with the next one.
                let before = decoder.len();
                decoder.decode(value).map_err(|e| e.to_string())?;
                decoder.decode(b"\n").map_err(|e| e.to_string())?;
                if decoder.has_partial_record() || decoder.len() != before + 1 {
                    return Err("value is not exactly one complete JSON object".into());
                }
            }
            decoder.flush().map_err(|e| e.to_string())
        };
        if let Ok(batch) = decode(&mut records.iter().map(|r| r.value.as_slice())) {
            return Ok((batch.into_iter().collect(), Vec::new()));
        }
        let mut batches = Vec::new();
        let mut rejected = Vec::new();
        for record in records {
            match decode(&mut std::iter::once(record.value.as_slice())) {
                Ok(batch) => batches.extend(batch),
                Err(reason) => rejected.push(Rejected {
                    record,
                    reason: format!(
                        "does not fit the Parquet schema of {}: {reason}",
                        self.describe()
                    ),
                }),
            }
        }
        Ok((batches, rejected))
    }

    /// Splits records by partition folder, each group with its partition
    /// values (in folder order; `None` is null); refuses records whose
    /// partition field cannot be read, or (Delta) does not fit its column.
    fn partition(&self, records: Vec<Record>) -> (Vec<Group>, Vec<Rejected>) {
        let by_field = &self.config.partition_by;
        let by_date = self.config.partition_by_date.as_deref();
        if by_field.is_empty() && by_date.is_none() {
            return (
                vec![Group {
                    folder: String::new(),
                    values: Vec::new(),
                    records,
                }],
                Vec::new(),
            );
        }
        let layout = self.delta.as_ref().and_then(|d| d.layout.as_ref());
        let today = date_folder(crate::record::now_ms());
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let mut rejected = Vec::new();
        for record in records {
            match partition_folder(&record.value, by_date, by_field, &today, layout.is_some()) {
                Ok((folder, values)) => groups
                    .entry(folder.clone())
                    .or_insert_with(|| Group {
                        folder,
                        values,
                        records: Vec::new(),
                    })
                    .records
                    .push(record),
                Err(reason) => rejected.push(Rejected { record, reason }),
            }
        }
        let mut fitting = Vec::with_capacity(groups.len());
        for group in groups.into_values() {
            let unfit =
                layout.and_then(|layout| {
                    layout.partition_columns.iter().zip(&group.values).find_map(
                        |(column, value)| {
                            crate::table::delta::partition_scalar(layout, column, value.as_deref())
                                .err()
                        },
                    )
                });
            match unfit {
                Some(reason) => rejected.extend(group.records.into_iter().map(|record| Rejected {
                    record,
                    reason: reason.clone(),
                })),
                None => fitting.push(group),
            }
        }
        (fitting, rejected)
    }

    fn writer(
        &mut self,
        folder: &str,
        values: &[Option<String>],
        schema: &SchemaRef,
    ) -> Result<&mut OpenFile> {
        if !self.files.contains_key(folder) {
            self.seq += 1;
            let name = match &self.epochs {
                Some(Epochs {
                    pending,
                    claimed:
                        Some(Claimed {
                            scope: Some(scope), ..
                        }),
                    ..
                }) => format!("{folder}part-{pending:010}-{:05}-{scope}.parquet", self.seq),
                Some(e) => format!("{folder}part-{:010}-{:05}.parquet", e.pending, self.seq),
                None => format!("{folder}part-{}-{:05}.parquet", self.run_id, self.seq),
            };
            let path = self.location.child(&name);
            let compression = match self.config.compression {
                Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
                Codec::Snappy => Compression::SNAPPY,
                Codec::None => Compression::UNCOMPRESSED,
            };
            let props = WriterProperties::builder()
                .set_compression(compression)
                .set_max_row_group_row_count(Some(self.config.row_group_rows.max(1)))
                .build();
            let object = BufWriter::new(self.location.store.clone(), path.clone());
            let writer = AsyncArrowWriter::try_new(object, schema.clone(), Some(props))
                .map_err(|e| self.format_error("open writer", e))?;
            let stats = match &self.delta {
                Some(delta) => Some(
                    delta
                        .table
                        .stats_collector(schema)
                        .map_err(|e| self.log_error(e.into()))?,
                ),
                None => None,
            };
            self.files.insert(
                folder.to_owned(),
                OpenFile {
                    writer,
                    path,
                    rows: 0,
                    opened: Instant::now(),
                    touched: 0,
                    stats,
                    partition: values.to_vec(),
                },
            );
        }
        Ok(self.files.get_mut(folder).expect("just opened"))
    }

    /// Completes a file: its last row group and footer are written and the
    /// upload completed, which makes it visible.
    async fn finish(&mut self, folder: &str) -> Result<()> {
        let Some(mut open) = self.files.remove(folder) else {
            return Ok(());
        };
        open.writer
            .finish()
            .await
            .map_err(|e| self.format_error(&format!("complete {}", open.path), e))?;
        tracing::debug!(file = %open.path, rows = open.rows, "Finished Parquet file.");
        let added = match open.stats {
            Some(stats) => {
                let stats = stats
                    .finish()
                    .map_err(|e| self.format_error(&format!("statistics of {}", open.path), e))?
                    .ok_or_else(|| {
                        self.format_error(&format!("statistics of {}", open.path), "no rows")
                    })?;
                Some(DataFile {
                    path: open.path.clone(),
                    size: open.writer.bytes_written() as u64,
                    partition: open.partition,
                    stats,
                })
            }
            None => None,
        };
        match (&mut self.epochs, added) {
            (Some(epochs), added) => {
                epochs.finished.push(open.path.to_string());
                epochs.added.extend(added);
            }
            // Delta without exactly-once: each file is its own commit.
            (None, Some(added)) => {
                let delta = self.delta.as_mut().expect("stats are collected for Delta");
                if let Err(e) = delta.table.append(vec![added]).await {
                    return Err(self.log_error(e.into()));
                }
            }
            (None, None) => {}
        }
        Ok(())
    }

    fn store_error(&self, action: String, e: object_store::Error) -> Error {
        if crate::store::is_transient(&e) {
            // Connection and server errors: object_store has retried already.
            Error::Unavailable {
                sink: self.describe(),
                action,
                reason: e.to_string(),
            }
        } else {
            self.format_error(&action, e)
        }
    }

    fn due(&self, file: &OpenFile) -> bool {
        file.rows >= self.config.max_rows_per_file
            || file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64
                >= self.config.max_file_size
            || self
                .config
                .rollover_interval
                .is_some_and(|every| file.opened.elapsed() >= every)
    }

    /// Before a file is opened for `folder`: when `max-open-files` are
    /// open, finishes the least recently written.
    async fn make_room(&mut self, folder: &str) -> Result<()> {
        if self.files.contains_key(folder) || self.files.len() < self.config.max_open_files.max(1) {
            return Ok(());
        }
        let oldest = self
            .files
            .iter()
            .min_by_key(|(_, file)| file.touched)
            .map(|(folder, _)| folder.clone());
        if let Some(oldest) = oldest {
            tracing::debug!(folder = %oldest, open = self.files.len(), "Finishing the least recently written file (max-open-files).");
            self.finish(&oldest).await?;
        }
        Ok(())
    }

    async fn roll_due(&mut self) -> Result<()> {
        let due: Vec<String> = self
            .files
            .iter()
            .filter(|(_, f)| self.due(f))
            .map(|(k, _)| k.clone())
            .collect();
        for folder in due {
            self.finish(&folder).await?;
        }
        Ok(())
    }
}

/// `date=YYYY-MM-DD/` of an epoch-millisecond time (UTC).
fn date_folder(epoch_ms: i64) -> String {
    let (y, m, d) = weir_plugin_kit::time::civil_from_days(epoch_ms.div_euclid(86_400_000));
    format!("date={y:04}-{m:02}-{d:02}/")
}

/// Records of one partition folder, with the partition values.
struct Group {
    folder: String,
    /// Per partition column (`date` first, then `partition-by`), its value
    /// as text; `None` is null.
    values: Vec<Option<String>>,
    records: Vec<Record>,
}

/// The partition folder of one record value, and the partition values.
/// With `distinct` (Delta, where the log holds the values and a folder
/// name is only a name), a value that had to be altered to be a folder
/// name gets a digest of itself appended, so distinct values never share a
/// folder (and a file).
fn partition_folder(
    value: &[u8],
    by_date: Option<&str>,
    by_fields: &[String],
    today: &str,
    distinct: bool,
) -> std::result::Result<(String, Vec<Option<String>>), String> {
    let needs_value = !by_fields.is_empty() || by_date.is_some_and(|d| d != "processing-time");
    let object: serde_json::Map<String, serde_json::Value> = if needs_value {
        serde_json::from_slice(value)
            .map_err(|e| format!("cannot read the partition field: not a JSON object: {e}"))?
    } else {
        serde_json::Map::new()
    };
    let mut folder = String::new();
    let mut values = Vec::with_capacity(by_fields.len() + 1);
    match by_date {
        Some("processing-time") => folder.push_str(today),
        Some(field) => {
            let time = match object.get(field) {
                Some(serde_json::Value::String(text)) => weir_plugin_kit::time::parse(text)
                    .map(|t| t.local_ms)
                    .map_err(|e| format!("partition-by-date field {field:?}: {e}"))?,
                Some(serde_json::Value::Number(n)) => n.as_i64().ok_or_else(|| {
                    format!("partition-by-date field {field:?}: {n} is not epoch milliseconds")
                })?,
                _ => {
                    return Err(format!(
                        "partition-by-date field {field:?} is missing or not a time"
                    ));
                }
            };
            folder.push_str(&date_folder(time));
        }
        None => {}
    }
    if by_date.is_some() {
        let date = folder.trim_start_matches("date=").trim_end_matches('/');
        values.push(Some(date.to_owned()));
    }
    for field in by_fields {
        let value = match object.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let name = value.as_deref().unwrap_or("__HIVE_DEFAULT_PARTITION__");
        // A value must stay one folder: no separators, no `..`.
        let safe: String = name
            .chars()
            .map(|c| {
                let plain = if distinct {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
                } else {
                    !(matches!(c, '/' | '\\' | '=' | '\0') || c.is_control())
                };
                if plain { c } else { '_' }
            })
            .collect();
        let mut safe = if safe.is_empty() || safe == "." || safe == ".." {
            format!("_{safe}")
        } else {
            safe
        };
        if distinct && (safe != name || value.is_some() && name == "__HIVE_DEFAULT_PARTITION__") {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(name.as_bytes());
            safe = format!("{safe}-{}", hex::encode(&digest[..4]));
        }
        folder.push_str(&format!("{field}={safe}/"));
        values.push(value);
    }
    Ok((folder, values))
}

#[async_trait]
impl Sink for ParquetSink {
    fn describe(&self) -> String {
        format!("parquet {}", self.location.display)
    }

    async fn write(&mut self, records: Vec<Record>) -> Result<Vec<Rejected>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if self.format().await? == TableFormat::Delta {
            self.schema_from_table().await?;
        }
        let schema = match &self.schema {
            Some(schema) => schema.clone(),
            None => {
                let schema = self.infer_schema(&records)?;
                self.schema = Some(schema.clone());
                schema
            }
        };
        self.prepare_delta(&schema).await?;
        let schema = self.schema.clone().expect("set above");
        // What a file holds: with Delta, the columns less the partition
        // columns (their values are in the log).
        let (file_schema, data_columns) = match &self.delta {
            Some(Delta {
                data_schema: Some(data),
                data_columns,
                ..
            }) => (data.clone(), Some(data_columns.clone())),
            _ => (schema.clone(), None),
        };
        let (groups, mut rejected) = self.partition(records);
        for group in groups {
            let folder = group.folder;
            let (batches, refused) = self.decode(&schema, group.records)?;
            rejected.extend(refused);
            for batch in batches {
                let batch = match &data_columns {
                    Some(columns) => batch
                        .project(columns)
                        .map_err(|e| self.format_error("project the data columns", e))?,
                    None => batch,
                };
                let rows = batch.num_rows() as u64;
                if let Some(epochs) = &mut self.epochs {
                    epochs.rows += rows;
                }
                self.make_room(&folder).await?;
                self.writes += 1;
                let writes = self.writes;
                let open = self.writer(&folder, &group.values, &file_schema)?;
                let written = open.writer.write(&batch).await;
                open.rows += rows;
                open.touched = writes;
                let merged = open.stats.as_mut().map(|stats| stats.merge(&batch));
                let path = open.path.clone();
                let due = self.due(&self.files[&folder]);
                written.map_err(|e| self.format_error(&format!("write {path}"), e))?;
                if let Some(Err(e)) = merged {
                    return Err(self.format_error(&format!("statistics of {path}"), e));
                }
                if due {
                    self.finish(&folder).await?;
                }
            }
        }
        Ok(rejected)
    }

    async fn flush(&mut self) -> Result<()> {
        self.roll_due().await
    }

    fn is_durable(&self) -> bool {
        self.files.is_empty()
    }

    async fn close(&mut self) -> Result<()> {
        if self.epochs.is_some() {
            // Uncommitted files are not finished: a replay rewrites them.
            self.files.clear();
            return Ok(());
        }
        let folders: Vec<String> = self.files.keys().cloned().collect();
        for folder in folders {
            self.finish(&folder).await?;
        }
        Ok(())
    }

    fn epochs(&mut self) -> Option<&mut dyn EpochStore> {
        Some(self)
    }
}

/// Exactly-once through the location's table format: a Delta commit per
/// epoch ([`crate::table::delta`]), or weir's manifest chain.
#[async_trait]
impl EpochStore for ParquetSink {
    async fn recover(&mut self, pipeline: &str) -> Result<Option<Checkpoint>> {
        self.prepare_log().await?;
        let last = self.log().last(pipeline).await;
        let last = last.map_err(|e| self.log_error(e))?;
        let committed = last.as_ref().map_or(0, |c| c.epoch);
        self.start_epochs(pipeline, committed, last, None).await
    }

    async fn holder(&mut self, key: &str) -> Result<Option<crate::owner::Holder>> {
        let path = self.lease_path(key);
        let bytes = match self.location.store.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| self.store_error(format!("read {path}"), e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error(format!("read {path}"), e)),
        };
        // An unreadable lease holds nothing: the claim still fences.
        let Ok(lease) = serde_json::from_slice::<Lease>(&bytes) else {
            tracing::warn!(%path, "Unreadable lease file; ignoring it.");
            return Ok(None);
        };
        let age = (crate::record::now_ms() - lease.renewed_ms).max(0) as u64;
        Ok(Some(crate::owner::Holder {
            owner: lease.owner,
            renewed: Duration::from_millis(age),
        }))
    }

    async fn claim(&mut self, key: &str, owner: &str) -> Result<Option<Checkpoint>> {
        let (slot, claims, checkpoint) = if self.prepare_log().await? {
            let claim = self.log().claim(key, owner).await;
            let claim = claim.map_err(|e| self.log_error(e))?;
            tracing::debug!(sink = %self.describe(), partition = key, slot = claim.slot, "Partition claimed.");
            (claim.slot, claim.claims, Some(claim.checkpoint))
        } else {
            // No table and no schema yet: the table is made from the first
            // batch. Nothing can have been committed, so the first epoch's
            // commit is the claim (slot 0; the log refuses it if another
            // process claimed meanwhile).
            (0, Vec::new(), None)
        };
        let mut claimed = Claimed {
            scope: key.contains('@').then(|| scope_of(key)),
            owner: owner.to_owned(),
            slot,
            claims,
            leased: None,
        };
        if claimed.scope.is_none() && self.write_lease(key, owner).await {
            claimed.leased = Some(Instant::now());
        }
        self.start_epochs(key, slot, checkpoint, Some(claimed))
            .await
    }

    async fn commit(&mut self, checkpoint: &Checkpoint, force: bool) -> Result<bool> {
        let Some(epochs) = &self.epochs else {
            return Err(super::no_exactly_once(&self.describe()));
        };
        let pipeline = epochs.pipeline.clone();
        if let Some(Claimed {
            scope: None,
            owner,
            leased,
            ..
        }) = &epochs.claimed
            && leased.is_none_or(|at| at.elapsed() >= LEASE_RENEWAL)
        {
            let owner = owner.clone();
            if self.write_lease(&pipeline, &owner).await {
                let claimed = self.epochs.as_mut().and_then(|e| e.claimed.as_mut());
                claimed.expect("matched above").leased = Some(Instant::now());
            }
        }
        let epochs = self.epochs.as_ref().expect("checked above");
        let due = self.files.values().any(|f| self.due(f)) || !epochs.finished.is_empty();
        let timed = self.config.rollover_interval.is_some();
        if timed && !due && !force && epochs.rows > 0 {
            return Ok(false);
        }
        let idle = epochs.rows == 0
            && epochs.finished.is_empty()
            && epochs.last.as_ref().is_some_and(|last| {
                last.positions == checkpoint.positions && last.state == checkpoint.state
            });
        if idle {
            // Nothing new: the stored checkpoint is equivalent.
            return Ok(true);
        }
        let tableless = self.delta.as_ref().is_some_and(|d| d.layout.is_none());
        if tableless && epochs.rows == 0 && epochs.finished.is_empty() {
            // Delta with no table yet (its schema comes from the first
            // batch) and nothing read: nothing to commit, and nowhere to.
            return Ok(false);
        }
        let folders: Vec<String> = self.files.keys().cloned().collect();
        for folder in folders {
            self.finish(&folder).await?;
        }
        crate::crash::point("after-upload");
        let epochs = self.epochs.as_mut().expect("checked above");
        let files = EpochFiles {
            paths: std::mem::take(&mut epochs.finished),
            added: std::mem::take(&mut epochs.added),
        };
        let paths = files.paths.clone();
        let holding = epochs
            .claimed
            .as_ref()
            .map(|c| (c.owner.clone(), c.slot, c.claims.clone()));
        epochs.pending = checkpoint.epoch + 1;
        epochs.rows = 0;
        epochs.last = Some(checkpoint.clone());
        self.seq = 0;
        let committed = self
            .log()
            .commit(
                &pipeline,
                checkpoint,
                holding.as_ref().map(|(owner, slot, claims)| Holding {
                    owner,
                    slot: *slot,
                    claims,
                }),
                files,
            )
            .await;
        let newer = match committed.map_err(|e| self.log_error(e))? {
            Committed::Yes => {
                tracing::debug!(sink = %self.describe(), checkpoint = %pipeline, epoch = checkpoint.epoch, "Epoch committed.");
                if !paths.is_empty() {
                    self.after_commit().await;
                }
                return Ok(true);
            }
            Committed::Refused { newer } => newer,
        };
        // Refused: the files of this epoch will never be committed.
        for file in paths.iter().filter_map(|f| StorePath::parse(f).ok()) {
            if let Err(e) = self.location.store.delete(&file).await {
                tracing::warn!(%file, error = %e, "Could not delete a part file of a refused epoch; no commit names it, so no reader sees it.");
            }
        }
        let epoch = checkpoint.epoch;
        Err(match holding {
            // The claim was deferred (no table yet when this process took
            // the partition) and another process committed it meanwhile:
            // this process never held a slot, so it is not a zombie; it
            // starts over from that commit.
            Some((_, 0, _)) => Error::Unavailable {
                sink: self.describe(),
                action: format!("commit epoch {epoch} of {pipeline}"),
                reason: format!(
                    "another process committed {pipeline} ({newer}) while this one waited for the table to be created; resuming from that commit"
                ),
            },
            Some((_, slot, _)) => Error::Fenced {
                sink: self.describe(),
                partition: pipeline,
                owner_epoch: slot as i64,
            },
            None => Error::Client {
                sink: self.describe(),
                action: format!("commit epoch {epoch}"),
                reason: format!("{newer}: another weir process runs pipeline {pipeline}"),
                hint: "run each pipeline in one process; this one stops without committing",
            },
        })
    }
}

impl ParquetSink {
    /// The epoch log of the location's table format: the Delta table, or
    /// weir's manifest chains.
    fn log(&mut self) -> &mut dyn EpochLog {
        match &mut self.delta {
            Some(delta) => &mut delta.table,
            None => &mut self.chains,
        }
    }

    /// Before the epoch log is read: the table format, and for Delta the
    /// schema and layout (the table's, or the configured columns). Whether
    /// the log can take a claim now: not while a Delta table does not
    /// exist and no schema is configured (the first batch makes it).
    async fn prepare_log(&mut self) -> Result<bool> {
        if self.format().await? != TableFormat::Delta {
            return Ok(true);
        }
        self.schema_from_table().await?;
        let Some(schema) = self.schema.clone() else {
            return Ok(false);
        };
        self.prepare_delta(&schema).await?;
        Ok(true)
    }

    /// An epoch log's failure as the sink's error: transient ones are an
    /// outage.
    fn log_error(&self, e: LogError) -> Error {
        match e {
            LogError::Unavailable { action, reason } => Error::Unavailable {
                sink: self.describe(),
                action,
                reason,
            },
            LogError::Failed { action, reason } => self.format_error(&action, reason),
        }
    }
}

/// Locations this process is compacting now, and whether a commit asked
/// for another compaction meanwhile: one compaction at a time per
/// location, however many partitions' sinks write there, and none asked
/// for is lost.
static COMPACTING: std::sync::LazyLock<std::sync::Mutex<HashMap<String, bool>>> =
    std::sync::LazyLock::new(Default::default);

impl ParquetSink {
    /// After a commit that added files: rewrites `_weir/committed` and, when
    /// due, starts a compaction beside the writer (best effort: a reader
    /// that goes by the manifests is always right; the list catches up at
    /// the next commit).
    async fn after_commit(&mut self) {
        if self.config.committed_list
            && self.delta.is_none()
            && let Err(e) = crate::table::write_committed_list(&self.location).await
        {
            tracing::warn!(sink = %self.describe(), error = %e, "Could not rewrite the committed-file list; the next commit tries again.");
        }
        let Some(options) = &self.config.compaction else {
            return;
        };
        let every = options.every.unwrap_or(Duration::from_secs(600));
        if self.compacted.elapsed() < every {
            return;
        }
        self.compacted = Instant::now();
        let key = self.location.display.clone();
        {
            let mut running = COMPACTING.lock().expect("not poisoned");
            if let Some(again) = running.get_mut(&key) {
                *again = true;
                return;
            }
            running.insert(key.clone(), false);
        }
        let (location, options) = (self.location.clone(), options.clone());
        tokio::spawn(async move {
            loop {
                match crate::table::compact::compact(&location, &options).await {
                    Ok(report) if report.version.is_some() => {
                        tracing::info!(location = %location.display, files_before = report.files_before, files_after = report.files_after, "Scheduled compaction done.");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "Scheduled compaction failed; the next one tries again.")
                    }
                }
                let mut running = COMPACTING.lock().expect("not poisoned");
                match running.get_mut(&key) {
                    Some(again) if *again => *again = false,
                    _ => {
                        running.remove(&key);
                        return;
                    }
                }
            }
        });
    }
}

impl ParquetSink {
    fn lease_path(&self, pipeline: &str) -> StorePath {
        manifests::folder(&self.location, pipeline).join("lease.json")
    }

    /// One process: writes the lease file; whether it was written (best
    /// effort: a lapsed lease lets a standby claim the chain, and the claim
    /// fences this process at its next commit — never a row twice).
    async fn write_lease(&mut self, pipeline: &str, owner: &str) -> bool {
        let lease = Lease {
            owner: owner.to_owned(),
            renewed_ms: crate::record::now_ms(),
        };
        let body = serde_json::to_vec(&lease).expect("a lease serialises");
        let path = self.lease_path(pipeline);
        match self.location.store.put(&path, body.into()).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(%path, error = %e, "Could not renew the lease; a standby may take over.");
                false
            }
        }
    }

    /// From the newest manifest on: deletes the part files no manifest
    /// commits (of later epochs, or of claimed slots — this sink's own, or
    /// its partition's in group mode), then starts holding epochs.
    async fn start_epochs(
        &mut self,
        pipeline: &str,
        committed: u64,
        checkpoint: Option<Checkpoint>,
        claimed: Option<Claimed>,
    ) -> Result<Option<Checkpoint>> {
        let scope = claimed.as_ref().and_then(|g| g.scope.clone());
        let void: Vec<u64> = claimed
            .as_ref()
            .map(|g| g.claims.clone())
            .unwrap_or_default();
        let uncommitted: Vec<StorePath> = self
            .location
            .store
            .list(Some(&self.location.prefix))
            .try_filter_map(|meta| {
                let (scope, void) = (&scope, &void);
                async move {
                    let name = meta.location.filename().unwrap_or_default();
                    let stray = part_epoch(name).is_some_and(|(epoch, of)| {
                        of == scope.as_deref() && (epoch > committed || void.contains(&epoch))
                    });
                    Ok(stray.then_some(meta.location))
                }
            })
            .try_collect()
            .await
            .map_err(|e| self.store_error("list part files".into(), e))?;
        for path in &uncommitted {
            self.location
                .store
                .delete(path)
                .await
                .map_err(|e| self.store_error(format!("delete uncommitted {path}"), e))?;
        }
        if !uncommitted.is_empty() {
            tracing::info!(sink = %self.describe(), checkpoint = pipeline, files = uncommitted.len(), after_epoch = committed, "Deleted part files no manifest commits; their records are written again.");
        }
        self.epochs = Some(Epochs {
            pipeline: pipeline.to_owned(),
            claimed,
            pending: committed + 1,
            finished: Vec::new(),
            added: Vec::new(),
            rows: 0,
            last: checkpoint.clone(),
        });
        Ok(checkpoint)
    }
}

/// Group mode: the owner of each partition as the Delta log's domain
/// `weir.owners.<pipeline>` names it, or as the newest manifest of each
/// partition's chain names the process that wrote it.
#[async_trait]
impl Owners for ParquetSink {
    async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>> {
        self.format().await?;
        let owners = self.log().owners(pipeline).await;
        owners.map_err(|e| self.log_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_folders_come_from_fields_and_dates() {
        let v = br#"{"city":"Oslo/Nord","ts":"2024-03-05 23:10:00"}"#;
        assert_eq!(
            partition_folder(v, Some("ts"), &["city".into()], "date=x/", false)
                .unwrap()
                .0,
            "date=2024-03-05/city=Oslo_Nord/"
        );
        let (folder, values) =
            partition_folder(v, Some("ts"), &["city".into()], "date=x/", true).unwrap();
        assert_eq!(folder, "date=2024-03-05/city=Oslo_Nord-f6af9365/");
        assert_eq!(
            values,
            vec![Some("2024-03-05".to_owned()), Some("Oslo/Nord".to_owned())]
        );
        // Two values that read alike as folder names stay apart.
        let other =
            partition_folder(br#"{"city":"Oslo_Nord"}"#, None, &["city".into()], "", true).unwrap();
        assert_eq!(other.0, "city=Oslo_Nord/");
        assert_eq!(
            partition_folder(
                br#"{"season":"2023-24","game_date":"2023-10-24"}"#,
                None,
                &["season".into(), "game_date".into()],
                "",
                false
            )
            .unwrap()
            .0,
            "season=2023-24/game_date=2023-10-24/"
        );
        assert_eq!(
            partition_folder(
                b"not json",
                Some("processing-time"),
                &[],
                "date=2026-01-02/",
                false
            )
            .unwrap()
            .0,
            "date=2026-01-02/"
        );
        assert!(partition_folder(b"{}", Some("ts"), &[], "", false).is_err());
        assert_eq!(
            partition_folder(b"{}", None, &["city".into()], "", false).unwrap(),
            ("city=__HIVE_DEFAULT_PARTITION__/".to_owned(), vec![None])
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn records_over_more_folders_than_max_open_files_keep_that_many_open_and_write_every_row()
    {
        let dir = tempfile::tempdir().unwrap();
        let config: ParquetConfig = toml::from_str(
            r#"
            path = "out"
            table = "weir"
            partition-by = "city"
            max-open-files = 3
            schema = [{ name = "city", type = "string" }, { name = "n", type = "int64" }]
            "#,
        )
        .unwrap();
        let mut sink = ParquetSink::open(&config, dir.path()).unwrap();
        let cities = ["a", "b", "c", "d", "e", "f", "g"];
        // Every batch hops over every city, as records of many days would.
        for round in 0..4 {
            let records = cities
                .iter()
                .enumerate()
                .map(|(i, city)| Record {
                    key: None,
                    value: format!(r#"{{"city":"{city}","n":{}}}"#, round * 10 + i).into_bytes(),
                    timestamp_ms: 0,
                    headers: vec![],
                })
                .collect();
            assert!(sink.write(records).await.unwrap().is_empty());
            assert!(sink.files.len() <= 3, "{} files open", sink.files.len());
        }
        sink.close().await.unwrap();
        let mut rows = 0;
        let mut files = 0;
        for city in cities {
            for entry in std::fs::read_dir(dir.path().join(format!("out/city={city}"))).unwrap() {
                let file = std::fs::File::open(entry.unwrap().path()).unwrap();
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .unwrap();
                rows += reader.metadata().file_metadata().num_rows();
                files += 1;
            }
        }
        assert_eq!(rows, 4 * cities.len() as i64);
        // Each city's file was finished before the city came round again.
        assert_eq!(files, 4 * cities.len());
    }

    #[test]
    fn configured_schemas_refuse_unknown_types() {
        let columns = vec![Column {
            name: "x".into(),
            data_type: "decimal".into(),
            nullable: true,
        }];
        assert!(configured_schema(&columns).unwrap_err().contains("decimal"));
    }
}
