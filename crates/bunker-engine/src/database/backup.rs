//! A database as a stream source: the global objects, then the dump, and
//! the guard's verdict before the snapshot is written.

use std::io::{Cursor, Read};

use bunker_format::snapshot::{DatabaseDump, DatabaseKind, Snapshot};
use bunker_source::database::{
    dump_globals, start_dump, Connection, DumpJob, DumpOptions, ServerInfo,
};

use crate::backup::StreamSource;
use crate::{EngineError, Result};

/// One database of a server, dumped into a snapshot whose tree holds the
/// dump (`NAME.pgdump` or `NAME.sql`) and, when the login may read them,
/// the server's global objects (`globals.sql`).
pub struct DatabaseSource {
    conn: Connection,
    database: String,
    server: ServerInfo,
    globals: Option<Cursor<Vec<u8>>>,
    globals_note: Option<String>,
    job: Option<DumpJob>,
    options: DumpOptions,
    /// Streams given so far: the globals (if any), then the dump.
    given: u8,
}

/// The file holding the server's global objects.
const GLOBALS: &str = "globals.sql";

impl DatabaseSource {
    /// Asks the server for its version and dumps its global objects (small,
    /// held in memory); the database's dump starts when the backup reads it.
    pub fn new(conn: Connection, database: &str, options: DumpOptions) -> Result<Self> {
        let server = conn.server_info(Some(database))?;
        let (globals, globals_note) = match dump_globals(&conn, &server)? {
            Ok(bytes) => (Some(Cursor::new(bytes)), None),
            Err(why) => (
                None,
                Some(format!(
                    "the server's global objects were not dumped: {why}"
                )),
            ),
        };
        Ok(DatabaseSource {
            conn,
            database: database.to_string(),
            server,
            globals,
            globals_note,
            job: None,
            options,
            given: 0,
        })
    }

    /// The server's version.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// The dump's file name: the database's name made a plain file name.
    fn dump_file(&self) -> String {
        let mut stem: String = self
            .database
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c })
            .collect();
        if stem.starts_with('.') || stem == "globals" {
            stem.insert(0, '_');
        }
        let ext = match self.server.kind {
            DatabaseKind::Postgres => "pgdump",
            DatabaseKind::Mysql => "sql",
        };
        format!("{stem}.{ext}")
    }
}

impl StreamSource for DatabaseSource {
    fn paths(&self) -> Vec<String> {
        vec![self.conn.url.with_database(&self.database).to_string()]
    }

    fn next_stream(&mut self) -> Result<Option<(String, &mut dyn Read)>> {
        self.given += 1;
        match (self.given, self.globals.is_some()) {
            (1, true) => Ok(Some((
                GLOBALS.to_string(),
                self.globals.as_mut().expect("checked"),
            ))),
            (1, false) | (2, true) => {
                let name = self.dump_file();
                let job = start_dump(&self.conn, &self.database, &self.server, self.options)?;
                Ok(Some((name, self.job.insert(job))))
            }
            _ => Ok(None),
        }
    }

    fn seal(&mut self, snapshot: &mut Snapshot) -> Result<()> {
        let job = self.job.take().expect("sealed after the dump was read");
        let dump_program = job.program_version.clone();
        let report = job
            .finish()
            .map_err(|e| EngineError::NotARecoveryPoint(e.to_string()))?;
        snapshot.warnings.extend(report.messages);
        snapshot.warnings.extend(self.globals_note.take());
        snapshot.database = Some(DatabaseDump {
            kind: self.server.kind,
            server_version: self.server.version.clone(),
            database: self.database.clone(),
            dump_program,
            dump_file: self.dump_file(),
            globals_file: self.globals.as_ref().map(|_| GLOBALS.to_string()),
            tables: report.tables,
        });
        Ok(())
    }
}
