//! Backup strategies: which parent each mode compares against, what it reads,
//! and that every snapshot restores on its own.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::*;

fn write(env: &TestEnv, rel: &str, data: &[u8]) {
    write_file(&env.path(rel), data);
}

fn id(v: &serde_json::Value) -> String {
    v["snapshot_id"].as_str().expect("snapshot id").to_string()
}

fn source(env: &TestEnv) -> String {
    env.path("src").display().to_string()
}

fn make_tree(env: &TestEnv) {
    let mut rng = Rng::new(3);
    for i in 0..20 {
        write_random(
            &env.path(&format!("src/d{}/f{i}", i % 3)),
            1000 + i * 5000,
            &mut rng,
        );
    }
    write_random(&env.path("src/big"), 6 << 20, &mut rng);
}

#[test]
fn each_mode_picks_its_parent_and_reads_only_what_changed() {
    let env = TestEnv::new();
    env.init();
    make_tree(&env);
    let src = source(&env);
    let total: u64 = files_below(&env.path("src")).iter().map(|(_, n)| n).sum();

    let full = env.backup(&["--mode", "full", &src]);
    assert_eq!(full["mode"], "full");
    assert!(full["parent"].is_null());
    assert_eq!(full["files_new"], 21);
    assert_eq!(full["bytes_read"].as_u64(), Some(total));

    // No change: an incremental reads nothing and reuses every file.
    let inc = env.backup(&[&src]);
    assert_eq!(inc["mode"], "incremental");
    assert_eq!(inc["parent"].as_str(), Some(id(&full).as_str()));
    assert_eq!(
        (
            inc["files_unmodified"].as_u64(),
            inc["files_new"].as_u64(),
            inc["files_changed"].as_u64()
        ),
        (Some(21), Some(0), Some(0))
    );
    assert_eq!(inc["bytes_read"], 0);
    // No file content is stored again; only tree blobs of ancestor
    // directories (e.g. /tmp, which other tests touch) may have new metadata.
    assert!(
        inc["bytes_added"].as_u64().unwrap() < 4096,
        "an unchanged tree re-added data: {inc}"
    );

    // One file changes: the next incremental reads only that one, against the previous incremental.
    write(&env, "src/d0/f0", b"changed content");
    write(&env, "src/new-file", b"new");
    let inc2 = env.backup(&[&src]);
    assert_eq!(inc2["parent"].as_str(), Some(id(&inc).as_str()));
    assert_eq!(
        (
            inc2["files_changed"].as_u64(),
            inc2["files_new"].as_u64(),
            inc2["files_unmodified"].as_u64()
        ),
        (Some(1), Some(1), Some(20))
    );
    assert_eq!(inc2["bytes_read"].as_u64(), Some(15 + 3));

    // A differential compares with the full snapshot, not the newest one.
    let diff = env.backup(&["--mode", "differential", &src]);
    assert_eq!(diff["mode"], "differential");
    assert_eq!(diff["parent"].as_str(), Some(id(&full).as_str()));
    assert_eq!(
        (diff["files_changed"].as_u64(), diff["files_new"].as_u64()),
        (Some(1), Some(1))
    );

    // The listing carries mode and parent.
    let list = env.snapshots(&[]);
    let modes: Vec<&str> = list.iter().map(|s| s["mode"].as_str().unwrap()).collect();
    assert_eq!(
        modes,
        ["full", "incremental", "incremental", "differential"]
    );
    assert_eq!(list[3]["parent"].as_str(), Some(id(&full).as_str()));

    // Another host has no parent; --parent overrides the choice.
    let other = env.backup(&["--host", "elsewhere", &src]);
    assert!(other["parent"].is_null());
    let forced = env.backup(&["--parent", &id(&full)[..10], &src]);
    assert_eq!(forced["parent"].as_str(), Some(id(&full).as_str()));
}

