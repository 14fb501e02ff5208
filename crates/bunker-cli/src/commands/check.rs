//! `bunker check`

use anyhow::{bail, Result};
use bunker_engine::check::{check, CheckOptions};
use serde_json::json;

use crate::context::{GlobalArgs, Target};
use crate::{exit, progress};

/// Verify the repository's structure and, optionally, every stored byte.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read, decrypt and verify every pack
    #[arg(long)]
    read_data: bool,
    /// Read and verify a random subset of packs, e.g. "10%"
    #[arg(long, value_name = "N%", conflicts_with = "read_data")]
    read_data_subset: Option<String>,
    /// Read every pack and rewrite those that parity can rebuild (repositories made with `init --parity`)
    #[arg(long, conflicts_with = "read_data_subset")]
    repair: bool,
}

fn parse_percent(text: &str) -> Result<f64> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    match number.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => {
            bail!("--read-data-subset {text:?}: expected a percentage between 0 and 100, like 10%")
        }
    }
}

/// Prints what is damaged; exits 1 if anything is.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let percent = args
        .read_data_subset
        .as_deref()
        .map(parse_percent)
        .transpose()?;
    let repo = Target::select(global)?.open(global)?;
    let reporter = progress::for_operation(global, "check");
    let result = check(
        repo,
        CheckOptions {
            read_data: args.read_data,
            read_data_percent: percent,
            repair: args.repair,
        },
        reporter.clone(),
    );
    reporter.finish();
    let report = result?;
    if global.json {
        super::print_json(&json!({
            "ok": report.errors.is_empty(),
            "errors": report.errors,
            "warnings": report.warnings,
            "snapshots": report.snapshots,
            "trees": report.trees,
            "packs": report.packs,
            "packs_read": report.packs_read,
            "blobs_read": report.blobs_read,
            "repaired": report.repaired,
            "damage": report.damage.iter().map(|d| json!({
                "object": d.object,
                "problem": d.problem,
                "affected": d.affected.iter().map(|a| json!({
                    "snapshot": a.snapshot.to_hex(),
                    "paths": a.paths,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "sources": report.sources.iter().map(|s| json!({
                "host": s.host,
                "paths": s.paths,
                "damaged_snapshots": s.damaged.iter().map(|d| d.to_hex()).collect::<Vec<_>>(),
                "newest_intact": s.newest_intact.map(|i| i.to_hex()),
            })).collect::<Vec<_>>(),
        }));
    } else {
        for w in &report.warnings {
            eprintln!("bunker: warning: {w}");
        }
        for r in &report.repaired {
            eprintln!("bunker: repaired: {r}");
        }
        // Errors not tied to one object (unreadable index files) come first.
        let general = report.errors.len() - report.damage.len();
        for e in &report.errors[..general] {
            eprintln!("bunker: damaged: {e}");
        }
        for d in &report.damage {
            eprintln!("bunker: damaged: {}: {}", d.object, d.problem);
            for a in &d.affected {
                const SHOWN: usize = 5;
                let more = a.paths.len().saturating_sub(SHOWN);
                eprintln!(
                    "bunker:   affects snapshot {}: {}{}",
                    a.snapshot.short(),
                    a.paths[..a.paths.len().min(SHOWN)].join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                );
            }
        }
        for s in &report.sources {
            eprintln!(
                "bunker: {} snapshot(s) of {} on {} damaged; newest intact: {}",
                s.damaged.len(),
                s.paths.join(" "),
                s.host,
                s.newest_intact.map_or("none".to_string(), |i| i.short())
            );
        }
        if !global.quiet {
            crate::outln!(
                "checked {} snapshots, {} trees, {} packs; read {} packs, {} blobs",
                report.snapshots,
                report.trees,
                report.packs,
                report.packs_read,
                report.blobs_read
            );
        }
        if report.errors.is_empty() {
            if !global.quiet {
                crate::outln!("no errors were found");
            }
        } else {
            eprintln!(
                "bunker: error: the repository has {} damaged object(s), named above",
                report.errors.len()
            );
        }
    }
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
