//! `copy`: snapshots replicated from one repository into another, on any
//! backends, so that a second (off-site) copy is one command.
//!
//! Each blob is decrypted from the source and sealed again with the
//! destination's keys. When both repositories name blobs alike (the
//! destination was made with `init --copy-chunker-params-from` the source,
//! docs/FORMAT.md §4.2), a blob or tree the destination already holds is
//! neither read nor written, so a copy moves only what is new. Otherwise
//! every blob of a copied snapshot is read to learn its id in the
//! destination, and trees are rewritten with those ids.
//!
//! A copied snapshot keeps time, host, user, tags, paths, mode and summary;
//! its parent is the parent's copy; it records the id it was first written
//! under (`original`), which is how a snapshot already in the destination is
//! recognised and skipped, and which names it there too. Crash safety is
//! backup's: a session lock, the index written before each snapshot, the
//! snapshot withdrawn if the session was declared dead meanwhile.

use std::collections::HashMap;
use std::sync::Arc;

use bunker_format::blob::{encode_blob, BlobType};
use bunker_format::directory::{DirectoryWriter, PieceCutter};
use bunker_format::id::{BlobId, SnapshotId};
use bunker_format::tree::{Node, NodeKind, Tree};

use crate::backup::{commit_snapshot, PackSink};
use crate::repository::{Indexed, Open, Repository, SnapshotEntry};
use crate::{EngineError, Progress, Result};

/// Options of [`copy`].
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Decide what to copy, write nothing.
    pub dry_run: bool,
}

/// One snapshot copied.
#[derive(Clone, Debug)]
pub struct CopiedSnapshot {
    /// Its id in the source.
    pub source: SnapshotId,
    /// Its id in the destination (`None` in a dry run).
    pub copy: Option<SnapshotId>,
}

/// What [`copy`] did.
#[derive(Clone, Debug, Default)]
pub struct CopyReport {
    /// Snapshots copied, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Source snapshots the destination already had.
    pub present: Vec<SnapshotId>,
    /// Blobs written to the destination.
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Bytes written to the destination's storage (packs and index files).
    pub stored_bytes: u64,
    /// True when both repositories name blobs alike (only missing blobs read).
    pub same_blob_ids: bool,
}

/// Copies `selected` (snapshots of `source`) into `dest`, skipping those it
/// already holds.
pub fn copy(
    source: &Repository<Indexed>,
    dest: Repository<Open>,
    selected: Vec<SnapshotEntry>,
    options: &CopyOptions,
    progress: Arc<dyn Progress>,
) -> Result<CopyReport> {
    // The session lock first, as for backup: a prune of the destination
    // that starts after this waits for us (docs/FORMAT.md §10-11).
    let session = match options.dry_run {
        true => None,
        false => Some(crate::lock::session(&dest, "copy")?),
    };
    let dest = Arc::new(dest.load_index_for_writing()?);
    // Identity (first id) of every snapshot in either repository → its id in the destination.
    let mut in_dest: HashMap<SnapshotId, SnapshotId> = dest
        .snapshots()?
        .into_iter()
        .map(|e| (e.snapshot.identity(e.id), e.id))
        .collect();
    let source_identity: HashMap<SnapshotId, SnapshotId> = source
        .snapshots()?
        .into_iter()
        .map(|e| (e.id, e.snapshot.identity(e.id)))
        .collect();

    let mut selected = selected;
    selected.sort_by_key(|e| (e.snapshot.time_ns, e.id));
    let mut report = CopyReport {
        same_blob_ids: source.keys().same_blob_ids(dest.keys()),
        ..CopyReport::default()
    };
    let (todo, present): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|e| !in_dest.contains_key(&e.snapshot.identity(e.id)));
    report.present = present.into_iter().map(|e| e.id).collect();
    progress.set_total(todo.len() as u64, 0);

    let mut blobs = BlobCopier {
        source,
        dest: &dest,
        sink: PackSink::new(dest.clone(), options.dry_run),
        same_ids: report.same_blob_ids,
        cutter: dest.piece_cutter(),
        data: HashMap::new(),
        trees: HashMap::new(),
        progress: progress.as_ref(),
    };
    for entry in todo {
        if dest.cancel().is_cancelled() || source.cancel().is_cancelled() {
            return Err(EngineError::Interrupted(
                "the snapshots copied so far are kept, and the next copy goes on from there",
            ));
        }
        let tree = blobs.tree(entry.snapshot.tree)?;
        // Every blob the snapshot references is stored and indexed before it.
        let stats = blobs.sink.finish()?;
        report.blobs = stats.blobs;
        report.bytes = stats.raw_bytes;
        report.stored_bytes = stats.stored_bytes;

        let identity = entry.snapshot.identity(entry.id);
        let mut snapshot = entry.snapshot.clone();
        snapshot.tree = tree;
        snapshot.original = Some(identity);
        snapshot.parent = entry
            .snapshot
            .parent
            .and_then(|p| source_identity.get(&p))
            .and_then(|p| in_dest.get(p))
            .copied();
        let copy = commit_snapshot(&dest, session.as_ref(), &snapshot, options.dry_run)?;
        if let Some(id) = copy {
            in_dest.insert(identity, id);
        }
        report.copied.push(CopiedSnapshot {
            source: entry.id,
            copy,
        });
        progress.advance(1, 0);
    }
    Ok(report)
}

