//! `bunker drill PLAN`: a restore drill. Restores the plan's newest
//! snapshots (its files into a scratch folder, each database dump into a
//! scratch database), verifies every restored byte against the snapshot
//! and the databases' recorded row counts, and measures the recovery time
//! (RTO): the wall time from the start to a verified, usable copy.
//!
//! With a sample below 100%, a stratified sample of the files is restored
//! (by size class and top-level directory, at least one file per stratum)
//! and the file restore time is extrapolated linearly in bytes.
//!
//! The plan's mirrors are compared with the snapshots their last refresh
//! recorded ([`mirror_check`]), each with a record of its own.

mod mirror_check;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bunker_engine::database::{verify_database, VerifyOptions};
use bunker_engine::format::id::SnapshotId;
use bunker_engine::format::run_record::{Phase, RunKind, RunRecord, RunStatus};
use bunker_engine::format::tree::NodeKind;
use bunker_engine::identity::now_ns;
use bunker_engine::restore::{restore, RestoreOptions};
use bunker_engine::source::database::{Connection, DatabaseUrl};
use bunker_engine::source::PatternSet;
use bunker_engine::walk_tree::visit_tree;
use bunker_engine::{Indexed, Repository, SnapshotEntry};

pub use mirror_check::MirrorCheck;

use crate::notify::Event;
use crate::records::plan_snapshots;
use crate::{DrillConfig, Operations, OpsError};

/// How a drill goes.
#[derive(Clone, Debug, Default)]
pub struct DrillOptions {
    /// Drill the snapshots as of this time and record the drill at it
    /// (Unix nanoseconds): for tests and imported history.
    pub time_ns: Option<i64>,
}

/// What a drill found.
#[derive(Debug)]
pub struct DrillOutcome {
    /// The record written (or that could not be written: see `problems`).
    pub record: RunRecord,
    /// The restore was complete and verified.
    pub verified: bool,
    /// The measured (or extrapolated) recovery time, seconds.
    pub rto_seconds: f64,
    /// The plan's target, seconds.
    pub rto_target_seconds: Option<f64>,
    /// How the RTO was obtained.
    pub method: String,
    /// Each snapshot drilled: its id and what it holds.
    pub drilled: Vec<(SnapshotId, String)>,
    /// What went wrong, one line each.
    pub problems: Vec<String>,
    /// Each of the plan's mirrors, compared with its snapshot.
    pub mirrors: Vec<MirrorCheck>,
}

impl DrillOutcome {
    /// Verified and within the plan's RTO, and every mirror holds what its
    /// snapshot holds.
    pub fn passed(&self) -> bool {
        self.snapshot_passed() && self.mirrors.iter().all(MirrorCheck::passed)
    }

    /// The snapshot restore: verified and within the plan's RTO.
    pub fn snapshot_passed(&self) -> bool {
        self.verified && !self.rto_missed()
    }

    /// True when the measured RTO exceeds the target.
    pub fn rto_missed(&self) -> bool {
        self.rto_target_seconds
            .is_some_and(|t| self.rto_seconds > t)
    }
}

/// Phase timings, in the order they were first met.
#[derive(Default)]
struct Phases(Vec<(String, f64)>);

impl Phases {
    fn add(&mut self, name: &str, seconds: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => *s += seconds,
            None => self.0.push((name.to_string(), seconds)),
        }
    }
}

