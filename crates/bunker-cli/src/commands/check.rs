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
        }));
    } else {
        for w in &report.warnings {
            eprintln!("bunker: warning: {w}");
        }
        for e in &report.errors {
            eprintln!("bunker: damaged: {e}");
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
