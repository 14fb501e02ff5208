//! Running the database's own client programs (`psql`, `pg_dump`,
//! `mysql`, `mysqldump`, …) against a server, with the password kept out of
//! every command line.
//!
//! Bunker speaks to servers only through these programs, so a connection
//! behaves exactly as the dump itself will: `~/.pgpass`, `PGSERVICE`,
//! `sslmode`, `~/.my.cnf` and the rest work as the user knows them.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use bunker_format::snapshot::DatabaseKind;
use zeroize::Zeroizing;

use super::url::DatabaseUrl;
use super::{error_lines, DatabaseError};

/// Environment variables a database client must not inherit: Bunker's own
/// settings and the storage credentials.
const WITHHELD: [&str; 6] = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

/// A server to talk to, the password if Bunker was given one, and which
/// dump program to run.
#[derive(Clone)]
pub struct Connection {
    /// The server (and default database).
    pub url: DatabaseUrl,
    password: Option<Zeroizing<String>>,
    dump_command: Option<PathBuf>,
}

/// A client command ready to run, and the 0600 option file that carries its
/// password (removed when this is dropped).
pub struct ClientCommand {
    /// The command, with connection arguments and environment set.
    pub command: Command,
    /// The program's name, for messages.
    pub program: String,
    _options: Option<tempfile::TempDir>,
}

impl ClientCommand {
    /// Any command, run as a dump (`backup --stdin-from-command`).
    pub fn plain(command: Command) -> Self {
        let program = Path::new(command.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        ClientCommand {
            command,
            program,
            _options: None,
        }
    }

    /// Starts the program with `stdin` and `stdout` as given and its
    /// standard error collected on the side: the first 64 KiB kept, the
    /// rest drained, so the program never blocks on a full pipe.
    pub fn spawn(
        &mut self,
        stdin: Stdio,
        stdout: Stdio,
    ) -> Result<(Child, JoinHandle<String>), DatabaseError> {
        let mut child = self
            .command
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DatabaseError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        let mut err = child.stderr.take().expect("piped");
        let stderr = std::thread::Builder::new()
            .name("client-stderr".into())
            .spawn(move || {
                let mut kept = Vec::new();
                let _ = (&mut err).take(STDERR_KEPT).read_to_end(&mut kept);
                let _ = std::io::copy(&mut err, &mut std::io::sink());
                String::from_utf8_lossy(&kept).into_owned()
            });
        match stderr {
            Ok(stderr) => Ok((child, stderr)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(DatabaseError::io("cannot start a thread", e))
            }
        }
    }
}

/// Standard error kept from a client, at most.
const STDERR_KEPT: u64 = 64 << 10;

/// The client programs Bunker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `pg_dump` / `mysqldump` (or `--dump-command`).
    Dump,
    /// `pg_dumpall` (PostgreSQL globals).
    DumpAll,
    /// `pg_restore` (PostgreSQL archives).
    Restore,
    /// `psql` / `mysql`: queries and SQL scripts.
    Shell,
}

impl Connection {
    /// A connection to `url`; `password` (from `--db-password-file`) goes to
    /// the clients through their environment or an option file, never argv.
    /// `dump_command` replaces `pg_dump`/`mysqldump`.
    pub fn new(
        url: DatabaseUrl,
        password: Option<Zeroizing<String>>,
        dump_command: Option<PathBuf>,
    ) -> Self {
        Connection {
            url,
            password,
            dump_command,
        }
    }

    /// The same credentials against another server.
    pub fn to(&self, url: DatabaseUrl) -> Connection {
        Connection {
            url,
            ..self.clone()
        }
    }

    /// The program to run for `tool`. For PostgreSQL, `server_major` picks a
    /// client that can talk to that server (the same major version, else the
    /// oldest newer one): an error says when none is installed.
    pub fn program(&self, tool: Tool, server_major: Option<u32>) -> Result<PathBuf, DatabaseError> {
        if tool == Tool::Dump {
            if let Some(p) = &self.dump_command {
                return Ok(p.clone());
            }
        }
        match self.url.kind {
            DatabaseKind::Postgres => {
                let name = match tool {
                    Tool::Dump => "pg_dump",
                    Tool::DumpAll => "pg_dumpall",
                    Tool::Restore => "pg_restore",
                    Tool::Shell => "psql",
                };
                pg_program(name, server_major)
            }
            DatabaseKind::Mysql => {
                let names: &[&str] = match tool {
                    Tool::Dump => &["mariadb-dump", "mysqldump"],
                    _ => &["mariadb", "mysql"],
                };
                names.iter().find_map(|n| on_path(n)).ok_or_else(|| {
                    DatabaseError::NoClient(format!(
                        "no {} found on PATH: install the MariaDB or MySQL client",
                        names.join(" or ")
                    ))
                })
            }
        }
    }

