//! Attacks on the repository by someone who can write it: a holder of a key
//! who forges an index file, or storage that replays an old one. Neither may
//! make `prune` delete data a snapshot needs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bunker_engine::backend::{Backend, FileKind, LocalBackend};
use bunker_engine::backup::{backup, BackupOptions, BackupSource};
use bunker_engine::format::blob::BlobType;
use bunker_engine::format::id::{BlobId, PackId, SnapshotId};
use bunker_engine::format::index::{IndexFile, IndexedPack};
use bunker_engine::format::keyfile::KdfParams;
use bunker_engine::format::pack::PackEntry;
use bunker_engine::prune::{prune, PruneOptions, PruneReport};
use bunker_engine::restore::{restore, RestoreOptions};
use bunker_engine::walk_tree::find_node;
use bunker_engine::{forget, InitOptions, NoProgress, Repository};

const PASSWORD: &[u8] = b"attacks";

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    backend: Arc<dyn Backend>,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::open(&root.join("repo"), true).unwrap());
    let options = InitOptions {
        kdf: KdfParams::MIN,
        pack_size: Some(1 << 20),
        ..Default::default()
    };
    Repository::init(backend.clone(), PASSWORD, options).unwrap();
    World {
        _tmp: tmp,
        root,
        backend,
    }
}

/// Pseudo-random bytes, different for each seed.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

impl World {
    fn open(&self) -> Repository {
        Repository::open(self.backend.clone(), PASSWORD).unwrap()
    }

    fn write(&self, rel: &str, seed: u64) -> PathBuf {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes(seed, 40 << 10)).unwrap();
        path
    }

    fn backup(&self, dir: &Path) -> SnapshotId {
        backup(
            self.open(),
            BackupSource::Paths(vec![dir.to_path_buf()]),
            BackupOptions {
                host: Some("attacks".into()),
                ..Default::default()
            },
            Arc::new(NoProgress),
        )
        .unwrap()
        .id
        .unwrap()
    }

    fn prune(&self) -> PruneReport {
        prune(self.open(), &PruneOptions::default()).unwrap()
    }

    /// The blobs of `file` in snapshot `id`, and the pack holding each.
    fn content(&self, id: &SnapshotId, file: &Path) -> Vec<(BlobId, PackId, PackEntry)> {
        let repo = self.open().load_index().unwrap();
        let snapshot = repo.read_snapshot(id).unwrap();
        let node = find_node(&repo, &snapshot.tree, file.to_str().unwrap()).unwrap();
        node.content
            .iter()
            .map(|b| {
                let loc = repo.index().get(b).unwrap().unwrap();
                let entry = PackEntry {
                    kind: BlobType::Data,
                    id: *b,
                    offset: loc.offset,
                    length: loc.length,
                    raw_length: loc.raw_length,
                };
                (*b, repo.index().pack(loc.pack).0, entry)
            })
            .collect()
    }

    /// Restores snapshot `id` and compares `file` with `expected` bytes.
    fn restores(&self, id: &SnapshotId, file: &Path, expected: &[u8]) {
        let repo = Arc::new(self.open().load_index().unwrap());
        let snapshot = repo.read_snapshot(id).unwrap();
        let target = self.root.join(format!("restore-{}", id.short()));
        let summary = restore(
            repo,
            &snapshot.tree,
            &RestoreOptions {
                target: target.clone(),
                subpath: "/".into(),
                verify: true,
                ..Default::default()
            },
            Arc::new(NoProgress),
        )
        .unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let restored = target.join(file.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(restored).unwrap(), expected);
    }

    /// Index file names, sorted as every reader lists them.
    fn index_names(&self) -> Vec<String> {
        self.backend
            .list_names(FileKind::Index)
            .unwrap()
            .into_iter()
            .collect()
    }
}

#[test]
fn a_forged_index_cannot_make_prune_delete_live_data() {
    let w = world();
    let a = w.write("one/a", 1);
    let s1 = w.backup(&w.root.join("one"));
    let b = w.write("two/b", 2);
    let s2 = w.backup(&w.root.join("two"));
    let a_blobs = w.content(&s1, &a);
    let b_blobs = w.content(&s2, &b);
    let (p, q) = (a_blobs[0].1, b_blobs[0].1);
    assert_ne!(p, q);

    // A key holder writes an index placing a's blobs in b's pack, and makes
    // sure it is read first (the order every reader lists index files in).
    let repo = w.open();
    let q_length = w.backend.size(FileKind::Pack, &q.to_hex()).unwrap();
    let forged = IndexFile {
        supersedes: Vec::new(),
        packs: vec![IndexedPack {
            id: q,
            length: q_length,
            blobs: a_blobs.iter().map(|(_, _, e)| *e).collect(),
        }],
    };
    loop {
        let name = repo.write_index(&forged).unwrap().to_hex();
        if w.index_names()[0] == name {
            break;
        }
        w.backend.remove(FileKind::Index, &name).unwrap();
    }

    let report = w.prune();
    assert!(
        report.warnings.iter().any(|m| m.contains("forged")),
        "prune did not say what it refused: {:?}",
        report.warnings
    );
    assert!(
        w.backend.exists(FileKind::Pack, &p.to_hex()).unwrap() || report.packs_repacked > 0,
        "a's pack was deleted without a copy"
    );
    w.restores(&s1, &a, &bytes(1, 40 << 10));
    w.restores(&s2, &b, &bytes(2, 40 << 10));
}

