//! Database backups against the real PostgreSQL and MariaDB servers on
//! 127.0.0.1 (scripts/test-services): round trips that compare content,
//! restore refusals, the verification drill, and the completeness guard
//! against dumps that die, lie or are cut short.

mod common;

use std::path::{Path, PathBuf};

use common::databases::*;
use common::*;
use serde_json::Value;

/// Fills a PostgreSQL database with what breaks naive tools.
fn fill_postgres(db: &TestDb, big_rows: u64) {
    db.sql(&format!(
        r#"
CREATE SCHEMA sales;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text, profile jsonb, photo bytea, balance numeric(20,6));
INSERT INTO customers (name, note, profile, photo, balance) VALUES
  ('Zoë 🦀 Ünïcode ✓', NULL, '{{"vip": true, "tags": ["a", "b"], "nested": {{"x": 1.5}}}}', '\x00ff10', 12345678901234.123456),
  (E'tab\there\nnew line', E'back\\slash ''quote''', NULL, NULL, -0.000001),
  ('plain', '', '[]', '', 0);
CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer int NOT NULL REFERENCES customers(id), total numeric, placed timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
CREATE TABLE audit (id serial PRIMARY KEY, what text);
CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit(what) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION log_order();
INSERT INTO sales.orders (customer, total) SELECT 1 + (g % 3), g * 1.5 FROM generate_series(1, 2000) g;
CREATE VIEW sales.per_customer AS SELECT customer, sum(total) AS total, count(*) AS n FROM sales.orders GROUP BY customer;
CREATE FUNCTION sales.twice(x numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE PROCEDURE sales.add_order(c int, t numeric) LANGUAGE sql AS 'INSERT INTO sales.orders (customer, total) VALUES (c, t)';
CREATE SEQUENCE ticket START 100;
SELECT nextval('ticket'), nextval('ticket');
SELECT lo_from_bytea(0, 'a large object');
CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, {big_rows}) g;
"#
    ));
}

/// Everything a PostgreSQL round trip must keep: every table's rows (an
/// ordered checksum), the view's and routines' results, the sequence, the
/// large object, and the trigger (it must still fire).
fn postgres_content(db: &TestDb) -> Vec<String> {
    let tables = db.sql(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname IN ('public', 'sales') ORDER BY 1",
    );
    let mut content: Vec<String> = tables
        .lines()
        .map(|t| {
            let sum = db.sql(&format!(
                "SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"
            ));
            format!("{t} {sum}")
        })
        .collect();
    content.push(
        db.sql("SELECT md5(string_agg(v::text, '|' ORDER BY v::text)) FROM sales.per_customer v"),
    );
    content.push(db.sql("SELECT sales.twice(21.5)"));
    content.push(db.sql("SELECT last_value FROM ticket"));
    content.push(db.sql("SELECT encode(lo_get(oid), 'escape') FROM pg_largeobject_metadata"));
    content.push(db.sql("SELECT customers.profile->'nested'->>'x' FROM customers WHERE id = 1"));
    content
}

/// The trigger and the procedure work in `db`.
fn postgres_code_works(db: &TestDb) {
    let before: u64 = db.sql("SELECT count(*) FROM audit").parse().unwrap();
    db.sql("CALL sales.add_order(2, 10)");
    let after: u64 = db.sql("SELECT count(*) FROM audit").parse().unwrap();
    assert_eq!(
        after,
        before + 1,
        "the trigger did not fire after the restore"
    );
}

