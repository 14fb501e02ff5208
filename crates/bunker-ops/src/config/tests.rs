use std::path::Path;

use super::*;

/// The issue's example, every key set.
const FULL: &str = r#"
[repositories.main]
url = "/srv/backup/repo"
password-file = "/etc/bunker/main.pass"
options = { connections = "8" }

[repositories.offsite]
url = "s3://acme-backup/bunker"
password-command = "pass show bunker"

[plans.www]
repository = "main"
copy-to = ["offsite"]
paths = ["/srv/www", "/etc/nginx"]
exclude = ["*.tmp"]
databases = ["postgres://backup@127.0.0.1:5432/shop"]
tags = ["web"]
schedule = "0 2 * * *"
full-every = "7d"
between-full = "differential"
retention = { keep-last = 3, keep-hourly = 24, keep-daily = 7, keep-weekly = 4, keep-monthly = 12, keep-yearly = 2, keep-within = "2d" }
rpo = "24h"
rto = "1h"
before = ["systemctl stop cron-jobs"]
after = ["systemctl start cron-jobs"]
prune-every = "3d"
keep-records = "90d"

[plans.www.drill]
schedule = "every 7d"
scratch = "/var/tmp/bunker-drill"
database-server = "postgres://backup@127.0.0.1:5432/"
sample = "10%"

[plans.www.check]
schedule = "every 2w"
read-data = "5%"

[notify]
webhooks = ["https://hooks.example.com/bunker"]
healthchecks = { www = "https://hc-ping.com/uuid" }

[daemon]
listen = "127.0.0.1:9000"

