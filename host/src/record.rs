//! A record as it flows through a pipeline, the header names weir puts on
//! dead letters, and the host's clock: what sources, the plugin chain and
//! sinks share, so that none of them reaches into the pipeline loop.

pub use crate::plugin::{Header, Record};

/// Header names on dead letters.
pub mod headers {
    /// Why the record failed.
    pub const REASON: &str = "weir.reason";
    /// `name@version` of the plugin that refused it, or `sink`.
    pub const STAGE: &str = "weir.stage";
    /// Where the record came from, e.g. `file /srv/data/x.ndjson:17`.
    pub const SOURCE: &str = "weir.source";
}

/// The host's wall clock in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Tags a record with why it failed, at which stage, and where it came from.
pub(crate) fn tag_dead_letter(
    mut record: Record,
    reason: &str,
    stage: &str,
    origin: &str,
) -> Record {
    for (name, value) in [
        (headers::REASON, reason),
        (headers::STAGE, stage),
        (headers::SOURCE, origin),
    ] {
        record.headers.push(Header {
            name: name.into(),
            value: value.as_bytes().to_vec(),
        });
    }
    record
}
