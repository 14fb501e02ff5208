//! End-to-end tests of the `bunker` binary: every test runs the real
//! executable in an isolated HOME with a scrubbed environment.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use serde_json::Value;

const MIB: usize = 1 << 20;

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// `SNAP:PATH` for restoring a source directory's contents directly.
fn snap_path(snap: &str, p: &Path) -> String {
    format!("{snap}:{}", s(p))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Paths listed by `ls SNAP PATH --json`, below `base`, relative to it.
fn ls_relative(env: &TestEnv, snap: &str, base: &Path) -> BTreeSet<String> {
    let out = run(env.cmd().args(["ls", snap, s(base), "--json"]));
    expect_code(&out, 0, "ls --json");
    let v = parse_json(&out.stdout);
    let nodes = v["nodes"].as_array().expect("ls --json has nodes");
    let prefix = format!("{}/", s(base));
    nodes
        .iter()
        .map(|n| n["path"].as_str().expect("node path").to_string())
        .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

fn count_regular_files(dir: &Path) -> usize {
    snapshot_tree(dir)
        .values()
        .filter(|m| matches!(m.entry, Entry::File(_)))
        .count()
}

/// A tree with small files, a file above the maximum chunk size, an
/// empty file, duplicates, an empty directory, nested directories, relative
/// symlinks, unusual modes and explicit nanosecond modification times.
fn build_varied_tree(src: &Path, rng: &mut Rng) {
    let dirs = ["", "docs", "docs/notes", "code/src/deep"];
    for i in 0..40 {
        let len = rng.below(24 * 1024) as usize;
        write_random(
            &src.join(dirs[i % dirs.len()]).join(format!("f{i:02}.dat")),
            len,
            rng,
        );
    }
    write_random(&src.join("big.bin"), 9 * MIB + 12345, rng);
    write_file(&src.join("empty.bin"), b"");
    let dup = rng.bytes(300 * 1024);
    write_file(&src.join("dups/one.bin"), &dup);
    write_file(&src.join("dups/two.bin"), &dup);
    write_file(&src.join("other/three.bin"), &dup);
    let text: String = (0..5000)
        .map(|i| format!("line {i}: all work and no play\n"))
        .collect();
    write_file(&src.join("docs/text.txt"), text.as_bytes());
    write_file(&src.join("nested/a/b/c/leaf.txt"), b"leaf\n");
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    symlink("nested/a/b/c/leaf.txt", src.join("link-to-leaf")).unwrap();
    symlink("../../big.bin", src.join("nested/a/up-link")).unwrap();
    symlink("does-not-exist", src.join("dangling-link")).unwrap();

    chmod(&src.join("f00.dat"), 0o600);
    chmod(&src.join("docs/f01.dat"), 0o755);
    chmod(&src.join("docs/notes/f02.dat"), 0o640);
    chmod(&src.join("code/src/deep/f03.dat"), 0o444);
    chmod(&src.join("docs/notes"), 0o700);
    chmod(&src.join("empty-dir"), 0o750);
    set_mtime(&src.join("f04.dat"), 1_600_000_000, 123_456_789);
    set_mtime(&src.join("big.bin"), 1_500_000_000, 987_654_321);
    set_mtime(&src.join("empty.bin"), 1_000_000_000, 1);
    // Directory times last: creating children changes them.
    set_mtime(&src.join("empty-dir"), 1_400_000_000, 500_000_000);
    set_mtime(&src.join("nested/a/b"), 1_300_000_000, 42);
}

#[test]
fn round_trip_restores_bytes_modes_mtimes_and_symlinks() {
    let env = TestEnv::new();
    let src = env.path("src");
    build_varied_tree(&src, &mut Rng::new(1));
    let regular = count_regular_files(&src) as u64;
    env.init();

    let summary = env.backup(&[s(&src)]);
    let id = summary["snapshot_id"].as_str().expect("snapshot id");
    assert_eq!(id.len(), 64, "snapshot id is a full hex id: {id}");
    assert_eq!(summary["files_new"].as_u64(), Some(regular), "{summary}");
    assert_eq!(summary["skipped"], Value::Array(vec![]), "{summary}");
    assert!(
        summary["bytes_added"].as_u64().unwrap() >= 9 * MIB as u64,
        "{summary}"
    );

    let out_dir = env.path("restored");
    let out = run(env.cmd().args([
        "restore",
        &snap_path("latest", &src),
        "--target",
        s(&out_dir),
        "--verify",
        "--json",
    ]));
    expect_code(&out, 0, "restore --verify");
    // Progress status lines may precede the summary document.
    let docs = parse_json_stream(&out.stdout);
    let r = docs.last().expect("restore --json printed nothing").clone();
    assert_eq!(r["message_type"], "summary", "{r}");
    assert_eq!(r["snapshot_id"], id);
    assert_eq!(r["files"].as_u64(), Some(regular), "{r}");
    assert_eq!(r["verified"].as_u64(), Some(regular), "{r}");
    assert_eq!(r["errors"], Value::Array(vec![]), "{r}");
    assert_same_tree(&src, &out_dir);

    // The plain form restores absolute paths below the target.
    let full = env.path("restored-full");
    let out = run(env.cmd().args(["restore", id, "--target", s(&full)]));
    expect_code(&out, 0, "restore whole snapshot");
    let nested = full.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &nested);
}

#[test]
fn zero_config_backup_creates_default_repository_and_key() {
    let env = TestEnv::new();
    let src = env.path("data");
    let mut rng = Rng::new(2);
    write_random(&src.join("a.bin"), 200_000, &mut rng);
    write_random(&src.join("sub/b.bin"), 5_000, &mut rng);
    write_file(&src.join("sub/hello.txt"), b"hello\n");

    let key_file = env.home.join(".config/bunker/repository.key");
    let repo_dir = env.home.join(".local/share/bunker/repository");

    let out = run(bunker(&env).args(["backup", s(&src)]));
    expect_code(&out, 0, "zero-config backup");
    let err = stderr(&out);
    assert!(
        err.contains(s(&key_file)),
        "stderr does not name the key file:\n{err}"
    );
    assert!(
        err.contains(s(&repo_dir)),
        "stderr does not name the repository:\n{err}"
    );
    assert!(
        err.contains("somewhere else"),
        "stderr lacks the keep-safe advice:\n{err}"
    );
    assert!(
        repo_dir.join("config").is_file(),
        "no repository at {}",
        repo_dir.display()
    );
    let mode = fs::metadata(&key_file).expect("key file exists").mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode is {mode:o}");
    assert!(fs::read_to_string(&key_file).unwrap().trim().len() >= 16);

    let out = run(bunker(&env).args(["snapshots", "--json"]));
    expect_code(&out, 0, "zero-config snapshots");
    let list = parse_json(&out.stdout);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["paths"], serde_json::json!([s(&src)]));

    let target = env.path("out");
    let out = run(bunker(&env).args([
        "restore",
        &snap_path("latest", &src),
        "--target",
        s(&target),
    ]));
    expect_code(&out, 0, "zero-config restore");
    assert_same_tree(&src, &target);

    // A second backup reuses the repository and key silently.
    let key_before = fs::read(&key_file).unwrap();
    let out = run(bunker(&env).args(["backup", s(&src)]));
    expect_code(&out, 0, "second zero-config backup");
    assert!(
        !stderr(&out).contains("created the default repository"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&key_file).unwrap(), key_before, "key file changed");
    let out = run(bunker(&env).args(["snapshots", "--json"]));
    assert_eq!(parse_json(&out.stdout).as_array().unwrap().len(), 2);
}

