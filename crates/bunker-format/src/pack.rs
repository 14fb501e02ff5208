//! Pack files: many blobs of one type, followed by an encrypted header.
//!
//! ```text
//! version 1:
//! pack    = blob_0 ‖ … ‖ blob_n-1 ‖ header ‖ trailer
//! header  = seal(AD = "bunker pack header v1", count:u32 ‖ entry*)
//! trailer = header_length:u32 ‖ "BKP1"                             (8 bytes)
//! version 2:
//! pack    = blob_0 ‖ … ‖ blob_n-1 ‖ padding ‖ header ‖ trailer
//! header  = seal(AD = "bunker pack header v2" ‖ repository id ‖ region:u64,
//!                count:u32 ‖ entry* ‖ zero entries to a multiple of 32)
//! trailer = header_length:u32 ‖ "BKP2"
//! both:
//! entry   = type:u8 ‖ id:32 ‖ length:u32 ‖ raw_length:u32        (41 bytes)
//! ```
//! All integers little-endian. Blob offsets are implied: each blob starts where
//! the previous one ended. A pack is named by the BLAKE3 hash of its bytes.
//!
//! Version 2 hides what version 1 shows the storage: the header's length
//! gives the blob count only to within 32, and random padding (`region` is the
//! length of blobs and padding) makes the pack's length a multiple of a size
//! class, a sixty-fourth of it rounded down to a power of two (at least 4 KiB),
//! so a pack's length tells the sum of its blobs only to within that class.

use crate::blob::{BlobType, EncodedBlob};
use crate::crypto::{RepoKeys, SEAL_OVERHEAD};
use crate::id::BlobId;
use crate::FormatError;

const HEADER_AD_V1: &[u8] = b"bunker pack header v1";
const HEADER_AD_V2: &[u8] = b"bunker pack header v2";
const MAGIC_V1: &[u8; 4] = b"BKP1";
const MAGIC_V2: &[u8; 4] = b"BKP2";
/// Version 2 headers hold a multiple of this many entries.
const ENTRY_CLASS: usize = 32;
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

    /// The bytes that end the pack (version 2: padding, then the sealed
    /// header and trailer), with its entries, in the format version of
    /// `keys`' repository.
    pub fn finish(self, keys: &RepoKeys) -> (Vec<u8>, Vec<PackEntry>) {
        let binding = keys.binding();
        let count = self.entries.len();
        let slots = match binding.version {
            1 => count,
            _ => count.div_ceil(ENTRY_CLASS).max(1) * ENTRY_CLASS,
        };
        let mut header = Vec::with_capacity(4 + slots * ENTRY_LEN);
        header.extend_from_slice(&(count as u32).to_le_bytes());
        for e in &self.entries {
            header.push(e.kind.to_byte());
            header.extend_from_slice(e.id.as_bytes());
            header.extend_from_slice(&e.length.to_le_bytes());
            header.extend_from_slice(&e.raw_length.to_le_bytes());
        }
        header.resize(4 + slots * ENTRY_LEN, 0);
        let (mut tail, magic) = match binding.version {
            1 => (keys.seal(HEADER_AD_V1, &header), MAGIC_V1),
            _ => {
                let sealed = header.len() + SEAL_OVERHEAD;
                let unpadded = (self.len + sealed + TRAILER_LEN) as u64;
                let padding = (pack_class_round(unpadded) - unpadded) as usize;
                let region = (self.len + padding) as u64;
                let mut tail = vec![0u8; padding];
                crate::crypto::fill_random(&mut tail);
                tail.extend(keys.seal(&header_ad_v2(keys, region), &header));
                (tail, MAGIC_V2)
            }
        };
        let sealed_len = (header.len() + SEAL_OVERHEAD) as u32;
        tail.extend_from_slice(&sealed_len.to_le_bytes());
        tail.extend_from_slice(magic);
        (tail, self.entries)
    }
}

