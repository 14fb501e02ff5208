//! Prune: reclaim the space of data no snapshot references, safely while
//! backups run.
//!
//! Deletion takes two phases (specified in `docs/FORMAT.md`, "Prune"):
//!
//! 1. **Condemn.** Copy the live blobs of mostly-unused packs into new packs,
//!    write an index of every pack that stays, then write a condemnation
//!    record naming the packs and index files to delete, and finally list into
//!    it the backup sessions alive at that moment.
//! 2. **Delete**, once every listed session has ended (this run if none was
//!    alive, else a later prune): re-read every snapshot, rescue any condemned
//!    pack that a snapshot written meanwhile needs, delete the rest.
//!
//! A backup registers its session before it loads the index and leaves
//! condemned packs out of that index, so it either was listed (and is waited
//! for) or never saw the condemned packs. No clock margin is involved.

mod cleanup;
mod delete;
mod headers;
mod plan;
mod repack;
mod used;

use std::collections::HashSet;

use bunker_backend::FileKind;
use bunker_format::condemnation::Condemnation;
use bunker_format::crypto::fill_random;
use bunker_format::id::{BlobId, LockId, PackId, RecordId};
use bunker_format::index::IndexFile;

use crate::failpoint;
use crate::identity::now_ns;
use crate::lock::{self, LockStore};
use crate::repository::{Open, Repository};
use crate::{EngineError, Result};

use cleanup::{remove_abandoned_staged, remove_unreadable_records, settle_withdrawn};
use delete::delete_condemned;
use plan::{plan, Decided};
use repack::repack;
use used::{Referenced, Walked};

/// How to prune.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// Repack a pack when at least this fraction of its bytes is unused (0..=1).
    pub repack_threshold: f64,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            repack_threshold: 0.25,
            dry_run: false,
        }
    }
}

/// What prune did (or, in a dry run, would do).
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    /// Snapshots whose data was kept.
    pub snapshots: usize,
    /// Packs deleted (or to delete), and their bytes.
    pub packs_deleted: u64,
    /// Bytes freed by deleting packs.
    pub bytes_deleted: u64,
    /// Index files deleted (their live content was rewritten first).
    pub indexes_deleted: u64,
    /// Packs whose live blobs were copied into new packs.
    pub packs_repacked: u64,
    /// Blobs copied by repacking.
    pub blobs_repacked: u64,
    /// Bytes copied by repacking.
    pub bytes_repacked: u64,
    /// Condemned packs a snapshot written meanwhile needed, kept.
    pub packs_rescued: u64,
    /// Packs condemned but not yet deleted: backups that started earlier still run.
    pub packs_waiting: u64,
    /// Bytes of those packs.
    pub bytes_waiting: u64,
    /// Backup sessions prune is waiting for.
    pub sessions_waiting: usize,
    /// Generation of the record written by this run, if any.
    pub generation: Option<u64>,
    /// Small packs merged into larger ones (counted in `packs_repacked` too).
    pub small_packs_merged: u64,
    /// Staged files left by processes that died, removed (or to remove).
    pub staged_removed: u64,
    /// Bytes of those files.
    pub staged_bytes: u64,
    /// Withdrawn snapshot files that were back in storage, deleted (or to delete).
    pub withdrawn_removed: u64,
    /// Tombstone files merged into one (and deleted).
    pub tombstones_merged: u64,
    /// Files whose Object Lock retention was extended.
    pub retention_renewed: u64,
    /// Deletions the storage refused, left for a later prune.
    pub deletes_refused: u64,
    /// Problems that did not stop the prune.
    pub warnings: Vec<String>,
    /// True for a dry run.
    pub dry_run: bool,
}

/// Prunes the repository; see the module docs.
pub fn prune(repo: Repository<Open>, options: &PruneOptions) -> Result<PruneReport> {
    repo.require_full_key("prune")?;
    // Under Object Lock, what is left is then retained for the policy's
    // days from now (docs/FORMAT.md §4.2).
    let renew = (!options.dry_run && repo.config().object_lock.is_some()).then(|| repo.reopened());
    let mut report = prune_once(repo, options)?;
    if let Some(repo) = renew {
        report.retention_renewed = crate::object_lock::renew(&repo)?;
    }
    if report.deletes_refused > 0 {
        report.warnings.push(format!(
            "the storage refused to delete {} file(s) (retention, or credentials without delete): they are kept, and a later prune tries again",
            report.deletes_refused
        ));
    }
    Ok(report)
}

/// Deletes a file; false when the storage refused (retention, or
/// credentials without delete): for prune that means "not yet", counted in
/// the report, never an error that leaves the repository half-done.
pub(super) fn removed<S>(
    repo: &Repository<S>,
    kind: FileKind,
    name: &str,
    report: &mut PruneReport,
) -> Result<bool> {
    not_yet_if_refused(repo.backend().remove(kind, name), report)
}

