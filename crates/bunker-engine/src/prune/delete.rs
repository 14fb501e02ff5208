//! Phase 2: deleting what a record condemned, rescuing what is needed.

use std::collections::{HashMap, HashSet};

use bunker_backend::FileKind;
use bunker_format::condemnation::Condemnation;
use bunker_format::id::{BlobId, IndexId, PackId, RecordId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::pack::PackEntry;

use super::headers::PackHeaders;
use super::used::{indexed_blobs, reference_blobs, UsedBlobs, Walked};
use super::{removed, PruneReport, INDEX_PACKS};
use crate::index::MasterIndex;
use crate::repository::Repository;
use crate::Result;

/// Deletes what a record condemned, but for packs that a snapshot written
/// since needs. `walked`: what this run's phase 1 found, if it condemned
/// the record (see [`reference_blobs`]).
///
/// A condemned pack is rescued when its own header lists a blob a snapshot
/// needs that no other pack on storage lists in its header: what an index
/// says about other packs is never enough to delete the only copy.
pub(super) fn delete_condemned<S>(
    repo: &Repository<S>,
    id: &RecordId,
    record: &Condemnation,
    walked: Option<Walked>,
    report: &mut PruneReport,
) -> Result<()> {
    let condemned: HashSet<PackId> = record.packs.iter().copied().collect();
    let doomed: HashSet<IndexId> = record.indexes.iter().copied().collect();
    let referenced = reference_blobs(repo, walked)?;
    let (repo, stored, used) = (&referenced.repo, &referenced.stored, &referenced.used);
    let index = repo.index();
    let position: HashMap<PackId, u32> = index
        .packs()
        .iter()
        .enumerate()
        .map(|(pos, (id, _))| (*id, pos as u32))
        .collect();
    let mut headers = PackHeaders::new(repo, stored);
    let mut sorted: Vec<&PackId> = condemned
        .iter()
        .filter(|p| stored.contains_key(*p))
        .collect();
    sorted.sort();
    // Each condemned pack's own header, read once; for those whose header
    // cannot be read, what an index places in them: trusted to keep such a
    // pack, never to delete it.
    let mut unreadable = Vec::new();
    let mut rescued: HashMap<PackId, IndexedPack> = HashMap::new();
    let mut consider =
        |pack: &PackId, entries: Vec<PackEntry>, headers: &mut PackHeaders| -> Result<()> {
            let Some((blob, listed_elsewhere)) =
                lost_blob(&entries, used, index, &condemned, stored, headers)?
            else {
                return Ok(());
            };
            // An ordinary rescue (a backup that prune waited for used the pack)
            // is silent; an index placing the blob elsewhere, unconfirmed, is not.
            if listed_elsewhere {
                report.warnings.push(rescue_warning(pack, &blob));
            }
            rescued.insert(
                *pack,
                IndexedPack {
                    id: *pack,
                    length: stored[pack],
                    blobs: entries,
                },
            );
            Ok(())
        };
    for pack in sorted {
        match headers.read(pack) {
            Some(entries) => consider(pack, entries, &mut headers)?,
            None => unreadable.extend(position.get(pack).map(|p| (pack, *p))),
        }
    }
    let mut indexed = indexed_blobs(used, &unreadable.iter().map(|(_, p)| *p).collect())?;
    for (pack, pos) in unreadable {
        if let Some(entries) = indexed.remove(&pos) {
            consider(pack, entries, &mut headers)?;
        }
    }
    let deleting: HashSet<PackId> = condemned
        .iter()
        .filter(|p| !rescued.contains_key(*p))
        .copied()
        .collect();
    // Every index file naming a pack about to go is replaced: the record's
    // own files, and also files written since by the sessions it waited for,
    // which may name packs condemned while still unindexed. Left alone, such
    // an entry could shadow another copy of the same blob.
    let names_deleted = |packs: &[u32]| packs.iter().any(|p| deleting.contains(&index.pack(*p).0));
    let (replaced, surviving): (Vec<_>, Vec<_>) = index
        .files()
        .iter()
        .partition(|(f, packs)| doomed.contains(f) || names_deleted(packs));
    let surviving: HashSet<u32> = surviving.iter().flat_map(|(_, p)| p).copied().collect();
    // What the replaced files named that stays (rescued packs, and packs the
    // record never condemned that are on storage) and no surviving file
    // names; a rescued pack as its own header describes it.
    let rewrite: HashSet<u32> = replaced
        .iter()
        .flat_map(|(_, p)| p)
        .copied()
        .filter(|p| {
            let (id, _) = index.pack(*p);
            // A pack missing from storage holds nothing to index.
            !deleting.contains(&id)
                && !rescued.contains_key(&id)
                && !surviving.contains(p)
                && stored.contains_key(&id)
        })
        .collect();
    let mut blobs = indexed_blobs(used, &rewrite)?;
    let mut rewrite: Vec<IndexedPack> = rewrite
        .into_iter()
        .map(|p| {
            let (id, length) = index.pack(p);
            IndexedPack {
                id,
                length,
                blobs: blobs.remove(&p).unwrap_or_default(),
            }
        })
        .collect();
    let unlisted = |p: &PackId| position.get(p).is_none_or(|pos| !surviving.contains(pos));
    rewrite.extend(
        rescued
            .iter()
            .filter(|(p, _)| unlisted(p))
            .map(|(_, entry)| entry.clone()),
    );
    rewrite.sort_by_key(|p| p.id);
    report.packs_rescued += rescued.len() as u64;
    if report.dry_run {
        report.packs_deleted += deleting.len() as u64;
        report.indexes_deleted += replaced.len() as u64;
        return Ok(());
    }
    let superseded: Vec<IndexId> = replaced.iter().map(|(f, _)| *f).collect();
    for chunk in rewrite.chunks(INDEX_PACKS) {
        repo.write_index(&IndexFile {
            supersedes: superseded.clone(),
            packs: chunk.to_vec(),
        })?;
    }
    // Index files first: a crash midway then leaves unindexed packs (which
    // the record still condemns), never an index naming a deleted pack.
    // Storage that refuses a delete (retention, or credentials without
    // delete) means "not yet": what stays is kept for a later prune, with
    // the record that condemns it.
    let refused_before = report.deletes_refused;
    for index in &superseded {
        if removed(repo, FileKind::Index, &index.to_hex(), report)? {
            report.indexes_deleted += 1;
        }
    }
    if report.deletes_refused > refused_before {
        return Ok(());
    }
    let mut deleting: Vec<&PackId> = deleting.iter().collect();
    deleting.sort();
    for pack in deleting {
        if let Some(size) = stored.get(pack) {
            if !removed(repo, FileKind::Pack, &pack.to_hex(), report)? {
                continue;
            }
            if repo.config().parity {
                removed(repo, FileKind::Parity, &pack.to_hex(), report)?;
            }
            report.packs_deleted += 1;
            report.bytes_deleted += size;
        }
    }
    // The record stays while something it condemns does.
    if report.deletes_refused == refused_before {
        removed(repo, FileKind::Condemned, &id.to_hex(), report)?;
    }
    Ok(())
}

fn rescue_warning(pack: &PackId, blob: &BlobId) -> String {
    format!(
        "kept condemned pack {}: an index places its blob {} in another pack, whose header does not list it (a forged or replayed index?)",
        pack.short(),
        blob.short()
    )
}

/// The first blob of `entries` that a snapshot needs and that no pack that
/// stays holds by its own header, and whether an index placed it in one.
fn lost_blob(
    entries: &[PackEntry],
    used: &UsedBlobs,
    index: &MasterIndex,
    condemned: &HashSet<PackId>,
    stored: &HashMap<PackId, u64>,
    headers: &mut PackHeaders,
) -> Result<Option<(BlobId, bool)>> {
    for e in entries {
        if !used.contains(&e.id)? {
            continue;
        }
        let mut listed_elsewhere = false;
        let mut confirmed = false;
        for l in index.locations(&e.id)? {
            let (other, _) = index.pack(l.pack);
            if condemned.contains(&other) || !stored.contains_key(&other) {
                continue;
            }
            listed_elsewhere = true;
            if headers.holds(&other, &e.id) {
                confirmed = true;
                break;
            }
        }
        if !confirmed {
            return Ok(Some((e.id, listed_elsewhere)));
        }
    }
    Ok(None)
}
