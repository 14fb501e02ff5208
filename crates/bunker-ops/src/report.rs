//! `bunker report`: per plan, what its history in the repository says
//! about its recoverability: the recovery point now (the age of the newest
//! snapshot a drill verified) against the RPO target, the last measured
//! recovery time against the RTO target, backup and restore success rates,
//! run durations, data protected and added; per repository, its size,
//! deduplication, compression, a projected monthly cost and growth.
//!
//! Everything comes from the repositories (snapshots and run records), so
//! any machine holding the key reports the same.

use std::collections::BTreeMap;

use bunker_engine::format::id::SnapshotId;
use bunker_engine::format::run_record::{RunKind, RunRecord, RunStatus};
use bunker_engine::{Indexed, Repository, SnapshotEntry};
use serde::Serialize;

use crate::records::plan_snapshots;
use crate::{Operations, OpsError, PlanConfig};

mod cost;
pub(crate) mod html;
mod prometheus;

pub use cost::{price_per_gib_month, PRICES_AS_OF};
pub use html::html;
pub use prometheus::prometheus;

const DAY: i64 = 86_400_000_000_000;

/// Success rates over the last 7, 30 and 90 days: a fraction from 0 to 1,
/// or `None` without runs. Skipped runs are not attempts and not counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Last 7 days.
    #[serde(rename = "7d")]
    pub d7: Option<f64>,
    /// Last 30 days.
    #[serde(rename = "30d")]
    pub d30: Option<f64>,
    /// Last 90 days.
    #[serde(rename = "90d")]
    pub d90: Option<f64>,
}

/// The last drill.
#[derive(Clone, Debug, Serialize)]
pub struct DrillSummary {
    /// When it started (RFC 3339).
    pub time: String,
    /// Verified and within the RTO.
    pub passed: bool,
    /// Its measured recovery time.
    pub rto_seconds: Option<f64>,
    /// Why it failed.
    pub messages: Vec<String>,
}

/// A mirror of the plan: a recovery point one switch away.
#[derive(Clone, Debug, Serialize)]
pub struct MirrorPoint {
    /// The mirror's folder.
    pub mirror: String,
    /// The end of its last complete refresh (RFC 3339).
    pub last_refresh: Option<String>,
    /// Its age: seconds since that refresh ended (its RPO).
    pub age_seconds: Option<f64>,
    /// The last refresh failed or left something out.
    pub last_refresh_failed: bool,
    /// When a drill last compared it with its snapshot (RFC 3339).
    pub last_drill: Option<String>,
    /// That drill found it holding everything its snapshot holds.
    pub verified: bool,
    /// Its recovery time: a switch to a ready copy, counted as zero once
    /// verified (what the switch costs is outside Bunker).
    pub rto_seconds: Option<f64>,
    /// Why its last drill failed.
    pub messages: Vec<String>,
}

/// A plan's status light.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthLevel {
    /// RPO and RTO met, and the last drill passed.
    Green,
    /// A target at risk, or the last run failed while an older verified
    /// point is still within target.
    Amber,
    /// A target missed.
    Red,
    /// Nothing to judge by: no targets, or no drill yet.
    Unknown,
}

impl HealthLevel {
    /// The word shown beside the colour.
    pub fn word(self) -> &'static str {
        match self {
            HealthLevel::Green => "recoverable",
            HealthLevel::Amber => "at risk",
            HealthLevel::Red => "target missed",
            HealthLevel::Unknown => "not judged",
        }
    }
}

/// A plan's status light and why.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// The light.
    pub level: HealthLevel,
    /// Why, one line each (empty when green).
    pub reasons: Vec<String>,
}

/// The share of a target after which it counts as at risk.
const AT_RISK: f64 = 0.8;

