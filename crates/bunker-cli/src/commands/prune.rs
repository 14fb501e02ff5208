//! `bunker prune`

use anyhow::Result;
use bunker_engine::prune::{prune, PruneOptions, PruneReport};
use bunker_engine::Open;
use bunker_engine::Repository;
use serde_json::json;

use crate::context::{GlobalArgs, Target};
use crate::{exit, format};

/// Delete data no snapshot references; safe while backups run.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub options: PruneArgs,
    /// Show what would be deleted and repacked; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Options shared with `forget --prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Repack a pack when at least this share of it is unused
    #[arg(long, value_name = "PERCENT", default_value = "25%", value_parser = parse_percent)]
    pub repack_threshold: f64,
}

/// `25%` or `25` → 0.25.
fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    match t.strip_suffix('%').unwrap_or(t).parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "{text:?} is not a percentage between 0 and 100, like 25%"
        )),
    }
}

impl PruneArgs {
    /// The engine's options.
    pub fn options(&self, dry_run: bool) -> PruneOptions {
        PruneOptions {
            repack_threshold: self.repack_threshold,
            dry_run,
        }
    }
}

/// Prunes and prints what was freed.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let options = args.options.options(args.dry_run);
    let repo = Target::select(global)?.open(global)?;
    run_on(repo, &options, global)
}

/// Prunes an open repository (also used by `forget --prune`).
pub fn run_on(repo: Repository<Open>, options: &PruneOptions, global: &GlobalArgs) -> Result<i32> {
    let report = prune(repo, options)?;
    print(&report, global);
    Ok(exit::OK)
}

fn print(r: &PruneReport, global: &GlobalArgs) {
    if global.json {
        super::print_json(&json!({
            "dry_run": r.dry_run,
            "snapshots": r.snapshots,
            "packs_deleted": r.packs_deleted,
            "bytes_deleted": r.bytes_deleted,
            "indexes_deleted": r.indexes_deleted,
            "packs_repacked": r.packs_repacked,
            "blobs_repacked": r.blobs_repacked,
            "bytes_repacked": r.bytes_repacked,
            "packs_rescued": r.packs_rescued,
            "packs_waiting": r.packs_waiting,
            "bytes_waiting": r.bytes_waiting,
            "sessions_waiting": r.sessions_waiting,
            "generation": r.generation,
            "small_packs_merged": r.small_packs_merged,
            "staged_files_removed": r.staged_removed,
            "staged_bytes_removed": r.staged_bytes,
            "withdrawn_snapshots_removed": r.withdrawn_removed,
            "tombstones_merged": r.tombstones_merged,
            "retention_renewed": r.retention_renewed,
            "warnings": r.warnings,
        }));
        return;
    }
    for w in &r.warnings {
        crate::errln!("bunker: warning: {w}");
    }
    if global.quiet {
        return;
    }
    let (delete, repack) = match r.dry_run {
        true => ("would delete", "would repack"),
        false => ("deleted", "repacked"),
    };
    crate::outln!(
        "{delete} {} packs ({}) and {} index files",
        r.packs_deleted,
        format::bytes(r.bytes_deleted),
        r.indexes_deleted
    );
    if r.packs_repacked > 0 {
        crate::outln!(
            "{repack} {} packs: copied {} blobs ({}) that snapshots still use",
            r.packs_repacked,
            r.blobs_repacked,
            format::bytes(r.bytes_repacked)
        );
    }
    if r.small_packs_merged > 0 {
        crate::outln!(
            "merged {} small packs into larger ones",
            r.small_packs_merged
        );
    }
    if r.staged_removed > 0 {
        let verb = if r.dry_run { "would remove" } else { "removed" };
        crate::outln!(
            "{verb} {} unfinished files ({}) left in tmp/ by processes that died",
            r.staged_removed,
            format::bytes(r.staged_bytes)
        );
    }
    if r.withdrawn_removed > 0 {
        let verb = if r.dry_run { "would delete" } else { "deleted" };
        crate::outln!(
            "{verb} {} forgotten snapshot file(s) that were back in storage",
            r.withdrawn_removed
        );
    }
    if r.retention_renewed > 0 {
        crate::outln!(
            "Object Lock retention of {} files extended",
            r.retention_renewed
        );
    }
    if r.packs_rescued > 0 {
        crate::outln!(
            "kept {} condemned packs that a snapshot written meanwhile uses",
            r.packs_rescued
        );
    }
    if r.sessions_waiting > 0 {
        crate::outln!(
            "{} packs ({}) are condemned but kept until {} backup(s) that started before them finish; run prune again later",
            r.packs_waiting,
            format::bytes(r.bytes_waiting),
            r.sessions_waiting
        );
    }
}
