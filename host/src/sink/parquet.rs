//! Parquet files in a local folder, rolled by rows, size and time.
//!
//! The Arrow schema is inferred from the first batch and then enforced:
//! a later record with a field the schema does not have, or a value of
//! another type, is refused (and dead-lettered) rather than silently
//! dropped or coerced. Files are written under a hidden `.…inprogress` name
//! and renamed to `part-….parquet` when complete, so a reader listing
//! `*.parquet` never sees a partial file.

use super::{Error, Rejected, Result, Sink};
use crate::Record;
use arrow_array::RecordBatch;
use arrow_json::reader::{ReaderBuilder, infer_json_schema_from_iterator};
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `type = "parquet"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ParquetConfig {
    /// Output folder; created if missing.
    pub path: PathBuf,
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
    /// `zstd` (default), `snappy` or `none`.
    #[serde(default)]
    pub compression: Codec,
    /// Rows per row group. The open row group is held in memory, so this
    /// bounds the sink's memory; readers skip data by row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
}

fn default_row_group_rows() -> usize {
    65_536
}

fn default_max_rows() -> u64 {
    1_000_000
}

fn default_max_bytes() -> u64 {
    128 << 20
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
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
    opened: Instant,
}

/// The sink.
pub struct ParquetSink {
    dir: PathBuf,
    config: ParquetConfig,
    schema: Option<SchemaRef>,
    file: Option<OpenFile>,
    run_id: u64,
    seq: u32,
}

impl ParquetSink {
    /// Prepares the folder; files are created on first write.
    pub fn open(config: &ParquetConfig, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|error| Error::Io {
            sink: format!("parquet {}", dir.display()),
            action: "create folder".into(),
            error,
        })?;
        Ok(ParquetSink {
            dir: dir.to_owned(),
            config: config.clone(),
            schema: None,
            file: None,
            run_id: crate::pipeline::now_ms() as u64,
            seq: 0,
        })
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

    fn writer(&mut self, schema: &SchemaRef) -> Result<&mut OpenFile> {
        if self.file.is_none() {
            self.seq += 1;
            let name = format!("part-{}-{:05}.parquet", self.run_id, self.seq);
            let path = self.dir.join(&name);
            let tmp = self.dir.join(format!(".{name}.inprogress"));
            let file = File::create(&tmp).map_err(|error| Error::Io {
                sink: self.describe(),
                action: format!("create {}", tmp.display()),
                error,
            })?;
            let compression = match self.config.compression {
                Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
                Codec::Snappy => Compression::SNAPPY,
                Codec::None => Compression::UNCOMPRESSED,
            };
            let props = WriterProperties::builder()
                .set_compression(compression)
                .set_max_row_group_row_count(Some(self.config.row_group_rows.max(1)))
                .build();
            let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
                .map_err(|e| self.format_error("open writer", e))?;
            self.file = Some(OpenFile {
                writer,
                tmp,
                path,
                rows: 0,
                opened: Instant::now(),
            });
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    fn finish_file(&mut self) -> Result<()> {
        let Some(open) = self.file.take() else {
            return Ok(());
        };
        let name = self.describe();
        let file = open.writer.into_inner().map_err(|e| Error::Format {
            sink: name.clone(),
            action: "close file".into(),
            reason: e.to_string(),
        })?;
        file.sync_all().map_err(|error| Error::Io {
            sink: name.clone(),
            action: "fsync".into(),
            error,
        })?;
        std::fs::rename(&open.tmp, &open.path).map_err(|error| Error::Io {
            sink: name,
            action: format!("rename to {}", open.path.display()),
            error,
        })?;
        tracing::debug!(file = %open.path.display(), rows = open.rows, "Finished Parquet file.");
        Ok(())
    }

    fn should_roll(&self) -> bool {
        self.file.as_ref().is_some_and(|f| {
            f.rows >= self.config.max_rows_per_file
                || f.writer.bytes_written() as u64 + f.writer.in_progress_size() as u64
                    >= self.config.max_file_size
                || self
                    .config
                    .rollover_interval
                    .is_some_and(|every| f.opened.elapsed() >= every)
        })
    }
}

#[async_trait]
impl Sink for ParquetSink {
    fn describe(&self) -> String {
        format!("parquet {}", self.dir.display())
    }

    async fn write(&mut self, records: Vec<Record>) -> Result<Vec<Rejected>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let schema = match &self.schema {
            Some(schema) => schema.clone(),
            None => {
                let schema = self.infer_schema(&records)?;
                self.schema = Some(schema.clone());
                schema
            }
        };
        let (batches, rejected) = self.decode(&schema, records)?;
        for batch in batches {
            let rows = batch.num_rows() as u64;
            let open = self.writer(&schema)?;
            open.writer.write(&batch).map_err(|e| Error::Format {
                sink: format!("parquet {}", open.path.display()),
                action: "write".into(),
                reason: e.to_string(),
            })?;
            open.rows += rows;
            if self.should_roll() {
                self.finish_file()?;
            }
        }
        Ok(rejected)
    }

    async fn flush(&mut self) -> Result<()> {
        if self.should_roll() {
            self.finish_file()?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.finish_file()
    }
}
