//! The payload of a client's record of the locks it has seen: for each lock,
//! a digest of its stored bytes (which change at every refresh, since each
//! is sealed with a fresh nonce) and when this client first saw those bytes,
//! by this client's own clock. A lock whose bytes stay the same for long
//! enough in one client's view has a dead holder, whatever the holder's
//! clock says (docs/FORMAT.md §10).
//!
//! ```text
//! watch = repository_id:32 ‖ n:u32 ‖ (lock_id:32 ‖ digest:32 ‖ since:u64 (Unix s))×n
//! ```
//! Stored sealed (kind `W`), like the snapshot cache.

use crate::id::LockId;
use crate::FormatError;

/// One lock as last seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The lock.
    pub id: LockId,
    /// BLAKE3 of its stored bytes.
    pub digest: [u8; 32],
    /// When this client first saw these bytes (Unix seconds, its own clock).
    pub since: u64,
}

const ENTRY: usize = 32 + 32 + 8;

/// Encodes the record of `repository`.
pub fn encode(repository: &[u8; 32], seen: &[Seen]) -> Vec<u8> {
    let mut out = Vec::with_capacity(36 + seen.len() * ENTRY);
    out.extend_from_slice(repository);
    out.extend_from_slice(&(seen.len() as u32).to_le_bytes());
    for s in seen {
        out.extend_from_slice(s.id.as_bytes());
        out.extend_from_slice(&s.digest);
        out.extend_from_slice(&s.since.to_le_bytes());
    }
    out
}

/// Decodes a record, which must belong to `repository`.
pub fn decode(repository: &[u8; 32], bytes: &[u8]) -> Result<Vec<Seen>, FormatError> {
    if bytes.len() < 36 || &bytes[..32] != repository {
        return Err(FormatError::Malformed("lock record of another repository"));
    }
    let n = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")) as usize;
    let body = &bytes[36..];
    if body.len()
        != n.checked_mul(ENTRY)
            .ok_or(FormatError::Malformed("lock record count"))?
    {
        return Err(FormatError::Malformed("lock record length"));
    }
    body.chunks_exact(ENTRY)
        .map(|e| {
            Ok(Seen {
                id: LockId::from_slice(&e[..32])?,
                digest: e[32..64].try_into().expect("32 bytes"),
                since: u64::from_le_bytes(e[64..72].try_into().expect("8 bytes")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let seen = vec![Seen {
            id: LockId([1; 32]),
            digest: [2; 32],
            since: 1_700_000_000,
        }];
        let bytes = encode(&[9; 32], &seen);
        assert_eq!(decode(&[9; 32], &bytes).unwrap(), seen);
        assert!(decode(&[8; 32], &bytes).is_err());
        assert!(decode(&[9; 32], &bytes[..bytes.len() - 1]).is_err());
    }
}
