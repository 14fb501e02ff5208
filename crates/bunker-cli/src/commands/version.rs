//! `bunker version`, and what `--version` says.

use anyhow::Result;
use bunker_engine::format::object::{FORMAT_VERSION, OLDEST_VERSION};
use serde_json::json;

use crate::context::GlobalArgs;
use crate::exit;

/// Show the version, commit, build date, repository formats and storage backends
#[derive(clap::Args, Debug)]
pub struct Args {}

/// The storage backends this build reaches.
pub const BACKENDS: [&str; 5] = ["local", "s3", "azblob", "gcs", "sftp"];

/// `--version`'s long form.
pub fn long_version() -> String {
    format!(
        "{} (commit {}, built {}, {})\nrepository format: reads versions {OLDEST_VERSION} to {FORMAT_VERSION}, writes {FORMAT_VERSION}\nstorage: {}",
        env!("CARGO_PKG_VERSION"),
        env!("BUNKER_COMMIT"),
        env!("BUNKER_BUILD_DATE"),
        env!("BUNKER_TARGET"),
        BACKENDS.join(", ")
    )
}

/// Prints the version, as text or JSON.
pub fn run(_args: Args, global: &GlobalArgs) -> Result<i32> {
    if global.json {
        super::print_json(&json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": env!("BUNKER_COMMIT"),
            "build_date": env!("BUNKER_BUILD_DATE"),
            "target": env!("BUNKER_TARGET"),
            "repository_format": {
                "reads": (OLDEST_VERSION..=FORMAT_VERSION).collect::<Vec<_>>(),
                "writes": FORMAT_VERSION,
            },
            "backends": BACKENDS,
        }));
    } else {
        crate::outln!("bunker {}", long_version());
    }
    Ok(exit::OK)
}
