//! A canary: a prepared version that shadows the live one on the same
//! batches, its outputs compared and discarded, until it has seen
//! `canary-batches` batches with records; then its failure rate decides.

use crate::Record;
use crate::plugin::BatchResult;
use crate::swap::Candidate;

/// A shadowing version and what it did so far.
pub(super) struct Canary {
    pub(super) candidate: Box<Candidate>,
    /// Batches with records still to shadow.
    pub(super) remaining: u32,
    inputs: u64,
    live_failed: u64,
    shadow_failed: u64,
    live_out: u64,
    shadow_out: u64,
    /// The first output that differed, in words.
    diff: Option<String>,
}

impl Canary {
    /// Starts shadowing with `candidate`.
    pub(super) fn new(candidate: Box<Candidate>) -> Canary {
        Canary {
            remaining: candidate.policy.canary_batches,
            candidate,
            inputs: 0,
            live_failed: 0,
            shadow_failed: 0,
            live_out: 0,
            shadow_out: 0,
            diff: None,
        }
    }

    /// Counts one shadowed batch.
    pub(super) fn observe(&mut self, inputs: &[Record], live: &BatchResult, shadow: &BatchResult) {
        self.remaining = self.remaining.saturating_sub(1);
        self.inputs += inputs.len() as u64;
        self.live_failed += live.failures.len() as u64;
        self.shadow_failed += shadow.failures.len() as u64;
        self.live_out += live.outputs.len() as u64;
        self.shadow_out += shadow.outputs.len() as u64;
        if self.diff.is_none() {
            let differing = live
                .outputs
                .iter()
                .zip(&shadow.outputs)
                .position(|(a, b)| a.value != b.value);
            self.diff = differing.map(|i| {
                format!(
                    "first differing output: live {} | canary {}",
                    abbreviate(&live.outputs[i].value),
                    abbreviate(&shadow.outputs[i].value)
                )
            });
        }
    }

    fn rate(failed: u64, inputs: u64) -> f64 {
        failed as f64 / inputs.max(1) as f64
    }

    /// The live and canary results side by side, for logs and `/readyz`.
    pub(super) fn comparison(&self) -> String {
        format!(
            "{} batches, {} inputs: live failed {} ({:.1}%) and emitted {}; canary failed {} ({:.1}%) and emitted {}{}",
            self.candidate.policy.canary_batches,
            self.inputs,
            self.live_failed,
            100.0 * Canary::rate(self.live_failed, self.inputs),
            self.live_out,
            self.shadow_failed,
            100.0 * Canary::rate(self.shadow_failed, self.inputs),
            self.shadow_out,
            self.diff
                .as_ref()
                .map_or(String::new(), |d| format!("; {d}"))
        )
    }

    /// Whether the canary failed no more often than the live version
    /// plus `canary-margin`.
    pub(super) fn passes(&self) -> bool {
        Canary::rate(self.shadow_failed, self.inputs)
            <= Canary::rate(self.live_failed, self.inputs) + self.candidate.policy.canary_margin
    }
}

fn abbreviate(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() <= 160 {
        text.into_owned()
    } else {
        format!("{}…", text.chars().take(160).collect::<String>())
    }
}
