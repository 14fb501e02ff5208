//! Regression tests for the hardening issue: no false success, no
//! self-inflicted loss, one bad object never blocks the rest. Each test is
//! named after what it guards.

mod common;

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `cmd` with its stdout a pipe whose reader is already gone, as in
/// `bunker … | head -1` once `head` has exited: every write fails.
fn with_closed_stdout(mut cmd: std::process::Command) -> Output {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two valid descriptors, each owned exactly once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run bunker");
    assert_no_panic(&out);
    out
}

/// Names of the files in `dir` (none if it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// This host's name as staged file names carry it.
fn host_tag() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    host.trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .take(32)
        .collect()
}

/// Snapshot ids (full hex) of the explicit repository.
fn ids(env: &TestEnv) -> Vec<String> {
    env.snapshots(&[])
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn check_json(env: &TestEnv, repo: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let out = env.on_repo(repo, &all);
    (out.status.code().unwrap(), parse_json(&out.stdout))
}

#[test]
fn closed_stdout_never_changes_the_outcome() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(101);
    env.write_source_files(0..6, 700 << 10, &mut rng);
    let src = env.path("src");

    // backup --json | head -1: the snapshot is saved, nothing is left behind.
    let mut c = env.spawnable();
    c.args(["backup", "--json", s(&src)]);
    let out = with_closed_stdout(c);
    expect_code(&out, 0, "backup with stdout closed");
    assert_eq!(ids(&env).len(), 1, "the backup saved no snapshot");
    assert!(
        names_in(&env.repo.join("locks")).is_empty(),
        "a lock was left"
    );
    assert!(
        names_in(&env.repo.join("tmp")).is_empty(),
        "tmp/ holds leftovers"
    );

    // A partial backup (a source is missing) stays partial: 3, not 0.
    let mut c = env.spawnable();
    c.args(["backup", "--json", s(&src), s(&env.path("gone"))]);
    let out = with_closed_stdout(c);
    expect_code(&out, 3, "partial backup with stdout closed");

    // restore --json: every file restored, no partial file left.
    let target = env.path("out");
    let mut c = env.spawnable();
    c.args(["restore", "latest", "--json", "--target", s(&target)]);
    let out = with_closed_stdout(c);
    expect_code(&out, 0, "restore with stdout closed");
    let restored = target.join(s(&src).trim_start_matches('/'));
    assert_same_contents(&src, &restored);
    let leftovers: Vec<_> = names_in(&restored)
        .into_iter()
        .filter(|n| n.starts_with(".bunker-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // check --read-data on a damaged repository still exits 1.
    let pack = files_below(&env.repo.join("data"))[0].0.clone();
    flip_byte(&pack, 100);
    for args in [
        &["check", "--read-data", "--json"][..],
        &["check", "--read-data"][..],
    ] {
        let mut c = env.spawnable();
        c.args(args);
        let out = with_closed_stdout(c);
        expect_code(&out, 1, &format!("{args:?} with stdout closed"));
    }
}

#[test]
fn a_backup_after_a_pack_was_lost_stores_the_data_again() {
    let env = TestEnv::new();
    env.init_small_packs();
    let mut rng = Rng::new(102);
    env.write_source_files(0..4, 900 << 10, &mut rng);
    let src = env.path("src");
    let first = env.backup(&[s(&src)])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Lose every pack, and change one file: its old content is gone for good.
    for (p, _) in files_below(&env.repo.join("data")) {
        fs::remove_file(p).unwrap();
    }
    env.write_source_files(0..1, 900 << 10, &mut rng);
    for mode in ["incremental", "full"] {
        let out = run(env
            .cmd()
            .args(["backup", "--json", "--mode", mode, s(&src)]));
        expect_code(&out, 0, &format!("{mode} backup after losing packs"));
        assert!(
            stderr(&out).contains("missing from storage"),
            "the backup did not say it stores lost data again:\n{}",
            stderr(&out)
        );
        let target = env.path(&format!("out-{mode}"));
        env.restore_verified("latest", &target);
        assert_same_contents(&src, &target.join(s(&src).trim_start_matches('/')));
    }
    // check: the first snapshot is damaged, the newest intact one is not it.
    let (code, report) = check_json(&env, &env.repo, &[]);
    assert_eq!(code, 1, "{report}");
    let newest = report["sources"][0]["newest_intact"].as_str().unwrap();
    assert_ne!(newest, first);
    assert!(ids(&env).contains(&newest.to_string()));
}

#[test]
fn check_beside_a_running_backup_reports_no_damage() {
    let env = TestEnv::new();
    env.init();
    let mut rng = Rng::new(103);
    env.write_source_files(0..3, 300 << 10, &mut rng);
    env.backup(&[s(&env.path("src"))]);
    // check stops right after listing the snapshots; a whole backup runs
    // then, whose index check reads but whose snapshot it never listed.
    let mut c = env.spawnable();
    c.env("BUNKER_TEST_PAUSE", "check-listed-snapshots:3000")
        .args(["check", "--read-data"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let seen = wait_for_pause(&mut child, "check-listed-snapshots");
    env.write_source_files(3..6, 300 << 10, &mut rng);
    env.backup(&[s(&env.path("src"))]);
    let out = child.wait_with_output().unwrap();
    let err = seen + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check called a running backup damage:\n{err}"
    );
    assert!(!err.contains("damaged"), "{err}");
}

#[test]
fn every_check_verdict_is_true_and_names_a_remedy() {
    let env = TestEnv::new();
    env.init();
    let mut rng = Rng::new(104);
    let src = env.path("src");
    // Three backups, three index files.
    for i in 0..3 {
        env.write_source_files(i..i + 1, 200 << 10, &mut rng);
        env.backup(&[s(&src)]);
    }
    let index_files = files_below(&env.repo.join("index"));
    assert_eq!(index_files.len(), 3);

    // A truncated index file: what check calls the newest intact snapshot restores.
    let copy = env.path("truncated-index");
    copy_dir(&env.repo, &copy);
    let newest_index = index_files
        .iter()
        .max_by_key(|(p, _)| fs::metadata(p).unwrap().modified().unwrap())
        .unwrap()
        .0
        .clone();
    let victim = copy.join(newest_index.strip_prefix(&env.repo).unwrap());
    let len = fs::metadata(&victim).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (code, report) = check_json(&env, &copy, &[]);
    assert_eq!(code, 1, "{report}");
    for d in report["damage"].as_array().unwrap() {
        assert!(!d["remedy"].as_str().unwrap().is_empty(), "{d}");
    }
    let newest = report["sources"][0]["newest_intact"]
        .as_str()
        .expect("an older snapshot is intact")
        .to_string();
    let out = env.on_repo(
        &copy,
        &[
            "restore",
            &newest,
            "--verify",
            "--target",
            s(&env.path("out-intact")),
        ],
    );
    expect_code(&out, 0, "restore of the snapshot check called intact");
    assert!(stderr(&out).contains("repair index"), "{}", stderr(&out));

    // A lost index file: its packs are not called harmless; repair index is named.
    let copy = env.path("lost-index");
    copy_dir(&env.repo, &copy);
    fs::remove_file(copy.join(newest_index.strip_prefix(&env.repo).unwrap())).unwrap();
    let out = env.on_repo(&copy, &["check"]);
    expect_code(&out, 1, "check with a lost index file");
    let err = stderr(&out);
    assert!(err.contains("repair index"), "{err}");
    assert!(
        !err.contains("harmless"),
        "needed packs called harmless:\n{err}"
    );
    expect_code(&env.on_repo(&copy, &["repair", "index"]), 0, "repair index");
    expect_code(
        &env.on_repo(&copy, &["check", "--read-data"]),
        0,
        "check after repair",
    );
}

#[test]
fn restore_delete_never_deletes_the_repository() {
    let env = TestEnv::new();
    let dir = env.path("dir");
    let repo = dir.join("repo");
    write_file(&dir.join("a.txt"), b"a\n");
    write_file(&dir.join("sub/b.txt"), b"b\n");
    let on = |args: &[&str]| env.on_repo(&repo, args);
    expect_code(&on(&["init"]), 0, "init");
    expect_code(&on(&["backup", s(&dir)]), 0, "backup");
    let spec = format!("latest:{}", s(&dir));
    let out = on(&["restore", &spec, "--target", s(&dir), "--delete"]);
    expect_code(
        &out,
        0,
        "restore --delete over the folder holding the repository",
    );
    assert!(stderr(&out).contains("left alone"), "{}", stderr(&out));
    expect_code(&on(&["check", "--read-data"]), 0, "the repository survived");
    // Spelled another way, through a symlink: the same.
    std::os::unix::fs::symlink(&dir, env.path("alias")).unwrap();
    let alias = env.path("alias/./sub/..");
    let out = on(&["restore", &spec, "--target", s(&alias), "--delete"]);
    expect_code(&out, 0, "restore --delete through a symlink");
    expect_code(&on(&["snapshots"]), 0, "the repository survived");
    // Into the repository itself: refused, nothing written.
    let out = on(&["restore", "latest", "--target", s(&repo.join("data"))]);
    expect_code(&out, 1, "restore into the repository");
    assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
    expect_code(&on(&["check", "--read-data"]), 0, "the repository is whole");

    // The default key survives a restore --delete of the home directory.
    let home = &env.home;
    write_file(&home.join("notes.txt"), b"n\n");
    let out = run(bunker(&env).args(["backup", s(home)]));
    expect_code(&out, 0, "default backup of home");
    let key = home.join(".config/bunker/repository.key");
    assert!(key.exists());
    fs::remove_file(home.join("notes.txt")).unwrap();
    let out = run(bunker(&env).args([
        "restore",
        &format!("latest:{}", s(home)),
        "--target",
        s(home),
        "--delete",
    ]));
    expect_code(&out, 0, "restore --delete of home");
    assert!(key.exists(), "restore deleted the default repository's key");
    assert!(home.join("notes.txt").exists());
}

#[test]
fn the_repository_is_never_backed_up_into_itself() {
    let env = TestEnv::new();
    let dir = env.path("a");
    write_file(&dir.join("file.txt"), b"x\n");
    std::os::unix::fs::symlink(&dir, env.path("link")).unwrap();
    for (name, spelling) in [
        ("repo", env.path("a/../a/repo")),
        ("repo2", env.path("link/repo2")),
    ] {
        let spelling = &spelling;
        let out = env.on_repo(spelling, &["init"]);
        expect_code(&out, 0, "init");
        let out = env.on_repo(spelling, &["backup", s(&dir)]);
        expect_code(&out, 0, "backup of the folder holding the repository");
        let out = env.on_repo(spelling, &["ls", "latest", s(&dir)]);
        expect_code(&out, 0, "ls");
        let listed = stdout(&out);
        assert!(listed.contains("file.txt"), "{listed}");
        assert!(
            !listed.contains(&format!("{name}/config")),
            "{name}: the repository was backed up into itself:\n{listed}"
        );
    }
}

#[test]
fn forget_with_a_rule_that_keeps_nothing_is_refused() {
    let env = TestEnv::new();
    env.init();
    write_file(&env.path("src/f"), b"x");
    for day in 1..=3 {
        env.backup(&[
            "--time",
            &format!("2026-01-0{day}T12:00:00Z"),
            s(&env.path("src")),
        ]);
    }
    for args in [
        &["--keep-last", "0", "--prune"][..],
        &["--keep-daily", "0"][..],
        &["--keep-within", "0d"][..],
        &["--keep-hourly", "0", "--keep-last", "2"][..],
    ] {
        let out = run(env.cmd().arg("forget").args(args));
        expect_code(&out, 2, &format!("forget {args:?}"));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    // A policy that empties a group needs the explicit flag.
    let out = run(env.cmd().args(["forget", "--keep-tag", "precious"]));
    expect_code(&out, 2, "forget emptying a group");
    assert!(
        stderr(&out).contains("--allow-empty-groups"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ids(&env).len(), 3, "a refused forget removed snapshots");
    let out = run(env
        .cmd()
        .args(["forget", "--keep-tag", "precious", "--dry-run"]));
    expect_code(&out, 0, "dry run says what would happen");
    let out = run(env
        .cmd()
        .args(["forget", "--keep-tag", "precious", "--allow-empty-groups"]));
    expect_code(&out, 0, "forget --allow-empty-groups");
    assert!(ids(&env).is_empty());
}

#[test]
fn a_backup_of_nothing_saves_nothing() {
    let env = TestEnv::new();
    // The default repository is not even created.
    let out = run(bunker(&env).args(["backup", "/nonexistent-bunker-source"]));
    expect_code(&out, 1, "backup of a missing path");
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!env.home.join(".local/share/bunker").exists());
    env.init();
    let out = run(env.cmd().args(["backup", "/nonexistent-bunker-source"]));
    expect_code(&out, 1, "backup of a missing path");
    assert!(ids(&env).is_empty(), "an empty snapshot was saved");
    // A path given twice is recorded once.
    let src = env.path("src");
    write_file(&src.join("f"), b"x");
    let out = run(env.cmd().args([
        "backup",
        "--json",
        s(&src),
        s(&src),
        &format!("{}/", s(&src)),
    ]));
    expect_code(&out, 0, "backup of one path given thrice");
    assert_eq!(env.snapshots(&[])[0]["paths"], serde_json::json!([s(&src)]));
    // An empty password is refused from the environment as from a file.
    let empty = env.password_file("empty", "");
    let other = env.path("other");
    let out = run(bunker(&env)
        .args(["-r", s(&other), "init"])
        .env("BUNKER_PASSWORD", ""));
    expect_code(&out, 1, "init with an empty BUNKER_PASSWORD");
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    let out = run(bunker(&env).args(["-r", s(&other), "--password-file", s(&empty), "init"]));
    expect_code(&out, 1, "init with an empty password file");
    assert!(!other.join("config").exists());
}

/// A repository with two sources, one snapshot each, and a copy of it.
fn two_sources(env: &TestEnv) -> (PathBuf, PathBuf) {
    env.init();
    let (a, b) = (env.path("a"), env.path("b"));
    write_file(&a.join("one.txt"), b"one\n");
    write_file(&b.join("two.txt"), b"two\n");
    env.backup(&["--time", "2026-01-01T00:00:00Z", s(&a)]);
    env.backup(&["--time", "2026-01-02T00:00:00Z", s(&b)]);
    (a, b)
}

#[test]
fn one_damaged_snapshot_never_blocks_the_rest() {
    let env = TestEnv::new();
    let (a, b) = two_sources(&env);
    let all = ids(&env);
    let (damaged, intact) = (&all[0], &all[1]);
    flip_byte(&env.repo.join("snapshots").join(damaged), 20);
    // As on a machine that never read it: a cached snapshot stays readable
    // (its content was verified when cached), and only `check` reads the file.
    fs::remove_dir_all(env.home.join(".cache/bunker")).unwrap();
    let short = &damaged[..8];

    let out = run(env.cmd().args(["snapshots", "--json"]));
    expect_code(&out, 0, "snapshots");
    assert_eq!(parse_json(&out.stdout).as_array().unwrap().len(), 1);
    let naming = stderr(&out).lines().filter(|l| l.contains(short)).count();
    assert_eq!(naming, 1, "one warning naming it:\n{}", stderr(&out));
    for args in [
        vec!["ls", "latest"],
        vec!["dump", "latest", "/"],
        vec!["stats"],
        vec!["forget", "--keep-last", "5", "--dry-run"],
    ] {
        let out = run(env.cmd().args(&args));
        expect_code(&out, 0, &format!("{args:?} beside a damaged snapshot"));
        assert!(stderr(&out).contains(short), "{args:?}: {}", stderr(&out));
    }
    let target = env.path("out");
    env.restore_verified(intact, &target);
    assert_same_contents(&b, &target.join(s(&b).trim_start_matches('/')));
    write_file(&a.join("more.txt"), b"more\n");
    env.backup(&[s(&a)]);
    // prune refuses while the damaged file exists, naming how to remove it…
    let out = run(env.cmd().arg("prune"));
    expect_code(&out, 1, "prune beside a damaged snapshot");
    assert!(
        stderr(&out).contains(&format!("bunker forget {short}")),
        "{}",
        stderr(&out)
    );
    // …and that advice works.
    expect_code(
        &run(env.cmd().args(["forget", short])),
        0,
        "forget the damaged snapshot",
    );
    expect_code(&run(env.cmd().arg("prune")), 0, "prune");
    expect_code(&run(env.cmd().args(["check", "--read-data"])), 0, "check");

    // repair snapshots --forget removes a damaged file too.
    let last = ids(&env).pop().unwrap();
    flip_byte(&env.repo.join("snapshots").join(&last), 20);
    fs::remove_dir_all(env.home.join(".cache/bunker")).unwrap();
    let out = run(env
        .cmd()
        .args(["repair", "snapshots", "--forget", "--json"]));
    expect_code(&out, 0, "repair snapshots --forget");
    assert_eq!(parse_json(&out.stdout)["unreadable"][0], last.as_str());
    assert!(!env.repo.join("snapshots").join(&last).exists());
}

#[test]
fn damaged_index_key_and_stray_files_are_skipped_with_a_warning() {
    let env = TestEnv::new();
    let (a, _) = two_sources(&env);
    // Stray files anywhere in the repository.
    for stray in [
        "snapshots/.DS_Store",
        "index/notes.txt",
        "keys/README",
        "locks/x",
        "data/zz/junk",
    ] {
        write_file(&env.repo.join(stray), b"stray\n");
    }
    let out = run(env.cmd().args(["snapshots"]));
    expect_code(&out, 0, "snapshots with stray files");
    assert!(stderr(&out).contains(".DS_Store"), "{}", stderr(&out));
    for args in [
        vec!["check", "--read-data"],
        vec!["prune"],
        vec!["ls", "latest"],
    ] {
        let out = run(env.cmd().args(&args));
        expect_code(&out, 0, &format!("{args:?} with stray files"));
    }

    // A truncated index file among several: the rest is used, repair index is named.
    let index_files = files_below(&env.repo.join("index"));
    let (victim, len) = index_files
        .iter()
        .find(|(p, _)| !p.ends_with("notes.txt"))
        .unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = run(env.cmd().args(["snapshots"]));
    expect_code(&out, 0, "snapshots with a truncated index file");
    let out = run(env.cmd().args(["backup", s(&a)]));
    expect_code(&out, 0, "backup with a truncated index file");
    assert!(stderr(&out).contains("repair index"), "{}", stderr(&out));
    expect_code(&run(env.cmd().args(["repair", "index"])), 0, "repair index");
    assert!(
        env.repo.join("index/notes.txt").exists(),
        "repair index removed a stray file"
    );
    expect_code(&run(env.cmd().args(["check", "--read-data"])), 0, "check");

    // A damaged key file among several.
    let second = env.password_file("second", "second password");
    let out = run(env
        .cmd()
        .args(["key", "add", "--json", "--new-password-file", s(&second)]));
    expect_code(&out, 0, "key add");
    let name = parse_json(&out.stdout)["id"].as_str().unwrap().to_string();
    let other_key = env.repo.join("keys").join(&name);
    flip_byte(&other_key, 30);
    let out = run(env.cmd().args(["key", "list"]));
    expect_code(&out, 0, "key list with a damaged key");
    assert!(stdout(&out).contains("damaged"), "{}", stdout(&out));
    let wrong = env.password_file("wrong", "not the password");
    let out = run(env.cmd_with_password(&wrong).arg("snapshots"));
    expect_code(&out, 12, "a wrong password beside a damaged key");
    expect_code(
        &run(env.cmd().args(["key", "remove", &name[..8]])),
        0,
        "key remove",
    );
    assert!(!other_key.exists());
    expect_code(&run(env.cmd().arg("snapshots")), 0, "snapshots");
}

#[test]
fn a_missing_config_or_keys_is_named_as_such() {
    let env = TestEnv::new();
    two_sources(&env);
    let copy = env.path("no-config");
    copy_dir(&env.repo, &copy);
    fs::remove_file(copy.join("config")).unwrap();
    let out = env.on_repo(&copy, &["snapshots"]);
    expect_code(&out, 1, "a repository without config");
    assert!(
        stderr(&out).contains("config file is missing"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("create one"), "{}", stderr(&out));
    let out = env.on_repo(&copy, &["init"]);
    expect_code(&out, 1, "init over a repository without config");
    assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
    assert!(!copy.join("config").exists());

    let copy = env.path("no-keys");
    copy_dir(&env.repo, &copy);
    fs::remove_dir_all(copy.join("keys")).unwrap();
    let out = env.on_repo(&copy, &["snapshots"]);
    expect_code(&out, 1, "a repository without keys");
    assert!(stderr(&out).contains("no key files"), "{}", stderr(&out));
    let out = env.on_repo(&copy, &["init"]);
    expect_code(&out, 1, "init over a repository without keys");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn leftovers_of_killed_processes_are_cleaned_and_small_packs_merged() {
    let env = TestEnv::new();
    // Packs larger than the data, so the backup is killed with a pack open.
    env.init();
    let mut rng = Rng::new(112);
    env.write_source_files(0..2, 3 << 20, &mut rng);
    // A backup killed while writing a pack leaves nothing in tmp/: packs
    // grow unnamed, and vanish with their writer.
    let mut c = env.spawnable();
    c.env("BUNKER_TEST_PAUSE", "backup-file-read:100000")
        .args(["backup", s(&env.path("src"))])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    wait_for_pause(&mut child, "backup-file-read");
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        names_in(&env.repo.join("tmp")).is_empty(),
        "a killed backup left files in tmp/"
    );
    // Named leftovers (an older bunker's, or a writer killed between linking
    // a finished file and renaming it) of a process that is gone.
    let dead = format!("{}-{}-abcdefabcdef", host_tag(), u32::MAX - 7);
    write_file(&env.repo.join("tmp").join(&dead), &vec![7u8; 40 << 10]);
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 0, "check with leftovers");
    assert!(
        stderr(&out).contains("tmp/"),
        "check does not report tmp/:\n{}",
        stderr(&out)
    );
    let report = env.prune(&[]);
    assert!(
        report["staged_files_removed"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(names_in(&env.repo.join("tmp")).is_empty());

    // Many small backups: prune merges their small packs.
    for i in 0..12 {
        write_file(
            &env.path(&format!("small/{i}")),
            format!("file {i}\n").as_bytes(),
        );
        env.backup(&[s(&env.path("small"))]);
    }
    let before = files_below(&env.repo.join("data")).len();
    let report = env.prune(&[]);
    let after = files_below(&env.repo.join("data")).len();
    assert!(
        report["small_packs_merged"].as_u64().unwrap() >= 8,
        "{report}"
    );
    assert!(after * 2 < before, "{before} packs became {after}");
    env.check_read_data();
    env.restore_verified("latest", &env.path("out"));
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write_file(&src.join("f"), b"x");
    env.backup(&[s(&src)]);
    let cases: Vec<Vec<&str>> = vec![
        vec!["backup", "--exclude", "a[", s(&src)],
        vec!["restore", "latest", "--target", "out", "--include", "b{"],
        vec!["forget"],
        vec!["backup", "--time", "yesterday-ish", s(&src)],
        vec!["prune", "--repack-threshold", "150%"],
        vec!["init", "--compression", "99"],
        vec!["init", "--pack-size", "0"],
        vec!["backup", "--stdin", "--stdin-filename", "../x"],
        vec!["no-such-command"],
        vec!["-o", "s3.regoin=eu-west-1", "snapshots"],
        vec!["-o", "connections=0", "snapshots"],
        vec!["--limit-upload", "0", "snapshots"],
    ];
    for args in cases {
        let out = run(env.cmd().args(&args));
        expect_code(&out, 2, &format!("{args:?}"));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("malformed"), "{args:?}: {err}");
    }
    // init without a terminal names the flag that works.
    let out = run(bunker(&env).args(["-r", s(&env.path("new")), "init"]));
    expect_code(&out, 2, "init without a password");
    assert!(stderr(&out).contains("--password-file"), "{}", stderr(&out));
}

#[test]
fn one_message_per_failure() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    let mut rng = Rng::new(114);
    env.write_source_files(0..3, 2 << 20, &mut rng);
    env.backup(&[s(&src)]);
    // A restore into a full file system names the path once.
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    if let Some(_mount) = mount_tmpfs(&small, "1m") {
        let out = run(env
            .cmd()
            .args(["restore", "latest", "--target", s(&small.join("r"))]));
        expect_code(&out, 1, "restore into a full file system");
        for line in stderr(&out).lines() {
            let path_mentions = line.matches("/src/f").count();
            assert!(path_mentions <= 1, "doubled path: {line}");
        }
    }
    // A missing default key file says so.
    let home_src = env.home.join("docs");
    write_file(&home_src.join("a"), b"a");
    expect_code(
        &run(bunker(&env).args(["backup", s(&home_src)])),
        0,
        "default backup",
    );
    fs::remove_file(env.home.join(".config/bunker/repository.key")).unwrap();
    let out = run(bunker(&env).arg("snapshots"));
    expect_code(&out, 1, "the default repository without its key file");
    assert!(stderr(&out).contains("key file"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // A storage failure is one line without the storage library's internals.
    let file = env.path("plain-file");
    write_file(&file, b"not a directory");
    let out = env.on_repo(&file.join("repo"), &["init"]);
    expect_code(&out, 1, "init under a file");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    for internal in [
        "context:",
        "Builder",
        "service:",
        "(permanent)",
        "(temporary)",
    ] {
        assert!(!err.contains(internal), "{err}");
    }
}

#[test]
fn restore_of_one_file_and_exact_names_in_dump() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write_file(&src.join("dir/file.txt"), b"just this\n");
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.bin");
    write_file(&src.join(odd), b"latin-1 name\n");
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(b"tar\xe9get"), src.join("link"))
        .unwrap();
    env.backup(&[s(&src)]);

    let target = env.path("new-folder");
    let spec = format!("latest:{}/dir/file.txt", s(&src));
    env.restore_verified(&spec, &target);
    assert_eq!(fs::read(target.join("file.txt")).unwrap(), b"just this\n");

    let out = run(env.cmd().args(["dump", "latest", s(&src)]));
    expect_code(&out, 0, "dump");
    let tar_file = env.path("dump.tar");
    fs::write(&tar_file, &out.stdout).unwrap();
    let extracted = env.path("extracted");
    fs::create_dir_all(&extracted).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar_file)
        .arg("-C")
        .arg(&extracted)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(extracted.join(odd)).unwrap(), b"latin-1 name\n");
    assert_eq!(
        fs::read_link(extracted.join("link"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"tar\xe9get"
    );
}

use std::os::unix::ffi::OsStrExt;

#[test]
fn engine_failures_are_never_hidden() {
    let env = TestEnv::new();
    env.init();
    let mut rng = Rng::new(116);
    env.write_source_files(0..3, 1 << 20, &mut rng);
    // A sealer thread that panics fails the backup: no snapshot, one line.
    let mut c = env.spawnable();
    c.env("BUNKER_TEST_PANIC", "backup-seal")
        .args(["backup", s(&env.path("src"))]);
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("internal error") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(
        ids(&env).is_empty(),
        "a snapshot was written after a worker failed"
    );
    env.check_read_data();

    // A key file with a short name does not crash key commands.
    write_file(&env.repo.join("keys/ab"), b"{}");
    expect_code(&run(env.cmd().args(["key", "list"])), 0, "key list");

    // key passwd: the new password opens, the old one no longer does.
    let new = env.password_file("new", "a new password");
    expect_code(
        &run(env
            .cmd()
            .args(["key", "passwd", "--new-password-file", s(&new)])),
        0,
        "key passwd",
    );
    expect_code(
        &run(env.cmd_with_password(&new).arg("snapshots")),
        0,
        "new password",
    );
    expect_code(&run(env.cmd().arg("snapshots")), 12, "old password");

    // check --repair takes the exclusive lock: busy while a prune holds it.
    let mut c = env.spawnable_with_password(&new);
    c.env("BUNKER_TEST_PAUSE", "prune-locked:100000")
        .arg("prune")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut prune = c.spawn().unwrap();
    wait_for_pause(&mut prune, "prune-locked");
    let out = run(env.cmd_with_password(&new).args(["check", "--repair"]));
    prune.kill().unwrap();
    prune.wait().unwrap();
    expect_code(&out, 11, "check --repair while a prune runs");
}

#[test]
fn snapshots_are_listed_from_a_cache_that_is_never_trusted_blindly() {
    let env = TestEnv::new();
    let (a, _) = two_sources(&env);
    let cache_root = env.home.join(".cache/bunker");
    let all = ids(&env);
    let cached = files_below(&cache_root);
    assert_eq!(cached.len(), 1, "one cache file: {cached:?}");
    let cache_file = cached[0].0.clone();

    // A snapshot forgotten elsewhere is not revived by the cache.
    let out = run(env.cmd().args(["--no-cache", "forget", &all[0][..8]]));
    expect_code(&out, 0, "forget without the cache");
    assert_eq!(ids(&env), vec![all[1].clone()]);
    // A damaged cache is discarded and rebuilt; the listing stays right.
    flip_byte(&cache_file, 60);
    assert_eq!(ids(&env), vec![all[1].clone()]);
    // Another repository's cache (another key) in its place is discarded.
    let other = env.path("other");
    expect_code(&env.on_repo(&other, &["init"]), 0, "init another");
    expect_code(&env.on_repo(&other, &["backup", s(&a)]), 0, "backup");
    expect_code(&env.on_repo(&other, &["snapshots"]), 0, "snapshots");
    let other_cache = files_below(&cache_root)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| *p != cache_file)
        .unwrap();
    fs::copy(&other_cache, &cache_file).unwrap();
    assert_eq!(ids(&env), vec![all[1].clone()]);
    // check reads the snapshot files themselves, not the cache.
    flip_byte(&env.repo.join("snapshots").join(&all[1]), 20);
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 1, "check of a damaged snapshot file that is cached");
}
