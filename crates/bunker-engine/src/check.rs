//! Check: is the repository whole, and (optionally) is every stored byte intact?

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bunker_backend::FileKind;
use bunker_format::blob::{decode_blob, BlobType};
use bunker_format::id::{BlobId, PackId, SnapshotId};
use bunker_format::pack::{parse_header, parse_trailer, TRAILER_LEN};
use bunker_format::tree::NodeKind;

use crate::progress::Progress;
use crate::repository::{Indexed, Open, PackRead, Repository};
use crate::Result;

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
    /// Damage: each line names an object.
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
}

/// One damaged object and what it affects.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The object: `pack …`, `tree …`, `data blob …`.
    pub object: String,
    /// What is wrong with it.
    pub problem: String,
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

/// Collects damaged objects, and which blob belongs to which.
#[derive(Default)]
struct DamageMap {
    damage: Vec<Damage>,
    by_object: HashMap<String, usize>,
    blobs: HashMap<BlobId, usize>,
}

impl DamageMap {
    fn object(&mut self, object: String, problem: String) -> usize {
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
            affected: Vec::new(),
        });
        self.by_object.insert(object, self.damage.len() - 1);
        self.damage.len() - 1
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
    repo: Repository<Open>,
    options: CheckOptions,
    progress: Arc<dyn Progress>,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut damage = DamageMap::default();
    let (repo, index_errors) = repo.load_index_lenient()?;
    report
        .errors
        .extend(index_errors.iter().map(|e| e.to_string()));
    // Packs first, so a pack that `repair` rebuilds from parity is on
    // storage again when the structure is checked.
    if options.read_data || options.read_data_subset.is_some() || options.repair {
        read_packs(&repo, &options, &mut report, &mut damage, &*progress)?;
    }
    check_packs_exist(&repo, &mut report, &mut damage)?;
    check_snapshots(&repo, &mut report, &mut damage)?;
    report.errors.extend(
        damage
            .damage
            .iter()
            .map(|d| format!("{}: {}", d.object, d.problem)),
    );
    report.damage = damage.damage;
    report.damaged_blobs = damage.blobs.into_keys().collect();
    Ok(report)
}

