//! Pack headers, read to verify what an index claims before anything is
//! deleted on its word.
//!
//! Any holder of the repository key can write an index file, and storage can
//! replay an old one. Neither may make prune delete live data: a blob counts
//! as kept only in a pack that exists and whose authenticated header lists
//! it. Headers are read only where a deletion depends on them (the packs that
//! go, and the packs said to keep their live blobs), so an ordinary prune
//! reads a few.

use std::collections::{HashMap, HashSet};

use bunker_format::id::{BlobId, PackId};
use bunker_format::pack::PackEntry;

use crate::repository::{Indexed, Repository};

/// The headers read so far.
pub(super) struct PackHeaders<'a> {
    repo: &'a Repository<Indexed>,
    stored: &'a HashMap<PackId, u64>,
    read: HashMap<PackId, Option<Header>>,
}

/// A pack's own account of its blobs.
pub(super) struct Header {
    pub entries: Vec<PackEntry>,
    ids: HashSet<BlobId>,
}

impl<'a> PackHeaders<'a> {
    /// Headers of the packs in `stored` (every pack on storage, with its size).
    pub fn new(repo: &'a Repository<Indexed>, stored: &'a HashMap<PackId, u64>) -> Self {
        PackHeaders {
            repo,
            stored,
            read: HashMap::new(),
        }
    }

    /// The pack's header; `None` if the pack is missing or its header
    /// cannot be read (then it vouches for nothing).
    pub fn of(&mut self, pack: &PackId) -> Option<&Header> {
        let (repo, stored) = (self.repo, self.stored);
        self.read
            .entry(*pack)
            .or_insert_with(|| {
                let size = *stored.get(pack)?;
                let entries = repo.read_pack_header(pack, size).ok()?;
                let ids = entries.iter().map(|e| e.id).collect();
                Some(Header { entries, ids })
            })
            .as_ref()
    }

    /// True if `pack` exists and its header lists `blob`.
    pub fn holds(&mut self, pack: &PackId, blob: &BlobId) -> bool {
        self.of(pack).is_some_and(|h| h.ids.contains(blob))
    }
}
