//! Snapshots: reading, writing and listing them (through the local cache).

use std::collections::HashMap;

use bunker_backend::{ErrorKind, FileKind};
use bunker_format::client_state::SeenSnapshot;
use bunker_format::id::SnapshotId;
use bunker_format::object::ObjectKind;
use bunker_format::snapshot::Snapshot;

use super::tombstones::reconcile;
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

/// Every snapshot file, read: the readable ones, and those that are not;
/// and what the listing says against the tombstones and this client's memory.
#[derive(Debug, Default)]
pub struct SnapshotList {
    /// Readable snapshots, oldest first.
    pub entries: Vec<SnapshotEntry>,
    /// Snapshot files that could not be decoded (damaged, or written with another key).
    pub unreadable: Vec<UnreadableSnapshot>,
    /// Snapshot files that were withdrawn (forgotten) yet are listed again:
    /// a deletion interrupted, or storage bringing a file back. Left out
    /// of everything; `prune` deletes them.
    pub replayed: Vec<SnapshotId>,
    /// Snapshots this client saw that are gone though no tombstone
    /// withdrew them: storage lost, hid or rolled them back.
    pub missing: Vec<SeenSnapshot>,
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
        let id = SnapshotId(self.write_object(
            FileKind::Snapshot,
            ObjectKind::Snapshot,
            &snapshot.encode(),
        )?);
        // The next listing need not read back what this client just wrote.
        if let Some(cache) = &self.cache {
            let mut cached = cache.snapshots(&self.keys);
            cached.insert(id, snapshot.clone());
            let entries: Vec<SnapshotEntry> = cached
                .into_iter()
                .map(|(id, snapshot)| SnapshotEntry { id, snapshot })
                .collect();
            cache.store_snapshots(&self.keys, self.config.compression_level, &entries);
        }
        Ok(id)
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
        let names: Vec<SnapshotId> = self
            .backend
            .list_names(FileKind::Snapshot)?
            .iter()
            .filter_map(|name| parse_name(&self.notices, FileKind::Snapshot, name))
            .collect();
        // Listed after the snapshots: a forget writes its tombstone before
        // it deletes, so a snapshot deleted after the listing above has its
        // tombstone in this one, and is not taken for lost.
        let withdrawn = self.withdrawn()?;
        for (_, e) in &withdrawn.unreadable {
            self.notices.add(format!(
                "{e}; snapshots it withdrew are not hidden if storage brings them back (`bunker check` reports it)"
            ));
        }
        // Deleted between the listing and its read: forgotten meanwhile.
        let mut vanished = Vec::new();
        for id in names {
            if withdrawn.snapshots.contains(&id) {
                list.replayed.push(id);
                continue;
            }
            if let Some(snapshot) = cached.remove(&id) {
                from_cache += 1;
                list.entries.push(SnapshotEntry { id, snapshot });
                continue;
            }
            match self.read_snapshot(&id) {
                Ok(snapshot) => list.entries.push(SnapshotEntry { id, snapshot }),
                Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => vanished.push(id),
                Err(e @ EngineError::Corrupt { .. }) => {
                    list.unreadable.push(UnreadableSnapshot { id, error: e })
                }
                Err(e) => return Err(e),
            }
        }
        let listed: HashMap<SnapshotId, i64> = list
            .entries
            .iter()
            .map(|e| (e.id, e.snapshot.time_ns))
            .chain(list.unreadable.iter().map(|u| (u.id, 0)))
            .chain(list.replayed.iter().chain(&vanished).map(|id| (*id, 0)))
            .collect();
        let found = match &self.memory {
            Some(memory) => memory.update(&self.keys, &self.notices, |state| {
                reconcile(&listed, &withdrawn, Some(state))
            }),
            None => reconcile(&listed, &withdrawn, None),
        };
        // Withdrawn snapshots only this client remembers were read: drop them.
        list.entries.retain(|e| !found.replayed.contains(&e.id));
        list.unreadable.retain(|u| !found.replayed.contains(&u.id));
        list.replayed = found.replayed;
        list.missing = found.missing;
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

    /// The readable snapshots, oldest first. What the listing left out is
    /// told (see [`tell_skipped`](Self::tell_skipped)).
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let list = self.snapshot_list()?;
        self.tell_skipped(&list);
        Ok(list.entries)
    }

    /// Tells, once each, what a listing left out: each damaged snapshot file
    /// (with how to remove it), each withdrawn snapshot listed again, and
    /// each snapshot this client saw that is gone without a tombstone.
    pub fn tell_skipped(&self, list: &SnapshotList) {
        for u in &list.unreadable {
            self.notices.add(format!(
                "skipped snapshot {}: {}; `bunker forget {}` removes it",
                u.id.short(),
                u.error,
                u.id.short()
            ));
        }
        for id in &list.replayed {
            self.notices.add(format!(
                "ignored snapshot {}: it was forgotten, yet storage holds it again (a forget interrupted, or storage brought the file back); `bunker prune` deletes it",
                id.short()
            ));
        }
        for m in &list.missing {
            let (problem, remedy) = missing_snapshot(m);
            self.notices.add(format!("{problem}; {remedy}"));
        }
    }

    /// Adds a snapshot this client wrote to its memory, so that its loss is
    /// noticed even if no listing saw it first.
    pub(crate) fn remember_snapshot(&self, id: SnapshotId, time_ns: i64) {
        if let Some(memory) = &self.memory {
            memory.update(&self.keys, &self.notices, |state| {
                if !state.seen.iter().any(|s| s.id == id) {
                    state.seen.push(SeenSnapshot { id, time_ns });
                }
            });
        }
    }
}

/// What to say of a snapshot this client saw that is gone without a
/// tombstone: the problem, and what to do.
pub fn missing_snapshot(m: &SeenSnapshot) -> (String, String) {
    let when = match m.time_ns {
        0 => String::new(),
        ns => format!(
            " of {}",
            chrono::DateTime::from_timestamp_nanos(ns)
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
        ),
    };
    (
        format!(
            "snapshot {}{when}, which this client saw, is gone from storage though no bunker forgot it: storage lost, hid or rolled it back, or it was deleted by hand",
            m.id.short()
        ),
        format!(
            "put snapshots/{} back from a copy of the repository, or run `bunker forget {}` if it was removed on purpose",
            m.id,
            m.id.short()
        ),
    )
}
