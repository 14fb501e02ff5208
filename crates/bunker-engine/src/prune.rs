//! Prune: reclaim the space of data no snapshot references, safely while
//! backups run.
//!
//! Deletion takes two phases (specified in `docs/FORMAT.md`, "Prune"):
//!
//! 1. **Condemn.** Copy the live blobs of mostly-unused packs into new packs,
//!    write an index of every pack that stays, then write a condemnation
//!    record naming the packs and index files to delete, and finally list into
//!    it the backup sessions alive at that moment.
//! 2. **Delete**, once every listed session has ended (this run if none was
//!    alive, else a later prune): re-read every snapshot, rescue any condemned
//!    pack that a snapshot written meanwhile needs, delete the rest.
//!
//! A backup registers its session before it loads the index and leaves
//! condemned packs out of that index, so it either was listed (and is waited
//! for) or never saw the condemned packs. No clock margin is involved.

use std::collections::{HashMap, HashSet};

use bunker_backend::FileKind;
use bunker_format::blob::{decode_blob, BlobType, EncodedBlob};
use bunker_format::condemnation::Condemnation;
use bunker_format::crypto::fill_random;
use bunker_format::id::{BlobId, IndexId, LockId, PackId, RecordId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::pack::PackEntry;
use bunker_format::tree::NodeKind;

use crate::backup::PackSink;
use crate::failpoint;
use crate::identity::now_ns;
use crate::lock::{self, LockStore};
use crate::repository::{Indexed, Open, PackRead, Repository};
use crate::{EngineError, Result};

/// How to prune.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// Repack a pack when at least this fraction of its bytes is unused (0..=1).
    pub repack_threshold: f64,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            repack_threshold: 0.25,
            dry_run: false,
        }
    }
}

/// What prune did (or, in a dry run, would do).
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    /// Snapshots whose data was kept.
    pub snapshots: usize,
    /// Packs deleted (or to delete), and their bytes.
    pub packs_deleted: u64,
    /// Bytes freed by deleting packs.
    pub bytes_deleted: u64,
    /// Index files deleted (their live content was rewritten first).
    pub indexes_deleted: u64,
    /// Packs whose live blobs were copied into new packs.
    pub packs_repacked: u64,
    /// Blobs copied by repacking.
    pub blobs_repacked: u64,
    /// Bytes copied by repacking.
    pub bytes_repacked: u64,
    /// Condemned packs a snapshot written meanwhile needed, kept.
    pub packs_rescued: u64,
    /// Packs condemned but not yet deleted: backups that started earlier still run.
    pub packs_waiting: u64,
    /// Bytes of those packs.
    pub bytes_waiting: u64,
    /// Backup sessions prune is waiting for.
    pub sessions_waiting: usize,
    /// Generation of the record written by this run, if any.
    pub generation: Option<u64>,
    /// Small packs merged into larger ones (counted in `packs_repacked` too).
    pub small_packs_merged: u64,
    /// Staged files left by processes that died, removed (or to remove).
    pub staged_removed: u64,
    /// Bytes of those files.
    pub staged_bytes: u64,
    /// Problems that did not stop the prune.
    pub warnings: Vec<String>,
    /// True for a dry run.
    pub dry_run: bool,
}