/// Moves blobs from the source into the destination's packs.
struct BlobCopier<'a> {
    source: &'a Repository<Indexed>,
    dest: &'a Arc<Repository<Indexed>>,
    sink: PackSink,
    same_ids: bool,
    /// How the destination cuts directories (its format version's way).
    cutter: Option<PieceCutter>,
    /// Source data blob id → destination id (only when ids differ).
    data: HashMap<BlobId, BlobId>,
    /// Source tree id → destination id.
    trees: HashMap<BlobId, BlobId>,
    progress: &'a dyn Progress,
}

/// A tree being rewritten: its nodes, and the first one not yet mapped.
struct Frame {
    source: BlobId,
    tree: Tree,
    next: usize,
}

impl BlobCopier<'_> {
    /// Stores a blob the destination lacks.
    fn add(&self, kind: BlobType, id: BlobId, plain: &[u8]) -> Result<()> {
        self.sink.add(encode_blob(
            self.dest.keys(),
            kind,
            id,
            plain,
            self.dest.config().compression_level,
        ))?;
        self.progress.advance(0, plain.len() as u64);
        Ok(())
    }

    /// The destination id of a source data blob, stored there if missing.
    fn data(&mut self, id: BlobId) -> Result<BlobId> {
        if self.same_ids {
            // Read only what the destination lacks.
            if self.sink.claim(&id)? {
                let plain = self.source.read_blob(BlobType::Data, &id)?;
                self.add(BlobType::Data, id, &plain)?;
            }
            return Ok(id);
        }
        if let Some(mapped) = self.data.get(&id) {
            return Ok(*mapped);
        }
        let plain = self.source.read_blob(BlobType::Data, &id)?;
        let mapped = self.dest.keys().blob_id(&plain);
        if self.sink.claim(&mapped)? {
            self.add(BlobType::Data, mapped, &plain)?;
        }
        self.data.insert(id, mapped);
        Ok(mapped)
    }

    /// Stores a directory in the destination as its format version cuts
    /// directories; returns its root tree blob.
    fn store_directory(&self, nodes: &[Node]) -> Result<BlobId> {
        let store = &mut |bytes: Vec<u8>| -> Result<BlobId> {
            let id = self.dest.keys().blob_id(&bytes);
            if self.sink.claim(&id)? {
                self.add(BlobType::Tree, id, &bytes)?;
            }
            Ok(id)
        };
        DirectoryWriter::write_all(self.cutter.as_ref(), nodes, store)
    }

    /// The destination id of a source tree, known or present already
    /// without rewriting it.
    fn known_tree(&self, id: &BlobId) -> Result<Option<BlobId>> {
        if let Some(mapped) = self.trees.get(id) {
            return Ok(Some(*mapped));
        }
        // With shared ids a tree the destination holds was stored after
        // everything below it, as backup and copy both store them.
        if self.same_ids && self.dest.index().contains(id)? {
            return Ok(Some(*id));
        }
        Ok(None)
    }

    /// The destination id of the tree `root` and everything below it,
    /// copied depth first with an explicit stack (trees may nest deeper
    /// than a thread's stack allows).
    fn tree(&mut self, root: BlobId) -> Result<BlobId> {
        if let Some(mapped) = self.known_tree(&root)? {
            return Ok(mapped);
        }
        let mut stack = vec![Frame {
            source: root,
            tree: self.source.load_tree(&root)?,
            next: 0,
        }];
        loop {
            let frame = stack.last_mut().expect("stack holds the tree being copied");
            let Some(node) = frame.tree.nodes.get_mut(frame.next) else {
                // Every node mapped: store the rewritten tree.
                let done = stack.pop().expect("frame");
                let id = self.store_directory(&done.tree.nodes)?;
                self.trees.insert(done.source, id);
                match stack.last_mut() {
                    None => return Ok(id),
                    Some(parent) => {
                        parent.tree.nodes[parent.next].subtree = Some(id);
                        parent.next += 1;
                    }
                }
                continue;
            };
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => match self.known_tree(&sub)? {
                    Some(mapped) => {
                        node.subtree = Some(mapped);
                        frame.next += 1;
                    }
                    None => {
                        let tree = self.source.load_tree(&sub)?;
                        stack.push(Frame {
                            source: sub,
                            tree,
                            next: 0,
                        });
                    }
                },
                _ => {
                    let content = std::mem::take(&mut node.content);
                    let mapped = content
                        .into_iter()
                        .map(|b| self.data(b))
                        .collect::<Result<Vec<_>>>()?;
                    let frame = stack.last_mut().expect("frame");
                    frame.tree.nodes[frame.next].content = mapped;
                    frame.next += 1;
                }
            }
        }
    }
}
