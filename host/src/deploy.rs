//! `weir plugin deploy`, `history` and `rollback`: publishing a version to
//! a plugin location every process of a fleet reads (see
//! `plugin::published`).
//!
//! A version is checked before it is published, with what a running
//! process would check at swap time, so that what the fleet would refuse
//! is never published: it must compile, link against the weir:transform
//! world, `describe` and `init` with the pipeline's configuration of the
//! plugin, keep the live version's state version (unless the plugin's
//! `state = "reset"`), and, given a sample, process it without trapping.

use crate::config::Config;
use crate::plugin::cache::ComponentCache;
use crate::plugin::published::{self, Action, Entry, Published, VersionInfo};
use crate::plugin::{self, PluginEngine, PluginSpec, Record};
use crate::swap::StatePolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a version was not published.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location could not be read or written.
    #[error(transparent)]
    Location(#[from] published::Error),
    /// The version would be refused by the fleet; nothing was published.
    #[error("not published: {0}")]
    Refused(String),
    /// The configuration does not name the location.
    #[error("{0}")]
    Config(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The plugin a location serves, as a pipeline configures it.
pub struct Target {
    /// The location.
    pub published: Published,
    /// The spec a process would start the plugin with.
    pub spec: PluginSpec,
    /// Its `state` policy.
    pub state: StatePolicy,
}

impl Target {
    /// The plugin of `config` whose `path` is `url` (or the one named
    /// `plugin`), with its configuration and the location's options; or,
    /// without a configuration, the location alone (options from the
    /// `AWS_*` environment and `options`, an empty plugin configuration).
    pub fn find(
        url: &str,
        config: Option<&Config>,
        plugin: Option<&str>,
        options: &BTreeMap<String, String>,
    ) -> Result<Target> {
        let Some(config) = config else {
            let published = Published::open(url, options)?;
            let mut spec = PluginSpec::of_file(Path::new(url), "{}".into());
            spec.published = Some(published.clone());
            spec.name = plugin.unwrap_or("plugin").to_owned();
            return Ok(Target {
                spec,
                published,
                state: StatePolicy::Keep,
            });
        };
        let names: Vec<&String> = match plugin {
            Some(name) => config.plugins.keys().filter(|n| *n == name).collect(),
            None => config
                .plugins
                .iter()
                .filter(|(_, p)| p.url() == Some(url))
                .map(|(n, _)| n)
                .collect(),
        };
        let [name] = names[..] else {
            return Err(Error::Config(match plugin {
                Some(name) => format!("the configuration defines no plugin {name:?}"),
                None if names.is_empty() => format!(
                    "no [plugins.*] of the configuration has path = {url:?}; name the plugin with --plugin"
                ),
                None => format!(
                    "several plugins have path = {url:?} ({}); name one with --plugin",
                    names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }));
        };
        let pc = &config.plugins[name];
        let mut spec = crate::pipeline::plugin_spec(config, name);
        let mut all = pc.options.clone();
        all.extend(options.clone());
        let published = Published::open(url, &all)?;
        spec.path = PathBuf::from(url);
        spec.published = Some(published.clone());
        Ok(Target {
            published,
            spec,
            state: pc.state,
        })
    }
}

/// What a sample run through a version gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRun {
    /// Records in.
    pub records: usize,
    /// Records out.
    pub outputs: usize,
    /// Records the version failed (dead letters in a pipeline).
    pub failed: usize,
}

/// What a deploy published.
#[derive(Debug)]
pub struct Deployed {
    /// Its history entry.
    pub entry: Entry,
    /// The sample's run (`None` without one).
    pub sample: Option<SampleRun>,
}

/// Checks `bytes` as a running process would before swapping to them and
/// returns what `describe` says of them, and the sample's counts.
pub fn check(
    engine: &PluginEngine,
    target: &Target,
    bytes: &[u8],
    live: Option<&Entry>,
    sample: Option<&[Vec<u8>]>,
) -> Result<(VersionInfo, Option<SampleRun>)> {
    let refuse = |e: plugin::Error| Error::Refused(e.to_string());
    let loaded = engine
        .load_bytes(&target.spec.path, bytes)
        .map_err(refuse)?;
    let mut instance = engine.instantiate(&target.spec, &loaded).map_err(refuse)?;
    let info = VersionInfo {
        digest: ComponentCache::content_hash(bytes),
        name: instance.info().name.clone(),
        version: instance.info().version.clone(),
        state_version: instance.info().state_version,
    };
    if let Some(live) = live
        && target.state == StatePolicy::Keep
        && live.state_version != info.state_version
    {
        return Err(Error::Refused(format!(
            "its state version is {}, the live version's ({}@{}) is {}: every process would refuse it with state = \"keep\" (set state = \"reset\" on the plugin to start it empty)",
            info.state_version, live.name, live.version, live.state_version
        )));
    }
    let counts = match sample {
        None => None,
        Some(lines) => {
            let now = crate::pipeline::now_ms();
            let (mut outputs, mut failed) = (0, 0);
            for chunk in lines.chunks(1024) {
                let batch = batch_of(chunk, now);
                let result = instance
                    .process(&batch, now)
                    .map_err(|e| Error::Refused(format!("it trapped on the sample: {e}")))?;
                outputs += result.outputs.len();
                failed += result.failures.len();
            }
            Some(SampleRun {
                records: lines.len(),
                outputs,
                failed,
            })
        }
    };
    Ok((info, counts))
}

/// The non-empty lines of an NDJSON sample.
pub fn read_sample(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect())
}

/// Sample lines as a batch of records (no key, no headers, timestamp
/// `now_ms`).
pub fn batch_of(lines: &[Vec<u8>], now_ms: i64) -> Vec<Record> {
    lines
        .iter()
        .map(|line| Record {
            key: None,
            value: line.clone(),
            timestamp_ms: now_ms,
            headers: vec![],
        })
        .collect()
}

/// The newest history entry of the live bytes, and the history.
async fn live_entry(published: &Published) -> Result<(Option<Entry>, Vec<Entry>)> {
    let history = published.history().await?;
    let live = published.live_digest().await?;
    let entry = live.and_then(|d| history.iter().rev().find(|e| e.digest == d).cloned());
    Ok((entry, history))
}

/// `weir plugin deploy FILE --to LOCATION`: checks `file` and publishes it.
pub fn deploy(
    engine: &PluginEngine,
    target: &Target,
    file: &Path,
    sample: Option<&Path>,
) -> Result<Deployed> {
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        path: file.to_owned(),
        source,
    })?;
    let (live, _) = published::block_on(live_entry(&target.published))?;
    let digest = ComponentCache::content_hash(&bytes);
    let decisions = published::block_on(target.published.decisions())?;
    if let Some(decided) = decisions.get(&digest) {
        return Err(Error::Refused(format!(
            "the fleet rejected these bytes ({}, by {} at {} UTC: {}); a version is not tried again until different bytes are published",
            decided.outcome,
            decided.by,
            utc(decided.at_ms),
            decided.reason
        )));
    }
    if let Some(live) = &live
        && live.digest == digest
    {
        return Err(Error::Refused(format!(
            "{} is already the live version ({}@{}, published as #{})",
            file.display(),
            live.name,
            live.version,
            live.seq
        )));
    }
    let sample = sample.map(read_sample).transpose()?;
    let (info, counts) = check(engine, target, &bytes, live.as_ref(), sample.as_deref())?;
    let entry = published::block_on(target.published.publish(&bytes, &info, Action::Deploy))?;
    Ok(Deployed {
        entry,
        sample: counts,
    })
}

