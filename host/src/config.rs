//! The TOML configuration: parsing, `${VAR}` interpolation and validation.
//!
//! Every problem is reported with the file, the line and the key, so that
//! `weir validate` can point at it. Unknown keys are refused everywhere: a
//! typo must never silently fall back to a default. Relative paths are
//! resolved from the folder that holds the configuration file.
//!
//! This module never touches the data a pipeline would read or write.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `pipelines.quickstart.source.path`, when known.
    pub key: Option<String>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config {path}: {source} (check the path and its permissions)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has problems.
    #[error("config {path} has {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Settings of the WebAssembly engine shared by all plugins.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The operations endpoint (`/metrics`, `/livez`, `/readyz`); off unless
    /// this table is present or `weir run --listen` is given.
    pub server: Option<ServerConfig>,
    /// Transforms by name; pipelines refer to them by that name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Pipelines by name; all of them run in this one process.
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Folder holding the configuration file; relative paths start here.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The interpolated text, kept so later checks can point at lines.
    #[serde(skip)]
    text: String,
}

/// `[engine]`: the WebAssembly engine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineConfig {
    /// Where compiled components are cached, keyed by the `.wasm` content
    /// hash. Default: `$XDG_CACHE_HOME/weir/components` or
    /// `~/.cache/weir/components`.
    pub cache_dir: Option<PathBuf>,
}

/// `[server]`: the operations endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// Address to bind; loopback by default so metrics are not exposed
    /// beyond the machine unless asked for.
    #[serde(default = "defaults::listen")]
    pub listen: std::net::SocketAddr,
}

/// `[plugins.<name>]`: one transform component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginConfig {
    /// Path of the `.wasm` component, or the URL of a published location
    /// (`s3://bucket/plugins/x.wasm`, `file:///…`) that `weir plugin
    /// deploy` writes and every process of a fleet reads.
    pub path: PathBuf,
    /// Object-store settings of a published location (the keys a Parquet
    /// sink's `options` take: `endpoint`, `region`, …).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// How often a published location is asked whether a new version is
    /// live.
    #[serde(default = "defaults::poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// Longest a single call (one batch) may run before it is interrupted.
    #[serde(default = "defaults::max_batch_time", deserialize_with = "duration")]
    pub max_batch_time: Duration,
    /// Most linear memory the instance may use, e.g. `"256MiB"`.
    #[serde(default = "defaults::max_memory", deserialize_with = "byte_size")]
    pub max_memory: u64,
    /// `recycle-memory` as written; [`PluginConfig::recycle_memory`] is the
    /// value in force.
    #[serde(
        rename = "recycle-memory",
        default,
        deserialize_with = "optional_byte_size"
    )]
    pub recycle_memory_set: Option<u64>,
    /// The plugin's own configuration, handed to its `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Whether a changed `.wasm` at `path` is swapped in while running.
    #[serde(default = "defaults::yes")]
    pub watch: bool,
    /// How a new version goes live: `immediate` (at the next batch
    /// boundary) or `canary` (shadows the live one first).
    #[serde(default)]
    pub swap: crate::swap::SwapMode,
    /// `keep` hands the live state to a new version (refused when the state
    /// versions differ); `reset` starts the new version empty.
    #[serde(default)]
    pub state: crate::swap::StatePolicy,
    /// A new version that traps on one of its first this many batches is
    /// rolled back and the batch reprocessed by the previous version.
    #[serde(default = "defaults::probation_batches")]
    pub probation_batches: u32,
    /// Batches a canary shadows the live version before the verdict.
    #[serde(default = "defaults::canary_batches")]
    pub canary_batches: u32,
    /// How much higher a canary's failure rate may be than the live one's
    /// (0.01 = one percentage point) and still be promoted.
    #[serde(default = "defaults::canary_margin")]
    pub canary_margin: f64,
    /// Host folders granted to the plugin read-only, by the path it sees
    /// (`{ "/ref" = "data/ref" }`). Nothing else: no other file, no
    /// network, no environment, no clock.
    #[serde(default)]
    pub read_only_dirs: BTreeMap<String, PathBuf>,
    /// Most records one call may output (a batch that exceeds it is split
    /// until the records that do are found and dead-lettered).
    #[serde(default = "defaults::max_output_records")]
    pub max_output_records: usize,
    /// Largest output record, e.g. `"16MiB"`.
    #[serde(
        default = "defaults::max_output_record_size",
        deserialize_with = "byte_size"
    )]
    pub max_output_record_size: u64,
    /// Records that trap in a row before `on-plugin-failure` applies.
    #[serde(default = "defaults::max_consecutive_traps")]
    pub max_consecutive_traps: u32,
    /// What happens to a plugin that keeps trapping.
    #[serde(default)]
    pub on_plugin_failure: OnPluginFailure,
}

