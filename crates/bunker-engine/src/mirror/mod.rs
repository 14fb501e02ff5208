//! Mirror: make a folder DEST an exact replica of a folder SRC, as
//! `rsync -aHAX --delete SRC/ DEST/` does, holes kept.
//!
//! SRC is walked first (the same walker backups use); then what DEST must
//! lose is listed, and `max_delete` checked, before anything changes. A
//! file whose size or modification time differs (or content, with
//! `checksum`) is written beside its final name and renamed over it, so a
//! crash leaves each file wholly old or wholly new; hard links within SRC
//! stay hard links; directories get their metadata last, deepest first.
//! An entry of SRC that cannot be read is named and skipped, and deletions
//! in the folders above it are held back for that run.

mod compare;
mod copy;
mod deletions;
pub mod itemize;
mod remote;
mod scan;
mod snapshot_check;
mod verify;
mod write;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bunker_format::tree::{Node, NodeKind};
use bunker_source::WalkOptions;

use crate::{Cancel, EngineError, Result};
use compare::{attrs, kind_of};
use deletions::{plan_deletions, remove_any};
use itemize::{line, Attrs, Update};
use scan::Scanned;
use verify::verify;
use write::{set_metadata, Writer};

pub use remote::mirror_to_sftp;
pub use snapshot_check::{
    compare_listing_with_snapshot, compare_with_snapshot, SnapshotComparison,
};

/// How to mirror.
#[derive(Default)]
pub struct MirrorOptions {
    /// Remove what DEST has and SRC lacks (the default for a replica).
    pub delete: bool,
    /// Decide everything, change nothing.
    pub dry_run: bool,
    /// Compare the content of files whose size and time are equal.
    pub checksum: bool,
    /// Refuse (changing nothing) when more entries than this would be deleted.
    pub max_delete: Option<u64>,
    /// Excludes and `one_file_system`, as for backups.
    pub selection: WalkOptions,
    /// Keep an rsync `--itemize-changes` line per change.
    pub itemize: bool,
    /// Re-read DEST afterwards and compare it with SRC.
    pub verify: bool,
}

/// What a mirror did (or, in a dry run, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct MirrorSummary {
    /// Entries of SRC looked at.
    pub entries_checked: u64,
    /// Bytes of SRC's regular files.
    pub bytes_checked: u64,
    /// Files whose content was copied.
    pub files_copied: u64,
    /// Bytes of data copied (holes not counted).
    pub bytes_copied: u64,
    /// Directories, links and special files created or replaced.
    pub created: u64,
    /// Hard links made.
    pub hard_links: u64,
    /// Entries whose attributes alone were changed.
    pub attributes_updated: u64,
    /// Entries of DEST removed.
    pub deleted: u64,
    /// Entries of SRC that could not be read or written, one line each.
    pub errors: Vec<String>,
    /// What the destination cannot keep, said once each (not errors).
    pub warnings: Vec<String>,
    /// Folders whose deletions were held back because of an error below them.
    pub deletions_held_back: u64,
    /// rsync-style change lines (with `itemize`).
    #[serde(skip)]
    pub changes: Vec<String>,
    /// With `verify`: where DEST was found to differ from SRC afterwards.
    pub verify_problems: Vec<String>,
    /// Entries verified (with `verify`).
    pub verified: u64,
    /// Wall time.
    pub seconds: f64,
}

impl MirrorSummary {
    /// Adds another part's counts and errors.
    pub fn absorb(&mut self, other: MirrorSummary) {
        self.entries_checked += other.entries_checked;
        self.bytes_checked += other.bytes_checked;
        self.files_copied += other.files_copied;
        self.bytes_copied += other.bytes_copied;
        self.created += other.created;
        self.hard_links += other.hard_links;
        self.attributes_updated += other.attributes_updated;
        self.deleted += other.deleted;
        self.deletions_held_back += other.deletions_held_back;
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
        self.changes.extend(other.changes);
    }
}

/// One entry of SRC, by its path relative to SRC.
struct Entry {
    rel: PathBuf,
    node: Node,
}

