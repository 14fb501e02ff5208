//! `bunker run PLAN`: one run of a plan, now.
//!
//! Hooks, a backup of the plan's paths (one snapshot) and of each database
//! (a snapshot each), retention (forget, then prune when something was
//! forgotten), a copy to each `copy-to` repository, and a run record for
//! each of those in the plan's repository. One failed source or target
//! fails the run and is named; the others still complete.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bunker_engine::backend::{Settings, SftpFolder};
use bunker_engine::backup::{
    backup_to_many, source_paths, BackupOptions, BackupSource, FanOutOutcome,
};
use bunker_engine::copy::{copy, CopyOptions};
use bunker_engine::database::DatabaseSource;
use bunker_engine::format::id::SnapshotId;
use bunker_engine::format::run_record::{Phase, RunKind, RunRecord, RunStatus};
use bunker_engine::format::snapshot::{BackupMode, Snapshot};
use bunker_engine::identity::now_ns;
use bunker_engine::mirror::{mirror, mirror_to_sftp, MirrorOptions, MirrorSummary};
use bunker_engine::prune::{prune, PruneOptions};
use bunker_engine::source::database::{Connection, DatabaseUrl, DumpOptions};
use bunker_engine::source::{PatternSet, ProtectedPaths, WalkOptions};
use bunker_engine::{forget, Open, Repository, SnapshotEntry};

use crate::config::Between;
use crate::hooks::run_hooks;
use crate::notify::Event;
use crate::records::{plan_snapshots, trim_records};
use crate::{MirrorDest, Operations, OpsError, PlanConfig};

/// How one run goes.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Record the snapshots and the run at this time instead of now
    /// (Unix nanoseconds): for importing history and for tests.
    pub time_ns: Option<i64>,
    /// Count the sources first, so progress has totals and an ETA (costs
    /// a second walk of the metadata).
    pub scan_totals: bool,
}

/// How one step of a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepStatus {
    /// Done.
    Done,
    /// Done, but some sources could not be read (named in the message).
    Partial,
    /// Failed.
    Failed,
}

/// One step of a run: what it was about and how it ended.
#[derive(Clone, Debug)]
pub struct Step {
    /// `hooks`, `files`, a database URL, `retention`, `copy to NAME`.
    pub what: String,
    /// How it ended.
    pub status: StepStatus,
    /// One line: what it did, or why it failed.
    pub message: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct PlanRun {
    /// The plan.
    pub plan: String,
    /// Each step, in order.
    pub steps: Vec<Step>,
    /// The records written to the plan's repository.
    pub records: Vec<RunRecord>,
}

impl PlanRun {
    /// True if any step failed.
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.status == StepStatus::Failed)
    }

    /// True if some sources could not be read (and nothing failed).
    pub fn partial(&self) -> bool {
        !self.failed() && self.steps.iter().any(|s| s.status == StepStatus::Partial)
    }

    fn step(&mut self, what: impl Into<String>, status: StepStatus, message: impl Into<String>) {
        self.steps.push(Step {
            what: what.into(),
            status,
            message: message.into(),
        });
    }
}

