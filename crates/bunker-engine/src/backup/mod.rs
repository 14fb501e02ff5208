//! Backup: walk the sources, store new content, write a snapshot.
//!
//! The pipeline, each arrow a bounded queue so memory stays flat whatever the
//! file sizes:
//!
//! ```text
//! walker (caller's thread) ──files──▶ readers: read, chunk, hash, dedup ──chunks──▶ sealers: compress, encrypt ──▶ PackSink ──▶ uploaders
//!   ▲    └────────events in walk order, in batches──▶ tree builder (waits for each file's blob list) ──trees──▶ sealers
//!   └── parent loader: the parent snapshot's next directory, read ahead
//! ```
//! Write order: packs, then index files naming them, then the snapshot. A
//! crash at any point leaves only complete files; a snapshot is never
//! written before everything it references is indexed.

mod fan_out;
mod pack_sink;
mod parent;
mod parent_trees;
mod pipeline;
mod stream;
mod targets;
mod tree_builder;

use std::path::PathBuf;
use std::sync::Arc;

use bunker_format::id::SnapshotId;
use bunker_format::snapshot::{BackupMode, Snapshot, SnapshotSummary};
use bunker_source::WalkOptions;

pub use fan_out::{CopyOutcome, FanOutOutcome, StoredCopy};
pub use pack_sink::{PackSink, SinkStats};
pub use parent::{select_parent, ParentChoice};

use fan_out::Copies;
pub use stream::{CommandSource, StdinSource, StreamSource};

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
    let copies = Copies::prepare(copies, &repo, options.dry_run);
    let repos = copies.repos(&repo);

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
    let copies = copies.store(
        &repo, &primary, &snapshot, stored, &choice, &options, &progress,
    );
    Ok(FanOutOutcome { primary, copies })
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

/// Records in a snapshot's summary what its repository's sink stored.
fn count_added(summary: &mut SnapshotSummary, stats: &SinkStats) {
    summary.blobs_added = stats.blobs;
    summary.bytes_added = stats.raw_bytes;
    summary.bytes_stored = stats.stored_bytes;
}
