//! Probation: after a switch the previous version is kept for
//! `probation-batches` batches that carry records; a trap (or a failed
//! snapshot) on one of them brings it back with the state from before that
//! batch, and it processes the batch again.

use super::Stage;
use crate::pipeline::Result;
use crate::plugin::{self, LoadedComponent, Plugin, PluginEngine, PluginSpec};
use crate::stats::Stats;
use crate::swap::{Candidate, Outcome, StatePolicy, SwapPolicy, version_label};

/// What a rollback needs.
pub(super) struct Probation {
    spec: PluginSpec,
    policy: SwapPolicy,
    loaded: LoadedComponent,
    /// Batches left on trial.
    remaining: u32,
}

impl Stage {
    /// Snapshots the state, then runs `call`. On probation, a trap brings
    /// the previous version back with that state, and `call` runs again on
    /// it.
    pub(super) fn call_keeping_state<T>(
        &mut self,
        engine: &PluginEngine,
        stats: &Stats,
        call: &mut dyn FnMut(&mut Plugin) -> plugin::Result<T>,
    ) -> Result<plugin::Result<T>> {
        match self.plugin.snapshot() {
            Ok(bytes) => self.before = Some((self.plugin.info().state_version, bytes)),
            Err(error) if self.probation.is_some() => {
                self.roll_back(engine, stats, &error)?;
                return self.call_keeping_state(engine, stats, call);
            }
            // A plugin that cannot snapshot cannot be checkpointed either.
            Err(error) => return Err(error.into()),
        }
        match call(&mut self.plugin) {
            Ok(value) => Ok(Ok(value)),
            Err(error) if self.probation.is_some() => {
                self.roll_back(engine, stats, &error)?;
                self.call_keeping_state(engine, stats, call)
            }
            Err(error) => Ok(Err(error)),
        }
    }

    /// Makes `candidate` live, handing it the live state. On refusal the
    /// live version stays and the reason is returned.
    pub(super) fn switch(&mut self, candidate: Box<Candidate>) -> Result<(), (Outcome, String)> {
        let Candidate {
            spec,
            policy,
            loaded,
            mut plugin,
            ..
        } = *candidate;
        let (old, new) = (
            self.plugin.info().state_version,
            plugin.info().state_version,
        );
        if policy.state == StatePolicy::Keep && old != new {
            return Err((
                Outcome::StateVersion,
                format!(
                    "{} reports state version {new} but the live {} wrote version {old}; deploy a version that reads it, or set [plugins.{}] state = \"reset\" to start it empty",
                    version_label(&plugin),
                    self.version,
                    spec.name
                ),
            ));
        }
        let state = self.plugin.snapshot().map_err(|e| {
            (
                Outcome::RestoreFailed,
                format!("the live version's snapshot failed: {e}"),
            )
        })?;
        if policy.state == StatePolicy::Keep {
            plugin
                .restore(&state)
                .map_err(|e| (Outcome::RestoreFailed, e.to_string()))?;
        }
        let previous = Probation {
            spec: std::mem::replace(&mut self.spec, spec),
            policy: std::mem::replace(&mut self.policy, policy),
            loaded: std::mem::replace(&mut self.loaded, loaded),
            remaining: self.policy.probation_batches,
        };
        self.before = Some((old, state));
        self.disabled = None;
        self.consecutive_traps = 0;
        self.set_plugin(plugin);
        self.probation = (previous.remaining > 0).then_some(previous);
        // A canary compared itself with the version that just left.
        if let Some(canary) = self.canary.take() {
            tracing::warn!(plugin = %self.spec.name, canary = %version_label(&canary.candidate.plugin), "A direct swap ends the canary in progress.");
        }
        Ok(())
    }

    /// A batch that carried records went through: one less to go on
    /// probation.
    pub(super) fn passed_batch(&mut self) {
        let Some(p) = &mut self.probation else { return };
        p.remaining -= 1;
        if p.remaining == 0 {
            tracing::info!(plugin = %self.label, "The new version passed its probation; the previous one is released.");
            self.probation = None;
        }
    }

    /// The previous version comes back with the state from before the
    /// failed call.
    pub(super) fn roll_back(
        &mut self,
        engine: &PluginEngine,
        stats: &Stats,
        error: &plugin::Error,
    ) -> Result<()> {
        let Some(previous) = self.probation.take() else {
            return Ok(());
        };
        let failed = self.version.clone();
        let failed_digest = self.loaded.hash.clone();
        let mut plugin = engine.instantiate(&previous.spec, &previous.loaded)?;
        match &self.before {
            Some((version, bytes)) if *version == plugin.info().state_version => {
                plugin.restore(bytes)?;
            }
            _ => {
                tracing::warn!(plugin = %previous.spec.name, "The previous version cannot read the new version's state; it starts empty.")
            }
        }
        (self.spec, self.policy, self.loaded) = (previous.spec, previous.policy, previous.loaded);
        self.set_plugin(plugin);
        let reason = format!(
            "{failed} trapped on probation ({error}); {} is live again and reprocesses the batch",
            self.version
        );
        tracing::error!(plugin = %self.spec.name, "Rolled back: {reason}");
        super::reject(
            stats,
            &self.spec.name,
            &failed_digest,
            Outcome::RolledBack,
            reason,
        );
        stats
            .swaps
            .lock()
            .expect("swap board lock")
            .live
            .insert(self.spec.name.clone(), self.version.clone());
        Ok(())
    }
}
