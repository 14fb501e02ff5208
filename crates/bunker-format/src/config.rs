//! The repository config: the parameters every writer must agree on.

use crate::chunker::ChunkerParams;
use crate::compression::DEFAULT_LEVEL;
use crate::crypto::ContentKeys;
use crate::FormatError;

/// Default pack target size: 16 MiB. See `docs/FORMAT.md`.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;

/// Stored encrypted in the file `config`.
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct RepoConfig {
    /// Repository format version (1 to 4; new repositories are 4).
    #[n(0)]
    pub version: u32,
    /// Random id naming this repository (not secret).
    #[cbor(n(1), with = "minicbor::bytes")]
    pub id: [u8; 32],
    /// Chunk size bounds.
    #[n(2)]
    pub chunker: ChunkerParams,
    /// Target size of pack files in bytes.
    #[n(3)]
    pub pack_size: u32,
    /// zstd level for new blobs.
    #[n(4)]
    pub compression_level: i32,
    /// Creation time, Unix seconds.
    #[n(5)]
    pub created: i64,
    /// Reed–Solomon parity files for packs (see [`crate::parity`]).
    #[cbor(n(6), default, skip_if = "is_false")]
    pub parity: bool,
    /// The content keys (version 3 on; before, they derive from the master key).
    #[cbor(n(7), default, skip_if = "Option::is_none")]
    pub content_keys: Option<ContentKeys>,
    /// Every file but locks is written with an Object Lock retention date,
    /// renewed by maintenance (S3 buckets with Object Lock only).
    #[cbor(n(8), default, skip_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockPolicy>,
}

/// How long files stay unchangeable, and how strictly (docs/FORMAT.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct ObjectLockPolicy {
    /// Days each file is retained after it is written or renewed.
    #[n(0)]
    pub days: u32,
    /// Compliance mode (no one can lift it); otherwise governance mode.
    #[cbor(n(1), default, skip_if = "is_false")]
    pub compliance: bool,
}

/// The longest retention Bunker sets: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

fn is_false(b: &bool) -> bool {
    !*b
}

impl RepoConfig {
    /// A new config with the default parameters.
    pub fn new(id: [u8; 32], created: i64) -> Self {
        RepoConfig {
            version: crate::object::FORMAT_VERSION as u32,
            id,
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            compression_level: DEFAULT_LEVEL,
            created,
            parity: false,
            content_keys: Some(ContentKeys::generate()),
            object_lock: None,
        }
    }

    /// Sets the format version, with content keys exactly when it has them.
    pub fn set_version(&mut self, version: u32) {
        self.version = version;
        match version >= 3 {
            true => {
                self.content_keys.get_or_insert_with(ContentKeys::generate);
            }
            false => self.content_keys = None,
        }
    }

    /// True if directories are cut into pieces (format version 4 on,
    /// docs/FORMAT.md §8.1).
    pub fn cuts_directories(&self) -> bool {
        self.version >= 4
    }

    /// Encodes as CBOR.
    pub fn encode(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes and validates.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let c: RepoConfig = minicbor::decode(bytes)?;
        c.validate()?;
        Ok(c)
    }

    /// Checks every parameter against what the format allows.
    pub fn validate(&self) -> Result<(), FormatError> {
        let c = self;
        let versions = crate::object::OLDEST_VERSION as u32..=crate::object::FORMAT_VERSION as u32;
        if !versions.contains(&c.version) {
            return Err(FormatError::UnsupportedVersion {
                kind: "repository",
                version: c.version,
                supported: crate::object::FORMAT_VERSION as u32,
            });
        }
        if c.content_keys.is_some() != (c.version >= 3) {
            return Err(FormatError::Malformed(
                "content keys belong in the config from version 3 on, and only there",
            ));
        }
        c.chunker.validate()?;
        if !(1 << 20..=1 << 30).contains(&c.pack_size) {
            return Err(FormatError::Malformed("pack size outside 1 MiB..1 GiB"));
        }
        if !(-7..=22).contains(&c.compression_level) {
            return Err(FormatError::Malformed("compression level outside -7..22"));
        }
        if c.object_lock
            .is_some_and(|l| !(1..=MAX_RETENTION_DAYS).contains(&l.days))
        {
            return Err(FormatError::Malformed(
                "Object Lock retention outside 1..36500 days",
            ));
        }
        Ok(())
    }

    /// The id as hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults_pinned() {
        let c = RepoConfig::new([1u8; 32], 1_700_000_000);
        assert_eq!(RepoConfig::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            c.chunker,
            ChunkerParams {
                min_size: 131_072,
                avg_size: 524_288,
                max_size: 2_097_152
            }
        );
        assert_eq!(c.pack_size, 16 * 1024 * 1024);
        assert_eq!(c.compression_level, 3);
        let mut bad = c.clone();
        bad.pack_size = 10;
        assert!(RepoConfig::decode(&bad.encode()).is_err());
        assert_eq!(c.version, 4);
        let mut v2 = c.clone();
        v2.set_version(2);
        assert!(v2.content_keys.is_none());
        assert_eq!(RepoConfig::decode(&v2.encode()).unwrap(), v2);
        let mut keyless = c.clone();
        keyless.content_keys = None;
        assert!(RepoConfig::decode(&keyless.encode()).is_err());
    }

    /// Field 8 as docs/FORMAT.md §4.2 has it: key 8, a map {0: days, 1:
    /// compliance}, with 1 absent in governance mode; absent without a policy.
    #[test]
    fn object_lock_encoding_pinned() {
        let mut c = RepoConfig::new([1u8; 32], 1_700_000_000);
        let without = c.encode().len();
        c.object_lock = Some(ObjectLockPolicy {
            days: 30,
            compliance: true,
        });
        let bytes = c.encode();
        // Exactly the seven bytes below are added (the map's header stays one byte).
        assert_eq!(bytes.len(), without + 7);
        assert!(bytes
            .windows(7)
            .any(|w| w == [0x08, 0xa2, 0x00, 0x18, 0x1e, 0x01, 0xf5]));
        assert_eq!(RepoConfig::decode(&bytes).unwrap(), c);
        c.object_lock = Some(ObjectLockPolicy {
            days: 30,
            compliance: false,
        });
        assert!(c
            .encode()
            .windows(5)
            .any(|w| w == [0x08, 0xa1, 0x00, 0x18, 0x1e]));
        for days in [0, MAX_RETENTION_DAYS + 1] {
            c.object_lock = Some(ObjectLockPolicy {
                days,
                compliance: false,
            });
            assert!(RepoConfig::decode(&c.encode()).is_err(), "{days} days");
        }
    }
}
