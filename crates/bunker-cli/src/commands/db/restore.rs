//! `bunker db restore`

use anyhow::Result;
use bunker_engine::database::{restore_database, DatabaseRestoreOptions};
use bunker_engine::find::find_snapshot;
use serde_json::json;

use super::LoginArgs;
use crate::commands::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::{exit, format};

/// Load a dump into a database.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, or "latest" (of the target's kind)
    snapshot: String,
    /// The database to load into: postgres://…/db or mysql://…/db
    #[arg(long, value_name = "URL")]
    to: String,
    /// Create the database first (refused if it exists)
    #[arg(long)]
    create: bool,
    /// Drop the objects the dump holds before loading them again
    #[arg(long)]
    clean: bool,
    /// Parallel jobs (PostgreSQL; above 1 uses a temporary file)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Also load the server's global objects (roles, users and grants)
    #[arg(long)]
    globals: bool,
    /// Only this table (repeatable)
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// Only this schema (PostgreSQL; repeatable)
    #[arg(long = "schema", value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// Leave ownership to the restoring login
    #[arg(long)]
    no_owner: bool,
    #[command(flatten)]
    login: LoginArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Restores; exits 1 with the failing statement if the load fails.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let target = args.login.connect(&args.to, None)?;
    let repo = Target::select(global)?.open_indexed(global)?;
    let mut filter = args.filter.filter();
    if filter.kinds.is_empty() {
        filter.kinds.push(target.url.kind.name().to_string());
    }
    let entry = find_snapshot(&repo.snapshots()?, &args.snapshot, &filter)?;
    let options = DatabaseRestoreOptions {
        create: args.create,
        clean: args.clean,
        jobs: args.jobs,
        globals: args.globals,
        tables: args.tables,
        schemas: args.schemas,
        no_owner: args.no_owner,
        temp_dir: None,
    };
    let outcome = restore_database(&repo, &entry, &target, &options)?;
    for w in &outcome.warnings {
        crate::errln!("bunker: warning: {w}");
    }
    let seconds = outcome.timing.total.as_secs_f64();
    if global.json {
        crate::outln!(
            "{}",
            json!({
                "message_type": "summary",
                "snapshot_id": entry.id.to_hex(),
                "database": outcome.database,
                "created": outcome.created,
                "replaced": outcome.replaced,
                "seconds": seconds,
                "fetch_seconds": outcome.timing.fetch.as_secs_f64(),
                "warnings": outcome.warnings,
            })
        );
    } else if !global.quiet {
        if !outcome.replaced.is_empty() {
            crate::outln!(
                "replaced in {}: {}",
                outcome.database,
                outcome.replaced.join(", ")
            );
        }
        crate::outln!(
            "snapshot {} restored into {}{} in {}",
            entry.id.short(),
            target.url,
            if outcome.created { " (created)" } else { "" },
            format::duration(seconds)
        );
    }
    Ok(exit::OK)
}
