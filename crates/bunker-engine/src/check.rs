//! Check: is the repository whole, and (optionally) is every stored byte intact?
//!
//! Every verdict must be true while backups and prunes run beside the check:
//! condemnation records are read first, then snapshots, then index files,
//! then the pack listing. A backup writes its packs before its index and its
//! index before its snapshot, so everything a listed snapshot needs is in
//! what is read after it; packs a prune deletes meanwhile were condemned in
//! a record read before. Each finding says what to run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bunker_backend::FileKind;
use bunker_format::blob::{decode_blob, BlobType};
use bunker_format::id::{BlobId, PackId, SnapshotId};
use bunker_format::pack::{parse_pack, PackEntry};
use bunker_format::tree::{NodeKind, Tree};

use crate::lock::{self, LockStore};
use crate::progress::Progress;
use crate::repository::{Indexed, Open, PackRead, Repository, SnapshotEntry};
use crate::{EngineError, Result};

/// What to check.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Read and verify every pack.
    pub read_data: bool,
    /// Read and verify only this subset of the packs.
    pub read_data_subset: Option<Subset>,
    /// Rewrite packs that parity can rebuild.
    pub repair: bool,
}

/// Which packs `--read-data-subset` reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// This percentage, chosen at random each time, so repeated checks cover
    /// the whole repository over time.
    Percent(f64),
    /// Part `n` of `of` (1-based): the packs whose id's first byte modulo
    /// `of` is `n - 1`, so running 1/t … t/t reads every pack once.
    Part {
        /// Which part.
        n: u32,
        /// Of how many.
        of: u32,
    },
}

/// What check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Damage: each line names an object, what is wrong and what to run.
    pub errors: Vec<String>,
    /// Harmless findings (e.g. packs an interrupted backup left).
    pub warnings: Vec<String>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Trees decoded.
    pub trees: usize,
    /// Packs indexed.
    pub packs: usize,
    /// Packs read and verified.
    pub packs_read: usize,
    /// Blobs decrypted and verified.
    pub blobs_read: u64,
    /// Damaged packs rebuilt from parity and written back (with `repair`).
    pub repaired: Vec<String>,
    /// Each damaged object with the snapshots and files it affects.
    pub damage: Vec<Damage>,
    /// For each source (host and paths) with a damaged snapshot: its newest intact one.
    pub sources: Vec<SourceStatus>,
    /// Every blob found damaged or missing (what `repair snapshots` leaves out).
    pub damaged_blobs: HashSet<BlobId>,
    /// Snapshot files that cannot be read at all.
    pub unreadable_snapshots: Vec<SnapshotId>,
}

/// One damaged object and what it affects.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The object: `pack …`, `tree …`, `data blob …`, `index file …`.
    pub object: String,
    /// What is wrong with it.
    pub problem: String,
    /// What to run about it.
    pub remedy: String,
    /// Snapshots that need it, each with the files and directories lost.
    pub affected: Vec<Affected>,
}

/// A snapshot hit by a damaged object.
#[derive(Debug, Clone)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Paths of the damaged files (and unreadable directories) in it.
    pub paths: Vec<String>,
}

/// A source's state after damage.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    /// Host of the snapshots.
    pub host: String,
    /// Backed-up paths.
    pub paths: Vec<String>,
    /// Snapshots of this source that are damaged.
    pub damaged: Vec<SnapshotId>,
    /// The newest snapshot of this source that is whole, if any.
    pub newest_intact: Option<SnapshotId>,
}

/// What to run when data that snapshots need is lost.
const LOST_DATA: &str = "`bunker repair snapshots` writes copies of the affected snapshots without what was lost; the next backup stores again what its sources still hold";
/// What to run when index files are damaged or missing.
const REINDEX: &str = "`bunker repair index` rebuilds the index from the packs";

/// Collects damaged objects, and which blob belongs to which.
#[derive(Default)]
struct DamageMap {
    damage: Vec<Damage>,
    /// Reported only if a snapshot needs them (a lost pack no snapshot
    /// uses is a warning, not damage).
    needed_only: HashSet<usize>,
    by_object: HashMap<String, usize>,
    blobs: HashMap<BlobId, usize>,
}

