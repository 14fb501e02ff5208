//! Interrupting a backup keeps what was finished and leaves a sound repository.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigint_stops_backup_cleanly_keeps_packs_and_exits_130() {
    let env = TestEnv::new();
    expect_code(
        &run(env.cmd().args(["init", "--pack-size", "2M"])),
        0,
        "init",
    );
    let mut rng = Rng::new(11);
    let mut total = 0u64;
    for i in 0..8 {
        write_random(&env.path(&format!("src/f{i}")), 16 << 20, &mut rng);
        total += 16 << 20;
    }
    let src = env.path("src");

    // A std Command, as assert_cmd's cannot be spawned and signalled.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bunker"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &env.home)
        .env("BUNKER_KDF_PARAMS", "m=1024,t=1,p=1")
        .arg("-r")
        .arg(&env.repo)
        .arg("--password-file")
        .arg(&env.password_file)
        .args(["backup", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the backup has stored its first packs.
    let started = Instant::now();
    while files_below(&env.repo.join("data")).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no pack written within a minute"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill with a valid pid and signal.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted") && !err.contains("panicked"),
        "{err}"
    );

    assert!(
        env.snapshots(&[]).is_empty(),
        "an interrupted backup must not save a snapshot"
    );
    expect_code(
        &run(env.cmd().args(["check", "--read-data"])),
        0,
        "check after interrupt",
    );

    // The next backup reuses what the interrupted one stored.
    let summary = env.backup(&[src.to_str().unwrap()]);
    let added = summary["bytes_added"].as_u64().unwrap();
    assert!(added < total, "nothing reused: added {added} of {total}");
    expect_code(
        &run(env.cmd().args(["check", "--read-data"])),
        0,
        "check after resumed backup",
    );
}
