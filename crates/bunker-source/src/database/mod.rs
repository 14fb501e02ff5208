//! Database sources: PostgreSQL and MySQL/MariaDB, dumped by their own
//! client programs into a stream, guarded so that only a whole dump can
//! become a recovery point, and loaded back by the same programs.

mod check;
mod client;
mod dump;
mod error;
mod mysql_dump;
mod mysql_filter;
mod pg_archive;
mod process;
mod server;
mod url;

pub use check::{DumpCheck, NonEmpty, Trailer};
pub use client::{version_line, ClientCommand, Connection, Tool};
pub use dump::{dump_globals, start_dump, DumpJob, DumpOptions};
pub(crate) use error::error_lines;
pub use error::{error_lines_of, is_error_line, DatabaseError};
pub use mysql_dump::MysqlDumpCheck;
pub use mysql_filter::MysqlTableFilter;
pub use pg_archive::{PgArchiveCheck, LARGE_OBJECTS};
pub use process::{DumpProcess, OnAnnounced, StreamReport};
pub use server::{ident, mysql_ident, mysql_string, sql_ident, sql_string, ServerInfo};
pub use url::DatabaseUrl;
