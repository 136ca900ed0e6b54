//! Objects under a prefix of any object store (S3, a local folder,
//! in-memory): Parquet, NDJSON or CSV, read in path order.
//!
//! NDJSON lines are handed on byte for byte. Parquet and CSV rows become
//! one JSON object per row (Arrow's JSON writer: column names as keys,
//! nulls left out, timestamps as ISO 8601 text). A position is the object
//! and its 1-based row, so a dead letter says exactly where it came from
//! and the mark says how far each object has been read.
//!
//! A checkpoint holds the object being read and its next row; a restart
//! skips objects before it in path order, so new objects must sort after
//! the ones already read (time-stamped names do).
//!
//! With `watch = "10s"` the source is unbounded: after the listing is
//! read it lists the prefix again at that interval and reads objects it
//! has not seen (objects are assumed immutable once written, as in S3).

use super::{Error, Mark, Position, Result, Source, SourceBatch};
use crate::Record;
use crate::store::{self, Location};
use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// `type = "object-store"` as a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObjectStoreConfig {
    /// `s3://bucket/prefix`, `file:///dir`, `memory://name/prefix` or a
    /// local folder relative to the configuration file.
    pub url: String,
    /// Format of every object; by default from each object's extension
    /// (`.parquet`, `.ndjson`/`.jsonl`/`.json`, `.csv`).
    pub format: Option<Format>,
    /// Keep listing the prefix at this interval and read new objects.
    #[serde(default, deserialize_with = "crate::sink::optional_duration")]
    pub watch: Option<Duration>,
    /// Store options (S3 endpoint, credentials, region, …); see `store`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// How objects are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// One JSON value per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    fn of(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" => Some(Format::Parquet),
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Rows of the object being read.
enum Rows {
    /// Raw bytes and the offset of the next line.
    Lines { data: Bytes, at: usize },
    /// Arrow batches, and the JSON rows of the batch being handed out.
    Arrow {
        batches: Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>,
        pending: VecDeque<Vec<u8>>,
    },
}

struct Current {
    file: u32,
    path: String,
    rows: Rows,
    row: u64,
}

/// The source.
pub struct ObjectSource {
    location: Location,
    format: Option<Format>,
    watch: Option<Duration>,
    queue: VecDeque<ObjectMeta>,
    seen: BTreeSet<String>,
    files: Vec<String>,
    current: Option<Current>,
    next_listing: Instant,
    batch_rows: usize,
    /// From a checkpoint: the object being read and its next 1-based row;
    /// objects before it in path order were read.
    resume_at: Option<(String, u64)>,
    /// How far reading got when no object is open.
    done: Mark,
    /// Objects that could not be decoded since the last batch: each becomes
    /// one dead letter (its path, and why).
    refused: Vec<(Position, Record, String)>,
}

impl ObjectSource {
    /// Opens the location and lists it.
    pub async fn open(config: &ObjectStoreConfig, base_dir: &Path) -> Result<Self> {
        let location =
            store::open(&config.url, &config.options, base_dir).map_err(|e| Error::Client {
                source_name: format!("object-store {}", config.url),
                action: "open".into(),
                reason: e.reason,
                hint: "check source.url and source.options",
                retryable: false,
            })?;
        let mut source = ObjectSource {
            location,
            format: config.format,
            watch: config.watch,
            queue: VecDeque::new(),
            seen: BTreeSet::new(),
            files: Vec::new(),
            current: None,
            next_listing: Instant::now(),
            batch_rows: 1024,
            resume_at: None,
            done: Mark::new(),
            refused: Vec::new(),
        };
        source.list().await?;
        if source.queue.is_empty() && source.watch.is_none() {
            tracing::warn!(source = %source.describe(), "No objects to read under this prefix.");
        }
        Ok(source)
    }

    /// An object-store error, retryable when it may go away by itself.
    fn store_error(&self, action: String, e: object_store::Error, hint: &'static str) -> Error {
        Error::Client {
            source_name: self.describe(),
            action,
            retryable: store::is_transient(&e),
            reason: e.to_string(),
            hint,
        }
    }

