//! The loop that joins a source, a chain of plugins and a sink:
//! pull a batch → each plugin in order → sink; failures → dead letters.
//!
//! Nothing is dropped: a record a plugin reports as failed, a batch whose
//! plugin trapped, and a record the sink refused all go to the dead-letter
//! sink with the reason, the plugin and where the record came from.

use crate::Record;
use crate::chain::Chain;
use crate::checkpoint::file::FileStore;
use crate::checkpoint::{Checkpoint, CheckpointStore, Delivery};
use crate::config::{Config, PipelineConfig};
use crate::plugin::{self, PluginEngine, PluginSpec};
use crate::sink::SinkConfig;
use crate::sink::writer::{Committer, SinkWriter};
use crate::source::{Position, Source};
use crate::swap::{Offer, Target};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::record::tag_dead_letter;
pub use crate::record::{headers, now_ms};
pub use crate::stats::{Rebalances, Stats};
pub use weir_plugin_kit::END_OF_INPUT_MS;

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
    /// The checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::Error),
    /// The checkpoint holds state the running plugin cannot read.
    #[error(
        "pipeline {pipeline}: the checkpoint holds state version {stored} of plugin {plugin}, but the plugin now reports state version {running}; deploy a version that reads it, or start the pipeline afresh"
    )]
    StateVersion {
        /// The pipeline.
        pipeline: String,
        /// The plugin's name in the configuration.
        plugin: String,
        /// Version in the checkpoint.
        stored: u32,
        /// Version the plugin reports.
        running: u32,
    },
    /// A plugin trapped on too many records in a row and
    /// `on-plugin-failure = "stop"`.
    #[error(
        "plugin {plugin} ({version}) trapped on {traps} records in a row, the last: {last}; the pipeline stopped before committing past them (on-plugin-failure = \"stop\"). Fix the plugin and swap in a new version or restart, or set on-plugin-failure = \"dead-letter-all\""
    )]
    PluginFailing {
        /// Plugin name in the configuration.
        plugin: String,
        /// The version that traps.
        version: String,
        /// Traps in a row.
        traps: u32,
        /// The last trap.
        last: String,
    },
    /// Group mode: a partition this process owns was claimed by a process
    /// the group no longer assigns it to; the membership starts again.
    #[error(
        "pipeline {pipeline}: {partition} was claimed by a process the consumer group no longer assigns it to (a stale claim of a process that was paused); rejoining the group so that this process, its owner, claims it again"
    )]
    Rejoin {
        /// The pipeline.
        pipeline: String,
        /// The partition's checkpoint key.
        partition: String,
    },
    /// Another live process holds this single-process pipeline.
    #[error(
        "pipeline {pipeline} is run by {holder} (its claim was renewed {renewed:.1?} ago, within the lease of {lease:?}); nothing was written. Run such a pipeline in one process: stop the other, or set standby = true in [pipelines.{pipeline}] to wait and take over when it stops (or, for a Kafka source, spread the topic over processes with source.assignment = \"cooperative-sticky\")"
    )]
    Held {
        /// The pipeline.
        pipeline: String,
        /// The holder, `host:pid`.
        holder: String,
        /// How long ago it renewed its claim.
        renewed: Duration,
        /// How long a claim lasts without renewal.
        lease: Duration,
    },
    /// A record failed and `on-error = "stop"`.
    #[error(
        "a record failed at {stage} ({source_position}): {reason}; the pipeline stopped before committing past it (on-error = \"stop\"). Fix the input or the plugin and restart, or set on-error = \"dead-letter\""
    )]
    RecordFailed {
        /// `plugin@version` that refused it.
        stage: String,
        /// Where the record came from.
        source_position: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether the pipeline should back off and resume from its last
    /// checkpoint (a service is down) rather than stop.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Source(e) => e.is_retryable(),
            Error::Sink(e) => e.is_retryable(),
            Error::Rejoin { .. } => true,
            _ => false,
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// Failed records dropped by `on-error = "skip"`.
    pub skipped: u64,
    /// Plugin restarts after traps.
    pub restarts: u64,
    /// Plugin instances recycled at `recycle-memory`.
    pub recycles: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Input records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Shortest and longest pause before resuming after an outage.
/// How often a standby checks whether the holder's claim lapsed.
const STANDBY_POLL: Duration = Duration::from_millis(500);

const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

/// A built pipeline, ready to run.
pub struct Pipeline {
    name: String,
    /// What its checkpoints are stored under: the name, or in group mode
    /// one key per partition (`name@topic.partition`).
    key: String,
    config: Arc<Config>,
    delivery: Delivery,
    chain: Chain,
    stats: Arc<Stats>,
    /// New plugin versions from the watcher, if it watches this pipeline.
    offers: Option<tokio::sync::mpsc::UnboundedReceiver<Offer>>,
}

/// Opens `pipeline`'s dead-letter sink.
async fn open_dead_letter(config: &Config, pipeline: &str) -> Result<Box<dyn crate::sink::Sink>> {
    let pc = &config.pipelines[pipeline];
    Ok(pc
        .dead_letter
        .clone()
        .unwrap_or_else(|| SinkConfig::default_dead_letter(pipeline))
        .build(config)
        .await?)
}

/// What a group-mode pipeline makes its partitions' pipelines from: all of
/// it but the plugin instances (each partition has its own).
pub(crate) struct Blueprint {
    name: String,
    config: Arc<Config>,
    delivery: Delivery,
    engine: PluginEngine,
    stats: Arc<Stats>,
}

impl Blueprint {
    /// The pipeline's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The pipeline's counters, shared by its partitions.
    pub(crate) fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The engine the plugins run on.
    pub(crate) fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The pipeline's sink settings.
    pub(crate) fn sink_config(&self) -> &SinkConfig {
        &self.config.pipelines[&self.name].sink
    }

    /// The folder relative paths of the configuration start at.
    pub(crate) fn base_dir(&self) -> &std::path::Path {
        &self.config.base_dir
    }

    /// The pipeline's dead-letter sink.
    pub(crate) async fn dead_letter(&self) -> Result<Box<dyn crate::sink::Sink>> {
        open_dead_letter(&self.config, &self.name).await
    }

    /// The pipeline for one partition, stored under `key`, with its own
    /// plugin instances and new versions from `offers`.
    pub(crate) fn replica(
        &self,
        key: String,
        offers: tokio::sync::mpsc::UnboundedReceiver<Offer>,
    ) -> Result<Pipeline> {
        let chain = tokio::task::block_in_place(|| {
            Chain::build(&self.engine, &self.config, &self.name, self.stats.clone())
        })?;
        Ok(Pipeline {
            name: self.name.clone(),
            key,
            config: self.config.clone(),
            delivery: self.delivery,
            chain,
            stats: self.stats.clone(),
            offers: Some(offers),
        })
    }
}

/// The parts a run opens, and opens again after an outage.
pub(crate) struct Parts {
    source: Box<dyn Source>,
    writer: SinkWriter,
    pub(crate) recovered: Option<Checkpoint>,
}

impl Pipeline {
    /// Loads and starts every plugin of the pipeline; the source and sinks
    /// are opened by [`Pipeline::run`] (and opened again after an outage).
    pub async fn build(name: &str, config: &Config, engine: &PluginEngine) -> Result<Self> {
        let pc: &PipelineConfig = &config.pipelines[name];
        let stats = Arc::<Stats>::default();
        let chain = Chain::build(engine, config, name, stats.clone())?;
        // Config::load refused an impossible delivery.
        let (delivery, why) = pc.delivery().unwrap_or((Delivery::AtLeastOnce, "refused"));
        tracing::info!(pipeline = name, %delivery, why, "Delivery.");
        Ok(Pipeline {
            name: name.to_owned(),
            key: name.to_owned(),
            config: Arc::new(config.clone()),
            delivery,
            chain,
            stats,
            offers: None,
        })
    }

    /// What the plugin watcher should keep current for this pipeline: its
    /// stages whose plugins have `watch = true`. Offers reach the pipeline
    /// through a channel made here.
    pub fn swap_targets(&mut self) -> Vec<Target> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let targets: Vec<Target> = self
            .chain
            .targets()
            .into_iter()
            .filter(|(_, spec, _, _)| self.config.plugins[&spec.name].watch)
            .map(|(stage, spec, policy, hash)| Target {
                pipeline: self.name.clone(),
                stage,
                poll_interval: self.config.plugins[&spec.name].poll_interval,
                stats: self.stats.clone(),
                spec,
                policy,
                hash,
                offers: sender.clone(),
            })
            .collect();
        if !targets.is_empty() {
            self.offers = Some(receiver);
        }
        targets
    }

    /// Takes the versions the watcher prepared, at a batch boundary.
    /// Returns whether one went live.
    fn take_offers(&mut self) -> bool {
        let Some(offers) = &mut self.offers else {
            return false;
        };
        let mut swapped = false;
        while let Ok(offer) = offers.try_recv() {
            let chain = &mut self.chain;
            swapped |= tokio::task::block_in_place(|| chain.offer(&self.name, offer));
        }
        swapped
    }

    /// What group mode makes the partitions' pipelines from.
    pub(crate) fn blueprint(&self) -> Blueprint {
        Blueprint {
            name: self.name.clone(),
            config: self.config.clone(),
            delivery: self.delivery,
            engine: self.chain.engine().clone(),
            stats: self.stats.clone(),
        }
    }

    /// Group mode: the channel of new versions, handed to the partitions.
    pub(crate) fn take_offer_receiver(
        &mut self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Offer>> {
        self.offers.take()
    }

    /// Gives back what [`Pipeline::take_offer_receiver`] took.
    pub(crate) fn put_offer_receiver(
        &mut self,
        offers: Option<tokio::sync::mpsc::UnboundedReceiver<Offer>>,
    ) {
        self.offers = offers;
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Pipeline name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until the source ends or `stop` turns true. A bounded source's
    /// end flushes the plugins (`on-tick` at end of input); a stop keeps
    /// their open state in the final checkpoint instead. When a service is
    /// unreachable the pipeline is not ready, backs off (capped) and resumes
    /// from its last checkpoint by itself.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<Summary> {
        let started = Instant::now();
        let mut pause = BACKOFF.0;
        loop {
            let committed_before = self.stats.checkpoints.load(Ordering::Relaxed);
            let result = match self.group() {
                Some(kafka) => crate::group::attempt(&mut self, &kafka, &mut stop).await,
                None => self.attempt(&mut stop).await,
            };
            self.stats.ready.store(false, Ordering::Relaxed);
            match result {
                Ok(()) => break,
                Err(error) if error.is_retryable() && !*stop.borrow() => {
                    if self.stats.checkpoints.load(Ordering::Relaxed) > committed_before {
                        pause = BACKOFF.0;
                    }
                    tracing::warn!(pipeline = %self.name, %error, retry_in_ms = pause.as_millis() as u64, "Pipeline interrupted; it resumes from its last checkpoint.");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => {}
                    }
                    pause = (pause * 2).min(BACKOFF.1);
                    self.stats.recoveries.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => return Err(error),
            }
        }
        let stats = &self.stats;
        let summary = Summary {
            pipeline: self.name.clone(),
            read: stats.read.load(Ordering::Relaxed),
            written: stats.written.load(Ordering::Relaxed),
            dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
            skipped: stats.skipped.load(Ordering::Relaxed),
            restarts: stats.restarts.load(Ordering::Relaxed),
            recycles: stats.recycles.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        };
        tracing::info!(pipeline = %self.name, read = summary.read, written = summary.written, dead_lettered = summary.dead_lettered, "Pipeline finished.");
        Ok(summary)
    }

    /// The source's settings when it is a Kafka source in group mode.
    fn group(&self) -> Option<crate::source::kafka::KafkaConfig> {
        match &self.config.pipelines[&self.name].source {
            crate::source::SourceConfig::Kafka(kafka)
                if kafka.assignment != crate::source::kafka::Assignment::All =>
            {
                Some(kafka.clone())
            }
            _ => None,
        }
    }

    /// Opens the source and sinks and reads the last checkpoint.
    async fn open(&mut self) -> Result<Parts> {
        let config = &*self.config;
        let pc = &config.pipelines[&self.name];
        let source = pc.source.build(config).await?;
        let dead_letter = open_dead_letter(config, &self.name).await?;
        self.open_with(source, dead_letter, None).await
    }

    /// Opens the sink over `source`; reads the last checkpoint, after
    /// claiming it for `owner` in group mode.
    pub(crate) async fn open_with(
        &mut self,
        source: Box<dyn Source>,
        dead_letter: Box<dyn crate::sink::Sink>,
        owner: Option<&str>,
    ) -> Result<Parts> {
        let config = &*self.config;
        let pc = &config.pipelines[&self.name];
        let mut sink = pc.sink.build(config).await?;
        let (recovered, committer) = match (self.delivery, owner) {
            (Delivery::ExactlyOnce, owner) => {
                // One process: the claim fences a process that held it
                // before (wait_until_free checked that none runs).
                let owner = owner.map_or_else(crate::owner::this_process, str::to_owned);
                let store = crate::sink::epoch_store(sink.as_mut())?;
                (store.claim(&self.key, &owner).await?, Committer::Sink)
            }
            (Delivery::AtLeastOnce, _) => {
                let mut store = FileStore::new(&config.resolve(&pc.checkpoint_dir), &self.key);
                (store.load().await?, Committer::Store(Box::new(store)))
            }
        };
        let writer = SinkWriter::spawn(
            sink,
            dead_letter,
            committer,
            self.stats.clone(),
            source.describe(),
            pc.queue_depth,
        );
        Ok(Parts {
            source,
            writer,
            recovered,
        })
    }

    /// One run from the last checkpoint until the end, a stop or an error.
    async fn attempt(&mut self, stop: &mut watch::Receiver<bool>) -> Result<()> {
        if self.delivery == Delivery::ExactlyOnce && !self.wait_until_free(stop).await? {
            return Ok(());
        }
        let parts = self.open().await?;
        self.drive(parts, stop).await
    }

    /// Exactly-once, one process: refuses to start while another live
    /// process holds the pipeline, before anything is written — or, with
    /// `standby = true`, waits until it stops holding it. `false` when
    /// stopped while standing by.
    async fn wait_until_free(&mut self, stop: &mut watch::Receiver<bool>) -> Result<bool> {
        let config = &*self.config;
        let pc = &config.pipelines[&self.name];
        let lease = pc.lease();
        let me = crate::owner::this_process();
        let mut sink = pc.sink.build(config).await?;
        let mut announced = None;
        loop {
            let holder = crate::sink::epoch_store(sink.as_mut())?
                .holder(&self.key)
                .await?
                .filter(|h| h.holds_against(&me, lease));
            let Some(holder) = holder else {
                if announced.is_some() {
                    tracing::info!(pipeline = %self.name, "The holder's claim lapsed; taking over.");
                }
                return Ok(true);
            };
            if !pc.standby {
                return Err(Error::Held {
                    pipeline: self.name.clone(),
                    holder: holder.owner,
                    renewed: holder.renewed,
                    lease,
                });
            }
            if announced.as_ref() != Some(&holder.owner) {
                tracing::warn!(pipeline = %self.name, holder = %holder.owner, ?lease, "Standing by: another process runs this pipeline; taking over when it stops or its claim lapses.");
                announced = Some(holder.owner);
            }
            tokio::select! {
                () = tokio::time::sleep(STANDBY_POLL) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Runs opened parts until the end, a stop or an error; commits the
    /// final checkpoint unless it failed.
    pub(crate) async fn drive(
        &mut self,
        parts: Parts,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let Parts {
            mut source,
            mut writer,
            recovered,
        } = parts;
        let result = self
            .stream(&mut *source, &mut writer, recovered, stop)
            .await;
        let last = match result {
            Ok(last) => last,
            Err(error) => {
                writer.abandon().await;
                return Err(error);
            }
        };
        let committed = writer.close(last).await?;
        if let Some(checkpoint) = committed {
            self.committed(&mut *source, &checkpoint).await?;
        }
        source.finish().await?;
        Ok(())
    }

    /// The loop: pull a batch → plugins → writer, a checkpoint at the end
    /// of every epoch. Returns the final checkpoint.
    async fn stream(
        &mut self,
        source: &mut dyn Source,
        writer: &mut SinkWriter,
        recovered: Option<Checkpoint>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Checkpoint> {
        let pc = &self.config.pipelines[&self.name];
        let (batch_size, tick_interval) = (pc.batch_size, pc.tick_interval);
        let (epoch_time, epoch_records) = (
            pc.checkpoint_interval,
            pc.checkpoint_records.unwrap_or(u64::MAX),
        );
        let origin = source.describe();
        let stats = self.stats.clone();
        self.chain.fresh()?;
        let mut epoch = 0;
        let recovered = recovered.and_then(|checkpoint| {
            epoch = checkpoint.epoch;
            if checkpoint.source == origin {
                return Some(checkpoint);
            }
            if checkpoint.source.is_empty() && checkpoint.positions.is_empty() {
                // A group-mode claim of a partition nothing was committed
                // for yet: epochs count on from the claim.
                return None;
            }
            tracing::warn!(pipeline = %self.key, stored = %checkpoint.source, now = %origin, "The last checkpoint belongs to another source; starting this one from its configured start.");
            None
        });
        if let Some(checkpoint) = recovered {
            source.resume(&checkpoint.positions).await?;
            self.chain.restore(&self.name, &checkpoint.state)?;
            tracing::info!(pipeline = %self.key, epoch, positions = ?checkpoint.positions, "Resuming from the last checkpoint.");
        }
        tracing::info!(pipeline = %self.key, source = %origin, delivery = %self.delivery, "Pipeline started.");
        stats.ready.store(true, Ordering::Relaxed);
        let (mut last_tick, mut epoch_started, mut epoch_read) =
            (Instant::now(), Instant::now(), 0);
        // When the last batch was handed to the sink, and whether a swap
        // happened since.
        let (mut handed, mut swapped) = (None::<Instant>, false);
        let ended = loop {
            swapped |= self.take_offers();
            if *stop.borrow() {
                tracing::info!(pipeline = %self.key, "Stopping on request.");
                break false;
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
            let Some(batch) = batch else { break true };
            let pulled = Instant::now();
            let count = (batch.records.len() + batch.refused.len()) as u64;
            stats.read.fetch_add(count, Ordering::Relaxed);
            epoch_read += count;
            let span = batch_span(source, &batch.positions);
            let mut refused: Vec<Record> = batch
                .refused
                .into_iter()
                .map(|(position, record, reason)| {
                    tag_dead_letter(record, &reason, "source", &source.locate(position))
                })
                .collect();
            self.chain.on_error(&mut refused)?;
            let (outputs, mut dead) = tokio::task::block_in_place(|| {
                self.chain.apply(
                    0,
                    batch.records,
                    Some(&batch.positions),
                    &|p| source.locate(p),
                    now_ms(),
                )
            })?;
            dead.extend(refused);
            writer.write(outputs, dead, span).await?;
            let now = Instant::now();
            stats.batch_seconds.observe((now - pulled).as_secs_f64());
            if let Some(previous) = handed.replace(now) {
                let gap = (now - previous).as_nanos() as u64;
                let max = if std::mem::take(&mut swapped) {
                    &stats.swap_gap_max_ns
                } else {
                    &stats.gap_max_ns
                };
                max.fetch_max(gap, Ordering::Relaxed);
            }
            if last_tick.elapsed() >= tick_interval {
                last_tick = Instant::now();
                self.chain.tick(now_ms(), &origin, writer).await?;
                *stats.lag.lock().expect("lag lock") = source.lag();
            }
            if epoch_started.elapsed() >= epoch_time || epoch_read >= epoch_records {
                epoch += 1;
                let checkpoint = self.checkpoint(epoch, source)?;
                writer.checkpoint(checkpoint).await?;
                (epoch_started, epoch_read) = (Instant::now(), 0);
            }
            if let Some(checkpoint) = writer.take_committed() {
                self.committed(source, &checkpoint).await?;
            }
        };
        if ended {
            self.chain.tick(END_OF_INPUT_MS, &origin, writer).await?;
        }
        self.checkpoint(epoch + 1, source)
    }

    /// The checkpoint ending `epoch`: where the source is, what the plugins
    /// hold.
    fn checkpoint(&mut self, epoch: u64, source: &dyn Source) -> Result<Checkpoint> {
        Ok(Checkpoint {
            pipeline: self.key.clone(),
            source: source.describe(),
            epoch,
            positions: source.mark(),
            state: tokio::task::block_in_place(|| self.chain.snapshot())?,
        })
    }

    /// A checkpoint is committed: count it and tell the source.
    async fn committed(&mut self, source: &mut dyn Source, checkpoint: &Checkpoint) -> Result<()> {
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        crate::crash::point("before-offset-commit");
        source.commit(&checkpoint.positions).await?;
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

/// The engine-level description of `[plugins.<name>]`.
pub fn plugin_spec(config: &Config, name: &str) -> PluginSpec {
    let pc = &config.plugins[name];
    let published = pc.url().map(|url| {
        plugin::published::Published::open(url, &pc.options)
            .expect("Config::check opened every published location")
    });
    PluginSpec {
        name: name.to_owned(),
        path: if published.is_some() {
            pc.path.clone()
        } else {
            config.resolve(&pc.path)
        },
        published,
        config_json: serde_json::to_string(&pc.config).expect("TOML tables serialise to JSON"),
        limits: plugin::PluginLimits {
            max_batch_time: pc.max_batch_time,
            max_memory: pc.max_memory,
            recycle_memory: pc.recycle_memory(),
        },
        read_only_dirs: pc
            .read_only_dirs
            .iter()
            .map(|(guest, host)| (guest.clone(), config.resolve(host)))
            .collect(),
    }
}
