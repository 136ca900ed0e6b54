//! Guest-side kit shared by weir transforms.
//!
//! - [`bindings`]: the Rust bindings of `wit/transform.wit`, generated once here.
//! - [`Transform`] and [`export_transform!`]: implement a plain Rust trait and
//!   export it as the `transform` world; the WIT glue lives in this crate only.
//! - [`time`]: timestamps as the reference data writes them (TLC's
//!   `2019-01-01 00:46:40`, RFC 3339, epoch milliseconds), without a date crate.
//! - [`duration`]: `"60s"`-style durations in plugin configuration.
//!
//! This crate must never perform I/O: a transform sees only what the host
//! passes in.

pub mod duration;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod time;

/// Bindings generated from `wit/transform.wit`.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transform",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "weir_plugin_kit::bindings",
    });
}

pub use bindings::weir::transform::types::{BatchResult, Failure, Header, Info, Level, Record};

/// `now-ms` the host passes to `on-tick` when a bounded input has ended:
/// every window and buffer should close. Part of the contract (see
/// `on-tick` in `wit/transform.wit`).
pub const END_OF_INPUT_MS: i64 = i64::MAX;

/// Sends a line to the host's log. Outside WebAssembly (native unit tests and
/// benchmarks) there is no host, so the line is dropped.
pub fn log(level: Level, message: &str) {
    #[cfg(target_family = "wasm")]
    bindings::weir::transform::host::log(level, message);
    #[cfg(not(target_family = "wasm"))]
    let _ = (level, message);
}

/// A record transform, written as plain Rust and exported with
/// [`export_transform!`]. The same type runs natively in tests and benchmarks.
pub trait Transform: Sized + 'static {
    /// Name, version and state format version.
    fn info() -> Info;

    /// Builds the transform from its JSON configuration (`{}` when the host
    /// configuration has none). Errors name the offending key.
    fn new(config: &str) -> Result<Self, String>;

    /// Processes one batch; see `process` in the WIT contract.
    fn process(&mut self, batch: Vec<Record>, now_ms: i64) -> BatchResult;

    /// Emits time-driven output; stateless transforms emit nothing.
    fn on_tick(&mut self, _now_ms: i64) -> Vec<Record> {
        Vec::new()
    }

    /// Serialises state; stateless transforms have none.
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Restores state written by [`Transform::snapshot`].
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} is stateless but was given {} bytes of state",
                Self::info().name,
                state.len()
            ))
        }
    }
}

/// Runs `f` on each record in place, in order: a record for which it
/// succeeds is an output, one for which it fails a failure at its index.
/// The whole of `process` for a one-in, at-most-one-out transform.
pub fn each_record(
    batch: Vec<Record>,
    mut f: impl FnMut(&mut Record) -> Result<(), String>,
) -> BatchResult {
    let mut outputs = Vec::with_capacity(batch.len());
    let mut failures = Vec::new();
    for (index, mut record) in batch.into_iter().enumerate() {
        match f(&mut record) {
            Ok(()) => outputs.push(record),
            Err(reason) => failures.push(Failure {
                index: index as u32,
                reason,
            }),
        }
    }
    BatchResult { outputs, failures }
}

/// Parses a plugin configuration given as JSON, naming the problem when it is
/// refused. `{}` and the empty string give the defaults.
pub fn parse_config<T: serde::de::DeserializeOwned + Default>(config: &str) -> Result<T, String> {
    if config.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(config).map_err(|e| format!("invalid plugin config: {e}"))
}

/// Exports a [`Transform`] as the `transform` world of `wit/transform.wit`.
///
/// Until `init` succeeds the transform is built from `{}` (its defaults), so a
/// host that calls `process` first still gets defined behaviour.
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        mod __weir_export {
            use super::*;
            use std::cell::RefCell;
            use $crate::bindings::weir::transform::types as t;
            use $crate::Transform as _;

            thread_local! {
                static STATE: RefCell<Option<$t>> = const { RefCell::new(None) };
            }

            fn with<R>(f: impl FnOnce(&mut $t) -> R) -> R {
                STATE.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    let state = slot.get_or_insert_with(|| {
                        <$t as $crate::Transform>::new("{}")
                            .expect("default configuration must be valid")
                    });
                    f(state)
                })
            }

            pub struct Component;

            impl $crate::bindings::Guest for Component {
                fn describe() -> t::Info {
                    <$t as $crate::Transform>::info()
                }
                fn init(config: String) -> Result<(), String> {
                    let state = <$t as $crate::Transform>::new(&config)?;
                    STATE.with(|cell| *cell.borrow_mut() = Some(state));
                    Ok(())
                }
                fn process(batch: Vec<t::Record>, now_ms: i64) -> t::BatchResult {
                    with(|s| s.process(batch, now_ms))
                }
                fn on_tick(now_ms: i64) -> Vec<t::Record> {
                    with(|s| s.on_tick(now_ms))
                }
                fn snapshot() -> Vec<u8> {
                    with(|s| s.snapshot())
                }
                fn restore(state: Vec<u8>) -> Result<(), String> {
                    with(|s| s.restore(&state))
                }
            }

            $crate::bindings::export_bindings!(Component with_types_in $crate::bindings);
        }
    };
}
