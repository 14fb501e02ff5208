//! Plans from the config file: `bunker run` (hooks, files and a PostgreSQL
//! database, retention, copies, run records), `bunker drill` (passing,
//! failing on a damaged pack, missing its RTO) and `bunker report` (figures
//! checked against a history made with `--time`, the same from a fresh
//! home directory, Prometheus and HTML output).

mod common;

use std::path::{Path, PathBuf};

use common::databases::*;
use common::*;
use serde_json::Value;

/// A world with two repositories (`main`, `offsite`) and a config file.
struct Plans {
    env: TestEnv,
    config: PathBuf,
    offsite: PathBuf,
    source: PathBuf,
}

impl Plans {
    /// Both repositories created and a source tree written; no config yet.
    fn new() -> Plans {
        let env = TestEnv::new();
        env.init();
        let offsite = env.path("offsite");
        expect_code(
            &run(bunker(&env)
                .arg("-r")
                .arg(&offsite)
                .arg("--password-file")
                .arg(&env.password_file)
                .args(["init", "-q"])),
            0,
            "init offsite",
        );
        let source = env.path("src");
        let mut rng = Rng::new(7);
        write_random(&source.join("a/one.bin"), 300_000, &mut rng);
        write_random(&source.join("a/b/two.bin"), 5_000, &mut rng);
        write_file(&source.join("three.txt"), b"three\n");
        Plans {
            config: env.path("bunker.toml"),
            env,
            offsite,
            source,
        }
    }

    /// Writes the config: both repositories and `[plans.www]` on `main`
    /// with `body` (which may add sections after it).
    fn plan(&self, body: &str) {
        self.plan_with_offsite_password(body, &self.env.password_file);
    }

    /// [`plan`](Self::plan), opening `offsite` with `password_file`.
    fn plan_with_offsite_password(&self, body: &str, password_file: &Path) {
        std::fs::write(
            &self.config,
            format!(
                "[repositories.main]\nurl = \"{}\"\npassword-file = \"{}\"\n\n\
                 [repositories.offsite]\nurl = \"{}\"\npassword-file = \"{}\"\n\n\
                 [plans.www]\nrepository = \"main\"\n{body}\n",
                self.env.repo.display(),
                self.env.password_file.display(),
                self.offsite.display(),
                password_file.display()
            ),
        )
        .unwrap();
    }

    /// `bunker --config CONFIG ARGS`, with the world's HOME.
    fn bunker(&self, args: &[&str]) -> std::process::Output {
        run(bunker(&self.env)
            .arg("--config")
            .arg(&self.config)
            .args(args))
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        let out = self.bunker(args);
        expect_code(&out, code, &args.join(" "));
        parse_json(&out.stdout)
    }

    fn snapshots(&self, repo: &Path) -> Vec<Value> {
        let out = run(bunker(&self.env)
            .arg("-r")
            .arg(repo)
            .arg("--password-file")
            .arg(&self.env.password_file)
            .args(["snapshots", "--json", "--tag", "www"]));
        expect_code(&out, 0, "snapshots");
        parse_json(&out.stdout).as_array().unwrap().clone()
    }

    fn plan_report(&self, extra: &[&str]) -> Value {
        let mut args = vec!["report", "--json"];
        args.extend_from_slice(extra);
        let out = self.bunker(&args);
        assert_no_panic(&out);
        parse_json(&out.stdout)["plans"][0].clone()
    }
}

fn paths_line(source: &Path) -> String {
    format!("paths = [\"{}\"]", source.display())
}