#[test]
fn unchanged_and_copied_data_is_deduplicated() {
    let env = TestEnv::new();
    let src = env.path("tree");
    let mut rng = Rng::new(3);
    let mut total = 0;
    let mut i = 0;
    while total < 20 * MIB {
        let len = 256 * 1024 + rng.below(1536 * 1024) as usize;
        write_random(&src.join(format!("d{}/file{i}.bin", i % 3)), len, &mut rng);
        total += len;
        i += 1;
    }
    env.init();
    env.backup(&[s(&src)]);
    let first = dir_size(&env.repo);
    assert!(
        first as usize >= 20 * MIB,
        "repository holds only {first} bytes"
    );

    env.backup(&[s(&src)]);
    let second = dir_size(&env.repo);
    let growth = (second - first) as f64 / first as f64;
    assert!(
        growth < 0.01,
        "unchanged backup grew the repository by {:.3}%",
        growth * 100.0
    );

    let copy = env.path("elsewhere/copy");
    copy_dir(&src, &copy);
    let summary = env.backup(&[s(&copy)]);
    let third = dir_size(&env.repo);
    let growth = (third - second) as f64 / second as f64;
    assert!(
        growth < 0.02,
        "copied tree grew the repository by {:.3}%",
        growth * 100.0
    );
    assert!(
        summary["bytes_added"].as_u64().unwrap() < (total / 50) as u64,
        "copy added too much: {summary}"
    );
    assert_eq!(env.snapshots(&[]).len(), 3);
}

