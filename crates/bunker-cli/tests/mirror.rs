//! `bunker mirror` beyond fidelity (which `fidelity.rs` judges with rsync):
//! its itemized changes against rsync's own, `--max-delete`, `--dry-run`,
//! `--no-delete`, `--checksum`, excludes, refusals, and a mirror killed
//! at random moments, which must leave every file wholly old or wholly new.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::*;

fn mirror(env: &TestEnv, args: &[&str]) -> std::process::Output {
    run(bunker(env).arg("mirror").args(args))
}

fn lines(out: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What rsync would itemize for the same mirror (without doing it).
fn rsync_would(src: &Path, dest: &Path) -> Option<BTreeSet<String>> {
    rsync_would_with(src, dest, &[])
}

/// [`rsync_would`] with more rsync options.
fn rsync_would_with(src: &Path, dest: &Path, more: &[&str]) -> Option<BTreeSet<String>> {
    let out = std::process::Command::new("rsync")
        .args(["-aHAXn", "--delete", "--itemize-changes", "--numeric-ids"])
        .args(more)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dest.display()))
        .output()
        .ok()?;
    assert!(out.status.success());
    Some(lines(&out.stdout))
}

fn set_mtime_of(path: &Path, secs: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path and two timespecs.
    assert_eq!(
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                p.as_ptr(),
                [t, t].as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        },
        0
    );
}

