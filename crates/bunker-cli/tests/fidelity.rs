//! Restores bring back what the file system had: holes, hard links,
//! extended attributes, special files and awkward names.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use common::*;

/// Backs up `src` and restores it into `out`, returning the restore's output.
fn round_trip(env: &TestEnv) -> std::path::PathBuf {
    let src = env.path("src");
    let summary = env.backup(&[src.to_str().unwrap()]);
    let target = env.path("out");
    let spec = format!(
        "{}:{}",
        summary["snapshot_id"].as_str().unwrap(),
        src.display()
    );
    env.restore_verified(&spec, &target);
    target
}

#[test]
fn sparse_files_keep_their_holes() {
    let env = TestEnv::new();
    env.init();
    let path = env.path("src/sparse.img");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = fs::File::create(&path).unwrap();
    let mut rng = Rng::new(5);
    let data = rng.bytes(1 << 20);
    f.write_all_at(&data, 40 << 20).unwrap();
    f.set_len(96 << 20).unwrap();
    drop(f);

    let target = round_trip(&env);
    let restored = target.join("sparse.img");
    assert_eq!(fs::read(&restored).unwrap(), fs::read(&path).unwrap());
    let m = fs::metadata(&restored).unwrap();
    assert_eq!(m.len(), 96 << 20);
    let allocated = m.blocks() * 512;
    assert!(
        allocated < 16 << 20,
        "96 MiB file with 1 MiB of data restored with {allocated} bytes allocated"
    );
}

#[test]
fn hard_links_are_restored_as_hard_links() {
    let env = TestEnv::new();
    env.init();
    write_file(&env.path("src/a"), b"shared content");
    fs::create_dir_all(env.path("src/sub")).unwrap();
    fs::hard_link(env.path("src/a"), env.path("src/sub/b")).unwrap();
    fs::hard_link(env.path("src/a"), env.path("src/c")).unwrap();
    write_file(&env.path("src/single"), b"not linked");

    let target = round_trip(&env);
    let ino = |rel: &str| fs::metadata(target.join(rel)).unwrap().ino();
    assert_eq!(ino("a"), ino("sub/b"));
    assert_eq!(ino("a"), ino("c"));
    assert_ne!(ino("a"), ino("single"));
    assert_eq!(fs::metadata(target.join("a")).unwrap().nlink(), 3);
    assert_eq!(fs::read(target.join("sub/b")).unwrap(), b"shared content");
}

#[test]
fn extended_attributes_round_trip() {
    let env = TestEnv::new();
    env.init();
    let file = env.path("src/tagged");
    write_file(&file, b"x");
    fs::create_dir_all(env.path("src/dir")).unwrap();
    if let Err(e) = xattr_set(&file, "user.comment", b"hello \x00 binary") {
        eprintln!("skipping: this file system has no user extended attributes ({e})");
        return;
    }
    xattr_set(&env.path("src/dir"), "user.dir-note", b"on a directory").unwrap();

    let target = round_trip(&env);
    assert_eq!(
        xattr_get(&target.join("tagged"), "user.comment").as_deref(),
        Some(&b"hello \x00 binary"[..])
    );
    assert_eq!(
        xattr_get(&target.join("dir"), "user.dir-note").as_deref(),
        Some(&b"on a directory"[..])
    );
}

