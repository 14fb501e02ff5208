//! `bunker man --dir DIR`: one man page per command (`bunker.1`,
//! `bunker-backup.1`, `bunker-db-backup.1`, …), generated from the command
//! definitions themselves.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::context::GlobalArgs;
use crate::exit;

/// Write a man page for bunker and each of its commands into a folder
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the pages (made if missing)
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

/// Writes every page; prints each file written unless quiet.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut command = crate::cli_command();
    command.build();
    let mut written = Vec::new();
    write_pages(&command, "bunker", &args.dir, &mut written)?;
    if !global.quiet {
        for path in &written {
            crate::outln!("{}", path.display());
        }
    }
    Ok(exit::OK)
}

/// The page of `command` (named `name`), then those of its subcommands.
fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let page = command.clone().name(name.to_string());
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut bytes)
        .context("cannot render a man page")?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
