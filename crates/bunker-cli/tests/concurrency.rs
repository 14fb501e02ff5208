//! Many writers, no exclusive lock: concurrent backups, and prune racing
//! backups without ever deleting what one of them references.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn spawn(env: &TestEnv, args: &[&str], pause: Option<&str>) -> Child {
    let mut c = env.spawnable();
    if let Some(p) = pause {
        c.env("BUNKER_TEST_PAUSE", p);
    }
    c.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bunker")
}

fn finish(child: Child, what: &str) -> (i32, String, String) {
    let out = child.wait_with_output().expect("wait");
    assert_no_panic(&out);
    let code = out.status.code().unwrap_or(-1);
    (code, stdout(&out), format!("{what}: {}", stderr(&out)))
}

fn last_json(stdout: &str) -> Value {
    parse_json(stdout.trim_end().lines().last().expect("output").as_bytes())
}

#[test]
fn four_backups_at_once_all_succeed() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(31);
    let shared = rng.bytes(3 << 20);
    for s in 0..4 {
        write_file(&env.path(&format!("src{s}/shared")), &shared);
        for i in 0..3 {
            write_random(&env.path(&format!("src{s}/own{i}")), 1 << 20, &mut rng);
        }
    }
    let children: Vec<Child> = (0..4)
        .map(|s| {
            let src = env.path(&format!("src{s}")).display().to_string();
            let host = format!("host{s}");
            spawn(&env, &["backup", "--json", "--host", &host, &src], None)
        })
        .collect();
    for (s, c) in children.into_iter().enumerate() {
        let (code, _, err) = finish(c, &format!("backup {s}"));
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(env.snapshots(&[]).len(), 4);
    env.check_read_data();
    for s in 0..4 {
        assert_host_restores(
            &env,
            &format!("host{s}"),
            &env.path(&format!("src{s}")),
            &env.path(&format!("out{s}")),
        );
    }
}

/// The race prune must win safely: a backup that loaded the index before a
/// prune condemned the packs it deduplicates against.
#[test]
fn prune_waits_for_a_backup_that_started_before_it() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(32);
    env.write_source_files(0..6, 1 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    let first = env.backup(&[&src]);
    let packs = files_below(&env.repo.join("data")).len() as u64;

    // A full backup of the same data: every blob deduplicates against the
    // first snapshot's packs. It pauses before writing its snapshot.
    let mut late = spawn(
        &env,
        &["backup", "--json", "--mode", "full", &src],
        Some("backup-before-snapshot:4000"),
    );
    wait_for_pause(&mut late, "backup-before-snapshot");
    let out = run(env
        .cmd()
        .args(["forget", first["snapshot_id"].as_str().unwrap()]));
    expect_code(&out, 0, "forget");
    let waiting = env.prune(&[]);
    assert_eq!(waiting["sessions_waiting"], 1, "{waiting}");
    assert_eq!(waiting["packs_deleted"], 0, "{waiting}");
    // Every pack of the first snapshot, and any tree pack the late backup
    // wrote because a directory's times moved in between.
    let condemned = waiting["packs_waiting"].as_u64().unwrap();
    assert!(condemned >= packs, "{waiting}");

    let (code, out, err) = finish(late, "late backup");
    assert_eq!(code, 0, "{err}");
    let late_id = last_json(&out)["snapshot_id"].as_str().unwrap().to_string();
    env.check_read_data();

    // The backup has ended: the next prune rescues what it references.
    let settled = env.prune(&[]);
    assert_eq!(settled["packs_rescued"], condemned, "{settled}");
    assert_eq!(settled["sessions_waiting"], 0, "{settled}");
    env.check_read_data();
    env.restore_verified(&late_id, &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );
    assert!(env
        .repo
        .join("condemned")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
}

/// A backup that starts after a prune condemned packs never references
/// them, so the prune need not wait for it.
#[test]
fn a_backup_after_a_condemnation_stores_its_own_copy() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(33);
    env.write_source_files(0..4, 1 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    let first = env.backup(&[&src]);
    let out = run(env
        .cmd()
        .args(["forget", first["snapshot_id"].as_str().unwrap()]));
    expect_code(&out, 0, "forget");

    let mut pruning = spawn(&env, &["prune", "--json"], Some("prune-after-condemn:3000"));
    wait_for_pause(&mut pruning, "prune-after-condemn");
    let again = env.backup(&["--mode", "full", &src]);
    assert!(
        again["bytes_added"].as_u64().unwrap() >= 4 << 20,
        "the backup deduplicated against condemned packs: {again}"
    );
    let (code, _, err) = finish(pruning, "prune");
    assert_eq!(code, 0, "{err}");
    env.check_read_data();
    env.restore_verified("latest", &env.path("out"));
    assert_same_tree(
        &env.path("src"),
        &env.path("out").join(src.trim_start_matches('/')),
    );
}

#[test]
fn backups_and_prunes_racing_never_lose_a_snapshot() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(34);
    env.write_source_files(0..8, 512 << 10, &mut rng);
    let src = env.path("src").display().to_string();
    env.backup(&[&src]);
    for round in 0..8 {
        for _ in 0..3 {
            let i = rng.below(8);
            write_random(&env.path(&format!("src/f{i}")), 512 << 10, &mut rng);
        }
        let mode = if round % 3 == 0 {
            "full"
        } else {
            "incremental"
        };
        let backup = spawn(&env, &["backup", "--json", "--mode", mode, &src], None);
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        let out = run(env.cmd().args(["forget", "--keep-last", "2", "--prune"]));
        expect_code(&out, 0, &format!("forget --prune, round {round}"));
        let (code, _, err) = finish(backup, "backup");
        assert_eq!(code, 0, "round {round}: {err}");
        env.check_read_data();
    }
    env.prune(&[]);
    env.check_read_data();
    for s in env.snapshots(&[]) {
        let id = s["id"].as_str().unwrap();
        env.restore_verified(id, &env.path(&format!("out-{}", &id[..8])));
    }
}

