//! Restore: write a snapshot (or part of it) back to the file system, into a
//! new directory or in place over an existing one.
//!
//! Directories and special files are created while walking the trees; file
//! contents are written by worker threads; hard links, deletions and
//! directory metadata come last, deepest directory first, so that writing
//! children does not disturb them. A file is rebuilt beside its target and
//! renamed over it, so no file is ever left holding wrong or partial bytes;
//! files already identical are not touched.

mod file;
pub(crate) mod metadata;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind};
use bunker_source::{PatternSet, ProtectedPaths, ReachablePath};
use crossbeam_channel::bounded;

pub use file::verify_file;
use file::FileOutcome;

use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::walk_tree::find_node;
use crate::{EngineError, Result};

/// When an existing file may be replaced by the snapshot's version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Always write the snapshot's version.
    Always,
    /// Only when the content differs (the default): identical files are left untouched.
    #[default]
    IfChanged,
    /// Only when the snapshot's file is newer than the existing one.
    IfNewer,
    /// Never replace an existing file.
    Never,
}

/// What to restore, and where.
#[derive(Default)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Path inside the snapshot whose content is restored (`/` for all).
    pub subpath: String,
    /// If not empty, restore only paths matching these (and their contents).
    pub includes: PatternSet,
    /// Leave out paths matching these.
    pub excludes: PatternSet,
    /// Re-read every restored file and check it against the snapshot.
    pub verify: bool,
    /// Which existing files to replace.
    pub overwrite: Overwrite,
    /// Remove what the target has and the snapshot does not.
    pub delete: bool,
    /// Decide everything, change nothing; list the changes.
    pub dry_run: bool,
    /// Never write into, over or delete these: the repository being read,
    /// its cache, bunker's key and config files.
    pub protected: ProtectedPaths,
}

/// What a restore did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct RestoreSummary {
    /// Regular files written (created or rewritten).
    pub files: u64,
    /// Existing files already identical, left untouched.
    pub unchanged: u64,
    /// Existing files kept because of `--overwrite`.
    pub kept: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks and other special files created.
    pub specials: u64,
    /// Entries removed by `delete`.
    pub deleted: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Bytes of rewritten files taken from the old local copy instead of the repository.
    pub reused_bytes: u64,
    /// Files checked against the snapshot (with `verify`).
    pub verified: u64,
    /// In a dry run: each change, marked `+` new, `M` rewritten, `-` removed.
    pub changes: Vec<(char, String)>,
    /// Problems, one line each, naming the path.
    pub errors: Vec<String>,
    /// Things left alone on purpose (a protected path in the way), one line each.
    pub warnings: Vec<String>,
    /// Seconds reading file content from the repository (fetch, decrypt,
    /// decompress), summed over the restore's threads.
    pub read_seconds: f64,
    /// Seconds writing file content, summed over the threads.
    pub write_seconds: f64,
    /// Seconds re-reading restored files to verify them, summed over the threads.
    pub verify_seconds: f64,
}

/// Time spent per phase of file restores, summed over threads.
#[derive(Default)]
pub(crate) struct PhaseClock {
    read: AtomicU64,
    write: AtomicU64,
    verify: AtomicU64,
}

impl PhaseClock {
    /// Runs `f`, adding its duration to `phase`.
    fn time<T>(phase: &AtomicU64, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        phase.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce() -> T) -> T {
        Self::time(&self.read, f)
    }

    pub(crate) fn write<T>(&self, f: impl FnOnce() -> T) -> T {
        Self::time(&self.write, f)
    }

    fn into_summary(self, summary: &mut RestoreSummary) {
        let secs = |n: AtomicU64| n.into_inner() as f64 / 1e9;
        summary.read_seconds = secs(self.read);
        summary.write_seconds = secs(self.write);
        summary.verify_seconds = secs(self.verify);
    }
}

struct FileTask {
    target: PathBuf,
    node: Node,
}

