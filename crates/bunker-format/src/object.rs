//! Framing of whole-file objects: config, index and snapshot files, locks,
//! condemnation records, tombstones, run records (and the local cache's and state's files).
//!
//! ```text
//! file   = prefix ‖ seal(AD, envelope(payload))
//! prefix = "BNKR" ‖ kind:u8 ‖ version:u8 ‖ 0x00 0x00                (8 bytes)
//! AD     = prefix                                         (version 1; the config)
//!        | prefix ‖ repository id:32 ‖ name               (version 2)
//! ```
//! The clear prefix says what the file is and which format version wrote it,
//! so a reader can refuse a foreign or newer file with a clear message before
//! trying any key; it is authenticated as associated data. From version 2 the
//! associated data also binds the object to its repository and, for objects
//! stored under a random name (locks, condemnation records), to that name:
//! objects named by the hash of their bytes are bound to their names by it.

use crate::compression;
use crate::crypto::RepoKeys;
use crate::FormatError;

const MAGIC: &[u8; 4] = b"BNKR";
/// Length of the clear prefix.
pub const PREFIX_LEN: usize = 8;
/// The format version new repositories are written in.
pub const FORMAT_VERSION: u8 = 4;

/// The version in the prefixes and associated data of what a repository of
/// `version` seals (objects, blobs, packs): version 4 changes only how
/// directories are cut into tree blobs (docs/FORMAT.md §8.1) and seals
/// everything as version 3 does, so a version-3 repository is upgraded by
/// rewriting its config alone.
pub fn sealing_version(version: u32) -> u8 {
    version.min(3) as u8
}
/// The layout of packs and key files in a repository of `version`:
/// version 3 changes only the config (it holds the content keys), and
/// stores everything else as version 2 does.
pub fn layout_version(version: u8) -> u8 {
    version.min(2)
}

/// The oldest format version this build reads (and writes, into a
/// repository of that version).
pub const OLDEST_VERSION: u8 = 1;
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
    /// A tombstone: snapshots forgotten and keys removed.
    Tombstone = b'T' as isize,
    /// A run record: what a backup, drill, prune, copy or check did.
    RunRecord = b'R' as isize,
    /// The local cache of decoded snapshots (never in the repository).
    SnapshotCache = b'K' as isize,
    /// A client's record of the locks it has seen (never in the repository).
    LockWatch = b'W' as isize,
    /// A client's memory of the snapshots it has seen (never in the repository).
    ClientState = b'M' as isize,
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
            ObjectKind::Tombstone => "tombstone",
            ObjectKind::RunRecord => "run record",
            ObjectKind::ClientState => "client state",
        }
    }

    fn prefix(self, version: u8) -> [u8; PREFIX_LEN] {
        let mut p = [0u8; PREFIX_LEN];
        p[..4].copy_from_slice(MAGIC);
        p[4] = self as u8;
        p[5] = version;
        p
    }
}

/// The associated data of an object of `version` (see the module docs).
fn associated_data(
    keys: &RepoKeys,
    prefix: &[u8; PREFIX_LEN],
    kind: ObjectKind,
    version: u8,
    name: &[u8],
) -> Vec<u8> {
    let mut ad = prefix.to_vec();
    if version >= 2 && kind != ObjectKind::Config {
        ad.extend_from_slice(&keys.binding().repository);
        ad.extend_from_slice(name);
    }
    ad
}

/// Frames, compresses and encrypts a payload, in the format version of
/// `keys`' repository (the config: of `keys`' version too). `name` is the
/// object's name when it is stored under a random one, else empty.
pub fn seal_object(
    keys: &RepoKeys,
    kind: ObjectKind,
    name: &[u8],
    payload: &[u8],
    level: i32,
) -> Vec<u8> {
    let version = keys.binding().version;
    let prefix = kind.prefix(version);
    let ad = associated_data(keys, &prefix, kind, version, name);
    let sealed = keys.seal(&ad, &compression::compress(payload, level));
    let mut out = Vec::with_capacity(PREFIX_LEN + sealed.len());
    out.extend_from_slice(&prefix);
    out.extend_from_slice(&sealed);
    out
}

