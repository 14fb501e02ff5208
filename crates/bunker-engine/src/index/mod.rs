//! The index: where each blob is stored.
//!
//! A repository can hold hundreds of millions of blobs, so the index keeps
//! 4 bytes per blob in memory: 48 bits of each id, sorted ([`prefixes`]). The
//! full entries sit in the same order in an unlinked temporary file
//! ([`entry_table`]); a lookup whose prefix matches reads the entry there and
//! compares the whole id. A lookup for a blob the repository does not have,
//! the common case while new data is stored, usually ends at the prefix.

mod entry_table;
mod prefixes;

use std::collections::{HashMap, HashSet};

use bunker_format::blob::BlobType;
use bunker_format::id::{BlobId, IndexId, PackId};
use bunker_format::index::IndexFile;

use entry_table::{EntryTable, TableBuilder};
use prefixes::Prefixes;

use crate::{EngineError, Result};

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

/// Collects index files into a [`MasterIndex`].
pub struct IndexBuilder {
    table: TableBuilder,
    packs: Vec<(PackId, u64)>,
    pack_positions: HashMap<PackId, u32>,
    condemned: HashSet<u32>,
    files: Vec<(IndexId, Vec<u32>)>,
}

impl IndexBuilder {
    /// An empty index.
    pub fn new() -> Result<Self> {
        Ok(IndexBuilder {
            table: TableBuilder::new().map_err(EngineError::IndexTable)?,
            packs: Vec::new(),
            pack_positions: HashMap::new(),
            condemned: HashSet::new(),
            files: Vec::new(),
        })
    }

    /// Adds the content of one index file, marking the packs in `condemned`:
    /// their blobs stay readable through [`MasterIndex::get`], but a blob
    /// found only there is not [`MasterIndex::contains`]ed, so a writer
    /// stores it again rather than reference a pack about to be deleted.
    pub fn add(
        &mut self,
        file_id: IndexId,
        file: &IndexFile,
        condemned: &HashSet<PackId>,
    ) -> Result<()> {
        let mut named = Vec::with_capacity(file.packs.len());
        for p in &file.packs {
            let pos = *self.pack_positions.entry(p.id).or_insert_with(|| {
                self.packs.push((p.id, p.length));
                (self.packs.len() - 1) as u32
            });
            named.push(pos);
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
                self.table
                    .push(&b.id, &location)
                    .map_err(EngineError::IndexTable)?;
            }
        }
        self.files.push((file_id, named));
        Ok(())
    }

    /// The packs added so far, with their recorded lengths.
    pub fn packs(&self) -> &[(PackId, u64)] {
        &self.packs
    }

    /// Sorts the entries. `absent` are indexed packs that storage does not
    /// hold (or holds at another length). A blob stored twice keeps its first
    /// location in a pack that is neither condemned nor absent, else its
    /// first in a condemned pack, else its first.
    pub fn finish(self, absent: &HashSet<PackId>) -> Result<MasterIndex> {
        let absent: HashSet<u32> = absent
            .iter()
            .filter_map(|p| self.pack_positions.get(p).copied())
            .collect();
        let condemned = self.condemned;
        let rank = |pack: u32| match (absent.contains(&pack), condemned.contains(&pack)) {
            (false, false) => 0,
            (false, true) => 1,
            (true, _) => 2,
        };
        // Every location of a blob is kept, best first: a reader that finds
        // one copy damaged (or an index that lied) tries the next.
        let (table, prefixes, distinct) = self
            .table
            .finish(|same| {
                let mut order: Vec<usize> = (0..same.len()).collect();
                order.sort_by_key(|&i| rank(same[i].1.pack));
                let mut packs = HashSet::new();
                order.retain(|&i| packs.insert(same[i].1.pack));
                order
            })
            .map_err(EngineError::IndexTable)?;
        let mut packs = self.packs;
        packs.shrink_to_fit();
        Ok(MasterIndex {
            prefixes,
            distinct,
            table,
            packs,
            files: self.files,
            condemned,
            absent,
        })
    }
}

