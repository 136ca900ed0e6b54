//! Live counters of a pipeline, shared by its loop, its sink writer, its
//! partitions (group mode) and the operations endpoint.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the batch-duration histogram buckets.
const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A Prometheus histogram of durations, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = BOUNDS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Group-mode rebalances seen, by kind.
#[derive(Debug, Default)]
pub struct Rebalances {
    /// Partitions given to this process.
    pub assign: AtomicU64,
    /// Partitions taken away after a commit.
    pub revoke: AtomicU64,
    /// Partitions lost (this process was out of the group): dropped
    /// without a commit.
    pub lost: AtomicU64,
}

/// Live counters, shared with progress reporting.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records read from the source.
    pub read: AtomicU64,
    /// Records written to the sink.
    pub written: AtomicU64,
    /// Records sent to the dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Failed records dropped by `on-error = "skip"`.
    pub skipped: AtomicU64,
    /// Plugin instances replaced after a trap.
    pub restarts: AtomicU64,
    /// Plugin instances replaced because their memory passed
    /// `recycle-memory`.
    pub recycles: AtomicU64,
    /// Checkpoints committed.
    pub checkpoints: AtomicU64,
    /// Times the pipeline resumed from its checkpoint after an outage.
    pub recoveries: AtomicU64,
    /// Time from pulling a batch to handing its output to the sink.
    pub batch_seconds: Histogram,
    /// Time a checkpoint commit took, from asking the sink (or the
    /// checkpoint store) to its durable answer; deferred commits are not
    /// counted.
    pub commit_seconds: Histogram,
    /// Records not yet read, per source partition (Kafka consumer lag).
    pub lag: std::sync::Mutex<Vec<(String, i64)>>,
    /// Group mode: the partitions this process owns (`topic/partition`).
    pub partitions_owned: std::sync::Mutex<Vec<String>>,
    /// Group mode: every partition's owner as the checkpoint store says
    /// (`topic.partition`, `host:pid`), refreshed every few seconds.
    pub partition_owners: std::sync::Mutex<Vec<(String, String)>>,
    /// Group mode: rebalances by kind.
    pub rebalances: Rebalances,
    /// Group mode: commits refused because another process had claimed
    /// the partition since.
    pub fenced_commits: AtomicU64,
    /// Whether the pipeline is running (set once its parts are open).
    pub ready: std::sync::atomic::AtomicBool,
    /// Live plugin versions and swap attempts.
    pub swaps: std::sync::Mutex<crate::swap::SwapBoard>,
    /// Largest time between two consecutive batches handed to the sink
    /// (nanoseconds), apart from those across a swap.
    pub gap_max_ns: AtomicU64,
    /// Largest time between two consecutive batches handed to the sink
    /// across a plugin swap (nanoseconds).
    pub swap_gap_max_ns: AtomicU64,
}