#[test]
fn a_second_prune_gets_exit_11_until_the_first_dies() {
    let env = TestEnv::new();
    env.init_small_packs();
    write_file(&env.path("src/f"), b"data");
    env.backup(&[env.path("src").to_str().unwrap()]);

    let mut first = spawn(&env, &["prune"], Some("prune-locked:30000"));
    wait_for_pause(&mut first, "prune-locked");
    let out = run(env.cmd().arg("prune"));
    expect_code(&out, 11, "second prune");
    let err = stderr(&out);
    assert!(
        err.contains("busy") && err.contains(&format!("prune (pid {}", first.id())),
        "{err}"
    );
    // Backups never wait for prune's lock.
    env.backup(&[env.path("src").to_str().unwrap()]);

    // The holder dies: its lock expires at once on this host.
    first.kill().unwrap();
    first.wait().unwrap();
    let out = run(env.cmd().arg("prune"));
    expect_code(&out, 0, "prune after the holder died");
}

#[test]
fn a_backup_whose_session_was_declared_dead_does_not_commit() {
    let env = TestEnv::new();
    env.init_small_packs();
    write_file(&env.path("src/f"), b"data");
    let src = env.path("src").display().to_string();
    let mut child = spawn(&env, &["backup", &src], Some("backup-before-snapshot:1500"));
    wait_for_pause(&mut child, "backup-before-snapshot");
    // What a prune does to the lock of a holder it judges dead.
    for f in std::fs::read_dir(env.repo.join("locks")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let (code, _, err) = finish(child, "backup");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("judged it dead"), "{err}");
    assert!(env.snapshots(&[]).is_empty());
    env.check_read_data();
    // Run again: the data it stored is reused.
    env.backup(&[&src]);
}

/// Found by the race trials: a pack condemned while unindexed (its backup
/// still running) and later named by that backup's index file must not
/// stay named there once prune deletes it in favour of another copy.
#[test]
fn a_pack_condemned_before_its_backup_indexed_it_is_handled_whole() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(35);
    env.write_source_files(0..4, 1 << 20, &mut rng);
    let src = env.path("src").display().to_string();
    env.backup(&[&src]);
    env.write_source_files(0..2, 1 << 20, &mut rng);
    // B has written its packs but not yet the index naming them.
    let mut b = spawn(
        &env,
        &["backup", "--json", &src],
        Some("backup-before-index:3000"),
    );
    wait_for_pause(&mut b, "backup-before-index");
    let first = env.prune(&[]);
    assert_eq!(first["sessions_waiting"], 1, "{first}");
    let (code, out, err) = finish(b, "backup B");
    assert_eq!(code, 0, "{err}");
    let b_id = last_json(&out)["snapshot_id"].as_str().unwrap().to_string();
    // A later backup cannot use B's condemned packs: it stores its own copies.
    env.backup(&["--mode", "full", &src]);
    let second = env.prune(&[]);
    assert_eq!(second["sessions_waiting"], 0, "{second}");
    env.check_read_data();
    env.restore_verified(&b_id, &env.path("out"));
}
