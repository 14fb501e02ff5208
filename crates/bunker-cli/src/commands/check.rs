//! `bunker check`

use anyhow::Result;
use bunker_engine::check::{check, CheckOptions, Subset};
use serde_json::json;

use bunker_ops::check::{check_plan, plan_check_options};

use crate::context::{operations, GlobalArgs, Target};
use crate::{exit, progress};

/// Verify the repository's structure and, optionally, every stored byte.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read, decrypt and verify every pack
    #[arg(long)]
    read_data: bool,
    /// Read and verify a subset of packs: "10%" (at random) or "2/5" (the second of five parts)
    #[arg(long, value_name = "N%|n/t", conflicts_with = "read_data", value_parser = parse_subset)]
    read_data_subset: Option<Subset>,
    /// Read every pack and rewrite those that parity can rebuild (repositories made with `init --parity`)
    #[arg(long, conflicts_with = "read_data_subset")]
    repair: bool,
    /// Check the repository of this plan of the config file (with its
    /// [plans.NAME.check] settings unless given here) and record the check there
    #[arg(long, value_name = "NAME", conflicts_with = "repair")]
    plan: Option<String>,
}

fn parse_subset(text: &str) -> Result<Subset, String> {
    let t = text.trim();
    if let Some((n, of)) = t.split_once('/') {
        if let (Ok(n), Ok(of)) = (n.parse::<u32>(), of.parse::<u32>()) {
            if (1..=of).contains(&n) && of <= 256 {
                return Ok(Subset::Part { n, of });
            }
        }
        return Err(format!(
            "{text:?}: expected n/t with 1 <= n <= t <= 256, like 2/5"
        ));
    }
    match t.strip_suffix('%').unwrap_or(t).parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(Subset::Percent(p)),
        _ => Err(format!(
            "{text:?}: expected a percentage between 0 and 100 (like 10%) or n/t (like 2/5)"
        )),
    }
}

/// Prints what is damaged; exits 1 if anything is.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let mut options = CheckOptions {
        read_data: args.read_data,
        read_data_subset: args.read_data_subset,
        repair: args.repair,
    };
    let reporter = progress::for_operation(global, "check");
    let result = match &args.plan {
        Some(name) => {
            let config = super::config::load(global)?;
            let ops = operations(global, &config, reporter.clone());
            if !options.read_data && options.read_data_subset.is_none() {
                options.read_data_subset = plan_check_options(&ops, name)?.read_data_subset;
            }
            let outcome = check_plan(&ops, name, options);
            reporter.finish();
            let outcome = outcome?;
            if let Some(e) = &outcome.record_error {
                crate::errln!("bunker: warning: the check could not be recorded: {e}");
            }
            outcome.report
        }
        None => {
            let repo = Target::select(global)?.open(global)?;
            let result = check(repo, options, reporter.clone());
            reporter.finish();
            result?
        }
    };
    let report = result;
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
                "remedy": d.remedy,
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
            crate::errln!("bunker: warning: {w}");
        }
        for r in &report.repaired {
            crate::errln!("bunker: repaired: {r}");
        }
        for d in &report.damage {
            crate::errln!("bunker: damaged: {}: {}", d.object, d.problem);
            for a in &d.affected {
                const SHOWN: usize = 5;
                let more = a.paths.len().saturating_sub(SHOWN);
                crate::errln!(
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
            crate::errln!("bunker:   to fix: {}", d.remedy);
        }
        for s in &report.sources {
            crate::errln!(
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
            crate::errln!(
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
