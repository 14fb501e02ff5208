//! Restoring over an existing tree: identical files untouched, changed files
//! rebuilt from what is still there, extra files removed only with --delete,
//! and --dry-run changing nothing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::Value;

/// Size of the file edited in place. Chunk boundaries are keyed per
/// repository, so only bounds hold: a small edit spoils at most two chunks of
/// at most 2 MiB each (4 MiB in older repositories), so at least
/// `CHANGED_SIZE - 8 MiB` can be reused.
const CHANGED_SIZE: u64 = 12 << 20;

struct Setup {
    env: TestEnv,
    spec: String,
}

/// Backs up a small tree and restores it into `out`.
fn setup() -> Setup {
    let env = TestEnv::new();
    env.init();
    let mut rng = Rng::new(21);
    write_file(&env.path("src/same.txt"), b"identical");
    write_random(
        &env.path("src/changed.bin"),
        CHANGED_SIZE as usize,
        &mut rng,
    );
    write_file(&env.path("src/missing.txt"), b"comes back");
    write_file(&env.path("src/dir/x"), b"x");
    let src = env.path("src");
    let summary = env.backup(&[src.to_str().unwrap()]);
    let spec = format!(
        "{}:{}",
        summary["snapshot_id"].as_str().unwrap(),
        src.display()
    );
    let setup = Setup { env, spec };
    let out = restore(&setup, &[]);
    assert_eq!(out["files"], 4);
    setup
}

fn restore(s: &Setup, extra: &[&str]) -> Value {
    let target = s.env.path("out");
    let mut cmd = s.env.cmd();
    cmd.args([
        "restore",
        &s.spec,
        "--json",
        "--target",
        target.to_str().unwrap(),
    ])
    .args(extra);
    let out = run(&mut cmd);
    expect_code(&out, 0, &format!("restore {extra:?}"));
    parse_json_stream(&out.stdout).pop().expect("summary")
}

/// Every path below `dir` with its content (directories as empty).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (path, _) in files_below(dir) {
        out.insert(
            path.strip_prefix(dir).unwrap().display().to_string(),
            fs::read(&path).unwrap_or_default(),
        );
    }
    out
}

/// Damages the restored copy: a changed middle, a missing file, extra entries.
fn disturb(s: &Setup) {
    let out = s.env.path("out");
    fs::File::options()
        .write(true)
        .open(out.join("changed.bin"))
        .unwrap()
        .write_all_at(b"LOCAL EDIT", CHANGED_SIZE / 2)
        .unwrap();
    fs::remove_file(out.join("missing.txt")).unwrap();
    write_file(&out.join("extra.txt"), b"not in the snapshot");
    write_file(&out.join("extra-dir/y"), b"nor this");
}

#[test]
fn identical_files_are_untouched_changed_ones_rebuilt_from_local_chunks() {
    let s = setup();
    let out = s.env.path("out");
    let before = fs::metadata(out.join("same.txt")).unwrap();
    disturb(&s);
    std::thread::sleep(Duration::from_millis(20));

    let summary = restore(&s, &["--verify"]);
    let after = fs::metadata(out.join("same.txt")).unwrap();
    assert_eq!(
        (after.ino(), after.ctime(), after.ctime_nsec()),
        (before.ino(), before.ctime(), before.ctime_nsec()),
        "an identical file was touched"
    );
    assert_eq!(
        fs::read(out.join("changed.bin")).unwrap(),
        fs::read(s.env.path("src/changed.bin")).unwrap()
    );
    assert_eq!(fs::read(out.join("missing.txt")).unwrap(), b"comes back");
    assert!(
        summary["reused_bytes"].as_u64().unwrap() >= CHANGED_SIZE - (8 << 20),
        "changed file not rebuilt from local chunks: {summary}"
    );
    assert_eq!(
        (summary["files"].as_u64(), summary["unchanged"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(
        out.join("extra.txt").exists(),
        "without --delete extra files stay"
    );

    let summary = restore(&s, &["--delete"]);
    assert_eq!(summary["deleted"], 2);
    assert_eq!(tree(&out), tree(&s.env.path("src")));
}

#[test]
fn dry_run_lists_every_change_and_changes_nothing() {
    let s = setup();
    disturb(&s);
    let out = s.env.path("out");
    let before = tree(&out);
    let summary = restore(&s, &["--dry-run", "--delete"]);
    assert_eq!(tree(&out), before, "a dry run changed the target");
    let mut changes: Vec<(String, String)> = summary["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().to_string(),
                Path::new(c["path"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .collect();
    changes.sort();
    let want = [
        ("+", "missing.txt"),
        ("-", "extra-dir"),
        ("-", "extra.txt"),
        ("M", "changed.bin"),
    ];
    assert_eq!(changes, want.map(|(a, b)| (a.to_string(), b.to_string())));
}

#[test]
fn overwrite_policies_decide_which_existing_files_are_replaced() {
    let s = setup();
    let out = s.env.path("out");
    let local = out.join("changed.bin");
    fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .write_all_at(b"LOCAL EDIT", 10)
        .unwrap();
    let edited = fs::read(&local).unwrap();
    let original = fs::read(s.env.path("src/changed.bin")).unwrap();

    let summary = restore(&s, &["--overwrite", "never"]);
    assert_eq!(fs::read(&local).unwrap(), edited);
    assert_eq!(summary["kept"], 4);

    // The local copy is newer than the snapshot's: if-newer keeps it.
    let future = SystemTime::now() + Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(future)
        .unwrap();
    restore(&s, &["--overwrite", "if-newer"]);
    assert_eq!(fs::read(&local).unwrap(), edited);

    // Older than the snapshot's: replaced.
    fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
        .unwrap();
    restore(&s, &["--overwrite", "if-newer"]);
    assert_eq!(fs::read(&local).unwrap(), original);

    let summary = restore(&s, &["--overwrite", "always"]);
    assert_eq!(summary["files"], 4, "always rewrites every file");
}
