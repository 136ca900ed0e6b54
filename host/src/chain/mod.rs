//! The plugins of one pipeline, in order, and how a stage changes version
//! while the pipeline runs.
//!
//! Every change happens between two batches, on the pipeline's own task, so
//! a batch is processed by exactly one version of each stage:
//!
//! - **switch:** `snapshot()` the live instance, `restore()` into the
//!   prepared one, make it live. The previous version is kept for
//!   `probation-batches` batches: if the new one traps on one of them, the
//!   previous one comes back with the state as it was before that batch and
//!   processes the batch again. Nothing is lost or written twice, because
//!   the trapped call produced no output.
//! - **canary:** the prepared instance shadows the live one for
//!   `canary-batches` batches on the same input; its outputs are compared
//!   and discarded. It is promoted (a switch) only if its failure rate is
//!   not worse than the live one's by more than `canary-margin`.
//!
//! Probation and canary count only batches that carried records: an idle
//! poll of an empty topic proves nothing about a version, so a version that
//! traps on its first records is rolled back however long it sat idle.

mod canary;
mod isolate;
mod probation;
mod tag;

use crate::Record;
use crate::config::{Config, OnError, OnPluginFailure};
use crate::pipeline::{Error, Result};
use crate::plugin::{self, BatchResult, LoadedComponent, Plugin, PluginEngine, PluginSpec};
use crate::record::tag_dead_letter;
use crate::sink::writer::SinkWriter;
use crate::source::Position;
use crate::stats::Stats;
use crate::swap::{Candidate, Offer, Outcome, StatePolicy, SwapPolicy, VersionTag, version_label};
use canary::Canary;
use probation::Probation;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::checkpoint::PluginState;

/// One plugin in the chain, with what is needed to replace its instance.
struct Stage {
    spec: PluginSpec,
    policy: SwapPolicy,
    loaded: LoadedComponent,
    plugin: Plugin,
    /// `name@version`, on dead letters.
    label: String,
    /// `name@version+hash`, on outputs and in `/readyz`.
    version: String,
    /// The version before the last switch, while the new one is on trial.
    probation: Option<Probation>,
    /// A new version shadowing this one.
    canary: Option<Canary>,
    /// The state before the call in progress, and its state version: what
    /// a replacement instance restores after a trap.
    before: Option<(u32, Vec<u8>)>,
    /// Records that trapped in a row (reset by any record that did not).
    consecutive_traps: u32,
    /// Set when `on-plugin-failure = "dead-letter-all"` disabled the stage:
    /// the reason every record gets until a new version is swapped in.
    disabled: Option<String>,
    /// `max-consecutive-traps` and `on-plugin-failure`.
    failure: (u32, OnPluginFailure),
    /// `max-output-records` and `max-output-record-size`.
    caps: OutputCaps,
    /// When a recycled instance holds more than `recycle-memory` right after
    /// its restore (its state alone is that large), twice that: such a state
    /// must not make every batch a recycle.
    recycle_floor: u64,
}

/// How much one call may output.
#[derive(Debug, Clone, Copy)]
struct OutputCaps {
    records: usize,
    record_bytes: u64,
}

impl OutputCaps {
    /// The result, or why it is too large (treated like a trap: the batch
    /// is split until the records that cause it are found).
    fn check(self, plugin: &str, result: BatchResult) -> plugin::Result<BatchResult> {
        let too_large = |reason: String| plugin::Error::Output {
            plugin: plugin.to_owned(),
            reason,
        };
        if result.outputs.len() > self.records {
            return Err(too_large(format!(
                "one call output {} records, more than max-output-records = {}",
                result.outputs.len(),
                self.records
            )));
        }
        if let Some(big) = result
            .outputs
            .iter()
            .find(|r| r.value.len() as u64 > self.record_bytes)
        {
            return Err(too_large(format!(
                "an output record of {} bytes exceeds max-output-record-size = {} bytes",
                big.value.len(),
                self.record_bytes
            )));
        }
        Ok(result)
    }
}

impl Stage {
    fn start(engine: &PluginEngine, config: &Config, name: &str) -> Result<Stage> {
        let spec = crate::pipeline::plugin_spec(config, name);
        let loaded = engine.load_spec(&spec)?;
        let plugin = engine.instantiate(&spec, &loaded)?;
        let pc = &config.plugins[name];
        Ok(Stage {
            policy: SwapPolicy::of(pc),
            label: format!("{}@{}", plugin.info().name, plugin.info().version),
            version: version_label(&plugin),
            spec,
            loaded,
            plugin,
            probation: None,
            canary: None,
            before: None,
            consecutive_traps: 0,
            disabled: None,
            failure: (pc.max_consecutive_traps, pc.on_plugin_failure),
            caps: OutputCaps {
                records: pc.max_output_records,
                record_bytes: pc.max_output_record_size,
            },
            recycle_floor: 0,
        })
    }