/// Runs a restore drill of plan `name`. `Err` only when no drill could be
/// started (no such plan, no drill section, the repository cannot be opened).
pub fn drill_plan(
    ops: &Operations,
    name: &str,
    options: &DrillOptions,
) -> Result<DrillOutcome, OpsError> {
    let plan = ops.plan(name)?;
    let drill = plan.drill.as_ref().ok_or_else(|| OpsError::Plan {
        plan: name.to_string(),
        detail: "it has no drill section ([plans.NAME.drill] with scratch = \"DIR\")".into(),
    })?;
    let base = ops.open_repository(plan.repository.get_ref())?;
    let started_ns = options.time_ns.unwrap_or_else(now_ns);
    let clock = Instant::now();
    let mut record = ops.record(RunKind::Drill, name, plan, started_ns);
    record.sample_ppm = Some((drill.sample * 1e6).round() as u32);
    let mut phases = Phases::default();
    let mut problems = Vec::new();
    let mut drilled = Vec::new();
    let mut extrapolated = 0.0;
    let mut method = "measured: the wall time of the whole drill".to_string();

    let opened = Instant::now();
    let repo = base.reopened().load_index().map(Arc::new);
    phases.add("open and index", opened.elapsed().as_secs_f64());
    match &repo {
        Err(e) => problems.push(format!("the repository cannot be read: {e}")),
        Ok(repo) => match newest(repo, name, options.time_ns) {
            Err(e) => problems.push(e),
            Ok(targets) if targets.is_empty() => {
                problems.push("the plan has no snapshot to drill".into())
            }
            Ok(targets) => {
                for entry in targets {
                    let what = match entry.snapshot.database.as_ref() {
                        Some(_) => entry.snapshot.paths.join(" "),
                        None => "files".to_string(),
                    };
                    drilled.push((entry.id, what));
                    if entry.snapshot.database.is_some() {
                        drill_database(repo, &entry, drill, &mut phases, &mut problems);
                    } else {
                        let files = drill_files(repo, &entry, drill, &mut phases, &mut record);
                        match files {
                            Ok(Some((seconds, factor))) => {
                                extrapolated += seconds * (factor - 1.0);
                                method = format!(
                                    "extrapolated from a {:.0}% stratified sample: the file restore time × {factor:.2} (the snapshot's bytes ÷ the sample's), plus the rest as measured",
                                    drill.sample * 100.0
                                );
                            }
                            Ok(None) => {}
                            Err(e) => problems.push(format!("files: {e}")),
                        }
                    }
                }
            }
        },
    }
    let rto = clock.elapsed().as_secs_f64() + extrapolated;
    record.finished_ns = started_ns + clock.elapsed().as_nanos() as i64;
    record.snapshots = drilled.iter().map(|(id, _)| *id).collect();
    let verified = problems.is_empty() && !drilled.is_empty();
    let target = plan.rto.map(|i| i.0.as_secs_f64());
    if verified {
        record.verified = record.snapshots.clone();
        record.rto_micros = Some((rto * 1e6) as u64);
    }
    record.phases = phases
        .0
        .iter()
        .map(|(n, s)| Phase {
            name: n.clone(),
            micros: (s * 1e6) as u64,
        })
        .collect();
    let mut outcome = DrillOutcome {
        record,
        verified,
        rto_seconds: rto,
        rto_target_seconds: target,
        method,
        drilled,
        problems,
        mirrors: Vec::new(),
    };
    if outcome.verified && outcome.rto_missed() {
        let target = target.unwrap_or_default();
        outcome.problems.push(format!(
            "the recovery took {rto:.1} s, {:.1} s more than the plan's RTO of {target:.0} s",
            rto - target
        ));
    }
    outcome.record.status = match outcome.snapshot_passed() {
        true => RunStatus::Success,
        false => RunStatus::Failure,
    };
    outcome.record.messages = outcome.problems.clone();
    if let Err(e) = ops.write_record(&base, &outcome.record) {
        outcome
            .problems
            .push(format!("the drill's record could not be written: {e}"));
    }
    if let Ok(repo) = &repo {
        for mirror in &plan.mirrors {
            let at = started_ns + clock.elapsed().as_nanos() as i64;
            let check = mirror_check::check_mirror(ops, &base, repo, (name, plan), mirror, at);
            outcome.problems.extend(check.problems.iter().cloned());
            outcome.mirrors.push(check);
        }
    }
    let details = serde_json::json!({
        "rto_seconds": outcome.rto_seconds,
        "rto_target_seconds": outcome.rto_target_seconds,
        "verified": outcome.verified,
        "problems": outcome.problems,
    });
    if outcome.verified && outcome.rto_missed() {
        ops.notify(
            Event::RtoBreached,
            name,
            &outcome.problems.join("; "),
            details.clone(),
        );
    }
    match outcome.passed() {
        true => ops.notify(Event::DrillPassed, name, "drill passed", details),
        false => ops.notify(
            Event::DrillFailed,
            name,
            &outcome.problems.join("; "),
            details,
        ),
    }
    Ok(outcome)
}