#[test]
fn awkward_names_and_special_files_round_trip() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let names: Vec<Vec<u8>> = vec![
        b"not-utf8-\xff\xfe".to_vec(),
        b"new\nline".to_vec(),
        b"back\\slash".to_vec(),
        b"-starts-with-dash".to_vec(),
        vec![b'n'; 255],
    ];
    for n in &names {
        fs::write(src.join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
    let fifo = src.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0);
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("..", src.join("to-parent-dir")).unwrap();

    let target = round_trip(&env);
    for n in &names {
        assert_eq!(
            fs::read(target.join(std::ffi::OsStr::from_bytes(n))).unwrap(),
            *n
        );
    }
    let m = fs::symlink_metadata(target.join("fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
    assert_eq!(m.mode() & 0o777, 0o640);
    assert_eq!(
        fs::read_link(target.join("dangling")).unwrap(),
        Path::new("/nonexistent/target")
    );
    assert_eq!(
        fs::read_link(target.join("to-parent-dir")).unwrap(),
        Path::new("..")
    );
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    xattr::set(path, name, value)
}

fn xattr_get(path: &Path, name: &str) -> Option<Vec<u8>> {
    xattr::get(path, name).ok().flatten()
}

#[test]
fn dumped_tar_keeps_hard_links_modes_times_and_xattrs() {
    let env = TestEnv::new();
    env.init();
    write_file(&env.path("src/a"), b"linked");
    fs::hard_link(env.path("src/a"), env.path("src/b")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.path("src/a"), fs::Permissions::from_mode(0o604)).unwrap();
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    fs::File::options()
        .write(true)
        .open(env.path("src/a"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let xattr_kept = xattr::set(env.path("src/a"), "user.note", b"in the tar").is_ok();
    // Before 1970, to the nanosecond.
    write_file(&env.path("src/old"), b"old");
    let t = libc::timespec {
        tv_sec: -86_400 * 365,
        tv_nsec: 5,
    };
    let p = std::ffi::CString::new(env.path("src/old").as_os_str().as_bytes()).unwrap();
    // SAFETY: p is a valid NUL-terminated path and the array holds two timespecs.
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), [t, t].as_ptr(), 0) },
        0
    );
    let src = env.path("src");
    env.backup(&[src.to_str().unwrap()]);

    let out = run(env.cmd().args(["dump", "latest", src.to_str().unwrap()]));
    expect_code(&out, 0, "dump");
    let x = env.path("x");
    fs::create_dir(&x).unwrap();
    let mut tar = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*"])
        .arg("-xpf")
        .arg("-")
        .arg("-C")
        .arg(&x)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tar.stdin.as_mut().unwrap(), &out.stdout).unwrap();
    drop(tar.stdin.take());
    assert!(tar.wait().unwrap().success());
    let (a, b) = (
        fs::metadata(x.join("a")).unwrap(),
        fs::metadata(x.join("b")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard link lost in the tar stream");
    assert_eq!(a.mode() & 0o7777, 0o604);
    assert_eq!(a.mtime(), 1_500_000_000);
    assert_eq!(fs::read(x.join("b")).unwrap(), b"linked");
    let old = fs::symlink_metadata(x.join("old")).unwrap();
    assert_eq!((old.mtime(), old.mtime_nsec()), (-86_400 * 365, 5));
    if xattr_kept {
        assert_eq!(
            xattr::get(x.join("a"), "user.note").unwrap().as_deref(),
            Some(&b"in the tar"[..])
        );
    }
}

/// Every case at once, judged by an independent tool: `rsync -aHAXn
/// --itemize-changes` between source and restore must list nothing.
#[test]
fn rsync_finds_no_difference_between_source_and_restore() {
    if !rsync_installed() {
        return;
    }
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    let acl = build_tree(&src, is_root());
    let target = round_trip(&env);
    assert_rsync_same(&src, &target, &acl);
}

/// `bunker mirror` of every case, then of a tree where files became
/// folders and back, links changed and entries vanished: rsync must find
/// nothing to do between source and mirror, deletions included.
#[test]
fn rsync_finds_no_difference_between_source_and_mirror() {
    if !rsync_installed() {
        return;
    }
    let env = TestEnv::new();
    let src = env.path("src");
    let acl = build_tree(&src, is_root());
    let dest = env.path("mirror");
    let mirror = |what: &str| {
        expect_code(
            &run(bunker(&env).arg("mirror").arg(&src).arg(&dest)),
            0,
            what,
        )
    };
    mirror("first mirror");
    assert_rsync_same(&src, &dest, &acl);
    assert_rsync_deletes_nothing(&src, &dest);

    // Replacements both ways, a changed link, a vanished folder, extras in the mirror.
    fs::remove_file(src.join("empty")).unwrap();
    write_file(&src.join("empty/now-a-folder"), b"was a file");
    fs::remove_dir_all(src.join("empty-dir")).unwrap();
    write_file(&src.join("empty-dir"), b"was a folder");
    fs::remove_file(src.join("deep/rel-link")).unwrap();
    std::os::unix::fs::symlink("../big.bin", src.join("deep/rel-link")).unwrap();
    fs::remove_dir_all(src.join("deep/er/still")).unwrap();
    write_file(&dest.join("only-in-the-mirror"), b"extra");
    fs::create_dir_all(dest.join("extra-dir/sub")).unwrap();
    mirror("second mirror");
    assert_rsync_deletes_nothing(&src, &dest);
    assert!(!dest.join("only-in-the-mirror").exists() && !dest.join("extra-dir").exists());
    assert_eq!(fs::read(dest.join("empty-dir")).unwrap(), b"was a folder");
    assert_eq!(
        fs::read_link(dest.join("deep/rel-link")).unwrap(),
        Path::new("../big.bin")
    );
}

/// `rsync -aHAXn --delete` lists nothing: no difference and nothing extra.
fn assert_rsync_deletes_nothing(src: &Path, dest: &Path) {
    assert_rsync_lists_nothing(src, dest, &["--delete"]);
}

/// `rsync -aHAXn --itemize-changes --numeric-ids EXTRA SRC/ DEST/` lists nothing.
fn assert_rsync_lists_nothing(src: &Path, dest: &Path, extra: &[&str]) {
    let out = std::process::Command::new("rsync")
        .args(["-aHAXn", "--itemize-changes", "--numeric-ids"])
        .args(extra)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dest.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.trim().is_empty(),
        "rsync sees differences:\n{listing}"
    );
}