    /// Processes one batch. A trap on probation rolls back to the previous
    /// version, which processes the batch; otherwise the records that trap
    /// are found by splitting the batch and reported as failures with the
    /// trap's reason, and the others are processed once each. The flag says
    /// whether the result is the plain result of one call (what a canary
    /// compares with).
    fn process(
        &mut self,
        engine: &PluginEngine,
        stats: &Stats,
        records: &[Record],
        now: i64,
    ) -> Result<(BatchResult, bool)> {
        if let Some(reason) = &self.disabled {
            return Ok((fail_all(0..records.len(), reason), false));
        }
        let (name, caps) = (self.spec.name.clone(), self.caps);
        let mut call = |p: &mut Plugin| {
            p.process(records, now)
                .and_then(|result| caps.check(&name, result))
        };
        match self.call_keeping_state(engine, stats, &mut call)? {
            Ok(result) => {
                if !records.is_empty() {
                    self.passed_batch();
                    self.consecutive_traps = 0;
                }
                self.recycle_if_grown(engine, stats)?;
                Ok((result, true))
            }
            Err(error) => Ok((self.isolate(engine, stats, records, now, error)?, false)),
        }
    }

    /// `on-tick`; a trap restores the state from before the tick (the
    /// windows it would have emitted come at a later tick).
    fn tick(&mut self, engine: &PluginEngine, stats: &Stats, now: i64) -> Result<Vec<Record>> {
        if self.disabled.is_some() {
            return Ok(Vec::new());
        }
        match self.call_keeping_state(engine, stats, &mut |p| p.on_tick(now))? {
            Ok(records) => Ok(records),
            Err(error) => {
                tracing::error!(plugin = %self.label, %error, "on-tick trapped; a fresh instance continues from the state before the tick.");
                self.reinstate(engine, stats)?;
                self.count_trap(&error)?;
                Ok(Vec::new())
            }
        }
    }

    /// A guest's linear memory never shrinks, and some runtimes keep memory
    /// per call (componentize-py 0.25 keeps the memory of each call's
    /// results: see BENCHMARKS.md); an instance past `recycle-memory` is
    /// replaced here, between two batches, by a fresh one holding its state.
    fn recycle_if_grown(&mut self, engine: &PluginEngine, stats: &Stats) -> Result<()> {
        let limit = self.spec.limits.recycle_memory;
        let grown = self.plugin.memory_bytes() as u64;
        if limit == 0 || grown <= limit.max(self.recycle_floor) {
            return Ok(());
        }
        let state = self.plugin.snapshot()?;
        let fresh = self.fresh_instance(engine, Some(&state))?;
        let fresh_bytes = fresh.memory_bytes() as u64;
        self.recycle_floor = if fresh_bytes > limit {
            2 * fresh_bytes
        } else {
            0
        };
        self.plugin = fresh;
        stats
            .recycles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(plugin = %self.label, grown, limit, "Recycled the instance; its state carries over.");
        Ok(())
    }

    /// Makes `plugin` the live instance, with the labels derived from it.
    fn set_plugin(&mut self, plugin: Plugin) {
        self.label = format!("{}@{}", plugin.info().name, plugin.info().version);
        self.version = version_label(&plugin);
        self.plugin = plugin;
    }
}

fn record(stats: &Stats, plugin: &str, outcome: Outcome, detail: String) {
    stats
        .swaps
        .lock()
        .expect("swap board lock")
        .record(plugin, outcome, detail);
}

/// Records a version this process would not keep (see
/// `SwapBoard::reject`: for a published plugin it becomes the fleet's
/// decision).
fn reject(stats: &Stats, plugin: &str, digest: &str, outcome: Outcome, detail: String) {
    stats
        .swaps
        .lock()
        .expect("swap board lock")
        .reject(plugin, digest, outcome, detail);
}

/// The plugins of a pipeline, in order.
pub(crate) struct Chain {
    stages: Vec<Stage>,
    engine: PluginEngine,
    stats: Arc<Stats>,
    tag: VersionTag,
    tag_field: String,
    on_error: OnError,
}

