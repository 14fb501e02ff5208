//! `bunker restore`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use bunker_engine::find::find_snapshot;
use bunker_engine::restore::{restore, Overwrite, RestoreOptions};
use bunker_engine::source::PatternSet;
use serde_json::json;

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::exit::Usage;
use crate::{exit, format, progress};

/// Restore a snapshot into a directory.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// SNAPSHOT or SNAPSHOT:PATH (id, unique id prefix, or "latest")
    snapshot: String,
    /// Directory to restore into
    #[arg(long, short = 't', value_name = "DIR")]
    target: PathBuf,
    /// Restore only paths matching this pattern (repeatable)
    #[arg(long = "include", short = 'i', value_name = "GLOB")]
    includes: Vec<String>,
    /// Leave out paths matching this pattern (repeatable)
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    excludes: Vec<String>,
    /// Re-read every restored file and check it against the snapshot
    #[arg(long)]
    verify: bool,
    /// Which existing files to replace: always, if-changed (content differs), if-newer, never
    #[arg(long, value_enum, default_value_t = OverwriteArg::IfChanged)]
    overwrite: OverwriteArg,
    /// Remove files and directories in the target that the snapshot does not have
    #[arg(long)]
    delete: bool,
    /// Show what would change, change nothing
    #[arg(long, short = 'n')]
    dry_run: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OverwriteArg {
    Always,
    IfChanged,
    IfNewer,
    Never,
}

impl From<OverwriteArg> for Overwrite {
    fn from(o: OverwriteArg) -> Self {
        match o {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::IfNewer => Overwrite::IfNewer,
            OverwriteArg::Never => Overwrite::Never,
        }
    }
}

/// Restores; exits non-zero if any file could not be restored intact.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let (name, subpath) = match args.snapshot.split_once(':') {
        Some((n, p)) => (n.to_string(), p.to_string()),
        None => (args.snapshot.clone(), "/".to_string()),
    };
    let includes = PatternSet::new(args.includes).map_err(|e| Usage(e.to_string()))?;
    let excludes = PatternSet::new(args.excludes).map_err(|e| Usage(e.to_string()))?;
    let target = Target::select(global)?;
    let repo = target.open_indexed(global)?;
    let entry = find_snapshot(&repo.snapshots()?, &name, &args.filter.filter())?;
    let options = RestoreOptions {
        target: args.target.clone(),
        subpath,
        includes,
        excludes,
        protected: target.protected_from_restore(global),
        verify: args.verify,
        overwrite: args.overwrite.into(),
        delete: args.delete,
        dry_run: args.dry_run,
    };
    let reporter = progress::for_operation(global, "restore");
    let started = Instant::now();
    let result = restore(repo, &entry.snapshot.tree, &options, reporter.clone());
    reporter.finish();
    let summary = result?;
    let seconds = started.elapsed().as_secs_f64();
    if global.json {
        let changes: Vec<_> = summary
            .changes
            .iter()
            .map(|(mark, path)| json!({ "change": mark.to_string(), "path": path }))
            .collect();
        super::print_json(&json!({
            "message_type": "summary",
            "dry_run": args.dry_run,
            "snapshot_id": entry.id.to_hex(),
            "files": summary.files,
            "unchanged": summary.unchanged,
            "kept": summary.kept,
            "dirs": summary.dirs,
            "specials": summary.specials,
            "deleted": summary.deleted,
            "bytes": summary.bytes,
            "reused_bytes": summary.reused_bytes,
            "verified": summary.verified,
            "changes": changes,
            "errors": summary.errors,
            "warnings": summary.warnings,
            "seconds": seconds,
        }));
    } else {
        for w in &summary.warnings {
            crate::errln!("bunker: warning: {w}");
        }
        for e in &summary.errors {
            crate::errln!("bunker: error: {e}");
        }
        for (mark, path) in &summary.changes {
            crate::outln!("{mark}    {path}");
        }
        if !global.quiet {
            let verb = if args.dry_run {
                "would restore"
            } else {
                "restored"
            };
            crate::outln!(
                "{verb} snapshot {} into {}: {} files written, {} unchanged, {} kept, {} directories, {} removed; {} in {}",
                entry.id.short(),
                args.target.display(),
                summary.files,
                summary.unchanged,
                summary.kept,
                summary.dirs,
                summary.deleted,
                format::bytes(summary.bytes),
                format::duration(seconds)
            );
            if summary.reused_bytes > 0 {
                crate::outln!(
                    "{} of rewritten files came from the existing copies",
                    format::bytes(summary.reused_bytes)
                );
            }
            if args.verify && !args.dry_run {
                crate::outln!("verified {} files against the snapshot", summary.verified);
            }
        }
    }
    Ok(if summary.errors.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
