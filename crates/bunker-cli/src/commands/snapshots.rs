//! `bunker snapshots`

use anyhow::Result;
use bunker_engine::SnapshotEntry;
use bunker_ops::records::snapshot_json;
use serde_json::Value;

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::{exit, format};

/// List snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
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
