//! Crashes and a full disk: the repository stays sound, completed snapshots
//! survive, and the next backup reuses what a killed one stored.

mod common;

use std::process::Stdio;

use common::*;

fn snapshot_ids(env: &TestEnv) -> Vec<String> {
    env.snapshots(&[])
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kill_9_at_random_instants_never_damages_the_repository() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(41);
    env.write_source_files(0..12, 2 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    // Kill instants are drawn within the time a backup like the trials'
    // (two files changed, every file read) takes on this machine.
    env.backup(&["--mode", "full", &src]);
    let mut window = u64::MAX;
    for _ in 0..2 {
        for _ in 0..2 {
            let i = rng.below(12);
            write_random(&env.path(&format!("src/f{i}")), 2 << 20, &mut rng);
        }
        let started = std::time::Instant::now();
        env.backup(&["--mode", "full", &src]);
        window = window.min(started.elapsed().as_millis() as u64 * 4 / 5);
    }
    let window = window.max(20);
    let trials = 16;
    let mut killed = 0;
    for trial in 0..trials {
        for _ in 0..2 {
            let i = rng.below(12);
            write_random(&env.path(&format!("src/f{i}")), 2 << 20, &mut rng);
        }
        let before = snapshot_ids(&env);
        let mut backup = env.spawnable();
        backup.args(["backup", "-q", "--mode", "full", &src]);
        if kill_after(&mut backup, rng.below(window)) {
            killed += 1;
        }
        let out = run(env.cmd().arg("check"));
        expect_code(&out, 0, &format!("check after kill {trial}"));
        let after = snapshot_ids(&env);
        for id in &before {
            assert!(after.contains(id), "trial {trial}: snapshot {id} was lost");
        }
    }
    assert!(
        killed >= trials / 2,
        "only {killed} of {trials} backups were killed mid-way"
    );
    let out = run(env.cmd().args(["check", "--read-data"]));
    expect_code(&out, 0, "check --read-data");
    env.backup(&[&src]);
    env.restore_verified("latest", &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );
}

#[test]
fn the_backup_after_a_kill_reuses_indexed_packs() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(42);
    env.write_source_files(0..6, 8 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    // Killed right after its first index file (every 32 packs) is durable.
    let mut child = env
        .spawnable()
        .env("BUNKER_TEST_PAUSE", "backup-after-index:30000")
        .args(["backup", "-q", &src])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pause(&mut child, "backup-after-index");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(snapshot_ids(&env).is_empty());
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 0, "check after the kill");

    let summary = env.backup(&[&src]);
    let added = summary["bytes_added"].as_u64().unwrap();
    assert!(
        added <= (48 - 30) << 20,
        "the next backup stored {added} bytes again; the killed one had indexed 32 MiB"
    );
    let out = run(env.cmd().args(["check", "--read-data"]));
    expect_code(&out, 0, "check --read-data");
    env.restore_verified("latest", &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );
}

#[test]
fn a_full_disk_gives_one_clear_error_and_a_sound_repository() {
    let env = TestEnv::new();
    let small = env.path("small");
    std::fs::create_dir(&small).unwrap();
    let Some(_mount) = mount_tmpfs(&small, "6m") else {
        return;
    };
    let repo = small.join("repo");
    let with_repo = |args: &[&str]| env.on_repo(&repo, args);
    expect_code(&with_repo(&["init", "--pack-size", "1M"]), 0, "init");
    let mut rng = Rng::new(43);
    write_random(&env.path("src/small"), 100_000, &mut rng);
    let src = env.path("src").display().to_string();
    expect_code(&with_repo(&["backup", "-q", &src]), 0, "first backup");

    write_random(&env.path("src/big"), 12 << 20, &mut rng);
    let out = with_repo(&["backup", "-q", &src]);
    expect_code(&out, 1, "backup onto a full disk");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.to_lowercase().contains("no space"), "{err}");

    expect_code(
        &with_repo(&["check", "--read-data"]),
        0,
        "check after ENOSPC",
    );
    // Space comes back: the repository works again.
    std::fs::remove_file(env.path("src/big")).unwrap();
    expect_code(&with_repo(&["prune"]), 0, "prune");
    expect_code(
        &with_repo(&["backup", "-q", &src]),
        0,
        "backup after ENOSPC",
    );
    expect_code(&with_repo(&["check", "--read-data"]), 0, "final check");
}

#[test]
fn packs_uploaded_before_a_crash_are_adopted_not_stored_again() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(47);
    env.write_source_files(0..6, 1 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    // Killed after its packs were stored, before the index naming them.
    let mut child = env
        .spawnable()
        .env("BUNKER_TEST_PAUSE", "backup-before-index:30000")
        .args(["backup", "-q", &src])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pause(&mut child, "backup-before-index");
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run(env.cmd().args(["backup", "--json", &src]));
    expect_code(&out, 0, "backup after the crash");
    assert!(stderr(&out).contains("adopted"), "{}", stderr(&out));
    let summary = backup_summary(&out);
    assert!(
        summary["bytes_added"].as_u64().unwrap() < 100_000,
        "the data was stored again: {summary}"
    );
    env.check_read_data();
    env.restore_verified("latest", &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );
}
