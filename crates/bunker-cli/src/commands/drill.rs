//! `bunker drill PLAN`

use anyhow::Result;
use bunker_ops::drill::{drill_plan, DrillOptions};
use bunker_ops::records::record_json;
use serde_json::json;

use crate::commands::backup::parse_time;
use crate::context::{operations, GlobalArgs};
use crate::{exit, format};

/// Restore a plan's newest snapshots into scratch space, verify them, and
/// measure the recovery time (a restore drill)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plan's name (it needs a [plans.NAME.drill] section)
    plan: String,
    /// Drill the snapshots as of this time and record the drill at it
    /// (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local): for importing history
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    time: Option<i64>,
}

/// Runs the drill; exit 1 if it fails or misses the plan's RTO.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let config = super::config::load(global)?;
    let ops = operations(
        global,
        &config,
        std::sync::Arc::new(bunker_engine::NoProgress),
    );
    let d = drill_plan(&ops, &args.plan, &DrillOptions { time_ns: args.time })?;
    if global.json {
        crate::outln!(
            "{}",
            json!({
                "plan": args.plan,
                "passed": d.passed(),
                "verified": d.verified,
                "rto_seconds": d.rto_seconds,
                "rto_target_seconds": d.rto_target_seconds,
                "rto_met": d.rto_target_seconds.map(|_| !d.rto_missed()),
                "method": d.method,
                "snapshots": d.drilled.iter().map(|(id, what)| json!({"id": id.to_hex(), "what": what})).collect::<Vec<_>>(),
                "problems": d.problems,
                "mirrors": d.mirrors.iter().map(|m| json!({
                    "mirror": m.mirror,
                    "snapshot": m.snapshot.map(|s| s.to_hex()),
                    "passed": m.passed(),
                    "content_read": m.content_read,
                    "entries_equal": m.equal,
                    "bytes_equal": m.bytes_equal,
                    "newer": m.newer,
                    "seconds": m.seconds,
                    "problems": m.problems,
                })).collect::<Vec<_>>(),
                "record": record_json(&d.record),
            })
        );
    } else {
        for (id, what) in &d.drilled {
            crate::outln!("drilled snapshot {} ({what})", id.short());
        }
        for p in &d.record.phases {
            crate::outln!(
                "  {:<32} {}",
                p.name,
                format::duration(p.micros as f64 / 1e6)
            );
        }
        crate::outln!(
            "restored {} files, {}",
            d.record.files,
            format::bytes(d.record.bytes)
        );
        let target = d
            .rto_target_seconds
            .map(|t| format!(" (target {})", format::duration(t)))
            .unwrap_or_default();
        crate::outln!(
            "recovery time: {}{target}; {}",
            format::duration(d.rto_seconds),
            d.method
        );
        for m in &d.mirrors {
            crate::outln!(
                "mirror {}: {} against snapshot {}{}: {} entries equal ({}), {} files newer than the snapshot, {} problem(s) in {}",
                m.mirror,
                if m.passed() { "verified" } else { "NOT verified" },
                m.snapshot.map_or("(none)".into(), |s| s.short()),
                if m.content_read { "" } else { " (listing only: content is not read back over SFTP)" },
                m.equal,
                format::bytes(m.bytes_equal),
                m.newer,
                m.problems.len(),
                format::duration(m.seconds)
            );
        }
        for p in &d.problems {
            crate::errln!("bunker: drill: {p}");
        }
        crate::outln!(
            "drill of plan {}: {}",
            args.plan,
            if d.passed() { "PASSED" } else { "FAILED" }
        );
    }
    Ok(if d.passed() { exit::OK } else { exit::FAILURE })
}
