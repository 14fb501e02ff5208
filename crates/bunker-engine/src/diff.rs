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

/// Lists every path that differs between the trees `a` and `b`, in path
/// order. The walk keeps its own stack, so trees of any depth are safe.
pub fn diff(repo: &Repository<Indexed>, a: &BlobId, b: &BlobId) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    let mut stack: Vec<DiffFrame> = open(repo, Some(*a), Some(*b), "")?.into_iter().collect();
    while let Some(top) = stack.last_mut() {
        let order = match (top.a.get(top.i), top.b.get(top.j)) {
            (None, None) => {
                stack.pop();
                continue;
            }
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        let prefix = top.prefix.clone();
        let below = match order {
            std::cmp::Ordering::Less => {
                top.i += 1;
                whole(repo, &top.a[top.i - 1], &prefix, Change::Removed, &mut out)?;
                None
            }
            std::cmp::Ordering::Greater => {
                top.j += 1;
                whole(repo, &top.b[top.j - 1], &prefix, Change::Added, &mut out)?;
                None
            }
            std::cmp::Ordering::Equal => {
                top.i += 1;
                top.j += 1;
                pair(
                    repo,
                    &top.a[top.i - 1],
                    &top.b[top.j - 1],
                    &prefix,
                    &mut out,
                )?
            }
        };
        stack.extend(below);
    }
    Ok(out)
}

/// Two directories' entries being compared, merged by name.
struct DiffFrame {
    a: Vec<Node>,
    b: Vec<Node>,
    i: usize,
    j: usize,
    prefix: String,
}

/// The frame comparing two trees (either may be absent), or none if they are equal.
fn open(
    repo: &Repository<Indexed>,
    a: Option<BlobId>,
    b: Option<BlobId>,
    prefix: &str,
) -> Result<Option<DiffFrame>> {
    if a == b {
        return Ok(None);
    }
    let load = |id: Option<BlobId>| {
        id.map(|i| repo.load_tree(&i))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(Some(DiffFrame {
        a: load(a)?.nodes,
        b: load(b)?.nodes,
        i: 0,
        j: 0,
        prefix: prefix.to_string(),
    }))
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

/// An entry present on both sides; two directories come back as the frame
/// comparing their entries.
fn pair(
    repo: &Repository<Indexed>,
    a: &Node,
    b: &Node,
    prefix: &str,
    out: &mut Vec<DiffEntry>,
) -> Result<Option<DiffFrame>> {
    let path = format!("{prefix}/{}", b.name_lossy());
    if a.kind != b.kind {
        whole(repo, a, prefix, Change::Removed, out)?;
        whole(repo, b, prefix, Change::Added, out)?;
        return Ok(None);
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
        return open(repo, a.subtree, b.subtree, &path);
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
    Ok(None)
}
