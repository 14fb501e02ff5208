//! `bunker upgrade`

use anyhow::Result;
use bunker_engine::upgrade::upgrade;
use serde_json::json;

use crate::context::{GlobalArgs, Target};
use crate::exit;

/// Move the repository to the newest format version in place, saying what changes.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only say what the upgrade would change
    #[arg(long, short = 'n')]
    dry_run: bool,
}

/// Upgrades the repository (or says what that would change).
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open(global)?;
    let report = upgrade(&repo, args.dry_run)?;
    let done = !args.dry_run && !report.changes.is_empty();
    if global.json {
        super::print_json(&json!({
            "from": report.from,
            "to": report.to,
            "changes": report.changes,
            "upgraded": done,
        }));
        return Ok(exit::OK);
    }
    if global.quiet {
        return Ok(exit::OK);
    }
    if report.changes.is_empty() {
        crate::outln!(
            "the repository is of format version {}, the newest: nothing to do",
            report.from
        );
        return Ok(exit::OK);
    }
    match done {
        true => crate::outln!("upgraded from format version {} to {}:", report.from, report.to),
        false => crate::outln!(
            "upgrading from format version {} to {} would change this (run without --dry-run to do it):",
            report.from,
            report.to
        ),
    }
    for change in &report.changes {
        crate::outln!("  - {change}");
    }
    Ok(exit::OK)
}
