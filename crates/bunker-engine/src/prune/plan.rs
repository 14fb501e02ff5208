//! Phase 1: which packs go, which are repacked, which stay.

use std::collections::{HashMap, HashSet};

use bunker_format::blob::BlobType;
use bunker_format::id::{BlobId, IndexId, PackId};
use bunker_format::index::IndexedPack;
use bunker_format::pack::PackEntry;

use super::headers::PackHeaders;
use super::{read_index_files, reference_blobs};
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
    /// Packs that go with nothing to copy.
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

/// Decides, from the snapshots present and every index file, which packs go.
pub(super) fn plan(
    repo: &Repository<Indexed>,
    threshold: f64,
    used: &mut HashSet<BlobId>,
) -> Result<Plan> {
    // Snapshots before index files: a snapshot is written after its index,
    // so every snapshot seen has its blobs in the files read next.
    let snapshots = reference_blobs(repo, used)?;
    let used = &*used;
    let files = read_index_files(repo)?;
    let stored: HashMap<PackId, u64> = repo.stored_packs()?;
    let mut plan = Plan {
        snapshots,
        small_merged: 0,
        index_files: Vec::new(),
        keep: Vec::new(),
        unused: Vec::new(),
        repack: Vec::new(),
        refused: Vec::new(),
    };
    // Every pack once, with every blob any index file places in it (so one
    // index file cannot hide what another says a pack holds), and for each
    // live blob every pack on storage that an index places it in.
    let mut packs: Vec<IndexedPack> = Vec::new();
    let mut seen: HashMap<PackId, usize> = HashMap::new();
    let mut holders: HashMap<BlobId, Vec<PackId>> = HashMap::new();
    let mut packs_by_file: Vec<(IndexId, Vec<PackId>)> = Vec::new();
    for (file_id, file) in files {
        packs_by_file.push((file_id, file.packs.iter().map(|p| p.id).collect()));
        for pack in file.packs {
            if stored.contains_key(&pack.id) {
                for b in pack.blobs.iter().filter(|b| used.contains(&b.id)) {
                    let h = holders.entry(b.id).or_default();
                    if !h.contains(&pack.id) {
                        h.push(pack.id);
                    }
                }
            }
            match seen.get(&pack.id) {
                Some(&at) => {
                    let known: HashSet<BlobId> = packs[at].blobs.iter().map(|b| b.id).collect();
                    let more = pack.blobs.into_iter().filter(|b| !known.contains(&b.id));
                    packs[at].blobs.extend(more);
                }
                None => {
                    seen.insert(pack.id, packs.len());
                    packs.push(pack);
                }
            }
        }
    }
    // Each live blob is counted in the first pack on storage that lists it.
    let mut counted: HashSet<BlobId> = HashSet::with_capacity(used.len());
    let mut gone: HashSet<PackId> = HashSet::new();
    for pack in packs {
        if !stored.contains_key(&pack.id) {
            // Missing (or named by a replayed index): it holds nothing, and
            // the index files naming it are rewritten without it.
            gone.insert(pack.id);
            continue;
        }
        let live: Vec<PackEntry> = pack
            .blobs
            .iter()
            .filter(|b| used.contains(&b.id) && counted.insert(b.id))
            .copied()
            .collect();
        let total: u64 = pack.blobs.iter().map(|b| b.length as u64).sum();
        let live_bytes: u64 = live.iter().map(|b| b.length as u64).sum();
        if live.is_empty() {
            gone.insert(pack.id);
            plan.unused.push(pack);
        } else if total > 0 && (total - live_bytes) as f64 >= threshold * total as f64 {
            gone.insert(pack.id);
            plan.repack.push(PackUse { pack, live });
        } else {
            plan.keep.push(pack);
        }
    }
    if let Some(missing) = used.iter().find(|b| !counted.contains(*b)) {
        return Err(EngineError::Invalid(format!(
            "refusing to prune: blob {} that snapshots need is in no pack on storage that an index names (run `bunker check`)",
            missing.short()
        )));
    }
    merge_small_packs(&mut plan, repo.config().pack_size as u64, used, &mut gone);
    // Packs no index names: left by interrupted backups, or being written by
    // running ones (which phase 2 waits for, and rescues if they commit).
    for (id, length) in &stored {
        if !seen.contains_key(id) {
            gone.insert(*id);
            plan.unused.push(IndexedPack {
                id: *id,
                length: *length,
                blobs: Vec::new(),
            });
        }
    }
    let mut headers = PackHeaders::new(repo, &stored);
    // A pack that stays but that an index misdescribes is indexed again as
    // its own header describes it, and the lying index files are replaced.
    let mut misdescribed = HashSet::new();
    for id in verify(&mut plan, &mut headers, used, &holders, &gone) {
        if let (Some(pack), Some(header)) =
            (plan.keep.iter_mut().find(|p| p.id == id), headers.of(&id))
        {
            pack.blobs = header.entries.clone();
            misdescribed.insert(id);
        }
    }
    // Only index files naming a pack that goes (or a misdescribed one) are
    // rewritten, so a prune with nothing to do writes nothing, even on a
    // full disk.
    let affected: Vec<(IndexId, Vec<PackId>)> = packs_by_file
        .into_iter()
        .filter(|(_, packs)| {
            packs
                .iter()
                .any(|p| gone.contains(p) || misdescribed.contains(p))
        })
        .collect();
    let rewritten: HashSet<PackId> = affected.iter().flat_map(|(_, p)| p).copied().collect();
    plan.keep.retain(|p| rewritten.contains(&p.id));
    plan.index_files = affected.into_iter().map(|(id, _)| id).collect();
    Ok(plan)
}

