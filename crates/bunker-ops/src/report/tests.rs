use super::*;
use bunker_engine::format::id::BlobId;
use bunker_engine::format::snapshot::{BackupMode, Snapshot};

const S: i64 = 1_000_000_000;
const NOW: i64 = 1_800_000_000 * S;

fn snapshot(id: u8, time_ns: i64, tag: &str) -> SnapshotEntry {
    SnapshotEntry {
        id: SnapshotId([id; 32]),
        snapshot: Snapshot {
            time_ns,
            hostname: "h".into(),
            username: "u".into(),
            paths: vec!["/src".into()],
            tags: vec![tag.into()],
            mode: BackupMode::Incremental,
            parent: None,
            tree: BlobId([0; 32]),
            summary: Default::default(),
            program_version: "bunker test".into(),
            excludes: vec![],
            skipped: vec![],
            warnings: vec![],
            original: None,
            database: None,
        },
    }
}

fn record(kind: RunKind, status: RunStatus, started_ns: i64, seconds: i64) -> RunRecord {
    let mut r = RunRecord::new(kind, "www", "h", started_ns);
    r.finished_ns = started_ns + seconds * S;
    r.status = status;
    r
}

#[test]
fn figures_from_a_known_history() {
    let day = 86_400 * S;
    let snaps = vec![
        snapshot(1, NOW - 40 * day, "www"),
        snapshot(2, NOW - 10 * day, "www"),
        snapshot(3, NOW - 2 * day, "www"),
        snapshot(4, NOW - day, "other"),
    ];
    let mut records = vec![
        // Backups: 35 days ago fails; 10 and 2 days ago succeed; 1 day ago fails; a skip.
        record(RunKind::Backup, RunStatus::Failure, NOW - 35 * day, 10),
        record(RunKind::Backup, RunStatus::Success, NOW - 10 * day, 20),
        record(RunKind::Backup, RunStatus::Success, NOW - 2 * day, 30),
        record(RunKind::Backup, RunStatus::Failure, NOW - day, 40),
        record(RunKind::Backup, RunStatus::Skipped, NOW - day / 2, 0),
    ];
    // A drill 9 days ago verified snapshot 2 in 100 s; one 12 hours ago failed.
    let mut drill = record(RunKind::Drill, RunStatus::Success, NOW - 9 * day, 100);
    drill.verified = vec![SnapshotId([2; 32])];
    drill.rto_micros = Some(100_000_000);
    records.push(drill);
    let mut failed = record(RunKind::Drill, RunStatus::Failure, NOW - day / 2, 5);
    failed.messages = vec!["pack damaged".into()];
    records.push(failed);
    let mut other = record(RunKind::Backup, RunStatus::Failure, NOW - day, 1);
    other.plan = "other".into();
    records.push(other);
    records[2].rpo_target_secs = Some(86_400);
    records[2].rto_target_secs = Some(60);
    records.sort_by_key(|r| r.started_ns);

    let r = plan_report("www", None, "main", &snaps, &records, NOW, 90 * day);
    assert_eq!(r.snapshots, 3);
    assert_eq!(r.newest_snapshot_age_seconds, Some(2.0 * 86_400.0));
    // RPO: snapshot 2, the newest verified, is 10 days old; targets from the records.
    assert_eq!(r.rpo_seconds, Some(10.0 * 86_400.0));
    assert_eq!(r.rpo_target_seconds, Some(86_400));
    assert_eq!(r.rpo_met, Some(false));
    assert_eq!(r.rto_seconds, Some(100.0));
    assert_eq!(r.rto_met, Some(false));
    assert_eq!(r.rto_trend_seconds, vec![100.0]);
    // 7 days: the failure a day ago and the success 2 days ago → 1/2;
    // 30 days: + the success 10 days ago → 2/3; 90 days: + the failure → 2/4.
    assert_eq!(
        r.backup_success_rate,
        Rates {
            d7: Some(0.5),
            d30: Some(2.0 / 3.0),
            d90: Some(0.5)
        }
    );
    assert_eq!(
        r.restore_success_rate,
        Rates {
            d7: Some(0.0),
            d30: Some(0.5),
            d90: Some(0.5)
        }
    );
    // Durations of the 4 backup runs that ran: 10, 20, 30, 40.
    assert_eq!(r.backup_seconds_median, Some(20.0));
    assert_eq!(r.backup_seconds_p95, Some(40.0));
    assert_eq!(r.runs["backup"]["failure"], 2);
    assert_eq!(r.runs["backup"]["skipped"], 1);
    assert_eq!(r.last_run_seconds["backup"], 40.0);
    let drill = r.last_drill.unwrap();
    assert!(!drill.passed);
    assert_eq!(drill.messages, vec!["pack damaged".to_string()]);
    assert_eq!(
        r.last_success_timestamp,
        Some((NOW - 2 * day + 30 * S) as f64 / 1e9)
    );

    // Nothing at all: every figure absent, rates null.
    let empty = plan_report("none", None, "main", &snaps, &records, NOW, 90 * day);
    assert_eq!(empty.rpo_seconds, None);
    assert_eq!(empty.backup_success_rate, Rates::default());
}

#[test]
fn percentiles_are_nearest_rank() {
    assert_eq!(percentile(&[], 0.5), None);
    assert_eq!(percentile(&[3.0], 0.95), Some(3.0));
    let v: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(percentile(&v, 0.5), Some(10.0));
    assert_eq!(percentile(&v, 0.95), Some(19.0));
}
