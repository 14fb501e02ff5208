//! The Debian package (scripts/package-deb): installed on this machine with
//! `dpkg -i`, used through the installed binary, its man pages opened, its
//! service unit verified, and purged, leaving no file of it behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn sh(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {out:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package whatever the test did.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = sh("dpkg", &["--purge", "bunker"]);
    }
}

/// Where a Debian package may put files.
const USUAL_PLACES: [&str; 7] = [
    "./usr/bin/",
    "./usr/share/man/man1/",
    "./usr/share/doc/bunker/",
    "./usr/share/bash-completion/completions/",
    "./usr/share/zsh/vendor-completions/",
    "./usr/share/fish/vendor_completions.d/",
    "./lib/systemd/system/",
];

#[test]
fn the_debian_package_installs_works_and_purges_cleanly() {
    let installed_before = sh("dpkg", &["-s", "bunker"]).status.success();
    if !is_root() || installed_before || sh("which", &["dpkg-deb"]).stdout.is_empty() {
        eprintln!("SKIPPED: needs root and dpkg, and no bunker package installed already");
        return;
    }
    let env = TestEnv::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out_dir = env.path("deb");
    let built = Command::new(root.join("scripts/package-deb"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_bunker"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let deb = ok(&built, "scripts/package-deb").trim().to_string();

    // Nothing outside the usual places.
    let listing = ok(&sh("dpkg-deb", &["-c", &deb]), "dpkg-deb -c");
    let files: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert!(files.len() > 30, "{listing}");
    for file in &files {
        assert!(
            USUAL_PLACES.iter().any(|p| file.starts_with(p)),
            "{file} is outside the usual places"
        );
    }
    for needed in [
        "./usr/bin/bunker",
        "./usr/share/man/man1/bunker.1.gz",
        "./usr/share/man/man1/bunker-db-restore.1.gz",
        "./lib/systemd/system/bunker.service",
        "./usr/share/doc/bunker/bunker.toml.example",
        "./usr/share/zsh/vendor-completions/_bunker",
    ] {
        assert!(files.contains(&needed), "{needed} missing:\n{listing}");
    }

    let _guard = Installed;
    ok(&sh("dpkg", &["-i", &deb]), "dpkg -i");
    ok(&sh("id", &["bunker"]), "the bunker system user");
    let version = ok(&sh("/usr/bin/bunker", &["--version"]), "bunker --version");
    assert!(version.contains("writes 4"), "{version}");

    // A backup and a verified restore through the installed binary.
    let mut rng = Rng::new(97);
    env.write_source_files(0..3, 200_000, &mut rng);
    let installed = |args: &[&str]| {
        let mut c = Command::new("/usr/bin/bunker");
        c.arg("-r")
            .arg(&env.repo)
            .arg("--password-file")
            .arg(&env.password_file)
            .args(["--cache-dir", env.path("cache").to_str().unwrap()])
            .args(["--state-dir", env.path("state").to_str().unwrap()])
            .args(args);
        c.output().unwrap()
    };
    ok(&installed(&["init"]), "init");
    let src = env.path("src");
    ok(&installed(&["backup", src.to_str().unwrap()]), "backup");
    let target = env.path("restored");
    ok(
        &installed(&[
            "restore",
            "latest",
            "--verify",
            "--target",
            target.to_str().unwrap(),
        ]),
        "restore",
    );
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // The man pages open; the unit and the example config are sound.
    let page = Command::new("man")
        .args(["-l", "/usr/share/man/man1/bunker-backup.1.gz"])
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    assert!(ok(&page, "man -l").contains("--copy-to"));
    if Path::new("/usr/bin/systemd-analyze").exists() {
        ok(
            &sh(
                "systemd-analyze",
                &["verify", "/lib/systemd/system/bunker.service"],
            ),
            "systemd-analyze verify",
        );
    } else {
        eprintln!("systemd-analyze missing: the unit is not verified here");
    }
    let unit = std::fs::read_to_string("/lib/systemd/system/bunker.service").unwrap();
    for line in [
        "User=bunker",
        "ProtectSystem=strict",
        "AmbientCapabilities=CAP_DAC_READ_SEARCH",
        "StateDirectory=bunker",
    ] {
        assert!(unit.contains(line), "the unit lacks {line}");
    }
    ok(
        &sh(
            "/usr/bin/bunker",
            &[
                "--config",
                "/usr/share/doc/bunker/bunker.toml.example",
                "config",
                "check",
            ],
        ),
        "the example config",
    );

    // Purged: none of its files is left, the package is unknown.
    ok(&sh("dpkg", &["--purge", "bunker"]), "dpkg --purge");
    for file in &files {
        let path = file.trim_start_matches('.');
        assert!(!Path::new(path).exists(), "{path} left after purge");
    }
    assert!(!sh("dpkg", &["-s", "bunker"]).status.success());
}
