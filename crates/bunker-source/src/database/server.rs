//! What Bunker asks a server before it dumps: its version and databases.

use bunker_format::snapshot::DatabaseKind;

use super::client::Connection;
use super::DatabaseError;

/// A server's identity, as it reports it.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// PostgreSQL or MySQL/MariaDB.
    pub kind: DatabaseKind,
    /// The version string (`15.20 (Debian 15.20-0+deb12u1)`, `10.11.19-MariaDB-…`).
    pub version: String,
    /// PostgreSQL major version (`15`); for MySQL the first number.
    pub major: u32,
}

/// Databases no dump of "every database" includes.
const MYSQL_SYSTEM: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];

impl Connection {
    /// Asks the server who it is; the first contact, so a wrong password or
    /// an unreachable server is reported here, before anything is written.
    pub fn server_info(&self, database: Option<&str>) -> Result<ServerInfo, DatabaseError> {
        let (version, major) = match self.url.kind {
            DatabaseKind::Postgres => {
                let row = self
                    .query(database, "SELECT current_setting('server_version'), current_setting('server_version_num')")?
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                let num: u32 = row.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
                (row.first().cloned().unwrap_or_default(), num / 10_000)
            }
            DatabaseKind::Mysql => {
                let v = self.query_value(database, "SELECT VERSION()")?;
                let major = v
                    .split('.')
                    .next()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0);
                (v, major)
            }
        };
        Ok(ServerInfo {
            kind: self.url.kind,
            version,
            major,
        })
    }

    /// Every database worth a dump: not templates (PostgreSQL), not the
    /// system schemas (MySQL).
    pub fn databases(&self) -> Result<Vec<String>, DatabaseError> {
        Ok(match self.url.kind {
            DatabaseKind::Postgres => self
                .query(
                    Some("postgres"),
                    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
                )?
                .into_iter()
                .filter_map(|r| r.into_iter().next())
                .collect(),
            DatabaseKind::Mysql => self
                .query(None, "SHOW DATABASES")?
                .into_iter()
                .filter_map(|r| r.into_iter().next())
                .filter(|d| !MYSQL_SYSTEM.contains(&d.as_str()))
                .collect(),
        })
    }

    /// True if `database` exists on the server.
    pub fn database_exists(&self, database: &str) -> Result<bool, DatabaseError> {
        let sql = match self.url.kind {
            DatabaseKind::Postgres => format!(
                "SELECT count(*) FROM pg_database WHERE datname = {}",
                sql_string(database)
            ),
            DatabaseKind::Mysql => format!(
                "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                mysql_string(database)
            ),
        };
        Ok(self.query_value(Some(self.maintenance_db()), &sql)? != "0")
    }

    /// The objects a database holds (tables, views, sequences, routines),
    /// by name, at most `limit`: empty means the database is empty.
    pub fn objects(&self, database: &str, limit: usize) -> Result<Vec<String>, DatabaseError> {
        let sql = match self.url.kind {
            DatabaseKind::Postgres => format!(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname NOT IN ('pg_catalog','information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') \
                 UNION ALL SELECT n.nspname || '.' || p.proname || '()' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname NOT IN ('pg_catalog','information_schema') \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \
                 ORDER BY 1 LIMIT {limit}"
            ),
            DatabaseKind::Mysql => format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} \
                 UNION ALL SELECT CONCAT(ROUTINE_NAME, '()') FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db} \
                 ORDER BY 1 LIMIT {limit}",
                db = mysql_string(database)
            ),
        };
        Ok(self
            .query(Some(database), &sql)?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// A database that always exists, to connect to for server-wide work.
    pub fn maintenance_db(&self) -> &'static str {
        match self.url.kind {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "information_schema",
        }
    }
}

/// A PostgreSQL string literal.
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A PostgreSQL identifier, quoted.
pub fn sql_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A MySQL string literal.
pub fn mysql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A MySQL identifier, quoted.
pub fn mysql_ident(text: &str) -> String {
    format!("`{}`", text.replace('`', "``"))
}

/// An identifier quoted for `kind`.
pub fn ident(kind: DatabaseKind, text: &str) -> String {
    match kind {
        DatabaseKind::Postgres => sql_ident(text),
        DatabaseKind::Mysql => mysql_ident(text),
    }
}
