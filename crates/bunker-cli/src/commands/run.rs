//! `bunker run PLAN`

use anyhow::Result;
use bunker_ops::records::record_json;
use bunker_ops::run::{run_plan, RunOptions, StepStatus};
use serde_json::json;

use crate::commands::backup::parse_time;
use crate::context::{operations, GlobalArgs};
use crate::{exit, progress};

/// Run a plan of the config file once, now: hooks, backup, retention, copies.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plan's name (a [plans.NAME] section of the config file)
    plan: String,
    /// Record the snapshots and the run at this time instead of now (RFC 3339,
    /// or "YYYY-MM-DD HH:MM:SS" local): for importing history
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    time: Option<i64>,
}

/// Runs the plan; exit 1 if a step failed, 3 if some sources could not be read.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let config = super::config::load(global)?;
    let reporter = progress::for_operation(global, "run");
    let ops = operations(global, &config, reporter.clone());
    let outcome = run_plan(
        &ops,
        &args.plan,
        &RunOptions {
            time_ns: args.time,
            ..Default::default()
        },
    );
    reporter.finish();
    let run = outcome?;
    if global.json {
        crate::outln!(
            "{}",
            json!({
                "plan": run.plan,
                "status": status(&run),
                "steps": run.steps.iter().map(|s| json!({
                    "what": s.what,
                    "status": step_name(&s.status),
                    "message": s.message,
                })).collect::<Vec<_>>(),
                "records": run.records.iter().map(record_json).collect::<Vec<_>>(),
            })
        );
    } else {
        for s in &run.steps {
            let line = format!("{}: {}", s.what, s.message);
            match s.status {
                StepStatus::Failed => crate::errln!("bunker: error: {line}"),
                _ if !global.quiet => crate::outln!("{line}"),
                _ => {}
            }
        }
        if !global.quiet || run.failed() {
            crate::outln!("plan {}: {}", run.plan, status(&run));
        }
    }
    Ok(match (run.failed(), run.partial()) {
        (true, _) => exit::FAILURE,
        (false, true) => exit::PARTIAL,
        _ => exit::OK,
    })
}

fn status(run: &bunker_ops::run::PlanRun) -> &'static str {
    match (run.failed(), run.partial()) {
        (true, _) => "failed",
        (false, true) => "partial",
        _ => "success",
    }
}

fn step_name(s: &StepStatus) -> &'static str {
    match s {
        StepStatus::Done => "done",
        StepStatus::Partial => "partial",
        StepStatus::Failed => "failed",
    }
}
