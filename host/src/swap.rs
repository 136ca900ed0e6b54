//! Hot swap: a changed plugin file becomes the live version without stopping
//! the pipeline.
//!
//! The [`Watcher`] (its own thread) notices a change to a plugin's `.wasm`
//! (written in place, renamed over, rebuilt by cargo, a symlink switched) or,
//! with `--watch-config`, to a plugin's section of the configuration. After
//! the burst of file events has been quiet for [`DEBOUNCE`] it reads the
//! file, hashes it, compiles it (or takes it from the compiled cache),
//! instantiates it and runs `describe` and `init` — all off the hot path —
//! and hands the pipeline an [`Offer`]. The pipeline switches at its next
//! batch boundary (see `chain.rs`): snapshot the old instance, restore into
//! the new one, go on. What happened to every attempt is an [`Outcome`],
//! counted per plugin on a [`SwapBoard`].
//!
//! A published plugin (its `path` an object-store URL, see
//! `plugin::published`) has no file to watch: the same thread asks its
//! location every `poll-interval` whether the live object changed (its
//! ETag, time and size) and, when it did, reads it and goes on as for a
//! changed file. An unreachable location changes nothing: the live version
//! keeps running and the failure is logged once until it recovers.

use crate::config::{Config, PluginConfig};
use crate::plugin::{self, LoadedComponent, Plugin, PluginEngine, PluginSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long file events must be quiet before a changed plugin is read:
/// long enough for a copy or a linker to finish writing, short enough to
/// feel immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// How a new version goes live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwapMode {
    /// At the next batch boundary.
    #[default]
    Immediate,
    /// After shadowing the live version for `canary-batches` batches with a
    /// failure rate no worse than `canary-margin` above the live one's.
    Canary,
}

/// What happens to the live state when a new version goes live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatePolicy {
    /// The new version restores the old one's snapshot; a new version whose
    /// state version differs is refused.
    #[default]
    Keep,
    /// The new version starts empty (open windows of the old one are lost).
    Reset,
}

/// How output records name the plugin versions that made them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionTag {
    /// A `weir.plugins` header.
    #[default]
    Header,
    /// A field of the JSON object in the record value.
    Field,
    /// Nothing.
    None,
}

/// Header that names the plugin versions an output record went through.
pub const VERSION_HEADER: &str = "weir.plugins";

/// A plugin's swap settings, from `[plugins.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwapPolicy {
    /// Immediate or canary.
    pub mode: SwapMode,
    /// Keep or reset the state.
    pub state: StatePolicy,
    /// Batches after a switch on which a trap rolls back.
    pub probation_batches: u32,
    /// Batches a canary shadows the live version.
    pub canary_batches: u32,
    /// Allowed excess failure rate of a canary.
    pub canary_margin: f64,
}

impl SwapPolicy {
    /// The policy of one configured plugin.
    pub fn of(config: &PluginConfig) -> Self {
        SwapPolicy {
            mode: config.swap,
            state: config.state,
            probation_batches: config.probation_batches,
            canary_batches: config.canary_batches,
            canary_margin: config.canary_margin,
        }
    }
}

