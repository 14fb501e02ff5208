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

mod copy;
pub mod itemize;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bunker_format::tree::{Node, NodeKind};
use bunker_source::{node_from_metadata, WalkOptions};

use crate::restore::metadata::{apply, create_special, is_root, remove_extra_xattrs};
use crate::{Cancel, EngineError, Result};
use itemize::{line, Attrs, Update};

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
    fn absorb(&mut self, other: MirrorSummary) {
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
        self.changes.extend(other.changes);
    }
}

/// One entry of SRC, by its path relative to SRC.
struct Entry {
    rel: PathBuf,
    node: Node,
}

/// Re-reads DEST and compares it with what SRC held: every entry's type,
/// attributes, link target and bytes, and (when deleting) nothing extra.
/// Returns the entries checked and what differs.
fn verify(
    src: &Path,
    dest: &Path,
    entries: &[Entry],
    errors: &[(PathBuf, String)],
    options: &MirrorOptions,
) -> Result<(u64, Vec<String>)> {
    use rayon::prelude::*;
    let mut problems: Vec<String> = entries
        .par_iter()
        .filter(|e| e.node.kind != NodeKind::Socket)
        .filter_map(|e| {
            let path = dest.join(&e.rel);
            let m = match path.symlink_metadata() {
                Ok(m) => m,
                Err(err) => return Some(format!("{}: {err}", path.display())),
            };
            if kind_of(&m) != e.node.kind {
                return Some(format!("{}: not a {}", path.display(), e.node.kind.name()));
            }
            let differs = attrs_of(&path, &e.node, Some(&m));
            if !differs.none() {
                return Some(format!(
                    "{}: attributes differ ({differs:?})",
                    path.display()
                ));
            }
            let same = match e.node.kind {
                NodeKind::File => same_content(&src.join(&e.rel), &path).unwrap_or(false),
                NodeKind::Symlink => std::fs::read_link(&path)
                    .is_ok_and(|t| t.as_os_str().as_bytes() == e.node.link_target),
                _ => true,
            };
            (!same).then(|| {
                format!(
                    "{}: content differs from {}",
                    path.display(),
                    src.join(&e.rel).display()
                )
            })
        })
        .collect();
    if options.delete {
        let mut scratch = MirrorSummary::default();
        for (extra, _) in plan_deletions(src, dest, entries, errors, options, &mut scratch)? {
            problems.push(format!("{}: not in the source", extra.display()));
        }
    }
    problems.sort();
    Ok((entries.len() as u64, problems))
}

/// What was found in SRC: its own node, its entries in walk order (a
/// folder before what it holds, names in byte order) and what could not
/// be read, by path relative to SRC.
struct Scanned {
    root: Node,
    entries: Vec<Entry>,
    errors: Vec<(PathBuf, String)>,
}

/// The entries of folder `dir`, in name-byte order.
fn sorted_children(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    out.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    Ok(out)
}

/// Scans SRC with every core: each folder's entries are looked at in
/// parallel, and put back in order.
fn scan(src: &Path, selection: &WalkOptions, cancel: &Cancel) -> Result<Scanned> {
    let meta = src.symlink_metadata().map_err(io(src))?;
    let root = node_from_metadata(src, &meta).map_err(io(src))?;
    let (entries, errors) = scan_dir(src, src, meta.dev(), selection, cancel);
    if cancel.is_cancelled() {
        return Err(EngineError::Interrupted("the mirror was interrupted"));
    }
    Ok(Scanned {
        root,
        entries,
        errors,
    })
}

type ScanPart = (Vec<Entry>, Vec<(PathBuf, String)>);