/// Checks every pack that goes against its own header: each live blob it
/// really holds must be copied out of a pack that goes (from that pack's
/// header), or be listed in the header of a pack that stays. Whatever an
/// index claims beyond that is refused, and the blob is copied instead.
/// Returns the packs that stay whose header contradicts an index.
fn verify(
    plan: &mut Plan,
    headers: &mut PackHeaders,
    used: &HashSet<BlobId>,
    holders: &HashMap<BlobId, Vec<PackId>>,
    gone: &HashSet<PackId>,
) -> HashSet<PackId> {
    // Copies come from the packs' own headers, never from an index's offsets.
    let mut copied: HashSet<BlobId> = HashSet::new();
    let mut unconfirmed: Vec<(PackId, BlobId)> = Vec::new();
    for p in &mut plan.repack {
        let wanted: HashSet<BlobId> = p.live.iter().map(|e| e.id).collect();
        let header: Vec<PackEntry> = headers
            .of(&p.pack.id)
            .map(|h| h.entries.clone())
            .unwrap_or_default();
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
    let mut kept = |headers: &mut PackHeaders, blob: &BlobId| {
        holders.get(blob).is_some_and(|packs| {
            packs.iter().filter(|k| !gone.contains(*k)).any(|k| {
                let holds = headers.holds(k, blob);
                if !holds {
                    contradicted.insert(*k);
                }
                holds
            })
        })
    };
    for (pack, blob) in unconfirmed {
        if !kept(headers, &blob) {
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
        let Some(header) = headers.of(&pack) else {
            continue;
        };
        let needed: Vec<PackEntry> = header
            .entries
            .iter()
            .filter(|e| used.contains(&e.id) && !copied.contains(&e.id))
            .copied()
            .collect();
        for e in needed {
            if kept(headers, &e.id) {
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
    contradicted
}

/// Moves the small packs that are kept whole into the repack list, per blob
/// type, when there are enough of them: many small backups otherwise leave
/// a pack or two each (a tree pack always), and every later command pays
/// for the count.
fn merge_small_packs(
    plan: &mut Plan,
    target: u64,
    used: &HashSet<BlobId>,
    gone: &mut HashSet<PackId>,
) {
    for kind in [BlobType::Data, BlobType::Tree] {
        let is_small = |p: &IndexedPack| {
            p.length < target / SMALL_PACK_SHARE && p.blobs.first().is_some_and(|b| b.kind == kind)
        };
        let small = plan.keep.iter().filter(|p| is_small(p)).count();
        if small < SMALL_PACKS_TO_MERGE {
            continue;
        }
        let (merge, keep): (Vec<IndexedPack>, Vec<IndexedPack>) = std::mem::take(&mut plan.keep)
            .into_iter()
            .partition(|p| is_small(p));
        plan.keep = keep;
        for pack in merge {
            gone.insert(pack.id);
            let live = pack
                .blobs
                .iter()
                .filter(|b| used.contains(&b.id))
                .copied()
                .collect();
            plan.small_merged += 1;
            plan.repack.push(PackUse { pack, live });
        }
    }
}
