//! Staged files (`tmp/` of a local repository) left behind by writers that
//! died: a killed backup's half-written packs. `check` reports them and
//! `prune` removes them, but never a file whose writer may still be alive.

use std::time::{Duration, SystemTime};

use bunker_backend::{StagedInfo, StagingOwner};
use bunker_format::lock::Lock;

use crate::lock::{process_alive, STALE_AFTER};

/// True if no live process can still be writing `file`. `locks` are the
/// live locks of the repository. A writer on this host is judged by its
/// process id; a writer on another host by its lock, or by the file having
/// been left untouched for [`STALE_AFTER`] (a process writes a staged file
/// before its lock exists only for a moment).
pub fn is_abandoned(file: &StagedInfo, locks: &[Lock]) -> bool {
    let untouched = file
        .modified
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age > STALE_AFTER);
    let Some(owner) = &file.owner else {
        // Named by an older bunker: judged by age alone.
        return untouched;
    };
    let here = StagingOwner::this_process().host;
    if owner.host == here {
        return !process_alive(owner.pid);
    }
    let locked = locks
        .iter()
        .any(|l| StagingOwner::host_tag(&l.hostname) == owner.host && l.pid == owner.pid);
    !locked && untouched
}

/// How long ago a staged file was last written, for messages.
pub fn age(file: &StagedInfo) -> Option<Duration> {
    file.modified
        .and_then(|m| SystemTime::now().duration_since(m).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(owner: Option<StagingOwner>, age: Duration) -> StagedInfo {
        StagedInfo {
            name: "x".into(),
            size: 1,
            owner,
            modified: Some(SystemTime::now() - age),
        }
    }

    #[test]
    fn a_file_is_abandoned_only_when_its_writer_cannot_be_alive() {
        let me = StagingOwner::this_process();
        assert!(!is_abandoned(
            &staged(Some(me.clone()), Duration::ZERO),
            &[]
        ));
        let dead = StagingOwner {
            pid: u32::MAX - 1,
            ..me.clone()
        };
        assert!(is_abandoned(&staged(Some(dead), Duration::ZERO), &[]));
        let remote = StagingOwner {
            host: "elsewhere".into(),
            pid: 7,
        };
        let old = STALE_AFTER + Duration::from_secs(60);
        assert!(!is_abandoned(
            &staged(Some(remote.clone()), Duration::ZERO),
            &[]
        ));
        assert!(is_abandoned(&staged(Some(remote.clone()), old), &[]));
        let lock = Lock {
            kind: bunker_format::lock::LockKind::Session,
            hostname: "else-where".into(),
            pid: 7,
            created_ns: 0,
            refreshed_ns: 0,
            command: "backup".into(),
        };
        assert!(!is_abandoned(&staged(Some(remote), old), &[lock]));
        assert!(is_abandoned(&staged(None, old), &[]));
        assert!(!is_abandoned(&staged(None, Duration::ZERO), &[]));
    }
}