/// Judges a plan: red when a target is missed; amber when one is close to
/// it (over 80%) or the last backup or drill failed; green when every
/// target it has is met and the last drill passed.
fn health(p: &PlanReport, last_backup_failed: bool) -> Health {
    let (mut red, mut amber) = (Vec::new(), Vec::new());
    let d = |s: f64| html::duration(s);
    if let (Some(false), Some(t)) = (p.rpo_met, p.rpo_target_seconds) {
        red.push(match p.rpo_seconds {
            Some(s) => format!(
                "RPO missed: the newest verified snapshot is {} old, over {}",
                d(s),
                d(t as f64)
            ),
            None => format!(
                "RPO missed: no snapshot verified by a drill (target {})",
                d(t as f64)
            ),
        });
    }
    if let (Some(false), Some(s), Some(t)) = (p.rto_met, p.rto_seconds, p.rto_target_seconds) {
        red.push(format!(
            "RTO missed: the last drill took {}, over {}",
            d(s),
            d(t as f64)
        ));
    }
    if let (Some(true), Some(s), Some(t)) = (p.rpo_met, p.rpo_seconds, p.rpo_target_seconds) {
        if s > AT_RISK * t as f64 {
            amber.push(format!("RPO at risk: {} of {} used", d(s), d(t as f64)));
        }
    }
    if let (Some(true), Some(s), Some(t)) = (p.rto_met, p.rto_seconds, p.rto_target_seconds) {
        if s > AT_RISK * t as f64 {
            amber.push(format!(
                "RTO at risk: the last drill took {} of {}",
                d(s),
                d(t as f64)
            ));
        }
    }
    if last_backup_failed {
        amber.push("the last backup failed".into());
    }
    if let Some(drill) = p.last_drill.as_ref().filter(|d| !d.passed) {
        amber.push(format!("the last drill failed ({})", drill.time));
    }
    for m in &p.mirrors {
        if m.last_drill.is_some() && !m.verified {
            amber.push(format!("the last drill of mirror {} failed", m.mirror));
        }
        if m.last_refresh_failed {
            amber.push(format!("the last refresh of mirror {} failed", m.mirror));
        }
    }
    for problem in &p.problems {
        red.push(problem.clone());
    }
    let (level, reasons) = if !red.is_empty() {
        (HealthLevel::Red, red)
    } else if !amber.is_empty() {
        (HealthLevel::Amber, amber)
    } else if p.rpo_target_seconds.is_none() && p.rto_target_seconds.is_none() {
        (
            HealthLevel::Unknown,
            vec!["no RPO or RTO target set".into()],
        )
    } else if p.last_drill.is_none() || (p.rto_target_seconds.is_some() && p.rto_met.is_none()) {
        (
            HealthLevel::Unknown,
            vec!["no drill has measured recovery yet".into()],
        )
    } else {
        (HealthLevel::Green, Vec::new())
    };
    Health { level, reasons }
}

/// One plan's figures.
#[derive(Clone, Debug, Serialize)]
pub struct PlanReport {
    /// The status light, from the targets.
    pub health: Health,
    /// The plan's name.
    pub name: String,
    /// Its repository's name.
    pub repository: String,
    /// Age of the newest recovery point a drill verified, seconds: a
    /// snapshot, or for a plan of files alone, a verified mirror.
    pub rpo_seconds: Option<f64>,
    /// The RPO target, seconds.
    pub rpo_target_seconds: Option<u64>,
    /// `rpo_seconds` within the target (`None` without a target).
    pub rpo_met: Option<bool>,
    /// Age of the newest snapshot of any kind, seconds.
    pub newest_snapshot_age_seconds: Option<f64>,
    /// The last measured recovery time, seconds.
    pub rto_seconds: Option<f64>,
    /// The RTO target, seconds.
    pub rto_target_seconds: Option<u64>,
    /// `rto_seconds` within the target, or a verified mirror covers the
    /// plan (`None` without a target or a measurement).
    pub rto_met: Option<bool>,
    /// The verified mirror counted as the plan's recovery point, if any.
    pub recovery_via_mirror: Option<String>,
    /// The plan's mirrors.
    pub mirrors: Vec<MirrorPoint>,
    /// The measured recovery times of the last drills, oldest first.
    pub rto_trend_seconds: Vec<f64>,
    /// Backup success rates.
    pub backup_success_rate: Rates,
    /// Restore (drill) success rates.
    pub restore_success_rate: Rates,
    /// Median backup run time in the reported period, seconds.
    pub backup_seconds_median: Option<f64>,
    /// 95th percentile of backup run times in the reported period, seconds.
    pub backup_seconds_p95: Option<f64>,
    /// The newest snapshot's time (RFC 3339).
    pub last_backup: Option<String>,
    /// The newest verified snapshot's time (RFC 3339).
    pub last_verified: Option<String>,
    /// The last drill.
    pub last_drill: Option<DrillSummary>,
    /// The last successful backup run's end, Unix seconds.
    pub last_success_timestamp: Option<f64>,
    /// The newest verified snapshot's time, Unix seconds.
    pub last_verified_timestamp: Option<f64>,
    /// Snapshots of the plan.
    pub snapshots: u64,
    /// Bytes of the sources in the newest successful backup run.
    pub protected_bytes: u64,
    /// Bytes the plan's backups stored in the reported period.
    pub added_bytes: u64,
    /// Runs by kind and status (every record kept).
    pub runs: BTreeMap<String, BTreeMap<String, u64>>,
    /// The last run of each kind: seconds it took.
    pub last_run_seconds: BTreeMap<String, f64>,
    /// Every run in the reported period, oldest first.
    pub history: Vec<RunPoint>,
    /// Problems reading the plan's history.
    pub problems: Vec<String>,
}