/// How a swap attempt ended: the `result` label of
/// `weir_plugin_swaps_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The new version went live.
    Swapped,
    /// A canary passed and went live.
    Promoted,
    /// The file is not a valid component (random bytes, truncated).
    CompileError,
    /// The component does not implement the weir:transform world.
    WrongWorld,
    /// `describe` or `init` trapped or refused the configuration.
    InitFailed,
    /// The new version reports another state version and `state = "keep"`.
    StateVersion,
    /// `restore` of the live state trapped or refused it.
    RestoreFailed,
    /// The new version trapped on a batch during its probation; the
    /// previous version came back and reprocessed the batch.
    RolledBack,
    /// A canary failed more records than allowed, or trapped.
    CanaryRejected,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 9] = [
        Outcome::Swapped,
        Outcome::Promoted,
        Outcome::CompileError,
        Outcome::WrongWorld,
        Outcome::InitFailed,
        Outcome::StateVersion,
        Outcome::RestoreFailed,
        Outcome::RolledBack,
        Outcome::CanaryRejected,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Swapped => "swapped",
            Outcome::Promoted => "promoted",
            Outcome::CompileError => "compile_error",
            Outcome::WrongWorld => "wrong_world",
            Outcome::InitFailed => "init_failed",
            Outcome::StateVersion => "state_version",
            Outcome::RestoreFailed => "restore_failed",
            Outcome::RolledBack => "rolled_back",
            Outcome::CanaryRejected => "canary_rejected",
        }
    }

    /// Whether the new version went live.
    pub fn is_live(self) -> bool {
        matches!(self, Outcome::Swapped | Outcome::Promoted)
    }

    /// The outcome of a version that could not be prepared.
    fn of_prepare_error(error: &plugin::Error) -> Outcome {
        match error {
            plugin::Error::Read { .. } | plugin::Error::Compile { .. } => Outcome::CompileError,
            plugin::Error::Link { .. } => Outcome::WrongWorld,
            _ => Outcome::InitFailed,
        }
    }
}

/// A new version, compiled, instantiated and initialised off the hot path.
pub struct Candidate {
    /// Index of the stage it replaces in its pipeline's chain.
    pub stage: usize,
    /// Its spec (the configuration it was initialised with).
    pub spec: PluginSpec,
    /// Its swap settings (from the same configuration).
    pub policy: SwapPolicy,
    /// The compiled component (kept to make fresh instances later).
    pub loaded: LoadedComponent,
    /// The initialised instance.
    pub plugin: Plugin,
    /// When the change was first noticed.
    pub noticed: Instant,
}

/// What the watcher hands a pipeline.
pub enum Offer {
    /// A version ready to switch to.
    Ready(Box<Candidate>),
    /// A version that could not be prepared.
    Refused {
        /// Index of the stage.
        stage: usize,
        /// Plugin name in the configuration.
        plugin: String,
        /// SHA-256 of the refused file, if it could be read.
        hash: String,
        /// Why, as a metric label.
        outcome: Outcome,
        /// Why, for people.
        reason: String,
    },
}

impl Offer {
    /// A copy of a refusal, to tell every partition of a group-mode
    /// pipeline; `None` for a prepared version (it holds an instance, and
    /// each partition needs its own).
    pub fn refusal_copy(&self) -> Option<Offer> {
        match self {
            Offer::Ready(_) => None,
            Offer::Refused {
                stage,
                plugin,
                hash,
                outcome,
                reason,
            } => Some(Offer::Refused {
                stage: *stage,
                plugin: plugin.clone(),
                hash: hash.clone(),
                outcome: *outcome,
                reason: reason.clone(),
            }),
        }
    }
}

/// Live versions and swap history of one pipeline's plugins, for
/// `/metrics`, `/readyz` and `weir status`.
#[derive(Debug, Default)]
pub struct SwapBoard {
    /// The live version of each plugin (`name@version+hash`), by config name.
    pub live: BTreeMap<String, String>,
    /// Swap attempts by plugin and outcome.
    pub counts: BTreeMap<(String, Outcome), u64>,
    /// The last swap attempt of each plugin, in words.
    pub last: BTreeMap<String, String>,
    /// Plugins whose published location cannot be read now, and why.
    pub location: BTreeMap<String, String>,
    /// Published plugins whose live version has not been the fleet's for
    /// longer than a poll interval, and what each runs: not ready.
    pub fleet: BTreeMap<String, String>,
    /// Versions this process rejected, not yet recorded as the fleet's
    /// decision (the watcher records those of published plugins).
    pub rejected: Vec<Rejection>,
}

/// A version this process refused, rolled back or rejected as a canary.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Plugin name in the configuration.
    pub plugin: String,
    /// SHA-256 of the version.
    pub digest: String,
    /// What happened.
    pub outcome: Outcome,
    /// Why.
    pub reason: String,
}

