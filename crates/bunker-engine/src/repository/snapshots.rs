//! Snapshots: reading, writing and listing them (through the local cache).

use std::collections::HashMap;

use bunker_backend::{ErrorKind, FileKind};
use bunker_format::id::SnapshotId;
use bunker_format::object::ObjectKind;
use bunker_format::snapshot::Snapshot;

use super::{parse_name, Repository};
use crate::cache::Cache;
use crate::{EngineError, Result};

/// A snapshot with its id.
#[derive(Clone, Debug)]
pub struct SnapshotEntry {
    /// Storage id.
    pub id: SnapshotId,
    /// Content.
    pub snapshot: Snapshot,
}

/// Every snapshot file, read: the readable ones, and those that are not.
#[derive(Debug, Default)]
pub struct SnapshotList {
    /// Readable snapshots, oldest first.
    pub entries: Vec<SnapshotEntry>,
    /// Snapshot files that could not be decoded (damaged, or written with another key).
    pub unreadable: Vec<UnreadableSnapshot>,
}

/// A snapshot file that could not be read.
#[derive(Debug)]
pub struct UnreadableSnapshot {
    /// Its name.
    pub id: SnapshotId,
    /// Why.
    pub error: EngineError,
}

impl<S> Repository<S> {
    /// Writes a snapshot; call only after the index covering its blobs is written.
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        Ok(SnapshotId(self.write_object(
            FileKind::Snapshot,
            ObjectKind::Snapshot,
            &snapshot.encode(),
        )?))
    }

    /// Reads one snapshot.
    pub fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let plain = self.read_object(FileKind::Snapshot, ObjectKind::Snapshot, &id.to_hex())?;
        Snapshot::decode(&plain).map_err(|e| EngineError::corrupt(format!("snapshots/{id}"), e))
    }

    /// Every snapshot file, read. Damaged ones are returned apart; a storage
    /// failure is an error; a snapshot forgotten since the listing is skipped.
    /// Snapshots found in the cache (verified when they were cached) are
    /// not read again; the cache is brought up to date.
    pub fn snapshot_list(&self) -> Result<SnapshotList> {
        self.list_snapshots(self.cache.as_deref())
    }

    /// [`snapshot_list`](Self::snapshot_list) reading every snapshot file
    /// from storage, as `check` must.
    pub fn snapshot_list_from_storage(&self) -> Result<SnapshotList> {
        self.list_snapshots(None)
    }

    fn list_snapshots(&self, cache: Option<&Cache>) -> Result<SnapshotList> {
        let mut list = SnapshotList::default();
        let mut cached = match cache {
            Some(c) => c.snapshots(&self.keys),
            None => HashMap::new(),
        };
        let mut from_cache = 0;
        for name in self.backend.list_names(FileKind::Snapshot)? {
            let Some(id) = parse_name::<SnapshotId>(&self.notices, FileKind::Snapshot, &name)
            else {
                continue;
            };
            if let Some(snapshot) = cached.remove(&id) {
                from_cache += 1;
                list.entries.push(SnapshotEntry { id, snapshot });
                continue;
            }
            match self.read_snapshot(&id) {
                Ok(snapshot) => list.entries.push(SnapshotEntry { id, snapshot }),
                // Forgotten since the listing (forget runs concurrently).
                Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e @ EngineError::Corrupt { .. }) => {
                    list.unreadable.push(UnreadableSnapshot { id, error: e })
                }
                Err(e) => return Err(e),
            }
        }
        list.entries.sort_by(|a, b| {
            a.snapshot
                .time_ns
                .cmp(&b.snapshot.time_ns)
                .then(a.id.cmp(&b.id))
        });
        // Rewritten when it gained or lost a snapshot.
        if let Some(cache) = cache {
            if from_cache != list.entries.len() || !cached.is_empty() {
                cache.store_snapshots(&self.keys, self.config.compression_level, &list.entries);
            }
        }
        Ok(list)
    }

    /// The readable snapshots, oldest first. Each damaged snapshot file is
    /// told once (with how to remove it) and left out.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let list = self.snapshot_list()?;
        for u in &list.unreadable {
            self.notices.add(format!(
                "skipped snapshot {}: {}; `bunker forget {}` removes it",
                u.id.short(),
                u.error,
                u.id.short()
            ));
        }
        Ok(list.entries)
    }
}