/// The parent's listings are read ahead of the walk: each directory must
/// still be compared with its own listing when directories come, go,
/// change kind or share one listing, or every file below would be read
/// again (or, worse, matched against another directory's entries).
#[test]
fn each_directory_is_compared_with_its_own_listing_in_the_parent() {
    let env = TestEnv::new();
    env.init();
    // Ten directories holding the same names, each with two levels below.
    for d in 0..10 {
        for rel in ["f0", "f1", "f2", "sub/g0", "sub/g1", "sub/deep/h0"] {
            write(
                &env,
                &format!("src/d{d:02}/{rel}"),
                format!("{d} {rel}").as_bytes(),
            );
        }
    }
    // Two empty directories: one listing, stored once, that both name.
    for empty in ["e1", "e2"] {
        fs::create_dir_all(env.path(&format!("src/{empty}"))).unwrap();
    }
    let src = source(&env);
    let full = env.backup(&[&src]);
    assert_eq!(full["files_new"], 60);

    fs::remove_dir_all(env.path("src/d03")).unwrap();
    for rel in ["f0", "f1", "f2", "sub/g0", "sub/g1", "sub/deep/h0"] {
        write(&env, &format!("src/d05a/{rel}"), rel.as_bytes());
    }
    fs::remove_dir_all(env.path("src/d07")).unwrap();
    write(&env, "src/d07", b"now a file");
    write(&env, "src/d08/sub/added", b"added");
    write(&env, "src/d09/sub/deep/h0", b"changed content");
    fs::remove_dir(env.path("src/e1")).unwrap();

    let inc = env.backup(&[&src]);
    assert_eq!(
        (
            inc["files_unmodified"].as_u64(),
            inc["files_changed"].as_u64(),
            inc["files_new"].as_u64()
        ),
        // 60 less d03's 6, d07's 6 and the changed h0; changed: h0 and
        // d07 (a file where the parent had a directory); new: d05a's 6 and
        // d08's added.
        (Some(47), Some(2), Some(7)),
        "{inc}"
    );
    let target = env.path("out");
    env.restore_verified("latest", &target);
    assert_same_tree(&env.path("src"), &target.join(src.trim_start_matches('/')));
}

#[test]
fn differential_without_a_full_runs_full_and_says_so() {
    let env = TestEnv::new();
    env.init();
    make_tree(&env);
    let src = source(&env);
    env.backup(&[&src]); // an incremental with no parent is not a full snapshot
    let out = run(env.cmd().args(["backup", "--mode", "differential", &src]));
    expect_code(&out, 0, "differential backup");
    assert!(
        stderr(&out).contains("running a full backup"),
        "{}",
        stderr(&out)
    );
    let list = env.snapshots(&[]);
    assert_eq!(list.last().unwrap()["mode"], "full");
    assert!(list.last().unwrap()["parent"].is_null());
}

#[test]
fn full_backup_notices_content_changed_behind_same_size_and_mtime() {
    let env = TestEnv::new();
    env.init();
    let path = env.path("src/file");
    write(&env, "src/file", b"original content, 32 bytes long.");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let src = source(&env);
    env.backup(&["--mode", "full", &src]);

    // Same size, same mtime, different bytes.
    write(&env, "src/file", b"ORIGINAL CONTENT, 32 BYTES LONG.");
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let full = env.backup(&["--mode", "full", &src]);
    assert_eq!(full["bytes_read"], 32);

    let out = run(env.cmd().args(["dump", &id(&full), &format!("{src}/file")]));
    expect_code(&out, 0, "dump");
    assert_eq!(out.stdout, b"ORIGINAL CONTENT, 32 BYTES LONG.");
}

#[test]
fn incremental_and_differential_restore_after_their_full_is_forgotten_and_pruned() {
    let env = TestEnv::new();
    env.init_small_packs();
    make_tree(&env);
    let src = source(&env);
    let full = env.backup(&["--mode", "full", &src]);

    // Content only the full has: a rewritten big file, a deleted file.
    let mut rng = Rng::new(99);
    write_random(&env.path("src/big"), 6 << 20, &mut rng);
    fs::remove_file(env.path("src/d2/f2")).unwrap();
    write(&env, "src/d1/extra", b"added after the full backup");
    let inc = env.backup(&[&src]);
    assert_eq!(inc["parent"].as_str(), Some(id(&full).as_str()));
    copy_dir(&env.path("src"), &env.path("state-inc"));

    write_random(&env.path("src/d0/f0"), 300_000, &mut rng);
    let diff = env.backup(&["--mode", "differential", &src]);
    assert_eq!(diff["parent"].as_str(), Some(id(&full).as_str()));

    let out = run(env.cmd().args(["forget", &id(&full), "--prune", "--json"]));
    expect_code(&out, 0, "forget --prune");
    let report = parse_json_stream(&out.stdout).pop().unwrap();
    assert!(
        report["bytes_deleted"].as_u64().unwrap() >= 5 << 20,
        "the full's own data was not freed: {report}"
    );
    let out = run(env.cmd().args(["check", "--read-data"]));
    expect_code(&out, 0, "check --read-data");

    let target = env.path("out-inc");
    env.restore_verified(&format!("{}:{src}", id(&inc)), &target);
    assert_same_contents(&env.path("state-inc"), &target);
    let target = env.path("out-diff");
    env.restore_verified(&format!("{}:{src}", id(&diff)), &target);
    assert_same_contents(&env.path("src"), &target);
}

