//! Fuzz targets: one function per decoder, shared by `fuzz/` (cargo-fuzz)
//! and by the test that replays the committed corpus on every CI run.
//!
//! Each must never panic, whatever the input; where a decoder accepts the
//! input, encoding the result and decoding again must give the same value.

use crate::condemnation::Condemnation;
use crate::config::RepoConfig;
use crate::crypto::{MasterKey, RepoKeys};
use crate::id::BlobId;
use crate::index::IndexFile;
use crate::keyfile::KeyFile;
use crate::lock::Lock;
use crate::snapshot::Snapshot;
use crate::tree::{self, Tree};
use crate::{compression, pack, parity};

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
    ("pack_trailer", pack_trailer),
    ("parity", parity_file),
    ("tree_walk", tree_walk),
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

/// The keys the fuzz targets (and their seeds) seal with.
pub fn fixed_keys() -> RepoKeys {
    MasterKey::from_bytes([7; 32]).derive()
}

/// [`fixed_keys`] bound to a version-2 repository.
pub fn fixed_keys_v2() -> RepoKeys {
    fixed_keys().bound(2, [3; 32])
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

/// A whole pack file, read as a reader reads one before anything is
/// authenticated: its trailer, then the header length it gives (versions 1
/// and 2). What a header accepts must lie inside the pack.
pub fn pack_trailer(data: &[u8]) {
    for keys in [fixed_keys(), fixed_keys_v2()] {
        if let Ok(entries) = pack::parse_pack(&keys, data) {
            for e in entries {
                assert!(
                    e.offset as usize + e.length as usize <= data.len(),
                    "entry outside the pack"
                );
            }
        }
    }
}

/// A parity file beside a (possibly damaged) pack: `pack length:u64 ‖ pack
/// name:32 ‖ pack bytes given:u32 ‖ pack ‖ parity file`. A repair must give
/// exactly the pack named, of its length.
pub fn parity_file(data: &[u8]) {
    if data.len() < 44 {
        return;
    }
    let pack_length = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let name: [u8; 32] = data[8..40].try_into().expect("32 bytes");
    let given = u32::from_le_bytes(data[40..44].try_into().expect("4 bytes")) as usize;
    let rest = &data[44..];
    // Larger packs only make each run slower.
    if pack_length > 4 << 20 || given > rest.len() {
        return;
    }
    let (pack, parity_file) = rest.split_at(given);
    match parity::repair(pack, parity_file, &name, pack_length) {
        Ok(parity::Repair::Repaired { bytes, .. }) => {
            assert_eq!(
                bytes.len() as u64,
                pack_length,
                "repaired to another length"
            );
            assert_eq!(
                blake3::hash(&bytes).as_bytes(),
                &name,
                "repaired to other bytes"
            );
        }
        Ok(parity::Repair::Intact) => {
            assert_eq!(blake3::hash(pack).as_bytes(), &name, "called intact");
        }
        Err(_) => {}
    }
}

/// Trees walked as `bunker ls`, `dump` and `diff` walk them: a sequence of
/// `length:u16 ‖ tree` records, the first the root; a subtree id's first
/// byte picks the record (modulo their count), so walks may be deep or
/// cyclic (a budget ends them). Every path must be the prefix and then
/// single, safe components.
pub fn tree_walk(mut data: &[u8]) {
    let mut records = Vec::new();
    while data.len() >= 2 {
        let len = u16::from_le_bytes([data[0], data[1]]) as usize;
        let end = (2 + len).min(data.len());
        records.push(Tree::decode(&data[2..end]).ok());
        data = &data[end..];
    }
    let Some(Some(root)) = records.first().cloned() else {
        return;
    };
    let n = records.len();
    let budget = std::cell::Cell::new(10_000u32);
    let spend = || {
        budget.set(budget.get().checked_sub(1).ok_or(())?);
        Ok::<(), ()>(())
    };
    let _ = tree::walk(
        b"/prefix",
        root,
        |id: &BlobId| {
            spend()?;
            records[id.0[0] as usize % n].clone().ok_or(())
        },
        |path: &[u8], node: &crate::tree::Node| {
            spend()?;
            let rest = path
                .strip_prefix(b"/prefix/".as_slice())
                .expect("path keeps its prefix");
            assert!(rest.ends_with(&node.name), "path ends with the node's name");
            for part in rest.split(|b| *b == b'/') {
                assert!(
                    !part.is_empty() && part != b"." && part != b"..",
                    "unsafe path component"
                );
            }
            Ok(())
        },
    );
}