#[test]
fn repository_never_contains_plaintext_content_or_names() {
    const MARKER: &[u8] = b"BUNKER-MARKER-7f3a9c";
    const NAME: &str = "secret-name-7f3a9c.txt";
    let env = TestEnv::new();
    let src = env.path("private");
    let mut body = Vec::new();
    for i in 0..20_000 {
        body.extend_from_slice(MARKER);
        body.extend_from_slice(format!(" row {}\n", i % 7).as_bytes());
    }
    write_file(&src.join("notes.txt"), &body);
    write_file(&src.join(NAME), MARKER);
    write_file(&src.join("dir-7f3a9c/inner.txt"), b"BUNKER-MARKER-7f3a9c\n");
    env.init();
    let summary = env.backup(&[s(&src)]);
    assert_eq!(summary["files_new"].as_u64(), Some(3), "{summary}");

    let files = files_below(&env.repo);
    assert!(files.len() >= 5, "repository looks empty: {files:?}");
    for (path, _) in &files {
        let bytes = fs::read(path).unwrap();
        assert!(
            !contains(&bytes, MARKER),
            "{} contains the content marker",
            path.display()
        );
        assert!(
            !contains(&bytes, NAME.as_bytes()),
            "{} contains the file name",
            path.display()
        );
        assert!(
            !contains(&bytes, b"7f3a9c"),
            "{} contains the marker id",
            path.display()
        );
        assert!(
            !s(path).contains("7f3a9c"),
            "repository path leaks a name: {}",
            path.display()
        );
    }

    // And the data is really there: dump returns the plaintext.
    let out = run(env
        .cmd()
        .args(["dump", "latest", s(&src.join("notes.txt"))]));
    expect_code(&out, 0, "dump");
    assert!(out.stdout == body, "dump differs from the source");
}

/// A small repository for the damage tests: one snapshot of `src`.
fn damage_fixture() -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    let src = env.path("src");
    let mut rng = Rng::new(5);
    for i in 0..6 {
        write_random(
            &src.join(format!("f{i}.bin")),
            50_000 + i * 40_000,
            &mut rng,
        );
    }
    write_random(&src.join("sub/large.bin"), 700_000, &mut rng);
    write_file(&src.join("sub/small.txt"), b"small file\n");
    env.init();
    env.backup(&[s(&src)]);
    (env, src)
}