impl DamageMap {
    fn object(&mut self, object: String, problem: String, remedy: &str) -> usize {
        if let Some(&i) = self.by_object.get(&object) {
            let d = &mut self.damage[i];
            if !d.problem.contains(&problem) {
                d.problem = format!("{}; {problem}", d.problem);
            }
            return i;
        }
        self.damage.push(Damage {
            object: object.clone(),
            problem,
            remedy: remedy.to_string(),
            affected: Vec::new(),
        });
        self.by_object.insert(object, self.damage.len() - 1);
        self.damage.len() - 1
    }

    /// A pack missing from storage (or of another length): damage only if
    /// a snapshot needs what it held, unless it is already known damaged.
    fn missing_pack(&mut self, pack: &PackId, problem: String) -> usize {
        let object = format!("pack {pack}");
        let new = !self.by_object.contains_key(&object);
        let i = self.object(object, problem, LOST_DATA);
        if new {
            self.needed_only.insert(i);
        }
        i
    }

    fn blob(&mut self, id: BlobId, object: usize) {
        self.blobs.entry(id).or_insert(object);
    }

    fn hit(&mut self, object: usize, snapshot: SnapshotId, path: String) {
        let affected = &mut self.damage[object].affected;
        match affected.iter_mut().find(|a| a.snapshot == snapshot) {
            Some(a) => a.paths.push(path),
            None => affected.push(Affected {
                snapshot,
                paths: vec![path],
            }),
        }
    }
}

/// Checks the repository; never stops at the first problem.
pub fn check(
    mut repo: Repository<Open>,
    options: CheckOptions,
    progress: Arc<dyn Progress>,
) -> Result<CheckReport> {
    // The files themselves, never the cache: damage at rest must show.
    repo.read_from_storage_only();
    // Rewriting packs is maintenance: one at a time (docs/FORMAT.md §10).
    let _lock = match options.repair {
        true => Some(lock::exclusive(&repo, "check --repair")?),
        false => None,
    };
    let mut report = CheckReport::default();
    let mut damage = DamageMap::default();

    let records = repo.condemnation_list()?;
    for (id, e) in records.unreadable {
        damage.object(
            format!("condemnation record {id}"),
            e.to_string(),
            "`bunker prune` removes it and judges its packs again",
        );
    }
    let condemned: HashSet<PackId> = records
        .records
        .into_iter()
        .flat_map(|(_, r)| r.packs)
        .collect();
    // The files themselves, not the cache: damage at rest must show.
    let snapshots = repo.snapshot_list_from_storage()?;
    report.snapshots = snapshots.entries.len() + snapshots.unreadable.len();
    for u in &snapshots.unreadable {
        report.unreadable_snapshots.push(u.id);
        damage.object(
            format!("snapshot {}", u.id),
            format!(
                "{} (its source and time are unknown: they are in the damaged file)",
                u.error
            ),
            &format!("`bunker forget {}` removes it", u.id.short()),
        );
    }
    for m in &snapshots.missing {
        let (problem, remedy) = crate::repository::missing_snapshot(m);
        damage.object(format!("snapshot {}", m.id), problem, &remedy);
    }
    for id in &snapshots.replayed {
        report.warnings.push(format!(
            "snapshot {id} was forgotten, yet storage holds it again (a forget interrupted, or storage brought the file back); it is ignored, and `bunker prune` deletes it"
        ));
    }
    for (id, e) in repo.withdrawn()?.unreadable {
        damage.object(
            format!("tombstone {id}"),
            e.to_string(),
            "snapshots and keys it withdrew would count again if storage brought them back; put it back from a copy of the repository, or delete it to accept that",
        );
    }
    crate::failpoint::pause("check-listed-snapshots");
    let load = repo.load_index_report(&condemned)?;
    let repo = load.repo;
    for e in load.errors {
        match e {
            EngineError::Corrupt { object, source } => {
                damage.object(object, source.to_string(), REINDEX)
            }
            other => return Err(other),
        };
    }
    // Packs first, so a pack that `repair` rebuilds from parity is on
    // storage again when the structure is checked.
    let mut stored = load.stored;
    if options.read_data || options.read_data_subset.is_some() || options.repair {
        read_packs(
            &repo,
            &stored,
            &options,
            &mut report,
            &mut damage,
            &*progress,
        )?;
        if !report.repaired.is_empty() {
            stored = repo.stored_packs()?;
        }
    }
    check_packs_exist(&repo, &stored, &condemned, &mut report, &mut damage)?;
    let unindexed = unindexed_packs(&repo, &stored, &condemned, &mut report);
    check_snapshots(
        &repo,
        &snapshots.entries,
        &unindexed,
        &mut report,
        &mut damage,
    )?;
    report_staged(&repo, &mut report)?;

    let DamageMap {
        damage: found,
        needed_only,
        blobs,
        ..
    } = damage;
    for (i, d) in found.into_iter().enumerate() {
        if needed_only.contains(&i) && d.affected.is_empty() {
            report.warnings.push(format!(
                "{}: {}, but no snapshot needs what it held; the next `bunker prune` drops it",
                d.object, d.problem
            ));
            continue;
        }
        report
            .errors
            .push(format!("{}: {}; {}", d.object, d.problem, d.remedy));
        report.damage.push(d);
    }
    report.damaged_blobs = blobs.into_keys().collect();
    Ok(report)
}