#[derive(Default)]
struct Plan {
    files: Vec<FileTask>,
    /// Later members of hard-link groups: (first member's target, this target).
    links: Vec<(PathBuf, PathBuf)>,
    /// First restored target of each hard-link group, by (device, inode) at backup time.
    link_groups: HashMap<(u64, u64), PathBuf>,
    /// Directories to give their metadata at the end, parents before children.
    dirs: Vec<(PathBuf, Node)>,
    /// Entries of the target that the snapshot does not have.
    deletions: Vec<PathBuf>,
    summary: RestoreSummary,
}

/// Restores according to `options`.
pub fn restore(
    repo: Arc<Repository<Indexed>>,
    root: &BlobId,
    options: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreSummary> {
    if options.delete && !options.includes.patterns().is_empty() {
        return Err(EngineError::Invalid(
            "--delete cannot be combined with --include".into(),
        ));
    }
    // Long paths are reached from the root (see `ReachablePath`).
    let absolute =
        std::path::absolute(&options.target).map_err(|e| EngineError::io(&options.target, e))?;
    let options = &RestoreOptions {
        target: absolute,
        subpath: options.subpath.clone(),
        includes: options.includes.clone(),
        excludes: options.excludes.clone(),
        protected: options.protected.clone(),
        ..*options
    };
    if let Some(p) = options.protected.containing(&options.target) {
        return Err(EngineError::Invalid(format!(
            "refusing to restore into {}: it is (or is inside) {}, which a restore must never overwrite",
            options.target.display(),
            p.display()
        )));
    }
    let start = find_node(&repo, root, &options.subpath)?;
    if !options.dry_run {
        std::fs::create_dir_all(&options.target)
            .map_err(|e| EngineError::io(&options.target, e))?;
    }
    let mut plan = Plan::default();
    let base = options.subpath.trim_end_matches('/').to_string();
    match (start.kind, start.subtree) {
        (NodeKind::Dir, Some(subtree)) => {
            let included = options.includes.patterns().is_empty();
            // The target stands for the restored directory and gets its
            // metadata, unless that is the snapshot's root, which has none.
            if included && !base.is_empty() {
                plan.dirs.push((options.target.clone(), start.clone()));
            }
            plan_tree(
                &repo,
                &subtree,
                &base,
                &options.target,
                included,
                options,
                &mut plan,
            )?;
        }
        // A single file is restored into the target directory, by its name.
        _ => {
            let dest = options.target.join(OsStr::from_bytes(&start.name));
            plan_node(&repo, start, &base, &dest, true, options, &mut plan)?;
        }
    }
    let total: u64 = plan.files.iter().map(|f| f.node.size).sum();
    progress.set_total(plan.files.len() as u64, total);

    let Plan {
        files,
        links,
        dirs,
        deletions,
        mut summary,
        ..
    } = plan;
    let shared = Mutex::new(summary);
    let clock = PhaseClock::default();
    run_workers(&repo, files, options, &*progress, &shared, &clock);
    summary = shared.into_inner().expect("lock");
    clock.into_summary(&mut summary);
    if repo.cancel().is_cancelled() {
        return Err(EngineError::Interrupted(
            "the files restored so far are complete; run the restore again to finish",
        ));
    }
    for (first, dest) in links {
        let exists =
            ReachablePath::new(&dest).is_ok_and(|r| std::fs::symlink_metadata(r.path()).is_ok());
        if options.dry_run {
            if !exists {
                summary.changes.push(('+', dest.display().to_string()));
            }
            continue;
        }
        match relink(&first, &dest) {
            Ok(()) => summary.files += 1,
            Err(e) => summary.errors.push(format!("{}: {e}", dest.display())),
        }
    }
    for path in deletions {
        summary.deleted += 1;
        if options.dry_run {
            summary.changes.push(('-', path.display().to_string()));
            continue;
        }
        let removed =
            ReachablePath::new(&path).and_then(|r| match std::fs::symlink_metadata(r.path()) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(r.path()),
                Ok(_) => std::fs::remove_file(r.path()),
                Err(e) => Err(e),
            });
        if let Err(e) = removed {
            summary
                .errors
                .push(format!("{}: cannot remove: {e}", path.display()));
        }
    }
    if !options.dry_run {
        for (path, node) in dirs.iter().rev() {
            if let Err(e) = ReachablePath::new(path).and_then(|r| metadata::apply(r.path(), node)) {
                summary.errors.push(format!("{}: {e}", path.display()));
            }
        }
    }
    summary.changes.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(summary)
}

