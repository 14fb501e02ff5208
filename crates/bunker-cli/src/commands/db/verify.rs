//! `bunker db verify`

use anyhow::Result;
use bunker_engine::database::{verify_database, VerifyOptions, VerifyReport};
use bunker_engine::find::find_snapshot;

use super::LoginArgs;
use crate::commands::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::{exit, format};

/// Restore a dump into a scratch database and check it.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, or "latest" (of a database)
    snapshot: String,
    /// The server to restore on (default: the one the dump came from)
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// SQL that must return true in the restored database (repeatable)
    #[arg(long = "assert", value_name = "SQL")]
    assertions: Vec<String>,
    /// Parallel restore jobs (PostgreSQL)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    #[command(flatten)]
    login: LoginArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Verifies; exits 1 on any mismatch or failed assertion.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open_indexed(global)?;
    let mut filter = args.filter.filter();
    if filter.kinds.is_empty() {
        filter.kinds = vec!["postgres".into(), "mysql".into()];
    }
    let entry = find_snapshot(&repo.snapshots()?, &args.snapshot, &filter)?;
    // The login settings apply to the origin server too.
    let base_url = args
        .server
        .clone()
        .or_else(|| entry.snapshot.paths.first().cloned())
        .unwrap_or_default();
    let base = args.login.connect(&base_url, None)?;
    let server = args.server.as_ref().map(|_| base.clone());
    let options = VerifyOptions {
        assertions: args.assertions,
        jobs: args.jobs,
    };
    let report = verify_database(&repo, &entry, server, &base, &options)?;
    if global.json {
        crate::outln!("{}", serde_json::to_value(&report)?);
    } else if !global.quiet {
        print_report(&report, &entry.id.short());
    }
    Ok(if report.passed {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn print_report(r: &VerifyReport, short: &str) {
    crate::outln!(
        "snapshot {short} (database {}) restored on {} as {}",
        r.database,
        r.server,
        r.scratch
    );
    if let Some(e) = &r.error {
        crate::outln!("restore FAILED: {e}");
    } else {
        crate::outln!(
            "restore {} (fetch and decrypt {}, load {}); checks {}",
            format::duration(r.restore_seconds),
            format::duration(r.fetch_seconds),
            format::duration(r.load_seconds),
            format::duration(r.check_seconds)
        );
        let matching = r
            .tables
            .iter()
            .filter(|t| t.found == Some(t.expected))
            .count();
        for t in r.tables.iter().filter(|t| t.found != Some(t.expected)) {
            let found = t.found.map_or("could not be counted".to_string(), |n| {
                format!("{n} restored")
            });
            let name = match t.schema.is_empty() {
                true => t.table.clone(),
                false => format!("{}.{}", t.schema, t.table),
            };
            crate::outln!("MISMATCH {name}: {} recorded, {found}", t.expected);
        }
        crate::outln!(
            "tables: {matching} of {} match the recorded row counts",
            r.tables.len()
        );
        for a in r.assertions.iter().filter(|a| !a.passed) {
            crate::outln!("FAILED assertion {:?}: returned {}", a.sql, a.result);
        }
        if !r.assertions.is_empty() {
            let held = r.assertions.iter().filter(|a| a.passed).count();
            crate::outln!("assertions: {held} of {} true", r.assertions.len());
        }
    }
    if !r.dropped {
        crate::outln!(
            "warning: the scratch database {} could not be dropped: drop it by hand",
            r.scratch
        );
    }
    crate::outln!("{}", if r.passed { "PASSED" } else { "FAILED" });
}
