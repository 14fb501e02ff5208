//! `bunker stats`

use anyhow::Result;
use bunker_engine::stats::stats;

use crate::context::{GlobalArgs, Target};
use crate::{exit, format};

/// Show sizes, deduplication and compression ratios.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Prints the repository's statistics.
pub fn run(_args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open_indexed(global)?;
    let s = stats(&repo)?;
    if global.json {
        super::print_json(&serde_json::to_value(&s)?);
        return Ok(exit::OK);
    }
    crate::outln!("snapshots:            {}", s.snapshots);
    crate::outln!("files (all snapshots): {}", s.files);
    crate::outln!("raw size:             {}", format::bytes(s.raw_size));
    crate::outln!(
        "after deduplication:  {} in {} blobs",
        format::bytes(s.deduplicated_size),
        s.unique_blobs
    );
    crate::outln!(
        "stored:               {} (blobs), {} (whole repository, {} packs)",
        format::bytes(s.stored_blob_size),
        format::bytes(s.repository_size),
        s.packs
    );
    crate::outln!("deduplication ratio:  {:.2}x", s.deduplication_ratio);
    crate::outln!("compression ratio:    {:.2}x", s.compression_ratio);
    Ok(exit::OK)
}
