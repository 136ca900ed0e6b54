//! `weir bench`: the taxi enrichment through WebAssembly (batch sizes 1, 64,
//! 1024) against the same Rust code linked natively, in one run, so the
//! ratio holds on a noisy machine. Both paths get identical generated
//! records and must produce identical outputs; the run fails otherwise.

use crate::plugin::{self, PluginEngine, PluginLimits, PluginSpec};
use std::path::Path;
use std::time::{Duration, Instant};
use weir_plugin_kit::Transform;

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// `native` or `wasm`.
    pub mode: &'static str,
    /// Records per call.
    pub batch_size: usize,
    /// Best of the repetitions.
    pub records_per_sec: f64,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Records per pass.
    pub records: usize,
    /// Measurements, native first.
    pub rows: Vec<Measurement>,
    /// Time to compile the component with Cranelift.
    pub compile: Duration,
    /// Time to load the same component from the compiled cache.
    pub cached_load: Duration,
    /// Records/s through an identity component at batch 1024: the cost of
    /// crossing the boundary alone (copy in, copy out), when measured.
    pub boundary: Option<f64>,
}

/// Benchmark failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plugin could not be loaded or trapped.
    #[error(transparent)]
    Plugin(#[from] plugin::Error),
    /// The two paths disagreed: a correctness bug, not a performance one.
    #[error("native and WASM outputs differ at batch size {batch_size}: {detail}")]
    Mismatch {
        /// Batch size of the WASM run.
        batch_size: usize,
        /// What differed.
        detail: String,
    },
}

/// Runs the benchmark on `records` generated trips with `wasm` as the
/// component, `repeat` passes per configuration. `echo`, an identity
/// component (the test fixture `hostile` in echo mode), measures the
/// boundary cost alone.
pub fn run(
    wasm: &Path,
    echo: Option<&Path>,
    records: usize,
    repeat: usize,
    cache_dir: &Path,
) -> Result<Report, Error> {
    let lines = crate::sample::taxi(records, 42, 2.0);
    let host_records: Vec<plugin::Record> = lines
        .iter()
        .map(|l| plugin::Record {
            key: None,
            value: l.text.clone().into_bytes(),
            timestamp_ms: 0,
            headers: vec![],
        })
        .collect();
    let guest_records: Vec<weir_plugin_kit::Record> = lines
        .iter()
        .map(|l| weir_plugin_kit::Record {
            key: None,
            value: l.text.clone().into_bytes(),
            timestamp_ms: 0,
            headers: vec![],
        })
        .collect();

    let mut rows = Vec::new();
    let mut native = taxi_enrich::TaxiEnrich::new("{}").expect("default config");
    let mut native_out = (Vec::new(), 0usize);
    let best = best_of(repeat, || {
        let mut outputs = Vec::with_capacity(records);
        let mut failed = 0;
        for chunk in guest_records.chunks(1024) {
            let result = native.process(chunk.to_vec(), 0);
            failed += result.failures.len();
            outputs.extend(result.outputs.into_iter().map(|r| r.value));
        }
        native_out = (outputs, failed);
    });
    rows.push(Measurement {
        mode: "native",
        batch_size: 1024,
        records_per_sec: records as f64 / best.as_secs_f64(),
    });

    let uncached = PluginEngine::new(None)?;
    let started = Instant::now();
    uncached.load(wasm)?;
    let compile = started.elapsed();
    let engine = PluginEngine::new(Some(cache_dir.to_owned()))?;
    engine.load(wasm)?;
    let started = Instant::now();
    let loaded = engine.load(wasm)?;
    let cached_load = started.elapsed();

    let spec = PluginSpec {
        name: "taxi-enrich".into(),
        path: wasm.to_owned(),
        published: None,
        config_json: "{}".into(),
        limits: PluginLimits {
            max_batch_time: Duration::from_secs(30),
            max_memory: 1 << 30,
            recycle_memory: 0,
        },
        read_only_dirs: Vec::new(),
    };
    for batch_size in [1usize, 64, 1024] {
        let mut plugin = engine.instantiate(&spec, &loaded)?;
        let mut error = None;
        let mut wasm_out = (Vec::new(), 0usize);
        let best = best_of(repeat, || {
            let mut outputs = Vec::with_capacity(records);
            let mut failed = 0;
            for chunk in host_records.chunks(batch_size) {
                match plugin.process(chunk, 0) {
                    Ok(result) => {
                        failed += result.failures.len();
                        outputs.extend(result.outputs.into_iter().map(|r| r.value));
                    }
                    Err(e) => error = Some(e),
                }
            }
            wasm_out = (outputs, failed);
        });
        if let Some(e) = error {
            return Err(e.into());
        }
        if wasm_out != native_out {
            return Err(Error::Mismatch {
                batch_size,
                detail: format!(
                    "{} outputs/{} failures through WASM vs {}/{} native",
                    wasm_out.0.len(),
                    wasm_out.1,
                    native_out.0.len(),
                    native_out.1
                ),
            });
        }
        rows.push(Measurement {
            mode: "wasm",
            batch_size,
            records_per_sec: records as f64 / best.as_secs_f64(),
        });
    }
    let boundary = match echo {
        Some(path) => {
            let spec = PluginSpec {
                name: "echo".into(),
                path: path.to_owned(),
                published: None,
                config_json: r#"{"mode":"echo"}"#.into(),
                ..spec
            };
            let mut plugin = engine.start(&spec)?;
            let mut error = None;
            let best = best_of(repeat, || {
                for chunk in host_records.chunks(1024) {
                    if let Err(e) = plugin.process(chunk, 0) {
                        error = Some(e);
                    }
                }
            });
            if let Some(e) = error {
                return Err(e.into());
            }
            Some(records as f64 / best.as_secs_f64())
        }
        None => None,
    };
    Ok(Report {
        records,
        rows,
        compile,
        cached_load,
        boundary,
    })
}

fn best_of(repeat: usize, mut f: impl FnMut()) -> Duration {
    (0..repeat.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .min()
        .expect("at least one repetition")
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let native = self.rows[0].records_per_sec;
        writeln!(
            f,
            "taxi-enrich, {} generated trips (2% invalid), best of the passes",
            self.records
        )?;
        writeln!(
            f,
            "{:<8} {:>6} {:>14} {:>10}",
            "mode", "batch", "records/s", "vs native"
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "{:<8} {:>6} {:>14.0} {:>9.2}x",
                row.mode,
                row.batch_size,
                row.records_per_sec,
                row.records_per_sec / native
            )?;
        }
        if let Some(rate) = self.boundary {
            writeln!(
                f,
                "{:<8} {:>6} {:>14.0}   (identity component: boundary cost alone)",
                "echo", 1024, rate
            )?;
        }
        writeln!(
            f,
            "component load: compile {:.1} ms, from cache {:.1} ms",
            self.compile.as_secs_f64() * 1e3,
            self.cached_load.as_secs_f64() * 1e3
        )
    }
}
