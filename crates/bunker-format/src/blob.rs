//! Blobs: the unit of deduplication. A data blob is one chunk of a file; a
//! tree blob is one encoded directory.
//!
//! Stored form: `seal(envelope(plaintext))` with the associated data
//! `"bunker blob v1\0" ‖ type ‖ id` (format version 1) or
//! `"bunker blob v2\0" ‖ type ‖ id ‖ repository id` (version 2), so a blob
//! cannot be passed off as another blob, as a blob of the other type, or as
//! a blob of another repository.

use crate::compression;
use crate::crypto::{RepoKeys, NONCE_LEN, SEAL_OVERHEAD};
use crate::id::BlobId;
use crate::FormatError;

/// What a blob holds. Data and tree blobs live in separate packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobType {
    /// File content.
    Data = 0,
    /// An encoded directory ([`crate::tree::Tree`]).
    Tree = 1,
}

impl BlobType {
    /// The byte used in headers and indexes.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Parses the byte used in headers and indexes.
    pub fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(BlobType::Data),
            1 => Ok(BlobType::Tree),
            _ => Err(FormatError::Malformed("unknown blob type")),
        }
    }

    /// Lowercase name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}

/// A blob ready to be appended to a pack.
#[derive(Debug, Clone)]
pub struct EncodedBlob {
    /// Keyed hash of the plaintext.
    pub id: BlobId,
    /// Data or tree.
    pub kind: BlobType,
    /// Plaintext length.
    pub raw_length: u32,
    /// Sealed bytes as stored.
    pub bytes: Vec<u8>,
}

/// The blob's associated data; version 1 stops after the id.
fn associated_data(keys: &RepoKeys, kind: BlobType, id: &BlobId) -> ([u8; 80], usize) {
    let binding = keys.binding();
    let mut ad = [0u8; 80];
    ad[..15].copy_from_slice(match binding.version {
        1 => b"bunker blob v1\0",
        _ => b"bunker blob v2\0",
    });
    ad[15] = kind.to_byte();
    ad[16..48].copy_from_slice(id.as_bytes());
    if binding.version == 1 {
        return (ad, 48);
    }
    ad[48..].copy_from_slice(&binding.repository);
    (ad, 80)
}

/// Compresses and encrypts a plaintext whose id is already known.
pub fn encode_blob(
    keys: &RepoKeys,
    kind: BlobType,
    id: BlobId,
    plaintext: &[u8],
    level: i32,
) -> EncodedBlob {
    CompressedBlob::new(kind, id, plaintext, level).seal_owned(keys)
}

/// A blob compressed but not yet sealed: one compression serves every
/// repository a backup writes it to, each sealing it with its own keys.
#[derive(Debug, Clone)]
pub struct CompressedBlob {
    id: BlobId,
    kind: BlobType,
    raw_length: u32,
    /// Room for the nonce, then the compressed envelope.
    buffer: Vec<u8>,
}

impl CompressedBlob {
    /// Compresses `plaintext` (whose keyed hash is `id`) at `level`.
    pub fn new(kind: BlobType, id: BlobId, plaintext: &[u8], level: i32) -> Self {
        // Sized for the worst case, so neither step reallocates.
        let mut buffer =
            Vec::with_capacity(SEAL_OVERHEAD + compression::max_envelope_len(plaintext.len()));
        buffer.extend_from_slice(&[0u8; NONCE_LEN]);
        compression::compress_into(plaintext, level, &mut buffer);
        CompressedBlob {
            id,
            kind,
            raw_length: plaintext.len() as u32,
            buffer,
        }
    }

    /// Seals a copy for the repository of `keys`.
    pub fn seal(&self, keys: &RepoKeys) -> EncodedBlob {
        let mut copy = Vec::with_capacity(self.buffer.len() + SEAL_OVERHEAD);
        copy.extend_from_slice(&self.buffer);
        self.finish(keys, copy)
    }