/// What happens when a plugin traps on `max-consecutive-traps` records in
/// a row: never a hot loop of restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnPluginFailure {
    /// The pipeline stops with the reason; nothing past the last checkpoint
    /// is committed.
    #[default]
    Stop,
    /// The plugin is disabled: every record goes to the dead letters until
    /// a new version is swapped in.
    DeadLetterAll,
}

/// What happens to a record that failed (a plugin refused it or trapped on
/// it), modelled on Kafka Connect's `errors.tolerance`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// To the dead-letter sink, with the reason.
    #[default]
    DeadLetter,
    /// Dropped, but counted (`weir_records_skipped_total`) and logged.
    Skip,
    /// The pipeline stops with the reason, before committing past it.
    Stop,
}

/// `[pipelines.<name>]`: source → plugins → sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PipelineConfig {
    /// Names of `[plugins.*]` entries, applied in this order.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Most records handed to a plugin in one call.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// Batches of output that may wait for the sink before the plugins
    /// pause: they let the next batch be transformed while the sink writes,
    /// and bound the memory output takes.
    #[serde(default = "defaults::queue_depth")]
    pub queue_depth: usize,
    /// How often plugins get `on-tick` (to close windows with no traffic).
    #[serde(default = "defaults::tick_interval", deserialize_with = "duration")]
    pub tick_interval: Duration,
    /// Where records come from.
    pub source: crate::source::SourceConfig,
    /// Where output records go.
    pub sink: crate::sink::SinkConfig,
    /// Where failed records go, with their reason. Default: an NDJSON file
    /// `dead-letter/<pipeline>.ndjson` beside the configuration.
    pub dead_letter: Option<crate::sink::SinkConfig>,
    /// `exactly-once` or `at-least-once`; by default exactly-once where the
    /// sink can store the checkpoint with its data, else at-least-once.
    pub delivery: Option<crate::checkpoint::Delivery>,
    /// Longest time between checkpoints (end of an epoch).
    #[serde(
        default = "defaults::checkpoint_interval",
        deserialize_with = "duration"
    )]
    pub checkpoint_interval: Duration,
    /// Also end an epoch after this many source records.
    pub checkpoint_records: Option<u64>,
    /// Folder of at-least-once pipelines' checkpoint files (one
    /// `<pipeline>.json` each). Exactly-once pipelines keep theirs in the
    /// sink.
    #[serde(default = "defaults::checkpoint_dir")]
    pub checkpoint_dir: PathBuf,
    /// How output records name the plugin versions that made them:
    /// `header` (a `weir.plugins` header), `field` (a JSON field, see
    /// `plugin-version-field`) or `none`.
    #[serde(default)]
    pub plugin_version: crate::swap::VersionTag,
    /// The JSON field `plugin-version = "field"` adds to output objects.
    #[serde(default = "defaults::plugin_version_field")]
    pub plugin_version_field: String,
    /// `dead-letter`, `skip` or `stop`: what happens to a failed record.
    #[serde(default)]
    pub on_error: OnError,
    /// One process runs an exactly-once pipeline (unless its Kafka source
    /// is in group mode); a second one is refused before it writes. With
    /// `standby = true` it waits instead, and takes over when the holder
    /// stops or its claim lapses (see [`PipelineConfig::lease`]).
    #[serde(default)]
    pub standby: bool,
}

impl PipelineConfig {
    /// How long the claim of a single-process pipeline lasts without
    /// renewal: three checkpoint intervals (every commit renews it), at
    /// least 10 s.
    pub fn lease(&self) -> Duration {
        (self.checkpoint_interval * 3).max(Duration::from_secs(10))
    }

