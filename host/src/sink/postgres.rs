//! Rows in a PostgreSQL table, written with `COPY … FROM STDIN` (text
//! format). A batch's rows are encoded into one buffer, each column's value
//! read straight from the record's JSON bytes ([`super::fields`]), and sent
//! as one COPY.
//!
//! Exactly-once (the default): one transaction per epoch. Each batch is
//! COPYed inside it (under a savepoint), and at the epoch's end the
//! checkpoint — source positions, plugin state, epoch number — is written
//! to `weir_checkpoints`, `weir_plugin_state` and `weir_epochs` in the same
//! transaction, which then commits. A crash before the commit leaves
//! neither rows nor checkpoint; the restart replays the epoch. The epoch
//! row also fences: a commit whose epoch is not newer than the stored one
//! (another process took over the pipeline) is refused.
//!
//! At-least-once: one transaction per batch; the checkpoint goes to a file.
//!
//! Each column takes its value from a JSON path of the record value and is
//! checked against its SQL type before it is sent: a string where a number
//! belongs is refused with the column and the value, and the record goes
//! to the dead letter. What only PostgreSQL can judge (a constraint, a
//! malformed date) fails the batch's COPY; the batch is then split in
//! halves until the rows PostgreSQL refuses are found, and only those are
//! dead-lettered, with PostgreSQL's message. Errors that are not about the
//! data (connection lost, table missing) stop the pipeline instead.
//!
//! `mode = "upsert"` copies into a temporary table and merges with
//! `INSERT … ON CONFLICT (key) DO UPDATE`; within one batch the last
//! record for a key wins.

use super::fields::{Field, Paths};
use super::{EpochStore, Error, Owners, Rejected, Result, Sink};
use crate::Record;
use crate::checkpoint::{Checkpoint, PluginState};
use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Acquire;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, Postgres};
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

/// `type = "postgres"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PostgresConfig {
    /// `postgres://user:password@host:5432/db?sslmode=require`.
    pub url: String,
    /// Table, optionally schema-qualified (`analytics.trips`).
    pub table: String,
    /// Columns and where their values come from.
    pub columns: Vec<PgColumn>,
    /// Create the table (and its primary key, for upserts) if missing.
    #[serde(default)]
    pub create_table: bool,
    /// `insert` (default) or `upsert` on `key`.
    #[serde(default)]
    pub mode: Mode,
    /// Key columns for `upsert`.
    #[serde(default)]
    pub key: Vec<String>,
    /// Connections in the pool.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
}

fn default_pool() -> u32 {
    2
}

/// How rows are added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plain COPY; duplicates are the table's business.
    #[default]
    Insert,
    /// Insert, or update the row with the same key.
    Upsert,
}

/// One column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PgColumn {
    /// Column name.
    pub name: String,
    /// SQL type, e.g. `bigint`, `double precision`, `text`, `timestamptz`.
    #[serde(rename = "type")]
    pub sql_type: String,
    /// JSON path in the record value (`$.a.b` or `a.b`); the column name
    /// by default. Missing or null → NULL.
    pub path: Option<String>,
}

/// How a value is checked and written for a SQL type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    Float,
    Numeric,
    Bool,
    Json,
    /// Timestamps: text passed on, numbers taken as epoch milliseconds.
    Time,
    /// Everything else: scalars as text, PostgreSQL parses.
    Text,
}