fn fill_mysql(db: &TestDb, big_rows: u64) {
    db.sql(&format!(
        r#"
CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, note TEXT, profile JSON, photo BLOB, balance DECIMAL(20,6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO customers (name, note, profile, photo, balance) VALUES
  ('Zoë 🦀 Ünïcode ✓', NULL, '{{"vip": true, "tags": ["a", "b"]}}', 0x00FF10, 12345678901234.123456),
  ('tab\there\nnew line', 'back\\slash ''quote'' (paren;', NULL, NULL, -0.000001),
  ('plain', '', '[]', '', 0);
CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL, total DECIMAL(12,2), FOREIGN KEY (customer) REFERENCES customers(id)) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100));
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
INSERT INTO orders (customer, total) SELECT 1 + seq % 3, seq * 1.5 FROM seq_1_to_2000;
CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM;
INSERT INTO legacy SELECT seq, CONCAT('v', seq) FROM seq_1_to_100;
CREATE VIEW per_customer AS SELECT customer, SUM(total) AS total, COUNT(*) AS n FROM orders GROUP BY customer;
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE PROCEDURE add_order(c INT, t DECIMAL(12,2)) INSERT INTO orders (customer, total) VALUES (c, t);
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0;
CREATE TABLE big (id INT PRIMARY KEY, h CHAR(32)) ENGINE=InnoDB;
INSERT INTO big SELECT seq, MD5(seq) FROM seq_1_to_{big_rows};
"#
    ));
}

fn mysql_content(db: &TestDb) -> Vec<String> {
    let mut content: Vec<String> = ["customers", "orders", "audit", "legacy", "big"]
        .iter()
        .map(|t| {
            let sum = db.sql(&format!("CHECKSUM TABLE {t}"));
            let rows = db.sql(&format!("SELECT COUNT(*) FROM {t}"));
            format!("{t} {rows} {}", sum.split('\t').nth(1).unwrap_or(""))
        })
        .collect();
    content.push(db.sql(
        "SELECT GROUP_CONCAT(customer, ':', total, ':', n ORDER BY customer) FROM per_customer",
    ));
    content.push(db.sql("SELECT twice(21)"));
    content.push(db.sql("SELECT HEX(name), HEX(photo), balance FROM customers ORDER BY id"));
    content.push(db.sql(
        "SELECT GROUP_CONCAT(EVENT_NAME, ':', STATUS) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()",
    ));
    content.push(db.sql("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'legacy'"));
    content
}

fn mysql_code_works(db: &TestDb) {
    let before: u64 = db.sql("SELECT COUNT(*) FROM audit").parse().unwrap();
    db.sql("CALL add_order(2, 10)");
    let after: u64 = db.sql("SELECT COUNT(*) FROM audit").parse().unwrap();
    assert_eq!(
        after,
        before + 1,
        "the trigger did not fire after the restore"
    );
}

/// `bunker ARGS` on the test's repository, with its exit code checked.
fn bunker_ok(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let out = run(env.cmd().args(args));
    expect_code(&out, 0, &format!("{args:?}"));
    out
}

/// The one database snapshot of the repository matching `args`.
fn db_snapshots(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    env.snapshots(args)
}