/// Indexed packs that storage does not hold at their indexed length.
fn check_packs_exist(
    repo: &Repository<Indexed>,
    stored: &HashMap<PackId, u64>,
    condemned: &HashSet<PackId>,
    report: &mut CheckReport,
    damage: &mut DamageMap,
) -> Result<()> {
    let indexed = repo.index().packs();
    report.packs = indexed.len();
    let mut bad_packs: HashMap<u32, usize> = HashMap::new();
    for (pos, (id, length)) in indexed.iter().enumerate() {
        let problem = match stored.get(id) {
            // Deleted by a prune's second phase after this check began.
            None if condemned.contains(id) => continue,
            None => "missing from storage but listed in the index".to_string(),
            Some(size) if size != length => {
                format!("size {size} on storage, {length} in the index (truncated or damaged)")
            }
            _ => continue,
        };
        bad_packs.insert(pos as u32, damage.missing_pack(id, problem));
    }
    if !bad_packs.is_empty() {
        for blob in repo.index().blobs() {
            let (id, loc) = blob?;
            if let Some(&object) = bad_packs.get(&loc.pack) {
                damage.blob(id, object);
            }
        }
    }
    Ok(())
}

/// Packs on storage that no index names, with the blobs their headers list.
/// A running backup's packs are among them until it writes its index.
fn unindexed_packs(
    repo: &Repository<Indexed>,
    stored: &HashMap<PackId, u64>,
    condemned: &HashSet<PackId>,
    report: &mut CheckReport,
) -> HashMap<BlobId, (PackId, u64, PackEntry)> {
    let indexed: HashSet<PackId> = repo.index().packs().iter().map(|(p, _)| *p).collect();
    let mut held = HashMap::new();
    let mut names: Vec<(&PackId, &u64)> = stored
        .iter()
        .filter(|(p, _)| !indexed.contains(p))
        .collect();
    names.sort();
    for (pack, &size) in names {
        if condemned.contains(pack) {
            report.warnings.push(format!(
                "pack {pack}: condemned by prune, to be deleted by the next prune"
            ));
            continue;
        }
        match repo.read_pack_header(pack, size) {
            Ok(entries) => {
                for e in entries {
                    held.entry(e.id).or_insert((*pack, size, e));
                }
            }
            Err(e) => report.warnings.push(format!(
                "pack {pack}: not in any index, and its header is unreadable ({e}); the next `bunker prune` removes it"
            )),
        }
    }
    held
}

/// Staged files left by processes that died.
fn report_staged(repo: &Repository<Indexed>, report: &mut CheckReport) -> Result<()> {
    let staged = repo.backend().list_staged()?;
    if staged.is_empty() {
        return Ok(());
    }
    let locks: Vec<_> = LockStore::new(repo)
        .list()?
        .into_iter()
        .filter_map(|j| j.lock)
        .collect();
    for file in staged {
        if crate::staging::is_abandoned(&file, &locks) {
            report.warnings.push(format!(
                "tmp/{} ({} bytes): left by a process that stopped before finishing it; the next `bunker prune` removes it",
                file.name, file.size
            ));
        }
    }
    Ok(())
}