/// One run, for charts.
#[derive(Clone, Debug, Serialize)]
pub struct RunPoint {
    /// When it started (RFC 3339).
    pub time: String,
    /// When it started, Unix seconds.
    pub timestamp: f64,
    /// `backup`, `drill`, `prune`, `copy`, `check`.
    pub kind: &'static str,
    /// `success`, `failure`, `skipped`.
    pub status: &'static str,
    /// How long it took.
    pub seconds: f64,
    /// Bytes it stored.
    pub bytes_added: u64,
    /// A drill's measured recovery time.
    pub rto_seconds: Option<f64>,
}

/// One repository's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepositoryReport {
    /// The repository's name in the config.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Bytes in storage (packs, index, snapshots, run records, keys).
    pub size_bytes: u64,
    /// Bytes of all snapshots' sources.
    pub logical_bytes: u64,
    /// Plaintext bytes after deduplication.
    pub deduplicated_bytes: u64,
    /// logical ÷ deduplicated.
    pub deduplication_ratio: f64,
    /// Deduplicated ÷ stored.
    pub compression_ratio: f64,
    /// The storage price used, USD per GiB and month.
    pub price_per_gib_month: f64,
    /// size × price.
    pub monthly_cost: f64,
    /// Average bytes added per day by backups in the reported period,
    /// minus what prunes freed (`None` without runs recorded in it).
    pub growth_bytes_per_day: Option<f64>,
    /// Days until the size doubles at that rate (`None` when not growing).
    pub doubling_days: Option<f64>,
    /// Why the repository could not be read, if it could not.
    pub error: Option<String>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When it was made (RFC 3339).
    pub generated_at: String,
    /// The reported period, seconds.
    pub since_seconds: u64,
    /// The date of the default storage prices.
    pub prices_as_of: &'static str,
    /// Per plan.
    pub plans: Vec<PlanReport>,
    /// Per repository.
    pub repositories: Vec<RepositoryReport>,
}

/// What one repository holds, read once for every plan that uses it.
struct Holdings {
    snapshots: Vec<SnapshotEntry>,
    records: Vec<RunRecord>,
}

/// Makes the report for `plans` (all when empty) as of `now_ns`, with
/// durations, data added and growth over the last `since_ns`.
pub fn report(
    ops: &Operations,
    plans: &[String],
    now_ns: i64,
    since_ns: i64,
) -> Result<Report, OpsError> {
    for p in plans {
        ops.plan(p)?;
    }
    let chosen: Vec<(&String, &PlanConfig)> = ops
        .config
        .plans
        .iter()
        .filter(|(n, _)| plans.is_empty() || plans.contains(n))
        .collect();
    let mut repositories: BTreeMap<String, Result<Holdings, String>> = BTreeMap::new();
    let mut repo_reports = Vec::new();
    let mut wanted: Vec<&str> = Vec::new();
    for (_, plan) in &chosen {
        wanted.push(plan.repository.get_ref());
        wanted.extend(plan.copy_to.iter().map(|c| c.get_ref().as_str()));
    }
    wanted.sort();
    wanted.dedup();
    for name in wanted {
        let url = ops.config.repositories[name].url.clone();
        let mut r = RepositoryReport {
            name: name.to_string(),
            url: url.clone(),
            ..Default::default()
        };
        let read = ops
            .open_repository(name)
            .and_then(|repo| {
                repo.load_index().map_err(|source| OpsError::Repository {
                    repository: name.to_string(),
                    source,
                })
            })
            .and_then(|repo| {
                let held = holdings(&repo).map_err(|source| OpsError::Repository {
                    repository: name.to_string(),
                    source,
                })?;
                measure(&repo, &held, &mut r, now_ns, since_ns).map_err(|source| {
                    OpsError::Repository {
                        repository: name.to_string(),
                        source,
                    }
                })?;
                Ok(held)
            })
            .map_err(|e| e.to_string());
        r.price_per_gib_month = price_per_gib_month(&ops.config.prices, &url);
        r.monthly_cost = r.size_bytes as f64 / (1u64 << 30) as f64 * r.price_per_gib_month;
        if let Err(e) = &read {
            r.error = Some(e.clone());
        }
        repositories.insert(name.to_string(), read);
        repo_reports.push(r);
    }
    let plans = chosen
        .into_iter()
        .map(|(name, plan)| {
            let repo = plan.repository.get_ref();
            match &repositories[repo] {
                Ok(h) => plan_report(
                    name,
                    Some(plan),
                    repo,
                    &h.snapshots,
                    &h.records,
                    now_ns,
                    since_ns,
                ),
                Err(e) => {
                    let mut r = plan_report(name, Some(plan), repo, &[], &[], now_ns, since_ns);
                    r.problems.push(e.clone());
                    r.health = health(&r, false);
                    r
                }
            }
        })
        .collect();
    Ok(Report {
        generated_at: rfc3339(now_ns),
        since_seconds: (since_ns / 1_000_000_000) as u64,
        prices_as_of: PRICES_AS_OF,
        plans,
        repositories: repo_reports,
    })
}

