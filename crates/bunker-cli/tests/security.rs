//! The threat model made true: storage that lies, planted objects, secrets.
//! Each test attacks one promise of docs/FORMAT.md §1.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// BLAKE3 of bytes in hex: the name a stored file must have.
fn name_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn planted_key_files_and_oversized_files_are_refused_unread() {
    let env = TestEnv::new();
    env.init();
    write_file(&env.path("src/f"), b"data");
    env.backup(&[s(&env.path("src"))]);

    // A key file with costs beyond the bounds, named as it must be: never tried.
    let (real, _) = files_below(&env.repo.join("keys")).remove(0);
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&real).unwrap()).unwrap();
    json["kdf"]["memory_kib"] = (4u64 << 20).into();
    json["kdf"]["iterations"] = 64.into();
    let planted = serde_json::to_vec_pretty(&json).unwrap();
    let planted_name = name_of(&planted);
    fs::write(env.repo.join("keys").join(&planted_name), &planted).unwrap();
    let out = run(env.cmd().args(["key", "list"]));
    expect_code(&out, 0, "key list with a planted key file");
    assert!(
        stdout(&out).contains("outside what bunker accepts"),
        "{}",
        stdout(&out)
    );
    let wrong = env.password_file("wrong", "not it");
    let out = run(env.cmd_with_password(&wrong).arg("snapshots"));
    expect_code(&out, 12, "a wrong password beside a planted key file");

    // Files larger than their kind can be are refused before they are read
    // (sparse here: they take no space).
    for (dir, size) in [("snapshots", 300u64 << 20), ("index", 1100 << 20)] {
        let file = env.repo.join(dir).join("ab".repeat(32));
        fs::File::create(&file).unwrap().set_len(size).unwrap();
    }
    let out = run(env.cmd().args(["snapshots", "--json"]));
    expect_code(&out, 0, "snapshots beside oversized files");
    assert!(stderr(&out).contains("too large"), "{}", stderr(&out));
    assert_eq!(parse_json(&out.stdout).as_array().unwrap().len(), 1);
    let out = run(env.cmd().arg("check"));
    expect_code(&out, 1, "check names them");
    assert!(stderr(&out).contains("too large"), "{}", stderr(&out));
}

#[test]
fn a_snapshot_written_after_its_session_was_declared_dead_is_withdrawn() {
    let env = TestEnv::new();
    env.init();
    write_file(&env.path("src/f"), b"data");
    let mut c = env.spawnable();
    c.env("BUNKER_TEST_PAUSE", "backup-after-snapshot:2000")
        .args(["backup", s(&env.path("src"))])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    wait_for_pause(&mut child, "backup-after-snapshot");
    // A prune judged the session dead between its last check and its
    // snapshot, and may have deleted what the snapshot references.
    for (lock, _) in files_below(&env.repo.join("locks")) {
        fs::remove_file(lock).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("judged it dead"), "{err}");
    assert!(
        env.snapshots(&[]).is_empty(),
        "the snapshot was not withdrawn"
    );
}
