//! Phase 1: which packs go, which are repacked, which stay.
//!
//! The plan streams: what it keeps per blob is one bit (the used marks) and
//! per pack a few numbers, so it fits in the memory the index needs anyway.
//! Blob lists are gathered only for the packs that go or are repacked and
//! for the packs that share an index file with them.

use std::collections::{HashMap, HashSet};

use bunker_format::blob::BlobType;
use bunker_format::id::{IndexId, PackId};
use bunker_format::index::IndexedPack;
use bunker_format::pack::PackEntry;

use super::headers::PackHeaders;
use super::used::{entry, indexed_blobs, reference_blobs, Referenced, UsedBlobs};
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// A pack that goes, with the live blobs to copy out of it first (as its
/// own header places them).
pub(super) struct PackUse {
    pub pack: IndexedPack,
    pub live: Vec<PackEntry>,
}

/// What phase 1 decided.
pub(super) struct Plan {
    pub snapshots: usize,
    /// How many of `repack` are small packs merged together.
    pub small_merged: u64,
    /// Index files naming a pack that goes: rewritten without it.
    pub index_files: Vec<IndexId>,
    /// Packs those files name that stay.
    pub keep: Vec<IndexedPack>,
    /// Packs that go with nothing to copy (their blob lists left empty).
    pub unused: Vec<IndexedPack>,
    /// Packs that go once their live blobs are copied.
    pub repack: Vec<PackUse>,
    /// What an index claimed that the packs' own headers did not confirm.
    pub refused: Vec<String>,
}

/// A pack smaller than this share of the target size is small.
const SMALL_PACK_SHARE: u64 = 4;
/// Small packs of one blob type are merged once there are this many.
const SMALL_PACKS_TO_MERGE: usize = 8;

/// What one pass over the index learns of each pack, by index position.
#[derive(Clone, Copy, Default)]
struct PackTally {
    /// Bytes of every blob an index places in it.
    total: u64,
    /// Bytes of the live blobs counted in it.
    live: u64,
    /// The type of its blobs (of the first seen).
    kind: Option<BlobType>,
}

/// What phase 1 decided, and the marks it decided on (for the repack).
pub(super) struct Decided {
    pub plan: Plan,
    pub referenced: Referenced,
}

