//! Phase 2: deleting what a record condemned, rescuing what is needed.

use std::collections::{HashMap, HashSet};

use bunker_backend::FileKind;
use bunker_format::condemnation::Condemnation;
use bunker_format::id::{BlobId, IndexId, PackId, RecordId};
use bunker_format::index::{IndexFile, IndexedPack};

use super::headers::PackHeaders;
use super::{read_index_files, reference_blobs, removed, PruneReport, INDEX_PACKS};
use crate::repository::{Indexed, Repository};
use crate::Result;

/// Deletes what a record condemned, but for packs that a snapshot written
/// since needs. `repo` must have every index file loaded.
///
/// A condemned pack is rescued when its own header lists a blob a snapshot
/// needs that no other pack on storage lists in its header: what an index
/// says about other packs is never enough to delete the only copy.
pub(super) fn delete_condemned(
    repo: &Repository<Indexed>,
    id: &RecordId,
    record: &Condemnation,
    used: &mut HashSet<BlobId>,
    report: &mut PruneReport,
) -> Result<()> {
    let condemned: HashSet<PackId> = record.packs.iter().copied().collect();
    let doomed: HashSet<IndexId> = record.indexes.iter().copied().collect();
    reference_blobs(repo, used)?;
    let used = &*used;
    let files = read_index_files(repo)?;
    let stored = repo.stored_packs()?;
    let mut headers = PackHeaders::new(repo, &stored);
    // Packs that stay, by the live blobs an index places in them.
    let mut holders: HashMap<BlobId, Vec<PackId>> = HashMap::new();
    for pack in files.iter().flat_map(|(_, f)| &f.packs) {
        if condemned.contains(&pack.id) || !stored.contains_key(&pack.id) {
            continue;
        }
        for b in pack.blobs.iter().filter(|b| used.contains(&b.id)) {
            holders.entry(b.id).or_default().push(pack.id);
        }
    }
    let indexed: HashMap<PackId, &IndexedPack> = files
        .iter()
        .flat_map(|(_, f)| &f.packs)
        .map(|p| (p.id, p))
        .collect();
    let mut rescued: HashMap<PackId, IndexedPack> = HashMap::new();
    let mut sorted: Vec<&PackId> = condemned
        .iter()
        .filter(|p| stored.contains_key(*p))
        .collect();
    sorted.sort();
    for pack in sorted {
        let needed: Vec<BlobId> = match headers.of(pack) {
            Some(h) => h
                .entries
                .iter()
                .filter(|e| used.contains(&e.id))
                .map(|e| e.id)
                .collect(),
            // Unreadable: trust the index only to keep it, never to delete it.
            None => indexed
                .get(pack)
                .map(|p| {
                    p.blobs
                        .iter()
                        .filter(|b| used.contains(&b.id))
                        .map(|b| b.id)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let lost = needed.iter().find(|blob| {
            !holders
                .get(*blob)
                .is_some_and(|ks| ks.iter().any(|k| headers.holds(k, blob)))
        });
        let Some(blob) = lost else { continue };
        let entry = match (indexed.get(pack), headers.of(pack)) {
            (_, Some(h)) => IndexedPack {
                id: *pack,
                length: stored[pack],
                blobs: h.entries.clone(),
            },
            (Some(p), None) => (*p).clone(),
            (None, None) => continue,
        };
        // An ordinary rescue (a backup that prune waited for used the pack)
        // is silent; an index placing the blob elsewhere, unconfirmed, is not.
        if holders.contains_key(blob) {
            report.warnings.push(format!(
                "kept condemned pack {}: an index places its blob {} in another pack, whose header does not list it (a forged or replayed index?)",
                pack.short(),
                blob.short()
            ));
        }
        rescued.insert(*pack, entry);
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
    let replaced: Vec<&(IndexId, IndexFile)> = files
        .iter()
        .filter(|(f, file)| {
            doomed.contains(f) || file.packs.iter().any(|p| deleting.contains(&p.id))
        })
        .collect();
    let surviving: HashSet<PackId> = files
        .iter()
        .filter(|(f, file)| {
            !doomed.contains(f) && !file.packs.iter().any(|p| deleting.contains(&p.id))
        })
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.id))
        .collect();
    // What the replaced files named that stays (rescued packs, and packs the
    // record never condemned that are on storage) and no surviving file
    // names; a rescued pack
    // as its own header describes it.
    let mut rewrite: HashMap<PackId, IndexedPack> = replaced
        .iter()
        .flat_map(|(_, f)| &f.packs)
        .filter(|p| {
            // A pack missing from storage holds nothing to index.
            !deleting.contains(&p.id) && !surviving.contains(&p.id) && stored.contains_key(&p.id)
        })
        .map(|p| (p.id, p.clone()))
        .collect();
    for (pack, entry) in &rescued {
        if !surviving.contains(pack) {
            rewrite.insert(*pack, entry.clone());
        }
    }
    let rewrite: Vec<IndexedPack> = rewrite.into_values().collect();
    report.packs_rescued += rescued.len() as u64;
    if report.dry_run {
        report.packs_deleted += deleting.len() as u64;
        report.indexes_deleted += replaced.len() as u64;
        return Ok(());
    }
    for chunk in rewrite.chunks(INDEX_PACKS) {
        repo.write_index(&IndexFile {
            supersedes: replaced.iter().map(|(f, _)| *f).collect(),
            packs: chunk.to_vec(),
        })?;
    }
    // Index files first: a crash midway then leaves unindexed packs (which
    // the record still condemns), never an index naming a deleted pack.
    // Storage that refuses a delete (retention, or credentials without
    // delete) means "not yet": what stays is kept for a later prune, with
    // the record that condemns it.
    let refused_before = report.deletes_refused;
    for (index, _) in &replaced {
        if removed(repo, FileKind::Index, &index.to_hex(), report)? {
            report.indexes_deleted += 1;
        }
    }
    if report.deletes_refused > refused_before {
        return Ok(());
    }
    for pack in &deleting {
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