#[test]
fn damaged_pack_is_detected_and_never_restored_wrong() {
    let (env, src) = damage_fixture();
    let out = env.on_repo(&env.repo, &["check", "--read-data"]);
    expect_code(&out, 0, "check of the intact repository");

    let packs: Vec<(PathBuf, u64)> = files_below(&env.repo.join("data"));
    assert!(!packs.is_empty(), "no pack files");
    let source_files = snapshot_tree(&src);
    let mut trial = 0;
    for (pack, len) in &packs {
        let name = pack.file_name().unwrap().to_str().unwrap().to_string();
        let len = *len as usize;
        let offsets: BTreeSet<usize> = [0, len / 2, len - 1].into();
        for offset in offsets {
            trial += 1;
            let copy = env.path(&format!("trial-{trial}/repo"));
            copy_dir(&env.repo, &copy);
            let damaged = copy.join(pack.strip_prefix(&env.repo).unwrap());
            flip_byte(&damaged, offset);
            let what = format!("pack {name} byte {offset}");

            let out = env.on_repo(&copy, &["check", "--read-data"]);
            expect_code(&out, 1, &format!("check --read-data, {what}"));
            let err = stderr(&out);
            assert!(
                err.lines()
                    .any(|l| l.starts_with("bunker: damaged:") && l.contains(&name)),
                "check does not name the damaged pack ({what}):\n{err}"
            );

            let target = env.path(&format!("trial-{trial}/out"));
            let out = env.on_repo(
                &copy,
                &[
                    "restore",
                    &snap_path("latest", &src),
                    "--target",
                    s(&target),
                ],
            );
            if out.status.success() {
                // Restore claims success: then everything must be exactly right.
                assert_same_tree(&src, &target);
            } else {
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "restore, {what}: {}",
                    stderr(&out)
                );
                assert!(
                    !stderr(&out).trim().is_empty(),
                    "restore failed silently ({what})"
                );
                if target.exists() {
                    for (rel, meta) in snapshot_tree(&target) {
                        if let Entry::File(bytes) = &meta.entry {
                            let orig = source_files.get(&rel).unwrap_or_else(|| {
                                panic!("restore invented {} ({what})", rel.display())
                            });
                            assert!(
                                orig.entry == Entry::File(bytes.clone()),
                                "restore left wrong bytes in {} ({what})",
                                rel.display()
                            );
                        }
                    }
                }
            }
            fs::remove_dir_all(env.path(&format!("trial-{trial}"))).unwrap();
        }
    }
    assert!(trial >= 3, "only {trial} damage trials ran");
}

/// Damages the only file in `REPO/kind/`; returns the damaged copy and the file's name.
fn damage_one(env: &TestEnv, kind: &str) -> (PathBuf, String) {
    let copy = env.path(&format!("damaged-{kind}"));
    copy_dir(&env.repo, &copy);
    let files = files_below(&copy.join(kind));
    assert_eq!(files.len(), 1, "expected one {kind} file: {files:?}");
    let (path, len) = &files[0];
    flip_byte(path, *len as usize / 2);
    (
        copy,
        path.file_name().unwrap().to_str().unwrap().to_string(),
    )
}

fn expect_clear_failure(out: &std::process::Output, name: &str, what: &str) {
    expect_code(out, 1, what);
    let err = stderr(out);
    assert!(
        err.starts_with("bunker: "),
        "{what}: unclear message:\n{err}"
    );
    assert!(
        err.contains(name),
        "{what}: message does not name {name}:\n{err}"
    );
}

