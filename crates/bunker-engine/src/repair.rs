//! Repair: rebuild the index from the packs themselves, and rewrite damaged
//! snapshots without what they lost.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bunker_backend::FileKind;
use bunker_format::blob::{encode_blob, BlobType};
use bunker_format::directory::DirectoryWriter;
use bunker_format::id::{BlobId, PackId, SnapshotId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::snapshot::Snapshot;
use bunker_format::tree::{Node, NodeKind};

use crate::backup::PackSink;
use crate::check::{check, CheckOptions};
use crate::lock;
use crate::progress::NoProgress;
use crate::repository::{Indexed, Open, Repository, SnapshotEntry};

use crate::Result;

/// What `repair index` did.
#[derive(Debug, Default)]
pub struct IndexRepair {
    /// Packs whose headers were read and indexed.
    pub packs: usize,
    /// Blobs indexed.
    pub blobs: usize,
    /// Packs whose header could not be read: named, left alone.
    pub unreadable: Vec<String>,
    /// Old index files replaced.
    pub replaced: usize,
}

/// Rebuilds the index from every pack's own header and replaces the index
/// files that existed when it started. Packs a prune condemned are left out.
pub fn repair_index(repo: Repository<Open>) -> Result<IndexRepair> {
    repo.require_full_key("rewrite the index")?;
    let _lock = lock::exclusive(&repo, "repair index")?;
    // Index files only: a stray file in index/ is not ours to remove.
    let old: Vec<String> = repo
        .backend()
        .list(FileKind::Index)?
        .into_iter()
        .map(|f| f.name)
        .filter(|n| n.parse::<bunker_format::id::IndexId>().is_ok())
        .collect();
    let condemned: HashSet<PackId> = repo
        .condemnations()?
        .into_iter()
        .flat_map(|(_, r)| r.packs)
        .collect();
    let mut report = IndexRepair::default();
    let mut file = IndexFile::default();
    for info in repo.backend().list(FileKind::Pack)? {
        let Ok(id) = info.name.parse::<PackId>() else {
            continue;
        };
        if condemned.contains(&id) {
            continue;
        }
        match repo.read_pack_header(&id, info.size) {
            Ok(blobs) => {
                report.packs += 1;
                report.blobs += blobs.len();
                file.packs.push(IndexedPack {
                    id,
                    length: info.size,
                    blobs,
                });
            }
            Err(e) => report.unreadable.push(format!("pack {}: {e}", info.name)),
        }
        if file.packs.len() >= 4096 {
            repo.write_index(&std::mem::take(&mut file))?;
        }
    }
    if !file.packs.is_empty() {
        repo.write_index(&file)?;
    }
    // Only now that the new files are durable: remove the old ones.
    for name in &old {
        repo.backend().remove(FileKind::Index, name)?;
        report.replaced += 1;
    }
    Ok(report)
}

/// What `repair snapshots` did to one snapshot.
#[derive(Debug)]
pub struct SnapshotRepair {
    /// The damaged snapshot.
    pub original: SnapshotEntry,
    /// Its repaired replacement (none in a dry run).
    pub repaired: Option<SnapshotId>,
    /// Paths left out: damaged files, and directories whose listing was lost.
    pub removed: Vec<String>,
}

/// What `repair snapshots` did.
#[derive(Debug, Default)]
pub struct SnapshotsRepair {
    /// Snapshots with damaged content, each rewritten without it.
    pub repaired: Vec<SnapshotRepair>,
    /// Snapshot files that cannot be read at all: nothing in them can be
    /// saved; removed with `forget`.
    pub unreadable: Vec<SnapshotId>,
}

/// Finds damaged snapshots (by a structural check, or reading every pack
/// with `read_data`) and writes for each a new snapshot without the damaged
/// files; unreadable directories become empty. The originals, and snapshot
/// files that cannot be read at all, are kept unless `forget` is set.
pub fn repair_snapshots(
    repo: Repository<Open>,
    read_data: bool,
    forget: bool,
    dry_run: bool,
) -> Result<SnapshotsRepair> {
    if !dry_run {
        repo.require_full_key("rewrite snapshots")?;
    }
    let session = match dry_run {
        true => None,
        false => Some(lock::session(&repo, "repair snapshots")?),
    };
    let report = check(
        repo.reopened(),
        CheckOptions {
            read_data,
            read_data_subset: None,
            repair: false,
        },
        Arc::new(NoProgress),
    )?;
    let damaged: HashSet<BlobId> = report.damaged_blobs;
    let unreadable = report.unreadable_snapshots;
    let hit: HashSet<SnapshotId> = report
        .damage
        .iter()
        .flat_map(|d| d.affected.iter().map(|a| a.snapshot))
        .collect();
    let repo = Arc::new(repo.load_index()?);
    let sink = PackSink::new(repo.clone(), dry_run);
    let mut rewritten: HashMap<BlobId, Option<BlobId>> = HashMap::new();
    let mut plans = Vec::new();
    for entry in repo.snapshots()? {
        if !hit.contains(&entry.id) {
            continue;
        }
        let mut removed = Vec::new();
        let root = Rewriter {
            repo: &repo,
            sink: &sink,
            damaged: &damaged,
            cache: &mut rewritten,
            removed: &mut removed,
        }
        .tree(&entry.snapshot.tree, "")?;
        removed.sort();
        plans.push((entry, root, removed));
    }
    // Every new tree is indexed before any snapshot names it.
    sink.finish()?;
    let mut out = Vec::new();
    for (original, root, removed) in plans {
        let mut repaired = None;
        if !dry_run {
            let mut snapshot: Snapshot = original.snapshot.clone();
            snapshot.tree = root;
            if !snapshot.tags.iter().any(|t| t == "repaired") {
                snapshot.tags.push("repaired".into());
            }
            snapshot.warnings.push(format!(
                "repaired from snapshot {}: left out {} damaged path(s)",
                original.id.short(),
                removed.len()
            ));
            if let Some(s) = &session {
                s.confirm()?;
            }
            let id = repo.write_snapshot(&snapshot)?;
            if let Some(Err(e)) = session.as_ref().map(|s| s.confirm()) {
                let _ = repo.withdraw_snapshots(&[id]);
                return Err(e);
            }
            repo.remember_snapshot(id, snapshot.time_ns);
            repaired = Some(id);
            if forget {
                repo.withdraw_snapshots(&[original.id])?;
            }
        }
        out.push(SnapshotRepair {
            original,
            repaired,
            removed,
        });
    }
    if forget && !dry_run {
        repo.withdraw_snapshots(&unreadable)?;
    }
    Ok(SnapshotsRepair {
        repaired: out,
        unreadable,
    })
}

/// A tree being rewritten without its damage.
struct RewriteFrame {
    tree: BlobId,
    path: String,
    old: std::vec::IntoIter<Node>,
    nodes: Vec<Node>,
    changed: bool,
    /// The directory entry waiting for its subtree's new id.
    pending: Option<Node>,
}

impl RewriteFrame {
    /// Takes the pending directory entry back, with its subtree's new id.
    fn adopt(&mut self, id: BlobId) {
        let mut node = self
            .pending
            .take()
            .expect("a directory waits for its subtree");
        if node.subtree != Some(id) {
            node.subtree = Some(id);
            self.changed = true;
        }
        self.nodes.push(node);
    }
}

struct Rewriter<'a> {
    repo: &'a Repository<Indexed>,
    sink: &'a PackSink,
    damaged: &'a HashSet<BlobId>,
    /// Trees already rewritten: old id → new id (`None`: unchanged).
    cache: &'a mut HashMap<BlobId, Option<BlobId>>,
    removed: &'a mut Vec<String>,
}

