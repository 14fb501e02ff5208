//! Restore: write a snapshot (or part of it) back to the file system.
//!
//! Directories and special files are created while walking the trees; file
//! contents are written by worker threads; directory metadata is applied
//! last, deepest first, so writing children does not disturb it. A file whose
//! content cannot be read intact is removed and named, never left with
//! wrong bytes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bunker_format::blob::BlobType;
use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind};
use bunker_source::PatternSet;
use crossbeam_channel::bounded;

use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::walk_tree::find_node;
use crate::{EngineError, Result};

/// What to restore, and where.
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
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreSummary {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks and other special files created.
    pub specials: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Files re-read and found identical (with `verify`).
    pub verified: u64,
    /// Problems, one line each, naming the path.
    pub errors: Vec<String>,
}

struct FileTask {
    target: PathBuf,
    node: Node,
}

struct Plan {
    files: Vec<FileTask>,
    /// Later members of hard-link groups: (first member's target, this target).
    links: Vec<(PathBuf, PathBuf)>,
    /// First restored target of each hard-link group, by (device, inode) at backup time.
    link_groups: HashMap<(u64, u64), PathBuf>,
    /// Directories to give their metadata at the end, parents before children.
    dirs: Vec<(PathBuf, Node)>,
    summary: RestoreSummary,
}

/// Restores according to `options`.
pub fn restore(
    repo: Arc<Repository<Indexed>>,
    root: &BlobId,
    options: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreSummary> {
    let start = find_node(&repo, root, &options.subpath)?;
    std::fs::create_dir_all(&options.target).map_err(|e| EngineError::io(&options.target, e))?;
    let mut plan = Plan {
        files: Vec::new(),
        links: Vec::new(),
        link_groups: HashMap::new(),
        dirs: Vec::new(),
        summary: RestoreSummary::default(),
    };
    let base = options.subpath.trim_end_matches('/').to_string();
    match (start.kind, start.subtree) {
        (NodeKind::Dir, Some(subtree)) => {
            let included = options.includes.patterns().is_empty();
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
        _ => plan_node(
            &repo,
            start,
            &base,
            &options.target,
            true,
            options,
            &mut plan,
        )?,
    }
    let total: u64 = plan.files.iter().map(|f| f.node.size).sum();
    progress.set_total(plan.files.len() as u64, total);

    let Plan {
        files,
        links,
        dirs,
        mut summary,
        ..
    } = plan;
    let errors = Mutex::new(Vec::new());
    let (restored, bytes, verified) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let (tx, rx) = bounded::<FileTask>(workers * 4);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = rx.clone();
            let (repo, errors, progress) = (&repo, &errors, &progress);
            let (restored, bytes, verified) = (&restored, &bytes, &verified);
            scope.spawn(move || {
                for task in rx {
                    if crate::interrupt::requested() {
                        break;
                    }
                    match restore_file(repo, &task, options.verify, &**progress) {
                        Ok(()) => {
                            restored.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(task.node.size, Ordering::Relaxed);
                            if options.verify {
                                verified.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            let message = format!("{}: {e}", task.target.display());
                            progress.warning(&message);
                            errors.lock().expect("lock").push(message);
                        }
                    }
                    progress.advance(1, 0);
                }
            });
        }
        for task in files {
            if tx.send(task).is_err() {
                break;
            }
        }
        drop(tx);
    });
    // Hard links last among files: their first member has been written by now.
    if crate::interrupt::requested() {
        return Err(EngineError::Interrupted);
    }
    for (first, dest) in links {
        match relink(&first, &dest) {
            Ok(()) => {
                restored.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => errors
                .lock()
                .expect("lock")
                .push(format!("{}: {e}", dest.display())),
        }
    }
    for (path, node) in dirs.iter().rev() {
        if let Err(e) = apply_metadata(path, node) {
            errors
                .lock()
                .expect("lock")
                .push(format!("{}: {e}", path.display()));
        }
    }
    let mut errors = errors.into_inner().expect("lock");
    summary.files = restored.into_inner();
    summary.bytes = bytes.into_inner();
    summary.verified = verified.into_inner();
    summary.errors.append(&mut errors);
    Ok(summary)
}

fn child_path(prefix: &str, node: &Node) -> String {
    format!("{prefix}/{}", node.name_lossy())
}

#[allow(clippy::too_many_arguments)]
fn plan_tree(
    repo: &Repository<Indexed>,
    tree: &BlobId,
    prefix: &str,
    target: &Path,
    included: bool,
    options: &RestoreOptions,
    plan: &mut Plan,
) -> Result<()> {
    let tree = repo.load_tree(tree)?;
    for node in tree.nodes {
        let path = child_path(prefix, &node);
        let dest = target.join(OsStr::from_bytes(&node.name));
        plan_node(repo, node, &path, &dest, included, options, plan)?;
    }
    Ok(())
}

fn plan_node(
    repo: &Repository<Indexed>,
    node: Node,
    path: &str,
    dest: &Path,
    included: bool,
    options: &RestoreOptions,
    plan: &mut Plan,
) -> Result<()> {
    if options.excludes.matches(Path::new(path)) {
        return Ok(());
    }
    let parent_included = included;
    let included = included || options.includes.matches(Path::new(path));
    // Directories are created top-down as the walk enters them; only where an
    // include pattern first matches below unselected directories do the
    // parents need creating here.
    if included && !parent_included {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
        }
    }
    match node.kind {
        NodeKind::Dir => {
            if included {
                match std::fs::create_dir(dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dest.is_dir() => {}
                    Err(e) => return Err(EngineError::io(dest, e)),
                }
                plan.summary.dirs += 1;
            }
            let subtree = node
                .subtree
                .expect("decoded trees have a subtree on every directory");
            plan_tree(repo, &subtree, path, dest, included, options, plan)?;
            if included {
                plan.dirs.push((dest.to_path_buf(), node));
            }
        }
        _ if !included => {}
        NodeKind::File if node.links > 1 => {
            match plan.link_groups.entry((node.device, node.inode)) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    plan.links.push((first.get().clone(), dest.to_path_buf()))
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(dest.to_path_buf());
                    plan.files.push(FileTask {
                        target: dest.to_path_buf(),
                        node,
                    });
                }
            }
        }
        NodeKind::File => plan.files.push(FileTask {
            target: dest.to_path_buf(),
            node,
        }),
        NodeKind::Socket => {}
        _ => match create_special(dest, &node).and_then(|()| apply_metadata(dest, &node)) {
            Ok(()) => plan.summary.specials += 1,
            Err(e) => plan.summary.errors.push(format!("{}: {e}", dest.display())),
        },
    }
    Ok(())
}