/// Walks every snapshot, attributing each damaged blob to the files that
/// need it. Trees found whole are remembered, so each is read once unless
/// it holds damage (then once per snapshot, to name paths in each).
fn check_snapshots(
    repo: &Repository<Indexed>,
    snapshots: &[SnapshotEntry],
    unindexed: &HashMap<BlobId, (PackId, u64, PackEntry)>,
    report: &mut CheckReport,
    damage: &mut DamageMap,
) -> Result<()> {
    let mut walker = SnapshotWalker {
        repo,
        damage,
        unindexed,
        unindexed_hits: HashSet::new(),
        clean: HashSet::new(),
        decoded: HashSet::new(),
    };
    let mut sources: BTreeMap<(String, Vec<String>), SourceStatus> = BTreeMap::new();
    for entry in snapshots {
        let (id, snapshot) = (&entry.id, &entry.snapshot);
        let damaged = walker.walk(id, &snapshot.tree, "")?;
        let mut paths = snapshot.paths.clone();
        paths.sort();
        let status = sources
            .entry((snapshot.hostname.clone(), paths.clone()))
            .or_insert_with(|| SourceStatus {
                host: snapshot.hostname.clone(),
                paths,
                damaged: Vec::new(),
                newest_intact: None,
            });
        match damaged {
            true => status.damaged.push(*id),
            false => status.newest_intact = Some(*id),
        }
    }
    report.trees = walker.decoded.len();
    let hit = walker.unindexed_hits;
    let mut harmless: Vec<&PackId> = unindexed
        .values()
        .map(|(p, _, _)| p)
        .filter(|p| !hit.contains(*p))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    harmless.sort();
    for pack in harmless {
        report.warnings.push(format!(
            "pack {pack}: not in any index (left by an interrupted or running backup; harmless, the next `bunker prune` removes it)"
        ));
    }
    report.sources = sources
        .into_values()
        .filter(|s| !s.damaged.is_empty())
        .collect();
    Ok(())
}

/// What opening a directory's tree gave the walk.
enum Opened {
    /// Its entries, to walk.
    Walk(WalkFrame),
    /// Nothing to walk: whether anything below is damaged.
    Done(bool),
}

/// A directory being walked.
struct WalkFrame {
    /// Its tree, remembered as clean if nothing below is damaged (none for
    /// a tree read from an unindexed pack).
    tree: Option<BlobId>,
    path: String,
    nodes: std::vec::IntoIter<bunker_format::tree::Node>,
    damaged: bool,
}

struct SnapshotWalker<'a> {
    repo: &'a Repository<Indexed>,
    damage: &'a mut DamageMap,
    /// Blobs held by packs no index names.
    unindexed: &'a HashMap<BlobId, (PackId, u64, PackEntry)>,
    /// Unindexed packs holding something a snapshot needs.
    unindexed_hits: HashSet<PackId>,
    /// Trees with no damage anywhere below.
    clean: HashSet<BlobId>,
    /// Trees decoded at least once.
    decoded: HashSet<BlobId>,
}

