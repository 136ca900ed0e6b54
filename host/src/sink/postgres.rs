//! Rows in a PostgreSQL table, written with `COPY … FROM STDIN` (text
//! format).
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

use super::{Error, Rejected, Result, Sink};
use crate::Record;
use crate::checkpoint::{Checkpoint, PluginState};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use sqlx::Acquire;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, Postgres};
use std::collections::HashMap;
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
    path: Vec<String>,
    kind: Kind,
}

/// The sink.
pub struct PostgresSink {
    name: String,
    pool: PgPool,
    columns: Vec<Column>,
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
    buf: Vec<u8>,
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
        Ok(PostgresSink {
            name,
            pool,
            columns: config
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    path: parse_path(c.path.as_deref().unwrap_or(&c.name)),
                    kind: Kind::of(&c.sql_type),
                })
                .collect(),
            copy_sql,
            upsert,
            key_columns,
            epoch: None,
            owner: None,
            exactly_once: false,
        })
    }

    /// One COPY text line for a record, or why it cannot be written.
    fn encode(&self, record: &Record) -> std::result::Result<Vec<u8>, String> {
        let value: Value = serde_json::from_slice(&record.value)
            .map_err(|e| format!("not JSON, cannot map to columns: {e}"))?;
        let mut line = Vec::with_capacity(record.value.len());
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            let field = column
                .path
                .iter()
                .try_fold(&value, |v, part| v.get(part.as_str()));
            match field {
                None | Some(Value::Null) => line.extend_from_slice(b"\\N"),
                Some(v) => {
                    let text = cell(column.kind, v).map_err(|why| {
                        format!("column {} ({why}): got {}", column.name, abbreviate(v))
                    })?;
                    escape_into(&mut line, &text)
                        .map_err(|why| format!("column {}: {why}", column.name))?;
                }
            }
        }
        line.push(b'\n');
        Ok(line)
    }

    /// COPYs the lines atomically: in their own transaction, or under a
    /// savepoint of the epoch's transaction.
    async fn copy(&mut self, lines: &[&[u8]]) -> std::result::Result<(), sqlx::Error> {
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len()).sum());
        for line in lines {
            buf.extend_from_slice(line);
        }
        let upsert = self.upsert.as_ref();
        if self.exactly_once {
            if self.epoch.is_none() {
                self.epoch = Some(self.pool.begin().await?);
            }
            let epoch = self.epoch.as_mut().expect("just begun");
            let mut savepoint = epoch.begin().await?;
            copy_rows(&mut savepoint, &self.copy_sql, upsert, buf).await?;
            savepoint.commit().await
        } else {
            let mut tx = self.pool.begin().await?;
            copy_rows(&mut tx, &self.copy_sql, upsert, buf).await?;
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

    /// COPYs `rows`; when PostgreSQL refuses the data, splits the batch to
    /// find the refused rows and returns them with its message.
    async fn copy_isolating(&mut self, rows: Vec<(Record, Vec<u8>)>) -> Result<Vec<Rejected>> {
        let mut rejected = Vec::new();
        let mut todo = vec![rows];
        while let Some(rows) = todo.pop() {
            if rows.is_empty() {
                continue;
            }
            let lines: Vec<&[u8]> = rows.iter().map(|(_, l)| l.as_slice()).collect();
            match self.copy(&lines).await {
                Ok(()) => {}
                Err(e) if is_data_error(&e) => {
                    if rows.len() == 1 {
                        let (record, _) = rows.into_iter().next().expect("one row");
                        rejected.push(Rejected {
                            record,
                            reason: format!("refused by PostgreSQL: {}", db_message(&e)),
                        });
                    } else {
                        let mut first = rows;
                        let second = first.split_off(first.len() / 2);
                        todo.push(second);
                        todo.push(first);
                    }
                }
                Err(e) => {
                    return Err(self.error(
                        format!("COPY {} rows", rows.len()),
                        &e,
                        "check the table is unchanged and the user may write to it",
                    ));
                }
            }
        }
        Ok(rejected)
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

fn abbreviate(v: &Value) -> String {
    let mut text = v.to_string();
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

/// The text of one cell, checked against the column's kind.
fn cell(kind: Kind, v: &Value) -> std::result::Result<String, &'static str> {
    match (kind, v) {
        (Kind::Int { min, max }, Value::Number(n)) => {
            let i = n.as_i64().ok_or("expected an integer")?;
            if i < min || i > max {
                return Err("integer out of range for the column type");
            }
            Ok(i.to_string())
        }
        (Kind::Int { .. }, _) => Err("expected an integer"),
        (Kind::Float, Value::Number(n)) => Ok(n.to_string()),
        (Kind::Float, _) => Err("expected a number"),
        (Kind::Numeric, Value::Number(n)) => Ok(n.to_string()),
        (Kind::Numeric, Value::String(s)) if s.parse::<f64>().is_ok() => Ok(s.clone()),
        (Kind::Numeric, _) => Err("expected a number"),
        (Kind::Bool, Value::Bool(b)) => Ok(b.to_string()),
        (Kind::Bool, _) => Err("expected true or false"),
        (Kind::Json, v) => Ok(v.to_string()),
        (Kind::Time, Value::Number(n)) => n
            .as_i64()
            .map(weir_plugin_kit::time::format_rfc3339)
            .ok_or("expected a timestamp or epoch milliseconds"),
        (Kind::Time | Kind::Text, Value::String(s)) => Ok(s.clone()),
        (Kind::Time, _) => Err("expected a timestamp or epoch milliseconds"),
        (Kind::Text, Value::Number(n)) => Ok(n.to_string()),
        (Kind::Text, Value::Bool(b)) => Ok(b.to_string()),
        (Kind::Text, v) => Ok(v.to_string()),
    }
}

/// Escapes a cell for COPY's text format.
fn escape_into(out: &mut Vec<u8>, text: &str) -> std::result::Result<(), &'static str> {
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
        for record in records {
            match self.encode(&record) {
                Ok(line) => rows.push((record, line)),
                Err(reason) => rejected.push(Rejected { record, reason }),
            }
        }
        if !self.key_columns.is_empty() {
            rows = last_per_key(rows, &self.key_columns);
        }
        rejected.extend(self.copy_isolating(rows).await?);
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

    /// `(partition, owner)` for every partition checkpoint of `pipeline`,
    /// the partition as `topic.partition`.
    pub(crate) async fn owners(
        &self,
        pipeline: &str,
    ) -> std::result::Result<Vec<(String, String)>, sqlx::Error> {
        let prefix = format!("{pipeline}@");
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT pipeline, owner FROM weir_owners WHERE starts_with(pipeline, $1) ORDER BY pipeline",
        )
        .bind(&prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, owner)| (key[prefix.len()..].to_owned(), owner))
            .collect())
    }
}

