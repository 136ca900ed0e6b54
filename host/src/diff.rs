//! `weir plugin diff OLD NEW --input FILE`: both versions of a plugin on the
//! same records, before a deploy, and what changed.
//!
//! Both run in the engine `weir run` uses, on the same batches, with the
//! same `now`. Outputs are compared batch by batch, in order: as JSON
//! values when both sides are JSON (so key order or number spelling that
//! means the same value is no difference), else byte for byte, with the
//! keys and headers. Failures are compared by which inputs failed. At the
//! end, the old version's snapshot is handed to the new one, as a swap with
//! `state = "keep"` would.

use crate::plugin::{self, PluginEngine, PluginSpec, Record};
use std::collections::BTreeMap;
use std::fmt::{self, Write};

/// What one version did with the input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Side {
    /// `name@version+digest12`.
    pub version: String,
    /// Records out.
    pub outputs: usize,
    /// Inputs it failed.
    pub failed: usize,
    /// Failure reasons, with how many inputs each.
    pub reasons: BTreeMap<String, usize>,
    /// Its state version.
    pub state_version: u32,
}

/// One output that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Which output, counted over the whole input (0-based).
    pub position: usize,
    /// The old version's output there, if it made one.
    pub old: Option<String>,
    /// The new version's.
    pub new: Option<String>,
    /// When both are JSON objects: the fields that differ,
    /// `field: old → new` (`-` for a field one side lacks).
    pub fields: Vec<String>,
}

/// The top-level fields of two JSON objects that differ.
fn fields(old: &Record, new: &Record) -> Vec<String> {
    let parse = |r: &Record| match serde_json::from_slice::<serde_json::Value>(&r.value) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    };
    let (Some(a), Some(b)) = (parse(old), parse(new)) else {
        return Vec::new();
    };
    let shown = |v: Option<&serde_json::Value>| v.map_or("-".to_owned(), |v| v.to_string());
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} → {}", shown(a.get(k)), shown(b.get(k))))
        .collect()
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records in.
    pub records: usize,
    /// The old version.
    pub old: Side,
    /// The new version.
    pub new: Side,
    /// Outputs that differ, in all.
    pub differing: usize,
    /// Inputs that one version failed and the other did not.
    pub failed_differently: usize,
    /// The first differing outputs.
    pub first: Vec<Difference>,
    /// Whether the new version takes the old one's state (`None`: it
    /// restored it; `Some(why)` otherwise).
    pub state: Option<String>,
}

impl Report {
    /// Whether the versions behaved the same on the input.
    pub fn same(&self) -> bool {
        self.differing == 0 && self.failed_differently == 0
    }
}

/// A record's output, as the comparison sees it and shows it.
fn shown(record: &Record) -> String {
    let value = match serde_json::from_slice::<serde_json::Value>(&record.value) {
        Ok(json) => json.to_string(),
        Err(_) => String::from_utf8_lossy(&record.value).into_owned(),
    };
    let mut out = String::new();
    if let Some(key) = &record.key {
        let _ = write!(out, "key {} ", String::from_utf8_lossy(key));
    }
    out.push_str(&value);
    for h in &record.headers {
        let _ = write!(out, " [{}={}]", h.name, String::from_utf8_lossy(&h.value));
    }
    out
}

/// Runs `lines` through the version `old` and the version `new` (the
/// specs differ only in their file) in batches of `batch_size`, keeping
/// the first `show` differing outputs.
pub fn diff(
    engine: &PluginEngine,
    old: &PluginSpec,
    new: &PluginSpec,
    lines: &[Vec<u8>],
    batch_size: usize,
    show: usize,
) -> plugin::Result<Report> {
    let mut old_plugin = engine.start(old)?;
    let mut new_plugin = engine.start(new)?;
    let side = |p: &plugin::Plugin| Side {
        version: crate::swap::version_label(p),
        state_version: p.info().state_version,
        ..Side::default()
    };
    let (mut a, mut b) = (side(&old_plugin), side(&new_plugin));
    let now = crate::pipeline::now_ms();
    let (mut position, mut differing, mut failed_differently) = (0, 0, 0);
    let mut first = Vec::new();
    for chunk in lines.chunks(batch_size.max(1)) {
        let batch = crate::deploy::batch_of(chunk, now);
        let x = old_plugin.process(&batch, now)?;
        let y = new_plugin.process(&batch, now)?;
        for (side, result) in [(&mut a, &x), (&mut b, &y)] {
            side.outputs += result.outputs.len();
            side.failed += result.failures.len();
            for f in &result.failures {
                *side.reasons.entry(f.reason.clone()).or_default() += 1;
            }
        }
        let failed = |r: &plugin::BatchResult| {
            r.failures
                .iter()
                .map(|f| f.index)
                .collect::<std::collections::BTreeSet<_>>()
        };
        failed_differently += failed(&x).symmetric_difference(&failed(&y)).count();
        for i in 0..x.outputs.len().max(y.outputs.len()) {
            let (o, n) = (x.outputs.get(i).map(shown), y.outputs.get(i).map(shown));
            if o != n {
                differing += 1;
                if first.len() < show {
                    let fields = match (x.outputs.get(i), y.outputs.get(i)) {
                        (Some(a), Some(b))
                            if a.key == b.key
                                && a.headers.len() == b.headers.len()
                                && a.headers
                                    .iter()
                                    .zip(&b.headers)
                                    .all(|(h, k)| h.name == k.name && h.value == k.value) =>
                        {
                            fields(a, b)
                        }
                        _ => Vec::new(),
                    };
                    first.push(Difference {
                        position,
                        old: o,
                        new: n,
                        fields,
                    });
                }
            }
            position += 1;
        }
    }
    let state = match old_plugin
        .snapshot()
        .and_then(|state| new_plugin.restore(&state))
    {
        _ if a.state_version != b.state_version => Some(format!(
            "state version {} → {}: a swap with state = \"keep\" is refused (state = \"reset\" starts the new version empty)",
            a.state_version, b.state_version
        )),
        Ok(()) => None,
        Err(e) => Some(format!(
            "the new version does not take the old one's state: {e}"
        )),
    };
    Ok(Report {
        records: lines.len(),
        old: a,
        new: b,
        differing,
        failed_differently,
        first,
        state,
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} records in", self.records)?;
        for (which, side) in [("old", &self.old), ("new", &self.new)] {
            writeln!(
                f,
                "{which} {}: {} out, {} failed",
                side.version, side.outputs, side.failed
            )?;
            let mut reasons: Vec<_> = side.reasons.iter().collect();
            reasons.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
            for (reason, n) in reasons.into_iter().take(5) {
                writeln!(f, "    {n} × {reason}")?;
            }
        }
        writeln!(
            f,
            "differing outputs: {}; inputs failed by one version only: {}",
            self.differing, self.failed_differently
        )?;
        for d in &self.first {
            if d.fields.is_empty() {
                writeln!(f, "output {}:", d.position)?;
                writeln!(f, "  old: {}", d.old.as_deref().unwrap_or("(none)"))?;
                writeln!(f, "  new: {}", d.new.as_deref().unwrap_or("(none)"))?;
            } else {
                writeln!(f, "output {}: {}", d.position, d.fields.join(", "))?;
            }
        }
        match &self.state {
            None => writeln!(f, "state: the new version takes the old one's snapshot")?,
            Some(why) => writeln!(f, "state: {why}")?,
        }
        write!(
            f,
            "{}",
            if self.same() {
                "same outputs and failures"
            } else {
                "the versions differ"
            }
        )
    }
}