fn holdings(repo: &Repository<Indexed>) -> bunker_engine::Result<Holdings> {
    let snapshots = repo.snapshots()?;
    let list = repo.run_records()?;
    for (id, e) in &list.unreadable {
        repo.notices()
            .add(format!("run record {} cannot be read: {e}", id.short()));
    }
    Ok(Holdings {
        snapshots,
        records: list.records.into_iter().map(|(_, r)| r).collect(),
    })
}

/// Sizes, ratios and growth of one repository.
fn measure(
    repo: &Repository<Indexed>,
    held: &Holdings,
    r: &mut RepositoryReport,
    now_ns: i64,
    since_ns: i64,
) -> bunker_engine::Result<()> {
    use bunker_engine::backend::FileKind;
    for kind in [
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Key,
        FileKind::Run,
        FileKind::Tombstone,
    ] {
        r.size_bytes += repo
            .backend()
            .list(kind)?
            .iter()
            .map(|f| f.size)
            .sum::<u64>();
    }
    let mut stored = 0u64;
    for blob in repo.index().blobs() {
        let (_, loc) = blob?;
        r.deduplicated_bytes += loc.raw_length as u64;
        stored += loc.length as u64;
    }
    r.logical_bytes = held
        .snapshots
        .iter()
        .map(|e| e.snapshot.summary.total_bytes)
        .sum();
    r.deduplication_ratio = ratio(r.logical_bytes, r.deduplicated_bytes);
    r.compression_ratio = ratio(r.deduplicated_bytes, stored);
    let from = now_ns - since_ns;
    let window: Vec<&RunRecord> = held
        .records
        .iter()
        .filter(|x| x.started_ns >= from)
        .collect();
    // Days actually covered by the history, so a young repository's growth
    // is not diluted over a period it did not exist in.
    let first = window.iter().map(|x| x.started_ns).min();
    if let Some(first) = first {
        let days = ((now_ns - first) as f64 / DAY as f64).max(1.0);
        // Copies are recorded in their source repository: what they add
        // is another repository's growth.
        let added: u64 = window
            .iter()
            .filter(|x| x.kind == RunKind::Backup)
            .map(|x| x.bytes_added)
            .sum();
        let freed: u64 = window
            .iter()
            .filter(|x| x.kind == RunKind::Prune)
            .map(|x| x.bytes)
            .sum();
        let growth = (added as f64 - freed as f64) / days;
        r.growth_bytes_per_day = Some(growth);
        if growth > 0.0 {
            r.doubling_days = Some(r.size_bytes as f64 / growth);
        }
    }
    Ok(())
}

fn ratio(a: u64, b: u64) -> f64 {
    match b {
        0 => 1.0,
        _ => a as f64 / b as f64,
    }
}

