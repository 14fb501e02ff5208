//! The machine's own limits for a backup, on the data to back up: how fast
//! its files read from page cache, and how fast BLAKE3 (keyed, as blob ids),
//! zstd at Bunker's default level and XChaCha20-Poly1305 run, on every core.
//! `scripts/bench` prints these beside Bunker's first-backup throughput.
//!
//! ```sh
//! cargo run --release -p bunker-format --example machine_limits -- DIR
//! ```
//! Prints one JSON object; rates are in MiB/s of the input.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bunker_format::compression::{compress, DEFAULT_LEVEL};
use bunker_format::crypto::MasterKey;

/// Work is split in pieces the size of an average chunk.
const PIECE: usize = 1 << 20;

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Runs `work` on every thread's share and returns the wall time in seconds.
fn timed<T: Sync, R: Send>(shares: &[T], work: impl Fn(&T) -> R + Sync) -> (f64, Vec<R>) {
    let start = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = shares.iter().map(|share| s.spawn(|| work(share))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    (start.elapsed().as_secs_f64(), results)
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| std::io::Error::other("usage: machine_limits DIR"))?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut all = Vec::new();
    files(&dir, &mut all)?;
    let mut shares: Vec<Vec<PathBuf>> = vec![Vec::new(); threads];
    for (i, f) in all.into_iter().enumerate() {
        shares[i % threads].push(f);
    }
    let read = |paths: &Vec<PathBuf>| -> Vec<Vec<u8>> {
        paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    };
    // Once to fill the page cache, once timed.
    drop(timed(&shares, read));
    let (read_s, data) = timed(&shares, read);
    let bytes: usize = data.iter().flatten().map(Vec::len).sum();
    let keys = MasterKey::generate().derive();
    let (blake3_s, _) = timed(&data, |files| {
        for piece in files.iter().flat_map(|f| f.chunks(PIECE)) {
            std::hint::black_box(keys.blob_id(piece));
        }
    });
    let (zstd_s, _) = timed(&data, |files| {
        for piece in files.iter().flat_map(|f| f.chunks(PIECE)) {
            std::hint::black_box(compress(piece, DEFAULT_LEVEL));
        }
    });
    let (seal_s, _) = timed(&data, |files| {
        for piece in files.iter().flat_map(|f| f.chunks(PIECE)) {
            std::hint::black_box(keys.seal(b"", piece));
        }
    });
    let rate = |s: f64| bytes as f64 / (1 << 20) as f64 / s;
    println!(
        "{{\"threads\":{threads},\"bytes\":{bytes},\"read\":{:.0},\"blake3\":{:.0},\"zstd\":{:.0},\"seal\":{:.0}}}",
        rate(read_s),
        rate(blake3_s),
        rate(zstd_s),
        rate(seal_s)
    );
    Ok(())
}
