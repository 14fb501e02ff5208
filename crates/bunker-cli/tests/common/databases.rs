//! The real PostgreSQL and MariaDB servers on 127.0.0.1 (scripts/test-services):
//! finding them, running SQL with their own clients, and databases made
//! for one test and dropped when it ends.

use std::process::Command as Std;

/// The test servers' URLs (no database), or `None` (test skipped) when they
/// do not answer and the services are not required.
pub fn servers() -> Option<(String, String)> {
    let mut pg = "postgres://root@127.0.0.1:5432".to_string();
    let mut my = "mysql://root@127.0.0.1:3306".to_string();
    if let Some(file) = std::env::var_os("BUNKER_TEST_SERVICES_ENV") {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            if let Some(v) = line.strip_prefix("BUNKER_TEST_POSTGRES_URL=") {
                pg = v.to_string();
            }
            if let Some(v) = line.strip_prefix("BUNKER_TEST_MYSQL_URL=") {
                my = v.to_string();
            }
        }
    }
    let up = sql_succeeds(&pg, "test", "select 1") && sql_succeeds(&my, "test", "select 1");
    if up {
        return Some((pg, my));
    }
    if std::env::var_os("BUNKER_REQUIRE_TEST_SERVICES").is_some() {
        panic!(
            "PostgreSQL or MariaDB does not answer on 127.0.0.1 (run scripts/test-services start)"
        );
    }
    eprintln!("skipped: PostgreSQL or MariaDB does not answer (run scripts/test-services start)");
    None
}

pub fn port(url: &str) -> &str {
    url.rsplit(':').next().unwrap()
}

/// The server's own shell client (psql or mariadb) running `sql` in `db`.
pub fn client(server: &str, db: &str, sql: &str) -> Std {
    if server.starts_with("postgres") {
        let mut c = Std::new("psql");
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "{}/{db}",
                server.replace("postgres://", "postgresql://")
            ))
            .args(["-c", sql]);
        return c;
    }
    let mut c = Std::new("mariadb");
    c.args([
        "--default-character-set=utf8mb4",
        "-h",
        "127.0.0.1",
        "-u",
        "root",
        "--password=",
        "-N",
        "-B",
    ])
    .arg(format!("--port={}", port(server)))
    .arg(format!("--database={db}"))
    .args(["-e", sql]);
    c
}

pub fn sql_succeeds(server: &str, db: &str, sql: &str) -> bool {
    client(server, db, sql)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs SQL on the server, expecting success; returns its output.
pub fn run_sql(server: &str, db: &str, sql: &str) -> String {
    let out = client(server, db, sql)
        .output()
        .expect("run the database client");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A database created for one test and dropped when it ends.
pub struct TestDb {
    pub server: String,
    pub name: String,
    pub postgres: bool,
}

impl TestDb {
    pub fn new(server: &str, tag: &str) -> TestDb {
        let db = TestDb {
            server: server.to_string(),
            name: format!("bunker_t_{}_{tag}", std::process::id()),
            postgres: server.starts_with("postgres"),
        };
        db.drop_db();
        run_sql(
            server,
            db.maintenance(),
            &format!("CREATE DATABASE {}", db.name),
        );
        db
    }

    /// A name for a database the test will create through bunker (dropped at the end too).
    pub fn sibling(&self, tag: &str) -> TestDb {
        let db = TestDb {
            server: self.server.clone(),
            name: format!("{}_{tag}", self.name),
            postgres: self.postgres,
        };
        db.drop_db();
        db
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// A database of the server that always exists.
    pub fn maintenance(&self) -> &'static str {
        if self.postgres {
            "postgres"
        } else {
            "test"
        }
    }

    pub fn sql(&self, sql: &str) -> String {
        run_sql(&self.server, &self.name, sql)
    }

    pub fn exists(&self) -> bool {
        let sql = match self.postgres {
            true => format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                self.name
            ),
            false => format!(
                "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
                self.name
            ),
        };
        run_sql(&self.server, self.maintenance(), &sql) == "1"
    }

    pub fn drop_db(&self) {
        let force = if self.postgres { " WITH (FORCE)" } else { "" };
        run_sql(
            &self.server,
            self.maintenance(),
            &format!("DROP DATABASE IF EXISTS {}{force}", self.name),
        );
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.drop_db();
    }
}
