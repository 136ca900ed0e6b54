//! Forced crash points, for the crash tests only.
//!
//! `WEIR_CRASH_AT=<point>` (or `<point>@<n>`, the n-th time it is reached)
//! makes the process abort — like `kill -9`, no cleanup, no flush — at that
//! point. Unset (always, outside tests) a point costs one relaxed load.
//! `WEIR_STOP_AT=<point>[@<n>]` instead stops the process there with
//! SIGSTOP, as a long GC pause or a frozen VM would, until a SIGCONT.
//!
//! Points: `before-commit` (an epoch's rows are written to PostgreSQL, its
//! transaction not committed), `after-upload` (an epoch's Parquet files are
//! uploaded, its manifest not written), `before-offset-commit` (the
//! checkpoint is committed, the Kafka group offsets not yet updated),
//! `before-checkpoint-save` (at-least-once: the sink is flushed, the
//! checkpoint file not yet written).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Target {
    point: String,
    nth: u64,
    seen: AtomicU64,
}

impl Target {
    fn from_env(var: &str) -> Option<Target> {
        let spec = std::env::var(var).ok()?;
        let (point, nth) = match spec.split_once('@') {
            Some((point, n)) => (point.to_owned(), n.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        Some(Target {
            point,
            nth,
            seen: AtomicU64::new(0),
        })
    }

    /// Whether `name` is this target and this is its n-th time.
    fn hit(&self, name: &str) -> bool {
        self.point == name && self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.nth
    }
}

fn targets() -> &'static (Option<Target>, Option<Target>) {
    static TARGETS: OnceLock<(Option<Target>, Option<Target>)> = OnceLock::new();
    TARGETS.get_or_init(|| {
        (
            Target::from_env("WEIR_CRASH_AT"),
            Target::from_env("WEIR_STOP_AT"),
        )
    })
}

/// Aborts the process if `WEIR_CRASH_AT` names this point, or stops it
/// (SIGSTOP) if `WEIR_STOP_AT` does (and this is the n-th time it is
/// reached).
pub fn point(name: &str) {
    let (crash, stop) = targets();
    if crash.as_ref().is_some_and(|t| t.hit(name)) {
        tracing::error!(point = name, "WEIR_CRASH_AT: aborting here.");
        std::process::abort();
    }
    if stop.as_ref().is_some_and(|t| t.hit(name)) {
        tracing::warn!(point = name, "WEIR_STOP_AT: stopping here until SIGCONT.");
        // SAFETY: raise has no preconditions; SIGSTOP cannot be caught.
        unsafe { libc::raise(libc::SIGSTOP) };
        tracing::warn!(point = name, "WEIR_STOP_AT: continued.");
    }
}
