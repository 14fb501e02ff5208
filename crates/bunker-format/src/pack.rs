//! Pack files: many blobs of one type, followed by an encrypted header.
//!
//! ```text
//! pack    = blob_0 ‖ … ‖ blob_n-1 ‖ header ‖ trailer
//! header  = seal(AD = "bunker pack header v1", count:u32 ‖ entry*)
//! entry   = type:u8 ‖ id:32 ‖ length:u32 ‖ raw_length:u32        (41 bytes)
//! trailer = header_length:u32 ‖ "BKP1"                             (8 bytes)
//! ```
//! All integers little-endian. Blob offsets are implied: each blob starts where
//! the previous one ended. A pack is named by the BLAKE3 hash of its bytes.

use crate::blob::{BlobType, EncodedBlob};
use crate::crypto::{RepoKeys, SEAL_OVERHEAD};
use crate::id::BlobId;
use crate::FormatError;

const HEADER_AD: &[u8] = b"bunker pack header v1";
const MAGIC: &[u8; 4] = b"BKP1";
/// The bytes of a pack read to fetch the blob at `offset..offset + length`:
/// widened on both sides to a multiple of a size class (a sixteenth of the
/// blob's length rounded down to a power of two, at least 4 KiB), within the
/// pack. A reader that fetches blobs by ranges thus shows the storage each
/// blob's size only to within its class (docs/FORMAT.md §7.2).
pub fn read_window(offset: u64, length: u64, pack_length: u64) -> (u64, u64) {
    let class = size_class(length);
    let start = offset - offset % class;
    let end = (offset + length).div_ceil(class) * class;
    (start, end.min(pack_length).max(offset + length))
}

/// The granularity of reads of a blob of `length` bytes: a sixteenth of it,
/// rounded down to a power of two, at least 4 KiB.
fn size_class(length: u64) -> u64 {
    let sixteenth = (length / 16).max(1);
    (1u64 << (63 - sixteenth.leading_zeros())).max(4096)
}

/// Length of the plaintext trailer at the end of every pack.
pub const TRAILER_LEN: usize = 8;
/// Length of one header entry.
pub const ENTRY_LEN: usize = 41;

/// Where one blob sits inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub kind: BlobType,
    /// The blob's id.
    pub id: BlobId,
    /// Byte offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_length: u32,
}

/// The layout of a pack written as a stream: blobs go out one after another
/// as they come, and [`finish`](Self::finish) gives the bytes that end it.
#[derive(Default)]
pub struct PackLayout {
    entries: Vec<PackEntry>,
    len: usize,
}

impl PackLayout {
    /// Records a sealed blob appended at the current end.
    pub fn push(&mut self, blob: &EncodedBlob) {
        self.entries.push(PackEntry {
            kind: blob.kind,
            id: blob.id,
            offset: self.len as u32,
            length: blob.bytes.len() as u32,
            raw_length: blob.raw_length,
        });
        self.len += blob.bytes.len();
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no blob was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sealed header and trailer that end the pack, with its entries.
    pub fn finish(self, keys: &RepoKeys) -> (Vec<u8>, Vec<PackEntry>) {
        let mut header = Vec::with_capacity(4 + self.entries.len() * ENTRY_LEN);
        header.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            header.push(e.kind.to_byte());
            header.extend_from_slice(e.id.as_bytes());
            header.extend_from_slice(&e.length.to_le_bytes());
            header.extend_from_slice(&e.raw_length.to_le_bytes());
        }
        let mut tail = keys.seal(HEADER_AD, &header);
        let sealed_len = tail.len() as u32;
        tail.extend_from_slice(&sealed_len.to_le_bytes());
        tail.extend_from_slice(MAGIC);
        (tail, self.entries)
    }
}

/// Length of the sealed header of a pack with `count` blobs.
pub fn header_length(count: usize) -> usize {
    4 + count * ENTRY_LEN + SEAL_OVERHEAD
}

