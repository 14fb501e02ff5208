//! Directories in pieces (format version 4, docs/FORMAT.md §8.1): a change
//! to a few entries of a large directory stores a few pieces, not its whole
//! listing; everything reads back exactly; prune keeps the pieces snapshots
//! share; a version-3 repository keeps writing whole listings until
//! `bunker upgrade`; copies and fan-out between the versions stay exact.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Entries in the large directory: enough for dozens of pieces.
const ENTRIES: usize = 2000;

/// A source whose `big/` holds [`ENTRIES`] small files, and a little more.
fn make_source(env: &TestEnv) -> std::path::PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("big")).unwrap();
    std::fs::create_dir_all(src.join("small/sub")).unwrap();
    for i in 0..ENTRIES {
        write_file(
            &src.join(format!("big/file-{i:05}")),
            format!("entry {i}\n").as_bytes(),
        );
    }
    write_file(&src.join("small/a"), b"a");
    write_file(&src.join("small/sub/b"), b"b");
    src
}

/// The source, and a version-4 and a version-3 repository (`v4`, `v3`).
fn source_and_two_repos(env: &TestEnv) -> (std::path::PathBuf, String, String) {
    let src = make_source(env);
    let v4 = env.path("v4").display().to_string();
    let v3 = env.path("v3").display().to_string();
    ok(env, &v4, &["init", "-q"]);
    ok(env, &v3, &["init", "-q", "--format-version", "3"]);
    (src, v4, v3)
}

/// Changes five files spread over `big/`.
fn change_some(src: &Path, round: u32) {
    for i in [3, 511, 1000, 1500, 1998] {
        write_file(
            &src.join(format!("big/file-{i:05}")),
            format!("changed {i} in round {round}\n").as_bytes(),
        );
    }
}

fn backup(env: &TestEnv, repo: &str, src: &Path) -> Value {
    let out = run(cmd_in(env, repo).args(["backup", "--json"]).arg(src));
    expect_code(&out, 0, "backup");
    backup_summary(&out)
}

/// `bunker -r REPO` with the test's password.
fn cmd_in(env: &TestEnv, repo: &str) -> assert_cmd::Command {
    let mut c = bunker(env);
    c.args(["-r", repo, "--password-file"])
        .arg(&env.password_file);
    c
}

fn bunker_in(env: &TestEnv, repo: &str, args: &[&str]) -> std::process::Output {
    run(cmd_in(env, repo).args(args))
}

fn ok(env: &TestEnv, repo: &str, args: &[&str]) -> String {
    let out = bunker_in(env, repo, args);
    expect_code(&out, 0, &format!("{args:?}"));
    stdout(&out)
}

