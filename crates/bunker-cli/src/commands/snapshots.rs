//! `bunker snapshots`

use anyhow::Result;
use bunker_engine::SnapshotEntry;
use serde_json::{json, Value};

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::{exit, format};

/// List snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
}

/// One snapshot as JSON (shared with other commands' output).
pub fn snapshot_json(e: &SnapshotEntry) -> Value {
    let s = &e.snapshot;
    json!({
        "id": e.id.to_hex(),
        "short_id": e.id.short(),
        "time": format::time_rfc3339(s.time_ns),
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

/// Lists the snapshots that pass the filter, oldest first.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open(global)?;
    let entries = args.filter.filter().apply(repo.snapshots()?);
    if global.json {
        super::print_json(&Value::Array(entries.iter().map(snapshot_json).collect()));
        return Ok(exit::OK);
    }
    let rows: Vec<[String; 8]> = entries
        .iter()
        .map(|e| {
            let s = &e.snapshot;
            [
                e.id.short(),
                format::time(s.time_ns),
                s.hostname.clone(),
                s.tags.join(","),
                s.parent.map(|p| p.short()).unwrap_or_default(),
                format!(
                    "{}{}",
                    s.mode.name(),
                    if s.is_incomplete() {
                        " (incomplete)"
                    } else {
                        ""
                    }
                ),
                kind(e),
                s.paths.join(" "),
            ]
        })
        .collect();
    let header = [
        "ID", "Time", "Host", "Tags", "Parent", "Mode", "Kind", "Paths",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String; 8]| {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        crate::outln!("{}", cells.join("  ").trim_end());
    };
    line(&header);
    for r in &rows {
        line(r);
    }
    if !global.quiet {
        crate::outln!("{} snapshot(s)", rows.len());
    }
    Ok(exit::OK)
}

/// The kind column: `files`, or the database, its server version and row total.
fn kind(e: &SnapshotEntry) -> String {
    match &e.snapshot.database {
        None => "files".into(),
        Some(d) => {
            let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
            let version = d.server_version.split_whitespace().next().unwrap_or("");
            format!(
                "{} {version}: {} ({} tables, {rows} rows)",
                d.kind.name(),
                d.database,
                d.tables.len()
            )
        }
    }
}