/// Reads the header length from a pack's last [`TRAILER_LEN`] bytes.
pub fn parse_trailer(trailer: &[u8]) -> Result<u32, FormatError> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != MAGIC {
        return Err(FormatError::Malformed(
            "pack trailer missing: not a bunker pack, or truncated",
        ));
    }
    Ok(u32::from_le_bytes(
        trailer[..4].try_into().expect("4 bytes"),
    ))
}

/// Decrypts a pack's header (`sealed`, the bytes just before the trailer) and
/// rebuilds each blob's offset. `pack_length` is the whole file's length.
pub fn parse_header(
    keys: &RepoKeys,
    sealed: &[u8],
    pack_length: u64,
) -> Result<Vec<PackEntry>, FormatError> {
    let header = keys.open(HEADER_AD, sealed, "pack header")?;
    if header.len() < 4 {
        return Err(FormatError::Malformed("pack header too short"));
    }
    let count = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    if header.len() != 4 + count * ENTRY_LEN {
        return Err(FormatError::Malformed(
            "pack header length does not match its entry count",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset: u64 = 0;
    for raw in header[4..].chunks_exact(ENTRY_LEN) {
        let length = u32::from_le_bytes(raw[33..37].try_into().expect("4 bytes"));
        entries.push(PackEntry {
            kind: BlobType::from_byte(raw[0])?,
            id: BlobId::from_slice(&raw[1..33])?,
            offset: offset as u32,
            length,
            raw_length: u32::from_le_bytes(raw[37..41].try_into().expect("4 bytes")),
        });
        offset += length as u64;
    }
    if offset + sealed.len() as u64 + TRAILER_LEN as u64 != pack_length {
        return Err(FormatError::Malformed(
            "pack length does not match its header",
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod window_tests {
    use super::{read_window, size_class};

    #[test]
    fn reads_cover_the_blob_in_whole_classes() {
        for (offset, length, pack) in [
            (0u64, 10u64, 100u64),
            (5000, 700_000, 20 << 20),
            (123_457, 131_072, 16 << 20),
            (16 << 20, 2 << 20, (18 << 20) + 5),
        ] {
            let (start, end) = read_window(offset, length, pack);
            assert!(start <= offset && end >= offset + length && end <= pack.max(offset + length));
            let class = size_class(length);
            assert!(
                class.is_power_of_two() && class >= 4096 && class <= length.max(4096 * 16) / 16 * 2
            );
            assert_eq!(start % class, 0);
            assert!(end == pack || end % class == 0);
            // At most a class on each side: at most 1/8 more than the blob
            // (or 8 KiB, for small blobs).
            assert!(end - start <= length + 2 * class);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{decode_blob, encode_blob};
    use crate::crypto::MasterKey;

    #[test]
    fn build_and_parse() {
        let keys = MasterKey::generate().derive();
        let mut layout = PackLayout::default();
        let mut pack = Vec::new();
        let blobs: Vec<Vec<u8>> = vec![b"one".to_vec(), b"two two".repeat(100), vec![]];
        for b in &blobs {
            let blob = encode_blob(&keys, BlobType::Data, keys.blob_id(b), b, 3);
            layout.push(&blob);
            pack.extend_from_slice(&blob.bytes);
        }
        let (tail, entries) = layout.finish(&keys);
        pack.extend_from_slice(&tail);
        let hlen = parse_trailer(&pack[pack.len() - TRAILER_LEN..]).unwrap() as usize;
        assert_eq!(hlen, header_length(3));
        let hstart = pack.len() - TRAILER_LEN - hlen;
        let parsed = parse_header(
            &keys,
            &pack[hstart..pack.len() - TRAILER_LEN],
            pack.len() as u64,
        )
        .unwrap();
        assert_eq!(parsed, entries);
        for (e, b) in parsed.iter().zip(&blobs) {
            let stored = &pack[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(
                &decode_blob(&keys, e.kind, &e.id, e.raw_length, stored).unwrap(),
                b
            );
        }
        assert!(parse_header(
            &keys,
            &pack[hstart..pack.len() - TRAILER_LEN],
            pack.len() as u64 + 1
        )
        .is_err());
        assert!(parse_trailer(b"12345678").is_err());
    }
}
