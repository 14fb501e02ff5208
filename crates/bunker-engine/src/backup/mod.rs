//! Backup: walk the sources, store new content, write a snapshot.
//!
//! The pipeline, each arrow a bounded queue so memory stays flat whatever the
//! file sizes:
//!
//! ```text
//! walker (caller's thread) ──files──▶ readers: read, chunk, hash, dedup ──chunks──▶ sealers: compress, encrypt ──▶ PackSink ──▶ uploaders
//!        └────────events in walk order──▶ tree builder (waits for each file's blob list) ──trees──▶ sealers
//! ```
//! Write order: packs, then index files naming them, then the snapshot. A
//! crash at any point leaves only complete files; a snapshot is never
//! written before everything it references is indexed.

mod pack_sink;
mod parent;
mod pipeline;
mod stream;
mod targets;
mod tree_builder;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use bunker_format::id::SnapshotId;
use bunker_format::snapshot::{BackupMode, Snapshot, SnapshotSummary};
use bunker_source::WalkOptions;

pub use pack_sink::{PackSink, SinkStats};
pub use parent::{select_parent, ParentChoice};
pub use stream::{CommandSource, StdinSource, StreamSource};

use crate::copy::{copy, CopyOptions, CopyReport};
use crate::failpoint;
use crate::identity::{hostname, now_ns, username};
use crate::lock::LockGuard;
use crate::progress::Progress;
use crate::repository::{Indexed, Open, Repository, SnapshotEntry};
use crate::{EngineError, Result};

/// What to back up.
pub enum BackupSource {
    /// Files and directories, as absolute paths.
    Paths(Vec<PathBuf>),
    /// Streams, each stored as a file at the snapshot's root; the source
    /// has the last word on whether they make a snapshot.
    Streams(Box<dyn StreamSource>),
}

/// How to back up.
#[derive(Default)]
pub struct BackupOptions {
    /// What to leave out: patterns, other file systems, tagged directories, large files.
    pub selection: WalkOptions,
    /// Tags to record.
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Snapshot time (default: now), Unix nanoseconds.
    pub time_ns: Option<i64>,
    /// Do everything but write to the repository.
    pub dry_run: bool,
    /// Scan the sources first so progress can show totals.
    pub scan_totals: bool,
    /// Full, incremental or differential.
    pub mode: BackupMode,
    /// `--parent`: compare against this snapshot instead of the chosen one.
    pub parent: Option<SnapshotEntry>,
}

/// What a backup produced.
pub struct BackupOutcome {
    /// The new snapshot's id (none in a dry run).
    pub id: Option<SnapshotId>,
    /// The snapshot as written (or as it would have been).
    pub snapshot: Snapshot,
    /// What the user should know about how the parent was chosen.
    pub note: Option<String>,
}

