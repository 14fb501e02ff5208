//! `bunker dump`

use std::io::Write;

use anyhow::Result;
use bunker_engine::find::find_snapshot;

use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::exit;

/// Write a file to stdout, or a directory as a tar stream.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, or "latest"
    snapshot: String,
    /// Path inside the snapshot
    path: String,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Streams the file or tar to stdout.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let repo = Target::select(global)?.open_indexed(global)?;
    let entry = find_snapshot(&repo.snapshots()?, &args.snapshot, &args.filter.filter())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    bunker_engine::dump::dump(&repo, &entry.snapshot.tree, &args.path, &mut out)?;
    out.flush()?;
    Ok(exit::OK)
}
