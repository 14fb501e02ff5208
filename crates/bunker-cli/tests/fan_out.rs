//! `backup --copy-to`: one read of the source, the snapshot stored in every
//! repository, each openable, checkable and restorable with its own
//! password; a repository that fails does not stop the others, and the
//! next run brings it up to date without reading unchanged files again.

mod common;

use common::*;
use serde_json::Value;

/// A `--copy-to` repository with its own password.
struct Copy {
    path: std::path::PathBuf,
    password: std::path::PathBuf,
}

impl Copy {
    fn cmd(&self, env: &TestEnv) -> assert_cmd::Command {
        let mut c = bunker(env);
        c.arg("-r")
            .arg(&self.path)
            .arg("--password-file")
            .arg(&self.password);
        c
    }

    fn snapshots(&self, env: &TestEnv) -> Vec<Value> {
        let out = run(self.cmd(env).args(["snapshots", "--json"]));
        expect_code(&out, 0, "snapshots of a copy");
        parse_json(&out.stdout).as_array().unwrap().clone()
    }

    /// `check --read-data`, then a verified restore of `spec` compared with `src`.
    fn assert_restores(&self, env: &TestEnv, spec: &str, src: &std::path::Path, target: &str) {
        expect_code(
            &run(self.cmd(env).args(["check", "--read-data"])),
            0,
            "check of a copy",
        );
        let target = env.path(target);
        let out = run(self
            .cmd(env)
            .args(["restore", spec, "--verify", "--target"])
            .arg(&target));
        expect_code(&out, 0, "restore from a copy");
        assert_same_tree(src, &target.join(src.strip_prefix("/").unwrap()));
    }
}

/// `b` made with `init --copy-chunker-params-from` the primary (it names
/// blobs alike), `c` a repository of its own.
fn copies(env: &TestEnv) -> (Copy, Copy) {
    let b = Copy {
        path: env.path("b"),
        password: env.password_file("b-password", "password of b"),
    };
    let c = Copy {
        path: env.path("c"),
        password: env.password_file("c-password", "password of c"),
    };
    let out = run(b
        .cmd(env)
        .env("BUNKER_FROM_PASSWORD_FILE", &env.password_file)
        .args(["init", "--pack-size", "1M", "--copy-chunker-params-from"])
        .arg(&env.repo_arg));
    expect_code(&out, 0, "init b");
    expect_code(&run(c.cmd(env).arg("init")), 0, "init c");
    (b, c)
}

/// `backup --copy-to b --copy-to c`, each with its password file.
fn fan_out_cmd(env: &TestEnv, b: &Copy, c: &Copy) -> assert_cmd::Command {
    let mut cmd = env.cmd();
    cmd.args(["backup", "--copy-to"])
        .arg(&b.path)
        .arg("--copy-to")
        .arg(&c.path)
        .arg("--to-password-file")
        .arg(&b.password)
        .arg("--to-password-file")
        .arg(&c.password);
    cmd
}

/// [`fan_out_cmd`] with `--json` on SRC: its summary.
fn fan_out(env: &TestEnv, b: &Copy, c: &Copy, src: &str, code: i32) -> Value {
    let out = run(fan_out_cmd(env, b, c).arg("--json").arg(src));
    expect_code(&out, code, "backup --copy-to");
    assert_no_panic(&out);
    let summary = backup_summary(&out);
    assert_eq!(summary["copies"].as_array().unwrap().len(), 2, "{summary}");
    summary
}