impl Kind {
    fn of(sql_type: &str) -> Kind {
        let t = sql_type.trim().to_ascii_lowercase();
        let base = t.split('(').next().unwrap_or("").trim();
        match base {
            "smallint" | "int2" => Kind::Int {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            "integer" | "int" | "int4" => Kind::Int {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            "bigint" | "int8" => Kind::Int {
                min: i64::MIN,
                max: i64::MAX,
            },
            "real" | "float4" | "double precision" | "float8" | "float" => Kind::Float,
            "numeric" | "decimal" => Kind::Numeric,
            "boolean" | "bool" => Kind::Bool,
            "json" | "jsonb" => Kind::Json,
            "timestamptz"
            | "timestamp"
            | "date"
            | "timestamp with time zone"
            | "timestamp without time zone" => Kind::Time,
            _ => Kind::Text,
        }
    }
}

struct Column {
    name: String,
    kind: Kind,
}

/// Why a cell cannot be written.
enum Refusal {
    /// The value does not fit the column's SQL type.
    Type(&'static str),
    /// The text cannot be carried by COPY.
    Text(&'static str),
}

/// The sink.
pub struct PostgresSink {
    name: String,
    pool: PgPool,
    columns: Vec<Column>,
    /// Where each column's value is in a record.
    paths: Paths,
    copy_sql: String,
    /// For upserts: statements run in the batch's transaction around COPY.
    upsert: Option<(String, String)>,
    key_columns: Vec<usize>,
    /// Exactly-once: the open transaction of the current epoch.
    epoch: Option<sqlx::Transaction<'static, Postgres>>,
    /// Group mode: the partition checkpoint this sink claimed, and the
    /// owner epoch every commit must still find in `weir_owners`.
    owner: Option<(String, i64)>,
    exactly_once: bool,
}

/// Checkpoint tables, created on first use.
const CHECKPOINT_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS weir_epochs (pipeline text PRIMARY KEY, epoch bigint NOT NULL, source text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS weir_checkpoints (pipeline text NOT NULL, partition text NOT NULL, next_position bigint NOT NULL, epoch bigint NOT NULL, PRIMARY KEY (pipeline, partition))",
    "CREATE TABLE IF NOT EXISTS weir_plugin_state (pipeline text NOT NULL, plugin text NOT NULL, state_version integer NOT NULL, state bytea NOT NULL, epoch bigint NOT NULL, PRIMARY KEY (pipeline, plugin))",
    "CREATE TABLE IF NOT EXISTS weir_owners (pipeline text PRIMARY KEY, owner_epoch bigint NOT NULL, owner text NOT NULL, claimed_at timestamptz NOT NULL DEFAULT now())",
    // Every commit renews its claim; a standby waits while it is recent.
    // (Added to tables of earlier versions; checked first, as ALTER TABLE
    // would wait for every open transaction that touched the table.)
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'weir_owners' AND column_name = 'renewed_at') THEN ALTER TABLE weir_owners ADD COLUMN renewed_at timestamptz NOT NULL DEFAULT now(); END IF; END $$",
];

/// Runs `CREATE … IF NOT EXISTS` statements in one transaction under an
/// advisory lock. Two processes creating the same table at the same moment
/// would otherwise collide in the catalog ("duplicate key value violates
/// unique constraint pg_type_typname_nsp_index"): `IF NOT EXISTS` checks
/// before it inserts, not atomically.
async fn create_serialised(
    conn: &mut PgConnection,
    statements: &[&str],
) -> std::result::Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7365746272)")
        .execute(&mut *tx)
        .await?;
    for ddl in statements {
        sqlx::query(ddl).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Whether an error is about reaching PostgreSQL (retry later) rather than
/// about the data or the schema.
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// COPYs `buf` and, for upserts, merges the staged rows.
async fn copy_rows(
    conn: &mut PgConnection,
    copy_sql: &str,
    upsert: Option<&(String, String)>,
    buf: &[u8],
) -> std::result::Result<(), sqlx::Error> {
    if let Some((create, _)) = upsert {
        sqlx::query(create).execute(&mut *conn).await?;
    }
    let mut copy = conn.copy_in_raw(copy_sql).await?;
    copy.send(buf).await?;
    copy.finish().await?;
    if let Some((_, merge)) = upsert {
        sqlx::query(merge).execute(&mut *conn).await?;
        sqlx::query("TRUNCATE weir_upsert_stage")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `"a"."b"` for `a.b`, quotes doubled.
fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

fn parse_path(path: &str) -> Vec<String> {
    let path = path.strip_prefix("$.").unwrap_or(path);
    if path == "$" {
        return Vec::new();
    }
    path.split('.').map(str::to_owned).collect()
}

impl PostgresSink {
    /// Connects, creates the table if asked, and checks the columns exist.
    pub async fn open(config: &PostgresConfig) -> Result<Self> {
        let name = format!("postgres {}", config.table);
        let fail = |action: &str, reason: String, hint: &'static str| Error::Client {
            sink: name.clone(),
            action: action.into(),
            reason,
            hint,
        };
        // Not reaching the database (or no free connection) is an outage to
        // ride out, not a configuration error.
        let fail_sql = |action: &str, e: sqlx::Error, hint: &'static str| {
            if is_connection_error(&e) {
                Error::Unavailable {
                    sink: name.clone(),
                    action: action.into(),
                    reason: e.to_string(),
                }
            } else {
                fail(action, e.to_string(), hint)
            }
        };
        if config.columns.is_empty() {
            return Err(fail(
                "configure",
                "no columns".into(),
                "list columns = [{ name, type, path }]",
            ));
        }
        if config.mode == Mode::Upsert && config.key.is_empty() {
            return Err(fail(
                "configure",
                "mode = \"upsert\" needs key = [\"column\", …]".into(),
                "name the key columns",
            ));
        }
        let key_columns = config
            .key
            .iter()
            .map(|k| {
                config
                    .columns
                    .iter()
                    .position(|c| &c.name == k)
                    .ok_or_else(|| {
                        fail(
                            "configure",
                            format!("key column {k:?} is not among the columns"),
                            "add it to columns",
                        )
                    })
            })
            .collect::<Result<Vec<usize>>>()?;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(&config.url)
            .await
            .map_err(|e| {
                if is_connection_error(&e) {
                    Error::Unavailable {
                        sink: name.clone(),
                        action: "connect".into(),
                        reason: e.to_string(),
                    }
                } else {
                    fail(
                        "connect",
                        e.to_string(),
                        "check sink.url (host, port, user, database, sslmode) and that PostgreSQL is running",
                    )
                }
            })?;
        let table = quote_ident(&config.table);
        let names: Vec<String> = config
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let list = names.join(", ");
        if config.create_table {
            let mut defs: Vec<String> = config
                .columns
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type))
                .collect();
            if !config.key.is_empty() {
                let key: Vec<String> = config.key.iter().map(|k| quote_ident(k)).collect();
                defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
            }
            let ddl = format!("CREATE TABLE IF NOT EXISTS {table} ({})", defs.join(", "));
            let created = async {
                let mut conn = pool.acquire().await?;
                create_serialised(&mut conn, &[ddl.as_str()]).await
            };
            created.await.map_err(|e| {
                fail_sql(
                    "create table",
                    e,
                    "check the column types and the user's CREATE privilege",
                )
            })?;
        }
        sqlx::query(&format!("SELECT {list} FROM {table} LIMIT 0"))
            .execute(&pool)
            .await
            .map_err(|e| {
                fail_sql(
                    "check table",
                    e,
                    "create the table with these columns, or set create-table = true",
                )
            })?;
        let (copy_sql, upsert) = match config.mode {
            Mode::Insert => (format!("COPY {table} ({list}) FROM STDIN"), None),
            Mode::Upsert => {
                let stage = "weir_upsert_stage";
                let create = format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS)"
                );
                let key: Vec<String> = config.key.iter().map(|k| quote_ident(k)).collect();
                let updates: Vec<String> = names
                    .iter()
                    .filter(|n| !key.contains(n))
                    .map(|n| format!("{n} = EXCLUDED.{n}"))
                    .collect();
                let action = if updates.is_empty() {
                    "DO NOTHING".to_owned()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                };
                let merge = format!(
                    "INSERT INTO {table} ({list}) SELECT {list} FROM {stage} ON CONFLICT ({}) {action}",
                    key.join(", ")
                );
                (
                    format!("COPY {stage} ({list}) FROM STDIN"),
                    Some((create, merge)),
                )
            }
        };
        let paths: Vec<Vec<String>> = config
            .columns
            .iter()
            .map(|c| parse_path(c.path.as_deref().unwrap_or(&c.name)))
            .collect();
        Ok(PostgresSink {
            name,
            pool,
            columns: config
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    kind: Kind::of(&c.sql_type),
                })
                .collect(),
            paths: Paths::new(paths.iter().map(Vec::as_slice)),
            copy_sql,
            upsert,
            key_columns,
            epoch: None,
            owner: None,
            exactly_once: false,
        })
    }

    /// Appends a record's COPY text line to `buf`, or says why it cannot
    /// be written (and leaves `buf` as it was).
    fn encode_into(&self, record: &Record, buf: &mut Vec<u8>) -> std::result::Result<(), String> {
        let start = buf.len();
        let encoded = self.encode_fields(record, buf);
        if encoded.is_err() {
            buf.truncate(start);
        }
        encoded
    }

    fn encode_fields(&self, record: &Record, buf: &mut Vec<u8>) -> std::result::Result<(), String> {
        let fields = self
            .paths
            .read(&record.value)
            .map_err(|e| format!("not JSON, cannot map to columns: {e}"))?;
        for (i, (column, field)) in self.columns.iter().zip(&fields).enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            cell_into(column.kind, field, buf).map_err(|refusal| match refusal {
                Refusal::Type(why) => {
                    format!("column {} ({why}): got {}", column.name, abbreviate(field))
                }
                Refusal::Text(why) => format!("column {}: {why}", column.name),
            })?;
        }
        buf.push(b'\n');
        Ok(())
    }

    /// COPYs `data` (whole lines) atomically: in its own transaction, or
    /// under a savepoint of the epoch's transaction.
    async fn copy(&mut self, data: &[u8]) -> std::result::Result<(), sqlx::Error> {
        let upsert = self.upsert.as_ref();
        if self.exactly_once {
            if self.epoch.is_none() {
                self.epoch = Some(self.pool.begin().await?);
            }
            let epoch = self.epoch.as_mut().expect("just begun");
            let mut savepoint = epoch.begin().await?;
            copy_rows(&mut savepoint, &self.copy_sql, upsert, data).await?;
            savepoint.commit().await
        } else {
            let mut tx = self.pool.begin().await?;
            copy_rows(&mut tx, &self.copy_sql, upsert, data).await?;
            tx.commit().await
        }
    }

    fn error(&self, action: String, e: &sqlx::Error, hint: &'static str) -> Error {
        if is_connection_error(e) {
            Error::Unavailable {
                sink: self.name.clone(),
                action,
                reason: e.to_string(),
            }
        } else {
            Error::Client {
                sink: self.name.clone(),
                action,
                reason: e.to_string(),
                hint,
            }
        }
    }

    /// Writes the checkpoint into `tx`, refusing it if a newer epoch is
    /// stored (another process owns the pipeline).
    async fn write_checkpoint(
        tx: &mut PgConnection,
        checkpoint: &Checkpoint,
    ) -> std::result::Result<bool, sqlx::Error> {
        let pipeline = &checkpoint.pipeline;
        let epoch = checkpoint.epoch as i64;
        let fenced = sqlx::query(
            // clock_timestamp(): the time of the commit, not of the start of
            // the epoch's transaction (now()).
            "INSERT INTO weir_epochs (pipeline, epoch, source, committed_at) VALUES ($1, $2, $3, clock_timestamp()) \
             ON CONFLICT (pipeline) DO UPDATE SET epoch = EXCLUDED.epoch, source = EXCLUDED.source, committed_at = EXCLUDED.committed_at \
             WHERE weir_epochs.epoch < EXCLUDED.epoch",
        )
        .bind(pipeline)
        .bind(epoch)
        .bind(&checkpoint.source)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 0;
        if fenced {
            return Ok(false);
        }
        let (partitions, next): (Vec<&str>, Vec<i64>) = checkpoint
            .positions
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .unzip();
        sqlx::query(
            "DELETE FROM weir_checkpoints WHERE pipeline = $1 AND NOT (partition = ANY($2))",
        )
        .bind(pipeline)
        .bind(&partitions)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO weir_checkpoints (pipeline, partition, next_position, epoch) \
             SELECT $1, p, n, $4 FROM unnest($2::text[], $3::bigint[]) AS t(p, n) \
             ON CONFLICT (pipeline, partition) DO UPDATE SET next_position = EXCLUDED.next_position, epoch = EXCLUDED.epoch",
        )
        .bind(pipeline)
        .bind(&partitions)
        .bind(&next)
        .bind(epoch)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM weir_plugin_state WHERE pipeline = $1")
            .bind(pipeline)
            .execute(&mut *tx)
            .await?;
        for (plugin, state) in &checkpoint.state {
            sqlx::query(
                "INSERT INTO weir_plugin_state (pipeline, plugin, state_version, state, epoch) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(pipeline)
            .bind(plugin)
            .bind(state.version as i32)
            .bind(&state.bytes)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        }
        Ok(true)
    }

    async fn read_checkpoint(
        &self,
        pipeline: &str,
    ) -> std::result::Result<Option<Checkpoint>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        create_serialised(&mut conn, CHECKPOINT_DDL).await?;
        let epoch: Option<(i64, String)> =
            sqlx::query_as("SELECT epoch, source FROM weir_epochs WHERE pipeline = $1")
                .bind(pipeline)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((epoch, source)) = epoch else {
            return Ok(None);
        };
        let positions: Vec<(String, i64)> = sqlx::query_as(
            "SELECT partition, next_position FROM weir_checkpoints WHERE pipeline = $1",
        )
        .bind(pipeline)
        .fetch_all(&mut *conn)
        .await?;
        let state: Vec<(String, i32, Vec<u8>)> = sqlx::query_as(
            "SELECT plugin, state_version, state FROM weir_plugin_state WHERE pipeline = $1",
        )
        .bind(pipeline)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(Checkpoint {
            pipeline: pipeline.to_owned(),
            source,
            epoch: epoch as u64,
            positions: positions.into_iter().collect(),
            state: state
                .into_iter()
                .map(|(plugin, version, bytes)| {
                    (
                        plugin,
                        PluginState {
                            version: version as u32,
                            bytes,
                        },
                    )
                })
                .collect(),
        }))
    }

    /// COPYs `rows` (each a record and its line in `buf`, in order, back
    /// to back); when PostgreSQL refuses the data, splits the batch to find
    /// the refused rows and returns them with its message.
    async fn copy_isolating(
        &mut self,
        rows: Vec<(Record, Range<usize>)>,
        buf: &[u8],
    ) -> Result<Vec<Rejected>> {
        let mut refused: Vec<(usize, String)> = Vec::new();
        // Spans of rows still to COPY, last first.
        let mut todo: Vec<Range<usize>> = Vec::new();
        todo.push(0..rows.len());
        while let Some(span) = todo.pop() {
            if span.is_empty() {
                continue;
            }
            let bytes = &buf[rows[span.start].1.start..rows[span.end - 1].1.end];
            match self.copy(bytes).await {
                Ok(()) => {}
                Err(e) if is_data_error(&e) => {
                    if span.len() == 1 {
                        refused.push((
                            span.start,
                            format!("refused by PostgreSQL: {}", db_message(&e)),
                        ));
                    } else {
                        let middle = span.start + span.len() / 2;
                        todo.push(middle..span.end);
                        todo.push(span.start..middle);
                    }
                }
                Err(e) => {
                    return Err(self.error(
                        format!("COPY {} rows", span.len()),
                        &e,
                        "check the table is unchanged and the user may write to it",
                    ));
                }
            }
        }
        if refused.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows: Vec<Option<Record>> = rows.into_iter().map(|(r, _)| Some(r)).collect();
        Ok(refused
            .into_iter()
            .filter_map(|(i, reason)| {
                Some(Rejected {
                    record: rows[i].take()?,
                    reason,
                })
            })
            .collect())
    }
}