#[test]
fn damaged_snapshot_file_is_named_and_skipped() {
    let (env, src) = damage_fixture();
    let (copy, name) = damage_one(&env, "snapshots");
    // The copy shares the original's id, and so its cache, which holds the
    // snapshot as this client wrote it: read the damaged file itself.
    let out = env.on_repo(&copy, &["--no-cache", "snapshots"]);
    expect_code(&out, 0, "snapshots");
    assert!(stderr(&out).contains(&name), "{}", stderr(&out));
    let target = env.path("out");
    let out = env.on_repo(
        &copy,
        &[
            "--no-cache",
            "restore",
            &snap_path("latest", &src),
            "--target",
            s(&target),
        ],
    );
    expect_clear_failure(&out, &name, "restore");
    let out = env.on_repo(&copy, &["check"]);
    expect_clear_failure(&out, &name, "check");
    assert!(
        stderr(&out).contains("bunker: damaged:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn damaged_index_file_fails_cleanly() {
    let (env, src) = damage_fixture();
    let (copy, name) = damage_one(&env, "index");
    let out = env.on_repo(&copy, &["ls", "latest"]);
    expect_clear_failure(&out, &name, "ls");
    let target = env.path("out");
    let out = env.on_repo(
        &copy,
        &[
            "restore",
            &snap_path("latest", &src),
            "--target",
            s(&target),
        ],
    );
    expect_clear_failure(&out, &name, "restore");
    if target.exists() {
        assert_eq!(
            count_regular_files(&target),
            0,
            "restore wrote files from a damaged index"
        );
    }
    let out = env.on_repo(&copy, &["check", "--read-data"]);
    expect_clear_failure(&out, &name, "check");
    assert!(
        stderr(&out).contains("bunker: damaged:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn wrong_password_exits_12() {
    let env = TestEnv::new();
    env.init();
    let wrong = env.password_file("wrong", "not the password");
    for args in [
        &["snapshots"][..],
        &["ls", "latest"],
        &["check"],
        &["key", "list"],
    ] {
        let out = run(env.cmd_with_password(&wrong).args(args));
        expect_code(&out, 12, &format!("{args:?} with a wrong password"));
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "not one line:\n{err}");
        assert!(err.contains("wrong password"), "{err}");
        assert!(out.stdout.is_empty(), "printed on stdout: {}", stdout(&out));
    }
    // The right password still works.
    let out = run(env.cmd().arg("snapshots"));
    expect_code(&out, 0, "snapshots with the right password");
}

#[test]
fn missing_repository_exits_10_without_creating_it() {
    let env = TestEnv::new();
    let missing = env.path("nonexistent/path");
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"a");
    let cases: [&[&str]; 3] = [&["snapshots"], &["ls", "latest"], &["backup", s(&src)]];
    for args in cases {
        let mut c = bunker(&env);
        c.arg("-r")
            .arg(&missing)
            .arg("--password-file")
            .arg(&env.password_file)
            .args(args);
        let out = run(&mut c);
        expect_code(&out, 10, &format!("{args:?} on a missing repository"));
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "not one line:\n{err}");
        assert!(
            err.contains(s(&missing)),
            "message does not name the path:\n{err}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
        assert!(
            !env.path("nonexistent").exists(),
            "{args:?} created the parent"
        );
    }
    // Without -r and nothing created yet, read commands also exit 10.
    let out = run(bunker(&env).arg("snapshots"));
    expect_code(&out, 10, "snapshots on the missing default repository");
    assert!(!env.home.join(".local/share/bunker/repository").exists());
    assert!(!env.home.join(".config/bunker/repository.key").exists());
}

#[test]
fn init_twice_is_refused() {
    let env = TestEnv::new();
    env.init();
    let before: Vec<_> = files_below(&env.repo);
    let config_before = fs::read(env.repo.join("config")).unwrap();
    let out = run(env.cmd().arg("init"));
    expect_code(&out, 1, "second init");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line:\n{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        files_below(&env.repo),
        before,
        "second init changed the repository"
    );
    assert_eq!(fs::read(env.repo.join("config")).unwrap(), config_before);
    // Still opens with the original password.
    expect_code(
        &run(env.cmd().arg("snapshots")),
        0,
        "snapshots after refused init",
    );
}

#[test]
fn unreadable_source_exits_3_and_marks_snapshot_incomplete() {
    let env = TestEnv::new();
    let src = env.path("src");
    write_file(&src.join("ok.txt"), b"readable\n");
    let missing = env.path("missing-source");
    let locked = src.join("locked.txt");
    let check_locked = !is_root();
    if check_locked {
        write_file(&locked, b"secret\n");
        chmod(&locked, 0o000);
    }
    env.init();
    let out = run(env.cmd().args(["backup", "--json", s(&src), s(&missing)]));
    expect_code(&out, 3, "backup with a missing source");
    let err = stderr(&out);
    assert!(
        err.contains(s(&missing)),
        "stderr does not name the missing source:\n{err}"
    );
    let summary = backup_summary(&out);
    let id = summary["snapshot_id"]
        .as_str()
        .expect("snapshot saved")
        .to_string();
    let skipped: Vec<String> = summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        skipped.iter().any(|x| x.contains(s(&missing))),
        "{skipped:?}"
    );
    if check_locked {
        assert!(
            err.contains(s(&locked)),
            "stderr does not name the unreadable file:\n{err}"
        );
        assert!(
            skipped.iter().any(|x| x.contains(s(&locked))),
            "{skipped:?}"
        );
    }

    let list = env.snapshots(&[]);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["incomplete"], true, "{}", list[0]);

    // What could be read was saved.
    let out = run(env.cmd().args(["dump", &id, s(&src.join("ok.txt"))]));
    expect_code(&out, 0, "dump of the readable file");
    assert_eq!(out.stdout, b"readable\n");
    if check_locked {
        chmod(&locked, 0o600);
    }
}

