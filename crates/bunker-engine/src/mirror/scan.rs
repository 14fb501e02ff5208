//! Scanning SRC on every core.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bunker_format::tree::{Node, NodeKind};
use bunker_source::{node_from_metadata, WalkOptions};

use super::{io, Entry};
use crate::{Cancel, EngineError, Result};

/// What was found in SRC: its own node, its entries in walk order (a
/// folder before what it holds, names in byte order) and what could not
/// be read, by path relative to SRC.
pub(super) struct Scanned {
    pub(super) root: Node,
    pub(super) entries: Vec<Entry>,
    pub(super) errors: Vec<(PathBuf, String)>,
}

/// The entries of folder `dir`, in name-byte order.
pub(super) fn sorted_children(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    out.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    Ok(out)
}

/// Scans SRC with every core: each folder's entries are looked at in
/// parallel, and put back in order.
pub(super) fn scan(src: &Path, selection: &WalkOptions, cancel: &Cancel) -> Result<Scanned> {
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

pub(super) type ScanPart = (Vec<Entry>, Vec<(PathBuf, String)>);

pub(super) fn scan_dir(
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
