//! Tombstones (what was withdrawn on purpose) and this client's memory of
//! the repository: together they tell a snapshot forgotten from one that
//! storage lost, hid or brought back (docs/FORMAT.md §12).

use std::collections::{HashMap, HashSet};

use bunker_backend::{ErrorKind, FileKind};
use bunker_format::client_state::{ClientState, SeenSnapshot};
use bunker_format::id::{KeyId, SnapshotId, TombstoneId};
use bunker_format::object::ObjectKind;
use bunker_format::tombstone::Tombstone;

use super::{parse_name, Repository};
use crate::identity::now_ns;
use crate::{EngineError, Result};

/// What every tombstone in the repository says, together.
#[derive(Debug, Default)]
pub struct Withdrawn {
    /// Snapshots forgotten.
    pub snapshots: HashSet<SnapshotId>,
    /// Key files removed.
    pub keys: HashSet<KeyId>,
    /// The readable tombstone files.
    pub files: Vec<TombstoneId>,
    /// Tombstone files that cannot be read, and why.
    pub unreadable: Vec<(TombstoneId, EngineError)>,
}

impl<S> Repository<S> {
    /// Reads every tombstone. Each file is read once per handle: tombstones
    /// are named by the hash of their bytes, so a name never changes meaning.
    pub fn withdrawn(&self) -> Result<Withdrawn> {
        let mut out = Withdrawn::default();
        for name in self.backend.list_names(FileKind::Tombstone)? {
            let Some(id) = parse_name::<TombstoneId>(&self.notices, FileKind::Tombstone, &name)
            else {
                continue;
            };
            let known = self
                .tombstones
                .lock()
                .expect("tombstones")
                .get(&id)
                .cloned();
            let tombstone = match known {
                Some(t) => t,
                None => match self.read_tombstone(&id) {
                    Ok(t) => {
                        let mut read = self.tombstones.lock().expect("tombstones");
                        read.insert(id, t.clone());
                        t
                    }
                    Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => continue,
                    Err(e @ EngineError::Corrupt { .. }) => {
                        out.unreadable.push((id, e));
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            out.snapshots.extend(tombstone.snapshots);
            out.keys.extend(tombstone.keys);
            out.files.push(id);
        }
        Ok(out)
    }

    fn read_tombstone(&self, id: &TombstoneId) -> Result<Tombstone> {
        let plain = self.read_object(FileKind::Tombstone, ObjectKind::Tombstone, &id.to_hex())?;
        Tombstone::decode(&plain).map_err(|e| EngineError::corrupt(format!("tombstones/{id}"), e))
    }

    /// Writes a tombstone.
    pub(crate) fn write_tombstone(&self, tombstone: &Tombstone) -> Result<TombstoneId> {
        let id = TombstoneId(self.write_object(
            FileKind::Tombstone,
            ObjectKind::Tombstone,
            &tombstone.encode(),
        )?);
        self.tombstones
            .lock()
            .expect("tombstones")
            .insert(id, tombstone.clone());
        self.learn([tombstone]);
        Ok(id)
    }

    /// Adds what tombstones withdrew to this client's memory, so it holds
    /// even if storage later deletes them.
    pub(super) fn learn<'t>(&self, tombstones: impl IntoIterator<Item = &'t Tombstone>) {
        let Some(memory) = &self.memory else {
            return;
        };
        let mut snapshots = HashSet::new();
        let mut keys = HashSet::new();
        for t in tombstones {
            snapshots.extend(t.snapshots.iter().copied());
            keys.extend(t.keys.iter().copied());
        }
        memory.update(&self.keys, &self.notices, |state| {
            remember(&mut state.forgotten, &snapshots);
            remember(&mut state.revoked, &keys);
            state.seen.retain(|s| !snapshots.contains(&s.id));
        });
    }

    /// Withdraws snapshots for good: a tombstone naming them is written
    /// first, then their files are deleted, so no reader takes a deletion
    /// for a loss, and no replayed copy counts again. Their data stays
    /// until `prune`.
    pub fn withdraw_snapshots(&self, ids: &[SnapshotId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write_tombstone(&Tombstone {
            created_ns: now_ns(),
            snapshots: ids.to_vec(),
            keys: Vec::new(),
        })?;
        let mut refused = 0;
        for id in ids {
            match self.backend.remove(FileKind::Snapshot, &id.to_hex()) {
                // Storage without delete rights: the tombstone has withdrawn
                // the snapshot already; its file waits for a maintenance run.
                Err(e) if e.kind == ErrorKind::PermissionDenied => refused += 1,
                Err(e) if e.kind != ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        if refused > 0 {
            self.notices.add(format!(
                "the storage refused to delete {refused} withdrawn snapshot file(s) (credentials without delete): the tombstone withdraws them; a maintenance run with full credentials removes the files"
            ));
        }
        Ok(())
    }

    /// Withdraws a key file for good (tombstone first, then the file).
    pub(super) fn withdraw_key(&self, name: &str) -> Result<()> {
        let id: KeyId = name
            .parse()
            .map_err(|_| EngineError::Invalid(format!("no key {name}")))?;
        self.write_tombstone(&Tombstone {
            created_ns: now_ns(),
            snapshots: Vec::new(),
            keys: vec![id],
        })?;
        self.backend.remove(FileKind::Key, name)?;
        Ok(())
    }

    /// Merges every readable tombstone into one and deletes the others
    /// (the merged one is written first). Returns how many files went.
    pub(crate) fn merge_tombstones(&self, dry_run: bool) -> Result<usize> {
        let withdrawn = self.withdrawn()?;
        if withdrawn.files.len() < 2 {
            return Ok(0);
        }
        if dry_run {
            return Ok(withdrawn.files.len() - 1);
        }
        let mut snapshots: Vec<SnapshotId> = withdrawn.snapshots.into_iter().collect();
        let mut keys: Vec<KeyId> = withdrawn.keys.into_iter().collect();
        snapshots.sort();
        keys.sort();
        let merged = self.write_tombstone(&Tombstone {
            created_ns: now_ns(),
            snapshots,
            keys,
        })?;
        let mut removed = 0;
        for id in withdrawn.files.iter().filter(|id| **id != merged) {
            match self.backend.remove(FileKind::Tombstone, &id.to_hex()) {
                // Refused (no delete rights): the files say the same as the
                // merged one; a later prune merges them again.
                Err(e) if e.kind == ErrorKind::PermissionDenied => {}
                other => {
                    other?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// What a snapshot listing learned against this client's memory.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// Listed snapshots that were withdrawn.
    pub replayed: Vec<SnapshotId>,
    /// Snapshots this client saw that are gone with no tombstone.
    pub missing: Vec<SeenSnapshot>,
}

/// Compares a listing with the tombstones and with what this client saw
/// before (`state`, updated in place). `listed` holds every listed snapshot
/// with its time (0 when unreadable).
pub(super) fn reconcile(
    listed: &HashMap<SnapshotId, i64>,
    withdrawn: &Withdrawn,
    state: Option<&mut ClientState>,
) -> Reconciled {
    let mut out = Reconciled::default();
    let remembered: HashSet<SnapshotId> = state
        .as_ref()
        .map(|s| s.forgotten.iter().copied().collect())
        .unwrap_or_default();
    let forgotten = |id: &SnapshotId| withdrawn.snapshots.contains(id) || remembered.contains(id);
    out.replayed = listed.keys().filter(|id| forgotten(id)).copied().collect();
    out.replayed.sort();
    let Some(state) = state else {
        return out;
    };
    let mut seen: HashMap<SnapshotId, i64> = HashMap::new();
    for s in &state.seen {
        if forgotten(&s.id) {
            continue;
        }
        if !listed.contains_key(&s.id) {
            out.missing.push(*s);
        }
        seen.insert(s.id, s.time_ns);
    }
    for (id, time) in listed {
        if !forgotten(id) {
            seen.entry(*id).or_insert(*time);
        }
    }
    remember(&mut state.forgotten, &withdrawn.snapshots);
    remember(&mut state.revoked, &withdrawn.keys);
    state.seen = seen
        .into_iter()
        .map(|(id, time_ns)| SeenSnapshot { id, time_ns })
        .collect();
    state.seen.sort_by_key(|s| (s.time_ns, s.id));
    out.missing.sort_by_key(|s| (s.time_ns, s.id));
    out
}

/// Adds `new` to the sorted, duplicate-free `list`.
fn remember<T: Ord + Copy + std::hash::Hash>(list: &mut Vec<T>, new: &HashSet<T>) {
    let missing: Vec<T> = {
        let known: HashSet<&T> = list.iter().collect();
        new.iter().filter(|t| !known.contains(t)).copied().collect()
    };
    if !missing.is_empty() {
        list.extend(missing);
        list.sort();
    }
}
