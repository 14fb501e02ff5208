//! `backup --copy-to`: the repositories that take the snapshot besides the
//! primary. Those that name blobs as the primary does join the backup's
//! pipeline ([`super::targets`]); the others receive the snapshot by `copy`
//! from the primary right after. Either way the source is read once, and a
//! copy that fails stops no other.

use std::collections::HashSet;
use std::sync::Arc;

use bunker_format::id::SnapshotId;
use bunker_format::snapshot::Snapshot;

use super::pack_sink::SinkStats;
use super::{commit_snapshot, count_added, parent, BackupOptions, BackupOutcome, ParentChoice};
use crate::copy::{copy, CopyOptions, CopyReport};
use crate::lock::LockGuard;
use crate::progress::Progress;
use crate::repository::{Indexed, Open, Repository, SnapshotEntry};
use crate::{EngineError, Result};

/// What happened in one `--copy-to` repository.
pub struct CopyOutcome {
    /// Where it is (never with secrets).
    pub location: String,
    /// What was stored there, or why nothing was.
    pub result: Result<StoredCopy>,
}

/// The snapshot as stored in a `--copy-to` repository.
#[derive(Clone, Debug)]
pub struct StoredCopy {
    /// Its id there (none in a dry run).
    pub id: Option<SnapshotId>,
    /// Written with the backup, from the one read of the source (the
    /// repository names blobs as the primary does); otherwise copied from
    /// the primary afterwards.
    pub with_backup: bool,
    /// Blobs added to that repository.
    pub blobs_added: u64,
    /// Their plaintext bytes.
    pub bytes_added: u64,
    /// Bytes written to its storage.
    pub bytes_stored: u64,
    /// Earlier snapshots of the same source it had missed (a failed
    /// run), copied from the primary now, oldest first.
    pub caught_up: Vec<SnapshotId>,
}

/// What a backup into several repositories produced.
pub struct FanOutOutcome {
    /// The primary repository's snapshot, or why it was not saved.
    pub primary: Result<BackupOutcome>,
    /// Each `--copy-to` repository, in the order given.
    pub copies: Vec<CopyOutcome>,
}

impl FanOutOutcome {
    /// True when the primary or a copy could not take the snapshot.
    pub fn failed(&self) -> bool {
        self.primary.is_err() || self.copies.iter().any(|c| c.result.is_err())
    }
}

/// A `--copy-to` repository that joined the backup's pipeline.
struct Joined {
    slot: usize,
    repo: Arc<Repository<Indexed>>,
    session: Option<LockGuard>,
}

/// The `--copy-to` repositories of one backup.
pub(super) struct Copies {
    /// Each copy's outcome once known, in the order given.
    outcomes: Vec<Option<CopyOutcome>>,
    /// Those written in the same pass as the primary.
    joined: Vec<Joined>,
    /// Those filled from the primary afterwards (other blob ids).
    afterwards: Vec<(usize, Repository<Open>)>,
}

impl Copies {
    /// Sorts the copies of a backup into `repo`: joined (locked, index
    /// loaded), filled afterwards, or failed already.
    pub fn prepare(
        copies: Vec<Repository<Open>>,
        repo: &Repository<Indexed>,
        dry_run: bool,
    ) -> Self {
        let mut outcomes: Vec<Option<CopyOutcome>> = Vec::new();
        let mut joined = Vec::new();
        let mut afterwards = Vec::new();
        for (slot, copy) in copies.into_iter().enumerate() {
            outcomes.push(None);
            let location = copy.backend().location();
            if copy.config().id == repo.config().id {
                outcomes[slot] = Some(CopyOutcome {
                    location,
                    result: Err(EngineError::Invalid(
                        "this is the repository backed up into".into(),
                    )),
                });
            } else if !copy.keys().same_blob_ids(repo.keys())
                || copy.config().cuts_directories() != repo.config().cuts_directories()
            {
                // Blobs named otherwise, or directories cut otherwise: the
                // copy gets the snapshot rewritten, by `copy`.
                afterwards.push((slot, copy));
            } else {
                match join(copy, dry_run) {
                    Ok((repo, session)) => joined.push(Joined {
                        slot,
                        repo,
                        session,
                    }),
                    Err(e) => {
                        outcomes[slot] = Some(CopyOutcome {
                            location,
                            result: Err(e),
                        })
                    }
                }
            }
        }
        Copies {
            outcomes,
            joined,
            afterwards,
        }
    }

