//! Comparing an entry of DEST with its node from SRC.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bunker_format::tree::{Node, NodeKind};

use super::itemize::Attrs;
use crate::restore::metadata::is_root;

/// What differs between `path` (in DEST) and `node`, as far as a mirror
/// keeps it (owners only when root).
pub(super) fn attrs(path: &Path, node: &Node) -> Attrs {
    attrs_of(path, node, path.symlink_metadata().ok().as_ref())
}

/// [`attrs`] with `path`'s metadata already read.
pub(super) fn attrs_of(path: &Path, node: &Node, m: Option<&std::fs::Metadata>) -> Attrs {
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
pub(super) type XattrList = Vec<(Vec<u8>, Vec<u8>)>;

pub(super) fn split_xattrs(path: &Path, node: &Node) -> (XattrList, XattrList) {
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

pub(super) fn is_acl(name: &[u8]) -> bool {
    name.starts_with(b"system.posix_acl_")
}

pub(super) fn xattrs_where(path: &Path, node: &Node, keep: fn(&[u8]) -> bool) -> bool {
    let (have, want) = split_xattrs(path, node);
    let pick =
        |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().filter(|(n, _)| keep(n)).collect::<Vec<_>>();
    pick(have) != pick(want)
}

pub(super) fn acl_differs(path: &Path, node: &Node) -> bool {
    xattrs_where(path, node, is_acl)
}

pub(super) fn other_xattrs_differ(path: &Path, node: &Node) -> bool {
    xattrs_where(path, node, |n| !is_acl(n))
}

pub(super) fn kind_of(m: &std::fs::Metadata) -> NodeKind {
    bunker_source::node_kind(m.file_type())
}

/// True when the two files hold the same bytes.
pub(super) fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
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
