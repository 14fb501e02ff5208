//! The parent snapshot's directories, read one step ahead of the walk.
//!
//! The walker compares every file with its parent snapshot's entry, so it
//! needs each directory's parent listing before it can go on. Reading a
//! listing (in format 4, every piece of it) on the walker's own thread made
//! the walk wait on it; a loader thread reads the next directory the walk
//! will enter while the walker handles the current one.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind, Tree};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::Result;

/// One parent directory on the walk's current path.
pub(super) struct ParentDir {
    /// Its listing in the parent snapshot (`None` where the parent has no
    /// such directory, or it could not be read).
    pub tree: Option<Tree>,
    /// The next subdirectory the walk will enter here, being read.
    ahead: Option<Pending>,
}

struct Pending {
    id: BlobId,
    reply: Receiver<Result<Tree>>,
}

type Request = (BlobId, Sender<Result<Tree>>);

/// Reads parent listings on a thread of its own, in the order asked.
pub(super) struct ParentTrees {
    repo: Arc<Repository<Indexed>>,
    progress: Arc<dyn Progress>,
    requests: Option<Sender<Request>>,
    loader: Option<JoinHandle<()>>,
}

impl ParentTrees {
    pub fn new(repo: Arc<Repository<Indexed>>, progress: Arc<dyn Progress>) -> Self {
        let (requests, incoming) = unbounded::<Request>();
        let loader = {
            let repo = repo.clone();
            std::thread::Builder::new()
                .name("bunker-parent".into())
                .spawn(move || {
                    for (id, reply) in incoming {
                        // The walker may have moved on and dropped the receiver.
                        let _ = reply.send(repo.load_tree(&id));
                    }
                })
                .ok()
        };
        ParentTrees {
            repo,
            progress,
            requests: loader.is_some().then_some(requests),
            loader,
        }
    }

    /// The listing of the directory at `path` whose tree is `id` (the
    /// root of the parent snapshot, or `None` without one).
    pub fn root(&self, id: Option<BlobId>, path: &Path) -> ParentDir {
        self.dir(id.and_then(|id| self.loaded(&id, path, None)))
    }

    /// Entering the subdirectory `name` of `current`: starts reading the
    /// next subdirectory after it and returns this one's listing, taken
    /// from what was read ahead when it was the one asked for.
    pub fn enter(&self, current: &mut ParentDir, name: &[u8], path: &Path) -> ParentDir {
        let Some(listing) = current.tree.as_ref() else {
            return self.dir(None);
        };
        let at = listing
            .nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name));
        let (subtree, after) = match at {
            Ok(i) => (subtree_of(&listing.nodes[i]), i + 1),
            Err(i) => (None, i),
        };
        let next = first_subdirectory(listing, after);
        // A directory the parent lacks leaves the read of the next one going.
        let ahead = match current.ahead.as_ref().map(|p| p.id) == next {
            true => None,
            false => std::mem::replace(&mut current.ahead, next.and_then(|id| self.ask(id))),
        };
        self.dir(subtree.and_then(|id| self.loaded(&id, path, ahead)))
    }

    /// A parent directory, with the read of its first subdirectory started.
    fn dir(&self, tree: Option<Tree>) -> ParentDir {
        let first = tree.as_ref().and_then(|t| first_subdirectory(t, 0));
        ParentDir {
            tree,
            ahead: first.and_then(|id| self.ask(id)),
        }
    }

    /// Asks the loader for the listing `id`.
    fn ask(&self, id: BlobId) -> Option<Pending> {
        let (reply, receive) = bounded(1);
        self.requests.as_ref()?.send((id, reply)).ok()?;
        Some(Pending { id, reply: receive })
    }

    /// The listing `id`, from `ahead` when that is it, else read here; on
    /// damage, warns and compares against nothing.
    fn loaded(&self, id: &BlobId, path: &Path, ahead: Option<Pending>) -> Option<Tree> {
        let read = ahead
            .filter(|p| p.id == *id)
            .and_then(|p| p.reply.recv().ok())
            .unwrap_or_else(|| self.repo.load_tree(id));
        match read {
            Ok(t) => Some(t),
            Err(e) => {
                self.progress.warning(&format!(
                    "{}: cannot read the parent snapshot's tree, reading everything: {e}",
                    path.display()
                ));
                None
            }
        }
    }
}

impl Drop for ParentTrees {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(loader) = self.loader.take() {
            let _ = loader.join();
        }
    }
}

/// The tree of the first subdirectory of `listing` from entry `from` on.
fn first_subdirectory(listing: &Tree, from: usize) -> Option<BlobId> {
    listing.nodes[from..].iter().find_map(subtree_of)
}

/// The tree of `node`, if it is a directory.
fn subtree_of(node: &Node) -> Option<BlobId> {
    (node.kind == NodeKind::Dir)
        .then_some(node.subtree)
        .flatten()
}
