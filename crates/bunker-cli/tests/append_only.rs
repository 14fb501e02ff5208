//! Clients that cannot destroy backups: storage that refuses deletes and
//! overwrites (a local folder with the append-only attribute), and keys
//! made with `key add --append-only`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Removes the append-only attribute again, whatever the test did, so the
/// temporary folder can be deleted.
struct AppendOnly(PathBuf);

impl AppendOnly {
    /// `chattr +a` on every folder of the repository but `tmp/` (where
    /// files are staged before they are linked into place). None when this
    /// machine cannot (not root, or a file system without the attribute).
    fn set(repo: &Path) -> Option<Self> {
        let guard = AppendOnly(repo.to_path_buf());
        let mut folders = vec![repo.to_path_buf()];
        for entry in walk_dirs(repo) {
            if !entry.starts_with(repo.join("tmp")) {
                folders.push(entry);
            }
        }
        let ok = Command::new("chattr")
            .arg("+a")
            .args(&folders)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(guard)
    }
}

impl Drop for AppendOnly {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-R", "-a"])
            .arg(&self.0)
            .status();
    }
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.push(e.path());
            out.extend(walk_dirs(&e.path()));
        }
    }
    out
}

#[test]
fn a_backup_works_on_storage_that_refuses_deletes_and_says_so_once() {
    let env = TestEnv::new();
    let mut rng = Rng::new(71);
    env.init_small_packs();
    env.write_source_files(0..3, 500_000, &mut rng);
    let src = env.path("src");
    env.backup(&[&src.display().to_string()]);
    let Some(_guard) = AppendOnly::set(&env.repo) else {
        eprintln!("SKIPPED: chattr +a is not possible here (needs root on ext4/xfs)");
        return;
    };
    // The attribute really holds: nothing in the repository can be removed.
    let some_index = std::fs::read_dir(env.repo.join("index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(std::fs::remove_file(&some_index).is_err());

    write_random(&env.path("src/f1"), 700_000, &mut rng);
    let out = run(env
        .cmd()
        .args(["backup"])
        .arg(&src)
        .arg("--copy-to")
        .arg(env.path("unused"))
        .env("BUNKER_TO_PASSWORD", "x")
        .arg("--tag")
        .arg("second"));
    // The copy does not exist (exit 1 names it); the primary took the snapshot.
    expect_code(&out, 1, "backup on append-only storage, one missing copy");
    let err = stderr(&out);
    assert_eq!(
        err.matches("refused to delete this run's lock file")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(env.snapshots(&[]).len(), 2);

    let out = run(env.cmd().args(["backup", "--tag", "third"]).arg(&src));
    expect_code(&out, 0, "backup on append-only storage");
    assert_eq!(
        stderr(&out)
            .matches("refused to delete this run's lock file")
            .count(),
        1
    );
    assert_eq!(env.snapshots(&[]).len(), 3);

    // copy --to such a repository works too.
    let other = env.path("other");
    let on_other = || {
        let mut c = bunker(&env);
        c.arg("-r")
            .arg(&other)
            .arg("--password-file")
            .arg(&env.password_file);
        c
    };
    expect_code(&run(on_other().arg("init")), 0, "init other");
    write_random(&env.path("src/f2"), 300_000, &mut rng);
    expect_code(
        &run(on_other().arg("backup").arg(&src)),
        0,
        "backup into other",
    );
    let out = run(on_other()
        .env("BUNKER_TO_PASSWORD_FILE", &env.password_file)
        .arg("copy")
        .arg("--to")
        .arg(&env.repo));
    expect_code(&out, 0, "copy --to append-only storage");
    assert_eq!(
        stderr(&out)
            .matches("refused to delete this run's lock file")
            .count(),
        1
    );
    assert_eq!(env.snapshots(&[]).len(), 4);
    let target = env.path("restored");
    expect_code(
        &env.restore_verified("latest", &target),
        0,
        "restore from append-only storage",
    );
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // forget withdraws by writing a tombstone; the files it cannot delete
    // stay for maintenance, and it says so.
    let out = run(env.cmd().args(["forget", "--keep-last", "1"]));
    expect_code(&out, 0, "forget on append-only storage");
    assert!(
        stderr(&out).contains("refused to delete 3 withdrawn snapshot file(s)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.snapshots(&[]).len(), 1);
    assert_eq!(
        std::fs::read_dir(env.repo.join("snapshots"))
            .unwrap()
            .count(),
        4
    );
    // prune rewrites its own records, which a folder that refuses even
    // overwrites does not allow: it stops with the reason and loses nothing
    // (on S3 without delete rights, refused deletes are "not yet": the
    // engine's faults test).
    let out = run(env.cmd().arg("prune"));
    assert_eq!(out.status.code(), Some(1), "prune on append-only storage");
    assert_no_panic(&out);
    assert!(stderr(&out).contains("not permitted"), "{}", stderr(&out));
    let out = run(env.cmd().args(["check", "--read-data"]));
    expect_code(&out, 0, "check after the refused prune");
    expect_code(
        &env.restore_verified("latest", &env.path("restored-again")),
        0,
        "restore after the refused prune",
    );
}

#[test]
fn an_append_only_key_backs_up_and_restores_but_destroys_nothing() {
    let env = TestEnv::new();
    let mut rng = Rng::new(73);
    env.init();
    let limited = env.password_file("limited", "a client's password");
    let out = run(env
        .cmd()
        .args(["key", "add", "--append-only", "--new-password-file"])
        .arg(&limited));
    expect_code(&out, 0, "key add --append-only");
    assert!(
        stdout(&out).contains("added append-only key"),
        "{}",
        stdout(&out)
    );
    let out = run(env.cmd().args(["key", "list", "--json"]));
    let keys = parse_json(&out.stdout);
    let marked: Vec<bool> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["append_only"].as_bool().unwrap())
        .collect();
    assert_eq!(marked.iter().filter(|m| **m).count(), 1, "{keys}");
    let full_key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The client backs up, lists and restores.
    env.write_source_files(0..3, 300_000, &mut rng);
    let src = env.path("src");
    let client = || env.cmd_with_password(&limited);
    for _ in 0..2 {
        write_random(&env.path("src/f0"), 300_000, &mut rng);
        expect_code(&run(client().arg("backup").arg(&src)), 0, "client backup");
    }
    let out = run(client().args(["snapshots", "--json"]));
    expect_code(&out, 0, "client snapshots");
    assert_eq!(parse_json(&out.stdout).as_array().unwrap().len(), 2);
    let target = env.path("restored");
    let out = run(client()
        .args(["restore", "latest", "--verify", "--target"])
        .arg(&target));
    expect_code(&out, 0, "client restore");
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // And is refused everything that deletes or rewrites.
    let other = env.password_file("other", "another password");
    for args in [
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
        vec!["key", "remove", &full_key[..8]],
        vec!["repair", "index"],
    ] {
        let out = run(client().args(&args));
        expect_code(&out, 1, &format!("{args:?} with an append-only key"));
        assert!(
            stderr(&out).contains("append-only"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    for action in ["add", "passwd"] {
        let out = run(client()
            .args(["key", action, "--new-password-file"])
            .arg(&other));
        expect_code(&out, 1, &format!("key {action} with an append-only key"));
        assert!(stderr(&out).contains("append-only"), "{}", stderr(&out));
    }
    assert_eq!(env.snapshots(&[]).len(), 2, "nothing was forgotten");
    assert_eq!(
        parse_json(&run(env.cmd().args(["key", "list", "--json"])).stdout)
            .as_array()
            .unwrap()
            .len(),
        2,
        "no key added or removed"
    );
    // The full key still does what the client may not.
    expect_code(
        &run(env.cmd().args(["forget", "--keep-last", "1"])),
        0,
        "forget with the full key",
    );
}