/// Restores file contents on all cores.
/// Files at least this large are restored apart from their directory's batch.
const LARGE_FILE: u64 = 4 << 20;

fn run_workers(
    repo: &Repository<Indexed>,
    files: Vec<FileTask>,
    options: &RestoreOptions,
    progress: &dyn Progress,
    summary: &Mutex<RestoreSummary>,
    clock: &PhaseClock,
) {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    // Work goes out a directory at a time: two threads creating files in
    // one directory contend for its lock in the kernel (measured: a quarter
    // of the CPU of a 118,000-file restore spun on it).
    let (tx, rx) = bounded::<Vec<FileTask>>(workers * 2);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = rx.clone();
            scope.spawn(move || {
                for task in rx.into_iter().flatten() {
                    if repo.cancel().is_cancelled() {
                        break;
                    }
                    let result = restore_file(repo, &task, options, progress, clock);
                    let mut s = summary.lock().expect("lock");
                    let path = task.target.display().to_string();
                    match result {
                        Ok(outcome) => {
                            match outcome {
                                FileOutcome::Created | FileOutcome::Rewritten { .. } => {
                                    s.files += 1;
                                    s.bytes += task.node.size;
                                }
                                FileOutcome::Unchanged => s.unchanged += 1,
                                FileOutcome::Kept => s.kept += 1,
                                FileOutcome::Protected => {
                                    s.kept += 1;
                                    s.warnings.push(protected_note(&path));
                                }
                            }
                            match outcome {
                                FileOutcome::Created if options.dry_run => {
                                    s.changes.push(('+', path))
                                }
                                FileOutcome::Rewritten { .. } if options.dry_run => {
                                    s.changes.push(('M', path))
                                }
                                _ => {}
                            }
                            if let FileOutcome::Rewritten { reused } = outcome {
                                s.reused_bytes += reused;
                            }
                            if options.verify
                                && !options.dry_run
                                && !matches!(outcome, FileOutcome::Kept | FileOutcome::Protected)
                            {
                                s.verified += 1;
                            }
                        }
                        Err(e) => {
                            let message = naming(&path, &e);
                            progress.warning(&message);
                            s.errors.push(message);
                        }
                    }
                    drop(s);
                    progress.advance(1, 0);
                }
            });
        }
        let mut batch: Vec<FileTask> = Vec::new();
        for task in files {
            // A large file is its own batch: its creation is a small part of
            // its work, and batched with its neighbours, a directory of
            // large files (VM images, media) went to one thread.
            if task.node.size >= LARGE_FILE {
                if tx.send(vec![task]).is_err() {
                    return;
                }
                continue;
            }
            if batch
                .last()
                .is_some_and(|last| last.target.parent() != task.target.parent())
                && tx.send(std::mem::take(&mut batch)).is_err()
            {
                return;
            }
            batch.push(task);
        }
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
    });
}

fn restore_file(
    repo: &Repository<Indexed>,
    task: &FileTask,
    options: &RestoreOptions,
    progress: &dyn Progress,
    clock: &PhaseClock,
) -> Result<FileOutcome> {
    let outcome = file::restore_content(repo, &task.target, &task.node, options, progress, clock)?;
    if options.dry_run || matches!(outcome, FileOutcome::Kept | FileOutcome::Protected) {
        return Ok(outcome);
    }
    let reach = ReachablePath::new(&task.target).map_err(|e| EngineError::io(&task.target, e))?;
    if options.verify && outcome != FileOutcome::Unchanged {
        let verified = PhaseClock::time(&clock.verify, || {
            verify_file(repo, &task.target, &task.node.content)
        });
        if let Err(e) = verified {
            // Never leave a file that looks restored but holds wrong bytes.
            let _ = std::fs::remove_file(reach.path());
            return Err(e);
        }
    }
    if outcome != FileOutcome::Unchanged || !metadata::matches(reach.path(), &task.node) {
        metadata::apply(reach.path(), &task.node).map_err(|e| EngineError::io(&task.target, e))?;
    }
    Ok(outcome)
}

