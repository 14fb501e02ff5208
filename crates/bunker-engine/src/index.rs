//! The in-memory index: where each blob is stored.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use bunker_format::blob::BlobType;
use bunker_format::id::{BlobId, PackId};
use bunker_format::index::IndexFile;

/// Where a blob lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// Data or tree.
    pub kind: BlobType,
    /// Position of the pack in [`MasterIndex::packs`].
    pub pack: u32,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored (sealed) length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// Every blob of every loaded index file.
#[derive(Default)]
pub struct MasterIndex {
    blobs: HashMap<BlobId, BlobLocation>,
    packs: Vec<(PackId, u64)>,
    pack_positions: HashMap<PackId, u32>,
    /// Positions of packs a prune condemned: readable, but not to be
    /// referenced by new snapshots (see `docs/FORMAT.md`, "Prune").
    condemned: HashSet<u32>,
}

impl MasterIndex {
    /// Adds the content of one index file. A blob stored twice keeps its first location.
    pub fn add(&mut self, file: &IndexFile) {
        self.add_marking(file, &HashSet::new());
    }

    /// Adds the content of one index file, marking the packs in `condemned`:
    /// their blobs stay readable through [`get`](Self::get), but a blob found
    /// only there is not [`contains`](Self::contains)ed, so a writer stores it
    /// again rather than reference a pack about to be deleted.
    pub fn add_marking(&mut self, file: &IndexFile, condemned: &HashSet<PackId>) {
        for p in &file.packs {
            let pos = *self.pack_positions.entry(p.id).or_insert_with(|| {
                self.packs.push((p.id, p.length));
                (self.packs.len() - 1) as u32
            });
            if condemned.contains(&p.id) {
                self.condemned.insert(pos);
            }
            for b in &p.blobs {
                let location = BlobLocation {
                    kind: b.kind,
                    pack: pos,
                    offset: b.offset,
                    length: b.length,
                    raw_length: b.raw_length,
                };
                match self.blobs.entry(b.id) {
                    Entry::Vacant(v) => {
                        v.insert(location);
                    }
                    // Prefer a copy that is not condemned.
                    Entry::Occupied(mut o)
                        if self.condemned.contains(&o.get().pack)
                            && !self.condemned.contains(&pos) =>
                    {
                        o.insert(location);
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
    }

    /// Looks up a blob.
    pub fn get(&self, id: &BlobId) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// True if the blob is stored in a pack that new snapshots may reference.
    pub fn contains(&self, id: &BlobId) -> bool {
        match self.blobs.get(id) {
            Some(l) => self.condemned.is_empty() || !self.condemned.contains(&l.pack),
            None => false,
        }
    }

    /// The pack id and recorded length at a position.
    pub fn pack(&self, pos: u32) -> (PackId, u64) {
        self.packs[pos as usize]
    }

    /// All packs with their recorded lengths.
    pub fn packs(&self) -> &[(PackId, u64)] {
        &self.packs
    }

    /// Iterates over every blob.
    pub fn blobs(&self) -> impl Iterator<Item = (&BlobId, &BlobLocation)> {
        self.blobs.iter()
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}