    /// Seals it for the repository of `keys`, with no copy.
    pub fn seal_owned(mut self, keys: &RepoKeys) -> EncodedBlob {
        let buffer = std::mem::take(&mut self.buffer);
        self.finish(keys, buffer)
    }

    fn finish(&self, keys: &RepoKeys, mut bytes: Vec<u8>) -> EncodedBlob {
        let (ad, len) = associated_data(keys, self.kind, &self.id);
        keys.seal_in_place(&ad[..len], &mut bytes);
        EncodedBlob {
            id: self.id,
            kind: self.kind,
            raw_length: self.raw_length,
            bytes,
        }
    }
}

/// Decrypts, decompresses and verifies a stored blob: the result is exactly
/// the plaintext whose keyed hash is `id`, or an error.
pub fn decode_blob(
    keys: &RepoKeys,
    kind: BlobType,
    id: &BlobId,
    raw_length: u32,
    stored: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let (ad, len) = associated_data(keys, kind, id);
    let envelope = keys.open(&ad[..len], stored, "blob")?;
    let plaintext = compression::decompress(&envelope, raw_length as usize)?;
    if plaintext.len() != raw_length as usize || keys.blob_id(&plaintext) != *id {
        return Err(FormatError::IdMismatch(id.to_hex()));
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..10_000), tree in any::<bool>()) {
            let keys = MasterKey::from_bytes([5u8; 32]).derive();
            let kind = if tree { BlobType::Tree } else { BlobType::Data };
            let id = keys.blob_id(&data);
            let enc = encode_blob(&keys, kind, id, &data, 3);
            prop_assert_eq!(decode_blob(&keys, kind, &id, enc.raw_length, &enc.bytes).unwrap(), data);
        }
    }

    #[test]
    fn a_version_2_blob_belongs_to_one_repository() {
        let master = MasterKey::generate();
        let keys = master.derive().bound(2, [1; 32]);
        let data = b"content".repeat(20);
        let id = keys.blob_id(&data);
        let enc = encode_blob(&keys, BlobType::Data, id, &data, 3);
        assert!(decode_blob(&keys, BlobType::Data, &id, enc.raw_length, &enc.bytes).is_ok());
        // The same key, another repository id or version: refused.
        for other in [master.derive().bound(2, [2; 32]), master.derive()] {
            assert!(decode_blob(&other, BlobType::Data, &id, enc.raw_length, &enc.bytes).is_err());
        }
    }

    #[test]
    fn one_compression_is_sealed_for_each_repository() {
        let master = MasterKey::generate();
        let (a, b) = (
            master.derive().bound(2, [1; 32]),
            master.derive().bound(2, [2; 32]),
        );
        let data = b"shared content ".repeat(50);
        let id = a.blob_id(&data);
        let compressed = CompressedBlob::new(BlobType::Data, id, &data, 3);
        let for_a = compressed.seal(&a);
        let for_b = compressed.seal_owned(&b);
        assert_ne!(for_a.bytes, for_b.bytes);
        for (keys, other, enc) in [(&a, &b, &for_a), (&b, &a, &for_b)] {
            assert_eq!(
                decode_blob(keys, BlobType::Data, &id, enc.raw_length, &enc.bytes).unwrap(),
                data
            );
            assert!(decode_blob(other, BlobType::Data, &id, enc.raw_length, &enc.bytes).is_err());
        }
    }

    #[test]
    fn wrong_type_id_or_byte_is_rejected() {
        let keys = MasterKey::generate().derive();
        let data = b"some file content".repeat(10);
        let id = keys.blob_id(&data);
        let enc = encode_blob(&keys, BlobType::Data, id, &data, 3);
        assert!(decode_blob(&keys, BlobType::Tree, &id, enc.raw_length, &enc.bytes).is_err());
        let other = keys.blob_id(b"other");
        assert!(decode_blob(&keys, BlobType::Data, &other, enc.raw_length, &enc.bytes).is_err());
        for i in 0..enc.bytes.len() {
            let mut bad = enc.bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_blob(&keys, BlobType::Data, &id, enc.raw_length, &bad).is_err());
        }
    }
}
