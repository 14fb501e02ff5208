//! Index files: which pack holds each blob, and where.
//!
//! ```text
//! payload    = version:u8(=1) ‖ supersedes_count:u32 ‖ index_id:32 * count
//!              ‖ pack_count:u32 ‖ pack*
//! pack       = pack_id:32 ‖ pack_length:u64 ‖ blob_count:u32 ‖ blob*
//! blob       = type:u8 ‖ id:32 ‖ offset:u32 ‖ length:u32 ‖ raw_length:u32   (45 bytes)
//! ```
//! Integers little-endian. The payload is framed by [`crate::object`].

use crate::blob::BlobType;
use crate::id::{BlobId, IndexId, PackId, ID_LEN};
use crate::pack::PackEntry;
use crate::FormatError;

const VERSION: u8 = 1;

/// All blobs of one pack, as recorded in an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack's id (hash of its bytes).
    pub id: PackId,
    /// The pack file's length in bytes.
    pub length: u64,
    /// Its blobs, in pack order.
    pub blobs: Vec<PackEntry>,
}

/// The content of one index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files whose content this one includes (written by compaction).
    pub supersedes: Vec<IndexId>,
    /// Packs described by this file.
    pub packs: Vec<IndexedPack>,
}

impl IndexFile {
    /// Encodes to the payload layout above.
    pub fn encode(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut out = Vec::with_capacity(
            16 + self.supersedes.len() * 32 + self.packs.len() * 44 + blobs * 45,
        );
        out.push(VERSION);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for id in &self.supersedes {
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(p.id.as_bytes());
            out.extend_from_slice(&p.length.to_le_bytes());
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for b in &p.blobs {
                out.push(b.kind.to_byte());
                out.extend_from_slice(b.id.as_bytes());
                out.extend_from_slice(&b.offset.to_le_bytes());
                out.extend_from_slice(&b.length.to_le_bytes());
                out.extend_from_slice(&b.raw_length.to_le_bytes());
            }
        }
        out
    }

    /// Decodes the payload layout above.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion {
                kind: "index",
                version: version as u32,
                supported: 1,
            });
        }
        let n = r.count(ID_LEN)?;
        let mut supersedes = Vec::with_capacity(n);
        for _ in 0..n {
            supersedes.push(IndexId::from_slice(r.take(ID_LEN)?)?);
        }
        let n = r.count(44)?;
        let mut packs = Vec::with_capacity(n);
        for _ in 0..n {
            let id = PackId::from_slice(r.take(ID_LEN)?)?;
            let length = r.u64()?;
            let m = r.count(45)?;
            let mut blobs = Vec::with_capacity(m);
            for _ in 0..m {
                blobs.push(PackEntry {
                    kind: BlobType::from_byte(r.u8()?)?,
                    id: BlobId::from_slice(r.take(ID_LEN)?)?,
                    offset: r.u32()?,
                    length: r.u32()?,
                    raw_length: r.u32()?,
                });
            }
            packs.push(IndexedPack { id, length, blobs });
        }
        if r.pos != bytes.len() {
            return Err(FormatError::Malformed("trailing bytes after index"));
        }
        Ok(IndexFile { supersedes, packs })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(FormatError::Malformed("index truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count of records of at least `min_len` bytes each, checked against
    /// the bytes left so a corrupt count cannot trigger a huge allocation.
    fn count(&mut self, min_len: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_len) > self.bytes.len() - self.pos {
            return Err(FormatError::Malformed("index count exceeds its length"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = PackEntry> {
        (
            any::<bool>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(t, id, o, l, r)| PackEntry {
                kind: if t { BlobType::Tree } else { BlobType::Data },
                id: BlobId(id),
                offset: o,
                length: l,
                raw_length: r,
            })
    }

    proptest! {
        #[test]
        fn round_trip(
            sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
            packs in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), proptest::collection::vec(arb_entry(), 0..5)), 0..5),
        ) {
            let file = IndexFile {
                supersedes: sup.into_iter().map(IndexId).collect(),
                packs: packs.into_iter().map(|(id, length, blobs)| IndexedPack { id: PackId(id), length, blobs }).collect(),
            };
            let bytes = file.encode();
            prop_assert_eq!(IndexFile::decode(&bytes).unwrap(), file);
            for cut in 0..bytes.len() {
                prop_assert!(IndexFile::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = IndexFile::decode(&bytes);
        }
    }
}