/// The paths to back up, each once, in the order given; an error if none
/// exists (nothing is then written, not even an empty snapshot) or if a path
/// is not absolute.
pub fn source_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut unique: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !p.is_absolute() {
            return Err(EngineError::Invalid(format!(
                "{}: source paths must be absolute",
                p.display()
            )));
        }
        if !unique.contains(p) {
            unique.push(p.clone());
        }
    }
    if unique.is_empty() {
        return Err(EngineError::Invalid(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let missing: Vec<String> = unique
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .map(|p| p.display().to_string())
        .collect();
    if missing.len() == unique.len() {
        return Err(EngineError::Invalid(format!(
            "nothing to back up: {} {} not exist; no snapshot was saved",
            missing.join(", "),
            if missing.len() == 1 { "does" } else { "do" }
        )));
    }
    Ok(unique)
}

/// Checks a stream's file name: one plain name, stored at the snapshot's root.
pub fn stream_filename(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(EngineError::Invalid(format!(
            "--stdin-filename {name:?} must be a plain file name (no `/`, not `.` or `..`)"
        )));
    }
    Ok(())
}

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

/// Backs up `source` into `repo`: takes a session lock (so that a prune
/// running meanwhile waits for this backup), loads the index a writer needs,
/// stores what is new, and writes the snapshot last, after checking that
/// the session was not declared dead.
pub fn backup(
    repo: Repository<Open>,
    source: BackupSource,
    options: BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    backup_to_many(repo, Vec::new(), source, options, progress)?.primary
}

/// A `--copy-to` repository that joined the backup's pipeline.
struct Joined {
    slot: usize,
    repo: Arc<Repository<Indexed>>,
    session: Option<LockGuard>,
}

/// Backs up `source` once into `repo` and every repository of `copies`
/// (docs/FORMAT.md §4.2 on shared blob ids): the source is read, chunked
/// and hashed once. Copies that name blobs as `repo` does are written in
/// the same pass; the others receive the snapshot by [`copy`] from `repo`
/// afterwards. A repository that fails does not stop the others. `Err`
/// only when nothing could be saved anywhere.
pub fn backup_to_many(
    repo: Repository<Open>,
    copies: Vec<Repository<Open>>,
    source: BackupSource,
    options: BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<FanOutOutcome> {
    if copies.len() >= targets::MAX_TARGETS {
        return Err(EngineError::Invalid(format!(
            "at most {} repositories to copy to",
            targets::MAX_TARGETS - 1
        )));
    }
    let paths = match &source {
        BackupSource::Paths(paths) => Some(source_paths(paths)?),
        BackupSource::Streams(_) => None,
    };
    // The session lock goes first: a prune that condemns packs after this
    // point waits for us; one that did before is excluded from our index.
    let session = match options.dry_run {
        true => None,
        false => Some(crate::lock::session(&repo, "backup")?),
    };
    let repo = Arc::new(repo.load_index_for_writing()?);
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
        } else if !copy.keys().same_blob_ids(repo.keys()) {
            afterwards.push((slot, copy));
        } else {
            match join(copy, options.dry_run) {
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
    let repos: Vec<Arc<Repository<Indexed>>> = std::iter::once(repo.clone())
        .chain(joined.iter().map(|j| j.repo.clone()))
        .collect();

    let started = now_ns();
    let shown: Vec<String> = match (&source, &paths) {
        (BackupSource::Streams(streams), _) => streams.paths(),
        (BackupSource::Paths(_), Some(paths)) => {
            paths.iter().map(|p| p.display().to_string()).collect()
        }
        (BackupSource::Paths(_), None) => unreachable!("paths were checked above"),
    };
    let host = options.host.clone().unwrap_or_else(hostname);
    // A stream is always read whole; its parent records what it follows
    // (and deduplication stores only what changed).
    let choice = select_parent(
        &repo.snapshots()?,
        options.mode,
        &host,
        &shown,
        options.parent.clone(),
    );
    let (run, excludes, mut streams) = match (source, paths) {
        (BackupSource::Paths(_), Some(paths)) => {
            if options.scan_totals {
                pipeline::spawn_scanner(paths.clone(), options.selection.clone(), progress.clone());
            }
            let parent_tree = choice.parent.as_ref().map(|p| p.snapshot.tree);
            let run = pipeline::run_walk(
                &repos,
                &paths,
                &options.selection,
                progress.clone(),
                options.dry_run,
                parent_tree,
            )?;
            if run.counts.files + run.counts.specials == 0 && !run.skipped.is_empty() {
                return Err(EngineError::Invalid(format!(
                    "nothing to back up: none of the given paths could be read ({}); no snapshot was saved",
                    run.skipped.join("; ")
                )));
            }
            (run, options.selection.excludes.patterns().to_vec(), None)
        }
        (BackupSource::Streams(mut streams), _) => {
            let run =
                pipeline::run_stream(&repos, streams.as_mut(), progress.clone(), options.dry_run)?;
            (run, Vec::new(), Some(streams))
        }
        (BackupSource::Paths(_), None) => unreachable!("paths were checked above"),
    };
    let mut stored = run.stored.into_iter();
    let mut snapshot = Snapshot {
        time_ns: options.time_ns.unwrap_or(started),
        hostname: host,
        username: username(),
        paths: shown,
        tags: options.tags.clone(),
        mode: choice.mode,
        parent: choice.parent.as_ref().map(|p| p.id),
        tree: run.root,
        summary: SnapshotSummary {
            files_new: run.counts.new,
            files_changed: run.counts.changed,
            files_unmodified: run.counts.unmodified,
            dirs: run.counts.dirs,
            bytes_read: run.counts.bytes_read,
            total_bytes: run.counts.total_bytes,
            started_ns: started,
            finished_ns: now_ns(),
            ..SnapshotSummary::default()
        },
        program_version: format!("bunker {}", env!("CARGO_PKG_VERSION")),
        excludes,
        skipped: run.skipped,
        warnings: run.warnings,
        original: None,
        database: None,
    };
    // The source's verdict comes before anything names what was stored: a
    // stream it refuses leaves unreferenced blobs for prune, no snapshot.
    if let Some(streams) = streams.as_mut() {
        streams.seal(&mut snapshot)?;
    }
    let primary = stored
        .next()
        .expect("the primary's result")
        .and_then(|stats| {
            let mut snapshot = snapshot.clone();
            count_added(&mut snapshot.summary, &stats);
            let id = commit_snapshot(&repo, session.as_ref(), &snapshot, options.dry_run)?;
            Ok(BackupOutcome {
                id,
                snapshot,
                note: choice.note.clone(),
            })
        });
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
    for (j, stats) in joined.iter().zip(stored) {
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
        outcomes[j.slot] = Some(CopyOutcome {
            location: j.repo.backend().location(),
            result,
        });
    }
    drop(joined);
    for (slot, dest) in afterwards {
        let location = dest.backend().location();
        let result = match &primary {
            Ok(outcome) => source().and_then(|source| {
                copy_from_primary(source, dest, outcome, &missed_by, options.dry_run, &progress)
            }),
            Err(_) => Err(EngineError::Invalid(
                "it names blobs differently, so it is filled from the primary's snapshot, which could not be saved".into(),
            )),
        };
        outcomes[slot] = Some(CopyOutcome { location, result });
    }
    let copies = outcomes
        .into_iter()
        .map(|o| o.expect("every copy has an outcome"))
        .collect();
    Ok(FanOutOutcome { primary, copies })
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

/// Writes a snapshot only while the session lock stands (after everything
/// it references is indexed); withdraws it if the lock fell meanwhile: a
/// prune that judged the session dead between the confirmation and the
/// write may have deleted what it references (docs/FORMAT.md §10).
pub(crate) fn commit_snapshot(
    repo: &Repository<Indexed>,
    session: Option<&LockGuard>,
    snapshot: &Snapshot,
    dry_run: bool,
) -> Result<Option<SnapshotId>> {
    if dry_run {
        return Ok(None);
    }
    failpoint::pause("backup-before-snapshot");
    if let Some(session) = session {
        session.confirm()?;
    }
    let id = repo.write_snapshot(snapshot)?;
    failpoint::pause("backup-after-snapshot");
    if let Some(session) = session {
        if let Err(e) = session.confirm() {
            let _ = repo.withdraw_snapshots(&[id]);
            return Err(e);
        }
    }
    repo.remember_snapshot(id, snapshot.time_ns);
    Ok(Some(id))
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

/// Records in a snapshot's summary what its repository's sink stored.
fn count_added(summary: &mut SnapshotSummary, stats: &SinkStats) {
    summary.blobs_added = stats.blobs;
    summary.bytes_added = stats.raw_bytes;
    summary.bytes_stored = stats.stored_bytes;
}