/// Data exceptions (class 22) and integrity violations (class 23) are the
/// row's fault; anything else is the connection's or the schema's.
fn is_data_error(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")))
}

fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

fn abbreviate(field: &Field) -> String {
    let mut text = field.to_json();
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// Appends one cell, checked against the column's kind, as COPY text.
fn cell_into(kind: Kind, field: &Field, out: &mut Vec<u8>) -> std::result::Result<(), Refusal> {
    let number = |out: &mut Vec<u8>| match field {
        Field::Int(i) => write_json(out, i),
        Field::BigInt(u) => write_json(out, u),
        Field::Float(f) => write_json(out, f),
        _ => unreachable!("called for numbers only"),
    };
    let text = |out: &mut Vec<u8>, s: &str| escape_into(out, s).map_err(Refusal::Text);
    match (kind, field) {
        (_, Field::Null) => out.extend_from_slice(b"\\N"),
        (Kind::Int { min, max }, Field::Int(i)) => {
            if *i < min || *i > max {
                return Err(Refusal::Type("integer out of range for the column type"));
            }
            write_json(out, i);
        }
        (Kind::Int { .. }, _) => return Err(Refusal::Type("expected an integer")),
        (
            Kind::Float | Kind::Numeric | Kind::Text,
            Field::Int(_) | Field::BigInt(_) | Field::Float(_),
        ) => number(out),
        (Kind::Float, _) => return Err(Refusal::Type("expected a number")),
        (Kind::Numeric, Field::Str(s)) if s.parse::<f64>().is_ok() => text(out, s)?,
        (Kind::Numeric, _) => return Err(Refusal::Type("expected a number")),
        (Kind::Bool | Kind::Text, Field::Bool(b)) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }
        (Kind::Bool, _) => return Err(Refusal::Type("expected true or false")),
        (Kind::Json, field) => text(out, &field.to_json())?,
        (Kind::Time, Field::Int(ms)) => text(out, &weir_plugin_kit::time::format_rfc3339(*ms))?,
        (Kind::Time | Kind::Text, Field::Str(s)) => text(out, s)?,
        (Kind::Time, _) => {
            return Err(Refusal::Type("expected a timestamp or epoch milliseconds"));
        }
        (Kind::Text, Field::Tree(v)) => text(out, &v.to_string())?,
    }
    Ok(())
}