#[test]
fn run_backs_up_files_and_a_database_applies_retention_copies_and_drills() {
    let Some((pg, _)) = servers() else { return };
    let db = TestDb::new(&pg, "plan");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;");
    let plans = Plans::new();
    let hooks = plans.env.path("hooks.log");
    let plan = format!(
        "{}\ndatabases = [\"{}\"]\ncopy-to = [\"offsite\"]\nretention = {{ keep-last = 2 }}\n\
         rpo = \"24h\"\nrto = \"1h\"\nfull-every = \"7d\"\n\
         before = [\"echo \\\"$BUNKER_PLAN before\\\" >> {log}\"]\n\
         after = [\"echo \\\"after $BUNKER_RUN_STATUS\\\" >> {log}\"]\n\n\
         [plans.www.drill]\nscratch = \"{}\"\n",
        paths_line(&plans.source),
        db.url(),
        plans.env.path("scratch").display(),
        log = hooks.display()
    );
    plans.plan(&plan);

    let first = plans.json(&["run", "www", "--json"], 0);
    assert_eq!(first["status"], "success", "{first}");
    let steps: Vec<&str> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap())
        .collect();
    assert_eq!(steps[0], "files");
    assert!(steps[1].starts_with("postgres://") && steps[1].ends_with(&db.name));
    assert!(steps.contains(&"copy to offsite"), "{steps:?}");
    // Both backups wrote the copy from their one read of the source.
    let copy_step = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["what"] == "copy to offsite")
        .unwrap();
    assert!(
        copy_step["message"]
            .as_str()
            .unwrap()
            .starts_with("2 snapshot(s) written with the backups, 0 copied"),
        "{copy_step}"
    );
    assert_eq!(
        std::fs::read_to_string(&hooks).unwrap(),
        "www before\nafter success\n"
    );
    // One files snapshot and one database snapshot, tagged with the plan,
    // the first of each a full backup; both copied.
    let main = plans.snapshots(&plans.env.repo);
    assert_eq!(main.len(), 2, "{main:?}");
    assert!(main.iter().all(|s| s["mode"] == "full"), "{main:?}");
    assert_eq!(plans.snapshots(&plans.offsite).len(), 2);

    // The files restore exactly, from the copy too.
    for repo in [&plans.env.repo, &plans.offsite] {
        let target = plans.env.path(&format!(
            "restored-{}",
            repo.file_name().unwrap().to_string_lossy()
        ));
        let out = run(bunker(&plans.env)
            .arg("-r")
            .arg(repo)
            .arg("--password-file")
            .arg(&plans.env.password_file)
            .args([
                "restore", "latest", "--kind", "files", "--verify", "--target",
            ])
            .arg(&target));
        expect_code(&out, 0, "restore");
        assert_eq!(
            snapshot_tree(&target.join(plans.source.strip_prefix("/").unwrap())),
            snapshot_tree(&plans.source)
        );
    }

    // Two more runs: incremental, then retention keeps the last two of each.
    write_file(&plans.source.join("three.txt"), b"three, changed\n");
    for _ in 0..2 {
        let r = plans.json(&["run", "www", "--json"], 0);
        assert_eq!(r["status"], "success", "{r}");
    }
    let main = plans.snapshots(&plans.env.repo);
    assert_eq!(main.len(), 4, "keep-last 2 per source: {main:?}");
    assert!(main.iter().any(|s| s["mode"] == "incremental"));

    let drill = plans.json(&["drill", "www", "--json"], 0);
    assert_eq!(drill["passed"], true, "{drill}");
    assert_eq!(drill["snapshots"].as_array().unwrap().len(), 2);
    assert!(drill["rto_seconds"].as_f64().unwrap() > 0.0);
    let phases: Vec<&str> = drill["record"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for phase in [
        "open and index",
        "fetch, decrypt and decompress",
        "write",
        "verify",
        "database load",
        "database checks",
    ] {
        assert!(phases.contains(&phase), "{phase} missing from {phases:?}");
    }
    assert!(
        !plans.env.path("scratch").exists(),
        "the scratch folder is removed"
    );

    let report = plans.plan_report(&[]);
    assert_eq!(report["name"], "www");
    assert_eq!(report["rpo_met"], true, "{report}");
    assert_eq!(report["rto_met"], true);
    assert_eq!(report["backup_success_rate"]["7d"], 1.0);
    assert_eq!(report["restore_success_rate"]["30d"], 1.0);
    assert_eq!(report["runs"]["backup"]["success"], 3);
    assert_eq!(report["runs"]["copy"]["success"], 3);
    assert!(report["runs"]["prune"]["success"].as_u64().unwrap() >= 1);
    assert!(report["last_verified"].is_string());

    // Another machine with the key sees the same history: a fresh HOME,
    // cache and state.
    let fresh = TestEnv::new();
    let out = run(bunker(&fresh)
        .arg("--config")
        .arg(&plans.config)
        .args(["report", "--json"]));
    expect_code(&out, 0, "report from a fresh home");
    let again = parse_json(&out.stdout)["plans"][0].clone();
    for key in [
        "runs",
        "backup_success_rate",
        "restore_success_rate",
        "last_backup",
        "last_verified",
        "rto_seconds",
        "last_drill",
        "snapshots",
    ] {
        assert_eq!(again[key], report[key], "{key}");
    }
}

