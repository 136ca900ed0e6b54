//! Who holds a pipeline or a partition: a process names itself `host:pid`
//! wherever it claims one (`weir_owners`, a Parquet chain's manifests and
//! lease), so that logs, `/readyz` and a refused second process can say
//! which process holds it.

use std::time::Duration;

/// The name of this process: its host name and pid.
pub fn this_process() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The last claim of a single-process pipeline, as its sink stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    /// The process that claimed it, `host:pid`.
    pub owner: String,
    /// How long ago it last renewed the claim (committed, or wrote its
    /// lease).
    pub renewed: Duration,
}

impl Holder {
    /// Whether it still holds the pipeline against `me`: it is another
    /// process, it renewed within `lease`, and it is not a process of this
    /// host that has exited (a restart after a crash need not wait).
    pub fn holds_against(&self, me: &str, lease: Duration) -> bool {
        self.owner != me && self.renewed < lease && !exited_here(&self.owner)
    }
}

/// Whether `owner` names a process of this host that no longer runs.
fn exited_here(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<libc::pid_t>() else {
        return false;
    };
    if host != host_name() || pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_holds_only_while_it_renews_and_runs() {
        let me = this_process();
        let lease = Duration::from_secs(10);
        let fresh = |owner: String| Holder {
            owner,
            renewed: Duration::from_secs(1),
        };
        // Another host: only the lease decides.
        assert!(fresh("elsewhere:1".into()).holds_against(&me, lease));
        let stale = Holder {
            renewed: Duration::from_secs(11),
            ..fresh("elsewhere:1".into())
        };
        assert!(!stale.holds_against(&me, lease));
        // This process's own claim, e.g. from before a restart in a container.
        assert!(!fresh(me.clone()).holds_against(&me, lease));
        // A process of this host that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        assert!(!fresh(format!("{}:{gone}", host_name())).holds_against(&me, lease));
        // A process of this host that runs (pid 1 always does).
        assert!(fresh(format!("{}:1", host_name())).holds_against(&me, lease));
    }
}
