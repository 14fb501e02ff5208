//! Tombstones: what was withdrawn from a repository on purpose.
//!
//! `forget` writes one naming the snapshots it removes, and `key remove` one
//! naming the key file it removes, each *before* deleting the files. A
//! snapshot or key file that a tombstone names is withdrawn for good: if
//! storage later shows it again (a replayed file, or a deletion interrupted
//! after the tombstone was written) readers ignore it, and a key file named
//! by a tombstone no longer opens the repository. Tombstones are named by
//! the hash of their bytes, like index files; prune merges them into one.
//! See `docs/FORMAT.md` §12.

use crate::id::{KeyId, SnapshotId};
use crate::FormatError;

/// A file under `tombstones/`, stored sealed (kind `T`).
#[derive(Clone, Debug, Default, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct Tombstone {
    /// When it was written, Unix nanoseconds (for messages only).
    #[n(0)]
    pub created_ns: i64,
    /// Snapshots forgotten.
    #[n(1)]
    pub snapshots: Vec<SnapshotId>,
    /// Key files removed.
    #[n(2)]
    pub keys: Vec<KeyId>,
}

impl Tombstone {
    /// Encodes as CBOR.
    pub fn encode(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes from CBOR.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        Ok(minicbor::decode(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Tombstone {
            created_ns: 7,
            snapshots: vec![SnapshotId([1; 32]), SnapshotId([2; 32])],
            keys: vec![KeyId([3; 32])],
        };
        assert_eq!(Tombstone::decode(&t.encode()).unwrap(), t);
        assert!(Tombstone::decode(&t.encode()[..10]).is_err());
    }
}