/// `path` relative to the mirror's root as itemize shows it.
fn shown(rel: &Path, kind: NodeKind) -> String {
    let mut s = rel.to_string_lossy().into_owned();
    if kind == NodeKind::Dir {
        s.push('/');
    }
    s
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> EngineError + '_ {
    move |e| EngineError::io(path, e)
}

/// SRC as a canonical path, after checking it is a folder.
fn source_folder(src: &Path) -> Result<PathBuf> {
    let src = src.canonicalize().map_err(io(src))?;
    match src.is_dir() {
        true => Ok(src),
        false => Err(EngineError::Invalid(format!(
            "{} is not a folder",
            src.display()
        ))),
    }
}

/// Scans SRC on a pool of threads of this mirror's own (a daemon may run
/// several); the summary starts with what could not be read.
fn scan_source(
    src: &Path,
    options: &MirrorOptions,
    cancel: &Cancel,
) -> Result<(rayon::ThreadPool, Scanned, MirrorSummary)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("bunker-mirror-{i}"))
        .build()
        .map_err(|e| EngineError::Invalid(format!("cannot start the mirror's threads: {e}")))?;
    let scanned = pool.install(|| scan::scan(src, &options.selection, cancel))?;
    let summary = MirrorSummary {
        errors: scanned
            .errors
            .iter()
            .map(|(p, e)| format!("{}: {e}", src.join(p).display()))
            .collect(),
        ..Default::default()
    };
    Ok((pool, scanned, summary))
}