/// A number as JSON writes it (and PostgreSQL reads it).
fn write_json<T: serde::Serialize>(out: &mut Vec<u8>, n: &T) {
    serde_json::to_writer(out, n).expect("a number serialises into memory");
}

/// Escapes a cell for COPY's text format.
fn escape_into(out: &mut Vec<u8>, text: &str) -> std::result::Result<(), &'static str> {
    let special = |b: &u8| matches!(b, 0 | b'\\' | b'\n' | b'\r' | b'\t');
    if !text.as_bytes().iter().any(special) {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    for b in text.bytes() {
        match b {
            0 => return Err("contains a NUL character, which PostgreSQL text cannot hold"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
    Ok(())
}

#[async_trait]
impl Sink for PostgresSink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn write(&mut self, records: Vec<Record>) -> Result<Vec<Rejected>> {
        let mut rejected = Vec::new();
        let mut rows = Vec::with_capacity(records.len());
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.value.len()).sum());
        for record in records {
            let start = buf.len();
            match self.encode_into(&record, &mut buf) {
                Ok(()) => rows.push((record, start..buf.len())),
                Err(reason) => rejected.push(Rejected { record, reason }),
            }
        }
        if !self.key_columns.is_empty() {
            (rows, buf) = last_per_key(rows, &buf, &self.key_columns);
        }
        rejected.extend(self.copy_isolating(rows, &buf).await?);
        Ok(rejected)
    }

    /// At-least-once: each batch is committed before `write` returns.
    fn is_durable(&self) -> bool {
        self.epoch.is_none()
    }

    async fn close(&mut self) -> Result<()> {
        // An epoch not committed by now is rolled back: it was not covered
        // by a checkpoint, so it will be replayed.
        self.epoch.take();
        self.pool.close().await;
        Ok(())
    }

    fn epochs(&mut self) -> Option<&mut dyn EpochStore> {
        Some(self)
    }
}