/// Decides, from the snapshots present and every index file, which packs go.
pub(super) fn plan<S>(repo: &Repository<S>, threshold: f64) -> Result<Decided> {
    let referenced = reference_blobs(repo, None)?;
    let (repo, stored, used) = (&referenced.repo, &referenced.stored, &referenced.used);
    let index = repo.index();
    let on_storage: Vec<bool> = index
        .packs()
        .iter()
        .map(|(id, _)| stored.contains_key(id))
        .collect();
    // Each live blob is counted in its best location on storage.
    let mut tally = vec![PackTally::default(); index.packs().len()];
    let mut missing = used.unindexed().copied();
    used.for_each_blob(|id, live, locations| {
        for l in locations {
            let t = &mut tally[l.pack as usize];
            t.total += l.length as u64;
            t.kind.get_or_insert(l.kind);
        }
        if live {
            match locations.iter().find(|l| on_storage[l.pack as usize]) {
                Some(l) => tally[l.pack as usize].live += l.length as u64,
                None => {
                    missing.get_or_insert(*id);
                }
            }
        }
        Ok(())
    })?;
    if let Some(missing) = missing {
        return Err(EngineError::Invalid(format!(
            "refusing to prune: blob {} that snapshots need is in no pack on storage that an index names (run `bunker check`)",
            missing.short()
        )));
    }
    let mut plan = Plan {
        snapshots: referenced.snapshots.len(),
        small_merged: 0,
        index_files: Vec::new(),
        keep: Vec::new(),
        unused: Vec::new(),
        repack: Vec::new(),
        refused: Vec::new(),
    };
    // Packs that go, by position: missing ones (their index entries are
    // dropped), unused ones, and those mostly unused.
    let mut gone: HashSet<u32> = HashSet::new();
    let mut repacking: HashSet<u32> = HashSet::new();
    let mut small: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let small_below = repo.config().pack_size as u64 / SMALL_PACK_SHARE;
    for (pos, t) in tally.iter().enumerate() {
        let pos = pos as u32;
        let (id, length) = index.pack(pos);
        if !on_storage[pos as usize] {
            gone.insert(pos);
        } else if t.live == 0 {
            gone.insert(pos);
            plan.unused.push(bare(id, length));
        } else if t.total > 0 && (t.total - t.live) as f64 >= threshold * t.total as f64 {
            gone.insert(pos);
            repacking.insert(pos);
        } else if length < small_below {
            small[(t.kind == Some(BlobType::Tree)) as usize].push(pos);
        }
    }
    // Many small backups otherwise leave a pack or two each (a tree pack
    // always), and every later command pays for the count.
    for packs in small.iter().filter(|p| p.len() >= SMALL_PACKS_TO_MERGE) {
        plan.small_merged += packs.len() as u64;
        gone.extend(packs);
        repacking.extend(packs);
    }
    let mut live = live_entries(used, &repacking, &on_storage)?;
    let mut repack: Vec<u32> = repacking.into_iter().collect();
    repack.sort_by_key(|&p| index.pack(p).0);
    plan.repack = repack
        .into_iter()
        .map(|p| {
            let (id, length) = index.pack(p);
            PackUse {
                pack: bare(id, length),
                live: live.remove(&p).unwrap_or_default(),
            }
        })
        .collect();
    // Packs no index names: left by interrupted backups, or being written by
    // running ones (which phase 2 waits for, and rescues if they commit).
    let indexed: HashSet<PackId> = index.packs().iter().map(|(id, _)| *id).collect();
    let mut unindexed: Vec<(&PackId, &u64)> = stored
        .iter()
        .filter(|(id, _)| !indexed.contains(*id))
        .collect();
    unindexed.sort();
    plan.unused
        .extend(unindexed.into_iter().map(|(id, length)| bare(*id, *length)));
    let gone_ids: HashSet<PackId> = plan
        .unused
        .iter()
        .map(|p| p.id)
        .chain(gone.iter().map(|&p| index.pack(p).0))
        .collect();
    let mut headers = PackHeaders::new(repo, stored);
    // A pack that stays but that an index misdescribes is indexed again as
    // its own header describes it, and the lying index files are replaced.
    let misdescribed = verify(&mut plan, &mut headers, used, &gone_ids)?;
    // Only index files naming a pack that goes (or a misdescribed one) are
    // rewritten, so a prune with nothing to do writes nothing, even on a
    // full disk.
    let mut rewritten: HashSet<u32> = HashSet::new();
    for (file, packs) in index.files() {
        let affected = packs
            .iter()
            .any(|p| gone.contains(p) || misdescribed.contains(&index.pack(*p).0));
        if affected {
            plan.index_files.push(*file);
            rewritten.extend(packs.iter().filter(|p| !gone.contains(p)));
        }
    }
    let mut kept = indexed_blobs(used, &rewritten)?;
    let mut keep: Vec<u32> = rewritten.into_iter().collect();
    keep.sort();
    for p in keep {
        let (id, length) = index.pack(p);
        let blobs = match misdescribed.contains(&id) {
            true => headers.of(&id).map(|h| h.entries.clone()),
            false => None,
        };
        plan.keep.push(IndexedPack {
            id,
            length,
            blobs: blobs.unwrap_or_else(|| kept.remove(&p).unwrap_or_default()),
        });
    }
    Ok(Decided { plan, referenced })
}

/// A pack named without its blob list.
fn bare(id: PackId, length: u64) -> IndexedPack {
    IndexedPack {
        id,
        length,
        blobs: Vec::new(),
    }
}