/// Runs plan `name` once. `Err` only when nothing could be done: no such
/// plan, or its repository cannot be opened.
pub fn run_plan(ops: &Operations, name: &str, options: &RunOptions) -> Result<PlanRun, OpsError> {
    let plan = ops.plan(name)?;
    let base = match ops.open_repository(plan.repository.get_ref()) {
        Ok(repo) => repo,
        Err(e) => {
            ops.notify(
                Event::RunFailed,
                name,
                &e.to_string(),
                serde_json::Value::Null,
            );
            return Err(e);
        }
    };
    let started_ns = options.time_ns.unwrap_or_else(now_ns);
    let clock = Instant::now();
    let mut run = PlanRun {
        plan: name.to_string(),
        ..Default::default()
    };
    let mut record = ops.record(RunKind::Backup, name, plan, started_ns);
    let env = [("BUNKER_PLAN", name)];
    ops.notify(
        Event::RunStarted,
        name,
        "run started",
        serde_json::Value::Null,
    );

    let ready = match run_hooks(&plan.before, &env) {
        Ok(()) => true,
        Err(message) => {
            run.step("before", StepStatus::Failed, &message);
            false
        }
    };
    let mut made = Vec::new();
    let mut files_snapshot = None;
    // The copies are written by each backup from its one read of the source
    // (`backup --copy-to`); the copy step after retention then adds only
    // what they missed.
    let mut copies = Copies::open(ops, plan, ready);
    if ready {
        let known = base.snapshots().unwrap_or_default();
        let mode = |paths: &[String]| choose_mode(plan, &known, &ops.host, name, paths, started_ns);
        if !plan.paths.is_empty() {
            let outcome = back_up_files(ops, plan, name, &base, options, &mode, &mut copies);
            files_snapshot = outcome.as_ref().ok().and_then(|(id, _)| *id);
            account(&mut run, &mut record, &mut made, "files", outcome);
        }
        for url in &plan.databases {
            let each = back_up_databases(ops, plan, name, &base, url, options, &mode, &mut copies);
            for (shown, outcome) in each {
                account(&mut run, &mut record, &mut made, &shown, outcome);
            }
        }
    }
    let status = match (ready, run.failed()) {
        (true, false) => "success",
        _ => "failure",
    };
    if let Err(message) = run_hooks(&plan.after, &[env[0], ("BUNKER_RUN_STATUS", status)]) {
        run.step("after", StepStatus::Failed, &message);
    }
    record.snapshots = made.clone();
    finish(&mut record, &run, started_ns, &clock);
    save(ops, &base, &mut run, record);

    if !made.is_empty() {
        retention(ops, plan, name, &base, options, &mut run);
        for target in &plan.copy_to {
            let target = target.get_ref();
            let written = copies.written_to(target);
            copy_to(ops, plan, name, &base, target, written, options, &mut run);
        }
    }
    // A mirror is a recovery point of its own: refreshed even when the
    // repository could not take this run's backup.
    if ready {
        for mirror in &plan.mirrors {
            refresh_mirror(
                ops,
                plan,
                name,
                &base,
                mirror,
                files_snapshot,
                options,
                &mut run,
            );
        }
    }
    let failed: Vec<String> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .map(|s| format!("{}: {}", s.what, s.message))
        .collect();
    let details = serde_json::json!({
        "snapshots": made.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
        "failed": failed,
    });
    match run.failed() {
        true => ops.notify(Event::RunFailed, name, &failed.join("; "), details),
        false => ops.notify(Event::RunSucceeded, name, "run succeeded", details),
    }
    Ok(run)
}

/// A finished backup of one source: its snapshot, or why there is none.
type BackupResult = Result<(Option<SnapshotId>, Snapshot), String>;

/// The plan's `copy-to` repositories that could be opened, and the
/// snapshots the backups wrote to each.
struct Copies {
    opened: Vec<(String, Repository<Open>)>,
    /// What the backups stored in each copy, by its name.
    written: HashMap<String, Written>,
}

/// What the backups of a run stored in one copy.
#[derive(Default)]
struct Written {
    snapshots: Vec<SnapshotId>,
    bytes_stored: u64,
}

impl Copies {
    /// Opens the copies (one that cannot be opened is left to the copy
    /// step, which names the failure).
    fn open(ops: &Operations, plan: &PlanConfig, ready: bool) -> Self {
        let opened = match ready {
            true => plan
                .copy_to
                .iter()
                .filter_map(|t| {
                    let t = t.get_ref();
                    ops.open_repository(t).ok().map(|r| (t.clone(), r))
                })
                .collect(),
            false => Vec::new(),
        };
        Copies {
            opened,
            written: HashMap::new(),
        }
    }

    /// Fresh handles on the copies, for one backup.
    fn handles(&self) -> Vec<Repository<Open>> {
        self.opened.iter().map(|(_, r)| r.reopened()).collect()
    }

    /// Takes a backup's outcome, noting what each copy received.
    fn absorb(&mut self, outcome: FanOutOutcome) -> BackupResult {
        for ((name, _), c) in self.opened.iter().zip(&outcome.copies) {
            if let Ok(stored) = &c.result {
                let written = self.written.entry(name.clone()).or_default();
                written
                    .snapshots
                    .extend(stored.id.iter().chain(&stored.caught_up));
                written.bytes_stored += stored.bytes_stored;
            }
        }
        outcome
            .primary
            .map(|o| (o.id, o.snapshot))
            .map_err(|e| e.to_string())
    }

