//! Condemnation records: prune's first phase, made durable.
//!
//! `prune` never deletes a pack in the same step that decides it is unused.
//! It first writes a record naming the packs (and superseded index files) it
//! condemns, then lists the backup sessions alive at that moment into the
//! record. The files are deleted only once every one of those sessions has
//! ended, and only after re-checking every snapshot written meanwhile; a pack
//! such a snapshot needs is rescued instead. See `docs/FORMAT.md`, "Prune".

use crate::id::{IndexId, LockId, PackId};
use crate::FormatError;

/// A record under `condemned/`, stored encrypted.
#[derive(Clone, Debug, Default, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct Condemnation {
    /// The repository generation this record starts: one more than the
    /// highest generation of any record present when it was written.
    #[n(0)]
    pub generation: u64,
    /// When it was written, Unix nanoseconds (for messages only).
    #[n(1)]
    pub created_ns: i64,
    /// Packs to delete.
    #[n(2)]
    pub packs: Vec<PackId>,
    /// Index files to delete with them (their live content was rewritten).
    #[n(3)]
    pub indexes: Vec<IndexId>,
    /// Session locks alive after this record became visible; `None` until
    /// they were listed. Deletion waits until all of them are gone.
    #[n(4)]
    pub sessions: Option<Vec<LockId>>,
}

impl Condemnation {
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
        let r = Condemnation {
            generation: 3,
            created_ns: 9,
            packs: vec![PackId([1; 32])],
            indexes: vec![IndexId([2; 32])],
            sessions: Some(vec![LockId([3; 32])]),
        };
        assert_eq!(Condemnation::decode(&r.encode()).unwrap(), r);
        let unlisted = Condemnation {
            sessions: None,
            ..r
        };
        assert_eq!(Condemnation::decode(&unlisted.encode()).unwrap(), unlisted);
    }
}
