//! The index's part in memory: 4 bytes per entry, plus a fixed 256 KiB.
//!
//! Entries are sorted by id. The first 16 bits of an id select one of 65,536
//! ranges of positions; within a range, the next 32 bits of every entry's id
//! are kept, in order. A lookup thus compares 48 bits before it reads an
//! entry from the file: for a blob the repository does not have (the common
//! case while new data is stored), a kept prefix matches with a probability
//! of about n / 2⁴⁸, 4 in 10 million at 10⁸ entries.

use std::ops::Range;

use bunker_format::id::BlobId;

/// Ranges of positions by the ids' first 16 bits.
const RANGES: usize = 1 << 16;

/// Sorted 48-bit prefixes; see the module docs.
pub(super) struct Prefixes {
    /// `starts[t]..starts[t + 1]`: the positions whose ids start with `t`.
    starts: Vec<u32>,
    /// Bits 16 to 48 of each entry's id.
    keys: Vec<u32>,
}

fn split(id: &BlobId) -> (usize, u32) {
    let b = id.as_bytes();
    (
        u16::from_be_bytes([b[0], b[1]]) as usize,
        u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
    )
}

impl Prefixes {
    /// Room for `entries`, pushed in id order.
    pub fn with_capacity(entries: usize) -> Self {
        Prefixes {
            starts: Vec::with_capacity(RANGES + 1),
            keys: Vec::with_capacity(entries),
        }
    }

    /// Appends the next entry's id (ids come in sorted order). Positions
    /// are 32-bit: an index holds fewer than 2³² entries.
    pub fn push(&mut self, id: &BlobId) {
        let (top, key) = split(id);
        while self.starts.len() <= top {
            self.starts.push(self.keys.len() as u32);
        }
        self.keys.push(key);
    }

    /// Closes the last ranges.
    pub fn finish(&mut self) {
        while self.starts.len() <= RANGES {
            self.starts.push(self.keys.len() as u32);
        }
        self.keys.shrink_to_fit();
    }

    /// The positions whose first 48 bits are those of `id`.
    pub fn candidates(&self, id: &BlobId) -> Range<usize> {
        let (top, key) = split(id);
        let (lo, hi) = (self.starts[top] as usize, self.starts[top + 1] as usize);
        let range = &self.keys[lo..hi];
        let from = range.partition_point(|&k| k < key);
        let to = from + range[from..].partition_point(|&k| k == key);
        lo + from..lo + to
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Bytes of memory held.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 4 + self.starts.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(bytes: &[u8]) -> BlobId {
        let mut b = [0u8; 32];
        b[..bytes.len()].copy_from_slice(bytes);
        BlobId(b)
    }

    #[test]
    fn candidates_are_the_entries_sharing_48_bits() {
        let mut sorted = vec![
            id(&[0, 0, 0, 0, 0, 0, 1]),
            id(&[0, 0, 0, 0, 0, 0, 2]),
            id(&[0, 0, 0, 0, 0, 1]),
            id(&[0, 5, 9, 9, 9, 9]),
            id(&[0xff, 0xff, 1]),
            id(&[0xff, 0xff, 1, 0, 0, 0, 7]),
        ];
        sorted.sort();
        let mut p = Prefixes::with_capacity(sorted.len());
        for i in &sorted {
            p.push(i);
        }
        p.finish();
        assert_eq!(p.len(), 6);
        assert_eq!(p.candidates(&id(&[0, 0, 0, 0, 0, 0, 9])), 0..2);
        assert_eq!(p.candidates(&id(&[0, 0, 0, 0, 0, 1, 3])), 2..3);
        assert_eq!(p.candidates(&id(&[0, 5, 9, 9, 9, 9])), 3..4);
        assert_eq!(p.candidates(&id(&[0xff, 0xff, 1, 0, 0, 0])), 4..6);
        assert!(p.candidates(&id(&[0, 5, 9, 9, 9, 8])).is_empty());
        assert!(p.candidates(&id(&[0x80])).is_empty());
        assert!(p.candidates(&id(&[0xff, 0xff, 2])).is_empty());
    }
}