    /// What the backups stored in `target`.
    fn written_to(&mut self, target: &str) -> Written {
        self.written.remove(target).unwrap_or_default()
    }
}

/// Adds one backup's outcome to the run and its record.
fn account(
    run: &mut PlanRun,
    record: &mut RunRecord,
    made: &mut Vec<SnapshotId>,
    what: &str,
    outcome: BackupResult,
) {
    match outcome {
        Ok((id, snapshot)) => {
            let m = &snapshot.summary;
            record.bytes += m.total_bytes;
            record.files += m.files_new + m.files_changed + m.files_unmodified;
            record.bytes_added += m.bytes_stored;
            made.extend(id);
            let short = id.map(|i| i.short()).unwrap_or_default();
            let line = format!(
                "{} backup, snapshot {short}: {} files, {} bytes read, {} bytes stored",
                snapshot.mode.name(),
                m.files_new + m.files_changed + m.files_unmodified,
                m.bytes_read,
                m.bytes_stored
            );
            if snapshot.is_incomplete() {
                record
                    .messages
                    .extend(snapshot.skipped.iter().map(|s| format!("{what}: {s}")));
                run.step(
                    what,
                    StepStatus::Partial,
                    format!(
                        "{line}; {} source(s) could not be read",
                        snapshot.skipped.len()
                    ),
                );
            } else {
                run.step(what, StepStatus::Done, line);
            }
        }
        Err(message) => {
            record.messages.push(format!("{what}: {message}"));
            run.step(what, StepStatus::Failed, message);
        }
    }
}

/// Full when the plan's newest full snapshot of these paths is older than
/// `full-every` (or there is none), else the plan's mode between fulls.
fn choose_mode(
    plan: &PlanConfig,
    known: &[SnapshotEntry],
    host: &str,
    name: &str,
    paths: &[String],
    now_ns: i64,
) -> BackupMode {
    let between = match plan.between_full {
        Between::Incremental => BackupMode::Incremental,
        Between::Differential => BackupMode::Differential,
    };
    let Some(every) = plan.full_every else {
        return between;
    };
    let newest_full = plan_snapshots(known, name)
        .filter(|e| {
            let s = &e.snapshot;
            s.mode == BackupMode::Full && s.hostname == host && same_paths(&s.paths, paths)
        })
        .map(|e| e.snapshot.time_ns)
        .max();
    match newest_full {
        Some(t) if now_ns.saturating_sub(t) < every.0.as_nanos() as i64 => between,
        _ => BackupMode::Full,
    }
}

