//! What DEST has and SRC lacks.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use bunker_format::tree::NodeKind;

use super::{Entry, MirrorOptions, MirrorSummary};
use crate::{EngineError, Result};

/// Removes a file, link or whole folder.
pub(super) fn remove_any(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// How many entries removing `path` removes (itself and all below).
pub(super) fn count_below(path: &Path) -> u64 {
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
pub(super) fn plan_deletions(
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