/// Prunes the repository; see the module docs.
pub fn prune(repo: Repository<Open>, options: &PruneOptions) -> Result<PruneReport> {
    if !(0.0..=1.0).contains(&options.repack_threshold) {
        return Err(EngineError::Invalid(
            "the repack threshold must be between 0 and 100 %".into(),
        ));
    }
    let _lock = match options.dry_run {
        true => None,
        false => Some(lock::exclusive(&repo, "prune")?),
    };
    let mut report = PruneReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    failpoint::pause("prune-locked");
    let sessions = LockStore::new(&repo);
    remove_abandoned_staged(&repo, &sessions, &mut report)?;
    remove_unreadable_records(&repo, &mut report)?;
    let repo = repo.load_index()?;

    // Phase 2 of earlier prunes.
    let live: HashSet<LockId> = sessions
        .live_sessions(!options.dry_run)?
        .into_iter()
        .collect();
    // Blobs referenced by the snapshots seen so far in this run: each later
    // walk adds only what snapshots written meanwhile bring.
    let mut used: HashSet<BlobId> = HashSet::new();
    let mut waiting = HashSet::new();
    for (id, mut record) in repo.condemnations()? {
        let listed = record
            .sessions
            .get_or_insert_with(|| live.iter().copied().collect());
        let alive: Vec<LockId> = listed
            .iter()
            .filter(|s| live.contains(*s))
            .copied()
            .collect();
        if !options.dry_run {
            repo.write_condemnation(&id, &record)?;
        }
        if alive.is_empty() {
            delete_condemned(&repo, &id, &record, &mut used, &mut report)?;
        } else {
            waiting.extend(alive);
            report.packs_waiting += record.packs.len() as u64;
            report.bytes_waiting += pack_sizes(&repo, &record.packs)?;
        }
    }
    report.sessions_waiting = waiting.len();
    if !waiting.is_empty() {
        // Condemning more before the earlier record is settled would let
        // the two records' index rewrites overlap; one step at a time.
        return Ok(report);
    }

    // Phase 1.
    let plan = plan(&repo, options.repack_threshold, &mut used)?;
    report.snapshots = plan.snapshots;
    report.small_packs_merged = plan.small_merged;
    report.packs_repacked = plan.repack.len() as u64;
    report.blobs_repacked = plan.repack.iter().map(|p| p.live.len() as u64).sum();
    report.bytes_repacked = plan
        .repack
        .iter()
        .flat_map(|p| &p.live)
        .map(|e| e.length as u64)
        .sum();
    let condemned: Vec<PackId> = plan
        .unused
        .iter()
        .chain(plan.repack.iter().map(|p| &p.pack))
        .map(|p| p.id)
        .collect();
    if condemned.is_empty() && plan.index_files.is_empty() {
        return Ok(report);
    }
    if options.dry_run {
        report.packs_deleted += condemned.len() as u64;
        report.bytes_deleted += plan
            .unused
            .iter()
            .chain(plan.repack.iter().map(|p| &p.pack))
            .map(|p| p.length)
            .sum::<u64>();
        report.indexes_deleted += plan.index_files.len() as u64;
        return Ok(report);
    }
    repack(&repo, &plan.repack)?;
    let mut kept = IndexFile {
        supersedes: plan.index_files.clone(),
        packs: plan.keep,
    };
    // Keep each rewritten index file a modest size.
    while !kept.packs.is_empty() {
        let rest = kept.packs.split_off(kept.packs.len().min(INDEX_PACKS));
        repo.write_index(&kept)?;
        kept = IndexFile {
            supersedes: Vec::new(),
            packs: rest,
        };
    }
    let generation = repo
        .condemnations()?
        .iter()
        .map(|(_, r)| r.generation)
        .max()
        .unwrap_or(0)
        + 1;
    let mut raw = [0u8; 32];
    fill_random(&mut raw);
    let id = RecordId(raw);
    let mut record = Condemnation {
        generation,
        created_ns: now_ns(),
        packs: condemned,
        indexes: plan.index_files,
        sessions: None,
    };
    repo.write_condemnation(&id, &record)?;
    report.generation = Some(generation);
    failpoint::pause("prune-after-condemn");
    // Listed only now that the record is visible: a session that starts
    // later reads the record and leaves the condemned packs alone.
    let alive = sessions.live_sessions(true)?;
    record.sessions = Some(alive.clone());
    repo.write_condemnation(&id, &record)?;
    if alive.is_empty() {
        delete_condemned(&repo, &id, &record, &mut used, &mut report)?;
    } else {
        report.sessions_waiting = alive.len();
        report.packs_waiting += record.packs.len() as u64;
        report.bytes_waiting += pack_sizes(&repo, &record.packs)?;
    }
    Ok(report)
}

/// Packs per rewritten index file.
const INDEX_PACKS: usize = 4096;

/// A pack as the index describes it.
struct PackUse {
    pack: IndexedPack,
    /// Its blobs that a snapshot references (each blob counted in one pack only).
    live: Vec<PackEntry>,
}

struct Plan {
    snapshots: usize,
    /// How many of `repack` are small packs merged together.
    small_merged: u64,
    index_files: Vec<IndexId>,
    keep: Vec<IndexedPack>,
    unused: Vec<IndexedPack>,
    repack: Vec<PackUse>,
}