#[test]
fn itemized_changes_read_as_rsyncs_and_the_guards_hold() {
    let env = TestEnv::new();
    let (src, dest) = (env.path("src"), env.path("dest"));
    let (s, d) = (src.to_str().unwrap(), dest.to_str().unwrap());
    write_file(&src.join("keep"), b"unchanged");
    write_file(&src.join("grow"), b"short");
    write_file(&src.join("perm"), b"mode changes");
    write_file(&src.join("old"), b"to be deleted");
    write_file(&src.join("sub/inner"), b"inner");
    write_file(&src.join("cache.tmp"), b"excluded");
    expect_code(&mirror(&env, &[s, d]), 0, "first mirror");

    // Changes of every common kind, with rsync's forecast of them.
    write_file(&src.join("grow"), b"longer now");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("perm"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(src.join("old")).unwrap();
    write_file(&src.join("new"), b"new file");
    fs::create_dir(src.join("newdir")).unwrap();
    std::os::unix::fs::symlink("keep", src.join("link")).unwrap();
    for p in [&src, &src.join("sub")] {
        set_mtime_of(p, 1_700_000_000);
    }
    let forecast = rsync_would(&src, &dest);

    // --dry-run says the same and changes nothing.
    let before = snapshot_tree(&dest);
    let dry = mirror(&env, &["--dry-run", "-i", s, d]);
    expect_code(&dry, 0, "dry run");
    assert_eq!(snapshot_tree(&dest), before, "a dry run changed the mirror");
    let out = mirror(&env, &["-i", s, d]);
    expect_code(&out, 0, "mirror");
    assert_eq!(lines(&dry.stdout), lines(&out.stdout));
    if let Some(forecast) = forecast {
        assert_eq!(
            lines(&out.stdout),
            forecast,
            "itemized differently from rsync"
        );
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    for expected in [
        ">f.s....... grow",
        ".f...p..... perm",
        "*deleting   old",
        ">f+++++++++ new",
        "cd+++++++++ newdir/",
        "cL+++++++++ link -> keep",
    ] {
        assert!(
            listing.contains(expected),
            "{expected:?} missing from:\n{listing}"
        );
    }
    assert_same_tree(&src, &dest);

    // Nothing to do: nothing said.
    let again = mirror(&env, &["-i", s, d]);
    assert!(lines(&again.stdout).is_empty(), "{}", stdout(&again));

    // Excludes leave the mirror's own copy alone; --no-delete keeps extras.
    write_file(&dest.join("extra"), b"only here");
    let out = mirror(&env, &["--no-delete", "-e", "*.tmp", s, d]);
    expect_code(&out, 0, "no-delete");
    assert!(dest.join("extra").exists());
    let out = mirror(&env, &["-e", "*.tmp", s, d]);
    expect_code(&out, 0, "with excludes");
    assert!(!dest.join("extra").exists());
    assert_eq!(
        fs::read(dest.join("cache.tmp")).unwrap(),
        b"excluded",
        "excluded entries are not the source's to delete"
    );

    // Same size and time, other bytes: only --checksum sees it.
    let meta = fs::metadata(src.join("keep")).unwrap();
    write_file(&src.join("keep"), b"UNCHANGED");
    use std::os::unix::fs::MetadataExt;
    set_mtime_of(&src.join("keep"), meta.mtime());
    set_mtime_of(&dest.join("keep"), meta.mtime());
    expect_code(&mirror(&env, &[s, d]), 0, "size and time only");
    assert_eq!(fs::read(dest.join("keep")).unwrap(), b"unchanged");
    let out = mirror(&env, &["--checksum", "-i", s, d]);
    assert!(
        stdout(&out).contains(">fc........ keep"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(dest.join("keep")).unwrap(), b"UNCHANGED");

    // --max-delete: an emptied source refuses, changing nothing.
    let before = snapshot_tree(&dest);
    fs::remove_dir_all(&src).unwrap();
    fs::create_dir(&src).unwrap();
    let out = mirror(&env, &["--max-delete", "3", s, d]);
    expect_code(&out, 1, "max-delete");
    let e = stderr(&out);
    assert!(
        e.contains("--max-delete 3") && e.contains("nothing was changed"),
        "{e}"
    );
    assert_eq!(snapshot_tree(&dest), before);

    // A mirror inside its source, or the source inside the mirror, is refused.
    let out = mirror(&env, &[s, &format!("{s}/inside")]);
    expect_code(&out, 1, "dest inside src");
    assert!(
        stderr(&out).contains("inside its source"),
        "{}",
        stderr(&out)
    );
    assert!(!src.join("inside").exists());
    let out = mirror(&env, &[d, s]);
    expect_code(&out, 0, "the other way round is fine");

    // A DEST that exists and is not a folder is refused and left as it is.
    let file = env.path("a-file");
    fs::write(&file, b"precious").unwrap();
    let out = mirror(&env, &[s, file.to_str().unwrap()]);
    expect_code(&out, 1, "dest is a file");
    assert!(
        stderr(&out).contains("exists and is not a folder"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&file).unwrap(), b"precious");

    // A DEST URL that is not sftp:// is a usage error, not a folder named "s3:".
    let out = mirror(&env, &[s, "s3://bucket/www"]);
    expect_code(&out, 2, "dest is an s3 URL");
    assert!(
        stderr(&out).contains("a folder or an sftp:// URL"),
        "{}",
        stderr(&out)
    );
    assert!(!env.root.join("s3:").exists());
}

#[test]
fn the_json_summary_counts_what_was_done() {
    let env = TestEnv::new();
    let (src, dest) = (env.path("src"), env.path("dest"));
    let mut rng = Rng::new(3);
    write_random(&src.join("a"), 100_000, &mut rng);
    write_file(&src.join("b/c"), b"c");
    fs::hard_link(src.join("a"), src.join("b/a-again")).unwrap();
    let out = run(bunker(&env).args(["--json", "mirror"]).arg(&src).arg(&dest));
    expect_code(&out, 0, "mirror --json");
    let v = parse_json(&out.stdout);
    assert_eq!(v["files_copied"], 2, "{v}");
    assert_eq!(v["hard_links"], 1, "{v}");
    assert_eq!(v["bytes_copied"], 100_001, "{v}");
    assert_eq!(v["deleted"], 0, "{v}");
    assert!(v["errors"].as_array().unwrap().is_empty());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(dest.join("a")).unwrap().ino(),
        fs::metadata(dest.join("b/a-again")).unwrap().ino()
    );
}

/// Kill -9 at several moments while a changing tree is mirrored: every
/// file in the mirror is then wholly one of its versions, never a mix, and
/// the next mirror converges.
#[test]
fn a_killed_mirror_leaves_whole_files_and_the_next_converges() {
    let env = TestEnv::new();
    let (src, dest) = (env.path("src"), env.path("dest"));
    let version = |v: u8, i: usize| vec![v; 200_000 + i * 1000];
    for i in 0..40 {
        write_file(&src.join(format!("d{}/f{i}", i % 4)), &version(b'a', i));
    }
    expect_code(
        &run(bunker(&env).arg("mirror").arg(&src).arg(&dest)),
        0,
        "first",
    );
    for (round, delay) in [5u64, 15, 30, 60].into_iter().enumerate() {
        let v = b'b' + round as u8;
        for i in 0..40 {
            write_file(&src.join(format!("d{}/f{i}", i % 4)), &version(v, i));
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bunker"));
        cmd.arg("mirror")
            .arg(&src)
            .arg(&dest)
            .env("HOME", &env.home);
        kill_after(&mut cmd, delay);
        for i in 0..40 {
            let got = fs::read(dest.join(format!("d{}/f{i}", i % 4))).unwrap();
            // An earlier kill may have left an older version still.
            assert!(
                (b'a'..=v).any(|old| got == version(old, i)),
                "d{}/f{i} is neither its old nor its new version after a kill at {delay} ms: {} bytes of {:?}…",
                i % 4,
                got.len(),
                got.first()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    expect_code(
        &run(bunker(&env).arg("mirror").arg(&src).arg(&dest)),
        0,
        "after the kills",
    );
    assert_same_tree(&src, &dest);
    let leftovers: Vec<_> = files_below(&dest)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(".bunker-mirror-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// An unreadable folder of SRC is named, makes the exit code 3, and holds
/// back deletions in the folders above it (as rsync does); the rest is
/// mirrored. Run as an ordinary user (as root the test drops to `nobody`).
#[test]
fn an_unreadable_folder_is_named_exit_3_and_holds_back_deletions() {
    let env = TestEnv::new();
    let (src, dest) = (env.path("src"), env.path("dest"));
    write_file(&src.join("ok"), b"readable");
    write_file(&src.join("top/locked/secret"), b"hidden");
    write_file(&src.join("top/fine"), b"fine");
    write_file(&dest.join("top/stale"), b"would be deleted");
    write_file(&dest.join("elsewhere/stale"), b"would be deleted too");
    write_file(&src.join("elsewhere/x"), b"x");
    use std::os::unix::fs::PermissionsExt;
    let mut cmd = if is_root() {
        let owned = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&env.root)
            .status()
            .unwrap();
        assert!(owned.success());
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_bunker"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_bunker"))
    };
    fs::set_permissions(src.join("top/locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = cmd
        .arg("mirror")
        .arg(&src)
        .arg(&dest)
        .env("HOME", &env.home)
        .output()
        .unwrap();
    fs::set_permissions(src.join("top/locked"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_no_panic(&out);
    expect_code(&out, 3, "mirror with an unreadable folder");
    let e = stderr(&out);
    assert!(e.contains("top/locked"), "{e}");
    assert_eq!(fs::read(dest.join("ok")).unwrap(), b"readable");
    assert_eq!(fs::read(dest.join("top/fine")).unwrap(), b"fine");
    assert!(
        dest.join("top/stale").exists(),
        "deleted beside an unreadable folder"
    );
    assert!(
        !dest.join("elsewhere/stale").exists(),
        "deletions elsewhere go on"
    );
}

/// `--verify` re-reads the mirror: it passes after a mirror, and catches a
/// file whose bytes changed behind the same size and time (which the quick
/// check cannot see).
#[test]
fn verify_rereads_the_mirror_and_catches_silent_changes() {
    let env = TestEnv::new();
    let (src, dest) = (env.path("src"), env.path("dest"));
    let (s, d) = (src.to_str().unwrap(), dest.to_str().unwrap());
    write_file(&src.join("a/b"), b"original bytes");
    std::os::unix::fs::symlink("a/b", src.join("link")).unwrap();
    let out = mirror(&env, &["--verify", s, d]);
    expect_code(&out, 0, "mirror --verify");
    assert!(
        stderr(&out).contains("the mirror equals the source"),
        "{}",
        stderr(&out)
    );
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(dest.join("a/b")).unwrap();
    write_file(&dest.join("a/b"), b"ORIGINAL BYTES");
    set_mtime(&dest.join("a/b"), m.mtime() as u64, m.mtime_nsec() as u32);
    let out = mirror(&env, &["--verify", s, d]);
    expect_code(&out, 1, "verify finds the silent change");
    let e = stderr(&out);
    assert!(e.contains("a/b") && e.contains("content differs"), "{e}");
    // --checksum repairs it; verify agrees.
    expect_code(
        &mirror(&env, &["--checksum", "--verify", s, d]),
        0,
        "repaired",
    );
    assert_eq!(fs::read(dest.join("a/b")).unwrap(), b"original bytes");
}

#[test]
fn a_mirror_over_sftp_leaves_nothing_for_rsync_to_do_and_says_what_it_cannot_keep() {
    let Some(services) = bunker_backend::testing::TestServices::get("mirror_over_sftp") else {
        return;
    };
    let url = services.url(bunker_backend::testing::Service::Sftp, "mirror");
    let served = Path::new(url.split_once("bunker-sftp").unwrap().1).to_path_buf();
    let env = TestEnv::remote(
        url.clone(),
        services.env(bunker_backend::testing::Service::Sftp),
    );
    let src = env.path("src");
    let mut rng = Rng::new(3);
    write_random(&src.join("a/big.bin"), 2_000_000, &mut rng);
    write_file(&src.join("a/b/small"), b"small");
    write_file(&src.join("gone/soon"), b"soon");
    fs::hard_link(src.join("a/b/small"), src.join("twin")).unwrap();
    std::os::unix::fs::symlink("a/b/small", src.join("link")).unwrap();
    chmod(&src.join("a/b/small"), 0o640);
    set_mtime_of(&src.join("a/b"), 1_000_000_000);
    let s = src.to_str().unwrap();
    // SFTP cannot set a symlink's own time (SETSTAT follows links).
    let rsync_lists =
        |dest: &Path| rsync_would_with(&src, dest, &["--omit-link-times"]).unwrap_or_default();

    let out = mirror(&env, &[s, &url]);
    expect_code(&out, 0, "first mirror over sftp");
    assert_eq!(
        rsync_lists(&served),
        BTreeSet::new(),
        "rsync finds nothing to do"
    );
    assert_eq!(
        fs::metadata(served.join("twin")).unwrap().nlink(),
        2,
        "hard link kept"
    );

    // Changes of every kind; what was there beside the source goes.
    fs::remove_dir_all(src.join("gone")).unwrap();
    write_file(&src.join("gone"), b"a file where a folder was");
    write_random(&src.join("a/big.bin"), 2_000_001, &mut rng);
    // Another second than the first copy's, whenever the test runs.
    set_mtime_of(&src.join("a/big.bin"), 1_500_000_000);
    std::os::unix::fs::symlink("elsewhere", src.join("link2")).unwrap();
    write_file(&served.join("extra/inside"), b"not in the source");
    let out = mirror(&env, &["-i", "--verify", s, &url]);
    expect_code(&out, 0, "second mirror over sftp");
    let itemized = lines(&out.stdout);
    for want in [
        "*deleting   extra/",
        ">f+++++++++ gone",
        ">f.st...... a/big.bin",
        "cL+++++++++ link2",
    ] {
        assert!(itemized.contains(want), "{want} in {itemized:?}");
    }
    assert!(
        stderr(&out).contains("the mirror equals the source"),
        "{}",
        stderr(&out)
    );
    assert_eq!(rsync_lists(&served), BTreeSet::new());

    // A FIFO cannot be kept over SFTP: said, not an error.
    let fifo = std::ffi::CString::new(src.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let out = mirror(&env, &[s, &url]);
    expect_code(&out, 0, "a FIFO in the source");
    assert!(
        stderr(&out).contains("warning: 1 special file"),
        "{}",
        stderr(&out)
    );

    // An emptied source is refused by --max-delete, changing nothing.
    fs::remove_dir_all(&src).unwrap();
    fs::create_dir(&src).unwrap();
    let out = mirror(&env, &["--max-delete", "2", s, &url]);
    expect_code(&out, 1, "max-delete over sftp");
    assert!(served.join("a/big.bin").exists());
}
