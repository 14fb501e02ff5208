//! Storage that rolls back, hides or replays files (docs/FORMAT.md §1, §12):
//! a forgotten snapshot that comes back is ignored, a snapshot this client
//! saw that disappears is reported, a removed key that comes back opens
//! nothing. Each test plays the storage's part by moving files by hand.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The snapshot ids, as `snapshots --json` lists them.
fn listed(env: &TestEnv, args: &[&str]) -> Vec<String> {
    ids(&env.snapshots(args))
}

/// The ids of snapshots as `snapshots --json` gives them.
fn ids(list: &[serde_json::Value]) -> Vec<String> {
    list.iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids printed by a `snapshots --json` run.
fn ids_printed(out: &std::process::Output) -> Vec<String> {
    ids(parse_json(&out.stdout).as_array().unwrap())
}

/// Two snapshots of a small source; returns their ids, oldest first.
fn two_snapshots(env: &TestEnv) -> (String, String) {
    env.init();
    write_file(&env.path("src/a"), b"first");
    let first = env.backup(&[s(&env.path("src"))])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    write_file(&env.path("src/b"), b"second");
    let second = env.backup(&[s(&env.path("src"))])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    (first, second)
}

fn snapshot_file(env: &TestEnv, id: &str) -> PathBuf {
    env.repo.join("snapshots").join(id)
}

/// A client with no memory of the repository (another machine).
fn fresh_client(env: &TestEnv, password_file: &Path, args: &[&str]) -> std::process::Output {
    run(env
        .cmd_with_password(password_file)
        .arg("--state-dir")
        .arg(env.path("other-client"))
        .args(args))
}

#[test]
fn a_replayed_snapshot_is_ignored_and_deleted_by_prune() {
    let env = TestEnv::new();
    let (old, kept) = two_snapshots(&env);
    let saved = fs::read(snapshot_file(&env, &old)).unwrap();
    let out = run(env.cmd().args(["forget", &old[..8]]));
    expect_code(&out, 0, "forget");
    env.prune(&[]);

    // Storage brings the forgotten snapshot back, byte for byte.
    fs::write(snapshot_file(&env, &old), &saved).unwrap();
    for out in [
        run(env.cmd().args(["snapshots", "--json"])),
        fresh_client(&env, &env.password_file, &["snapshots", "--json"]),
    ] {
        expect_code(&out, 0, "snapshots after a replay");
        assert_eq!(
            ids_printed(&out),
            vec![kept.clone()],
            "the replayed snapshot is listed"
        );
        assert!(
            stderr(&out).contains(&format!("ignored snapshot {}", &old[..8])),
            "{}",
            stderr(&out)
        );
    }
    let out = run(env
        .cmd()
        .args(["restore", &old[..8], "--target"])
        .arg(env.path("out")));
    expect_code(&out, 1, "restore of a replayed snapshot");
    assert!(!env.path("out/a").exists());

    // Check says so without calling it damage; prune deletes the file,
    // where before it refused to run (the snapshot's data is gone).
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 0, "check beside a replayed snapshot");
    assert!(
        stderr(&out).contains("storage holds it again"),
        "{}",
        stderr(&out)
    );
    let report = env.prune(&[]);
    assert_eq!(report["withdrawn_snapshots_removed"], 1, "{report}");
    assert!(!snapshot_file(&env, &old).exists());
    env.check_read_data();
}