/// The repository's snapshot ids, oldest first.
fn snapshot_ids(env: &TestEnv, repo: &str) -> Vec<String> {
    let list = parse_json(ok(env, repo, &["snapshots", "--json"]).as_bytes());
    let list = list.as_array().unwrap();
    list.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn restore_and_compare(env: &TestEnv, repo: &str, src: &Path, into: &str) {
    let target = env.path(into);
    ok(
        env,
        repo,
        &[
            "restore",
            "latest",
            "--verify",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn a_change_to_a_few_entries_stores_a_few_pieces_and_all_reads_back() {
    let env = TestEnv::new();
    let (src, v4, v3) = source_and_two_repos(&env);

    let first = [backup(&env, &v4, &src), backup(&env, &v3, &src)];
    // The same data blobs; version 4 adds the pieces of `big/`.
    assert!(
        first[0]["blobs_added"].as_u64() > first[1]["blobs_added"].as_u64(),
        "{first:?}"
    );
    change_some(&src, 1);
    let second = [backup(&env, &v4, &src), backup(&env, &v3, &src)];
    let added = |v: &Value| v["bytes_added"].as_u64().unwrap();
    // Version 3 writes the whole listing of `big/` again (about 150 KiB);
    // version 4 only the pieces holding the five changes and the lists
    // above them.
    assert!(added(&second[1]) > 100_000, "{second:?}");
    assert!(
        added(&second[0]) * 5 < added(&second[1]),
        "version 4 added {} bytes, version 3 {}",
        added(&second[0]),
        added(&second[1])
    );

    for (repo, into) in [(&v4, "out-v4"), (&v3, "out-v3")] {
        restore_and_compare(&env, repo, &src, into);
        ok(&env, repo, &["check", "--read-data"]);
        // One name, found through the pieces.
        let path = src.join("big/file-01500");
        let listed = ok(&env, repo, &["ls", "latest", path.to_str().unwrap()]);
        assert_eq!(listed.trim(), path.to_str().unwrap());
        let dumped = ok(&env, repo, &["dump", "latest", path.to_str().unwrap()]);
        assert_eq!(dumped, "changed 1500 in round 1\n");
        let missing = src.join("big/file-99999");
        let out = bunker_in(&env, repo, &["ls", "latest", missing.to_str().unwrap()]);
        expect_code(&out, 1, "ls of a name the directory lacks");
        // The whole directory, listed in order across pieces.
        let listing = ok(
            &env,
            repo,
            &["ls", "latest", src.join("big").to_str().unwrap()],
        );
        let names: Vec<&str> = listing.lines().collect();
        assert_eq!(names.len(), ENTRIES, "{listing}");
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        // diff walks both snapshots' pieces and finds exactly the five.
        let ids = snapshot_ids(&env, repo);
        let diff = ok(&env, repo, &["diff", "--json", &ids[0], &ids[1]]);
        let diff: Value = parse_json(diff.as_bytes());
        assert_eq!(diff["modified"], 5, "{diff}");
        assert_eq!(
            (diff["added"].as_u64(), diff["removed"].as_u64()),
            (Some(0), Some(0))
        );
    }

    // Forget the first snapshot and prune: the pieces the second shares
    // with it stay, the rest goes.
    for repo in [&v4, &v3] {
        ok(&env, repo, &["forget", &snapshot_ids(&env, repo)[0]]);
        ok(&env, repo, &["prune"]);
        ok(&env, repo, &["check", "--read-data"]);
    }
    restore_and_compare(&env, &v4, &src, "after-prune");
}

#[test]
fn a_version_3_repository_keeps_whole_listings_until_upgraded() {
    let env = TestEnv::new();
    let src = make_source(&env);
    let repo = env.path("repo").display().to_string();
    ok(&env, &repo, &["init", "-q", "--format-version", "3"]);
    backup(&env, &repo, &src);
    change_some(&src, 1);
    let before = backup(&env, &repo, &src);
    assert!(
        before["bytes_added"].as_u64().unwrap() > 100_000,
        "{before}"
    );

    let config = std::fs::read(env.path("repo/config")).unwrap();
    let dry = ok(&env, &repo, &["upgrade", "--dry-run", "--json"]);
    let dry: Value = parse_json(dry.as_bytes());
    assert_eq!(
        (dry["from"].as_u64(), dry["to"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(dry["upgraded"], false);
    assert!(dry["changes"].as_array().unwrap().len() >= 3, "{dry}");
    assert_eq!(
        std::fs::read(env.path("repo/config")).unwrap(),
        config,
        "a dry run writes nothing"
    );
    // An append-only key may not upgrade.
    let limited = env.password_file("limited", "a client's password");
    let out = bunker_in(
        &env,
        &repo,
        &[
            "key",
            "add",
            "--append-only",
            "--new-password-file",
            limited.to_str().unwrap(),
        ],
    );
    expect_code(&out, 0, "key add --append-only");
    let out = run(bunker(&env)
        .args(["-r", &repo, "--password-file"])
        .arg(&limited)
        .arg("upgrade"));
    expect_code(&out, 1, "upgrade with an append-only key");
    assert!(stderr(&out).contains("append-only"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert_eq!(std::fs::read(env.path("repo/config")).unwrap(), config);

    let out = bunker_in(&env, &repo, &["upgrade"]);
    expect_code(&out, 0, "upgrade");
    assert!(
        stdout(&out).contains("from format version 3 to 4"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("pieces"), "{}", stdout(&out));
    assert_ne!(std::fs::read(env.path("repo/config")).unwrap(), config);
    let again = ok(&env, &repo, &["upgrade", "--json"]);
    assert_eq!(parse_json(again.as_bytes())["upgraded"], false);

    // The first backup after the upgrade stores `big/` once as pieces; the
    // next one only what changed.
    change_some(&src, 2);
    backup(&env, &repo, &src);
    change_some(&src, 3);
    let after = backup(&env, &repo, &src);
    assert!(
        after["bytes_added"].as_u64().unwrap() * 5 < before["bytes_added"].as_u64().unwrap(),
        "before the upgrade {before}, after {after}"
    );
    // Snapshots of both eras read back, and check sees both.
    ok(&env, &repo, &["check", "--read-data"]);
    restore_and_compare(&env, &repo, &src, "out");
    let target = env.path("old");
    ok(
        &env,
        &repo,
        &[
            "restore",
            &snapshot_ids(&env, &repo)[0],
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ],
    );
    let old = std::fs::read(
        target
            .join(src.strip_prefix("/").unwrap())
            .join("big/file-00003"),
    );
    assert_eq!(old.unwrap(), b"entry 3\n");
}

#[test]
fn version_1_repositories_are_not_upgraded_in_place() {
    let env = TestEnv::new();
    let repo = env.path("repo").display().to_string();
    ok(&env, &repo, &["init", "-q", "--format-version", "1"]);
    let config = std::fs::read(env.path("repo/config")).unwrap();
    let out = bunker_in(&env, &repo, &["upgrade"]);
    expect_code(&out, 1, "upgrade of version 1");
    assert!(stderr(&out).contains("bunker copy"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert_eq!(std::fs::read(env.path("repo/config")).unwrap(), config);
}

#[test]
fn copies_and_fan_out_between_versions_are_exact() {
    let env = TestEnv::new();
    let (src, v4, v3) = source_and_two_repos(&env);
    let v3_shared = env.path("v3-shared").display().to_string();
    // Shares the content keys, so blob ids are the same, but cuts
    // directories otherwise: fan-out must not hand it version 4's pieces.
    let password = env.password_file.to_str().unwrap();
    ok(
        &env,
        &v3_shared,
        &[
            "init",
            "-q",
            "--format-version",
            "3",
            "--copy-chunker-params-from",
            &v4,
            "--from-password-file",
            password,
        ],
    );
    backup(&env, &v4, &src);
    change_some(&src, 1);
    let out = run(cmd_in(&env, &v4)
        .args([
            "backup",
            "--json",
            "--copy-to",
            &v3_shared,
            "--to-password-file",
            password,
        ])
        .arg(&src));
    expect_code(&out, 0, "backup --copy-to a version 3 repository");
    let summary = backup_summary(&out);
    assert_eq!(summary["copies"][0]["with_backup"], false, "{summary}");

    // Version 4 into version 3 and back.
    for (from, to) in [
        (&v4, &v3),
        (&v3, &env.path("v4-again").display().to_string()),
    ] {
        if !Path::new(to).join("config").exists() {
            ok(&env, to, &["init", "-q"]);
        }
        let out = run(cmd_in(&env, from)
            .env("BUNKER_TO_PASSWORD_FILE", &env.password_file)
            .args(["copy", "--to", to]));
        expect_code(&out, 0, "copy");
    }
    for (repo, into) in [
        (&v3, "from-v4"),
        (&v3_shared, "fanned"),
        (&env.path("v4-again").display().to_string(), "back"),
    ] {
        ok(&env, repo, &["check", "--read-data"]);
        restore_and_compare(&env, repo, &src, into);
    }
}