/// The associated data of a version 2 header: bound to its repository, and
/// to the length of the blobs and padding before it in its pack.
fn header_ad_v2(keys: &RepoKeys, region: u64) -> Vec<u8> {
    let mut ad = HEADER_AD_V2.to_vec();
    ad.extend_from_slice(&keys.binding().repository);
    ad.extend_from_slice(&region.to_le_bytes());
    ad
}

/// A version 2 pack's length: rounded up to its size class.
fn pack_class_round(length: u64) -> u64 {
    let sixty_fourth = (length / 64).max(1);
    let class = (1u64 << (63 - sixty_fourth.leading_zeros())).max(4096);
    length.div_ceil(class) * class
}

/// Length of the sealed header of a version 1 pack with `count` blobs.
pub fn header_length(count: usize) -> usize {
    4 + count * ENTRY_LEN + SEAL_OVERHEAD
}

/// A pack's trailer: its format version and the length of its sealed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// 1 or 2.
    pub version: u8,
    /// Bytes of the sealed header before the trailer.
    pub header_length: u32,
}

/// Reads a pack's last [`TRAILER_LEN`] bytes.
pub fn parse_trailer(trailer: &[u8]) -> Result<Trailer, FormatError> {
    let version = match trailer.get(4..) {
        Some(m) if trailer.len() == TRAILER_LEN && m == MAGIC_V1 => 1,
        Some(m) if trailer.len() == TRAILER_LEN && m == MAGIC_V2 => 2,
        _ => {
            return Err(FormatError::Malformed(
                "pack trailer missing: not a bunker pack, or truncated",
            ))
        }
    };
    Ok(Trailer {
        version,
        header_length: u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")),
    })
}

