//! Lock files: who is working on the repository, and how.
//!
//! Backups never exclude each other; they announce themselves with a
//! *session* lock so that `prune` knows whom it must wait for before deleting
//! anything (see `docs/FORMAT.md`, "Prune"). Only operations that delete or
//! rewrite shared state take the *exclusive* lock, and only against each other.

use crate::FormatError;

/// What a lock claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(index_only)]
pub enum LockKind {
    /// A writer that may reference existing blobs (backup): shared with
    /// everyone, waited for by prune.
    #[n(0)]
    Session,
    /// Prune or repair: excludes other exclusive holders, never backups.
    #[n(1)]
    Exclusive,
}

/// A lock file, stored encrypted under `locks/`.
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct Lock {
    /// Session or exclusive.
    #[n(0)]
    pub kind: LockKind,
    /// Host of the holder.
    #[n(1)]
    pub hostname: String,
    /// Process id of the holder on that host.
    #[n(2)]
    pub pid: u32,
    /// When the lock was taken, Unix nanoseconds.
    #[n(3)]
    pub created_ns: i64,
    /// When the holder last proved it was alive, Unix nanoseconds.
    #[n(4)]
    pub refreshed_ns: i64,
    /// What the holder is doing, e.g. `backup` (for messages).
    #[n(5)]
    pub command: String,
}

impl Lock {
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
        let l = Lock {
            kind: LockKind::Exclusive,
            hostname: "h".into(),
            pid: 42,
            created_ns: 1,
            refreshed_ns: 2,
            command: "prune".into(),
        };
        assert_eq!(Lock::decode(&l.encode()).unwrap(), l);
        assert!(Lock::decode(b"\xa1\x00\x07").is_err());
    }
}
