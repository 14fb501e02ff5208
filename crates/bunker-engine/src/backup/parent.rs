//! Choosing the parent snapshot that a backup compares against.

use bunker_format::snapshot::BackupMode;

use crate::repository::SnapshotEntry;

/// The outcome of parent selection.
#[derive(Clone, Debug)]
pub struct ParentChoice {
    /// The snapshot to compare against, if any.
    pub parent: Option<SnapshotEntry>,
    /// The mode the backup really runs in (a differential backup with no
    /// full snapshot to compare against runs as a full one).
    pub mode: BackupMode,
    /// Something the user should be told about the choice.
    pub note: Option<String>,
}

/// True if `entry` backed up the same source: same host and the same set of paths.
pub(crate) fn same_source(entry: &SnapshotEntry, host: &str, paths: &[String]) -> bool {
    let mut a = entry.snapshot.paths.clone();
    let mut b = paths.to_vec();
    a.sort();
    b.sort();
    entry.snapshot.hostname == host && a == b
}

/// Picks the parent for a backup of `paths` on `host` in `mode`.
/// `entries` must be sorted oldest first; `explicit` is `--parent`.
pub fn select_parent(
    entries: &[SnapshotEntry],
    mode: BackupMode,
    host: &str,
    paths: &[String],
    explicit: Option<SnapshotEntry>,
) -> ParentChoice {
    match mode {
        BackupMode::Full => ParentChoice {
            parent: None,
            mode,
            note: None,
        },
        BackupMode::Incremental => {
            let parent = explicit.or_else(|| {
                entries
                    .iter()
                    .rev()
                    .find(|e| same_source(e, host, paths))
                    .cloned()
            });
            ParentChoice {
                parent,
                mode,
                note: None,
            }
        }
        BackupMode::Differential => {
            let full = explicit.or_else(|| {
                entries
                    .iter()
                    .rev()
                    .find(|e| e.snapshot.mode == BackupMode::Full && same_source(e, host, paths))
                    .cloned()
            });
            match full {
                Some(p) => ParentChoice {
                    parent: Some(p),
                    mode,
                    note: None,
                },
                None => ParentChoice {
                    parent: None,
                    mode: BackupMode::Full,
                    note: Some("no full snapshot of this source yet: running a full backup".into()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunker_format::id::{BlobId, SnapshotId};
    use bunker_format::snapshot::{Snapshot, SnapshotSummary};

    fn entry(n: u8, host: &str, paths: &[&str], mode: BackupMode) -> SnapshotEntry {
        SnapshotEntry {
            id: SnapshotId([n; 32]),
            snapshot: Snapshot {
                time_ns: n as i64,
                hostname: host.into(),
                username: "u".into(),
                paths: paths.iter().map(|p| p.to_string()).collect(),
                tags: vec![],
                mode,
                parent: None,
                tree: BlobId([n; 32]),
                summary: SnapshotSummary::default(),
                program_version: String::new(),
                original: None,
                database: None,
                excludes: vec![],
                skipped: vec![],
                warnings: vec![],
            },
        }
    }

    #[test]
    fn parent_per_mode() {
        let paths = vec!["/a".to_string(), "/b".to_string()];
        let list = vec![
            entry(1, "h", &["/b", "/a"], BackupMode::Full),
            entry(2, "h", &["/a", "/b"], BackupMode::Incremental),
            entry(3, "other", &["/a", "/b"], BackupMode::Full),
            entry(4, "h", &["/a"], BackupMode::Full),
        ];
        let id = |c: &ParentChoice| c.parent.as_ref().map(|p| p.id.0[0]);
        assert_eq!(
            id(&select_parent(&list, BackupMode::Full, "h", &paths, None)),
            None
        );
        assert_eq!(
            id(&select_parent(
                &list,
                BackupMode::Incremental,
                "h",
                &paths,
                None
            )),
            Some(2)
        );
        assert_eq!(
            id(&select_parent(
                &list,
                BackupMode::Differential,
                "h",
                &paths,
                None
            )),
            Some(1)
        );
        let explicit = Some(list[3].clone());
        assert_eq!(
            id(&select_parent(
                &list,
                BackupMode::Incremental,
                "h",
                &paths,
                explicit
            )),
            Some(4)
        );
        let none = select_parent(&list, BackupMode::Differential, "new-host", &paths, None);
        assert_eq!((id(&none), none.mode), (None, BackupMode::Full));
        assert!(none.note.is_some());
        assert_eq!(
            id(&select_parent(
                &list,
                BackupMode::Incremental,
                "new-host",
                &paths,
                None
            )),
            None
        );
    }
}