fn plan(repo: &Repository<Indexed>, threshold: f64, used: &mut HashSet<BlobId>) -> Result<Plan> {
    // Snapshots before index files: a snapshot is written after its index,
    // so every snapshot seen has its blobs in the files read next.
    let snapshots = reference_blobs(repo, used)?;
    let used = &*used;
    let files = read_index_files(repo)?;
    let stored: HashMap<PackId, u64> = repo.stored_packs()?;
    let mut counted: HashSet<BlobId> = HashSet::with_capacity(used.len());
    let mut seen: HashSet<PackId> = HashSet::new();
    let mut plan = Plan {
        snapshots,
        small_merged: 0,
        index_files: Vec::new(),
        keep: Vec::new(),
        unused: Vec::new(),
        repack: Vec::new(),
    };
    let mut packs_by_file: Vec<(IndexId, Vec<PackId>)> = Vec::new();
    let mut gone: HashSet<PackId> = HashSet::new();
    for (file_id, file) in files {
        packs_by_file.push((file_id, file.packs.iter().map(|p| p.id).collect()));
        for pack in file.packs {
            if !seen.insert(pack.id) {
                continue;
            }
            let live: Vec<PackEntry> = pack
                .blobs
                .iter()
                .filter(|b| used.contains(&b.id) && counted.insert(b.id))
                .copied()
                .collect();
            if !stored.contains_key(&pack.id) {
                if let Some(b) = live.first() {
                    return Err(EngineError::Invalid(format!(
                        "refusing to prune: pack {} holding blob {} that snapshots need is missing from storage (run `bunker check`)",
                        pack.id.short(),
                        b.id.short()
                    )));
                }
                gone.insert(pack.id);
                continue;
            }
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
    }
    merge_small_packs(&mut plan, repo.config().pack_size as u64, used, &mut gone);
    // Only index files naming a pack that goes are rewritten (so a prune
    // with nothing to do writes nothing, even on a full disk).
    let affected: Vec<(IndexId, Vec<PackId>)> = packs_by_file
        .into_iter()
        .filter(|(_, packs)| packs.iter().any(|p| gone.contains(p)))
        .collect();
    let rewritten: HashSet<PackId> = affected.iter().flat_map(|(_, p)| p).copied().collect();
    plan.keep.retain(|p| rewritten.contains(&p.id));
    plan.index_files = affected.into_iter().map(|(id, _)| id).collect();
    if let Some(missing) = used.iter().find(|b| !counted.contains(*b)) {
        return Err(EngineError::Invalid(format!(
            "refusing to prune: blob {} that snapshots need is in no index (run `bunker check`)",
            missing.short()
        )));
    }
    // Packs no index names: left by interrupted backups, or being written by
    // running ones (which phase 2 waits for, and rescues if they commit).
    for (id, length) in stored {
        if !seen.contains(&id) {
            plan.unused.push(IndexedPack {
                id,
                length,
                blobs: Vec::new(),
            });
        }
    }
    Ok(plan)
}

/// A pack smaller than this share of the target size is small.
const SMALL_PACK_SHARE: u64 = 4;
/// Small packs of one blob type are merged once there are this many.
const SMALL_PACKS_TO_MERGE: usize = 8;

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

/// Removes staged files (a local repository's `tmp/`) whose writers died.
/// Runs under the exclusive lock; a file whose writer may be alive stays.
fn remove_abandoned_staged(
    repo: &Repository<Open>,
    sessions: &LockStore,
    report: &mut PruneReport,
) -> Result<()> {
    let staged = repo.backend().list_staged()?;
    if staged.is_empty() {
        return Ok(());
    }
    let locks: Vec<_> = sessions
        .list()?
        .into_iter()
        .filter_map(|(_, l)| l)
        .collect();
    for file in staged {
        if !crate::staging::is_abandoned(&file, &locks) {
            continue;
        }
        if !report.dry_run {
            repo.backend().remove_staged(&file.name)?;
        }
        report.staged_removed += 1;
        report.staged_bytes += file.size;
    }
    Ok(())
}

/// Removes condemnation records that cannot be read (under the exclusive
/// lock). What such a record condemned is judged again by this prune: its
/// packs are still indexed, and a backup that might use them holds a session
/// that the new record waits for.
fn remove_unreadable_records(repo: &Repository<Open>, report: &mut PruneReport) -> Result<()> {
    for (id, e) in repo.condemnation_list()?.unreadable {
        if !report.dry_run {
            repo.backend().remove(FileKind::Condemned, &id.to_hex())?;
        }
        report
            .warnings
            .push(format!("{e}: removed; its packs are judged again"));
    }
    Ok(())
}

/// Copies the live blobs of `packs` into new packs, verifying each one first,
/// and indexes the new packs.
fn repack(repo: &Repository<Indexed>, packs: &[PackUse]) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let repo = std::sync::Arc::new(repo.reload_index()?);
    let sink = PackSink::new(repo.clone(), false);
    // A blob held by two packs that both go is copied once.
    let mut copied: HashSet<BlobId> = HashSet::new();
    for p in packs {
        let bytes = match repo.read_pack(&p.pack.id)? {
            PackRead::Intact(b) | PackRead::Healed { bytes: b, .. } => b,
            PackRead::Damaged(_, why) => {
                return Err(EngineError::Invalid(format!(
                    "refusing to prune: pack {} is damaged ({why}; run `bunker check --read-data`)",
                    p.pack.id.short()
                )))
            }
        };
        for e in p.live.iter().filter(|e| copied.insert(e.id)) {
            let stored = bytes
                .get(e.offset as usize..(e.offset as usize + e.length as usize))
                .ok_or_else(|| truncated(&p.pack.id))?;
            decode_blob(repo.keys(), e.kind, &e.id, e.raw_length, stored).map_err(|err| {
                EngineError::corrupt(
                    format!("blob {} in pack {}", e.id.short(), p.pack.id.short()),
                    err,
                )
            })?;
            sink.add(EncodedBlob {
                id: e.id,
                kind: e.kind,
                raw_length: e.raw_length,
                bytes: stored.to_vec(),
            })?;
        }
    }
    sink.finish()?;
    Ok(())
}