fn same_paths(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The plan's snapshot options: its tags (and its name), this host, the time.
fn snapshot_options(
    ops: &Operations,
    plan: &PlanConfig,
    name: &str,
    options: &RunOptions,
) -> BackupOptions {
    let mut tags = vec![name.to_string()];
    tags.extend(plan.tags.iter().filter(|t| *t != name).cloned());
    BackupOptions {
        tags,
        host: Some(ops.host.clone()),
        time_ns: options.time_ns,
        ..Default::default()
    }
}

fn back_up_files(
    ops: &Operations,
    plan: &PlanConfig,
    name: &str,
    base: &Repository<Open>,
    options: &RunOptions,
    mode: &dyn Fn(&[String]) -> BackupMode,
    copies: &mut Copies,
) -> BackupResult {
    let paths = source_paths(&plan.paths).map_err(|e| e.to_string())?;
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let excludes = PatternSet::new(plan.exclude.clone()).map_err(|e| e.to_string())?;
    let mut backup_options = snapshot_options(ops, plan, name, options);
    backup_options.mode = mode(&shown);
    backup_options.scan_totals = options.scan_totals;
    backup_options.selection = WalkOptions {
        excludes,
        protected: ProtectedPaths::new(ops.own_paths(plan.repository.get_ref())),
        ..Default::default()
    };
    let outcome = backup_to_many(
        base.reopened(),
        copies.handles(),
        BackupSource::Paths(paths),
        backup_options,
        Arc::clone(&ops.progress),
    )
    .map_err(|e| e.to_string())?;
    copies.absorb(outcome)
}

/// Backs up the database `url` names, or every database of its server.
#[allow(clippy::too_many_arguments)]
fn back_up_databases(
    ops: &Operations,
    plan: &PlanConfig,
    name: &str,
    base: &Repository<Open>,
    url: &str,
    options: &RunOptions,
    mode: &dyn Fn(&[String]) -> BackupMode,
    copies: &mut Copies,
) -> Vec<(String, BackupResult)> {
    let parsed = match DatabaseUrl::parse(url) {
        Ok(u) => u,
        Err(e) => return vec![(url.to_string(), Err(e.to_string()))],
    };
    let conn = Connection::new(parsed, None, None);
    let databases = match &conn.url.database {
        Some(db) => vec![db.clone()],
        None => match conn.databases() {
            Ok(all) => all,
            Err(e) => return vec![(url.to_string(), Err(e.to_string()))],
        },
    };
    databases
        .into_iter()
        .map(|db| {
            let shown = conn.url.with_database(&db).to_string();
            let outcome =
                DatabaseSource::new(conn.clone(), &db, DumpOptions::default()).and_then(|source| {
                    let mut backup_options = snapshot_options(ops, plan, name, options);
                    backup_options.mode = mode(std::slice::from_ref(&shown));
                    backup_to_many(
                        base.reopened(),
                        copies.handles(),
                        BackupSource::Streams(Box::new(source)),
                        backup_options,
                        Arc::clone(&ops.progress),
                    )
                });
            let outcome = match outcome {
                Ok(outcome) => copies.absorb(outcome),
                Err(e) => Err(e.to_string()),
            };
            (shown, outcome)
        })
        .collect()
}

/// Ends a record: its end time (on the run's own clock, so a run recorded
/// at another time keeps its real duration) and its status.
fn finish(record: &mut RunRecord, run: &PlanRun, started_ns: i64, clock: &Instant) {
    record.finished_ns = started_ns + clock.elapsed().as_nanos() as i64;
    record.status = match run.failed() {
        true => RunStatus::Failure,
        false => RunStatus::Success,
    };
    if record.status == RunStatus::Failure && record.messages.is_empty() {
        record.messages = run
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .map(|s| format!("{}: {}", s.what, s.message))
            .collect();
    }
}

/// Writes a record to the plan's repository; a record that cannot be
/// written fails the run (its history would be wrong) but undoes nothing.
fn save(ops: &Operations, repo: &Repository<Open>, run: &mut PlanRun, record: RunRecord) {
    if let Err(e) = ops.write_record(repo, &record) {
        run.step(
            "record",
            StepStatus::Failed,
            format!("the run record could not be written: {e}"),
        );
    }
    run.records.push(record);
}

/// Ends a step's record, adds the step to the run and saves the record.
fn conclude(
    ops: &Operations,
    base: &Repository<Open>,
    run: &mut PlanRun,
    mut record: RunRecord,
    mut step: PlanRun,
    started_ns: i64,
    clock: &Instant,
) {
    finish(&mut record, &step, started_ns, clock);
    run.steps.append(&mut step.steps);
    save(ops, base, run, record);
}

/// Forgets what the plan's retention no longer keeps, then prunes when
/// something was forgotten; trims old run records.
fn retention(
    ops: &Operations,
    plan: &PlanConfig,
    name: &str,
    base: &Repository<Open>,
    options: &RunOptions,
    run: &mut PlanRun,
) {
    let policy = plan.retention.policy();
    let started_ns = options.time_ns.map_or_else(now_ns, |t| t + 1);
    let clock = Instant::now();
    let mut record = ops.record(RunKind::Prune, name, plan, started_ns);
    // `None`: nothing to remove, no event worth a record.
    let result = (|| -> Result<Option<String>, String> {
        let mut said = Vec::new();
        if !policy.is_empty() {
            let known = base.snapshots().map_err(|e| e.to_string())?;
            let mine: Vec<SnapshotEntry> = plan_snapshots(&known, name).cloned().collect();
            let groups = forget::plan(&mine, forget::GroupBy::default(), &policy);
            let gone: Vec<SnapshotId> = groups
                .iter()
                .flat_map(|g| g.decisions.iter().filter(|d| !d.keep).map(|d| d.entry.id))
                .collect();
            if !gone.is_empty() {
                forget::remove(base, &gone).map_err(|e| e.to_string())?;
                said.push(format!("forgot {} snapshot(s)", gone.len()));
            }
        }
        // Prune when something was forgotten since the last prune, at most
        // every `prune-every`: it reads every index and may repack.
        let records = base.run_records().map_err(|e| e.to_string())?.records;
        let mine = || {
            records
                .iter()
                .map(|(_, r)| r)
                .filter(|r| r.plan == name && r.kind == RunKind::Prune)
        };
        let pruned = |r: &&RunRecord| r.phases.iter().any(|p| p.name == "prune");
        let last_prune = mine().filter(pruned).map(|r| r.started_ns).max();
        let forgotten_since = !said.is_empty()
            || mine().any(|r| {
                r.status == RunStatus::Success
                    && !pruned(&r)
                    && last_prune.is_none_or(|t| r.started_ns > t)
            });
        let due = last_prune.is_none_or(|t| started_ns - t >= plan.prune_every.0.as_nanos() as i64);
        // Under Object Lock, prune also renews every file's retention: it
        // runs at each `prune-every` even when nothing was forgotten.
        let renews = base.config().object_lock.is_some();
        if (forgotten_since || renews) && due {
            let clock = Instant::now();
            let report =
                prune(base.reopened(), &PruneOptions::default()).map_err(|e| e.to_string())?;
            record.bytes = report.bytes_deleted;
            record.phases.push(Phase {
                name: "prune".into(),
                micros: clock.elapsed().as_micros() as u64,
            });
            said.push(format!(
                "pruned {} pack(s), {} bytes freed",
                report.packs_deleted, report.bytes_deleted
            ));
            if report.retention_renewed > 0 {
                said.push(format!(
                    "Object Lock retention of {} file(s) extended",
                    report.retention_renewed
                ));
            }
        }
        let trimmed =
            trim_records(base, name, plan.keep_records, started_ns).map_err(|e| e.to_string())?;
        if trimmed > 0 {
            said.push(format!("removed {trimmed} old run record(s)"));
        }
        Ok((!said.is_empty()).then(|| said.join("; ")))
    })();
    let mut step = PlanRun::default();
    match &result {
        Ok(None) => step.step("retention", StepStatus::Done, "nothing to remove"),
        Ok(Some(message)) => step.step("retention", StepStatus::Done, message),
        Err(message) => {
            record.messages.push(message.clone());
            step.step("retention", StepStatus::Failed, message)
        }
    }
    finish(&mut record, &step, started_ns, &clock);
    run.steps.append(&mut step.steps);
    if !matches!(result, Ok(None)) {
        save(ops, base, run, record);
    }
}

/// Refreshes the mirror `dest` from the plan's paths, recording the
/// snapshot this run took of them (the one a drill compares it with).
#[allow(clippy::too_many_arguments)]
fn refresh_mirror(
    ops: &Operations,
    plan: &PlanConfig,
    name: &str,
    base: &Repository<Open>,
    dest: &MirrorDest,
    snapshot: Option<SnapshotId>,
    options: &RunOptions,
    run: &mut PlanRun,
) {
    let started_ns = options.time_ns.map_or_else(now_ns, |t| t + 3);
    let clock = Instant::now();
    let mut record = ops.record(RunKind::Mirror, name, plan, started_ns);
    record.peer = Some(dest.to_string());
    record.snapshots.extend(snapshot);
    let what = format!("mirror to {dest}");
    let mut step = PlanRun::default();
    let result = (|| -> Result<MirrorSummary, String> {
        let excludes = PatternSet::new(plan.exclude.clone()).map_err(|e| e.to_string())?;
        let mirror_options = MirrorOptions {
            delete: true,
            max_delete: plan.mirror_max_delete,
            // After a drill found a local mirror differing from its
            // snapshot, size and time cannot be trusted: compare content
            // once (over SFTP content is not compared).
            checksum: matches!(dest, MirrorDest::Local(_))
                && last_mirror_drill_failed(base, name, &record.peer),
            selection: WalkOptions {
                excludes,
                protected: ProtectedPaths::new(ops.own_paths(plan.repository.get_ref())),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut total = MirrorSummary::default();
        for pair in plan.mirror_pairs(dest) {
            let done = match &pair.replica {
                MirrorDest::Local(path) => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                    }
                    mirror(&pair.source, path, &mirror_options, &ops.open.cancel)
                }
                MirrorDest::Sftp(location) => {
                    let folder = SftpFolder::connect(location, &Settings::from_process())
                        .map_err(|e| e.to_string())?;
                    mirror_to_sftp(&pair.source, &folder, &mirror_options, &ops.open.cancel)
                }
            }
            .map_err(|e| format!("{}: {e}", pair.source.display()))?;
            total.absorb(done);
        }
        Ok(total)
    })();
    match result {
        Ok(m) => {
            record.files = m.entries_checked;
            record.bytes = m.bytes_checked;
            record.bytes_added = m.bytes_copied;
            record.messages.extend(m.errors.iter().cloned());
            let line = format!(
                "{} entries checked, {} files copied ({} bytes), {} deleted",
                m.entries_checked, m.files_copied, m.bytes_copied, m.deleted
            );
            match m.errors.is_empty() {
                true => step.step(&what, StepStatus::Done, line),
                false => step.step(
                    &what,
                    StepStatus::Partial,
                    format!("{line}; {} entries could not be copied", m.errors.len()),
                ),
            }
        }
        Err(message) => {
            record.messages.push(message.clone());
            step.step(&what, StepStatus::Failed, message)
        }
    }
    conclude(ops, base, run, record, step, started_ns, &clock);
}

/// True when the newest drill of the mirror `peer` failed.
fn last_mirror_drill_failed(base: &Repository<Open>, name: &str, peer: &Option<String>) -> bool {
    base.run_records().is_ok_and(|list| {
        list.records
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.plan == name && r.kind == RunKind::Drill && &r.peer == peer)
            .max_by_key(|r| r.started_ns)
            .is_some_and(|r| r.status == RunStatus::Failure)
    })
}

