//! Fuzz targets: one function per decoder, shared by `fuzz/` (cargo-fuzz)
//! and by the test that replays the committed corpus on every CI run.
//!
//! Each must never panic, whatever the input; where a decoder accepts the
//! input, encoding the result and decoding again must give the same value.

use crate::condemnation::Condemnation;
use crate::config::RepoConfig;
use crate::crypto::{MasterKey, RepoKeys};
use crate::index::IndexFile;
use crate::keyfile::KeyFile;
use crate::lock::Lock;
use crate::snapshot::Snapshot;
use crate::tree::Tree;
use crate::{compression, pack};

/// A fuzz target: any bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// Every target, by name (the directory names under `fuzz/corpus`).
pub const TARGETS: &[(&str, Target)] = &[
    ("index", index),
    ("snapshot", snapshot),
    ("tree", tree),
    ("config", config),
    ("keyfile", keyfile),
    ("lock", lock),
    ("condemnation", condemnation),
    ("pack_header", pack_header),
    ("decompress", decompress),
];

macro_rules! round_trip {
    ($value:expr, $decode:expr, $encode:expr) => {
        if let Ok(v) = $value {
            let again = $decode(&$encode(&v)).expect("re-encoded value must decode");
            assert_eq!(again, v, "decode(encode(x)) != x");
        }
    };
}

/// Binary index files.
pub fn index(data: &[u8]) {
    round_trip!(
        IndexFile::decode(data),
        IndexFile::decode,
        IndexFile::encode
    );
}

/// Snapshot CBOR.
pub fn snapshot(data: &[u8]) {
    round_trip!(Snapshot::decode(data), Snapshot::decode, Snapshot::encode);
}

/// Tree CBOR, with its checks on names and order.
pub fn tree(data: &[u8]) {
    round_trip!(Tree::decode(data), Tree::decode, Tree::encode);
}

/// Config CBOR.
pub fn config(data: &[u8]) {
    round_trip!(
        RepoConfig::decode(data),
        RepoConfig::decode,
        RepoConfig::encode
    );
}

/// Key file JSON (parsing only: opening runs the password KDF).
pub fn keyfile(data: &[u8]) {
    round_trip!(
        KeyFile::from_json(data),
        KeyFile::from_json,
        KeyFile::to_json
    );
}

/// Lock CBOR.
pub fn lock(data: &[u8]) {
    round_trip!(Lock::decode(data), Lock::decode, Lock::encode);
}

/// Condemnation record CBOR.
pub fn condemnation(data: &[u8]) {
    round_trip!(
        Condemnation::decode(data),
        Condemnation::decode,
        Condemnation::encode
    );
}

fn fixed_keys() -> RepoKeys {
    MasterKey::from_bytes([7; 32]).derive()
}

/// A pack header's plaintext (after 8 bytes giving the pack's length),
/// sealed with a fixed key so the parser behind the decryption is reached.
pub fn pack_header(data: &[u8]) {
    if data.len() < 8 {
        let _ = pack::parse_trailer(data);
        return;
    }
    let pack_length = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let keys = fixed_keys();
    let sealed = keys.seal(b"bunker pack header v1", &data[8..]);
    let trailer = pack::Trailer {
        version: 1,
        header_length: sealed.len() as u32,
    };
    if let Ok(entries) = pack::parse_header(&keys, trailer, &sealed, pack_length) {
        for e in entries {
            assert!(
                e.offset as u64 + e.length as u64 <= pack_length,
                "entry outside the pack"
            );
        }
    }
}

/// The compression envelope, with a bound from the first 3 bytes.
pub fn decompress(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let max = u32::from_le_bytes([data[0], data[1], data[2], 0]) as usize;
    if let Ok(plain) = compression::decompress(&data[3..], max) {
        assert!(plain.len() <= max, "decompressed past the bound");
    }
}
