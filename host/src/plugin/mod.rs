//! WebAssembly transforms: the engine, the compiled-component cache, the
//! sandbox and one instance per plugin.
//!
//! - [`engine`]: the one shared `Engine` and `Linker`, epoch ticker, limits.
//! - [`cache`]: compiled components on disk, keyed by the `.wasm` hash.
//! - [`sandbox`]: the WASI context that grants nothing; guest stdio → `tracing`.
//! - [`instance`]: a running plugin; traps poison it, it is never reused.
//! - [`published`]: plugins read from an object store that a fleet shares.
//!
//! Nothing here performs the pipeline's I/O: a plugin only sees batches.

pub mod cache;
pub mod engine;
pub mod instance;
pub mod published;
pub mod sandbox;

pub use engine::{LoadedComponent, PluginEngine, PluginLimits, PluginSpec};
pub use instance::Plugin;

/// Host bindings of `wit/transform.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform",
    });
}

pub use bindings::weir::transform::types::{BatchResult, Failure, Header, Info, Level, Record};

use std::path::PathBuf;

/// Why a plugin could not be loaded or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `.wasm` file could not be read.
    #[error("plugin {path}: cannot read: {source} (check the path in [plugins.*].path)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A published plugin's location could not be read.
    #[error("{reason}")]
    Fetch {
        /// The location.
        path: PathBuf,
        /// What failed, from the store, and what to do.
        reason: String,
    },
    /// The bytes are not a valid component for this engine.
    #[error(
        "plugin {path}: not a valid WebAssembly component: {reason} (build it with `cargo component build --release` or `cargo build --release --target wasm32-wasip2`)"
    )]
    Compile {
        /// The file.
        path: PathBuf,
        /// The compiler's message.
        reason: String,
    },
    /// The component does not implement the `weir:transform` world, or asks
    /// for imports the host does not grant.
    #[error(
        "plugin {path}: does not fit the weir:transform@0.1.0 world: {reason} (regenerate its bindings from wit/transform.wit; only `host.log` and WASI imports are available)"
    )]
    Link {
        /// The file.
        path: PathBuf,
        /// Wasmtime's message.
        reason: String,
    },
    /// The plugin's `init` refused its configuration.
    #[error("plugin {plugin}: init refused its config: {message} (fix [plugins.{plugin}.config])")]
    Init {
        /// Plugin name from the host configuration.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin's `restore` refused a snapshot.
    #[error("plugin {plugin}: restore refused the state: {message}")]
    Restore {
        /// Plugin name from the host configuration.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// A call trapped: the instance is discarded.
    #[error("plugin {plugin}: export `{export}` trapped: {reason}")]
    Trap {
        /// Plugin name from the host configuration.
        plugin: String,
        /// The export that was running.
        export: &'static str,
        /// What happened and what to do about it.
        reason: String,
        /// Whether the trap was the CPU deadline or the memory cap.
        kind: TrapKind,
    },
    /// A call returned more than the host accepts from one call.
    #[error("plugin {plugin}: {reason}")]
    Output {
        /// Plugin name from the host configuration.
        plugin: String,
        /// Which cap, and by how much.
        reason: String,
    },
    /// A call on an instance that trapped before.
    #[error(
        "plugin {plugin}: instance is unusable after an earlier trap ({reason}); create a new instance"
    )]
    Poisoned {
        /// Plugin name from the host configuration.
        plugin: String,
        /// The earlier trap.
        reason: String,
    },
    /// Wasmtime itself failed (engine setup, cache I/O).
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// What stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// The per-batch CPU deadline passed (epoch interruption).
    Deadline,
    /// The instance tried to grow its memory past the cap.
    Memory,
    /// Anything else: a panic, `unreachable`, an out-of-bounds access.
    Fault,
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
