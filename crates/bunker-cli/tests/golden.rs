//! The golden version-1 repository (made once by `fixtures/make-golden.sh`)
//! must open and restore exactly, and each corrupted copy must be rejected
//! with a clear error and no wrong data.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The regular files of the golden source tree.
const FILES: [&str; 5] = [
    "hello.txt",
    "pattern.bin",
    "empty",
    "dir/deeper/nested.txt",
    "dir/hello-copy.txt",
];

/// 2024-02-29 12:34:56.123456789 UTC, the mtime of every source entry.
const MTIME: (i64, i64) = (1_709_210_096, 123_456_789);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A private copy of a fixture repository, so no test can change the committed one.
fn copy_repo(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures().join(name))
        .arg(tmp.path().join("repo"))
        .status()
        .unwrap();
    assert!(status.success());
    tmp
}

fn bunker(repo: &Path, args: &[&str]) -> Output {
    let out = Command::cargo_bin("bunker")
        .unwrap()
        .env_remove("BUNKER_REPOSITORY")
        .env_remove("BUNKER_PASSWORD")
        .env_remove("BUNKER_PASSWORD_COMMAND")
        .env_remove("BUNKER_PASSWORD_FILE")
        // Copies of one golden repository share its id, so a cache would
        // answer for a damaged copy with what an intact one held.
        .arg("--no-cache")
        .arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(fixtures().join("golden-v1.password"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn snapshots(repo: &Path) -> Vec<serde_json::Value> {
    let out = bunker(repo, &["snapshots", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn tagged(repo: &Path, tag: &str) -> serde_json::Value {
    snapshots(repo)
        .into_iter()
        .find(|s| s["tags"][0] == tag)
        .unwrap()
}

/// Restores the source path of the snapshot tagged `tag` into `target`.
fn restore_tagged(repo: &Path, tag: &str, target: &Path, extra: &[&str]) -> Output {
    let snap = tagged(repo, tag);
    let spec = format!(
        "{}:{}",
        snap["id"].as_str().unwrap(),
        snap["paths"][0].as_str().unwrap()
    );
    let mut args = vec!["restore", &spec, "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    bunker(repo, &args)
}

#[test]
fn golden_repository_opens_lists_and_restores_exactly() {
    let tmp = copy_repo("golden-v1");
    let repo = tmp.path().join("repo");
    let list = snapshots(&repo);
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|s| s["hostname"] == "golden"));

    let target = tmp.path().join("out");
    let out = restore_tagged(&repo, "v1", &target, &["--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let source = fixtures().join("golden-v1-source");
    for rel in FILES {
        assert_eq!(
            std::fs::read(target.join(rel)).unwrap(),
            std::fs::read(source.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read(target.join("pattern.bin")).unwrap().len(),
        700_000
    );
    assert_eq!(
        std::fs::read_link(target.join("dir/link-to-hello")).unwrap(),
        Path::new("../hello.txt")
    );
    assert_eq!(
        std::fs::read_dir(target.join("empty-dir")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::metadata(target.join("dir/deeper/nested.txt"))
            .unwrap()
            .mode()
            & 0o7777,
        0o640
    );
    assert_eq!(
        std::fs::metadata(target.join("hello.txt")).unwrap().mode() & 0o7777,
        0o644
    );
    for rel in [
        "hello.txt",
        "pattern.bin",
        "empty",
        "dir",
        "dir/deeper",
        "empty-dir",
        "dir/link-to-hello",
    ] {
        let m = std::fs::symlink_metadata(target.join(rel)).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), MTIME, "mtime of {rel}");
    }

    let stdin_snap = tagged(&repo, "stdin");
    let out = bunker(
        &repo,
        &["dump", stdin_snap["id"].as_str().unwrap(), "/streamed.txt"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"streamed\n");

    let out = bunker(&repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn golden_flipped_pack_is_detected_and_never_restored_wrong() {
    let tmp = copy_repo("golden-v1-flipped-pack");
    let repo = tmp.path().join("repo");
    let out = bunker(&repo, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("damaged: pack"), "{}", stderr(&out));

    let target = tmp.path().join("out");
    let out = restore_tagged(&repo, "v1", &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let source = fixtures().join("golden-v1-source");
    for rel in FILES {
        if let Ok(restored) = std::fs::read(target.join(rel)) {
            assert_eq!(
                restored,
                std::fs::read(source.join(rel)).unwrap(),
                "{rel} restored with wrong bytes"
            );
        }
    }
}

#[test]
fn golden_truncated_pack_fails_structure_check() {
    let tmp = copy_repo("golden-v1-truncated-pack");
    let out = bunker(&tmp.path().join("repo"), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("truncated or damaged"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn golden_corrupted_metadata_is_rejected_with_one_clear_line() {
    let cases: &[(&str, &[&str], i32, &str)] = &[
        ("golden-v1-flipped-index", &["check"], 1, "index/"),
        ("golden-v1-flipped-index", &["ls", "latest"], 1, "index/"),
        // Damaged snapshot files are skipped with a warning naming each;
        // the listing goes on (here: nothing else to list).
        (
            "golden-v1-flipped-snapshot",
            &["snapshots"],
            0,
            "snapshots/",
        ),
        ("golden-v1-flipped-snapshot", &["check"], 1, "bunker forget"),
        ("golden-v1-flipped-config", &["snapshots"], 1, "config"),
        // A key file whose bytes no longer match its name is damage, not a
        // wrong password.
        (
            "golden-v1-flipped-key",
            &["snapshots"],
            1,
            "damaged: no key file can be read",
        ),
        // Made when 2 was a newer version; now that 2 exists, the edited
        // prefix (it is authenticated) no longer matches the sealed config.
        (
            "golden-v1-newer-version",
            &["snapshots"],
            1,
            "config: authentication failed",
        ),
    ];
    for (fixture, args, code, needle) in cases {
        let tmp = copy_repo(fixture);
        let out = bunker(&tmp.path().join("repo"), args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{fixture} {args:?}: {err}");
        assert!(err.contains(needle), "{fixture} {args:?}: {err}");
        assert!(
            err.trim().lines().count() >= 1 && err.lines().all(|l| l.starts_with("bunker:")),
            "{fixture}: {err}"
        );
    }
}

#[test]
fn a_newer_format_version_is_refused_by_name() {
    let tmp = copy_repo("golden-v1");
    let config = tmp.path().join("repo/config");
    let mut bytes = std::fs::read(&config).unwrap();
    bytes[5] = 3;
    std::fs::write(&config, bytes).unwrap();
    let out = bunker(&tmp.path().join("repo"), &["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsupported config version 3 (this build reads versions up to 2)"),
        "{}",
        stderr(&out)
    );
}

/// Restores the one snapshot of the golden parity repository and compares
/// it with the committed source.
fn restore_golden_parity(repo: &Path, target: &Path) {
    let out = restore_tagged(repo, "second", target, &["--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let source = fixtures().join("golden-v1-parity-source");
    for rel in ["kept/pattern.bin", "kept/note.txt"] {
        assert_eq!(
            std::fs::read(target.join(rel)).unwrap(),
            std::fs::read(source.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert!(!target.join("forgotten.bin").exists());
}

/// The objects added to version 1 after golden-v1 (`fixtures/make-golden-parity.sh`):
/// parity files, and a condemnation record whose prune was interrupted
/// while it waited for a backup that then died.
#[test]
fn golden_parity_repository_heals_and_finishes_its_prune() {
    let tmp = copy_repo("golden-v1-parity");
    let repo = tmp.path().join("repo");
    assert_eq!(snapshots(&repo).len(), 1);
    restore_golden_parity(&repo, &tmp.path().join("out1"));
    let out = bunker(&repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A damaged byte in every pack is repaired from parity.
    let packs: Vec<PathBuf> = walk_files(&repo.join("data"));
    assert!(!packs.is_empty());
    for p in &packs {
        let mut bytes = std::fs::read(p).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(p, bytes).unwrap();
    }
    let out = bunker(&repo, &["check", "--read-data", "--repair"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bunker(&repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The session the record waits for is gone: the next prune deletes the
    // condemned packs, and what is kept still restores exactly.
    let out = bunker(&repo, &["prune", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(walk_files(&repo.join("condemned")).len(), 0);
    assert!(walk_files(&repo.join("data")).len() < packs.len());
    let out = bunker(&repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
    restore_golden_parity(&repo, &tmp.path().join("out2"));
}

/// Every regular file below `dir` (none if it does not exist).
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
