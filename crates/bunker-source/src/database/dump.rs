//! Starting a database's dump, and judging it when it ends.
//!
//! Rows are counted in the dump itself as it streams, so the counts recorded
//! are exactly the dump's, and checked for plausibility against the
//! server's own estimates (a dump with a quarter of the rows the server
//! expects is refused).
//!
//! PostgreSQL: Bunker opens a repeatable-read transaction, exports its
//! snapshot, and runs `pg_dump --snapshot` in it, so the dump is tied to
//! that server and moment. With [`DumpOptions::count_rows`], the same
//! transaction also counts the rows of every table the archive's table of
//! contents announces, while the dump streams; both see the same data, so
//! the counts must equal the archive's, table by table. That reads every
//! table a second time, hence opt-in.
//!
//! MySQL/MariaDB: `mysqldump --single-transaction` takes its own snapshot,
//! which no other session can share.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use bunker_format::snapshot::{DatabaseKind, TableRows};

use super::check::Trailer;
use super::client::{version_line, Connection, Tool};
use super::mysql_dump::{MysqlDumpCheck, DUMP_COMPLETED};
use super::pg_archive::{abbreviate, PgArchiveCheck, LARGE_OBJECTS};
use super::process::{DumpProcess, OnAnnounced, StreamReport};
use super::server::{mysql_string, sql_ident, ServerInfo};
use super::{error_lines, DatabaseError};

/// The line `pg_dumpall` ends a complete script with.
const CLUSTER_DUMP_COMPLETE: &str = "-- PostgreSQL database cluster dump complete";

/// Largest globals script read (they are held in memory).
const GLOBALS_LIMIT: u64 = 256 << 20;

/// How to dump.
#[derive(Clone, Copy, Debug, Default)]
pub struct DumpOptions {
    /// PostgreSQL: count every table's rows in the dump's snapshot and
    /// require them to equal the archive's (a second read of every table).
    pub count_rows: bool,
}

/// A dump in progress: read it to its end, then [`DumpJob::finish`].
pub struct DumpJob {
    process: DumpProcess,
    counter: Option<JoinHandle<Result<Vec<TableRows>, DatabaseError>>>,
    /// The server's row estimates by (schema, table); `absent_is_error`
    /// when every one of them must be in the dump (MySQL).
    estimates: Vec<((String, String), u64)>,
    absent_is_error: bool,
    /// Holds the transaction whose snapshot the dump uses (when not counting).
    _session: Option<PgSession>,
    /// The dump program's `--version` line.
    pub program_version: String,
}

impl Read for DumpJob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.process.read(buf)
    }
}

/// Starts dumping `database`. Nothing is read yet: the caller streams the
/// job, then calls [`DumpJob::finish`] for the verdict.
pub fn start_dump(
    conn: &Connection,
    database: &str,
    server: &ServerInfo,
    options: DumpOptions,
) -> Result<DumpJob, DatabaseError> {
    let program = conn.program(Tool::Dump, Some(server.major))?;
    let program_version = version_line(&program).unwrap_or_else(|| program.display().to_string());
    match server.kind {
        DatabaseKind::Postgres => {
            let estimates = conn
                .query(
                    Some(database),
                    "SELECT n.nspname, c.relname, c.reltuples::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' \
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.reltuples > 0",
                )?
                .into_iter()
                .filter_map(|r| {
                    Some((
                        (r.first()?.clone(), r.get(1)?.clone()),
                        r.get(2)?.parse().ok()?,
                    ))
                })
                .collect();
            let (session, snapshot) = PgSession::open(conn, database)?;
            let mut client = conn.command(&program, Some(database))?;
            client.command.args(["--format=custom", "--compress=0"]);
            client.command.arg(format!("--snapshot={snapshot}"));
            let check = Box::new(PgArchiveCheck::new());
            let (process, counter, session) = if options.count_rows {
                let (tx, rx) = mpsc::channel::<Vec<(String, String)>>();
                let counter = std::thread::Builder::new()
                    .name("row-counts".into())
                    .spawn(move || count_rows(session, rx))
                    .map_err(|e| DatabaseError::io("cannot start a thread", e))?;
                let announced: OnAnnounced = Box::new(move |tables| {
                    let _ = tx.send(tables);
                });
                (
                    DumpProcess::spawn(client, check, Some(announced))?,
                    Some(counter),
                    None,
                )
            } else {
                (
                    DumpProcess::spawn(client, check, None)?,
                    None,
                    Some(session),
                )
            };
            Ok(DumpJob {
                process,
                counter,
                estimates,
                absent_is_error: false,
                _session: session,
                program_version,
            })
        }
        DatabaseKind::Mysql => {
            let estimates = conn
                .query(
                    Some(database),
                    &format!(
                        "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
                         WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE'",
                        mysql_string(database)
                    ),
                )?
                .into_iter()
                .filter_map(|r| {
                    Some((
                        (database.to_string(), r.first()?.clone()),
                        r.get(1)?.parse().unwrap_or(0),
                    ))
                })
                .collect();
            let mut client = conn.command(&program, Some(database))?;
            client.command.args([
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--add-drop-trigger",
                "--no-tablespaces",
                "--skip-dump-date",
                "--default-character-set=utf8mb4",
            ]);
            if !program_version.contains("MariaDB") {
                // MySQL's own client: a dump replayable on a server with
                // other GTIDs.
                client.command.arg("--set-gtid-purged=OFF");
            }
            client.command.arg(database);
            let process =
                DumpProcess::spawn(client, Box::new(MysqlDumpCheck::new(database)), None)?;
            Ok(DumpJob {
                process,
                counter: None,
                estimates,
                absent_is_error: true,
                _session: None,
                program_version,
            })
        }
    }
}

