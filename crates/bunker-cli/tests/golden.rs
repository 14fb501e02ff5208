//! The golden repositories of each format version (made once by
//! `fixtures/make-golden*.sh`) must open and restore exactly, each corrupted
//! copy must be rejected with a clear error and no wrong data, and each
//! attack copy must fail as docs/FORMAT.md §1 says.

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

/// A private copy of a fixture repository, so no test can change the
/// committed one, beside its version's password (`password`) and an empty
/// client memory (`state`).
fn copy_repo(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    cp_a(&fixtures().join(name), &tmp.path().join("repo"));
    let version = ["v4", "v3", "v2"]
        .into_iter()
        .find(|v| name.starts_with(&format!("golden-{v}")))
        .unwrap_or("v1");
    std::fs::copy(
        fixtures().join(format!("golden-{version}.password")),
        tmp.path().join("password"),
    )
    .unwrap();
    tmp
}

fn cp_a(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `bunker` on a copy made by [`copy_repo`], with its password.
fn bunker(repo: &Path, args: &[&str]) -> Output {
    bunker_with_password(repo, &repo.parent().unwrap().join("password"), args)
}

fn bunker_with_password(repo: &Path, password: &Path, args: &[&str]) -> Output {
    let out = Command::cargo_bin("bunker")
        .unwrap()
        .env_remove("BUNKER_REPOSITORY")
        .env_remove("BUNKER_PASSWORD")
        .env_remove("BUNKER_PASSWORD_COMMAND")
        .env_remove("BUNKER_PASSWORD_FILE")
        .env("BUNKER_KDF_PARAMS", "m=1024,t=1,p=1")
        // Copies of one golden repository share its id, so a cache (or a
        // client memory) shared between them would answer for one copy
        // with what another held.
        .arg("--no-cache")
        .arg("--state-dir")
        .arg(repo.parent().unwrap().join("state"))
        .arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(password)
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

/// The golden source tree, restored into `target`, is exact: bytes, link,
/// modes, times.
fn assert_golden_source(target: &Path) {
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

    assert_golden_source(&target);

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
    assert_rejected(cases);
}

#[test]
fn a_newer_format_version_is_refused_by_name() {
    let tmp = copy_repo("golden-v1");
    let config = tmp.path().join("repo/config");
    let mut bytes = std::fs::read(&config).unwrap();
    bytes[5] = 5;
    std::fs::write(&config, bytes).unwrap();
    let out = bunker(&tmp.path().join("repo"), &["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsupported config version 5 (this build reads versions up to 4)"),
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

/// Opens a version-2 copy and checks it lists, restores and verifies exactly.
fn assert_golden_v2_whole(repo: &Path, target: &Path) {
    let list = snapshots(repo);
    let mut tags: Vec<&str> = list
        .iter()
        .map(|s| s["tags"][0].as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["stdin", "v2"], "{list:?}");
    let out = restore_tagged(repo, "v2", target, &["--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_golden_source(target);
    let out = bunker(repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Version 3 (`fixtures/make-golden-v3.sh`): content keys in the config,
/// and a repository made to share them, holding a copy of the snapshot.
#[test]
fn golden_v3_repositories_share_content_keys_and_a_copy() {
    let tmp = copy_repo("golden-v3");
    let repo = tmp.path().join("repo");
    let list = snapshots(&repo);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["tags"][0], "v3");
    let out = restore_tagged(&repo, "v3", &tmp.path().join("out"), &["--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_golden_source(&tmp.path().join("out"));
    let out = bunker(&repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let copy = tmp.path().join("copy");
    cp_a(&fixtures().join("golden-v3-copy"), &copy);
    let copied = snapshots(&copy);
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0]["original"], list[0]["id"], "{copied:?}");
    for field in ["time", "hostname", "tags", "paths", "tree"] {
        assert_eq!(
            copied[0][field], list[0][field],
            "{field}: same content keys, same tree"
        );
    }
    // The original's id names the copy.
    let id = list[0]["id"].as_str().unwrap();
    let spec = format!("{}:{}", &id[..12], list[0]["paths"][0].as_str().unwrap());
    let target = tmp.path().join("from-copy");
    let out = bunker(
        &copy,
        &[
            "restore",
            &spec,
            "--verify",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_golden_source(&target);
    // Copying again moves nothing.
    let out = Command::cargo_bin("bunker")
        .unwrap()
        .env("BUNKER_KDF_PARAMS", "m=1024,t=1,p=1")
        .env("BUNKER_TO_PASSWORD_FILE", tmp.path().join("password"))
        .args(["--no-cache", "--state-dir"])
        .arg(tmp.path().join("state"))
        .arg("-r")
        .arg(&repo)
        .arg("--password-file")
        .arg(tmp.path().join("password"))
        .args(["copy", "--json", "--to"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["already_present"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert_eq!(report["blobs_added"], 0, "{report}");
    let out = bunker(&copy, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Version 4 (`fixtures/make-golden-v4.sh`): a snapshot of whole listings
/// made in version 3, `bunker upgrade`, and a snapshot whose `many/` (300
/// entries) is stored in pieces under a piece list.
#[test]
fn golden_v4_repository_reads_whole_listings_and_pieces_exactly() {
    let tmp = copy_repo("golden-v4");
    let repo = tmp.path().join("repo");
    assert_eq!(snapshots(&repo).len(), 2);
    for (tag, changed) in [("v3", "entry 077\n"), ("v4", "changed 077\n")] {
        let target = tmp.path().join(tag);
        let out = restore_tagged(&repo, tag, &target, &["--verify"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_golden_source(&target);
        let many: Vec<_> = std::fs::read_dir(target.join("many"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(many.len(), 300, "{tag}");
        for i in [0, 76, 78, 150, 299] {
            let name = format!("many/{i:03}");
            assert_eq!(
                std::fs::read_to_string(target.join(&name)).unwrap(),
                format!("entry {i:03}\n"),
                "{tag}: {name}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(target.join("many/077")).unwrap(),
            changed
        );
    }
    // Every tree blob is reached: 8 directories of the version-3 snapshot,
    // the 4 above `many/` that changed, and `many/`'s pieces and list.
    let out = bunker(&repo, &["check", "--read-data", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["trees"], 46, "{report}");
    // One name, found through the piece list.
    let snap = tagged(&repo, "v4");
    let path = format!("{}/many/150", snap["paths"][0].as_str().unwrap());
    let out = bunker(&repo, &["dump", snap["id"].as_str().unwrap(), &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"entry 150\n");
    // Already the newest version.
    let out = bunker(&repo, &["upgrade", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["from"].as_u64(), report["upgraded"].as_bool()),
        (Some(4), Some(false))
    );
}

/// Version 2 (`fixtures/make-golden-v2.sh`): bound objects, padded packs,
/// parity, a tombstone of a forgotten snapshot and one of a removed key.
#[test]
fn golden_v2_repository_opens_lists_and_restores_exactly() {
    let tmp = copy_repo("golden-v2");
    let repo = tmp.path().join("repo");
    assert_golden_v2_whole(&repo, &tmp.path().join("out1"));
    let stdin_snap = tagged(&repo, "stdin");
    let out = bunker(
        &repo,
        &["dump", stdin_snap["id"].as_str().unwrap(), "/streamed.txt"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"streamed\n");

    // Later builds write into it: a backup, and a prune that merges the
    // tombstones into one.
    let source = fixtures().join("golden-v1-source");
    let out = bunker(&repo, &["backup", "-q", source.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bunker(&repo, &["prune", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tombstones_merged"], 2, "{report}");
    assert_eq!(walk_files(&repo.join("tombstones")).len(), 1);
    let out = bunker_with_password(
        &repo,
        &fixtures().join("golden-v2-revoked.password"),
        &["snapshots"],
    );
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    let out = bunker(&repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn golden_v2_damage_is_found_and_named() {
    // A damaged pack: found by reading, rebuilt from parity.
    let tmp = copy_repo("golden-v2-flipped-pack");
    let repo = tmp.path().join("repo");
    let out = bunker(&repo, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged: pack"), "{}", stderr(&out));
    let out = bunker(&repo, &["check", "--read-data", "--repair"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_golden_v2_whole(&repo, &tmp.path().join("out"));

    let cases: &[(&str, &[&str], i32, &str)] = &[
        (
            "golden-v2-flipped-tombstone",
            &["check"],
            1,
            "damaged: tombstone",
        ),
        (
            "golden-v2-flipped-tombstone",
            &["snapshots"],
            0,
            "tombstones/",
        ),
        (
            "golden-v2-flipped-key",
            &["snapshots"],
            1,
            "damaged: no key file can be read",
        ),
    ];
    assert_rejected(cases);
}

/// A forgotten snapshot's file put back by storage: ignored, then deleted.
#[test]
fn golden_v2_replayed_snapshot_is_ignored() {
    let tmp = copy_repo("golden-v2-replayed-snapshot");
    let repo = tmp.path().join("repo");
    let out = bunker(&repo, &["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ignored snapshot"),
        "{}",
        stderr(&out)
    );
    let out = bunker(&repo, &["prune", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["withdrawn_snapshots_removed"], 1, "{report}");
    assert_golden_v2_whole(&repo, &tmp.path().join("out"));
}

/// An old index file put back by storage (naming packs prune deleted), and
/// an index forged by a key holder (placing pattern.bin's blobs in another
/// pack, read first): prune loses nothing, says what it refused, and
/// leaves a repository that checks clean.
#[test]
fn golden_v2_replayed_and_forged_index_lose_nothing() {
    for (fixture, warning) in [
        ("golden-v2-replayed-index", ""),
        ("golden-v2-forged-index", "forged or replayed index"),
    ] {
        let tmp = copy_repo(fixture);
        let repo = tmp.path().join("repo");
        let out = bunker(&repo, &["prune"]);
        assert!(out.status.success(), "{fixture}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(warning),
            "{fixture}: {}",
            stderr(&out)
        );
        assert_golden_v2_whole(&repo, &tmp.path().join("out"));
        // Settled: a second prune has nothing to do.
        let out = bunker(&repo, &["prune", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["indexes_deleted"], 0, "{fixture}: {report}");
    }
}

/// A removed key file put back by storage opens nothing.
#[test]
fn golden_v2_revived_key_opens_nothing() {
    let tmp = copy_repo("golden-v2-revived-key");
    let repo = tmp.path().join("repo");
    let out = bunker_with_password(
        &repo,
        &fixtures().join("golden-v2-revoked.password"),
        &["snapshots"],
    );
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert!(stderr(&out).contains("was removed"), "{}", stderr(&out));
    assert_eq!(snapshots(&repo).len(), 2);
}

/// Storage rolls a snapshot back: the client that saw it (its committed
/// memory) says so; a client that never saw the repository cannot know.
#[test]
fn golden_v2_rolled_back_listing_is_noticed_by_a_client_that_saw_it() {
    let tmp = copy_repo("golden-v2-rolled-back");
    let repo = tmp.path().join("repo");
    let out = bunker(&repo, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(tmp.path().join("state")).unwrap();
    cp_a(
        &fixtures().join("golden-v2-state"),
        &tmp.path().join("state"),
    );
    let out = bunker(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is gone from storage"),
        "{}",
        stderr(&out)
    );
}

/// Two snapshot files with their contents swapped: each is damage, neither
/// is read as the other.
#[test]
fn golden_v2_swapped_objects_are_damage() {
    let tmp = copy_repo("golden-v2-swapped");
    let repo = tmp.path().join("repo");
    let out = bunker(&repo, &["snapshots", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches("does not match its id").count(), 2);
    assert_eq!(snapshots(&repo).len(), 0);
    let out = bunker(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// A key file with costs out of bounds, a lock file larger than a lock can
/// be, a parity file of the wrong geometry: refused unread, never trusted.
#[test]
fn golden_v2_planted_files_are_refused() {
    let tmp = copy_repo("golden-v2-planted");
    let repo = tmp.path().join("repo");
    let started = std::time::Instant::now();
    let out = bunker(&repo, &["key", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("outside what bunker accepts"));
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not it\n").unwrap();
    let out = bunker_with_password(&repo, &wrong, &["snapshots"]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    // The planted lock: an exclusive command refuses to go past it.
    let out = bunker(&repo, &["prune"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(stderr(&out).contains("unreadable lock"), "{}", stderr(&out));
    std::fs::remove_file(repo.join("locks").join("ab".repeat(32))).unwrap();

    // The planted parity file: its pack, damaged, is not "rebuilt" from it.
    let parity = walk_files(&repo.join("parity"))
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() == 65536)
        .unwrap();
    let pack = walk_files(&repo.join("data"))
        .into_iter()
        .find(|p| p.file_name() == parity.file_name())
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let out = bunker(&repo, &["check", "--read-data", "--repair"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("parity"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A version-1 repository is still written in version 1 by this build
/// (blobs, packs, tombstones), and reads back exactly.
#[test]
fn version_1_repositories_are_still_written_in_version_1() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("golden-v1.password"),
        tmp.path().join("password"),
    )
    .unwrap();
    let repo = tmp.path().join("repo");
    let out = bunker(&repo, &["init", "-q", "--format-version", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let source = fixtures().join("golden-v1-source");
    let out = bunker(
        &repo,
        &["backup", "-q", "--tag", "v1", source.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("x"), b"forgotten soon").unwrap();
    let out = bunker(
        &repo,
        &["backup", "-q", "--tag", "gone", other.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let gone = tagged(&repo, "gone");
    let out = bunker(&repo, &["forget", gone["id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bunker(&repo, &["prune", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(walk_files(&repo.join("tombstones")).len(), 1);
    assert_eq!(std::fs::read(repo.join("config")).unwrap()[5], 1);
    for pack in walk_files(&repo.join("data")) {
        assert!(std::fs::read(&pack).unwrap().ends_with(b"BKP1"), "{pack:?}");
    }
    let target = tmp.path().join("out");
    let out = restore_tagged(&repo, "v1", &target, &["--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for rel in FILES {
        assert_eq!(
            std::fs::read(target.join(rel)).unwrap(),
            std::fs::read(source.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let out = bunker(&repo, &["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Runs each case (fixture, command, exit code, words its message holds) on
/// a copy of its fixture: the exit code and the words, in lines that all
/// start with `bunker:`.
fn assert_rejected(cases: &[(&str, &[&str], i32, &str)]) {
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

/// Run records written by the first build that had them (docs/FORMAT.md
/// §4.6) read back exactly: counts, times, the verified snapshot, the
/// measured RTO, the failure's message, and the targets the plan had then
/// (the config here gives none).
#[test]
fn golden_v3_run_records_read_back_exactly() {
    let tmp = copy_repo("golden-v3-runs");
    let repo = tmp.path().join("repo");
    let config = tmp.path().join("bunker.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.golden]\nurl = \"{}\"\npassword-file = \"{}\"\n\n\
             [plans.golden]\nrepository = \"golden\"\npaths = [\"/golden-source\"]\n",
            repo.display(),
            tmp.path().join("password").display()
        ),
    )
    .unwrap();
    let out = Command::cargo_bin("bunker")
        .unwrap()
        .env("HOME", tmp.path())
        .env_remove("BUNKER_PASSWORD")
        .args(["--no-cache", "--state-dir"])
        .arg(tmp.path().join("state"))
        .arg("--config")
        .arg(&config)
        .args(["report", "--json", "--since", "10000w"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "targets missed: {}",
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &report["plans"][0];
    assert_eq!(p["name"], "golden");
    assert_eq!(
        p["runs"],
        serde_json::json!({"backup": {"failure": 1, "success": 1}, "drill": {"success": 1}})
    );
    assert_eq!(p["last_backup"], "2024-03-05T00:00:00Z");
    assert_eq!(p["last_verified"], "2024-03-05T00:00:00Z");
    assert_eq!(p["rto_seconds"], 0.001896);
    assert_eq!(p["rto_target_seconds"], 3600);
    assert_eq!(p["rpo_target_seconds"], 86400);
    assert_eq!(p["rpo_met"], false);
    assert_eq!(p["rto_met"], true);
    assert_eq!(p["last_drill"]["time"], "2024-03-07T00:00:00Z");
    assert_eq!(p["last_drill"]["passed"], true);
    assert_eq!(p["protected_bytes"], 11);
    let history = p["history"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h["kind"].as_str().unwrap(), h["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("backup", "success"),
            ("backup", "failure"),
            ("drill", "success")
        ]
    );
    assert_eq!(history[1]["time"], "2024-03-06T00:00:00Z");
}