/// `weir plugin rollback LOCATION`: publishes again the newest earlier
/// version whose bytes differ from the live one's.
pub fn rollback(engine: &PluginEngine, target: &Target) -> Result<Entry> {
    let published = &target.published;
    let (live, history) = published::block_on(live_entry(published))?;
    let Some(live) = live else {
        return Err(Error::Refused(format!(
            "the live version at {} is not in its history (published by hand?); deploy the version to go back to with `weir plugin deploy`",
            published.url()
        )));
    };
    let decisions = published::block_on(published.decisions())?;
    let rejected = |digest: &str| decisions.contains_key(digest);
    let Some(previous) = published::previous_good(&history, &live.digest, &rejected) else {
        return Err(Error::Refused(format!(
            "no version the fleet did not reject was published before the live one ({}@{}, #{})",
            live.name, live.version, live.seq
        )));
    };
    let bytes = published::block_on(published.version(&previous.digest))?;
    // The same checks as a deploy: the bytes are the stored ones, but the
    // configuration or the live state version may have changed since.
    let (info, _) = check(engine, target, &bytes, Some(&live), None)?;
    Ok(published::block_on(published.publish(
        &bytes,
        &info,
        Action::Rollback,
    ))?)
}

/// What `weir plugin history LOCATION` shows.
#[derive(Debug)]
pub struct History {
    /// Every publication, oldest first.
    pub entries: Vec<Entry>,
    /// The digest of the live bytes.
    pub live: Option<String>,
    /// The fleet's decisions, by digest.
    pub decisions: BTreeMap<String, published::Decision>,
}

/// `weir plugin history LOCATION`.
pub fn history(published: &Published) -> Result<History> {
    published::block_on(async {
        Ok(History {
            entries: published.history().await?,
            live: published.live_digest().await?,
            decisions: published.decisions().await?,
        })
    })
}

/// `2026-12-07 09:41:05`: milliseconds since the Unix epoch, in UTC.
pub fn utc(ms: i64) -> String {
    crate::sample::utc_time(ms.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_milliseconds_since_the_epoch() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_796_636_465_000), "2026-12-07 09:41:05");
    }
}
