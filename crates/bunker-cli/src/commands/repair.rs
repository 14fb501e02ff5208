//! `bunker repair index|snapshots`

use anyhow::Result;
use bunker_engine::repair::{repair_index, repair_snapshots};
use serde_json::json;

use crate::context::{GlobalArgs, Target};
use crate::exit;

/// Rebuild the index from the packs, or rewrite damaged snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Rebuild the index from every pack's own header, replacing the index files
    Index,
    /// Write, for each damaged snapshot, a new one without the damaged files
    Snapshots {
        /// Find damage by reading every pack (default: structure only)
        #[arg(long)]
        read_data: bool,
        /// Remove each damaged original once its repaired copy is written
        #[arg(long)]
        forget: bool,
        /// Show what would be left out; write nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
}

/// Runs the repair and reports it.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open(global)?;
    match args.what {
        What::Index => {
            let r = repair_index(repo)?;
            if global.json {
                super::print_json(&json!({
                    "packs": r.packs,
                    "blobs": r.blobs,
                    "replaced_index_files": r.replaced,
                    "unreadable_packs": r.unreadable,
                }));
            } else {
                for u in &r.unreadable {
                    crate::errln!("bunker: warning: left out of the index: {u}");
                }
                if !global.quiet {
                    crate::outln!(
                        "indexed {} blobs in {} packs; replaced {} index files",
                        r.blobs,
                        r.packs,
                        r.replaced
                    );
                }
            }
        }
        What::Snapshots {
            read_data,
            forget,
            dry_run,
        } => {
            let result = repair_snapshots(repo, read_data, forget, dry_run)?;
            let removed_unreadable = forget && !dry_run;
            if global.json {
                super::print_json(&json!({
                    "repaired": result.repaired
                        .iter()
                        .map(|r| json!({
                            "original": r.original.id.to_hex(),
                            "repaired": r.repaired.map(|i| i.to_hex()),
                            "removed": r.removed,
                            "original_forgotten": forget && !dry_run,
                        }))
                        .collect::<Vec<_>>(),
                    "unreadable": result.unreadable.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "unreadable_removed": removed_unreadable,
                }));
            } else if !global.quiet {
                if result.repaired.is_empty() && result.unreadable.is_empty() {
                    crate::outln!("no damaged snapshots");
                }
                for r in &result.repaired {
                    let new = r.repaired.map_or("(dry run)".to_string(), |i| i.short());
                    crate::outln!(
                        "snapshot {} -> {}: left out {} path(s)",
                        r.original.id.short(),
                        new,
                        r.removed.len()
                    );
                    for p in &r.removed {
                        crate::outln!("  - {p}");
                    }
                }
                for id in &result.unreadable {
                    match removed_unreadable {
                        true => crate::outln!("snapshot {}: its file is unreadable; removed", id.short()),
                        false => crate::outln!(
                            "snapshot {}: its file is unreadable, nothing in it can be saved; --forget removes it",
                            id.short()
                        ),
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}
