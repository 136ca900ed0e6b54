//! Compiled components on disk, keyed by the SHA-256 of the `.wasm` bytes and
//! the engine's compatibility hash, so a second start skips Cranelift.
//!
//! Entries are written to a temporary file and renamed into place, so a
//! crash never leaves a half-written entry under a valid name. An entry that
//! fails to load (another wasmtime build, a damaged file) is compiled again.

use super::{Error, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now (cache miss or cache disabled).
    Compiled,
    /// Loaded from the cache.
    Cached,
}

/// The on-disk cache; `None` disables it.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// A cache in `dir`, created on first write; `None` compiles every time.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir }
    }

    /// The default folder: `$XDG_CACHE_HOME/weir/components` or
    /// `$HOME/.cache/weir/components`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("weir").join("components"))
    }

    /// Hex SHA-256 of a component's bytes: its identity in logs and output.
    pub fn content_hash(bytes: &[u8]) -> String {
        let digest = Sha256::digest(bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 12 hex digits of a digest: how logs, labels and
    /// `history` name a version.
    pub fn short(digest: &str) -> &str {
        &digest[..12.min(digest.len())]
    }

    /// Returns the compiled component for `bytes`, from the cache when it can.
    pub fn load(
        &self,
        engine: &Engine,
        path: &Path,
        bytes: &[u8],
        hash: &str,
    ) -> Result<(Component, Origin)> {
        let Some(dir) = &self.dir else {
            return compile(engine, path, bytes).map(|c| (c, Origin::Compiled));
        };
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let entry = dir.join(format!("{hash}-{:016x}.cwasm", engine_hash.finish()));
        if entry.is_file() {
            // SAFETY: entries are written only by `store` below, from
            // `Component::serialize` of this same engine configuration (the
            // engine hash is part of the name), in a folder owned by the user
            // running weir. Wasmtime also checks the header and refuses
            // artifacts of another version or configuration.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => return Ok((component, Origin::Cached)),
                Err(e) => {
                    tracing::warn!(entry = %entry.display(), error = %e, "Ignoring unusable cache entry.")
                }
            }
        }
        let component = compile(engine, path, bytes)?;
        if let Err(e) = store(dir, &entry, &component) {
            tracing::warn!(dir = %dir.display(), error = %e, "Could not write the component cache; the next start compiles again.");
        }
        Ok((component, Origin::Compiled))
    }
}

fn compile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(|e| Error::Compile {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    })
}

fn store(dir: &Path, entry: &Path, component: &Component) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, entry)
}
