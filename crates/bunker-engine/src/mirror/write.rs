//! Writing SRC's entries into DEST.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bunker_format::tree::{Node, NodeKind};

use super::compare::{attrs, attrs_of, kind_of, same_content};
use super::copy;
use super::deletions::remove_any;
use super::itemize::{line, Attrs, Update};
use super::{shown, Entry, MirrorOptions, MirrorSummary};
use crate::restore::metadata::{apply, create_special, is_root, remove_extra_xattrs};

/// Gives `path` the node's metadata, dropping extended attributes it lacks.
pub(super) fn set_metadata(path: &Path, node: &Node) -> std::io::Result<()> {
    if node.kind != NodeKind::Symlink {
        remove_extra_xattrs(path, node)?;
    }
    apply(path, node)
}

/// Gives a file just written (open as `file`) the node's owner (when
/// root), extended attributes (none it lacks), mode and times, through its
/// descriptor: no path lookups, and the same order as `apply`.
pub(super) fn file_metadata(file: &File, node: &Node) -> std::io::Result<()> {
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
        tv_sec: node.mtime_sec as _,
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
pub(super) fn temporary(path: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".bunker-mirror-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Writes SRC's entries into DEST.
pub(super) struct Writer<'a> {
    pub(super) dest: &'a Path,
    pub(super) options: &'a MirrorOptions,
    pub(super) summary: MirrorSummary,
    /// The entry being written (its index in walk order).
    pub(super) at: usize,
    /// Itemized changes by entry index (merged in walk order).
    pub(super) changes: Vec<(usize, String)>,
    /// First DEST path of each hard-link group of SRC, by (device, inode).
    pub(super) links: HashMap<(u64, u64), PathBuf>,
    /// Folders whose metadata is set at the end, with what differed
    /// before the mirror (`None`: created by it).
    pub(super) dirs: Vec<(PathBuf, Node, Option<Attrs>)>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(dest: &'a Path, options: &'a MirrorOptions) -> Self {
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
    pub(super) fn run(&mut self, i: usize, src: &Path, entry: &Entry) {
        self.at = i;
        if let Err(e) = self.entry(src, entry) {
            let path = self.dest.join(&entry.rel);
            self.summary.errors.push(format!("{}: {e}", path.display()));
        }
    }

    /// Takes in what another writer did.
    pub(super) fn absorb(&mut self, other: Writer) {
        self.summary.absorb(other.summary);
        self.changes.extend(other.changes);
        self.dirs.extend(other.dirs);
    }

    pub(super) fn note(
        &mut self,
        update: Update,
        kind: NodeKind,
        new: bool,
        a: Attrs,
        name: String,
    ) {
        if self.options.itemize {
            self.changes
                .push((self.at, line(update, kind, new, a, &name)));
        }
    }

    pub(super) fn entry(&mut self, src: &Path, entry: &Entry) -> std::io::Result<()> {
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
    pub(super) fn attributes_only(
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

    pub(super) fn file(
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
pub(super) fn replace(
    tmp: &Path,
    path: &Path,
    there: Option<&std::fs::Metadata>,
) -> std::io::Result<()> {
    if there.is_some_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(tmp, path)
}
