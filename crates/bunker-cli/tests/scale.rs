//! Memory at scale, scaled down (issue 19; docs/FORMAT.md §12). Two
//! synthetic repositories (`bunker_engine::synthetic`), of few and of many
//! chunks, and the peak RSS of the commands that load the whole index or
//! walk every snapshot: a backup, `check`, `forget` and `prune`. What the
//! larger repository adds must stay within the published memory formula, so
//! anything that holds a set growing with the chunks (a set of ids, about
//! 50 bytes each) fails here long before a repository of 100 million.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use bunker_engine::backend::LocalBackend;
use bunker_engine::synthetic::{write_synthetic, SyntheticReport, SyntheticSpec};
use bunker_engine::Repository;
use common::*;

/// The formula's bytes of peak memory per index entry and per pack.
const PER_CHUNK: f64 = 10.0;
const PER_PACK: f64 = 500.0;
/// Allocator and measurement noise.
const SLACK: f64 = 8.0 * 1024.0 * 1024.0;

const COMMANDS: [&str; 4] = ["backup", "check", "forget", "prune"];

/// Peak resident memory of one run, in bytes; the run must succeed.
///
/// Measured by GNU time, which forks the command from its own small
/// process: Linux carries a process's memory high-water mark across exec, so
/// a command forked from this test would count the generator's memory too.
fn peak_rss(cmd: std::process::Command, what: &str, log: &Path) -> u64 {
    let peak = log.with_extension("rss");
    let mut time = std::process::Command::new("/usr/bin/time");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => time.env(k, v),
            None => time.env_remove(k),
        };
    }
    let out = time
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&peak)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .current_dir(cmd.get_current_dir().expect("set by spawnable"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .status()
        .expect("GNU time (/usr/bin/time) runs");
    assert!(
        out.success(),
        "{what}: {}",
        std::fs::read_to_string(log).unwrap()
    );
    let kib: u64 = std::fs::read_to_string(&peak)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// A synthetic repository of `chunks` chunks, and the peak RSS of each command.
fn measure(chunks: u64) -> (SyntheticReport, Vec<u64>) {
    let env = TestEnv::new();
    // 1 MiB packs, and packs of 5,000 tiny blobs above a quarter of that:
    // prune would otherwise merge every pack as small.
    env.init_small_packs();
    let backend = Arc::new(LocalBackend::open(&env.repo, false).unwrap());
    let repo = Repository::open(backend, PASSWORD.as_bytes()).unwrap();
    let spec = SyntheticSpec {
        chunks,
        snapshots: 4,
        chunks_per_file: 100,
        files_per_dir: 100,
        blobs_per_pack: 5_000,
        seed: [7; 24],
    };
    let made = write_synthetic(&repo, &spec, &|_| {}).unwrap();
    assert_eq!(made.chunks, chunks);
    assert_eq!(made.snapshots.len(), 4);
    env.write_source_files(0..20, 10_000, &mut Rng::new(1));
    let log = env.path("stderr");
    let oldest = made.snapshots[0].to_hex();
    let rss = COMMANDS
        .iter()
        .map(|command| {
            let mut cmd = env.spawnable();
            match *command {
                "backup" => cmd.args(["backup", "-q"]).arg(env.path("src")),
                "forget" => cmd.args(["forget", "-q", &oldest]),
                other => cmd.args([other, "-q"]),
            };
            peak_rss(cmd, command, &log)
        })
        .collect();
    // The prune left a repository that checks clean, without the oldest
    // snapshot's own part.
    let out = run(env.cmd().args(["check", "--json"]));
    expect_code(&out, 0, "check after prune");
    assert_eq!(env.snapshots(&[]).len(), 4, "3 synthetic and the backup");
    (made, rss)
}

#[test]
fn memory_grows_with_the_chunks_as_the_formula_says() {
    let (small, small_rss) = measure(20_000);
    let (large, large_rss) = measure(1_000_000);
    let allowed = PER_CHUNK * (large.chunks + large.trees - small.chunks - small.trees) as f64
        + PER_PACK * (large.packs - small.packs) as f64
        + SLACK;
    for (i, command) in COMMANDS.iter().enumerate() {
        let grew = large_rss[i] as f64 - small_rss[i] as f64;
        eprintln!(
            "{command}: {:.1} MiB at {} chunks, {:.1} MiB at {} ({:.2} bytes per added chunk, {:.1} MiB allowed)",
            small_rss[i] as f64 / 1048576.0,
            small.chunks,
            large_rss[i] as f64 / 1048576.0,
            large.chunks,
            grew / (large.chunks - small.chunks) as f64,
            allowed / 1048576.0
        );
        assert!(
            grew <= allowed,
            "{command} grew by {:.1} MiB from {} to {} chunks; the formula allows {:.1} MiB",
            grew / 1048576.0,
            small.chunks,
            large.chunks,
            allowed / 1048576.0
        );
    }
}