impl DumpJob {
    /// The verdict, once the job was read to its end: the program's own
    /// status and messages, the format's completeness, and the row counts
    /// against the database's (PostgreSQL) or its estimates (MySQL).
    pub fn finish(mut self) -> Result<StreamReport, DatabaseError> {
        let program = self.process.program().to_string();
        // A failed dump is judged at once; a count still running finishes
        // on its own and ends its transaction.
        let report = self.process.finish()?;
        if let Some(counter) = self.counter.take() {
            let counted = counter.join().unwrap_or_else(|_| {
                Err(DatabaseError::Incomplete("the row count failed".into()))
            })?;
            let mut wrong = Vec::new();
            for t in &report.tables {
                let db = counted
                    .iter()
                    .find(|c| c.schema == t.schema && c.name == t.name);
                match db {
                    Some(c) if c.rows == t.rows => {}
                    Some(c) => wrong.push(format!(
                        "{}: {} in the dump, {} in the database",
                        shown(t),
                        t.rows,
                        c.rows
                    )),
                    None if t.name == LARGE_OBJECTS => {}
                    None => wrong.push(format!("{}: not counted in the database", shown(t))),
                }
            }
            if !wrong.is_empty() {
                return Err(DatabaseError::Incomplete(format!(
                    "{program}'s rows differ from the database's in the same snapshot: {}",
                    abbreviate(&wrong)
                )));
            }
        }
        let mut small = Vec::new();
        let mut absent = Vec::new();
        for ((schema, name), estimate) in &self.estimates {
            match report
                .tables
                .iter()
                .find(|t| &t.schema == schema && &t.name == name)
            {
                None if self.absent_is_error => absent.push(name.clone()),
                None => {}
                // InnoDB's estimates err by tens of percent, not by 4×.
                Some(t) if *estimate >= 1000 && t.rows.saturating_mul(4) < *estimate => {
                    small.push(format!(
                        "{name}: {} rows where the server estimates {estimate}",
                        t.rows
                    ))
                }
                Some(_) => {}
            }
        }
        if !absent.is_empty() {
            return Err(DatabaseError::Incomplete(format!(
                "{program}'s output lacks the data of table(s) the server has: {}",
                abbreviate(&absent)
            )));
        }
        if !small.is_empty() {
            return Err(DatabaseError::Incomplete(format!(
                "{program}'s output is implausibly small: {}",
                abbreviate(&small)
            )));
        }
        Ok(report)
    }
}

fn shown(t: &TableRows) -> String {
    match t.schema.is_empty() {
        true => t.name.clone(),
        false => format!("{}.{}", t.schema, t.name),
    }
}