/// The snapshots a drill restores: the plan's newest files snapshot and
/// the newest snapshot of each of its databases, as of `time_ns`.
fn newest(
    repo: &Repository<Indexed>,
    name: &str,
    time_ns: Option<i64>,
) -> Result<Vec<SnapshotEntry>, String> {
    let known = repo.snapshots().map_err(|e| e.to_string())?;
    let mut by_source: BTreeMap<(bool, Vec<String>), &SnapshotEntry> = BTreeMap::new();
    for entry in
        plan_snapshots(&known, name).filter(|e| time_ns.is_none_or(|t| e.snapshot.time_ns <= t))
    {
        let s = &entry.snapshot;
        // Files: the newest of any paths; databases: the newest per database.
        let key = match s.database {
            None => (false, Vec::new()),
            Some(_) => (true, s.paths.clone()),
        };
        let slot = by_source.entry(key).or_insert(entry);
        if s.time_ns > slot.snapshot.time_ns {
            *slot = entry;
        }
    }
    Ok(by_source.into_values().cloned().collect())
}

/// Restores and verifies the files; with a sample, returns the file
/// restore's seconds and the factor its time is scaled by.
fn drill_files(
    repo: &Arc<Repository<Indexed>>,
    entry: &SnapshotEntry,
    drill: &DrillConfig,
    phases: &mut Phases,
    record: &mut RunRecord,
) -> Result<Option<(f64, f64)>, String> {
    let started = Instant::now();
    let (includes, factor) = match drill.sample < 1.0 {
        true => {
            let (paths, factor) = sample(repo, entry, drill.sample).map_err(|e| e.to_string())?;
            let escaped = paths.iter().map(|p| escape_glob(p));
            (
                PatternSet::new(escaped).map_err(|e| e.to_string())?,
                Some(factor),
            )
        }
        false => (PatternSet::default(), None),
    };
    if factor.is_some() {
        phases.add("sample", started.elapsed().as_secs_f64());
    }
    let scratch = Scratch::create(&drill.scratch).map_err(|e| {
        format!(
            "cannot create a scratch folder in {}: {e}",
            drill.scratch.display()
        )
    })?;
    let restoring = Instant::now();
    let summary = restore(
        Arc::clone(repo),
        &entry.snapshot.tree,
        &RestoreOptions {
            target: scratch.dir.clone(),
            subpath: "/".into(),
            includes,
            verify: true,
            ..Default::default()
        },
        Arc::new(bunker_engine::NoProgress),
    )
    .map_err(|e| e.to_string())?;
    let seconds = restoring.elapsed().as_secs_f64();
    phases.add("fetch, decrypt and decompress", summary.read_seconds);
    phases.add("write", summary.write_seconds);
    phases.add("verify", summary.verify_seconds);
    phases.add("files (wall)", seconds);
    record.files += summary.files;
    record.bytes += summary.bytes;
    if let Some(first) = summary.errors.first() {
        return Err(format!(
            "{} file(s) could not be restored or did not verify; first: {first}",
            summary.errors.len()
        ));
    }
    drop(scratch);
    Ok(factor.map(|f| (seconds, f)))
}

