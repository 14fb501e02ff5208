//! Check: is the repository whole, and (optionally) is every stored byte intact?

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bunker_backend::FileKind;
use bunker_format::blob::{decode_blob, BlobType};
use bunker_format::id::{storage_name, BlobId, PackId};
use bunker_format::pack::{parse_header, parse_trailer, TRAILER_LEN};
use bunker_format::tree::NodeKind;

use crate::progress::Progress;
use crate::repository::{Indexed, Open, Repository};
use crate::Result;

/// What to check.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Read and verify every pack.
    pub read_data: bool,
    /// Read and verify this percentage of packs, chosen at random.
    pub read_data_percent: Option<f64>,
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
}

/// Checks the repository; never stops at the first problem.
pub fn check(
    repo: Repository<Open>,
    options: CheckOptions,
    progress: Arc<dyn Progress>,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (repo, index_errors) = repo.load_index_lenient()?;
    report
        .errors
        .extend(index_errors.iter().map(|e| e.to_string()));
    check_packs_exist(&repo, &mut report)?;
    check_snapshots(&repo, &mut report)?;
    if options.read_data || options.read_data_percent.is_some() {
        read_packs(&repo, options.read_data_percent, &mut report, &*progress);
    }
    Ok(report)
}

fn check_packs_exist(repo: &Repository<Indexed>, report: &mut CheckReport) -> Result<()> {
    let stored: HashMap<String, u64> = repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .map(|f| (f.name, f.size))
        .collect();
    let indexed = repo.index().packs();
    report.packs = indexed.len();
    let mut indexed_names = HashSet::new();
    for (id, length) in indexed {
        let name = id.to_hex();
        match stored.get(&name) {
            None => report.errors.push(format!(
                "pack {name}: missing from storage but listed in the index"
            )),
            Some(size) if size != length => report.errors.push(format!(
                "pack {name}: size {size} on storage, {length} in the index (truncated or damaged)"
            )),
            _ => {}
        }
        indexed_names.insert(name);
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

fn check_snapshots(repo: &Repository<Indexed>, report: &mut CheckReport) -> Result<()> {
    let mut seen_trees: HashSet<BlobId> = HashSet::new();
    let mut missing_data: HashSet<BlobId> = HashSet::new();
    for f in repo.backend().list(FileKind::Snapshot)? {
        report.snapshots += 1;
        let snapshot = match f
            .name
            .parse()
            .map_err(|e| crate::EngineError::corrupt(&f.name, e))
            .and_then(|id| repo.read_snapshot(&id))
        {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(format!("snapshot {}: {e}", f.name));
                continue;
            }
        };
        let mut stack = vec![snapshot.tree];
        while let Some(tree_id) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            let tree = match repo.load_tree(&tree_id) {
                Ok(t) => t,
                Err(e) => {
                    report
                        .errors
                        .push(format!("tree {tree_id} (snapshot {}): {e}", &f.name[..8]));
                    continue;
                }
            };
            report.trees += 1;
            for node in &tree.nodes {
                match node.kind {
                    NodeKind::Dir => stack.extend(node.subtree),
                    NodeKind::File => {
                        for id in &node.content {
                            if !repo.index().contains(id) && missing_data.insert(*id) {
                                report.errors.push(format!(
                                    "data blob {id} (file {:?}, snapshot {}): not in any index",
                                    node.name_lossy(),
                                    &f.name[..8]
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn read_packs(
    repo: &Repository<Indexed>,
    percent: Option<f64>,
    report: &mut CheckReport,
    progress: &dyn Progress,
) {
    let mut packs: Vec<(PackId, u64)> = repo.index().packs().to_vec();
    if let Some(p) = percent {
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
    for (id, loc) in repo.index().blobs() {
        by_pack
            .entry(repo.index().pack(loc.pack).0)
            .or_default()
            .push((*id, loc.kind, loc.offset));
    }
    // Packs are verified on all cores; each worker holds one pack in memory.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = crossbeam_channel::bounded::<(PackId, u64)>(workers);
    let (errors, blobs, read) = (
        std::sync::Mutex::new(Vec::new()),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (rx, by_pack, errors, blobs, read) = (rx.clone(), &by_pack, &errors, &blobs, &read);
            scope.spawn(move || {
                for (pack, length) in rx {
                    let indexed = by_pack.get(&pack).map(Vec::as_slice).unwrap_or(&[]);
                    match verify_pack(repo, &pack.to_hex(), indexed) {
                        Ok(n) => {
                            blobs.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().expect("lock").extend(e),
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
    errors.sort();
    report.errors.extend(errors);
    report.blobs_read += blobs.into_inner();
    report.packs_read += read.into_inner() as usize;
}

/// Reads one pack whole and verifies its name, header and every blob.
fn verify_pack(
    repo: &Repository<Indexed>,
    name: &str,
    indexed: &[(BlobId, BlobType, u32)],
) -> Result<u64, Vec<String>> {
    let bytes = repo
        .backend()
        .read(FileKind::Pack, name)
        .map_err(|e| vec![format!("pack {name}: {e}")])?;
    let mut errors = Vec::new();
    if storage_name(&bytes) != name {
        errors.push(format!(
            "pack {name}: content does not match its name (damaged)"
        ));
    }
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
        Err(e) => errors.push(format!("pack {name}: header: {e}")),
        Ok(entries) => {
            let in_header: HashSet<BlobId> = entries.iter().map(|e| e.id).collect();
            for (id, kind, _) in indexed {
                if !in_header.contains(id) {
                    errors.push(format!(
                        "pack {name}: {} blob {id} is indexed here but not in the pack header",
                        kind.name()
                    ));
                }
            }
            for e in entries {
                let stored = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                match decode_blob(repo.keys(), e.kind, &e.id, e.raw_length, stored) {
                    Ok(_) => count += 1,
                    Err(err) => errors.push(format!(
                        "pack {name}: {} blob {}: {err}",
                        e.kind.name(),
                        e.id
                    )),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(count)
    } else {
        Err(errors)
    }
}
