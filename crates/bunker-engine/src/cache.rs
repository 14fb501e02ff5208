//! A local cache of what was read from a repository, so that a command need
//! not read again what an earlier one did: today the decoded snapshots, one
//! file for all of them (`snapshots` with 10,000 snapshots reads one file
//! instead of 10,000); and the locks it has seen, so that a lock's holder
//! is judged dead by what this client observed, not by another host's clock.
//!
//! The cache lives under a directory of the caller's choosing (the user's
//! cache directory), one subdirectory per repository id. Everything in it is
//! sealed with the repository's key like a stored object (docs/FORMAT.md
//! §13), so a damaged, foreign or forged cache file fails to open and is
//! discarded, never trusted. The cache only ever answers for files the
//! repository still lists, and it can be deleted at any time.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use bunker_format::crypto::RepoKeys;
use bunker_format::id::SnapshotId;
use bunker_format::lock_watch::{self, Seen};
use bunker_format::object::{open_object, seal_object, ObjectKind};
use bunker_format::snapshot::Snapshot;
use bunker_format::snapshot_cache;

use crate::repository::SnapshotEntry;

/// File of the snapshot cache inside a repository's cache directory.
const SNAPSHOTS: &str = "snapshots";
/// File of the record of locks seen.
const LOCKS: &str = "locks";

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
        let dir = root.join(hex::encode(repository));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Cache {
            dir,
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

    /// Writes a cache file whole, then renames it into place: a reader sees
    /// the old file or the new one.
    fn replace(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.persist(self.dir.join(name)).map_err(|e| e.error)?;
        Ok(())
    }
}
