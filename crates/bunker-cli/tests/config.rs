//! `bunker config check`: the config file is found where the brief says,
//! a good one prints its plans, a bad one is a usage error (exit 2) naming
//! the file, line and column.

mod common;

use common::*;

const GOOD: &str = r#"
[repositories.main]
url = "/srv/backup/repo"
password-file = "/etc/bunker/main.pass"

[plans.www]
repository = "main"
paths = ["/srv/www"]
databases = ["postgres://backup@127.0.0.1:5432/shop"]
schedule = "0 2 * * *"
full-every = "7d"
rpo = "24h"
rto = "1h"

[plans.www.drill]
schedule = "every 7d"
scratch = "/var/tmp/bunker-drill"
"#;

#[test]
fn config_check_prints_the_plans_of_a_good_file() {
    let env = TestEnv::new();
    let file = env.path("bunker.toml");
    std::fs::write(&file, GOOD).unwrap();
    let out = run(bunker(&env)
        .arg("--config")
        .arg(&file)
        .args(["config", "check"]));
    expect_code(&out, 0, "config check");
    let text = stdout(&out);
    for expected in [
        "plan www:",
        "repository: main",
        "path: /srv/www",
        "database: postgres://backup@127.0.0.1:5432/shop",
        "schedule: 0 2 * * * (next: ",
        "RPO 1d, RTO 1h",
        "drill: every 1w into /var/tmp/bunker-drill (100% of files)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let out = run(bunker(&env)
        .env("BUNKER_CONFIG", &file)
        .args(["--json", "config", "check"]));
    expect_code(&out, 0, "config check --json via BUNKER_CONFIG");
    let v = parse_json(&out.stdout);
    assert_eq!(v["plans"][0]["name"], "www");
    assert_eq!(v["plans"][0]["rpo_seconds"], 86_400);
    assert!(v["plans"][0]["next_run"].is_string(), "{v}");
    // The user's config directory is the next place looked in.
    let dir = env.home.join(".config/bunker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bunker.toml"), GOOD).unwrap();
    let out = run(bunker(&env)
        .env("XDG_CONFIG_HOME", env.home.join(".config"))
        .args(["config", "check"]));
    expect_code(&out, 0, "config check from the config directory");
    assert!(
        stdout(&out).contains(".config/bunker/bunker.toml: ok"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_bad_config_is_a_usage_error_with_its_place() {
    let env = TestEnv::new();
    let file = env.path("bunker.toml");
    for (text, place, what) in [
        (
            GOOD.replace("rto = \"1h\"", "rto = \"1 hour\""),
            ":13:7:",
            "unit",
        ),
        (
            GOOD.replace("full-every", "ful-every"),
            ":11:1:",
            "unknown field `ful-every`",
        ),
        (
            GOOD.replace("repository = \"main\"", "repository = \"mian\""),
            ":7:14:",
            "no repository named \"mian\"",
        ),
        (
            GOOD.replace("0 2 * * *", "0 2 * *"),
            ":10:12:",
            "5 cron fields",
        ),
    ] {
        std::fs::write(&file, &text).unwrap();
        let out = run(bunker(&env)
            .arg("--config")
            .arg(&file)
            .args(["config", "check"]));
        expect_code(&out, 2, what);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("bunker.toml{place}")) && err.contains(what),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = run(bunker(&env)
        .arg("--config")
        .arg(env.path("none.toml"))
        .args(["config", "check"]));
    expect_code(&out, 2, "a missing config file");
    assert!(
        stderr(&out).contains("no such config file"),
        "{}",
        stderr(&out)
    );
}
