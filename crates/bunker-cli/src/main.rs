//! `bunker`: disaster-recovery backups. A thin layer over `bunker-engine`:
//! parse arguments, pick the repository and password, render output, map
//! errors to exit codes.

mod commands;
mod context;
mod exit;
mod format;
mod output;
mod password;
mod progress;

use clap::Parser;

use crate::context::GlobalArgs;

/// Versioned, deduplicated, compressed and encrypted backups.
#[derive(Parser)]
#[command(name = "bunker", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() {
    let cli = Cli::parse();
    let code = match commands::run(cli.command, &cli.global) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    };
    std::process::exit(code);
}
