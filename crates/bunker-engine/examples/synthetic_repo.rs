//! Fills an empty repository with a synthetic content of many tiny chunks
//! (see `bunker_engine::synthetic`), for `scripts/bench --scale`.
//!
//! ```text
//! BUNKER_PASSWORD=… cargo run --release -p bunker-engine --features synthetic \
//!     --example synthetic_repo -- REPO CHUNKS [SNAPSHOTS] [CHUNKS_PER_FILE] [FILES_PER_DIR] [BLOBS_PER_PACK]
//! ```
//!
//! Prints what it wrote as one JSON object.

use std::sync::Arc;
use std::time::Instant;

use bunker_engine::backend::LocalBackend;
use bunker_engine::synthetic::{write_synthetic, SyntheticSpec};
use bunker_engine::Repository;

fn main() {
    if let Err(e) = run() {
        eprintln!("synthetic_repo: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(match args.get(i) {
            Some(a) => a.replace('_', "").parse()?,
            None => default,
        })
    };
    let repo_path = args.first().ok_or("usage: synthetic_repo REPO CHUNKS [SNAPSHOTS] [CHUNKS_PER_FILE] [FILES_PER_DIR] [BLOBS_PER_PACK]")?;
    let mut seed = [0u8; 24];
    getrandom::fill(&mut seed).map_err(|e| format!("random seed: {e}"))?;
    let spec = SyntheticSpec {
        chunks: number(1, 1_000_000)?,
        snapshots: number(2, 10)? as u32,
        chunks_per_file: number(3, 200)? as u32,
        files_per_dir: number(4, 1000)? as u32,
        blobs_per_pack: number(5, 1000)? as u32,
        seed,
    };
    let password = std::env::var("BUNKER_PASSWORD").map_err(|_| "BUNKER_PASSWORD is not set")?;
    let backend = Arc::new(LocalBackend::open(std::path::Path::new(repo_path), false)?);
    let repo = Repository::open(backend, password.as_bytes())?;
    let started = Instant::now();
    let step = (spec.chunks / 20).max(1);
    let told = std::sync::atomic::AtomicU64::new(0);
    let report = write_synthetic(&repo, &spec, &|done| {
        if done / step > told.swap(done / step, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "{done} chunks stored, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    })?;
    println!(
        "{{\"chunks\": {}, \"packs\": {}, \"index_files\": {}, \"files\": {}, \"trees\": {}, \"stored_bytes\": {}, \"snapshots\": {}, \"seconds\": {:.1}}}",
        report.chunks,
        report.packs,
        report.index_files,
        report.files,
        report.trees,
        report.stored_bytes,
        report.snapshots.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