#[async_trait]
impl Owners for PostgresSink {
    async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>> {
        owners_in(&self.pool, pipeline)
            .await
            .map_err(|e| self.error("read the partition owners".into(), &e, OWNERS_HINT))
    }
}

#[async_trait]
impl EpochStore for PostgresSink {
    async fn recover(&mut self, pipeline: &str) -> Result<Option<Checkpoint>> {
        self.exactly_once = true;
        self.read_checkpoint(pipeline).await.map_err(|e| {
            self.error(
                "read the checkpoint".into(),
                &e,
                "the user needs CREATE on the schema for weir_epochs, weir_checkpoints and weir_plugin_state",
            )
        })
    }

    async fn claim(&mut self, key: &str, owner: &str) -> Result<Option<Checkpoint>> {
        let hint = "the user needs CREATE on the schema for weir_owners and the checkpoint tables";
        let claimed: std::result::Result<i64, sqlx::Error> = async {
            let mut conn = self.pool.acquire().await?;
            create_serialised(&mut conn, CHECKPOINT_DDL).await?;
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await?;
            let mut bump = std::pin::pin!(
                sqlx::query_scalar(
                    "INSERT INTO weir_owners (pipeline, owner_epoch, owner, renewed_at) VALUES ($1, 1, $2, clock_timestamp()) \
                     ON CONFLICT (pipeline) DO UPDATE SET owner_epoch = weir_owners.owner_epoch + 1, owner = EXCLUDED.owner, claimed_at = now(), renewed_at = EXCLUDED.renewed_at \
                     RETURNING owner_epoch",
                )
                .bind(key)
                .bind(owner)
                .fetch_one(&mut *conn)
            );
            loop {
                tokio::select! {
                    claimed = &mut bump => break claimed,
                    () = tokio::time::sleep(CLAIM_PATIENCE) => end_blockers(&self.pool, pid, key).await?,
                }
            }
        }
        .await;
        let owner_epoch = claimed.map_err(|e| self.error(format!("claim {key}"), &e, hint))?;
        tracing::debug!(sink = %self.name, partition = key, owner_epoch, "Partition claimed.");
        self.owner = Some((key.to_owned(), owner_epoch));
        self.recover(key).await
    }

