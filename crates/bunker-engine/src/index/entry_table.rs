//! The full index entries, sorted by blob id, in an unlinked temporary file.
//!
//! Entries arrive in index-file order. Each goes to one of 256 buckets by its
//! id's first byte; a bucket is a chain of fixed-size blocks in the file, so
//! building needs only one staging block per bucket in memory. `finish` then
//! sorts each bucket on its own (1/256 of the entries at a time) and writes it
//! back over its blocks. Entry `i` of the sorted order is found from the
//! bucket boundaries alone: no per-entry pointer is kept in memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use bunker_format::blob::BlobType;
use bunker_format::id::BlobId;

use super::prefixes::Prefixes;
use super::BlobLocation;

/// id ‖ pack:u32 (top bit: tree) ‖ offset:u32 ‖ length:u32 ‖ raw_length:u32
const ENTRY_LEN: usize = 48;
const PER_BLOCK: usize = 85;
const BLOCK_LEN: usize = PER_BLOCK * ENTRY_LEN;
const BUCKETS: usize = 256;
const TREE_BIT: u32 = 1 << 31;

/// One blob's entry.
pub(super) type Entry = (BlobId, BlobLocation);

fn encode(id: &BlobId, loc: &BlobLocation, out: &mut Vec<u8>) {
    let pack = match loc.kind {
        BlobType::Data => loc.pack,
        BlobType::Tree => loc.pack | TREE_BIT,
    };
    out.extend_from_slice(id.as_bytes());
    for v in [pack, loc.offset, loc.length, loc.raw_length] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn decode(b: &[u8]) -> Entry {
    let word =
        |i: usize| u32::from_le_bytes(b[32 + 4 * i..36 + 4 * i].try_into().expect("4 bytes"));
    let pack = word(0);
    let id = BlobId(b[..32].try_into().expect("32 bytes"));
    let loc = BlobLocation {
        kind: if pack & TREE_BIT == 0 {
            BlobType::Data
        } else {
            BlobType::Tree
        },
        pack: pack & !TREE_BIT,
        offset: word(1),
        length: word(2),
        raw_length: word(3),
    };
    (id, loc)
}

/// Collects entries into buckets; [`finish`](Self::finish) sorts them.
pub(super) struct TableBuilder {
    file: File,
    end: u64,
    staging: Vec<Vec<u8>>,
    blocks: Vec<Vec<u64>>,
}

impl TableBuilder {
    pub fn new() -> io::Result<Self> {
        Ok(TableBuilder {
            file: tempfile::tempfile()?,
            end: 0,
            staging: vec![Vec::new(); BUCKETS],
            blocks: vec![Vec::new(); BUCKETS],
        })
    }

    /// Appends one entry. Pack positions must stay below 2³¹.
    pub fn push(&mut self, id: &BlobId, loc: &BlobLocation) -> io::Result<()> {
        let b = id.as_bytes()[0] as usize;
        let staging = &mut self.staging[b];
        if staging.capacity() == 0 {
            staging.reserve_exact(BLOCK_LEN);
        }
        encode(id, loc, staging);
        if staging.len() == BLOCK_LEN {
            self.file.write_all_at(staging, self.end)?;
            self.blocks[b].push(self.end);
            self.end += BLOCK_LEN as u64;
            staging.clear();
        }
        Ok(())
    }

    /// Sorts every bucket by id. The entries that share an id are given to
    /// `order` in the order they were pushed; it returns the positions to
    /// keep, best first, and they stay in that order. Returns the table,
    /// the prefixes of the kept entries, and the number of distinct ids.
    pub fn finish(
        mut self,
        order: impl Fn(&[Entry]) -> Vec<usize>,
    ) -> io::Result<(EntryTable, Prefixes, usize)> {
        let total: usize = (0..BUCKETS)
            .map(|b| self.blocks[b].len() * PER_BLOCK + self.staging[b].len() / ENTRY_LEN)
            .sum();
        if total >= u32::MAX as usize {
            return Err(io::Error::other("an index of 2³² entries or more"));
        }
        let mut prefixes = Prefixes::with_capacity(total);
        let mut distinct = 0;
        let mut starts = [0usize; BUCKETS + 1];
        let mut bytes = Vec::new();
        for b in 0..BUCKETS {
            // Read the bucket back: its full blocks, then its staged tail.
            bytes.clear();
            for &at in &self.blocks[b] {
                let from = bytes.len();
                bytes.resize(from + BLOCK_LEN, 0);
                self.file.read_exact_at(&mut bytes[from..], at)?;
            }
            bytes.extend_from_slice(&std::mem::take(&mut self.staging[b]));
            let mut entries: Vec<Entry> = bytes.chunks_exact(ENTRY_LEN).map(decode).collect();
            // Stable: entries with one id stay in push order for `order`.
            entries.sort_by_key(|e| e.0);
            let mut kept = Vec::with_capacity(entries.len());
            for group in entries.chunk_by(|a, b| a.0 == b.0) {
                distinct += 1;
                kept.extend(order(group).into_iter().map(|i| group[i]));
            }
            // Write the sorted entries over the bucket's blocks, adding one
            // if the tail did not fit in a full block.
            bytes.clear();
            for (id, loc) in &kept {
                encode(id, loc, &mut bytes);
                prefixes.push(id);
            }
            let blocks = &mut self.blocks[b];
            for (i, block) in bytes.chunks(BLOCK_LEN).enumerate() {
                if i == blocks.len() {
                    blocks.push(self.end);
                    self.end += BLOCK_LEN as u64;
                }
                self.file.write_all_at(block, blocks[i])?;
            }
            blocks.truncate(bytes.len().div_ceil(BLOCK_LEN));
            blocks.shrink_to_fit();
            starts[b + 1] = prefixes.len();
        }
        prefixes.finish();
        Ok((
            EntryTable {
                file: self.file,
                blocks: self.blocks,
                starts,
            },
            prefixes,
            distinct,
        ))
    }
}

/// Sorted entries on disk; see the module docs.
pub(super) struct EntryTable {
    file: File,
    blocks: Vec<Vec<u64>>,
    /// `starts[b]..starts[b + 1]`: the sorted positions of bucket `b`.
    starts: [usize; BUCKETS + 1],
}

impl EntryTable {
    /// The entry at sorted position `i`, whose id starts with byte `first`.
    pub fn get(&self, i: usize, first: u8) -> io::Result<Entry> {
        let j = i - self.starts[first as usize];
        let at = self.blocks[first as usize][j / PER_BLOCK] + ((j % PER_BLOCK) * ENTRY_LEN) as u64;
        let mut buf = [0u8; ENTRY_LEN];
        self.file.read_exact_at(&mut buf, at)?;
        Ok(decode(&buf))
    }

    /// Every entry in id order, read a block at a time.
    pub fn iter(&self) -> impl Iterator<Item = io::Result<Entry>> + '_ {
        (0..BUCKETS).flat_map(move |b| {
            let count = self.starts[b + 1] - self.starts[b];
            self.blocks[b].iter().enumerate().flat_map(move |(k, &at)| {
                let n = (count - k * PER_BLOCK).min(PER_BLOCK);
                let mut buf = vec![0u8; n * ENTRY_LEN];
                let read = self.file.read_exact_at(&mut buf, at);
                let entries: Vec<io::Result<Entry>> = match read {
                    Ok(()) => buf.chunks_exact(ENTRY_LEN).map(|e| Ok(decode(e))).collect(),
                    Err(e) => vec![Err(e)],
                };
                entries
            })
        })
    }

    /// Bytes of memory this table holds.
    pub fn heap_bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.capacity() * 8).sum::<usize>() + self.blocks.capacity() * 24
    }
}