impl SwapBoard {
    /// Counts a rejection of the version `digest` and queues it to be
    /// recorded as the fleet's decision.
    pub fn reject(&mut self, plugin: &str, digest: &str, outcome: Outcome, detail: String) {
        if !self
            .rejected
            .iter()
            .any(|r| r.plugin == plugin && r.digest == digest)
        {
            self.rejected.push(Rejection {
                plugin: plugin.to_owned(),
                digest: digest.to_owned(),
                outcome,
                reason: detail.clone(),
            });
        }
        self.record(plugin, outcome, detail);
    }

    /// Counts an attempt and remembers it as the plugin's last.
    pub fn record(&mut self, plugin: &str, outcome: Outcome, detail: String) {
        *self.counts.entry((plugin.to_owned(), outcome)).or_default() += 1;
        self.last
            .insert(plugin.to_owned(), format!("{}: {detail}", outcome.label()));
    }
}

/// `name@version+hash12`: how logs, headers and `/readyz` name a version.
pub fn version_label(plugin: &Plugin) -> String {
    format!(
        "{}@{}+{}",
        plugin.info().name,
        plugin.info().version,
        plugin::cache::ComponentCache::short(plugin.hash())
    )
}

/// One stage of one pipeline the watcher keeps current.
pub struct Target {
    /// Pipeline name (for logs).
    pub pipeline: String,
    /// Index of the stage in the pipeline's chain.
    pub stage: usize,
    /// The spec the live version was made from.
    pub spec: PluginSpec,
    /// Its swap settings.
    pub policy: SwapPolicy,
    /// SHA-256 of the last file seen (live, or refused).
    pub hash: String,
    /// How often a published location is asked for a new version.
    pub poll_interval: Duration,
    /// The pipeline's statistics: where a location that cannot be read is
    /// reported (`/readyz`).
    pub stats: Arc<crate::stats::Stats>,
    /// Where offers go.
    pub offers: tokio::sync::mpsc::UnboundedSender<Offer>,
}

impl Target {
    /// Reports on `/readyz` (not ready) a process that has not run the
    /// fleet's current version for longer than a poll interval: a version
    /// this process cannot start, or a swap that does not happen.
    fn check_agreement(&self, poll: &mut Poll, now: Instant) {
        let Some(current) = &poll.current else {
            return;
        };
        if self.is_live(current) {
            poll.disagreeing = None;
            self.report_disagreement(None);
            return;
        }
        let since = *poll.disagreeing.get_or_insert(now);
        if now.duration_since(since) > self.poll_interval {
            let live = {
                let board = self.stats.swaps.lock().expect("swap board lock");
                board.live.get(&self.spec.name).cloned().unwrap_or_default()
            };
            self.report_disagreement(Some(format!(
                "runs {live}, the fleet runs {} (for {} s)",
                plugin::cache::ComponentCache::short(current),
                now.duration_since(since).as_secs()
            )));
        }
    }

    fn report_disagreement(&self, problem: Option<String>) {
        self.report(|board| &mut board.fleet, problem);
    }

    /// Sets (or clears) this plugin's line in one of the board's problem
    /// maps, which `/readyz` shows.
    fn report(
        &self,
        map: fn(&mut SwapBoard) -> &mut BTreeMap<String, String>,
        problem: Option<String>,
    ) {
        let mut board = self.stats.swaps.lock().expect("swap board lock");
        let map = map(&mut board);
        match problem {
            Some(problem) => map.insert(self.spec.name.clone(), problem),
            None => map.remove(&self.spec.name),
        };
    }

    /// Whether the version `hash` is live (on every partition's chain: they
    /// share the board).
    fn is_live(&self, hash: &str) -> bool {
        let board = self.stats.swaps.lock().expect("swap board lock");
        board.live.get(&self.spec.name).is_some_and(|label| {
            label.ends_with(&format!("+{}", plugin::cache::ComponentCache::short(hash)))
        })
    }

    /// Shows (or clears) a problem with the published location on
    /// `/readyz`: the live version keeps running meanwhile.
    fn report_location(&self, problem: Option<String>) {
        let problem =
            problem.map(|p| format!("cannot be read, the live version keeps running: {p}"));
        self.report(|board| &mut board.location, problem);
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot watch {path} for plugin changes: {reason} (set watch = false on the plugin to run without hot swap)"
)]
pub struct WatchError {
    /// The folder.
    pub path: PathBuf,
    /// The watcher's message.
    pub reason: String,
}