#[test]
fn stdin_backup_dumps_same_bytes() {
    let env = TestEnv::new();
    env.init();
    let mut data = b"-- dump\nCREATE TABLE t (id int);\n".to_vec();
    data.extend(Rng::new(7).bytes(2 * MIB + 17));
    data.extend_from_slice(b"\n-- end\n");
    let out = run(env
        .cmd()
        .args(["backup", "--json", "--stdin", "--stdin-filename", "db.sql"])
        .write_stdin(data.clone()));
    expect_code(&out, 0, "backup --stdin");
    let summary = backup_summary(&out);
    let id = summary["snapshot_id"].as_str().unwrap().to_string();

    let out = run(env.cmd().args(["dump", "latest", "/db.sql"]));
    expect_code(&out, 0, "dump /db.sql");
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "dumped bytes differ from stdin");

    let out = run(env.cmd().args(["ls", &id, "--json"]));
    expect_code(&out, 0, "ls");
    let v = parse_json(&out.stdout);
    let node = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"] == "/db.sql")
        .unwrap_or_else(|| panic!("no /db.sql in {v}"))
        .clone();
    assert_eq!(node["type"], "file");
    assert_eq!(node["size"].as_u64(), Some(data.len() as u64));
}

#[test]
fn excludes_and_exclude_file_leave_files_out() {
    let env = TestEnv::new();
    let src = env.path("src");
    for f in [
        "keep.txt",
        "a.tmp",
        "sub/b.tmp",
        "sub/keep2.txt",
        "cache/big.dat",
        "cache/inner/x.txt",
        "logs/app.log",
        "notes.log",
        "tmp-not-excluded.txt",
    ] {
        write_file(&src.join(f), f.as_bytes());
    }
    let exclude_file = env.path("excludes.txt");
    fs::write(&exclude_file, "# caches and logs\n\ncache\n*.log\n").unwrap();
    env.init();
    env.backup(&[
        "--exclude",
        "*.tmp",
        "--exclude-file",
        s(&exclude_file),
        s(&src),
    ]);
    let listed = ls_relative(&env, "latest", &src);
    let expected: BTreeSet<String> = [
        "keep.txt",
        "sub",
        "sub/keep2.txt",
        "logs",
        "tmp-not-excluded.txt",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    assert_eq!(listed, expected);
    let snaps = env.snapshots(&[]);
    let excludes = snaps[0]["excludes"].as_array().unwrap();
    for p in ["*.tmp", "cache", "*.log"] {
        assert!(
            excludes.iter().any(|e| e == p),
            "{p} not recorded: {excludes:?}"
        );
    }
}

#[test]
fn snapshot_selection_by_tag_host_path_and_id_prefix() {
    let env = TestEnv::new();
    let (one, two) = (env.path("one"), env.path("two"));
    write_file(&one.join("first.txt"), b"1");
    write_file(&two.join("second.txt"), b"2");
    env.init();
    let id1 = env.backup(&["--tag", "daily", "--host", "alpha", s(&one)])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id2 = env.backup(&["--tag", "weekly", "--host", "beta", s(&two)])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(id1, id2);

    let ids = |args: &[&str]| -> Vec<String> {
        env.snapshots(args)
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&[]).len(), 2);
    let daily = env.snapshots(&["--tag", "daily"]);
    assert_eq!(daily.len(), 1);
    assert_eq!(daily[0]["id"], id1);
    assert_eq!(daily[0]["hostname"], "alpha");
    assert_eq!(daily[0]["tags"], serde_json::json!(["daily"]));
    assert_eq!(
        daily[0]["short_id"].as_str().map(|x| id1.starts_with(x)),
        Some(true)
    );
    assert_eq!(ids(&["--host", "beta"]), vec![id2.clone()]);
    assert_eq!(ids(&["--path", s(&one)]), vec![id1.clone()]);
    assert!(ids(&["--tag", "nope"]).is_empty());
    assert!(ids(&["--tag", "daily", "--host", "beta"]).is_empty());

    // A unique prefix selects the snapshot.
    let n = (6..64).find(|&n| !id2.starts_with(&id1[..n])).unwrap();
    let out = run(env.cmd().args(["ls", &id1[..n], "--json"]));
    expect_code(&out, 0, "ls by prefix");
    assert_eq!(parse_json(&out.stdout)["snapshot"], id1);
    assert!(ls_relative(&env, &id1[..n], &one).contains("first.txt"));

    // latest, narrowed by filters.
    let out = run(env
        .cmd()
        .args(["ls", "latest", "--host", "alpha", "--json"]));
    expect_code(&out, 0, "ls latest --host alpha");
    assert_eq!(parse_json(&out.stdout)["snapshot"], id1);
    let out = run(env.cmd().args(["ls", "latest", "--json"]));
    assert_eq!(parse_json(&out.stdout)["snapshot"], id2);

    // A bogus id fails clearly.
    let c = "0123456789abcdef"
        .chars()
        .find(|c| !id1.starts_with(*c) && !id2.starts_with(*c))
        .unwrap();
    let bogus: String = std::iter::repeat_n(c, 12).collect();
    let out = run(env.cmd().args(["ls", &bogus]));
    expect_code(&out, 1, "ls of a bogus id");
    let err = stderr(&out);
    assert!(err.starts_with("bunker: "), "{err}");
    assert!(err.contains(&bogus), "message does not name the id:\n{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn key_add_list_remove_and_passwd() {
    let env = TestEnv::new();
    let src = env.path("src");
    write_file(&src.join("k.txt"), b"key test\n");
    env.init();
    env.backup(&[s(&src)]);
    let pw1 = env.password_file.clone();
    let pw2 = env.password_file("pw2", "second password");
    let pw3 = env.password_file("pw3", "third password");

    let list = |pw: &Path| -> Vec<Value> {
        let out = run(env.cmd_with_password(pw).args(["key", "list", "--json"]));
        expect_code(&out, 0, "key list");
        parse_json(&out.stdout).as_array().unwrap().clone()
    };
    let current = |keys: &[Value]| -> String {
        let cur: Vec<_> = keys.iter().filter(|k| k["current"] == true).collect();
        assert_eq!(cur.len(), 1, "{keys:?}");
        cur[0]["id"].as_str().unwrap().to_string()
    };
    let keys = list(&pw1);
    assert_eq!(keys.len(), 1);
    let key1 = current(&keys);

    let out = run(env
        .cmd()
        .args(["key", "add", "--new-password-file", s(&pw2)]));
    expect_code(&out, 0, "key add");
    expect_code(
        &run(env.cmd_with_password(&pw2).arg("snapshots")),
        0,
        "open with pw2",
    );
    let keys = list(&pw2);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let key2 = current(&keys);
    assert_ne!(key1, key2);
    assert!(keys.iter().any(|k| k["id"] == key1));

    // The key in use cannot be removed.
    let out = run(env.cmd_with_password(&pw2).args(["key", "remove", &key2]));
    expect_code(&out, 1, "removing the key in use");
    assert_eq!(list(&pw2).len(), 2);

    let out = run(env
        .cmd_with_password(&pw2)
        .args(["key", "remove", &key1[..8]]));
    expect_code(&out, 0, "key remove");
    let out = run(env.cmd_with_password(&pw1).arg("snapshots"));
    expect_code(&out, 12, "open with the removed key's password");
    assert!(stderr(&out).contains("wrong password"));
    assert_eq!(list(&pw2).len(), 1);

    let out =
        run(env
            .cmd_with_password(&pw2)
            .args(["key", "passwd", "--new-password-file", s(&pw3)]));
    expect_code(&out, 0, "key passwd");
    expect_code(
        &run(env.cmd_with_password(&pw2).arg("snapshots")),
        12,
        "old password after passwd",
    );
    let keys = list(&pw3);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_ne!(current(&keys), key2);

    // The data is still readable with the new password.
    let out = run(env
        .cmd_with_password(&pw3)
        .args(["dump", "latest", s(&src.join("k.txt"))]));
    expect_code(&out, 0, "dump with pw3");
    assert_eq!(out.stdout, b"key test\n");
}

#[test]
fn dump_directory_is_a_tar_stream() {
    let env = TestEnv::new();
    let src = env.path("src");
    let mut rng = Rng::new(11);
    write_file(&src.join("a.txt"), b"alpha\n");
    write_random(&src.join("sub/b.bin"), 300_000, &mut rng);
    write_file(&src.join("sub/deeper/c.txt"), b"charlie\n");
    fs::create_dir_all(src.join("emptydir")).unwrap();
    symlink("a.txt", src.join("link")).unwrap();
    env.init();
    env.backup(&[s(&src)]);

    let out = run(env.cmd().args(["dump", "latest", s(&src)]));
    expect_code(&out, 0, "dump of a directory");
    let tar = out.stdout;

    let mut child = std::process::Command::new("tar")
        .args(["-tf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tar");
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&tar).unwrap();
    }
    let listing = child.wait_with_output().unwrap();
    assert!(
        listing.status.success(),
        "tar -t failed: {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let names: BTreeSet<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let expected: BTreeSet<String> = [
        "a.txt",
        "sub/",
        "sub/b.bin",
        "sub/deeper/",
        "sub/deeper/c.txt",
        "emptydir/",
        "link",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    assert_eq!(names, expected);

    // The archive's content is the source's content.
    let x = env.path("extracted");
    fs::create_dir(&x).unwrap();
    let mut child = std::process::Command::new("tar")
        .args(["-xf", "-", "-C", s(&x)])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tar");
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "tar -x failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let a = snapshot_tree(&src);
    let b = snapshot_tree(&x);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, m) in &a {
        assert!(
            m.entry == b[k].entry,
            "{} differs after tar extraction",
            k.display()
        );
    }
}