    async fn holder(&mut self, key: &str) -> Result<Option<crate::owner::Holder>> {
        let found: std::result::Result<Option<(String, f64)>, sqlx::Error> = async {
            let mut conn = self.pool.acquire().await?;
            create_serialised(&mut conn, CHECKPOINT_DDL).await?;
            sqlx::query_as(
                "SELECT owner, EXTRACT(EPOCH FROM clock_timestamp() - renewed_at)::float8 FROM weir_owners WHERE pipeline = $1",
            )
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
        }
        .await;
        let found = found.map_err(|e| {
            self.error(
                format!("read who holds {key}"),
                &e,
                "the user needs CREATE on the schema for weir_owners",
            )
        })?;
        Ok(found.map(|(owner, age)| crate::owner::Holder {
            owner,
            renewed: Duration::from_secs_f64(age.max(0.0)),
        }))
    }

    async fn commit(&mut self, checkpoint: &Checkpoint, _force: bool) -> Result<bool> {
        let action = format!("commit epoch {}", checkpoint.epoch);
        let hint = "check the checkpoint tables are unchanged";
        let mut tx = match self.epoch.take() {
            Some(tx) => tx,
            None => self
                .pool
                .begin()
                .await
                .map_err(|e| self.error(action.clone(), &e, hint))?,
        };
        if let Some((key, owner_epoch)) = &self.owner {
            // The row lock orders this commit and a new owner's claim: if
            // the claim came first, the epoch no longer matches. The same
            // statement renews the claim.
            let still_mine = sqlx::query(
                "UPDATE weir_owners SET renewed_at = clock_timestamp() WHERE pipeline = $1 AND owner_epoch = $2",
            )
            .bind(key)
            .bind(owner_epoch)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(action.clone(), &e, hint))?
            .rows_affected()
                == 1;
            if !still_mine {
                return Err(Error::Fenced {
                    sink: self.name.clone(),
                    partition: key.clone(),
                    owner_epoch: *owner_epoch,
                });
            }
        }
        let written = Self::write_checkpoint(&mut tx, checkpoint)
            .await
            .map_err(|e| self.error(action.clone(), &e, hint))?;
        if !written {
            return Err(Error::Client {
                sink: self.name.clone(),
                action,
                reason: format!(
                    "a newer epoch of pipeline {} is already committed: another weir process runs it",
                    checkpoint.pipeline
                ),
                hint: "run each pipeline in one process; this one stops without committing",
            });
        }
        crate::crash::point("before-commit");
        tx.commit()
            .await
            .map_err(|e| self.error(action, &e, hint))?;
        Ok(true)
    }
}