impl Rewriter<'_> {
    /// The id of `tree` without its damage (the same id if it had none).
    /// The walk keeps its own stack, so a tree of any depth is safe.
    fn tree(&mut self, root: &BlobId, path: &str) -> Result<BlobId> {
        let mut stack = match self.open(root, path)? {
            Err(id) => return Ok(id),
            Ok(frame) => vec![frame],
        };
        loop {
            let top = stack
                .last_mut()
                .expect("the loop returns when the stack empties");
            let Some(node) = top.old.next() else {
                let done = stack.pop().expect("not empty");
                let id = match done.changed {
                    true => self.store(done.nodes)?,
                    false => done.tree,
                };
                self.cache
                    .insert(done.tree, (id != done.tree).then_some(id));
                match stack.last_mut() {
                    Some(parent) => parent.adopt(id),
                    None => return Ok(id),
                }
                continue;
            };
            let child = format!("{}/{}", top.path, node.name_lossy());
            match (node.kind, node.subtree) {
                (NodeKind::File, _) if self.lost(&node.content)? => {
                    self.removed.push(child);
                    top.changed = true;
                }
                (NodeKind::Dir, Some(sub)) => {
                    top.pending = Some(node);
                    match self.open(&sub, &child)? {
                        Err(id) => stack.last_mut().expect("not empty").adopt(id),
                        Ok(frame) => stack.push(frame),
                    }
                }
                _ => top.nodes.push(node),
            }
        }
    }

    /// The frame rewriting `tree`, or its final id if that is already known
    /// (rewritten before, or its listing lost).
    fn open(&mut self, tree: &BlobId, path: &str) -> Result<Result<RewriteFrame, BlobId>> {
        if let Some(done) = self.cache.get(tree) {
            return Ok(Err(done.unwrap_or(*tree)));
        }
        let loaded = match self.damaged.contains(tree) {
            true => None,
            false => self.repo.load_tree(tree).ok(),
        };
        let Some(old) = loaded else {
            self.removed
                .push(format!("{}/ (directory listing lost)", path));
            return self.store(Vec::new()).map(Err);
        };
        Ok(Ok(RewriteFrame {
            tree: *tree,
            path: path.to_string(),
            nodes: Vec::with_capacity(old.nodes.len()),
            old: old.nodes.into_iter(),
            changed: false,
            pending: None,
        }))
    }

    /// True if any of a file's blobs is damaged or in no index.
    fn lost(&self, content: &[BlobId]) -> Result<bool> {
        for b in content {
            if self.damaged.contains(b) || !self.repo.index().contains(b)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stores a directory as the repository's format version cuts them.
    fn store(&mut self, nodes: Vec<Node>) -> Result<BlobId> {
        let store = &mut |bytes: Vec<u8>| -> Result<BlobId> {
            let id = self.repo.keys().blob_id(&bytes);
            if self.sink.claim(&id)? {
                self.sink.add(encode_blob(
                    self.repo.keys(),
                    BlobType::Tree,
                    id,
                    &bytes,
                    self.repo.config().compression_level,
                ))?;
            }
            Ok(id)
        };
        DirectoryWriter::write_all(self.repo.piece_cutter().as_ref(), &nodes, store)
    }
}