impl Chain {
    /// Loads and starts the pipeline's plugins.
    pub(crate) fn build(
        engine: &PluginEngine,
        config: &Config,
        pipeline: &str,
        stats: Arc<Stats>,
    ) -> Result<Chain> {
        let pc = &config.pipelines[pipeline];
        let mut stages = Vec::new();
        for name in &pc.plugins {
            let stage = Stage::start(engine, config, name)?;
            tracing::info!(pipeline, plugin = %stage.version, origin = ?stage.loaded.origin, load_ms = stage.loaded.load_time.as_millis() as u64, "Plugin ready.");
            stages.push(stage);
        }
        let mut chain = Chain {
            stages,
            engine: engine.clone(),
            stats,
            tag: pc.plugin_version,
            tag_field: pc.plugin_version_field.clone(),
            on_error: pc.on_error,
        };
        chain.versions_changed();
        Ok(chain)
    }

    /// The engine the stages run on.
    pub(crate) fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The watcher's view of every stage: what to watch and the live hash.
    pub(crate) fn targets(&self) -> Vec<(usize, PluginSpec, SwapPolicy, String)> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.spec.clone(), s.policy, s.loaded.hash.clone()))
            .collect()
    }

    /// Shows the live versions on the swap board.
    fn versions_changed(&mut self) {
        let mut board = self.stats.swaps.lock().expect("swap board lock");
        for stage in &self.stages {
            board
                .live
                .insert(stage.spec.name.clone(), stage.version.clone());
        }
    }

    /// The live versions, comma-separated: the tag of outputs.
    fn versions(&self) -> String {
        let labels: Vec<&str> = self.stages.iter().map(|s| s.version.as_str()).collect();
        labels.join(",")
    }

    /// Fresh instances of every stage (a run starts from the checkpoint's
    /// state, never from what an interrupted run left in memory). A canary
    /// in progress is abandoned: its state no longer matches.
    pub(crate) fn fresh(&mut self) -> Result<()> {
        for stage in &mut self.stages {
            stage.plugin = stage.fresh_instance(&self.engine, None)?;
            if stage.canary.take().is_some() {
                tracing::warn!(plugin = %stage.label, "The pipeline resumed from its checkpoint; the canary in progress is abandoned (change the file again to retry).");
            }
            stage.before = None;
        }
        Ok(())
    }

    /// Every stage's state, by plugin name.
    pub(crate) fn snapshot(&mut self) -> Result<BTreeMap<String, PluginState>> {
        let mut state = BTreeMap::new();
        for stage in &mut self.stages {
            let bytes = stage.plugin.snapshot()?;
            let version = stage.plugin.info().state_version;
            state.insert(stage.spec.name.clone(), PluginState { version, bytes });
        }
        Ok(state)
    }

    /// Restores each stage's state from a checkpoint.
    pub(crate) fn restore(
        &mut self,
        pipeline: &str,
        state: &BTreeMap<String, PluginState>,
    ) -> Result<()> {
        for stage in &mut self.stages {
            let Some(saved) = state.get(&stage.spec.name) else {
                tracing::warn!(pipeline, plugin = %stage.label, "The checkpoint holds no state for this plugin; it starts empty.");
                continue;
            };
            let running = stage.plugin.info().state_version;
            if saved.version != running {
                if stage.policy.state == StatePolicy::Reset {
                    tracing::warn!(pipeline, plugin = %stage.label, stored = saved.version, running, "The checkpoint holds another state version and state = \"reset\"; the plugin starts empty.");
                    continue;
                }
                return Err(Error::StateVersion {
                    pipeline: pipeline.to_owned(),
                    plugin: stage.spec.name.clone(),
                    stored: saved.version,
                    running,
                });
            }
            tokio::task::block_in_place(|| stage.plugin.restore(&saved.bytes))?;
        }
        Ok(())
    }

    /// Takes a prepared (or refused) version at a batch boundary. Returns
    /// whether a new version went live.
    pub(crate) fn offer(&mut self, pipeline: &str, offer: Offer) -> bool {
        let (stage, candidate) = match offer {
            Offer::Refused {
                stage,
                plugin,
                hash,
                outcome,
                reason,
            } => {
                let live = self.stages.get(stage).map_or("", |s| s.version.as_str());
                let detail = format!(
                    "new file {} refused, {live} keeps running: {reason}",
                    crate::plugin::cache::ComponentCache::short(&hash)
                );
                tracing::error!(pipeline, plugin = %plugin, result = outcome.label(), "Swap refused: {detail}");
                reject(&self.stats, &plugin, &hash, outcome, detail);
                return false;
            }
            Offer::Ready(candidate) => (candidate.stage, candidate),
        };
        let Some(live) = self.stages.get_mut(stage) else {
            return false;
        };
        let name = live.spec.name.clone();
        let noticed = candidate.noticed;
        let new = version_label(&candidate.plugin);
        if candidate.policy.mode == crate::swap::SwapMode::Canary {
            return self.start_canary(pipeline, stage, candidate);
        }
        let started = Instant::now();
        let old = live.version.clone();
        let digest = candidate.loaded.hash.clone();
        match live.switch(candidate) {
            Ok(()) => {
                let pause = started.elapsed();
                let to_live = noticed.elapsed();
                tracing::info!(pipeline, plugin = %name, from = %old, to = %new, pause_us = pause.as_micros() as u64, change_to_live_ms = to_live.as_millis() as u64, "Swapped at a batch boundary.");
                record(
                    &self.stats,
                    &name,
                    Outcome::Swapped,
                    format!(
                        "{old} → {new}, live {} ms after the change, switch took {} µs",
                        to_live.as_millis(),
                        pause.as_micros()
                    ),
                );
                self.versions_changed();
                true
            }
            Err((outcome, reason)) => {
                tracing::error!(pipeline, plugin = %name, result = outcome.label(), "Swap refused, {old} keeps running: {reason}");
                reject(
                    &self.stats,
                    &name,
                    &digest,
                    outcome,
                    format!("{new} refused, {old} keeps running: {reason}"),
                );
                false
            }
        }
    }

    fn start_canary(
        &mut self,
        pipeline: &str,
        stage: usize,
        mut candidate: Box<Candidate>,
    ) -> bool {
        let live = &mut self.stages[stage];
        let name = live.spec.name.clone();
        let new = version_label(&candidate.plugin);
        let (old, fresh) = (
            live.plugin.info().state_version,
            candidate.plugin.info().state_version,
        );
        let handed = if candidate.policy.state == StatePolicy::Keep {
            if old != fresh {
                let reason = format!(
                    "{new} reports state version {fresh}, the live one {old}; set state = \"reset\" to start it empty"
                );
                tracing::error!(pipeline, plugin = %name, "Canary refused: {reason}");
                reject(
                    &self.stats,
                    &name,
                    &candidate.loaded.hash,
                    Outcome::StateVersion,
                    reason,
                );
                return false;
            }
            live.plugin
                .snapshot()
                .and_then(|state| candidate.plugin.restore(&state))
        } else {
            Ok(())
        };
        if let Err(e) = handed {
            let reason = format!("{new} could not take the live state: {e}");
            tracing::error!(pipeline, plugin = %name, "Canary refused: {reason}");
            reject(
                &self.stats,
                &name,
                &candidate.loaded.hash,
                Outcome::RestoreFailed,
                reason,
            );
            return false;
        }
        if let Some(old) = &live.canary {
            tracing::warn!(pipeline, plugin = %name, superseded = %version_label(&old.candidate.plugin), "A newer file replaces the canary in progress.");
        }
        tracing::info!(pipeline, plugin = %name, canary = %new, batches = candidate.policy.canary_batches, "Canary started: it shadows the live version, its outputs are compared and discarded.");
        live.canary = Some(Canary::new(candidate));
        false
    }

    /// Shadows the live result of `stage` with its canary, if any, and
    /// decides once the canary has seen enough. Returns whether it was
    /// promoted.
    fn shadow(&mut self, stage: usize, inputs: &[Record], live: &BatchResult, now: i64) -> bool {
        let s = &mut self.stages[stage];
        let Some(canary) = s.canary.as_mut().filter(|_| !inputs.is_empty()) else {
            return false;
        };
        let name = s.spec.name.clone();
        let new = version_label(&canary.candidate.plugin);
        match canary.candidate.plugin.process(inputs, now) {
            Ok(shadow) => canary.observe(inputs, live, &shadow),
            Err(e) => {
                let reason = format!("{new} trapped while shadowing: {e}");
                tracing::error!(plugin = %name, "Canary rejected: {reason}");
                let digest = &canary.candidate.loaded.hash;
                reject(&self.stats, &name, digest, Outcome::CanaryRejected, reason);
                s.canary = None;
                return false;
            }
        }
        if canary.remaining > 0 {
            return false;
        }
        let Some(canary) = s.canary.take() else {
            return false;
        };
        let comparison = canary.comparison();
        if !canary.passes() {
            let reason = format!(
                "{new} fails more than the margin of {:.1} points allows: {comparison}",
                100.0 * canary.candidate.policy.canary_margin
            );
            tracing::error!(plugin = %name, "Canary rejected: {reason}");
            let digest = &canary.candidate.loaded.hash;
            reject(&self.stats, &name, digest, Outcome::CanaryRejected, reason);
            return false;
        }
        let old = s.version.clone();
        let digest = canary.candidate.loaded.hash.clone();
        match s.switch(canary.candidate) {
            Ok(()) => {
                tracing::info!(plugin = %name, from = %old, to = %new, "Canary promoted: {comparison}");
                record(
                    &self.stats,
                    &name,
                    Outcome::Promoted,
                    format!("{old} → {new}: {comparison}"),
                );
                self.versions_changed();
                true
            }
            Err((outcome, reason)) => {
                tracing::error!(plugin = %name, "Canary passed but could not go live: {reason}");
                reject(&self.stats, &name, &digest, outcome, reason);
                false
            }
        }
    }

    /// Runs `records` through stages `from..`; returns outputs, tagged with
    /// the versions that made them, and dead letters.
    pub(crate) fn apply(
        &mut self,
        from: usize,
        mut records: Vec<Record>,
        mut positions: Option<&[Position]>,
        locate: &dyn Fn(Position) -> String,
        now: i64,
    ) -> Result<(Vec<Record>, Vec<Record>)> {
        let mut dead = Vec::new();
        // Set when a canary is promoted after this batch: the batch was
        // made by the versions before the promotion.
        let mut made_by = None;
        for i in from..self.stages.len() {
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
            let stage = &mut self.stages[i];
            let (result, plain) = stage.process(&self.engine, &self.stats, &records, now)?;
            let label = &self.stages[i].label;
            for failure in &result.failures {
                let index = failure.index as usize;
                let Some(record) = records.get(index) else {
                    tracing::warn!(plugin = %label, index, "Plugin reported a failure for an index outside its batch; ignored.");
                    continue;
                };
                dead.push(tag_dead_letter(
                    record.clone(),
                    &failure.reason,
                    label,
                    &origin(index),
                ));
            }
            if plain && self.stages[i].canary.is_some() {
                let before = self.versions();
                if self.shadow(i, &records, &result, now) {
                    made_by.get_or_insert(before);
                }
            }
            records = result.outputs;
            positions = None;
        }
        self.on_error(&mut dead)?;
        if !self.stages.is_empty() {
            let versions = made_by.unwrap_or_else(|| self.versions());
            tag::tag_with(self.tag, &self.tag_field, &mut records, &versions);
        }
        Ok((records, dead))
    }

    /// Applies the pipeline's `on-error` to the records that failed.
    pub(crate) fn on_error(&self, dead: &mut Vec<Record>) -> Result<()> {
        use crate::record::headers::{REASON, SOURCE, STAGE};
        match self.on_error {
            OnError::DeadLetter => Ok(()),
            OnError::Skip => {
                for record in dead.drain(..) {
                    tracing::warn!(stage = %header_text(&record, STAGE), source = %header_text(&record, SOURCE), reason = %header_text(&record, REASON), "Skipped a failed record (on-error = \"skip\").");
                    self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            OnError::Stop => match dead.first() {
                None => Ok(()),
                Some(record) => Err(Error::RecordFailed {
                    stage: header_text(record, STAGE).into_owned(),
                    source_position: header_text(record, SOURCE).into_owned(),
                    reason: header_text(record, REASON).into_owned(),
                }),
            },
        }
    }

    /// `on-tick` on every stage; a stage's tick output flows through the
    /// stages after it.
    /// `origin` names the source on dead letters of tick output.
    pub(crate) async fn tick(
        &mut self,
        now: i64,
        origin: &str,
        writer: &mut SinkWriter,
    ) -> Result<()> {
        for i in 0..self.stages.len() {
            let (engine, stats) = (self.engine.clone(), self.stats.clone());
            let stage = &mut self.stages[i];
            let emitted = tokio::task::block_in_place(|| stage.tick(&engine, &stats, now))?;
            let (outputs, dead) = tokio::task::block_in_place(|| {
                self.apply(i + 1, emitted, None, &|_| origin.to_owned(), now)
            })?;
            writer.write(outputs, dead, None).await?;
        }
        Ok(())
    }
}

/// Every index of `range` failed for `reason`.
fn fail_all(range: std::ops::Range<usize>, reason: &str) -> BatchResult {
    BatchResult {
        outputs: Vec::new(),
        failures: range
            .map(|index| plugin::Failure {
                index: index as u32,
                reason: reason.to_owned(),
            })
            .collect(),
    }
}

/// A header's value as text.
fn header_text<'a>(record: &'a Record, name: &str) -> std::borrow::Cow<'a, str> {
    record
        .headers
        .iter()
        .find(|h| h.name == name)
        .map_or(std::borrow::Cow::Borrowed(""), |h| {
            String::from_utf8_lossy(&h.value)
        })
}