#[test]
fn a_snapshot_gone_without_forget_is_reported_until_put_back_or_forgotten() {
    let env = TestEnv::new();
    let (old, kept) = two_snapshots(&env);
    assert_eq!(listed(&env, &[]).len(), 2);
    let saved = fs::read(snapshot_file(&env, &old)).unwrap();

    // Storage loses (or hides) a snapshot this client has seen.
    fs::remove_file(snapshot_file(&env, &old)).unwrap();
    let out = run(env.cmd().args(["snapshots", "--json"]));
    expect_code(&out, 0, "snapshots");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("snapshot {}", &old[..8])) && err.contains("is gone from storage"),
        "{err}"
    );
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 1, "check of a repository that lost a snapshot");
    assert!(
        stderr(&out).contains("is gone from storage"),
        "{}",
        stderr(&out)
    );
    // A client that never saw it cannot know.
    let out = fresh_client(&env, &env.password_file, &["check"]);
    expect_code(&out, 0, "check by a client that never saw it");

    // Put back: all is well again.
    fs::write(snapshot_file(&env, &old), &saved).unwrap();
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 0, "check with the snapshot back");
    assert!(!stderr(&out).contains("gone"), "{}", stderr(&out));

    // Gone again, and this time the user says it was meant: forget by the id.
    fs::remove_file(snapshot_file(&env, &old)).unwrap();
    let out = run(env.cmd().args(["forget", &old[..8]]));
    expect_code(&out, 0, "forget of a snapshot gone from storage");
    assert!(
        stdout(&out).contains("gone from storage"),
        "{}",
        stdout(&out)
    );
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 0, "check after forgetting it");
    assert_eq!(listed(&env, &[]), vec![kept]);
}

#[test]
fn a_rolled_back_listing_is_noticed_even_with_its_tombstones_gone() {
    let env = TestEnv::new();
    let (old, _) = two_snapshots(&env);
    let before = env.path("snapshots-before");
    copy_dir(&env.repo.join("snapshots"), &before);
    let saved_old = fs::read(snapshot_file(&env, &old)).unwrap();
    write_file(&env.path("src/c"), b"third");
    let newest = env.backup(&[s(&env.path("src"))])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(env.cmd().args(["forget", &old[..8]]));
    expect_code(&out, 0, "forget");
    assert_eq!(listed(&env, &[]).len(), 2);

    // Storage rolls snapshots/ and tombstones/ back to before the newest
    // backup and the forget.
    fs::remove_dir_all(env.repo.join("snapshots")).unwrap();
    copy_dir(&before, &env.repo.join("snapshots"));
    fs::remove_dir_all(env.repo.join("tombstones")).unwrap();
    fs::create_dir(env.repo.join("tombstones")).unwrap();
    assert_eq!(fs::read(snapshot_file(&env, &old)).unwrap(), saved_old);

    let out = run(env.cmd().args(["snapshots", "--json"]));
    expect_code(&out, 0, "snapshots after a rollback");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("snapshot {}", &newest[..8])) && err.contains("is gone from storage"),
        "the lost snapshot is not reported: {err}"
    );
    assert!(
        err.contains(&format!("ignored snapshot {}", &old[..8])),
        "the replayed snapshot is not ignored: {err}"
    );
    let ids = ids_printed(&out);
    assert!(!ids.contains(&old), "{ids:?}");
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 1, "check after a rollback");
}

#[test]
fn a_removed_key_that_comes_back_opens_nothing() {
    let env = TestEnv::new();
    env.init();
    let second = env.password_file("second", "another password");
    let out = run(env
        .cmd()
        .args(["key", "add", "--new-password-file"])
        .arg(&second));
    expect_code(&out, 0, "key add");
    let out = run(env
        .cmd_with_password(&second)
        .args(["key", "list", "--json"]));
    expect_code(&out, 0, "key list with the second password");
    let keys = parse_json(&out.stdout);
    let revoked = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key_file = env.repo.join("keys").join(&revoked);
    let saved = fs::read(&key_file).unwrap();
    let out = run(env.cmd().args(["key", "remove", &revoked[..8]]));
    expect_code(&out, 0, "key remove");
    assert!(!key_file.exists());

    // Storage brings the removed key file back.
    fs::write(&key_file, &saved).unwrap();
    for out in [
        run(env.cmd_with_password(&second).arg("snapshots")),
        fresh_client(&env, &second, &["snapshots"]),
    ] {
        expect_code(&out, 12, "the revived key");
        assert!(stderr(&out).contains("was removed"), "{}", stderr(&out));
    }
    // With its tombstone deleted too, a client that saw the removal still
    // refuses it.
    for (f, _) in files_below(&env.repo.join("tombstones")) {
        fs::remove_file(f).unwrap();
    }
    let out = run(env.cmd().arg("snapshots"));
    expect_code(&out, 0, "the first key");
    let out = run(env.cmd_with_password(&second).arg("snapshots"));
    expect_code(&out, 12, "the revived key, tombstone gone");
    assert!(stderr(&out).contains("was removed"), "{}", stderr(&out));
}