/// The same round trip by an ordinary user (run as root, the test drops to
/// `nobody` for every bunker command).
#[test]
fn an_ordinary_user_gets_the_same_fidelity() {
    if !is_root() || !rsync_installed() {
        eprintln!("skipping: needs root to become another user (the test above ran unprivileged)");
        return;
    }
    let env = TestEnv::new();
    let src = env.path("src");
    let acl = build_tree(&src, false);
    let nobody = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&env.root)
        .status()
        .unwrap();
    assert!(nobody.success());
    let as_nobody = |args: &[&str]| {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_bunker"))
            .arg("-r")
            .arg(&env.repo)
            .arg("--password-file")
            .arg(&env.password_file)
            .args(args)
            .env("HOME", &env.home)
            .env("BUNKER_KDF_PARAMS", "m=1024,t=1,p=1")
            .current_dir(&env.root);
        let out = c.output().unwrap();
        assert_no_panic(&out);
        expect_code(&out, 0, &format!("{args:?} as nobody"));
        out
    };
    as_nobody(&["init"]);
    as_nobody(&["backup", "-q", src.to_str().unwrap()]);
    let target = env.path("out");
    let spec = format!("latest:{}", src.display());
    as_nobody(&[
        "restore",
        &spec,
        "--verify",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(fs::metadata(&target).unwrap().uid(), 65534);
    assert_rsync_same(&src, &target, &acl);
}

fn rsync_installed() -> bool {
    let found = std::process::Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        eprintln!("skipping: rsync is not installed");
    }
    found
}

/// A POSIX ACL (user 1234 may read), in the kernel's xattr encoding.
struct AclCase {
    set: bool,
    value: Vec<u8>,
}

/// Builds every fidelity case below `src`; `privileged` adds those only
/// root can create (foreign owners, setuid, device nodes, `security.*`).
fn build_tree(src: &Path, privileged: bool) -> AclCase {
    let mut rng = Rng::new(8);
    write_random(&src.join("big.bin"), 5 << 20, &mut rng);
    write_file(&src.join("empty"), b"");
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    write_file(&src.join("deep/er/still/file.txt"), b"nested");
    fs::hard_link(src.join("big.bin"), src.join("deep/big-link")).unwrap();
    std::os::unix::fs::symlink("../empty", src.join("deep/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc", src.join("abs-dir-link")).unwrap();
    std::os::unix::fs::symlink("missing", src.join("dangling")).unwrap();
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.write_all_at(b"end", 20 << 20).unwrap();
    drop(sparse);
    write_file(
        &src.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name")),
        b"latin1",
    );
    let c = std::ffi::CString::new(src.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let _ = xattr::set(src.join("empty"), "user.note", b"kept");
    // A POSIX ACL (user 1234 may read), in the kernel's xattr encoding:
    // version 2, then (tag, perm, id) entries: owner rw, user:1234 r, group r, mask r, other -.
    let acl: Vec<u8> = [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1234),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ]
    .iter()
    .fold(2u32.to_le_bytes().to_vec(), |mut v, (tag, perm, id)| {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
        v
    });
    let acl_set = xattr::set(
        src.join("deep/er/still/file.txt"),
        "system.posix_acl_access",
        &acl,
    )
    .is_ok();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("deep/er"), fs::Permissions::from_mode(0o1777)).unwrap();
    if privileged {
        write_file(&src.join("owned"), b"by someone else");
        std::os::unix::fs::chown(src.join("owned"), Some(1234), Some(5678)).unwrap();
        fs::set_permissions(src.join("owned"), fs::Permissions::from_mode(0o6750)).unwrap();
        let dev = std::ffi::CString::new(src.join("null-dev").as_os_str().as_bytes()).unwrap();
        // SAFETY: dev is a valid NUL-terminated path; 1,3 is /dev/null's number.
        assert_eq!(
            unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) },
            0
        );
        let _ = xattr::set(src.join("owned"), "security.bunker-test", b"root only");
    }
    // Old and far-future times, to the nanosecond, set last (after every change below them).
    for (rel, secs, nanos) in [
        ("big.bin", -86_400 * 365, 5),
        ("empty", 4_102_444_800 + 7, 123_456_789),
        ("deep/er", 1_000_000_000, 1),
    ] {
        let t = libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        };
        let p = std::ffi::CString::new(src.join(rel).as_os_str().as_bytes()).unwrap();
        // SAFETY: p is a valid NUL-terminated path and the array holds two timespecs.
        assert_eq!(
            unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), [t, t].as_ptr(), 0) },
            0
        );
    }

    AclCase {
        set: acl_set,
        value: acl,
    }
}

/// rsync, which knows nothing of Bunker, must see no difference.
fn assert_rsync_same(src: &Path, target: &Path, acl: &AclCase) {
    assert_rsync_lists_nothing(src, target, &[]);
    assert!(
        fs::metadata(target.join("sparse")).unwrap().blocks() * 512 < 1 << 20,
        "holes filled"
    );
    if acl.set {
        let restored = xattr::get(
            target.join("deep/er/still/file.txt"),
            "system.posix_acl_access",
        )
        .unwrap();
        assert_eq!(restored.as_deref(), Some(&acl.value[..]), "POSIX ACL lost");
    } else {
        eprintln!("note: this file system refused a POSIX ACL; that case was not checked");
    }
}