#[test]
fn dry_run_writes_nothing() {
    let env = TestEnv::new();
    let src = env.path("src");
    let mut rng = Rng::new(13);
    write_random(&src.join("one.bin"), 400_000, &mut rng);
    env.init();
    env.backup(&[s(&src)]);
    let before = files_below(&env.repo);

    write_random(&src.join("two.bin"), MIB, &mut rng);
    write_random(&src.join("more/three.bin"), 200_000, &mut rng);
    let summary = env.backup(&["--dry-run", s(&src)]);
    assert_eq!(summary["dry_run"], true, "{summary}");
    assert!(
        summary["snapshot_id"].is_null(),
        "dry run saved a snapshot: {summary}"
    );
    assert!(summary["files_new"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(
        files_below(&env.repo),
        before,
        "dry run changed the repository"
    );
    assert_eq!(env.snapshots(&[]).len(), 1);
}

#[test]
fn stats_reports_deduplication_ratio() {
    let env = TestEnv::new();
    let src = env.path("src");
    let mut rng = Rng::new(17);
    let data = rng.bytes(5 * MIB);
    write_file(&src.join("copy1.bin"), &data);
    write_file(&src.join("nested/copy2.bin"), &data);
    write_file(&src.join("small.txt"), b"small\n");
    env.init();
    env.backup(&[s(&src)]);

    let out = run(env.cmd().args(["stats", "--json"]));
    expect_code(&out, 0, "stats --json");
    let v = parse_json(&out.stdout);
    for f in [
        "raw_size",
        "deduplicated_size",
        "stored_blob_size",
        "repository_size",
        "deduplication_ratio",
        "compression_ratio",
    ] {
        assert!(v[f].is_number(), "{f} missing or not a number: {v}");
    }
    let raw = v["raw_size"].as_u64().unwrap();
    let dedup = v["deduplicated_size"].as_u64().unwrap();
    let ratio = v["deduplication_ratio"].as_f64().unwrap();
    assert!(raw >= 10 * MIB as u64, "{v}");
    assert!(dedup < 5 * MIB as u64 + 64 * 1024, "{v}");
    assert!(ratio > 1.9, "deduplication ratio {ratio}: {v}");
    assert!((ratio - raw as f64 / dedup as f64).abs() < 0.01, "{v}");
    assert!(v["repository_size"].as_u64().unwrap() >= v["stored_blob_size"].as_u64().unwrap());
    assert!(
        v["repository_size"].as_u64().unwrap() <= dir_size(&env.repo) + 4096,
        "{v}"
    );
}
