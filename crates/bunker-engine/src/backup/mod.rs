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
mod tree_builder;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bunker_format::id::SnapshotId;
use bunker_format::snapshot::{BackupMode, Snapshot, SnapshotSummary};
use bunker_source::WalkOptions;

pub use pack_sink::{PackSink, SinkStats};
pub use parent::{select_parent, ParentChoice};

use crate::failpoint;
use crate::identity::{hostname, now_ns, username};
use crate::lock::LockGuard;
use crate::progress::Progress;
use crate::repository::{Indexed, Repository, SnapshotEntry};
use crate::{EngineError, Result};

/// What to back up, and how.
pub struct BackupOptions {
    /// Absolute source paths.
    pub paths: Vec<PathBuf>,
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
    /// The session lock this backup holds (taken before its index was
    /// loaded); checked just before the snapshot is written, and released
    /// when the options are dropped.
    pub session: Option<LockGuard>,
}

/// A stream to back up as a single file.
pub struct StdinSource {
    /// Name of the file in the snapshot.
    pub filename: String,
    /// The data.
    pub reader: Box<dyn Read + Send>,
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

/// Backs up files and directories.
pub fn backup(
    repo: Arc<Repository<Indexed>>,
    options: BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    if options.paths.is_empty() {
        return Err(EngineError::Invalid(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let started = now_ns();
    let paths: Vec<String> = options
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let host = options.host.clone().unwrap_or_else(hostname);
    let choice = select_parent(
        &repo.snapshots()?,
        options.mode,
        &host,
        &paths,
        options.parent.clone(),
    );
    let walk_options = options.selection.clone();
    if options.scan_totals {
        pipeline::spawn_scanner(
            options.paths.clone(),
            walk_options.clone(),
            progress.clone(),
        );
    }
    let parent_tree = choice.parent.as_ref().map(|p| p.snapshot.tree);
    let run = pipeline::run_walk(
        repo.clone(),
        &options.paths,
        &walk_options,
        progress,
        options.dry_run,
        parent_tree,
    )?;
    if run.counts.files + run.counts.dirs + run.counts.specials == 0 {
        return Err(EngineError::Invalid(format!(
            "nothing to back up: none of the given paths could be read ({})",
            run.skipped.join("; ")
        )));
    }
    let excludes = options.selection.excludes.patterns().to_vec();
    finish(repo, run, paths, excludes, &options, choice, started)
}

/// Backs up one stream as a file named `source.filename` at the snapshot's root.
pub fn backup_stdin(
    repo: Arc<Repository<Indexed>>,
    source: StdinSource,
    options: BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome> {
    let name = source.filename.clone();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(EngineError::Invalid(format!(
            "--stdin-filename {name:?} must be a plain file name"
        )));
    }
    let started = now_ns();
    let run = pipeline::run_stream(repo.clone(), source, progress, options.dry_run)?;
    // A stream has no metadata to compare: it is always read whole.
    let choice = ParentChoice {
        parent: None,
        mode: BackupMode::Full,
        note: None,
    };
    finish(
        repo,
        run,
        vec![format!("/{name}")],
        Vec::new(),
        &options,
        choice,
        started,
    )
}

fn finish(
    repo: Arc<Repository<Indexed>>,
    run: pipeline::RunResult,
    paths: Vec<String>,
    excludes: Vec<String>,
    options: &BackupOptions,
    choice: ParentChoice,
    started: i64,
) -> Result<BackupOutcome> {
    let summary = SnapshotSummary {
        files_new: run.counts.new,
        files_changed: run.counts.changed,
        files_unmodified: run.counts.unmodified,
        dirs: run.counts.dirs,
        bytes_read: run.counts.bytes_read,
        total_bytes: run.counts.total_bytes,
        blobs_added: run.stats.blobs,
        bytes_added: run.stats.raw_bytes,
        bytes_stored: run.stats.stored_bytes,
        started_ns: started,
        finished_ns: now_ns(),
    };
    let snapshot = Snapshot {
        time_ns: options.time_ns.unwrap_or(started),
        hostname: options.host.clone().unwrap_or_else(hostname),
        username: username(),
        paths,
        tags: options.tags.clone(),
        mode: choice.mode,
        parent: choice.parent.map(|p| p.id),
        tree: run.root,
        summary,
        program_version: format!("bunker {}", env!("CARGO_PKG_VERSION")),
        excludes,
        skipped: run.skipped,
        warnings: run.warnings,
    };
    let id = if options.dry_run {
        None
    } else {
        failpoint::pause("backup-before-snapshot");
        if let Some(session) = &options.session {
            session.confirm()?;
        }
        Some(repo.write_snapshot(&snapshot)?)
    };
    Ok(BackupOutcome {
        id,
        snapshot,
        note: choice.note,
    })
}
