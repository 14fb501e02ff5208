//! The blobs the snapshots reference, as one bit per index entry.
//!
//! A set of 32-byte ids costs about 50 bytes per blob, 5 GB at 10⁸ blobs;
//! a bitmap over the loaded index's sorted positions costs one bit, 12.5 MB.
//! The bitmap belongs to the index it was marked against, so each step of
//! prune lists the snapshots, then loads the index, then marks afresh.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bunker_format::id::{BlobId, PackId, SnapshotId};
use bunker_format::pack::PackEntry;
use bunker_format::tree::NodeKind;

use crate::index::{BlobLocation, MasterIndex};
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// What the snapshots present reference, against the index loaded after
/// they were listed.
pub(super) struct Referenced {
    /// The repository, with the index the marks refer to.
    pub repo: Repository<Indexed>,
    /// Every pack on storage and its size, listed after the index files
    /// were read (so every pack they name was written before).
    pub stored: HashMap<PackId, u64>,
    pub used: UsedBlobs,
    /// The snapshots whose blobs are marked.
    pub snapshots: HashSet<SnapshotId>,
}

/// Blobs a walk in this run already found used, and the snapshots it walked.
pub(super) struct Walked<'a> {
    pub snapshots: &'a HashSet<SnapshotId>,
    /// The blobs of those snapshots that this run moved (its repacked ones).
    pub moved: &'a [BlobId],
}

/// Marked blobs; see the module docs.
pub(super) struct UsedBlobs {
    index: Arc<MasterIndex>,
    bits: Vec<u64>,
    /// Referenced ids that no index names (a damaged repository).
    unindexed: HashSet<BlobId>,
}

impl UsedBlobs {
    fn new(index: Arc<MasterIndex>) -> Self {
        UsedBlobs {
            bits: vec![0; index.entries().div_ceil(64)],
            index,
            unindexed: HashSet::new(),
        }
    }

    /// Marks a blob; true if it was not marked yet.
    fn mark(&mut self, id: &BlobId) -> Result<bool> {
        match self.index.position(id)? {
            Some(i) => {
                let (word, bit) = (i / 64, 1u64 << (i % 64));
                let new = self.bits[word] & bit == 0;
                self.bits[word] |= bit;
                Ok(new)
            }
            None => Ok(self.unindexed.insert(*id)),
        }
    }

    /// True if a snapshot references the blob.
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        Ok(match self.index.position(id)? {
            Some(i) => self.at(i),
            None => self.unindexed.contains(id),
        })
    }

    fn at(&self, position: usize) -> bool {
        self.bits[position / 64] & (1 << (position % 64)) != 0
    }

    /// A referenced blob that no index names, if there is one.
    pub fn unindexed(&self) -> Option<&BlobId> {
        self.unindexed.iter().min()
    }

    /// Calls `f` with every indexed blob, whether it is used, and all its
    /// locations (best first), in id order: one pass over the index file.
    pub fn for_each_blob(
        &self,
        mut f: impl FnMut(&BlobId, bool, &[BlobLocation]) -> Result<()>,
    ) -> Result<()> {
        let mut current: Option<(BlobId, usize)> = None;
        let mut locations = Vec::new();
        for (position, entry) in self.index.all_locations().enumerate() {
            let (id, location) = entry?;
            if current.is_some_and(|(c, _)| c != id) {
                let (c, at) = current.take().expect("checked");
                f(&c, self.at(at), &locations)?;
                locations.clear();
            }
            current.get_or_insert((id, position));
            locations.push(location);
        }
        if let Some((c, at)) = current {
            f(&c, self.at(at), &locations)?;
        }
        Ok(())
    }
}

/// Lists the snapshots present, loads the index (after the listing: a
/// snapshot is written after the index naming its blobs), and marks every
/// blob, tree and data, that the snapshots reference. Any unreadable
/// snapshot or tree, or index file, stops the prune: what it references
/// would look unused.
///
/// When the snapshots are exactly those a walk in this run marked (no
/// backup committed, nothing was forgotten since), only the blobs that run
/// moved are marked: those are the only used blobs the packs it condemned
/// hold, and phase 2 then checks that their copies are in place, without
/// walking every snapshot a second time.
pub(super) fn reference_blobs<S>(
    repo: &Repository<S>,
    walked: Option<Walked>,
) -> Result<Referenced> {
    let list = repo.snapshot_list()?;
    if let Some(u) = list.unreadable.first() {
        return Err(EngineError::Invalid(format!(
            "refusing to prune: snapshot {} is unreadable ({}), and what it references would look unused; `bunker forget {}` removes it",
            u.id.short(),
            u.error,
            u.id.short()
        )));
    }
    let load = repo.reopened().load_index_report(&HashSet::new())?;
    if let Some(e) = load.errors.first() {
        return Err(EngineError::Invalid(format!(
            "refusing to prune: {e} (run `bunker repair index` first)"
        )));
    }
    let repo = load.repo;
    let mut used = UsedBlobs::new(repo.index().clone());
    let snapshots: HashSet<SnapshotId> = list.entries.iter().map(|s| s.id).collect();
    if let Some(walked) = walked.filter(|w| *w.snapshots == snapshots) {
        for id in walked.moved {
            used.mark(id)?;
        }
        return Ok(Referenced {
            repo,
            stored: load.stored,
            used,
            snapshots,
        });
    }
    let mut stack: Vec<BlobId> = list.entries.iter().map(|s| s.snapshot.tree).collect();
    while let Some(tree_id) = stack.pop() {
        if !used.mark(&tree_id)? {
            continue;
        }
        // A directory's pieces (format 4) are kept with it.
        let mut pieces = Vec::new();
        let tree = repo
            .load_tree_noting(&tree_id, &mut |piece| pieces.push(*piece))
            .map_err(|e| {
                EngineError::Invalid(format!(
                    "refusing to prune: {e} (run `bunker check` to see which snapshots are damaged)"
                ))
            })?;
        for piece in &pieces {
            used.mark(piece)?;
        }
        for node in &tree.nodes {
            match node.kind {
                NodeKind::Dir => stack.extend(node.subtree),
                NodeKind::File => {
                    for id in &node.content {
                        used.mark(id)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Referenced {
        repo,
        stored: load.stored,
        used,
        snapshots,
    })
}

/// A blob's index entry as a pack entry.
pub(super) fn entry(id: &BlobId, l: &BlobLocation) -> PackEntry {
    PackEntry {
        kind: l.kind,
        id: *id,
        offset: l.offset,
        length: l.length,
        raw_length: l.raw_length,
    }
}

/// Every blob an index places in each pack of `packs`, in pack order, by
/// pack position.
pub(super) fn indexed_blobs(
    used: &UsedBlobs,
    packs: &HashSet<u32>,
) -> Result<HashMap<u32, Vec<PackEntry>>> {
    let mut out: HashMap<u32, Vec<PackEntry>> = HashMap::new();
    if packs.is_empty() {
        return Ok(out);
    }
    used.for_each_blob(|id, _, locations| {
        for l in locations.iter().filter(|l| packs.contains(&l.pack)) {
            out.entry(l.pack).or_default().push(entry(id, l));
        }
        Ok(())
    })?;
    for blobs in out.values_mut() {
        blobs.sort_by_key(|b| b.offset);
    }
    Ok(out)
}
