//! Pack headers, read to verify what an index claims before anything is
//! deleted on its word.
//!
//! Any holder of the repository key can write an index file, and storage can
//! replay an old one. Neither may make prune delete live data: a blob counts
//! as kept only in a pack that exists, whose authenticated header lists it,
//! and from which it reads back whole. Headers are read only where a deletion depends on them (the packs that
//! go, and the packs said to keep their live blobs), so an ordinary prune
//! reads a few.

use std::collections::HashMap;

use bunker_format::id::{BlobId, PackId};
use bunker_format::pack::PackEntry;

use crate::repository::{Indexed, Repository};

/// The headers read so far.
pub(super) struct PackHeaders<'a> {
    repo: &'a Repository<Indexed>,
    stored: &'a HashMap<PackId, u64>,
    read: HashMap<PackId, Option<Header>>,
    confirmed: HashMap<(PackId, BlobId), bool>,
}

/// A pack's own account of its blobs.
pub(super) struct Header {
    pub entries: Vec<PackEntry>,
    ids: HashMap<BlobId, usize>,
}

impl<'a> PackHeaders<'a> {
    /// Headers of the packs in `stored` (every pack on storage, with its size).
    pub fn new(repo: &'a Repository<Indexed>, stored: &'a HashMap<PackId, u64>) -> Self {
        PackHeaders {
            repo,
            stored,
            read: HashMap::new(),
            confirmed: HashMap::new(),
        }
    }

    /// The repository the headers are read from.
    pub fn repo(&self) -> &'a Repository<Indexed> {
        self.repo
    }

    /// The pack's header, read now and not kept: for the packs that go,
    /// each looked at once, whose headers together can be as large as the
    /// data they free. `None` as for [`of`](Self::of).
    pub fn read(&self, pack: &PackId) -> Option<Vec<PackEntry>> {
        if let Some(Some(h)) = self.read.get(pack) {
            return Some(h.entries.clone());
        }
        let size = *self.stored.get(pack)?;
        self.repo.read_pack_header(pack, size).ok()
    }

    /// The pack's header, kept for later questions; `None` if the pack is missing or its header
    /// cannot be read (then it vouches for nothing).
    pub fn of(&mut self, pack: &PackId) -> Option<&Header> {
        let (repo, stored) = (self.repo, self.stored);
        self.read
            .entry(*pack)
            .or_insert_with(|| {
                let size = *stored.get(pack)?;
                let entries = repo.read_pack_header(pack, size).ok()?;
                let ids = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
                Some(Header { entries, ids })
            })
            .as_ref()
    }

    /// True if `pack` exists, its header lists `blob`, and the blob reads
    /// back whole from where the header puts it (so a header copied from
    /// another pack vouches for nothing).
    pub fn holds(&mut self, pack: &PackId, blob: &BlobId) -> bool {
        if let Some(&confirmed) = self.confirmed.get(&(*pack, *blob)) {
            return confirmed;
        }
        let repo = self.repo;
        let entry = self
            .of(pack)
            .and_then(|h| h.ids.get(blob).map(|&i| h.entries[i]));
        let length = self.stored.get(pack).copied().unwrap_or(0);
        let confirmed = entry.is_some_and(|e| repo.read_blob_in(pack, length, &e).is_ok());
        self.confirmed.insert((*pack, *blob), confirmed);
        confirmed
    }
}