/// Dumps the server's global objects (PostgreSQL roles and tablespaces,
/// MariaDB users and grants) into memory: `Ok(None)` with a reason when
/// this login may not read them.
pub fn dump_globals(
    conn: &Connection,
    server: &ServerInfo,
) -> Result<Result<Vec<u8>, String>, DatabaseError> {
    let attempts: Vec<(std::path::PathBuf, Vec<&str>, &'static str)> = match server.kind {
        DatabaseKind::Postgres => {
            let p = conn.program(Tool::DumpAll, Some(server.major))?;
            vec![
                (p.clone(), vec!["--globals-only"], CLUSTER_DUMP_COMPLETE),
                // Without superuser rights pg_authid is closed: roles without passwords.
                (
                    p,
                    vec!["--globals-only", "--no-role-passwords"],
                    CLUSTER_DUMP_COMPLETE,
                ),
            ]
        }
        DatabaseKind::Mysql => {
            let p = conn.program(Tool::Dump, None)?;
            match version_line(&p).is_some_and(|v| v.contains("MariaDB")) {
                true => vec![(p, vec!["--system=users", "--skip-dump-date"], DUMP_COMPLETED)],
                false => return Ok(Err("users and grants are dumped only by MariaDB's client (mariadb-dump --system=users)".into())),
            }
        }
    };
    let mut why = String::new();
    for (program, args, trailer) in attempts {
        let mut client = conn.command(&program, Some(conn.maintenance_db()))?;
        client.command.args(args);
        let mut process = DumpProcess::spawn(client, Box::new(Trailer::new(trailer)), None)?;
        let mut bytes = Vec::new();
        (&mut process)
            .take(GLOBALS_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|e| DatabaseError::io("reading the global objects' dump", e))?;
        match process.finish() {
            Ok(_) => return Ok(Ok(bytes)),
            Err(e) => why = e.to_string(),
        }
    }
    Ok(Err(why))
}

/// A `psql` session holding the repeatable-read transaction whose snapshot
/// the dump uses. Closing its input ends the transaction.
struct PgSession {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
}

impl PgSession {
    /// Opens the transaction and exports its snapshot.
    fn open(conn: &Connection, database: &str) -> Result<(PgSession, String), DatabaseError> {
        let program = conn.program(Tool::Shell, None)?;
        let mut client = conn.command(&program, Some(database))?;
        client
            .command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        let (mut child, stderr) = client.spawn(Stdio::piped(), Stdio::piped())?;
        let mut session = PgSession {
            input: child.stdin.take().expect("piped"),
            output: BufReader::new(child.stdout.take().expect("piped")),
            child,
            stderr: Some(stderr),
        };
        let snapshot = session.value(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot()",
        )?;
        Ok((session, snapshot))
    }

    /// Runs one statement and reads the single value it returns.
    fn value(&mut self, sql: &str) -> Result<String, DatabaseError> {
        let sent = writeln!(self.input, "{sql};").and_then(|_| self.input.flush());
        let mut line = String::new();
        let read = match sent {
            Ok(()) => self.output.read_line(&mut line),
            Err(e) => Err(e),
        };
        match read {
            Ok(n) if n > 0 => Ok(line.trim_end_matches('\n').to_string()),
            _ => {
                let _ = self.child.kill();
                let err = self
                    .stderr
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                Err(DatabaseError::Client {
                    program: "psql".into(),
                    detail: error_lines(&err),
                })
            }
        }
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        let _ = self.input.write_all(b"ROLLBACK;\n\\q\n");
        let _ = self.input.flush();
        let _ = self.child.wait();
    }
}

/// Counts, in the dump's snapshot, the rows of the tables the archive
/// announces (none if the dump died before announcing them).
fn count_rows(
    mut session: PgSession,
    tables: mpsc::Receiver<Vec<(String, String)>>,
) -> Result<Vec<TableRows>, DatabaseError> {
    let Ok(tables) = tables.recv() else {
        return Ok(Vec::new());
    };
    let mut counted = Vec::with_capacity(tables.len() + 1);
    for (schema, name) in tables {
        let sql = format!(
            "SELECT count(*) FROM ONLY {}.{}",
            sql_ident(&schema),
            sql_ident(&name)
        );
        let rows = session.value(&sql)?.parse().unwrap_or(u64::MAX);
        counted.push(TableRows { schema, name, rows });
    }
    let objects = session.value("SELECT count(*) FROM pg_largeobject_metadata")?;
    counted.push(TableRows {
        schema: String::new(),
        name: LARGE_OBJECTS.into(),
        rows: objects.parse().unwrap_or(u64::MAX),
    });
    Ok(counted)
}