/// How long a claim waits for the owner row before it ends the sessions
/// holding it. The previous owner locks that row only from its final check
/// to COMMIT (milliseconds); one holding it longer is paused or cut off
/// inside its commit, and would otherwise hold the partition until
/// PostgreSQL noticed the dead connection (minutes, or never for a paused
/// process).
const CLAIM_PATIENCE: Duration = Duration::from_secs(2);

/// Ends the PostgreSQL sessions that block session `pid`'s claim of `key`:
/// the consumer group gave the partition to this process, so the previous
/// owner's open commit is rolled back (on its next statement it finds its
/// connection gone, and then that its claim was superseded).
async fn end_blockers(pool: &PgPool, pid: i32, key: &str) -> std::result::Result<(), sqlx::Error> {
    use sqlx::ConnectOptions;
    // A connection of its own: the pool may have no other free one.
    let mut conn = pool.connect_options().connect().await?;
    let ended: Vec<i32> = sqlx::query_scalar(
        "SELECT blocker FROM unnest(pg_blocking_pids($1)) AS blocker WHERE pg_terminate_backend(blocker)",
    )
    .bind(pid)
    .fetch_all(&mut conn)
    .await?;
    if !ended.is_empty() {
        tracing::warn!(partition = key, sessions = ?ended, waited = ?CLAIM_PATIENCE, "The partition's owner row was held by the previous owner's unfinished commit (a paused or cut-off process): ended its PostgreSQL session, so its commit rolls back and this claim goes on.");
    }
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

/// Group mode: who owns each partition of a pipeline, as `weir_owners`
/// says, for `/readyz` and `weir status`.
pub(crate) struct OwnerBoard {
    pool: PgPool,
}

impl OwnerBoard {
    /// A board on the sink's database; connects on first use.
    pub(crate) fn open(config: &PostgresConfig) -> Option<OwnerBoard> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(&config.url)
            .ok()?;
        Some(OwnerBoard { pool })
    }
}

#[async_trait]
impl Owners for OwnerBoard {
    async fn owners(&mut self, pipeline: &str) -> Result<Vec<(String, String)>> {
        owners_in(&self.pool, pipeline)
            .await
            .map_err(|e| Error::Client {
                sink: "postgres".into(),
                action: "read the partition owners".into(),
                reason: e.to_string(),
                hint: OWNERS_HINT,
            })
    }
}

const OWNERS_HINT: &str = "check that PostgreSQL is reachable and the user may read weir_owners";

/// `(partition, owner)` for every partition checkpoint of `pipeline` in
/// `weir_owners`, the partition as `topic.partition`.
async fn owners_in(
    pool: &PgPool,
    pipeline: &str,
) -> std::result::Result<Vec<(String, String)>, sqlx::Error> {
    let prefix = format!("{pipeline}@");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT pipeline, owner FROM weir_owners WHERE starts_with(pipeline, $1) ORDER BY pipeline",
    )
    .bind(&prefix)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, owner)| (key[prefix.len()..].to_owned(), owner))
        .collect())
}

