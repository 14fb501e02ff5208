//! `db verify`: the database drill. A dump is restored into a scratch
//! database, every table's rows are counted against the counts recorded at
//! backup, the user's assertions are run, each phase is timed, and the
//! scratch database is dropped whatever happens.

use std::time::Instant;

use bunker_format::id::SnapshotId;
use bunker_format::snapshot::DatabaseKind;
use bunker_source::database::{ident, Connection, LARGE_OBJECTS};
use serde::Serialize;

use super::restore::{create_database, drop_database, load, DatabaseRestoreOptions};
use super::{dump_info, origin};
use crate::repository::{Indexed, Repository, SnapshotEntry};
use crate::{EngineError, Result};

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// SQL queries that must each return true in the restored database.
    pub assertions: Vec<String>,
    /// Parallel restore jobs (PostgreSQL).
    pub jobs: u32,
}

/// One table's recorded and restored row counts.
#[derive(Clone, Debug, Serialize)]
pub struct TableCheck {
    /// Schema (PostgreSQL) or empty.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Rows recorded at backup.
    pub expected: u64,
    /// Rows found after the restore (`None` if it could not be counted).
    pub found: Option<u64>,
}

/// One assertion and what it returned.
#[derive(Clone, Debug, Serialize)]
pub struct AssertionResult {
    /// The query.
    pub sql: String,
    /// Whether it returned true.
    pub passed: bool,
    /// What it returned, or its error.
    pub result: String,
}

/// What a verification found, phase by phase.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// The snapshot verified.
    pub snapshot: String,
    /// The database it holds.
    pub database: String,
    /// The server it was restored on.
    pub server: String,
    /// The scratch database's name (dropped afterwards).
    pub scratch: String,
    /// True when the restore succeeded, every count matched and every assertion held.
    pub passed: bool,
    /// Why it failed to restore, if it did.
    pub error: Option<String>,
    /// Seconds fetching and decrypting the dump from the repository.
    pub fetch_seconds: f64,
    /// Seconds loading it (the database's share of the restore).
    pub load_seconds: f64,
    /// Seconds of checks (counts and assertions).
    pub check_seconds: f64,
    /// The measured restore time: fetch and load.
    pub restore_seconds: f64,
    /// Wall time of the whole verification.
    pub total_seconds: f64,
    /// Per table.
    pub tables: Vec<TableCheck>,
    /// Per assertion.
    pub assertions: Vec<AssertionResult>,
    /// Whether the scratch database was dropped.
    pub dropped: bool,
}

/// Drops the scratch database when the verification ends, however it ends.
struct Scratch<'a> {
    conn: &'a Connection,
    name: String,
    created: bool,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if self.created {
            let _ = drop_database(self.conn, &self.name);
        }
    }
}

/// Restores `entry` into a scratch database on `server` (default: the
/// server it came from) and checks it. `Err` only when the verification
/// could not start; a failed restore or check is a report that did not pass.
pub fn verify_database(
    repo: &Repository<Indexed>,
    entry: &SnapshotEntry,
    server: Option<Connection>,
    base: &Connection,
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let dump = dump_info(entry)?;
    let conn = match server {
        Some(c) => c,
        None => base.to(origin(&entry.snapshot).ok_or_else(|| {
            EngineError::Invalid(format!(
                "snapshot {} does not record its server: give --server",
                entry.id.short()
            ))
        })?),
    };
    if conn.url.kind != dump.kind {
        return Err(EngineError::Invalid(format!(
            "snapshot {} is a {} dump; it cannot be verified on {}",
            entry.id.short(),
            dump.kind.name(),
            conn.url
        )));
    }
    let name = scratch_name(entry.id);
    let target = conn.to(conn.url.with_database(&name));
    let mut report = VerifyReport {
        snapshot: entry.id.to_hex(),
        database: dump.database.clone(),
        server: conn.url.with_database("").to_string(),
        scratch: name.clone(),
        passed: false,
        error: None,
        fetch_seconds: 0.0,
        load_seconds: 0.0,
        check_seconds: 0.0,
        restore_seconds: 0.0,
        total_seconds: 0.0,
        tables: Vec::new(),
        assertions: Vec::new(),
        dropped: false,
    };
    let mut scratch = Scratch {
        conn: &target,
        name: name.clone(),
        created: false,
    };
    create_database(&target, &name)?;
    scratch.created = true;
    let restore = DatabaseRestoreOptions {
        no_owner: true,
        jobs: options.jobs,
        ..Default::default()
    };
    match load(repo, entry, dump, &target, &name, &restore) {
        Ok(timing) => {
            report.fetch_seconds = timing.fetch.as_secs_f64();
            report.load_seconds = timing.load().as_secs_f64();
            report.restore_seconds = timing.total.as_secs_f64();
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    if report.error.is_none() {
        let checks = Instant::now();
        for t in &dump.tables {
            let sql = count_sql(dump.kind, &t.schema, &t.name);
            let found = target
                .query_value(Some(&name), &sql)
                .ok()
                .and_then(|v| v.parse().ok());
            report.tables.push(TableCheck {
                schema: t.schema.clone(),
                table: t.name.clone(),
                expected: t.rows,
                found,
            });
        }
        for sql in &options.assertions {
            let (passed, result) = match target.query_value(Some(&name), sql) {
                Ok(v) => (
                    matches!(v.to_ascii_lowercase().as_str(), "t" | "true" | "1"),
                    v,
                ),
                Err(e) => (false, e.to_string()),
            };
            report.assertions.push(AssertionResult {
                sql: sql.clone(),
                passed,
                result,
            });
        }
        report.check_seconds = checks.elapsed().as_secs_f64();
        report.passed = report.tables.iter().all(|t| t.found == Some(t.expected))
            && report.assertions.iter().all(|a| a.passed);
    }
    scratch.created = false;
    report.dropped = drop_database(&target, &name).is_ok();
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A name no other verification uses: the snapshot's short id and random digits.
fn scratch_name(id: SnapshotId) -> String {
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    format!("bunker_verify_{}_{}", id.short(), hex::encode(random))
}

/// The query counting a table's rows as the dump held them.
fn count_sql(kind: DatabaseKind, schema: &str, table: &str) -> String {
    match kind {
        DatabaseKind::Postgres if table == LARGE_OBJECTS => {
            "SELECT count(*) FROM pg_largeobject_metadata".into()
        }
        DatabaseKind::Postgres => format!(
            "SELECT count(*) FROM ONLY {}.{}",
            ident(kind, schema),
            ident(kind, table)
        ),
        DatabaseKind::Mysql => format!("SELECT COUNT(*) FROM {}", ident(kind, table)),
    }
}