impl SnapshotWalker<'_> {
    /// The damage object for a blob that no index names.
    fn unindexed_blob(&mut self, kind: BlobType, id: &BlobId) -> usize {
        let object = match self.unindexed.get(id).map(|(p, _, _)| p) {
            Some(pack) => {
                self.unindexed_hits.insert(*pack);
                self.damage.object(
                    format!("pack {pack}"),
                    "not in any index, but holds data that snapshots need".into(),
                    REINDEX,
                )
            }
            None => self.damage.object(
                format!("{} blob {id}", kind.name()),
                "not in any index, nor in any pack on storage".into(),
                LOST_DATA,
            ),
        };
        self.damage.blob(*id, object);
        object
    }

    /// Returns true if anything below `root` is damaged. The walk keeps its
    /// own stack, so a tree of any depth is safe.
    fn walk(&mut self, snapshot: &SnapshotId, root: &BlobId, path: &str) -> Result<bool> {
        let mut stack = match self.open(snapshot, root, path) {
            Opened::Walk(frame) => vec![frame],
            Opened::Done(damaged) => return Ok(damaged),
        };
        loop {
            let top = stack
                .last_mut()
                .expect("the loop returns when the stack empties");
            let Some(node) = top.nodes.next() else {
                let done = stack.pop().expect("not empty");
                if let (false, Some(tree)) = (done.damaged, done.tree) {
                    self.clean.insert(tree);
                }
                match stack.last_mut() {
                    Some(parent) => parent.damaged |= done.damaged,
                    None => return Ok(done.damaged),
                }
                continue;
            };
            let child = format!("{}/{}", top.path, node.name_lossy());
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => match self.open(snapshot, &sub, &child) {
                    Opened::Walk(frame) => stack.push(frame),
                    Opened::Done(damaged) => top.damaged |= damaged,
                },
                (NodeKind::File, _) => top.damaged |= self.file(snapshot, &node.content, &child)?,
                _ => {}
            }
        }
    }

    /// Loads a directory's tree for the walk. A damaged tree hits its whole
    /// directory; one that only an unindexed pack holds is still walked, so
    /// that every such pack below it is named too.
    fn open(&mut self, snapshot: &SnapshotId, tree: &BlobId, path: &str) -> Opened {
        if self.clean.contains(tree) {
            return Opened::Done(false);
        }
        // The directory's root and (format 4) its pieces: the first one
        // already known damaged, or missing, or unreadable is the damage.
        let mut read = Vec::new();
        let mut known: Option<usize> = None;
        let loaded = self.repo.load_tree_reading(tree, &mut |piece| {
            read.push(*piece);
            match self.damage.blobs.get(piece) {
                Some(&object) => {
                    known = Some(object);
                    Err(EngineError::Invalid("damaged".into()))
                }
                None => self.repo.read_blob(BlobType::Tree, piece),
            }
        });
        let loaded = match (loaded, known) {
            (Ok(t), _) => Ok(t),
            (Err(_), Some(object)) => Err(object),
            (Err(EngineError::BlobMissing { .. }), None) => {
                let missing = *read.last().expect("a missing piece was read");
                Err(self.unindexed_blob(BlobType::Tree, &missing))
            }
            (Err(e), None) => Err(self.damage.object(
                format!("tree {tree}"),
                format!("unreadable: {e}"),
                LOST_DATA,
            )),
        };
        match loaded {
            Ok(t) => {
                self.decoded.extend(read);
                Opened::Walk(WalkFrame {
                    tree: Some(*tree),
                    path: path.to_string(),
                    nodes: t.nodes.into_iter(),
                    damaged: false,
                })
            }
            Err(object) => {
                let here = if path.is_empty() { "/" } else { path };
                self.damage.blob(*tree, object);
                self.damage
                    .hit(object, *snapshot, format!("{here} (whole directory)"));
                match self.read_unindexed_tree(tree) {
                    Some(t) => Opened::Walk(WalkFrame {
                        tree: None,
                        path: path.to_string(),
                        nodes: t.nodes.into_iter(),
                        damaged: true,
                    }),
                    None => Opened::Done(true),
                }
            }
        }
    }

    /// Attributes a file's damaged blobs to it; true if it has any.
    fn file(&mut self, snapshot: &SnapshotId, content: &[BlobId], path: &str) -> Result<bool> {
        let mut hit = HashSet::new();
        for id in content {
            let object = match self.damage.blobs.get(id) {
                Some(&o) => o,
                None if self.repo.index().get(id)?.is_some() => continue,
                None => self.unindexed_blob(BlobType::Data, id),
            };
            if hit.insert(object) {
                self.damage.hit(object, *snapshot, path.to_string());
            }
        }
        Ok(!hit.is_empty())
    }

    /// A directory whose root or pieces are read straight from packs that
    /// no index names, where the index does not have them.
    fn read_unindexed_tree(&self, id: &BlobId) -> Option<Tree> {
        self.repo
            .load_tree_reading(id, &mut |piece| match self.unindexed.get(piece) {
                Some((pack, length, entry)) => self.repo.read_blob_in(pack, *length, entry),
                None => self.repo.read_blob(BlobType::Tree, piece),
            })
            .ok()
    }
}

