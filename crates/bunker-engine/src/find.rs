//! Naming snapshots: `latest`, full ids, unique id prefixes, and filters.

use crate::repository::SnapshotEntry;
use crate::{EngineError, Result};

/// Narrows a list of snapshots by host, tag and path (each a set of alternatives).
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    /// Keep snapshots from any of these hosts.
    pub hosts: Vec<String>,
    /// Keep snapshots carrying any of these tags.
    pub tags: Vec<String>,
    /// Keep snapshots that include all of these paths.
    pub paths: Vec<String>,
    /// Keep snapshots of any of these kinds (`files`, `postgres`, `mysql`).
    pub kinds: Vec<String>,
}

impl SnapshotFilter {
    /// True if the snapshot passes.
    pub fn matches(&self, entry: &SnapshotEntry) -> bool {
        let s = &entry.snapshot;
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty() || self.tags.iter().any(|t| s.tags.contains(t)))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == s.kind_name()))
            && self.paths.iter().all(|p| {
                s.paths
                    .iter()
                    .any(|sp| sp == p.trim_end_matches('/') || sp == p)
            })
    }

    /// The matching snapshots, in the order given.
    pub fn apply(&self, entries: Vec<SnapshotEntry>) -> Vec<SnapshotEntry> {
        entries.into_iter().filter(|e| self.matches(e)).collect()
    }
}

/// Finds one snapshot by `latest` (after filtering), a full id, or a unique prefix.
/// `entries` must be sorted oldest first, as [`crate::Repository::snapshots`] returns them.
pub fn find_snapshot(
    entries: &[SnapshotEntry],
    name: &str,
    filter: &SnapshotFilter,
) -> Result<SnapshotEntry> {
    if name == "latest" {
        return entries
            .iter()
            .rev()
            .find(|e| filter.matches(e))
            .cloned()
            .ok_or_else(|| EngineError::SnapshotNotFound("latest".into()));
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EngineError::SnapshotNotFound(name.into()));
    }
    let lower = name.to_ascii_lowercase();
    // A copied snapshot also answers to the id it was first written under
    // (so an id from the source of `copy` names its copy), when no
    // snapshot's own id matches.
    let own = |e: &&SnapshotEntry| e.id.to_hex().starts_with(&lower);
    let original = |e: &&SnapshotEntry| {
        e.snapshot
            .original
            .is_some_and(|o| o.to_hex().starts_with(&lower))
    };
    for matching in [&own as &dyn Fn(&&SnapshotEntry) -> bool, &original] {
        let mut matches = entries.iter().filter(matching);
        match (matches.next(), matches.next()) {
            (Some(e), None) => return Ok(e.clone()),
            (Some(_), Some(_)) => return Err(EngineError::AmbiguousSnapshot(name.into())),
            (None, _) => {}
        }
    }
    Err(EngineError::SnapshotNotFound(name.into()))
}