/// Checks the clear prefix of a stored object; returns its version.
pub fn check_prefix(kind: ObjectKind, stored: &[u8]) -> Result<u8, FormatError> {
    if stored.len() < PREFIX_LEN || &stored[..4] != MAGIC || stored[4] != kind as u8 {
        return Err(FormatError::Malformed(match kind {
            ObjectKind::Config => "not a bunker config file",
            ObjectKind::Index => "not a bunker index file",
            ObjectKind::Snapshot => "not a bunker snapshot file",
            ObjectKind::Lock => "not a bunker lock file",
            ObjectKind::Condemnation => "not a bunker condemnation record",
            ObjectKind::SnapshotCache => "not a bunker snapshot cache",
            ObjectKind::LockWatch => "not a bunker lock record",
            ObjectKind::Tombstone => "not a bunker tombstone",
            ObjectKind::RunRecord => "not a bunker run record",
            ObjectKind::ClientState => "not a bunker client state",
        }));
    }
    let version = stored[5];
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion {
            kind: kind.name(),
            version: version as u32,
            supported: FORMAT_VERSION as u32,
        });
    }
    Ok(version)
}

/// Verifies, decrypts and decompresses a stored object. Every object but
/// the config must be of the format version of `keys`' repository.
pub fn open_object(
    keys: &RepoKeys,
    kind: ObjectKind,
    name: &[u8],
    stored: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let version = check_prefix(kind, stored)?;
    if kind != ObjectKind::Config && version != keys.binding().version {
        return Err(FormatError::Malformed(
            "an object of another format version than its repository",
        ));
    }
    let prefix: &[u8; PREFIX_LEN] = stored[..PREFIX_LEN].try_into().expect("checked length");
    let ad = associated_data(keys, prefix, kind, version, name);
    let envelope = keys.open(&ad, &stored[PREFIX_LEN..], kind.name())?;
    compression::decompress(&envelope, MAX_OBJECT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn round_trip_and_rejections() {
        let master = MasterKey::generate();
        for keys in [
            master.derive().bound(1, [3; 32]),
            master.derive().bound(2, [3; 32]),
            master.derive().bound(3, [3; 32]),
        ] {
            let stored = seal_object(&keys, ObjectKind::Index, b"", b"payload payload payload", 3);
            assert_eq!(
                open_object(&keys, ObjectKind::Index, b"", &stored).unwrap(),
                b"payload payload payload"
            );
            assert!(open_object(&keys, ObjectKind::Snapshot, b"", &stored).is_err());
            let mut newer = stored.clone();
            newer[5] = FORMAT_VERSION + 1;
            assert!(matches!(
                open_object(&keys, ObjectKind::Index, b"", &newer),
                Err(FormatError::UnsupportedVersion { version: 5, .. })
            ));
            let mut flipped = stored.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert!(matches!(
                open_object(&keys, ObjectKind::Index, b"", &flipped),
                Err(FormatError::Authentication(_))
            ));
        }
    }

    #[test]
    fn a_version_2_object_is_bound_to_its_repository_and_name() {
        let master = MasterKey::generate();
        let keys = master.derive().bound(2, [3; 32]);
        let lock = seal_object(&keys, ObjectKind::Lock, b"name-a", b"lock", 0);
        assert!(open_object(&keys, ObjectKind::Lock, b"name-a", &lock).is_ok());
        // Under another name, in another repository, or read as version 1.
        assert!(open_object(&keys, ObjectKind::Lock, b"name-b", &lock).is_err());
        let other = master.derive().bound(2, [4; 32]);
        assert!(open_object(&other, ObjectKind::Lock, b"name-a", &lock).is_err());
        let v1 = master.derive().bound(1, [3; 32]);
        assert!(open_object(&v1, ObjectKind::Lock, b"name-a", &lock).is_err());
        // The config is opened before the repository's id is known.
        let config = seal_object(&keys, ObjectKind::Config, b"", b"config", 0);
        assert!(open_object(&master.derive(), ObjectKind::Config, b"", &config).is_ok());
    }
}
