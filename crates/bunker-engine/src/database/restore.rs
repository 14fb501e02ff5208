//! `db restore`: a dump loaded into a database, created for it or emptied
//! of what the dump holds, never half-loaded into one it created.

use std::path::PathBuf;

use bunker_format::snapshot::{DatabaseDump, DatabaseKind};
use bunker_source::database::{ident, ClientCommand, Connection, DatabaseError, Tool};

use super::load::{load_file, run_client, LoadTiming};
use super::{dump_info, origin};
use crate::repository::{Indexed, Repository, SnapshotEntry};
use crate::{EngineError, Result};

/// How to restore a dump.
#[derive(Clone, Debug, Default)]
pub struct DatabaseRestoreOptions {
    /// Create the target database (refused if it exists).
    pub create: bool,
    /// Drop the dumped objects from the target first.
    pub clean: bool,
    /// Parallel jobs (PostgreSQL; more than 1 restores from a temporary file).
    pub jobs: u32,
    /// Load the server's global objects (roles, users) first.
    pub globals: bool,
    /// Only these tables (PostgreSQL: `pg_restore --table`).
    pub tables: Vec<String>,
    /// Only these schemas (PostgreSQL: `pg_restore --schema`).
    pub schemas: Vec<String>,
    /// Do not restore ownership (objects belong to the restoring login).
    pub no_owner: bool,
    /// Where a parallel restore keeps its temporary copy (default: TMPDIR).
    pub temp_dir: Option<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreOutcome {
    /// The database loaded.
    pub database: String,
    /// Whether it was created.
    pub created: bool,
    /// Objects that existed in it and were replaced (with `--clean`).
    pub replaced: Vec<String>,
    /// Problems loading the global objects (roles that already exist, …).
    pub warnings: Vec<String>,
    /// Time taken, and how much of it was the repository's.
    pub timing: LoadTiming,
}

/// Loads the dump of `entry` into the database that `target`'s URL names.
pub fn restore_database(
    repo: &Repository<Indexed>,
    entry: &SnapshotEntry,
    target: &Connection,
    options: &DatabaseRestoreOptions,
) -> Result<RestoreOutcome> {
    let dump = dump_info(entry)?;
    let url = &target.url;
    if url.kind != dump.kind {
        return Err(EngineError::Invalid(format!(
            "snapshot {} is a {} dump; it cannot be restored into {url}",
            entry.id.short(),
            dump.kind.name()
        )));
    }
    let Some(name) = url.database.clone() else {
        return Err(EngineError::Invalid(format!(
            "--to {url} names no database: give the database to restore into, e.g. {}",
            url.with_database(&dump.database)
        )));
    };
    if dump.kind == DatabaseKind::Mysql && !options.schemas.is_empty() {
        return Err(EngineError::Invalid(
            "--schema selects part of a PostgreSQL archive; a MySQL dump holds one database (choose tables with --table)".into(),
        ));
    }
    let missing: Vec<&str> = options
        .tables
        .iter()
        .filter(|t| {
            !dump
                .tables
                .iter()
                .any(|d| &d.name == *t || format!("{}.{}", d.schema, d.name) == **t)
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(EngineError::Invalid(format!(
            "no table {} in snapshot {}'s dump of {}",
            missing.join(", "),
            entry.id.short(),
            dump.database
        )));
    }
    let exists = target.database_exists(&name)?;
    let mut outcome = RestoreOutcome {
        database: name.clone(),
        ..Default::default()
    };
    if options.create {
        if exists {
            return Err(EngineError::Invalid(format!(
                "database {name} already exists on {}: restore into a new name, or without --create (with --clean to replace what the dump holds)",
                url.with_database("")
            )));
        }
    } else {
        if !exists {
            return Err(EngineError::Invalid(format!(
                "database {name} does not exist on {}: give --create to create it",
                url.with_database("")
            )));
        }
        let present = target.objects(&name, 21)?;
        let is_origin = origin(&entry.snapshot)
            .is_some_and(|o| o.same_server(url) && o.database.as_deref() == Some(&name));
        if is_origin && !options.clean {
            return Err(EngineError::Invalid(format!(
                "{name} is the database this dump came from: restoring onto it overwrites {}; give --clean to drop and replace them, or restore into another database",
                describe(&present)
            )));
        }
        if !present.is_empty() && !options.clean {
            return Err(EngineError::Invalid(format!(
                "database {name} is not empty ({}): give --clean to drop what the dump holds first, or restore into a new database with --create",
                describe(&present)
            )));
        }
        if options.clean {
            outcome.replaced = present;
        }
    }
    if options.globals {
        outcome.warnings = load_globals(repo, entry, dump, target)?;
    }
    if options.create {
        create_database(target, &name)?;
        outcome.created = true;
    }
    match load(repo, entry, dump, target, &name, options) {
        Ok(timing) => outcome.timing = timing,
        Err(e) => {
            if outcome.created {
                // Never leave a half-loaded database behind.
                let _ = drop_database(target, &name);
            }
            return Err(e);
        }
    }
    Ok(outcome)
}

fn describe(objects: &[String]) -> String {
    match objects.len() {
        0 => "nothing yet".into(),
        n if n > 20 => format!("{} and more", objects[..20].join(", ")),
        _ => objects.join(", "),
    }
}

/// Creates a database on the target's server.
pub(super) fn create_database(target: &Connection, name: &str) -> Result<()> {
    let sql = format!("CREATE DATABASE {}", ident(target.url.kind, name));
    target.query(Some(target.maintenance_db()), &sql)?;
    Ok(())
}

/// Drops a database, closing other sessions on it (PostgreSQL 13+).
pub(super) fn drop_database(target: &Connection, name: &str) -> Result<()> {
    let sql = match target.url.kind {
        DatabaseKind::Postgres => format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(DatabaseKind::Postgres, name)
        ),
        DatabaseKind::Mysql => format!(
            "DROP DATABASE IF EXISTS {}",
            ident(DatabaseKind::Mysql, name)
        ),
    };
    target.query(Some(target.maintenance_db()), &sql)?;
    Ok(())
}

/// The PostgreSQL major version that wrote a dump (`pg_dump (PostgreSQL) 15.20`).
fn dump_major(dump: &DatabaseDump) -> Option<u32> {
    dump.dump_program
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
}

/// Loads the dump into `database`.
pub(super) fn load(
    repo: &Repository<Indexed>,
    entry: &SnapshotEntry,
    dump: &DatabaseDump,
    target: &Connection,
    database: &str,
    options: &DatabaseRestoreOptions,
) -> Result<LoadTiming> {
    let root = entry.snapshot.tree;
    let file = format!("/{}", dump.dump_file);
    match dump.kind {
        DatabaseKind::Postgres => {
            // pg_restore reads archives of its own version and older.
            let program = target.program(Tool::Restore, dump_major(dump))?;
            let mut client = target.command(&program, Some(database))?;
            client.command.arg("--exit-on-error");
            if options.clean {
                client.command.args(["--clean", "--if-exists"]);
            }
            if options.no_owner {
                client.command.arg("--no-owner");
            }
            for t in &options.tables {
                client.command.arg(format!("--table={t}"));
            }
            for s in &options.schemas {
                client.command.arg(format!("--schema={s}"));
            }
            if options.jobs > 1 {
                return parallel_restore(repo, &root, &file, client, options);
            }
            // One transaction: a failure leaves the target as it was.
            client.command.arg("--single-transaction");
            load_file(repo, &root, &file, client, &[])
        }
        DatabaseKind::Mysql => {
            let program = target.program(Tool::Shell, None)?;
            let mut client = target.command(&program, Some(database))?;
            client.command.arg(format!("--database={database}"));
            load_file(repo, &root, &file, client, &options.tables)
        }
    }
}

/// `pg_restore --jobs` needs a seekable file: the archive is written to a
/// private temporary file, removed afterwards.
fn parallel_restore(
    repo: &Repository<Indexed>,
    root: &bunker_format::id::BlobId,
    file: &str,
    mut client: ClientCommand,
    options: &DatabaseRestoreOptions,
) -> Result<LoadTiming> {
    let started = std::time::Instant::now();
    let dir = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut temp = tempfile::Builder::new()
        .prefix("bunker-restore-")
        .suffix(".pgdump")
        .tempfile_in(&dir)
        .map_err(|e| EngineError::io(&dir, e))?;
    let shown = temp.path().display().to_string();
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        crate::dump::dump(repo, root, file, &mut out)?;
        std::io::Write::flush(&mut out).map_err(|e| EngineError::io(&shown, e))?;
    }
    let fetched = started.elapsed();
    client
        .command
        .arg(format!("--jobs={}", options.jobs))
        .arg(temp.path());
    let loading = run_client(client)?;
    Ok(LoadTiming {
        total: fetched + loading,
        fetch: fetched,
    })
}

/// Runs the snapshot's globals script; errors such as "role already
/// exists" are reported, not fatal.
fn load_globals(
    repo: &Repository<Indexed>,
    entry: &SnapshotEntry,
    dump: &DatabaseDump,
    target: &Connection,
) -> Result<Vec<String>> {
    let Some(file) = &dump.globals_file else {
        return Err(EngineError::Invalid(format!(
            "snapshot {} holds no global objects (the login that made it could not read them)",
            entry.id.short()
        )));
    };
    let program = target.program(Tool::Shell, None)?;
    let mut client = target.command(&program, Some(target.maintenance_db()))?;
    if dump.kind == DatabaseKind::Postgres {
        client.command.args(["-X", "-q"]);
    } else {
        client.command.arg("--force");
    }
    match load_file(repo, &entry.snapshot.tree, &format!("/{file}"), client, &[]) {
        Ok(_) => Ok(Vec::new()),
        Err(EngineError::Database(DatabaseError::Client { detail, .. })) => {
            Ok(vec![format!("global objects: {detail}")])
        }
        Err(e) => Err(e),
    }
}
