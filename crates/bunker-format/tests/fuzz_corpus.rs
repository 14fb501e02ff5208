//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`: seeds, and
//! whatever the fuzzer found worth keeping) through every target, so each
//! CI run re-checks every input that ever mattered.

use std::path::{Path, PathBuf};

use bunker_format::blob::encode_blob;
use bunker_format::blob::BlobType;
use bunker_format::condemnation::Condemnation;
use bunker_format::config::RepoConfig;
use bunker_format::crypto::MasterKey;
use bunker_format::fuzzing::{fixed_keys, fixed_keys_v2, TARGETS};
use bunker_format::id::{BlobId, IndexId, LockId, PackId, SnapshotId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::keyfile::{KdfParams, KeyFile, KeyOrigin};
use bunker_format::lock::{Lock, LockKind};
use bunker_format::pack::{PackEntry, PackLayout};
use bunker_format::parity;
use bunker_format::snapshot::{BackupMode, Snapshot, SnapshotSummary};
use bunker_format::tree::{Node, NodeKind, Tree};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

#[test]
fn every_corpus_input_passes_every_check() {
    let root = corpus_root();
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut inputs = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            target(&data);
            inputs += 1;
        }
        assert!(inputs > 0, "no corpus for target {name}");
    }
}

/// Valid encodings of every format object: the fuzzer's starting points.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let blob = |b: u8| BlobId([b; 32]);
    let index = IndexFile {
        supersedes: vec![IndexId([1; 32])],
        packs: vec![IndexedPack {
            id: PackId([2; 32]),
            length: 4096,
            blobs: vec![
                PackEntry {
                    kind: BlobType::Data,
                    id: blob(3),
                    offset: 0,
                    length: 100,
                    raw_length: 80,
                },
                PackEntry {
                    kind: BlobType::Tree,
                    id: blob(4),
                    offset: 100,
                    length: 50,
                    raw_length: 40,
                },
            ],
        }],
    };
    let snapshot = Snapshot {
        time_ns: 1_700_000_000_000_000_000,
        hostname: "host".into(),
        username: "user".into(),
        paths: vec!["/home/user".into()],
        tags: vec!["nightly".into()],
        mode: BackupMode::Incremental,
        parent: Some(SnapshotId([5; 32])),
        tree: blob(6),
        summary: SnapshotSummary {
            files_new: 3,
            bytes_read: 1000,
            ..Default::default()
        },
        program_version: "bunker 0.1.0".into(),
        excludes: vec!["*.tmp".into()],
        skipped: vec![],
        warnings: vec!["/home/user/log: file changed while it was read".into()],
        original: None,
        database: None,
    };
    let tree = Tree {
        nodes: vec![
            Node {
                name: b"dir".to_vec(),
                kind: NodeKind::Dir,
                mode: 0o755,
                subtree: Some(blob(7)),
                ..Default::default()
            },
            Node {
                name: b"file".to_vec(),
                kind: NodeKind::File,
                mode: 0o644,
                size: 5,
                mtime_sec: -1,
                mtime_nsec: 999_999_999,
                content: vec![blob(8)],
                ..Default::default()
            },
            Node {
                name: b"link".to_vec(),
                kind: NodeKind::Symlink,
                mode: 0o777,
                link_target: b"../file".to_vec(),
                ..Default::default()
            },
        ],
    };
    let keyfile = KeyFile::create(
        &MasterKey::from_bytes([9; 32]),
        b"password",
        KdfParams::MIN,
        KeyOrigin {
            created: "2026-11-24T00:00:00Z".into(),
            hostname: "host".into(),
            username: "user".into(),
        },
        2,
        false,
    )
    .unwrap();
    let lock = Lock {
        kind: LockKind::Session,
        hostname: "host".into(),
        pid: 4242,
        created_ns: 1,
        refreshed_ns: 2,
        command: "backup".into(),
    };
    let record = Condemnation {
        generation: 2,
        created_ns: 3,
        packs: vec![PackId([10; 32])],
        indexes: vec![IndexId([11; 32])],
        sessions: Some(vec![LockId([12; 32])]),
    };
    let mut header = 1000u64.to_le_bytes().to_vec();
    header.extend_from_slice(&2u32.to_le_bytes());
    for (kind, len) in [(0u8, 300u32), (1, 200)] {
        header.push(kind);
        header.extend_from_slice(&[13; 32]);
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(&(len - 10).to_le_bytes());
    }
    let text = b"a compressible text, a compressible text, a compressible text".repeat(8);
    let mut zstd = vec![0xff, 0xff, 0x00];
    zstd.extend(bunker_format::compression::compress(&text, 3));
    let mut raw = vec![0x10, 0x00, 0x00];
    raw.extend(bunker_format::compression::compress(b"raw", 3));
    let mut packs = Vec::new();
    for keys in [fixed_keys(), fixed_keys_v2()] {
        let blob = encode_blob(&keys, BlobType::Data, blob(15), b"hello", 3);
        let mut layout = PackLayout::default();
        layout.push(&blob);
        let (tail, _) = layout.finish(&keys);
        let mut pack = blob.bytes;
        pack.extend(tail);
        packs.push(pack);
    }
    let pack: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let parity_of = |given: &[u8]| {
        let mut input = (pack.len() as u64).to_le_bytes().to_vec();
        input.extend_from_slice(blake3::hash(&pack).as_bytes());
        input.extend_from_slice(&(given.len() as u32).to_le_bytes());
        input.extend_from_slice(given);
        input.extend(parity::encode(&pack));
        input
    };
    let mut damaged = pack.clone();
    damaged[5000] ^= 1;
    let records = |trees: &[Tree]| {
        let mut out = Vec::new();
        for t in trees {
            let bytes = t.encode();
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend(bytes);
        }
        out
    };
    let dir = |name: &[u8], to: u8| Node {
        name: name.to_vec(),
        kind: NodeKind::Dir,
        mode: 0o755,
        subtree: Some(BlobId([to; 32])),
        ..Default::default()
    };
    let file = |name: &[u8]| Node {
        name: name.to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        ..Default::default()
    };
    let walk = records(&[
        Tree {
            nodes: vec![dir(b"a", 1), file(b"f")],
        },
        Tree {
            nodes: vec![file(b"g"), dir(b"loop", 0)],
        },
    ]);
    vec![
        ("index", "valid", index.encode()),
        ("snapshot", "valid", snapshot.encode()),
        ("tree", "valid", tree.encode()),
        (
            "config",
            "valid",
            RepoConfig::new([14; 32], 1_700_000_000).encode(),
        ),
        ("keyfile", "valid", keyfile.to_json()),
        ("lock", "valid", lock.encode()),
        ("condemnation", "valid", record.encode()),
        ("pack_header", "valid", header),
        ("pack_trailer", "v1", packs[0].clone()),
        ("pack_trailer", "v2", packs[1].clone()),
        ("parity", "intact", parity_of(&pack)),
        ("parity", "damaged", parity_of(&damaged)),
        ("tree_walk", "cyclic", walk),
        ("decompress", "zstd", zstd),
        ("decompress", "raw", raw),
    ]
}

#[test]
fn seeds_are_committed() {
    for (target, name, bytes) in seeds() {
        let path = corpus_root().join(target).join(format!("seed-{name}"));
        if std::env::var_os("BUNKER_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert!(
            path.is_file(),
            "missing seed {} (run with BUNKER_WRITE_SEEDS=1)",
            path.display()
        );
    }
}