    /// Queues objects not seen before, in path order.
    async fn list(&mut self) -> Result<()> {
        let mut found: Vec<ObjectMeta> = self
            .location
            .store
            .list(Some(&self.location.prefix))
            .try_collect()
            .await
            .map_err(|e| {
                self.store_error(
                    "list".into(),
                    e,
                    "check the bucket exists, the credentials and the endpoint",
                )
            })?;
        let prefix_parts = self.location.prefix.parts().count();
        found.retain(|meta| {
            let path = meta.location.as_ref();
            // Hidden and marker files and folders (`.x.inprogress`,
            // `_SUCCESS`, `_weir/` manifests) are not data.
            let hidden = meta
                .location
                .parts()
                .skip(prefix_parts)
                .any(|p| p.as_ref().starts_with('.') || p.as_ref().starts_with('_'));
            !hidden
                && (self.format.is_some() || Format::of(path).is_some())
                && !self.seen.contains(path)
        });
        found.sort_by(|a, b| a.location.cmp(&b.location));
        for meta in found {
            self.seen.insert(meta.location.to_string());
            self.queue.push_back(meta);
        }
        self.next_listing = Instant::now() + self.watch.unwrap_or_default();
        Ok(())
    }

    /// Starts reading the next queued object that can be decoded; one
    /// that cannot is refused (a dead letter) and skipped.
    async fn open_next(&mut self) -> Result<bool> {
        loop {
            // Objects before the checkpoint's were read in an earlier run.
            let meta = loop {
                let Some(meta) = self.queue.pop_front() else {
                    return Ok(false);
                };
                let before = |(at, _): &(String, u64)| meta.location.as_ref() < at.as_str();
                if !self.resume_at.as_ref().is_some_and(before) {
                    break meta;
                }
            };
            let path = meta.location.to_string();
            let format = self
                .format
                .or_else(|| Format::of(&path))
                .unwrap_or(Format::Ndjson);
            let data = match self.location.store.get(&meta.location).await {
                Ok(object) => object.bytes().await,
                Err(e) => Err(e),
            };
            let data = data.map_err(|e| {
                self.store_error(format!("read {path}"), e, "check the object is readable")
            })?;
            self.files.push(path.clone());
            let file = (self.files.len() - 1) as u32;
            match decode(format, data, self.batch_rows) {
                Ok(rows) => {
                    tracing::debug!(source = %self.describe(), object = %path, ?format, "Reading object.");
                    self.current = Some(Current {
                        file,
                        path,
                        rows,
                        row: 0,
                    });
                    return Ok(true);
                }
                Err(reason) => self.refuse(
                    file,
                    0,
                    format!("cannot be decoded as {format:?}: {reason}"),
                ),
            }
        }
    }

    /// Refuses the rest of object `file` from `row` on: one dead letter
    /// whose value is the object's path.
    fn refuse(&mut self, file: u32, row: u64, why: String) {
        let path = &self.files[file as usize];
        let reason = format!(
            "object {path}, after row {row}: {why}; the rest of the object is skipped (check source.format and that the object is complete)"
        );
        tracing::warn!(source = %self.describe(), "{reason}");
        self.done = Mark::from([(path.clone(), row as i64 + 1)]);
        self.refused.push((
            Position::Row { file, row: row + 1 },
            Record {
                key: None,
                value: path.clone().into_bytes(),
                timestamp_ms: crate::record::now_ms(),
                headers: Vec::new(),
            },
            reason,
        ));
    }

    /// The next row of the current object, or `None` when it is done.
    fn next_row(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(current) = self.current.as_mut() else {
            return Ok(None);
        };
        loop {
            match &mut current.rows {
                Rows::Lines { data, at } => {
                    while *at < data.len() {
                        let end = memchr_newline(&data[*at..]).map_or(data.len(), |i| *at + i);
                        let mut line = &data[*at..end];
                        *at = end + 1;
                        current.row += 1;
                        while let [rest @ .., b'\r'] = line {
                            line = rest;
                        }
                        if !line.iter().all(u8::is_ascii_whitespace) {
                            return Ok(Some(line.to_vec()));
                        }
                    }
                    return Ok(None);
                }
                Rows::Arrow { batches, pending } => {
                    if let Some(row) = pending.pop_front() {
                        current.row += 1;
                        return Ok(Some(row));
                    }
                    let Some(batch) = batches.next() else {
                        return Ok(None);
                    };
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(e) => {
                            let (file, row) = (current.file, current.row);
                            self.current = None;
                            self.refuse(file, row, format!("cannot be decoded: {e}"));
                            return Ok(None);
                        }
                    };
                    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
                    if let Err(e) = writer.write(&batch) {
                        let (file, row) = (current.file, current.row);
                        self.current = None;
                        self.refuse(file, row, format!("cannot be converted to JSON: {e}"));
                        return Ok(None);
                    }
                    writer.finish().ok();
                    let text = writer.into_inner();
                    pending.extend(
                        text.split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(<[u8]>::to_vec),
                    );
                }
            }
        }
    }
}

