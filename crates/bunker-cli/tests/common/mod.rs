//! Shared helpers for the `bunker` command-line tests: an isolated
//! environment per test, a deterministic data generator, tree comparison.

#![allow(dead_code)]

pub mod databases;
pub mod web;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// Password used by `TestEnv::cmd`.
pub const PASSWORD: &str = "correct horse battery staple";

/// Environment variables that could point `bunker` at a real repository.
const SCRUBBED_VARS: &[&str] = &[
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "BUNKER_CACHE_DIR",
    "BUNKER_REPOSITORY",
    "BUNKER_PASSWORD",
    "BUNKER_PASSWORD_FILE",
    "BUNKER_PASSWORD_COMMAND",
];

/// One isolated world: a temp HOME, a place for an explicit repository and
/// a password file.
pub struct TestEnv {
    tmp: TempDir,
    /// Scratch root (everything below is removed at the end of the test).
    pub root: PathBuf,
    /// `$HOME` for every invocation.
    pub home: PathBuf,
    /// Explicit repository used with `-r`.
    pub repo: PathBuf,
    /// File holding `PASSWORD`.
    pub password_file: PathBuf,
    /// What `-r` names: `repo`, or a remote repository's URL.
    pub repo_arg: String,
    /// Variables set for every invocation (a remote service's settings).
    pub extra_env: Vec<(String, String)>,
}

impl TestEnv {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("bunker-cli-test-")
            .tempdir()
            .expect("create temp dir");
        let root = tmp.path().to_path_buf();
        let home = root.join("home");
        fs::create_dir(&home).unwrap();
        let password_file = root.join("password");
        fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        TestEnv {
            repo_arg: root.join("repo").to_string_lossy().into_owned(),
            extra_env: Vec::new(),
            repo: root.join("repo"),
            tmp,
            root,
            home,
            password_file,
        }
    }

    /// A world whose explicit repository is the remote one at `url`,
    /// reached with the variables `env`.
    pub fn remote(url: String, env: Vec<(String, String)>) -> Self {
        TestEnv {
            repo_arg: url,
            extra_env: env,
            ..TestEnv::new()
        }
    }

    /// A path below the scratch root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes a one-line password file below the scratch root.
    pub fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let p = self.root.join(name);
        fs::write(&p, format!("{password}\n")).unwrap();
        p
    }

    /// `bunker` with the explicit repository and password file.
    pub fn cmd(&self) -> Command {
        self.cmd_with_password(&self.password_file)
    }

    /// `bunker -r REPO --password-file FILE`.
    pub fn cmd_with_password(&self, password_file: &Path) -> Command {
        let mut c = bunker(self);
        c.arg("-r")
            .arg(&self.repo_arg)
            .arg("--password-file")
            .arg(password_file);
        c
    }

    /// `bunker -r REPO --password-file FILE` as a std `Command`, for tests
    /// that spawn, signal or race processes (assert_cmd's cannot be spawned).
    pub fn spawnable(&self) -> std::process::Command {
        self.spawnable_with_password(&self.password_file)
    }

    /// [`spawnable`](Self::spawnable) with another password file.
    pub fn spawnable_with_password(&self, password_file: &Path) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bunker"));
        c.env("HOME", &self.home)
            .env("BUNKER_KDF_PARAMS", "m=1024,t=1,p=1")
            .env_remove("RUST_BACKTRACE")
            .current_dir(&self.root)
            .arg("-r")
            .arg(&self.repo_arg)
            .arg("--password-file")
            .arg(password_file);
        for v in SCRUBBED_VARS {
            c.env_remove(v);
        }
        c.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Creates the explicit repository.
    pub fn init(&self) {
        let out = run(self.cmd().arg("init"));
        expect_code(&out, 0, "init");
    }

    /// Creates the explicit repository with 1 MiB packs, so that a few MiB
    /// of data make many packs.
    pub fn init_small_packs(&self) {
        let out = run(self.cmd().args(["init", "--pack-size", "1M"]));
        expect_code(&out, 0, "init --pack-size 1M");
    }

    /// Writes `len` random bytes to each `src/f{i}` for `i` in `files`.
    pub fn write_source_files(&self, files: std::ops::Range<usize>, len: usize, rng: &mut Rng) {
        for i in files {
            write_random(&self.path(&format!("src/f{i}")), len, rng);
        }
    }

    /// `bunker -r REPO ARGS` on another repository directory (a damaged copy).
    pub fn on_repo(&self, repo: &Path, args: &[&str]) -> Output {
        let mut c = bunker(self);
        c.arg("-r")
            .arg(repo)
            .arg("--password-file")
            .arg(&self.password_file)
            .args(args);
        run(&mut c)
    }

    /// `prune --json ARGS`, expecting exit 0; returns the report.
    pub fn prune(&self, args: &[&str]) -> Value {
        let out = run(self.cmd().args(["prune", "--json"]).args(args));
        expect_code(&out, 0, "prune");
        parse_json(&out.stdout)
    }

    /// `check --read-data`, expecting a clean repository.
    pub fn check_read_data(&self) {
        let out = run(self.cmd().args(["check", "--read-data"]));
        expect_code(&out, 0, "check --read-data");
    }

    /// `backup ARGS --json` on the explicit repository, expecting exit 0;
    /// returns the summary line.
    pub fn backup(&self, args: &[&str]) -> Value {
        let mut c = self.cmd();
        c.arg("backup").arg("--json").args(args);
        let out = run(&mut c);
        expect_code(&out, 0, &format!("backup {args:?}"));
        backup_summary(&out)
    }

    /// `restore SPEC --verify --target TARGET`, expecting exit 0.
    pub fn restore_verified(&self, spec: &str, target: &Path) -> Output {
        let out = run(self
            .cmd()
            .args(["restore", spec, "--verify", "--target"])
            .arg(target));
        expect_code(&out, 0, &format!("restore {spec}"));
        out
    }

    /// `snapshots --json ARGS` on the explicit repository.
    pub fn snapshots(&self, args: &[&str]) -> Vec<Value> {
        let out = run(self.cmd().arg("snapshots").arg("--json").args(args));
        expect_code(&out, 0, "snapshots");
        match parse_json(&out.stdout) {
            Value::Array(a) => a,
            other => panic!("snapshots --json is not an array: {other}"),
        }
    }
}

