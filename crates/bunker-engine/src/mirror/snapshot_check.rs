//! Comparing a mirror with a snapshot of its source: a drill's proof that
//! the standby copy holds what the backup holds, read from the mirror only
//! (each file is chunked at the snapshot's chunk lengths and every chunk's
//! id checked, so no data is fetched from the repository).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bunker_backend::{RemoteEntry, RemoteKind};

use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind};

use super::compare::{attrs_of, kind_of};
use super::remote::{links_to, remote_kind};
use crate::repository::{Indexed, Repository};
use crate::restore::verify_file;
use crate::walk_tree::{find_node, visit_tree};
use crate::{Cancel, EngineError, Result};

/// How a mirror compares with a snapshot.
#[derive(Debug, Default, serde::Serialize)]
pub struct SnapshotComparison {
    /// Entries of the snapshot looked at.
    pub entries: u64,
    /// Entries found equal: type, attributes, link target and every byte.
    pub equal: u64,
    /// Bytes of files read back and found equal.
    pub bytes_equal: u64,
    /// Files whose size or time in the mirror differs from the snapshot's:
    /// changed in the source after the snapshot, so newer in the mirror.
    pub newer: u64,
    /// Where the mirror does not hold what the snapshot holds, one line each.
    pub problems: Vec<String>,
}

/// Compares the folder `dir` with the snapshot folder `subpath` of the tree
/// `root`: every entry must be in `dir` with its type; a file whose size
/// and modification time match the snapshot's must match its attributes
/// and content too (a file that differs in either is counted as newer).
pub fn compare_with_snapshot(
    repo: &Repository<Indexed>,
    root: &BlobId,
    subpath: &str,
    dir: &Path,
    cancel: &Cancel,
) -> Result<SnapshotComparison> {
    use rayon::prelude::*;
    if !dir.is_dir() {
        return Err(EngineError::Invalid(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let nodes = nodes_below(repo, root, subpath, cancel)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("bunker-compare-{i}"))
        .build()
        .map_err(|e| EngineError::Invalid(format!("cannot start the comparison's threads: {e}")))?;
    let outcomes: Vec<Outcome> = pool.install(|| {
        nodes
            .par_iter()
            .map(|(rel, node)| {
                if cancel.is_cancelled() {
                    return Outcome::Problem("interrupted".into());
                }
                check_entry(repo, &dir.join(rel), node)
            })
            .collect()
    });
    if cancel.is_cancelled() {
        return Err(EngineError::Interrupted("the comparison was interrupted"));
    }
    let mut comparison = SnapshotComparison {
        entries: nodes.len() as u64,
        ..Default::default()
    };
    for outcome in outcomes {
        match outcome {
            Outcome::Equal(bytes) => {
                comparison.equal += 1;
                comparison.bytes_equal += bytes;
            }
            Outcome::Newer => comparison.newer += 1,
            Outcome::Problem(p) => comparison.problems.push(p),
        }
    }
    comparison.problems.sort();
    Ok(comparison)
}

/// Every node below the snapshot folder `subpath`, with its path
/// relative to it.
fn nodes_below(
    repo: &Repository<Indexed>,
    root: &BlobId,
    subpath: &str,
    cancel: &Cancel,
) -> Result<Vec<(PathBuf, Node)>> {
    let top = find_node(repo, root, subpath)?;
    let (NodeKind::Dir, Some(subtree)) = (top.kind, top.subtree) else {
        return Err(EngineError::Invalid(format!(
            "{subpath} is not a folder in the snapshot"
        )));
    };
    let mut nodes = Vec::new();
    visit_tree(repo, &subtree, b"", &mut |rel, node| {
        if cancel.is_cancelled() {
            return Err(EngineError::Interrupted("the comparison was interrupted"));
        }
        let rel = rel.strip_prefix(b"/").unwrap_or(rel);
        nodes.push((PathBuf::from(OsStr::from_bytes(rel)), node.clone()));
        Ok(())
    })?;
    Ok(nodes)
}

/// Compares a listing of a remote mirror (SFTP) with the snapshot folder
/// `subpath`, as far as a listing tells: every entry SFTP can hold must be
/// listed with its type, permissions and link target; a file whose size or
/// time (whole seconds) differs is counted as newer. Content is not read.
pub fn compare_listing_with_snapshot(
    repo: &Repository<Indexed>,
    root: &BlobId,
    subpath: &str,
    listed: &[RemoteEntry],
    cancel: &Cancel,
) -> Result<SnapshotComparison> {
    let nodes = nodes_below(repo, root, subpath, cancel)?;
    let by_rel: HashMap<&Path, &RemoteEntry> =
        listed.iter().map(|e| (e.rel.as_path(), e)).collect();
    let mut comparison = SnapshotComparison::default();
    for (rel, node) in &nodes {
        let kind = remote_kind(node.kind);
        if kind == RemoteKind::Other {
            continue;
        }
        comparison.entries += 1;
        let shown = rel.display();
        match by_rel.get(rel.as_path()) {
            None => comparison.problems.push(format!("{shown}: missing")),
            Some(t) if t.kind != kind => comparison
                .problems
                .push(format!("{shown}: not a {}", node.kind.name())),
            Some(t)
                if kind == RemoteKind::File
                    && (t.size != node.size || t.mtime != node.mtime_sec) =>
            {
                comparison.newer += 1
            }
            Some(t) if kind == RemoteKind::Symlink && !links_to(t, node) => comparison
                .problems
                .push(format!("{shown}: the link points elsewhere")),
            Some(t) if kind != RemoteKind::Symlink && t.mode != node.mode & 0o7777 => {
                comparison.problems.push(format!(
                    "{shown}: permissions {:o}, not {:o}",
                    t.mode,
                    node.mode & 0o7777
                ))
            }
            Some(_) => comparison.equal += 1,
        }
    }
    comparison.problems.sort();
    Ok(comparison)
}

enum Outcome {
    Equal(u64),
    Newer,
    Problem(String),
}

fn check_entry(repo: &Repository<Indexed>, path: &Path, node: &Node) -> Outcome {
    let shown = path.display();
    let m = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) => return Outcome::Problem(format!("{shown}: {e}")),
    };
    if kind_of(&m) != node.kind {
        return Outcome::Problem(format!("{shown}: not a {}", node.kind.name()));
    }
    match node.kind {
        NodeKind::File => {
            if m.size() != node.size
                || m.mtime() != node.mtime_sec
                || m.mtime_nsec() as u32 != node.mtime_nsec
            {
                return Outcome::Newer;
            }
            let differs = attrs_of(path, node, Some(&m));
            if !differs.none() {
                return Outcome::Problem(format!("{shown}: attributes differ ({differs:?})"));
            }
            match verify_file(repo, path, &node.content) {
                Ok(()) => Outcome::Equal(node.size),
                Err(e) => Outcome::Problem(e.to_string()),
            }
        }
        NodeKind::Symlink => match std::fs::read_link(path) {
            Ok(t) if t.as_os_str().as_bytes() == node.link_target => Outcome::Equal(0),
            Ok(_) => Outcome::Problem(format!("{shown}: the link points elsewhere")),
            Err(e) => Outcome::Problem(format!("{shown}: {e}")),
        },
        _ => Outcome::Equal(0),
    }
}