/// A directory whose entries are being planned.
struct DirFrame {
    nodes: std::vec::IntoIter<Node>,
    prefix: String,
    target: PathBuf,
    included: bool,
    /// Its entries' names, for `delete`.
    names: HashSet<Vec<u8>>,
    /// Its listing could not be read: nothing in the target is deleted.
    damaged: bool,
    /// Its own node, to give its metadata once its entries are planned.
    node: Option<Node>,
}

/// Plans everything below the directory tree `tree`, restored at `target`.
/// The walk keeps its own stack, so a tree of any depth is safe.
fn plan_tree(
    repo: &Repository<Indexed>,
    tree: &BlobId,
    prefix: &str,
    target: &Path,
    included: bool,
    options: &RestoreOptions,
    plan: &mut Plan,
) -> Result<()> {
    let mut stack = vec![open_dir(repo, tree, prefix, target, included, None, plan)?];
    while let Some(top) = stack.last_mut() {
        match top.nodes.next() {
            Some(node) => {
                let path = format!("{}/{}", top.prefix, node.name_lossy());
                let dest = top.target.join(OsStr::from_bytes(&node.name));
                top.names.insert(node.name.clone());
                let included = top.included;
                if let Some(frame) = plan_node(repo, node, &path, &dest, included, options, plan)? {
                    stack.push(frame);
                }
            }
            None => {
                let done = stack.pop().expect("not empty");
                if options.delete && done.included && !done.damaged {
                    plan_deletions(&done.target, &done.prefix, &done.names, options, plan);
                }
                if let Some(node) = done.node {
                    plan.dirs.push((done.target, node));
                }
            }
        }
    }
    Ok(())
}

/// Loads a directory's entries; a damaged listing restores everything else
/// and names the directory.
fn open_dir(
    repo: &Repository<Indexed>,
    tree: &BlobId,
    prefix: &str,
    target: &Path,
    included: bool,
    node: Option<Node>,
    plan: &mut Plan,
) -> Result<DirFrame> {
    let (nodes, damaged) = match repo.load_tree(tree) {
        Ok(t) => (t.nodes, false),
        Err(
            e @ (EngineError::Corrupt { .. }
            | EngineError::BlobMissing { .. }
            | EngineError::Backend(_)),
        ) => {
            plan.summary.errors.push(format!(
                "{}: directory not restored, its listing is damaged in the repository: {e}",
                target.display()
            ));
            (Vec::new(), true)
        }
        Err(e) => return Err(e),
    };
    Ok(DirFrame {
        nodes: nodes.into_iter(),
        prefix: prefix.to_string(),
        target: target.to_path_buf(),
        included,
        names: HashSet::new(),
        damaged,
        node,
    })
}

/// Entries of the target directory that the snapshot's directory lacks;
/// excluded paths are left alone.
fn plan_deletions(
    target: &Path,
    prefix: &str,
    names: &HashSet<Vec<u8>>,
    options: &RestoreOptions,
    plan: &mut Plan,
) {
    let Ok(entries) = ReachablePath::new(target).and_then(|r| std::fs::read_dir(r.path())) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if names.contains(name.as_bytes()) || name.as_bytes().starts_with(b".bunker-restore-") {
            continue;
        }
        let path = format!("{prefix}/{}", name.to_string_lossy());
        if options.excludes.matches(Path::new(&path)) {
            continue;
        }
        let dest = target.join(&name);
        let protected = entry.metadata().is_ok_and(|m| {
            options.protected.is(&m).is_some() || (m.is_dir() && options.protected.holds(&m))
        });
        match protected {
            true => plan
                .summary
                .warnings
                .push(protected_note(&dest.display().to_string())),
            false => plan.deletions.push(dest),
        }
    }
}