/// The `bunker` binary with a scrubbed environment: HOME is the test's temp
/// home, no repository or password variables, cheap key derivation.
pub fn bunker(env: &TestEnv) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bunker"));
    c.env("HOME", &env.home)
        .env("BUNKER_KDF_PARAMS", "m=1024,t=1,p=1")
        .env_remove("RUST_BACKTRACE")
        .current_dir(&env.root);
    for v in SCRUBBED_VARS {
        c.env_remove(v);
    }
    c.envs(env.extra_env.iter().map(|(k, v)| (k, v)));
    c
}

/// Runs the command (empty stdin unless one was set), returning its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run bunker");
    assert_no_panic(&out);
    out
}

/// Fails if the process panicked or printed a backtrace hint.
pub fn assert_no_panic(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "bunker panicked:\n{err}"
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, printing both streams on mismatch.
pub fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}, got {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Parses one JSON document.
pub fn parse_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(bytes)))
}

/// Every JSON value in a stream of concatenated documents (status lines
/// followed by a summary); panics if any part is not JSON.
pub fn parse_json_stream(bytes: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| {
            panic!(
                "not a JSON stream ({e}):\n{}",
                String::from_utf8_lossy(bytes)
            )
        })
}

/// The last JSON line of a `backup --json` run, checked to be the summary.
pub fn backup_summary(out: &Output) -> Value {
    let text = stdout(out);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("backup printed nothing on stdout; stderr:\n{}", stderr(out)));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let _: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("backup --json line is not JSON ({e}): {line}"));
    }
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(
        v["message_type"], "summary",
        "last line is not the summary: {v}"
    );
    v
}

/// Deterministic xorshift64* generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// Writes `len` pseudo-random bytes to `path` (creating parents); returns them.
pub fn write_random(path: &Path, len: usize, rng: &mut Rng) -> Vec<u8> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    let data = rng.bytes(len);
    fs::write(path, &data).unwrap();
    data
}

/// Writes `data` to `path`, creating parents.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
}

/// Every file (not directory) below `dir`, recursively, with its size.
pub fn files_below(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len()));
            }
        }
    }
    out.sort();
    out
}

/// Total size of the files below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    files_below(dir).iter().map(|(_, s)| s).sum()
}

/// Recursive copy preserving file contents (used to damage repository copies).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        let m = fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            copy_dir(&e.path(), &to);
        } else if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &to).unwrap();
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// XORs one byte of a file.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut b = fs::read(path).unwrap();
    b[offset] ^= 0x5a;
    fs::write(path, b).unwrap();
}

/// What the comparison sees of one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

/// One entry with the metadata a restore must reproduce.
#[derive(Debug, PartialEq, Eq)]
pub struct Meta {
    pub entry: Entry,
    /// Permission bits (not for symlinks, whose bits are not restorable on Linux).
    pub mode: Option<u32>,
    pub mtime: (i64, i64),
}