fn read_packs(
    repo: &Repository<Indexed>,
    stored: &HashMap<PackId, u64>,
    options: &CheckOptions,
    report: &mut CheckReport,
    damage: &mut DamageMap,
    progress: &dyn Progress,
) -> Result<()> {
    // Packs missing from storage, or of another length, are reported by
    // the structure check, unless parity may rebuild them.
    let parity = repo.config().parity;
    let mut packs: Vec<(PackId, u64)> = (0..repo.index().packs().len() as u32)
        .filter(|&p| parity || !repo.index().is_absent(p))
        .map(|p| repo.index().pack(p))
        .collect();
    if let (Some(Subset::Part { n, of }), false) = (options.read_data_subset, options.repair) {
        packs.retain(|(id, _)| id.0[0] as u32 % of == n - 1);
    }
    if let (Some(Subset::Percent(p)), false) = (options.read_data_subset, options.repair) {
        let keep = ((packs.len() as f64 * p / 100.0).ceil() as usize).min(packs.len());
        // Random choice, so repeated subset checks cover the whole repository over time.
        let mut order: Vec<(u64, (PackId, u64))> = packs
            .into_iter()
            .map(|p| {
                let mut r = [0u8; 8];
                bunker_format::crypto::fill_random(&mut r);
                (u64::from_le_bytes(r), p)
            })
            .collect();
        order.sort_by_key(|(r, _)| *r);
        packs = order.into_iter().take(keep).map(|(_, p)| p).collect();
    }
    progress.set_total(packs.len() as u64, packs.iter().map(|p| p.1).sum());
    let mut by_pack: HashMap<PackId, Vec<(BlobId, BlobType, u32)>> = HashMap::new();
    for blob in repo.index().all_locations() {
        let (id, loc) = blob?;
        by_pack
            .entry(repo.index().pack(loc.pack).0)
            .or_default()
            .push((id, loc.kind, loc.offset));
    }
    // Packs are verified on all cores; each worker holds one pack in memory.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = crossbeam_channel::bounded::<(PackId, u64)>(workers);
    let (errors, blobs, read, repaired) = (
        std::sync::Mutex::new(Vec::new()),
        AtomicU64::new(0),
        AtomicU64::new(0),
        std::sync::Mutex::new(Vec::new()),
    );
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (rx, by_pack, errors, blobs, read, repaired) =
                (rx.clone(), &by_pack, &errors, &blobs, &read, &repaired);
            scope.spawn(move || {
                for (pack, length) in rx {
                    let indexed = by_pack.get(&pack).map(Vec::as_slice).unwrap_or(&[]);
                    let result =
                        verify_stored_pack(repo, &pack, length, indexed, options.repair, repaired);
                    match result {
                        Ok(n) => {
                            blobs.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().expect("lock").push((pack, e)),
                    }
                    read.fetch_add(1, Ordering::Relaxed);
                    progress.advance(1, length);
                }
            });
        }
        for p in packs {
            if tx.send(p).is_err() {
                break;
            }
        }
        drop(tx);
    });
    let mut errors = errors.into_inner().expect("lock");
    errors.sort_by_key(|(p, _)| *p);
    // Where each blob was found wanting: damaged, or not where an index says.
    let wanting: HashSet<(PackId, BlobId)> = errors
        .iter()
        .flat_map(|(p, d)| d.blobs.iter().chain(&d.misplaced).map(|b| (*p, *b)))
        .collect();
    for (pack, bad) in errors {
        // Missing from storage and not rebuilt: the structure check reports
        // it, as damage only if a snapshot needs what it held.
        if !stored.contains_key(&pack) && !bad.healable {
            continue;
        }
        // A blob an index misplaces is lost only if no other copy serves it
        // (one in a pack that verified, or was not read this time).
        let only_misplaced = bad.blobs.is_empty() && !bad.misplaced.is_empty();
        let mut lost = bad.blobs;
        for id in bad.misplaced {
            let elsewhere = repo.index().locations(&id)?.iter().any(|l| {
                let other = repo.index().pack(l.pack).0;
                other != pack && !wanting.contains(&(other, id))
            });
            if !elsewhere {
                lost.push(id);
            }
        }
        let remedy = match (bad.healable, repo.config().parity) {
            _ if only_misplaced && lost.is_empty() => REINDEX.to_string(),
            (true, _) => "`bunker check --repair` rewrites it from parity".to_string(),
            (false, true) => "parity cannot rebuild it; ".to_string() + LOST_DATA,
            (false, false) => LOST_DATA.to_string(),
        };
        let object = damage.object(format!("pack {pack}"), bad.problems.join("; "), &remedy);
        for id in lost {
            damage.blob(id, object);
        }
    }
    report.blobs_read += blobs.into_inner();
    report.repaired = repaired.into_inner().expect("lock");
    report.repaired.sort();
    report.packs_read += read.into_inner() as usize;
    Ok(())
}