[prices]
s3 = 0.021
azblob = 0.02
gcs = 0.019
sftp = 0.005
local = 0.001
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("bunker.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn every_key_is_read() {
    let c = parse(FULL).unwrap();
    let main = &c.repositories["main"];
    assert_eq!(main.url, "/srv/backup/repo");
    assert_eq!(
        main.password_file.as_deref(),
        Some(Path::new("/etc/bunker/main.pass"))
    );
    assert_eq!(main.options["connections"], "8");
    assert_eq!(
        c.repositories["offsite"].password_command.as_deref(),
        Some("pass show bunker")
    );
    let www = &c.plans["www"];
    assert_eq!(www.repository.get_ref(), "main");
    assert_eq!(www.copy_to[0].get_ref(), "offsite");
    assert_eq!(www.paths, [Path::new("/srv/www"), Path::new("/etc/nginx")]);
    assert_eq!(www.exclude, ["*.tmp"]);
    assert_eq!(www.databases, ["postgres://backup@127.0.0.1:5432/shop"]);
    assert_eq!(www.tags, ["web"]);
    assert_eq!(www.schedule.as_ref().unwrap().to_string(), "0 2 * * *");
    assert_eq!(www.full_every.unwrap().to_string(), "1w");
    assert_eq!(www.between_full, Between::Differential);
    let r = &www.retention;
    assert_eq!(
        (
            r.keep_last,
            r.keep_hourly,
            r.keep_daily,
            r.keep_weekly,
            r.keep_monthly,
            r.keep_yearly
        ),
        (Some(3), Some(24), Some(7), Some(4), Some(12), Some(2))
    );
    assert_eq!(r.keep_within.unwrap().to_string(), "2d");
    assert_eq!(www.rpo.unwrap().0.as_secs(), 86_400);
    assert_eq!(www.rto.unwrap().0.as_secs(), 3600);
    assert_eq!(www.before, ["systemctl stop cron-jobs"]);
    assert_eq!(www.after, ["systemctl start cron-jobs"]);
    let drill = www.drill.as_ref().unwrap();
    assert_eq!(drill.schedule.as_ref().unwrap().to_string(), "every 1w");
    assert_eq!(drill.scratch, Path::new("/var/tmp/bunker-drill"));
    assert_eq!(
        drill.database_server.as_deref(),
        Some("postgres://backup@127.0.0.1:5432/")
    );
    assert!((drill.sample - 0.1).abs() < 1e-9);
    assert_eq!(c.notify.webhooks, ["https://hooks.example.com/bunker"]);
    assert_eq!(c.notify.healthchecks["www"], "https://hc-ping.com/uuid");
    assert_eq!(c.daemon.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(www.prune_every.to_string(), "3d");
    assert_eq!(www.keep_records.to_string(), "90d");
    let check = www.check.as_ref().unwrap();
    assert_eq!(check.schedule.as_ref().unwrap().to_string(), "every 2w");
    assert!((check.read_data.unwrap() - 0.05).abs() < 1e-9);
    let p = &c.prices;
    assert_eq!(
        (p.s3, p.azblob, p.gcs, p.sftp, p.local),
        (
            Some(0.021),
            Some(0.02),
            Some(0.019),
            Some(0.005),
            Some(0.001)
        )
    );
}

#[test]
fn defaults_are_pinned() {
    let c = parse(
        "[repositories.r]\nurl = \"/r\"\n[plans.p]\nrepository = \"r\"\npaths = [\"/data\"]\n",
    )
    .unwrap();
    let p = &c.plans["p"];
    assert!(
        p.copy_to.is_empty() && p.exclude.is_empty() && p.databases.is_empty() && p.tags.is_empty()
    );
    assert!(p.schedule.is_none() && p.full_every.is_none() && p.rpo.is_none() && p.rto.is_none());
    assert_eq!(p.between_full, Between::Incremental);
    assert_eq!(p.retention, Retention::default());
    assert!(p.before.is_empty() && p.after.is_empty() && p.drill.is_none() && p.check.is_none());
    assert_eq!(p.prune_every.to_string(), "1d");
    assert_eq!(p.keep_records.to_string(), "400d");
    assert!(c.prices.s3.is_none() && c.prices.local.is_none());
    assert!(c.notify.webhooks.is_empty() && c.notify.healthchecks.is_empty());
    assert_eq!(c.daemon.listen.to_string(), "127.0.0.1:8377");
    let d = parse("[repositories.r]\nurl = \"/r\"\n[plans.p]\nrepository = \"r\"\npaths = [\"/d\"]\n[plans.p.drill]\nscratch = \"/s\"\n").unwrap();
    let drill = d.plans["p"].drill.as_ref().unwrap();
    assert_eq!(drill.sample, 1.0);
    assert!(drill.schedule.is_none() && drill.database_server.is_none());
    assert!(parse("").unwrap().plans.is_empty());
}

#[test]
fn errors_name_the_line_and_column() {
    let base = "[repositories.r]\nurl = \"/r\"\n[plans.p]\nrepository = \"r\"\npaths = [\"/d\"]\n";
    let e = error(&format!("{base}schedul = \"0 2 * * *\"\n"));
    assert!(
        e.starts_with("bunker.toml:6:1: unknown field `schedul`"),
        "{e}"
    );
    let e = error(&format!("{base}schedule = \"0 25 * * *\"\n"));
    assert!(
        e.starts_with("bunker.toml:6:12:") && e.contains("cron"),
        "{e}"
    );
    let e = error(&format!("{base}rpo = \"1 day\"\n"));
    assert!(
        e.starts_with("bunker.toml:6:7:") && e.contains("unit"),
        "{e}"
    );
    let e = error(&format!("{base}retention = {{ keep-dayly = 7 }}\n"));
    assert!(
        e.starts_with("bunker.toml:6:") && e.contains("keep-dayly"),
        "{e}"
    );
    let e = error(
        "[repositories.r]\nurl = \"/r\"\n[plans.p]\nrepository = \"nope\"\npaths = [\"/d\"]\n",
    );
    assert!(
        e.starts_with("bunker.toml:4:14: plan \"p\": no repository named \"nope\" (defined: r)"),
        "{e}"
    );
    let e = error(&format!("{base}copy-to = [\"r\"]\n"));
    assert!(e.contains("its own repository"), "{e}");
    let e = error("[repositories.r]\nurl = \"/r\"\n[plans.p]\nrepository = \"r\"\n");
    assert!(e.contains("nothing to back up"), "{e}");
    let e =
        error("[repositories.r]\nurl = \"/r\"\n[plans.p]\nrepository = \"r\"\npaths = [\"rel\"]\n");
    assert!(e.contains("must be absolute"), "{e}");
    let e = error("[plans.p.drill]\nscratch = \"/s\"\nsample = \"150%\"\n");
    assert!(e.contains("percentage"), "{e}");
    let e = error("[daemon]\nlisten = \"everywhere\"\n");
    assert!(e.starts_with("bunker.toml:2:10:"), "{e}");
    let e =
        error("[repositories.r]\nurl = \"/r\"\npassword-file = \"/p\"\npassword-command = \"c\"\n");
    assert!(e.contains("not both"), "{e}");
    let e = error("[plans\n");
    assert!(e.starts_with("bunker.toml:1:"), "{e}");
}

#[test]
fn the_file_is_found_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    let c = dir.path().join("c.toml");
    std::fs::write(&a, "").unwrap();
    std::fs::write(&b, "").unwrap();
    std::fs::write(&c, "").unwrap();
    let defaults = [dir.path().join("none.toml"), c.clone()];
    assert_eq!(
        locate(Some(&a), Some(&b), &defaults).unwrap(),
        Some(a.clone())
    );
    assert_eq!(locate(None, Some(&b), &defaults).unwrap(), Some(b));
    assert_eq!(locate(None, None, &defaults).unwrap(), Some(c));
    assert_eq!(locate(None, None, &defaults[..1]).unwrap(), None);
    let missing = dir.path().join("missing.toml");
    let e = locate(Some(&missing), None, &defaults)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no such config file") && e.contains("--config"),
        "{e}"
    );
    assert_eq!(
        default_locations(Some(Path::new("/home/u/.config"))),
        [
            Path::new("/home/u/.config/bunker/bunker.toml"),
            Path::new("/etc/bunker/bunker.toml")
        ]
    );
}

#[test]
fn the_readme_example_is_a_valid_config() {
    let readme = include_str!("../../../../README.md");
    let section = &readme[readme
        .find("### The config file")
        .expect("README has the section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let c = parse(block).unwrap();
    assert_eq!(c.plans["www"].copy_to[0].get_ref(), "offsite");
    assert_eq!(c.plans["www"].drill.as_ref().unwrap().sample, 1.0);
}