/// Mirrors `src` into `dest` according to `options`; `cancel` stops it
/// between entries (each file already written is whole).
pub fn mirror(
    src: &Path,
    dest: &Path,
    options: &MirrorOptions,
    cancel: &Cancel,
) -> Result<MirrorSummary> {
    let started = Instant::now();
    let src = source_folder(src)?;
    let dest_abs = std::path::absolute(dest).map_err(io(dest))?;
    let dest_real = resolve_existing(&dest_abs);
    if dest_real.starts_with(&src) || src.starts_with(&dest_real) {
        return Err(EngineError::Invalid(format!(
            "{} and {} contain one another: a mirror must not be inside its source, nor the source inside it",
            src.display(),
            dest_abs.display()
        )));
    }
    if dest_abs.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        return Err(EngineError::Invalid(format!(
            "{} exists and is not a folder",
            dest_abs.display()
        )));
    }
    let dest = dest_abs;

    let (
        pool,
        Scanned {
            root,
            entries,
            errors,
        },
        mut summary,
    ) = scan_source(&src, options, cancel)?;
    let root_node = Some(root);

    // What DEST must lose, counted before anything changes.
    let deletions = if options.delete {
        pool.install(|| plan_deletions(&src, &dest, &entries, &errors, options, &mut summary))?
    } else {
        Vec::new()
    };
    let doomed: u64 = deletions.iter().map(|(_, n)| n).sum();
    if let Some(max) = options.max_delete {
        if doomed > max {
            return Err(EngineError::Invalid(format!(
                "the mirror would delete {doomed} entries from {}, over --max-delete {max}: nothing was changed (is the source empty or not mounted?)",
                dest.display()
            )));
        }
    }
    // DEST's own attributes as they are before anything changes them
    // (writing inside a folder moves its time).
    let root_before = root_node
        .as_ref()
        .filter(|_| dest.is_dir())
        .map(|n| attrs(&dest, n));
    if !dest.is_dir() {
        summary.created += 1;
        if options.itemize {
            let created = line(Update::Created, NodeKind::Dir, true, Attrs::default(), "./");
            summary.changes.push(created);
        }
    }
    if !options.dry_run {
        std::fs::create_dir_all(&dest).map_err(io(&dest))?;
    }
    for (path, count) in &deletions {
        if options.itemize {
            let kind = if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                NodeKind::Dir
            } else {
                NodeKind::File
            };
            let rel = path.strip_prefix(&dest).unwrap_or(path);
            summary.changes.push(itemize::deleting(&shown(rel, kind)));
        }
        if !options.dry_run {
            remove_any(path).map_err(io(path))?;
        }
        summary.deleted += count;
    }

    let mut writer = Writer::new(&dest, options);
    // Folders first, in order (a folder before what it holds), noting the
    // first member of each hard-link group; then files, links and special
    // files on every core; then the other members of hard-link groups.
    let mut parallel = Vec::new();
    let mut followers = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        summary.entries_checked += 1;
        let node = &entry.node;
        match node.kind {
            NodeKind::Dir => writer.run(i, &src, entry),
            NodeKind::File => {
                summary.bytes_checked += node.size;
                if node.links > 1 {
                    let key = (node.device, node.inode);
                    if writer.links.contains_key(&key) {
                        followers.push(i);
                        continue;
                    }
                    writer.links.insert(key, dest.join(&entry.rel));
                }
                parallel.push(i);
            }
            _ => parallel.push(i),
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let parts: Vec<Writer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (next, parallel, entries, src, dest) =
                    (&next, &parallel, &entries, &src, &dest);
                scope.spawn(move || {
                    let mut w = Writer::new(dest, options);
                    loop {
                        let start = next.fetch_add(64, std::sync::atomic::Ordering::Relaxed);
                        if start >= parallel.len() || cancel.is_cancelled() {
                            break;
                        }
                        for &i in &parallel[start..(start + 64).min(parallel.len())] {
                            let entry = &entries[i];
                            if entry.node.kind == NodeKind::File {
                                w.at = i;
                                let path = dest.join(&entry.rel);
                                let there = path.symlink_metadata().ok();
                                let same =
                                    there.as_ref().is_some_and(|m| kind_of(m) == NodeKind::File);
                                let name = shown(&entry.rel, NodeKind::File);
                                if let Err(e) =
                                    w.file(src, entry, &path, there.as_ref(), same, name)
                                {
                                    w.summary.errors.push(format!("{}: {e}", path.display()));
                                }
                            } else {
                                w.run(i, src, entry);
                            }
                        }
                    }
                    w
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a mirror worker panicked"))
            .collect()
    });
    for part in parts {
        writer.absorb(part);
    }
    if cancel.is_cancelled() {
        return Err(EngineError::Interrupted("the mirror was interrupted"));
    }
    for i in followers {
        writer.run(i, &src, &entries[i]);
    }
    let mut dirs = std::mem::take(&mut writer.dirs);
    let mut changes = std::mem::take(&mut writer.changes);
    changes.sort_by_key(|(i, _)| *i);
    summary.absorb(writer.summary);
    summary.changes.extend(changes.into_iter().map(|(_, l)| l));
    // Directories last, deepest first, then DEST itself as SRC is.
    dirs.reverse();
    if let Some(root) = root_node {
        dirs.push((PathBuf::new(), root, root_before));
    }
    // Which folders need their metadata set, read on every core; then set
    // in order, deepest first (setting changes nothing below).
    let needed: Vec<bool> = match options.dry_run {
        true => vec![false; dirs.len()],
        false => pool.install(|| {
            use rayon::prelude::*;
            dirs.par_iter()
                .map(|(rel, node, _)| !attrs(&dest.join(rel), node).none())
                .collect()
        }),
    };
    for ((rel, node, before), needed) in dirs.into_iter().zip(needed) {
        let path = dest.join(&rel);
        // Told as they differed before the mirror wrote inside them; a
        // folder created now was told as created.
        if let Some(differs) = before.filter(|d| !d.none()) {
            summary.attributes_updated += 1;
            if options.itemize {
                let name = if rel.as_os_str().is_empty() {
                    "./".to_string()
                } else {
                    shown(&rel, NodeKind::Dir)
                };
                summary.changes.push(line(
                    Update::Attributes,
                    NodeKind::Dir,
                    false,
                    differs,
                    &name,
                ));
            }
        }
        if needed {
            if let Err(e) = set_metadata(&path, &node) {
                summary.errors.push(format!("{}: {e}", path.display()));
            }
        }
    }
    if options.verify && !options.dry_run {
        let (verified, problems) =
            pool.install(|| verify(&src, &dest, &entries, &errors, options))?;
        summary.verified = verified;
        summary.verify_problems = problems;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// `path` with its longest existing ancestor resolved (symlinks followed).
fn resolve_existing(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = at.canonicalize() {
            return rest.iter().rev().fold(real, |p, n: &&OsStr| p.join(n));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}
