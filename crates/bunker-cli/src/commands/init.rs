//! `bunker init`

use anyhow::Result;
use serde_json::json;

use crate::context::{GlobalArgs, Target};
use crate::exit;

/// Create a repository.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Creates the repository named by `-r`, or the default one.
pub fn run(_args: Args, global: &GlobalArgs) -> Result<i32> {
    let target = Target::select(global)?;
    let repo = target.init(global)?;
    if global.json {
        super::print_json(
            &json!({ "message_type": "initialized", "id": repo.config().id_hex(), "repository": target.location.to_string() }),
        );
    } else if !global.quiet {
        crate::outln!(
            "created bunker repository {} at {}",
            &repo.config().id_hex()[..10],
            target.location
        );
        match &target.default {
            Some(d) if std::fs::metadata(&d.key_file).is_ok() => {
                crate::outln!("its key is in {}; keep a copy of it somewhere else too: without it the backups cannot be restored", d.key_file.display())
            }
            _ => crate::outln!("keep the password safe: without it the backups cannot be restored"),
        }
    }
    Ok(exit::OK)
}