/// Every entry below `dir` (not `dir` itself), keyed by relative path.
pub fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Meta> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Meta>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let entry = if ft.is_dir() {
            walk(base, &p, out);
            Entry::Dir
        } else if ft.is_symlink() {
            Entry::Symlink(fs::read_link(&p).unwrap())
        } else if ft.is_file() {
            Entry::File(fs::read(&p).unwrap())
        } else {
            panic!("unexpected file type at {}", p.display())
        };
        let mode = (!ft.is_symlink()).then(|| m.permissions().mode() & 0o7777);
        out.insert(
            p.strip_prefix(base).unwrap().to_path_buf(),
            Meta {
                entry,
                mode,
                mtime: (m.mtime(), m.mtime_nsec()),
            },
        );
    }
}

/// Asserts that `restored` holds exactly what `source` holds: same entries,
/// bytes, permission bits, modification times (s and ns), symlink targets.
pub fn assert_same_tree(source: &Path, restored: &Path) {
    let a = snapshot_tree(source);
    let b = snapshot_tree(restored);
    let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "restored tree differs: missing {missing:?}, extra {extra:?}"
    );
    for (path, src) in &a {
        let dst = &b[path];
        match (&src.entry, &dst.entry) {
            (Entry::File(x), Entry::File(y)) => assert!(
                x == y,
                "{}: content differs ({} bytes vs {} bytes)",
                path.display(),
                x.len(),
                y.len()
            ),
            (x, y) => assert_eq!(x, y, "{}: entry differs", path.display()),
        }
        assert_eq!(src.mode, dst.mode, "{}: mode differs", path.display());
        assert_eq!(src.mtime, dst.mtime, "{}: mtime differs", path.display());
    }
}

/// The current user is root (who can read chmod 000 files).
pub fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Sets permission bits.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets a file's or directory's modification time (seconds, nanoseconds).
pub fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    let f = fs::File::open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

/// Reads the child's stderr until `bunker: test pause at NAME` (see the
/// engine's failpoints), so the test acts while the child is paused there.
/// Returns what was read, for messages.
pub fn wait_for_pause(child: &mut std::process::Child, name: &str) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.as_mut().expect("stderr piped");
    let mut reader = std::io::BufReader::new(stderr);
    let mut seen = String::new();
    let wanted = format!("bunker: test pause at {name}");
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read stderr") == 0 {
            panic!("child ended before pausing at {name}; stderr:\n{seen}");
        }
        seen.push_str(&line);
        if line.trim_end() == wanted {
            return seen;
        }
    }
}

/// Same file contents (byte for byte) below two directories.
pub fn assert_same_contents(expected: &Path, actual: &Path) {
    let want = files_below(expected);
    let got = files_below(actual);
    assert_eq!(want.len(), got.len(), "file count");
    for (path, _) in want {
        let rel = path.strip_prefix(expected).unwrap();
        assert_eq!(
            fs::read(actual.join(rel)).unwrap(),
            fs::read(&path).unwrap(),
            "{}",
            rel.display()
        );
    }
}

/// A tmpfs mounted for a test, unmounted on drop so a failing test leaves no
/// mount behind.
pub struct Mount(PathBuf);

/// Mounts a tmpfs of `size` (e.g. "6m") on the existing directory `dir`;
/// `None` (after saying why) when not root or the mount is refused.
pub fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    if !is_root() {
        eprintln!("skipped: mounting a file system needs root");
        return None;
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .ok()?;
    if !status.success() {
        eprintln!("skipped: cannot mount tmpfs here");
        return None;
    }
    Some(Mount(dir.to_path_buf()))
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Spawns `cmd` (output discarded), kills it with SIGKILL after `ms`
/// milliseconds, and returns whether it was still running then.
pub fn kill_after(cmd: &mut std::process::Command, ms: u64) -> bool {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn bunker");
    std::thread::sleep(std::time::Duration::from_millis(ms));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    running
}

/// `restore latest --verify --host HOST` into `target`, which must then
/// hold exactly the tree `src`.
pub fn assert_host_restores(env: &TestEnv, host: &str, src: &Path, target: &Path) {
    let out = run(env
        .cmd()
        .args(["restore", "latest", "--verify", "--host", host, "--target"])
        .arg(target));
    expect_code(&out, 0, &format!("restore latest of {host}"));
    assert_same_tree(src, &target.join(src.strip_prefix("/").unwrap()));
}
