//! Walking a snapshot's trees.

use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind};

use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// Finds the node at `path` (absolute, `/`-separated) below `root`. The root
/// itself is returned as a synthetic directory node.
pub fn find_node(repo: &Repository<Indexed>, root: &BlobId, path: &str) -> Result<Node> {
    let mut node = Node {
        name: Vec::new(),
        kind: NodeKind::Dir,
        mode: 0o755,
        subtree: Some(*root),
        ..Default::default()
    };
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let subtree = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(s)) => s,
            _ => return Err(EngineError::PathNotFound(path.into())),
        };
        // Only the pieces on the way to the name are read (format 4).
        node = repo
            .find_entry(&subtree, part.as_bytes())?
            .ok_or_else(|| EngineError::PathNotFound(path.into()))?;
    }
    Ok(node)
}

/// Visits every node below the directory tree `root`, depth-first in name
/// order, with its path (see [`bunker_format::tree::walk`]); a tree of any
/// depth is safe.
pub fn visit_tree(
    repo: &Repository<Indexed>,
    root: &BlobId,
    prefix: &[u8],
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<()>,
) -> Result<()> {
    bunker_format::tree::walk(
        prefix,
        repo.load_tree(root)?,
        |id| repo.load_tree(id),
        visit,
    )
}