#[test]
fn a_replayed_index_cannot_make_prune_delete_a_rescued_pack() {
    let w = world();
    let f = w.write("src/f", 3);
    let src = w.root.join("src");
    // An old snapshot's index file, kept aside by the storage.
    let s0 = w.backup(&src);
    let old_index: Vec<(String, Vec<u8>)> = w
        .index_names()
        .into_iter()
        .map(|n| {
            let bytes = w.backend.read(FileKind::Index, &n).unwrap();
            (n, bytes)
        })
        .collect();
    forget::remove(&w.open(), &[s0]).unwrap();
    w.prune();
    // The same data again, now in another pack.
    let s1 = w.backup(&src);
    let s1_snapshot = w.open().read_snapshot(&s1).unwrap();

    // A backup that started before the next prune condemns that pack…
    let repo = w.open();
    let session = bunker_engine::lock::session(&repo, "backup").unwrap();
    forget::remove(&w.open(), &[s1]).unwrap();
    let waiting = w.prune();
    assert!(
        waiting.sessions_waiting == 1 && waiting.packs_waiting > 0,
        "{waiting:?}"
    );
    // …commits a snapshot using it, and ends.
    let mut again = s1_snapshot.clone();
    again.time_ns += 1;
    session.confirm().unwrap();
    let s2 = repo.write_snapshot(&again).unwrap();
    drop(session);

    // The storage replays the old index, which places the data in a pack
    // that no longer exists.
    for (name, bytes) in &old_index {
        w.backend.write(FileKind::Index, name, bytes).unwrap();
    }
    let report = w.prune();
    // Its data pack and its tree pack.
    assert_eq!(report.packs_rescued, 2, "{report:?}");
    w.restores(&s2, &f, &bytes(3, 40 << 10));
}

/// Completes the attack copies that `make-golden-v2.sh` (in the command
/// line's test fixtures) makes of the golden version-2 repository: a forged
/// index in `golden-v2-forged-index`, a planted key file in
/// `golden-v2-planted`. Run once, when the fixtures are made:
/// `BUNKER_GOLDEN_V2=crates/bunker-cli/tests/fixtures cargo test -p
/// bunker-engine --test attacks -- --ignored`.
#[test]
#[ignore = "writes committed fixtures; run once by make-golden-v2.sh's instructions"]
fn write_golden_v2_attack_fixtures() {
    let dir = PathBuf::from(std::env::var("BUNKER_GOLDEN_V2").expect("BUNKER_GOLDEN_V2"));
    let password = std::fs::read_to_string(dir.join("golden-v2.password")).unwrap();
    let password = password.trim_end().as_bytes();
    let open = |name: &str| -> (Arc<dyn Backend>, Repository) {
        let backend: Arc<dyn Backend> =
            Arc::new(LocalBackend::open(&dir.join(name), false).unwrap());
        let repo = Repository::open(backend.clone(), password).unwrap();
        (backend, repo)
    };

    // A key holder places the blobs of pattern.bin in another pack, in an
    // index file every reader reads first.
    let (backend, repo) = open("golden-v2-forged-index");
    let repo = repo.load_index().unwrap();
    let entry = repo
        .snapshots()
        .unwrap()
        .into_iter()
        .find(|e| e.snapshot.tags == ["v2"])
        .unwrap();
    let path = format!("{}/pattern.bin", entry.snapshot.paths[0]);
    let node = find_node(&repo, &entry.snapshot.tree, &path).unwrap();
    let mut blobs = Vec::new();
    let mut home = None;
    for b in &node.content {
        let loc = repo.index().get(b).unwrap().unwrap();
        home = Some(repo.index().pack(loc.pack).0);
        blobs.push(PackEntry {
            kind: BlobType::Data,
            id: *b,
            offset: loc.offset,
            length: loc.length,
            raw_length: loc.raw_length,
        });
    }
    let other = backend
        .list(FileKind::Pack)
        .unwrap()
        .into_iter()
        .find(|f| Some(f.name.clone()) != home.map(|p| p.to_hex()))
        .unwrap();
    let forged = IndexFile {
        supersedes: Vec::new(),
        packs: vec![IndexedPack {
            id: other.name.parse().unwrap(),
            length: other.size,
            blobs,
        }],
    };
    loop {
        let name = repo.write_index(&forged).unwrap().to_hex();
        if backend.list_names(FileKind::Index).unwrap()[0] == name {
            break;
        }
        backend.remove(FileKind::Index, &name).unwrap();
    }

    // A key file whose derivation would cost 4 GiB and 64 passes, named as
    // a key file must be (by the hash of its bytes).
    let (backend, _) = open("golden-v2-planted");
    let real = backend.list_names(FileKind::Key).unwrap().remove(0);
    let mut json: serde_json::Value =
        serde_json::from_slice(&backend.read(FileKind::Key, &real).unwrap()).unwrap();
    json["kdf"]["memory_kib"] = (4u64 << 20).into();
    json["kdf"]["iterations"] = 64.into();
    let planted = serde_json::to_vec_pretty(&json).unwrap();
    let name = bunker_engine::format::id::storage_name(&planted);
    backend.write(FileKind::Key, &name, &planted).unwrap();
}
