//! The one wasmtime `Engine` and `Linker` all plugins share, and the limits
//! each instance runs under.
//!
//! CPU is bounded by epoch interruption: a background thread advances the
//! engine's epoch every [`EPOCH_TICK`]; each call gets a deadline of
//! `max-batch-time` in ticks and traps when it passes. Memory is bounded per
//! store by [`MemoryCap`]. Both are per plugin, from its configuration.

use super::bindings::{Transform, TransformPre};
use super::cache::{ComponentCache, Origin};
use super::instance::{HostState, Plugin};
use super::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

/// Granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Per-instance limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Longest one call may run.
    pub max_batch_time: Duration,
    /// Most bytes of linear memory.
    pub max_memory: u64,
    /// Linear memory past which the instance is replaced, between two
    /// batches, by a fresh one holding the same state (0: never).
    pub recycle_memory: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            max_batch_time: Duration::from_secs(2),
            max_memory: 256 << 20,
            recycle_memory: 64 << 20,
        }
    }
}

/// Everything needed to create an instance of one configured plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Name in the host configuration (`[plugins.<name>]`).
    pub name: String,
    /// Path of the `.wasm` file; for a published plugin, its URL (as
    /// logs and errors name it).
    pub path: PathBuf,
    /// Where a published plugin is read from (`path` is an object-store
    /// URL); `None` for a local file.
    pub published: Option<super::published::Published>,
    /// The plugin's configuration as JSON, passed to `init`.
    pub config_json: String,
    /// Limits of every instance.
    pub limits: PluginLimits,
    /// Host folders the plugin may read, by the path it sees them at
    /// (`read-only-dirs`); nothing else of the filesystem exists for it.
    pub read_only_dirs: Vec<(String, PathBuf)>,
}

impl PluginSpec {
    /// A plugin read from the file `path`, named after it, with `config_json`
    /// and the default limits: how the CLI runs a `.wasm` outside a
    /// pipeline (`weir plugin test`, `diff`).
    pub fn of_file(path: &Path, config_json: String) -> PluginSpec {
        PluginSpec {
            name: path
                .file_stem()
                .map_or("plugin".into(), |s| s.to_string_lossy().into_owned()),
            path: path.to_owned(),
            published: None,
            config_json,
            limits: PluginLimits::default(),
            read_only_dirs: Vec::new(),
        }
    }
}

/// A compiled component, ready to instantiate any number of times.
#[derive(Clone)]
pub struct LoadedComponent {
    /// The compiled component, linked against the host's imports and checked against
    /// the weir:transform world once: a new instance (after a trap, or a
    /// swap) only allocates its store.
    pub pre: TransformPre<HostState>,
    /// SHA-256 of the `.wasm` bytes.
    pub hash: String,
    /// Whether it came from the cache.
    pub origin: Origin,
    /// How long reading and compiling (or loading) took.
    pub load_time: Duration,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("hash", &self.hash)
            .field("origin", &self.origin)
            .field("load_time", &self.load_time)
            .finish_non_exhaustive()
    }
}

/// The shared engine. Cheap to clone; the epoch ticker stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    cache: ComponentCache,
    _ticker: Arc<EpochTicker>,
}

impl PluginEngine {
    /// Creates the engine; `cache_dir` `None` disables the compiled cache.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true).wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| Error::Engine(format!("linking WASI: {e:#}")))?;
        Transform::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| Error::Engine(format!("linking host imports: {e:#}")))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(PluginEngine {
            engine,
            linker: Arc::new(linker),
            cache: ComponentCache::new(cache_dir),
            _ticker: Arc::new(ticker),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads and compiles (or loads from the cache) the component at `path`.
    pub fn load(&self, path: &Path) -> Result<LoadedComponent> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// Reads the component of `spec` (its file, or the live version of its
    /// published location) and compiles it or loads it from the cache.
    pub fn load_spec(&self, spec: &PluginSpec) -> Result<LoadedComponent> {
        let bytes = read(spec)?;
        self.load_bytes(&spec.path, &bytes)
    }

    /// Compiles (or loads from the cache) a component already read from
    /// `path`.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<LoadedComponent> {
        let started = Instant::now();
        let hash = ComponentCache::content_hash(bytes);
        let (component, origin) = self.cache.load(&self.engine, path, bytes, &hash)?;
        let link = |e: wasmtime::Error| Error::Link {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        };
        let pre = TransformPre::new(self.linker.instantiate_pre(&component).map_err(link)?)
            .map_err(link)?;
        let load_time = started.elapsed();
        tracing::debug!(path = %path.display(), %hash, ?origin, ?load_time, "Loaded component.");
        Ok(LoadedComponent {
            pre,
            hash,
            origin,
            load_time,
        })
    }

    /// Instantiates a loaded component and runs `describe` and `init`.
    pub fn instantiate(&self, spec: &PluginSpec, loaded: &LoadedComponent) -> Result<Plugin> {
        Plugin::new(&self.engine, spec, loaded, self._ticker.clone())
    }

    /// `load_spec` then `instantiate`.
    pub fn start(&self, spec: &PluginSpec) -> Result<Plugin> {
        let loaded = self.load_spec(spec)?;
        self.instantiate(spec, &loaded)
    }
}

/// The bytes of `spec`'s component: its file, or the fleet's current
/// version at its published location (the live one unless the fleet
/// rejected it).
pub fn read(spec: &PluginSpec) -> Result<Vec<u8>> {
    match &spec.published {
        None => std::fs::read(&spec.path).map_err(|source| Error::Read {
            path: spec.path.clone(),
            source,
        }),
        Some(published) => {
            let current =
                super::published::block_on(published.current()).map_err(|e| Error::Fetch {
                    path: spec.path.clone(),
                    reason: e.to_string(),
                })?;
            if let Some(rejected) = &current.live_rejected {
                tracing::warn!(plugin = %spec.name, location = %published.url(), rejected = %super::cache::ComponentCache::short(&rejected.digest), outcome = %rejected.outcome, by = %rejected.by, running = %super::cache::ComponentCache::short(&current.digest), "The fleet rejected the live version ({}); running the newest version it did not reject.", rejected.reason);
            }
            Ok(current.bytes)
        }
    }
}

/// Advances the engine epoch every [`EPOCH_TICK`] on its own thread. Every
/// instance holds a reference: without the ticker, deadlines never arrive.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
