//! What one client remembers of a repository between runs, so that it
//! notices when storage rolls back, hides or replays what it saw: the
//! snapshots it has seen (a seen snapshot that disappears without a
//! tombstone was lost or hidden by storage), the snapshots and key files it
//! knows were withdrawn (one that comes back is ignored even if its
//! tombstone was deleted too). Kept on the client's own disk, sealed with
//! the repository's key (kind `M`), never in the repository. See
//! `docs/FORMAT.md` §12.

use crate::id::{KeyId, SnapshotId};
use crate::FormatError;

/// A snapshot as this client last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct SeenSnapshot {
    /// The snapshot file.
    #[n(0)]
    pub id: SnapshotId,
    /// Its time, Unix nanoseconds (0 if it could not be read), for messages.
    #[n(1)]
    pub time_ns: i64,
}

/// A client's memory of one repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct ClientState {
    /// The repository's id: a state file of another repository is refused.
    #[cbor(n(0), with = "minicbor::bytes")]
    pub repository: [u8; 32],
    /// Snapshots seen and not known to be withdrawn.
    #[n(1)]
    pub seen: Vec<SeenSnapshot>,
    /// Snapshots known to be forgotten.
    #[n(2)]
    pub forgotten: Vec<SnapshotId>,
    /// Key files known to be removed.
    #[n(3)]
    pub revoked: Vec<KeyId>,
}

impl ClientState {
    /// An empty memory of `repository`.
    pub fn new(repository: [u8; 32]) -> Self {
        ClientState {
            repository,
            ..Default::default()
        }
    }

    /// Encodes as CBOR.
    pub fn encode(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes a state, which must be of `repository`.
    pub fn decode(repository: &[u8; 32], bytes: &[u8]) -> Result<Self, FormatError> {
        let state: ClientState = minicbor::decode(bytes)?;
        if &state.repository != repository {
            return Err(FormatError::Malformed("client state of another repository"));
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let state = ClientState {
            repository: [9; 32],
            seen: vec![SeenSnapshot {
                id: SnapshotId([1; 32]),
                time_ns: 5,
            }],
            forgotten: vec![SnapshotId([2; 32])],
            revoked: vec![KeyId([3; 32])],
        };
        let bytes = state.encode();
        assert_eq!(ClientState::decode(&[9; 32], &bytes).unwrap(), state);
        assert!(ClientState::decode(&[8; 32], &bytes).is_err());
        assert!(ClientState::decode(&[9; 32], &bytes[..bytes.len() - 1]).is_err());
    }
}