    /// The delivery the pipeline gets and why, or why the one asked for is
    /// impossible.
    pub fn delivery(
        &self,
    ) -> std::result::Result<(crate::checkpoint::Delivery, &'static str), String> {
        use crate::checkpoint::Delivery;
        match (self.delivery, self.sink.exactly_once()) {
            (None | Some(Delivery::ExactlyOnce), Ok(why)) => Ok((Delivery::ExactlyOnce, why)),
            (None, Err(why)) => Ok((Delivery::AtLeastOnce, why)),
            (Some(Delivery::AtLeastOnce), _) => Ok((
                Delivery::AtLeastOnce,
                "asked for: checkpoints go to a local file after the sink is flushed",
            )),
            (Some(Delivery::ExactlyOnce), Err(why)) => Err(format!(
                "a {} sink cannot be exactly-once: {why}; set delivery = \"at-least-once\"",
                self.sink.kind()
            )),
        }
    }
}

mod defaults {
    use std::time::Duration;
    pub fn poll_interval() -> Duration {
        crate::plugin::published::POLL_INTERVAL
    }
    pub fn listen() -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 9464))
    }
    pub fn max_batch_time() -> Duration {
        Duration::from_secs(2)
    }
    pub fn max_memory() -> u64 {
        256 * 1024 * 1024
    }
    pub fn recycle_memory() -> u64 {
        64 * 1024 * 1024
    }
    pub fn batch_size() -> usize {
        1024
    }
    pub fn queue_depth() -> usize {
        2
    }
    pub fn tick_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn checkpoint_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn checkpoint_dir() -> std::path::PathBuf {
        ".weir/checkpoints".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn probation_batches() -> u32 {
        3
    }
    pub fn canary_batches() -> u32 {
        20
    }
    pub fn max_output_records() -> usize {
        1_000_000
    }
    pub fn max_output_record_size() -> u64 {
        16 << 20
    }
    pub fn max_consecutive_traps() -> u32 {
        10
    }
    pub fn canary_margin() -> f64 {
        0.01
    }
    pub fn plugin_version_field() -> String {
        "weir_version".into()
    }
}

/// Deserialises `"60s"`, `"250ms"`, `"5m"`, `"1h"`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    weir_plugin_kit::duration::parse_ms(&text)
        .map(Duration::from_millis)
        .map_err(serde::de::Error::custom)
}

/// Deserialises a size: a number of bytes or `"64MiB"`, `"1GiB"`, `"500KB"`.
pub fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(n) => Ok(n),
        Raw::Text(text) => parse_byte_size(&text).map_err(serde::de::Error::custom),
    }
}

fn optional_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    byte_size(d).map(Some)
}

impl PluginConfig {
    /// Linear memory past which the instance is replaced between two
    /// batches by a fresh one holding its state (a guest's memory never
    /// shrinks; some runtimes keep memory per call): `recycle-memory`, else
    /// 64 MiB or half of `max-memory` if that is less; `0` never.
    pub fn recycle_memory(&self) -> u64 {
        self.recycle_memory_set
            .unwrap_or_else(|| defaults::recycle_memory().min(self.max_memory / 2))
    }

    /// The URL of a published location, when `path` is one.
    pub fn url(&self) -> Option<&str> {
        self.path
            .to_str()
            .filter(|p| crate::plugin::published::is_url(p))
    }
}

/// Parses `"64MiB"`-style sizes; the error lists the accepted units.
pub fn parse_byte_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. \"64MiB\""))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