/// Rows of an object's bytes, or why they cannot be read as `format`.
fn decode(
    format: Format,
    data: bytes::Bytes,
    batch_rows: usize,
) -> std::result::Result<Rows, String> {
    Ok(match format {
        Format::Ndjson => Rows::Lines { data, at: 0 },
        Format::Parquet => {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)
                    .and_then(|b| b.with_batch_size(batch_rows).build())
                    .map_err(|e| e.to_string())?;
            Rows::Arrow {
                batches: Box::new(reader),
                pending: VecDeque::new(),
            }
        }
        Format::Csv => {
            let format = arrow_csv::reader::Format::default().with_header(true);
            let (schema, _) = format
                .infer_schema(std::io::Cursor::new(&data), Some(1000))
                .map_err(|e| e.to_string())?;
            let reader = arrow_csv::ReaderBuilder::new(std::sync::Arc::new(schema))
                .with_format(format)
                .with_batch_size(batch_rows)
                .build(std::io::Cursor::new(data))
                .map_err(|e| e.to_string())?;
            Rows::Arrow {
                batches: Box::new(reader),
                pending: VecDeque::new(),
            }
        }
    })
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

#[async_trait]
impl Source for ObjectSource {
    fn describe(&self) -> String {
        format!("object-store {}", self.location.display)
    }

    async fn next_batch(&mut self, max: usize) -> Result<Option<SourceBatch>> {
        self.batch_rows = max.max(1);
        let now_ms = crate::record::now_ms();
        let mut batch = SourceBatch::default();
        while batch.records.len() < max {
            match self.next_row()? {
                Some(value) => {
                    let current = self.current.as_ref().expect("a row came from it");
                    if let Some((at, next)) = &self.resume_at
                        && *at == current.path
                        && current.row < *next
                    {
                        continue;
                    }
                    batch.records.push(Record {
                        key: None,
                        value,
                        timestamp_ms: now_ms,
                        headers: Vec::new(),
                    });
                    batch.positions.push(Position::Row {
                        file: current.file,
                        row: current.row,
                    });
                }
                None => {
                    if let Some(done) = self.current.take() {
                        self.done = Mark::from([(done.path, done.row as i64 + 1)]);
                    }
                    if self.open_next().await? {
                        continue;
                    }
                    let Some(every) = self.watch else {
                        break;
                    };
                    if !batch.records.is_empty() {
                        break;
                    }
                    // Idle: wait for the next listing, but return an empty
                    // batch within a second so the pipeline can tick.
                    let wake = self
                        .next_listing
                        .min(Instant::now() + Duration::from_secs(1));
                    tokio::time::sleep_until(wake).await;
                    if Instant::now() >= self.next_listing {
                        self.list().await?;
                        self.next_listing = Instant::now() + every;
                    }
                    return Ok(Some(batch));
                }
            }
        }
        batch.refused = std::mem::take(&mut self.refused);
        if batch.records.is_empty() && batch.refused.is_empty() && self.watch.is_none() {
            Ok(None)
        } else {
            Ok(Some(batch))
        }
    }

    fn locate(&self, position: Position) -> String {
        match position {
            Position::Row { file, row } => format!(
                "{} object={} row={row}",
                self.describe(),
                self.files.get(file as usize).map_or("?", String::as_str)
            ),
            _ => self.describe(),
        }
    }

    fn mark(&self) -> Mark {
        match &self.current {
            Some(c) => Mark::from([(c.path.clone(), c.row as i64 + 1)]),
            None => self.done.clone(),
        }
    }

    async fn resume(&mut self, positions: &Mark) -> Result<()> {
        // One entry: the object being read (path order makes the rest).
        if let Some((path, next)) = positions.iter().next_back() {
            self.resume_at = Some((path.clone(), (*next).max(1) as u64));
            self.done = positions.clone();
        }
        Ok(())
    }
}