/// Reads one pack and verifies it; with `repair`, writes back a pack that
/// parity rebuilt.
fn verify_stored_pack(
    repo: &Repository<Indexed>,
    pack: &PackId,
    length: u64,
    indexed: &[(BlobId, BlobType, u32)],
    repair: bool,
    repaired: &std::sync::Mutex<Vec<String>>,
) -> Result<u64, PackDamage> {
    match repo.read_pack(pack, length) {
        Err(e) => Err(PackDamage {
            problems: vec![e.to_string()],
            blobs: indexed.iter().map(|(id, _, _)| *id).collect(),
            ..Default::default()
        }),
        Ok(PackRead::Intact(bytes)) => verify_pack(repo, &bytes, indexed),
        Ok(PackRead::Damaged(bytes, why)) => damaged(verify_pack(repo, &bytes, indexed), why),
        Ok(PackRead::Healed { bytes, shards }) => {
            let verified = verify_pack(repo, &bytes, indexed);
            let name = pack.to_hex();
            if !repair {
                let mut d = damaged(
                    verified,
                    format!("damaged in {shards} shard(s), which parity rebuilds on every read"),
                );
                if let Err(d) = &mut d {
                    d.healable = d.blobs.is_empty();
                }
                return d;
            }
            match repo.backend().write(FileKind::Pack, &name, &bytes) {
                Ok(()) => {
                    repaired.lock().expect("lock").push(format!(
                        "pack {name}: rebuilt {shards} damaged shard(s) from parity and rewrote it"
                    ));
                    verified
                }
                Err(e) => damaged(
                    verified,
                    format!("rebuilt from parity, but cannot be rewritten: {e}"),
                ),
            }
        }
    }
}

/// What is wrong with one pack, and which of its indexed blobs are lost.
#[derive(Default)]
struct PackDamage {
    problems: Vec<String>,
    blobs: Vec<BlobId>,
    /// Blobs an index places in the pack that its header does not list.
    misplaced: Vec<BlobId>,
    /// Parity rebuilds it whole: `check --repair` fixes it.
    healable: bool,
}

/// A pack's verification with one more problem in front: always an error.
fn damaged(verified: Result<u64, PackDamage>, problem: String) -> Result<u64, PackDamage> {
    match verified {
        Ok(_) => Err(PackDamage {
            problems: vec![problem],
            ..Default::default()
        }),
        Err(mut d) => {
            d.problems.insert(0, problem);
            Err(d)
        }
    }
}

/// Verifies a pack's header and every blob, from its bytes.
fn verify_pack(
    repo: &Repository<Indexed>,
    bytes: &[u8],
    indexed: &[(BlobId, BlobType, u32)],
) -> Result<u64, PackDamage> {
    let all_lost = |problem: String| PackDamage {
        problems: vec![problem],
        blobs: indexed.iter().map(|(id, _, _)| *id).collect(),
        ..Default::default()
    };
    let header = parse_pack(repo.keys(), bytes);
    let entries = header.map_err(|e| all_lost(format!("header: {e}")))?;
    let mut errors: Vec<String> = Vec::new();
    let mut lost = Vec::new();
    let mut misplaced = Vec::new();
    let mut count = 0;
    let in_header: HashSet<BlobId> = entries.iter().map(|e| e.id).collect();
    for (id, kind, _) in indexed {
        if !in_header.contains(id) {
            errors.push(format!(
                "{} blob {id} is indexed here but not in the pack header (a damaged or forged index)",
                kind.name()
            ));
            misplaced.push(*id);
        }
    }
    for e in entries {
        let stored = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        match decode_blob(repo.keys(), e.kind, &e.id, e.raw_length, stored) {
            Ok(_) => count += 1,
            Err(err) => {
                errors.push(format!("{} blob {}: {err}", e.kind.name(), e.id.short()));
                lost.push(e.id);
            }
        }
    }
    if errors.is_empty() {
        Ok(count)
    } else {
        Err(PackDamage {
            problems: errors,
            blobs: lost,
            misplaced,
            healable: false,
        })
    }
}