fn truncated(pack: &PackId) -> EngineError {
    EngineError::Invalid(format!(
        "refusing to prune: pack {} is shorter than its index says (run `bunker check`)",
        pack.short()
    ))
}

/// Phase 2: deletes what a record condemned, but for packs that a snapshot
/// written since needs. `repo` must have every index file loaded.
fn delete_condemned(
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
    let available: HashSet<BlobId> = files
        .iter()
        .flat_map(|(_, f)| &f.packs)
        .filter(|p| !condemned.contains(&p.id))
        .flat_map(|p| p.blobs.iter().map(|b| b.id))
        .collect();
    let rescued: HashSet<PackId> = files
        .iter()
        .flat_map(|(_, f)| &f.packs)
        .filter(|p| condemned.contains(&p.id))
        .filter(|p| {
            p.blobs
                .iter()
                .any(|b| used.contains(&b.id) && !available.contains(&b.id))
        })
        .map(|p| p.id)
        .collect();
    let deleting: HashSet<PackId> = condemned.difference(&rescued).copied().collect();
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
    // record never condemned) and no surviving file names.
    let rewrite: Vec<IndexedPack> = replaced
        .iter()
        .flat_map(|(_, f)| &f.packs)
        .filter(|p| !deleting.contains(&p.id) && !surviving.contains(&p.id))
        .map(|p| (p.id, p.clone()))
        .collect::<HashMap<PackId, IndexedPack>>()
        .into_values()
        .collect();
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
    for (index, _) in &replaced {
        repo.backend().remove(FileKind::Index, &index.to_hex())?;
        report.indexes_deleted += 1;
    }
    let sizes = repo.stored_packs()?;
    for pack in &deleting {
        if let Some(size) = sizes.get(pack) {
            repo.backend().remove(FileKind::Pack, &pack.to_hex())?;
            if repo.config().parity {
                repo.backend().remove(FileKind::Parity, &pack.to_hex())?;
            }
            report.packs_deleted += 1;
            report.bytes_deleted += size;
        }
    }
    repo.backend().remove(FileKind::Condemned, &id.to_hex())?;
    Ok(())
}

/// Every index file; an unreadable one stops the prune, since what it
/// described would look unused.
fn read_index_files(repo: &Repository<Indexed>) -> Result<Vec<(IndexId, IndexFile)>> {
    repo.read_index_files()?
        .collect::<Result<Vec<_>>>()
        .map_err(|e| {
            EngineError::Invalid(format!(
                "refusing to prune: {e} (run `bunker repair index` first)"
            ))
        })
}

fn pack_sizes(repo: &Repository<Indexed>, packs: &[PackId]) -> Result<u64> {
    let sizes = repo.stored_packs()?;
    Ok(packs.iter().filter_map(|p| sizes.get(p)).sum())
}

/// Adds to `used` every blob (tree and data) that the snapshots present now
/// reference, and returns how many snapshots there are. Trees already in
/// `used` were walked before, with everything below them, and are skipped;
/// blobs of snapshots forgotten since stay in `used`, which only keeps more.
/// Any unreadable snapshot or tree stops the prune: its blobs would look unused.
fn reference_blobs(repo: &Repository<Indexed>, used: &mut HashSet<BlobId>) -> Result<usize> {
    let list = repo.snapshot_list()?;
    if let Some(u) = list.unreadable.first() {
        return Err(EngineError::Invalid(format!(
            "refusing to prune: snapshot {} is unreadable ({}), and what it references would look unused; `bunker forget {}` removes it",
            u.id.short(),
            u.error,
            u.id.short()
        )));
    }
    let snapshots = list.entries;
    let mut stack: Vec<BlobId> = snapshots
        .iter()
        .map(|s| s.snapshot.tree)
        .filter(|t| !used.contains(t))
        .collect();
    if stack.is_empty() {
        return Ok(snapshots.len());
    }
    // Backups may have committed since `repo` loaded its index: load it
    // again now that the snapshot list is fixed.
    let repo = repo.reload_index()?;
    while let Some(tree_id) = stack.pop() {
        if !used.insert(tree_id) {
            continue;
        }
        let tree = repo.load_tree(&tree_id).map_err(|e| {
            EngineError::Invalid(format!(
                "refusing to prune: {e} (run `bunker check` to see which snapshots are damaged)"
            ))
        })?;
        for node in &tree.nodes {
            match node.kind {
                NodeKind::Dir => stack.extend(node.subtree),
                NodeKind::File => used.extend(node.content.iter().copied()),
                _ => {}
            }
        }
    }
    Ok(snapshots.len())
}