/// One plan's figures from its repository's snapshots and run records.
pub fn plan_report(
    name: &str,
    plan: Option<&PlanConfig>,
    repository: &str,
    snapshots: &[SnapshotEntry],
    records: &[RunRecord],
    now_ns: i64,
    since_ns: i64,
) -> PlanReport {
    let mine: Vec<&RunRecord> = records.iter().filter(|r| r.plan == name).collect();
    // A drill with a peer compared a mirror: it is reported with the mirror.
    let of = |kind: RunKind| {
        mine.iter()
            .copied()
            .filter(move |r| r.kind == kind && (kind != RunKind::Drill || r.peer.is_none()))
    };
    let snaps: Vec<&SnapshotEntry> = plan_snapshots(snapshots, name).collect();
    let age = |t: i64| (now_ns - t) as f64 / 1e9;

    let newest = snaps.iter().map(|e| e.snapshot.time_ns).max();
    let verified_ids: std::collections::HashSet<SnapshotId> = of(RunKind::Drill)
        .flat_map(|r| r.verified.iter().copied())
        .collect();
    let newest_verified = snaps
        .iter()
        .filter(|e| verified_ids.contains(&e.id))
        .map(|e| e.snapshot.time_ns)
        .max();
    // Targets: the config's, else the newest recorded (a report made
    // without the config still judges by what the plan said).
    let rpo_target = plan
        .and_then(|p| p.rpo.map(|i| i.0.as_secs()))
        .or_else(|| mine.iter().rev().find_map(|r| r.rpo_target_secs));
    let rto_target = plan
        .and_then(|p| p.rto.map(|i| i.0.as_secs()))
        .or_else(|| mine.iter().rev().find_map(|r| r.rto_target_secs));
    let mirrors = mirror_points(plan, &mine, now_ns);
    // A mirror holds files only: it covers a plan without databases.
    let has_databases = match plan {
        Some(p) => !p.databases.is_empty(),
        None => snaps.iter().any(|e| e.snapshot.database.is_some()),
    };
    let covering = mirrors
        .iter()
        .filter(|m| m.verified && !has_databases)
        .filter_map(|m| m.age_seconds.map(|a| (a, m)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let rpo = match (newest_verified.map(age), covering.map(|c| c.0)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let measured: Vec<(i64, f64)> = of(RunKind::Drill)
        .filter_map(|r| r.rto_micros.map(|m| (r.started_ns, m as f64 / 1e6)))
        .collect();
    let rto = measured.last().map(|(_, s)| *s);
    let last_drill = of(RunKind::Drill).next_back().map(|r| DrillSummary {
        time: rfc3339(r.started_ns),
        passed: r.status == RunStatus::Success,
        rto_seconds: r.rto_micros.map(|m| m as f64 / 1e6),
        messages: r.messages.clone(),
    });
    let from = now_ns - since_ns;
    let mut durations: Vec<f64> = of(RunKind::Backup)
        .filter(|r| r.started_ns >= from && r.status != RunStatus::Skipped)
        .map(RunRecord::seconds)
        .collect();
    durations.sort_by(f64::total_cmp);
    let mut runs: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut last_run_seconds = BTreeMap::new();
    for r in &mine {
        *runs
            .entry(r.kind.name().into())
            .or_default()
            .entry(r.status.name().into())
            .or_default() += 1;
        if r.status != RunStatus::Skipped {
            last_run_seconds.insert(r.kind.name().to_string(), r.seconds());
        }
    }
    let last_backup_failed = of(RunKind::Backup)
        .rfind(|r| r.status != RunStatus::Skipped)
        .is_some_and(|r| r.status == RunStatus::Failure);
    let last_success = of(RunKind::Backup)
        .filter(|r| r.status == RunStatus::Success)
        .map(|r| r.finished_ns)
        .max();
    let mut report = PlanReport {
        health: Health {
            level: HealthLevel::Unknown,
            reasons: Vec::new(),
        },
        name: name.to_string(),
        repository: repository.to_string(),
        rpo_seconds: rpo,
        rpo_target_seconds: rpo_target,
        rpo_met: rpo_target.map(|t| rpo.is_some_and(|s| s <= t as f64)),
        newest_snapshot_age_seconds: newest.map(age),
        rto_seconds: rto,
        rto_target_seconds: rto_target,
        rto_met: rto_target.and_then(|t| match covering {
            Some(_) => Some(true),
            None => rto.map(|s| s <= t as f64),
        }),
        recovery_via_mirror: covering.map(|(_, m)| m.mirror.clone()),
        mirrors: mirrors.clone(),
        rto_trend_seconds: measured
            .iter()
            .rev()
            .take(20)
            .rev()
            .map(|(_, s)| *s)
            .collect(),
        backup_success_rate: rates(of(RunKind::Backup), now_ns),
        restore_success_rate: rates(of(RunKind::Drill), now_ns),
        backup_seconds_median: percentile(&durations, 0.5),
        backup_seconds_p95: percentile(&durations, 0.95),
        last_backup: newest.map(rfc3339),
        last_verified: newest_verified.map(rfc3339),
        last_drill,
        last_success_timestamp: last_success.map(|t| t as f64 / 1e9),
        last_verified_timestamp: newest_verified.map(|t| t as f64 / 1e9),
        snapshots: snaps.len() as u64,
        protected_bytes: of(RunKind::Backup)
            .rfind(|r| r.status == RunStatus::Success)
            .map_or(0, |r| r.bytes),
        added_bytes: of(RunKind::Backup)
            .filter(|r| r.started_ns >= from)
            .map(|r| r.bytes_added)
            .sum(),
        runs,
        last_run_seconds,
        history: mine
            .iter()
            .filter(|r| r.started_ns >= from)
            .map(|r| RunPoint {
                time: rfc3339(r.started_ns),
                timestamp: r.started_ns as f64 / 1e9,
                kind: r.kind.name(),
                status: r.status.name(),
                seconds: r.seconds(),
                bytes_added: r.bytes_added,
                rto_seconds: r.rto_micros.map(|m| m as f64 / 1e6),
            })
            .collect(),
        problems: Vec::new(),
    };
    report.health = health(&report, last_backup_failed);
    report
}

/// The plan's mirrors (the config's, and any its records name) as
/// recovery points: their last complete refresh and their last drill.
fn mirror_points(plan: Option<&PlanConfig>, mine: &[&RunRecord], now_ns: i64) -> Vec<MirrorPoint> {
    let mut names: Vec<String> = plan
        .map(|p| p.mirrors.iter().map(|m| m.to_string()).collect())
        .unwrap_or_default();
    for r in mine.iter().filter(|r| r.kind == RunKind::Mirror) {
        if let Some(peer) = &r.peer {
            if !names.contains(peer) {
                names.push(peer.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let peer = name.as_str();
            let of = |kind: RunKind| {
                mine.iter()
                    .copied()
                    .filter(move |r| r.kind == kind && r.peer.as_deref() == Some(peer))
            };
            let complete = |r: &&RunRecord| r.status == RunStatus::Success && r.messages.is_empty();
            let refreshed = of(RunKind::Mirror)
                .filter(complete)
                .map(|r| r.finished_ns)
                .max();
            let last_refresh_failed = of(RunKind::Mirror)
                .max_by_key(|r| r.started_ns)
                .is_some_and(|r| !complete(&r));
            let drill = of(RunKind::Drill).max_by_key(|r| r.started_ns);
            let verified = drill.is_some_and(|r| r.status == RunStatus::Success);
            MirrorPoint {
                last_refresh: refreshed.map(rfc3339),
                age_seconds: refreshed.map(|t| (now_ns - t) as f64 / 1e9),
                last_refresh_failed,
                last_drill: drill.map(|r| rfc3339(r.started_ns)),
                verified,
                rto_seconds: verified.then_some(0.0),
                messages: drill.map(|r| r.messages.clone()).unwrap_or_default(),
                mirror: name.clone(),
            }
        })
        .collect()
}

/// Success rates of `runs` over 7, 30 and 90 days before `now_ns`.
fn rates<'a>(runs: impl Iterator<Item = &'a RunRecord>, now_ns: i64) -> Rates {
    let runs: Vec<&RunRecord> = runs.filter(|r| r.status != RunStatus::Skipped).collect();
    let rate = |days: i64| {
        let window: Vec<_> = runs
            .iter()
            .filter(|r| r.started_ns >= now_ns - days * DAY && r.started_ns <= now_ns)
            .collect();
        let ok = window
            .iter()
            .filter(|r| r.status == RunStatus::Success)
            .count();
        (!window.is_empty()).then(|| ok as f64 / window.len() as f64)
    };
    Rates {
        d7: rate(7),
        d30: rate(30),
        d90: rate(90),
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Unix nanoseconds as RFC 3339, UTC, to the second.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests;
