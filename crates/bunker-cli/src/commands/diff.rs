//! `bunker diff`

use anyhow::Result;
use bunker_engine::diff::{diff, Change};
use bunker_engine::find::find_snapshot;
use serde_json::json;

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::exit;

/// Show what changed between two snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The earlier snapshot (id, prefix or "latest")
    first: String,
    /// The later snapshot
    second: String,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Prints one line per changed path: `+` added, `-` removed, `M` modified, `U` metadata only.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open_indexed(global)?;
    let list = repo.snapshots()?;
    let a = find_snapshot(&list, &args.first, &args.filter.filter())?;
    let b = find_snapshot(&list, &args.second, &args.filter.filter())?;
    let changes = diff(&repo, &a.snapshot.tree, &b.snapshot.tree)?;
    let count = |c: Change| changes.iter().filter(|e| e.change == c).count();
    if global.json {
        let items: Vec<_> = changes
            .iter()
            .map(|e| json!({ "path": e.path, "change": e.change.name(), "type": e.kind.name() }))
            .collect();
        super::print_json(&json!({
            "first": a.id.to_hex(),
            "second": b.id.to_hex(),
            "changes": items,
            "added": count(Change::Added),
            "removed": count(Change::Removed),
            "modified": count(Change::Modified),
            "metadata": count(Change::Metadata),
        }));
        return Ok(exit::OK);
    }
    for e in &changes {
        let slash = if e.kind == bunker_engine::format::tree::NodeKind::Dir {
            "/"
        } else {
            ""
        };
        crate::outln!("{}    {}{slash}", e.change.mark(), e.path);
    }
    if !global.quiet {
        crate::outln!(
            "{} added, {} removed, {} modified, {} with changed metadata only",
            count(Change::Added),
            count(Change::Removed),
            count(Change::Modified),
            count(Change::Metadata)
        );
    }
    Ok(exit::OK)
}
