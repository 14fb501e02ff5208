//! What prune clears under its lock besides packs: staged files of dead
//! writers, unreadable condemnation records, withdrawn snapshot files that
//! are back, and tombstones (merged into one).

use bunker_backend::FileKind;

use super::{not_yet_if_refused, removed, PruneReport};
use crate::lock::LockStore;
use crate::repository::{Open, Repository};
use crate::Result;

/// Removes staged files (a local repository's `tmp/`) whose writers died.
/// Runs under the exclusive lock; a file whose writer may be alive stays.
pub(super) fn remove_abandoned_staged(
    repo: &Repository<Open>,
    sessions: &LockStore,
    report: &mut PruneReport,
) -> Result<()> {
    let staged = repo.backend().list_staged()?;
    if staged.is_empty() {
        return Ok(());
    }
    let locks: Vec<_> = sessions
        .list()?
        .into_iter()
        .filter_map(|j| j.lock)
        .collect();
    for file in staged {
        if !crate::staging::is_abandoned(&file, &locks) {
            continue;
        }
        if !report.dry_run && !not_yet_if_refused(repo.backend().remove_staged(&file.name), report)?
        {
            continue;
        }
        report.staged_removed += 1;
        report.staged_bytes += file.size;
    }
    Ok(())
}

/// Removes condemnation records that cannot be read (under the exclusive
/// lock). What such a record condemned is judged again by this prune: its
/// packs are still indexed, and a backup that might use them holds a session
/// that the new record waits for.
pub(super) fn remove_unreadable_records(
    repo: &Repository<Open>,
    report: &mut PruneReport,
) -> Result<()> {
    for (id, e) in repo.condemnation_list()?.unreadable {
        if !report.dry_run && !removed(repo, FileKind::Condemned, &id.to_hex(), report)? {
            continue;
        }
        report
            .warnings
            .push(format!("{e}: removed; its packs are judged again"));
    }
    Ok(())
}

/// Deletes snapshot files that tombstones withdrew yet storage still holds
/// (an interrupted forget, or a replayed file), and merges the tombstones
/// into one file.
pub(super) fn settle_withdrawn(repo: &Repository<Open>, report: &mut PruneReport) -> Result<()> {
    let list = repo.snapshot_list()?;
    for id in &list.replayed {
        if !report.dry_run && !removed(repo, FileKind::Snapshot, &id.to_hex(), report)? {
            continue;
        }
        report.withdrawn_removed += 1;
    }
    report.tombstones_merged = repo.merge_tombstones(report.dry_run)? as u64;
    Ok(())
}
