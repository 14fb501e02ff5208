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
mod pipeline;
mod tree_builder;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bunker_format::id::SnapshotId;
use bunker_format::snapshot::{BackupMode, Snapshot, SnapshotSummary};
use bunker_source::{PatternSet, WalkOptions};

pub use pack_sink::{PackSink, SinkStats};

use crate::identity::{hostname, now_ns, username};
use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// What to back up, and how.
pub struct BackupOptions {
    /// Absolute source paths.
    pub paths: Vec<PathBuf>,
    /// Exclude patterns.
    pub excludes: PatternSet,
    /// Stay on each source's file system.
    pub one_file_system: bool,
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
    let walk_options = WalkOptions {
        excludes: options.excludes.clone(),
        one_file_system: options.one_file_system,
    };
    if options.scan_totals {
        pipeline::spawn_scanner(
            options.paths.clone(),
            walk_options.clone(),
            progress.clone(),
        );
    }
    let run = pipeline::run_walk(
        repo.clone(),
        &options.paths,
        &walk_options,
        progress,
        options.dry_run,
    )?;
    if run.counts.files + run.counts.dirs + run.counts.specials == 0 {
        return Err(EngineError::Invalid(format!(
            "nothing to back up: none of the given paths could be read ({})",
            run.skipped.join("; ")
        )));
    }
    let paths = options
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    finish(
        repo,
        run,
        paths,
        options.excludes.patterns().to_vec(),
        &options,
        started,
    )
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
    finish(
        repo,
        run,
        vec![format!("/{name}")],
        Vec::new(),
        &options,
        started,
    )
}

fn finish(
    repo: Arc<Repository<Indexed>>,
    run: pipeline::RunResult,
    paths: Vec<String>,
    excludes: Vec<String>,
    options: &BackupOptions,
    started: i64,
) -> Result<BackupOutcome> {
    let summary = SnapshotSummary {
        files_new: run.counts.files,
        files_changed: 0,
        files_unmodified: 0,
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
        // Change detection against a parent comes with the backup strategies;
        // until then every backup reads every byte, which is a full backup.
        mode: BackupMode::Full,
        parent: None,
        tree: run.root,
        summary,
        program_version: format!("bunker {}", env!("CARGO_PKG_VERSION")),
        excludes,
        skipped: run.skipped,
    };
    let id = if options.dry_run {
        None
    } else {
        Some(repo.write_snapshot(&snapshot)?)
    };
    Ok(BackupOutcome { id, snapshot })
}