/// The outcome of a deletion: done (true), refused and counted (false), or
/// an error.
pub(super) fn not_yet_if_refused(
    deleted: std::result::Result<(), bunker_backend::BackendError>,
    report: &mut PruneReport,
) -> Result<bool> {
    match deleted {
        Ok(()) => Ok(true),
        Err(e) if e.kind == bunker_backend::ErrorKind::PermissionDenied => {
            report.deletes_refused += 1;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

fn prune_once(repo: Repository<Open>, options: &PruneOptions) -> Result<PruneReport> {
    if !(0.0..=1.0).contains(&options.repack_threshold) {
        return Err(EngineError::Invalid(
            "the repack threshold must be between 0 and 100 %".into(),
        ));
    }
    let _lock = match options.dry_run {
        true => None,
        false => Some(lock::exclusive(&repo, "prune")?),
    };
    let mut report = PruneReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    failpoint::pause("prune-locked");
    let sessions = LockStore::new(&repo);
    remove_abandoned_staged(&repo, &sessions, &mut report)?;
    remove_unreadable_records(&repo, &mut report)?;
    settle_withdrawn(&repo, &mut report)?;
    // Phase 2 of earlier prunes.
    let live: HashSet<LockId> = sessions
        .live_sessions(!options.dry_run)?
        .into_iter()
        .collect();
    let mut waiting = HashSet::new();
    for (id, mut record) in repo.condemnations()? {
        let listed = record
            .sessions
            .get_or_insert_with(|| live.iter().copied().collect());
        let alive: Vec<LockId> = listed
            .iter()
            .filter(|s| live.contains(*s))
            .copied()
            .collect();
        if !options.dry_run {
            repo.write_condemnation(&id, &record)?;
        }
        if alive.is_empty() {
            delete_condemned(&repo, &id, &record, None, &mut report)?;
        } else {
            waiting.extend(alive);
            report.packs_waiting += record.packs.len() as u64;
            report.bytes_waiting += pack_sizes(&repo, &record.packs)?;
        }
    }
    report.sessions_waiting = waiting.len();
    if !waiting.is_empty() {
        // Condemning more before the earlier record is settled would let
        // the two records' index rewrites overlap; one step at a time.
        return Ok(report);
    }

    // Phase 1.
    let Decided { plan, referenced } = plan(&repo, options.repack_threshold)?;
    report.snapshots = plan.snapshots;
    report.small_packs_merged = plan.small_merged;
    report.warnings.extend(plan.refused.iter().cloned());
    report.packs_repacked = plan.repack.len() as u64;
    report.blobs_repacked = plan.repack.iter().map(|p| p.live.len() as u64).sum();
    report.bytes_repacked = plan
        .repack
        .iter()
        .flat_map(|p| &p.live)
        .map(|e| e.length as u64)
        .sum();
    let condemned: Vec<PackId> = plan
        .unused
        .iter()
        .chain(plan.repack.iter().map(|p| &p.pack))
        .map(|p| p.id)
        .collect();
    if condemned.is_empty() && plan.index_files.is_empty() {
        return Ok(report);
    }
    if options.dry_run {
        report.packs_deleted += condemned.len() as u64;
        report.bytes_deleted += plan
            .unused
            .iter()
            .chain(plan.repack.iter().map(|p| &p.pack))
            .map(|p| p.length)
            .sum::<u64>();
        report.indexes_deleted += plan.index_files.len() as u64;
        return Ok(report);
    }
    let moved: Vec<BlobId> = plan
        .repack
        .iter()
        .flat_map(|p| p.live.iter().map(|e| e.id))
        .collect();
    // The marks' index goes with the repack: phase 2 loads its own, and two
    // at once would double the memory the index takes.
    let Referenced {
        repo: marked,
        used,
        snapshots: walked,
        ..
    } = referenced;
    drop(used);
    repack(marked, &plan.repack)?;
    let mut kept = IndexFile {
        supersedes: plan.index_files.clone(),
        packs: plan.keep,
    };
    // Keep each rewritten index file a modest size.
    while !kept.packs.is_empty() {
        let rest = kept.packs.split_off(kept.packs.len().min(INDEX_PACKS));
        repo.write_index(&kept)?;
        kept = IndexFile {
            supersedes: Vec::new(),
            packs: rest,
        };
    }
    let generation = repo
        .condemnations()?
        .iter()
        .map(|(_, r)| r.generation)
        .max()
        .unwrap_or(0)
        + 1;
    let mut raw = [0u8; 32];
    fill_random(&mut raw);
    let id = RecordId(raw);
    let mut record = Condemnation {
        generation,
        created_ns: now_ns(),
        packs: condemned,
        indexes: plan.index_files,
        sessions: None,
    };
    repo.write_condemnation(&id, &record)?;
    report.generation = Some(generation);
    failpoint::pause("prune-after-condemn");
    // Listed only now that the record is visible: a session that starts
    // later reads the record and leaves the condemned packs alone.
    let alive = sessions.live_sessions(true)?;
    record.sessions = Some(alive.clone());
    repo.write_condemnation(&id, &record)?;
    if alive.is_empty() {
        let walked = Walked {
            snapshots: &walked,
            moved: &moved,
        };
        delete_condemned(&repo, &id, &record, Some(walked), &mut report)?;
    } else {
        report.sessions_waiting = alive.len();
        report.packs_waiting += record.packs.len() as u64;
        report.bytes_waiting += pack_sizes(&repo, &record.packs)?;
    }
    Ok(report)
}

/// Packs per rewritten index file.
pub(super) const INDEX_PACKS: usize = 4096;

fn pack_sizes(repo: &Repository<Open>, packs: &[PackId]) -> Result<u64> {
    let sizes = repo.stored_packs()?;
    Ok(packs.iter().filter_map(|p| sizes.get(p)).sum())
}