fn scan_dir(
    src: &Path,
    dir: &Path,
    dev: u64,
    selection: &WalkOptions,
    cancel: &Cancel,
) -> ScanPart {
    use rayon::prelude::*;
    let rel = |p: &Path| p.strip_prefix(src).unwrap_or(p).to_path_buf();
    let children = match sorted_children(dir) {
        Ok(c) => c,
        Err(e) => return (Vec::new(), vec![(rel(dir), e.to_string())]),
    };
    let parts: Vec<ScanPart> = children
        .par_iter()
        .map(|path| {
            if cancel.is_cancelled() || selection.excludes.matches(path) {
                return (Vec::new(), Vec::new());
            }
            let node = match path
                .symlink_metadata()
                .and_then(|m| node_from_metadata(path, &m).map(|n| (n, m.dev())))
            {
                Ok(n) => n,
                Err(e) => return (Vec::new(), vec![(rel(path), e.to_string())]),
            };
            let (node, on) = node;
            let descend = node.kind == NodeKind::Dir && !(selection.one_file_system && on != dev);
            let mut entries = vec![Entry {
                rel: rel(path),
                node,
            }];
            if descend {
                let (below, errors) = scan_dir(src, path, dev, selection, cancel);
                entries.extend(below);
                return (entries, errors);
            }
            (entries, Vec::new())
        })
        .collect();
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (e, r) in parts {
        entries.extend(e);
        errors.extend(r);
    }
    (entries, errors)
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

/// Mirrors `src` into `dest` according to `options`; `cancel` stops it
/// between entries (each file already written is whole).
pub fn mirror(
    src: &Path,
    dest: &Path,
    options: &MirrorOptions,
    cancel: &Cancel,
) -> Result<MirrorSummary> {
    let started = Instant::now();
    let src = src.canonicalize().map_err(io(src))?;
    if !src.is_dir() {
        return Err(EngineError::Invalid(format!(
            "{} is not a folder",
            src.display()
        )));
    }
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

    // One pool of threads for this mirror (a daemon may run several).
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("bunker-mirror-{i}"))
        .build()
        .map_err(|e| EngineError::Invalid(format!("cannot start the mirror's threads: {e}")))?;
    let Scanned {
        root,
        entries,
        errors,
    } = pool.install(|| scan(&src, &options.selection, cancel))?;
    let root_node = Some(root);
    let mut summary = MirrorSummary {
        errors: errors
            .iter()
            .map(|(p, e)| format!("{}: {e}", src.join(p).display()))
            .collect(),
        ..Default::default()
    };

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
    for (rel, node, before) in dirs {
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
        if !options.dry_run && !attrs(&path, &node).none() {
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

/// Removes a file, link or whole folder.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// How many entries removing `path` removes (itself and all below).
fn count_below(path: &Path) -> u64 {
    let mut n = 1;
    if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        if let Ok(read) = std::fs::read_dir(path) {
            for e in read.flatten() {
                n += count_below(&e.path());
            }
        }
    }
    n
}

/// DEST's entries that SRC lacks, folder by folder, with how many entries
/// each removal takes; none in folders above an entry that could not be
/// read, and none that the excludes cover (they are not SRC's to decide).
fn plan_deletions(
    src: &Path,
    dest: &Path,
    entries: &[Entry],
    errors: &[(PathBuf, String)],
    options: &MirrorOptions,
    summary: &mut MirrorSummary,
) -> Result<Vec<(PathBuf, u64)>> {
    let mut children: HashMap<&Path, HashSet<&OsStr>> = HashMap::new();
    let mut dirs: Vec<&Path> = vec![Path::new("")];
    for e in entries {
        let parent = e.rel.parent().unwrap_or(Path::new(""));
        if let Some(name) = e.rel.file_name() {
            children.entry(parent).or_default().insert(name);
        }
        if e.node.kind == NodeKind::Dir {
            dirs.push(&e.rel);
        }
    }
    use rayon::prelude::*;
    // Each folder of DEST is read on its own (on every core).
    // Per folder: held back (`None`), or what goes with how many entries each.
    type Doomed = Option<Result<Vec<(PathBuf, u64)>>>;
    let found: Vec<Doomed> = dirs
        .par_iter()
        .map(|dir| {
            if errors.iter().any(|(p, _)| p.starts_with(dir)) {
                return None;
            }
            let there = dest.join(dir);
            if !there.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                return Some(Ok(Vec::new()));
            }
            let read = match std::fs::read_dir(&there) {
                Ok(r) => r,
                Err(e) => return Some(Err(EngineError::io(&there, e))),
            };
            let mut names: Vec<_> = read.flatten().map(|e| e.file_name()).collect();
            names.sort();
            let keep = children.get(dir);
            let doomed = names
                .into_iter()
                .filter(|name| !keep.is_some_and(|k| k.contains(name.as_os_str())))
                .filter(|name| {
                    !options
                        .selection
                        .excludes
                        .matches(&src.join(dir).join(name))
                })
                .map(|name| {
                    let path = there.join(&name);
                    let n = count_below(&path);
                    (path, n)
                })
                .collect();
            Some(Ok(doomed))
        })
        .collect();
    let mut out = Vec::new();
    for f in found {
        match f {
            None => summary.deletions_held_back += 1,
            Some(list) => out.extend(list?),
        }
    }
    Ok(out)
}

/// What differs between `path` (in DEST) and `node`, as far as a mirror
/// keeps it (owners only when root).
fn attrs(path: &Path, node: &Node) -> Attrs {
    attrs_of(path, node, path.symlink_metadata().ok().as_ref())
}

/// [`attrs`] with `path`'s metadata already read.
fn attrs_of(path: &Path, node: &Node, m: Option<&std::fs::Metadata>) -> Attrs {
    let Some(m) = m else {
        return Attrs {
            time: true,
            ..Default::default()
        };
    };
    let root = is_root();
    let xattrs = if node.kind == NodeKind::Symlink {
        (Vec::new(), Vec::new())
    } else {
        split_xattrs(path, node)
    };
    Attrs {
        checksum: false,
        size: node.kind == NodeKind::File && m.size() != node.size,
        // As rsync shows it: whole seconds, unless nothing else tells the
        // files apart (a file is copied on any difference, to the ns).
        time: node.kind != NodeKind::Symlink
            && (m.mtime() != node.mtime_sec
                || (m.mtime_nsec() as u32 != node.mtime_nsec
                    && (node.kind != NodeKind::File || m.size() == node.size))),
        perms: node.kind != NodeKind::Symlink && m.mode() & 0o7777 != node.mode,
        owner: root && m.uid() != node.uid,
        group: root && m.gid() != node.gid,
        acl: xattrs.0 != xattrs.1 && acl_differs(path, node),
        xattrs: xattrs.0 != xattrs.1 && other_xattrs_differ(path, node),
    }
}

/// The extended attributes `path` has and the ones `node` has, as
/// comparable sorted lists (only those this process may set).
/// Extended attributes as sorted (name, value) pairs.
type XattrList = Vec<(Vec<u8>, Vec<u8>)>;

fn split_xattrs(path: &Path, node: &Node) -> (XattrList, XattrList) {
    let root = is_root();
    let allowed =
        |name: &[u8]| root || !(name.starts_with(b"security.") || name.starts_with(b"trusted."));
    let mut have: XattrList = xattr::list(path)
        .map(|names| {
            names
                .filter(|n| allowed(n.as_bytes()))
                .filter_map(|n| {
                    xattr::get(path, &n)
                        .ok()
                        .flatten()
                        .map(|v| (n.as_bytes().to_vec(), v))
                })
                .collect()
        })
        .unwrap_or_default();
    have.sort();
    let mut want: XattrList = node
        .xattrs
        .iter()
        .filter(|x| allowed(&x.name))
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    want.sort();
    (have, want)
}

fn is_acl(name: &[u8]) -> bool {
    name.starts_with(b"system.posix_acl_")
}

fn xattrs_where(path: &Path, node: &Node, keep: fn(&[u8]) -> bool) -> bool {
    let (have, want) = split_xattrs(path, node);
    let pick =
        |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().filter(|(n, _)| keep(n)).collect::<Vec<_>>();
    pick(have) != pick(want)
}

fn acl_differs(path: &Path, node: &Node) -> bool {
    xattrs_where(path, node, is_acl)
}

fn other_xattrs_differ(path: &Path, node: &Node) -> bool {
    xattrs_where(path, node, |n| !is_acl(n))
}

/// Gives `path` the node's metadata, dropping extended attributes it lacks.
fn set_metadata(path: &Path, node: &Node) -> std::io::Result<()> {
    if node.kind != NodeKind::Symlink {
        remove_extra_xattrs(path, node)?;
    }
    apply(path, node)
}

/// Gives a file just written (open as `file`) the node's owner (when
/// root), extended attributes (none it lacks), mode and times, through its
/// descriptor: no path lookups, and the same order as `apply`.
fn file_metadata(file: &File, node: &Node) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use xattr::FileExt;
    let fd = file.as_raw_fd();
    let root = is_root();
    let m = file.metadata()?;
    // SAFETY: a valid descriptor and plain integers, for each call below.
    unsafe {
        if root
            && (m.uid(), m.gid()) != (node.uid, node.gid)
            && libc::fchown(fd, node.uid, node.gid) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    let privileged = |name: &[u8]| name.starts_with(b"security.") || name.starts_with(b"trusted.");
    for name in file.list_xattr()? {
        let bytes = name.as_bytes();
        if (root || !privileged(bytes)) && !node.xattrs.iter().any(|x| x.name == bytes) {
            file.remove_xattr(&name)?;
        }
    }
    for x in node.xattrs.iter().filter(|x| root || !privileged(&x.name)) {
        file.set_xattr(OsStr::from_bytes(&x.name), &x.value)?;
    }
    let mtime = libc::timespec {
        tv_sec: node.mtime_sec as libc::time_t,
        tv_nsec: node.mtime_nsec as libc::c_long,
    };
    // SAFETY: as above; the array holds two timespecs.
    unsafe {
        if m.mode() & 0o7777 != node.mode && libc::fchmod(fd, node.mode as libc::mode_t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::futimens(fd, [mtime, mtime].as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A name beside `path` for writing before the rename: unique to this
/// process and call (files are created with `create_new`, so a clash with
/// a stranger's file fails rather than overwrites).
fn temporary(path: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".bunker-mirror-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Writes SRC's entries into DEST.
struct Writer<'a> {
    dest: &'a Path,
    options: &'a MirrorOptions,
    summary: MirrorSummary,
    /// The entry being written (its index in walk order).
    at: usize,
    /// Itemized changes by entry index (merged in walk order).
    changes: Vec<(usize, String)>,
    /// First DEST path of each hard-link group of SRC, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    /// Folders whose metadata is set at the end, with what differed
    /// before the mirror (`None`: created by it).
    dirs: Vec<(PathBuf, Node, Option<Attrs>)>,
}

impl<'a> Writer<'a> {
    fn new(dest: &'a Path, options: &'a MirrorOptions) -> Self {
        Writer {
            dest,
            options,
            summary: MirrorSummary::default(),
            at: 0,
            changes: Vec::new(),
            links: HashMap::new(),
            dirs: Vec::new(),
        }
    }

    /// Writes entry `i`, keeping a failure as an error line.
    fn run(&mut self, i: usize, src: &Path, entry: &Entry) {
        self.at = i;
        if let Err(e) = self.entry(src, entry) {
            let path = self.dest.join(&entry.rel);
            self.summary.errors.push(format!("{}: {e}", path.display()));
        }
    }

    /// Takes in what another writer did.
    fn absorb(&mut self, other: Writer) {
        self.summary.absorb(other.summary);
        self.changes.extend(other.changes);
        self.dirs.extend(other.dirs);
    }

    fn note(&mut self, update: Update, kind: NodeKind, new: bool, a: Attrs, name: String) {
        if self.options.itemize {
            self.changes
                .push((self.at, line(update, kind, new, a, &name)));
        }
    }

    fn entry(&mut self, src: &Path, entry: &Entry) -> std::io::Result<()> {
        let node = &entry.node;
        let path = self.dest.join(&entry.rel);
        let there = path.symlink_metadata().ok();
        let same_kind = there.as_ref().is_some_and(|m| kind_of(m) == node.kind);
        let dry = self.options.dry_run;
        let name = shown(&entry.rel, node.kind);
        match node.kind {
            NodeKind::Dir => {
                let before = same_kind.then(|| attrs(&path, node));
                if !same_kind {
                    if !dry {
                        if there.is_some() {
                            remove_any(&path)?;
                        }
                        std::fs::create_dir(&path)?;
                    }
                    self.summary.created += 1;
                    self.note(Update::Created, node.kind, true, Attrs::default(), name);
                }
                self.dirs.push((entry.rel.clone(), node.clone(), before));
                Ok(())
            }
            NodeKind::File if node.links > 1 => {
                let key = (node.device, node.inode);
                match self.links.get(&key).cloned() {
                    Some(first) => {
                        let linked = there
                            .as_ref()
                            .zip(first.symlink_metadata().ok())
                            .is_some_and(|(a, b)| (a.dev(), a.ino()) == (b.dev(), b.ino()));
                        if !linked {
                            if !dry {
                                let tmp = temporary(&path);
                                std::fs::hard_link(&first, &tmp)?;
                                replace(&tmp, &path, there.as_ref())?;
                            }
                            self.summary.hard_links += 1;
                            let target = first.strip_prefix(self.dest).unwrap_or(&first);
                            let name = format!("{name} => {}", target.display());
                            self.note(Update::HardLink, node.kind, true, Attrs::default(), name);
                        }
                        Ok(())
                    }
                    // The first member (written with the other files).
                    None => self.file(src, entry, &path, there.as_ref(), same_kind, name),
                }
            }
            NodeKind::File => self.file(src, entry, &path, there.as_ref(), same_kind, name),
            NodeKind::Socket => Ok(()),
            _ => {
                let unchanged = same_kind
                    && match node.kind {
                        NodeKind::Symlink => std::fs::read_link(&path)
                            .is_ok_and(|t| t.as_os_str().as_bytes() == node.link_target),
                        _ => there.as_ref().is_some_and(|m| m.rdev() == node.rdev),
                    };
                if unchanged {
                    let differs = attrs_of(&path, node, there.as_ref());
                    return self.attributes_only(&path, node, differs, name);
                }
                if !dry {
                    let tmp = temporary(&path);
                    create_special(&tmp, node)?;
                    set_metadata(&tmp, node)?;
                    replace(&tmp, &path, there.as_ref())?;
                }
                self.summary.created += 1;
                let name = match node.kind {
                    NodeKind::Symlink => {
                        format!("{name} -> {}", String::from_utf8_lossy(&node.link_target))
                    }
                    _ => name,
                };
                self.note(
                    Update::Created,
                    node.kind,
                    there.is_none() || !same_kind,
                    attrs(&path, node),
                    name,
                );
                Ok(())
            }
        }
    }

    /// Brings `path`'s attributes (not content) to the node's.
    fn attributes_only(
        &mut self,
        path: &Path,
        node: &Node,
        differs: Attrs,
        name: String,
    ) -> std::io::Result<()> {
        if differs.none() {
            return Ok(());
        }
        if !self.options.dry_run {
            set_metadata(path, node)?;
        }
        self.summary.attributes_updated += 1;
        self.note(Update::Attributes, node.kind, false, differs, name);
        Ok(())
    }

    fn file(
        &mut self,
        src: &Path,
        entry: &Entry,
        path: &Path,
        there: Option<&std::fs::Metadata>,
        same_kind: bool,
        name: String,
    ) -> std::io::Result<()> {
        let node = &entry.node;
        let from = src.join(&entry.rel);
        let mut differs = if same_kind {
            attrs_of(path, node, there)
        } else {
            Attrs::default()
        };
        let time_differs = there.is_some_and(|m| {
            (m.mtime(), m.mtime_nsec() as u32) != (node.mtime_sec, node.mtime_nsec)
        });
        if same_kind && !differs.size && !time_differs {
            if !self.options.checksum || same_content(&from, path)? {
                return self.attributes_only(path, node, differs, name);
            }
            differs.checksum = true;
        }
        if !self.options.dry_run {
            let tmp = temporary(path);
            let written = (|| {
                let input = File::open(&from)?;
                let output = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)?;
                let copied = copy::copy_sparse(&input, &output, node.size)?;
                // Replacing a file: its new bytes reach the disk before the
                // rename, so a power cut leaves the old or the new version.
                // A new file has no old version to keep.
                if there.is_some() {
                    output.sync_all()?;
                }
                file_metadata(&output, node)?;
                drop(output);
                Ok::<u64, std::io::Error>(copied)
            })();
            match written {
                Ok(copied) => self.summary.bytes_copied += copied,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
            replace(&tmp, path, there)?;
        } else {
            self.summary.bytes_copied += node.size;
        }
        self.summary.files_copied += 1;
        self.note(Update::Sent, node.kind, !same_kind, differs, name);
        Ok(())
    }
}

/// Renames `tmp` over `path`, first removing a folder there (a rename
/// cannot replace one).
fn replace(tmp: &Path, path: &Path, there: Option<&std::fs::Metadata>) -> std::io::Result<()> {
    if there.is_some_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(tmp, path)
}

fn kind_of(m: &std::fs::Metadata) -> NodeKind {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_file() {
        NodeKind::File
    } else if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_char_device() {
        NodeKind::CharDevice
    } else if t.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::Socket
    }
}

/// True when the two files hold the same bytes.
fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
    fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}