#[test]
fn a_failed_copy_target_fails_the_run_names_it_and_keeps_the_backup() {
    let plans = Plans::new();
    let wrong = plans.env.password_file("wrong", "not the password");
    plans.plan_with_offsite_password(
        &format!("copy-to = [\"offsite\"]\n{}", paths_line(&plans.source)),
        &wrong,
    );
    let out = plans.bunker(&["run", "www"]);
    expect_code(&out, 1, "run with a failing copy target");
    assert!(
        stderr(&out).contains("copy to offsite") && stderr(&out).contains("password"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        plans.snapshots(&plans.env.repo).len(),
        1,
        "the backup is kept"
    );
    let report = plans.plan_report(&[]);
    assert_eq!(report["runs"]["backup"]["success"], 1);
    assert_eq!(report["runs"]["copy"]["failure"], 1);
}

#[test]
fn a_drill_fails_when_a_pack_is_damaged() {
    let plans = Plans::new();
    let plan = format!(
        "{}\nrpo = \"1d\"\n\n[plans.www.drill]\nscratch = \"{}\"\n",
        paths_line(&plans.source),
        plans.env.path("scratch").display()
    );
    plans.plan(&plan);
    expect_code(&plans.bunker(&["run", "www"]), 0, "run");
    expect_code(
        &plans.bunker(&["check", "--plan", "www", "--read-data"]),
        0,
        "check",
    );
    // Damage the biggest pack (the one holding file content).
    let (pack, _) = files_below(&plans.env.repo.join("data"))
        .into_iter()
        .max_by_key(|(_, len)| *len)
        .unwrap();
    flip_byte(&pack, 1000);
    let out = plans.bunker(&["drill", "www"]);
    expect_code(&out, 1, "drill of a damaged repository");
    assert!(stderr(&out).contains("files:"), "{}", stderr(&out));
    assert!(stdout(&out).contains("FAILED"));
    let report = plans.plan_report(&[]);
    assert_eq!(report["restore_success_rate"]["7d"], 0.0);
    assert_eq!(report["rpo_seconds"], Value::Null, "nothing was verified");
    assert_eq!(report["rpo_met"], false);
    assert_eq!(report["last_drill"]["passed"], false);
    // A check of the plan's repository finds the damage and records it.
    let out = plans.bunker(&["check", "--plan", "www", "--read-data"]);
    expect_code(&out, 1, "check of a damaged repository");
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
    let report = plans.plan_report(&[]);
    assert_eq!(
        report["runs"]["check"],
        serde_json::json!({"success": 1, "failure": 1})
    );
    expect_code(
        &plans.bunker(&["report"]),
        1,
        "a missed target fails the report",
    );
}

#[test]
fn a_drill_that_misses_its_rto_fails_and_says_by_how_much() {
    let Some((pg, _)) = servers() else { return };
    let db = TestDb::new(&pg, "slow");
    // Every row checked on load sleeps: the restore takes at least 1.5 s.
    db.sql(
        "CREATE FUNCTION slow(x int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT pg_sleep(0.5) IS NOT NULL';\
         CREATE TABLE t (x int CHECK (slow(x))); INSERT INTO t VALUES (1), (2), (3);",
    );
    let plans = Plans::new();
    let plan = format!(
        "databases = [\"{}\"]\nrpo = \"1d\"\nrto = \"1s\"\n\n[plans.www.drill]\nscratch = \"{}\"\n",
        db.url(),
        plans.env.path("scratch").display()
    );
    plans.plan(&plan);
    expect_code(&plans.bunker(&["run", "www"]), 0, "run");
    let out = plans.bunker(&["drill", "www", "--json"]);
    expect_code(&out, 1, "a drill over its RTO");
    let drill = parse_json(&out.stdout);
    assert_eq!(drill["verified"], true, "{drill}");
    assert_eq!(drill["rto_met"], false);
    assert!(drill["rto_seconds"].as_f64().unwrap() >= 1.5);
    let problem = drill["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("more than the plan's RTO of 1 s"),
        "{problem}"
    );
    // The snapshot was verified: the RPO is met, the RTO is not.
    let report = plans.plan_report(&[]);
    assert_eq!(report["rpo_met"], true, "{report}");
    assert_eq!(report["rto_met"], false);
}

#[test]
fn report_figures_from_a_history_made_with_time() {
    let plans = Plans::new();
    let marker = plans.env.path("fail-now");
    let plan = format!(
        "{}\nrpo = \"2d\"\nrto = \"1h\"\nfull-every = \"7d\"\n\
         before = [\"test ! -e {}\"]\n\n[plans.www.drill]\nscratch = \"{}\"\n",
        paths_line(&plans.source),
        marker.display(),
        plans.env.path("scratch").display()
    );
    plans.plan(&plan);
    let now = chrono::Utc::now();
    let at = |days: i64| (now - chrono::Duration::days(days)).to_rfc3339();
    // Backups 40, 20, 10, 5 and 1 day(s) ago; those 20 and 1 day ago fail.
    for (days, fails) in [(40, false), (20, true), (10, false), (5, false), (1, true)] {
        if fails {
            std::fs::write(&marker, "").unwrap();
        }
        let out = plans.bunker(&["run", "www", "--time", &at(days)]);
        expect_code(
            &out,
            if fails { 1 } else { 0 },
            &format!("run {days} days ago"),
        );
        let _ = std::fs::remove_file(&marker);
    }
    // A drill 2 days ago verifies the snapshot of 5 days ago.
    expect_code(
        &plans.bunker(&["drill", "www", "--time", &at(2)]),
        0,
        "drill",
    );

    let modes: Vec<String> = plans
        .snapshots(&plans.env.repo)
        .iter()
        .map(|s| s["mode"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(modes, ["full", "full", "incremental"], "full-every 7d");

    let prom = plans.env.path("bunker.prom");
    let html = plans.env.path("report.html");
    let r = plans.plan_report(&[
        "--prometheus",
        prom.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    // 7 days: 1 of 2 succeeded; 30 days: 2 of 4; 90 days: 3 of 5.
    assert_eq!(r["backup_success_rate"]["7d"], 0.5, "{r}");
    assert_eq!(r["backup_success_rate"]["30d"], 0.5);
    assert_eq!(r["backup_success_rate"]["90d"], 0.6);
    assert_eq!(r["restore_success_rate"]["7d"], 1.0);
    assert_eq!(r["runs"]["backup"]["failure"], 2);
    // RPO: the verified snapshot is 5 days old (against a 2-day target).
    let rpo = r["rpo_seconds"].as_f64().unwrap();
    assert!((rpo - 5.0 * 86_400.0).abs() < 120.0, "{rpo}");
    assert_eq!(r["rpo_met"], false);
    assert_eq!(r["rpo_target_seconds"], 172_800);
    assert!(r["backup_seconds_median"].as_f64().unwrap() > 0.0);

    let metrics = std::fs::read_to_string(&prom).unwrap();
    for line in [
        "bunker_plan_rpo_target_seconds{plan=\"www\",repository=\"main\"} 172800",
        "bunker_plan_rto_target_seconds{plan=\"www\",repository=\"main\"} 3600",
        "bunker_plan_runs_total{plan=\"www\",repository=\"main\",kind=\"backup\",status=\"failure\"} 2",
        "bunker_plan_runs_total{plan=\"www\",repository=\"main\",kind=\"drill\",status=\"success\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}");
    }
    assert!(metrics.contains("bunker_repository_size_bytes{repository=\"main\"}"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("Plan www"), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
}

#[test]
fn a_sampled_drill_restores_a_share_and_extrapolates() {
    let plans = Plans::new();
    let mut rng = Rng::new(3);
    let many = plans.env.path("many");
    for i in 0..10 {
        write_random(&many.join(format!("f{i}")), 50_000, &mut rng);
    }
    let plan = format!(
        "paths = [\"{}\"]\n\n[plans.www.drill]\nscratch = \"{}\"\nsample = \"50%\"\n",
        many.display(),
        plans.env.path("scratch").display()
    );
    plans.plan(&plan);
    expect_code(&plans.bunker(&["run", "www"]), 0, "run");
    let drill = plans.json(&["drill", "www", "--json"], 0);
    // Ten files of one size class in one folder: one stratum, half of it.
    assert_eq!(drill["record"]["files"], 5, "{drill}");
    assert_eq!(drill["record"]["sample"], 0.5);
    assert!(drill["method"]
        .as_str()
        .unwrap()
        .contains("extrapolated from a 50% stratified sample"));
    let phases = drill["record"]["phases"].as_array().unwrap();
    let files = phases.iter().find(|p| p["name"] == "files (wall)").unwrap()["seconds"]
        .as_f64()
        .unwrap();
    // The estimate adds the unrestored half's share: about twice the file restore.
    assert!(
        drill["rto_seconds"].as_f64().unwrap() >= 1.9 * files,
        "{drill}"
    );
}

#[test]
fn a_plan_refreshes_its_mirror_and_a_drill_verifies_it_against_the_same_snapshot() {
    let plans = Plans::new();
    let standby = plans.env.path("standby/www");
    plans.plan(&format!(
        "{}\nmirrors = [\"{}\"]\nrpo = \"1d\"\nrto = \"1h\"\n\n[plans.www.drill]\nscratch = \"{}\"\n",
        paths_line(&plans.source),
        standby.display(),
        plans.env.path("scratch").display()
    ));
    let out = plans.bunker(&["run", "www"]);
    expect_code(&out, 0, "run with a mirror");
    assert_same_tree(&plans.source, &standby);
    let snapshot = plans.snapshots(&plans.env.repo)[0]["id"].clone();

    let drill = plans.json(&["drill", "www", "--json"], 0);
    let mirror = &drill["mirrors"][0];
    assert_eq!(mirror["passed"], true, "{drill}");
    assert_eq!(
        mirror["snapshot"], snapshot,
        "compared with the run's snapshot"
    );
    assert_eq!(
        mirror["entries_equal"], 5,
        "2 folders and 3 files: {mirror}"
    );
    assert_eq!(mirror["bytes_equal"], 300_000 + 5_000 + 6);
    let report = plans.plan_report(&[]);
    let point = &report["mirrors"][0];
    assert_eq!(point["mirror"], standby.display().to_string());
    assert_eq!(point["verified"], true, "{report}");
    assert_eq!(point["rto_seconds"], 0.0);
    assert_eq!(report["recovery_via_mirror"], standby.display().to_string());
    assert_eq!(report["rto_met"], true);
    assert_eq!(report["health"]["level"], "green", "{report}");
    assert!(stdout(&plans.bunker(&["report"])).contains("verified by the drill"));

    // A byte changed in the standby copy, size and time kept: rsync-style
    // change detection cannot see it, the drill must.
    let victim = standby.join("a/one.bin");
    let before = std::fs::metadata(&victim).unwrap().modified().unwrap();
    flip_byte(&victim, 1234);
    std::fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(before)
        .unwrap();
    let out = plans.bunker(&["drill", "www"]);
    expect_code(&out, 1, "drill of a damaged mirror");
    assert!(
        stderr(&out).contains("one.bin") && stdout(&out).contains("NOT verified"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = plans.plan_report(&[]);
    assert_eq!(report["mirrors"][0]["verified"], false);
    assert_eq!(report["health"]["level"], "amber", "{report}");

    // The next run compares content after that failed drill and repairs it;
    // a file changed in the source after its backup counts as newer.
    expect_code(&plans.bunker(&["run", "www"]), 0, "second run");
    assert_same_contents(&plans.source, &standby);
    write_file(&standby.join("three.txt"), b"changed after the snapshot\n");
    let drill = plans.json(&["drill", "www", "--json"], 0);
    assert_eq!(drill["mirrors"][0]["passed"], true, "{drill}");
    assert_eq!(drill["mirrors"][0]["newer"], 1, "{drill}");
}

#[test]
fn mirrors_of_a_plan_without_paths_or_inside_a_source_are_refused() {
    let plans = Plans::new();
    for (body, says) in [
        (
            "databases = [\"postgres://127.0.0.1/x\"]\nmirrors = [\"/srv/standby\"]".to_string(),
            "replicates the plan's paths",
        ),
        (
            format!(
                "{}\nmirrors = [\"{}\"]",
                paths_line(&plans.source),
                plans.source.join("standby").display()
            ),
            "contain one another",
        ),
    ] {
        plans.plan(&body);
        let out = plans.bunker(&["run", "www"]);
        expect_code(&out, 2, "a bad mirror");
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}

#[test]
fn a_plan_keeps_a_mirror_on_an_sftp_host_and_the_drill_compares_its_listing() {
    use bunker_backend::testing::{Service, TestServices};
    let Some(services) = TestServices::get("plan_mirror_over_sftp") else {
        return;
    };
    let mut plans = Plans::new();
    plans.env.extra_env = services.env(Service::Sftp);
    let url = services.url(Service::Sftp, "plan-mirror");
    let served = PathBuf::from(url.split_once("bunker-sftp").unwrap().1);
    plans.plan(&format!(
        "{}\nmirrors = [\"{url}\"]\n\n[plans.www.drill]\nscratch = \"{}\"\n",
        paths_line(&plans.source),
        plans.env.path("scratch").display()
    ));
    expect_code(&plans.bunker(&["run", "www"]), 0, "run with an sftp mirror");
    assert_same_contents(&plans.source, &served);
    let drill = plans.json(&["drill", "www", "--json"], 0);
    let mirror = &drill["mirrors"][0];
    assert_eq!(mirror["passed"], true, "{drill}");
    assert_eq!(mirror["content_read"], false);
    assert_eq!(mirror["entries_equal"], 5, "{mirror}");

    // A file removed from the standby host behind Bunker's back.
    std::fs::remove_file(served.join("three.txt")).unwrap();
    let out = plans.bunker(&["drill", "www"]);
    expect_code(&out, 1, "drill of a mirror missing a file");
    assert!(
        stderr(&out).contains("three.txt: missing"),
        "{}",
        stderr(&out)
    );
    expect_code(
        &plans.bunker(&["run", "www"]),
        0,
        "the next run restores it",
    );
    assert_same_contents(&plans.source, &served);
    assert_eq!(plans.json(&["drill", "www", "--json"], 0)["passed"], true);
}
