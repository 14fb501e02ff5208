//! `bunker copy`

use std::path::PathBuf;

use anyhow::Result;
use bunker_engine::copy::{copy, CopyOptions};
use bunker_engine::find::find_snapshot;
use serde_json::json;

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::password::{self, Whose};
use crate::{exit, format, progress};

/// Copy snapshots to another repository (on any backend)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The destination repository (a path or URL, as for -r)
    #[arg(long, value_name = "URL")]
    to: String,
    /// Read the destination's password from the first line of this file
    /// (or BUNKER_TO_PASSWORD_FILE, BUNKER_TO_PASSWORD, BUNKER_TO_PASSWORD_COMMAND)
    #[arg(long, value_name = "FILE")]
    to_password_file: Option<PathBuf>,
    /// Snapshots to copy: ids, unique prefixes, or "latest" (default: every
    /// snapshot that passes --host/--tag/--path)
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Show what would be copied, write nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
}

/// Copies the chosen snapshots of `-r` into `--to`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let source = Target::select(global)?.open_indexed(global)?;
    let to = Target::named(&args.to, global)?;
    let to_password = password::obtain_for(
        Whose::CopyDestination,
        args.to_password_file.as_deref(),
        "destination password: ",
        "--to-password-file FILE",
    )?;
    let dest = to.open_with(global, &to_password)?;
    if dest.config().id == source.config().id {
        anyhow::bail!("the source and the destination are the same repository");
    }

    let filter = args.filter.filter();
    let all = source.snapshots()?;
    let selected = match args.snapshots.is_empty() {
        true => filter.apply(all),
        false => args
            .snapshots
            .iter()
            .map(|name| find_snapshot(&all, name, &filter))
            .collect::<bunker_engine::Result<Vec<_>>>()?,
    };
    let reporter = progress::for_operation(global, "copy");
    let report = copy(
        &source,
        dest,
        selected,
        &CopyOptions {
            dry_run: args.dry_run,
        },
        reporter.clone(),
    )?;
    reporter.finish();

    if global.json {
        super::print_json(&json!({
            "message_type": "copy_summary",
            "dry_run": args.dry_run,
            "copied": report.copied.iter().map(|c| json!({
                "source": c.source.to_hex(),
                "copy": c.copy.map(|id| id.to_hex()),
            })).collect::<Vec<_>>(),
            "already_present": report.present.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "blobs_added": report.blobs,
            "bytes_added": report.bytes,
            "bytes_stored": report.stored_bytes,
            "same_blob_ids": report.same_blob_ids,
        }));
    } else if !global.quiet {
        for c in &report.copied {
            match c.copy {
                Some(id) => crate::outln!("copied snapshot {} as {}", c.source.short(), id.short()),
                None => crate::outln!("would copy snapshot {}", c.source.short()),
            }
        }
        crate::outln!(
            "{} snapshot(s) {}, {} already in {}; {} blobs ({}) added, {} stored",
            report.copied.len(),
            if args.dry_run { "to copy" } else { "copied" },
            report.present.len(),
            to.location,
            report.blobs,
            format::bytes(report.bytes),
            format::bytes(report.stored_bytes),
        );
    }
    Ok(exit::OK)
}