/// The watching thread; it stops when this is dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts watching `targets`' files (and `config`'s file, if given: a
/// changed `[plugins.<name>]` section is then a swap too).
pub fn watch(
    engine: PluginEngine,
    targets: Vec<Target>,
    config: Option<PathBuf>,
) -> Result<Watcher, WatchError> {
    let (events, received) = channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(event);
    })
    .map_err(|e| WatchError {
        path: PathBuf::from("."),
        reason: e.to_string(),
    })?;
    let polls = targets
        .iter()
        .map(|t| Poll {
            due: Instant::now() + t.poll_interval,
            stamp: None,
            failing: false,
            changed: false,
            current: None,
            disagreeing: None,
        })
        .collect();
    let mut state = WatchState {
        engine,
        targets,
        polls,
        config: config.map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (path, text)
        }),
        watched: Vec::new(),
        files: Vec::new(),
    };
    for dir in state.refresh() {
        state.add(&mut watcher, dir)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("weir-watch".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                // Wait for an event about a watched file, then for the
                // burst to end.
                let event = received.recv_timeout(state.wait());
                state.record_decisions();
                match event {
                    Ok(event) if state.concerns(&event) => {}
                    Ok(_) => continue,
                    Err(RecvTimeoutError::Timeout) => {
                        if state.poll() {
                            state.scan(Instant::now());
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                // The burst ends when quiet for DEBOUNCE, or after a
                // second of a folder that never quiets down.
                let noticed = Instant::now();
                while noticed.elapsed() < Duration::from_secs(1)
                    && received.recv_timeout(DEBOUNCE).is_ok()
                {}
                state.scan(noticed);
                for dir in state.refresh() {
                    if let Err(e) = state.add(&mut watcher, dir) {
                        tracing::warn!(error = %e, "A plugin's new folder cannot be watched.");
                    }
                }
            }
        })
        .map_err(|e| WatchError {
            path: PathBuf::from("."),
            reason: e.to_string(),
        })?;
    Ok(Watcher { stop })
}

struct WatchState {
    engine: PluginEngine,
    targets: Vec<Target>,
    /// Per target: when its published location is next asked.
    polls: Vec<Poll>,
    /// The watched configuration file and its last text.
    config: Option<(PathBuf, String)>,
    watched: Vec<PathBuf>,
    /// The files whose events start a scan (see `refresh`).
    files: Vec<PathBuf>,
}

/// The polling of one target's published location.
struct Poll {
    due: Instant,
    /// How the live object looked when last asked.
    stamp: Option<plugin::published::Stamp>,
    /// Whether the last ask failed (logged once per outage).
    failing: bool,
    /// Whether the live object changed since it was last read.
    changed: bool,
    /// The digest of the fleet's current version, as last read.
    current: Option<String>,
    /// Since when this process has not run it.
    disagreeing: Option<Instant>,
}

impl WatchState {
    /// How long to wait for file events before a published location is due
    /// (at most half a second, so that a stop is noticed).
    fn wait(&self) -> Duration {
        let now = Instant::now();
        self.targets
            .iter()
            .zip(&self.polls)
            .filter(|(t, _)| t.spec.published.is_some())
            .map(|(_, p)| p.due.saturating_duration_since(now))
            .fold(Duration::from_millis(500), Duration::min)
    }

    /// Records the versions this process rejected, of published plugins,
    /// as the fleet's decisions (the first decision on a version stands).
    /// A rejection that cannot be recorded now is tried again next time.
    fn record_decisions(&mut self) {
        for target in &self.targets {
            let Some(published) = &target.spec.published else {
                continue;
            };
            let rejected: Vec<Rejection> = {
                let mut board = target.stats.swaps.lock().expect("swap board lock");
                let (mine, rest) = std::mem::take(&mut board.rejected)
                    .into_iter()
                    .partition(|r| r.plugin == target.spec.name);
                board.rejected = rest;
                mine
            };
            for (i, r) in rejected.iter().enumerate() {
                let decision =
                    plugin::published::Decision::rejected(&r.digest, r.outcome.label(), &r.reason);
                match plugin::published::block_on(published.reject(&decision)) {
                    Ok(None) => {
                        tracing::warn!(pipeline = %target.pipeline, plugin = %r.plugin, digest = %plugin::cache::ComponentCache::short(&r.digest), outcome = r.outcome.label(), "Recorded the rejection as the fleet's decision: every process goes back to the version before it.");
                    }
                    Ok(Some(earlier)) => {
                        tracing::info!(pipeline = %target.pipeline, plugin = %r.plugin, digest = %plugin::cache::ComponentCache::short(&r.digest), by = %earlier.by, "The fleet had rejected this version already.");
                    }
                    Err(e) => {
                        tracing::warn!(pipeline = %target.pipeline, plugin = %r.plugin, error = %e, "Cannot record the rejection for the fleet yet; trying again.");
                        let mut board = target.stats.swaps.lock().expect("swap board lock");
                        board.rejected.extend(rejected[i..].iter().cloned());
                        break;
                    }
                }
            }
        }
    }

    /// Asks the published locations that are due whether their live object
    /// changed; returns whether one did.
    fn poll(&mut self) -> bool {
        let now = Instant::now();
        let mut changed = false;
        for (target, poll) in self.targets.iter().zip(&mut self.polls) {
            let Some(published) = &target.spec.published else {
                continue;
            };
            if poll.due > now {
                continue;
            }
            poll.due = now + target.poll_interval;
            target.check_agreement(poll, now);
            match plugin::published::block_on(published.stamp()) {
                Ok(stamp) => {
                    if poll.failing {
                        tracing::info!(pipeline = %target.pipeline, plugin = %target.spec.name, location = %published.url(), "The plugin location is reachable again.");
                        poll.failing = false;
                        target.report_location(None);
                    }
                    if stamp.is_some() && stamp != poll.stamp {
                        poll.stamp = stamp;
                        poll.changed = true;
                        changed = true;
                    }
                }
                Err(e) => {
                    if !poll.failing {
                        tracing::warn!(pipeline = %target.pipeline, plugin = %target.spec.name, error = %e, "Cannot ask the plugin location for a new version; the live version keeps running.");
                        poll.failing = true;
                        target.report_location(Some(e.to_string()));
                    }
                }
            }
        }
        changed
    }

    /// Recomputes the files whose events matter — each plugin path with
    /// its folder resolved, the file a plugin symlink points at, the
    /// configuration — and returns their folders, which are what is
    /// watched: a file renamed over or re-created is a new inode a file
    /// watch would miss. Done at start and after each scan (a swap may
    /// have moved a symlink), not per event.
    fn refresh(&mut self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for target in self.targets.iter().filter(|t| t.spec.published.is_none()) {
            let path = &target.spec.path;
            files.extend(in_real_folder(path));
            files.extend(std::fs::canonicalize(path).ok());
        }
        if let Some((path, _)) = &self.config {
            files.extend(in_real_folder(path));
        }
        files.sort();
        files.dedup();
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_owned))
            .collect();
        dirs.sort();
        dirs.dedup();
        self.files = files;
        dirs
    }

    /// Whether a file event touches one of the files `refresh` found
    /// (folders also hold logs, outputs and build files, whose events must
    /// not keep a scan waiting).
    fn concerns(&self, event: &notify::Result<notify::Event>) -> bool {
        let Ok(event) = event else {
            // The watcher lost events (queue overflow): look at everything.
            return true;
        };
        // Reads (ours included: every scan opens the files) change nothing.
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return false;
        }
        event.paths.iter().any(|p| self.files.contains(p))
    }

    fn add(
        &mut self,
        watcher: &mut notify::RecommendedWatcher,
        dir: PathBuf,
    ) -> Result<(), WatchError> {
        use notify::Watcher as _;
        if self.watched.contains(&dir) {
            return Ok(());
        }
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| WatchError {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
        tracing::debug!(dir = %dir.display(), "Watching for plugin changes.");
        self.watched.push(dir);
        Ok(())
    }

    /// Re-reads the configuration (if watched) and every plugin file;
    /// prepares and offers what changed.
    fn scan(&mut self, noticed: Instant) {
        let config = self.changed_config();
        for (target, poll) in self.targets.iter_mut().zip(&mut self.polls) {
            let mut forced = false;
            if let Some(config) = &config {
                let name = &target.spec.name;
                match config.plugins.get(name) {
                    Some(pc) => {
                        let spec = crate::pipeline::plugin_spec(config, name);
                        if spec_differs(&spec, &target.spec) {
                            tracing::info!(pipeline = %target.pipeline, plugin = %name, "Its configuration changed; preparing a new instance.");
                            target.spec = spec;
                            forced = true;
                        }
                        target.policy = SwapPolicy::of(pc);
                    }
                    None => {
                        tracing::warn!(pipeline = %target.pipeline, plugin = %name, "The plugin is gone from the configuration; removing a running plugin needs a restart, it keeps running.");
                    }
                }
            }
            // A published location is read only when its poll saw a change.
            if target.spec.published.is_some() && !std::mem::take(&mut poll.changed) && !forced {
                continue;
            }
            let bytes = match plugin::engine::read(&target.spec) {
                Ok(bytes) => bytes,
                // Mid-rename or mid-rebuild: the next event brings it back.
                Err(e @ plugin::Error::Read { .. }) => {
                    tracing::debug!(path = %target.spec.path.display(), error = %e, "Plugin file not readable right now.");
                    continue;
                }
                // The next poll tries again.
                Err(e) => {
                    poll.stamp = None;
                    tracing::warn!(pipeline = %target.pipeline, plugin = %target.spec.name, error = %e, "Cannot read the new version; the live version keeps running.");
                    continue;
                }
            };
            let hash = plugin::cache::ComponentCache::content_hash(&bytes);
            if target.spec.published.is_some() {
                poll.current = Some(hash.clone());
            }
            if hash == target.hash && !forced {
                continue;
            }
            // After a rollback the version before is live again: the
            // fleet's decision makes it current, and there is nothing to do.
            if target.spec.published.is_some() && !forced && target.is_live(&hash) {
                target.hash = hash;
                continue;
            }
            target.hash = hash.clone();
            tracing::info!(pipeline = %target.pipeline, plugin = %target.spec.name, hash = %&hash[..12], "Plugin changed; preparing the new version beside the running one.");
            let offer = match prepare(&self.engine, &target.spec, &bytes) {
                Ok((loaded, plugin)) => Offer::Ready(Box::new(Candidate {
                    stage: target.stage,
                    spec: target.spec.clone(),
                    policy: target.policy,
                    loaded,
                    plugin,
                    noticed,
                })),
                Err(error) => Offer::Refused {
                    stage: target.stage,
                    plugin: target.spec.name.clone(),
                    hash,
                    outcome: Outcome::of_prepare_error(&error),
                    reason: error.to_string(),
                },
            };
            // A closed channel: the pipeline has finished.
            let _ = target.offers.send(offer);
        }
    }

    /// The configuration, if it is watched and its text changed and it is
    /// valid; an invalid change is logged and ignored.
    fn changed_config(&mut self) -> Option<Config> {
        let (path, last) = self.config.as_mut()?;
        let text = std::fs::read_to_string(&*path).ok()?;
        if text == *last {
            return None;
        }
        *last = text;
        match Config::load(path) {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!(error = %e, "The changed configuration is invalid; it is ignored and the running plugins stay.");
                None
            }
        }
    }
}

