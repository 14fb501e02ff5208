//! Database URLs: `postgres://[user@]host[:port]/dbname` and
//! `mysql://[user@]host[:port]/dbname`, with TLS settings as query parameters.

use std::fmt;

use bunker_format::snapshot::DatabaseKind;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::DatabaseError;

/// Characters escaped when a URL part is printed back.
const PART: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'@')
    .add(b':')
    .add(b'%')
    .add(b'&')
    .add(b'=');

/// A database server, and optionally one database on it. Never holds a
/// password: one in the URL is refused, since a URL ends up in process
/// listings and shell history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// PostgreSQL or MySQL/MariaDB.
    pub kind: DatabaseKind,
    /// Login name (default: the client's default, usually the OS user).
    pub user: Option<String>,
    /// Host name or address.
    pub host: String,
    /// Port (default: the client's, 5432 or 3306).
    pub port: Option<u16>,
    /// Database name; `None` means every database of the server.
    pub database: Option<String>,
    /// Connection parameters passed through to the clients (`sslmode=…` for
    /// PostgreSQL, `ssl-ca=…` and other `ssl*` options for MySQL).
    pub params: Vec<(String, String)>,
}

impl DatabaseUrl {
    /// Parses a URL; says what is wrong with a bad one.
    pub fn parse(text: &str) -> Result<Self, DatabaseError> {
        let bad = |why: &str| DatabaseError::Invalid(format!("{}: {why}", redact(text)));
        let (scheme, _) = text.split_once("://").ok_or_else(|| {
            bad("not a database URL: expected postgres://, postgresql://, mysql:// or mariadb://")
        })?;
        let kind =
            match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => DatabaseKind::Postgres,
                "mysql" | "mariadb" => DatabaseKind::Mysql,
                _ => return Err(bad(
                    "unknown scheme: expected postgres://, postgresql://, mysql:// or mariadb://",
                )),
            };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.password().is_some() {
            return Err(bad(&format!(
                "a password in the URL would show in process listings; use {}, or --db-password-file",
                match kind {
                    DatabaseKind::Postgres => "PGPASSWORD, ~/.pgpass (PGPASSFILE) or a PGSERVICE entry",
                    DatabaseKind::Mysql => "MYSQL_PWD, an option file (~/.my.cnf)",
                }
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host: expected SCHEME://[user@]host[:port]/database"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let user = match url.username() {
            "" => None,
            u => Some(decode(u).map_err(|_| bad("the user name is not valid UTF-8"))?),
        };
        let path = url.path().trim_start_matches('/');
        let database = match path {
            "" => None,
            p if p.contains('/') => {
                return Err(bad(
                    "a database name cannot contain `/`; give SCHEME://host/database",
                ))
            }
            p => Some(decode(p).map_err(|_| bad("the database name is not valid UTF-8"))?),
        };
        let mut params = Vec::new();
        for (key, value) in url.query_pairs() {
            let key = key.to_string();
            if key.eq_ignore_ascii_case("password") {
                // Not even the redacted URL: the password is in its query.
                return Err(DatabaseError::Invalid(
                    "a password in the URL would show in process listings; use --db-password-file"
                        .into(),
                ));
            }
            if kind == DatabaseKind::Mysql && !(key.starts_with("ssl") || key.starts_with("tls")) {
                return Err(bad(&format!(
                    "unknown parameter {key:?}: a mysql:// URL takes the client's ssl-* and tls-* options"
                )));
            }
            params.push((key, value.to_string()));
        }
        Ok(DatabaseUrl {
            kind,
            user,
            host,
            port: url.port(),
            database,
            params,
        })
    }

    /// The same server with another database.
    pub fn with_database(&self, database: &str) -> Self {
        DatabaseUrl {
            database: Some(database.to_string()),
            ..self.clone()
        }
    }

    /// True when both name the same server (host and port as written).
    pub fn same_server(&self, other: &DatabaseUrl) -> bool {
        self.kind == other.kind
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port_or_default() == other.port_or_default()
    }

    /// The port, or the kind's usual one.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.kind {
            DatabaseKind::Postgres => 5432,
            DatabaseKind::Mysql => 3306,
        })
    }

    /// The URL libpq takes (`--dbname=…`): no password, parameters kept.
    pub(crate) fn libpq(&self, database: Option<&str>) -> String {
        let mut u = DatabaseUrl {
            database: database.map(str::to_string).or(self.database.clone()),
            ..self.clone()
        }
        .to_string();
        if let Some(rest) = u.strip_prefix("postgres://") {
            u = format!("postgresql://{rest}");
        }
        u
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "mysql",
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.user {
            write!(f, "{}@", utf8_percent_encode(user, PART))?;
        }
        match self.host.contains(':') {
            true => write!(f, "[{}]", self.host)?,
            false => write!(f, "{}", self.host)?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "/")?;
        if let Some(db) = &self.database {
            write!(f, "{}", utf8_percent_encode(db, PART))?;
        }
        for (i, (k, v)) in self.params.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(
                f,
                "{sep}{}={}",
                utf8_percent_encode(k, PART),
                utf8_percent_encode(v, PART)
            )?;
        }
        Ok(())
    }
}

fn decode(text: &str) -> Result<String, std::str::Utf8Error> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
}

/// The URL with any password replaced, for messages about a bad URL.
fn redact(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &text[s + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &text[..s + 3], &text[at..]),
                None => text.to_string(),
            }
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        let u =
            DatabaseUrl::parse("postgresql://backup@db.example:6543/shop?sslmode=require").unwrap();
        assert_eq!(u.kind, DatabaseKind::Postgres);
        assert_eq!(u.user.as_deref(), Some("backup"));
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, Some(6543));
        assert_eq!(u.database.as_deref(), Some("shop"));
        assert_eq!(
            u.to_string(),
            "postgres://backup@db.example:6543/shop?sslmode=require"
        );
        assert_eq!(
            u.libpq(Some("x")),
            "postgresql://backup@db.example:6543/x?sslmode=require"
        );

        let m = DatabaseUrl::parse("mariadb://root@127.0.0.1/").unwrap();
        assert_eq!(m.kind, DatabaseKind::Mysql);
        assert_eq!(m.database, None);
        assert_eq!(m.port_or_default(), 3306);
        let odd = DatabaseUrl::parse("mysql://u%40x@h/my%20db").unwrap();
        assert_eq!(odd.user.as_deref(), Some("u@x"));
        assert_eq!(odd.database.as_deref(), Some("my db"));
        assert_eq!(DatabaseUrl::parse(&odd.to_string()).unwrap(), odd);
        assert!(m.same_server(&DatabaseUrl::parse("mysql://other@127.0.0.1:3306/db").unwrap()));
    }

    #[test]
    fn refuses_passwords_and_nonsense_without_echoing_secrets() {
        let e = DatabaseUrl::parse("postgres://u:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("process listings"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = DatabaseUrl::parse("postgres://h/db?password=hunter2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--db-password-file"), "{e}");
        for bad in [
            "ftp://h/db",
            "postgres:///db",
            "h/db",
            "postgres://h/a/b",
            "mysql://h/db?compress=1",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