fn create_special(dest: &Path, node: &Node) -> std::io::Result<()> {
    if std::fs::symlink_metadata(dest).is_ok() {
        std::fs::remove_file(dest)?;
    }
    match node.kind {
        NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.link_target), dest),
        NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
            let kind = match node.kind {
                NodeKind::Fifo => libc::S_IFIFO,
                NodeKind::CharDevice => libc::S_IFCHR,
                _ => libc::S_IFBLK,
            };
            let c = cstring(dest)?;
            // SAFETY: c is a valid NUL-terminated path.
            let rc = unsafe {
                libc::mknod(
                    c.as_ptr(),
                    kind | (node.mode & 0o777),
                    node.rdev as libc::dev_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }
        _ => Ok(()),
    }
}

fn restore_file(
    repo: &Repository<Indexed>,
    task: &FileTask,
    verify: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let result = write_content(repo, task, progress).and_then(|()| {
        if verify {
            verify_file(repo, &task.target, &task.node.content)
        } else {
            Ok(())
        }
    });
    if result.is_err() {
        // Never leave a file that looks restored but holds wrong or partial bytes.
        let _ = std::fs::remove_file(&task.target);
        return result;
    }
    apply_metadata(&task.target, &task.node).map_err(|e| EngineError::io(&task.target, e))
}