fn folder_of(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    std::fs::canonicalize(parent).ok()
}

/// `path` with its folder resolved (symlinks, `..`) but not the file itself:
/// how file events name it.
fn in_real_folder(path: &Path) -> Option<PathBuf> {
    Some(folder_of(path)?.join(path.file_name()?))
}

fn spec_differs(a: &PluginSpec, b: &PluginSpec) -> bool {
    a.path != b.path || a.config_json != b.config_json || a.limits != b.limits
}

/// Compiles `bytes` (or takes them from the cache), instantiates and
/// initialises: everything a new version needs before it can go live.
pub fn prepare(
    engine: &PluginEngine,
    spec: &PluginSpec,
    bytes: &[u8],
) -> plugin::Result<(LoadedComponent, Plugin)> {
    let loaded = engine.load_bytes(&spec.path, bytes)?;
    let plugin = engine.instantiate(spec, &loaded)?;
    Ok((loaded, plugin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_counts_each_outcome_and_keeps_the_last_in_words() {
        let mut board = SwapBoard::default();
        board.record("taxi", Outcome::Swapped, "v2 live".into());
        board.record("taxi", Outcome::CompileError, "garbage".into());
        board.record("taxi", Outcome::Swapped, "v1 live".into());
        assert_eq!(board.counts[&("taxi".into(), Outcome::Swapped)], 2);
        assert_eq!(board.counts[&("taxi".into(), Outcome::CompileError)], 1);
        assert_eq!(board.last["taxi"], "swapped: v1 live");
    }

    #[test]
    fn a_new_object_at_a_published_location_is_noticed_by_polling_and_offered() {
        use crate::plugin::published::{Action, Published, VersionInfo};
        let url = "memory://swap-poll-test/plugins/x.wasm";
        let published = Published::open(url, &Default::default()).unwrap();
        let info = |d: &[u8]| VersionInfo {
            digest: plugin::cache::ComponentCache::content_hash(d),
            name: "x".into(),
            version: "1".into(),
            state_version: 1,
        };
        let publish = |bytes: &[u8]| {
            plugin::published::block_on(published.publish(bytes, &info(bytes), Action::Deploy))
                .unwrap();
        };
        publish(b"first");
        let (offers, mut received) = tokio::sync::mpsc::unbounded_channel();
        let target = Target {
            pipeline: "p".into(),
            stage: 0,
            spec: PluginSpec {
                name: "x".into(),
                path: PathBuf::from(url),
                published: Some(published.clone()),
                config_json: "{}".into(),
                limits: Default::default(),
                read_only_dirs: Vec::new(),
            },
            policy: SwapPolicy::of(
                &toml::from_str::<crate::config::PluginConfig>("path = \"x\"").unwrap(),
            ),
            hash: info(b"first").digest,
            poll_interval: Duration::from_millis(20),
            stats: Default::default(),
            offers,
        };
        let _watcher = watch(PluginEngine::new(None).unwrap(), vec![target], None).unwrap();
        // The live bytes are the ones running: nothing is offered.
        std::thread::sleep(Duration::from_millis(300));
        assert!(received.try_recv().is_err());
        // New bytes (not a component): offered, as a refusal, once.
        publish(b"second");
        let deadline = Instant::now() + Duration::from_secs(10);
        let offer = loop {
            if let Ok(offer) = received.try_recv() {
                break offer;
            }
            assert!(Instant::now() < deadline, "no offer after a publication");
            std::thread::sleep(Duration::from_millis(10));
        };
        let Offer::Refused { hash, outcome, .. } = offer else {
            panic!("garbage offered as a ready version");
        };
        assert_eq!(
            (hash, outcome),
            (info(b"second").digest, Outcome::CompileError)
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(received.try_recv().is_err(), "offered twice");
    }

    #[test]
    fn prepare_errors_map_to_their_outcome() {
        let compile = plugin::Error::Compile {
            path: "x.wasm".into(),
            reason: "bad magic".into(),
        };
        let link = plugin::Error::Link {
            path: "x.wasm".into(),
            reason: "no export describe".into(),
        };
        let init = plugin::Error::Init {
            plugin: "x".into(),
            message: "no".into(),
        };
        assert_eq!(Outcome::of_prepare_error(&compile), Outcome::CompileError);
        assert_eq!(Outcome::of_prepare_error(&link), Outcome::WrongWorld);
        assert_eq!(Outcome::of_prepare_error(&init), Outcome::InitFailed);
        assert!(Outcome::Promoted.is_live() && !Outcome::RolledBack.is_live());
    }
}