#[test]
fn init_settings_are_applied_and_bad_ones_refused_before_anything_is_created() {
    let env = TestEnv::new();
    let out = run(env.cmd().args(["init", "--pack-size", "10K"]));
    expect_code(&out, 2, "init with a tiny pack size");
    assert!(stderr(&out).contains("--pack-size"), "{}", stderr(&out));
    assert!(
        !env.repo.exists(),
        "a refused init must not create the repository directory"
    );

    expect_code(
        &run(env
            .cmd()
            .args(["init", "--pack-size", "1M", "--compression", "-1"])),
        0,
        "init",
    );
    let mut rng = Rng::new(9);
    write_random(&env.path("src/a"), 12 << 20, &mut rng);
    env.backup(&[&source(&env)]);
    let packs = files_below(&env.repo.join("data"));
    assert!(
        packs.len() >= 4,
        "12 MiB in 1 MiB packs gave {} packs",
        packs.len()
    );
    assert!(
        packs.iter().all(|(_, n)| *n < 6 << 20),
        "a pack exceeds target + one maximum chunk"
    );
}

#[test]
fn diff_names_added_removed_modified_and_metadata_only_changes() {
    let env = TestEnv::new();
    env.init();
    write(&env, "src/same", b"unchanged");
    write(&env, "src/edit", b"before");
    write(&env, "src/chmod", b"mode changes");
    write(&env, "src/gone/inner", b"removed with its directory");
    let src = source(&env);
    let first = env.backup(&[&src]);

    write(&env, "src/edit", b"after!");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.path("src/chmod"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_dir_all(env.path("src/gone")).unwrap();
    write(&env, "src/new/file", b"added");
    let second = env.backup(&[&src]);

    let out = run(env
        .cmd()
        .args(["diff", &id(&first), &id(&second), "--json"]));
    expect_code(&out, 0, "diff");
    let v = parse_json(&out.stdout);
    let mut got: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        // Only paths below the source: ancestors such as /tmp change under parallel tests.
        .filter_map(|c| {
            let rel = c["path"].as_str().unwrap().strip_prefix(src.as_str())?;
            rel.starts_with('/')
                .then(|| (c["change"].as_str().unwrap().to_string(), rel.to_string()))
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = [
        ("added", "/new"),
        ("added", "/new/file"),
        ("metadata", "/chmod"),
        ("modified", "/edit"),
        ("removed", "/gone"),
        ("removed", "/gone/inner"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(v["added"], 2);

    // The same snapshot twice: nothing differs.
    let out = run(env
        .cmd()
        .args(["diff", &id(&second), &id(&second), "--json"]));
    assert_eq!(
        parse_json(&out.stdout)["changes"].as_array().unwrap().len(),
        0
    );
}

#[test]
fn a_file_changed_while_it_is_read_is_reported_and_recorded() {
    let env = TestEnv::new();
    env.init();
    let mut rng = Rng::new(5);
    write_random(&env.path("src/growing.log"), 200_000, &mut rng);
    let src = source(&env);
    // The backup pauses after reading the file; the file grows meanwhile.
    let mut child = env
        .spawnable()
        .env("BUNKER_TEST_PAUSE", "backup-file-read:1500")
        .args(["backup", "--json", &src])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pause(&mut child, "backup-file-read");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(env.path("src/growing.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"one more line\n").unwrap();
    drop(f);
    let out = child.wait_with_output().unwrap();
    assert_no_panic(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("growing.log") && err.contains("changed while"),
        "not reported: {err}"
    );
    let snapshots = env.snapshots(&[]);
    let warnings = snapshots[0]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("growing.log")),
        "not recorded: {warnings:?}"
    );
}

#[test]
fn one_file_system_stays_on_the_sources_file_system() {
    let env = TestEnv::new();
    env.init();
    write(&env, "src/here", b"on the source's file system");
    let mnt = env.path("src/mnt");
    fs::create_dir(&mnt).unwrap();
    let Some(_mount) = mount_tmpfs(&mnt, "1m") else {
        return;
    };
    write(&env, "src/mnt/elsewhere", b"on another file system");
    let src = source(&env);

    let all = env.backup(&[&src]);
    assert_eq!(all["files_new"], 2);
    let one = env.backup(&["--one-file-system", "--mode", "full", &src]);
    assert_eq!(one["files_new"], 1, "{one}");
    let out = run(env.cmd().args(["ls", one["snapshot_id"].as_str().unwrap()]));
    expect_code(&out, 0, "ls");
    let listing = stdout(&out);
    // The mount point itself is kept, empty, as restic and tar do.
    assert!(
        listing.contains("/mnt") && !listing.contains("elsewhere"),
        "{listing}"
    );
}