/// Keeps the last row for each key (an upsert cannot touch a row twice in
/// one statement); earlier rows for the key are superseded, not lost. The
/// kept lines are copied into a buffer of their own, back to back.
fn last_per_key(
    rows: Vec<(Record, Range<usize>)>,
    buf: &[u8],
    key: &[usize],
) -> (Vec<(Record, Range<usize>)>, Vec<u8>) {
    let keys: Vec<Vec<&[u8]>> = rows
        .iter()
        .map(|(_, range)| {
            let line = &buf[range.clone()];
            let cells: Vec<&[u8]> = line
                .strip_suffix(b"\n")
                .unwrap_or(line)
                .split(|b| *b == b'\t')
                .collect();
            key.iter()
                .map(|&i| cells.get(i).copied().unwrap_or_default())
                .collect()
        })
        .collect();
    let mut last: HashMap<&[&[u8]], usize> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        last.insert(k.as_slice(), i);
    }
    let mut kept_buf = Vec::with_capacity(buf.len());
    let mut kept = Vec::with_capacity(last.len());
    for (i, (record, range)) in rows.into_iter().enumerate() {
        if last.get(keys[i].as_slice()) == Some(&i) {
            let start = kept_buf.len();
            kept_buf.extend_from_slice(&buf[range]);
            kept.push((record, start..kept_buf.len()));
        }
    }
    (kept, kept_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(kind: Kind, json: &str) -> std::result::Result<String, ()> {
        let field = Paths::new([&[][..]])
            .read(json.as_bytes())
            .unwrap()
            .remove(0);
        let mut out = Vec::new();
        cell_into(kind, &field, &mut out).map_err(|_| ())?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn cells_are_checked_against_their_sql_type() {
        let int4 = Kind::of("integer");
        assert_eq!(cell(int4, "7").unwrap(), "7");
        assert!(cell(int4, r#""7""#).is_err());
        assert!(cell(int4, &(1u64 << 40).to_string()).is_err());
        assert!(cell(int4, "7.0").is_err());
        assert_eq!(
            cell(Kind::of("bigint"), "-9223372036854775808").unwrap(),
            "-9223372036854775808"
        );
        assert!(cell(Kind::of("bigint"), "9223372036854775808").is_err());
        assert!(cell(Kind::of("double precision"), "true").is_err());
        assert_eq!(cell(Kind::of("double precision"), "2.50").unwrap(), "2.5");
        assert_eq!(cell(Kind::of("double precision"), "1e3").unwrap(), "1000.0");
        assert_eq!(cell(Kind::of("numeric"), r#""12.30""#).unwrap(), "12.30");
        assert!(cell(Kind::of("numeric"), r#""twelve""#).is_err());
        assert_eq!(cell(Kind::of("text"), "null").unwrap(), "\\N");
        assert_eq!(cell(Kind::of("text"), r#""a\tb""#).unwrap(), "a\\tb");
        assert_eq!(
            cell(Kind::of("text"), r#"{"a": [1]}"#).unwrap(),
            r#"{"a":[1]}"#
        );
        assert_eq!(
            cell(Kind::of("timestamptz"), "0").unwrap(),
            "1970-01-01T00:00:00Z"
        );
        assert!(cell(Kind::of("timestamptz"), "0.5").is_err());
        assert_eq!(
            cell(Kind::of("jsonb"), r#"{"a":[1]}"#).unwrap(),
            r#"{"a":[1]}"#
        );
        assert_eq!(cell(Kind::of("jsonb"), r#""x""#).unwrap(), r#""x""#);
        assert_eq!(Kind::of("varchar(20)"), Kind::Text);
        assert_eq!(Kind::of("NUMERIC(10,2)"), Kind::Numeric);
    }

    #[test]
    fn a_float_a_plugin_wrote_is_stored_as_the_same_double() {
        // The default serde_json parser reads these one unit in the last
        // place off (…685, …537); the Python peer stored them exactly.
        for text in [
            "15.683168316831683",
            "13.612813370473537",
            "23.933333333333334",
        ] {
            assert_eq!(cell(Kind::of("double precision"), text).unwrap(), text);
        }
    }

    #[test]
    fn copy_text_escapes_separators_and_refuses_nul() {
        let mut out = Vec::new();
        escape_into(&mut out, "a\tb\\c\nd").unwrap();
        assert_eq!(out, b"a\\tb\\\\c\\nd");
        assert!(escape_into(&mut Vec::new(), "a\0b").is_err());
    }

    #[test]
    fn identifiers_are_quoted_per_part() {
        assert_eq!(quote_ident("analytics.trips"), "\"analytics\".\"trips\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
