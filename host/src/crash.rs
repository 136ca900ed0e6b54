//! Forced crash points, for the crash tests only.
//!
//! `WEIR_CRASH_AT=<point>` (or `<point>@<n>`, the n-th time it is reached)
//! makes the process abort — like `kill -9`, no cleanup, no flush — at that
//! point. Unset (always, outside tests) a point costs one relaxed load.
//!
//! Points: `before-commit` (an epoch's rows are written to PostgreSQL, its
//! transaction not committed), `after-upload` (an epoch's Parquet files are
//! uploaded, its manifest not written), `before-offset-commit` (the
//! checkpoint is committed, the Kafka group offsets not yet updated),
//! `before-checkpoint-save` (at-least-once: the sink is flushed, the
//! checkpoint file not yet written), `compact-after-merge` (a compaction's
//! merged files are uploaded, the swap not committed),
//! `compact-after-commit` (the swap is committed, `_weir/committed` not
//! yet rewritten).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Target {
    point: String,
    nth: u64,
    seen: AtomicU64,
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var("WEIR_CRASH_AT").ok()?;
            let (point, nth) = match spec.split_once('@') {
                Some((point, n)) => (point.to_owned(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Target {
                point,
                nth,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if `WEIR_CRASH_AT` names this point (and this is
/// the n-th time it is reached).
pub fn point(name: &str) {
    if let Some(target) = target()
        && target.point == name
        && target.seen.fetch_add(1, Ordering::Relaxed) + 1 == target.nth
    {
        tracing::error!(point = name, "WEIR_CRASH_AT: aborting here.");
        std::process::abort();
    }
}
