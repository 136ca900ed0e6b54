//! The loop that joins a source, a chain of plugins and a sink:
//! pull a batch → each plugin in order → sink; failures → dead letters.
//!
//! Nothing is dropped: a record a plugin reports as failed, a batch whose
//! plugin trapped, and a record the sink refused all go to the dead-letter
//! sink with the reason, the plugin and where the record came from.

use crate::config::{Config, PipelineConfig};
use crate::plugin::{self, LoadedComponent, PluginEngine, PluginSpec};
use crate::sink::writer::SinkWriter;
use crate::sink::{Sink, SinkConfig};
use crate::source::{Position, Source};
use crate::{Header, Record};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use weir_plugin_kit::END_OF_INPUT_MS;

/// Header names on dead letters.
pub mod headers {
    /// Why the record failed.
    pub const REASON: &str = "weir.reason";
    /// `name@version` of the plugin that refused it, or `sink`.
    pub const STAGE: &str = "weir.stage";
    /// Where the record came from, e.g. `file data/x.ndjson:17`.
    pub const SOURCE: &str = "weir.source";
}

/// The host's wall clock in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading failed.
    #[error(transparent)]
    Source(#[from] crate::source::Error),
    /// Writing failed.
    #[error(transparent)]
    Sink(#[from] crate::sink::Error),
    /// A plugin could not be loaded or restarted.
    #[error(transparent)]
    Plugin(#[from] plugin::Error),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Live counters, shared with progress reporting.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records read from the source.
    pub read: AtomicU64,
    /// Records written to the sink.
    pub written: AtomicU64,
    /// Records sent to the dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Plugin instances replaced after a trap.
    pub restarts: AtomicU64,
    /// Time from pulling a batch to handing its output to the sink.
    pub batch_seconds: crate::server::Histogram,
    /// Records not yet read, per source partition (Kafka consumer lag).
    pub lag: std::sync::Mutex<Vec<(String, i64)>>,
    /// Whether the pipeline is running (set once its parts are open).
    pub ready: std::sync::atomic::AtomicBool,
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Pipeline name.
    pub pipeline: String,
    /// Records read.
    pub read: u64,
    /// Records written to the sink.
    pub written: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Plugin restarts after traps.
    pub restarts: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Input records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One plugin in the chain, with what is needed to replace its instance.
struct Stage {
    spec: PluginSpec,
    loaded: LoadedComponent,
    plugin: plugin::Plugin,
    label: String,
}

impl Stage {
    fn restart(&mut self, engine: &PluginEngine, stats: &Stats) -> Result<()> {
        self.plugin = engine.instantiate(&self.spec, &self.loaded)?;
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.label, "Started a fresh instance after a trap; its state was reset.");
        Ok(())
    }
}

/// A built pipeline, ready to run.
pub struct Pipeline {
    name: String,
    source: Box<dyn Source>,
    stages: Vec<Stage>,
    sink: Box<dyn Sink>,
    dead_letter: Box<dyn Sink>,
    batch_size: usize,
    tick_interval: Duration,
    engine: PluginEngine,
    stats: Arc<Stats>,
}

impl Pipeline {
    /// Opens the source and sinks and starts every plugin of the pipeline.
    pub async fn build(name: &str, config: &Config, engine: &PluginEngine) -> Result<Self> {
        let pc: &PipelineConfig = &config.pipelines[name];
        let mut stages = Vec::new();
        for plugin_name in &pc.plugins {
            let spec = plugin_spec(config, plugin_name);
            let loaded = engine.load(&spec.path)?;
            let plugin = engine.instantiate(&spec, &loaded)?;
            let label = format!("{}@{}", plugin.info().name, plugin.info().version);
            tracing::info!(pipeline = name, plugin = %label, hash = %&loaded.hash[..12], origin = ?loaded.origin, load_ms = loaded.load_time.as_millis() as u64, "Plugin ready.");
            stages.push(Stage {
                spec,
                loaded,
                plugin,
                label,
            });
        }
        let dead_letter = pc
            .dead_letter
            .clone()
            .unwrap_or_else(|| SinkConfig::default_dead_letter(name));
        Ok(Pipeline {
            name: name.to_owned(),
            source: pc.source.build(config).await?,
            stages,
            sink: pc.sink.build(config).await?,
            dead_letter: dead_letter.build(config).await?,
            batch_size: pc.batch_size,
            tick_interval: pc.tick_interval,
            engine: engine.clone(),
            stats: Arc::default(),
        })
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Pipeline name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until the source ends or `stop` turns true, then flushes plugins
    /// (`on-tick` at end of input) and closes the sinks.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<Summary> {
        let started = Instant::now();
        let mut last_tick = Instant::now();
        tracing::info!(pipeline = %self.name, source = %self.source.describe(), sink = %self.sink.describe(), "Pipeline started.");
        let Pipeline {
            name,
            mut source,
            stages,
            sink,
            dead_letter,
            batch_size,
            tick_interval,
            engine,
            stats,
        } = self;
        let origin = source.describe();
        let mut writer = SinkWriter::spawn(sink, dead_letter, stats.clone(), origin.clone());
        let mut chain = Chain {
            stages,
            engine,
            stats: stats.clone(),
        };
        stats.ready.store(true, Ordering::Relaxed);
        let result: Result<()> = async {
            loop {
                if *stop.borrow() {
                    tracing::info!(pipeline = %name, "Stopping on request.");
                    break;
                }
                // Only a stop request may cancel a read; a dropped sender
                // means no stop will ever come.
                let stop_requested = async {
                    if stop.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                let batch = tokio::select! {
                    batch = source.next_batch(batch_size) => batch?,
                    () = stop_requested => continue,
                };
                let Some(batch) = batch else { break };
                let pulled = Instant::now();
                stats
                    .read
                    .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                let span = batch_span(&*source, &batch.positions);
                let (outputs, dead) = tokio::task::block_in_place(|| {
                    chain.apply(
                        0,
                        batch.records,
                        Some(&batch.positions),
                        &|p| source.locate(p),
                        now_ms(),
                    )
                })?;
                let mark = source.mark();
                writer
                    .write(outputs, dead, (!mark.is_empty()).then_some(mark), span)
                    .await?;
                stats.batch_seconds.observe(pulled.elapsed().as_secs_f64());
                if last_tick.elapsed() >= tick_interval {
                    last_tick = Instant::now();
                    chain.tick(now_ms(), &origin, &mut writer).await?;
                    writer.flush().await?;
                    *stats.lag.lock().expect("lag lock") = source.lag();
                }
                if let Some(mark) = writer.take_durable() {
                    source.commit(&mark).await?;
                }
            }
            chain.tick(END_OF_INPUT_MS, &origin, &mut writer).await
        }
        .await;
        stats.ready.store(false, Ordering::Relaxed);
        let closed = writer.close().await;
        result?;
        if let Some(mark) = closed? {
            source.commit(&mark).await?;
        }
        source.finish().await?;
        let summary = Summary {
            pipeline: name.clone(),
            read: stats.read.load(Ordering::Relaxed),
            written: stats.written.load(Ordering::Relaxed),
            dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
            restarts: stats.restarts.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        };
        tracing::info!(pipeline = %name, read = summary.read, written = summary.written, dead_lettered = summary.dead_lettered, "Pipeline finished.");
        Ok(summary)
    }
}

/// The plugins of a pipeline, in order.
struct Chain {
    stages: Vec<Stage>,
    engine: PluginEngine,
    stats: Arc<Stats>,
}

impl Chain {
    /// Runs `records` through stages `from..`; returns outputs and dead letters.
    fn apply(
        &mut self,
        from: usize,
        mut records: Vec<Record>,
        mut positions: Option<&[Position]>,
        locate: &dyn Fn(Position) -> String,
        now: i64,
    ) -> Result<(Vec<Record>, Vec<Record>)> {
        let mut dead = Vec::new();
        for stage in &mut self.stages[from..] {
            if records.is_empty() {
                break;
            }
            let origin = |index: usize| {
                locate(
                    positions
                        .and_then(|p| p.get(index))
                        .copied()
                        .unwrap_or(Position::None),
                )
            };
            match stage.plugin.process(&records, now) {
                Ok(result) => {
                    for failure in result.failures {
                        let index = failure.index as usize;
                        let Some(record) = records.get(index) else {
                            tracing::warn!(plugin = %stage.label, index, "Plugin reported a failure for an index outside its batch; ignored.");
                            continue;
                        };
                        dead.push(tag_dead_letter(
                            record.clone(),
                            &failure.reason,
                            &stage.label,
                            &origin(index),
                        ));
                    }
                    records = result.outputs;
                }
                Err(error) => {
                    let reason = error.to_string();
                    for (index, record) in std::mem::take(&mut records).into_iter().enumerate() {
                        dead.push(tag_dead_letter(
                            record,
                            &reason,
                            &stage.label,
                            &origin(index),
                        ));
                    }
                    stage.restart(&self.engine, &self.stats)?;
                }
            }
            positions = None;
        }
        Ok((records, dead))
    }

    /// `on-tick` on every stage; a stage's tick output flows through the
    /// stages after it.
    /// `origin` names the source on dead letters of tick output.
    async fn tick(&mut self, now: i64, origin: &str, writer: &mut SinkWriter) -> Result<()> {
        for i in 0..self.stages.len() {
            let emitted = match tokio::task::block_in_place(|| self.stages[i].plugin.on_tick(now)) {
                Ok(records) => records,
                Err(error) => {
                    tracing::error!(plugin = %self.stages[i].label, %error, "on-tick trapped; state of this plugin is lost.");
                    self.stages[i].restart(&self.engine, &self.stats)?;
                    continue;
                }
            };
            let (outputs, dead) = tokio::task::block_in_place(|| {
                self.apply(i + 1, emitted, None, &|_| origin.to_owned(), now)
            })?;
            writer.write(outputs, dead, None, None).await?;
        }
        Ok(())
    }
}

/// Where a batch came from, for records the sink refuses after plugins
/// transformed them (their own position is not known any more): the first
/// and last position of the batch, e.g. `kafka topic=t partition=0
/// offset=10 … kafka topic=t partition=1 offset=99`.
fn batch_span(source: &dyn Source, positions: &[Position]) -> Option<String> {
    let first = source.locate(*positions.first()?);
    let last = source.locate(*positions.last()?);
    Some(if first == last {
        first
    } else {
        format!("{first} … {last}")
    })
}

/// Tags a record with why it failed, at which stage, and where it came from.
pub(crate) fn tag_dead_letter(
    mut record: Record,
    reason: &str,
    stage: &str,
    origin: &str,
) -> Record {
    for (name, value) in [
        (headers::REASON, reason),
        (headers::STAGE, stage),
        (headers::SOURCE, origin),
    ] {
        record.headers.push(Header {
            name: name.into(),
            value: value.as_bytes().to_vec(),
        });
    }
    record
}

/// The engine-level description of `[plugins.<name>]`.
pub fn plugin_spec(config: &Config, name: &str) -> PluginSpec {
    let pc = &config.plugins[name];
    PluginSpec {
        name: name.to_owned(),
        path: config.resolve(&pc.path),
        config_json: serde_json::to_string(&pc.config).expect("TOML tables serialise to JSON"),
        limits: plugin::PluginLimits {
            max_batch_time: pc.max_batch_time,
            max_memory: pc.max_memory,
        },
    }
}
