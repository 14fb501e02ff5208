//! Turns the walk's events back into tree blobs, bottom-up.

use std::path::PathBuf;

use bunker_format::blob::BlobType;
use bunker_format::directory::DirectoryWriter;
use bunker_format::id::BlobId;
use bunker_format::tree::Node;
use crossbeam_channel::Receiver;

use super::pipeline::{FileContent, ReadError, Stage};
use crate::{EngineError, Result};

/// One step of the walk, in walk order.
pub(super) enum TreeEvent {
    /// A directory starts; its children follow until `LeaveDir`.
    EnterDir(Node),
    /// The directory last entered is complete.
    LeaveDir,
    /// A complete entry (symlink, device, …).
    Leaf(Node),
    /// A regular file, with its blob list or the reader that will deliver it.
    File {
        node: Node,
        path: PathBuf,
        content: FileReply,
    },
}

/// A file's content: known at once (unchanged since the parent), or being read.
pub(super) enum FileReply {
    Ready(FileContent),
    Reading(Receiver<Result<FileContent, ReadError>>),
}

impl FileReply {
    /// The content, once read; `None` if the reader went away.
    fn wait(self) -> Option<Result<FileContent, ReadError>> {
        match self {
            FileReply::Ready(content) => Some(Ok(content)),
            FileReply::Reading(reading) => reading.recv().ok(),
        }
    }
}

/// What the tree builder produced.
pub(super) struct Built {
    pub root: BlobId,
    pub skipped: Vec<String>,
    pub warnings: Vec<String>,
}

/// Consumes events until the channel closes; returns the root tree id.
pub(super) fn build_trees(stage: &Stage, events: Receiver<Vec<TreeEvent>>) -> Result<Built> {
    // One writer per open directory: entries arrive in name order, and each
    // goes into its directory's unfinished piece at once.
    let cutter = stage.piece_cutter.as_ref();
    let mut stack: Vec<(Option<Node>, DirectoryWriter)> =
        vec![(None, DirectoryWriter::new(cutter))];
    let store = &mut |bytes| submit_tree(stage, bytes);
    let mut skipped = Vec::new();
    let mut warnings = Vec::new();
    for event in events.into_iter().flatten() {
        match event {
            TreeEvent::EnterDir(node) => stack.push((Some(node), DirectoryWriter::new(cutter))),
            TreeEvent::LeaveDir => {
                let (node, children) = stack.pop().expect("walker balances enter and leave");
                let mut node = node.expect("only the root frame has no node, and it is never left");
                node.subtree = Some(children.finish(store)?);
                stack.last_mut().expect("root frame").1.push(&node, store)?;
            }
            TreeEvent::Leaf(node) => stack.last_mut().expect("root frame").1.push(&node, store)?,
            TreeEvent::File {
                mut node,
                path,
                content,
            } => match content.wait() {
                Some(Ok(c)) => {
                    if c.changed {
                        let message = format!("{}: file changed while it was read", path.display());
                        stage.progress.warning(&message);
                        warnings.push(message);
                    }
                    node.content = c.ids;
                    node.size = c.size;
                    stack.last_mut().expect("root frame").1.push(&node, store)?;
                }
                Some(Err(ReadError::Source(e))) => {
                    let message = format!("{}: {e}", path.display());
                    stage.progress.warning(&message);
                    skipped.push(message);
                }
                Some(Err(ReadError::Aborted)) | None => return Err(EngineError::Aborted),
            },
        }
    }
    let (_, children) = stack.pop().expect("root frame");
    Ok(Built {
        root: children.finish(store)?,
        skipped,
        warnings,
    })
}

/// Stores a directory of entries in name order, cut as the repository's
/// format version cuts directories.
pub(super) fn store_tree(stage: &Stage, nodes: &[Node]) -> Result<BlobId> {
    DirectoryWriter::write_all(stage.piece_cutter.as_ref(), nodes, &mut |bytes| {
        submit_tree(stage, bytes)
    })
}

/// Hands a tree blob to the sealers if it is new.
fn submit_tree(stage: &Stage, bytes: Vec<u8>) -> Result<BlobId> {
    let id = stage.keys.blob_id(&bytes);
    stage
        .submit(BlobType::Tree, id, bytes)
        .map_err(|_| EngineError::Aborted)?;
    Ok(id)
}
