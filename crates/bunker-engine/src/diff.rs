//! Differences between two snapshots' trees.
//!
//! Subtrees with equal ids are identical and skipped unread, so comparing two
//! snapshots of a large, mostly unchanged tree reads only what changed.

use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind};

use crate::repository::{Indexed, Repository};
use crate::walk_tree::visit_tree;
use crate::Result;

/// How an entry differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// Content, type or link target differs.
    Modified,
    /// Same content; permissions, owner, times or extended attributes differ.
    Metadata,
}

impl Change {
    /// One-letter mark, as restic prints it.
    pub fn mark(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }

    /// Lowercase name for JSON.
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "modified",
            Change::Metadata => "metadata",
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffEntry {
    /// Absolute path in the snapshots.
    pub path: String,
    /// What changed.
    pub change: Change,
    /// The entry's type (in the second snapshot, or the first if removed).
    pub kind: NodeKind,
}

/// Lists every path that differs between the trees `a` and `b`, in path order.
pub fn diff(repo: &Repository<Indexed>, a: &BlobId, b: &BlobId) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    diff_trees(repo, Some(*a), Some(*b), "", &mut out)?;
    Ok(out)
}

fn diff_trees(
    repo: &Repository<Indexed>,
    a: Option<BlobId>,
    b: Option<BlobId>,
    prefix: &str,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<BlobId>| {
        id.map(|i| repo.load_tree(&i))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let (ta, tb) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                whole(repo, &ta.nodes[i], prefix, Change::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                whole(repo, &tb.nodes[j], prefix, Change::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                pair(repo, &ta.nodes[i], &tb.nodes[j], prefix, out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// An entry present on one side only, with everything below it.
fn whole(
    repo: &Repository<Indexed>,
    node: &Node,
    prefix: &str,
    change: Change,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    let path = format!("{prefix}/{}", node.name_lossy());
    out.push(DiffEntry {
        path: path.clone(),
        change,
        kind: node.kind,
    });
    if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
        visit_tree(repo, &sub, path.as_bytes(), &mut |p, n| {
            out.push(DiffEntry {
                path: String::from_utf8_lossy(p).into_owned(),
                change,
                kind: n.kind,
            });
            Ok(())
        })?;
    }
    Ok(())
}

/// An entry present on both sides.
fn pair(
    repo: &Repository<Indexed>,
    a: &Node,
    b: &Node,
    prefix: &str,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    let path = format!("{prefix}/{}", b.name_lossy());
    if a.kind != b.kind {
        whole(repo, a, prefix, Change::Removed, out)?;
        return whole(repo, b, prefix, Change::Added, out);
    }
    let content_differs =
        a.content != b.content || a.link_target != b.link_target || a.rdev != b.rdev;
    let metadata_differs = a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || (a.mtime_sec, a.mtime_nsec) != (b.mtime_sec, b.mtime_nsec)
        || a.xattrs != b.xattrs;
    if a.kind == NodeKind::Dir {
        if metadata_differs {
            out.push(DiffEntry {
                path: path.clone(),
                change: Change::Metadata,
                kind: b.kind,
            });
        }
        return diff_trees(repo, a.subtree, b.subtree, &path, out);
    }
    let change = if content_differs {
        Some(Change::Modified)
    } else if metadata_differs {
        Some(Change::Metadata)
    } else {
        None
    };
    if let Some(change) = change {
        out.push(DiffEntry {
            path,
            change,
            kind: b.kind,
        });
    }
    Ok(())
}