fn check_packs_exist(
    repo: &Repository<Indexed>,
    report: &mut CheckReport,
    damage: &mut DamageMap,
) -> Result<()> {
    let stored: HashMap<String, u64> = repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .map(|f| (f.name, f.size))
        .collect();
    let indexed = repo.index().packs();
    report.packs = indexed.len();
    let mut indexed_names = HashSet::new();
    let mut bad_packs: HashMap<u32, usize> = HashMap::new();
    for (pos, (id, length)) in indexed.iter().enumerate() {
        let name = id.to_hex();
        let problem = match stored.get(&name) {
            None => Some("missing from storage but listed in the index".to_string()),
            Some(size) if size != length => Some(format!(
                "size {size} on storage, {length} in the index (truncated or damaged)"
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            bad_packs.insert(pos as u32, damage.object(format!("pack {name}"), problem));
        }
        indexed_names.insert(name);
    }
    if !bad_packs.is_empty() {
        for blob in repo.index().blobs() {
            let (id, loc) = blob?;
            if let Some(&object) = bad_packs.get(&loc.pack) {
                damage.blob(id, object);
            }
        }
    }
    let condemned: HashSet<String> = repo
        .condemnations()?
        .into_iter()
        .flat_map(|(_, r)| r.packs)
        .map(|p| p.to_hex())
        .collect();
    for name in stored.keys().filter(|n| !indexed_names.contains(*n)) {
        report.warnings.push(match condemned.contains(name) {
            true => format!("pack {name}: condemned by prune, to be deleted by the next prune"),
            false => format!(
                "pack {name}: not in any index (left by an interrupted or running backup; harmless)"
            ),
        });
    }
    Ok(())
}

/// Walks every snapshot, attributing each damaged blob to the files that
/// need it. Trees found whole are remembered, so each is read once unless
/// it holds damage (then once per snapshot, to name paths in each).
fn check_snapshots(
    repo: &Repository<Indexed>,
    report: &mut CheckReport,
    damage: &mut DamageMap,
) -> Result<()> {
    let mut walker = SnapshotWalker {
        repo,
        damage,
        clean: HashSet::new(),
        decoded: HashSet::new(),
    };
    let mut sources: BTreeMap<(String, Vec<String>), SourceStatus> = BTreeMap::new();
    let mut snapshots = Vec::new();
    for f in repo.backend().list(FileKind::Snapshot)? {
        report.snapshots += 1;
        match f
            .name
            .parse::<SnapshotId>()
            .map_err(|e| crate::EngineError::corrupt(&f.name, e))
            .and_then(|id| Ok((id, repo.read_snapshot(&id)?)))
        {
            Ok(s) => snapshots.push(s),
            Err(e) => {
                let object = walker
                    .damage
                    .object(format!("snapshot {}", f.name), e.to_string());
                walker.damage.damage[object].problem = format!(
                    "{} (its source and time are unknown: they are in the damaged file)",
                    e
                );
            }
        }
    }
    snapshots.sort_by_key(|(_, s)| s.time_ns);
    for (id, snapshot) in &snapshots {
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
    report.sources = sources
        .into_values()
        .filter(|s| !s.damaged.is_empty())
        .collect();
    Ok(())
}

struct SnapshotWalker<'a> {
    repo: &'a Repository<Indexed>,
    damage: &'a mut DamageMap,
    /// Trees with no damage anywhere below.
    clean: HashSet<BlobId>,
    /// Trees decoded at least once.
    decoded: HashSet<BlobId>,
}

impl SnapshotWalker<'_> {
    /// Returns true if anything below `tree` is damaged.
    fn walk(&mut self, snapshot: &SnapshotId, tree: &BlobId, path: &str) -> Result<bool> {
        if self.clean.contains(tree) {
            return Ok(false);
        }
        let loaded = match self.damage.blobs.get(tree) {
            Some(&object) => Err(object),
            None => self.repo.load_tree(tree).map_err(|e| {
                self.damage
                    .object(format!("tree {tree}"), format!("unreadable: {e}"))
            }),
        };
        let here = if path.is_empty() { "/" } else { path };
        let tree_data = match loaded {
            Ok(t) => t,
            Err(object) => {
                self.damage.blob(*tree, object);
                self.damage
                    .hit(object, *snapshot, format!("{here} (whole directory)"));
                return Ok(true);
            }
        };
        self.decoded.insert(*tree);
        let mut damaged = false;
        for node in &tree_data.nodes {
            let child = format!("{path}/{}", node.name_lossy());
            match node.kind {
                NodeKind::Dir => {
                    if let Some(sub) = node.subtree {
                        damaged |= self.walk(snapshot, &sub, &child)?;
                    }
                }
                NodeKind::File => {
                    let mut hit = HashSet::new();
                    for id in &node.content {
                        let object = match self.damage.blobs.get(id) {
                            Some(&o) => o,
                            None if self.repo.index().contains(id)? => continue,
                            None => {
                                let o = self
                                    .damage
                                    .object(format!("data blob {id}"), "not in any index".into());
                                self.damage.blob(*id, o);
                                o
                            }
                        };
                        if hit.insert(object) {
                            self.damage.hit(object, *snapshot, child.clone());
                        }
                    }
                    damaged |= !hit.is_empty();
                }
                _ => {}
            }
        }
        if !damaged {
            self.clean.insert(*tree);
        }
        Ok(damaged)
    }
}

fn read_packs(
    repo: &Repository<Indexed>,
    options: &CheckOptions,
    report: &mut CheckReport,
    damage: &mut DamageMap,
    progress: &dyn Progress,
) -> Result<()> {
    let mut packs: Vec<(PackId, u64)> = repo.index().packs().to_vec();
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
    for blob in repo.index().blobs() {
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
                    let result = match repo.read_pack(&pack) {
                        Err(e) => Err(PackDamage {
                            problems: vec![e.to_string()],
                            blobs: indexed.iter().map(|(id, _, _)| *id).collect(),
                        }),
                        Ok(PackRead::Intact(bytes)) => verify_pack(repo, &bytes, indexed),
                        Ok(PackRead::Damaged(bytes, why)) => {
                            damaged(verify_pack(repo, &bytes, indexed), why)
                        }
                        Ok(PackRead::Healed { bytes, shards }) => {
                            let verified = verify_pack(repo, &bytes, indexed);
                            let name = pack.to_hex();
                            match options.repair {
                                false => damaged(verified, format!(
                                    "damaged in {shards} shard(s); reads are repaired from parity, and `bunker check --repair` rewrites it"
                                )),
                                true => match repo.backend().write(FileKind::Pack, &name, &bytes) {
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
                                },
                            }
                        }
                    };
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
    for (pack, bad) in errors {
        let object = damage.object(format!("pack {pack}"), bad.problems.join("; "));
        for id in bad.blobs {
            damage.blob(id, object);
        }
    }
    report.blobs_read += blobs.into_inner();
    report.repaired = repaired.into_inner().expect("lock");
    report.repaired.sort();
    report.packs_read += read.into_inner() as usize;
    Ok(())
}

/// What is wrong with one pack, and which of its indexed blobs are lost.
struct PackDamage {
    problems: Vec<String>,
    blobs: Vec<BlobId>,
}

/// A pack's verification with one more problem in front: always an error.
fn damaged(verified: Result<u64, PackDamage>, problem: String) -> Result<u64, PackDamage> {
    match verified {
        Ok(_) => Err(PackDamage {
            problems: vec![problem],
            blobs: Vec::new(),
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
    };
    let mut errors: Vec<String> = Vec::new();
    let mut lost = Vec::new();
    let header = (|| {
        if bytes.len() < TRAILER_LEN {
            return Err(bunker_format::FormatError::Malformed(
                "pack shorter than its trailer",
            ));
        }
        let hlen = parse_trailer(&bytes[bytes.len() - TRAILER_LEN..])? as usize;
        let start = bytes.len().checked_sub(TRAILER_LEN + hlen).ok_or(
            bunker_format::FormatError::Malformed("pack header longer than the pack"),
        )?;
        parse_header(
            repo.keys(),
            &bytes[start..bytes.len() - TRAILER_LEN],
            bytes.len() as u64,
        )
    })();
    let mut count = 0;
    match header {
        Err(e) => {
            let mut d = all_lost(format!("header: {e}"));
            d.problems.splice(0..0, errors);
            return Err(d);
        }
        Ok(entries) => {
            let in_header: HashSet<BlobId> = entries.iter().map(|e| e.id).collect();
            for (id, kind, _) in indexed {
                if !in_header.contains(id) {
                    errors.push(format!(
                        "{} blob {id} is indexed here but not in the pack header",
                        kind.name()
                    ));
                    lost.push(*id);
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
        }
    }
    if errors.is_empty() {
        Ok(count)
    } else {
        Err(PackDamage {
            problems: errors,
            blobs: lost,
        })
    }
}
