//! Framing of whole-file objects: config, index and snapshot files.
//!
//! ```text
//! file   = prefix ‖ seal(AD = prefix, envelope(payload))
//! prefix = "BNKR" ‖ kind:u8 ‖ version:u8 ‖ 0x00 0x00                (8 bytes)
//! ```
//! The clear prefix says what the file is and which format version wrote it,
//! so a reader can refuse a foreign or newer file with a clear message before
//! trying any key; it is authenticated as associated data.

use crate::compression;
use crate::crypto::RepoKeys;
use crate::FormatError;

const MAGIC: &[u8; 4] = b"BNKR";
/// Length of the clear prefix.
pub const PREFIX_LEN: usize = 8;
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Upper bound on a decompressed object, so corrupt input cannot exhaust memory.
const MAX_OBJECT: usize = 1 << 30;

/// The kinds of whole-file objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// The repository config.
    Config = b'C' as isize,
    /// An index file.
    Index = b'I' as isize,
    /// A snapshot.
    Snapshot = b'S' as isize,
    /// A lock.
    Lock = b'L' as isize,
    /// A condemnation record written by prune.
    Condemnation = b'D' as isize,
    /// The local cache of decoded snapshots (never in the repository).
    SnapshotCache = b'K' as isize,
    /// A client's record of the locks it has seen (never in the repository).
    LockWatch = b'W' as isize,
}

impl ObjectKind {
    fn name(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lock => "lock",
            ObjectKind::Condemnation => "condemnation record",
            ObjectKind::SnapshotCache => "snapshot cache",
            ObjectKind::LockWatch => "lock record",
        }
    }

    fn prefix(self) -> [u8; PREFIX_LEN] {
        let mut p = [0u8; PREFIX_LEN];
        p[..4].copy_from_slice(MAGIC);
        p[4] = self as u8;
        p[5] = FORMAT_VERSION;
        p
    }
}

/// Frames, compresses and encrypts a payload.
pub fn seal_object(keys: &RepoKeys, kind: ObjectKind, payload: &[u8], level: i32) -> Vec<u8> {
    let prefix = kind.prefix();
    let sealed = keys.seal(&prefix, &compression::compress(payload, level));
    let mut out = Vec::with_capacity(PREFIX_LEN + sealed.len());
    out.extend_from_slice(&prefix);
    out.extend_from_slice(&sealed);
    out
}

/// Checks the clear prefix of a stored object.
pub fn check_prefix(kind: ObjectKind, stored: &[u8]) -> Result<(), FormatError> {
    if stored.len() < PREFIX_LEN || &stored[..4] != MAGIC || stored[4] != kind as u8 {
        return Err(FormatError::Malformed(match kind {
            ObjectKind::Config => "not a bunker config file",
            ObjectKind::Index => "not a bunker index file",
            ObjectKind::Snapshot => "not a bunker snapshot file",
            ObjectKind::Lock => "not a bunker lock file",
            ObjectKind::Condemnation => "not a bunker condemnation record",
            ObjectKind::SnapshotCache => "not a bunker snapshot cache",
            ObjectKind::LockWatch => "not a bunker lock record",
        }));
    }
    if stored[5] != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            kind: kind.name(),
            version: stored[5] as u32,
            supported: FORMAT_VERSION as u32,
        });
    }
    Ok(())
}

/// Verifies, decrypts and decompresses a stored object.
pub fn open_object(
    keys: &RepoKeys,
    kind: ObjectKind,
    stored: &[u8],
) -> Result<Vec<u8>, FormatError> {
    check_prefix(kind, stored)?;
    let envelope = keys.open(&stored[..PREFIX_LEN], &stored[PREFIX_LEN..], kind.name())?;
    compression::decompress(&envelope, MAX_OBJECT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn round_trip_and_rejections() {
        let keys = MasterKey::generate().derive();
        let stored = seal_object(&keys, ObjectKind::Index, b"payload payload payload", 3);
        assert_eq!(
            open_object(&keys, ObjectKind::Index, &stored).unwrap(),
            b"payload payload payload"
        );
        assert!(open_object(&keys, ObjectKind::Snapshot, &stored).is_err());
        let mut newer = stored.clone();
        newer[5] = 2;
        assert!(matches!(
            open_object(&keys, ObjectKind::Index, &newer),
            Err(FormatError::UnsupportedVersion { version: 2, .. })
        ));
        let mut flipped = stored.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            open_object(&keys, ObjectKind::Index, &flipped),
            Err(FormatError::Authentication(_))
        ));
    }
}