impl Config {
    /// Reads, interpolates, parses and checks a configuration file. Does not
    /// open plugins or data; `weir validate` does that on top.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Config::parse(&text, &base_dir, &|name| std::env::var(name).ok()).map_err(|problems| {
            Error::Invalid {
                path: path.to_owned(),
                problems,
            }
        })
    }

    /// Parses configuration text. `env` looks variables up (injected so tests
    /// need not touch the process environment).
    pub fn parse(
        text: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<Config, Vec<Problem>> {
        let text = interpolate(text, env)?;
        let mut config: Config = toml::from_str(&text).map_err(|e| {
            vec![Problem {
                line: e.span().map(|s| line_of(&text, s.start)),
                key: None,
                message: e.message().trim().to_owned(),
            }]
        })?;
        config.base_dir = base_dir.to_owned();
        config.text = text;
        let problems = config.check();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Resolves a path from the configuration against its folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }

    /// A problem at a dotted key, with the key's line in this file.
    pub fn problem(&self, key: &str, message: String) -> Problem {
        Problem {
            line: key_line(&self.text, key),
            key: Some(key.to_owned()),
            message,
        }
    }

    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| problems.push(self.problem(&key, message));
        if self.pipelines.is_empty() {
            problem(
                "pipelines".into(),
                "no pipeline is defined; add a [pipelines.<name>] table".into(),
            );
        }
        for (name, plugin) in &self.plugins {
            let path = self.resolve(&plugin.path);
            if let Some(url) = plugin.url() {
                if let Err(e) = crate::plugin::published::Published::open(url, &plugin.options) {
                    problem(format!("plugins.{name}.path"), e.to_string());
                }
                if plugin.poll_interval.is_zero() {
                    problem(
                        format!("plugins.{name}.poll-interval"),
                        "must be more than 0".into(),
                    );
                }
            } else if !plugin.options.is_empty() {
                problem(
                    format!("plugins.{name}.options"),
                    "options are for a published location (an s3:// or file:// path); a local file takes none".into(),
                );
            } else if !path.is_file() {
                problem(
                    format!("plugins.{name}.path"),
                    format!(
                        "{} does not exist (build the plugin first, e.g. `scripts/build-plugins.sh`; relative paths start at the config's folder)",
                        path.display()
                    ),
                );
            }
            if plugin.max_batch_time.is_zero() {
                problem(
                    format!("plugins.{name}.max-batch-time"),
                    "must be more than 0".into(),
                );
            }
            if plugin.max_memory < 1 << 20 {
                problem(
                    format!("plugins.{name}.max-memory"),
                    "must be at least 1MiB; a component needs memory to start".into(),
                );
            }
            if plugin
                .recycle_memory_set
                .is_some_and(|set| set >= plugin.max_memory)
            {
                problem(
                    format!("plugins.{name}.recycle-memory"),
                    format!(
                        "must be below max-memory ({} bytes), or 0 to never recycle: an instance cannot grow past max-memory",
                        plugin.max_memory
                    ),
                );
            }
            if !(0.0..=1.0).contains(&plugin.canary_margin) {
                problem(
                    format!("plugins.{name}.canary-margin"),
                    "must be between 0 and 1 (a share of records, e.g. 0.01)".into(),
                );
            }
            for (guest, host) in &plugin.read_only_dirs {
                if !self.resolve(host).is_dir() {
                    problem(
                        format!("plugins.{name}.read-only-dirs"),
                        format!(
                            "{guest:?} = {}: not a folder (relative paths start at the config's folder)",
                            self.resolve(host).display()
                        ),
                    );
                }
                if !guest.starts_with('/') {
                    problem(
                        format!("plugins.{name}.read-only-dirs"),
                        format!(
                            "{guest:?}: the path the plugin sees must be absolute, e.g. \"/ref\""
                        ),
                    );
                }
            }
            if plugin.max_consecutive_traps == 0 {
                problem(
                    format!("plugins.{name}.max-consecutive-traps"),
                    "must be at least 1".into(),
                );
            }
            if plugin.swap == crate::swap::SwapMode::Canary && plugin.canary_batches == 0 {
                problem(
                    format!("plugins.{name}.canary-batches"),
                    "must be at least 1 with swap = \"canary\"".into(),
                );
            }
        }
        for (name, pipeline) in &self.pipelines {
            for plugin in &pipeline.plugins {
                if !self.plugins.contains_key(plugin) {
                    problem(
                        format!("pipelines.{name}.plugins"),
                        format!(
                            "plugin {plugin:?} is not defined; add [plugins.{plugin}] or fix the name (defined: {})",
                            self.plugins.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            if pipeline.batch_size == 0 {
                problem(
                    format!("pipelines.{name}.batch-size"),
                    "must be at least 1".into(),
                );
            }
            if pipeline.queue_depth == 0 {
                problem(
                    format!("pipelines.{name}.queue-depth"),
                    "must be at least 1".into(),
                );
            }
            if let Err(message) = pipeline.delivery() {
                problem(format!("pipelines.{name}.delivery"), message);
            }
            if let crate::sink::SinkConfig::Parquet(parquet) = &pipeline.sink
                && parquet.max_open_files == 0
            {
                problem(
                    format!("pipelines.{name}.sink.max-open-files"),
                    "must be at least 1 (one file open per partition folder written to)".into(),
                );
            }
            if let crate::source::SourceConfig::Kafka(kafka) = &pipeline.source
                && kafka.assignment != crate::source::kafka::Assignment::All
                && !(matches!(
                    pipeline.sink,
                    crate::sink::SinkConfig::Postgres(_) | crate::sink::SinkConfig::Parquet(_)
                ) && matches!(
                    pipeline.delivery(),
                    Ok((crate::checkpoint::Delivery::ExactlyOnce, _))
                ))
            {
                problem(
                    format!("pipelines.{name}.source.assignment"),
                    "group mode needs an exactly-once postgres or parquet sink: each partition's checkpoint and owner are stored there, where every process of the pipeline reads them (other sinks: keep assignment = \"all\" and run one process)".into(),
                );
            }
            let group_mode = matches!(&pipeline.source, crate::source::SourceConfig::Kafka(kafka)
                if kafka.assignment != crate::source::kafka::Assignment::All);
            if pipeline.standby && group_mode {
                problem(
                    format!("pipelines.{name}.standby"),
                    "in group mode every process is active and takes partitions over by itself; remove standby".into(),
                );
            } else if pipeline.standby
                && !matches!(
                    pipeline.delivery(),
                    Ok((crate::checkpoint::Delivery::ExactlyOnce, _))
                )
            {
                problem(
                    format!("pipelines.{name}.standby"),
                    "a standby needs an exactly-once sink (postgres or parquet): the holder's claim is kept there".into(),
                );
            }
            if pipeline.checkpoint_interval.is_zero() || pipeline.checkpoint_records == Some(0) {
                problem(
                    format!("pipelines.{name}.checkpoint-interval"),
                    "checkpoint-interval and checkpoint-records must be more than 0".into(),
                );
            }
            for (key, message) in pipeline.source.check(self) {
                problem(format!("pipelines.{name}.source.{key}"), message);
            }
        }
        problems
    }
}

/// Replaces `${VAR}`, `${VAR:-default}` and `${VAR:?message}`; `$${` is a
/// literal `${`. An undefined variable without a default is an error.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(literal) = after.strip_prefix("${") {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let Some(inner) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let Some(end) = inner.find('}') else {
                problems.push(Problem {
                    line: Some(number + 1),
                    key: None,
                    message: "unclosed `${` (write `$${` for a literal `${`)".into(),
                });
                rest = "";
                break;
            };
            let expr = &inner[..end];
            match expand(expr, env) {
                Ok(value) => out.push_str(&value),
                Err(message) => problems.push(Problem {
                    line: Some(number + 1),
                    key: None,
                    message,
                }),
            }
            rest = &inner[end + 1..];
        }
        out.push_str(rest);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn expand(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let (name, op) = match expr.find(':') {
        Some(i) => (&expr[..i], Some(&expr[i + 1..])),
        None => (expr, None),
    };
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(format!("`${{{expr}}}`: {name:?} is not a variable name"));
    }
    let value = env(name).filter(|v| !v.is_empty());
    match (value, op) {
        (Some(v), _) => Ok(v),
        (None, Some(op)) if op.starts_with('-') => Ok(op[1..].to_owned()),
        (None, Some(op)) if op.starts_with('?') => Err(format!(
            "environment variable {name} is not set: {}",
            &op[1..]
        )),
        (None, Some(op)) => Err(format!(
            "`${{{expr}}}`: unknown operator {op:?} (use `:-default` or `:?message`)"
        )),
        (None, None) => Err(format!(
            "environment variable {name} is not set (set it, or write `${{{name}:-default}}`)"
        )),
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Line where a dotted key is defined, found through the spans of the parsed
/// document.
pub fn key_line(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let key: Vec<&str> = key.split('.').collect();
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut span = None;
    for (i, segment) in key.iter().enumerate() {
        let (k, v) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == *segment)?;
        span = Some(k.span());
        if i + 1 < key.len() {
            match v.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return span.map(|s| line_of(text, s.start)),
            }
        }
    }
    span.map(|s| line_of(text, s.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_defaults_errors_and_literals() {
        let out = interpolate(
            "a = \"${HOST}\"\nb = \"${NOPE:-x}\"\nc = \"$${HOST}\"\n",
            &env,
        )
        .unwrap();
        assert_eq!(out, "a = \"db.local\"\nb = \"x\"\nc = \"${HOST}\"\n");
        let problems = interpolate("\n\nx = \"${NOPE}\" ${EMPTY:?needed for y}", &env).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, Some(3));
        assert!(problems[0].message.contains("NOPE is not set"));
        assert!(problems[1].message.contains("needed for y"));
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let text = "[pipelines.p]\nsource = { type = \"file\", path = \"x\" }\nsink = { type = \"ndjson\", path = \"o\" }\nbatch-sise = 10\n";
        let problems = Config::parse(text, Path::new("."), &env).unwrap_err();
        assert_eq!(problems[0].line, Some(4), "{problems:?}");
        assert!(
            problems[0].message.contains("unknown field `batch-sise`"),
            "{problems:?}"
        );
    }

    #[test]
    fn undefined_plugin_reference_names_key_and_line() {
        let text = "[pipelines.p]\nplugins = [\"nope\"]\nsource = { type = \"stdin\" }\nsink = { type = \"ndjson\", path = \"-\" }\n";
        let problems = Config::parse(text, Path::new("."), &env).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key.as_deref(), Some("pipelines.p.plugins"));
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[0].message.contains("\"nope\" is not defined"));
    }

    #[test]
    fn bad_duration_and_size_are_refused() {
        let text = "[plugins.a]\npath = \"a.wasm\"\nmax-batch-time = \"2 days\"\nmax-memory = \"9XB\"\n[pipelines.p]\nsource = { type = \"stdin\" }\nsink = { type = \"ndjson\", path = \"-\" }\n";
        let problems = Config::parse(text, Path::new("."), &env).unwrap_err();
        assert_eq!(problems[0].line, Some(3), "{problems:?}");
        assert!(problems[0].message.contains("unknown unit"), "{problems:?}");
        assert_eq!(parse_byte_size("64MiB"), Ok(64 << 20));
        assert!(parse_byte_size("9XB").is_err());
    }

    #[test]
    fn memory_bounds_default_small_and_bad_ones_are_refused_by_key() {
        let kafka = |extra: &str| {
            format!(
                "[pipelines.p]\nsource = {{ type = \"kafka\", brokers = \"b:9092\", topics = [\"t\"], group = \"g\"{extra} }}\nsink = {{ type = \"ndjson\", path = \"-\" }}\n"
            )
        };
        let config = Config::parse(&kafka(""), Path::new("."), &env).unwrap();
        let pipeline = &config.pipelines["p"];
        assert_eq!(pipeline.queue_depth, 2);
        let crate::source::SourceConfig::Kafka(source) = &pipeline.source else {
            panic!("a Kafka source");
        };
        assert_eq!(source.prefetch, 1 << 20);
        let problems =
            Config::parse(&kafka(", prefetch = \"512B\""), Path::new("."), &env).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.key.as_deref().is_some_and(|k| k.ends_with("prefetch"))),
            "{problems:?}"
        );
        let problems = Config::parse(
            &format!("{}queue-depth = 0\n", kafka("")),
            Path::new("."),
            &env,
        )
        .unwrap_err();
        assert_eq!(problems[0].key.as_deref(), Some("pipelines.p.queue-depth"));
    }

    #[test]
    fn delivery_defaults_to_what_the_sink_supports_and_an_impossible_one_is_refused() {
        use crate::checkpoint::Delivery;
        let pg = "sink = { type = \"postgres\", url = \"postgres://x/y\", table = \"t\", columns = [{ name = \"a\", type = \"text\" }] }\n";
        let ndjson = "sink = { type = \"ndjson\", path = \"-\" }\n";
        let config = |sink: &str, delivery: &str| {
            format!("[pipelines.p]\nsource = {{ type = \"stdin\" }}\n{sink}{delivery}")
        };
        let pipeline = |text: String| {
            Config::parse(&text, Path::new("."), &env).map(|c| c.pipelines["p"].delivery())
        };
        assert_eq!(
            pipeline(config(pg, "")).unwrap().unwrap().0,
            Delivery::ExactlyOnce
        );
        assert_eq!(
            pipeline(config(ndjson, "")).unwrap().unwrap().0,
            Delivery::AtLeastOnce
        );
        assert_eq!(
            pipeline(config(pg, "delivery = \"at-least-once\"\n"))
                .unwrap()
                .unwrap()
                .0,
            Delivery::AtLeastOnce
        );
        let problems = pipeline(config(ndjson, "delivery = \"exactly-once\"\n")).unwrap_err();
        assert_eq!(
            problems[0].key.as_deref(),
            Some("pipelines.p.delivery"),
            "{problems:?}"
        );
        assert_eq!(problems[0].line, Some(4), "{problems:?}");
        assert!(
            problems[0].message.contains("at-least-once"),
            "{problems:?}"
        );
    }
}