fn write_content(
    repo: &Repository<Indexed>,
    task: &FileTask,
    progress: &dyn Progress,
) -> Result<()> {
    if std::fs::symlink_metadata(&task.target).is_ok_and(|m| !m.is_file()) {
        std::fs::remove_file(&task.target).map_err(|e| EngineError::io(&task.target, e))?;
    }
    let file = File::create(&task.target).map_err(|e| EngineError::io(&task.target, e))?;
    let io = |e| EngineError::io(&task.target, e);
    // All-zero chunks are skipped, not written: holes in the source stay
    // holes (and runs of zeros become holes), as restic and rsync -S do.
    let mut offset = 0u64;
    for id in &task.node.content {
        let data = repo.read_blob(BlobType::Data, id)?;
        if !is_zero(&data) {
            file.write_all_at(&data, offset).map_err(io)?;
        }
        offset += data.len() as u64;
        progress.advance(0, data.len() as u64);
    }
    file.set_len(offset).map_err(io)?;
    Ok(())
}

/// True if every byte is zero (compared 16 bytes at a time).
fn is_zero(data: &[u8]) -> bool {
    let words = data.chunks_exact(16);
    let tail = words.remainder();
    words
        .map(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")))
        .all(|w| w == 0)
        && tail.iter().all(|b| *b == 0)
}

/// Makes `dest` another name of `first`.
fn relink(first: &Path, dest: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(dest).is_ok() {
        std::fs::remove_file(dest)?;
    }
    std::fs::hard_link(first, dest)
}

/// Re-reads a restored file and checks each chunk against its blob id.
pub fn verify_file(repo: &Repository<Indexed>, path: &Path, content: &[BlobId]) -> Result<()> {
    let mut file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut buf = Vec::new();
    for id in content {
        let loc = repo
            .index()
            .get(id)
            .ok_or_else(|| EngineError::BlobMissing {
                kind: "data",
                id: id.to_hex(),
            })?;
        buf.resize(loc.raw_length as usize, 0);
        file.read_exact(&mut buf)
            .map_err(|e| EngineError::io(path, e))?;
        if repo.keys().blob_id(&buf) != *id {
            return Err(EngineError::Invalid(format!(
                "{}: restored content differs from the snapshot",
                path.display()
            )));
        }
    }
    if file
        .read(&mut [0u8; 1])
        .map_err(|e| EngineError::io(path, e))?
        != 0
    {
        return Err(EngineError::Invalid(format!(
            "{}: restored file is longer than in the snapshot",
            path.display()
        )));
    }
    Ok(())
}

fn cstring(path: &Path) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))
}

/// Sets the node's extended attributes on `path`. `security.*` and
/// `trusted.*` need root and are restored only as root; Linux allows no
/// `user.*` attributes on symlinks.
fn apply_xattrs(path: &Path, node: &Node) -> std::io::Result<()> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    for x in &node.xattrs {
        let privileged = x.name.starts_with(b"security.") || x.name.starts_with(b"trusted.");
        if (privileged && !root) || (node.kind == NodeKind::Symlink && x.name.starts_with(b"user."))
        {
            continue;
        }
        xattr::set(path, OsStr::from_bytes(&x.name), &x.value).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "extended attribute {}: {e}",
                    String::from_utf8_lossy(&x.name)
                ),
            )
        })?;
    }
    Ok(())
}

/// Applies owner (when root), extended attributes, permissions and modification time.
fn apply_metadata(path: &Path, node: &Node) -> std::io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: c is a valid NUL-terminated path for each call below.
    unsafe {
        if libc::geteuid() == 0 && libc::lchown(c.as_ptr(), node.uid, node.gid) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        apply_xattrs(path, node)?;
        if node.kind != NodeKind::Symlink && libc::chmod(c.as_ptr(), node.mode as libc::mode_t) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let mtime = libc::timespec {
            tv_sec: node.mtime_sec as libc::time_t,
            tv_nsec: node.mtime_nsec as libc::c_long,
        };
        let times = [mtime, mtime];
        if libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