    /// The repositories the pipeline writes: `primary`, then the joined copies.
    pub fn repos(&self, primary: &Arc<Repository<Indexed>>) -> Vec<Arc<Repository<Indexed>>> {
        std::iter::once(primary.clone())
            .chain(self.joined.iter().map(|j| j.repo.clone()))
            .collect()
    }

    /// Writes the snapshot into every copy that could take it (the joined
    /// ones with what they stored, `stored`), fills the others from the
    /// primary, and copies into each the snapshots it missed.
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        mut self,
        repo: &Arc<Repository<Indexed>>,
        primary: &Result<BackupOutcome>,
        snapshot: &Snapshot,
        stored: impl Iterator<Item = Result<SinkStats>>,
        choice: &ParentChoice,
        options: &BackupOptions,
        progress: &Arc<dyn Progress>,
    ) -> Vec<CopyOutcome> {
        // A backup without copies lists nothing more.
        if self.joined.is_empty() && self.afterwards.is_empty() {
            return self.outcomes.into_iter().flatten().collect();
        }
        // The copies name the primary's snapshot as theirs, so `copy` knows
        // it is there; and follow their own copy of the parent.
        let identity = primary.as_ref().ok().and_then(|o| o.id);
        let parent_identity = choice.parent.as_ref().map(|p| p.snapshot.identity(p.id));
        let everything = match primary.is_ok() && !options.dry_run {
            true => repo.snapshots().unwrap_or_default(),
            false => Vec::new(),
        };
        // What the copies are filled from: the primary with the index files this
        // backup wrote (loaded only when a copy needs it).
        let filled_from = std::cell::OnceCell::new();
        let source = || -> Result<&Repository<Indexed>> {
            if filled_from.get().is_none() {
                let _ = filled_from.set(repo.reopened().load_index()?);
            }
            Ok(filled_from.get().expect("just set"))
        };
        let missed_by = |dest: &[SnapshotEntry]| match &primary {
            Ok(outcome) => missed(&everything, dest, outcome),
            Err(_) => Vec::new(),
        };
        for (j, stats) in self.joined.iter().zip(stored) {
            let held = j.repo.snapshots().unwrap_or_default();
            let result = stats.and_then(|stats| {
                let mut snapshot = snapshot.clone();
                count_added(&mut snapshot.summary, &stats);
                snapshot.original = identity;
                snapshot.parent = parent_identity.and_then(|p| copy_of(&held, p));
                let id = commit_snapshot(&j.repo, j.session.as_ref(), &snapshot, options.dry_run)?;
                let mut stored = StoredCopy {
                    id,
                    with_backup: true,
                    blobs_added: stats.blobs,
                    bytes_added: stats.raw_bytes,
                    bytes_stored: stats.stored_bytes,
                    caught_up: Vec::new(),
                };
                let missed = missed_by(&held);
                if !missed.is_empty() {
                    let report = copy(
                        source()?,
                        j.repo.reopened(),
                        missed,
                        &CopyOptions::default(),
                        progress.clone(),
                    )?;
                    stored.absorb(&report);
                }
                Ok(stored)
            });
            self.outcomes[j.slot] = Some(CopyOutcome {
                location: j.repo.backend().location(),
                result,
            });
        }
        let mut outcomes = self.outcomes;
        drop(self.joined);
        for (slot, dest) in self.afterwards {
            let location = dest.backend().location();
            let result = match &primary {
                Ok(outcome) => source().and_then(|source| {
                    copy_from_primary(source, dest, outcome, &missed_by, options.dry_run, progress)
                }),
                Err(_) => Err(EngineError::Invalid(
                    "it names blobs differently, so it is filled from the primary's snapshot, which could not be saved".into(),
                )),
            };
            outcomes[slot] = Some(CopyOutcome { location, result });
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("every copy has an outcome"))
            .collect()
    }
}

