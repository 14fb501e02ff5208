//! `bunker db backup`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use bunker_engine::backup::{backup, BackupOptions, BackupOutcome, BackupSource};
use bunker_engine::database::DatabaseSource;
use bunker_engine::format::snapshot::BackupMode;
use bunker_engine::source::database::DumpOptions;
use serde_json::json;

use super::LoginArgs;
use crate::commands::backup::Mode;
use crate::context::{GlobalArgs, Target};
use crate::{exit, format, progress};

/// Dump databases into the repository, each as its own snapshot.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// postgres://[user@]host[:port]/db or mysql://[user@]host[:port]/db;
    /// without a database name, every database of the server
    #[arg(value_name = "URL", required = true)]
    urls: Vec<String>,
    /// Every database of each server
    #[arg(long)]
    all: bool,
    /// Run PROGRAM instead of pg_dump or mysqldump, with the same arguments
    #[arg(long, value_name = "PROGRAM")]
    dump_command: Option<PathBuf>,
    #[command(flatten)]
    login: LoginArgs,
    /// PostgreSQL: also count every table's rows in the dump's snapshot and
    /// require them to equal the dump's (reads every table a second time)
    #[arg(long)]
    count_rows: bool,
    /// Tag the snapshots (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Record this host name instead of the machine's
    #[arg(long)]
    host: Option<String>,
    /// Recorded with the snapshot (a dump is always read whole; only changes are stored)
    #[arg(long, value_enum, default_value_t = Mode::Incremental)]
    mode: Mode,
    /// Dump and check everything, write nothing
    #[arg(long, short = 'n')]
    dry_run: bool,
}

/// Backs up each database; exits 1 if any dump is not a recovery point.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    // Every URL is checked, and every server asked for its databases,
    // before anything is dumped.
    let mut work = Vec::new();
    for url in &args.urls {
        let conn = args.login.connect(url, args.dump_command.clone())?;
        let databases = match (&conn.url.database, args.all) {
            (Some(db), false) => vec![db.clone()],
            _ => conn.databases()?,
        };
        for db in databases {
            work.push((conn.clone(), db));
        }
    }
    let target = Target::select(global)?;
    let mut failures = 0;
    for (i, (conn, db)) in work.iter().enumerate() {
        let shown = conn.url.with_database(db);
        let repo = match i {
            0 => target.open_or_create_default(global)?,
            _ => target.open(global)?,
        };
        let started = Instant::now();
        let result = DatabaseSource::new(
            conn.clone(),
            db,
            DumpOptions {
                count_rows: args.count_rows,
            },
        )
        .and_then(|source| {
            let reporter = progress::for_operation(global, "db backup");
            let options = BackupOptions {
                mode: BackupMode::from(args.mode),
                tags: args.tags.clone(),
                host: args.host.clone(),
                dry_run: args.dry_run,
                ..Default::default()
            };
            let outcome = backup(
                repo,
                BackupSource::Streams(Box::new(source)),
                options,
                reporter.clone(),
            );
            reporter.finish();
            outcome
        });
        match result {
            Ok(outcome) => print_summary(
                &shown.to_string(),
                &outcome,
                started.elapsed().as_secs_f64(),
                global,
            ),
            Err(e) if work.len() > 1 => {
                failures += 1;
                crate::errln!("bunker: error: {shown}: {e}");
                if global.json {
                    crate::outln!(
                        "{}",
                        json!({"message_type": "error", "database": shown.to_string(), "error": e.to_string()})
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if failures > 0 {
        exit::FAILURE
    } else {
        exit::OK
    })
}

fn print_summary(url: &str, outcome: &BackupOutcome, seconds: f64, global: &GlobalArgs) {
    let s = &outcome.snapshot;
    let Some(db) = &s.database else { return };
    let rows: u64 = db.tables.iter().map(|t| t.rows).sum();
    if global.json {
        crate::outln!(
            "{}",
            json!({
                "message_type": "summary",
                "database": url,
                "snapshot_id": outcome.id.map(|i| i.to_hex()),
                "kind": db.kind.name(),
                "server_version": db.server_version,
                "dump_program": db.dump_program,
                "tables": db.tables.len(),
                "rows": rows,
                "dump_bytes": s.summary.total_bytes,
                "bytes_added": s.summary.bytes_added,
                "bytes_stored": s.summary.bytes_stored,
                "seconds": seconds,
                "warnings": s.warnings,
            })
        );
        return;
    }
    for w in &s.warnings {
        crate::errln!("bunker: warning: {url}: {w}");
    }
    if global.quiet {
        return;
    }
    crate::outln!(
        "{url}: {} tables, {rows} rows; dump {} in {} ({}/s); added {} ({} stored)",
        db.tables.len(),
        format::bytes(s.summary.total_bytes),
        format::duration(seconds),
        format::bytes((s.summary.total_bytes as f64 / seconds.max(1e-3)) as u64),
        format::bytes(s.summary.bytes_added),
        format::bytes(s.summary.bytes_stored),
    );
    match outcome.id {
        Some(id) => crate::outln!("snapshot {} saved", id.short()),
        None => crate::outln!("dry run: the dump is whole; nothing was written"),
    }
}