/// Decrypts a pack's header (`sealed`, the bytes just before the trailer) and
/// rebuilds each blob's offset. `pack_length` is the whole file's length.
/// The pack must be of the format version of `keys`' repository.
pub fn parse_header(
    keys: &RepoKeys,
    trailer: Trailer,
    sealed: &[u8],
    pack_length: u64,
) -> Result<Vec<PackEntry>, FormatError> {
    if trailer.version != crate::object::layout_version(keys.binding().version) {
        return Err(FormatError::Malformed(
            "a pack of another format version than its repository",
        ));
    }
    let region = pack_length
        .checked_sub(sealed.len() as u64 + TRAILER_LEN as u64)
        .ok_or(FormatError::Malformed("pack shorter than its header"))?;
    let header = match trailer.version {
        1 => keys.open(HEADER_AD_V1, sealed, "pack header")?,
        _ => keys.open(&header_ad_v2(keys, region), sealed, "pack header")?,
    };
    if header.len() < 4 {
        return Err(FormatError::Malformed("pack header too short"));
    }
    let count = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let body = &header[4..];
    let fits = match trailer.version {
        1 => body.len() == count * ENTRY_LEN,
        _ => {
            body.len() % (ENTRY_CLASS * ENTRY_LEN) == 0
                && count * ENTRY_LEN <= body.len()
                && body[count * ENTRY_LEN..].iter().all(|b| *b == 0)
        }
    };
    if !fits {
        return Err(FormatError::Malformed(
            "pack header length does not match its entry count",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset: u64 = 0;
    for raw in body.chunks_exact(ENTRY_LEN).take(count) {
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
    let whole = match trailer.version {
        1 => offset == region,
        _ => offset <= region && pack_class_round(offset + pack_length - region) == pack_length,
    };
    if !whole {
        return Err(FormatError::Malformed(
            "pack length does not match its header",
        ));
    }
    Ok(entries)
}

/// Reads the header of a whole pack held in memory: trailer, then the
/// sealed header before it.
pub fn parse_pack(keys: &RepoKeys, pack: &[u8]) -> Result<Vec<PackEntry>, FormatError> {
    let body = pack
        .len()
        .checked_sub(TRAILER_LEN)
        .ok_or(FormatError::Malformed("pack shorter than its trailer"))?;
    let trailer = parse_trailer(&pack[body..])?;
    let start = body
        .checked_sub(trailer.header_length as usize)
        .ok_or(FormatError::Malformed("pack header longer than the pack"))?;
    parse_header(keys, trailer, &pack[start..body], pack.len() as u64)
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

    fn build(keys: &RepoKeys, blobs: &[Vec<u8>]) -> (Vec<u8>, Vec<PackEntry>) {
        let mut layout = PackLayout::default();
        let mut pack = Vec::new();
        for b in blobs {
            let blob = encode_blob(keys, BlobType::Data, keys.blob_id(b), b, 3);
            layout.push(&blob);
            pack.extend_from_slice(&blob.bytes);
        }
        let (tail, entries) = layout.finish(keys);
        pack.extend_from_slice(&tail);
        (pack, entries)
    }

    fn parse(keys: &RepoKeys, pack: &[u8], length: u64) -> Result<Vec<PackEntry>, FormatError> {
        let trailer = parse_trailer(&pack[pack.len() - TRAILER_LEN..])?;
        let hstart = pack.len() - TRAILER_LEN - trailer.header_length as usize;
        parse_header(
            keys,
            trailer,
            &pack[hstart..pack.len() - TRAILER_LEN],
            length,
        )
    }

    #[test]
    fn build_and_parse() {
        let master = MasterKey::generate();
        for version in [1, 2] {
            let keys = master.derive().bound(version, [7; 32]);
            let blobs: Vec<Vec<u8>> = vec![b"one".to_vec(), b"two two".repeat(100), vec![]];
            let (pack, entries) = build(&keys, &blobs);
            let trailer = parse_trailer(&pack[pack.len() - TRAILER_LEN..]).unwrap();
            assert_eq!(trailer.version, version);
            let parsed = parse(&keys, &pack, pack.len() as u64).unwrap();
            assert_eq!(parsed, entries);
            for (e, b) in parsed.iter().zip(&blobs) {
                let stored = &pack[e.offset as usize..(e.offset + e.length) as usize];
                assert_eq!(
                    &decode_blob(&keys, e.kind, &e.id, e.raw_length, stored).unwrap(),
                    b
                );
            }
            assert!(parse(&keys, &pack, pack.len() as u64 + 1).is_err());
            // A pack read by a repository of the other version, or another id.
            let other = master.derive().bound(3 - version, [7; 32]);
            assert!(parse(&other, &pack, pack.len() as u64).is_err());
        }
        assert!(parse_trailer(b"12345678").is_err());
    }

    #[test]
    fn a_version_2_pack_hides_its_exact_size_and_count() {
        let keys = MasterKey::generate().derive().bound(2, [8; 32]);
        let mut lengths = std::collections::HashSet::new();
        let mut headers = std::collections::HashSet::new();
        for n in 1..=20usize {
            let blobs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 1000 + 37 * i]).collect();
            let (pack, _) = build(&keys, &blobs);
            assert_eq!(pack.len() % 4096, 0, "padded to its class");
            lengths.insert(pack.len());
            let trailer = parse_trailer(&pack[pack.len() - TRAILER_LEN..]).unwrap();
            headers.insert(trailer.header_length);
            assert_eq!(parse(&keys, &pack, pack.len() as u64).unwrap().len(), n);
        }
        assert_eq!(headers.len(), 1, "one header length for 1..20 blobs");
        assert!(lengths.len() < 20, "lengths fall into shared classes");
        // Padding costs at most a sixty-fourth (above the 4 KiB floor).
        let blobs: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 300_000]).collect();
        let raw: usize = 64 * 300_000;
        let (pack, _) = build(&keys, &blobs);
        assert!((pack.len() as f64) < raw as f64 * (1.0 + 1.0 / 64.0) + 8192.0);
    }
}
