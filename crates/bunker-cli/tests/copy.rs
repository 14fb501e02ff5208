//! `copy` between repositories: every field kept, only missing blobs
//! moved, nothing moved twice, crash-safe; and `init
//! --copy-chunker-params-from`, which makes copies and direct backups
//! deduplicate against each other.

mod common;

use bunker_backend::testing::{Service, TestServices};
use common::*;
use serde_json::Value;

/// A second repository (local, or remote at `url`) beside `env`'s, with its own password.
struct Dest {
    arg: String,
    password: std::path::PathBuf,
}

fn dest(env: &TestEnv, url: Option<String>) -> Dest {
    Dest {
        arg: url.unwrap_or_else(|| env.path("dest").display().to_string()),
        password: env.password_file("dest-password", "another password"),
    }
}

impl Dest {
    fn cmd(&self, env: &TestEnv) -> assert_cmd::Command {
        let mut c = bunker(env);
        c.arg("-r")
            .arg(&self.arg)
            .arg("--password-file")
            .arg(&self.password);
        c
    }

    fn snapshots(&self, env: &TestEnv) -> Vec<Value> {
        let out = run(self.cmd(env).args(["snapshots", "--json"]));
        expect_code(&out, 0, "dest snapshots");
        parse_json(&out.stdout).as_array().unwrap().clone()
    }
}

/// `copy --to DEST --json`, the destination's password from BUNKER_TO_PASSWORD_FILE.
fn copy(env: &TestEnv, d: &Dest, args: &[&str]) -> Value {
    let out = run(env
        .cmd()
        .env("BUNKER_TO_PASSWORD_FILE", &d.password)
        .args(["copy", "--json", "--to", &d.arg])
        .args(args));
    expect_code(&out, 0, &format!("copy {args:?}"));
    parse_json(stdout(&out).trim_end().lines().last().unwrap().as_bytes())
}

/// Three snapshots of two hosts, the last with a parent, tags and a mode.
fn source_with_history(env: &TestEnv, rng: &mut Rng) -> String {
    env.init_small_packs();
    env.write_source_files(0..4, 600_000, rng);
    let src = env.path("src").display().to_string();
    env.backup(&["--host", "alpha", "--tag", "daily", "--mode", "full", &src]);
    write_random(&env.path("src/f2"), 300_000, rng);
    env.backup(&["--host", "alpha", "--tag", "daily", &src]);
    env.backup(&[
        "--host",
        "beta",
        "--tag",
        "weekly",
        "--mode",
        "differential",
        &src,
    ]);
    src
}

