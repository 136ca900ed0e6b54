//! A batch that trapped: the records that trap are found by splitting it,
//! each part processed by a fresh instance restored to the state before
//! it; they become failures with the trap's reason, every other record is
//! processed once. Traps in a row are counted against
//! `max-consecutive-traps`.

use super::{Stage, fail_all};
use crate::Record;
use crate::config::OnPluginFailure;
use crate::pipeline::{Error, Result};
use crate::plugin::{self, BatchResult, PluginEngine};
use crate::stats::Stats;
use std::sync::atomic::Ordering;

impl Stage {
    /// Replaces a trapped instance (never called again: its memory may be
    /// half-updated) with a fresh one holding the state from before the
    /// call that trapped.
    pub(super) fn reinstate(&mut self, engine: &PluginEngine, stats: &Stats) -> Result<()> {
        let state = self.before.as_ref().map(|(_, state)| state.as_slice());
        self.plugin = self.fresh_instance(engine, state)?;
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A new instance of the live version, holding `state` when given.
    pub(super) fn fresh_instance(
        &self,
        engine: &PluginEngine,
        state: Option<&[u8]>,
    ) -> Result<plugin::Plugin> {
        let mut fresh = engine.instantiate(&self.spec, &self.loaded)?;
        if let Some(state) = state {
            fresh.restore(state)?;
        }
        Ok(fresh)
    }

    /// Record `index` traps on its own: a failure with the trap's reason.
    pub(super) fn trapped(
        &mut self,
        index: usize,
        error: &plugin::Error,
        result: &mut BatchResult,
    ) -> Result<()> {
        result.failures.push(plugin::Failure {
            index: index as u32,
            reason: error.to_string(),
        });
        self.count_trap(error)
    }

    /// Counts a trapping record (or tick); after `max-consecutive-traps` in
    /// a row, applies `on-plugin-failure`.
    pub(super) fn count_trap(&mut self, error: &plugin::Error) -> Result<()> {
        self.consecutive_traps += 1;
        let (limit, policy) = self.failure;
        if self.consecutive_traps < limit {
            return Ok(());
        }
        match policy {
            OnPluginFailure::Stop => Err(Error::PluginFailing {
                plugin: self.spec.name.clone(),
                version: self.version.clone(),
                traps: self.consecutive_traps,
                last: error.to_string(),
            }),
            OnPluginFailure::DeadLetterAll => {
                let reason = format!(
                    "plugin {} is disabled after {} trapping records in a row (the last: {error}); every record goes to the dead letters until a new version is swapped in",
                    self.version, self.consecutive_traps
                );
                tracing::error!(plugin = %self.spec.name, "{reason}");
                self.disabled = Some(reason);
                Ok(())
            }
        }
    }

    /// After `records` trapped as a batch: splits it in halves, recursively,
    /// each part processed by an instance restored to the state before it,
    /// until the records that trap on their own are found. Those become
    /// failures with the trap's reason; every other record is processed
    /// exactly once, in order.
    pub(super) fn isolate(
        &mut self,
        engine: &PluginEngine,
        stats: &Stats,
        records: &[Record],
        now: i64,
        error: plugin::Error,
    ) -> Result<BatchResult> {
        tracing::warn!(plugin = %self.label, records = records.len(), %error, "The batch trapped; isolating the records that trap.");
        self.reinstate(engine, stats)?;
        let mut result = BatchResult {
            outputs: Vec::new(),
            failures: Vec::new(),
        };
        // Ranges still to process, the next one last.
        let mut ranges = Vec::new();
        if records.len() == 1 {
            self.trapped(0, &error, &mut result)?;
        } else {
            let mid = records.len() / 2;
            ranges.extend([(mid, records.len()), (0, mid)]);
        }
        while let Some((lo, hi)) = ranges.pop() {
            if let Some(reason) = &self.disabled {
                let rest = fail_all(lo..hi, reason);
                result.failures.extend(rest.failures);
                continue;
            }
            let part = self
                .plugin
                .process(&records[lo..hi], now)
                .and_then(|result| self.caps.check(&self.spec.name, result));
            match part {
                Ok(part) => {
                    result.outputs.extend(part.outputs);
                    result
                        .failures
                        .extend(part.failures.into_iter().map(|mut f| {
                            f.index += lo as u32;
                            f
                        }));
                    self.consecutive_traps = 0;
                    let state = self.plugin.snapshot()?;
                    self.before = Some((self.plugin.info().state_version, state));
                }
                Err(error) => {
                    self.reinstate(engine, stats)?;
                    if hi - lo == 1 {
                        self.trapped(lo, &error, &mut result)?;
                    } else {
                        let mid = lo + (hi - lo) / 2;
                        ranges.extend([(mid, hi), (lo, mid)]);
                    }
                }
            }
        }
        result.failures.sort_by_key(|f| f.index);
        Ok(result)
    }
}