/// Plans one entry; a directory comes back as the frame of its entries.
fn plan_node(
    repo: &Repository<Indexed>,
    node: Node,
    path: &str,
    dest: &Path,
    included: bool,
    options: &RestoreOptions,
    plan: &mut Plan,
) -> Result<Option<DirFrame>> {
    if options.excludes.matches(Path::new(path)) {
        return Ok(None);
    }
    let parent_included = included;
    let included = included || options.includes.matches(Path::new(path));
    // Directories are created top-down as the walk enters them; only where an
    // include pattern first matches below unselected directories do the
    // parents need creating here.
    if included && !parent_included && !options.dry_run {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
        }
    }
    match node.kind {
        NodeKind::Dir => {
            if included && !plan_dir(dest, options, plan)? {
                return Ok(None);
            }
            let subtree = node
                .subtree
                .expect("decoded trees have a subtree on every directory");
            let own = included.then_some(node);
            return open_dir(repo, &subtree, path, dest, included, own, plan).map(Some);
        }
        _ if !included => {}
        NodeKind::File if node.links > 1 => match plan.link_groups.entry((node.device, node.inode))
        {
            Entry::Occupied(first) => plan.links.push((first.get().clone(), dest.to_path_buf())),
            Entry::Vacant(slot) => {
                slot.insert(dest.to_path_buf());
                plan.files.push(FileTask {
                    target: dest.to_path_buf(),
                    node,
                });
            }
        },
        NodeKind::File => plan.files.push(FileTask {
            target: dest.to_path_buf(),
            node,
        }),
        NodeKind::Socket => {}
        _ => plan_special(dest, &node, options, plan),
    }
    Ok(None)
}

/// Makes sure a directory exists at `dest`, replacing a non-directory there.
/// False if `dest` is a protected directory, which is left alone.
fn plan_dir(real: &Path, options: &RestoreOptions, plan: &mut Plan) -> Result<bool> {
    let reach = ReachablePath::new(real).map_err(|e| EngineError::io(real, e))?;
    let dest = reach.path();
    match std::fs::symlink_metadata(dest) {
        Ok(m) if options.protected.is(&m).is_some() => {
            plan.summary
                .warnings
                .push(protected_note(&real.display().to_string()));
            return Ok(false);
        }
        Ok(m) if m.is_dir() => return Ok(true),
        Ok(_) if !options.dry_run => {
            std::fs::remove_file(dest).map_err(|e| EngineError::io(real, e))?
        }
        _ => {}
    }
    plan.summary.dirs += 1;
    if options.dry_run {
        plan.summary
            .changes
            .push(('+', format!("{}/", real.display())));
        return Ok(true);
    }
    std::fs::create_dir(dest).map_err(|e| EngineError::io(real, e))?;
    Ok(true)
}

/// Why a path was left alone.
fn protected_note(path: &str) -> String {
    format!("{path}: left alone: it is (or holds) the repository being read, or bunker's own keys or cache")
}

/// An error's message, naming `path` once.
fn naming(path: &str, e: &EngineError) -> String {
    let text = e.to_string();
    match text.contains(path) {
        true => text,
        false => format!("{path}: {text}"),
    }
}

fn plan_special(real: &Path, node: &Node, options: &RestoreOptions, plan: &mut Plan) {
    let reach = match ReachablePath::new(real) {
        Ok(r) => r,
        Err(e) => return plan.summary.errors.push(format!("{}: {e}", real.display())),
    };
    let dest = reach.path();
    let same = node.kind == NodeKind::Symlink
        && std::fs::read_link(dest)
            .is_ok_and(|t| t.as_os_str().as_bytes() == node.link_target.as_slice())
        && metadata::matches(dest, node);
    if same {
        return;
    }
    plan.summary.specials += 1;
    if options.dry_run {
        plan.summary.changes.push(('+', real.display().to_string()));
        return;
    }
    if let Err(e) = metadata::create_special(dest, node).and_then(|()| metadata::apply(dest, node))
    {
        plan.summary.errors.push(format!("{}: {e}", real.display()));
    }
}

/// Makes `dest` another name of `first`.
fn relink(first: &Path, dest: &Path) -> std::io::Result<()> {
    let (first, dest) = (ReachablePath::new(first)?, ReachablePath::new(dest)?);
    let (first, dest) = (first.path(), dest.path());
    if std::fs::symlink_metadata(dest).is_ok() {
        std::fs::remove_file(dest)?;
    }
    std::fs::hard_link(first, dest)
}