fn copy_round_trip(dest_url: Option<(String, Vec<(String, String)>)>) {
    // The destination's service settings go to every command; the source
    // stays a local directory.
    let mut env = TestEnv::new();
    if let Some((_, vars)) = &dest_url {
        env.extra_env = vars.clone();
    }
    let mut rng = Rng::new(17);
    let src = source_with_history(&env, &mut rng);
    let d = dest(&env, dest_url.map(|(u, _)| u));
    let out = run(d.cmd(&env).arg("init"));
    expect_code(&out, 0, "dest init");

    let first = copy(&env, &d, &[]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(first["same_blob_ids"], false);
    let source = env.snapshots(&[]);
    let copies = d.snapshots(&env);
    assert_eq!(copies.len(), 3);
    for (s, c) in source.iter().zip(&copies) {
        for field in ["time", "hostname", "username", "tags", "paths", "mode"] {
            assert_eq!(s[field], c[field], "{field} kept");
        }
        assert_eq!(c["original"], s["id"], "the copy names its original");
    }
    // The parent of a copy is the copy of the parent.
    assert_eq!(copies[1]["parent"], copies[0]["id"]);

    // A second copy moves nothing.
    let second = copy(&env, &d, &[]);
    assert_eq!(second["copied"].as_array().unwrap().len(), 0, "{second}");
    assert_eq!(second["already_present"].as_array().unwrap().len(), 3);
    assert_eq!(second["blobs_added"], 0);

    // The source's id names the copy in the destination.
    let id = source[1]["id"].as_str().unwrap();
    let target = env.path("restored");
    let out = run(d
        .cmd(&env)
        .args(["restore", &id[..10], "--verify", "--target"])
        .arg(&target));
    expect_code(&out, 0, "restore of a copy by its source id");
    let out = run(d.cmd(&env).args(["check", "--read-data"]));
    expect_code(&out, 0, "check --read-data of the destination");
    // The latest snapshot, restored from the destination, is the source tree.
    let latest = env.path("latest");
    let out = run(d
        .cmd(&env)
        .args([
            "restore", "latest", "--host", "beta", "--verify", "--target",
        ])
        .arg(&latest));
    expect_code(&out, 0, "restore latest copy");
    assert_same_tree(
        std::path::Path::new(&src),
        &latest.join(src.trim_start_matches('/')),
    );
}

#[test]
fn copy_keeps_every_field_and_a_second_copy_moves_nothing() {
    copy_round_trip(None);
}

#[test]
fn copy_to_s3_and_sftp() {
    let Some(services) = TestServices::get("copy_to_s3_and_sftp") else {
        return;
    };
    for service in [Service::S3, Service::Sftp] {
        copy_round_trip(Some((services.url(service, "copy"), services.env(service))));
    }
}

#[test]
fn shared_chunker_params_make_copies_and_backups_deduplicate() {
    let env = TestEnv::new();
    let mut rng = Rng::new(23);
    let src = source_with_history(&env, &mut rng);
    let d = dest(&env, None);
    let out = run(d
        .cmd(&env)
        .env("BUNKER_FROM_PASSWORD_FILE", &env.password_file)
        .args(["init", "--copy-chunker-params-from"])
        .arg(&env.repo_arg));
    expect_code(&out, 0, "init --copy-chunker-params-from");
    let report = copy(&env, &d, &[]);
    assert_eq!(report["same_blob_ids"], true, "{report}");

    // The same files backed up directly into the destination, read whole
    // from another place: every chunk is already there.
    copy_dir(std::path::Path::new(&src), &env.path("elsewhere"));
    let out = run(d
        .cmd(&env)
        .args(["backup", "--json", "--mode", "full"])
        .arg(env.path("elsewhere")));
    expect_code(&out, 0, "direct backup into the destination");
    let summary = backup_summary(&out);
    assert!(summary["files_new"].as_u64().unwrap() >= 4, "{summary}");
    assert!(
        summary["bytes_added"].as_u64().unwrap() < 10_000,
        "only tree blobs are new: {summary}"
    );

    // Copied back, the direct backup moves only its trees.
    let out = run(d
        .cmd(&env)
        .env("BUNKER_TO_PASSWORD_FILE", &env.password_file)
        .args(["copy", "--json", "--to", &env.repo_arg]));
    expect_code(&out, 0, "copy back");
    let back = parse_json(stdout(&out).trim_end().lines().last().unwrap().as_bytes());
    assert_eq!(back["copied"].as_array().unwrap().len(), 1, "{back}");
    assert_eq!(
        back["already_present"].as_array().unwrap().len(),
        3,
        "{back}"
    );
    assert!(back["bytes_added"].as_u64().unwrap() < 10_000, "{back}");
    env.check_read_data();
}

#[test]
fn a_copy_killed_at_any_point_leaves_a_sound_destination_and_the_next_finishes() {
    let env = TestEnv::new();
    let mut rng = Rng::new(29);
    env.init_small_packs();
    env.write_source_files(0..8, 1 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    for i in 0..4 {
        write_random(&env.path(&format!("src/f{i}")), 1 << 20, &mut rng);
        env.backup(&["--tag", &format!("n{i}"), &src]);
    }
    // Kill instants are drawn within the time a whole copy takes here.
    let probe = Dest {
        arg: env.path("probe").display().to_string(),
        password: env.password_file("probe-password", "probe"),
    };
    expect_code(&run(probe.cmd(&env).arg("init")), 0, "probe init");
    let started = std::time::Instant::now();
    copy(&env, &probe, &[]);
    let window = (started.elapsed().as_millis() as u64).max(30);

    let trials = 6;
    let mut killed = 0;
    for trial in 0..trials {
        let d = Dest {
            arg: env.path(&format!("dest{trial}")).display().to_string(),
            password: env.password_file("dest-password", "another password"),
        };
        expect_code(&run(d.cmd(&env).arg("init")), 0, "dest init");
        let mut copying = env.spawnable();
        copying
            .env("BUNKER_TO_PASSWORD_FILE", &d.password)
            .args(["copy", "-q", "--to", &d.arg]);
        if kill_after(&mut copying, rng.below(window)) {
            killed += 1;
        }
        let out = run(d.cmd(&env).arg("check"));
        expect_code(
            &out,
            0,
            &format!("check of the destination after kill {trial}"),
        );
        let report = copy(&env, &d, &[]);
        let total = report["copied"].as_array().unwrap().len()
            + report["already_present"].as_array().unwrap().len();
        assert_eq!(total, 4, "{report}");
        assert_eq!(d.snapshots(&env).len(), 4, "no snapshot copied twice");
        let out = run(d.cmd(&env).args(["check", "--read-data"]));
        expect_code(&out, 0, &format!("check --read-data after kill {trial}"));
    }
    assert!(
        killed >= trials / 2,
        "only {killed} of {trials} copies were killed mid-way"
    );
}

#[test]
fn the_destination_password_never_comes_from_argv_and_a_missing_one_is_a_usage_error() {
    let env = TestEnv::new();
    env.init();
    let d = dest(&env, None);
    expect_code(&run(d.cmd(&env).arg("init")), 0, "dest init");
    let out = run(env.cmd().args(["copy", "--to", &d.arg]));
    expect_code(&out, 2, "copy without a destination password");
    assert!(
        stderr(&out).contains("--to-password-file"),
        "{}",
        stderr(&out)
    );
    let out = run(env
        .cmd()
        .env("BUNKER_TO_PASSWORD", "wrong")
        .args(["copy", "--to", &d.arg]));
    expect_code(&out, 12, "copy with a wrong destination password");
    // A repository is not copied into itself.
    let out = run(env
        .cmd()
        .env("BUNKER_TO_PASSWORD_FILE", &env.password_file)
        .args(["copy", "--to", &env.repo_arg]));
    expect_code(&out, 1, "copy into the source itself");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the same repository"), "{err}");
}
