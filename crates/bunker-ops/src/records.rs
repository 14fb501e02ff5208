//! Reading and trimming a plan's history: its snapshots (tagged with its
//! name) and its run records; both as JSON.

use bunker_engine::format::id::RunId;
use bunker_engine::{Open, Repository, SnapshotEntry};

use serde_json::{json, Value};

use crate::schedule::Interval;

/// Run records a plan keeps at most, whatever their age: a plan that runs
/// every 20 seconds must not grow its repository's listing without end.
pub const MAX_RECORDS_PER_PLAN: usize = 20_000;

/// The snapshots of plan `name`: those tagged with it.
pub fn plan_snapshots<'a>(
    known: &'a [SnapshotEntry],
    name: &'a str,
) -> impl Iterator<Item = &'a SnapshotEntry> + 'a {
    known
        .iter()
        .filter(move |e| e.snapshot.tags.iter().any(|t| t == name))
}

/// Deletes plan `name`'s run records that started more than `keep` before
/// `now_ns`, and the oldest beyond [`MAX_RECORDS_PER_PLAN`]; returns how
/// many were deleted.
pub fn trim_records(
    repo: &Repository<Open>,
    name: &str,
    keep: Interval,
    now_ns: i64,
) -> bunker_engine::Result<usize> {
    let list = repo.run_records()?;
    let mine: Vec<_> = list
        .records
        .iter()
        .filter(|(_, r)| r.plan == name)
        .collect();
    let cutoff = now_ns.saturating_sub(keep.0.as_nanos().min(i64::MAX as u128) as i64);
    let excess = mine.len().saturating_sub(MAX_RECORDS_PER_PLAN);
    // Oldest first: the first `excess` go whatever their age.
    let gone: Vec<RunId> = mine
        .iter()
        .enumerate()
        .filter(|(i, (_, r))| *i < excess || r.started_ns < cutoff)
        .map(|(_, (id, _))| *id)
        .collect();
    repo.delete_run_records(&gone)?;
    Ok(gone.len())
}

/// A run record as JSON, for `--json` output and the daemon's API.
pub fn record_json(r: &bunker_engine::format::run_record::RunRecord) -> serde_json::Value {
    use crate::report::rfc3339;
    serde_json::json!({
        "kind": r.kind.name(),
        "plan": r.plan,
        "host": r.host,
        "started": rfc3339(r.started_ns),
        "finished": rfc3339(r.finished_ns),
        "seconds": r.seconds(),
        "status": r.status.name(),
        "messages": r.messages,
        "snapshots": r.snapshots.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
        "verified": r.verified.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
        "bytes": r.bytes,
        "files": r.files,
        "bytes_added": r.bytes_added,
        "phases": r.phases.iter().map(|p| serde_json::json!({"name": p.name, "seconds": p.micros as f64 / 1e6})).collect::<Vec<_>>(),
        "rto_seconds": r.rto_micros.map(|m| m as f64 / 1e6),
        "sample": r.sample_ppm.map(|p| p as f64 / 1e6),
        "rpo_target_seconds": r.rpo_target_secs,
        "rto_target_seconds": r.rto_target_secs,
        "peer": r.peer,
    })
}

/// One snapshot as JSON, for `snapshots --json` and the daemon's API.
pub fn snapshot_json(e: &SnapshotEntry) -> Value {
    let s = &e.snapshot;
    json!({
        "id": e.id.to_hex(),
        "short_id": e.id.short(),
        "time": time_ns_rfc3339(s.time_ns),
        "hostname": s.hostname,
        "username": s.username,
        "paths": s.paths,
        "tags": s.tags,
        "mode": s.mode.name(),
        "parent": s.parent.map(|p| p.to_hex()),
        "original": s.original.map(|o| o.to_hex()),
        "tree": s.tree.to_hex(),
        "incomplete": s.is_incomplete(),
        "skipped": s.skipped,
        "warnings": s.warnings,
        "excludes": s.excludes,
        "program_version": s.program_version,
        "kind": s.kind_name(),
        "database": s.database.as_ref().map(|d| json!({
            "kind": d.kind.name(),
            "server_version": d.server_version,
            "database": d.database,
            "dump_program": d.dump_program,
            "dump_file": d.dump_file,
            "globals_file": d.globals_file,
            "tables": d.tables.iter().map(|t| json!({
                "schema": t.schema,
                "table": t.name,
                "rows": t.rows,
            })).collect::<Vec<_>>(),
        })),
        "summary": {
            "files_new": s.summary.files_new,
            "files_changed": s.summary.files_changed,
            "files_unmodified": s.summary.files_unmodified,
            "dirs": s.summary.dirs,
            "bytes_read": s.summary.bytes_read,
            "total_bytes": s.summary.total_bytes,
            "bytes_added": s.summary.bytes_added,
            "bytes_stored": s.summary.bytes_stored,
        },
    })
}

/// A time in nanoseconds as RFC 3339, to the nanosecond.
pub fn time_ns_rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    .unwrap_or_default()
}