/// The recorded row counts of a snapshot, by table.
fn recorded_rows(snapshot: &Value) -> Vec<(String, u64)> {
    snapshot["database"]["tables"]
        .as_array()
        .expect("a database snapshot lists its tables")
        .iter()
        .map(|t| {
            let name = match t["schema"].as_str().unwrap() {
                "" => t["table"].as_str().unwrap().to_string(),
                s => format!("{s}.{}", t["table"].as_str().unwrap()),
            };
            (name, t["rows"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn postgres_round_trip_keeps_content_and_counts_rows_exactly() {
    let Some((pg, _)) = servers() else { return };
    let env = TestEnv::new();
    env.init();
    let src = TestDb::new(&pg, "pgsrc");
    fill_postgres(&src, 1_000_000);
    let expected = postgres_content(&src);

    // Counted twice: in the dump as it streams, and by the database in the
    // dump's own snapshot; both must agree table by table.
    let out = bunker_ok(
        &env,
        &[
            "db",
            "backup",
            "--count-rows",
            "--tag",
            "nightly",
            &src.url(),
        ],
    );
    assert!(stdout(&out).contains("snapshot"), "{}", stdout(&out));
    let snaps = db_snapshots(&env, &["--kind", "postgres"]);
    assert_eq!(snaps.len(), 1);
    let snap = &snaps[0];
    assert_eq!(snap["kind"], "postgres");
    assert_eq!(snap["tags"], serde_json::json!(["nightly"]));
    assert_eq!(snap["paths"][0], src.url());
    assert_eq!(snap["database"]["database"], src.name.as_str());
    assert!(snap["database"]["server_version"]
        .as_str()
        .unwrap()
        .starts_with(|c: char| c.is_ascii_digit()));
    assert!(snap["database"]["dump_program"]
        .as_str()
        .unwrap()
        .contains("pg_dump"));
    let rows = recorded_rows(snap);
    for (table, count) in [
        ("public.big", 1_000_000),
        ("public.customers", 3),
        ("sales.orders", 2000),
        ("public.audit", 2000),
        ("(large objects)", 1),
    ] {
        assert!(
            rows.contains(&(table.to_string(), count)),
            "{table}: {rows:?}"
        );
    }
    assert!(db_snapshots(&env, &["--kind", "files"]).is_empty());
    assert!(db_snapshots(&env, &["--kind", "mysql"]).is_empty());

    // A new database, created by the restore, holds exactly the same.
    let restored = src.sibling("restored");
    bunker_ok(
        &env,
        &[
            "db",
            "restore",
            "latest",
            "--to",
            &restored.url(),
            "--create",
        ],
    );
    assert_eq!(postgres_content(&restored), expected);
    postgres_code_works(&restored);

    // In parallel, from a temporary file, into an existing empty database.
    let parallel = src.sibling("parallel");
    run_sql(
        &pg,
        "postgres",
        &format!("CREATE DATABASE {}", parallel.name),
    );
    bunker_ok(
        &env,
        &[
            "db",
            "restore",
            "latest",
            "--to",
            &parallel.url(),
            "--jobs",
            "2",
        ],
    );
    assert_eq!(postgres_content(&parallel), expected);

    // One table alone.
    let one = src.sibling("one");
    bunker_ok(
        &env,
        &[
            "db",
            "restore",
            "latest",
            "--to",
            &one.url(),
            "--create",
            "--table",
            "customers",
        ],
    );
    assert_eq!(one.sql("SELECT count(*) FROM customers"), "3");
    assert!(
        !sql_succeeds(&pg, &one.name, "SELECT 1 FROM big"),
        "--table restored other tables"
    );

    // The drill: a scratch database, counts, assertions, timings, dropped.
    let out = bunker_ok(
        &env,
        &[
            "--json",
            "db",
            "verify",
            "latest",
            "--assert",
            "SELECT count(*) = 1000000 FROM big",
            "--assert",
            "SELECT sales.twice(2) = 4",
        ],
    );
    let report = parse_json(&out.stdout);
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["dropped"], true, "{report}");
    assert!(report["restore_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["found"] == t["expected"]));
    let scratch = report["scratch"].as_str().unwrap();
    assert!(
        !sql_succeeds(&pg, scratch, "SELECT 1"),
        "the scratch database {scratch} was left behind"
    );

    // A false assertion fails the drill.
    let out = run(env.cmd().args([
        "db",
        "verify",
        "latest",
        "--assert",
        "SELECT count(*) = 5 FROM customers",
    ]));
    expect_code(&out, 1, "verify with a false assertion");
    assert!(
        stdout(&out).contains("FAILED assertion"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn mysql_round_trip_keeps_content_and_counts_rows_exactly() {
    let Some((_, my)) = servers() else { return };
    let env = TestEnv::new();
    env.init();
    let src = TestDb::new(&my, "mysrc");
    fill_mysql(&src, 1_000_000);
    let expected = mysql_content(&src);

    bunker_ok(&env, &["db", "backup", &src.url()]);
    let snaps = db_snapshots(&env, &["--kind", "mysql"]);
    assert_eq!(snaps.len(), 1);
    let rows = recorded_rows(&snaps[0]);
    for (table, count) in [
        ("big", 1_000_000),
        ("customers", 3),
        ("orders", 2000),
        ("legacy", 100),
        ("audit", 2000),
    ] {
        assert!(
            rows.contains(&(format!("{}.{table}", src.name), count)),
            "{table}: {rows:?}"
        );
    }
    assert!(snaps[0]["database"]["dump_program"]
        .as_str()
        .unwrap()
        .contains("dump"));

    let restored = src.sibling("restored");
    bunker_ok(
        &env,
        &[
            "db",
            "restore",
            "latest",
            "--to",
            &restored.url(),
            "--create",
        ],
    );
    assert_eq!(mysql_content(&restored), expected);
    mysql_code_works(&restored);

    // One table alone, cut from the SQL stream.
    let one = src.sibling("one");
    bunker_ok(
        &env,
        &[
            "db",
            "restore",
            "latest",
            "--to",
            &one.url(),
            "--create",
            "--table",
            "legacy",
        ],
    );
    assert_eq!(one.sql("SELECT COUNT(*) FROM legacy"), "100");
    assert_eq!(one.sql("SHOW TABLES"), "legacy");
    let out = run(env.cmd().args([
        "db",
        "restore",
        "latest",
        "--to",
        &one.url(),
        "--clean",
        "--table",
        "nope",
    ]));
    expect_code(&out, 1, "an unknown table");
    assert!(stderr(&out).contains("no table nope"), "{}", stderr(&out));

    let out = bunker_ok(
        &env,
        &[
            "--json",
            "db",
            "verify",
            "latest",
            "--assert",
            "SELECT COUNT(*) = 100 FROM legacy",
        ],
    );
    let report = parse_json(&out.stdout);
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["dropped"], true, "{report}");
    assert!(!sql_succeeds(
        &my,
        report["scratch"].as_str().unwrap(),
        "SELECT 1"
    ));
}

#[test]
fn restore_refuses_to_overwrite_without_being_told() {
    let Some((pg, my)) = servers() else { return };
    let env = TestEnv::new();
    env.init();
    let src = TestDb::new(&pg, "refuse");
    src.sql("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2)");
    bunker_ok(&env, &["db", "backup", &src.url()]);

    // Onto the database it came from: only with --clean, and the message
    // names what would be overwritten.
    let out = run(env
        .cmd()
        .args(["db", "restore", "latest", "--to", &src.url()]));
    expect_code(&out, 1, "restore onto the origin");
    assert!(
        stderr(&out).contains("came from") && stderr(&out).contains("public.t"),
        "{}",
        stderr(&out)
    );
    src.sql("INSERT INTO t VALUES (3)");
    let out = bunker_ok(
        &env,
        &["db", "restore", "latest", "--to", &src.url(), "--clean"],
    );
    assert!(stdout(&out).contains("public.t"), "{}", stdout(&out));
    assert_eq!(src.sql("SELECT count(*) FROM t"), "2");

    // --create refuses an existing database; without it, a missing one.
    let out = run(env
        .cmd()
        .args(["db", "restore", "latest", "--to", &src.url(), "--create"]));
    expect_code(&out, 1, "--create onto an existing database");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let missing = src.sibling("missing");
    let out = run(env
        .cmd()
        .args(["db", "restore", "latest", "--to", &missing.url()]));
    expect_code(&out, 1, "restore into a missing database");
    assert!(stderr(&out).contains("--create"), "{}", stderr(&out));
    assert!(!missing.exists());

    // A non-empty other database needs --clean.
    let other = src.sibling("other");
    run_sql(&pg, "postgres", &format!("CREATE DATABASE {}", other.name));
    other.sql("CREATE TABLE keep (x int)");
    let out = run(env
        .cmd()
        .args(["db", "restore", "latest", "--to", &other.url()]));
    expect_code(&out, 1, "restore into a non-empty database");
    assert!(
        stderr(&out).contains("not empty") && stderr(&out).contains("keep"),
        "{}",
        stderr(&out)
    );

    // A restore that fails leaves no database it created, and names the
    // failing statement: here the dump's owner role is gone.
    let role = format!("bunker_owner_{}", std::process::id());
    run_sql(
        &pg,
        "postgres",
        &format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role}"),
    );
    src.sql(&format!(
        "CREATE TABLE owned (x int); ALTER TABLE owned OWNER TO {role}"
    ));
    bunker_ok(&env, &["db", "backup", &src.url()]);
    src.sql("DROP TABLE owned");
    run_sql(&pg, "postgres", &format!("DROP ROLE {role}"));
    let failed = src.sibling("failed");
    let out = run(env
        .cmd()
        .args(["db", "restore", "latest", "--to", &failed.url(), "--create"]));
    expect_code(&out, 1, "restore with a missing role");
    assert!(
        stderr(&out).contains(&role),
        "the failing statement is not named: {}",
        stderr(&out)
    );
    assert!(
        !failed.exists(),
        "a failed --create restore left its database behind"
    );
    // The same dump loads when ownership is left to the restoring login.
    bunker_ok(
        &env,
        &[
            "db",
            "restore",
            "latest",
            "--to",
            &failed.url(),
            "--create",
            "--no-owner",
        ],
    );
    assert_eq!(failed.sql("SELECT count(*) FROM t"), "2");

    // A PostgreSQL dump does not go into MySQL.
    let out = run(env.cmd().args([
        "db",
        "restore",
        latest_id(&env).as_str(),
        "--to",
        &format!("{my}/x"),
    ]));
    expect_code(&out, 1, "a postgres dump into mysql");
}

fn latest_id(env: &TestEnv) -> String {
    env.snapshots(&[]).last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A `--dump-command` script: bash, with `$DUMP` the real dump program.
fn wrapper(env: &TestEnv, name: &str, real: &str, body: &str) -> PathBuf {
    let path = env.path(name);
    std::fs::write(&path, format!("#!/bin/bash\nDUMP={real}\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// A backup that must not become a recovery point: exit 1, one error line
/// naming `why`, and no new snapshot.
fn refused(env: &TestEnv, args: &[&str], why: &str) {
    let before = env.snapshots(&[]).len();
    let out = run(env.cmd().args(args));
    expect_code(&out, 1, &format!("{args:?}"));
    let err = stderr(&out);
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("bunker: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(why), "expected {why:?} in: {err}");
    assert_eq!(
        env.snapshots(&[]).len(),
        before,
        "{args:?} saved a snapshot"
    );
}

#[test]
fn the_guard_refuses_every_dump_that_is_not_whole() {
    let Some((pg, my)) = servers() else { return };
    let env = TestEnv::new();
    env.init();
    let src = TestDb::new(&pg, "guard");
    src.sql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 300000) g",
    );
    bunker_ok(&env, &["db", "backup", &src.url()]);
    let good = latest_id(&env);
    let url = src.url();
    let dump = |path: &Path| path.to_string_lossy().into_owned();

    let killed = wrapper(
        &env,
        "killed.sh",
        "pg_dump",
        "$DUMP \"$@\" | head -c 30000; kill -9 $$",
    );
    refused(
        &env,
        &["db", "backup", "--dump-command", &dump(&killed), &url],
        "killed by signal 9",
    );

    let half = wrapper(
        &env,
        "half.sh",
        "pg_dump",
        "$DUMP \"$@\" | head -c 300000; exit 0",
    );
    refused(
        &env,
        &["db", "backup", "--dump-command", &dump(&half), &url],
        "not a recovery point",
    );

    let liar = wrapper(
        &env,
        "liar.sh",
        "pg_dump",
        "$DUMP \"$@\"; echo 'pg_dump: error: query failed: connection lost' >&2; exit 0",
    );
    refused(
        &env,
        &["db", "backup", "--dump-command", &dump(&liar), &url],
        "reported an error",
    );

    let empty = wrapper(&env, "empty.sh", "pg_dump", "exit 0");
    refused(
        &env,
        &["db", "backup", "--dump-command", &dump(&empty), &url],
        "empty",
    );

    // The server ends the dump's session half-way.
    let away = wrapper(
        &env,
        "away.sh",
        "pg_dump",
        &format!(
            "set -o pipefail\n$DUMP \"$@\" | {{ head -c 200000; psql -X -q -d '{pg}/postgres' -c \
             \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = '{}'\" >/dev/null; cat; }}",
            src.name
        )
        .replace("postgres://", "postgresql://"),
    );
    refused(
        &env,
        &["db", "backup", "--dump-command", &dump(&away), &url],
        "pg_dump",
    );

    refused(
        &env,
        &[
            "db",
            "backup",
            &format!("{pg}/bunker_no_such_db_{}", std::process::id()),
        ],
        "does not exist",
    );

    // A dump of the wrong, nearly empty database (a stale replica, a
    // wrapper pointed elsewhere) is whole by every structural check but
    // holds far fewer rows than the server estimates.
    let stale = src.sibling("stale");
    run_sql(&pg, "postgres", &format!("CREATE DATABASE {}", stale.name));
    stale.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 10) g");
    src.sql("ANALYZE t");
    let elsewhere = wrapper(
        &env,
        "elsewhere.sh",
        "pg_dump",
        &format!(
            "args=()\nfor a in \"$@\"; do case \"$a\" in --snapshot=*) ;; --dbname=*) args+=(\"--dbname={}\") ;; \
             *) args+=(\"$a\") ;; esac; done\nexec $DUMP \"${{args[@]}}\"",
            stale.url().replace("postgres://", "postgresql://")
        ),
    );
    refused(
        &env,
        &["db", "backup", "--dump-command", &dump(&elsewhere), &url],
        "implausibly small",
    );

    // MySQL: cut short with exit 0 (no "Dump completed" trailer), a wrong password.
    let msrc = TestDb::new(&my, "guard");
    msrc.sql("CREATE TABLE t (id INT PRIMARY KEY, h CHAR(32)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000");
    let cut = wrapper(
        &env,
        "mcut.sh",
        "mariadb-dump",
        "$DUMP \"$@\" | head -c 100000; exit 0",
    );
    refused(
        &env,
        &["db", "backup", "--dump-command", &dump(&cut), &msrc.url()],
        "not a recovery point",
    );

    let user = format!("bunker_pw_{}", std::process::id());
    run_sql(&my, "test", &format!("DROP USER IF EXISTS '{user}'@'127.0.0.1'; CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'right-Secret-1'; GRANT ALL ON {}.* TO '{user}'@'127.0.0.1'", msrc.name));
    let login = format!("mysql://{user}@127.0.0.1:{}/{}", port(&my), msrc.name);
    let wrong = env.password_file("wrong", "wrong-Secret-9");
    let out = run(env
        .cmd()
        .args(["db", "backup", "--db-password-file"])
        .arg(&wrong)
        .arg(&login));
    expect_code(&out, 1, "a wrong database password");
    assert!(stderr(&out).contains("Access denied"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong-Secret-9") && !stdout(&out).contains("wrong-Secret-9"));
    let right = env.password_file("right", "right-Secret-1");
    let out = run(env
        .cmd()
        .args(["db", "backup", "--db-password-file"])
        .arg(&right)
        .arg(&login));
    expect_code(&out, 0, "the right database password, from a file");
    run_sql(&my, "test", &format!("DROP USER '{user}'@'127.0.0.1'"));

    // Retention afterwards keeps the good snapshots: no failed dump counts.
    bunker_ok(
        &env,
        &[
            "forget",
            "--keep-last",
            "1",
            "--kind",
            "postgres",
            "--prune",
        ],
    );
    let left = env.snapshots(&["--kind", "postgres"]);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"].as_str().unwrap(), good);
    bunker_ok(&env, &["check"]);
}

#[test]
fn every_database_of_a_server_and_the_globals() {
    let Some((pg, _)) = servers() else { return };
    let env = TestEnv::new();
    env.init();
    let a = TestDb::new(&pg, "alla");
    a.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let out = bunker_ok(
        &env,
        &["--json", "db", "backup", "--dry-run", &format!("{pg}/")],
    );
    let lines = parse_json_stream(&out.stdout);
    let named: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["database"].as_str())
        .collect();
    assert!(named.contains(&a.url().as_str()), "{named:?}");
    assert!(
        !named
            .iter()
            .any(|n| n.ends_with("/template0") || n.ends_with("/template1")),
        "{named:?}"
    );
    assert!(env.snapshots(&[]).is_empty(), "a dry run saved snapshots");

    bunker_ok(&env, &["db", "backup", &a.url()]);
    let snap = &env.snapshots(&[])[0];
    assert_eq!(snap["database"]["globals_file"], "globals.sql");
    let out = bunker_ok(&env, &["dump", "latest", "/globals.sql"]);
    assert!(
        stdout(&out).contains("CREATE ROLE root"),
        "{}",
        stdout(&out)
    );
    let copy = a.sibling("g");
    let out = bunker_ok(
        &env,
        &[
            "db",
            "restore",
            "latest",
            "--to",
            &copy.url(),
            "--create",
            "--globals",
        ],
    );
    // The roles exist already: said, not fatal.
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(copy.sql("SELECT count(*) FROM t"), "1");

    // A copy to another repository is still a database snapshot, restorable from there.
    let other = env.path("other-repo");
    let out = env.on_repo(&other, &["init"]);
    expect_code(&out, 0, "init the copy's repository");
    let out = run(env
        .cmd()
        .env("BUNKER_TO_PASSWORD_FILE", &env.password_file)
        .args(["copy", "--to"])
        .arg(&other));
    expect_code(&out, 0, "copy");
    let out = env.on_repo(&other, &["snapshots", "--json", "--kind", "postgres"]);
    expect_code(&out, 0, "snapshots of the copy");
    let copied = parse_json(&out.stdout);
    assert_eq!(copied[0]["database"], snap["database"], "{copied}");
    let again = a.sibling("c");
    let out = env.on_repo(
        &other,
        &["db", "restore", "latest", "--create", "--to", &again.url()],
    );
    expect_code(&out, 0, "restore from the copy");
    assert_eq!(again.sql("SELECT count(*) FROM t"), "1");
}

#[test]
fn backup_of_a_command_output_is_guarded_too() {
    let env = TestEnv::new();
    env.init();
    let out = run(env.cmd().args([
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "out.txt",
        "--",
        "sh",
        "-c",
        "echo partial; exit 3",
    ]));
    expect_code(&out, 1, "a failing command");
    assert!(
        stderr(&out).contains("exited with status 3") && stderr(&out).contains("no snapshot"),
        "{}",
        stderr(&out)
    );
    let out = run(env
        .cmd()
        .args(["backup", "--stdin-from-command", "--", "true"]));
    expect_code(&out, 1, "a command that prints nothing");
    assert!(stderr(&out).contains("--allow-empty"), "{}", stderr(&out));
    assert!(env.snapshots(&[]).is_empty());
    bunker_ok(
        &env,
        &[
            "backup",
            "--stdin-from-command",
            "--allow-empty",
            "--",
            "true",
        ],
    );
    bunker_ok(
        &env,
        &[
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "seq.txt",
            "--",
            "seq",
            "1",
            "100000",
        ],
    );
    let out = bunker_ok(&env, &["dump", "latest", "/seq.txt"]);
    let expected: String = (1..=100000).map(|i| format!("{i}\n")).collect();
    assert!(
        out.stdout == expected.as_bytes(),
        "the command's output was not kept exactly"
    );
    assert_eq!(env.snapshots(&[]).len(), 2);
}