#[test]
fn one_read_of_the_source_stores_the_snapshot_in_every_repository() {
    let env = TestEnv::new();
    let mut rng = Rng::new(61);
    env.init_small_packs();
    let (b, c) = copies(&env);
    env.write_source_files(0..6, 700_000, &mut rng);
    let src = env.path("src");
    let summary = fan_out(&env, &b, &c, &src.display().to_string(), 0);

    // Read once: every byte of the source, not three times.
    let total = summary["total_bytes"].as_u64().unwrap();
    assert_eq!(summary["bytes_read"].as_u64().unwrap(), total, "{summary}");
    let primary = summary["snapshot_id"].as_str().unwrap().to_string();
    let [to_b, to_c] = [0, 1].map(|i| summary["copies"][i].clone());
    assert_eq!(to_b["with_backup"], true, "{to_b}");
    assert!(to_b["bytes_added"].as_u64().unwrap() >= total, "{to_b}");
    assert_eq!(to_c["with_backup"], false, "{to_c}");

    // Each repository on its own: its snapshot, its check, its restore.
    let in_b = b.snapshots(&env);
    assert_eq!(in_b.len(), 1);
    assert_eq!(in_b[0]["id"], to_b["snapshot_id"]);
    assert_eq!(
        in_b[0]["original"].as_str(),
        Some(primary.as_str()),
        "{in_b:?}"
    );
    assert_eq!(c.snapshots(&env)[0]["id"], to_c["snapshot_id"]);
    b.assert_restores(&env, "latest", &src, "restored-b");
    c.assert_restores(&env, "latest", &src, "restored-c");
    env.check_read_data();

    // A later plain `copy` into b knows the snapshot is there already.
    let out = run(env
        .cmd()
        .env("BUNKER_TO_PASSWORD_FILE", &b.password)
        .args(["copy", "--json", "--to"])
        .arg(&b.path));
    expect_code(&out, 0, "copy into b");
    let report = parse_json(stdout(&out).trim_end().lines().last().unwrap().as_bytes());
    assert_eq!(report["copied"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn a_failing_copy_stops_nothing_and_the_next_run_brings_it_up_to_date() {
    let env = TestEnv::new();
    let mut rng = Rng::new(67);
    env.init_small_packs();
    let (b, c) = copies(&env);
    env.write_source_files(0..4, 600_000, &mut rng);
    let src = env.path("src");
    let src_arg = src.display().to_string();
    fan_out(&env, &b, &c, &src_arg, 0);

    // b's storage fails: its pack folder is a file, so no pack can be written.
    let data = b.path.join("data");
    std::fs::rename(&data, env.path("b-data")).unwrap();
    std::fs::write(&data, b"not a folder").unwrap();
    write_random(&env.path("src/f1"), 600_000, &mut rng);
    let out = run(fan_out_cmd(&env, &b, &c).arg(&src_arg));
    expect_code(&out, 1, "backup with a failing copy");
    assert_no_panic(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("copy to {} failed", b.path.display())),
        "{err}"
    );
    assert!(stdout(&out).contains("snapshot"), "{}", stdout(&out));
    assert_eq!(env.snapshots(&[]).len(), 2);
    assert_eq!(c.snapshots(&env).len(), 2);
    assert_eq!(b.snapshots(&env).len(), 1);

    // Mended, the next run stores its own snapshot in b, copies the one b
    // missed from the primary, and reads only the file changed since.
    std::fs::remove_file(&data).unwrap();
    std::fs::rename(env.path("b-data"), &data).unwrap();
    let missed = env.snapshots(&[])[1]["id"].as_str().unwrap().to_string();
    write_random(&env.path("src/f2"), 100_000, &mut rng);
    let summary = fan_out(&env, &b, &c, &src_arg, 0);
    assert_eq!(
        summary["bytes_read"].as_u64().unwrap(),
        100_000,
        "{summary}"
    );
    let to_b = &summary["copies"][0];
    assert_eq!(to_b["caught_up"].as_array().unwrap().len(), 1, "{to_b}");
    let in_b = b.snapshots(&env);
    assert_eq!(in_b.len(), 3, "{in_b:?}");
    assert!(
        in_b.iter().any(|s| s["original"].as_str() == Some(&missed)),
        "{in_b:?}"
    );
    // The file changed in the failed run reached b without being read again.
    assert_eq!(
        summary["files_unmodified"].as_u64().unwrap(),
        3,
        "{summary}"
    );
    b.assert_restores(&env, "latest", &src, "restored-b");
    assert_eq!(c.snapshots(&env).len(), 3);
}

#[test]
fn copy_to_refuses_mismatched_password_files_before_reading_anything() {
    let env = TestEnv::new();
    env.init();
    let (b, c) = copies(&env);
    write_file(&env.path("src/a"), b"a file");
    let out = run(env
        .cmd()
        .args(["backup", "--copy-to"])
        .arg(&b.path)
        .arg("--copy-to")
        .arg(&c.path)
        .arg("--copy-to")
        .arg(env.path("third"))
        .arg("--to-password-file")
        .arg(&b.password)
        .arg("--to-password-file")
        .arg(&c.password)
        .arg(env.path("src")));
    expect_code(&out, 2, "three copies, two password files");
    assert!(
        stderr(&out).contains("--to-password-file"),
        "{}",
        stderr(&out)
    );
    assert!(env.snapshots(&[]).is_empty());
}
