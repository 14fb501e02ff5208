//! `bunker restore`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use bunker_engine::find::find_snapshot;
use bunker_engine::restore::{restore, RestoreOptions};
use bunker_engine::source::PatternSet;
use serde_json::json;

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
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
    #[command(flatten)]
    filter: FilterArgs,
}

/// Restores; exits non-zero if any file could not be restored intact.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let (name, subpath) = match args.snapshot.split_once(':') {
        Some((n, p)) => (n.to_string(), p.to_string()),
        None => (args.snapshot.clone(), "/".to_string()),
    };
    let repo = Target::select(global)?.open_indexed(global)?;
    let entry = find_snapshot(&repo.snapshots()?, &name, &args.filter.filter())?;
    let options = RestoreOptions {
        target: args.target.clone(),
        subpath,
        includes: PatternSet::new(args.includes)?,
        excludes: PatternSet::new(args.excludes)?,
        verify: args.verify,
    };
    let reporter = progress::for_operation(global, "restore");
    let started = Instant::now();
    let result = restore(repo, &entry.snapshot.tree, &options, reporter.clone());
    reporter.finish();
    let summary = result?;
    let seconds = started.elapsed().as_secs_f64();
    if global.json {
        super::print_json(&json!({
            "message_type": "summary",
            "snapshot_id": entry.id.to_hex(),
            "files": summary.files,
            "dirs": summary.dirs,
            "specials": summary.specials,
            "bytes": summary.bytes,
            "verified": summary.verified,
            "errors": summary.errors,
            "seconds": seconds,
        }));
    } else {
        for e in &summary.errors {
            eprintln!("bunker: error: {e}");
        }
        if !global.quiet {
            crate::outln!(
                "restored snapshot {} into {}: {} files, {} directories, {} in {}",
                entry.id.short(),
                args.target.display(),
                summary.files,
                summary.dirs,
                format::bytes(summary.bytes),
                format::duration(seconds)
            );
            if args.verify {
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
