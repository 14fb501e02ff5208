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
}

impl SnapshotFilter {
    /// True if the snapshot passes.
    pub fn matches(&self, entry: &SnapshotEntry) -> bool {
        let s = &entry.snapshot;
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty() || self.tags.iter().any(|t| s.tags.contains(t)))
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
    let mut matches = entries.iter().filter(|e| e.id.to_hex().starts_with(&lower));
    match (matches.next(), matches.next()) {
        (Some(e), None) => Ok(e.clone()),
        (Some(_), Some(_)) => Err(EngineError::AmbiguousSnapshot(name.into())),
        (None, _) => Err(EngineError::SnapshotNotFound(name.into())),
    }
}