/// Every blob of every loaded index file.
pub struct MasterIndex {
    /// 48 bits of the id of every entry, sorted (a blob stored in several
    /// packs has an entry for each, best first).
    prefixes: Prefixes,
    /// How many distinct blobs.
    distinct: usize,
    /// The entries, in the order of `prefixes`.
    table: EntryTable,
    packs: Vec<(PackId, u64)>,
    /// Each index file read, with the positions of the packs it names.
    files: Vec<(IndexId, Vec<u32>)>,
    /// Positions of packs a prune condemned: readable, but not to be
    /// referenced by new snapshots (see `docs/FORMAT.md`, "Prune").
    condemned: HashSet<u32>,
    /// Positions of packs missing from storage (or of another length).
    absent: HashSet<u32>,
}

impl MasterIndex {
    /// Looks up a blob: its best location (in a pack that exists and is not
    /// condemned, if it has one). An error means the entry file could not be read.
    pub fn get(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        Ok(self.best(id)?.map(|(_, loc)| loc))
    }

    /// Every location of a blob, best first.
    pub fn locations(&self, id: &BlobId) -> Result<Vec<BlobLocation>> {
        self.matches(id).map(|m| m.map(|(_, loc)| loc)).collect()
    }

    /// The position of the blob's best entry in id order (below
    /// [`entries`](Self::entries)): a number naming the blob for as long as
    /// this index lives, so a set of blobs can be a bitmap.
    pub fn position(&self, id: &BlobId) -> Result<Option<usize>> {
        Ok(self.best(id)?.map(|(i, _)| i))
    }

    /// The best entry of `id` with its position.
    fn best(&self, id: &BlobId) -> Result<Option<(usize, BlobLocation)>> {
        self.matches(id).next().transpose()
    }