/// Takes a session lock on a copy and loads its index for writing.
fn join(
    copy: Repository<Open>,
    dry_run: bool,
) -> Result<(Arc<Repository<Indexed>>, Option<LockGuard>)> {
    let session = match dry_run {
        true => None,
        false => Some(crate::lock::session(&copy, "backup")?),
    };
    Ok((Arc::new(copy.load_index_for_writing()?), session))
}

/// The id, among `held`, of the snapshot whose identity is `identity`.
fn copy_of(held: &[SnapshotEntry], identity: SnapshotId) -> Option<SnapshotId> {
    held.iter()
        .find(|e| e.snapshot.identity(e.id) == identity)
        .map(|e| e.id)
}

/// The snapshots of the same source as `new` that a copy holding `held`
/// missed since its newest one of that source (runs that failed there),
/// oldest first. A copy with none of this source starts from `new`: older
/// snapshots are never copied again, so a copy may keep fewer than the
/// primary.
fn missed(
    everything: &[SnapshotEntry],
    held: &[SnapshotEntry],
    new: &BackupOutcome,
) -> Vec<SnapshotEntry> {
    let s = &new.snapshot;
    let same = |e: &&SnapshotEntry| parent::same_source(e, &s.hostname, &s.paths);
    let Some(newest) = held.iter().filter(same).map(|e| e.snapshot.time_ns).max() else {
        return Vec::new();
    };
    let known: HashSet<SnapshotId> = held.iter().map(|e| e.snapshot.identity(e.id)).collect();
    everything
        .iter()
        .filter(same)
        .filter(|e| {
            e.snapshot.time_ns > newest
                && Some(e.id) != new.id
                && !known.contains(&e.snapshot.identity(e.id))
        })
        .cloned()
        .collect()
}

/// Fills a copy that names blobs differently from the primary: the new
/// snapshot and what it missed, copied from the primary (the source is not
/// read again).
fn copy_from_primary(
    primary: &Repository<Indexed>,
    dest: Repository<Open>,
    outcome: &BackupOutcome,
    missed_by: &dyn Fn(&[SnapshotEntry]) -> Vec<SnapshotEntry>,
    dry_run: bool,
    progress: &Arc<dyn Progress>,
) -> Result<StoredCopy> {
    let mut selected = missed_by(&dest.snapshots()?);
    selected.extend(outcome.id.map(|id| SnapshotEntry {
        id,
        snapshot: outcome.snapshot.clone(),
    }));
    let report = copy(
        primary,
        dest,
        selected,
        &CopyOptions { dry_run },
        progress.clone(),
    )?;
    let mut stored = StoredCopy {
        id: None,
        with_backup: false,
        blobs_added: 0,
        bytes_added: 0,
        bytes_stored: 0,
        caught_up: Vec::new(),
    };
    stored.absorb(&report);
    // The new snapshot, copied last, is this backup's; the rest caught up.
    if outcome.id.is_some() {
        stored.id = stored.caught_up.pop();
    }
    Ok(stored)
}

impl StoredCopy {
    /// Adds what a copy from the primary did.
    fn absorb(&mut self, report: &CopyReport) {
        self.blobs_added += report.blobs;
        self.bytes_added += report.bytes;
        self.bytes_stored += report.stored_bytes;
        self.caught_up
            .extend(report.copied.iter().filter_map(|c| c.copy));
    }
}