/// Copies the plan's snapshots that `target` lacks into it; `written`
/// are those this run's backups stored there already.
#[allow(clippy::too_many_arguments)]
fn copy_to(
    ops: &Operations,
    plan: &PlanConfig,
    name: &str,
    base: &Repository<Open>,
    target: &str,
    written: Written,
    options: &RunOptions,
    run: &mut PlanRun,
) {
    let started_ns = options.time_ns.map_or_else(now_ns, |t| t + 2);
    let clock = Instant::now();
    let mut record = ops.record(RunKind::Copy, name, plan, started_ns);
    record.peer = Some(target.to_string());
    let what = format!("copy to {target}");
    let mut step = PlanRun::default();
    let result = (|| -> Result<String, String> {
        let dest = ops.open_repository(target).map_err(|e| e.to_string())?;
        let source = base.reopened().load_index().map_err(|e| e.to_string())?;
        let mine: Vec<SnapshotEntry> =
            plan_snapshots(&source.snapshots().map_err(|e| e.to_string())?, name)
                .cloned()
                .collect();
        let report = copy(
            &source,
            dest,
            mine,
            &CopyOptions::default(),
            Arc::clone(&ops.progress),
        )
        .map_err(|e| e.to_string())?;
        let n = written.snapshots.len();
        record.snapshots = written.snapshots.clone();
        record
            .snapshots
            .extend(report.copied.iter().filter_map(|c| c.copy));
        record.bytes = report.bytes;
        record.bytes_added = written.bytes_stored + report.stored_bytes;
        Ok(format!(
            "{n} snapshot(s) written with the backups, {} copied, {} already there; {} bytes stored",
            report.copied.len(),
            report.present.len().saturating_sub(n),
            record.bytes_added
        ))
    })();
    match result {
        Ok(message) => step.step(&what, StepStatus::Done, message),
        Err(message) => {
            record.messages.push(message.clone());
            step.step(&what, StepStatus::Failed, message)
        }
    }
    conclude(ops, base, run, record, step, started_ns, &clock);
}