    /// The entries of `id`, best first, with their positions: those whose
    /// 48-bit prefix matches, read from the entry file and compared whole.
    fn matches<'a>(
        &'a self,
        id: &'a BlobId,
    ) -> impl Iterator<Item = Result<(usize, BlobLocation)>> + 'a {
        self.prefixes.candidates(id).filter_map(move |i| {
            match self.table.get(i, id.as_bytes()[0]) {
                Ok((found, loc)) => (found == *id).then_some(Ok((i, loc))),
                Err(e) => Some(Err(EngineError::IndexTable(e))),
            }
        })
    }

    /// Number of entries (a blob stored in several packs has one for each).
    pub fn entries(&self) -> usize {
        self.prefixes.len()
    }

    /// True if the blob is stored in a pack that new snapshots may
    /// reference: one that exists and that no prune condemned.
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        Ok(match self.get(id)? {
            Some(l) => !self.condemned.contains(&l.pack) && !self.absent.contains(&l.pack),
            None => false,
        })
    }

    /// True if the pack at `pos` was missing from storage (or of another
    /// length) when the index was loaded.
    pub fn is_absent(&self, pos: u32) -> bool {
        self.absent.contains(&pos)
    }

    /// The packs missing from storage when the index was loaded.
    pub fn absent_packs(&self) -> impl Iterator<Item = (PackId, u64)> + '_ {
        self.absent.iter().map(|&p| self.packs[p as usize])
    }

    /// The pack id and recorded length at a position.
    pub fn pack(&self, pos: u32) -> (PackId, u64) {
        self.packs[pos as usize]
    }

    /// All packs with their recorded lengths.
    pub fn packs(&self) -> &[(PackId, u64)] {
        &self.packs
    }

    /// Each index file read, with the positions of the packs it names.
    pub fn files(&self) -> &[(IndexId, Vec<u32>)] {
        &self.files
    }

    /// Every blob at its best location, in id order.
    pub fn blobs(&self) -> impl Iterator<Item = Result<(BlobId, BlobLocation)>> + '_ {
        let mut last = None;
        self.all_locations().filter(move |e| match e {
            Ok((id, _)) => last.replace(*id) != Some(*id),
            Err(_) => true,
        })
    }

    /// Every location of every blob, in id order (best first for each): the
    /// n-th is at position n.
    pub fn all_locations(&self) -> impl Iterator<Item = Result<(BlobId, BlobLocation)>> + '_ {
        self.table
            .iter()
            .map(|e| e.map_err(EngineError::IndexTable))
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.distinct
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.prefixes.len() == 0
    }

    /// Bytes of memory the index holds: the prefixes, the table's block
    /// list, per pack its id, length and condemnation mark, and per index
    /// file the packs it names.
    pub fn heap_bytes(&self) -> usize {
        self.prefixes.heap_bytes()
            + self.table.heap_bytes()
            + self.packs.capacity() * std::mem::size_of::<(PackId, u64)>()
            + self
                .files
                .iter()
                .map(|(_, p)| std::mem::size_of::<(IndexId, Vec<u32>)>() + p.capacity() * 4)
                .sum::<usize>()
            + (self.condemned.capacity() + self.absent.capacity()) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunker_format::index::IndexedPack;
    use bunker_format::pack::PackEntry;

    /// An index of the given files, none condemned.
    fn index_of<'a>(files: impl IntoIterator<Item = &'a IndexFile>) -> MasterIndex {
        let mut builder = IndexBuilder::new().unwrap();
        for f in files {
            builder.add(IndexId([0; 32]), f, &HashSet::new()).unwrap();
        }
        builder.finish(&HashSet::new()).unwrap()
    }

    /// A distinct, well-spread id for each `n`.
    fn id(n: u64) -> BlobId {
        BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn pack(p: u8, blobs: impl IntoIterator<Item = (BlobId, BlobType)>) -> IndexedPack {
        IndexedPack {
            id: PackId([p; 32]),
            length: 1000,
            blobs: blobs
                .into_iter()
                .enumerate()
                .map(|(i, (id, kind))| PackEntry {
                    kind,
                    id,
                    offset: 10 * i as u32,
                    length: 10,
                    raw_length: 7 + p as u32,
                })
                .collect(),
        }
    }

    #[test]
    fn finds_every_blob_and_nothing_else() {
        let ids: Vec<BlobId> = (0..5000).map(id).collect();
        let file = IndexFile {
            supersedes: Vec::new(),
            packs: vec![
                pack(1, ids[..2500].iter().map(|&i| (i, BlobType::Data))),
                pack(2, ids[2500..].iter().map(|&i| (i, BlobType::Tree))),
            ],
        };
        let index = index_of([&file]);
        assert_eq!(index.len(), 5000);
        for (n, i) in ids.iter().enumerate() {
            let loc = index.get(i).unwrap().expect("indexed");
            let (p, kind) = if n < 2500 {
                (1, BlobType::Data)
            } else {
                (2, BlobType::Tree)
            };
            assert_eq!(index.pack(loc.pack).0, PackId([p; 32]));
            assert_eq!(
                (loc.kind, loc.offset, loc.raw_length),
                (kind, 10 * (n % 2500) as u32, 7 + p as u32)
            );
        }
        for n in 5000..6000 {
            assert!(!index.contains(&id(n)).unwrap());
        }
        let listed: Vec<BlobId> = index.blobs().map(|b| b.unwrap().0).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
    }

    #[test]
    fn ids_sharing_their_first_eight_bytes_are_told_apart() {
        let mut a = id(1);
        let mut b = id(2);
        let mut absent = id(3);
        b.0[..8].copy_from_slice(&a.0[..8]);
        absent.0[..8].copy_from_slice(&a.0[..8]);
        a.0[31] = 0;
        let file = IndexFile {
            supersedes: Vec::new(),
            packs: vec![
                pack(1, [(a, BlobType::Data)]),
                pack(2, [(b, BlobType::Data)]),
            ],
        };
        let index = index_of([&file]);
        assert_eq!(
            index.pack(index.get(&a).unwrap().unwrap().pack).0,
            PackId([1; 32])
        );
        assert_eq!(
            index.pack(index.get(&b).unwrap().unwrap().pack).0,
            PackId([2; 32])
        );
        assert_eq!(index.get(&absent).unwrap(), None);
    }

    #[test]
    fn a_blob_stored_twice_prefers_the_copy_that_is_not_condemned() {
        let (x, y) = (id(1), id(2));
        let first = IndexFile {
            supersedes: Vec::new(),
            packs: vec![pack(1, [(x, BlobType::Data), (y, BlobType::Data)])],
        };
        let second = IndexFile {
            supersedes: Vec::new(),
            packs: vec![pack(2, [(x, BlobType::Data)])],
        };
        let mut builder = IndexBuilder::new().unwrap();
        builder
            .add(IndexId([1; 32]), &first, &HashSet::from([PackId([1; 32])]))
            .unwrap();
        builder
            .add(IndexId([2; 32]), &second, &HashSet::new())
            .unwrap();
        let index = builder.finish(&HashSet::new()).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(
            index.pack(index.get(&x).unwrap().unwrap().pack).0,
            PackId([2; 32])
        );
        assert!(index.contains(&x).unwrap());
        // Only in the condemned pack: readable, but not for deduplication.
        assert!(index.get(&y).unwrap().is_some());
        assert!(!index.contains(&y).unwrap());
        // Neither condemned: the first copy wins.
        let index = index_of([&second, &first]);
        assert_eq!(
            index.pack(index.get(&x).unwrap().unwrap().pack).0,
            PackId([2; 32])
        );
    }

    #[test]
    fn a_blob_in_a_pack_missing_from_storage_prefers_any_other_copy() {
        let (x, y) = (id(1), id(2));
        let lost = IndexFile {
            supersedes: Vec::new(),
            packs: vec![pack(1, [(x, BlobType::Data), (y, BlobType::Data)])],
        };
        let condemned = IndexFile {
            supersedes: Vec::new(),
            packs: vec![pack(2, [(x, BlobType::Data)])],
        };
        let mut builder = IndexBuilder::new().unwrap();
        builder
            .add(IndexId([1; 32]), &lost, &HashSet::new())
            .unwrap();
        builder
            .add(
                IndexId([2; 32]),
                &condemned,
                &HashSet::from([PackId([2; 32])]),
            )
            .unwrap();
        let index = builder.finish(&HashSet::from([PackId([1; 32])])).unwrap();
        // The condemned copy exists, so it is read, but never deduplicated against.
        let loc = index.get(&x).unwrap().unwrap();
        assert_eq!(index.pack(loc.pack).0, PackId([2; 32]));
        assert!(!index.contains(&x).unwrap());
        // Only in the lost pack: located (so readers can name the damage), not stored.
        let loc = index.get(&y).unwrap().unwrap();
        assert!(index.is_absent(loc.pack));
        assert!(!index.contains(&y).unwrap());
        assert_eq!(index.absent_packs().count(), 1);
    }

    /// At most 6 bytes of memory per stored chunk (4 for the prefixes), with
    /// a million chunks in 4,000 packs of 250 (packs of small chunks, the
    /// setting where per-pack costs weigh most).
    #[test]
    fn a_million_chunks_take_at_most_6_bytes_each() {
        const CHUNKS: u64 = 1_000_000;
        let mut builder = IndexBuilder::new().unwrap();
        for f in 0..CHUNKS / 10_000 {
            let packs = (0..40)
                .map(|p| {
                    let first = f * 10_000 + p * 250;
                    let mut pack = pack(0, (first..first + 250).map(|n| (id(n), BlobType::Data)));
                    pack.id = PackId(*blake3::hash(&first.to_le_bytes()).as_bytes());
                    pack
                })
                .collect();
            builder
                .add(
                    IndexId([0; 32]),
                    &IndexFile {
                        supersedes: Vec::new(),
                        packs,
                    },
                    &HashSet::new(),
                )
                .unwrap();
        }
        let index = builder.finish(&HashSet::new()).unwrap();
        assert_eq!(index.len() as u64, CHUNKS);
        let per_chunk = index.heap_bytes() as f64 / CHUNKS as f64;
        eprintln!("index memory: {per_chunk:.2} bytes per chunk");
        assert!(per_chunk <= 6.0, "{per_chunk:.2} bytes per chunk");
        for n in (0..CHUNKS).step_by(9973) {
            assert!(index.contains(&id(n)).unwrap());
        }
        assert!(!index.contains(&id(CHUNKS)).unwrap());
    }
}
