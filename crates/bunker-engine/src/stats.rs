//! Repository statistics: sizes, deduplication and compression.

use std::collections::{HashMap, HashSet};

use bunker_backend::FileKind;
use bunker_format::id::BlobId;
use bunker_format::tree::NodeKind;

use crate::repository::{Indexed, Repository};
use crate::Result;

/// Sizes of a repository.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RepoStats {
    /// Snapshots.
    pub snapshots: u64,
    /// Files over all snapshots (a file in two snapshots counts twice).
    pub files: u64,
    /// Bytes a restore of every snapshot would write.
    pub raw_size: u64,
    /// Distinct blobs the snapshots reference.
    pub unique_blobs: u64,
    /// Plaintext bytes of those blobs: the data after deduplication.
    pub deduplicated_size: u64,
    /// Stored bytes of those blobs: after compression and encryption.
    pub stored_blob_size: u64,
    /// Everything in the repository: packs, indexes, snapshots, keys, config.
    pub repository_size: u64,
    /// Pack files.
    pub packs: u64,
    /// raw_size / deduplicated_size.
    pub deduplication_ratio: f64,
    /// deduplicated_size / stored_blob_size.
    pub compression_ratio: f64,
}

/// Computes [`RepoStats`] by walking every snapshot's trees.
pub fn stats(repo: &Repository<Indexed>) -> Result<RepoStats> {
    let mut s = RepoStats::default();
    let mut blobs: HashSet<BlobId> = HashSet::new();
    // Per tree: (files, bytes) below it, so shared subtrees are walked once.
    let mut memo: HashMap<BlobId, (u64, u64)> = HashMap::new();
    for entry in repo.snapshots()? {
        s.snapshots += 1;
        let (files, bytes) = tree_totals(repo, &entry.snapshot.tree, &mut memo, &mut blobs)?;
        s.files += files;
        s.raw_size += bytes;
    }
    for id in &blobs {
        if let Some(loc) = repo.index().get(id)? {
            s.unique_blobs += 1;
            s.deduplicated_size += loc.raw_length as u64;
            s.stored_blob_size += loc.length as u64;
        }
    }
    for kind in [
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Key,
    ] {
        let files = repo.backend().list(kind)?;
        if kind == FileKind::Pack {
            s.packs = files.len() as u64;
        }
        s.repository_size += files.iter().map(|f| f.size).sum::<u64>();
    }
    s.repository_size += repo.backend().size(FileKind::Config, "")?;
    s.deduplication_ratio = ratio(s.raw_size, s.deduplicated_size);
    s.compression_ratio = ratio(s.deduplicated_size, s.stored_blob_size);
    Ok(s)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

fn tree_totals(
    repo: &Repository<Indexed>,
    id: &BlobId,
    memo: &mut HashMap<BlobId, (u64, u64)>,
    blobs: &mut HashSet<BlobId>,
) -> Result<(u64, u64)> {
    if let Some(t) = memo.get(id) {
        return Ok(*t);
    }
    let tree = repo.load_tree_noting(id, &mut |piece| {
        blobs.insert(*piece);
    })?;
    let (mut files, mut bytes) = (0, 0);
    for node in &tree.nodes {
        match node.kind {
            NodeKind::File => {
                files += 1;
                bytes += node.size;
                blobs.extend(node.content.iter().copied());
            }
            NodeKind::Dir => {
                if let Some(sub) = node.subtree {
                    let (f, b) = tree_totals(repo, &sub, memo, blobs)?;
                    files += f;
                    bytes += b;
                }
            }
            _ => {}
        }
    }
    memo.insert(*id, (files, bytes));
    Ok((files, bytes))
}
