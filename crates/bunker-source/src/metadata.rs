//! File system metadata to tree nodes.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use bunker_format::tree::{Node, NodeKind, Xattr};

/// The node kind of a file type.
pub fn node_kind(ft: std::fs::FileType) -> NodeKind {
    if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::Socket
    }
}

/// Builds the node for `path` from its `lstat` metadata. Symlink targets are
/// read here; file content is left empty for the engine to fill in.
pub fn node_from_metadata(path: &Path, meta: &Metadata) -> std::io::Result<Node> {
    let kind = node_kind(meta.file_type());
    let link_target = if kind == NodeKind::Symlink {
        std::fs::read_link(path)?.as_os_str().as_bytes().to_vec()
    } else {
        Vec::new()
    };
    let name = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    Ok(Node {
        name,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_sec: meta.mtime(),
        mtime_nsec: meta.mtime_nsec() as u32,
        ctime_sec: meta.ctime(),
        ctime_nsec: meta.ctime_nsec() as u32,
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        size: if kind == NodeKind::File {
            meta.size()
        } else {
            0
        },
        rdev: if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            meta.rdev()
        } else {
            0
        },
        link_target,
        xattrs: read_xattrs(path),
        ..Default::default()
    })
}

/// The extended attributes of `path` itself (not a symlink's target), sorted
/// by name. A file system without extended attributes gives none; an
/// attribute that vanishes between listing and reading is left out.
fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