    /// `program` with the arguments that connect it to `database` (default:
    /// the URL's), and the password in its environment (PostgreSQL) or in a
    /// private option file (MySQL).
    pub fn command(
        &self,
        program: &Path,
        database: Option<&str>,
    ) -> Result<ClientCommand, DatabaseError> {
        let mut command = Command::new(program);
        for name in WITHHELD {
            command.env_remove(name);
        }
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BUNKER_") {
                command.env_remove(name);
            }
        }
        let mut options = None;
        match self.url.kind {
            DatabaseKind::Postgres => {
                if let Some(p) = &self.password {
                    command.env("PGPASSWORD", p.as_str());
                }
                // An unreachable server fails in seconds, not minutes.
                if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
                    command.env("PGCONNECT_TIMEOUT", "15");
                }
                command.arg(format!("--dbname={}", self.url.libpq(database)));
            }
            DatabaseKind::Mysql => {
                if let Some(p) = &self.password {
                    let (dir, file) = option_file(p)?;
                    // Must be the first argument, as the clients require.
                    command.arg(format!("--defaults-extra-file={}", file.display()));
                    options = Some(dir);
                }
                command.arg(format!("--host={}", self.url.host));
                if let Some(port) = self.url.port {
                    command.arg(format!("--port={port}"));
                }
                if let Some(user) = &self.url.user {
                    command.arg(format!("--user={user}"));
                }
                for (k, v) in &self.url.params {
                    command.arg(format!("--{k}={v}"));
                }
            }
        }
        Ok(ClientCommand {
            command,
            program: program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| program.display().to_string()),
            _options: options,
        })
    }

    /// Runs one SQL statement with the shell client and returns its rows
    /// (NULL as an empty string).
    pub fn query(
        &self,
        database: Option<&str>,
        sql: &str,
    ) -> Result<Vec<Vec<String>>, DatabaseError> {
        let program = self.program(Tool::Shell, None)?;
        let mut client = self.command(&program, database)?;
        match self.url.kind {
            DatabaseKind::Postgres => {
                client.command.args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-F",
                    "\x1f",
                    "-R",
                    "\x1e",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                ]);
            }
            DatabaseKind::Mysql => {
                if let Some(db) = database.or(self.url.database.as_deref()) {
                    client.command.arg(format!("--database={db}"));
                }
                client.command.args([
                    "--default-character-set=utf8mb4",
                    "--batch",
                    "--skip-column-names",
                    "-e",
                    sql,
                ]);
            }
        }
        let out = client
            .command
            .stdin(Stdio::null())
            .output()
            .map_err(|source| DatabaseError::Spawn {
                program: client.program.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(DatabaseError::Client {
                program: client.program,
                detail: error_lines(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(match self.url.kind {
            DatabaseKind::Postgres => {
                let text = text.strip_suffix('\n').unwrap_or(&text);
                text.split('\x1e')
                    .filter(|r| !r.is_empty())
                    .map(|r| r.split('\x1f').map(str::to_string).collect())
                    .collect()
            }
            DatabaseKind::Mysql => text
                .lines()
                .map(|r| r.split('\t').map(unescape_batch).collect())
                .collect(),
        })
    }

    /// Runs a statement and returns the first column of its first row.
    pub fn query_value(&self, database: Option<&str>, sql: &str) -> Result<String, DatabaseError> {
        let rows = self.query(database, sql)?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default())
    }
}

/// The `mysql --batch` escapes undone; its `NULL` becomes empty.
fn unescape_batch(field: &str) -> String {
    if field == "NULL" {
        return String::new();
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A private directory holding a 0600 MySQL option file with the password.
fn option_file(password: &str) -> Result<(tempfile::TempDir, PathBuf), DatabaseError> {
    let dir = tempfile::Builder::new()
        .prefix("bunker-db-")
        .tempdir()
        .map_err(|e| {
            DatabaseError::io(
                "cannot create a private directory for the client's option file",
                e,
            )
        })?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| DatabaseError::io("cannot make the option file's directory private", e))?;
    let path = dir.path().join("client.cnf");
    let escaped = password.replace('\\', "\\\\").replace('"', "\\\"");
    let text = Zeroizing::new(format!("[client]\npassword=\"{escaped}\"\n"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| DatabaseError::io("cannot write the client's option file", e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| DatabaseError::io("cannot write the client's option file", e))?;
    Ok((dir, path))
}

/// `name` on PATH, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The major version a PostgreSQL program reports (`pg_dump (PostgreSQL) 15.20`).
fn pg_major(program: &Path) -> Option<u32> {
    let line = version_line(program)?;
    let version = line
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    version.split(['.', ' ']).next()?.parse().ok()
}

/// The first line a program prints for `--version`.
pub fn version_line(program: &Path) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// A PostgreSQL client program able to talk to a server of major version
/// `server`: the same major version if installed, else the oldest newer
/// one (a newer `pg_dump` reads older servers; an older one refuses newer
/// ones). Debian keeps each version under `/usr/lib/postgresql/N/bin`.
fn pg_program(name: &str, server: Option<u32>) -> Result<PathBuf, DatabaseError> {
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
        for dir in dirs.flatten() {
            let path = dir.path().join("bin").join(name);
            if let (Some(major), true) = (
                dir.file_name().to_str().and_then(|v| v.parse().ok()),
                is_executable(&path),
            ) {
                found.push((major, path));
            }
        }
    }
    // A side-by-side install of the server's version (any, for a query)
    // needs no look at PATH, whose program must be run to learn its version.
    let settled = match server {
        Some(s) => found.iter().any(|(m, _)| *m == s),
        None => !found.is_empty(),
    };
    if settled {
        return choose_pg_program(name, found, server);
    }
    // PATH's program (Debian's is a wrapper) only for a version not
    // installed side by side.
    if let Some(path) = on_path(name) {
        if let Some(major) = pg_major(&path).filter(|m| !found.iter().any(|(f, _)| f == m)) {
            found.push((major, path));
        }
    }
    choose_pg_program(name, found, server)
}

/// Picks from the installed `(major version, path)` pairs the program for
/// a server of major version `server` (any, the newest, if unknown).
fn choose_pg_program(
    name: &str,
    mut found: Vec<(u32, PathBuf)>,
    server: Option<u32>,
) -> Result<PathBuf, DatabaseError> {
    found.sort();
    let pick = match server {
        Some(s) => found
            .iter()
            .find(|(m, _)| *m == s)
            .or_else(|| found.iter().find(|(m, _)| *m > s)),
        None => found.last(),
    };
    match (pick, server) {
        (Some((_, p)), _) => Ok(p.clone()),
        (None, _) if found.is_empty() => Err(DatabaseError::NoClient(format!(
            "no {name} found (looked on PATH and in /usr/lib/postgresql/*/bin): install the PostgreSQL client"
        ))),
        (None, Some(s)) => Err(DatabaseError::NoClient(format!(
            "the server is PostgreSQL {s}, which needs {name} {s} or newer; installed: {}. Install postgresql-client-{s}, or name a suitable program with --dump-command",
            found
                .iter()
                .map(|(m, p)| format!("{name} {m} ({})", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        (None, None) => unreachable!("without a server version any program is picked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_client_that_can_dump_the_server() {
        let found = || {
            vec![
                (17, PathBuf::from("/v17")),
                (13, PathBuf::from("/v13")),
                (15, PathBuf::from("/v15")),
            ]
        };
        let pick =
            |server| choose_pg_program("pg_dump", found(), server).map_err(|e| e.to_string());
        assert_eq!(pick(Some(15)).unwrap(), PathBuf::from("/v15"));
        assert_eq!(pick(Some(14)).unwrap(), PathBuf::from("/v15"));
        assert_eq!(pick(Some(11)).unwrap(), PathBuf::from("/v13"));
        assert_eq!(pick(None).unwrap(), PathBuf::from("/v17"));
        let e = pick(Some(18)).unwrap_err();
        assert!(
            e.contains("PostgreSQL 18")
                && e.contains("postgresql-client-18")
                && e.contains("pg_dump 17 (/v17)"),
            "{e}"
        );
        let none = choose_pg_program("pg_dump", Vec::new(), Some(15))
            .unwrap_err()
            .to_string();
        assert!(none.contains("install the PostgreSQL client"), "{none}");
    }

    #[test]
    fn batch_output_is_unescaped() {
        assert_eq!(unescape_batch("a\\nb\\tc\\\\d"), "a\nb\tc\\d");
        assert_eq!(unescape_batch("NULL"), "");
    }

    #[test]
    fn option_file_is_private_and_removed() {
        let (dir, path) = option_file("p\"w\\d").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[client]\npassword=\"p\\\"w\\\\d\"\n"
        );
        drop(dir);
        assert!(!path.exists());
    }
}
