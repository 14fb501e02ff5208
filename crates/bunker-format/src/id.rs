//! Typed 32-byte identifiers.
//!
//! Every kind of stored thing has its own id type, so a [`PackId`] can never be
//! passed where a [`BlobId`] is wanted. All ids print as 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use crate::FormatError;

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The id as raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// Full lowercase hex form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, as shown in listings.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// Reads an id from exactly 32 bytes.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, FormatError> {
                let arr: [u8; ID_LEN] = bytes
                    .try_into()
                    .map_err(|_| FormatError::Malformed(concat!(stringify!($name), " is not 32 bytes")))?;
                Ok(Self(arr))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = FormatError;
            fn from_str(s: &str) -> Result<Self, FormatError> {
                let mut out = [0u8; ID_LEN];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| FormatError::Malformed(concat!(stringify!($name), " is not 64 hex digits")))?;
                Ok(Self(out))
            }
        }

        impl<C> minicbor::Encode<C> for $name {
            fn encode<W: minicbor::encode::Write>(
                &self,
                e: &mut minicbor::Encoder<W>,
                _ctx: &mut C,
            ) -> Result<(), minicbor::encode::Error<W::Error>> {
                e.bytes(&self.0)?;
                Ok(())
            }
        }

        impl<'b, C> minicbor::Decode<'b, C> for $name {
            fn decode(d: &mut minicbor::Decoder<'b>, _ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
                let bytes = d.bytes()?;
                let arr: [u8; ID_LEN] = bytes
                    .try_into()
                    .map_err(|_| minicbor::decode::Error::message("id is not 32 bytes"))?;
                Ok(Self(arr))
            }
        }
    };
}

typed_id!(
    /// Id of a blob: keyed BLAKE3 of its plaintext (see `docs/FORMAT.md`).
    BlobId
);
typed_id!(
    /// Id of a pack file: BLAKE3 of the stored file's bytes.
    PackId
);
typed_id!(
    /// Id of an index file: BLAKE3 of the stored file's bytes.
    IndexId
);
typed_id!(
    /// Id of a snapshot file: BLAKE3 of the stored file's bytes.
    SnapshotId
);
typed_id!(
    /// Id of a key file: BLAKE3 of the stored file's bytes.
    KeyId
);
typed_id!(
    /// Id of a tombstone file: BLAKE3 of the stored file's bytes.
    TombstoneId
);
typed_id!(
    /// Id of a run record: BLAKE3 of the stored file's bytes.
    RunId
);
typed_id!(
    /// Id of a lock file: random, since a lock is rewritten when refreshed.
    LockId
);
typed_id!(
    /// Id of a condemnation record: random, since the record is rewritten
    /// once the sessions it waits for are known.
    RecordId
);

/// The hash naming a stored file: BLAKE3 of its bytes, so that a reader can
/// check a file's integrity without any key, and an unchanged file is never rewritten.
pub fn storage_hash(bytes: &[u8]) -> [u8; ID_LEN] {
    *blake3::hash(bytes).as_bytes()
}

/// [`storage_hash`] computed piece by piece, for bytes written as a stream.
pub fn storage_hasher() -> blake3::Hasher {
    blake3::Hasher::new()
}

/// The file name of stored bytes: [`storage_hash`] in hex.
pub fn storage_name(bytes: &[u8]) -> String {
    hex::encode(storage_hash(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = BlobId([7u8; 32]);
        let parsed: BlobId = id.to_hex().parse().unwrap();
        assert_eq!(id, parsed);
        assert_eq!(id.short(), "07070707");
        assert!("xyz".parse::<BlobId>().is_err());
    }

    #[test]
    fn cbor_round_trip() {
        let id = PackId([9u8; 32]);
        let bytes = minicbor::to_vec(id).unwrap();
        let back: PackId = minicbor::decode(&bytes).unwrap();
        assert_eq!(id, back);
    }
}