/// The live blobs counted in each pack of `packs` (each live blob in its
/// best location on storage), by pack position.
fn live_entries(
    used: &UsedBlobs,
    packs: &HashSet<u32>,
    on_storage: &[bool],
) -> Result<HashMap<u32, Vec<PackEntry>>> {
    let mut out: HashMap<u32, Vec<PackEntry>> = HashMap::new();
    if packs.is_empty() {
        return Ok(out);
    }
    used.for_each_blob(|id, live, locations| {
        if let Some(l) = locations
            .iter()
            .find(|l| live && on_storage[l.pack as usize])
        {
            if packs.contains(&l.pack) {
                out.entry(l.pack).or_default().push(entry(id, l));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// True if a pack that stays holds `blob` by its own header: the packs an
/// index places it in, but for those that go. Records the packs whose
/// header contradicts an index.
fn kept_elsewhere(
    repo: &Repository<Indexed>,
    headers: &mut PackHeaders,
    blob: &bunker_format::id::BlobId,
    gone: &HashSet<PackId>,
    contradicted: &mut HashSet<PackId>,
) -> Result<bool> {
    for l in repo.index().locations(blob)? {
        let (pack, _) = repo.index().pack(l.pack);
        if gone.contains(&pack) {
            continue;
        }
        if headers.holds(&pack, blob) {
            return Ok(true);
        }
        contradicted.insert(pack);
    }
    Ok(false)
}

/// Checks every pack that goes against its own header: each live blob it
/// really holds must be copied out of a pack that goes (from that pack's
/// header), or be listed in the header of a pack that stays. Whatever an
/// index claims beyond that is refused, and the blob is copied instead.
/// Returns the packs that stay whose header contradicts an index.
fn verify(
    plan: &mut Plan,
    headers: &mut PackHeaders,
    used: &UsedBlobs,
    gone: &HashSet<PackId>,
) -> Result<HashSet<PackId>> {
    let repo = headers.repo();
    // Copies come from the packs' own headers, never from an index's offsets.
    let mut copied: HashSet<bunker_format::id::BlobId> = HashSet::new();
    let mut unconfirmed = Vec::new();
    for p in &mut plan.repack {
        let wanted: HashSet<_> = p.live.iter().map(|e| e.id).collect();
        let header: Vec<PackEntry> = headers.read(&p.pack.id).unwrap_or_default();
        p.live = header
            .into_iter()
            .filter(|e| wanted.contains(&e.id))
            .collect();
        copied.extend(p.live.iter().map(|e| e.id));
        unconfirmed.extend(
            wanted
                .iter()
                .filter(|b| !copied.contains(*b))
                .map(|b| (p.pack.id, *b)),
        );
    }
    // Packs that stay whose header contradicts what an index places in them.
    let mut contradicted: HashSet<PackId> = HashSet::new();
    for (pack, blob) in unconfirmed {
        if !kept_elsewhere(repo, headers, &blob, gone, &mut contradicted)? {
            plan.refused.push(format!(
                "an index places blob {} in pack {}, whose header does not list it, and no pack that stays holds it: run `bunker check`",
                blob.short(),
                pack.short()
            ));
        }
    }
    // Every pack that goes: what its header lists and a snapshot needs.
    let going: Vec<PackId> = plan
        .unused
        .iter()
        .map(|p| p.id)
        .chain(plan.repack.iter().map(|p| p.pack.id))
        .collect();
    for pack in going {
        let Some(header) = headers.read(&pack) else {
            continue;
        };
        let mut needed = Vec::new();
        for e in &header {
            if !copied.contains(&e.id) && used.contains(&e.id)? {
                needed.push(*e);
            }
        }
        for e in needed {
            if kept_elsewhere(repo, headers, &e.id, gone, &mut contradicted)? {
                continue;
            }
            plan.refused.push(format!(
                "pack {}: an index places its blob {} elsewhere, but no pack that stays lists it in its header (a forged or replayed index?); copied it before deleting the pack",
                pack.short(),
                e.id.short()
            ));
            copied.insert(e.id);
            match plan.repack.iter_mut().find(|p| p.pack.id == pack) {
                Some(p) => p.live.push(e),
                None => {
                    let at = plan.unused.iter().position(|p| p.id == pack);
                    let pack = plan.unused.remove(at.expect("a pack that goes"));
                    plan.repack.push(PackUse {
                        pack,
                        live: vec![e],
                    });
                }
            }
        }
    }
    Ok(contradicted)
}