/// A stratified sample of the snapshot's files: strata are (size class,
/// top-level directory); each gives `share` of its files, at least one,
/// chosen by a hash of the path so a drill of the same snapshot takes the
/// same files. Returns the paths and the snapshot's bytes ÷ the sample's.
fn sample(
    repo: &Repository<Indexed>,
    entry: &SnapshotEntry,
    share: f64,
) -> bunker_engine::Result<(Vec<String>, f64)> {
    // (size class, top-level directory) → (rank, path, size) of its files.
    type Stratum = Vec<(u64, String, u64)>;
    let mut strata: BTreeMap<(u32, Vec<u8>), Stratum> = BTreeMap::new();
    let mut total = 0u64;
    visit_tree(repo, &entry.snapshot.tree, b"/", &mut |path, node| {
        if node.kind != NodeKind::File {
            return Ok(());
        }
        total += node.size;
        // Paths the pattern syntax cannot name exactly are left out.
        let Ok(text) = std::str::from_utf8(path) else {
            return Ok(());
        };
        if text.trim() != text || text.contains('\n') {
            return Ok(());
        }
        let class = 64 - node.size.leading_zeros();
        let top: Vec<u8> = path
            .split(|b| *b == b'/')
            .take(3)
            .collect::<Vec<_>>()
            .join(&b'/');
        let rank = u64::from_le_bytes(blake3::hash(path).as_bytes()[..8].try_into().expect("8"));
        strata
            .entry((class, top))
            .or_default()
            .push((rank, text.to_string(), node.size));
        Ok(())
    })?;
    let mut chosen = Vec::new();
    let mut bytes = 0u64;
    for files in strata.values_mut() {
        files.sort();
        let take = ((files.len() as f64 * share).ceil() as usize).max(1);
        for (_, path, size) in files.iter().take(take) {
            chosen.push(path.clone());
            bytes += size;
        }
    }
    let factor = match bytes {
        0 => 1.0,
        _ => (total as f64 / bytes as f64).max(1.0),
    };
    Ok((chosen, factor))
}

/// `path` as a pattern that matches exactly it.
fn escape_glob(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Restores a database dump into a scratch database and checks it.
fn drill_database(
    repo: &Repository<Indexed>,
    entry: &SnapshotEntry,
    drill: &DrillConfig,
    phases: &mut Phases,
    problems: &mut Vec<String>,
) {
    let shown = entry.snapshot.paths.join(" ");
    let server_url = drill
        .database_server
        .clone()
        .unwrap_or_else(|| shown.clone());
    let base = match DatabaseUrl::parse(&server_url) {
        Ok(url) => Connection::new(url, None, None),
        Err(e) => {
            problems.push(format!("{shown}: {e}"));
            return;
        }
    };
    let server = drill.database_server.as_ref().map(|_| base.clone());
    let options = VerifyOptions {
        assertions: Vec::new(),
        jobs: 1,
    };
    match verify_database(repo, entry, server, &base, &options) {
        Err(e) => problems.push(format!("{shown}: {e}")),
        Ok(report) => {
            phases.add("fetch, decrypt and decompress", report.fetch_seconds);
            phases.add("database load", report.load_seconds);
            phases.add("database checks", report.check_seconds);
            if let Some(e) = &report.error {
                problems.push(format!("{shown}: the restore failed: {e}"));
            }
            for t in report.tables.iter().filter(|t| t.found != Some(t.expected)) {
                problems.push(format!(
                    "{shown}: table {}.{}: {} rows recorded, {} restored",
                    t.schema,
                    t.table,
                    t.expected,
                    t.found
                        .map_or("none could be counted".into(), |n| n.to_string())
                ));
            }
            if report.error.is_none() && !report.passed && problems.is_empty() {
                problems.push(format!("{shown}: the verification did not pass"));
            }
            if !report.dropped {
                problems.push(format!(
                    "{shown}: the scratch database {} could not be dropped: drop it by hand",
                    report.scratch
                ));
            }
        }
    }
}

/// A folder of the drill's own inside the configured scratch folder,
/// removed (with the scratch folder, if the drill created it) however the
/// drill ends. Nothing else in the scratch folder is ever touched.
struct Scratch {
    dir: PathBuf,
    created_parent: bool,
    parent: PathBuf,
}

impl Scratch {
    fn create(parent: &Path) -> std::io::Result<Scratch> {
        let created_parent = !parent.exists();
        std::fs::create_dir_all(parent)?;
        let mut random = [0u8; 6];
        bunker_engine::format::crypto::fill_random(&mut random);
        let dir = parent.join(format!("bunker-drill-{}", hex::encode(random)));
        std::fs::create_dir(&dir)?;
        Ok(Scratch {
            dir,
            created_parent,
            parent: parent.to_path_buf(),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.dir).is_err() {
            // Restored directories may be read-only: open them up, try again.
            make_writable(&self.dir);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if self.created_parent {
            let _ = std::fs::remove_dir(&self.parent);
        }
    }
}

/// Gives the owner write and search permission on every directory below
/// `dir` (never following symlinks).
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            make_writable(&entry.path());
        }
    }
}
