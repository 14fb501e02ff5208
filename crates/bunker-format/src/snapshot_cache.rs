//! The payload of the local snapshot cache: every snapshot a client has read,
//! decoded once, so that listing thousands of snapshots reads one file.
//!
//! ```text
//! cache = repository_id:32 ‖ n:u32 ‖ entry × n
//! entry = snapshot_id:32 ‖ length:u32 ‖ snapshot payload (§4.3) × length bytes
//! ```
//! It is stored sealed like every object (kind `K`), so a cache written by
//! another key, or changed by anyone without the key, fails to open and is
//! discarded; the repository id binds it to one repository.

use crate::id::SnapshotId;
use crate::snapshot::Snapshot;
use crate::FormatError;

/// Encodes the cache of `repository`.
pub fn encode(repository: &[u8; 32], entries: &[(SnapshotId, &Snapshot)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(36 + entries.len() * 512);
    out.extend_from_slice(repository);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (id, snapshot) in entries {
        let payload = snapshot.encode();
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
    }
    out
}

/// Decodes a cache, which must belong to `repository`.
pub fn decode(
    repository: &[u8; 32],
    bytes: &[u8],
) -> Result<Vec<(SnapshotId, Snapshot)>, FormatError> {
    let malformed = FormatError::Malformed("snapshot cache truncated");
    let (id, rest) = bytes.split_at_checked(32).ok_or(malformed)?;
    if id != repository {
        return Err(FormatError::Malformed(
            "snapshot cache of another repository",
        ));
    }
    let (count, mut rest) = take_u32(rest)?;
    // Each entry is at least 36 bytes: checked before allocating.
    if count as usize > rest.len() / 36 {
        return Err(FormatError::Malformed("snapshot cache count too large"));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (id, tail) = rest
            .split_at_checked(32)
            .ok_or(FormatError::Malformed("snapshot cache truncated"))?;
        let (len, tail) = take_u32(tail)?;
        let (payload, tail) = tail
            .split_at_checked(len as usize)
            .ok_or(FormatError::Malformed("snapshot cache truncated"))?;
        out.push((SnapshotId::from_slice(id)?, Snapshot::decode(payload)?));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(FormatError::Malformed("snapshot cache has trailing bytes"));
    }
    Ok(out)
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    let (n, rest) = bytes
        .split_at_checked(4)
        .ok_or(FormatError::Malformed("snapshot cache truncated"))?;
    Ok((u32::from_le_bytes(n.try_into().expect("4 bytes")), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let snapshot = Snapshot {
            hostname: "h".into(),
            paths: vec!["/p".into()],
            ..Default::default()
        };
        let id = SnapshotId([3; 32]);
        let bytes = encode(&[1; 32], &[(id, &snapshot)]);
        let back = decode(&[1; 32], &bytes).unwrap();
        assert_eq!(back, vec![(id, snapshot)]);
        assert!(decode(&[2; 32], &bytes).is_err(), "another repository");
        for cut in [0, 10, 35, bytes.len() - 1] {
            assert!(decode(&[1; 32], &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&[1; 32], &huge).is_err());
    }
}