/// Keeps the last row for each key (an upsert cannot touch a row twice in
/// one statement); earlier rows for the key are superseded, not lost.
fn last_per_key(rows: Vec<(Record, Vec<u8>)>, key: &[usize]) -> Vec<(Record, Vec<u8>)> {
    let keys: Vec<Vec<&[u8]>> = rows
        .iter()
        .map(|(_, line)| {
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
    let keep: Vec<bool> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| last.get(k.as_slice()) == Some(&i))
        .collect();
    rows.into_iter()
        .zip(keep)
        .filter_map(|(row, keep)| keep.then_some(row))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_checked_against_their_sql_type() {
        let int4 = Kind::of("integer");
        assert_eq!(cell(int4, &serde_json::json!(7)).unwrap(), "7");
        assert!(cell(int4, &serde_json::json!("7")).is_err());
        assert!(cell(int4, &serde_json::json!(1u64 << 40)).is_err());
        assert!(cell(Kind::of("double precision"), &serde_json::json!(true)).is_err());
        assert_eq!(
            cell(Kind::of("timestamptz"), &serde_json::json!(0)).unwrap(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            cell(Kind::of("jsonb"), &serde_json::json!({"a":[1]})).unwrap(),
            r#"{"a":[1]}"#
        );
        assert_eq!(Kind::of("varchar(20)"), Kind::Text);
        assert_eq!(Kind::of("NUMERIC(10,2)"), Kind::Numeric);
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
