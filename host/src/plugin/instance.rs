//! One running instance of a plugin: its own `Store`, limits and sandbox.
//!
//! Every call gets a fresh CPU deadline. A call that traps poisons the
//! instance: its memory may be half-updated, so it is never called again;
//! the caller builds a new one from the same [`LoadedComponent`].

use super::bindings::Transform;
use super::bindings::weir::transform::{host, types};
use super::engine::{EPOCH_TICK, EpochTicker, LoadedComponent, PluginLimits, PluginSpec};
use super::{BatchResult, Error, Info, Level, Record, Result, TrapKind};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What a store carries for the host side of a plugin.
pub struct HostState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    stderr: super::sandbox::Stderr,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// Caps linear memory; remembers a refused growth so the trap can say why,
/// and the largest memory granted (a guest's memory never shrinks).
struct MemoryCap {
    max_bytes: usize,
    refused: Option<usize>,
    granted: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = Some(desired);
            return Err(wasmtime::Error::msg("memory cap reached"));
        }
        self.granted = self.granted.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A running plugin instance.
pub struct Plugin {
    name: Arc<str>,
    info: Info,
    hash: String,
    limits: PluginLimits,
    store: Store<HostState>,
    bindings: Transform,
    poisoned: Option<String>,
    /// Keeps the epoch ticker running while this instance lives, even if
    /// the engine that created it is dropped.
    _ticker: Arc<EpochTicker>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("info", &self.info)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(super) fn new(
        engine: &Engine,
        spec: &PluginSpec,
        loaded: &LoadedComponent,
        ticker: Arc<EpochTicker>,
    ) -> Result<Self> {
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let stderr = super::sandbox::Stderr::default();
        let state = HostState {
            plugin: name.clone(),
            wasi: super::sandbox::wasi_context(&name, &stderr, &spec.read_only_dirs).map_err(
                |reason| Error::Link {
                    path: spec.path.clone(),
                    reason,
                },
            )?,
            stderr,
            table: ResourceTable::new(),
            memory: MemoryCap {
                max_bytes: usize::try_from(spec.limits.max_memory).unwrap_or(usize::MAX),
                refused: None,
                granted: 0,
            },
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(spec.limits));
        let bindings = loaded.pre.instantiate(&mut store).map_err(|e| {
            if e.downcast_ref::<Trap>().is_some() || store.data().memory.refused.is_some() {
                trap_error(&name, "instantiate", spec.limits, &store, e)
            } else {
                Error::Link {
                    path: spec.path.clone(),
                    reason: format!("{e:#}"),
                }
            }
        })?;
        let mut plugin = Plugin {
            name,
            info: Info {
                name: String::new(),
                version: String::new(),
                state_version: 0,
            },
            hash: loaded.hash.clone(),
            limits: spec.limits,
            store,
            bindings,
            poisoned: None,
            _ticker: ticker,
        };
        plugin.info = plugin.call("describe", |b, s| b.call_describe(s))?;
        plugin
            .call("init", |b, s| b.call_init(s, &spec.config_json))?
            .map_err(|message| Error::Init {
                plugin: spec.name.clone(),
                message,
            })?;
        Ok(plugin)
    }

    /// Name in the host configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the plugin said about itself in `describe`.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// SHA-256 of the component's bytes.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The largest linear memory granted to this instance, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().memory.granted
    }

    /// Whether an earlier call trapped (the instance must be replaced).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Processes one batch.
    pub fn process(&mut self, batch: &[Record], now_ms: i64) -> Result<BatchResult> {
        self.call("process", |b, s| b.call_process(s, batch, now_ms))
    }

    /// Time-driven output.
    pub fn on_tick(&mut self, now_ms: i64) -> Result<Vec<Record>> {
        self.call("on-tick", |b, s| b.call_on_tick(s, now_ms))
    }

    /// The plugin's state.
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.call("snapshot", |b, s| b.call_snapshot(s))
    }

    /// Replaces the plugin's state.
    pub fn restore(&mut self, state: &[u8]) -> Result<()> {
        let plugin = self.name.to_string();
        self.call("restore", |b, s| b.call_restore(s, state))?
            .map_err(|message| Error::Restore { plugin, message })
    }

    fn call<T>(
        &mut self,
        export: &'static str,
        f: impl FnOnce(&Transform, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned {
                plugin: self.name.to_string(),
                reason: reason.clone(),
            });
        }
        self.store.set_epoch_deadline(deadline_ticks(self.limits));
        self.store.data().stderr.clear();
        match f(&self.bindings, &mut self.store) {
            Ok(value) => Ok(value),
            Err(e) => {
                let error = trap_error(&self.name, export, self.limits, &self.store, e);
                if let Error::Trap { reason, .. } = &error {
                    self.poisoned = Some(reason.clone());
                }
                tracing::warn!(plugin = &*self.name, export, %error, "Plugin trapped; the instance is discarded.");
                Err(error)
            }
        }
    }
}

fn deadline_ticks(limits: PluginLimits) -> u64 {
    (limits.max_batch_time.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

fn trap_error(
    name: &str,
    export: &'static str,
    limits: PluginLimits,
    store: &Store<HostState>,
    e: wasmtime::Error,
) -> Error {
    let (kind, reason) = if let Some(desired) = store.data().memory.refused {
        (
            TrapKind::Memory,
            format!(
                "memory cap of {} MiB exceeded (tried to grow to {} MiB); raise [plugins.{name}] max-memory or reduce the batch size",
                limits.max_memory >> 20,
                desired >> 20
            ),
        )
    } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        (
            TrapKind::Deadline,
            format!(
                "ran longer than max-batch-time {} ms; raise [plugins.{name}] max-batch-time or fix the loop",
                limits.max_batch_time.as_millis()
            ),
        )
    } else {
        // The root cause says what trapped (the chain above it is
        // wasmtime's backtrace).
        let trap = e.root_cause().to_string();
        let reason = match store.data().stderr.said() {
            Some(said) => format!("{trap}; the plugin wrote to stderr: {said}"),
            None => trap,
        };
        (TrapKind::Fault, reason)
    };
    Error::Trap {
        plugin: name.to_owned(),
        export,
        reason,
        kind,
    }
}
