//! A local cache of what was read from a repository, so that a command need
//! not read again what an earlier one did: the decoded snapshots, one file
//! for all of them (`snapshots` with 10,000 snapshots reads one file instead
//! of 10,000); the locks it has seen, so that a lock's holder is judged dead
//! by what this client observed, not by another host's clock; and, for
//! remote repositories, the index files and the packs of trees as stored
//! (a warm cache makes opening a cloud repository a few listings).
//!
//! The cache lives under a directory of the caller's choosing (the user's
//! cache directory), one subdirectory per repository id. Everything in it is
//! sealed with the repository's key like a stored object (docs/FORMAT.md
//! §13), so a damaged, foreign or forged cache file fails to open and is
//! discarded, never trusted. The cache only ever answers for files the
//! repository still lists, and it can be deleted at any time.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use bunker_format::crypto::RepoKeys;
use bunker_format::id::{storage_name, SnapshotId};
use bunker_format::lock_watch::{self, Seen};
use bunker_format::object::{open_object, seal_object, ObjectKind};
use bunker_format::snapshot::Snapshot;
use bunker_format::snapshot_cache;

use crate::repository::SnapshotEntry;

/// File of the snapshot cache inside a repository's cache directory.
const SNAPSHOTS: &str = "snapshots";
/// File of the record of locks seen.
const LOCKS: &str = "locks";
/// Directory of index files, as stored.
const INDEX: &str = "index";
/// Directory of packs of trees, as stored.
const PACKS: &str = "packs";
/// Directory of run records, as stored.
const RUNS: &str = "runs";

/// The directory of one repository's files under `root` (the cache's or
/// the client memory's), created readable only by its owner if missing.
pub(crate) fn repository_dir(root: &Path, repository: &[u8; 32]) -> std::io::Result<PathBuf> {
    let dir = root.join(hex::encode(repository));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

/// The cache of one repository.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    repository: [u8; 32],
}

impl Cache {
    /// The cache of the repository with id `repository`, under `root`; its
    /// directory is created (readable only by its owner) if missing.
    pub fn open(root: &Path, repository: &[u8; 32]) -> std::io::Result<Self> {
        Ok(Cache {
            dir: repository_dir(root, repository)?,
            repository: *repository,
        })
    }

    /// Where this repository's cache lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached snapshots, or none if the cache is missing or cannot be
    /// opened with `keys` (damaged, foreign, forged).
    pub(crate) fn snapshots(&self, keys: &RepoKeys) -> HashMap<SnapshotId, Snapshot> {
        let Ok(stored) = std::fs::read(self.dir.join(SNAPSHOTS)) else {
            return HashMap::new();
        };
        open_object(keys, ObjectKind::SnapshotCache, b"", &stored)
            .and_then(|plain| snapshot_cache::decode(&self.repository, &plain))
            .map(|entries| entries.into_iter().collect())
            .unwrap_or_default()
    }

    /// Replaces the cached snapshots (best effort: a cache that cannot be
    /// written only costs the next command the reads it would have saved).
    pub(crate) fn store_snapshots(&self, keys: &RepoKeys, level: i32, entries: &[SnapshotEntry]) {
        let list: Vec<(SnapshotId, &Snapshot)> =
            entries.iter().map(|e| (e.id, &e.snapshot)).collect();
        let stored = seal_object(
            keys,
            ObjectKind::SnapshotCache,
            b"",
            &snapshot_cache::encode(&self.repository, &list),
            level,
        );
        let _ = self.replace(SNAPSHOTS, &stored);
    }

    /// The locks this client has seen, or none if the record is missing or
    /// cannot be opened with `keys`.
    pub(crate) fn lock_watch(&self, keys: &RepoKeys) -> Vec<Seen> {
        let Ok(stored) = std::fs::read(self.dir.join(LOCKS)) else {
            return Vec::new();
        };
        open_object(keys, ObjectKind::LockWatch, b"", &stored)
            .and_then(|plain| lock_watch::decode(&self.repository, &plain))
            .unwrap_or_default()
    }

    /// Replaces the record of locks seen (best effort).
    pub(crate) fn store_lock_watch(&self, keys: &RepoKeys, seen: &[Seen]) {
        let stored = seal_object(
            keys,
            ObjectKind::LockWatch,
            b"",
            &lock_watch::encode(&self.repository, seen),
            0,
        );
        let _ = self.replace(LOCKS, &stored);
    }

    /// A stored file of `dir` (`index` or `packs`), if cached under `name`
    /// and still the bytes that name denotes (names are hashes of the stored
    /// bytes; a damaged entry is removed and `None` returned).
    fn stored(&self, dir: &str, name: &str) -> Option<Vec<u8>> {
        let path = self.dir.join(dir).join(name);
        let bytes = std::fs::read(&path).ok()?;
        if storage_name(&bytes) != name {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(bytes)
    }

    /// Keeps a stored file under its name (best effort).
    fn keep_stored(&self, dir: &str, name: &str, bytes: &[u8]) {
        let _ = std::fs::create_dir_all(self.dir.join(dir))
            .and_then(|()| self.replace(&format!("{dir}/{name}"), bytes));
    }

    /// Removes the cached files of `dir` whose names `keep` rejects: files
    /// that left the repository leave the cache.
    fn retain_stored(&self, dir: &str, keep: impl Fn(&str) -> bool) {
        let Ok(entries) = std::fs::read_dir(self.dir.join(dir)) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// A cached index file, as stored.
    pub(crate) fn index_file(&self, name: &str) -> Option<Vec<u8>> {
        self.stored(INDEX, name)
    }

    /// Caches an index file as stored.
    pub(crate) fn keep_index_file(&self, name: &str, bytes: &[u8]) {
        self.keep_stored(INDEX, name, bytes)
    }

    /// Drops cached index files the repository no longer lists.
    pub(crate) fn retain_index_files(&self, listed: &HashSet<String>) {
        self.retain_stored(INDEX, |n| listed.contains(n));
    }

    /// A cached run record, as stored.
    pub(crate) fn run_file(&self, name: &str) -> Option<Vec<u8>> {
        self.stored(RUNS, name)
    }

    /// Caches a run record as stored.
    pub(crate) fn keep_run_file(&self, name: &str, bytes: &[u8]) {
        self.keep_stored(RUNS, name, bytes)
    }

    /// Drops cached run records the repository no longer lists.
    pub(crate) fn retain_run_files(&self, listed: &HashSet<String>) {
        self.retain_stored(RUNS, |n| listed.contains(n));
    }

    /// `length` bytes at `offset` of a cached pack, if it is cached. The
    /// pack was checked against its name when it was kept; every blob read
    /// from it is authenticated as it is decoded, and a blob that fails
    /// makes the caller drop the pack.
    pub(crate) fn pack_range(&self, name: &str, offset: u64, length: u64) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(self.dir.join(PACKS).join(name)).ok()?;
        let mut buf = vec![0u8; usize::try_from(length).ok()?];
        file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }

    /// Caches a pack as stored.
    pub(crate) fn keep_pack(&self, name: &str, bytes: &[u8]) {
        self.keep_stored(PACKS, name, bytes)
    }

    /// Forgets a cached pack (its bytes failed to decode).
    pub(crate) fn drop_pack(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.join(PACKS).join(name));
    }

    /// Drops cached packs the index no longer names.
    pub(crate) fn retain_packs(&self, keep: impl Fn(&str) -> bool) {
        self.retain_stored(PACKS, keep);
    }

    /// Writes a cache file whole, then renames it into place: a reader sees
    /// the old file or the new one.
    fn replace(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(name);
        let dir = path.parent().unwrap_or(&self.dir);
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}
